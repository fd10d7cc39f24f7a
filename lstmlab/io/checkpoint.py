"""Checkpoints with orbax's CheckpointManager in ``run_dir/checkpoints``.

A checkpoint holds the training state as a flat dict of arrays (keys are the state's tree paths, so a
checkpoint can be read without the code that wrote it) and a JSON ``meta`` item (vocabulary, model
shape, ... and ``state_sha256``, a digest of the arrays). Kept: the last ``keep`` steps plus the best by
validation loss.

Crash safety:

- Orbax writes each step into a temporary directory (``<step>.orbax-checkpoint-tmp-*``) and renames it
  to ``<step>`` when complete (atomic on a POSIX file system), so a crash mid-save leaves only a
  temporary directory, which is never listed as a step and is removed by the next writer.
- Old steps are deleted only after the newer step is complete (orbax finalises a save, then applies the
  keep policy).
- :meth:`Checkpointer.read_latest_good` reads the newest step back and checks its digest; a step that
  cannot be read or whose arrays differ from the digest (truncated, overwritten) is reported in one
  line and the previous step is tried. :meth:`Checkpointer.set_aside` renames such a step to
  ``<step>.damaged`` so that training can write that step again.

Several processes (``jax.distributed``): every process calls :meth:`Checkpointer.save` (arrays split
across processes, such as the batch-sharded recurrent carries, are gathered with a collective), and
process 0 alone writes, with a CheckpointManager whose active processes are ``{0}`` (so orbax's
barriers do not wait for the others). Every process reads checkpoints on resume: the run directory
must be on a file system all hosts share.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

DIGEST_KEY = "state_sha256"


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """A pytree as {"a.b.0.c": array} of host NumPy arrays; keys name the tree path.

    An array split across processes is gathered first: with several processes every process must call
    this at the same point (it runs a collective)."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = _key(path)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable and not leaf.is_fully_replicated:
            from jax.experimental import multihost_utils

            leaf = multihost_utils.process_allgather(leaf, tiled=True)
        flat[key] = np.asarray(jax.device_get(leaf))
    return flat


def _key(path: tuple[Any, ...]) -> str:
    """The flat-state key of a pytree path: its names and indices joined by dots (``params.w_h``)."""
    return jax.tree_util.keystr(path, simple=True, separator=".")


def state_digest(flat: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) of a flat state: every key with its dtype, shape and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(flat):
        value = np.ascontiguousarray(flat[key])
        digest.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


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
            raise ValueError(
                f"{source} does not match this model: {key} has shape {tuple(value.shape)}, "
                f"the model needs {tuple(shape)}"
            )
        leaves.append(value.astype(dtype))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def flatten_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        out[_key(path)] = (tuple(np.shape(leaf)), dtype)
    return out


def disk_size(path: str | Path) -> int:
    """Bytes that ``path`` (a file, or a directory with everything under it, such as one checkpoint
    step) occupies on disk: allocated blocks where the platform reports them, else file sizes. Symbolic
    links are not followed; a file with several hard links is counted once; 0 if ``path`` is missing."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [Path(path)]
    while stack:
        current = stack.pop()
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        blocks = getattr(info, "st_blocks", None)
        total += blocks * 512 if blocks is not None else info.st_size
        if stat.S_ISDIR(info.st_mode):
            try:
                stack.extend(current.iterdir())
            except OSError:
                continue
    return total


def state_nbytes(state: Any) -> int:
    """Bytes of the arrays of ``state`` (any pytree; global sizes of sharded arrays, nothing gathered):
    an estimate of one checkpoint's size before the first one is written."""
    return int(sum(int(getattr(leaf, "nbytes", np.asarray(leaf).nbytes)) for leaf in jax.tree_util.tree_leaves(state)))


def checkpoints_at_once(keep: int, keep_best: bool = True) -> int:
    """The most checkpoint steps on disk at one moment: the ``keep`` latest, the best by validation loss
    (when ``keep_best``; it may be older than those), and the one being written, since old steps are
    deleted only after a new one is complete."""
    return max(int(keep), 1) + (1 if keep_best else 0) + 1


