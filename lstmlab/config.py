"""The configuration schema: plain dataclasses, one per config group, each with its defaults and a
``check()`` that raises :class:`ConfigError` naming the first bad value of its section.

These dataclasses are the one place defaults are written: the CLI registers them in Hydra's
ConfigStore (so a wrong type fails at start, and ``conf/<group>/*.yaml`` hold only what differs from
them); from Python, build a :class:`Config` directly and pass it to
:func:`lstmlab.train.train_and_evaluate`. The ``data`` group is a free dict because each data set takes
its own options; their defaults are the data set factory's (:func:`lstmlab.data.defaults`, from which
the CLI generates the ``data`` configs), and its keys are checked against the factory by
:func:`lstmlab.train.setup.build_dataset` before any work is done.

The resume policy lives here too: :data:`RESUME_FREE_KEYS` lists the keys a resumed run may change
freely; any other change is refused unless named in ``resume.allow_changes`` (:class:`ResumeConfig`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, NoReturn, Optional

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "linear")
CLIPS = ("global_norm", "value", "none")
NONFINITE = ("stop", "skip")
PROGRESS = ("auto", "bar", "lines", "none")
POOLINGS = ("last", "mean", "meanmax")
WANDB_MODES = ("online", "offline", "disabled")
PROBE_LOSSES = ("last", "all")
JACOBIANS = ("none", "full", "h")
MAX_SAMPLE_LENGTH = 1_000_000  # characters of generated text at once: more is a typo, not a request
RUNNERS = ("train", "gradnorm")  # what each runs: lstmlab.runner


class ConfigError(ValueError):
    """A bad config value or input file; the message is one line naming the key or file."""


def one_line(err: BaseException | str) -> str:
    """``err``'s message on one line."""
    return " ".join(str(err).split())


EXIT_BAD_INPUT = 2


