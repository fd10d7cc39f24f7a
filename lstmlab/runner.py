"""Which program a config runs (its ``runner`` key), decided here for every entry point: the command
line (``python -m lstmlab``), a search's trials (``python -m lstmlab.search``) and Python callers.

=========  =======================================================  ==========================
runner     runs                                                     a search can optimise it
=========  =======================================================  ==========================
train      :func:`lstmlab.train.train_and_evaluate`: one model       yes: any metric the task
                                                                    declares
gradnorm   :func:`lstmlab.study.run_gradnorm_study`: several cells   no: it compares cells and
           on one task, compared by their gradient norms            has no single objective
=========  =======================================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lstmlab.config import Config, ConfigError


def run(
    config: Config,
    run_dir: str | Path,
    *,
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` in ``run_dir`` with its runner; returns the run's summary. ``on_evaluate`` and
    ``notify`` are :func:`lstmlab.train.train_and_evaluate`'s (the gradient-norm study takes neither:
    ``on_evaluate`` there is refused by :func:`check_searchable`)."""
    config.check()
    if config.runner == "gradnorm":
        from lstmlab.study import run_gradnorm_study

        if on_evaluate is not None:
            check_searchable(config)
        return run_gradnorm_study(config, run_dir)
    from lstmlab.train import train_and_evaluate

    return train_and_evaluate(config, run_dir, on_evaluate=on_evaluate, notify=notify)


def check_searchable(config: Config) -> None:
    """ConfigError (one line) unless a search can optimise a run of ``config``'s runner."""
    if config.runner != "train":
        raise ConfigError(
            f"runner={config.runner} (experiment {config.experiment!r}) compares several cells and has no single "
            "objective to search; search a training run instead (runner=train), e.g. +experiment=adding with "
            "the cell among the searched keys"
        )
