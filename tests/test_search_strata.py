"""``search.per``: every value of one key gets the same number of trials, round-robin, through partial
trials enqueued in the study; it survives reruns, and a bad ``per`` is one line and exit status 2."""

from __future__ import annotations

import optuna
import pytest

from lstmlab.cli.search import Dimension, SearchConfig, check_per, enqueue_next, parse_space
from lstmlab.config import ConfigError

from conftest import TINY, run_cli

VARIANTS = ["vanilla", "NIG", "NFG"]


def _study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))


def test_enqueue_next_gives_each_value_its_turn_and_the_sampler_the_rest():
    study = _study()
    dim = Dimension("cell.variant", "categorical", choices=VARIANTS)
    drawn = []
    for _ in range(2 * len(VARIANTS)):
        enqueue_next(study, dim)
        trial = study.ask()
        variant = trial.suggest_categorical("cell.variant", VARIANTS)
        lr = trial.suggest_float("optim.lr", 1e-4, 1e-1, log=True)
        study.tell(trial, lr)
        drawn.append((variant, lr))
    assert [v for v, _ in drawn] == VARIANTS * 2  # round-robin, in the order written
    assert len({lr for _, lr in drawn}) == len(drawn)  # the sampler still draws the other keys


def test_a_paired_search_gives_every_value_the_same_sampled_parameters():
    study = _study()
    dim = Dimension("cell.variant", "categorical", choices=VARIANTS)
    drawn = []
    for _ in range(2 * len(VARIANTS)):
        assert enqueue_next(study, dim, paired=True) is not None
        trial = study.ask()
        variant = trial.suggest_categorical("cell.variant", VARIANTS)
        lr = trial.suggest_float("optim.lr", 1e-4, 1e-1, log=True)
        study.tell(trial, lr)
        drawn.append((variant, lr))
    assert [v for v, _ in drawn] == VARIANTS * 2
    first, second = {lr for _, lr in drawn[:3]}, {lr for _, lr in drawn[3:]}
    assert len(first) == 1 and len(second) == 1 and first != second  # one draw per block, shared
    with pytest.raises(ConfigError, match="search.paired=true pairs the values of search.per"):
        SearchConfig(paired=True).check()


def test_enqueue_next_fills_the_value_with_fewest_trials_and_never_double_enqueues():
    study = _study()
    dim = Dimension("cell.variant", "categorical", choices=VARIANTS)
    for variant in ["vanilla", "vanilla", "NFG"]:  # trials from before (another worker, a rerun)
        study.enqueue_trial({"cell.variant": variant})
        trial = study.ask()
        trial.suggest_categorical("cell.variant", VARIANTS)
        study.tell(trial, 0.0)
    assert enqueue_next(study, dim) == "NIG"
    assert enqueue_next(study, dim) is None  # a trial is waiting: the next ask takes that one
    trial = study.ask()
    assert trial.suggest_categorical("cell.variant", VARIANTS) == "NIG"
    study.tell(trial, 0.0)
    assert enqueue_next(study, dim) == "NIG"  # vanilla 2, NIG 1, NFG 1: the first of the fewest


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"per": "cell.name"}, "search.per=cell.name is not a key of search.space"),
        ({"per": "optim.lr"}, "give search.space.optim.lr as choice(...)"),
        ({"n_trials": 7}, "search.n_trials=7 is not a multiple of the 3 values"),
        ({"sampler": {"name": "grid"}}, "search.per needs search.sampler.name=random or tpe"),
    ],
)
def test_check_per_rejects_what_cannot_be_stratified(changes, message):
    search = SearchConfig(
        n_trials=6,
        per="cell.variant",
        space={"cell.variant": "choice(vanilla, NIG, NFG)", "optim.lr": "tag(log, interval(1e-3, 1e-1))"},
        sampler={"name": "random"},
    )
    for key, value in changes.items():
        setattr(search, key, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_per(search, parse_space(search.space))


def _args(directory, n_trials: int) -> list[str]:
    return [
        "+experiment=vowels",
        "+search=vowels",
        f"search.dir={directory}",
        f"search.n_trials={n_trials}",
        "search.per=cell",
        "search.sampler.name=random",
        "search.pruner.name=none",
        "search.space.cell=choice(gru, lstm)",
        "search.space.optim.lr=tag(log, interval(1e-3, 1e-2))",
        *TINY,
    ]


def test_stratified_search_continues_its_rounds_on_a_rerun(tmp_path, monkeypatch):
    """The study in study.db carries the rounds over to a second command; trials are told a made-up
    value instead of training (training a trial is covered by tests/test_sweeps.py)."""
    from lstmlab.cli.search import Search, prepare

    def fake_trial(self, trial, log):
        params = {d.key: d.suggest(trial) for d in self.dims}
        self.study.tell(trial, params["optim.lr"])
        return 0.0

    monkeypatch.setattr(Search, "run_trial", fake_trial)
    directory = tmp_path / "search"
    prepare(_args(directory, 2)).run(log=lambda line: None)
    search = prepare(_args(directory, 6))  # the same study, asked for four more trials
    search.run(log=lambda line: None)
    trials = search.study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert [t.params["cell"] for t in trials] == ["gru", "lstm"] * 3
    assert len({t.params["optim.lr"] for t in trials}) == 6  # the sampler draws the rest


def test_bad_per_is_one_line_exit_2_and_writes_nothing(tmp_path):
    directory = tmp_path / "search"
    proc = run_cli(
        ["+experiment=vowels", "+search=vowels", f"search.dir={directory}", "search.per=optim.lrr"],
        module="lstmlab.search",
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmlab: error: search.per=optim.lrr"), proc.stderr
    assert not directory.exists()
