"""What the training loop does besides stepping, one hook per concern, each on its own schedule:
training metrics, gradient-norm probes, evaluation, sampling, logging, checkpoints, plots.

A hook is any object with the three methods of :class:`Hook`. After every training step the loop
calls, in order, each hook whose ``due(step)`` is true; hooks share what they find through the
:class:`Step` (e.g. :class:`Evaluate` puts the validation metrics into ``step.record``, which
:class:`Log` writes). At the end of the run every hook's ``finish(state, summary)`` may add to the summary.
Extra hooks (``train_and_evaluate(..., hooks=[...])``) run after the built-in ones that fill
``step.record`` and before :class:`Log`, so what they add to the record is logged with the step.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from flax import nnx

from lstmlab.io import plots
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.io.trackers import JsonlTracker, Trackers
from lstmlab.tasks import Task
from lstmlab.train import gradnorms, steps
from lstmlab.train.sample import generate
from lstmlab.train.setup import Run


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or gradient under ``trainer.nonfinite=stop``."""


class Preempted(RuntimeError):
    """SIGTERM or SIGINT stopped training; a checkpoint of the step it stopped at was saved."""

    def __init__(self, signum: int, step: int, checkpoint_dir: Any):
        self.signum, self.step = int(signum), int(step)
        super().__init__(f"{signal.Signals(signum).name} received; saved checkpoint at step {step} in {checkpoint_dir}")


@dataclass
class Context:
    """What hooks share for a whole run."""

    run: Run
    trackers: Trackers
    checkpointer: Checkpointer
    metrics: JsonlTracker | None  # metrics.jsonl (process 0 only)
    primary: bool  # the process that writes the run directory


@dataclass
class Step:
    """One training step as the hooks see it; ``number`` counts the updates made (as metrics.jsonl)."""

    number: int
    state: dict[str, Any]  # the training state after this step
    metrics: dict[str, jax.Array]  # this step's metrics, on the device
    final: bool  # the run's last step
    stopping: int | None = None  # the signal that stops the run after this step
    record: dict[str, float] = field(default_factory=dict)  # logged for this step
    val: dict[str, float] | None = None  # validation metrics, when evaluated at this step
    paused: bool = False  # time went to something other than training (evaluation, saving)
    _counters: dict[str, Any] | None = None

    def counters(self, also: Any = None) -> tuple[dict[str, Any], Any]:
        """The non-finite counters of the state on the host, fetched once per step (with ``also``, any
        other device values wanted now, in the same transfer)."""
        if self._counters is None or also is not None:
            keys = ("skipped", "first_nonfinite", "first_nonfinite_loss")
            self._counters, also = jax.device_get(({k: self.state[k] for k in keys}, also))
        return self._counters, also


@runtime_checkable
class Hook(Protocol):
    def due(self, step: Step) -> bool:
        """Whether to call this hook after ``step``."""
        ...

    def __call__(self, step: Step) -> None: ...

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        """At the end of the run, with the final ``state``; may add keys to ``summary``."""
        ...


class Every:
    """A base for hooks due every ``every`` steps (0: never), at the last step and, with
    ``on_stop``, at the step a signal stops the run."""

    every: int = 0
    on_stop: bool = False

    def due(self, step: Step) -> bool:
        return (
            (bool(self.every) and step.number % self.every == 0)
            or step.final
            or (self.on_stop and step.stopping is not None)
        )

    def __call__(self, step: Step) -> None:
        raise NotImplementedError

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        pass


def check_finite(ctx: Context, step: Step) -> None:
    """NonFiniteError under ``trainer.nonfinite=stop`` once a step's loss or gradient norm was not
    finite, naming that step (counted like metrics.jsonl: the update it made), which quantity, and the
    last checkpoint (always good: checkpoints are saved only after this check)."""
    counters, _ = step.counters()
    first = int(counters["first_nonfinite"])
    if first >= 0 and ctx.run.config.trainer.nonfinite == "stop":
        what = "loss" if bool(counters["first_nonfinite_loss"]) else "gradient norm (the loss was finite)"
        last = ctx.checkpointer.latest_step()
        where = f"{ctx.checkpointer.directory / str(last)}" if last is not None else "none yet"
        raise NonFiniteError(
            f"non-finite {what} at step {first + 1}; training stopped "
            f"(trainer.nonfinite=stop); last good checkpoint: {where}; run again with a "
            "lower optim.lr, gradient clipping (optim.clip) or trainer.nonfinite=skip"
        )


