"""The run directory: this module names every file of a run directory (and of a sweep or search
directory, which holds run directories) and is the one place that reads and writes them; every write
is atomic or an append, and none follows a symbolic link (:mod:`lstmlab.io.files`).

========================= ===========================================================================
``config.yaml``           the resolved config (``dataclasses.asdict`` of the
                          :class:`~lstmlab.config.Config`), rewritten at every start; read back into a
                          ``Config`` by :meth:`RunDir.load_config`
``metrics.jsonl``         one JSON object per logged step (``step`` plus metric names); cut back on resume
``samples.txt``           generated text, one ``=== step N (temperature T) ===`` entry per evaluation; cut
                          back on resume
``summary.json``          the final metrics
``resume_changes.jsonl``  one JSON object per resume that changed a key which alters the run
                          (``+resume.allow_changes``): its step and {key: [before, after]}
``gradnorms.npz``         per-timestep gradient norms (``diagnostics.every``; :mod:`lstmlab.train.gradnorms`)
``decay_rates.md``        the gradient-norm study's table of decay rates (:mod:`lstmlab.study`)
``job.json``              a job of a multirun or a search's trial: number, overrides, status, seconds
``overrides.yaml``        that job's own overrides
``error.txt``             a failed job's error and traceback
``.lock``, ``.lock.owner`` the run's lock (:mod:`lstmlab.io.lock`): one writer per run directory
``checkpoints/``          orbax checkpoints (:mod:`lstmlab.io.checkpoint`)
``plots/``                PNG files (learning curves, the data set's own plots, gradient-norm plots)
``cells/<cell>/``         the gradient-norm study's run directory of each cell
========================= ===========================================================================

A sweep or search directory (:class:`SweepDir`) holds ``jobs.csv`` (a row per job), ``search.yaml``
(the search as it ran) and ``study.db`` (the Optuna study, unless ``search.storage`` names another).

No write follows a symbolic link inside the run directory (:mod:`lstmlab.io.files`);
:meth:`RunDir.check` refuses, before anything is written, a run directory whose entries have the wrong
type (``summary.json`` a directory, ``checkpoints`` a file) or are symbolic links, and
:meth:`RunDir.read_config_checked` one whose ``config.yaml`` cannot be read back.

A run resumed from the checkpoint at step ``s`` drops the lines of ``metrics.jsonl`` and the entries of
``samples.txt`` written after ``s``, so that both files continue without repeated or missing steps.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmlab.config import flat_keys
from lstmlab.io.files import (
    UnsafePathError,
    append_text,
    atomic_write_text,
    load_npz_or_set_aside,
    nearest_existing,
    read_jsonl,
    save_npz,
    set_aside,
    set_aside_history,
    write_json,
)
from lstmlab.io.trackers import JsonlTracker

if TYPE_CHECKING:
    from lstmlab.config import Config

CONFIG, METRICS, SAMPLES, SUMMARY = "config.yaml", "metrics.jsonl", "samples.txt", "summary.json"
CHANGES = "resume_changes.jsonl"
GRADNORMS, DECAY_RATES = "gradnorms.npz", "decay_rates.md"
JOB, OVERRIDES, ERROR = "job.json", "overrides.yaml", "error.txt"
LOCK, LOCK_OWNER = ".lock", ".lock.owner"
CHECKPOINTS, PLOTS, CELLS = "checkpoints", "plots", "cells"
FILES = (CONFIG, METRICS, SAMPLES, SUMMARY, CHANGES, GRADNORMS, LOCK, LOCK_OWNER)
DIRECTORIES = (CHECKPOINTS, PLOTS)
#: the files that hold a run's history: cut back on resume, set aside when it must start from step 0
HISTORY = (METRICS, SAMPLES, SUMMARY, GRADNORMS)
JOBS_CSV, SEARCH, STUDY_DB = "jobs.csv", "search.yaml", "study.db"  # a sweep or search directory


class RunDir:
    """The files of one run directory (see the module docstring). Creating the object writes nothing;
    :meth:`create` makes the directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def plots(self) -> Path:
        return self.path / PLOTS

    @property
    def gradnorms(self) -> Path:
        """``gradnorms.npz``: read with :meth:`read_gradnorms`, written with :meth:`write_gradnorms`."""
        return self.path / GRADNORMS

    @property
    def lock_files(self) -> tuple[Path, Path]:
        """The lock and its owner record (:class:`~lstmlab.io.lock.RunLock`)."""
        return self.path / LOCK, self.path / LOCK_OWNER

    def cell(self, name: str) -> RunDir:
        """The run directory of cell ``name`` inside a gradient-norm study's directory."""
        return RunDir(self.path / CELLS / name)

    def is_run(self) -> bool:
        """Whether the directory holds a run's records (a config, a job record or a summary)."""
        return any((self.path / name).exists() for name in (CONFIG, JOB, SUMMARY))

    @property
    def name(self) -> str:
        return self.path.name

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def remove_if_unused(self) -> bool:
        """Remove the directory if it is empty or holds only the lock of a run that wrote nothing;
        returns whether it was removed (never removes anything else)."""
        lock = self.path / LOCK
        try:
            if [p.name for p in self.path.iterdir()] == [LOCK]:
                lock.unlink()
            self.path.rmdir()  # only ever removes an empty directory
        except OSError:
            return False
        return True

    def check(self) -> None:
        """Raise (one line naming the entry and what is valid) unless the run directory can be written:
        it is a directory or can be made one, it is not itself a symbolic link, it is writable, and each
        entry lstmlab writes is missing or of the right type (files: regular files;
        ``checkpoints``/``plots``: directories) and none, nor anything under ``checkpoints/`` and
        ``plots/``, is a symbolic link. :class:`~lstmlab.io.files.UnsafePathError` for a link or a wrong
        type, ConfigError-like ``ValueError`` otherwise. Reads only."""
        path = self.path
        if path.is_symlink():
            raise UnsafePathError(
                f"run directory {path} is a symbolic link (to {os.readlink(path)}); lstmlab writes through no "
                f"link; valid: a real directory, e.g. hydra.run.dir={path.resolve()}"
            )
        try:
            info = os.stat(path)
        except FileNotFoundError:
            info = None
        except OSError as err:
            raise UnsafePathError(
                f"run directory {path} cannot be used ({err.strerror}); valid: a writable directory (hydra.run.dir)"
            ) from None
        if info is None:
            parent = nearest_existing(path.parent)
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
        for folder in (self.plots, self.checkpoints):
            if not folder.is_dir():
                continue
            for entry in folder.rglob("*"):
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

    def read_config_checked(self) -> dict[str, Any]:
        """The saved ``config.yaml`` as a dict, for reading a finished run; ValueError (one line) unless
        the directory exists and its ``config.yaml`` is plain YAML: a mapping without tags that build
        Python objects (``!!python/object`` and the like)."""
        import yaml

        valid = "valid: a run directory written by python -m lstmlab"
        if not self.path.exists():
            raise ValueError(f"run directory {str(self.path)!r} does not exist; {valid}")
        if not self.path.is_dir():
            raise ValueError(f"{str(self.path)!r} is not a directory; {valid}")
        config_file = self.path / CONFIG
        if not config_file.is_file():
            raise ValueError(f"{config_file} does not exist; {valid}")
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{config_file} is not UTF-8 text") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ValueError(
                f"{config_file} is not plain YAML{where} ({problem}); valid: the {CONFIG} "
                "lstmlab wrote, without Python object tags"
            ) from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file} holds a {type(loaded).__name__}, not a mapping of config keys")
        return loaded

    def load_config(self) -> Config:
        """``config.yaml`` read back into a :class:`~lstmlab.config.Config` (checked first by
        :meth:`read_config_checked`; keys the schema does not know are an OmegaConf error)."""
        from omegaconf import OmegaConf

        from lstmlab.config import Config

        saved = self.read_config_checked()
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), saved))

    def read_summary(self) -> dict[str, Any] | None:
        """The saved ``summary.json``, or None if missing or not a JSON object."""
        try:
            saved = json.loads((self.path / SUMMARY).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def set_aside_config(self) -> Path:
        """Keep ``config.yaml`` as ``config.yaml.damaged`` (a free name; nothing overwritten)."""
        return set_aside(self.path / CONFIG)

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
        return JsonlTracker(self.path / METRICS, resume_step=resume_step)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (its damaged lines left out, the file left as it is)."""
        path = self.path / METRICS
        return read_jsonl(path, set_aside_damaged=False)[0] if path.exists() else []

    def reset_metrics(self) -> None:
        """Remove ``metrics.jsonl`` (a file rebuilt from others, as the gradient-norm study's is)."""
        (self.path / METRICS).unlink(missing_ok=True)

    def set_aside_history(self, suffix: str = "damaged") -> dict[str, Path]:
        """Set aside each history file (:data:`HISTORY`) of a run that must start from step 0 although
        it has history, as ``<name>.<suffix>``; returns {name: new path}."""
        return set_aside_history(self.path, HISTORY, suffix)

    def history(self) -> list[str]:
        """The history files (:data:`HISTORY`) that hold something: a run's records, which a run
        starting from step 0 would overwrite."""
        return [name for name in HISTORY if (self.path / name).is_file() and (self.path / name).stat().st_size > 0]

    def read_gradnorms(self, required: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray] | None, str | None]:
        """(the arrays of ``gradnorms.npz``, None), or (None, a one-line problem) after setting a damaged
        file aside; (None, None) without the file."""
        if not self.gradnorms.exists():
            return None, None
        return load_npz_or_set_aside(self.gradnorms, required=required)

    def write_gradnorms(self, arrays: dict[str, Any]) -> Path:
        save_npz(self.gradnorms, arrays, root=self.path)
        return self.gradnorms

    def write_decay_rates(self, text: str) -> Path:
        path = self.path / DECAY_RATES
        atomic_write_text(path, text, root=self.path)
        return path

    def read_job(self) -> dict[str, Any]:
        """``job.json`` as a dict; {} if missing or damaged."""
        return _read_json(self.path / JOB)

    def write_job(self, record: dict[str, Any]) -> None:
        """``job.json`` (and, the first time, ``overrides.yaml``) of a multirun job or a search's trial."""
        import yaml

        self.create()
        write_json(self.path / JOB, record, root=self.path)
        overrides = self.path / OVERRIDES
        if not overrides.exists():
            dumped = yaml.safe_dump(list(record.get("overrides", [])), default_flow_style=False)
            atomic_write_text(overrides, dumped, root=self.path)

    def write_error(self, text: str) -> None:
        """``error.txt``: a failed job's error line and traceback."""
        atomic_write_text(self.path / ERROR, text, root=self.path)

    def has_error(self) -> bool:
        return (self.path / ERROR).exists()

    def config_age(self) -> float | None:
        """Seconds between writing ``config.yaml`` and ``summary.json`` (a finished run's wall time when
        it has no ``job.json``), or None."""
        config, summary = self.path / CONFIG, self.path / SUMMARY
        if config.exists() and summary.exists():
            return summary.stat().st_mtime - config.stat().st_mtime
        return None

    def cut_samples(self, step: int) -> None:
        """Drop the entries of ``samples.txt`` written after ``step``."""
        path = self.path / SAMPLES
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        cut = next((m.start() for m in re.finditer(r"^=== step (\d+) ", text, flags=re.M) if int(m[1]) > step), None)
        if cut is not None:
            atomic_write_text(path, text[:cut], root=self.path)

    def last_sample(self) -> tuple[str, str] | None:
        """(heading, text) of the last entry of ``samples.txt`` (heading: ``step N (temperature T)``),
        or None without one."""
        try:
            text = (self.path / SAMPLES).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        entries = re.split(r"^=== (step \d+ \(temperature [^)]*\)) ===\n", text, flags=re.M)
        return (entries[-2], entries[-1].rstrip("\n")) if len(entries) >= 3 else None

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    def append_sample(self, step: int, temperature: float, text: str) -> None:
        append_text(self.path / SAMPLES, f"=== step {step} (temperature {temperature}) ===\n{text}\n\n", root=self.path)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """``summary.json``; a value that is not finite is written as null and its key listed under
        ``nonfinite_keys`` (:func:`~lstmlab.io.files.write_json`)."""
        path = self.path / SUMMARY
        write_json(path, summary, root=self.path)
        return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def find_jobs(sweep_dir: str | Path) -> list[RunDir]:
    """The run directories under ``sweep_dir`` with a ``job.json``, at any depth (a nested
    ``hydra.sweep.subdir`` such as ``${experiment}/${hydra.job.num}`` works)."""
    return [RunDir(path.parent) for path in sorted(Path(sweep_dir).rglob(JOB))]


@dataclass
class RunRecord:
    """A run directory as a report reads it."""

    path: Path
    status: str  # completed | failed | pruned | running | interrupted | incomplete
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml, nested ({}: missing or unreadable)
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json
    job: dict[str, Any] = field(default_factory=dict)  # job.json
    seconds: float | None = None
    problem: str | None = None  # why the records cannot be trusted (a damaged config.yaml)

    @cached_property
    def flat(self) -> dict[str, Any]:
        """The config as ``{"optim.lr": 0.001, ...}`` (:func:`lstmlab.config.flat_keys`); computed once,
        on first use."""
        return flat_keys(self.config)


def load_run(path: str | Path) -> RunRecord:
    """A run's records: status from ``job.json`` (else ``summary.json``/``error.txt``), ``config.yaml``
    (``{}`` if missing or unreadable), the summary, and the wall time (``job.json``, else the time
    between ``config.yaml`` and ``summary.json``)."""
    run = RunDir(path)
    job = run.read_job()
    summary = run.read_summary() or {}
    status = job.get("status") or ("completed" if summary else "failed" if run.has_error() else "incomplete")
    seconds = job.get("seconds")
    if seconds is None and summary:
        seconds = run.config_age()
    config, problem = run.read_config(), None
    if config is None and (run.path / CONFIG).exists():
        problem = f"{run.path / CONFIG} is damaged (not a YAML mapping)"
    return RunRecord(run.path, status, config or {}, summary, job, seconds, problem)


class SweepDir:
    """A sweep or search directory: ``jobs.csv``, ``search.yaml``, ``study.db`` and the run
    directories of its jobs."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()

    @property
    def study_db(self) -> Path:
        return self.path / STUDY_DB

    def is_search(self) -> bool:
        return (self.path / SEARCH).exists()

    def read_search(self) -> dict[str, Any]:
        """``search.yaml`` as a dict; ValueError (one line) if it is not a YAML mapping."""
        import yaml

        path = self.path / SEARCH
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ValueError(
                f"{path} cannot be read ({type(err).__name__}); valid: the {SEARCH} a search wrote"
            ) from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a mapping; valid: the {SEARCH} a search wrote")
        return loaded

    def write_search(self, text: str) -> Path:
        path = self.path / SEARCH
        atomic_write_text(path, text, root=self.path)
        return path

    @property
    def jobs_table(self) -> Path:
        return self.path / JOBS_CSV

    def write_jobs_table(self, text: str) -> Path:
        atomic_write_text(self.jobs_table, text, root=self.path)
        return self.jobs_table
