"""One task object per data kind: every kind the data layer names has one, with its head shape,
metrics and signature keys; an unknown kind is refused by name."""

from __future__ import annotations

import pytest

from lstmlab.data import KINDS, DataSpec
from lstmlab.tasks import TASKS, task_for


def test_every_data_kind_has_a_task_and_nothing_else_does():
    assert set(TASKS) == set(KINDS)
    for kind in KINDS:
        assert task_for(DataSpec(kind=kind, output_size=3)).kind == kind


@pytest.mark.parametrize("kind, per_step, metrics", [
    ("lm", True, ["loss", "bpc", "accuracy"]),
    ("multilabel", True, ["loss", "accuracy"]),
    ("classify", False, ["loss", "accuracy"]),
    ("regress", False, ["loss", "mse"]),
])
def test_head_shape_and_metric_names(kind, per_step, metrics):
    task = task_for(kind)
    assert task.per_step is per_step
    assert list(task.metrics_from_sums({"loss": 6.0, "correct": 2.0, "count": 3.0})) == metrics
    assert task.metrics_from_sums({"loss": 6.0, "correct": 2.0, "count": 3.0})["loss"] == 2.0
    assert ("model.pooling" in task.signature_keys()) is not per_step  # only per-sequence heads pool


def test_an_unknown_kind_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown data kind 'ranking'; valid: lm, multilabel, classify, regress"):
        task_for("ranking")
