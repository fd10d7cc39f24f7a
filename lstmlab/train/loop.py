"""The training loop: ``train_and_evaluate(config, run_dir)``, callable from Python without the CLI.

One plain loop (big_vision style): build and check everything first, then step, log, evaluate,
sample, checkpoint. The training state is a dict of arrays: ``step``, ``params``, ``opt_state``,
``carries`` (the recurrent state carried between windows of stateful data), ``skipped`` (updates dropped
by ``trainer.nonfinite=skip``), ``first_nonfinite`` (-1 or the first step whose loss or gradient norm was
not finite) and ``first_nonfinite_loss`` (whether that was the loss). Data batches and dropout keys are
pure functions of (seed, step), so a run resumed from a checkpoint continues exactly where it stopped,
bit for bit, whether it stopped cleanly, on SIGTERM/SIGINT (which save a checkpoint first) or was killed
(it goes back to the newest complete checkpoint; metrics.jsonl and samples.txt drop what came after).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lstmlab import cells, data as data_lib, diagnostics
from lstmlab.config import Config, ConfigError, check_numbers
from lstmlab.io import plots
from lstmlab.io.checkpoint import Checkpointer, unflatten
from lstmlab.io.files import atomic_write_text
from lstmlab.io.trackers import JsonlTracker, Trackers, WandbTracker, wandb_mode
from lstmlab.nn import RecurrentModel
from lstmlab.train import distributed, gradnorms, losses, optim
from lstmlab.train.sample import generate

log = logging.getLogger(__name__)
NONFINITE = ("stop", "skip")
PROGRESS = ("auto", "bar", "lines", "none")


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or gradient under ``trainer.nonfinite=stop``."""


# ---------------------------------------------------------------------------------------------------
# Building blocks, each usable on its own


def build_dataset(config: Config) -> data_lib.Dataset:
    """The data set named by ``config.data.name`` with the other ``data.*`` keys; ConfigError if bad."""
    options = dict(config.data)
    name = options.pop("name", None)
    if name is None:
        raise ConfigError(f"data.name is missing; valid: {', '.join(data_lib.names())}")
    try:
        valid = data_lib.options(name)
    except ValueError as err:
        raise ConfigError(_one_line(err)) from err
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"data.{unknown[0]} is not an option of data set {name!r}; "
                          f"valid: {', '.join(v for v in valid if v != 'seed')}")
    if "seed" in valid:  # generated data draws from the run's seed; fixed corpora take none
        options["seed"] = config.seed
    try:
        return data_lib.build(name, **options)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        raise ConfigError(_one_line(err)) from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def build_model(config: Config, spec: data_lib.DataSpec, seed: int | None = None) -> RecurrentModel:
    """The model for ``spec`` from ``config.cell`` and ``config.model``; ConfigError if a value is bad."""
    c, m = config.cell, config.model
    options: dict[str, Any] = {}
    if c.name in ("lstm", "peephole"):
        options["variant"] = c.variant
    elif c.name == "rnn":
        options["activation"] = c.activation
    if m.hidden_size < 1:
        raise ConfigError(f"model.hidden_size={m.hidden_size} must be >= 1")
    if m.num_layers < 1:
        raise ConfigError(f"model.num_layers={m.num_layers} must be >= 1")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout={m.dropout} must be in [0, 1)")
    if m.embed_size < 0:
        raise ConfigError(f"model.embed_size={m.embed_size} must be >= 0")
    if m.impl is not None and m.impl not in cells.IMPLS:
        raise ConfigError(f"model.impl={m.impl!r}; valid: {', '.join(cells.IMPLS)}")
    try:
        return RecurrentModel(
            c.name, output_size=spec.output_size, per_step=spec.kind in ("lm", "multilabel"),
            hidden_size=m.hidden_size, num_layers=m.num_layers, dropout=m.dropout,
            bidirectional=m.bidirectional, vocab_size=spec.vocab_size, input_size=spec.input_size,
            embed_size=m.embed_size, pooling=m.pooling, learn_initial_carry=m.learn_initial_carry,
            impl=m.impl, rngs=nnx.Rngs(config.seed if seed is None else seed),
            input_init=c.input_init, recurrent_scale=c.recurrent_scale, forget_bias=c.forget_bias,
            chrono_tmax=c.chrono_tmax, **options)
    except ValueError as err:
        message = _one_line(err)
        for key in ("variant", "activation", "input_init", "recurrent_scale", "chrono_tmax"):
            if message.startswith(f"{key}="):
                message = f"cell.{message}"
        if message.startswith("cell="):
            message = f"cell.name={message[5:]}"
        raise ConfigError(message) from err


