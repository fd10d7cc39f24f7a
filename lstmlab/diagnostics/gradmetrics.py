"""The gradient metrics a trainer logs: norms per parameter, per layer and overall, and what the
clipping of ``optim.clip`` (global_norm | value | none; applied by :func:`lstmlab.train.optim.clipping`)
does to them, as a flat dict of ``grad/...`` keys (:func:`grad_metrics`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.config import CLIPS

Array = jax.Array
PyTree = Any


def check_clip(clip: str, clip_threshold: float | None) -> None:
    """ValueError unless ``clip`` is a mode of :data:`CLIPS` with a positive threshold (unless none)."""
    if clip not in CLIPS:
        raise ValueError(f"optim.clip={clip!r} is not a clipping mode; valid: {', '.join(CLIPS)}")
    if clip != "none" and not (clip_threshold is not None and clip_threshold > 0):
        raise ValueError(f"optim.clip_threshold={clip_threshold!r} must be > 0 for clip={clip!r}")


def global_norm(tree: PyTree) -> Array:
    """Euclidean norm of all leaves of ``tree`` together (a scalar, float32 or wider)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(
        sum(jnp.sum(jnp.square(leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32)))) for leaf in leaves)
    )


def clip_factor(norm: Array, clip_threshold: float) -> Array:
    """The global-norm clipping factor ``min(1, clip_threshold / norm)`` (1 for a zero norm)."""
    return jnp.where(norm > clip_threshold, clip_threshold / jnp.maximum(norm, 1e-30), 1.0)


def clip_grads(grads: PyTree, clip: str, clip_threshold: float | None = None) -> PyTree:
    """``grads`` clipped as ``optim.clip`` clips them before the optimiser (for the metrics)."""
    check_clip(clip, clip_threshold)
    if clip == "global_norm":
        factor = clip_factor(global_norm(grads), clip_threshold)
        return jax.tree.map(lambda g: g * factor.astype(g.dtype), grads)
    if clip == "value":
        return jax.tree.map(lambda g: jnp.clip(g, -clip_threshold, clip_threshold), grads)
    return grads


def param_name(path: tuple[Any, ...]) -> str:
    """A readable "/"-joined name for a pytree key path.

    An integer component ``i`` becomes ``layer{i}`` (a preceding ``layers`` is dropped) and a trailing
    ``value`` attribute (Flax NNX ``Param``) is dropped: ``rnn/layers/0/w_h/value`` -> ``rnn/layer0/w_h``;
    a list of per-layer dicts gives ``layer0/w_h``.
    """
    parts = []
    for key in path:
        name = jax.tree_util.keystr((key,), simple=True)
        if isinstance(getattr(key, "key", getattr(key, "idx", None)), int):
            if parts and parts[-1] == "layers":
                parts.pop()
            name = f"layer{name}"
        parts.append(name)
    if len(parts) > 1 and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


def grad_metrics(
    grads: PyTree,
    *,
    params: PyTree | None = None,
    updates: PyTree | None = None,
    clip: str = "none",
    clip_threshold: float | None = None,
) -> dict[str, Array]:
    """Gradient metrics to log, as a flat dict of scalar arrays (jit-compatible).

    Args:
      grads: the raw gradients (before clipping). params: the parameters the update applies to.
      updates: the optimiser's final updates (what is added to params), e.g. from ``optax.chain``.
      clip, clip_threshold: the clipping mode in use (see the module docstring).

    Keys (names from :func:`param_name`; norms are Euclidean, in loss units per parameter unit):

    * ``grad/global_norm``: ||g|| before clipping. ``grad/clipped_norm``: ||clip(g)||.
    * ``grad/clip_factor``: ``min(1, clip_threshold / ||g||)`` for ``global_norm``;
      ``||clip(g)|| / ||g||`` for ``value``; 1 for ``none``.
    * ``grad/<param>``: each parameter's gradient norm, e.g. ``grad/rnn/layer0/w_h``.
    * ``grad/<module>``: the norm of each module's gradients together (the parameters' parent paths,
      e.g. ``grad/rnn/layer0``, ``grad/head``): per-layer norms.
    * with params and updates: ``grad/param_norm`` ||params||, ``grad/update_norm`` ||update||, and
      ``grad/update_ratio`` = ||update|| / ||params|| (dimensionless).

    The trainer computes these inside its jitted step and logs each one's mean over the steps of a log
    interval (``trainer.log_every``).
    """
    check_clip(clip, clip_threshold)
    norm = global_norm(grads)
    clipped_norm = global_norm(clip_grads(grads, clip, clip_threshold))
    if clip == "global_norm":
        factor = clip_factor(norm, clip_threshold)
    else:
        factor = jnp.where(norm > 0, clipped_norm / jnp.maximum(norm, 1e-30), 1.0)
    metrics = {"grad/global_norm": norm, "grad/clipped_norm": clipped_norm, "grad/clip_factor": factor}

    group_squares: dict[str, Array] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = param_name(path)
        leaf_norm = global_norm(leaf)
        metrics[f"grad/{name}"] = leaf_norm
        if "/" in name:
            group = name.rsplit("/", 1)[0]
            group_squares[group] = group_squares.get(group, 0.0) + jnp.square(leaf_norm)
    for group, squares in group_squares.items():
        metrics.setdefault(f"grad/{group}", jnp.sqrt(squares))

    if params is not None and updates is not None:
        param_norm, update_norm = global_norm(params), global_norm(updates)
        metrics["grad/param_norm"] = param_norm
        metrics["grad/update_norm"] = update_norm
        metrics["grad/update_ratio"] = update_norm / jnp.maximum(param_norm, 1e-30)
    return metrics
