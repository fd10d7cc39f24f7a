"""Losses and metrics for every data kind, masked so that padding never counts.

Every function works on one batch and returns *sums* with their counts, so evaluation over many
batches adds them up exactly and divides once. Losses are in nats (natural log); bits per character
are ``nats / ln 2``.

=========== =========================================== ===============================================
kind        loss (per counted item)                     metrics
=========== =========================================== ===============================================
lm          softmax cross-entropy of the next token     ``loss`` (nats), ``bpc`` (bits), ``accuracy``
multilabel  sigmoid cross-entropy summed over classes   ``loss`` (nats), ``accuracy`` (all classes right)
classify    softmax cross-entropy of the label          ``loss`` (nats), ``accuracy``
regress     squared error averaged over the K targets   ``loss`` (= ``mse``), ``mse``
=========== =========================================== ===============================================

Items are steps with ``mask`` = 1 (lm, multilabel) or sequences with ``weights`` = 1 (others; all
sequences count in training, where there is no ``weights`` key).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
LN2 = math.log(2.0)


def batch_sums(kind: str, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
    """Sums over the counted items of one batch: ``loss`` (nats), ``correct``, ``count``.

    outputs: (B, T, K) for lm/multilabel, (B, K) otherwise (logits or raw regression values).
    """
    if kind == "lm":
        mask = batch["mask"].astype(jnp.float32)
        nll = optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), batch["targets"])
        correct = (outputs.argmax(-1) == batch["targets"]).astype(jnp.float32)
        return {"loss": (nll * mask).sum(), "correct": (correct * mask).sum(), "count": mask.sum()}
    if kind == "multilabel":
        mask = batch["mask"].astype(jnp.float32)
        targets = batch["targets"].astype(jnp.float32)
        bce = optax.sigmoid_binary_cross_entropy(outputs.astype(jnp.float32), targets).sum(-1)
        correct = jnp.all((outputs > 0) == (targets > 0.5), axis=-1).astype(jnp.float32)
        return {"loss": (bce * mask).sum(), "correct": (correct * mask).sum(), "count": mask.sum()}
    B = outputs.shape[0]
    weights = batch.get("weights", jnp.ones((B,), jnp.float32)).astype(jnp.float32)
    if kind == "classify":
        nll = optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), batch["labels"])
        correct = (outputs.argmax(-1) == batch["labels"]).astype(jnp.float32)
        return {"loss": (nll * weights).sum(), "correct": (correct * weights).sum(), "count": weights.sum()}
    if kind == "regress":
        err = ((outputs.astype(jnp.float32) - batch["targets"].astype(jnp.float32)) ** 2).mean(-1)
        return {"loss": (err * weights).sum(), "correct": jnp.zeros(()), "count": weights.sum()}
    raise ValueError(f"unknown data kind {kind!r}")


def mean_loss(kind: str, outputs: Array, batch: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
    """The training objective: mean loss per counted item (nats, or squared error), and the sums."""
    sums = batch_sums(kind, outputs, batch)
    return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums


def metrics_from_sums(kind: str, sums: dict[str, float]) -> dict[str, float]:
    """Named metrics from (accumulated) sums; see the table in the module docstring."""
    count = max(float(sums["count"]), 1.0)
    loss = float(sums["loss"]) / count
    metrics = {"loss": loss}
    if kind == "lm":
        metrics["bpc"] = loss / LN2
    if kind in ("lm", "multilabel", "classify"):
        metrics["accuracy"] = float(sums["correct"]) / count
    if kind == "regress":
        metrics["mse"] = loss
    return metrics
