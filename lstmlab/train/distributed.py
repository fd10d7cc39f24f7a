"""Several processes training one model: ``jax.distributed`` set up from the ``distributed`` config,
and the few decisions all processes must take together.

Every process runs the same loop on the same global state: the parameters are replicated, each batch
is split along the mesh axis ``"data"`` and every process hands its own devices their rows (the global
batch is a pure function of the step, so no process needs to hear from another to build it). Process 0
alone writes the run directory (config, metrics, samples, plots, checkpoints); the others only train.
On CPU the processes exchange gradients with gloo (JAX's default CPU collectives).
"""

from __future__ import annotations

import re

import jax
import numpy as np

from lstmlab.config import ConfigError, DistributedConfig


def wanted(cfg: DistributedConfig) -> bool:
    """Whether ``cfg`` asks for ``jax.distributed`` (``enabled`` or any address/count/id set)."""
    return bool(cfg.enabled or cfg.coordinator_address or cfg.num_processes is not None
                or cfg.process_id is not None)


def check(cfg: DistributedConfig) -> None:
    """ConfigError naming the first bad ``distributed.*`` value."""
    if cfg.coordinator_address is not None and not re.fullmatch(r"\[?[^\s\]]+\]?:\d{1,5}", cfg.coordinator_address):
        raise ConfigError(f"distributed.coordinator_address={cfg.coordinator_address!r} must be host:port, "
                          "e.g. 10.0.0.1:12355")
    explicit = {"coordinator_address": cfg.coordinator_address, "num_processes": cfg.num_processes,
                "process_id": cfg.process_id}
    unset = [k for k, v in explicit.items() if v is None]
    if len(unset) < 3 and unset:
        raise ConfigError(f"distributed.{unset[0]} is not set; distributed.coordinator_address, num_processes and "
                          "process_id go together (or set only distributed.enabled=true where JAX finds them)")
    if cfg.num_processes is not None and cfg.num_processes < 1:
        raise ConfigError(f"distributed.num_processes={cfg.num_processes} must be >= 1")
    if cfg.process_id is not None:
        if not 0 <= cfg.process_id < cfg.num_processes:
            raise ConfigError(f"distributed.process_id={cfg.process_id} must be in "
                              f"[0, {cfg.num_processes - 1}] (distributed.num_processes={cfg.num_processes})")
    if cfg.initialization_timeout < 1:
        raise ConfigError(f"distributed.initialization_timeout={cfg.initialization_timeout} must be >= 1 (s)")


def initialize(cfg: DistributedConfig) -> None:
    """Join the other processes (blocks until all have joined, at most ``initialization_timeout``
    seconds). A no-op when ``cfg`` does not ask for it or this process has already joined. Must run
    before JAX touches a device."""
    if not wanted(cfg) or jax.distributed.is_initialized():
        return
    check(cfg)
    jax.distributed.initialize(coordinator_address=cfg.coordinator_address, num_processes=cfg.num_processes,
                               process_id=cfg.process_id, initialization_timeout=cfg.initialization_timeout)


def is_primary() -> bool:
    """True on the process that writes the run directory (process 0; the only one when not distributed)."""
    return jax.process_index() == 0


def agree(value: int) -> int:
    """The largest ``value`` over all processes (a collective: every process must call it at the same
    point). Used so that a signal seen by one process stops all of them at the same step."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(value))))
