"""Optimisers and learning-rate schedules, built from :class:`OptimConfig`, behind gradient clipping.

Clipping (``optim.clip``: global_norm | value | none, ``optim.clip_threshold``) is
:func:`lstmlab.diagnostics.clipping`, the one implementation shared with the gradient metrics the
trainer logs (:func:`lstmlab.diagnostics.grad_metrics`).
"""

from __future__ import annotations

import optax

from lstmlab import diagnostics
from lstmlab.config import ConfigError, OptimConfig

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "linear")


def check(cfg: OptimConfig, max_steps: int) -> None:
    """Raise ConfigError naming the first bad ``optim.*`` value."""
    if cfg.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name={cfg.name!r} is not an optimiser; valid: {', '.join(OPTIMIZERS)}")
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule={cfg.schedule!r}; valid: {', '.join(SCHEDULES)}")
    try:
        diagnostics.check_clip(cfg.clip, cfg.clip_threshold)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not cfg.lr > 0:
        raise ConfigError(f"optim.lr={cfg.lr} must be > 0")
    if not 0 <= cfg.warmup_steps < max(max_steps, 1):
        raise ConfigError(f"optim.warmup_steps={cfg.warmup_steps} must be in [0, trainer.max_steps)")
    if not 0 <= cfg.momentum < 1:
        raise ConfigError(f"optim.momentum={cfg.momentum} must be in [0, 1)")
    if not 0 <= cfg.final_lr_ratio <= 1:
        raise ConfigError(f"optim.final_lr_ratio={cfg.final_lr_ratio} must be in [0, 1]")


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
    return optax.chain(diagnostics.clipping(cfg.clip, cfg.clip_threshold), opt)

