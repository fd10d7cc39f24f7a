"""The command line: ``python -m lstmlab +experiment=NAME [overrides]``, and the package of every entry point.

Each entry point is a thin module over the library, here together: this one trains (and composes
configs with Hydra: the only package that knows Hydra), :mod:`~lstmlab.cli.sweep` records the jobs of a
multirun (``-m``), :mod:`~lstmlab.cli.search` runs an Optuna search (``python -m lstmlab.search``),
:mod:`~lstmlab.cli.report` makes tables and figures (``python -m lstmlab.report``),
:mod:`~lstmlab.cli.sample` generates text (``python -m lstmlab.sample``) and :mod:`~lstmlab.cli.inspect`
looks inside a character model (``python -m lstmlab.inspect``). The names after ``python -m`` are
two-line modules that call these.

Configs live in the top-level ``conf/`` (shipped inside the wheel as ``lstmlab/conf``), so the command
works from any directory. The run directory is ``hydra.run.dir``; running the same command with the
same run directory resumes it. Bad input ends with one line on stderr and exit status 2 (set
``HYDRA_FULL_ERROR=1`` for the traceback), before anything is written: an existing run directory is left
as it was, and a directory Hydra made for a run that failed its checks is removed again. A non-finite
loss or gradient norm under ``trainer.nonfinite=stop`` ends with exit status 3; SIGTERM/SIGINT save a
checkpoint and end with 128 + the signal number (130, 143). The library raises these as exceptions
(:class:`~lstmlab.config.ConfigError`, :class:`~lstmlab.train.NonFiniteError`,
:class:`~lstmlab.train.Preempted`); only this module turns them into messages and exit statuses.

Exit statuses: 2 bad input (a bad value, a run directory that cannot be written or holds a symbolic
link, a run directory in use by another process, a resume that would change the run), 3 a stopped run
(non-finite values, too many skipped updates, a write that failed mid-run such as a full disk; the
checkpoints are intact), 130/143 SIGINT/SIGTERM (also Ctrl-C during start-up, before anything was
saved). Each ends with one line on stderr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from lstmlab.config import Config, fail

EXIT_STOPPED = 3
CONFIG_NAME = "config"  # the root of conf/, which every composition starts from
SAMPLE_LINES = 4  # lines of the last generated text a text run shows at its end
_NEW_DIRS: list[Path] = []  # the run directory and the parents of it that did not exist at the start


def conf_dir() -> Path:
    """``lstmlab/conf`` in an installed wheel, the repository's ``conf/`` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"lstmlab's Hydra configs are missing (looked in {package / 'conf'} and "
        f"{package.parent / 'conf'}); reinstall the package"
    )


DATA_NODE = "lstmlab_data_{}"  # the generated defaults of a data set, extended by conf/data/*.yaml


def register_schema() -> None:
    """Store in Hydra's ConfigStore the schema (``lstmlab_schema``, the :class:`~lstmlab.config.Config`
    dataclass) and, for every data set, a node ``lstmlab_data_NAME`` holding ``name`` and the defaults
    of its factory (:func:`lstmlab.data.defaults`). ``conf/data/NAME.yaml`` extends that node through
    its defaults list (``- /lstmlab_data_NAME@_here_``) and sets only what differs from it."""
    from hydra.core.config_store import ConfigStore

    from lstmlab import data
    from lstmlab.config import Config

    store = ConfigStore.instance()
    store.store(name="lstmlab_schema", node=Config)
    for name in data.names():
        node = {"name": name, **data.defaults(name)}
        store.store(name=DATA_NODE.format(name), node=node)
        if not (conf_dir() / "data" / f"{name}.yaml").exists():  # registered in Python: data=NAME picks it
            store.store(group="data", name=name, node=node)