def check_trainer(config: Config) -> None:
    check_numbers(config)
    distributed.check(config.distributed)
    t, ck = config.trainer, config.checkpoint
    for key, value, low in (("trainer.max_steps", t.max_steps, 1), ("trainer.eval_every", t.eval_every, 1),
                            ("trainer.log_every", t.log_every, 1), ("checkpoint.every", ck.every, 0),
                            ("checkpoint.keep", ck.keep, 1), ("trainer.eval_max_batches", t.eval_max_batches, 0)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{key}={value!r} must be an integer >= {low}")
    if t.nonfinite not in NONFINITE:
        raise ConfigError(f"trainer.nonfinite={t.nonfinite!r}; valid: {', '.join(NONFINITE)}")
    if t.progress not in PROGRESS:
        raise ConfigError(f"trainer.progress={t.progress!r}; valid: {', '.join(PROGRESS)}")
    for key in ("temperature", "length", "top_k"):
        if getattr(config.sample, key) < 0:
            raise ConfigError(f"sample.{key}={getattr(config.sample, key)} must be >= 0")
    try:
        wandb_mode(config.logger.wandb.mode)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    gradnorms.check(config)


def make_mesh(devices: int | None, batch_size: int) -> Mesh:
    """A 1-D mesh ``("data",)`` over the first ``devices`` local devices of every process; the batch is
    split along it and the parameters replicated. ``devices=None``: as many local devices as divide the
    batch evenly (all of them when they do)."""
    available = jax.local_devices()
    processes = jax.process_count()
    n = devices
    if devices is None:
        n = max((k for k in range(1, len(available) + 1) if batch_size % (k * processes) == 0), default=1)
    if not 1 <= n <= len(available):
        raise ConfigError(f"trainer.devices={devices} must be in [1, {len(available)}] "
                          f"(local devices: {len(available)})")
    if batch_size % (n * processes):
        per = f"trainer.devices={n}" + (f" x {processes} processes" if processes > 1 else "")
        raise ConfigError(f"data.batch_size={batch_size} must be divisible by the number of devices ({per})")
    chosen = [d for p in range(processes)
              for d in sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:n]]
    return Mesh(np.array(chosen), ("data",))


# ---------------------------------------------------------------------------------------------------
# Jitted steps