def fail(message: BaseException | str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """End a command the one way every entry point does: one line ``lstmlab: error: MESSAGE`` on
    stderr, then exit status ``code`` (2: bad input)."""
    import sys

    print(f"lstmlab: error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(code)


def _int_at_least(key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value!r} must be an integer >= {low}")


@dataclass
class CellConfig:
    """Which cell, and how it is initialised (see :mod:`lstmlab.cells.init`)."""

    name: str = "lstm"  # lstm | peephole | gru | rnn, or any cell registered with lstmlab.cells.register
    variant: str = "vanilla"  # LSTM family: vanilla NIG NFG NOG NIAF NOAF NP CIFG FGR
    activation: str = "tanh"  # rnn: tanh | relu | identity
    reset_after: bool = True  # gru: PyTorch/cuDNN form (true) or Cho et al.'s original (false)
    # options of the xLSTM and min cells; null: the cell's default. Given to a cell without that option: an error
    form: Optional[str] = None  # mlstm: chunkwise | parallel | sequential; mingru, minlstm: parallel | sequential
    num_heads: Optional[int] = None  # slstm, mlstm: heads (must divide model.hidden_size)
    chunk_size: Optional[int] = None  # mlstm with form=chunkwise: steps per chunk
    forget: Optional[str] = None  # slstm, mlstm: the forget gate, sigmoid | exp
    extra: dict[str, Any] = field(default_factory=dict)  # options of a registered cell without a key above
    input_init: str = "glorot_uniform"
    recurrent_scale: float = 1.0
    forget_bias: float = 1.0
    chrono_tmax: float = 0.0  # > 2: chrono initialisation of the forget biases for lags up to this many steps

    def check(self) -> None:
        from lstmlab import cells

        if self.name not in cells.CELLS:
            raise ConfigError(f"cell.name={self.name!r} is not a cell; valid: {', '.join(cells.CELLS)}")
        try:
            cells.cell_options(self.name, **self.options())
        except ValueError as err:
            raise ConfigError(f"cell.{one_line(err)}") from err
        if self.input_init not in cells.INPUT_INITIALIZERS:
            raise ConfigError(
                f"cell.input_init={self.input_init!r} is not an initialiser; valid: "
                f"{', '.join(cells.INPUT_INITIALIZERS)}"
            )
        if not self.recurrent_scale >= 0:
            raise ConfigError(f"cell.recurrent_scale={self.recurrent_scale!r} must be >= 0")
        if not (self.chrono_tmax == 0 or self.chrono_tmax > 2):
            raise ConfigError(f"cell.chrono_tmax={self.chrono_tmax!r} must be 0 (off) or > 2 (time steps)")

    def options(self) -> dict[str, Any]:
        """The cell's own options (:func:`lstmlab.cells.option_names`): each taken from the key of that
        name above (``variant``, ``activation``, ``reset_after``; ``form``, ``num_heads``,
        ``chunk_size``, ``forget`` when not null) or from ``extra``; a key given that the cell does not
        take is passed on, so that the cell refuses it by name."""
        from lstmlab import cells

        own = {k: getattr(self, k) for k in cells.option_names(self.name) if k in _CELL_OPTION_KEYS}
        given = {k: getattr(self, k) for k in _OPTIONAL_CELL_KEYS if getattr(self, k) is not None}
        return {**own, **given, **self.extra}

    def for_cell(self, name: str) -> CellConfig:
        """A copy for cell ``name``, keeping of the options given here only those that cell takes (the
        gradient-norm study runs several cells from one config)."""
        from lstmlab import cells

        takes = cells.option_names(name)
        optional = {k: getattr(self, k) if k in takes else None for k in _OPTIONAL_CELL_KEYS}
        extra = {k: v for k, v in self.extra.items() if k in takes}
        return replace(self, name=name, extra=extra, **optional)


_CELL_OPTION_KEYS = ("variant", "activation", "reset_after")
_OPTIONAL_CELL_KEYS = ("form", "num_heads", "chunk_size", "forget")


@dataclass
class ModelConfig:
    hidden_size: int = 128
    num_layers: int = 1  # 0 with conv_channels: the convolutional block alone (no recurrent layer)
    dropout: float = 0.0  # after every recurrent layer
    bidirectional: bool = False
    embed_size: int = 0  # token inputs: 0 feeds one-hot vectors, >0 a learned embedding
    pooling: str = "last"  # per-sequence tasks: last (last valid step) | mean (masked mean) | meanmax (mean and max)
    # per-sequence tasks: a fully convolutional block beside the recurrent stack (LSTM-FCN), e.g.
    # conv_channels=[128,256,128] conv_kernels=[8,5,3]; [] (the default): none
    conv_channels: list[int] = field(default_factory=list)
    conv_kernels: list[int] = field(default_factory=list)
    learn_initial_carry: bool = False
    impl: Optional[str] = None  # cells.scan implementation; None: the cells' default
    init_from: Optional[str] = None  # start from these weights: a .npz (lstmlab.interop.save_params) or a run directory
    # a number of parameters: hidden_size becomes the largest whose whole model fits (lstmlab.train.fit_param_budget)
    param_budget: Optional[int] = None

    def check(self) -> None:
        from lstmlab import cells

        if self.hidden_size < 1:
            raise ConfigError(f"model.hidden_size={self.hidden_size} must be >= 1")
        if self.param_budget is not None:
            _int_at_least("model.param_budget", self.param_budget, 1)
        if self.num_layers < (0 if self.conv_channels else 1):
            raise ConfigError(
                f"model.num_layers={self.num_layers} must be >= 1 (0, the convolutional block alone, needs "
                "model.conv_channels)"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")
        if self.embed_size < 0:
            raise ConfigError(f"model.embed_size={self.embed_size} must be >= 0")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={self.pooling!r}; valid: {', '.join(POOLINGS)}")
        if len(self.conv_channels) != len(self.conv_kernels) or min([*self.conv_channels, *self.conv_kernels, 1]) < 1:
            raise ConfigError(
                f"model.conv_channels={list(self.conv_channels)} and model.conv_kernels={list(self.conv_kernels)}"
                " must be lists of one length of integers >= 1 (filters and widths of each convolution)"
            )
        if self.impl is not None and self.impl not in cells.IMPLS:
            raise ConfigError(f"model.impl={self.impl!r}; valid: {', '.join(cells.IMPLS)}")
        if self.init_from is not None and not os.path.exists(self.init_from):
            raise ConfigError(f"model.init_from={self.init_from}: no such file or run directory")


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
    # Pascanu et al.'s (2013) regulariser: the loss becomes E + omega * Omega (lstmlab.train.regularisers);
    # 0: off. omega_exact: differentiate Omega through dE/dx too, not the paper's simplification
    omega: float = 0.0
    omega_exact: bool = False

    def check(self, max_steps: int = 1) -> None:
        """``max_steps``: ``trainer.max_steps``, which bounds ``warmup_steps``."""
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name={self.name!r} is not an optimiser; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule={self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.clip not in CLIPS:
            raise ConfigError(f"optim.clip={self.clip!r} is not a clipping mode; valid: {', '.join(CLIPS)}")
        if self.clip != "none" and not (self.clip_threshold is not None and self.clip_threshold > 0):
            raise ConfigError(f"optim.clip_threshold={self.clip_threshold!r} must be > 0 for clip={self.clip!r}")
        if not self.lr > 0:
            raise ConfigError(f"optim.lr={self.lr} must be > 0")
        if not 0 <= self.warmup_steps < max(max_steps, 1):
            raise ConfigError(f"optim.warmup_steps={self.warmup_steps} must be in [0, trainer.max_steps)")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optim.momentum={self.momentum} must be in [0, 1)")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ConfigError(f"optim.final_lr_ratio={self.final_lr_ratio} must be in [0, 1]")
        if not self.omega >= 0:
            raise ConfigError(f"optim.omega={self.omega} must be >= 0 (0: no regulariser)")


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    eval_every: int = 200
    log_every: int = 50
    # None: as many local devices as divide the batch (on CPU one, unless JAX_NUM_CPU_DEVICES says more);
    # N on CPU: the command line makes N CPU devices before JAX starts
    devices: Optional[int] = None
    split_per_device: bool = False  # run one recurrence per device on its rows (the layers' batch_axis)
    nonfinite: str = "stop"  # stop | skip
    progress: str = "auto"  # auto (bar on a terminal, lines otherwise) | bar | lines | none
    eval_max_batches: int = 0  # 0: whole split
    # nonfinite=skip: a run that skipped more than this fraction of its updates ends with exit status 3
    max_skipped_fraction: float = 0.5
    # read the test split at the end; false while choosing a model or hyperparameters on validation
    # (screens, searches): the summary then holds val/* only, and the test split is never read
    test: bool = True

    def check(self) -> None:
        if not 0 <= self.max_skipped_fraction <= 1:
            raise ConfigError(f"trainer.max_skipped_fraction={self.max_skipped_fraction!r} must be in [0, 1]")
        for key, value, low in (
            ("max_steps", self.max_steps, 1),
            ("eval_every", self.eval_every, 1),
            ("log_every", self.log_every, 1),
            ("eval_max_batches", self.eval_max_batches, 0),
        ):
            _int_at_least(f"trainer.{key}", value, low)
        if self.devices is not None:
            _int_at_least("trainer.devices", self.devices, 1)
        if self.nonfinite not in NONFINITE:
            raise ConfigError(f"trainer.nonfinite={self.nonfinite!r}; valid: {', '.join(NONFINITE)}")
        if self.progress not in PROGRESS:
            raise ConfigError(f"trainer.progress={self.progress!r}; valid: {', '.join(PROGRESS)}")


@dataclass
class CheckpointConfig:
    every: int = 500  # steps; 0 saves only at the end
    keep: int = 2  # the last K, plus the best by validation loss
    keep_best: bool = True

    def check(self) -> None:
        _int_at_least("checkpoint.every", self.every, 0)
        _int_at_least("checkpoint.keep", self.keep, 1)


@dataclass
class WandbConfig:
    mode: Optional[str] = None  # online | offline | disabled; None follows $WANDB_MODE, else offline
    project: str = "lstmlab"
    entity: Optional[str] = None
    tags: list[str] = field(default_factory=list)

    def check(self) -> None:
        self.resolved_mode()

    def resolved_mode(self) -> str:
        """``mode``, else ``$WANDB_MODE``, else ``offline`` (a first run never asks to log in)."""
        import os

        mode = self.mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in WANDB_MODES:
            raise ConfigError(f"logger.wandb.mode={mode!r}; valid: {', '.join(WANDB_MODES)}")
        return mode


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def check(self) -> None:
        self.wandb.check()


@dataclass
class SampleConfig:
    """Text generation at every evaluation (language-model data only)."""

    enabled: bool = True
    prime: str = "\n"
    length: int = 300
    temperature: float = 0.8  # 0: greedy argmax
    top_k: int = 0  # 0: no top-k truncation

    def check(self) -> None:
        for key in ("temperature", "length", "top_k"):
            if getattr(self, key) < 0:
                raise ConfigError(f"sample.{key}={getattr(self, key)} must be >= 0")
        if self.length > MAX_SAMPLE_LENGTH:
            raise ConfigError(f"sample.length={self.length}; valid: 0 to {MAX_SAMPLE_LENGTH:,} characters")


@dataclass
class DiagnosticsConfig:
    """Per-timestep gradient norms during training (:mod:`lstmlab.train.gradnorms`) and the gradient-norm
    study (``runner=gradnorm``, :mod:`lstmlab.study`)."""

    every: int = 0  # steps between probes of ||dL/dh_t||, plus one at step 0; 0 = off
    loss: str = "last"  # last: the loss at each sequence's last step only | all: at every step
    batch_size: int = 8  # examples of the fixed probe batch (the first of training batch 0); 0 = all
    jacobian: str = "none"  # none | full | h: also singular values of ds_T/ds_{T-k} at every probe
    cells: list[str] = field(default_factory=lambda: ["rnn", "lstm", "gru", "peephole"])  # the study's

    def check(self, bidirectional: bool = False) -> None:
        """``bidirectional``: ``model.bidirectional``; the probes need one direction of time."""
        for key, value in (("diagnostics.every", self.every), ("diagnostics.batch_size", self.batch_size)):
            _int_at_least(key, value, 0)
        if self.loss not in PROBE_LOSSES:
            raise ConfigError(f"diagnostics.loss={self.loss!r}; valid: {', '.join(PROBE_LOSSES)}")
        if self.jacobian not in JACOBIANS:
            raise ConfigError(f"diagnostics.jacobian={self.jacobian!r}; valid: {', '.join(JACOBIANS)}")
        if self.every and bidirectional:
            raise ConfigError(
                "diagnostics.every > 0 needs model.bidirectional=false (the probes follow one direction of time)"
            )

    def check_study(self) -> None:
        """What the gradient-norm study (``runner=gradnorm``) needs besides :meth:`check`."""
        from lstmlab import cells

        names = list(self.cells)
        if not names:
            raise ConfigError(f"diagnostics.cells is empty; give some of {', '.join(cells.CELLS)}")
        for name in names:
            if name not in cells.CELLS:
                raise ConfigError(f"diagnostics.cells has {name!r}, not a cell; valid: {', '.join(cells.CELLS)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"diagnostics.cells={names} names a cell twice")
        if self.every < 1:
            raise ConfigError(f"diagnostics.every={self.every} must be >= 1 for runner=gradnorm")


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

    def wanted(self) -> bool:
        """Whether this asks for ``jax.distributed`` (``enabled`` or any address/count/id set)."""
        return bool(
            self.enabled or self.coordinator_address or self.num_processes is not None or self.process_id is not None
        )

    def check(self) -> None:
        import re

        address = self.coordinator_address
        if address is not None and not re.fullmatch(r"\[?[^\s\]]+\]?:\d{1,5}", address):
            raise ConfigError(f"distributed.coordinator_address={address!r} must be host:port, e.g. 10.0.0.1:12355")
        explicit = {"coordinator_address": address, "num_processes": self.num_processes, "process_id": self.process_id}
        unset = [k for k, v in explicit.items() if v is None]
        if len(unset) < 3 and unset:
            raise ConfigError(
                f"distributed.{unset[0]} is not set; distributed.coordinator_address, num_processes "
                "and process_id go together (or set only distributed.enabled=true where JAX finds "
                "them)"
            )
        if self.num_processes is not None and self.num_processes < 1:
            raise ConfigError(f"distributed.num_processes={self.num_processes} must be >= 1")
        if self.process_id is not None and not 0 <= self.process_id < self.num_processes:
            raise ConfigError(
                f"distributed.process_id={self.process_id} must be in "
                f"[0, {self.num_processes - 1}] (distributed.num_processes={self.num_processes})"
            )
        if self.initialization_timeout < 1:
            raise ConfigError(f"distributed.initialization_timeout={self.initialization_timeout} must be >= 1 (s)")


#: Keys a resumed run may change freely: they do not alter the run's trajectory (its parameters,
#: batches, dropout keys and learning rates step by step), only what is logged, shown, sampled or kept,
#: or how the same computation is laid out (``trainer.devices``, ``trainer.split_per_device``: a run may
#: move between machines; results agree to rounding).
#: A key is listed, or lies under a listed section (``logger`` covers ``logger.wandb.mode``). Changing
#: any other key on resume is refused unless named in ``resume.allow_changes``.
RESUME_FREE_KEYS = (
    "experiment",
    "logger",
    "sample",
    "checkpoint",
    "distributed",
    "resume",
    "imports",
    "hydra",
    "trainer.progress",
    "trainer.log_every",
    "trainer.eval_every",
    "trainer.eval_max_batches",
    "trainer.max_skipped_fraction",
    "trainer.devices",
    "trainer.split_per_device",
)


def resume_free(key: str) -> bool:
    """Whether ``key`` (dotted) may change on resume without ``resume.allow_changes`` (see
    :data:`RESUME_FREE_KEYS`)."""
    return any(key == free or key.startswith(free + ".") for free in RESUME_FREE_KEYS)


def flat_keys(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as {"a.b": value}; lists are values."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                out.update(flat_keys(value, name + "."))
            else:
                out[name] = value
    return out


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``: the inverse of :func:`flat_keys`."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def resume_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (saved value, current value)} for every key of two resolved configs that differs and is
    not :func:`resume_free` (a key missing on one side counts as changed, with None)."""
    a, b = flat_keys(saved), flat_keys(current)
    return {
        key: (a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if not resume_free(key) and a.get(key) != b.get(key)
    }


@dataclass
class ResumeConfig:
    """What a resumed run may change. ``allow_changes``: keys (dotted, e.g. ``trainer.max_steps``) whose
    new value is accepted although it alters the run's trajectory; the change is recorded with its step
    in ``resume_changes.jsonl``. Given as ``+resume.allow_changes=[trainer.max_steps]``."""

    allow_changes: list[str] = field(default_factory=list)
    # a run directory that holds a run's records but no checkpoint to resume from: start again from
    # step 0, keeping the old records as NAME.previous (without it such a directory is refused)
    start_over: bool = False

    def check(self) -> None:
        for key in self.allow_changes:
            if not isinstance(key, str) or not key or resume_free(key):
                raise ConfigError(
                    f"resume.allow_changes has {key!r}; valid: dotted keys that alter the run "
                    f"(not {', '.join(RESUME_FREE_KEYS)}, which may change freely)"
                )


@dataclass
class Config:
    seed: int = 0
    experiment: str = "custom"
    imports: list[str] = field(default_factory=list)  # modules the commands import first (see import_modules)
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
    resume: ResumeConfig = field(default_factory=ResumeConfig)

    def _check_heads(self) -> None:
        """A cell with heads (slstm, mlstm) splits ``model.hidden_size`` evenly between them; a cell's
        ``hidden_multiple`` (the uRNN's complex units) is checked here too."""
        from lstmlab import cells

        heads = cells.cell_options(self.cell.name, **self.cell.options()).get("num_heads")
        if heads and self.model.hidden_size % heads:
            raise ConfigError(
                f"model.hidden_size={self.model.hidden_size} must be divisible by cell.num_heads={heads} "
                f"(cell={self.cell.name} splits it between its heads)"
            )
        multiple, why = getattr(cells.get(self.cell.name), "hidden_multiple", (1, ""))
        if self.model.hidden_size % multiple:
            raise ConfigError(
                f"model.hidden_size={self.model.hidden_size} must be a multiple of {multiple} "
                f"(cell={self.cell.name}: {why})"
            )

    def _check_omega(self) -> None:
        """Pascanu's regulariser is defined on one recurrence: one layer, one direction, no dropout."""
        if not self.optim.omega:
            return
        for bad, key in [
            (self.model.num_layers != 1, f"model.num_layers={self.model.num_layers}"),
            (self.model.bidirectional, "model.bidirectional=true"),
            (self.model.dropout > 0, f"model.dropout={self.model.dropout}"),
        ]:
            if bad:
                raise ConfigError(
                    f"optim.omega={self.optim.omega} needs one recurrent layer in one direction without dropout; "
                    f"got {key}"
                )

    def check(self) -> None:
        """Every section in turn (the ``data`` keys are checked by the data set's factory)."""
        check_numbers(self)
        self.cell.check()
        self.model.check()
        self._check_heads()
        self.trainer.check()
        self.checkpoint.check()
        self.sample.check()
        self.logger.check()
        self.optim.check(self.trainer.max_steps)
        self._check_omega()
        self.diagnostics.check(self.model.bidirectional)
        if self.runner not in RUNNERS:
            raise ConfigError(f"runner={self.runner!r} is not a runner; valid: {', '.join(RUNNERS)}")
        if self.runner == "gradnorm":
            self.diagnostics.check_study()
        self.distributed.check()
        self.resume.check()


def import_modules(modules: Any) -> None:
    """Import each module named in ``modules`` (the config's ``imports``), e.g. one that registers a cell
    with :func:`lstmlab.cells.register` or a data set with :func:`lstmlab.data.register`. The command
    line, search and sample commands call this before they check the config; from Python, import the
    module yourself. ConfigError (one line naming the module) if one cannot be imported."""
    import importlib

    if not isinstance(modules, list | tuple) or not all(isinstance(m, str) and m for m in modules):
        raise ConfigError(f"imports={modules!r} must be a list of module names, e.g. imports=[mypkg.cells]")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:  # a missing module, or one that fails as it is imported
            raise ConfigError(
                f"imports: cannot import {module!r} ({type(err).__name__}: {one_line(err)}); valid: a module "
                "on the Python path (PYTHONPATH or an installed package), e.g. imports=[mypkg.cells]"
            ) from err


#: Sections whose keys are free: ``data`` (checked against the data set's factory) and ``cell.extra``
#: (options of a registered cell, checked by the cell).
FREE_SECTIONS = ("data", "cell.extra")


def check_keys(tree: dict[str, Any], schema: type = None, prefix: str = "") -> None:
    """ConfigError (one line, naming the key and the nearest valid one) for a key of the composed
    ``tree`` (a plain nested dict) that the schema does not have, however it got there
    (``+model.hiden_size=64`` adds a key Hydra would otherwise keep silently)."""
    import difflib

    schema = Config if schema is None else schema
    known, defaults = {f.name: f for f in fields(schema)}, schema()
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            raise ConfigError(
                f"{name} is not a config key; {hint}valid keys{f' of {prefix[:-1]}' if prefix else ''}: "
                f"{', '.join(known)}"
            )
        sub = getattr(defaults, key)
        if is_dataclass(sub) and isinstance(value, dict) and name not in FREE_SECTIONS:
            check_keys(value, type(sub), f"{name}.")


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
