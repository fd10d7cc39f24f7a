"""Grids: the jobs of a Hydra multirun (``python -m lstmlab +experiment=NAME -m cell=lstm,gru seed=0,1``).

Every job is an ordinary run directory under the sweep directory (``hydra.sweep.dir``), with two more
files: ``overrides.yaml`` (the job's own overrides) and ``job.json`` (job number, overrides, status,
wall seconds, the error of a failed job; the traceback goes to ``error.txt``). A failing job is recorded
and the next one runs; the sweep directory's ``jobs.csv`` (job number, overrides, status, seconds,
validation metrics) is rewritten after every job and at the end of the sweep, where
:class:`SweepCallback` also ends the command with exit status 1 if any job failed. All jobs of a sweep
log to one wandb group, named after the sweep directory. The launcher (basic, ``parallel`` or ``slurm``,
``conf/hydra/launcher/``) decides where and how many jobs run at once; nothing here schedules.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from lstmlab.io.rundir import RunDir, SweepDir, find_jobs

STATUSES = ("running", "completed", "failed", "pruned", "interrupted")


def in_multirun() -> bool:
    """Whether the current Hydra task is a job of a multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def wandb_group(sweep_dir: str | Path) -> str:
    """The wandb group of a sweep's jobs: the last three parts of its directory
    (``vowels/multirun/2026-11-30_11-20-00`` for the default ``runs/vowels/multirun/...``)."""
    return "/".join(Path(sweep_dir).absolute().parts[-3:])


def error_line(err: BaseException) -> str:
    """One line for a job's failure. A :class:`SystemExit` from the CLI's error path carries the
    original error as its context."""
    if isinstance(err, SystemExit) and err.__context__ is not None:
        err = err.__context__
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"


def record_job(run_dir: Path, record: dict[str, Any]) -> None:
    """Write the job's record (``job.json``, and its ``overrides.yaml``) into ``run_dir``."""
    RunDir(run_dir).write_job(record)


def run_job(task: Callable[[Any], Any], cfg: Any) -> Any:
    """Run one multirun job, ``task(cfg)``, recording its overrides, status and wall time in its run
    directory and the sweep's ``jobs.csv``. An error (bad input, a non-finite stop, a crash) is recorded
    and the job returns None, so the launcher goes on with the next job; a signal (exit status >= 128)
    still stops the sweep."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep_dir = Path(hc.sweep.dir)
    record: dict[str, Any] = {
        "job": int(hc.job.num),
        "overrides": list(hc.overrides.task),
        "status": "running",
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }
    os.environ.setdefault("WANDB_RUN_GROUP", wandb_group(sweep_dir))
    record_job(run_dir, record)
    start = time.perf_counter()
    try:
        result = task(cfg)
        record["status"] = "completed"
        return result
    except BaseException as err:
        code = err.code if isinstance(err, SystemExit) else None
        signalled = isinstance(err, KeyboardInterrupt) or (isinstance(code, int) and code >= 128)
        record["status"] = "interrupted" if signalled else "failed"
        record["error"] = error_line(err)
        if isinstance(code, int):
            record["exit_code"] = code
        RunDir(run_dir).write_error(
            record["error"]
            + "\n\n"
            + "".join(
                traceback.format_exception(err.__context__ if isinstance(err, SystemExit) and err.__context__ else err)
            )
        )
        print(f"lstmlab: job {record['job']} failed: {record['error']}", file=sys.stderr)
        if signalled:
            raise
        return None
    finally:
        record["seconds"] = round(time.perf_counter() - start, 3)
        record_job(run_dir, record)
        write_jobs_csv(sweep_dir)


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The jobs under ``sweep_dir`` (directories with a ``job.json`` at any depth, so a nested
    ``hydra.sweep.subdir`` such as ``${experiment}/${hydra.job.num}`` works), by job number, each with the
    validation metrics of its ``summary.json``."""
    jobs = []
    for run in find_jobs(sweep_dir):
        record = run.read_job()
        if not record:  # damaged or being written
            continue
        values = run.read_summary() or {}
        record.update({k: v for k, v in values.items() if k.startswith("val/") and isinstance(v, (int, float))})
        record["dir"] = run.path.relative_to(Path(sweep_dir).absolute()).as_posix()
        jobs.append(record)
    return sorted(jobs, key=lambda r: (r.get("job", 1 << 30), r["dir"]))


def write_jobs_csv(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Rewrite ``sweep_dir/jobs.csv`` from the job directories; returns the jobs."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    metrics = sorted({k for job in jobs for k in job if k.startswith("val/")})
    columns = ["job", "dir", "overrides", "status", "seconds", *metrics, "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow({**job, "overrides": " ".join(job.get("overrides", []))})
    SweepDir(sweep_dir).write_jobs_table(buffer.getvalue())
    return jobs


class SweepCallback(Callback):
    """Hydra callback (``hydra.callbacks.lstmlab_sweep`` in ``conf/config.yaml``): at the end of a
    multirun, write ``jobs.csv`` once more and, if any job failed, name the failures on stderr and end
    with exit status 1 (the other jobs have run)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        jobs = write_jobs_csv(sweep_dir)
        failed = [job for job in jobs if job.get("status") != "completed"]
        print(
            f"lstmlab: {len(jobs) - len(failed)} of {len(jobs)} jobs completed; {SweepDir(sweep_dir).jobs_table}",
            file=sys.stderr,
        )
        if failed:
            for job in failed:
                print(
                    f"lstmlab: job {job.get('job')} ({' '.join(job.get('overrides', []))}) "
                    f"{job.get('status')}: {job.get('error', '')}",
                    file=sys.stderr,
                )
            raise SystemExit(1)
