"""Training: jitted steps, the loop, evaluation and sampling. Entry point: :func:`train_and_evaluate`."""

from lstmlab.train.loop import (
    NonFiniteError,
    build_dataset,
    build_model,
    evaluate,
    make_eval_step,
    make_train_step,
    train_and_evaluate,
)
from lstmlab.train.sample import generate

__all__ = ["NonFiniteError", "build_dataset", "build_model", "evaluate", "generate", "make_eval_step",
           "make_train_step", "train_and_evaluate"]
