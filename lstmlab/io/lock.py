"""One writer per run directory: an exclusive, non-blocking lock on ``<run_dir>/.lock``.

    with RunLock(run_dir):
        ...  # the only process writing run_dir

The lock is ``fcntl.flock`` on ``<run_dir>/.lock``, opened without following a symbolic link. The
kernel releases it when the holder's file descriptor closes, which includes the holder dying in any
way (SIGKILL, out of memory, a power cut of the process), so a killed run never blocks the rerun that
resumes it: there is no stale-lock cleanup to get wrong. The ``.lock`` file itself stays (removing
it on release would let two processes lock two different files of the same name).

After acquiring, the holder records ``pid@host`` and its start time in ``<run_dir>/.lock.owner`` so
that a second process can say who holds the run directory (:class:`RunLockedError`); the owner file
is removed on release and overwritten by the next holder if a killed holder left it behind.

``flock`` is reliable on local file systems; on network file systems (NFS) it depends on the server:
there, run one writer per directory by other means as well.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from lstmlab.io.files import UnsafePathError, atomic_write_text, check_no_symlink
from lstmlab.io.rundir import RunDir


class RunLockedError(RuntimeError):
    """Another process holds the run directory's lock; the message is one line naming its PID and
    host (as recorded in ``.lock.owner``)."""


def describe_owner(text: str) -> str:
    """``pid 123 on host h (since 2026-01-01T00:00:00Z)`` from an owner file's ``123@h 2026-...``
    line; a placeholder for an empty or unreadable one (the holder has not written it yet)."""
    fields = text.split()
    if not fields or "@" not in fields[0]:
        return "a process that has not recorded itself yet"
    pid, _, host = fields[0].partition("@")
    since = f" (since {fields[1]})" if len(fields) > 1 else ""
    return f"pid {pid} on host {host}{since}"


class RunLock:
    """Exclusive lock on ``run_dir`` (created if missing) for the life of a context or until
    :meth:`release`. :meth:`acquire` never waits: it raises :class:`RunLockedError` if another
    process, or another :class:`RunLock` in this process, holds the directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path, self.owner_path = RunDir(self.run_dir).lock_files
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this instance holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` (one line: holder's PID, host, start time);
        :class:`~lstmlab.io.files.UnsafePathError` if ``.lock`` or ``.lock.owner`` is a symbolic
        link. Returns self."""
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        check_no_symlink(self.path)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            if self.path.is_symlink():
                raise UnsafePathError(f"{self.path} is a symbolic link; refusing to lock through it") from None
            raise UnsafePathError(f"{self.path} cannot be opened for locking ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"run directory {self.run_dir} is in use by another lstmlab run "
                f"({describe_owner(self._read_owner())}); wait for it to end, or give "
                "another run directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            atomic_write_text(self.owner_path, f"{os.getpid()}@{socket.gethostname()} {started}\n", root=self.run_dir)
        except BaseException:
            self.release()
            raise
        return self

    def _read_owner(self) -> str:
        try:
            fd = os.open(self.owner_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return ""
        try:
            return os.read(fd, 512).decode("utf-8", errors="replace")
        except OSError:
            return ""
        finally:
            os.close(fd)

    def release(self) -> None:
        """Remove the owner record and release the lock; a no-op if not held."""
        if self._fd is None:
            return
        try:
            try:
                if not self.owner_path.is_symlink():
                    self.owner_path.unlink()
            except FileNotFoundError:
                pass
        finally:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
