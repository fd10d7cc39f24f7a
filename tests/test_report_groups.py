"""``lstmlab.report --by``: one row per group with Welch's t-test against a reference and the box plot,
expected rows checked per group; and the fANOVA tables on synthetic studies whose answer is known."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import yaml
from scipy import stats

from lstmlab.cli.report import main
from lstmlab.report import fanova_checks, fanova_tables, report

GROUPS = {
    "vanilla": [1.00, 1.10, 0.90, 1.05, 0.95, 1.02],
    "NFG": [2.0, 2.2, 1.9, 2.1, 2.05, 1.95],  # clearly worse (a loss)
    "CIFG": [1.01, 1.08, 0.93, 1.04, 0.96, 1.0],  # the same
}


def fake_runs(root, groups=GROUPS, failed=("NFG",)):
    i = 0
    for variant, values in groups.items():
        for value in values:
            run = root / f"{i:04d}"
            run.mkdir(parents=True)
            config = {"seed": i, "cell": {"variant": variant}, "optim": {"lr": 0.01 * (1 + i)}}
            (run / "config.yaml").write_text(yaml.safe_dump(config))
            (run / "job.json").write_text(json.dumps({"status": "completed", "seconds": 1.0}))
            (run / "summary.json").write_text(json.dumps({"test/bpc": value}))
            i += 1
    for variant in failed:  # a failed run counts in its group, not in its values
        run = root / f"{i:04d}"
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"seed": i, "cell": {"variant": variant}}))
        (run / "job.json").write_text(json.dumps({"status": "failed"}))
        i += 1


def test_groups_have_quartiles_welch_tests_and_a_box_plot(tmp_path):
    fake_runs(tmp_path / "runs")
    expected = tmp_path / "expected.yaml"
    expected.write_text(
        yaml.safe_dump(
            {
                "metric": "test/bpc",
                "source": "made up",
                "rows": [
                    {"where": {"cell.variant": "NFG"}, "value": float("nan"), "claim": "worse", "ours": [1.5, 2.5]},
                    {"where": {"cell.variant": "CIFG"}, "value": 1.0, "claim": "better", "ours": [0.0, 0.5]},
                    {"where": {"cell.variant": "vanilla"}, "value": 0.9, "ours": [0.9, 1.1]},
                ],
            }
        )
    )
    out_dir = tmp_path / "out"
    groups, _ = report(
        [tmp_path / "runs"],
        metric="test/bpc",
        expected=expected,
        out_dir=out_dir,
        by="cell.variant",
        reference="vanilla",
    )
    rows = {row["cell.variant"]: row for row in groups.to_dict("records")}
    assert list(groups["cell.variant"]) == ["vanilla", "NFG", "CIFG"]
    assert (rows["NFG"]["n"], rows["NFG"]["failed"], rows["vanilla"]["failed"]) == (6, 1, 0)
    assert rows["NFG"]["median"] == pytest.approx(2.025) and rows["NFG"]["best"] == 1.9
    assert rows["vanilla"]["q25"] == pytest.approx(0.9625) and rows["vanilla"]["q75"] == pytest.approx(1.0425)
    p = stats.ttest_ind(GROUPS["NFG"], GROUPS["vanilla"], equal_var=False).pvalue
    assert rows["NFG"]["p (Welch)"] == pytest.approx(p)
    assert rows["NFG"]["p x 2 (Bonferroni)"] == pytest.approx(min(1.0, 2 * p))
    assert (rows["NFG"]["vs vanilla"], rows["CIFG"]["vs vanilla"]) == ("worse", "same")
    assert (rows["NFG"]["in range"], rows["NFG"]["agrees"]) == ("yes", "yes")
    assert (rows["CIFG"]["in range"], rows["CIFG"]["agrees"]) == ("no", "no")
    assert (rows["vanilla"]["paper"], rows["vanilla"]["in range"], rows["vanilla"]["agrees"]) == (0.9, "yes", "")
    assert (out_dir / "boxplot.png").read_bytes()[:4] == b"\x89PNG"
    assert "| NFG | 6 | 1 |" in (out_dir / "groups.md").read_text()
    assert "## test/bpc by cell.variant" in (out_dir / "report.md").read_text()


def test_a_larger_metric_is_better_when_maximised(tmp_path):
    flipped = {k: [-v for v in values] for k, values in GROUPS.items()}
    fake_runs(tmp_path / "runs", flipped, failed=())
    groups, _ = report(
        [tmp_path / "runs"], metric="test/bpc", direction="maximize", by="cell.variant", reference="vanilla"
    )
    assert list(groups["vs vanilla"]) == ["reference", "worse", "same"]
    assert groups.loc[groups["cell.variant"] == "NFG", "best"].item() == -1.9


@pytest.mark.parametrize(
    "args, message",
    [
        (["--by", "cell.varaint"], "--by cell.varaint is not a config key of these runs; did you mean cell.variant"),
        (["--by", "cell.variant", "--reference", "LSTM"], "--reference LSTM is not a value of cell.variant"),
        (["--reference", "vanilla"], "--reference needs --by KEY"),
    ],
)
def test_bad_grouping_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    fake_runs(tmp_path / "runs")
    out_dir = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "runs"), "--metric", "test/bpc", "--out", str(out_dir), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lstmlab: error: {message}"), err
    assert not out_dir.exists()


def synthetic_study(objective, n_trials=40):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def wrapped(trial):
        variant = trial.suggest_categorical("cell.variant", ["vanilla", "NFG"])
        lr = trial.suggest_float("optim.lr", 1e-4, 1e-1, log=True)
        hidden = trial.suggest_int("model.hidden_size", 8, 64, log=True)
        momentum = trial.suggest_float("optim.momentum", 0.0, 0.99)
        return objective(variant, lr, hidden, momentum)

    study.optimize(wrapped, n_trials=n_trials)
    return study


def test_fanova_gives_the_learning_rate_the_variance_when_only_it_matters():
    study = synthetic_study(lambda variant, lr, hidden, momentum: (math.log10(lr) + 2.5) ** 2)
    main_effects, pairs = fanova_tables(study, by="cell.variant", n_trees=16)
    shares = dict(zip(main_effects["param"], main_effects["all trials"]))
    assert shares["optim.lr"] > 0.8
    assert max(shares["model.hidden_size"], shares["optim.momentum"], shares["cell.variant"]) < 0.05
    assert shares["1 - sum (interactions)"] < 0.15
    within = dict(zip(main_effects["param"], main_effects["mean over cell.variant"]))
    # within a group (20 trials each) the forest is coarser, but the learning rate still leads
    assert within["optim.lr"] > 0.5 > max(within["model.hidden_size"], within["optim.momentum"])
    assert math.isnan(within["cell.variant"])
    assert set(pairs["pair"]) == {
        "model.hidden_size x optim.lr",
        "model.hidden_size x optim.momentum",
        "optim.lr x optim.momentum",
    }
    assert pairs["interaction"].max() < 0.1
    lines = fanova_checks(main_effects, pairs, {"largest": "optim.lr", "pairs_below": 0.1}, "cell.variant")
    assert lines[0].endswith(": yes") and lines[1].endswith(": yes")
    wrong = fanova_checks(main_effects, pairs, {"largest": "optim.momentum", "pairs_below": 0.0}, "cell.variant")
    assert wrong[0].endswith(": no") and wrong[1].endswith(": no")


def test_fanova_finds_an_interaction_that_no_main_effect_explains():
    """f = x * y on a centred square has no main effects; with two parameters the one pair is all
    that 1 - sum leaves (the forest, fitted to 120 points, gives the main effects a little)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", -1, 1) * t.suggest_float("y", -1, 1), n_trials=120)
    main_effects, pairs = fanova_tables(study, n_trees=16)
    shares = dict(zip(main_effects["param"], main_effects["all trials"]))
    assert shares["x"] < 0.25 and shares["y"] < 0.25
    assert shares["1 - sum (interactions)"] > 0.5
    assert list(pairs["pair"]) == ["x x y"]
    assert pairs["interaction"].item() == pytest.approx(shares["1 - sum (interactions)"], abs=0.02)


