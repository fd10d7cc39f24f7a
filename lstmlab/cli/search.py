"""Hyperparameter search with Optuna: ``python -m lstmlab.search +experiment=NAME +search=NAME [overrides]``.

``conf/search/NAME.yaml`` declares the search (:class:`SearchConfig`): the space in Hydra's override
syntax (``choice(lstm, gru)``, ``range(1, 4)``, ``interval(0.1, 0.5)``, ``tag(log, interval(1e-4, 1e-2))``,
``int(interval(16, 128))``), the metric and its direction, the number of trials, the sampler (``tpe``,
``random``, ``grid``) and the pruner (``none``, ``median``, ``hyperband``, ``percentile``,
``successive_halving``, ``threshold``). ``search.KEY=VALUE`` on the command line overrides a key of it;
every other argument is an override applied to every trial. Each trial's config is composed with
:func:`lstmlab.cli.compose`, so overrides mean what they mean on the command line, and each trial is an
ordinary run directory, ``trial_NNNN`` under the search directory (``runs/EXPERIMENT/search/NAME`` by
default), with ``job.json`` and ``overrides.yaml`` as in a multirun. The pruner sees the metric at every
evaluation through the training loop's ``on_evaluate`` hook.

The study lives in ``study.db`` (SQLite) in the search directory unless ``search.storage`` names another
Optuna storage: an RDB URL (``sqlite:///...``, ``postgresql://...``) or a journal file
(``journal:/shared/study.log``, Optuna's file-locked journal, for shared file systems). Rerunning the
command continues the study: it runs trials until ``n_trials`` are finished or running, and a trial left
running by a worker on this host that no longer exists is resumed from its checkpoint under the same
trial number. Several workers started with the same storage (on one host or many, e.g. the tasks of a
SLURM array) share the study.

``per: KEY`` (a key of the space given as ``choice(...)``) stratifies the search: every value of KEY gets
the same number of trials (``n_trials`` must be a multiple of the number of values). Before each new
trial the value with the fewest trials so far (waiting ones included; ties in the order written) is
enqueued as a partial trial (Optuna's ``study.enqueue_trial``) and the sampler draws the other keys, so
``per: cell.variant`` with nine variants and ``n_trials: 54`` gives each variant six trials, round-robin,
also across reruns and workers (two workers enqueueing at the same moment can give one value a trial
more and, at the end, another one fewer). ``paired: true`` makes the design paired: trials come in
blocks of one trial per value that share every other parameter, so ``per: cell.variant`` compares the
variants on the same hyperparameters (the report's verdicts pair them with ``pair_by``).
"""

from __future__ import annotations

import difflib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lstmlab.cli import conf_dir
from lstmlab.config import ConfigError, fail, flat_keys
from lstmlab.io.files import nearest_existing
from lstmlab.io.rundir import SUMMARY, SweepDir
from lstmlab.report.studies import open_storage
from lstmlab.runner import check_searchable
from lstmlab.tasks import Task, task_for

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "percentile", "hyperband", "successive_halving", "threshold")
DIRECTIONS = ("minimize", "maximize")


