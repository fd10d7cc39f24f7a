"""Kept results and generated sections: ``--keep`` writes a results file the report reads like the runs
themselves; ``--rebuild`` writes every generated section from the results; ``--check`` fails when a
number in a results file or in a section is changed by hand; claims are judged by their criteria."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from lstmlab.cli.report import main
from lstmlab.report import build, find_runs, results, verdicts
from lstmlab.report.rebuild import rebuild

ROOT = Path(__file__).resolve().parent.parent


def fake_sweep(root: Path, groups: dict[str, list[float]]) -> None:
    i = 0
    for variant, values in groups.items():
        for seed, value in enumerate(values):
            run = root / str(i)
            run.mkdir(parents=True)
            config = {"seed": seed, "experiment": "toy", "cell": {"name": "lstm", "variant": variant}}
            (run / "config.yaml").write_text(yaml.safe_dump(config))
            (run / "job.json").write_text(json.dumps({"status": "completed", "seconds": 2.0 + i}))
            (run / "summary.json").write_text(json.dumps({"task": "text", "test/bpc": value, "test/loss": 2 * value}))
            i += 1


GROUPS = {"vanilla": [1.00, 1.10, 0.90, 1.05, 0.95], "NFG": [2.0, 2.2, 1.9, 2.1, 2.05]}


@pytest.fixture()
def kept(tmp_path: Path) -> Path:
    fake_sweep(tmp_path / "sweep", GROUPS)
    target = tmp_path / "paper" / "results" / "toy.jsonl"
    assert main([str(tmp_path / "sweep"), "--keep", str(target)]) == 0
    return target


def test_a_results_file_gives_the_same_table_as_the_runs(tmp_path: Path, kept: Path) -> None:
    lines = kept.read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(line)["config"]["experiment"] == "toy" for line in lines)
    from_runs = build([tmp_path / "sweep"], "test/bpc").out
    from_kept = build([kept], "test/bpc").out
    assert from_kept.drop(columns="seconds").equals(from_runs.drop(columns="seconds"))
    assert list(from_kept["cell.variant"]) == ["vanilla", "NFG"]
    assert from_kept["test/bpc mean"][0] == pytest.approx(1.0)


def test_keep_refuses_a_file_that_is_not_jsonl(tmp_path: Path, capsys) -> None:
    fake_sweep(tmp_path / "sweep", GROUPS)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "sweep"), "--keep", str(tmp_path / "toy.csv")])
    assert exit_info.value.code == 2
    assert "--keep" in capsys.readouterr().err and not (tmp_path / "toy.csv").exists()


def test_a_damaged_results_line_is_named(tmp_path: Path, kept: Path) -> None:
    kept.write_text(kept.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"toy.jsonl:11: not a run record"):
        results.load(kept)


def _paper(kept: Path) -> Path:
    folder = kept.parent.parent
    (folder / "expected.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "test/bpc",
                "command": "python -m lstmlab +experiment=toy -m cell.variant=vanilla,NFG seed=range(5)",
                "claims": [
                    {
                        "claim": "NFG is worse than vanilla",
                        "source": "a paper, Table 1, p. 2",
                        "paper": "worse",
                        "results": "results/toy.jsonl",
                        "metric": "test/bpc",
                        "where": {"cell.variant": "NFG"},
                        "criterion": {"worse_than": {"cell.variant": "vanilla"}, "paired": True},
                    },
                    {
                        "claim": "vanilla reaches 1.2 bpc",
                        "source": "a paper, Table 2, p. 3",
                        "paper": 1.2,
                        "results": "results/toy.jsonl",
                        "metric": "test/bpc",
                        "where": {"cell.variant": "vanilla"},
                        "criterion": {"mean_at_most": 1.2},
                    },
                ],
            },
            sort_keys=False,
        )
    )
    (folder / "README.md").write_text(
        "# A paper\n\n<!-- report --verdicts expected*.yaml -->\n<!-- end report -->\n\nThe runs:\n\n"
        "<!-- report results/toy.jsonl --metric test/bpc --columns 'cell.variant,n,test/bpc mean' -->\n"
        "stale\n<!-- end report -->\n"
    )
    return folder


def test_rebuild_writes_every_section_and_check_then_passes(kept: Path) -> None:
    folder = _paper(kept)
    every, differ = rebuild([folder])
    assert len(every) == 2 and len(differ) == 2
    text = (folder / "README.md").read_text()
    assert "| vanilla | 5 | 1 |" in text and "stale" not in text
    assert "| NFG is worse than vanilla |" in text and "reproduced (paired t" in text
    assert "| vanilla reaches 1.2 bpc |" in text
    assert main(["--rebuild", str(folder), "--check"]) == 0


def test_a_section_shows_other_summary_keys_per_configuration(kept: Path) -> None:
    folder = kept.parent.parent
    (folder / "README.md").write_text(
        "<!-- report results/toy.jsonl --metric test/bpc --direction maximize "
        "--columns 'cell.variant,test/bpc mean,test/loss mean,test/loss std' -->\n<!-- end report -->\n"
    )
    rebuild([folder])
    rows = [line for line in (folder / "README.md").read_text().splitlines() if line.startswith("| ")]
    assert rows[0] == "| cell.variant | test/bpc mean | test/loss mean | test/loss std |"
    # each configuration's own test/loss (twice its bpc in the fake runs), whatever order the rows take
    assert rows[1].startswith("| NFG | 2.05 | 4.1 |") and rows[2].startswith("| vanilla | 1 | 2 | 0.1581 |")
    (folder / "README.md").write_text(
        "<!-- report results/toy.jsonl --metric test/bpc --columns 'test/nothing mean' -->\n<!-- end report -->\n"
    )
    with pytest.raises(ValueError, match=r"--columns test/nothing mean: not a column"):
        rebuild([folder])


def test_a_section_orders_its_rows_by_the_columns_it_names(kept: Path) -> None:
    folder = kept.parent.parent
    section = "<!-- report results/toy.jsonl --metric test/bpc --columns 'cell.variant,n' {} -->\n<!-- end report -->\n"
    for sort, first in [("", "vanilla"), ("--sort cell.variant", "NFG")]:  # best first, else by name
        (folder / "README.md").write_text(section.format(sort))
        rebuild([folder])
        rows = [line for line in (folder / "README.md").read_text().splitlines() if line.startswith("| ")]
        assert rows[1].startswith(f"| {first} |"), (sort, rows)
    (folder / "README.md").write_text(section.format("--sort colour"))
    with pytest.raises(ValueError, match=r"--sort colour: not a column; valid: cell.variant, "):
        rebuild([folder])


@pytest.mark.parametrize("where", ["section", "results"])
def test_check_fails_after_a_number_is_changed_by_hand(kept: Path, where: str, capsys) -> None:
    folder = _paper(kept)
    rebuild([folder])
    if where == "section":
        readme = folder / "README.md"
        readme.write_text(readme.read_text().replace("| vanilla | 5 | 1 |", "| vanilla | 5 | 0.9 |"))
    else:
        kept.write_text(kept.read_text().replace('"test/bpc":1.1', '"test/bpc":1.6', 1))
    assert main(["--rebuild", str(folder), "--check"]) == 1
    assert "README.md" in capsys.readouterr().out


def _judge(values_a: list[float], values_b: list[float] | None, criterion: dict, tmp_path: Path, **extra):
    groups = {"a": values_a, **({"b": values_b} if values_b is not None else {})}
    fake_sweep(tmp_path / "sweep", groups)
    kept = tmp_path / "results.jsonl"
    results.keep(find_runs([tmp_path / "sweep"])[0], [tmp_path / "sweep"], kept)
    claim = {
        "claim": "c",
        "source": "s",
        "paper": 1,
        "results": kept.name,
        "metric": "test/bpc",
        "where": {"cell.variant": "a"},
        "criterion": criterion,
        **extra,
    }
    return verdicts.judge(claim, tmp_path).verdict


@pytest.mark.parametrize(
    ("a", "b", "criterion", "extra", "verdict"),
    [
        ([1.0, 1.1, 0.9], None, {"mean_at_most": 1.2}, {}, "reproduced"),
        ([1.0, 1.1, 0.9], None, {"mean_at_most": 0.5}, {}, "not reproduced"),
        ([1.0, 1.1], None, {"mean_at_most": 1.2}, {}, "inconclusive"),  # too few seeds
        ([1.0, 1.1, 1.3], None, {"each_at_most": 1.2}, {}, "not reproduced"),
        (
            [1.0, 1.1, 0.9, 1.0, 1.05],
            [2.0, 2.1, 1.9, 2.0, 2.05],
            {"better_than": {"cell.variant": "b"}},
            {},
            "reproduced",
        ),
        (
            [2.0, 2.1, 1.9, 2.0, 2.05],
            [1.0, 1.1, 0.9, 1.0, 1.05],
            {"better_than": {"cell.variant": "b"}},
            {},
            "not reproduced",
        ),
        (
            [1.0, 1.2, 0.8, 1.1, 0.9],
            [1.05, 1.15, 0.85, 1.0, 0.95],
            {"better_than": {"cell.variant": "b"}},
            {},
            "inconclusive",
        ),
        ([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], {"better_than": {"cell.variant": "b"}}, {}, "inconclusive"),  # < 5 seeds
        (
            [1.0, 1.01, 0.99, 1.0, 1.0],
            [1.0, 1.0, 1.01, 0.99, 1.0],
            {"same_as": {"cell.variant": "b"}, "margin": 0.1},
            {},
            "reproduced",
        ),
        (
            [1.0, 1.01, 0.99, 1.0, 1.0],
            [2.0, 2.0, 2.01, 1.99, 2.0],
            {"same_as": {"cell.variant": "b"}, "margin": 0.1},
            {},
            "not reproduced",
        ),
    ],
)
def test_criteria_give_the_verdicts_they_promise(tmp_path, a, b, criterion, extra, verdict) -> None:
    assert _judge(a, b, criterion, tmp_path, **extra) == verdict


def _search_results(path: Path, metric_of) -> None:
    """A kept random search: 60 trials over lr (log), width (log) and momentum, three variants; the
    metric is ``metric_of(lr, width, momentum)``."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = []
    for i in range(60):
        lr, width, momentum = 10 ** rng.uniform(-3, 0), float(round(2 ** rng.uniform(3, 6))), rng.uniform(0, 0.99)
        config = {
            "seed": 0,
            "cell": {"variant": ["vanilla", "NFG", "NP"][i % 3]},
            "optim": {"lr": lr, "momentum": momentum},
            "model": {"hidden_size": width},
        }
        summary = {"task": "text", "test/bpc": metric_of(lr, width, momentum)}
        lines.append(json.dumps({"run": str(i), "status": "completed", "config": config, "summary": summary}))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "metric_of, verdict, why",
    [
        (lambda lr, width, m: 2 + abs(math.log10(lr) + 1.5), "reproduced", "largest main effect optim.lr"),
        (lambda lr, width, m: 2 + 0.1 * width, "not reproduced", "largest main effect model.hidden_size"),
        (lambda lr, width, m: 2 + math.log10(lr) * (m - 0.5), "not reproduced", "wanted below 0.1"),
    ],
    ids=["lr-alone", "width-alone", "lr-x-momentum"],
)
def test_a_fanova_criterion_judges_the_kept_trials(tmp_path: Path, metric_of, verdict, why) -> None:
    _search_results(tmp_path / "search.jsonl", metric_of)
    claim = {
        "claim": "the learning rate matters most",
        "source": "s",
        "paper": "lr largest",
        "results": "search.jsonl",
        "metric": "test/bpc",
        "where": {},
        "criterion": {
            "fanova": {"largest": "optim.lr", "pairs_below": 0.1},
            "params": {"optim.lr": "log", "model.hidden_size": "log", "optim.momentum": "linear"},
            "by": "cell.variant",
        },
    }
    verdicts.check_claims({"claims": [claim]}, tmp_path / "expected.yaml")
    found = verdicts.judge(claim, tmp_path)
    assert found.verdict == verdict and why in found.why, found
    assert found.ours.startswith("n = 60; main effects optim.lr ")
    assert verdicts.judge(claim | {"seeds": 61}, tmp_path).verdict == "inconclusive"
    bad = claim | {"criterion": {**claim["criterion"], "params": {"optim.lr": "cubic"}}}
    with pytest.raises(ValueError, match=r"criterion fanova wants params: \{KEY: log\|linear, \.\.\.\}"):
        verdicts.check_claims({"claims": [bad]}, tmp_path / "expected.yaml")