class TrainMetrics(Every):
    """Keeps every step's metrics on the device and, every ``trainer.log_every`` steps, fetches them
    (with the non-finite counters, in one transfer) into their means over the interval. The steps not
    yet logged go into every checkpoint (:meth:`unlogged`), so a resumed run logs the same means over
    the same windows as a run never stopped; a stop by a signal logs nothing of its own."""

    def __init__(self, ctx: Context):
        self.ctx, self.every = ctx, ctx.run.config.trainer.log_every
        self.pending: list[dict] = [
            {key: np.asarray(value, dtype) for key, (value, dtype) in metrics.items()} for metrics in ctx.run.unlogged
        ]
        self.tokens_per_step = ctx.run.batch_size * ctx.run.dataset.train_batch(0)["inputs"].shape[1]
        self.last_time, self.last_step = time.perf_counter(), ctx.run.start - len(self.pending)

    def unlogged(self) -> list[dict[str, list]]:
        """The metrics of the steps since the last log, on the host, as JSON: {key: [value, dtype]}."""
        fetched = jax.device_get(self.pending) if self.pending else []  # none at a logged step
        return [{key: [np.asarray(v).item(), str(np.asarray(v).dtype)] for key, v in m.items()} for m in fetched]

    def due(self, step: Step) -> bool:
        return True  # every step's metrics are kept

    def __call__(self, step: Step) -> None:
        self.pending.append(step.metrics)
        if not super().due(step):
            return
        counters, pending = step.counters(also=self.pending)  # waits for the steps: the clock is right
        step.record.update(
            steps.reduce_train(
                pending,
                self.ctx.run.task,
                self.tokens_per_step,
                step.number - self.last_step,
                time.perf_counter() - self.last_time,
            )
        )
        self.pending, self.last_time, self.last_step = [], time.perf_counter(), step.number
        check_finite(self.ctx, step)
        step.record["train/skipped"] = int(counters["skipped"])

    def restart_clock(self) -> None:
        """Time since now counts as training (after an evaluation or a save)."""
        if not self.pending:
            self.last_time = time.perf_counter()


class RestartClock:
    """After a step that evaluated or saved: tokens/s counts training only."""

    def __init__(self, train_metrics: TrainMetrics):
        self.train_metrics = train_metrics

    def due(self, step: Step) -> bool:
        return step.paused

    def __call__(self, step: Step) -> None:
        self.train_metrics.restart_clock()

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        pass


class GradNorms:
    """Per-timestep gradient norms (``diagnostics.every``), probed on process 0's copy of the params."""

    def __init__(self, ctx: Context, recorder: gradnorms.GradNormRecorder):
        self.ctx, self.recorder = ctx, recorder
        if recorder.due(ctx.run.start):  # at initialisation
            ctx.trackers.log(ctx.run.start, recorder.record(ctx.run.start, steps.host_local(ctx.run.state["params"])))

    def due(self, step: Step) -> bool:
        return self.recorder.due(step.number)

    def __call__(self, step: Step) -> None:
        step.record.update(self.recorder.record(step.number, steps.host_local(step.state["params"])))

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        self.recorder.finish(summary["step"], self.ctx.trackers)