@dataclass
class SearchConfig:
    """A search, as in ``conf/search/NAME.yaml``."""

    # a metric the experiment's task declares (lstmlab.tasks), as summary.json names it; the pruner is fed
    # it at every evaluation. None: the task's headline on validation data (val/bpc, val/accuracy, ...)
    metric: str | None = None
    direction: str | None = None  # minimize | maximize; None: the task's declared direction
    n_trials: int = 20  # trials of the study (finished or running), over all workers and reruns
    space: dict[str, str] = field(default_factory=dict)  # config key -> Hydra sweep expression
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})  # name + the class's kwargs
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "none"})  # name + the class's kwargs
    seed: int | None = 0  # trial N's sampler is seeded with seed + N; None: not seeded
    storage: str | None = None  # Optuna storage URL or journal:PATH; None: sqlite in the search dir
    study_name: str | None = None  # None: the search's name
    dir: str | None = None  # the search directory; None: runs/EXPERIMENT/search/NAME
    per: str | None = None  # a choice(...) key of space: every value gets n_trials / (its values) trials
    # with per: trials come in blocks, one per value of per, that share every other sampled parameter
    # (a paired design: each value meets the same hyperparameters)
    paired: bool = False

    def check(self) -> None:
        """ConfigError naming the first bad key (the space is checked by :func:`parse_space` and
        :func:`check_space`, the metric by :meth:`choose_objective`)."""
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ConfigError(f"search.direction={self.direction!r}; valid: {', '.join(DIRECTIONS)}")
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ConfigError(f"search.n_trials={self.n_trials!r}; give an integer >= 1")
        if self.paired and self.per is None:
            raise ConfigError("search.paired=true pairs the values of search.per; set search.per=KEY")
        for part, names in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
            chosen = getattr(self, part).get("name")
            if chosen not in names:
                raise ConfigError(f"search.{part}.name={chosen!r} is not a {part}; valid: {', '.join(names)}")

    def choose_objective(self, task: Task) -> None:
        """Set ``metric`` (default: ``task``'s headline on validation data) and ``direction`` (default:
        the task's declared one). ConfigError if the task does not declare the metric, listing those it
        does, or if ``direction`` contradicts the declaration."""
        self.metric = self.metric or task.headline_key("val")
        declared = task.metric(self.metric)
        if declared is None or not self.metric.startswith(("val/", "test/")):
            valid = [f"val/{name}" for name in task.metrics]
            raise ConfigError(
                f"search.metric={self.metric} is not a metric of the {task.kind!r} task; valid: {', '.join(valid)}"
            )
        if self.direction not in (None, declared.direction):
            raise ConfigError(
                f"search.direction={self.direction} contradicts {self.metric}, which the task declares "
                f"{declared.direction}d ({declared.label}); valid: {declared.direction}"
            )
        self.direction = declared.direction


@dataclass
class Dimension:
    """One searched key: how to draw it from a trial, and the override that sets it."""

    key: str
    kind: str  # categorical | int | float
    choices: list[Any] = field(default_factory=list)
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Any] | None:
        """The values of a discrete dimension (for the grid sampler); None for a continuous one."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is not None:
            values, v = [], self.low
            while v <= self.high + 1e-12:
                values.append(int(v) if self.kind == "int" else v)
                v += self.step
            return values
        return None


def override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override syntax (strings quoted where they must be)."""
    from hydra.core.override_parser.types import Override

    return f"{key}={Override._get_value_element_as_str(value)}"