def test_a_claim_without_a_criterion_is_refused(tmp_path: Path) -> None:
    bad = {"claims": [{"claim": "c", "source": "s", "paper": 1, "results": "r.jsonl", "metric": "m", "where": {}}]}
    with pytest.raises(ValueError, match=r"claim 1 \(c\): missing criterion"):
        verdicts.check_claims(bad, tmp_path / "expected.yaml")


def test_the_repository_s_generated_sections_match_their_results() -> None:
    every, differ = rebuild([ROOT / "README.md", ROOT / "experiments", ROOT / "docs"], check=True)
    assert every, "no generated sections found"
    assert not differ, [f"{s.path}:{s.line}" for s in differ]


def test_every_expected_claim_names_its_source_value_and_criterion() -> None:
    from lstmlab.report.expected import load_expected

    claims = 0
    for path in sorted((ROOT / "experiments").glob("*/expected*.yaml")):
        found = verdicts.check_claims(load_expected(path), path)
        claims += len(found)
        for claim in found:
            assert str(claim["source"]).strip() and str(claim["paper"]).strip(), (path, claim["claim"])
    assert claims > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rebuild", "no/such/dir"], "--rebuild no/such/dir: no such file or directory"),
        (["--check"], "--check goes with --rebuild"),
        ([], "name run, sweep or search directories or results files"),
    ],
)
def test_bad_rebuild_arguments_are_one_line(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_section_with_bad_arguments_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("x\n<!-- report results/none.jsonl --columns a b -->\n<!-- end report -->\n")
    with pytest.raises(ValueError, match=r"README.md:2: unknown arguments b"):
        rebuild([tmp_path], check=True)


def test_pair_by_pairs_runs_that_share_their_hyperparameters(tmp_path: Path) -> None:
    """Two variants on the same five learning rates: the spread over rates hides the difference from
    Welch's test, and pairing by the rate finds it."""
    sweep = tmp_path / "sweep"
    for i, (variant, lr) in enumerate((v, lr) for v in ("a", "b") for lr in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)):
        run = sweep / str(i)
        run.mkdir(parents=True)
        config = {"seed": 0, "cell": {"variant": variant}, "optim": {"lr": lr}}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        (run / "job.json").write_text(json.dumps({"status": "completed"}))
        value = {1e-3: 1.0, 3e-3: 2.0, 1e-2: 3.0, 3e-2: 4.0, 1e-1: 5.0}[lr] + (0.1 if variant == "b" else 0.0)
        value += 0.01 * (i % 3)
        (run / "summary.json").write_text(json.dumps({"task": "text", "test/bpc": value}))
    kept = tmp_path / "results.jsonl"
    results.keep(find_runs([sweep])[0], [sweep], kept)
    claim = {
        "claim": "a beats b",
        "source": "s",
        "paper": "better",
        "results": kept.name,
        "metric": "test/bpc",
        "where": {"cell.variant": "a"},
        "criterion": {"better_than": {"cell.variant": "b"}},
    }
    assert verdicts.judge(claim, tmp_path).verdict == "inconclusive"  # Welch: the rates' spread hides it
    claim["criterion"] = {"better_than": {"cell.variant": "b"}, "paired": True, "pair_by": "optim.lr"}
    assert verdicts.judge(claim, tmp_path).verdict == "reproduced"


def test_cap_counts_diverged_and_worse_runs_as_the_cap(tmp_path: Path) -> None:
    nan = float("nan")
    criterion = {"better_than": {"cell.variant": "b"}, "paired": True}
    assert _judge([1.0, 1.1, 0.9, 1.0, 1.05], [nan] * 5, criterion, tmp_path / "plain") == "inconclusive"
    capped = {**criterion, "cap": 6}
    assert _judge([1.0, 1.1, 0.9, 1.0, 1.05], [nan] * 5, capped, tmp_path / "capped") == "reproduced"


def test_a_study_report_checks_the_fanova_criterion_of_a_claim() -> None:
    from lstmlab.report.expected import fanova_wanted

    wanted = {"largest": "optim.lr", "pairs_below": 0.1}
    claim = {"claim": "c", "criterion": {"fanova": wanted, "params": {"optim.lr": "log"}}}
    assert fanova_wanted({"claims": [{"criterion": {"mean_at_most": 1}}, claim]}) == wanted
    assert fanova_wanted({"fanova": {"largest": "optim.momentum"}}) == {"largest": "optim.momentum"}
    assert fanova_wanted({"claims": [{"criterion": {"mean_at_most": 1}}]}) == {}