def import_named_modules(overrides: list[str]) -> None:
    """Import the modules an ``imports=[...]`` override names, before the config is composed, so that
    the data sets they register are choices of the data group (``data=NAME``) and their cells can be
    named. Raises :class:`~lstmlab.config.ConfigError` (one line) for a value that is not a list of
    module names or a module that cannot be imported. ``imports`` set in a config file are imported
    after composition instead (:func:`lstmlab.config.import_modules`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lstmlab.config import ConfigError, import_modules

    for arg in overrides:
        if arg.lstrip("+").startswith("imports="):
            try:
                value = OverridesParser.create().parse_override(arg.lstrip("+")).value()
            except Exception as err:  # Hydra's grammar errors
                raise ConfigError(f"{arg}: {describe_config_error(err)}; e.g. imports=[mypkg.data]") from err
            import_modules(value if isinstance(value, list) else [value])


@contextlib.contextmanager
def _bad_input(*errors: type[BaseException]):
    """An exception of ``errors`` raised inside ends in one line and exit status 2 (:func:`lstmlab.config.fail`), or
    in its traceback under ``HYDRA_FULL_ERROR=1``."""
    try:
        yield
    except errors as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(str(err))


def _notify(line: str) -> None:
    print(f"lstmlab: {' '.join(line.split())}", file=sys.stderr, flush=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop (which handles it itself), raised like Ctrl-C's
    KeyboardInterrupt so that start-up stops where it is."""

    signum = 15


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _interrupted(err: BaseException) -> None:
    """One line and exit status 128 + N for SIGINT (Ctrl-C) or SIGTERM outside the training loop."""
    import signal

    signum = getattr(err, "signum", signal.SIGINT)
    print(
        f"lstmlab: interrupted ({signal.Signals(signum).name}) outside the training loop (start-up or final "
        "evaluation); the checkpoints are as they were; run the same command to resume",
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)


def run(cfg) -> dict | None:
    """The Hydra task of ``hydra.main`` (a multirun, or a command with one of Hydra's own flags). A job
    of a multirun goes through :func:`lstmlab.cli.sweep.run_job`, which records its overrides and status in
    its run directory and keeps a failure from stopping the other jobs."""
    from lstmlab.cli import sweep

    if sweep.in_multirun():
        return sweep.run_job(_run, cfg)
    return _run(cfg)


def _run(cfg, config: Config | None = None) -> dict:
    """Run the composed config ``cfg`` (or its :class:`Config`, ``config``, when the caller has made it)
    with its runner (:func:`lstmlab.runner.run`)."""
    import logging

    from hydra.core.hydra_config import HydraConfig

    from lstmlab.config import ConfigError, import_modules
    from lstmlab.io.checkpoint import quiet_closed_loop_callbacks
    from lstmlab.io.files import UnsafePathError
    from lstmlab.io.lock import RunLockedError
    from lstmlab.runner import run as run_config
    from lstmlab.train import NonFiniteError, Preempted, RunStopped, distributed

    quiet_closed_loop_callbacks()
    for noisy in ("absl", "orbax", "jax", "wandb"):  # Hydra sets the root logger to INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    debug = os.environ.get("HYDRA_FULL_ERROR") == "1"
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = to_config(cfg) if config is None else config
        import_modules(config.imports)  # again in a job of a multirun, which may be a process of its own
        distributed.set_cpu_devices(config)  # trainer.devices / split_per_device; before JAX starts
        summary = run_config(config, run_dir, notify=_notify)
        if distributed.is_primary():
            print("\n".join(result_lines(summary, run_dir)), flush=True)
        return summary
    except (ConfigError, UnsafePathError, RunLockedError) as err:
        if debug:
            raise
        fail(str(err))
    except (NonFiniteError, RunStopped) as err:
        if debug:
            raise
        fail(str(err), EXIT_STOPPED)
    except OSError as err:  # before training: the run directory or the data cannot be used
        if debug:
            raise
        where = f" ({err.filename})" if err.filename else ""
        fail(
            f"{err.strerror or err}{where}; nothing was trained; check the run directory (hydra.run.dir) "
            "and the data paths"
        )
    except KeyboardInterrupt as err:
        if debug:
            raise
        _interrupted(err)
    except Preempted as err:
        if distributed.is_primary():  # the process that saved the checkpoint
            print(f"lstmlab: {err}", file=sys.stderr)
        raise SystemExit(128 + err.signum) from None
    finally:
        _remove_new_empty_dirs()


