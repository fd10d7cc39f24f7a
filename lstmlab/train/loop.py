"""The training loop: ``train_and_evaluate(config, run_dir)``, callable from Python without the CLI.

:func:`lstmlab.train.setup.setup` builds and checks everything (writing nothing); then the loop steps
and after every step calls the hooks of :mod:`lstmlab.train.hooks` that are due (metrics, evaluation,
samples, log, checkpoint, plots). Batches and dropout keys are pure functions of (seed, step), so a run
resumed from a checkpoint continues bit for bit where it stopped, whether it stopped cleanly, on
SIGTERM/SIGINT (a checkpoint is saved, then :class:`Preempted` is raised) or was killed (it goes back
to the newest complete checkpoint; metrics.jsonl and samples.txt drop what came after).

One process writes a run directory at a time: process 0 holds its lock (:mod:`lstmlab.io.lock`) from
before it reads the checkpoints to the end of the run. A resume that would change a key altering the
run's trajectory is refused unless the key is in ``resume.allow_changes``
(:func:`lstmlab.train.setup.check_resume`); allowed changes go to ``resume_changes.jsonl`` with their
step. If every checkpoint is damaged, the run starts again from step 0 and its history files are kept
as ``<name>.damaged``. Under ``trainer.nonfinite=skip`` a run that skipped more than
``trainer.max_skipped_fraction`` of its updates raises :class:`TooManySkipped` after writing its summary.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jax

from lstmlab.config import Config
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.io.rundir import CONFIG, SUMMARY
from lstmlab.io.trackers import Trackers, WandbTracker
from lstmlab.train import distributed
from lstmlab.train.hooks import Context, Hook, NonFiniteError, Preempted, Step, default_hooks
from lstmlab.train.setup import setup
from lstmlab.train.signals import StopSignals

log = logging.getLogger(__name__)


class TooManySkipped(NonFiniteError):
    """``trainer.nonfinite=skip`` skipped more than ``trainer.max_skipped_fraction`` of the updates."""


def os_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err`` (itself, its cause or context; orbax and tensorstore wrap a full disk in
    their own types, keeping only its message), or None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        text = str(current)
        for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            if os.strerror(code) in text:
                return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


class RunStopped(RuntimeError):
    """The run could not go on (e.g. the disk is full); its checkpoints so far are intact and running
    the same command again resumes it. The message is one line."""


def loop(ctx: Context, hooks: Sequence[Hook]) -> dict[str, Any]:
    """Train from ``ctx.run.start`` to ``trainer.max_steps``, calling the hooks due after each step;
    returns the summary the hooks fill in at the end."""
    run, max_steps = ctx.run, ctx.run.config.trainer.max_steps
    state = run.state
    with StopSignals() as stop:
        for number in range(run.start + 1, max_steps + 1):
            state, metrics = run.train_step(state, run.batch(number - 1))
            if run.one_step_in_flight:
                jax.block_until_ready(metrics)
            step = Step(
                number, state, metrics, final=number == max_steps, stopping=distributed.stop_signal(number, stop.signal)
            )  # the same on every process
            for hook in hooks:
                if hook.due(step):
                    hook(step)
            if step.stopping:
                raise Preempted(step.stopping, number, ctx.checkpointer.directory)
    summary: dict[str, Any] = {"step": int(state["step"])}
    for hook in hooks:
        hook.finish(state, summary)
    summary.update(
        {"train/skipped": int(state["skipped"]), "data": run.spec.info, "devices": int(run.mesh.devices.size)}
    )
    return summary


def train_and_evaluate(
    config: Config,
    run_dir: str | Path,
    *,
    hooks: Sequence[Hook] = (),
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming from its latest checkpoint) and evaluate; returns the
    summary (also written to ``run_dir/summary.json``).

    ``hooks``: extra :class:`~lstmlab.train.hooks.Hook` objects, called after each step when due.
    ``on_evaluate(step, metrics)``: called after each evaluation with the validation metrics just
    logged (``val/loss``, ...); what it raises propagates once the trackers are finished.
    ``notify(line)``: told "resuming from step N", "already finished at step N" and the reports of
    damaged files set aside (the command line prints them on stderr).

    Raises ConfigError for bad input before anything is written (also a resume that changes a key
    altering the run, see :func:`lstmlab.train.setup.check_resume`), RunLockedError if another process
    writes ``run_dir``, UnsafePathError for a symbolic link in it, NonFiniteError for a non-finite loss
    or gradient norm under ``trainer.nonfinite=stop`` (:class:`TooManySkipped` past
    ``trainer.max_skipped_fraction`` under ``skip``), Preempted after SIGTERM/SIGINT (checkpoint
    saved), :class:`RunStopped` when a write fails mid-run (e.g. disk full)."""
    inform = notify or (lambda line: log.info("%s", line))  # progress of the run
    warn = notify or (lambda line: log.warning("%s", line))  # damaged files set aside
    run = setup(config, run_dir, lock=True)
    rundir, primary = run.rundir, distributed.is_primary()
    try:
        if run.finished is not None:
            if primary:
                inform(
                    f"already finished at step {run.start} (trainer.max_steps={config.trainer.max_steps}); "
                    f"summary: {rundir.path / SUMMARY}"
                )
            return run.finished
        return _train(run, hooks, on_evaluate, inform, warn, notify_problems=notify is not None)
    finally:
        if run.lock is not None:
            run.lock.release()


