"""One writer per run directory: a second process is refused with the holder's PID, a SIGKILLed
holder never blocks the rerun. Outcomes are decided by the holder's "locked" line, never by sleeps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from lstmlab.io.files import UnsafePathError
from lstmlab.io.lock import RunLock, RunLockedError

from conftest import cli_env, program


def _holder(run_dir: Path) -> subprocess.Popen:
    """A process that holds ``run_dir``'s lock once it has printed ``locked``."""
    proc = subprocess.Popen(
        program("lock_holder", str(run_dir)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    line = proc.stdout.readline()
    assert line == "locked\n", proc.stderr.read()
    return proc


def _try(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(program("lock_try", str(run_dir)), capture_output=True, text=True, env=cli_env(), timeout=120)


def test_a_second_process_is_refused_with_the_holders_pid_and_host(tmp_path):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    try:
        result = _try(run_dir)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert f"pid {holder.pid} on host {socket.gethostname()}" in lines[0]
        assert str(run_dir) in lines[0]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert _try(run_dir).stdout == "acquired\n"  # released when the holder ended normally


def test_a_sigkilled_holder_does_not_block_the_rerun(tmp_path):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    with pytest.raises(RunLockedError, match=f"pid {holder.pid} "):
        RunLock(run_dir).acquire()
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert (run_dir / ".lock.owner").exists()  # left behind by the killed holder
    with RunLock(run_dir) as lock:
        assert lock.held
        assert (run_dir / ".lock.owner").read_text().startswith(f"{os.getpid()}@")
    assert not (run_dir / ".lock.owner").exists()


def test_two_locks_in_one_process_exclude_each_other_and_release_on_exit(tmp_path):
    first = RunLock(tmp_path)
    with first:
        with pytest.raises(RunLockedError) as caught:
            RunLock(tmp_path).acquire()
        message = str(caught.value)
        assert "\n" not in message and f"pid {os.getpid()} on host" in message
    assert not first.held
    with RunLock(tmp_path):
        pass


def test_an_error_inside_the_context_releases_the_lock(tmp_path):
    with pytest.raises(KeyError):
        with RunLock(tmp_path):
            raise KeyError("boom")
    RunLock(tmp_path).acquire().release()


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(victim)
    with pytest.raises(UnsafePathError, match=".lock is a symbolic link"):
        RunLock(run_dir).acquire()
    assert victim.read_text() == "precious"


def test_an_empty_owner_record_still_gives_a_one_line_refusal(tmp_path):
    with RunLock(tmp_path):
        (tmp_path / ".lock.owner").write_text("")
        with pytest.raises(RunLockedError, match="has not recorded itself yet"):
            RunLock(tmp_path).acquire()
