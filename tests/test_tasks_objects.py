"""One task object per data kind: every kind the data layer names has one, with its head shape,
metrics and signature keys; an unknown kind is refused by name."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lstmlab.data import KINDS, DataSpec
from lstmlab.tasks import TASKS, task_for


def test_every_data_kind_has_a_task_and_nothing_else_does():
    assert set(TASKS) == set(KINDS)
    for kind in KINDS:
        assert task_for(DataSpec(kind=kind, output_size=3)).kind == kind


@pytest.mark.parametrize(
    "kind, per_step, metrics",
    [
        ("lm", True, ["loss", "bpc", "accuracy"]),
        ("symbols", True, ["loss"]),  # the copy task: no bits per character, no accuracy over the blanks
        ("multilabel", True, ["loss", "accuracy"]),
        ("classify", False, ["loss", "accuracy"]),
        ("regress", False, ["loss", "mse"]),
    ],
)
def test_head_shape_and_metric_names(kind, per_step, metrics):
    task = task_for(kind)
    assert task.per_step is per_step
    assert list(task.metrics_from_sums({"loss": 6.0, "correct": 2.0, "count": 3.0})) == metrics
    assert task.metrics_from_sums({"loss": 6.0, "correct": 2.0, "count": 3.0})["loss"] == 2.0
    assert ("model.pooling" in task.signature_keys()) is not per_step  # only per-sequence heads pool


def test_an_unknown_kind_is_refused_with_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown data kind 'ranking'; valid: lm, symbols, multilabel, classify, regress"
    ):
        task_for("ranking")


def test_classification_result_names_the_wrong_ones_of_the_total():
    summary = {"test/accuracy": 1 - 7 / 370, "test/errors": 7.0, "test/loss": 0.1}
    assert task_for("classify").result_lines(summary) == ["test accuracy 0.981 (7 of 370 wrong)"]
    assert "none wrong" in task_for("classify").result_lines({"test/accuracy": 1.0, "test/errors": 0.0})[0]


def test_forecast_result_reads_rmse_and_skill_against_both_baselines():
    summary = {
        "test/rmse": 16.27,
        "test/persistence_rmse": 29.1,
        "test/seasonal_rmse": 18.5,
        "test/skill": 1 - 16.27 / 29.1,
        "test/seasonal_skill": 1 - 16.27 / 18.5,
    }
    (line,) = task_for("regress").result_lines(summary)
    assert line == ("test RMSE 16.3, skill 0.44 vs persistence (RMSE 29.1), skill 0.12 vs seasonal-naive (RMSE 18.5)")


def test_copy_result_has_no_bits_per_character():
    lines = task_for("symbols").result_lines(
        {
            "test/copy_accuracy": 0.5,
            "test/fraction_correct": 0.25,
            "test/cross_entropy": 0.2,
            "test/baseline_cross_entropy": 0.173,
            "test/loss": 0.2,
        }
    )
    assert lines == [
        "test: recalled symbols right 50.0 %, sequences all right 25.0 %",
        "cross-entropy 0.200 nats per step (memoryless baseline 0.173)",
    ]


USER_FILE_DATA = ("csv", "text")  # read only a file of the user's (data.path)


def _shipped_data_sets() -> list[str]:
    from lstmlab import data

    return [n for n in data.names() if n not in USER_FILE_DATA]


@pytest.mark.parametrize("name", USER_FILE_DATA)
def test_the_data_sets_left_out_below_need_a_file_of_the_user_s(name):
    from lstmlab import data

    with pytest.raises(ValueError, match="data.path is required"):
        data.build(name)


@pytest.mark.parametrize("name", _shipped_data_sets())
def test_every_metric_a_data_set_reports_is_declared_by_its_task(name):
    """The summary, progress display, report and search read the task's declarations: a data set's
    extra metric the task does not declare could not be ranked or searched."""
    from lstmlab import data
    from lstmlab.tasks import task_for

    dataset = data.build(name, **({"seed": 0} if "seed" in data.options(name) else {}))
    spec, task = dataset.spec, task_for(dataset.spec)
    batches = list(itertools.islice(dataset.eval_batches("val"), 2))
    rng = np.random.default_rng(0)
    outputs = [
        rng.normal(
            size=(*b["inputs"].shape[:2], spec.output_size) if task.per_step else (len(b["inputs"]), spec.output_size)
        )
        for b in batches
    ]
    reported = task.extra_metrics(dataset, "val", outputs if spec.stateful else np.concatenate(outputs), batches)
    metrics = {**task.metrics_from_sums({"loss": 1.0, "correct": 1.0, "count": 2.0}), **reported}
    assert metrics and [k for k in metrics if task.metric(f"val/{k}") is None] == []