def parse_space(space: dict[str, str]) -> list[Dimension]:
    """The dimensions of ``space`` (key -> Hydra sweep expression). Raises ConfigError for an expression
    that does not parse, is not a sweep, or is empty."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parser = OverridesParser.create()
    dims = []
    for key, expr in space.items():
        where = f"search.space.{key}={expr}"
        try:
            parsed = parser.parse_override(f"{key}={expr}")
        except Exception as err:
            raise ConfigError(f"{where} does not parse: {' '.join(str(err).split())[:200]}") from err
        value = parsed.value()
        if isinstance(value, ChoiceSweep):
            if not value.list:
                raise ConfigError(f"{where} is empty; give at least one choice")
            dims.append(Dimension(key, "categorical", choices=list(value.list)))
        elif isinstance(value, RangeSweep):
            values = list(parsed.sweep_iterator())
            if not values:
                raise ConfigError(f"{where} is an empty range (start must be below stop for a positive step)")
            ints = all(isinstance(v, int) for v in values)
            dims.append(
                Dimension(
                    key,
                    "int" if ints else "float",
                    low=values[0],
                    high=values[-1],
                    step=value.step if len(values) > 1 else 1,
                    choices=values,
                )
                if value.step > 0
                else Dimension(key, "categorical", choices=values)
            )
        elif isinstance(value, IntervalSweep):
            if not value.start < value.end:
                raise ConfigError(f"{where} is an empty range ({value.start} is not below {value.end})")
            log = "log" in value.tags
            if log and value.start <= 0:
                raise ConfigError(f"{where}: a log range must start above 0")
            ints = isinstance(value.start, int) and isinstance(value.end, int)
            dims.append(Dimension(key, "int" if ints else "float", low=value.start, high=value.end, log=log))
        else:
            raise ConfigError(
                f"{where} is not a search range; use choice(...), range(...) or interval(...) "
                f"(a fixed value goes on the command line)"
            )
    if not dims:
        raise ConfigError("search.space is empty; give at least one key, e.g. optim.lr: tag(log, interval(1e-4, 1e-2))")
    return dims


def check_per(search: SearchConfig, dims: list[Dimension]) -> Dimension | None:
    """The dimension ``search.per`` stratifies (None without ``per``). Raises ConfigError unless it is a
    ``choice(...)`` key of the space whose number of values divides ``n_trials``."""
    if search.per is None:
        return None
    if search.sampler["name"] == "grid":
        raise ConfigError("search.per needs search.sampler.name=random or tpe (a grid covers every value already)")
    by_key = {d.key: d for d in dims}
    dim = by_key.get(search.per)
    if dim is None:
        raise ConfigError(f"search.per={search.per} is not a key of search.space; valid: {', '.join(by_key)}")
    if dim.kind != "categorical":
        raise ConfigError(f"search.per={search.per}: give search.space.{search.per} as choice(...), not a range")
    if len(set(map(repr, dim.choices))) != len(dim.choices):
        raise ConfigError(f"search.space.{search.per} repeats a value; give each value once for search.per")
    if search.n_trials % len(dim.choices):
        raise ConfigError(
            f"search.n_trials={search.n_trials} is not a multiple of the {len(dim.choices)} values of "
            f"search.per={search.per}; use e.g. {len(dim.choices) * max(1, search.n_trials // len(dim.choices))}"
        )
    return dim


def enqueue_next(study, dim: Dimension, paired: bool = False) -> Any:
    """Enqueue a partial trial fixing ``dim`` to its value with the fewest trials in ``study`` (every
    state counts, waiting ones by their fixed value; ties go to the value written first) and return the
    value. Nothing is enqueued while a trial is waiting: the next ``study.ask()`` takes that one.

    ``paired``: trials come in blocks of one trial per value, in the order written; the first trial of
    a block is drawn by the sampler, the others copy its parameters but ``dim`` (a paired design; the
    blocks need one worker, or workers that do not start trials at the same moment)."""
    from optuna.trial import TrialState

    if paired:
        trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        if any(t.state == TrialState.WAITING for t in trials):
            return None
        k = len(dim.choices)
        position = len(trials) % k
        value = dim.choices[position]
        if position == 0:
            study.enqueue_trial({dim.key: value})
        else:
            first = trials[len(trials) - position]
            study.enqueue_trial({**first.params, dim.key: value})
        return value

    counts = {repr(v): 0 for v in dim.choices}
    waiting = False
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            waiting = True
            value = t.system_attrs.get("fixed_params", {}).get(dim.key)
        else:
            value = t.params.get(dim.key)
        if repr(value) in counts:
            counts[repr(value)] += 1
    if waiting:
        return None
    value = min(dim.choices, key=lambda v: counts[repr(v)])  # min keeps the first of equal counts
    study.enqueue_trial({dim.key: value})
    return value


def check_space(dims: list[Dimension], experiment: str | None, base: list[str]) -> None:
    """Every key names a config key or group, and every choice (and a range's ends) composes."""
    from lstmlab.cli import compose

    leaves = flat_keys(asdict(compose(experiment, base)))
    keys = {".".join(key.split(".")[:n]) for key in leaves for n in range(1, key.count(".") + 2)}  # and sections
    groups = {p.name for p in conf_dir().iterdir() if p.is_dir()}
    for dim in dims:
        if dim.key not in keys and dim.key not in groups:
            close = difflib.get_close_matches(dim.key, sorted(keys | groups), n=3)
            raise ConfigError(
                f"search.space.{dim.key} is not a config key or group"
                + (f"; did you mean {', '.join(close)}?" if close else "")
            )
        for value in dim.choices if dim.kind == "categorical" else [dim.low, dim.high]:
            try:
                compose(experiment, [*base, override(dim.key, value)])
            except ConfigError as err:
                raise ConfigError(f"search.space.{dim.key}: {value!r} does not fit: {err}") from err


def load_search(name: str, overrides: list[str]) -> SearchConfig:
    """``conf/search/NAME.yaml`` with ``search.KEY=VALUE`` overrides, checked against :class:`SearchConfig`."""
    from omegaconf import OmegaConf

    path = conf_dir() / "search" / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in (conf_dir() / "search").glob("*.yaml"))
        raise ConfigError(f"search={name} does not exist; valid: {', '.join(valid) or 'none'}")
    try:
        # search.space.KEY=EXPR: KEY is one config key (dots and all), EXPR is kept as written
        space = {
            o.removeprefix("search.space.").partition("=")[0]: o.partition("=")[2]
            for o in overrides
            if o.startswith("search.space.")
        }
        rest = [o.removeprefix("search.") for o in overrides if not o.startswith("search.space.")]
        cfg = OmegaConf.merge(OmegaConf.structured(SearchConfig), OmegaConf.load(path), OmegaConf.from_dotlist(rest))
        search = OmegaConf.to_object(cfg)
        search.space.update(space)
    except Exception as err:
        key = getattr(err, "full_key", None) or getattr(err, "key", None)
        lines = [line for line in str(err).splitlines() if line.strip()]
        valid = ", ".join(f.name for f in SearchConfig.__dataclass_fields__.values())
        raise ConfigError(
            f"{path.name}: {lines[0] if lines else type(err).__name__}"
            + (f" (key search.{key}; valid keys: {valid})" if key else "")
        ) from err
    search.check()
    return search