def result_lines(summary: dict, run_dir: Path) -> list[str]:
    """The last lines of a run: its directory, then its task's reading of the test metrics."""
    from lstmlab.io.rundir import RunDir
    from lstmlab.tasks import task_for

    lines = [f"run directory: {run_dir}"]
    if summary.get("task") and not any(key.startswith("test/") for key in summary):  # trainer.test=false
        key = task_for(summary["task"]).headline_key("val")
        lines.append(f"{key} {summary.get(key, float('nan')):.6g}; the test split was not read (trainer.test=false)")
    elif summary.get("task"):
        lines += task_for(summary["task"]).result_lines(summary)
    rundir = RunDir(run_dir)
    sample = rundir.last_sample()
    if sample is not None:
        heading, text = sample
        shown = text.splitlines()[:SAMPLE_LINES]
        lines += [f"generated text, {heading} (all of it: {rundir.samples}):", *(f"  {s}" for s in shown)]
    return lines


def _remove_new_empty_dirs() -> None:
    """Remove the run directory (and its parents) that Hydra made for this run if nothing was written
    into them, e.g. because the config failed its checks. Directories that existed before are kept."""
    from lstmlab.io.rundir import RunDir

    for directory in _NEW_DIRS:  # deepest first
        if not RunDir(directory).remove_if_unused():
            break


MULTIRUN_FLAGS = ("-m", "--multirun")
JOB_NAME = "lstmlab"  # hydra.job.name of a single run


def to_config(cfg) -> Config:
    """The :class:`~lstmlab.config.Config` of a composed DictConfig (without its ``hydra`` node), after
    checking that every key it holds is in the schema (:func:`lstmlab.config.check_keys`): Hydra keeps a
    key added with ``+`` that the schema lacks, and the dataclass would drop it without a word."""
    from omegaconf import OmegaConf

    from lstmlab.config import check_keys

    check_keys(OmegaConf.to_container(cfg, resolve=False))
    return OmegaConf.to_object(cfg)


def compose(experiment: str | None, overrides: list[str] = ()) -> Config:
    """The config of ``+experiment=EXPERIMENT`` with ``overrides`` (Hydra's override syntax, as on the
    command line), type-checked against the schema: a :class:`~lstmlab.config.Config` (``config.yaml``
    holds ``dataclasses.asdict`` of it). ``experiment=None`` composes the root config alone; the modules in
    ``imports`` are imported. Raises :class:`~lstmlab.config.ConfigError` with a one-line message for a
    bad group choice, key or type, or a module that cannot be imported.
    The way to load a named experiment from Python, and what :mod:`lstmlab.cli.search` builds trials with."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from lstmlab.config import ConfigError, import_modules

    args = ([f"+experiment={experiment}"] if experiment else []) + normalize_overrides(list(overrides))
    import_named_modules(args)
    register_schema()
    was_initialized = GlobalHydra.instance().is_initialized()
    try:
        if was_initialized:  # e.g. inside a Hydra app: compose with its own search path
            cfg = hydra_compose(CONFIG_NAME, overrides=args)
        else:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                cfg = hydra_compose(CONFIG_NAME, overrides=args)
        with open_dict(cfg):
            cfg.pop("hydra", None)
        config = to_config(cfg)
    except Exception as err:  # Hydra and OmegaConf raise many types; all are bad input here
        raise ConfigError(describe_config_error(err)) from err
    import_modules(config.imports)
    return config


def check_overrides(overrides: list[str]):
    """Compose the config with ``overrides`` and type-check it against the schema, so that a bad group
    choice, key or type ends in one line and exit status 2 before anything is created, and import the
    modules in ``imports``. Returns the composed DictConfig, with its ``hydra`` node and the run directory
    (``hydra.run.dir``) resolved once, and its :class:`Config`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from lstmlab.config import ConfigError, import_modules

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
            with open_dict(cfg):
                cfg.hydra.run.dir = str(cfg.hydra.run.dir)  # the time stamp, once
                task_cfg = cfg.copy()
                del task_cfg["hydra"]
            config = to_config(task_cfg)
    except Exception as err:  # Hydra and OmegaConf raise many types; all are bad input here
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(_data_key_hint(err, overrides) or describe_config_error(err))
    with _bad_input(ConfigError):
        import_modules(config.imports)
    if "SlurmLauncher" in str(cfg.hydra.launcher.get("_target_", "")) and shutil.which("sbatch") is None:
        fail("hydra/launcher=slurm needs SLURM's sbatch, which is not on PATH; run on a SLURM login node, or drop it")
    return cfg, config


