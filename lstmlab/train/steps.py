"""The pure, jitted steps: ``train_step(state, batch) -> (state, metrics)`` and the evaluation step,
plus :func:`evaluate` over a whole split and the placement of state and batches on a device mesh.

The training state is a dict of arrays: ``step``, ``params``, ``opt_state``, ``carries`` (the recurrent
state carried between windows of stateful data), ``skipped`` (updates dropped by
``trainer.nonfinite=skip``), ``first_nonfinite`` (-1 or the first step whose loss or gradient norm was
not finite) and ``first_nonfinite_loss`` (whether that was the loss). Dropout keys are a pure function
of (seed, step), so a resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lstmlab import cells, diagnostics
from lstmlab.config import Config
from lstmlab.data import Dataset, DataSpec
from lstmlab.nn import RecurrentModel
from lstmlab.tasks import Task, task_for
from lstmlab.train import regularisers

State = dict[str, Any]


def initial_state(
    model: RecurrentModel, tx: optax.GradientTransformation, spec: DataSpec, batch_size: int
) -> tuple[Any, State]:
    """(graphdef, the training state at step 0) for ``model`` and ``tx``; the carries are those of
    ``batch_size`` streams for stateful data, None otherwise."""
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


def reset_carries(model: RecurrentModel, carries: Any, batch: dict[str, jax.Array]) -> Any:
    """Zero (or the learned initial value of) each stream's carry where ``batch["reset"]`` is set."""
    reset = batch["reset"]
    initial = model.initial_carries(reset.shape[0])
    return jax.tree.map(lambda c, z: cells.batch_where(reset, z.astype(c.dtype), c), carries, initial)


