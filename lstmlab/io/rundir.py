"""The run directory: one object owns every file a training run writes at its top level.

=================== =============================================================================
``config.yaml``     the resolved config, rewritten (atomically) at every start
``metrics.jsonl``   one JSON object per logged step (``step`` plus metric names); cut back on resume
``samples.txt``     generated text, one ``=== step N (temperature T) ===`` entry per evaluation; cut
                    back on resume
``summary.json``    the final metrics, written atomically at the end
``plots/``          PNG files (learning curves, the data set's own plots, gradient-norm plots)
``checkpoints/``    orbax checkpoints (:mod:`lstmlab.io.checkpoint`)
``resume_changes``  ``resume_changes.jsonl``: one JSON object per resume that changed a key which alters
                    the run (``+resume.allow_changes``): its step and {key: [before, after]}
``.lock``           the run's lock (:mod:`lstmlab.io.lock`): one writer per run directory
=================== =============================================================================

No write follows a symbolic link inside the run directory (:mod:`lstmlab.io.files`);
:meth:`RunDir.check` refuses, before anything is written, a run directory whose entries have the wrong
type (``summary.json`` a directory, ``checkpoints`` a file) or are symbolic links.

A run resumed from the checkpoint at step ``s`` drops the lines of ``metrics.jsonl`` and the entries of
``samples.txt`` written after ``s``, so that both files continue without repeated or missing steps.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from lstmlab.io.files import UnsafePathError, append_text, atomic_write_text, write_json
from lstmlab.io.trackers import JsonlTracker

CONFIG, METRICS, SAMPLES, SUMMARY = "config.yaml", "metrics.jsonl", "samples.txt", "summary.json"
CHANGES = "resume_changes.jsonl"
FILES = (CONFIG, METRICS, SAMPLES, SUMMARY, CHANGES, "gradnorms.npz", ".lock", ".lock.owner")
DIRECTORIES = ("checkpoints", "plots")


class RunDir:
    """The files of one run directory (see the module docstring). Creating the object writes nothing;
    :meth:`create` makes the directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def name(self) -> str:
        return self.path.name

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        """Raise (one line naming the entry and what is valid) unless the run directory can be written:
        it is a directory or can be made one, it is writable, and each entry lstmlab writes is missing
        or of the right type (files: regular files; ``checkpoints``/``plots``: directories) and none
        is a symbolic link. :class:`~lstmlab.io.files.UnsafePathError` for a link or a wrong type,
        ConfigError-like ``ValueError`` otherwise. Reads only."""
        path = self.path
        try:
            info = os.stat(path)
        except FileNotFoundError:
            info = None
        except OSError as err:
            raise UnsafePathError(
                f"run directory {path} cannot be used ({err.strerror}); valid: a writable directory (hydra.run.dir)"
            ) from None
        if info is None:
            parent = path.parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not parent.is_dir():
                raise UnsafePathError(
                    f"run directory {path} cannot be made: {parent} is a file; "
                    "valid: a writable directory (hydra.run.dir)"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UnsafePathError(
                    f"run directory {path} cannot be made: {parent} is not writable; "
                    "valid: a writable directory (hydra.run.dir)"
                )
            return
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePathError(f"run directory {path} is a file; valid: a directory (hydra.run.dir)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UnsafePathError(f"run directory {path} is not writable; valid: a writable directory (hydra.run.dir)")
        for name in (*FILES, *DIRECTORIES):
            entry = path / name
            try:
                mode = os.lstat(entry).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise UnsafePathError(
                    f"{entry} is a symbolic link; refusing to write through it "
                    "(valid: a regular entry of the run directory; move the link away)"
                )
            want_dir = name in DIRECTORIES
            if want_dir and not stat.S_ISDIR(mode):
                raise UnsafePathError(f"{entry} is not a directory; valid: a directory or nothing (move it away)")
            if not want_dir and not stat.S_ISREG(mode):
                kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
                raise UnsafePathError(f"{entry} is {kind}; valid: a regular file or nothing (move it away)")
        plots = path / "plots"
        if plots.is_dir():
            for entry in plots.iterdir():
                if entry.is_symlink():
                    raise UnsafePathError(
                        f"{entry} is a symbolic link; refusing to write through it (move the link away)"
                    )

    def read_config(self) -> dict[str, Any] | None:
        """The saved ``config.yaml`` as a plain dict, or None if missing or not a YAML mapping."""
        import yaml

        try:
            saved = yaml.safe_load((self.path / CONFIG).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        return saved if isinstance(saved, dict) else None

    def read_summary(self) -> dict[str, Any] | None:
        """The saved ``summary.json``, or None if missing or not a JSON object."""
        try:
            saved = json.loads((self.path / SUMMARY).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def write_config(self, resolved: dict[str, Any]) -> Path:
        """``config.yaml`` from the resolved config (a plain nested dict)."""
        from omegaconf import OmegaConf

        path = self.path / CONFIG
        atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(resolved)), root=self.path)
        return path

    def record_changes(self, step: int, changes: dict[str, tuple[Any, Any]]) -> Path:
        """Append to ``resume_changes.jsonl`` the keys a resume at ``step`` changed (allowed by
        ``resume.allow_changes``): ``{"step": N, "changes": {key: [before, after]}}``."""
        path = self.path / CHANGES
        record = {"step": int(step), "changes": {k: [a, b] for k, (a, b) in changes.items()}}
        append_text(path, json.dumps(record, default=str) + "\n", root=self.path)
        return path

    def metrics(self, resume_step: int = 0) -> JsonlTracker:
        """The ``metrics.jsonl`` tracker, its lines after ``resume_step`` dropped first."""
        return JsonlTracker(self.path, resume_step=resume_step)

    def cut_samples(self, step: int) -> None:
        """Drop the entries of ``samples.txt`` written after ``step``."""
        path = self.path / SAMPLES
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        cut = next((m.start() for m in re.finditer(r"^=== step (\d+) ", text, flags=re.M) if int(m[1]) > step), None)
        if cut is not None:
            atomic_write_text(path, text[:cut], root=self.path)

    def append_sample(self, step: int, temperature: float, text: str) -> None:
        append_text(self.path / SAMPLES, f"=== step {step} (temperature {temperature}) ===\n{text}\n\n", root=self.path)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """``summary.json``; a value that is not finite is written as null and its key listed under
        ``nonfinite_keys`` (:func:`~lstmlab.io.files.write_json`)."""
        path = self.path / SUMMARY
        write_json(path, summary, root=self.path)
        return path