def _data_key_hint(err: BaseException, overrides: list[str]) -> str | None:
    """For ``data.KEY=...`` with a KEY the data set does not take: one line listing the valid keys."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    full_key = getattr(err.__cause__, "full_key", None)  # OmegaConf's error behind Hydra's
    if not (isinstance(full_key, str) and full_key.startswith("data.")):
        return None
    key = full_key.removeprefix("data.")
    rest = [arg for arg in overrides if not arg.lstrip("+").startswith(f"data.{key}=")]
    try:
        from lstmlab import data as data_lib

        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(CONFIG_NAME, overrides=rest)
        name = OmegaConf.select(cfg, "data.name")
        valid = [v for v in data_lib.options(name) if v != "seed"]
    except Exception:  # the rest of the overrides fail too: the plain message will do
        return None
    return f"data.{key} is not an option of data set {name!r}; valid: {', '.join(valid)}"


def describe_config_error(err: BaseException) -> str:
    """One line for a Hydra/OmegaConf composition error: the key or group, and what is valid, read from
    Hydra's exceptions (the override that did not parse; the group file not found and the group's
    options) and OmegaConf's (the full key)."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(err)
    if isinstance(err, OverrideParseException):
        return (
            f"cannot parse the override {err.override}: quote a value that has spaces, quotes or characters "
            "other than ASCII letters, digits and _-+./:@, e.g. key='é' or key=\"it's\""
        )
    if isinstance(err, MissingConfigException) and "/" in (err.missing_cfg_file or ""):
        group, _, choice = err.missing_cfg_file.rpartition("/")
        return f"{group}={choice} does not exist; valid: {', '.join(err.options or []) or 'none'}"
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from lstmlab.config import ConfigError, check_keys, nested

    cause = err.__cause__
    key = getattr(cause, "full_key", None)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and isinstance(key, str) and key:
        try:
            check_keys(nested({key: None}))  # the one rule for a key the schema lacks, with the nearest valid one
        except ConfigError as unknown:
            return str(unknown)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = lines[0] if lines else type(err).__name__
    cause_lines = [line.strip() for line in str(cause).splitlines() if line.strip()] if cause is not None else []
    if cause_lines:
        message = f"{message}: {cause_lines[0]}" + (f" (key {key})" if key else "")
    return message


