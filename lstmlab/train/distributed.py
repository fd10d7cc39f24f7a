"""Several processes training one model: ``jax.distributed`` set up from the ``distributed`` config,
and the few decisions all processes must take together.

Every process runs the same loop on the same global state: the parameters are replicated, each batch
is split along the mesh axis ``"data"`` and every process hands its own devices their rows (the global
batch is a pure function of the step, so no process needs to hear from another to build it). Process 0
alone writes the run directory (config, metrics, samples, plots, checkpoints); the others only train.
A SIGTERM (or SIGINT) to any process stops all of them after the same step, through JAX's preemption
service, and process 0 saves that step. On CPU the processes exchange gradients with gloo (JAX's default
CPU collectives).
"""

from __future__ import annotations

import os
import re
import signal

import jax

from lstmlab.config import Config, ConfigError, DistributedConfig


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


def stop_signal(step: int, received: int | None) -> int | None:
    """The signal to stop on after ``step`` (the loop then saves a checkpoint and exits), or None.

    One process: ``received``, the signal it caught. Several: they must stop at the same step, so
    SIGTERM goes to JAX's preemption service, which tells every process the same step to stop at
    (``multihost_utils.reached_preemption_sync_point``; it talks through the coordinator in the
    background, so checking it costs no collective and no wait per step)."""
    if jax.process_count() == 1:
        return received
    from jax.experimental import multihost_utils

    if multihost_utils.reached_preemption_sync_point(step):
        return received or signal.SIGTERM
    return None


MIN_ROWS_PER_CPU_DEVICE = 8
# Gate units (rows x gates x hidden size x directions) each device must compute per time step before an
# automatic split pays (2 cores, CLI runs, tokens/s 2 devices / 1 device): tanh RNN at 512 and 1024
# units 0.45-0.82x, LSTM at 1024 0.80-0.91x; at 2048, LSTM 1.45-1.51x and tanh RNN 0.84-1.12x; LSTM at
# 4096 1.16-1.33x (scripts/bench_notes.md).
MIN_GATE_UNITS_PER_CPU_DEVICE = 2048


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def step_width(config: Config) -> int | None:
    """Gate units one batch row adds to each time step of a layer: gates x ``model.hidden_size`` x
    directions (4 x 300 for the charlm LSTM). None if the cell name is not known (validation reports it)."""
    from lstmlab import cells

    try:
        gates = cells.num_gates(config.cell.name)
    except (KeyError, ValueError):
        return None
    return gates * config.model.hidden_size * (2 if config.model.bidirectional else 1)


def cpu_devices(config: Config) -> int:
    """How many XLA CPU devices a training run of ``config`` in one process should see: one per usable
    core, capped by ``trainer.devices``, cut down to a divisor of ``data.batch_size`` that leaves every
    device at least :data:`MIN_ROWS_PER_CPU_DEVICE` rows (measured only on 2 cores, with 15-32 rows per
    device; the floor keeps many-core machines from splitting a batch into rows of one). The trainer then
    runs one recurrence per core on its rows of the batch, which on a 2-core CPU is 1.1-1.5x faster per
    step than one device using both cores for each small matrix multiply (:mod:`lstmlab.cells.sharding`).

    Without ``trainer.devices``, small models stay on fewer devices: each device must also get at least
    :data:`MIN_GATE_UNITS_PER_CPU_DEVICE` gate units per time step (rows x :func:`step_width`), below
    which the split's fixed cost per step outweighs the halved work (a 64-unit tanh RNN with batch 32
    trains 0.7x as fast on 2 devices as on 1). 1 for other runners and for ``jax.distributed`` runs
    (one device per process there)."""
    if config.runner != "train" or wanted(config.distributed):
        return 1
    cores = usable_cores()
    auto = config.trainer.devices is None
    n = cores if auto else max(1, min(config.trainer.devices, cores))
    batch = (config.data or {}).get("batch_size")
    if isinstance(batch, int) and batch > 0:
        width = step_width(config) if auto else None
        n = max(k for k in range(1, n + 1)
                if k == 1 or (batch % k == 0 and batch // k >= MIN_ROWS_PER_CPU_DEVICE
                              and (width is None or batch // k * width >= MIN_GATE_UNITS_PER_CPU_DEVICE)))
    return n


def split_cpu(config: Config) -> int | None:
    """Give JAX :func:`cpu_devices` CPU devices (``jax_num_cpu_devices``), unless the user chose a count
    (``JAX_NUM_CPU_DEVICES``, or ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``) or JAX has
    already started its backends. Must run before JAX touches a device; only CPU devices are affected.
    Returns the count set, or None."""
    from jax._src import xla_bridge

    if "JAX_NUM_CPU_DEVICES" in os.environ or "xla_force_host_platform_device_count" in os.environ.get(
            "XLA_FLAGS", "") or xla_bridge.backends_are_initialized():
        return None
    n = cpu_devices(config)
    if n > 1:
        jax.config.update("jax_num_cpu_devices", n)
        return n
    return None
