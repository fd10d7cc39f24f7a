"""What people see first: --help, the progress display, where the benchmark writes."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys

import pytest

from lstmlab.tasks import TASKS
from lstmlab.train.hooks import Progress, format_value

from conftest import ROOT, run_cli

BENCH = ROOT / "scripts" / "bench.py"


def test_help_shows_usage_examples_and_every_experiment():
    result = run_cli(["--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "powered by Hydra" not in result.stdout
    assert "Usage:" in result.stdout and "Examples:" in result.stdout
    groups = dict(
        line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line and not line.startswith(" ")
    )
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    assert groups["experiment"].split(", ") == experiments
    assert {"cell", "data", "model", "optim", "trainer"} <= set(groups)


def test_tokens_per_second_read_as_whole_numbers():
    assert format_value("train/tokens_per_second", 12090.4) == "12,090"
    assert format_value("train/loss", 2.34567) == "2.346"


def test_the_bar_draws_its_last_line_once(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    progress = Progress("bar", 3, 0, TASKS["lm"])
    progress.bar.mininterval = 0  # every update may draw, whatever the clock says
    for step in (1, 2, 3):
        progress.show(step, {"train/loss": 1.0 / step, "train/tokens_per_second": 5000.0})
        progress.advance(final=step == 3)
    progress.close()
    text = err.getvalue()
    assert text.count("3/3") == 1, text
    assert "tok/s=5,000" in text and "e+0" not in text


@pytest.mark.parametrize(
    "kind, record, shown",
    [
        ("lm", {"train/bpc": 2.0, "val/bpc": 2.5, "val/accuracy": 0.3}, "bpc 2 val_bpc 2.5"),
        ("symbols", {"val/loss": 0.1, "val/copy_accuracy": 0.5}, "val_loss 0.1 val_copy_acc 0.5"),
        ("classify", {"val/accuracy": 0.75}, "val_acc 0.75"),
        ("multilabel", {"val/fraction_correct": 1.0}, "val_right 1"),
    ],
)
def test_the_progress_lines_show_the_task_s_own_headline(kind, record, shown, capsys):
    progress = Progress("lines", 10, 0, TASKS[kind])
    progress.show(5, record)
    line = capsys.readouterr().out
    assert shown in line, line
    assert "recall" not in line and (kind == "classify" or "val_acc " not in line), line


def _bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_refuses_to_write_over_a_tracked_file():
    bench = _bench()
    before = (ROOT / "README.md").read_text()
    with pytest.raises(SystemExit) as exit_info:  # README.md is tracked: refused before anything runs
        bench.main(["--smoke", "--no-torch", "--out", str(ROOT / "README")])
    assert exit_info.value.code == 2 and (ROOT / "README.md").read_text() == before


def test_bench_writes_to_a_new_ignored_folder_by_default(tmp_path):
    bench = _bench()
    first = bench.new_results_dir(tmp_path / "bench-results")
    assert not first.exists() and first.parent == tmp_path / "bench-results"
    first.mkdir(parents=True)
    assert bench.new_results_dir(tmp_path / "bench-results") != first
    ignored = subprocess.run(["git", "check-ignore", "-q", "bench-results/x/bench.json"], cwd=ROOT)
    assert ignored.returncode == 0  # git ignores the default folder