def _human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_checkpoint_space(
    directory: str | Path, keep: int, checkpoint_bytes: int, *, keep_best: bool = True, free_bytes: int | None = None
) -> None:
    """ValueError (one line naming ``checkpoint.keep``) if the checkpoints a run keeps cannot fit.

    Needed: :func:`checkpoints_at_once` times ``checkpoint_bytes`` (:func:`disk_size` of a written step,
    or :func:`state_nbytes` before the first save), less what ``directory``'s checkpoints already
    occupy (they are replaced, not added to). Free space: ``free_bytes`` if given, else
    ``shutil.disk_usage`` of ``directory`` (or its nearest existing parent)."""
    directory = Path(directory).absolute()
    size = max(int(checkpoint_bytes), 0)
    if free_bytes is None:
        probe = directory
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        free_bytes = shutil.disk_usage(probe).free
    in_use = disk_size(directory)
    count = checkpoints_at_once(keep, keep_best)
    need = count * size - in_use
    if size == 0 or need <= free_bytes:
        return
    extra = (1 if keep_best else 0) + 1
    fits = (free_bytes + in_use) // size - extra
    parts = f"{max(int(keep), 1)} kept{' + the best' if keep_best else ''} + 1 being written"
    valid = (
        f"valid here: checkpoint.keep <= {fits}, or free disk space"
        if fits >= 1
        else "free disk space (not even checkpoint.keep=1 fits)"
    )
    raise ValueError(
        f"checkpoint.keep={keep}: {count} checkpoints of {_human(size)} ({parts}) need "
        f"{_human(need)} more than {directory} holds now, but its disk has {_human(free_bytes)} "
        f"free; {valid}"
    )


class DamagedCheckpointError(ValueError):
    """A checkpoint step that cannot be read back whole; the message is one line naming it."""


