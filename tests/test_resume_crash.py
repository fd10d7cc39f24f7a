"""Runs that die: SIGKILL at chosen moments, SIGTERM/SIGINT, damaged checkpoints. Each run resumed with
the same command ends bit for bit where a run never interrupted ends (CPU), and its metrics.jsonl and
samples.txt continue without repeated or missing steps."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmlab.config import Config
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.train import train_and_evaluate

from conftest import ROOT, cli_env

MAX_STEPS = 20
# charlm keeps its dropout (0.2), so the per-step dropout keys must line up after a resume too.
COMMAND = [
    "+experiment=charlm",
    "model.hidden_size=8",
    "data.seq_len=8",
    "data.batch_size=4",
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.eval_every=4",
    "trainer.log_every=2",  # a stop between two logs: the resumed run must log the same means
    "trainer.eval_max_batches=1",
    "checkpoint.every=1",
    "sample.length=5",
    "logger.wandb.mode=disabled",
    "trainer.progress=lines",
]  # a line on stdout per logged step: the marker the kills wait for


def start(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lstmlab", *COMMAND, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def steps_on_disk(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def wait_for_step(process: subprocess.Popen, step: int) -> None:
    """Until the run has logged ``step`` or a later one (its progress line on stdout, written after the
    step's metrics and before its checkpoint is saved)."""
    for line in process.stdout:
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= step:
            return
    raise AssertionError(f"run ended before step {step}: {process.communicate()[1][-2000:]}")


def final_state(run_dir: Path) -> dict[str, np.ndarray]:
    flat, _ = Checkpointer(run_dir / "checkpoints", read_only=True).read(MAX_STEPS)
    return flat


def metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("train/tokens_per_second")  # wall-clock speed, the one value that may differ
    return records


def assert_same_run(resumed: Path, straight: Path, note: str) -> None:
    a, b = final_state(straight), final_state(resumed)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key} ({note})")
    assert [r["step"] for r in metrics(resumed)] == list(range(2, MAX_STEPS + 1, 2)), note
    assert metrics(resumed) == metrics(straight), note
    assert (resumed / "samples.txt").read_text() == (straight / "samples.txt").read_text(), note


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The run never interrupted."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    process = start(run_dir)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return run_dir


def test_killed_and_stopped_runs_resume_to_exactly_the_uninterrupted_result(straight, tmp_path):
    """Two SIGKILLs (as soon as the run has logged a chosen step: before, during or after that step's
    checkpoint is saved), then SIGTERM and SIGINT (each saves the step it is at), each followed by the
    same command again; the last one runs to the end. The steps are fixed, far from the run's end."""
    run_dir, history = tmp_path / "run", []
    for sig, ahead in ((signal.SIGKILL, 2), (signal.SIGKILL, 3), (signal.SIGTERM, 1), (signal.SIGINT, 2)):
        target = max(steps_on_disk(run_dir), default=0) + ahead
        process = start(run_dir)
        wait_for_step(process, target)
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        history.append((sig.name, target, steps_on_disk(run_dir)))
        note = f"so far {history}"
        if sig == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL, f"{note}: the run ended before it was killed"
            continue
        assert process.returncode == 128 + sig, f"{note}: {err[-2000:]}"
        saved = max(steps_on_disk(run_dir))
        assert f"{sig.name} received; saved checkpoint at step {saved} in" in err, err[-2000:]
        assert metrics(run_dir)[-1]["step"] in (saved, saved - 1), f"{note}: nothing logged of its own at the stop"
    process = start(run_dir)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert_same_run(run_dir, straight, f"interrupted {history}")


# -- damaged checkpoints (in this process: no CLI needed) ---------------------------------------------


def tiny_config() -> Config:
    config = Config()
    config.data = {"name": "shakespeare", "plays": "macbeth", "seq_len": 8, "batch_size": 4}
    config.model.hidden_size = 8
    config.model.dropout = 0.2
    config.trainer.max_steps = 4
    config.trainer.eval_every = 2
    config.trainer.log_every = 1
    config.trainer.eval_max_batches = 1
    config.trainer.progress = "none"
    config.checkpoint.every = 1
    config.checkpoint.keep = 2
    config.logger.wandb.mode = "disabled"
    config.sample.length = 5
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A finished 4-step run and its final state (read before anything is damaged)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train_and_evaluate(tiny_config(), run_dir)
    flat, _ = Checkpointer(run_dir / "checkpoints", read_only=True).read(4)
    return run_dir, flat


def test_keep_policy_keeps_the_latest_and_the_best_only(finished):
    steps = steps_on_disk(finished[0])
    assert 1 not in steps, "a step with neither a recent save nor a val loss was kept"
    assert {3, 4} <= set(steps) and len(steps) <= 3, steps


def _truncate_data(step_dir: Path) -> None:
    for f in (step_dir / "state").rglob("d/*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _overwrite_bytes(step_dir: Path) -> None:  # same length, different content: only the digest sees it
    for f in (step_dir / "state").rglob("d/*"):
        if f.is_file():
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0xFF
            f.write_bytes(bytes(data))


def _truncate_meta(step_dir: Path) -> None:
    f = step_dir / "meta" / "metadata"
    f.write_bytes(f.read_bytes()[:20])


def _lose_state(step_dir: Path) -> None:
    shutil.rmtree(step_dir / "state")


@pytest.mark.parametrize("damage", [_truncate_data, _overwrite_bytes, _truncate_meta, _lose_state])
def test_a_damaged_latest_checkpoint_is_reported_and_the_previous_one_used(finished, tmp_path, caplog, damage):
    source, expected = finished
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    damage(run_dir / "checkpoints" / "4")
    # a save that a crash cut short
    leftover = run_dir / "checkpoints" / "5.orbax-checkpoint-tmp-1234"
    (leftover / "state").mkdir(parents=True)
    (leftover / "state" / "junk").write_bytes(b"\0" * 10)
    with caplog.at_level(logging.WARNING, logger="lstmlab"):
        train_and_evaluate(tiny_config(), run_dir)  # resumes from step 3 and trains step 4 again

    err = [r.getMessage() for r in caplog.records if r.name.startswith("lstmlab")]
    assert len(err) == 1 and f"checkpoint {run_dir / 'checkpoints' / '4'} is damaged" in err[0], err
    assert err[0].endswith("moved to 4.damaged; resuming from step 3"), err[0]
    assert (run_dir / "checkpoints" / "4.damaged").is_dir() and not leftover.exists()
    redone, _ = Checkpointer(run_dir / "checkpoints", read_only=True).read(4)
    for key in expected:
        np.testing.assert_array_equal(redone[key], expected[key], err_msg=key)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_failed_save_leaves_the_previous_checkpoint_in_place(tmp_path):
    checkpointer = Checkpointer(tmp_path, keep=1)
    checkpointer.save(1, {"w": np.ones(3, np.float32)}, {"note": "good"})
    with pytest.raises(Exception):  # noqa: B017 -- an object array cannot be written: the save fails midway
        checkpointer.save(2, {"w": np.array([object()])}, {"note": "bad"})
    assert checkpointer.steps() == [1]
    flat, meta = Checkpointer(tmp_path, read_only=True).read(1)
    np.testing.assert_array_equal(flat["w"], np.ones(3, np.float32))
    assert meta == {"note": "good"}
