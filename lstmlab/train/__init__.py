"""Training: jitted steps, the loop, evaluation and sampling. Entry point: :func:`train_and_evaluate`."""

from lstmlab.train.loop import (
    NonFiniteError,
    build_dataset,
    build_model,
    evaluate,
    initial_state,
    make_eval_step,
    make_train_step,
    train_and_evaluate,
)
from lstmlab.train.sample import generate

__all__ = ["NonFiniteError", "build_dataset", "build_model", "evaluate", "generate", "initial_state",
           "make_eval_step", "make_train_step", "train_and_evaluate"]