def make_train_step(graphdef, tx: optax.GradientTransformation, config: Config, spec: data_lib.DataSpec):
    """The jitted, pure training step: (state, batch) -> (state, metrics)."""
    kind, stateful, nonfinite = spec.kind, spec.stateful, config.trainer.nonfinite
    base_key = jax.random.PRNGKey(config.seed)
    optim_cfg = config.optim

    def train_step(state, batch):
        step = state["step"]
        dropout_key = jax.random.fold_in(base_key, step)

        def loss_fn(params):
            model = nnx.merge(graphdef, params)
            carries = _reset_carries(model, state["carries"], batch) if stateful else None
            carries, outputs = model(batch["inputs"], carries, seq_lengths=batch.get("seq_lengths"),
                                     dropout_key=dropout_key)
            loss, sums = losses.mean_loss(kind, outputs, batch)
            return loss, (carries, sums)

        (loss, (carries, sums)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        grad_metrics = diagnostics.grad_metrics(grads, params=state["params"], updates=updates,
                                                clip=optim_cfg.clip, clip_threshold=optim_cfg.clip_threshold)
        grad_norm = grad_metrics["grad/global_norm"]
        params = optax.apply_updates(state["params"], updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        first = (state["first_nonfinite"] < 0) & ~finite
        new = {"params": params, "opt_state": opt_state,
               "carries": jax.lax.stop_gradient(carries) if stateful else state["carries"]}
        if nonfinite == "skip":
            new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new,
                               {k: state[k] for k in ("params", "opt_state", "carries")})
        new.update(
            step=step + 1,
            skipped=state["skipped"] + (~finite).astype(jnp.int32),
            first_nonfinite=jnp.where(first, step, state["first_nonfinite"]),
            first_nonfinite_loss=jnp.where(first, ~jnp.isfinite(loss), state["first_nonfinite_loss"]),
        )
        metrics = {
            "train/loss": loss,
            "train/correct": sums["correct"], "train/count": sums["count"],
            **grad_metrics,
            "train/finite": finite,
        }
        return new, metrics

    return jax.jit(train_step, donate_argnums=0)


def with_mesh(step, mesh: Mesh):
    """``step`` called (and so traced) with ``mesh`` as the current mesh (``jax.set_mesh``): the recurrent
    layers then run one recurrence per device on its rows of the batch, which on CPU is faster than
    leaving the time loop to the compiler's partitioner (:mod:`lstmlab.cells.sharding`)."""

    def call(*args):
        with jax.set_mesh(mesh):
            return step(*args)

    return call


def place_state(state: dict, mesh: Mesh, stateful: bool) -> dict:
    """The training state on ``mesh``: replicated, except the carries of a stateful data set, which are
    split along ``"data"`` with the batch. Goes via the host, so the mesh may span several processes."""
    host = jax.device_get(state)
    placed = jax.device_put(host, NamedSharding(mesh, P()))
    if stateful:
        placed["carries"] = jax.device_put(host["carries"], NamedSharding(mesh, P("data")))
    return placed


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """A host batch (the same on every process) as global arrays split along the mesh axis ``"data"``."""
    by_batch = NamedSharding(mesh, P("data"))
    return {k: _global_array(np.asarray(v), by_batch) for k, v in batch.items()}


def _reset_carries(model: RecurrentModel, carries, batch):
    """Zero (or the learned initial value of) each stream's carry where ``batch["reset"]`` is set."""
    reset = batch["reset"]
    initial = model.initial_carries(reset.shape[0])
    return jax.tree.map(lambda c, z: jnp.where(reset[:, None], z.astype(c.dtype), c), carries, initial)


def make_eval_step(graphdef, spec: data_lib.DataSpec):
    """Jitted (params, carries, batch) -> (sums, carries, outputs); no dropout."""

    def eval_step(params, carries, batch):
        model = nnx.merge(graphdef, params)
        if spec.stateful:
            carries = _reset_carries(model, carries, batch)
        carries, outputs = model(batch["inputs"], carries, seq_lengths=batch.get("seq_lengths"))
        return losses.batch_sums(spec.kind, outputs, batch), carries, outputs

    return jax.jit(eval_step)


def evaluate(graphdef, params, dataset: data_lib.Dataset, split: str, *, max_batches: int = 0,
             eval_step=None, on_outputs=None) -> dict[str, float]:
    """Metrics of ``params`` on a whole split (or its first ``max_batches`` batches): the kind's metrics
    from :mod:`lstmlab.train.losses` plus the data set's ``extra_metrics``. ``on_outputs(outputs,
    batches)``, if given, also receives the split's concatenated outputs and its batches (not for
    stateful language-model data, whose outputs are not kept)."""
    spec = dataset.spec
    eval_step = eval_step or make_eval_step(graphdef, spec)
    keep_outputs = not (spec.kind == "lm" and spec.stateful)  # text: nothing extra, outputs are large
    totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    carries, outputs, batches = None, [], []
    for index, batch in enumerate(dataset.eval_batches(split)):
        if max_batches and index >= max_batches:
            break
        if spec.stateful and carries is None:
            carries = nnx.merge(graphdef, params).initial_carries(batch["inputs"].shape[0])
        sums, carries, out = eval_step(params, carries, batch)
        carries = carries if spec.stateful else None  # separate sequences: every batch starts from zeros
        for k in totals:
            totals[k] += float(sums[k])
        if keep_outputs:
            outputs.append(np.asarray(out))
            batches.append(batch)
    metrics = losses.metrics_from_sums(spec.kind, totals)
    if keep_outputs and outputs and hasattr(dataset, "extra_metrics"):
        metrics.update(dataset.extra_metrics(split, np.concatenate(outputs), batches))
    if keep_outputs and outputs and on_outputs is not None:
        on_outputs(np.concatenate(outputs), batches)
    return metrics


# ---------------------------------------------------------------------------------------------------
# The loop


class _Stop:
    """Turns SIGTERM/SIGINT into a flag the loop checks after every step (then saves and exits).

    With several processes SIGTERM is left to JAX's preemption service (see
    :func:`lstmlab.train.distributed.stop_signal`), and SIGINT is passed on to it as a SIGTERM."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        several = jax.process_count() > 1
        for sig in (signal.SIGINT,) if several else (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._forward if several else self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def _forward(self, signum, frame):
        self.signal = signum
        os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def initial_state(model: RecurrentModel, tx: optax.GradientTransformation, spec: data_lib.DataSpec,
                  batch_size: int) -> tuple[Any, dict[str, Any]]:
    """(graphdef, the training state at step 0): the pytree :func:`make_train_step`'s step function takes
    and returns (parameters, optimiser state, carried state of ``batch_size`` streams for stateful data,
    step and non-finite counters)."""
    graphdef, params = nnx.split(model)
    return graphdef, {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": tx.init(params),
        "carries": model.initial_carries(batch_size) if spec.stateful else None,
        "skipped": jnp.zeros((), jnp.int32),
        "first_nonfinite": jnp.full((), -1, jnp.int32),
        "first_nonfinite_loss": jnp.zeros((), bool),
    }


def train_and_evaluate(config: Config, run_dir: str | Path, *, config_dict: dict | None = None,
                       on_evaluate: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming from its latest checkpoint) and evaluate; returns the
    summary (also written to ``run_dir/summary.json``). Raises ConfigError for bad input before
    anything is written. ``on_evaluate(step, metrics)`` is called right after each evaluation with the
    validation metrics (``val/loss``, ...); an exception it raises (e.g. ``optuna.TrialPruned``)
    propagates after the trackers are finished."""
    run_dir = Path(run_dir).absolute()
    # -- check everything before any write -------------------------------------------------------------
    check_trainer(config)
    dataset = build_dataset(config)
    spec = dataset.spec
    distributed.initialize(config.distributed)  # joins the other processes; before JAX uses a device
    model = build_model(config, spec)
    tx = optim.make_optimizer(config.optim, config.trainer.max_steps)
    first = dataset.train_batch(0)
    batch_size = first["inputs"].shape[0]
    mesh = make_mesh(config.trainer.devices, batch_size)
    graphdef, state = initial_state(model, tx, spec, batch_size)
    meta = {"vocab": dataset.vocab.to_json() if hasattr(dataset, "vocab") else None,
            "model": model_signature(config, spec)}
    ckpt_dir = run_dir / "checkpoints"
    state, start, damaged = resume_state(ckpt_dir, state, meta)

    # -- from here on the run directory is written (by process 0 alone) ------------------------------
    primary = distributed.is_primary()
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(ckpt_dir, keep=config.checkpoint.keep, keep_best=config.checkpoint.keep_best)
    jsonl, trackers = None, Trackers()
    if primary:
        for step, report in damaged.items():
            moved = checkpointer.set_aside(step)
            print(f"lstmlab: {report}; moved to {moved.name}; resuming from "
                  f"{f'step {start}' if start else 'the start'}", file=sys.stderr)
        _write_config(run_dir, config, config_dict)
        jsonl = JsonlTracker(run_dir, resume_step=start)
        _truncate_samples(run_dir / "samples.txt", start)
        trackers = Trackers(jsonl)
    wb_mode = wandb_mode(config.logger.wandb.mode)
    exit_code = 1
    try:
        if wb_mode != "disabled" and primary:
            trackers.trackers.append(WandbTracker(run_dir, config_dict or asdict(config), mode=wb_mode,
                                                  project=config.logger.wandb.project,
                                                  entity=config.logger.wandb.entity,
                                                  tags=list(config.logger.wandb.tags), name=run_dir.name))
        summary = _loop(config, run_dir, dataset, graphdef, tx, state, start, mesh, checkpointer, meta,
                        trackers, jsonl, on_evaluate)
        exit_code = 0
        return summary
    finally:
        trackers.finish(exit_code)
        checkpointer.close()


def resume_state(ckpt_dir: Path, state: dict[str, Any], meta: dict[str, Any]
                 ) -> tuple[dict[str, Any], int, dict[int, str]]:
    """``state`` filled from the newest good checkpoint in ``ckpt_dir`` and that checkpoint's step
    (``state`` itself and 0 when there is none), and {step: one-line report} of the newer checkpoints
    that are damaged. Reads only. ConfigError if the checkpoint was trained on another vocabulary or
    another model than ``meta`` describes."""
    if not (ckpt_dir.is_dir() and any(ckpt_dir.iterdir())):
        return state, 0, {}
    reader = Checkpointer(ckpt_dir, read_only=True)
    try:
        step, flat, saved, damaged = reader.read_latest_good()
    finally:
        reader.close()
    if step is None:
        return state, 0, damaged
    where = ckpt_dir / str(step)
    if saved.get("vocab") != meta["vocab"]:
        raise ConfigError(f"checkpoint {where} was trained with another vocabulary than this data; "
                          "use a new hydra.run.dir or the original data")
    mismatch = _model_mismatch(saved.get("model"), meta["model"])
    if mismatch:
        raise ConfigError(f"checkpoint {where} does not match this model: it was trained with {mismatch}; "
                          "use a new hydra.run.dir or the original model config")
    try:
        return unflatten(state, flat, f"checkpoint {where}"), step, damaged
    except ValueError as err:
        raise ConfigError(_one_line(err) + "; use a new hydra.run.dir or the original model config") from err


def _model_mismatch(saved: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """The first key of the model's structure (not its initialisation or dropout) that differs
    between two :func:`model_signature` dicts, as "key=saved (this config: current)"."""
    if not saved:
        return None
    keys = ["cell.name", "model.hidden_size", "model.num_layers", "model.bidirectional", "model.embed_size",
            "model.learn_initial_carry", "kind", "vocab_size", "input_size", "output_size"]
    cell = current["cell"]["name"]
    keys += ["cell.variant"] if cell in ("lstm", "peephole") else ["cell.activation"] if cell == "rnn" else []
    keys += ["model.pooling"] if current.get("kind") in ("classify", "regress") else []  # per-sequence heads

    def get(sig, key):
        for part in key.split("."):
            sig = sig.get(part) if isinstance(sig, dict) else None
        return sig

    for key in keys:
        if get(saved, key) != get(current, key):
            return f"{key}={get(saved, key)!r} (this config: {get(current, key)!r})"
    return None


def model_signature(config: Config, spec: data_lib.DataSpec) -> dict[str, Any]:
    return {"cell": asdict(config.cell), "model": asdict(config.model), "kind": spec.kind,
            "vocab_size": spec.vocab_size, "input_size": spec.input_size, "output_size": spec.output_size}


def _write_config(run_dir: Path, config: Config, config_dict: dict | None) -> None:
    from omegaconf import OmegaConf

    resolved = config_dict if config_dict is not None else asdict(config)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))


