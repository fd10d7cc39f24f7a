"""From a config to one :class:`Run`: data, model, optimiser, mesh, training state, the step it starts
at and the run directory. :func:`setup` checks everything and reads an existing checkpoint, but writes
nothing (except, with ``lock=True``, the run directory's ``.lock``), so bad input leaves the run
directory as it was. Checked before anything is written: every config section, the data, sampling
against the data's vocabulary, wandb credentials for ``logger.wandb.mode=online``, the run directory's
entries (:meth:`~lstmlab.io.rundir.RunDir.check`), disk space for ``checkpoint.keep`` checkpoints, and on
resume the resume policy (:func:`check_resume`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from lstmlab import cells, interop
from lstmlab import data as data_lib
from lstmlab.config import (
    RESUME_FREE_KEYS,
    CellConfig,
    Config,
    ConfigError,
    flat_keys,
    nested,
    one_line,
    resume_changes,
)
from lstmlab.io.checkpoint import Checkpointer, check_checkpoint_space, disk_size, state_nbytes, unflatten
from lstmlab.io.lock import RunLock
from lstmlab.io.rundir import CONFIG, RunDir
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
        raise ConfigError(
            f"data.{unknown[0]} is not an option of data set {name!r}; "
            f"valid: {', '.join(v for v in valid if v != 'seed')}"
        )
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
            c.name,
            output_size=spec.output_size,
            per_step=task_for(spec).per_step,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            dropout=m.dropout,
            bidirectional=m.bidirectional,
            vocab_size=spec.vocab_size,
            input_size=spec.input_size,
            embed_size=m.embed_size,
            pooling=m.pooling,
            conv_channels=tuple(m.conv_channels),
            conv_kernels=tuple(m.conv_kernels),
            learn_initial_carry=m.learn_initial_carry,
            impl=m.impl,
            rngs=nnx.Rngs(config.seed if seed is None else seed),
            input_init=c.input_init,
            recurrent_scale=c.recurrent_scale,
            forget_bias=c.forget_bias,
            chrono_tmax=c.chrono_tmax,
            **extra,
        )
    except ValueError as err:
        raise ConfigError(one_line(err)) from err


def param_count(config: Config, spec: data_lib.DataSpec, hidden_size: int | None = None) -> int:
    """The number of parameters of the model :func:`build_model` makes for ``spec`` (with ``hidden_size``
    instead of ``model.hidden_size`` if given), counted on the abstract model (``nnx.eval_shape``):
    nothing is allocated or initialised."""
    if hidden_size is not None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, hidden_size=hidden_size))
    model = nnx.eval_shape(lambda: build_model(config, spec))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def fit_param_budget(config: Config, spec: data_lib.DataSpec) -> int:
    """The largest ``hidden_size`` whose model (:func:`param_count`) has at most ``model.param_budget``
    parameters; ConfigError (naming the smallest model's count) if even ``hidden_size=1`` does not fit."""
    budget = config.model.param_budget
    smallest = param_count(config, spec, 1)
    if smallest > budget:
        raise ConfigError(
            f"model.param_budget={budget} is below the smallest {config.cell.name} model of "
            f"{config.model.num_layers} layer(s) (hidden_size=1 has {smallest} parameters); valid: >= {smallest}"
        )
    low, high = 1, 2
    while param_count(config, spec, high) <= budget:  # the count grows with hidden_size: double, then bisect
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if param_count(config, spec, mid) <= budget else (low, mid)
    return low


def apply_param_budget(config: Config, spec: data_lib.DataSpec) -> None:
    """With ``model.param_budget`` set, set ``config.model.hidden_size`` (which ``config.yaml`` records)
    to :func:`fit_param_budget`; without it, change nothing."""
    if config.model.param_budget is not None:
        config.model.hidden_size = fit_param_budget(config, spec)


def memory_estimate(config: Config, spec: data_lib.DataSpec, batch_shape: tuple[int, int]) -> int:
    """A lower bound on the bytes a training step needs, in float32: the parameters with their
    gradients and two optimiser moments, and per layer and direction the activations the backward pass
    keeps (about eight H-sized vectors per step and row: the gates, the cell and the output)."""
    batch, steps = batch_shape
    m = config.model
    directions = 2 if m.bidirectional else 1
    activations = m.num_layers * directions * steps * batch * 8 * m.hidden_size
    return 4 * (4 * param_count(config, spec) + activations)


def available_memory() -> int | None:
    """Bytes free for a run: the first device's memory limit on an accelerator, else the host's
    available physical memory; None where neither can be read."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        limit = (device.memory_stats() or {}).get("bytes_limit")
        return int(limit) if limit else None
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: Config, spec: data_lib.DataSpec, batch_shape: tuple[int, int]) -> None:
    """ConfigError (one line, before anything is compiled or written) when the run cannot fit: its
    :func:`memory_estimate` exceeds the memory available (:func:`available_memory`)."""
    need, have = memory_estimate(config, spec, batch_shape), available_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"model.hidden_size={config.model.hidden_size} with model.num_layers={config.model.num_layers} and "
            f"batches of {batch_shape[0]} x {batch_shape[1]} steps needs at least {need / 2**30:.1f} GiB, more than "
            f"the {have / 2**30:.1f} GiB available; valid: a smaller model.hidden_size, data.batch_size or data.seq_len"
        )


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
        raise ConfigError(
            f"trainer.devices={devices} must be in [1, {len(available)}] (local devices: {len(available)})"
        )
    if batch_size % (n * processes):
        per = f"trainer.devices={n}" + (f" x {processes} processes" if processes > 1 else "")
        raise ConfigError(f"data.batch_size={batch_size} must be divisible by the number of devices ({per})")
    chosen = [
        d
        for p in range(processes)
        for d in sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:n]
    ]
    return Mesh(np.array(chosen), ("data",))


def model_signature(config: Config, spec: data_lib.DataSpec) -> dict[str, Any]:
    """What a checkpoint records about the model it was trained with (see :func:`model_mismatch`)."""
    return {
        "cell": asdict(config.cell),
        "model": asdict(config.model),
        "kind": spec.kind,
        "vocab_size": spec.vocab_size,
        "input_size": spec.input_size,
        "output_size": spec.output_size,
    }


def model_mismatch(saved: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """The first key of the model's structure (not its initialisation or dropout) that differs
    between two :func:`model_signature` dicts, as "key=saved (this config: current)"."""
    if not saved:
        return None
    keys = [
        "cell.name",
        "model.hidden_size",
        "model.num_layers",
        "model.bidirectional",
        "model.embed_size",
        "model.conv_channels",
        "model.conv_kernels",
        "model.learn_initial_carry",
        "kind",
        "vocab_size",
        "input_size",
        "output_size",
    ]
    keys += [f"cell.{k}" for k in cells.option_names(current["cell"]["name"]) if k in current["cell"]]
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


def resume_state(
    ckpt_dir: Path, state: dict[str, Any], meta: dict[str, Any]
) -> tuple[dict[str, Any], int, dict[int, str], dict[str, Any]]:
    """``state`` filled from the newest good checkpoint in ``ckpt_dir``, that checkpoint's step
    (``state`` itself and 0 when there is none), {step: one-line report} of the newer checkpoints
    that are damaged, and the checkpoint's meta ({} without one). Reads only. ConfigError if the
    checkpoint was trained on another vocabulary or another model than ``meta`` describes."""
    if not (ckpt_dir.is_dir() and any(ckpt_dir.iterdir())):
        return state, 0, {}, {}
    reader = Checkpointer(ckpt_dir, read_only=True)
    try:
        step, flat, saved, damaged = reader.read_latest_good()
    finally:
        reader.close()
    if step is None:
        return state, 0, damaged, {}
    where = ckpt_dir / str(step)
    if saved.get("vocab") != meta["vocab"]:
        raise ConfigError(
            f"checkpoint {where} was trained with another vocabulary than this data; "
            "use a new hydra.run.dir or the original data"
        )
    mismatch = model_mismatch(saved.get("model"), meta["model"])
    if mismatch:
        raise ConfigError(
            f"checkpoint {where} does not match this model: it was trained with {mismatch}; "
            "use a new hydra.run.dir or the original model config"
        )
    try:
        return unflatten(state, flat, f"checkpoint {where}"), step, damaged, saved
    except ValueError as err:
        raise ConfigError(one_line(err) + "; use a new hydra.run.dir or the original model config") from err


def check_sampling(config: Config, dataset: data_lib.Dataset) -> None:
    """ConfigError unless ``sample.*`` works with the data's vocabulary (language-model data with
    ``sample.enabled`` and ``sample.length > 0``): ``sample.prime`` non-empty and made of its characters,
    ``sample.top_k`` at most its size."""
    s = config.sample
    vocab = task_for(dataset.spec).vocab(dataset)
    if vocab is None or not (s.enabled and s.length):
        return
    if not s.prime:
        raise ConfigError("sample.prime is empty; valid: at least one character of the data's vocabulary")
    try:
        vocab.encode(s.prime)
    except ValueError as err:
        chars = vocab.chars
        hint = repr(chars[:40] + ("..." if len(chars) > 40 else ""))
        raise ConfigError(
            f"sample.prime={s.prime!r}: {one_line(err)}; valid: characters of {hint} (or sample.enabled=false)"
        ) from None
    if s.top_k > vocab.size:
        raise ConfigError(
            f"sample.top_k={s.top_k} is more than the data's {vocab.size}-character vocabulary; "
            f"valid: 0 (off) to {vocab.size}"
        )


def check_logger(config: Config) -> None:
    """ConfigError if ``logger.wandb.mode`` resolves to ``online`` without wandb credentials."""
    from lstmlab.io.trackers import wandb_login_problem

    if config.logger.wandb.resolved_mode() == "online":
        problem = wandb_login_problem()
        if problem:
            raise ConfigError(problem)


def _with_defaults(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A resolved config with the keys it does not name set to their defaults, which is what the run is
    built with (a config written before a key existed, or built in Python, names fewer): the schema's
    keys (:class:`~lstmlab.config.Config`) and its data set's options."""
    if not isinstance(config, dict):
        return config
    schema = flat_keys(asdict(Config()))
    schema = {k: v for k, v in schema.items() if not k.startswith("data.")}  # the data set's own, below
    config = nested({**schema, **flat_keys(config)})
    data = config.get("data")
    if not isinstance(data, dict) or data.get("name") not in data_lib.names():
        return config
    return {**config, "data": {**data_lib.defaults(data["name"]), **data}}


