"""Per-timestep gradient norms during training (config group ``diagnostics``).

Every ``diagnostics.every`` steps (and at step 0, before any update) the trainer probes a fixed batch,
the first ``diagnostics.batch_size`` examples of training batch 0, and records for every layer of the
model ``||dL/dh_t||`` at every step t (and ``||dL/dc_t||`` for the LSTM family), all in one backward
pass (:func:`lstmlab.diagnostics.state_grad_norms`), without dropout. ``L`` is the task's loss
(:meth:`lstmlab.tasks.Task.batch_sums`, mean per counted item, in nats or squared error) on the
model's own head, taken

* ``diagnostics.loss=last``: at each sequence's last valid step only (per-sequence tasks: the head on
  the last step's output, which is the training loss when ``model.pooling=last``);
* ``diagnostics.loss=all``: at every valid step (per-step tasks: the training loss; per-sequence
  tasks: the head on every step's output, each step scored against the sequence's target).

Curves are batch means of per-example norms, aligned at each sequence's end and cut to the shortest
probe sequence (L steps), so entry t of a curve is at distance ``L - 1 - t`` from every example's last
step. With ``diagnostics.jacobian=full`` (or ``h``) each probe also records the singular values of
``ds_T/ds_{T-k}`` (:func:`lstmlab.diagnostics.state_jacobian_spectra`) along the probe batch's own
trajectories (its first L steps), as their geometric mean over the examples.

Written to the run directory: ``gradnorms.npz`` (after every probe, so it survives a crash; on resume
it is cut back to the restored step), and at the end ``plots/gradnorm_heatmap.png`` (log norm over
step t and training step) and ``plots/gradnorm_decay.png``. Logged at each probe step: ``diag/loss``
(the probe loss), ``diag/layer{l}/{h,c}_first`` (the norm at the first entry, distance L - 1),
``..._last`` (at the loss; ``c_last`` is 0 for a loss at the last step, as ``c_T`` reaches it only
through ``h_T``, which is computed before) and ``..._rate`` (the fitted per-step decay rate, below 1
vanishing, above 1 exploding), and with Jacobians ``diag/layer{l}/jacobian_rate`` (the same fit of the
largest singular value against k). A probe costs less than a training step (one forward and backward
pass of the probe batch), so it can stay on; Jacobians add T*B*S forward steps and T*B SVDs of S x S
matrices, far more than a training step.

``gradnorms.npz`` keys: ``steps`` (N,) training steps; ``layer{l}/h`` and ``layer{l}/c`` (N, L) norm
curves; ``jacobian/layer{l}`` (N, K, S) singular values for k = 1..K (K = L; S the state size), row
k-1 for distance k; ``loss`` the loss setting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lstmlab import cells, diagnostics
from lstmlab.config import Config
from lstmlab.data import Batch, Dataset, DataSpec
from lstmlab.io.rundir import RunDir
from lstmlab.tasks import task_for

log = logging.getLogger(__name__)


def check(config: Config) -> None:
    """ConfigError naming the first bad ``diagnostics.*`` value."""
    config.diagnostics.check(config.model.bidirectional)


def probe_batch(dataset: Dataset, batch_size: int) -> Batch:
    """The fixed probe batch: the first ``batch_size`` examples (0 = all) of training batch 0."""
    batch = dataset.train_batch(0)
    n = batch["inputs"].shape[0] if batch_size == 0 else min(batch_size, batch["inputs"].shape[0])
    return {key: np.asarray(value)[:n] for key, value in batch.items()}


def probe_lengths(batch: Batch) -> np.ndarray:
    """(B,) valid steps of each probe sequence (all T when the batch has no ``seq_lengths``)."""
    B, T = batch["inputs"].shape[:2]
    return np.asarray(batch["seq_lengths"]) if "seq_lengths" in batch else np.full((B,), T)


def probe_loss(model, kind: str, hs: jax.Array, batch: dict[str, jax.Array], loss: str) -> jax.Array:
    """The scalar loss of the top layer's outputs ``hs`` (T, B, H) through the model's head: the mean
    per counted item of :meth:`lstmlab.tasks.Task.batch_sums` at the last valid step or all steps."""
    T, B = hs.shape[:2]
    lengths = batch["seq_lengths"] if "seq_lengths" in batch else jnp.full((B,), T)
    task = task_for(kind)
    if task.per_step:
        mask = batch["mask"].astype(jnp.float32)
        if loss == "last":
            last = T - 1 - jnp.argmax(mask[:, ::-1] > 0, axis=1)  # each example's last counted step
            mask = mask * jax.nn.one_hot(last, T, dtype=mask.dtype)
        outputs = model.head(jnp.swapaxes(hs, 0, 1))  # (B, T, K)
        sums = task.batch_sums(outputs, {**batch, "mask": mask})
    elif loss == "last":
        last = jnp.take_along_axis(hs, (lengths - 1)[None, :, None], axis=0)[0]  # (B, H)
        sums = task.batch_sums(model.head(last), batch)
    else:
        outputs = model.head(jnp.swapaxes(hs, 0, 1)).reshape(B * T, -1)  # (B*T, K)
        every_step = {"weights": cells.time_mask(T, lengths).T.reshape(B * T).astype(jnp.float32)}
        if "labels" in batch:
            every_step["labels"] = jnp.repeat(batch["labels"], T)
        if "targets" in batch:
            every_step["targets"] = jnp.repeat(batch["targets"], T, axis=0)
        sums = task.batch_sums(outputs, every_step)
    return sums["loss"] / jnp.maximum(sums["count"], 1.0)


def make_probe(
    graphdef, spec: DataSpec, batch: Batch, *, loss: str = "last", jacobian: str = "none"
) -> Callable[[Any], dict[str, np.ndarray]]:
    """A function ``params -> curves`` for the fixed probe ``batch`` (see the module docstring).

    Curves: ``layer{l}/h``, ``layer{l}/c`` (L,) batch-mean norms (end-aligned, the last entry at the
    loss), with Jacobians ``jacobian/layer{l}`` (K, S), and ``loss`` the probe loss (a scalar).
    """
    lengths = probe_lengths(batch)
    shortest = int(lengths.min())
    arrays = {key: jnp.asarray(value) for key, value in batch.items() if key != "reset"}

    @jax.jit
    def probe(params, arrays):
        model = nnx.merge(graphdef, params)
        xs = jnp.swapaxes(model.features(arrays["inputs"]), 0, 1)  # (T, B, D)
        layers = [(layer.cell, layer.cell_params(), layer.options) for layer in (model.rnn.layers if model.rnn else [])]
        carries = model.initial_carries(xs.shape[1])
        seq_lengths = arrays.get("seq_lengths")
        result = diagnostics.state_grad_norms(
            layers,
            xs,
            lambda hs: probe_loss(model, spec.kind, hs, arrays, loss),
            seq_lengths=seq_lengths,
            carries=carries,
        )
        curves = {
            key: curve[-shortest:] for key, curve in diagnostics.norm_curves(result, seq_lengths, align="end").items()
        }
        curves["loss"] = result.loss
        if jacobian != "none":
            spectra = diagnostics.state_jacobian_spectra(layers, xs[:shortest], state=jacobian, carries=carries)
            for index, values in enumerate(spectra):  # (K, B, S): geometric mean over the examples
                curves[f"jacobian/layer{index}"] = jnp.exp(jnp.mean(jnp.log(values), axis=1))
        return curves

    return lambda params: {k: np.asarray(v) for k, v in jax.device_get(probe(params, arrays)).items()}


def fit_rate(curve: np.ndarray) -> float:
    """The fitted per-step decay rate of a (T,) curve (NaN when fewer than 2 usable points)."""
    try:
        return diagnostics.fit_decay_rate(curve).rate
    except ValueError:
        return math.nan


def summary_metrics(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """``diag/...`` scalars of one probe (see the module docstring)."""
    out = {}
    for key, curve in curves.items():
        if key.startswith("jacobian/"):
            layer = key.split("/", 1)[1]
            out[f"diag/{layer}/jacobian_rate"] = fit_rate(curve[::-1, 0])  # largest value, k = K..1
        elif key != "loss":
            out[f"diag/{key}_first"] = float(curve[0])
            out[f"diag/{key}_last"] = float(curve[-1])
            out[f"diag/{key}_rate"] = fit_rate(curve)
    return out


class GradNormRecorder:
    """Probes at step 0 and every ``diagnostics.every`` steps; keeps and saves the curves.

    ``record(step, params)`` probes, appends, rewrites ``gradnorms.npz`` and returns the ``diag/...``
    metrics to log; ``finish(step, trackers)`` draws the plots and logs them and the decay curves.
    """

    def __init__(self, config: Config, dataset: Dataset, graphdef, run_dir: str | Path | RunDir, start: int = 0):
        d = config.diagnostics
        self.every, self.loss = d.every, d.loss
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.probe = make_probe(
            graphdef, dataset.spec, probe_batch(dataset, d.batch_size), loss=d.loss, jacobian=d.jacobian
        )
        self.steps: list[int] = []
        self.series: dict[str, list[np.ndarray]] = {}
        if start > 0:  # resume: keep what was recorded up to the restored step
            saved, problem = self.rundir.read_gradnorms(required=("steps",))
            if problem:  # damaged: set aside (never erased), the curves start afresh
                log.warning("%s", problem)
            elif saved is not None:
                keep = saved["steps"] <= start
                self.steps = [int(s) for s in saved["steps"][keep]]
                self.series = {k: list(v[keep]) for k, v in saved.items() if k not in ("steps", "loss")}

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0 and step not in self.steps

    def record(self, step: int, params) -> dict[str, float]:
        curves = self.probe(params)
        loss = curves.pop("loss")
        if self.series and set(self.series) != set(curves):  # a resumed run with other settings
            log.warning(
                "%s had other curves (%s); starting it afresh", self.rundir.gradnorms, ", ".join(sorted(self.series))
            )
            self.steps, self.series = [], {}
        self.steps.append(int(step))
        for key, curve in curves.items():
            self.series.setdefault(key, []).append(curve)
        self.save()
        return {"diag/loss": float(loss), **summary_metrics(curves)}

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything recorded, as written to ``gradnorms.npz``."""
        return {
            "steps": np.asarray(self.steps, np.int64),
            "loss": np.asarray(self.loss),
            **{key: np.stack(values) for key, values in self.series.items()},
        }

    def save(self) -> Path:
        return self.rundir.write_gradnorms(self.arrays())  # atomic, never through a symbolic link

    def finish(self, step: int, trackers) -> dict[str, Path]:
        """Plots of layer 0 (heat map over training, decay at the first and last probe), logged."""
        if not self.steps:
            return {}
        plot_dir = self.rundir.plots
        h = np.stack(self.series["layer0/h"])
        first, last = self.steps[0], self.steps[-1]
        curves = {f"h, step {first}": h[0], f"h, step {last}": h[-1]}
        if "layer0/c" in self.series:
            c = np.stack(self.series["layer0/c"])
            curves.update({f"c, step {first}": c[0], f"c, step {last}": c[-1]})
        paths = {
            "gradnorm_heatmap": diagnostics.plot_norm_heatmap(
                h,
                plot_dir / "gradnorm_heatmap.png",
                steps=np.asarray(self.steps),
                title="log10 ||dL/dh_t|| over training (layer 0)",
            ),
            "gradnorm_decay": diagnostics.plot_norm_decay(
                curves, plot_dir / "gradnorm_decay.png", ylabel="||dL/ds_t|| (layer 0)"
            ),
        }
        trackers.log_plots(step, paths)
        distance = np.arange(h.shape[1])[::-1]
        trackers.log_series(step, "diag/decay", distance, curves, xname="distance from the loss")
        return paths


def recorder(
    config: Config, dataset: Dataset, graphdef, run_dir: str | Path | RunDir, start: int = 0
) -> GradNormRecorder | None:
    """A :class:`GradNormRecorder` when ``diagnostics.every > 0``, else None."""
    if config.diagnostics.every <= 0:
        return None
    return GradNormRecorder(config, dataset, graphdef, run_dir, start)