def test_fanova_ranks_the_interacting_pair_first_among_several():
    """Learning rate and momentum act only together (their product), the hidden size a little alone."""
    study = synthetic_study(lambda v, lr, hidden, m: 4 * (math.log10(lr) + 2.5) * (m - 0.5) + 0.1 * math.log(hidden))
    _, pairs = fanova_tables(study, by="cell.variant", n_trees=16)
    assert pairs["pair"].iloc[0] == "optim.lr x optim.momentum"
    assert pairs["interaction"].iloc[0] > 2 * pairs["interaction"].iloc[1]


def test_cap_counts_a_worse_value_as_the_cap(tmp_path):
    diverged = {**GROUPS, "NFG": [2.0, 2.2, 900.0, 1.9, 1e6, 2.1]}  # two trials diverged
    fake_runs(tmp_path / "runs", diverged, failed=())
    groups, _ = report([tmp_path / "runs"], metric="test/bpc", by="cell.variant", reference="vanilla", cap=6.0)
    nfg = groups.loc[groups["cell.variant"] == "NFG"].iloc[0]
    assert (nfg["capped"], nfg["mean"]) == (2, pytest.approx((2.0 + 2.2 + 6.0 + 1.9 + 6.0 + 2.1) / 6))
    assert groups.loc[groups["cell.variant"] == "vanilla", "capped"].item() == 0
