"""Run-directory file helpers: no symbolic link followed, crash-safe replacement, damaged side files
read without blocking a resume or erasing what was there, JSON without NaN/Infinity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lstmlab.io import files
from lstmlab.io.files import UnsafePathError
from lstmlab.io.trackers import JsonlTracker

PRECIOUS = b"precious bytes \x00\xff that must not change\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_bytes(PRECIOUS)
    return victim


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------ symbolic links


@pytest.mark.parametrize("name", ["config.yaml", "summary.json", "samples.txt"])
def test_atomic_write_refuses_a_symlinked_target_and_leaves_its_target_alone(tmp_path, name):
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(victim)
    with pytest.raises(UnsafePathError, match=f"{name} is a symbolic link"):
        files.atomic_write_text(run / name, "new text\n", root=run)
    assert victim.read_bytes() == PRECIOUS
    assert (run / name).is_symlink()
    assert _temps(run) == []


def test_write_json_refuses_a_symlinked_summary(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / "summary.json").symlink_to(victim)
    with pytest.raises(UnsafePathError, match="summary.json"):
        files.write_json(tmp_path / "summary.json", {"step": 1})
    assert victim.read_bytes() == PRECIOUS


def test_atomic_write_refuses_a_symlinked_directory_inside_the_run_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "plots").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="plots is a symbolic link inside the run directory"):
        files.atomic_write_text(run / "plots" / "x.txt", "x", root=run)
    assert list(elsewhere.iterdir()) == []


def test_a_run_directory_that_is_itself_a_link_is_allowed(tmp_path):
    real = tmp_path / "scratch"
    real.mkdir()
    (tmp_path / "run").symlink_to(real, target_is_directory=True)
    run = tmp_path / "run"
    files.atomic_write_text(run / "config.yaml", "a: 1\n", root=run)
    files.append_text(run / "metrics.jsonl", '{"step": 1}\n', root=run)
    assert (real / "config.yaml").read_text() == "a: 1\n"
    assert (real / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_append_refuses_a_symlinked_metrics_file_and_leaves_its_target_alone(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(UnsafePathError, match="metrics.jsonl is a symbolic link"):
        files.append_text(tmp_path / "metrics.jsonl", '{"step": 1}\n')
    assert victim.read_bytes() == PRECIOUS


def test_append_refuses_a_dangling_symlink_without_creating_its_target(tmp_path):
    target = tmp_path / "created-through-the-link"
    (tmp_path / "metrics.jsonl").symlink_to(target)
    with pytest.raises(UnsafePathError):
        files.append_text(tmp_path / "metrics.jsonl", '{"step": 1}\n')
    assert not target.exists()


def test_append_refuses_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "metrics.jsonl")
    with pytest.raises(UnsafePathError, match="metrics.jsonl"):
        files.append_text(tmp_path / "metrics.jsonl", '{"step": 1}\n')


def test_jsonl_tracker_refuses_a_symlinked_metrics_file_on_start_and_on_log(tmp_path):
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(UnsafePathError):
        JsonlTracker(run / "metrics.jsonl", resume_step=3)
    assert victim.read_bytes() == PRECIOUS
    (run / "metrics.jsonl").unlink()
    tracker = JsonlTracker(run / "metrics.jsonl")
    (run / "metrics.jsonl").symlink_to(victim)  # swapped in while the run goes on
    with pytest.raises(UnsafePathError):
        tracker.log(1, {"train/loss": 1.0})
    assert victim.read_bytes() == PRECIOUS


# ------------------------------------------------------------------------------------ atomic writes


def test_temporary_names_are_unpredictable_and_differ_between_writes(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    files.atomic_write_text(tmp_path / "summary.json", "1")
    files.atomic_write_text(tmp_path / "summary.json", "2")
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(n.startswith(".summary.json.") and n.endswith(".tmp") and n != ".summary.json.tmp" for n in seen)
    assert (tmp_path / "summary.json").read_text() == "2"


def test_a_predictable_temporary_name_planted_as_a_link_is_not_written_through(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / "summary.json.tmp").symlink_to(victim)  # what the old helper would have written
    files.atomic_write_text(tmp_path / "summary.json", "{}\n")
    assert victim.read_bytes() == PRECIOUS
    assert (tmp_path / "summary.json").read_text() == "{}\n"


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_crash_mid_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch, where):
    target = tmp_path / "config.yaml"
    target.write_text("old: 1\n")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if where == "write":
        monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: _FailingFile(fd))
    else:
        monkeypatch.setattr(files.os, where, boom)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write_text(target, "new: 2\n" * 1000)
    assert target.read_text() == "old: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


class _FailingFile:
    """A file object over ``fd`` whose write fails like a full disk."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        os.write(self.fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")


