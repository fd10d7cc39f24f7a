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
import signal
import socket
import time

import jax

from lstmlab.config import Config, DistributedConfig


def wanted(cfg: DistributedConfig) -> bool:
    """Whether ``cfg`` asks for ``jax.distributed`` (``enabled`` or any address/count/id set)."""
    return cfg.wanted()


def check(cfg: DistributedConfig) -> None:
    """ConfigError naming the first bad ``distributed.*`` value."""
    cfg.check()


def initialize(cfg: DistributedConfig) -> None:
    """Join the other processes (blocks until all have joined, at most ``initialization_timeout``
    seconds). A no-op when ``cfg`` does not ask for it or this process has already joined. Must run
    before JAX touches a device."""
    if not wanted(cfg) or jax.distributed.is_initialized():
        return
    check(cfg)
    if cfg.coordinator_address is not None:
        check_coordinator(cfg.coordinator_address, cfg.process_id, cfg.initialization_timeout)
    jax.distributed.initialize(
        coordinator_address=cfg.coordinator_address,
        num_processes=cfg.num_processes,
        process_id=cfg.process_id,
        initialization_timeout=cfg.initialization_timeout,
    )


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def check_coordinator(address: str, process_id: int | None, timeout: float, connect_timeout: float = 2.0) -> None:
    """ConfigError (one line naming ``distributed.coordinator_address``) unless the coordinator can be
    used, before JAX's native client would abort the process: its host must resolve; process 0 (which
    runs the coordinator) must be able to bind its port; every other process must reach it with a TCP
    connect within ``timeout`` seconds (retried, since process 0 may start later)."""
    from lstmlab.config import ConfigError

    host, port = split_address(address)
    key = f"distributed.coordinator_address={address!r}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(
            f"{key}: host {host!r} does not resolve ({err.strerror}); valid: the host:port of process 0"
        ) from None
    if process_id == 0:
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as err:
                raise ConfigError(
                    f"{key}: process 0 runs the coordinator but cannot listen there "
                    f"({err.strerror}); valid: an address of this host with a free port"
                ) from None
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=connect_timeout):
                return
        except OSError as err:
            reason = err.strerror or type(err).__name__
        if time.monotonic() + 0.5 >= deadline:
            raise ConfigError(
                f"{key}: the coordinator (process 0) is not reachable ({reason}) after "
                f"{timeout:g} s (distributed.initialization_timeout); valid: the host:port where "
                "process 0 runs, reachable from this host"
            )
        time.sleep(0.5)


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
# Gate units (rows x gates x hidden size x directions) each device must compute per time step before
# splitting the batch over CPU devices pays (scripts/bench_notes.md).
MIN_GATE_UNITS_PER_CPU_DEVICE = 2048


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def step_width(config: Config) -> int | None:
    """Gate units one batch row adds to each time step of a layer: gates x ``model.hidden_size`` x
    directions. None if the cell name is not known (validation reports it)."""
    from lstmlab import cells

    try:
        gates = cells.num_gates(config.cell.name)
    except (KeyError, ValueError):
        return None
    return gates * config.model.hidden_size * (2 if config.model.bidirectional else 1)


def cpu_devices(config: Config) -> int:
    """How many XLA CPU devices a training run of ``config`` in one process asks for.

    * by default one: the whole batch on one device, whose matrix multiplies use every core;
    * ``trainer.devices=N``: N (at most one per usable core); the batch is split over them;
    * ``trainer.split_per_device=true`` without ``trainer.devices``: one per usable core, cut down to
      a divisor of ``data.batch_size`` that leaves every device at least
      :data:`MIN_ROWS_PER_CPU_DEVICE` rows and :data:`MIN_GATE_UNITS_PER_CPU_DEVICE` gate units per time
      step (rows x :func:`step_width`), below which the split's fixed cost per step outweighs the
      halved work.

    1 for other runners and for ``jax.distributed`` runs (one device per process there)."""
    t = config.trainer
    if config.runner != "train" or config.distributed.wanted():
        return 1
    cores = usable_cores()
    if t.devices is not None:
        return max(1, min(int(t.devices), cores))
    if not t.split_per_device:
        return 1
    n = cores
    batch = (config.data or {}).get("batch_size")
    if isinstance(batch, int) and batch > 0:
        width = step_width(config)
        n = max(
            k
            for k in range(1, n + 1)
            if k == 1
            or (
                batch % k == 0
                and batch // k >= MIN_ROWS_PER_CPU_DEVICE
                and (width is None or batch // k * width >= MIN_GATE_UNITS_PER_CPU_DEVICE)
            )
        )
    return n


def set_cpu_devices(config: Config) -> int | None:
    """Give JAX :func:`cpu_devices` CPU devices (``jax_num_cpu_devices``) when that is more than one,
    unless the user chose a count (``JAX_NUM_CPU_DEVICES``, or ``--xla_force_host_platform_device_count``
    in ``XLA_FLAGS``). Must run before JAX touches a device (the command line calls it first); only CPU
    devices are affected. Returns the count set, or None."""
    if "JAX_NUM_CPU_DEVICES" in os.environ or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    n = cpu_devices(config)
    if n <= 1:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX has already started its backends: their device count stays
        return None
    return n
