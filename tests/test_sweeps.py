"""Grids (Hydra multirun), Optuna search and the report table."""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from lstmlab.cli.sweep import wandb_group

from conftest import ROOT, TINY, cli_env, program, run_cli

EXPERIMENT = "+experiment=vowels"


def _jobs(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "jobs.csv").open() as f:
        return list(csv.DictReader(f))


def test_two_job_multirun_makes_two_run_dirs_and_a_two_row_report(tmp_path):
    from lstmlab.report import report

    sweep = tmp_path / "sweep"
    proc = run_cli([EXPERIMENT, *TINY, "-m", "cell=lstm,gru", f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["0", "1"]
    for run in runs:
        assert (run / "summary.json").exists() and (run / "config.yaml").exists()
        assert json.loads((run / "job.json").read_text())["status"] == "completed"
    overrides = yaml.safe_load((runs[1] / "overrides.yaml").read_text())
    assert "cell=gru" in overrides and "cell=lstm" not in overrides and EXPERIMENT in overrides
    jobs = _jobs(sweep)
    assert [(j["job"], j["status"]) for j in jobs] == [("0", "completed"), ("1", "completed")]
    assert all(j["val/loss"] for j in jobs)

    table, out_dir = report([sweep], metric="val/loss")
    assert sorted(table["cell.name"]) == ["gru", "lstm"]
    assert list(table["n"]) == [1, 1]
    losses = {json.loads((r / "summary.json").read_text())["val/loss"] for r in runs}
    assert set(table["val/loss mean"]) == losses
    assert list(table["val/loss mean"]) == sorted(losses)  # best (lowest loss) first
    text = (out_dir / "report.md").read_text()
    assert "| lstm |" in text and "| gru |" in text
    assert len((out_dir / "report.csv").read_text().splitlines()) == 3
    assert (out_dir / "report.png").stat().st_size > 0


@pytest.fixture(scope="module")
def three_job_sweep(tmp_path_factory):
    """Three jobs, the middle one fails (its data file does not exist)."""
    sweep = tmp_path_factory.mktemp("three") / "sweep"
    missing = sweep.parent / "missing.ts"
    proc = run_cli([EXPERIMENT, *TINY, "-m", f"data.path=null,{missing},null", f"hydra.sweep.dir={sweep}"])
    return sweep, missing, proc


def test_three_job_multirun_with_one_failure(three_job_sweep):
    from lstmlab.report import report

    sweep, missing, proc = three_job_sweep
    assert proc.returncode == 1, proc.stderr[-2000:]  # the sweep says a job failed ...
    assert "2 of 3 jobs completed" in proc.stderr
    jobs = _jobs(sweep)  # ... after all three ran
    assert [(j["job"], j["status"]) for j in jobs] == [("0", "completed"), ("1", "failed"), ("2", "completed")]
    assert "no such file" in jobs[1]["error"]
    assert (sweep / "1" / "error.txt").read_text().startswith("ConfigError: data.path=")
    for good in ("0", "2"):
        assert json.loads((sweep / good / "summary.json").read_text())["step"] == 4

    table, _ = report([sweep], metric="val/loss")
    assert int(table["failed"].sum()) == 1
    failed_row = table[table["data.path"] == str(missing)].iloc[0]
    assert failed_row["failed"] == 1 and failed_row["n"] == 0
    ok_row = table[table["data.path"] == "null"].iloc[0]
    assert ok_row["n"] == 2 and ok_row["failed"] == 0


# -- report on hand-made run directories ---------------------------------------------------------------


def _run_dir(
    root: Path, name: str, *, seed: int, cell: str, loss: float | None, status: str = "completed", seconds: float = 1.0
) -> None:
    run = root / name
    run.mkdir(parents=True)
    config = {"seed": seed, "cell": {"name": cell}, "optim": {"lr": 0.01}, "logger": {"wandb": {"mode": name}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "job.json").write_text(json.dumps({"status": status, "seconds": seconds}))
    if status == "completed":
        summary = {"step": 10, "val/accuracy": 0.5}
        if loss is not None:
            summary["val/loss"] = loss
        (run / "summary.json").write_text(json.dumps(summary))


def test_report_mean_std_count_on_hand_made_runs(tmp_path):
    from lstmlab.report import report

    runs = tmp_path / "runs"
    lstm, gru = [1.0, 1.5, 2.5], [0.5, 0.7]
    for seed, loss in enumerate(lstm):
        _run_dir(runs, f"lstm{seed}", seed=seed, cell="lstm", loss=loss, seconds=2.0 + seed)
    _run_dir(runs, "lstm_nometric", seed=9, cell="lstm", loss=None)  # completed, but no val/loss
    for seed, loss in enumerate(gru):
        _run_dir(runs, f"gru{seed}", seed=seed, cell="gru", loss=loss)
    _run_dir(runs, "gru_failed", seed=5, cell="gru", loss=None, status="failed")
    _run_dir(runs, "gru_pruned", seed=6, cell="gru", loss=None, status="pruned")

    table, out_dir = report([runs], metric="val/loss", out_dir=tmp_path / "out")
    assert list(table.columns[:1]) == ["cell.name"]  # seed and logger.* differ but are not columns
    assert list(table["cell.name"]) == ["gru", "lstm"]  # sorted by the mean loss
    row = table.set_index("cell.name")
    assert row.loc["lstm", "val/loss mean"] == pytest.approx(statistics.mean(lstm))
    assert row.loc["lstm", "val/loss std"] == pytest.approx(statistics.stdev(lstm))
    assert (row.loc["lstm", "n"], row.loc["lstm", "missing"], row.loc["lstm", "runs"]) == (3, 1, 4)
    assert row.loc["gru", "val/loss mean"] == pytest.approx(statistics.mean(gru))
    assert row.loc["gru", "val/loss std"] == pytest.approx(statistics.stdev(gru))
    assert (row.loc["gru", "n"], row.loc["gru", "failed"], row.loc["gru", "pruned"]) == (2, 1, 1)
    assert row.loc["lstm", "seconds"] == pytest.approx(statistics.mean([2.0, 3.0, 4.0, 1.0]))

    expected = tmp_path / "expected.yaml"
    expected.write_text(yaml.safe_dump({"source": "Table 1", "rows": [{"where": {"cell.name": "lstm"}, "value": 1.0}]}))
    table, _ = report([runs], metric="val/loss", expected=expected, out_dir=tmp_path / "out")
    row = table.set_index("cell.name")
    assert row.loc["lstm", "paper"] == 1.0
    assert row.loc["lstm", "diff"] == pytest.approx(statistics.mean(lstm) - 1.0)
    assert math.isnan(row.loc["gru", "paper"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Table 1" in md and "| gru |" in md


def test_report_bad_path_is_one_line_exit_2(tmp_path, capsys):
    from lstmlab.cli.report import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lstmlab: error: ") and "nope" in err[0]


# -- search --------------------------------------------------------------------------------------------


def _search_args(directory: Path, *extra: str) -> list[str]:
    # trials differ only in their seed, so that they share compiled programs (XLA's cache) and stay fast
    return [
        EXPERIMENT,
        "+search=vowels",
        f"search.dir={directory}",
        "search.n_trials=3",
        "search.space.model.hidden_size=choice(8)",
        "search.space.cell=choice(lstm)",
        "search.space.optim.lr=choice(0.003)",
        "search.space.seed=range(0, 1000)",
        *TINY,
        *extra,
    ]


def test_search_killed_mid_trial_resumes_without_losing_or_repeating_trials(tmp_path):
    from lstmlab.cli.search import prepare, summary_lines
    from lstmlab.report.studies import open_storage

    directory = tmp_path / "search"
    # the first worker kills itself (SIGKILL) at trial 1's first evaluation: trial 0 is complete, trial 1
    # is running in the study, with its run directory half written
    first = subprocess.run(
        program("search_killed", "1:2", "search.pruner.name=none", *_search_args(directory)),
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == -9, first.stderr[-2000:]
    storage = open_storage(f"sqlite:///{directory / 'study.db'}")
    study = optuna.load_study(study_name="vowels", storage=storage)
    before = study.get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]
    summary0 = (directory / "trial_0000" / "summary.json").read_text()

    second = run_cli(["search.pruner.name=none", *_search_args(directory)], module="lstmlab.search")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trial 1: resuming" in second.stdout
    assert "trial 0 " not in second.stdout  # not run again
    after = optuna.load_study(study_name="vowels", storage=storage).get_trials()
    assert [(t.number, t.state.name) for t in after] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert after[1].params == before[1].params  # the same trial, carried on
    assert (directory / "trial_0000" / "summary.json").read_text() == summary0
    assert sorted(p.name for p in directory.glob("trial_*")) == ["trial_0000", "trial_0001", "trial_0002"]
    for t in after:
        summary = json.loads((directory / f"trial_{t.number:04d}" / "summary.json").read_text())
        assert t.value == pytest.approx(summary["val/loss"]) and summary["step"] == 4
    steps = [json.loads(line)["step"] for line in (directory / "trial_0001" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # continued, no step logged twice

    ran: list[str] = []  # a third run finds the study finished
    third = prepare(["search.pruner.name=none", *_search_args(directory)])
    result = third.run(log=ran.append)
    assert ran == [] and result["complete"] == 3 and result["trials"] == 3
    summary = summary_lines(third, result)
    best = min(t.value for t in after)
    assert summary[0] == f"lstmlab: 3 trials (3 complete) in {directory}"
    assert summary[1].startswith(f"lstmlab: best val/loss {best:.4g} (trial ") and "seed=" in summary[1]
    assert summary[2] == f"lstmlab: table and figures: python -m lstmlab.report {directory}"


def test_pruner_stops_trials_at_their_first_evaluation(tmp_path):
    from lstmlab.cli.search import prepare

    directory = tmp_path / "search"
    # ThresholdPruner(upper=0): any loss is above 0, so every trial is pruned at its first report
    search = prepare(
        _search_args(directory, "search.n_trials=2", "search.pruner.name=threshold", "search.pruner.upper=0.0")
    )
    result = search.run(log=lambda line: None)
    trials = search.study.get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"] and result.get("pruned") == 2
    for t in trials:
        assert list(t.intermediate_values) == [2]  # eval_every=2 of max_steps=4
        run = directory / f"trial_{t.number:04d}"
        assert json.loads((run / "job.json").read_text())["status"] == "pruned"
        assert not (run / "summary.json").exists()
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert max(steps) == 2
    seconds = [json.loads((directory / f"trial_{t.number:04d}" / "job.json").read_text())["seconds"] for t in trials]
    assert 0 <= result["overhead_seconds"] < min(seconds)  # the bookkeeping costs less than a trial


@pytest.mark.parametrize(
    "bad, names",
    [
        ("search.space.optim.lrr=interval(0.1, 0.2)", "search.space.optim.lrr"),
        ("search.space.optim.lr=interval(0.1, 0.01)", "empty range"),
        ("search.sampler.name=annealing", "search.sampler.name='annealing'"),
        ("+search.nonsense=3", "Key 'nonsense' not in 'SearchConfig' (key search.nonsense; valid keys: metric"),
    ],
)
def test_bad_search_config_is_one_line_exit_2(tmp_path, bad, names):
    directory = tmp_path / "search"
    proc = run_cli([EXPERIMENT, "+search=vowels", f"search.dir={directory}", bad], module="lstmlab.search")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmlab: error: ") and names in lines[0], proc.stderr
    assert not directory.exists()


def test_a_search_over_the_gradient_norm_study_is_refused_in_one_line(tmp_path, capsys):
    """The study trains several cells per run and has no one objective: the search says so before it
    writes anything, instead of training plain runs."""
    from lstmlab.cli.search import main

    directory = tmp_path / "search"
    with pytest.raises(SystemExit) as exit_info:
        main(["+experiment=gradnorm", "+search=vowels", f"search.dir={directory}"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "runner=gradnorm" in lines[0] and "no single objective" in lines[0], lines
    assert not directory.exists()


@pytest.mark.parametrize(
    "bad, names",
    [
        (
            "search.metric=val/acuracy",
            "search.metric=val/acuracy is not a metric of the 'classify' task; valid: val/loss",
        ),
        ("search.metric=val/accuracy search.direction=minimize", "contradicts val/accuracy"),
    ],
)
def test_a_search_metric_the_task_does_not_declare_is_refused_before_any_trial(tmp_path, capsys, bad, names):
    from lstmlab.cli.search import main

    directory = tmp_path / "search"
    with pytest.raises(SystemExit) as exit_info:
        main([EXPERIMENT, "+search=vowels", f"search.dir={directory}", *bad.split()])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], lines
    assert not directory.exists()


@pytest.mark.parametrize(
    "where, message",
    [
        ("search.storage=notaurl", "search.storage='notaurl' is not a storage URL"),
        ("search.dir={file}/sub", "/sub cannot be written; valid: a writable directory"),
        ("search.storage=journal:{file}/j.log", "j.log cannot be written; valid: a file in a writable directory"),
    ],
)
def test_a_search_place_that_cannot_be_written_is_refused_before_any_write(tmp_path, capsys, where, message):
    from lstmlab.cli.search import main

    (tmp_path / "file").write_text("a file, not a directory\n")
    directory = tmp_path / "search"
    args = [EXPERIMENT, "+search=vowels", f"search.dir={directory}", where.format(file=tmp_path / "file")]
    if "search.dir=" in where:
        args.remove(f"search.dir={directory}")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_search_without_a_metric_optimises_the_task_s_headline(tmp_path):
    from lstmlab.cli.search import prepare

    search = prepare(_search_args(tmp_path / "search", "search.metric=null", "search.direction=null"))
    assert (search.config.metric, search.config.direction) == ("val/accuracy", "maximize")
    assert search.study.direction.name == "MAXIMIZE"


def test_jobs_are_found_in_nested_sweep_subdirectories(tmp_path):
    from lstmlab.cli.sweep import collect_jobs, record_job

    for job, sub in enumerate(["adding/0", "vowels/1", "2"]):
        (tmp_path / sub).mkdir(parents=True)
        record_job(tmp_path / sub, {"job": job, "overrides": [f"seed={job}"], "status": "completed"})
    (tmp_path / "vowels" / "1" / "summary.json").write_text('{"val/accuracy": 0.5, "test/accuracy": 0.4}')
    jobs = collect_jobs(tmp_path)
    assert [(j["job"], j["dir"]) for j in jobs] == [(0, "adding/0"), (1, "vowels/1"), (2, "2")]
    assert jobs[1]["val/accuracy"] == 0.5 and "test/accuracy" not in jobs[1]


@pytest.mark.parametrize("launcher", ["slurm", "parallel"])
def test_launcher_configs_compose_with_their_plugins(launcher):
    """hydra/launcher=slurm is hydra-submitit-launcher with one GPU per job and no GPU memory taken up
    front; hydra/launcher=parallel is joblib with a share of the cores per job."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lstmlab.cli import conf_dir, register_schema

    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose(
            "config", overrides=["+experiment=vowels", f"hydra/launcher={launcher}"], return_hydra_config=True
        )
    GlobalHydra.instance().clear()
    target = cfg.hydra.launcher._target_
    if launcher == "slurm":
        assert "submitit" in target and cfg.hydra.launcher.gpus_per_node == 1
        assert cfg.hydra.job.env_set.XLA_PYTHON_CLIENT_PREALLOCATE == "false"
    else:
        assert "joblib" in target.lower()


def test_every_job_of_a_sweep_logs_to_the_sweep_s_wandb_group(tmp_path):
    sweep = tmp_path / "sweeps" / "grid"
    overrides = [o for o in TINY if not o.startswith("logger.")]
    proc = run_cli([EXPERIMENT, *overrides, "logger.wandb.mode=offline", "-m", "seed=0,1", f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    group = wandb_group(sweep).encode()
    runs = sorted(sweep.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs
    assert all(group in run.read_bytes() for run in runs)  # the group is recorded in each run's log