def _config_disagrees(rundir: RunDir, trained: dict[str, Any] | None) -> bool:
    """Whether the run directory's ``config.yaml`` exists but cannot be read, or names a value that
    alters the run other than the config the checkpoint records (``trained``) it was trained with."""
    if trained is None or not (rundir.path / CONFIG).exists():
        return False
    on_disk = rundir.read_config()
    return on_disk is None or bool(resume_changes(_with_defaults(on_disk), _with_defaults(trained)))


def check_resume(
    config: Config, current: dict[str, Any], rundir: RunDir, start: int, trained: dict[str, Any] | None = None
) -> dict[str, tuple[Any, Any]]:
    """The resume policy, for a run resuming from step ``start`` > 0 with the resolved config
    ``current``. ``trained``: the config the checkpoint records it was trained with (the truth; a
    checkpoint written before checkpoints kept it has none, and then ``config.yaml`` is read, which
    must be intact). Returns the changed keys that alter the run's trajectory and are allowed by
    ``resume.allow_changes`` ({key: (saved, current)}). ConfigError (one line naming the keys and saved
    values) for such a change not allowed, for ``trainer.max_steps`` below ``start``, and for a damaged
    ``config.yaml`` that is all there is to compare with. Keys that may change freely:
    :data:`lstmlab.config.RESUME_FREE_KEYS`."""
    saved = trained if trained is not None else rundir.read_config()
    if saved is None:
        raise ConfigError(
            f"{rundir.path / CONFIG} is damaged or missing and the checkpoint at step {start} does not record "
            "the config it was trained with, so a change cannot be ruled out; restore the file or use a new "
            "hydra.run.dir"
        )
    changes = resume_changes(_with_defaults(saved), _with_defaults(current))
    allowed = set(config.resume.allow_changes)
    refused = {k: v for k, v in changes.items() if k not in allowed}
    if refused:
        listed = ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in refused.items())
        keys = ",".join(refused)
        raise ConfigError(
            f"resuming {rundir.path} from step {start} would change what the run trained with: "
            f"saved {listed}; rerun with the saved values, a new hydra.run.dir, or "
            f"+resume.allow_changes=[{keys}] to continue with the change recorded "
            f"(free to change: {', '.join(RESUME_FREE_KEYS)})"
        )
    if config.trainer.max_steps < start:
        raise ConfigError(
            f"trainer.max_steps={config.trainer.max_steps} is below step {start} of the checkpoint "
            f"in {rundir.checkpoints}; valid: trainer.max_steps >= {start}"
        )
    return changes


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
    lock: RunLock | None = None  # held from before the checkpoints were read (setup(lock=True))
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # allowed by resume.allow_changes
    finished: dict[str, Any] | None = None  # the saved summary of a run already at trainer.max_steps
    checkpoint_bytes: int = 0  # one checkpoint's size: on disk if one is, else the state's arrays
    unlogged: list[dict[str, Any]] = field(default_factory=list)  # the checkpoint's steps not yet logged
    config_disagrees: bool = False  # config.yaml is damaged or says other than the checkpoint's record

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


