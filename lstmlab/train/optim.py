"""Optimisers and learning-rate schedules, built from :class:`OptimConfig`, behind gradient clipping.

Clipping modes (``optim.clip``, threshold ``optim.clip_threshold``):

* ``global_norm``: scale every gradient by ``min(1, clip_threshold / ||g||)``, ``||g||`` the Euclidean
  norm of all gradients together (Pascanu, Mikolov & Bengio 2013), so the clipped norm is at most the
  threshold and the direction is kept.
* ``value``: clamp every element to ``[-clip_threshold, clip_threshold]`` (as in Graves 2013, "Generating
  sequences with recurrent neural networks"); the direction can change.
* ``none``: no clipping.
"""

from __future__ import annotations

import optax

from lstmlab.config import CLIPS, OPTIMIZERS, SCHEDULES, ConfigError, OptimConfig

__all__ = ["CLIPS", "OPTIMIZERS", "SCHEDULES", "check", "clipping", "make_optimizer", "schedule"]


def check(cfg: OptimConfig, max_steps: int) -> None:
    """Raise ConfigError naming the first bad ``optim.*`` value."""
    cfg.check(max_steps)


def clipping(clip: str, clip_threshold: float | None = None) -> optax.GradientTransformation:
    """The optax transformation for clipping mode ``clip`` (to put first in an ``optax.chain``):
    ``optax.clip_by_global_norm``, ``optax.clip`` (by value) or ``optax.identity``."""
    if clip not in CLIPS:
        raise ConfigError(f"optim.clip={clip!r} is not a clipping mode; valid: {', '.join(CLIPS)}")
    if clip != "none" and not (clip_threshold is not None and clip_threshold > 0):
        raise ConfigError(f"optim.clip_threshold={clip_threshold!r} must be > 0 for clip={clip!r}")
    if clip == "global_norm":
        return optax.clip_by_global_norm(clip_threshold)
    if clip == "value":
        return optax.clip(clip_threshold)
    return optax.identity()


def schedule(cfg: OptimConfig, max_steps: int) -> optax.Schedule:
    """Learning rate as a function of the step."""
    final = cfg.lr * cfg.final_lr_ratio
    steps = max(max_steps, 1)
    if cfg.schedule == "constant":
        base = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "linear":
        base = optax.linear_schedule(cfg.lr, final, steps - cfg.warmup_steps)
    else:  # cosine, warmup_cosine
        base = optax.cosine_decay_schedule(cfg.lr, steps - cfg.warmup_steps, alpha=cfg.final_lr_ratio)
    if cfg.warmup_steps:
        warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
        return optax.join_schedules([warmup, base], [cfg.warmup_steps])
    return base


def make_optimizer(cfg: OptimConfig, max_steps: int) -> optax.GradientTransformation:
    """Clipping (applied to the raw gradients), then the optimiser with its schedule."""
    check(cfg, max_steps)
    lr = schedule(cfg, max_steps)
    if cfg.name == "adam":
        opt = optax.adam(lr)
    elif cfg.name == "adamw":
        opt = optax.adamw(lr, weight_decay=cfg.weight_decay)
    elif cfg.name == "rmsprop":
        opt = optax.rmsprop(lr, momentum=cfg.momentum or None)
    else:
        opt = optax.sgd(lr, momentum=cfg.momentum or None)
    return optax.chain(clipping(cfg.clip, cfg.clip_threshold), opt)