class Evaluate(Every):
    """Validation metrics every ``trainer.eval_every`` steps; at the end, the test split (with the
    task's plots; not under ``trainer.test=false``) and the summary's ``val/*``, ``test/*`` and
    ``val/best_loss``."""

    def __init__(self, ctx: Context):
        self.ctx, self.every = ctx, ctx.run.config.trainer.eval_every
        history = ctx.metrics.history if ctx.metrics is not None else []  # logged before a resume
        self.best = min((r["val/loss"] for r in history if "val/loss" in r), default=math.inf)
        self.last: dict[str, float] = {}

    def evaluate(self, params: Any, split: str, on_outputs: Callable | None = None) -> dict[str, float]:
        run = self.ctx.run
        return steps.evaluate(
            run.graphdef,
            params,
            run.dataset,
            split,
            max_batches=run.config.trainer.eval_max_batches,
            eval_step=run.eval_step,
            on_outputs=on_outputs,
        )

    def __call__(self, step: Step) -> None:
        check_finite(self.ctx, step)
        self.last = self.evaluate(step.state["params"], "val")
        self.best = min(self.best, self.last["loss"])
        step.val = {f"val/{k}": v for k, v in self.last.items()}
        step.record.update(step.val)
        step.paused = True

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        ctx, at = self.ctx, summary["step"]
        test = {}
        if ctx.run.config.trainer.test:  # false while choosing on validation: the test split is not read
            on_outputs = partial(self._plots, "test", at) if ctx.primary else None
            test = self.evaluate(state["params"], "test", on_outputs=on_outputs)
        val = self.last or self.evaluate(state["params"], "val")
        summary.update({f"val/{k}": v for k, v in val.items()})
        summary.update({f"test/{k}": v for k, v in test.items()})
        summary["val/best_loss"] = min(self.best, val["loss"])
        summary["task"] = ctx.run.task.kind  # which task's result_lines read this summary

    def _plots(self, split: str, step: int, outputs, batches) -> None:
        run = self.ctx.run
        paths = run.task.plots(run.dataset, split, outputs, batches, run.rundir.plots)
        if paths:
            self.ctx.trackers.log_plots(step, paths)


class Sample(Every):
    """Generated text at every evaluation (language models over a vocabulary; ``sample.*``)."""

    def __init__(self, ctx: Context):
        self.ctx, self.every = ctx, ctx.run.config.trainer.eval_every
        s = ctx.run.config.sample
        self.vocab = ctx.run.task.vocab(ctx.run.dataset)
        self.enabled = bool(ctx.primary and s.enabled and s.length and self.vocab is not None)

    def due(self, step: Step) -> bool:
        return self.enabled and super().due(step)

    def __call__(self, step: Step) -> None:
        run, s = self.ctx.run, self.ctx.run.config.sample
        vocab = self.vocab
        model = nnx.merge(run.graphdef, jax.device_get(step.state["params"]))
        key = jax.random.fold_in(jax.random.PRNGKey(run.config.seed + 1), step.number)
        ids = generate(model, vocab.encode(s.prime), s.length, temperature=s.temperature, top_k=s.top_k, key=key)
        text = s.prime + vocab.decode(ids)
        run.rundir.append_sample(step.number, s.temperature, text)
        self.ctx.trackers.log_samples(step.number, text)


class Log:
    """Writes the step's record (if any) to the trackers and the progress display."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        t = ctx.run.config.trainer
        self.progress = Progress(t.progress if ctx.primary else "none", t.max_steps, ctx.run.start, ctx.run.task)

    def due(self, step: Step) -> bool:
        return True  # the progress bar moves every step

    def __call__(self, step: Step) -> None:
        if step.record:
            self.ctx.trackers.log(step.number, step.record)
            self.progress.show(step.number, step.record)
        self.progress.advance(final=step.final)

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        self.progress.close()


class Checkpoint(Every):
    """Saves the state every ``checkpoint.every`` steps (0: only at the end) and when a signal stops
    the run, after checking that it is finite; with it, the training metrics not yet logged."""

    on_stop = True

    def __init__(self, ctx: Context, train: TrainMetrics):
        self.ctx, self.every, self.train = ctx, ctx.run.config.checkpoint.every, train

    def __call__(self, step: Step) -> None:
        check_finite(self.ctx, step)
        val_loss = step.val.get("val/loss") if step.val else None
        meta = {**self.ctx.run.meta, "step": step.number, "unlogged": self.train.unlogged()}
        self.ctx.checkpointer.save(step.number, step.state, meta, val_loss=val_loss)
        step.paused = True


class LearningCurves:
    """``plots/learning_curves.png`` from metrics.jsonl after every evaluation (process 0)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def due(self, step: Step) -> bool:
        return self.ctx.primary and step.val is not None

    def __call__(self, step: Step) -> None:
        run = self.ctx.run
        path = plots.learning_curves(
            self.ctx.metrics.history, run.rundir.plots / "learning_curves.png", title=plot_title(run)
        )
        if path is not None:
            self.ctx.trackers.log_plots(step.number, {"learning_curves": path})

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        pass