def _loop(config, run_dir, dataset, graphdef, tx, state, start, mesh, checkpointer, meta, trackers, jsonl,
          on_evaluate=None):
    t, spec = config.trainer, dataset.spec
    primary = distributed.is_primary()
    state = place_state(state, mesh, spec.stateful)
    # XLA's CPU devices share one thread pool. With several steps in flight, their collectives can wait
    # for each other's threads for ever (reber on 2 CPU devices hung in 5 runs of 5); with one step in
    # flight at a time it ran 5 of 5.
    one_in_flight = mesh.devices.size > 1 and mesh.devices.flat[0].platform == "cpu"
    train_step = with_mesh(make_train_step(graphdef, tx, config, spec), mesh)
    eval_step = with_mesh(make_eval_step(graphdef, spec), mesh)
    progress = _Progress(t.progress if primary else "none", t.max_steps, start)
    pending: list[dict] = []
    tokens_per_step = None
    last_time, last_step = time.perf_counter(), start
    history = jsonl.history if jsonl else []  # what was logged before a resume
    best_val = min((r["val/loss"] for r in history if "val/loss" in r), default=math.inf)
    val_metrics: dict[str, float] = {}

    # per-timestep gradient norms (None: diagnostics off); process 0 probes its own copy of the params
    recorder = gradnorms.recorder(config, dataset, graphdef, run_dir, start) if primary else None
    with _Stop() as stop:
        step = start
        if recorder is not None and recorder.due(step):  # at initialisation
            trackers.log(step, recorder.record(step, _host_local(state["params"])))
        while step < t.max_steps:
            batch = dataset.train_batch(step)
            if tokens_per_step is None:
                tokens_per_step = int(np.prod(batch["inputs"].shape[:2]))
            state, metrics = train_step(state, shard_batch(batch, mesh))
            if one_in_flight:
                jax.block_until_ready(metrics)
            pending.append(metrics)
            step += 1
            progress.advance()
            stopping = distributed.stop_signal(step, stop.signal)  # the same step on every process
            record: dict[str, float] = {}
            if step % t.log_every == 0 or step == t.max_steps or stopping:
                pending = jax.device_get(pending)  # waits for the steps to finish, so the clock is right
                record.update(_reduce_train(pending, spec.kind, tokens_per_step, step - last_step,
                                            time.perf_counter() - last_time))
                pending, last_time, last_step = [], time.perf_counter(), step
                _check_finite(state, t.nonfinite, checkpointer)
                record["train/skipped"] = int(state["skipped"])
            if recorder is not None and recorder.due(step):
                record.update(recorder.record(step, _host_local(state["params"])))
            is_eval = step % t.eval_every == 0 or step == t.max_steps
            if is_eval:
                _check_finite(state, t.nonfinite, checkpointer)
                val_metrics = evaluate(graphdef, state["params"], dataset, "val",
                                       max_batches=t.eval_max_batches, eval_step=eval_step)
                record.update({f"val/{k}": v for k, v in val_metrics.items()})
                best_val = min(best_val, val_metrics["loss"])
                if primary:
                    _sample(config, dataset, graphdef, state, step, run_dir, trackers)
            if record:
                trackers.log(step, record)
                progress.show(step, record)
            save = (config.checkpoint.every and step % config.checkpoint.every == 0) or step == t.max_steps
            if save or stopping:
                _check_finite(state, t.nonfinite, checkpointer)
                checkpointer.save(step, state, {**meta, "step": step},
                                  val_loss=val_metrics.get("loss") if is_eval else None)
            if is_eval and primary:
                _write_plots(run_dir, jsonl, trackers, step)
            if is_eval and on_evaluate is not None:
                on_evaluate(step, {f"val/{k}": float(v) for k, v in val_metrics.items()})
            if (is_eval or save) and not pending:
                last_time = time.perf_counter()  # tokens/s counts training only
            if stopping:
                progress.close()
                name = signal.Signals(stopping).name
                if primary:
                    print(f"lstmlab: {name} received; saved checkpoint at step {step} in "
                          f"{checkpointer.directory}", file=sys.stderr)
                raise SystemExit(128 + stopping)
    progress.close()

    test_metrics = evaluate(graphdef, state["params"], dataset, "test", max_batches=t.eval_max_batches,
                            eval_step=eval_step,
                            on_outputs=partial(_data_plots, dataset, "test", run_dir, trackers,
                                               int(state["step"])) if primary else None)
    final_val = val_metrics or evaluate(graphdef, state["params"], dataset, "val",
                                        max_batches=t.eval_max_batches, eval_step=eval_step)
    summary = {"step": int(state["step"]), **{f"val/{k}": v for k, v in final_val.items()},
               **{f"test/{k}": v for k, v in test_metrics.items()},
               "val/best_loss": min(best_val, final_val["loss"]), "train/skipped": int(state["skipped"]),
               "data": spec.info, "devices": int(mesh.devices.size)}
    if recorder is not None:
        recorder.finish(summary["step"], trackers)
    if primary:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    trackers.summary({k: v for k, v in summary.items() if k != "data"})
    return summary


