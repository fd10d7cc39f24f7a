"""The paper folders under experiments/: every expected*.yaml parses in the format ``lstmlab.report
--expected`` reads, its command is the one in the folder's README, every job of that command composes,
its rows name configurations the command runs, and a shrunken run of the command writes the metric the
file compares. Also the folders' helper scripts, on made-up run directories."""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from lstmlab.cli import compose
from lstmlab.config import flat_keys as flatten
from lstmlab.report.verdicts import COMPARISONS

from conftest import ROOT, TINY, run_cli

EXPERIMENTS = ROOT / "experiments"
EXPECTED = sorted(EXPERIMENTS.glob("*/expected*.yaml"))
IDS = [f"{p.parent.name}/{p.name}" for p in EXPECTED]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


INSPECT = "inspect."  # keys that kept inspections (experiments/karpathy2015/figures.py) add to a run's


def command_args(command: str) -> list[str]:
    """The overrides of ``python -m lstmlab ...`` (without -m and the hydra.* / hydra/ ones). A search,
    ``python -m lstmlab.search ...`` (also inside ``sbatch ... --wrap "..."``), becomes a sweep over
    every value of its space's choices and the ends of its ranges."""
    words = shlex.split(command)
    if words[0] == "sbatch":
        words = shlex.split(words[words.index("--wrap") + 1])
    if words[:3] == ["python", "-m", "lstmlab.search"]:
        return search_args(words[3:])
    assert words[:3] == ["python", "-m", "lstmlab"], command
    return [w for w in words[3:] if w not in ("-m", "--multirun") and not w.startswith(("hydra.", "hydra/"))]


def search_args(words: list[str]) -> list[str]:
    from lstmlab.cli.search import load_search, override, parse_space

    name = next(w.partition("=")[2] for w in words if w.startswith("+search="))
    search = load_search(name, [w for w in words if w.startswith("search.")])
    args = [w for w in words if not w.startswith(("+search=", "search.", "hydra.", "hydra/"))]
    for dim in parse_space(search.space):
        values = dim.choices if dim.kind == "categorical" else [dim.low, dim.high]
        args.append(",".join(override(dim.key, v).partition("=")[2] for v in values))
        args[-1] = f"{dim.key}={args[-1]}"
    return args


def sweep_jobs(args: list[str]) -> list[list[str]]:
    """Override lists covering every value of every sweep: the first values of all sweeps, then each
    other value of one sweep with the first values of the rest (not the whole product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(args)
    choices = []
    for item, override in zip(args, parsed):
        if override.is_sweep_override():
            key = item.split("=", 1)[0]
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([item])
    jobs = [[c[0] for c in choices]]
    for i, values in enumerate(choices):
        for value in values[1:]:
            job = [c[0] for c in choices]
            job[i] = value
            jobs.append(job)
    return jobs


def composed(command: str) -> list[dict]:
    return [flatten(asdict(compose(None, job))) for job in sweep_jobs(command_args(command))]


def matches(config: dict, where: dict) -> bool:
    return all(str(config.get(k)) == str(v) for k, v in where.items())


def readme_text(path: Path) -> str:
    """The folder's README with shell line continuations joined and whitespace collapsed."""
    text = (path.parent / "README.md").read_text().replace("\\\n", " ")
    return re.sub(r"\s+", " ", text)


def test_there_are_paper_folders_with_expected_values():
    assert {p.parent.name for p in EXPECTED} >= {"pascanu2013", "jozefowicz2015"}


@pytest.mark.parametrize("path", EXPECTED, ids=IDS)
def test_expected_file_parses_as_the_report_reads_it(path):
    data = load(path)
    assert isinstance(data, dict) and isinstance(data.get("metric"), str) and data["metric"].count("/") >= 1
    assert isinstance(data.get("source"), str) and data["source"]
    assert isinstance(data.get("rows", []), list) and (data.get("rows") or data.get("claims")), "no rows, no claims"
    for row in data.get("rows", []):
        assert isinstance(row.get("where"), dict) and row["where"], row
        float(row["value"])  # what lstmlab.report reads; .nan where the paper gives no number
        if "ours" in row:  # a regression range for our own runs, where a file keeps one
            low, high = row["ours"]
            assert float(low) <= float(high), row
    for key in ("command", "paper_command"):
        assert " ".join(data[key].split()) in readme_text(path), f"{key} of {path.name} is not in the README"
    # a multirun goes to SLURM through Hydra's launcher; a search through an array of workers sharing
    # one journal storage
    assert "hydra/launcher=slurm" in data["paper_command"] or (
        data["paper_command"].startswith("sbatch --array") and "search.storage=journal:" in data["paper_command"]
    )


