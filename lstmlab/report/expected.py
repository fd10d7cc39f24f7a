"""The paper's values beside ours: an ``--expected`` file's rows matched to the table's configurations
and groups, and its ``fanova:`` entries checked against the fANOVA tables.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lstmlab.io.rundir import RunRecord
from lstmlab.report.tables import _cell

CLAIMS = ("better", "worse", "same")


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


def fanova_wanted(data: dict[str, Any] | None) -> dict[str, Any]:
    """What an expected file asks of a study's fANOVA: its ``fanova:`` mapping, or the ``fanova``
    criterion of its claims (:mod:`lstmlab.report.verdicts`); {} if neither."""
    data = data or {}
    for claim in data.get("claims") or []:
        criterion = claim.get("criterion") if isinstance(claim, dict) else None
        if isinstance(criterion, dict) and isinstance(criterion.get("fanova"), dict):
            return dict(criterion["fanova"])
    return dict(data.get("fanova") or {})


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


def load_expected(path: Path) -> dict[str, Any]:
    """An ``--expected`` file; FileNotFoundError or ValueError (one line) if it cannot be used."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"--expected {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"--expected {path}: not YAML ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows", []), list):
        raise ValueError(f"--expected {path}: want a mapping with 'rows: [{{where: ..., value: ...}}]'")
    if not all(isinstance(row, dict) and isinstance(row.get("where", {}), dict) for row in data.get("rows", [])):
        raise ValueError(f"--expected {path}: every row wants 'where: {{KEY: VALUE}}' and 'value: NUMBER'")
    return data