class Checkpointer:
    """Save and restore training state under ``directory`` (made absolute).

    ``read_only``: never write (inspection, sampling). With several processes only process 0 writes;
    on the others the instance behaves as read-only except that :meth:`save` still joins the gather.
    """

    def __init__(self, directory: str | Path, *, keep: int = 2, keep_best: bool = True, read_only: bool = False):
        ocp = _orbax()
        policies = ocp.checkpoint_managers
        self.directory = Path(directory).absolute()
        process = jax.process_index()
        self.writes = not read_only and process == 0
        keepers: list = [policies.LatestN(n=max(keep, 1))]
        if keep_best:  # steps without a validation loss are not kept by this rule, only by LatestN
            keepers.append(
                policies.BestN(
                    get_metric_fn=lambda m: m["val_loss"], reverse=True, n=1, keep_checkpoints_without_metrics=False
                )
            )
        if self.writes:
            self.directory.mkdir(parents=True, exist_ok=True)
        with _quiet_absl(not self.writes):  # orbax notes that a reader is read-only
            options = ocp.CheckpointManagerOptions(
                preservation_policy=policies.AnyPreservationPolicy(keepers),
                enable_async_checkpointing=False,
                create=False,  # made above: orbax does not create it when active_processes is set
                read_only=not self.writes,
                cleanup_tmp_directories=self.writes,
                # This process alone: no barrier waits for processes that do not write.
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    primary_host=process, active_processes={process}
                ),
            )
            self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        """The complete steps on disk (a reader looks again each time; a writer knows its own)."""
        if not self.writes:
            with _quiet_absl():
                self.manager.reload()
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any, meta: dict[str, Any], val_loss: float | None = None) -> None:
        """Write ``state`` (any pytree of arrays) and the JSON-able ``meta`` as step ``step``; returns
        when the step is complete on disk. Every process must call it (see the module doc)."""
        flat = flatten(state)
        if not self.writes:
            return
        ocp = _orbax()
        metrics = None if val_loss is None else {"val_loss": float(val_loss)}
        meta = {**meta, DIGEST_KEY: state_digest(flat)}
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
            metrics=metrics,
            force=True,
        )
        self.manager.wait_until_finished()

    def read(self, step: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The flat state and meta of ``step``, checked against the digest saved with them.
        DamagedCheckpointError (one line) if the step cannot be read or its arrays differ."""
        ocp, where = _orbax(), self.directory / str(step)
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
            )
            flat = {k: np.asarray(v) for k, v in restored["state"].items()}
            meta = dict(restored["meta"])
        except Exception as err:  # orbax/tensorstore raise many types for a damaged step
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            raise DamagedCheckpointError(f"checkpoint {where} is damaged ({reason[:200]})") from None
        saved = meta.pop(DIGEST_KEY, None)
        if saved is not None and saved != state_digest(flat):
            raise DamagedCheckpointError(
                f"checkpoint {where} is damaged (its arrays do not match the digest saved with them)"
            )
        return flat, meta

    def read_latest_good(self) -> tuple[int | None, dict[str, np.ndarray], dict[str, Any], dict[int, str]]:
        """(step, flat state, meta) of the newest step that reads back whole, and {step: one-line
        report} of the newer steps that do not; (None, {}, {}, reports) when no step is good."""
        damaged: dict[int, str] = {}
        for step in reversed(self.steps()):
            try:
                flat, meta = self.read(step)
            except DamagedCheckpointError as err:
                damaged[step] = str(err)
                continue
            return step, flat, meta, damaged
        return None, {}, {}, damaged

    def restore(self, step: int, template: Any) -> tuple[Any, dict[str, Any]]:
        """The state saved at ``step`` in the structure of ``template``, and its meta dict."""
        flat, meta = self.read(step)
        return unflatten(template, flat, f"checkpoint {self.directory / str(step)}"), meta

    def restore_params(self, step: int, template: Any) -> Any:
        """Only the ``params`` part of the state saved at ``step``, in the structure of ``template``."""
        ocp = _orbax()
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        flat = {k[len("params.") :]: np.asarray(v) for k, v in restored["state"].items() if k.startswith("params.")}
        return unflatten(template, flat, f"checkpoint {self.directory / str(step)}")

    def set_aside(self, step: int) -> Path:
        """Rename the (damaged) step directory to ``<step>.damaged`` (``.damaged-2``, ... if taken), so
        that it is no longer a step and training can write that step again. Returns the new path."""
        source = self.directory / str(step)
        target = self.directory / f"{step}.damaged"
        n = 1
        while target.exists():
            n += 1
            target = self.directory / f"{step}.damaged-{n}"
        source.rename(target)
        self.manager.reload()
        return target

    def step_size(self, step: int) -> int:
        """Bytes that checkpoint ``step`` occupies on disk (see :func:`disk_size`)."""
        return disk_size(self.directory / str(step))

    def best_step(self) -> int | None:
        """The step with the lowest saved validation loss, if any step has one."""
        return self.manager.best_step()

    def read_meta(self, step: int) -> dict[str, Any]:
        ocp = _orbax()
        restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        meta = dict(restored["meta"])
        meta.pop(DIGEST_KEY, None)
        return meta

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _orbax():
    """``orbax.checkpoint``, imported on first use: it takes most of a second, which a run that fails
    its checks before it writes anything need not pay."""
    import orbax.checkpoint

    return orbax.checkpoint


@contextlib.contextmanager
def _quiet_absl(quiet: bool = True):
    """Orbax's absl warnings raised to errors for the duration (its notes on read-only managers)."""
    logger = logging.getLogger("absl")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_quieted = False


def quiet_closed_loop_callbacks() -> None:
    """After a failed read, tensorstore's worker threads may still call back into orbax's closed asyncio
    loop; Python prints each such ``RuntimeError: Event loop is closed`` as a traceback through
    ``sys.unraisablehook``. Drop exactly those, so a damaged checkpoint is reported in one line.

    This replaces a process-wide hook: the command line installs it; the library never does."""
    global _quieted
    if _quieted:
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    _quieted = True
