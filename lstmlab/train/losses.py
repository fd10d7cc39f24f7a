"""Losses and metrics by data kind, as functions of the kind's name: thin wrappers around the task
objects of :mod:`lstmlab.tasks`, where each kind's loss and metrics are defined (see the table there).
"""

from __future__ import annotations

import jax

from lstmlab.tasks import LN2, task_for

Array = jax.Array
__all__ = ["LN2", "batch_sums", "mean_loss", "metrics_from_sums"]


def batch_sums(kind: str, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
    """Sums over the counted items of one batch: ``loss`` (nats), ``correct``, ``count``."""
    return task_for(kind).batch_sums(outputs, batch)


def mean_loss(kind: str, outputs: Array, batch: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
    """The training objective: mean loss per counted item (nats, or squared error), and the sums."""
    return task_for(kind).mean_loss(outputs, batch)


def metrics_from_sums(kind: str, sums: dict[str, float]) -> dict[str, float]:
    """Named metrics from (accumulated) sums."""
    return task_for(kind).metrics_from_sums(sums)
