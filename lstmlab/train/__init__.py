"""Training: the run built from a config (:mod:`~lstmlab.train.setup`), the pure jitted steps
(:mod:`~lstmlab.train.steps`), the loop (:mod:`~lstmlab.train.loop`) and what it does besides stepping
(:mod:`~lstmlab.train.hooks`). Entry point: :func:`train_and_evaluate`.

The loop raises instead of exiting: :class:`NonFiniteError` (a non-finite loss or gradient under
``trainer.nonfinite=stop``; :class:`TooManySkipped` past ``trainer.max_skipped_fraction`` under
``skip``), :class:`Preempted` (SIGTERM/SIGINT; a checkpoint was saved first) and :class:`RunStopped` (a
write failed mid-run, e.g. disk full; the checkpoints are intact).
"""

from lstmlab.train.hooks import Every, Hook, NonFiniteError, Preempted, Step
from lstmlab.train.loop import RunStopped, TooManySkipped, train_and_evaluate
from lstmlab.train.sample import generate
from lstmlab.train.setup import Run, build_dataset, build_model, fit_param_budget, param_count, setup
from lstmlab.train.steps import evaluate, initial_state, make_eval_step, make_train_step

__all__ = [
    "Every",
    "Hook",
    "NonFiniteError",
    "Preempted",
    "Run",
    "RunStopped",
    "Step",
    "TooManySkipped",
    "build_dataset",
    "build_model",
    "evaluate",
    "fit_param_budget",
    "generate",
    "initial_state",
    "make_eval_step",
    "make_train_step",
    "param_count",
    "setup",
    "train_and_evaluate",
]