def _cores_per_job(n_jobs: int | str) -> str:
    """``${lstmlab_cores_per_job:N}``: the usable cores divided among ``N`` parallel jobs (-1: one job
    per core), at least 1, as the string Hydra's ``hydra.job.env_set`` wants."""
    from lstmlab.train.distributed import usable_cores

    cores = usable_cores()
    n = int(n_jobs)
    return str(max(1, cores // (cores if n <= 0 else n)))


def _xla_flags_per_job(n_jobs: int | str) -> str:
    """``${lstmlab_xla_flags:N}``: ``$XLA_FLAGS``, plus one XLA thread per job when each of ``N``
    parallel jobs has a single core (XLA's CPU thread pool otherwise spans every core)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _cores_per_job(n_jobs) == "1" and "xla_cpu_multi_thread_eigen" not in flags:
        flags = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    return flags


def register_resolvers() -> None:
    """The resolvers the launcher configs in ``conf/hydra/launcher/`` use; also registered on import,
    so that job processes of a parallel launcher have them."""
    from omegaconf import OmegaConf

    for name, fn in (("lstmlab_cores_per_job", _cores_per_job), ("lstmlab_xla_flags", _xla_flags_per_job)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


def normalize_overrides(argv: list[str]) -> list[str]:
    """``argv`` with ``+KEY=...`` as ``KEY=...`` for every KEY the schema has (``+resume.allow_changes``,
    ``+imports``, ``+model.hidden_size``): Hydra refuses ``+`` for a key that exists, and a user cannot
    tell which keys do. A config group's name (``+experiment=``, ``+preset=``) keeps its ``+``, which
    selects a group; a key the schema lacks keeps it too, and is then refused by name."""
    from dataclasses import asdict

    from lstmlab.config import flat_keys

    groups = {p.name for p in conf_dir().iterdir() if p.is_dir()}
    keys = set(flat_keys(asdict(Config())))
    out = []
    for arg in argv:
        key = arg.lstrip("+").partition("=")[0]
        out.append(arg.lstrip("+") if arg.startswith("+") and key in keys and key not in groups else arg)
    return out


def check_experiment_override(overrides: list[str]) -> None:
    """Exit 2 with a hint for ``experiment=NAME`` naming an experiment without any ``+experiment=``: it
    only sets the run's label and loads nothing."""
    if any(arg.lstrip("+").startswith("experiment=") and arg.startswith("+") for arg in overrides):
        return
    for arg in overrides:
        if arg.startswith("experiment="):
            name = arg.partition("=")[2]
            known = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
            if name in known:
                fail(
                    f"{arg} only sets the run's label and loads no experiment; use +experiment={name} "
                    f"(valid experiments: {', '.join(known)})"
                )


def check_sweep_values(overrides: list[str]) -> None:
    """For a multirun: compose the config once per value of each swept key (the other keys at their
    first value), so that a bad value of any job ends in one line and exit status 2 before any job runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # Hydra's grammar errors
        fail(describe_config_error(err))
    import re

    def quote(value: str) -> str:
        if re.fullmatch(r"[\w\-+./:@]*", value, flags=re.ASCII):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    firsts, sweeps = [], []
    for arg, override in zip(overrides, parsed):
        if override.is_sweep_override():
            try:
                values = [quote(v) for v in override.sweep_string_iterator()]
            except Exception:  # interval and glob sweeps cannot be listed: the sweeper checks them
                continue
            key = arg.partition("=")[0]
            if not values:
                continue
            firsts.append(f"{key}={values[0]}")
            sweeps.append((len(firsts) - 1, key, values))
        else:
            firsts.append(arg)
    check_overrides(firsts)
    for index, key, values in sweeps:
        for value in values[1:]:
            check_overrides([*firsts[:index], f"{key}={value}", *firsts[index + 1 :]])


def main(argv: list[str] | None = None) -> None:
    """``python -m lstmlab ARGV``; ``argv`` defaults to ``sys.argv[1:]``. Ends in SystemExit for bad
    input and stopped runs (see the module doc). From Python, ``main([...])`` runs in this process,
    leaves its logging configuration alone (``hydra/job_logging=none``, ``hydra/hydra_logging=none``
    unless ``argv`` chooses) and restores ``sys.argv``, the SIGTERM handler and Hydra's global state."""
    import signal

    from hydra.core.global_hydra import GlobalHydra

    saved_argv, hydra_was_initialized = sys.argv, GlobalHydra.instance().is_initialized()
    if argv is not None:
        chosen = {arg.partition("=")[0] for arg in argv}
        keep_logging = [f"{g}=none" for g in ("hydra/job_logging", "hydra/hydra_logging") if g not in chosen]
        sys.argv = [sys.argv[0] if sys.argv else "lstmlab", *argv, *keep_logging]
    previous = signal.signal(signal.SIGTERM, _raise_terminated)  # the training loop installs its own
    try:
        _main()
    except KeyboardInterrupt as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _interrupted(err)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        sys.argv = saved_argv
        if not hydra_was_initialized:
            GlobalHydra.instance().clear()


def _main() -> None:
    from lstmlab.config import ConfigError

    argv = normalize_overrides(sys.argv[1:])
    with _bad_input(ConfigError):
        import_named_modules(argv)
    register_schema()
    flags = [arg for arg in argv if arg.startswith("-")]  # an override never starts with "-"
    overrides = [arg for arg in argv if not arg.startswith("-")]
    check_experiment_override(overrides)
    if not flags:
        _run_once(overrides)
        return
    import hydra

    multirun = [arg for arg in flags if arg in MULTIRUN_FLAGS]
    if multirun:  # Hydra's argparse takes overrides only before its first flag: put -m in front, so
        # that "+experiment=gradnorm -m cell.recurrent_scale=0.5,1.0" sweeps as written
        argv = [multirun[0], *[arg for arg in argv if arg not in MULTIRUN_FLAGS]]
        if all(arg in MULTIRUN_FLAGS for arg in flags):  # other flags (--cfg, --help, ...) run no job
            check_sweep_values(overrides)
    sys.argv = [sys.argv[0], *argv]
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=CONFIG_NAME)(run)
    app()


def _run_once(overrides: list[str]) -> None:
    """A single run: the config is composed and checked once (:func:`check_overrides`), its run directory
    checked before it is made, and the run goes through Hydra's ``run_job`` (the run directory, logging,
    ``hydra.job.env_set``, the callbacks of ``hydra.callbacks``) as under ``hydra.main``."""
    from hydra.core.utils import JobRuntime, configure_log, run_job
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict

    cfg, config = check_overrides(overrides)
    path = Path(cfg.hydra.run.dir).absolute()
    check_run_dir(path)
    _NEW_DIRS[:] = [p for p in (path, *path.parents) if not p.exists()]
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.job.name = JOB_NAME
    JobRuntime.instance().set("name", JOB_NAME)
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    callbacks = _Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name=CONFIG_NAME)
    try:
        result = run_job(
            task_function=lambda task_cfg: _run(task_cfg, config),
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
            hydra_context=HydraContext(config_loader=None, callbacks=callbacks),
        )
    finally:
        _remove_new_empty_dirs()
    callbacks.on_run_end(config=cfg, config_name=CONFIG_NAME, job_return=result)
    _ = result.return_value  # raises the task's error, as hydra.main does


class _Callbacks:
    """The callbacks configured under ``hydra.callbacks``, each called in turn as Hydra calls them."""

    def __init__(self, cfg) -> None:
        from hydra.utils import instantiate

        self.items = [instantiate(node) for node in (cfg.hydra.callbacks or {}).values()]

    def __getattr__(self, hook: str):  # on_run_start, on_job_start, on_job_end, on_run_end
        return lambda **kwargs: [getattr(item, hook)(**kwargs) for item in self.items]


def check_run_dir(path: Path) -> None:
    """Exit 2 with one line if ``path`` cannot be a run directory (a file, not writable, a name too
    long, a symbolic link where lstmlab writes), before Hydra makes it."""
    from lstmlab.io.rundir import RunDir

    with _bad_input(ValueError, OSError):
        RunDir(path).check()
