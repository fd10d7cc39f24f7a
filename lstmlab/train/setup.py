"""From a config to one :class:`Run`: data, model, optimiser, mesh, training state, the step it starts
at and the run directory. :func:`setup` checks everything and reads an existing checkpoint, but writes
nothing, so bad input leaves the run directory as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from lstmlab import cells, data as data_lib, interop
from lstmlab.config import CellConfig, Config, ConfigError, one_line
from lstmlab.io.checkpoint import Checkpointer, unflatten
from lstmlab.io.rundir import RunDir
from lstmlab.nn import RecurrentModel
from lstmlab.tasks import Task, task_for
from lstmlab.train import distributed, optim, steps


def build_dataset(config: Config) -> data_lib.Dataset:
    """The data set named by ``config.data.name`` with the other ``data.*`` keys; ConfigError if bad."""
    options = dict(config.data)
    name = options.pop("name", None)
    if name is None:
        raise ConfigError(f"data.name is missing; valid: {', '.join(data_lib.names())}")
    try:
        valid = data_lib.options(name)
    except ValueError as err:
        raise ConfigError(one_line(err)) from err
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"data.{unknown[0]} is not an option of data set {name!r}; "
                          f"valid: {', '.join(v for v in valid if v != 'seed')}")
    if "seed" in valid:  # generated data draws from the run's seed; fixed corpora take none
        options["seed"] = config.seed
    try:
        return data_lib.build(name, **options)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        raise ConfigError(one_line(err)) from err


def build_model(config: Config, spec: data_lib.DataSpec, seed: int | None = None) -> RecurrentModel:
    """The model for ``spec`` from ``config.cell`` and ``config.model`` (both checked first); with
    ``trainer.split_per_device`` its layers run one recurrence per device of the mesh axis ``"data"``."""
    config.cell.check()
    config.model.check()
    c, m = config.cell, config.model
    extra: dict[str, Any] = c.options()
    if config.trainer.split_per_device:
        extra["batch_axis"] = "data"
    try:
        return RecurrentModel(
            c.name, output_size=spec.output_size, per_step=task_for(spec).per_step,
            hidden_size=m.hidden_size, num_layers=m.num_layers, dropout=m.dropout,
            bidirectional=m.bidirectional, vocab_size=spec.vocab_size, input_size=spec.input_size,
            embed_size=m.embed_size, pooling=m.pooling, learn_initial_carry=m.learn_initial_carry,
            impl=m.impl, rngs=nnx.Rngs(config.seed if seed is None else seed),
            input_init=c.input_init, recurrent_scale=c.recurrent_scale, forget_bias=c.forget_bias,
            chrono_tmax=c.chrono_tmax, **extra)
    except ValueError as err:
        raise ConfigError(one_line(err)) from err


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


def model_signature(config: Config, spec: data_lib.DataSpec) -> dict[str, Any]:
    """What a checkpoint records about the model it was trained with (see :func:`model_mismatch`)."""
    return {"cell": asdict(config.cell), "model": asdict(config.model), "kind": spec.kind,
            "vocab_size": spec.vocab_size, "input_size": spec.input_size, "output_size": spec.output_size}


def model_mismatch(saved: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """The first key of the model's structure (not its initialisation or dropout) that differs
    between two :func:`model_signature` dicts, as "key=saved (this config: current)"."""
    if not saved:
        return None
    keys = ["cell.name", "model.hidden_size", "model.num_layers", "model.bidirectional", "model.embed_size",
            "model.learn_initial_carry", "kind", "vocab_size", "input_size", "output_size"]
    keys += [f"cell.{k}" for k in cells.option_names(current["cell"]["name"])]
    keys += [f"cell.extra.{k}" for k in current["cell"].get("extra", {})]
    try:
        keys += task_for(current.get("kind", "")).signature_keys()
    except ValueError:
        pass

    def get(sig, key):
        for part in key.split("."):
            sig = sig.get(part) if isinstance(sig, dict) else None
        return sig

    defaults = {"cell": {**asdict(CellConfig()), **current["cell"].get("extra", {})}}
    for key in keys:
        before = get(saved, key)
        if before is None and get(saved, "cell") is not None:  # a key older checkpoints do not record
            before = get(defaults, key.replace("extra.", ""))
        if before != get(current, key):
            return f"{key}={before!r} (this config: {get(current, key)!r})"
    return None


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
    mismatch = model_mismatch(saved.get("model"), meta["model"])
    if mismatch:
        raise ConfigError(f"checkpoint {where} does not match this model: it was trained with {mismatch}; "
                          "use a new hydra.run.dir or the original model config")
    try:
        return unflatten(state, flat, f"checkpoint {where}"), step, damaged
    except ValueError as err:
        raise ConfigError(one_line(err) + "; use a new hydra.run.dir or the original model config") from err


@dataclass
class Run:
    """Everything a training run needs, built and checked by :func:`setup`."""

    config: Config
    dataset: data_lib.Dataset
    task: Task
    model: RecurrentModel
    graphdef: Any
    tx: optax.GradientTransformation
    mesh: Mesh
    state: dict[str, Any]  # placed on the mesh
    start: int  # the step the run continues from (0: a new run)
    meta: dict[str, Any]  # what every checkpoint records (vocabulary, model signature)
    batch_size: int
    jit_train_step: Callable  # the jitted (state, batch) -> (state, metrics), e.g. to lower it
    jit_eval_step: Callable
    rundir: RunDir | None = None
    damaged: dict[int, str] = field(default_factory=dict)  # newer checkpoints that could not be read

    @property
    def one_step_in_flight(self) -> bool:
        """Whether the loop waits for each step before dispatching the next: only on a mesh of several
        CPU devices, whose collectives share a thread pool in which several steps in flight can wait
        on each other for ever. One device (the default) never waits."""
        devices = self.mesh.devices
        return devices.size > 1 and devices.flat[0].platform == "cpu"

    @property
    def spec(self) -> data_lib.DataSpec:
        return self.dataset.spec

    def scope(self) -> contextlib.AbstractContextManager:
        """Where the jitted steps run: under ``jax.set_mesh`` with ``trainer.split_per_device`` (the
        layers then split the batch over the devices themselves), else no context."""
        return jax.set_mesh(self.mesh) if self.config.trainer.split_per_device else contextlib.nullcontext()

    def in_scope(self, fn: Callable) -> Callable:
        """``fn`` called inside :meth:`scope`."""
        if not self.config.trainer.split_per_device:
            return fn

        def call(*args):
            with self.scope():
                return fn(*args)

        return call

    @property
    def train_step(self) -> Callable:
        return self.in_scope(self.jit_train_step)

    @property
    def eval_step(self) -> Callable:
        return self.in_scope(self.jit_eval_step)

    def batch(self, step: int) -> dict[str, jax.Array]:
        """The training batch of ``step`` (0-based), split over the mesh."""
        return steps.shard_batch(self.dataset.train_batch(step), self.mesh)


def setup(config: Config, run_dir: str | Path | None = None) -> Run:
    """Check ``config``, build the run and, when ``run_dir`` holds checkpoints, restore the newest good
    one. Joins the other processes of a ``jax.distributed`` run. Writes nothing."""
    config.check()  # every section checks itself (lstmlab.config); the data keys are checked next
    dataset = build_dataset(config)
    spec = dataset.spec
    distributed.initialize(config.distributed)  # joins the other processes; before JAX uses a device
    model = build_model(config, spec)
    tx = optim.make_optimizer(config.optim, config.trainer.max_steps)
    batch_size = dataset.train_batch(0)["inputs"].shape[0]
    mesh = make_mesh(config.trainer.devices, batch_size)
    graphdef, state = steps.initial_state(model, tx, spec, batch_size)
    if config.model.init_from is not None:  # a resumed run's checkpoint replaces these below
        try:
            state["params"] = interop.load_matching(state["params"], config.model.init_from)
        except (ValueError, OSError) as err:
            raise ConfigError(f"model.init_from={config.model.init_from}: {one_line(err)}") from err
    vocab = task_for(spec).vocab(dataset)
    meta = {"vocab": vocab.to_json() if vocab is not None else None, "model": model_signature(config, spec)}
    rundir = RunDir(run_dir) if run_dir is not None else None
    start, damaged = 0, {}
    if rundir is not None:
        state, start, damaged = resume_state(rundir.checkpoints, state, meta)
    return Run(config=config, dataset=dataset, task=task_for(spec), model=model, graphdef=graphdef, tx=tx,
               mesh=mesh, state=steps.place_state(state, mesh, spec.stateful), start=start, meta=meta,
               batch_size=batch_size, jit_train_step=steps.make_train_step(graphdef, tx, config, spec),
               jit_eval_step=steps.make_eval_step(graphdef, spec), rundir=rundir,
               damaged=damaged)