def make_sampler(search: SearchConfig, dims: list[Dimension], seed: int | None = None):
    """The sampler of ``search`` (``seed``: instead of ``search.seed``)."""
    import optuna

    kwargs = {k: v for k, v in search.sampler.items() if k != "name"}
    name = search.sampler["name"]
    kwargs.setdefault("seed", search.seed if seed is None else seed)
    if name == "grid":
        grid = {d.key: d.grid() for d in dims}
        continuous = [k for k, v in grid.items() if v is None]
        if continuous:
            raise ConfigError(
                f"search.sampler.name=grid needs choice(...) or range(...) for every key; "
                f"{', '.join(continuous)} is an interval"
            )
        size = math.prod(len(v) for v in grid.values())
        search.n_trials = min(search.n_trials, size)  # the grid, once
        return optuna.samplers.GridSampler(grid, **kwargs)
    classes = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    return _construct(classes[name], kwargs, "sampler", tuple(classes.values()))


def make_pruner(search: SearchConfig, max_steps: int, eval_every: int):
    import optuna

    kwargs = {k: v for k, v in search.pruner.items() if k != "name"}
    name = search.pruner["name"]
    classes = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "threshold": optuna.pruners.ThresholdPruner,
    }
    if name == "hyperband":
        kwargs.setdefault("min_resource", eval_every)
        kwargs.setdefault("max_resource", max_steps)
    return _construct(classes[name], kwargs, "pruner", tuple(classes.values()))


def _construct(cls, kwargs: dict[str, Any], part: str, others: tuple = ()):
    """``cls(**kwargs)``, leaving out keys that only the ``others`` (the part's other classes) take, so
    that switching ``search.pruner.name`` keeps working with the previous pruner's options in place; a
    key no class takes is an error."""
    import inspect

    own = set(inspect.signature(cls).parameters)
    theirs = {name for other in others for name in inspect.signature(other).parameters}
    kwargs = {k: v for k, v in kwargs.items() if k in own or k not in theirs}
    try:
        inspect.signature(cls).bind(**kwargs)
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"search.{part}: {cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {err}"
        ) from err


