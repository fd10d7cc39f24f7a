"""File helpers for the run directory: writes that a crash cannot leave half done, that never follow a
symbolic link, and reads of side files that survive damage without erasing what was there.

Writing:

- :func:`atomic_write_text` / :func:`atomic_write_bytes` replace a file as a whole (a reader, or a run
  killed mid-write, sees the old file or the new one), through a temporary file with an unpredictable
  name beside it; :func:`write_json` does so for JSON that holds no ``NaN``/``Infinity``
  (:func:`json_safe`); :func:`save_npz` for a NumPy ``.npz``.
- :func:`append_text` appends (``metrics.jsonl``) without following a symbolic link.
- All of them refuse, with :class:`UnsafePathError`, a target that is a symbolic link, and, when
  ``root`` (the run directory) is given, a symbolic link anywhere between ``root`` and the target.

Reading side files that may be damaged (a crash, a full disk, a careless edit):

- :func:`read_jsonl` keeps the good records of a JSONL file and sets a damaged file aside;
- :func:`load_npz_or_set_aside` does the same for an ``.npz``;
- :func:`set_aside` renames a file or directory to a free ``<name>.damaged`` / ``<name>.damaged-<n>``,
  never deleting or overwriting anything; :func:`set_aside_history` does so for a run's history files
  when it must start again from step 0.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

NONFINITE_KEY = "nonfinite_keys"


class UnsafePathError(ValueError):
    """A write target that is, or lies under, a symbolic link; the message is one line naming it."""


# --------------------------------------------------------------------------------------------- checks


def nearest_existing(path: str | Path) -> Path:
    """``path`` itself if it exists, else its nearest ancestor that does: where making it would start."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_no_symlink(path: str | Path, root: str | Path | None = None) -> Path:
    """``path`` as a Path, after checking that it is not a symbolic link and, if ``root`` is given,
    that no directory between ``root`` (itself not checked: a run directory may be a link to scratch
    space) and ``path`` is one. Raises :class:`UnsafePathError` naming the link."""
    path = Path(path)
    if path.is_symlink():
        raise UnsafePathError(
            f"{path} is a symbolic link; refusing to write through it (valid: a regular file or no file)"
        )
    if root is not None:
        root_abs = Path(os.path.abspath(root))
        parent = Path(os.path.abspath(path.parent))
        try:
            parts = parent.relative_to(root_abs).parts
        except ValueError:
            raise UnsafePathError(f"{path} is not inside the run directory {root}") from None
        current = root_abs
        for part in parts:
            current = current / part
            if current.is_symlink():
                raise UnsafePathError(
                    f"{current} is a symbolic link inside the run directory {root}; "
                    f"refusing to write {path.name} through it (valid: a real directory)"
                )
    return path


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (a rename) to disk where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- writes


def atomic_write_bytes(path: str | Path, data: bytes, *, root: str | Path | None = None) -> None:
    """Replace ``path`` with ``data`` so that a reader, or a run killed mid-write, sees either the old
    file or the new one, never a mix.

    The bytes go to a new temporary file with an unpredictable name (``.<name>.<random>.tmp``) in the
    same directory, are flushed to disk, and the temporary file is renamed over ``path``. The new file
    keeps the permissions of the file it replaces (a new file gets the usual ``0666 & ~umask``).
    Raises :class:`UnsafePathError` if ``path`` is a symbolic link, or a directory between ``root``
    and it is one (see :func:`check_no_symlink`). On any failure the temporary file is removed and
    ``path`` is left as it was."""
    path = check_no_symlink(path, root)
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        check_no_symlink(path, root)  # a link made while writing is refused too
        os.replace(tmp, path)  # replaces a directory entry; never follows a link at ``path``
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, *, root: str | Path | None = None) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), root=root)


