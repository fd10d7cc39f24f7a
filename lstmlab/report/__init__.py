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
metric's direction. ``--success X`` adds the column ``successes``: the runs of a row whose metric is X
or better (a task solved, as a paper's success rate counts it). ``--cap X`` counts a value worse than
X as X in the groups, the box plot and fANOVA (e.g. the uniform predictor's bits per character: a
diverged model is no worse than chance).
With ``--by``, an expected row whose ``where`` names only KEY is checked against
its group: ``ours: [low, high]`` is the range the group's median should land in, and ``claim:
better|worse|same`` (or a list of them, e.g. ``[same, worse]`` for "not better") the paper's verdict
against the reference; the columns ``in range`` and ``agrees`` say whether they hold.

For a study the report also writes ``fanova.md``/``fanova.csv``: fANOVA (Hutter et al. 2014; Optuna's
``FanovaImportanceEvaluator`` with ``normalize=False``, whose values are each parameter's main-effect
variance over the forest's total variance, averaged over trees) over all finished trials, the sum of the
main effects and the remainder ``1 - sum`` (the share of variance due to interactions); the pairwise
interactions of the hyperparameters, from a forest fitted the same way (scikit-learn's, with Optuna's
settings; per tree the variance of the pair's joint marginal minus both main effects, over the tree's
variance); and, with ``--by``, the main effects within each group (KEY left out), then
their mean over groups. An expected file's ``fanova:`` mapping (or the ``fanova`` criterion of one of
its claims, :mod:`lstmlab.report.verdicts`) is checked against the ``all trials`` column: ``largest:
KEY`` (the largest main effect among the parameters other than ``--by``) and ``pairs_below: X``
(every pairwise interaction of those parameters below X)::

    fanova: {largest: optim.lr, pairs_below: 0.1}

The parts: :mod:`~lstmlab.report.runs` (the runs and the metric's declared direction),
:mod:`~lstmlab.report.tables` (the table per configuration), :mod:`~lstmlab.report.groups` (``--by``
and the tests), :mod:`~lstmlab.report.studies` (fANOVA), :mod:`~lstmlab.report.expected` (the paper's
values), and :mod:`~lstmlab.report.figures`; the command line is :mod:`lstmlab.cli.report`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmlab.io.rundir import SweepDir
from lstmlab.report.expected import add_expected, add_group_expected, fanova_checks, fanova_wanted, load_expected
from lstmlab.report.figures import draw, study_figures
from lstmlab.report.groups import groups_table, write_groups
from lstmlab.report.runs import check_metric_present, find_runs, metric_direction
from lstmlab.report.studies import fanova_tables, write_fanova
from lstmlab.report.tables import _cell, markdown, table

__all__ = ["Built", "build", "fanova_checks", "fanova_tables", "find_runs", "markdown", "report"]
log = logging.getLogger(__name__)


@dataclass
class Built:
    """What a report is made of, before anything is written: the runs, the metric and its direction,
    the table per configuration (``out``) and, with ``by``, the groups' table."""

    paths: list[Path]
    runs: list[Any]
    studies: list[Path]
    skipped: list[str]
    metric: str
    direction: str
    out: Any
    varying: list[str]
    df: Any
    groups: Any
    by: str | None
    reference: str | None
    alpha: float
    cap: float | None
    expected: Path | None
    expected_data: dict[str, Any] | None


def build(
    paths: list[Path],
    metric: str | None = None,
    direction: str | None = None,
    expected: Path | None = None,
    by: str | None = None,
    reference: str | None = None,
    alpha: float = 0.05,
    cap: float | None = None,
    compose: Callable[[list[str]], dict] | None = None,
    success: float | None = None,
) -> Built:
    """The tables for ``paths`` (run, sweep and search directories, results files), written nowhere.
    Raises FileNotFoundError/ValueError for bad input. ``compose(overrides)`` gives the config of a job
    that failed before it wrote its own (:func:`find_runs`)."""
    skipped: list[str] = []
    runs, studies = find_runs(paths, skipped, compose)
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
    expected_data = load_expected(expected) if expected is not None else None
    saved = SweepDir(studies[0]).read_search()["search"] if studies else {}
    # the metric asked for, else the one the paper's numbers are for, else the search's objective
    metric = metric or (expected_data or {}).get("metric") or saved.get("metric") or "val/loss"
    if any(r.status == "completed" for r in runs):
        check_metric_present(metric, runs)
    direction = direction or metric_direction(metric, runs)
    out, varying, df = table(runs, metric, direction, success)
    if expected_data is not None:
        out = add_expected(out, runs, varying, expected_data, metric)
    groups = None
    if by is not None:
        groups = groups_table(runs, by, metric, direction, reference, alpha, cap)
        if expected_data is not None:
            groups = add_group_expected(groups, by, expected_data, reference)
    return Built(
        paths,
        runs,
        studies,
        skipped,
        metric,
        direction,
        out,
        varying,
        df,
        groups,
        by,
        reference,
        alpha,
        cap,
        expected,
        expected_data,
    )


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
    compose: Callable[[list[str]], dict] | None = None,
    success: float | None = None,
) -> tuple[Any, Path]:
    """Build the table for ``paths`` (:func:`build`) and write report.md, report.csv and the figures to
    ``out_dir`` (with ``by``, also groups.md/.csv and boxplot.png; for a study, fanova.md/.csv); returns
    the table (with ``by``, the groups' table) and ``out_dir``. Raises FileNotFoundError/ValueError for
    bad input, before anything is written."""
    b = build(paths, metric, direction, expected, by, reference, alpha, cap, compose, success)
    runs, studies, skipped, metric, direction = b.runs, b.studies, b.skipped, b.metric, b.direction
    out, varying, df, groups, expected_data = b.out, b.varying, b.df, b.groups, b.expected_data
    for line in skipped:
        log.warning("lstmlab: skipped %s", line)
    out_dir = out_dir or (paths[0].parent if paths[0].is_file() else paths[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_dir / "report.csv", index=False)
    draw(df, varying, metric, out_dir / "report.png")
    notes = [f"skipped {line}" for line in skipped]
    notes += [note for directory in studies[:1] for note in study_figures(directory, out_dir)]
    group_lines = write_groups(runs, groups, by, metric, direction, reference, alpha, cap, out_dir) if by else []
    fanova_lines: list[str] = []
    for directory in studies[:1]:
        wanted = fanova_wanted(expected_data)
        fanova_lines, problems = write_fanova(directory, metric, by, cap, wanted, out_dir)
        notes += problems
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
