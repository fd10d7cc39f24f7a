"""Checkpoint disk use: the size of a step on disk, a one-line refusal naming checkpoint.keep when the
kept checkpoints cannot fit, and a run whose checkpoints are all damaged keeping its history aside."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lstmlab.io.checkpoint import Checkpointer, check_checkpoint_space, checkpoints_at_once, disk_size, state_nbytes
from lstmlab.io.rundir import RunDir

MIB = 1 << 20


def _random_state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)  # noise: compression cannot shrink it much
    return {
        "params": {
            "w": rng.normal(size=(512, 256)).astype(np.float32),  # 512 KiB
            "b": rng.normal(size=(131072,)).astype(np.float32),
        },  # 512 KiB
        "step": np.int64(3),
    }


def test_disk_size_counts_hard_links_once_and_does_not_follow_links(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(os.urandom(4 * MIB))
    step = tmp_path / "7"
    (step / "state").mkdir(parents=True)
    (step / "state" / "a").write_bytes(os.urandom(MIB))
    alone = disk_size(step)
    assert MIB <= alone < MIB + 64 * 1024
    os.link(step / "state" / "a", step / "state" / "a-again")
    (step / "link").symlink_to(outside)
    assert disk_size(step) - alone < 4 * MIB // 2
    assert disk_size(tmp_path / "missing") == 0


def test_step_size_of_a_written_checkpoint_and_the_estimate_before_it(tmp_path):
    state = _random_state()
    assert state_nbytes(state) == MIB + 8
    checkpointer = Checkpointer(tmp_path / "checkpoints", keep=1)
    checkpointer.save(1, state, {"note": "x"})
    size = checkpointer.step_size(1)
    assert 3 * MIB // 4 <= size < 2 * MIB  # zstd shaves a little off float32 noise
    checkpointer.close()


def test_checkpoints_at_once_counts_the_best_and_the_one_being_written():
    assert checkpoints_at_once(2) == 4
    assert checkpoints_at_once(2, keep_best=False) == 3
    assert checkpoints_at_once(0) == 3


def test_space_check_refuses_in_one_line_naming_checkpoint_keep(tmp_path):
    target = tmp_path / "run" / "checkpoints"  # not made yet: the nearest existing parent is asked
    check_checkpoint_space(target, keep=3, checkpoint_bytes=100, free_bytes=500)  # 5 x 100 fits exactly
    with pytest.raises(ValueError) as err:
        check_checkpoint_space(target, keep=3, checkpoint_bytes=100, free_bytes=499)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("checkpoint.keep=3: 5 checkpoints of 100 B (3 kept + the best + 1 being written)")
    assert message.endswith("valid here: checkpoint.keep <= 2, or free disk space")
    with pytest.raises(ValueError, match=r"checkpoint.keep=1: .*not even checkpoint.keep=1 fits"):
        check_checkpoint_space(target, keep=1, checkpoint_bytes=100, free_bytes=150)


def test_space_check_counts_the_checkpoints_already_on_disk(tmp_path):
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "data").write_bytes(os.urandom(MIB))
    in_use = disk_size(tmp_path)
    # 4 x 1 MiB needed, ~1 MiB already there to be replaced: 3 MiB free is enough, 2 MiB is not
    check_checkpoint_space(tmp_path, keep=2, checkpoint_bytes=MIB, free_bytes=4 * MIB - in_use)
    with pytest.raises(ValueError, match="checkpoint.keep=2"):
        check_checkpoint_space(tmp_path, keep=2, checkpoint_bytes=MIB, free_bytes=4 * MIB - in_use - 1)


def test_space_check_against_the_real_disk(tmp_path):
    free = __import__("shutil").disk_usage(tmp_path).free
    check_checkpoint_space(tmp_path, keep=2, checkpoint_bytes=1024)
    with pytest.raises(ValueError, match="checkpoint.keep=2: .*free disk space"):
        check_checkpoint_space(tmp_path, keep=2, checkpoint_bytes=free)


def _truncate_arrays(step_dir: Path) -> None:
    for f in (step_dir / "state").rglob("d/*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def test_when_every_checkpoint_is_damaged_the_history_is_kept_aside(tmp_path):
    run_dir = tmp_path / "run"
    checkpointer = Checkpointer(run_dir / "checkpoints", keep=2, keep_best=False)
    for step in (1, 2):
        checkpointer.save(step, _random_state(step), {"note": step})
    checkpointer.close()
    for step in (1, 2):
        _truncate_arrays(run_dir / "checkpoints" / str(step))
    metrics = b"".join(json.dumps({"step": s, "train/loss": 1.0 / s}).encode() + b"\n" for s in (1, 2))
    (run_dir / "metrics.jsonl").write_bytes(metrics)
    (run_dir / "samples.txt").write_text("=== step 2 (temperature 0.8) ===\nabc\n\n")

    reader = Checkpointer(run_dir / "checkpoints", keep=2, keep_best=False)
    step, _, _, damaged = reader.read_latest_good()
    assert step is None and sorted(damaged) == [1, 2]
    for bad in damaged:
        reader.set_aside(bad)
    moved = RunDir(run_dir).set_aside_history()
    reader.close()

    assert sorted(moved) == ["metrics.jsonl", "samples.txt"]
    assert moved["metrics.jsonl"].name == "metrics.jsonl.damaged"
    assert moved["metrics.jsonl"].read_bytes() == metrics
    tracker = RunDir(run_dir).metrics(resume_step=0)  # the run starts again from step 0
    assert tracker.history == [] and tracker.problem is None
    tracker.log(1, {"train/loss": 2.0})
    assert moved["metrics.jsonl"].read_bytes() == metrics
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["1.damaged", "2.damaged"]
