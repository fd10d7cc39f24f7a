"""Checkpoints with orbax's CheckpointManager in ``run_dir/checkpoints``.

A checkpoint holds the training state as a flat dict of arrays (keys are the state's tree paths, so a
checkpoint can be read without the code that wrote it) and a JSON ``meta`` item (vocabulary, model
shape, ...). Kept: the last ``keep`` steps plus the best by validation loss. Orbax writes each step
into a temporary directory and renames it when complete, so a step directory that exists is whole.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger(__name__)


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """A pytree as {"a.b.0.c": array}; keys name the tree path."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = ".".join(_key_name(k) for k in path)
        flat[key] = np.asarray(jax.device_get(leaf))
    return flat


def _key_name(k: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def unflatten(template: Any, flat: dict[str, np.ndarray], source: str = "checkpoint") -> Any:
    """Fill ``template``'s structure with the arrays of ``flat``; ValueError naming the first key whose
    presence, shape or dtype differs (a checkpoint of another model)."""
    leaves = []
    expected = flatten_shapes(template)
    missing = sorted(set(expected) - set(flat))
    extra = sorted(set(flat) - set(expected))
    if missing or extra:
        what = f"has no {missing[0]!r}" if missing else f"has an unexpected {extra[0]!r}"
        raise ValueError(f"{source} does not match this model: it {what}")
    for key, (shape, dtype) in expected.items():
        value = flat[key]
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{source} does not match this model: {key} has shape {tuple(value.shape)}, "
                             f"the model needs {tuple(shape)}")
        leaves.append(value.astype(dtype))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def flatten_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out[".".join(_key_name(k) for k in path)] = (tuple(np.shape(leaf)), np.asarray(leaf).dtype
                                                     if not hasattr(leaf, "dtype") else leaf.dtype)
    return out


class Checkpointer:
    """Save and restore training state under ``directory`` (made absolute)."""

    def __init__(self, directory: str | Path, *, keep: int = 2, keep_best: bool = True,
                 read_only: bool = False):
        self.directory = Path(directory).absolute()
        keepers: list = [policies.LatestN(n=max(keep, 1))]
        if keep_best:
            keepers.append(policies.BestN(get_metric_fn=lambda m: m["val_loss"], reverse=True, n=1,
                                          keep_checkpoints_without_metrics=True))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keepers),
            enable_async_checkpointing=False,
            create=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any, meta: dict[str, Any], val_loss: float | None = None) -> None:
        metrics = None if val_loss is None else {"val_loss": float(val_loss)}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(flatten(state)),
                                                        meta=ocp.args.JsonSave(meta)),
                          metrics=metrics, force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, template: Any) -> tuple[Any, dict[str, Any]]:
        """The state saved at ``step`` in the structure of ``template``, and its meta dict."""
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                                      meta=ocp.args.JsonRestore()))
        flat = {k: np.asarray(v) for k, v in restored["state"].items()}
        source = f"checkpoint {self.directory / str(step)}"
        return unflatten(template, flat, source), dict(restored["meta"])

    def restore_params(self, step: int, template: Any) -> Any:
        """Only the ``params`` part of the state saved at ``step``, in the structure of ``template``."""
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        flat = {k[len("params."):]: np.asarray(v) for k, v in restored["state"].items()
                if k.startswith("params.")}
        return unflatten(template, flat, f"checkpoint {self.directory / str(step)}")

    def best_step(self) -> int | None:
        """The step with the lowest saved validation loss, if any step has one."""
        return self.manager.best_step()

    def read_meta(self, step: int) -> dict[str, Any]:
        restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