def _host_local(tree):
    """``tree`` itself in one process; with several, this process's copy of the (replicated) arrays, so
    that process 0 can compute on them alone."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def _global_array(rows: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The global batch ``rows`` as one array split by ``sharding``; each process copies only the rows
    of its own devices (``rows`` is the same on every process: a pure function of the step)."""
    return jax.make_array_from_callback(rows.shape, sharding, lambda index: rows[index])


def _reduce_train(pending: list[dict], kind: str, tokens_per_step: int, steps: int, seconds: float) -> dict:
    """Means over the steps since the last log; steps whose update was not finite (skipped under
    ``trainer.nonfinite=skip``) are left out, unless every step was."""
    stacked = [m for m in pending if bool(m["train/finite"])] or pending
    out = {"train/loss": float(np.mean([m["train/loss"] for m in stacked]))}
    correct = sum(float(m["train/correct"]) for m in stacked)
    count = sum(float(m["train/count"]) for m in stacked)
    if kind == "lm":
        out["train/bpc"] = out["train/loss"] / losses.LN2
    if kind != "regress" and count:
        out["train/accuracy"] = correct / count
    for key in (k for k in stacked[0] if k.startswith("grad/")):  # the mean over the log interval
        out[key] = float(np.mean([m[key] for m in stacked]))
    out["train/tokens_per_second"] = tokens_per_step * steps / max(seconds, 1e-9)
    return out