def _train(
    run,
    hooks: Sequence[Hook],
    on_evaluate: Callable[[int, dict[str, float]], None] | None,
    inform: Callable[[str], None],
    warn: Callable[[str], None],
    *,
    notify_problems: bool = False,
) -> dict[str, Any]:
    config, rundir, primary = run.config, run.rundir, distributed.is_primary()
    resolved = asdict(config)  # after setup, which fits model.hidden_size to model.param_budget
    if primary:
        rundir.create()
    checkpointer = Checkpointer(rundir.checkpoints, keep=config.checkpoint.keep, keep_best=config.checkpoint.keep_best)
    metrics, trackers, exit_code = None, Trackers(), 1
    try:
        if primary:
            for step, report in run.damaged.items():
                moved = checkpointer.set_aside(step)
                warn(
                    f"{report}; moved to {moved.name}; resuming from "
                    f"{f'step {run.start}' if run.start else 'the start'}"
                )
            if not run.start and (run.damaged or config.resume.start_over):  # keep the history, never erase it
                suffix = "damaged" if run.damaged else "previous"
                for name, moved in rundir.set_aside_history(suffix).items():
                    warn(f"{rundir.path / name} kept as {moved.name} (starting again from step 0)")
            if run.start:
                inform(f"resuming from step {run.start} of {rundir.checkpoints}")
            if run.changes:
                rundir.record_changes(run.start, run.changes)
                inform(
                    "changed on resume at step {}: {}".format(
                        run.start, ", ".join(f"{k}={a!r} -> {b!r}" for k, (a, b) in run.changes.items())
                    )
                )
            if run.config_disagrees:  # the checkpoint's record is the truth; the file is kept, not erased
                moved = rundir.set_aside_config()
                warn(f"{rundir.path / CONFIG} disagreed with the checkpoint's record of the run; kept as {moved.name}")
            rundir.write_config(resolved)
            metrics = rundir.metrics(resume_step=run.start)
            if metrics.problem and notify_problems:  # else JsonlTracker has logged it
                warn(metrics.problem)
            rundir.cut_samples(run.start)
            trackers = Trackers(metrics)
            wandb = config.logger.wandb
            if wandb.resolved_mode() != "disabled":
                trackers.trackers.append(
                    WandbTracker(
                        rundir.path,
                        resolved,
                        mode=wandb.resolved_mode(),
                        project=wandb.project,
                        entity=wandb.entity,
                        tags=list(wandb.tags),
                        name=rundir.name,
                    )
                )
        ctx = Context(run, trackers, checkpointer, metrics, primary)
        try:
            summary = loop(ctx, default_hooks(ctx, tuple(hooks), on_evaluate))
        except Exception as caught:
            err = os_error(caught)
            if err is None:
                raise
            last = checkpointer.latest_step()
            remedy = "free the space" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "fix the cause"
            raise RunStopped(
                f"{err.strerror or err} writing {err.filename or rundir.path}; the run stopped; "
                f"last checkpoint: {f'step {last}' if last is not None else 'none'} "
                f"in {rundir.checkpoints}; {remedy} and run the same command to resume"
            ) from err
        last = checkpointer.latest_step()
        summary["checkpoint_bytes"] = checkpointer.step_size(last) if last is not None else 0
        if primary:
            rundir.write_summary(summary)
        trackers.summary({k: v for k, v in summary.items() if k != "data"})
        skipped, limit = int(summary.get("train/skipped", 0)), config.trainer.max_skipped_fraction
        if skipped and skipped > limit * config.trainer.max_steps:
            raise TooManySkipped(
                f"{skipped} of {config.trainer.max_steps} updates were skipped as non-finite "
                f"(trainer.nonfinite=skip), more than trainer.max_skipped_fraction={limit}; "
                "the run is not trustworthy: lower optim.lr or use gradient clipping (optim.clip)"
            )
        exit_code = 0
        return summary
    finally:
        trackers.finish(exit_code)
        checkpointer.close()