def setup(config: Config, run_dir: str | Path | None = None, *, lock: bool = False) -> Run:
    """Check ``config``, build the run and, when ``run_dir`` holds checkpoints, restore the newest good
    one. Joins the other processes of a ``jax.distributed`` run. Writes nothing, except that with
    ``lock`` process 0 takes the run directory's lock (:class:`~lstmlab.io.lock.RunLock`; raises
    :class:`~lstmlab.io.lock.RunLockedError` if another process holds it) before it reads the
    checkpoints; the caller releases ``run.lock``. On resume, ``config`` (as ``config.yaml``
    would hold it) is compared with the saved one."""
    config.check()  # every section checks itself (lstmlab.config); the data keys are checked next
    rundir = RunDir(run_dir) if run_dir is not None else None
    if rundir is not None:
        rundir.check()
    if config.distributed.process_id in (None, 0):
        check_logger(config)
    dataset = build_dataset(config)
    check_sampling(config, dataset)
    spec = dataset.spec
    distributed.initialize(config.distributed)  # joins the other processes; before JAX uses a device
    apply_param_budget(config, spec)
    check_memory(config, spec, dataset.train_batch(0)["inputs"].shape[:2])
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
    meta = {
        "vocab": vocab.to_json() if vocab is not None else None,
        "model": model_signature(config, spec),
        "config": asdict(config),  # what the run trained with, whatever happens to config.yaml
    }
    start, damaged, held, changes, finished, saved = 0, {}, None, {}, None, {}
    checkpoint_bytes = state_nbytes(state)
    if rundir is not None:
        primary = distributed.is_primary()
        if lock and primary:
            held = RunLock(rundir.path).acquire()
        try:
            state, start, damaged, saved = resume_state(rundir.checkpoints, state, meta)
            if start:
                changes = check_resume(config, asdict(config), rundir, start, saved.get("config"))
                checkpoint_bytes = max(checkpoint_bytes, disk_size(rundir.checkpoints / str(start)))
                if start >= config.trainer.max_steps and not changes:
                    finished = rundir.read_summary()
            elif not damaged and rundir.history() and not config.resume.start_over:
                raise ConfigError(
                    f"run directory {rundir.path} holds a run's records ({', '.join(rundir.history())}) but no "
                    "checkpoint to resume from; use a new hydra.run.dir, or add +resume.start_over=true to "
                    "start again from step 0 (the old records are kept as NAME.previous)"
                )
            if primary and finished is None:
                try:
                    check_checkpoint_space(
                        rundir.checkpoints,
                        config.checkpoint.keep,
                        checkpoint_bytes,
                        keep_best=config.checkpoint.keep_best,
                    )
                except ValueError as err:
                    raise ConfigError(one_line(err)) from None
        except BaseException:
            if held is not None:
                held.release()
            raise
    return Run(
        config=config,
        dataset=dataset,
        task=task_for(spec),
        model=model,
        graphdef=graphdef,
        tx=tx,
        mesh=mesh,
        state=steps.place_state(state, mesh, spec.stateful),
        start=start,
        meta=meta,
        batch_size=batch_size,
        jit_train_step=steps.make_train_step(graphdef, tx, config, spec),
        jit_eval_step=steps.make_eval_step(graphdef, spec),
        rundir=rundir,
        damaged=damaged,
        lock=held,
        changes=changes,
        finished=finished,
        checkpoint_bytes=checkpoint_bytes,
        unlogged=list(saved.get("unlogged", [])),
        config_disagrees=rundir is not None and _config_disagrees(rundir, saved.get("config")),
    )