def _check_finite(state, policy: str, checkpointer: Checkpointer) -> None:
    """NonFiniteError under ``policy == "stop"`` once a step's loss or gradient norm was not finite,
    naming that step (counted like metrics.jsonl: the update it made), which quantity, and the last
    checkpoint (always good: checkpoints are saved only after this check)."""
    first = int(state["first_nonfinite"])
    if first >= 0 and policy == "stop":
        what = "loss" if bool(state["first_nonfinite_loss"]) else "gradient norm (the loss was finite)"
        last = checkpointer.latest_step()
        where = f"{checkpointer.directory / str(last)}" if last is not None else "none yet"
        raise NonFiniteError(f"non-finite {what} at step {first + 1}; training stopped "
                             f"(trainer.nonfinite=stop); last good checkpoint: {where}; run again with a "
                             "lower optim.lr, gradient clipping (optim.clip) or trainer.nonfinite=skip")


def _sample(config, dataset, graphdef, state, step, run_dir, trackers) -> None:
    s = config.sample
    vocab = getattr(dataset, "vocab", None)
    if not (s.enabled and s.length and vocab is not None and dataset.spec.kind == "lm"):
        return
    model = nnx.merge(graphdef, jax.device_get(state["params"]))
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed + 1), step)
    ids = generate(model, vocab.encode(s.prime), s.length, temperature=s.temperature, top_k=s.top_k, key=key)
    text = s.prime + vocab.decode(ids)
    with (run_dir / "samples.txt").open("a", encoding="utf-8") as f:
        f.write(f"=== step {step} (temperature {s.temperature}) ===\n{text}\n\n")
    trackers.log_samples(step, text)