def plot_title(run: Run) -> str:
    """What a run's plots are titled: the experiment and the run directory's name."""
    return f"{run.config.experiment}, run {run.rundir.path.name}"


class OnEvaluate:
    """Calls ``callback(step, val_metrics)`` after each evaluation, once the step is logged and saved;
    whatever it raises (e.g. a pruning signal) ends the run."""

    def __init__(self, callback: Callable[[int, dict[str, float]], None]):
        self.callback = callback

    def due(self, step: Step) -> bool:
        return step.val is not None

    def __call__(self, step: Step) -> None:
        self.callback(step.number, dict(step.val))

    def finish(self, state: dict[str, Any], summary: dict[str, Any]) -> None:
        pass


def default_hooks(
    ctx: Context, extra: tuple[Hook, ...] = (), on_evaluate: Callable[[int, dict[str, float]], None] | None = None
) -> list[Hook]:
    """The built-in hooks in the order they run, with ``extra`` before :class:`Log`."""
    train = TrainMetrics(ctx)
    recorder = (
        gradnorms.recorder(ctx.run.config, ctx.run.dataset, ctx.run.graphdef, ctx.run.rundir, ctx.run.start)
        if ctx.primary
        else None
    )
    hooks: list[Hook] = [train]
    if recorder is not None:
        hooks.append(GradNorms(ctx, recorder))
    hooks += [
        Evaluate(ctx),
        Sample(ctx),
        *extra,
        Log(ctx),
        Checkpoint(ctx, train),
        LearningCurves(ctx),
        RestartClock(train),
    ]
    if on_evaluate is not None:
        hooks.append(OnEvaluate(on_evaluate))
    return hooks


class Progress:
    """A tqdm bar on a terminal; plain lines on stdout (at log steps) otherwise. The bar's last line is
    drawn once, by :meth:`close`, with the final metrics. It shows the loss and the task's headline
    metric (:attr:`lstmlab.tasks.Task.headline`), in training and validation, by their declared short
    names, and the training speed."""

    def __init__(self, mode: str, total: int, start: int, task: Task):
        shown = [task.metrics[name] for name in dict.fromkeys(("loss", task.headline))]
        self.keys = [
            *((f"train/{m.name}", m.short) for m in shown),
            *((f"val/{m.name}", f"val_{m.short}") for m in shown),
            ("train/tokens_per_second", "tok/s"),
        ]
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.total = mode, total
        self.bar = None
        self.start_time, self.start_step = time.perf_counter(), start
        if mode == "bar" and start < total:  # a finished run (resumed at its end) has nothing to show
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def advance(self, final: bool = False) -> None:
        if self.bar is None:
            return
        if final:  # counted without drawing: close() draws the last line, once
            self.bar.n += 1
        else:
            self.bar.update(1)

    def show(self, step: int, record: dict[str, float]) -> None:
        parts = {short: format_value(k, record[k]) for k, short in self.keys if k in record}
        if self.bar is not None:
            self.bar.set_postfix(parts, refresh=False)
        elif self.mode == "lines":
            elapsed = time.perf_counter() - self.start_time
            done = step - self.start_step
            left = elapsed / done * (self.total - step) if done else 0.0
            text = " ".join(f"{k} {v}" for k, v in parts.items())
            print(f"step {step}/{self.total} {text} left {left:.0f}s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_value(key: str, value: float) -> str:
    """A logged value for the progress display: rates as whole numbers with thousands separators
    (``12,090``), everything else with four significant digits."""
    if key.endswith("per_second") and math.isfinite(value):
        return f"{value:,.0f}"
    return f"{value:.4g}"
