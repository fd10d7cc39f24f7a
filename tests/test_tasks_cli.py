"""Every speech, forecasting and long-time-lag experiment runs end to end through the CLI on a
shrunken config and writes the whole run directory; data.seq_len is honoured or refused."""

from __future__ import annotations

import json

import pytest

from conftest import TINY, run_cli

# Per experiment: overrides that shrink its data (on top of TINY), the metrics its summary must hold.
SHRINK = {
    "vowels": (["data.batch_size=8"], ["test/accuracy", "test/errors"]),
    "sunspots": (
        ["data.seq_len=6", "data.batch_size=16"],
        ["test/rmse", "test/mae", "test/persistence_rmse", "test/seasonal_rmse", "test/skill"],
    ),
    "airline": (
        ["data.seq_len=6", "data.batch_size=16"],
        ["test/rmse", "test/persistence_mae", "test/seasonal_mae", "test/skill"],
    ),
    "adding": (
        ["data.seq_len=10", "data.batch_size=8", "data.val_size=16", "data.test_size=16"],
        ["test/mse", "test/fraction_correct", "test/errors"],
    ),
    "temporal_order": (
        ["data.seq_len=20", "data.batch_size=8", "data.val_size=16", "data.test_size=16"],
        ["test/accuracy", "test/fraction_correct", "test/errors"],
    ),
    "copy": (
        ["data.seq_len=5", "data.batch_size=8", "data.val_size=16", "data.test_size=16"],
        ["test/cross_entropy", "test/baseline_cross_entropy", "test/copy_accuracy"],
    ),
    "reber": (
        ["data.seq_len=20", "data.batch_size=8", "data.train_size=16", "data.val_size=16", "data.test_size=16"],
        ["test/fraction_correct", "test/fraction_correct_top", "test/errors"],
    ),
}
FORECASTS = ("sunspots", "airline")

# Per experiment: what its result lines (the console's last lines) must say, from its own summary.
RESULT = {
    "vowels": lambda s: [
        f"test accuracy {s['test/accuracy']:.3f}",
        f"{int(s['test/errors'])} of " if s["test/errors"] else "none wrong",
    ],
    "sunspots": lambda s: [
        f"skill {s['test/skill']:.2f} vs persistence",
        f"{s['test/seasonal_skill']:.2f} vs seasonal-naive",
        "test RMSE",
    ],
    "airline": lambda s: [f"skill {s['test/skill']:.2f} vs persistence", "seasonal-naive"],
    "adding": lambda s: ["test MSE", f"{100 * s['test/fraction_correct']:.1f} %"],
    "temporal_order": lambda s: [
        f"test accuracy {s['test/accuracy']:.3f}",
        f"{100 * s['test/fraction_correct']:.1f} %",
    ],
    "copy": lambda s: [
        f"recalled symbols right {100 * s['test/copy_accuracy']:.1f} %",
        f"sequences all right {100 * s['test/fraction_correct']:.1f} %",
        f"memoryless baseline {s['test/baseline_cross_entropy']:.3g}",
    ],
    "reber": lambda s: [f"strings right by the task's rule {100 * s['test/fraction_correct']:.1f} %"],
}


@pytest.mark.parametrize("experiment", sorted(SHRINK))
def test_experiment_runs_through_the_cli_and_writes_the_run_directory(tmp_path, experiment):
    overrides, metrics = SHRINK[experiment]
    run_dir = tmp_path / "run"
    result = run_cli([f"+experiment={experiment}", *TINY, *overrides, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "plots/learning_curves.png"):
        assert (run_dir / name).is_file(), f"{name} missing"
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and all("val/loss" in r for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["step"] == 4
    for key in metrics:
        assert key in summary and summary[key] == summary[key], f"{key} missing or NaN"  # NaN != NaN
    assert (run_dir / "plots" / "forecast.png").is_file() == (experiment in FORECASTS)
    assert (run_dir / "plots" / "confusion_matrix.png").is_file() == (summary["task"] == "classify")
    if experiment in FORECASTS:
        assert summary["data"]["seq_len"] == 6  # the override reached the data
    assert "hidden_size: 8" in (run_dir / "config.yaml").read_text()
    out = result.stdout.strip().splitlines()
    assert f"run directory: {run_dir}" in out, result.stdout[-2000:]
    result_lines = "\n".join(out[out.index(f"run directory: {run_dir}") + 1 :])  # the last lines
    for text in RESULT[experiment](summary):
        assert text in result_lines, (text, result_lines)
    if experiment != "charlm":  # bits per character belong to text only
        assert "bits per character" not in result_lines and "bpc" not in result.stdout
        assert not any("bpc" in key for r in [*records, summary] for key in r)


def test_vowels_refuses_a_seq_len_in_one_line_and_leaves_the_run_directory_alone(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    result = run_cli(["+experiment=vowels", *TINY, "data.seq_len=10", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.seq_len=10" in lines[0] and "valid: null" in lines[0], result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["keep.txt"]


def test_every_task_experiment_sets_the_contract_keys():
    """data.seq_len and data.batch_size are in every experiment's composed config (so an override
    changes a key rather than adding one), data.path where the data set reads a user file."""
    from hydra import compose, initialize_config_dir

    from lstmlab.cli import conf_dir, register_schema

    register_schema()
    for name in [*SHRINK, "temporal_order_6b"]:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("config", overrides=[f"+experiment={name}"])
        assert "seq_len" in cfg.data and "batch_size" in cfg.data, name
        assert ("path" in cfg.data) == (name == "vowels"), name


def test_a_user_csv_file_is_forecast_through_data_path(tmp_path):
    import math

    csv = tmp_path / "sales.csv"
    csv.write_text("month,units\n" + "".join(f"{i},{10 + math.sin(i / 2):.4f}\n" for i in range(80)))
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "+experiment=sunspots",
            "data=csv",
            f"data.path={csv}",
            "data.column=units",
            "data.seq_len=6",
            "data.season=12",
            *TINY,
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data"]["path"] == str(csv) and summary["data"]["length"] == 80
    assert (run_dir / "plots" / "forecast.png").is_file()
