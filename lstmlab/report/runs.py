"""The runs a report reads (run, sweep and search directories) and the metric it ranks them by: its
direction comes from the task that declares it (:mod:`lstmlab.tasks`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lstmlab.io.rundir import CONFIG, JOB, SUMMARY, RunDir, RunRecord, SweepDir, load_run
from lstmlab.report import results


def _config_from_overrides(overrides: list[str], compose: Callable[[list[str]], dict] | None) -> dict[str, Any]:
    """The nested config a job's overrides compose to with ``compose`` (for a job that failed before
    writing ``config.yaml``); the overrides themselves without it, or if they no longer compose."""
    from lstmlab.config import ConfigError, nested

    try:
        if compose is not None:
            return compose(overrides)
    except ConfigError:  # not composable any more
        pass
    pairs = [item.lstrip("+").partition("=") for item in overrides]
    return nested({key: yaml.safe_load(value) if value else None for key, _, value in pairs})


def _run_dirs(path: Path) -> list[Path]:
    """``path`` if it is a run directory, else the run directories below it at any depth (a sweep with
    ``hydra.sweep.subdir=${experiment}/${hydra.job.num}`` nests them); a run's own subdirectories are
    not searched."""
    if RunDir(path).is_run():
        return [path]
    return sorted(run for sub in path.iterdir() if sub.is_dir() for run in _run_dirs(sub))


def find_runs(
    paths: list[Path], skipped: list[str] | None = None, compose: Callable[[list[str]], dict] | None = None
) -> tuple[list[RunRecord], list[Path]]:
    """The runs under ``paths`` (run, sweep and search directories, and results files) and the study
    directories among them (those with ``search.yaml``). A
    run whose records cannot be trusted (a damaged ``config.yaml``) is left out and named in
    ``skipped``; ValueError if that leaves no run. ``compose(overrides)`` gives the config of a job that
    failed before writing its own (the command line passes Hydra's composition)."""
    runs, studies = [], []
    skipped = [] if skipped is None else skipped
    for path in paths:
        if results.is_results_file(path):  # kept results (lstmlab.report.results)
            runs += results.load(path)
            continue
        if path.is_file() and path.suffix == ".db":
            path = path.parent
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such run, sweep or search directory")
        if SweepDir(path).is_search():
            studies.append(path)
        found = _run_dirs(path)
        if not found:
            raise FileNotFoundError(f"{path}: no run directories in it (a run has {CONFIG} or {JOB})")
        for run_path in found:
            run = load_run(run_path)
            if run.problem:
                skipped.append(f"{run.path}: {run.problem}")
                continue
            if not run.config and run.job.get("overrides"):
                run.config = _config_from_overrides(list(run.job["overrides"]), compose)
            runs.append(run)
    if not runs:
        raise ValueError(f"no run to report: {'; '.join(skipped)}")
    return runs, studies


def metric_direction(metric: str, runs: list[RunRecord]) -> str:
    """The direction the runs' task declares for ``metric`` (:attr:`lstmlab.tasks.Task.metrics`; with
    no task recorded, any task's); ValueError for a metric no task declares, which needs ``--direction``."""
    from lstmlab.tasks import declared_metric

    kinds = {r.summary["task"] for r in runs if isinstance(r.summary.get("task"), str)} or {None}
    found = {m.direction for m in (declared_metric(metric, kind) for kind in kinds) if m is not None}
    if len(found) != 1:
        present = _numeric_keys(runs)
        known = [k for k in present if any(declared_metric(k, kind) for kind in kinds)]
        raise ValueError(
            f"--metric {metric} is not a metric the runs' task declares, so its direction is unknown; "
            f"give --direction minimize|maximize, or a declared metric: {', '.join(known) or 'none found'}"
        )
    return found.pop()


def check_metric_present(metric: str, runs: list[RunRecord]) -> None:
    """ValueError listing the numeric keys of the runs' summaries if no run has ``metric``."""
    if not any(_is_number(r.summary.get(metric)) for r in runs):
        present = _numeric_keys(runs)
        raise ValueError(f"--metric {metric} is in no run's {SUMMARY}; valid: {', '.join(present) or 'none'}")


def _numeric_keys(runs: list[RunRecord]) -> list[str]:
    """The keys with a number in some run's summary, sorted."""
    return sorted({k for r in runs for k, v in r.summary.items() if _is_number(v)})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
