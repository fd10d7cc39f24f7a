"""Kept results: the compact records of the runs behind a reproduction's tables, kept in the repository.

A results file (``experiments/<paper>/results/NAME.jsonl``) holds one JSON object per run, one per line,
sorted by ``run``::

    {"run": "adding/3", "status": "completed", "seconds": 48.2,
     "config": {...the resolved config, nested, as in config.yaml...},
     "summary": {...summary.json...}}

``run`` is the run directory's path relative to the directory that was kept (a sweep's ``job``
subdirectory, say); ``seconds`` is the run's wall time. No checkpoints, metrics histories or plots are
kept. ``python -m lstmlab.report SWEEP_DIR... --keep FILE`` writes one from run, sweep and search
directories; the report reads a results file wherever it reads a run directory, so every table is
built from the same records whether the runs are on disk or kept.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lstmlab.io.files import atomic_write_text, json_safe
from lstmlab.io.rundir import RunRecord

SUFFIX = ".jsonl"


def is_results_file(path: Path) -> bool:
    return path.suffix == SUFFIX and path.is_file()


def _run_id(run: RunRecord, roots: list[Path]) -> str:
    """The run's path relative to the root it was found under, after that root's name when there are
    several roots (two sweeps both have a job ``0``)."""
    for root in roots:
        try:
            relative = run.path.relative_to(root).as_posix()
        except ValueError:
            continue
        name = relative if relative != "." else run.path.name
        return f"{root.name}/{name}" if len(roots) > 1 and relative != "." else name
    return run.path.name


def keep(runs: list[RunRecord], roots: list[Path], path: Path) -> int:
    """Write ``runs`` (found under ``roots``) to the results file ``path``; returns the number kept.
    ValueError (one line) if two runs would get the same name."""
    records = [
        {
            "run": _run_id(run, [r.absolute() for r in roots]),
            "status": run.status,
            "seconds": None if run.seconds is None else round(float(run.seconds), 1),
            "config": run.config,
            "summary": run.summary,
        }
        for run in runs
    ]
    return write(records, path)


def write(records: list[dict[str, Any]], path: Path) -> int:
    """Write run records (``run``, ``status``, ``seconds``, ``config``, ``summary``, as :func:`load`
    reads them) to the results file ``path``, sorted by ``run``; returns how many. Also for records
    that are not runs of the trainer, such as a benchmark's rows. ValueError (one line) if two records
    have the same name."""
    records = sorted((json_safe(r) for r in records), key=lambda r: r["run"])
    names = [r["run"] for r in records]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"--keep: two runs are both named {twice[0]}; keep each sweep in a file of its own")
    text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return len(records)


def load(path: Path) -> list[RunRecord]:
    """The runs of a results file. ValueError (one line, naming the file and line) for a line that is
    not a run record."""
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not (isinstance(record, dict) and isinstance(record.get("config"), dict)):
                raise ValueError("not a run record")
            name, summary = str(record["run"]), dict(record.get("summary") or {})
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path}:{number}: not a run record ({err}); valid: one JSON object per line with run, status, "
                "config and summary, as --keep writes"
            ) from None
        seconds = record.get("seconds")
        runs.append(
            RunRecord(
                path / name,
                str(record.get("status") or "completed"),
                record["config"],
                {k: (math.nan if v is None else v) for k, v in summary.items()} if summary else {},
                {},
                None if seconds is None else float(seconds),
            )
        )
    if not runs:
        raise ValueError(f"{path}: no runs in it; valid: a results file written by --keep")
    return runs


def matching(
    runs: list[RunRecord], metric: str, where: dict[str, Any], cap: float | None = None, direction: str = "minimize"
) -> list[tuple[RunRecord, float]]:
    """(run, value of ``metric``) of the completed runs whose config matches ``where``. With ``cap``, a
    value worse than it, or not finite (a diverged run), counts as ``cap``; without, a run whose value
    is not finite is left out."""
    from lstmlab.report.tables import _cell, capped

    out = []
    for run in runs:
        if run.status != "completed":
            continue
        if all(str(_cell(run.flat.get(k))) == str(_cell(v)) for k, v in where.items()):
            value = run.summary.get(metric)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if cap is not None:
                value = capped(float(value), cap, direction) if math.isfinite(value) else cap
            if math.isfinite(value):
                out.append((run, float(value)))
    return out


def values(
    runs: list[RunRecord],
    metric: str,
    where: dict[str, Any],
    pair_by: tuple[str, ...] = ("seed",),
    cap: float | None = None,
    direction: str = "minimize",
) -> list[tuple[str, float]]:
    """(the ``pair_by`` keys' values as text, value of ``metric``) of the runs :func:`matching` gives,
    sorted; the keys are what a paired test pairs two configurations' runs by."""
    found = matching(runs, metric, where, cap, direction)
    return sorted(("|".join(repr(run.flat.get(k)) for k in pair_by), value) for run, value in found)