@pytest.mark.parametrize("path", EXPECTED, ids=IDS)
def test_commands_compose_and_rows_name_configurations_they_run(path):
    data = load(path)
    configs = composed(data["command"])
    wheres = [row["where"] for row in data.get("rows", [])]
    for claim in data.get("claims", []):  # a claim's selections, in the grid of the file's command and its own
        own = configs + (composed(claim["command"]) if "command" in claim else [])
        criterion = claim["criterion"]
        selections = [claim["where"], *({**claim["where"], **criterion[k]} for k in COMPARISONS if k in criterion)]
        for where in selections:  # each key at each value is in the grid (the grid is not the whole product)
            for key, value in where.items():
                if key.startswith(INSPECT):  # a layer, gate or feature of an inspection of those runs
                    continue
                assert any(str(c.get(key)) == str(value) for c in own), (claim["claim"], key, value)
    for where in wheres:
        for key in where:
            assert any(key in c for c in configs), f"{key} is not a config key"
    # every value each where-key takes is one the command sweeps (the rows are in the grid)
    for key in {k for where in wheres for k in where}:
        grid = {str(c.get(key)) for c in configs}
        wanted = {str(where[key]) for where in wheres if key in where}
        assert wanted <= grid, (key, wanted - grid)
    paper = composed(data["paper_command"])
    assert paper and all("experiment" in c for c in paper)


def tiny_runs(paper: str, tmp_path: Path) -> list[tuple[dict, dict]]:
    """(flattened config, summary) of a shrunken run of every experiment the paper's files name."""
    experiments, probes = set(), []
    for path in (EXPERIMENTS / paper).glob("expected*.yaml"):
        experiments |= {c["experiment"] for c in composed(load(path)["command"])}
        if load(path)["metric"].startswith("diag/"):  # per-timestep gradient norms: the probes on
            probes = ["diagnostics.every=2"]
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            f"+experiment={','.join(sorted(experiments))}",
            *TINY,
            *probes,
            "trainer.progress=none",
            f"hydra.sweep.dir={sweep}",
        ],
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = []
    for job in sorted(p for p in sweep.iterdir() if (p / "config.yaml").exists()):
        out.append(
            (flatten(yaml.safe_load((job / "config.yaml").read_text())), json.loads((job / "summary.json").read_text()))
        )
    assert len(out) == len(experiments)
    return out


@pytest.mark.parametrize("paper", sorted({p.parent.name for p in EXPECTED}))
def test_runs_write_the_metrics_the_expected_files_compare(paper, tmp_path):
    runs = tiny_runs(paper, tmp_path)
    for path in (EXPERIMENTS / paper).glob("expected*.yaml"):
        data = load(path)
        wheres = [row["where"] for row in data.get("rows", [])] + [c["where"] for c in data.get("claims", [])]
        names = {c["experiment"] for c in composed(data["command"]) if any(matches(c, where) for where in wheres)}
        for config, summary in runs:
            if config["experiment"] in names:
                value = summary.get(data["metric"])
                assert isinstance(value, (int, float)) and math.isfinite(value), (
                    path.name,
                    data["metric"],
                    sorted(summary),
                )


# -- experiments/pascanu2013/analyse.py ---------------------------------------------------------------


def fake_run(
    root: Path, name: str, seq_len: int, clip: str, seed: int, accuracy: float | None, norms: list[float]
) -> None:
    run = root / name
    run.mkdir(parents=True)
    config = {"seed": seed, "data": {"seq_len": seq_len}, "optim": {"lr": 0.01, "clip": clip}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "job.json").write_text(json.dumps({"status": "completed" if accuracy is not None else "failed"}))
    if accuracy is not None:
        (run / "summary.json").write_text(json.dumps({"test/accuracy": accuracy}))
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": 10 * (i + 1), "grad/global_norm": n, "grad/update_norm": n / 10}) + "\n"
            for i, n in enumerate(norms)
        )
    )


def test_pascanu_analyse_counts_successes_and_gradient_norms(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXPERIMENTS / "pascanu2013"))
    import analyse

    fake_run(tmp_path, "0", 20, "global_norm", 0, 1.0, [1.0, 30.0])
    fake_run(tmp_path, "1", 20, "global_norm", 1, 0.985, [2.0, 3.0])
    fake_run(tmp_path, "2", 20, "none", 0, 0.25, [1.0, 1.0])
    fake_run(tmp_path, "3", 20, "none", 1, None, [5.0])  # failed: counts as a run, not a success
    assert analyse.main([str(tmp_path), "--threshold", "0.99"]) == 0
    rows = {row["optim.clip"]: row for row in analyse.success_rows(analyse.find_runs([tmp_path])[0], 0.99)}
    assert (rows["global_norm"]["runs"], rows["global_norm"]["successes"]) == (2, 1)
    assert rows["global_norm"]["grad norm max"] == 30.0 and rows["global_norm"]["update norm max"] == 3.0
    assert (rows["none"]["runs"], rows["none"]["successes"], rows["none"]["success rate"]) == (2, 0, 0.0)
    assert rows["none"]["test/accuracy mean"] == 0.25
    assert "| 20 | 0.01 | global_norm | 2 | 1 | 0.5 |" in (tmp_path / "success.md").read_text()
    assert (tmp_path / "grad_norms.png").read_bytes()[:4] == b"\x89PNG"
