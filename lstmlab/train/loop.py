"""The training loop: ``train_and_evaluate(config, run_dir)``, callable from Python without the CLI.

:func:`lstmlab.train.setup.setup` builds and checks everything (writing nothing); then the loop steps
and after every step calls the hooks of :mod:`lstmlab.train.hooks` that are due (metrics, evaluation,
samples, log, checkpoint, plots). Batches and dropout keys are pure functions of (seed, step), so a run
resumed from a checkpoint continues bit for bit where it stopped, whether it stopped cleanly, on
SIGTERM/SIGINT (a checkpoint is saved, then :class:`Preempted` is raised) or was killed (it goes back
to the newest complete checkpoint; metrics.jsonl and samples.txt drop what came after).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import jax

from lstmlab.config import Config
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.io.trackers import Trackers, WandbTracker
from lstmlab.train import distributed
from lstmlab.train.hooks import Context, Hook, Preempted, Step, default_hooks
from lstmlab.train.setup import setup
from lstmlab.train.signals import StopSignals

log = logging.getLogger(__name__)


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
            step = Step(number, state, metrics, final=number == max_steps,
                        stopping=distributed.stop_signal(number, stop.signal))  # the same on every process
            for hook in hooks:
                if hook.due(step):
                    hook(step)
            if step.stopping:
                raise Preempted(step.stopping, number, ctx.checkpointer.directory)
    summary: dict[str, Any] = {"step": int(state["step"])}
    for hook in hooks:
        hook.finish(state, summary)
    summary.update({"train/skipped": int(state["skipped"]), "data": run.spec.info,
                    "devices": int(run.mesh.devices.size)})
    return summary


def train_and_evaluate(config: Config, run_dir: str | Path, *, config_dict: dict | None = None,
                       hooks: Sequence[Hook] = (),
                       on_evaluate: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming from its latest checkpoint) and evaluate; returns the
    summary (also written to ``run_dir/summary.json``).

    ``config_dict``: the resolved config as written to ``config.yaml`` (default: ``config`` itself).
    ``hooks``: extra :class:`~lstmlab.train.hooks.Hook` objects, called after each step when due.
    ``on_evaluate(step, metrics)``: called after each evaluation with the validation metrics just
    logged (``val/loss``, ...); what it raises propagates once the trackers are finished.

    Raises ConfigError for bad input before anything is written, NonFiniteError for a non-finite loss
    or gradient under ``trainer.nonfinite=stop``, Preempted after SIGTERM/SIGINT (checkpoint saved)."""
    run = setup(config, run_dir)
    rundir, primary = run.rundir, distributed.is_primary()
    if primary:
        rundir.create()
    checkpointer = Checkpointer(rundir.checkpoints, keep=config.checkpoint.keep,
                                keep_best=config.checkpoint.keep_best)
    metrics, trackers, exit_code = None, Trackers(), 1
    try:
        if primary:
            for step, report in run.damaged.items():
                moved = checkpointer.set_aside(step)
                log.warning("%s; moved to %s; resuming from %s", report, moved.name,
                            f"step {run.start}" if run.start else "the start")
            rundir.write_config(config_dict if config_dict is not None else asdict(config))
            metrics = rundir.metrics(resume_step=run.start)
            rundir.cut_samples(run.start)
            trackers = Trackers(metrics)
            wandb = config.logger.wandb
            if wandb.resolved_mode() != "disabled":
                trackers.trackers.append(WandbTracker(
                    rundir.path, config_dict or asdict(config), mode=wandb.resolved_mode(), project=wandb.project,
                    entity=wandb.entity, tags=list(wandb.tags), name=rundir.name))
        ctx = Context(run, trackers, checkpointer, metrics, primary)
        summary = loop(ctx, default_hooks(ctx, tuple(hooks), on_evaluate))
        if primary:
            rundir.write_summary(summary)
        trackers.summary({k: v for k, v in summary.items() if k != "data"})
        exit_code = 0
        return summary
    finally:
        trackers.finish(exit_code)
        checkpointer.close()