def test_replacement_keeps_the_permissions_of_the_replaced_file(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("a")
    target.chmod(0o640)
    files.atomic_write_text(target, "b")
    assert target.read_text() == "b" and (target.stat().st_mode & 0o777) == 0o640


def test_save_npz_round_trips(tmp_path):
    files.save_npz(tmp_path / "g.npz", {"steps": np.arange(3), "layer0/h": np.ones((3, 2))})
    arrays, problem = files.load_npz_or_set_aside(tmp_path / "g.npz", required=["steps"])
    assert problem is None and np.array_equal(arrays["steps"], np.arange(3))
    assert arrays["layer0/h"].shape == (3, 2)


# -------------------------------------------------------------------------------------- read_jsonl

GOOD = [{"step": 2, "train/loss": 1.5}, {"step": 4, "train/loss": float("nan")}, {"step": 6, "val/loss": 1.0}]


def _good_lines() -> list[bytes]:
    return [json.dumps(r).encode() for r in GOOD]


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"\x80\xfe\xff random bytes \x00", "not UTF-8 text"),
        (b"this is not json", "not JSON"),
        (b"[1, 2, 3]", "a JSON list, not an object"),
        (b'"a string"', "a JSON str, not an object"),
        (b'{"train/loss": 1.0}', "no integer 'step'"),
        (b'{"step": "4"}', "no integer 'step'"),
        (b'{"step": 4.5}', "no integer 'step'"),
        (b'{"step": true}', "no integer 'step'"),
    ],
)
def test_read_jsonl_keeps_good_records_and_sets_a_damaged_file_aside(tmp_path, bad, reason):
    path = tmp_path / "metrics.jsonl"
    lines = _good_lines()
    original = b"\n".join(lines[:2] + [bad] + lines[2:]) + b"\n"
    path.write_bytes(original)
    records, problem = files.read_jsonl(path)
    assert [r["step"] for r in records] == [2, 4, 6]
    assert problem is not None and "\n" not in problem
    assert "1 damaged line skipped" in problem and f"line 3, {reason}" in problem
    assert "metrics.jsonl.damaged" in problem
    assert not path.exists()
    assert (tmp_path / "metrics.jsonl.damaged").read_bytes() == original


