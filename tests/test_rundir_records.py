"""A run directory never loses what it holds: records without a checkpoint are refused unless a start
over is asked for (and then kept aside), and the resume guard compares with the config the checkpoint
records, whatever became of config.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lstmlab.cli import compose
from lstmlab.config import ConfigError
from lstmlab.train import train_and_evaluate

from conftest import TINY

ADDING = [*TINY, "trainer.progress=none", "model.hidden_size=4", "trainer.max_steps=2", "checkpoint.every=1"]


def _run(run_dir: Path, *extra: str) -> dict:
    return train_and_evaluate(compose("adding", [*ADDING, *extra]), run_dir)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    _run(run_dir)
    return run_dir


def test_records_without_a_checkpoint_are_refused_and_kept(tmp_path, finished):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = (finished / "metrics.jsonl").read_bytes()
    (run_dir / "metrics.jsonl").write_bytes(metrics)  # a run's records, its checkpoints deleted
    with pytest.raises(ConfigError, match=r"holds a run's records \(metrics.jsonl\) but no checkpoint") as err:
        _run(run_dir, "model.hidden_size=6")
    assert "+resume.start_over=true" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".lock")) == ["metrics.jsonl"]
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics


def test_a_start_over_keeps_the_old_records_aside(tmp_path, finished):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    old = b'{"step": 7, "train/loss": 9.5}\n'
    (run_dir / "metrics.jsonl").write_bytes(old)
    summary = _run(run_dir, "+resume.start_over=true")
    assert summary["step"] == 2
    assert (run_dir / "metrics.jsonl.previous").read_bytes() == old
    assert b'"step": 7' not in (run_dir / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "deleted", "replaced"])
def test_the_resume_guard_reads_the_config_the_checkpoint_keeps(tmp_path, finished, damage):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    config = run_dir / "config.yaml"
    if damage == "truncated":
        config.write_text(config.read_text()[: len(config.read_text()) // 2])
    elif damage == "deleted":
        config.unlink()
    else:  # a config.yaml that agrees with the changed command hides nothing either
        config.write_text(re.sub(r"(?m)^  lr: .*$", "  lr: 0.5", config.read_text()))
    with pytest.raises(ConfigError, match=r"would change what the run trained with: saved optim.lr=") as err:
        _run(run_dir, "trainer.max_steps=3", "+resume.allow_changes=[trainer.max_steps]", "optim.lr=0.5")
    assert "(now 0.5)" in str(err.value)
    before = config.read_text() if config.exists() else None
    assert _run(run_dir, "trainer.max_steps=3", "+resume.allow_changes=[trainer.max_steps]")["step"] == 3
    kept = run_dir / "config.yaml.damaged"  # the file that disagreed is kept, and written anew from the truth
    assert (kept.read_text() if kept.exists() else None) == before
    assert "lr: 0.5" not in config.read_text() and "max_steps: 3" in config.read_text()


def test_a_run_directory_that_is_a_symbolic_link_is_refused(tmp_path):
    from lstmlab.io.files import UnsafePathError

    target = tmp_path / "scratch"
    target.mkdir()
    (tmp_path / "run").symlink_to(target)
    with pytest.raises(UnsafePathError, match=r"run directory .*run is a symbolic link .* hydra.run.dir=.*scratch"):
        _run(tmp_path / "run")
    assert list(target.iterdir()) == []


def test_a_symbolic_link_among_the_checkpoints_is_refused(tmp_path, finished):
    import shutil

    from lstmlab.io.files import UnsafePathError

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    outside = tmp_path / "outside"
    shutil.move(run_dir / "checkpoints" / "2", outside)
    (run_dir / "checkpoints" / "2").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"checkpoints/2 is a symbolic link"):
        _run(run_dir, "trainer.max_steps=3", "+resume.allow_changes=[trainer.max_steps]")


def test_reading_a_run_passes_over_a_damaged_latest_checkpoint(tmp_path, finished, capsys):
    import shutil

    from lstmlab.cli.sample import restore

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    for item in (run_dir / "checkpoints" / "2").rglob("*"):
        if item.is_file() and item.stat().st_size > 16 and "state" in item.parts:
            item.write_bytes(b"\0" * item.stat().st_size)  # the newest step's arrays are gone
    _, _, meta = restore(run_dir)
    assert meta["step"] == 1 and list(meta["passed_over"]) == ["2"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "using the previous good checkpoint" in err[0], err


def test_a_sample_length_past_the_bound_is_one_line(tmp_path, capsys):
    from lstmlab.cli.sample import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--length", "100000000"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--length=100000000; valid: an integer from 1 to 1,000,000" in err[0], err


def test_the_report_skips_a_run_whose_config_is_damaged_and_names_it(tmp_path, finished, caplog):
    import shutil

    from lstmlab.report import report

    sweep = tmp_path / "sweep"
    for name in ("a", "b"):
        shutil.copytree(finished, sweep / name)
    (sweep / "b" / "config.yaml").write_text("- not\n- a mapping\n")
    table, out_dir = report([sweep], metric="test/mse")
    assert int(table["runs"].sum()) == 1
    assert "skipped" in caplog.text and "b/config.yaml is damaged" in caplog.text
    assert "b/config.yaml is damaged" in (out_dir / "report.md").read_text()