def append_text(path: str | Path, text: str, *, root: str | Path | None = None) -> None:
    """Append ``text`` (UTF-8) to ``path``, creating it if missing, in one ``write`` of O_APPEND.

    Opens with ``O_NOFOLLOW``: a symbolic link at ``path`` is refused with :class:`UnsafePathError`
    (the link's target is not touched), as is anything but a regular file (a FIFO, a device)."""
    path = check_no_symlink(path, root)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        if path.is_symlink():
            raise UnsafePathError(
                f"{path} is a symbolic link; refusing to write through it (valid: a regular file or no file)"
            ) from None
        raise UnsafePathError(
            f"{path} cannot be opened for appending ({err.strerror}); valid: a regular file or no file"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(f"{path} is not a regular file; refusing to append to it")
        data = memoryview(text.encode("utf-8"))
        while data:
            written = os.write(fd, data)
            data = data[written:]
    finally:
        os.close(fd)


def save_npz(path: str | Path, arrays: Mapping[str, Any], *, root: str | Path | None = None) -> None:
    """``numpy.savez`` of ``arrays`` written with :func:`atomic_write_bytes`."""
    buffer = io.BytesIO()
    np.savez(buffer, **{str(k): np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue(), root=root)


# ---------------------------------------------------------------------------------------------- JSON


def json_safe(obj: Any, *, record_key: str = NONFINITE_KEY) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts.

    Non-finite floats (NaN, +-Infinity, also NumPy ones) become ``None``; NumPy scalars and arrays
    become Python numbers and lists; mappings get string keys; anything else that JSON has no type
    for becomes ``str(value)``. If ``obj`` is a mapping and a value was not finite, the copy gets
    ``record_key`` (``"nonfinite_keys"``): the sorted paths of those values, a nested key or list
    index joined to its parent by ``.`` (``"test/loss"``, ``"curves.3"``), merged with any list
    already under ``record_key``."""
    found: list[str] = []

    def clean(value: Any, where: str) -> Any:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            found.append(where)
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{where}.{i}" if where else str(i)) for i, v in enumerate(value)]
        return str(value)

    out = clean(obj, "")
    if isinstance(out, dict) and found:
        previous = out.get(record_key)
        previous = [str(k) for k in previous] if isinstance(previous, list) else []
        out[record_key] = sorted(set(previous) | set(found))
    return out


def write_json(path: str | Path, obj: Any, *, root: str | Path | None = None, indent: int | None = 2) -> None:
    """Write ``json_safe(obj)`` as JSON (never ``NaN``/``Infinity``: ``allow_nan=False``) with
    :func:`atomic_write_text`; non-finite values are ``null`` and listed under ``nonfinite_keys``."""
    text = json.dumps(json_safe(obj), indent=indent, allow_nan=False)
    atomic_write_text(path, text + "\n", root=root)


# ---------------------------------------------------------------------------------- damaged side files


def set_aside(path: str | Path, suffix: str = "damaged") -> Path:
    """Rename the file or directory ``path`` to ``<name>.<suffix>`` (``<name>.<suffix>-2``, ... if that
    is taken) in the same directory, never overwriting anything, and return the new path."""
    path = Path(path)
    n = 1
    while True:
        target = path.with_name(f"{path.name}.{suffix}" + (f"-{n}" if n > 1 else ""))
        if not target.exists() and not target.is_symlink():
            if path.is_dir() and not path.is_symlink():
                try:
                    target.mkdir()  # claim the name; a rename onto an empty directory replaces it
                except FileExistsError:
                    n += 1
                    continue
                os.rename(path, target)
                return target
            try:
                os.link(path, target, follow_symlinks=False)  # fails if the name was taken meanwhile
            except FileExistsError:
                n += 1
                continue
            except OSError:  # no hard links on this file system: a checked rename
                if target.exists():
                    n += 1
                    continue
                os.rename(path, target)
                return target
            os.unlink(path)
            return target
        n += 1


def set_aside_history(run_dir: str | Path, names: Iterable[str], suffix: str = "damaged") -> dict[str, Path]:
    """Set aside (:func:`set_aside`) each of ``names`` that exists in ``run_dir``; returns
    {name: new path}. For a run that must start again from step 0 although it has history (every
    checkpoint damaged, or a start over asked for): its metrics, samples and summary are kept as
    ``<name>.<suffix>`` instead of being cut back to nothing."""
    run_dir = Path(run_dir)
    moved: dict[str, Path] = {}
    for name in names:
        path = run_dir / name
        if path.exists() or path.is_symlink():
            moved[name] = set_aside(path, suffix)
    return moved


def _jsonl_reason(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a good line, else (None, why it is not)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        record = json.loads(line)
    except ValueError:
        return None, "not JSON"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not an object"
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        return None, "no integer 'step'"
    return record, None


def read_jsonl(path: str | Path, *, set_aside_damaged: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """The records of a JSONL file such as ``metrics.jsonl``, and a one-line problem report or None.

    A good line is UTF-8 JSON of an object with an integer ``step``; blank lines are skipped. A last
    line without its newline that is not good was cut short by a crash: it is dropped and reported,
    and the file is not otherwise touched. Any other bad line (random bytes, text that is not JSON,
    JSON that is not an object or has no integer ``step``) is dropped and, with
    ``set_aside_damaged``, the file as it was is renamed by :func:`set_aside` (nothing is deleted;
    the caller writes the good records back). A missing file is ``([], None)``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    if complete:
        lines = lines[:-1]
    records: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    cut_short = False
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        record, reason = _jsonl_reason(raw)
        if record is not None:
            records.append(record)
        elif number == len(lines) and not complete:
            cut_short = True
        else:
            bad.append((number, reason or "bad"))
    if not bad:
        if cut_short:
            return records, f"{path}: dropped its last line, cut short (no newline, not a whole record)"
        return records, None
    first_line, first_reason = bad[0]
    report = (
        f"{path}: {len(bad)} damaged line{'s' if len(bad) != 1 else ''} skipped "
        f"(first: line {first_line}, {first_reason}), {len(records)} kept"
    )
    if set_aside_damaged:
        moved = set_aside(path)
        report += f"; the file as it was is kept as {moved.name}"
    return records, report


def load_npz_or_set_aside(
    path: str | Path, *, required: Iterable[str] = ()
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The arrays of an ``.npz`` side file (such as ``gradnorms.npz``), read whole, and None; or, if
    the file cannot be read (truncated, random bytes, pickled objects, a ``required`` key missing),
    None and a one-line problem report, after renaming the file by :func:`set_aside` (never deleted).
    A missing file is ``(None, None)``."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: np.asarray(saved[key]) for key in saved.files}
        missing = [key for key in required if key not in arrays]
        if missing:
            raise KeyError(f"no {missing[0]!r} array")
    except Exception as err:  # zipfile, numpy and OS errors of many types for a damaged file
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        moved = set_aside(path)
        return None, f"{path} is damaged ({reason}); set aside as {moved.name}, starting it afresh"
    return arrays, None