def test_read_jsonl_of_a_good_file_reports_nothing_and_touches_nothing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join(_good_lines()) + b"\n\n")
    records, problem = files.read_jsonl(path)
    assert problem is None and [r["step"] for r in records] == [2, 4, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
    assert files.read_jsonl(tmp_path / "missing.jsonl") == ([], None)


def test_read_jsonl_drops_a_last_line_cut_short_without_setting_the_file_aside(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join(_good_lines()) + b'\n{"step": 8, "train/lo')
    records, problem = files.read_jsonl(path)
    assert [r["step"] for r in records] == [2, 4, 6]
    assert "cut short" in problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_a_second_damaged_file_gets_its_own_name(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for _ in (1, 2):
        path.write_bytes(b"garbage\n" + _good_lines()[0] + b"\n")
        files.read_jsonl(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl.damaged", "metrics.jsonl.damaged-2"]


def test_jsonl_tracker_resumes_over_a_damaged_file_and_keeps_it_aside(tmp_path):
    path = tmp_path / "metrics.jsonl"
    original = b"\n".join(_good_lines()[:2] + [b"\xff\xfe garbage"] + _good_lines()[2:]) + b"\n"
    path.write_bytes(original)
    tracker = JsonlTracker(path, resume_step=4)
    assert [r["step"] for r in tracker.history] == [2, 4]
    assert "damaged line" in tracker.problem
    assert (tmp_path / "metrics.jsonl.damaged").read_bytes() == original
    tracker.log(6, {"train/loss": np.float32(0.5)})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6] and records[-1]["train/loss"] == 0.5


def test_jsonl_tracker_cuts_back_to_the_resumed_step_on_a_good_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join(_good_lines()) + b"\n")
    tracker = JsonlTracker(path, resume_step=2)
    assert tracker.problem is None
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


# ---------------------------------------------------------------------------------- damaged .npz


def _write_good_npz(path: Path) -> None:
    np.savez(path, steps=np.arange(4), **{"layer0/h": np.ones((4, 3))})


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "pickled", "missing key"])
def test_a_damaged_npz_is_set_aside_and_reported(tmp_path, damage):
    path = tmp_path / "gradnorms.npz"
    _write_good_npz(path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(500))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickled":
        np.savez(path, steps=np.array([{"a": 1}], dtype=object))
    else:
        np.savez(path, other=np.arange(3))
    original = path.read_bytes()
    arrays, problem = files.load_npz_or_set_aside(path, required=["steps"])
    assert arrays is None
    assert problem.startswith(f"{path} is damaged") and "\n" not in problem
    assert "gradnorms.npz.damaged" in problem
    assert not path.exists()
    assert (tmp_path / "gradnorms.npz.damaged").read_bytes() == original


def test_a_good_or_missing_npz_is_not_set_aside(tmp_path):
    assert files.load_npz_or_set_aside(tmp_path / "gradnorms.npz") == (None, None)
    _write_good_npz(tmp_path / "gradnorms.npz")
    arrays, problem = files.load_npz_or_set_aside(tmp_path / "gradnorms.npz", required=["steps"])
    assert problem is None and sorted(arrays) == ["layer0/h", "steps"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradnorms.npz"]


def test_set_aside_renames_directories_and_never_overwrites(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    (tmp_path / "metrics.jsonl.damaged").write_text("older damage")
    metrics.write_text("history")
    moved = files.set_aside(metrics)
    assert moved.name == "metrics.jsonl.damaged-2" and moved.read_text() == "history"
    assert (tmp_path / "metrics.jsonl.damaged").read_text() == "older damage"
    step = tmp_path / "4"
    step.mkdir()
    (step / "x").write_text("array")
    moved = files.set_aside(step)
    assert moved.name == "4.damaged" and (moved / "x").read_text() == "array" and not step.exists()


# -------------------------------------------------------------------------------------- JSON


def test_json_safe_replaces_non_finite_values_and_names_their_keys():
    summary = {
        "step": 4,
        "val/loss": float("nan"),
        "test/loss": np.float32("inf"),
        "val/best_loss": 1.25,
        "data": {"curve": [1.0, -float("inf")], "name": "x"},
        "n": np.int64(3),
        "ok": True,
        "arr": np.array([0.5, np.nan]),
    }
    safe = files.json_safe(summary)
    assert safe["val/loss"] is None and safe["test/loss"] is None and safe["data"]["curve"] == [1.0, None]
    assert safe["nonfinite_keys"] == ["arr.1", "data.curve.1", "test/loss", "val/loss"]
    assert safe["n"] == 3 and safe["ok"] is True and safe["val/best_loss"] == 1.25
    json.dumps(safe, allow_nan=False)
    assert "nonfinite_keys" not in files.json_safe({"step": 1, "loss": 0.5})


def test_write_json_never_writes_nan_or_infinity(tmp_path):
    files.write_json(tmp_path / "summary.json", {"step": 4, "val/loss": float("nan"), "where": tmp_path})
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert loaded == {"step": 4, "val/loss": None, "where": str(tmp_path), "nonfinite_keys": ["val/loss"]}