def make_train_step(
    graphdef: nnx.GraphDef, tx: optax.GradientTransformation, config: Config, spec: DataSpec
) -> Callable[[State, dict], tuple[State, dict]]:
    """The jitted, pure training step ``(state, batch) -> (state, metrics)``; ``state`` is donated."""
    task, stateful, nonfinite = task_for(spec), spec.stateful, config.trainer.nonfinite
    base_key = jax.random.PRNGKey(config.seed)
    optim_cfg = config.optim

    def train_step(state, batch):
        step = state["step"]
        dropout_key = jax.random.fold_in(base_key, step)

        def loss_fn(params):
            model = nnx.merge(graphdef, params)
            start = reset_carries(model, state["carries"], batch) if stateful else None
            carries, outputs = model(
                batch["inputs"], start, seq_lengths=batch.get("seq_lengths"), dropout_key=dropout_key
            )
            loss, sums = task.mean_loss(outputs, batch)
            if not optim_cfg.omega:
                return loss, (loss, carries, sums, {})
            omega = regularisers.model_omega(
                model,
                batch["inputs"],
                start,
                lambda out: task.mean_loss(out, batch)[0],
                seq_lengths=batch.get("seq_lengths"),
                exact=optim_cfg.omega_exact,
            )
            return loss + optim_cfg.omega * omega, (loss, carries, sums, {"reg/omega": omega})

        (_, (loss, carries, sums, reg)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        grad_metrics = diagnostics.grad_metrics(
            grads, params=state["params"], updates=updates, clip=optim_cfg.clip, clip_threshold=optim_cfg.clip_threshold
        )
        grad_norm = grad_metrics["grad/global_norm"]
        params = optax.apply_updates(state["params"], updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        first = (state["first_nonfinite"] < 0) & ~finite
        new = {
            "params": params,
            "opt_state": opt_state,
            "carries": jax.lax.stop_gradient(carries) if stateful else state["carries"],
        }
        if nonfinite == "skip":
            new = jax.tree.map(
                lambda n, o: jnp.where(finite, n, o), new, {k: state[k] for k in ("params", "opt_state", "carries")}
            )
        new.update(
            step=step + 1,
            skipped=state["skipped"] + (~finite).astype(jnp.int32),
            first_nonfinite=jnp.where(first, step, state["first_nonfinite"]),
            first_nonfinite_loss=jnp.where(first, ~jnp.isfinite(loss), state["first_nonfinite_loss"]),
        )
        metrics = {
            "train/loss": loss,
            "train/correct": sums["correct"],
            "train/count": sums["count"],
            **grad_metrics,
            **reg,
            "train/finite": finite,
        }
        return new, metrics

    return jax.jit(train_step, donate_argnums=0)


def make_eval_step(graphdef: nnx.GraphDef, spec: DataSpec) -> Callable:
    """Jitted ``(params, carries, batch) -> (sums, carries, outputs)``; no dropout."""
    task = task_for(spec)

    def eval_step(params, carries, batch):
        model = nnx.merge(graphdef, params)
        if spec.stateful:
            carries = reset_carries(model, carries, batch)
        carries, outputs = model(batch["inputs"], carries, seq_lengths=batch.get("seq_lengths"))
        return task.batch_sums(outputs, batch), carries, outputs

    return jax.jit(eval_step)


def evaluate(
    graphdef: nnx.GraphDef,
    params: Any,
    dataset: Dataset,
    split: str,
    *,
    max_batches: int = 0,
    eval_step: Callable | None = None,
    on_outputs: Callable[[np.ndarray, list], None] | None = None,
) -> dict[str, float]:
    """Metrics of ``params`` on a whole split (or its first ``max_batches`` batches): the task's
    metrics plus the data set's ``extra_metrics``. ``on_outputs(outputs, batches)``, if given, also
    receives the split's concatenated outputs and its batches (when the task keeps outputs)."""
    spec = dataset.spec
    task = task_for(spec)
    eval_step = eval_step or make_eval_step(graphdef, spec)
    keep_outputs = task.keeps_eval_outputs(spec)
    totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    carries, outputs, batches = None, [], []
    for index, batch in enumerate(dataset.eval_batches(split)):
        if max_batches and index >= max_batches:
            break
        if spec.stateful and carries is None:
            carries = nnx.merge(graphdef, params).initial_carries(batch["inputs"].shape[0])
        sums, carries, out = eval_step(params, carries, batch)
        carries = carries if spec.stateful else None  # separate sequences: every batch starts from zeros
        for k, v in jax.device_get(sums).items():
            totals[k] += float(v)
        if keep_outputs:
            outputs.append(np.asarray(out))
            batches.append(batch)
    metrics = task.metrics_from_sums(totals)
    if keep_outputs and outputs:
        metrics.update(task.extra_metrics(dataset, split, np.concatenate(outputs), batches))
        if on_outputs is not None:
            on_outputs(np.concatenate(outputs), batches)
    return metrics


def reduce_train(pending: list[dict], task: Task, tokens_per_step: int, steps: int, seconds: float) -> dict[str, float]:
    """Host means over the steps since the last log (``pending``: their metrics, on the host); steps
    whose update was not finite are left out, unless every step was."""
    stacked = [m for m in pending if bool(m["train/finite"])] or pending
    out = {"train/loss": float(np.mean([m["train/loss"] for m in stacked]))}
    correct = sum(float(m["train/correct"]) for m in stacked)
    count = sum(float(m["train/count"]) for m in stacked)
    out.update({f"train/{k}": v for k, v in task.train_metrics(out["train/loss"], correct, count).items()})
    for key in (k for k in stacked[0] if k.startswith(("grad/", "reg/"))):  # the mean over the log interval
        out[key] = float(np.mean([m[key] for m in stacked]))
    out["train/tokens_per_second"] = tokens_per_step * steps / max(seconds, 1e-9)
    return out


# ---------------------------------------------------------------------------------------------------
# Placement on a mesh


def place_state(state: State, mesh: Mesh, stateful: bool) -> State:
    """The training state on ``mesh``: replicated, except the carries of a stateful data set, which are
    split along ``"data"`` with the batch. Goes via the host, so the mesh may span several processes."""
    host = jax.device_get(state)
    placed = jax.device_put(host, NamedSharding(mesh, P()))
    if stateful:
        placed["carries"] = jax.device_put(host["carries"], NamedSharding(mesh, P("data")))
    return placed


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """A host batch (the same on every process) as global arrays split along the mesh axis ``"data"``;
    each process copies only the rows of its own devices."""
    by_batch = NamedSharding(mesh, P("data"))

    def put(rows: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(rows.shape, by_batch, lambda index: rows[index])

    return {k: put(np.asarray(v)) for k, v in batch.items()}


def host_local(tree: Any) -> Any:
    """``tree`` itself in one process; with several, this process's copy of the (replicated) arrays."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)
