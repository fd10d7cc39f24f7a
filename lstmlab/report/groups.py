"""Rows per value of one config key (``--by``): the metric's distribution in each group and Welch's
t-test of each group against a reference group, Bonferroni-corrected.
"""

from __future__ import annotations

import math
from pathlib import Path

from lstmlab.io.rundir import RunRecord
from lstmlab.report.tables import _cell, capped, markdown


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


def write_groups(
    runs: list[RunRecord],
    groups,
    by: str,
    metric: str,
    direction: str,
    reference: str | None,
    alpha: float,
    cap: float | None,
    out_dir: Path,
) -> list[str]:
    """Write ``groups.csv``, ``boxplot.png`` and ``groups.md`` for the groups' table; returns the
    Markdown lines (a section of report.md)."""
    from lstmlab.report.figures import boxplot

    values = group_values(runs, by, metric, cap, direction)
    marked = set(groups.loc[groups[f"vs {reference}"].isin(["better", "worse"]), by]) if reference else set()
    boxplot(values, list(groups[by]), by, metric, out_dir / "boxplot.png", marked)
    groups.to_csv(out_dir / "groups.csv", index=False)
    lines = [f"## {metric} by {by}", ""]
    if reference is not None:
        lines += [
            f"Welch's t-test of each group against {by}={reference}, p multiplied by the "
            f"{len(groups) - 1} comparisons (Bonferroni); better/worse at corrected p < {alpha}, else same.",
            "",
        ]
    if cap is not None:
        lines += [f"Values worse than {cap:g} count as {cap:g} (--cap), here and in fANOVA.", ""]
    lines += [markdown(groups), "", "![by group](boxplot.png)", ""]
    (out_dir / "groups.md").write_text("\n".join(lines))
    return lines