def _truncate_samples(path: Path, step: int) -> None:
    """Drop the entries of ``samples.txt`` (see :func:`_sample`) written after ``step``, so that a
    resumed run does not repeat them."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    cut = next((m.start() for m in re.finditer(r"^=== step (\d+) ", text, flags=re.M) if int(m[1]) > step),
               None)
    if cut is not None:
        atomic_write_text(path, text[:cut])


def _write_plots(run_dir: Path, jsonl: JsonlTracker, trackers: Trackers, step: int) -> None:
    path = plots.learning_curves(jsonl.history, run_dir / "plots" / "learning_curves.png")
    if path is not None:
        trackers.log_plots(step, {"learning_curves": path})


def _data_plots(dataset, split: str, run_dir: Path, trackers: Trackers, step: int, outputs, batches) -> None:
    """The data set's own plots of ``split`` (e.g. ``forecast.png``), if it has a ``plots`` method:
    ``dataset.plots(split, outputs, batches, plot_dir) -> {name: path}``; logged to the trackers."""
    if hasattr(dataset, "plots"):
        paths = dataset.plots(split, outputs, batches, run_dir / "plots")
        if paths:
            trackers.log_plots(step, paths)


class _Progress:
    """A tqdm bar on a terminal; plain lines (at log steps) otherwise."""

    def __init__(self, mode: str, total: int, start: int):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.total = mode, total
        self.bar = None
        self.start_time, self.start_step = time.perf_counter(), start
        if mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show(self, step: int, record: dict[str, float]) -> None:
        keys = [("train/loss", "loss"), ("train/bpc", "bpc"), ("val/loss", "val_loss"), ("val/bpc", "val_bpc"),
                ("val/accuracy", "val_acc"), ("train/tokens_per_second", "tok/s")]
        parts = {short: record[k] for k, short in keys if k in record}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()}, refresh=False)
        elif self.mode == "lines":
            elapsed = time.perf_counter() - self.start_time
            done = step - self.start_step
            left = elapsed / done * (self.total - step) if done else 0.0
            text = " ".join(f"{k} {v:.4g}" for k, v in parts.items())
            print(f"step {step}/{self.total} {text} left {left:.0f}s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