def _writable_place(path: Path) -> bool:
    """Whether ``path`` is, or could be made as, something inside a writable directory."""
    parent = nearest_existing(path)
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def check_places(directory: Path, storage: str | None) -> None:
    """ConfigError (one line) unless the search directory and the storage can be written: checked
    before anything is, so a bad one leaves nothing behind."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"search.dir={directory} is a file; valid: a writable directory")
    if not _writable_place(directory):
        raise ConfigError(f"search.dir={directory} cannot be written; valid: a writable directory")
    if storage is None:
        return
    if storage.startswith("journal:"):
        target = Path(storage.removeprefix("journal:"))
    else:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(storage)
        except ArgumentError:
            raise ConfigError(
                f"search.storage={storage!r} is not a storage URL; valid: sqlite:///PATH, postgresql://..., "
                "or journal:PATH"
            ) from None
        if url.get_backend_name() != "sqlite" or not url.database:
            return  # a database server: Optuna tells when it cannot be reached
        target = Path(url.database)
    if target.is_dir() or not _writable_place(target.absolute().parent):
        raise ConfigError(
            f"search.storage={storage}: {target} cannot be written; valid: a file in a writable directory"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def orphaned_trials(study) -> list:
    """Running trials whose worker ran on this host and is gone (killed mid-trial)."""
    from optuna.trial import TrialState

    host = os.uname().nodename
    orphans = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        w_host, _, pid = worker.rpartition(":")
        if w_host == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            orphans.append(t)
    return orphans


@dataclass
class Search:
    """A search ready to run: the study, where trials go, and how a trial's config is made."""

    name: str
    experiment: str | None
    base: list[str]
    config: SearchConfig
    dims: list[Dimension]
    directory: Path
    study: Any
    max_steps: int
    per: Dimension | None = None  # the stratified dimension (search.per)

    def run(self, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Run trials until the study has ``n_trials`` finished or running ones (resuming orphans first);
        returns counts, the best trial and the mean overhead per trial."""
        import optuna
        from optuna.trial import TrialState

        overheads = []
        while True:
            orphans = orphaned_trials(self.study)
            if orphans:
                trial = optuna.trial.Trial(self.study, orphans[0]._trial_id)
                log(f"trial {trial.number}: resuming (its worker is gone)")
            else:
                counted = self.study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
                )
                if len(counted) >= self.config.n_trials:
                    break
                if self.per is not None:
                    enqueue_next(self.study, self.per, self.config.paired)
                trial = self.study.ask()
                self.reseed(trial.number)
            trial.set_user_attr("worker", _worker())
            overheads.append(self.run_trial(trial, log))
        trials = self.study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        result: dict[str, Any] = {
            "trials": len(trials),
            **{k: v for k, v in counts.items() if v},
            "overhead_seconds": sum(overheads) / len(overheads) if overheads else None,
        }
        try:
            best = self.study.best_trial
            result.update(best_value=best.value, best_trial=best.number, best_params=best.params)
        except ValueError:
            pass
        return result

    def reseed(self, number: int) -> None:
        """Give trial ``number`` a sampler seeded with ``seed + number``: workers sharing a study then draw
        different parameters (with one seed per worker, two workers started together would draw the
        same ones), and a search is as reproducible as its trial numbering. TPE and random samplers
        keep no state but their random generator, so a fresh one per trial samples the same way; the
        grid sampler coordinates its workers itself and is kept."""
        if self.config.sampler["name"] != "grid" and self.config.seed is not None:
            self.study.sampler = make_sampler(self.config, self.dims, seed=self.config.seed + number)

    def run_trial(self, trial, log: Callable[[str], None]) -> float:
        """Run one trial in its run directory and tell the study how it ended; returns the seconds spent
        outside :func:`~lstmlab.train.train_and_evaluate` (composition, bookkeeping, the study)."""
        import optuna
        from optuna.trial import TrialState

        from lstmlab.cli import compose
        from lstmlab.cli.sweep import error_line, record_job
        from lstmlab.runner import run as run_config
        from lstmlab.train import distributed

        start = time.perf_counter()
        params = {d.key: d.suggest(trial) for d in self.dims}
        trial_overrides = [override(k, v) for k, v in params.items()]
        run_dir = self.directory / f"trial_{trial.number:04d}"
        record: dict[str, Any] = {
            "job": trial.number,
            "trial": trial.number,
            "study": self.study.study_name,
            "overrides": [*self.base, *trial_overrides],
            "status": "running",
            "host": os.uname().nodename,
            "pid": os.getpid(),
        }

        def on_evaluate(step: int, metrics: dict[str, float]) -> None:
            value = metrics.get(self.config.metric)
            if value is not None and math.isfinite(value):
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step} ({self.config.metric} {value:.4g})")

        training = 0.0
        state, value = TrialState.FAIL, None
        try:
            config = compose(self.experiment, record["overrides"])
            distributed.set_cpu_devices(config)
            record_job(run_dir, record)
            began = time.perf_counter()
            try:
                summary = run_config(config, run_dir, on_evaluate=on_evaluate)
            finally:
                training = time.perf_counter() - began
            value = summary.get(self.config.metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                state, record["status"] = TrialState.COMPLETE, "completed"
            else:
                record["status"], record["error"] = "failed", f"{self.config.metric} is {value!r} in {SUMMARY}"
        except optuna.TrialPruned as err:
            state, record["status"], record["error"] = TrialState.PRUNED, "pruned", str(err)
        except (Exception, SystemExit) as err:
            code = err.code if isinstance(err, SystemExit) else None
            if isinstance(code, int) and code >= 128:  # a signal: leave the trial running, to be resumed
                record["status"] = "interrupted"
                record_job(run_dir, record)
                raise
            record["status"], record["error"] = "failed", error_line(err)
        record["seconds"] = round(time.perf_counter() - start, 3)
        record["value"] = value
        record_job(run_dir, record)
        self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        overhead = time.perf_counter() - start - training
        shown = " ".join(trial_overrides)
        outcome = f"{self.config.metric} {value:.4g}" if state == TrialState.COMPLETE else record.get("error", "")
        log(
            f"trial {trial.number} {record['status']}: {shown}: {outcome} ({record['seconds']:.1f} s, "
            f"overhead {overhead:.2f} s)"
        )
        return overhead


def prepare(argv: list[str]) -> Search:
    """Parse the command line, check the search and open (or create) the study. Raises ConfigError for
    bad input before anything is written."""
    import optuna
    from omegaconf import OmegaConf

    from lstmlab.cli import compose

    experiment, name, search_overrides, base = None, None, [], []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("+experiment", "experiment") and value:
            experiment = value
        elif key in ("+search", "search") and value:
            name = value
        elif key.lstrip("+").startswith("search."):  # a key of the search, with + or without
            search_overrides.append(arg.lstrip("+"))
        elif arg.startswith("-"):
            raise ConfigError(
                f"unknown option {arg}; usage: python -m lstmlab.search +experiment=NAME "
                f"+search=NAME [search.KEY=VALUE] [overrides]"
            )
        else:
            base.append(arg)
    if name is None:
        valid = sorted(p.stem for p in (conf_dir() / "search").glob("*.yaml"))
        raise ConfigError(f"no search given; add +search=NAME (valid: {', '.join(valid)})")
    search = load_search(name, search_overrides)
    dims = parse_space(search.space)
    per = check_per(search, dims)
    if experiment is not None:
        base = [f"+experiment={experiment}", *base]
    config = compose(None, base)
    check_searchable(config)
    from lstmlab.train import build_dataset

    search.choose_objective(task_for(build_dataset(config).spec))
    check_space(dims, None, base)
    sampler = make_sampler(search, dims)
    pruner = make_pruner(search, config.trainer.max_steps, config.trainer.eval_every)
    directory = Path(search.dir or f"runs/{config.experiment}/search/{name}").absolute()
    study_name = search.study_name or name
    check_places(directory, search.storage)
    # -- from here on the search directory is written --------------------------------------------------
    default_storage = f"sqlite:///{SweepDir(directory).study_db}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        storage = open_storage(search.storage or default_storage)
    except Exception as err:  # OS, SQLAlchemy and Optuna errors: the place cannot be used after all
        raise ConfigError(
            f"search.dir={directory} / search.storage={search.storage or default_storage} cannot be used "
            f"({type(err).__name__}: {' '.join(str(err).split())[:200]})"
        ) from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(2):  # two workers creating the study at once: one creates, the other loads
        try:
            study = optuna.create_study(
                study_name=study_name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction=search.direction,
                load_if_exists=True,
            )
            break
        except optuna.exceptions.DuplicatedStudyError:
            if attempt:
                raise
    if study.direction.name.lower() != search.direction:
        raise ConfigError(
            f"study {study_name!r} in {search.storage or SweepDir(directory).study_db} is to "
            f"{study.direction.name.lower()}, not {search.direction}; use another study_name"
        )
    saved = {
        "name": name,
        "study_name": study_name,
        "storage": search.storage or default_storage,
        "base_overrides": base,
        "search": OmegaConf.to_container(OmegaConf.structured(search)),
    }
    SweepDir(directory).write_search(OmegaConf.to_yaml(OmegaConf.create(saved)))
    os.environ.setdefault("WANDB_RUN_GROUP", f"search/{study_name}")
    return Search(name, None, base, search, dims, directory, study, config.trainer.max_steps, per)


def main(argv: list[str] | None = None) -> int:
    """``python -m lstmlab.search``: exit status 0 when the study has its trials, 2 for bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        search = prepare(argv)
    except ConfigError as err:
        if debug:
            raise
        fail(err)
    import logging

    for noisy in ("absl", "orbax", "jax", "wandb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(
        f"lstmlab: study {search.study.study_name!r} in {search.directory} ({search.config.n_trials} trials, "
        f"{search.config.metric} {search.config.direction})",
        flush=True,
    )
    result = search.run(lambda line: print(line, flush=True))
    print("\n".join(summary_lines(search, result)), flush=True)
    return 0


def summary_lines(search: Search, result: dict[str, Any]) -> list[str]:
    """The end of a search for people: its trials by state, the best value and its parameters, and
    the command that tables it."""
    states = ", ".join(f"{result[s]} {s}" for s in ("complete", "pruned", "fail", "running") if result.get(s))
    lines = [f"lstmlab: {result['trials']} trials ({states or 'none finished'}) in {search.directory}"]
    if "best_value" in result:
        params = " ".join(override(k, v) for k, v in result["best_params"].items())
        lines.append(
            f"lstmlab: best {search.config.metric} {result['best_value']:.4g} (trial {result['best_trial']}): {params}"
        )
    lines.append(f"lstmlab: table and figures: python -m lstmlab.report {search.directory}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
