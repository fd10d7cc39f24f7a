"""The report ranks by the direction the runs' task declares (lstmlab.tasks), and refuses a metric it
cannot rank or does not find, in one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from lstmlab.cli.report import main
from lstmlab.tasks import TASKS, declared_metric


def _runs(root, kind: str, metric: str, values: list[float]):
    for i, value in enumerate(values):
        run = root / f"run{i}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "optim": {"lr": 0.001 * (i + 1)}}))
        (run / "summary.json").write_text(json.dumps({"step": 10, "task": kind, metric: value, "test/loss": 1.0}))
    return root


@pytest.mark.parametrize(
    "kind, metric",
    [("regress", "test/skill"), ("regress", "test/fraction_correct"), ("classify", "test/accuracy"),
     ("symbols", "test/copy_accuracy"), ("lm", "test/bpc"), ("regress", "test/rmse")],
)  # fmt: skip
def test_rows_are_ranked_best_first_in_the_declared_direction(tmp_path, kind, metric, capsys):
    root = _runs(tmp_path / "sweep", kind, metric, [0.2, 0.9, 0.5])
    assert main([str(root), "--metric", metric]) == 0
    ranked = list(pd.read_csv(root / "report.csv")[f"{metric} mean"])
    best_first = sorted(ranked, reverse=TASKS[kind].metric(metric).direction == "maximize")
    assert ranked == best_first and ranked[0] == (0.9 if declared_metric(metric).direction == "maximize" else 0.2)


def test_a_metric_no_task_declares_needs_a_direction(tmp_path, capsys):
    root = _runs(tmp_path / "sweep", "classify", "test/my_score", [0.2, 0.9])
    with pytest.raises(SystemExit) as exit_info:
        main([str(root), "--metric", "test/my_score"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--direction" in err[0] and "test/loss" in err[0], err
    assert not (root / "report.csv").exists()
    assert main([str(root), "--metric", "test/my_score", "--direction", "maximize"]) == 0
    assert list(pd.read_csv(root / "report.csv")["test/my_score mean"]) == [0.9, 0.2]


def test_a_metric_in_no_summary_is_refused_listing_the_ones_there(tmp_path, capsys):
    root = _runs(tmp_path / "sweep", "classify", "test/accuracy", [0.2, 0.9])
    with pytest.raises(SystemExit) as exit_info:
        main([str(root), "--metric", "test/acuracy"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test/acuracy" in err[0] and "test/accuracy" in err[0], err
    assert not (root / "report.csv").exists()


def test_every_task_declares_its_headline_and_shared_names_agree():
    directions = {}
    for task in TASKS.values():
        assert task.headline in task.metrics and "loss" in task.metrics
        for metric in task.metrics.values():
            assert metric.direction in ("minimize", "maximize") and metric.label and metric.short
            assert directions.setdefault(metric.name, metric.direction) == metric.direction, metric.name


@pytest.mark.parametrize(
    "expected, message",
    [
        ("rows: [1, 2\n", "--expected {path}: not YAML"),
        ("- a\n- list\n", "--expected {path}: want a mapping with 'rows:"),
        ("rows:\n  - where: lr\n    value: 1\n", "every row wants 'where: {{KEY: VALUE}}'"),
    ],
)
def test_a_malformed_expected_file_is_one_line(tmp_path, capsys, expected, message):
    root = _runs(tmp_path / "sweep", "classify", "test/accuracy", [0.2, 0.9])
    path = tmp_path / "expected.yaml"
    path.write_text(expected)
    with pytest.raises(SystemExit) as exit_info:
        main([str(root), "--expected", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(path=path) in err[0], err
    assert not (root / "report.csv").exists()


def test_an_out_directory_that_cannot_be_written_is_one_line(tmp_path, capsys):
    root = _runs(tmp_path / "sweep", "classify", "test/accuracy", [0.2, 0.9])
    (tmp_path / "file").write_text("not a directory\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(root), "--metric", "test/accuracy", "--out", str(tmp_path / "file" / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the report" in err[0] and "valid: a writable --out directory" in err[0]


def test_the_report_compares_on_the_metric_the_expected_file_names(tmp_path):
    root = _runs(tmp_path / "sweep", "classify", "test/accuracy", [0.2, 0.9])
    for run in root.iterdir():  # the runs also have a validation loss, which is not what the paper gives
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "val/loss": 0.5}))
    path = tmp_path / "expected.yaml"
    path.write_text("metric: test/accuracy\nrows:\n  - where: {optim.lr: 0.002}\n    value: 0.95\n")
    assert main([str(root), "--expected", str(path)]) == 0
    table = pd.read_csv(root / "report.csv")
    assert list(table["test/accuracy mean"]) == [0.9, 0.2]
    assert "# Report: test/accuracy (maximize)" in (root / "report.md").read_text()


@pytest.mark.parametrize("kind, metric, threshold", [("classify", "test/accuracy", 0.99), ("lm", "test/bpc", 2.0)])
def test_success_counts_the_seeds_that_reach_a_threshold_in_the_metric_s_direction(tmp_path, kind, metric, threshold):
    """Two configurations of three seeds each: the column counts, per row, the runs at or past X."""
    root = tmp_path / "sweep"
    values = (
        {0.01: [0.995, 0.99, 0.25], 0.1: [0.5, 0.98, 0.999]}
        if kind == "classify"
        else {0.01: [1.5, 2.0, 2.5], 0.1: [3, 3, 1]}
    )
    for lr, seeds in values.items():
        for seed, value in enumerate(seeds):
            run = root / f"lr{lr}_s{seed}"
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "optim": {"lr": lr}}))
            (run / "summary.json").write_text(json.dumps({"step": 10, "task": kind, metric: value}))
    assert main([str(root), "--metric", metric, "--success", str(threshold)]) == 0
    table = pd.read_csv(root / "report.csv").set_index("optim.lr")
    assert dict(table["successes"]) == {0.01: 2, 0.1: 1}
    assert main([str(root), "--metric", metric]) == 0
    assert "successes" not in pd.read_csv(root / "report.csv").columns
