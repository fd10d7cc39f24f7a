"""The configuration schema: plain dataclasses, one per config group.

The CLI registers these in Hydra's ConfigStore (so a wrong type fails at start); from Python, build a
:class:`Config` directly and pass it to :func:`lstmlab.train.train_and_evaluate`. The ``data`` group is a
free dict because each data set takes its own options; its keys are checked against the data set's
factory by :func:`lstmlab.data.build` before any work is done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional


@dataclass
class CellConfig:
    """Which cell, and how it is initialised (see :mod:`lstmlab.cells.init`)."""

    name: str = "lstm"  # lstm | peephole | gru | rnn
    variant: str = "vanilla"  # LSTM family: vanilla NIG NFG NOG NIAF NOAF NP CIFG FGR
    activation: str = "tanh"  # rnn: tanh | relu | identity
    input_init: str = "glorot_uniform"
    recurrent_scale: float = 1.0
    forget_bias: float = 1.0
    chrono_tmax: float = 0.0  # > 2: chrono initialisation of the forget biases for lags up to this many steps


@dataclass
class ModelConfig:
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0  # after every recurrent layer
    bidirectional: bool = False
    embed_size: int = 0  # token inputs: 0 feeds one-hot vectors, >0 a learned embedding
    pooling: str = "last"  # per-sequence tasks: last (last valid step) | mean (masked mean)
    learn_initial_carry: bool = False
    impl: Optional[str] = None  # cells.scan implementation; None: the cells' default


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | rmsprop | sgd
    lr: float = 2e-3
    momentum: float = 0.9  # sgd (heavy ball) and rmsprop
    weight_decay: float = 0.0  # adamw only
    schedule: str = "constant"  # constant | cosine | warmup_cosine | linear
    warmup_steps: int = 0
    final_lr_ratio: float = 0.1  # cosine/linear: lr at the last step / lr
    clip: str = "global_norm"  # global_norm | value | none
    clip_threshold: float = 5.0


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    eval_every: int = 200
    log_every: int = 50
    devices: Optional[int] = None  # None: as many local devices as divide the batch (on CPU: one per core)
    nonfinite: str = "stop"  # stop | skip
    progress: str = "auto"  # auto (bar on a terminal, lines otherwise) | bar | lines | none
    eval_max_batches: int = 0  # 0: whole split


@dataclass
class CheckpointConfig:
    every: int = 500  # steps; 0 saves only at the end
    keep: int = 2  # the last K, plus the best by validation loss
    keep_best: bool = True


@dataclass
class WandbConfig:
    mode: Optional[str] = None  # online | offline | disabled; None follows $WANDB_MODE, else offline
    project: str = "lstmlab"
    entity: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class SampleConfig:
    """Text generation at every evaluation (language-model data only)."""

    enabled: bool = True
    prime: str = "\n"
    length: int = 300
    temperature: float = 0.8  # 0: greedy argmax
    top_k: int = 0  # 0: no top-k truncation


@dataclass
class DiagnosticsConfig:
    """Per-timestep gradient norms during training (:mod:`lstmlab.train.gradnorms`) and the gradient-norm
    study (``runner=gradnorm``, :mod:`lstmlab.diagnostics.study`)."""

    every: int = 0  # steps between probes of ||dL/dh_t||, plus one at step 0; 0 = off
    loss: str = "last"  # last: the loss at each sequence's last step only | all: at every step
    batch_size: int = 8  # examples of the fixed probe batch (the first of training batch 0); 0 = all
    jacobian: str = "none"  # none | full | h: also singular values of ds_T/ds_{T-k} at every probe
    cells: list[str] = field(default_factory=lambda: ["rnn", "lstm", "gru", "peephole"])  # the study's


@dataclass
class DistributedConfig:
    """Several processes (one per host, or per GPU) training one model with ``jax.distributed``; off by
    default. Give every process the same ``coordinator_address`` (``host:port`` of process 0) and
    ``num_processes`` and its own ``process_id``; or set ``enabled: true`` alone where JAX finds these
    itself (SLURM, Open MPI, Kubernetes, Cloud TPU)."""

    enabled: bool = False  # true or any value below set: call jax.distributed.initialize
    coordinator_address: Optional[str] = None  # "host:port" of process 0
    num_processes: Optional[int] = None
    process_id: Optional[int] = None  # 0 .. num_processes-1; process 0 writes the run directory
    initialization_timeout: int = 300  # seconds to wait for every process to join


@dataclass
class Config:
    seed: int = 0
    experiment: str = "custom"
    runner: str = "train"  # train: lstmlab.train.train_and_evaluate | gradnorm: the gradient-norm study
    cell: CellConfig = field(default_factory=CellConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


class ConfigError(ValueError):
    """A bad config value or input file; the message is one line naming the key or file."""


def check_numbers(config: Config) -> None:
    """ConfigError naming the first float that is NaN or infinite (e.g. ``optim.lr=inf``), or a
    negative ``seed``. The range of each value is checked where it is used."""
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"seed={config.seed!r} must be an integer >= 0")

    def walk(node: Any, prefix: str) -> None:
        for f in fields(node):
            value = getattr(node, f.name)
            if is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{prefix}{f.name}={value} must be a finite number")

    walk(config, "")
    for key, value in (config.data or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"data.{key}={value} must be a finite number")
