"""Verdicts: each claim of an ``expected*.yaml`` judged on kept results by the criterion written with it.

An expected file lists its claims under ``claims:``; each names the paper's value and where it is
printed, the results it is judged on and the criterion, all written before the runs::

    claims:
      - claim: the LSTM solves adding at T = 100
        source: Hochreiter & Schmidhuber (1997), Table 7, p. 1757
        paper: 1 wrong of 2560              # the paper's value, as the paper gives it
        results: results/table.jsonl        # relative to the expected file
        metric: test/errors
        where: {experiment: adding, cell.name: lstm}
        criterion: {mean_at_most: 3}
        seeds: 3                            # the fewest seeds that can decide it
        command: python -m lstmlab ...      # what made the results (default: the file's command)

Criteria, on the metric of the runs that match ``where`` (one value per seed):

``mean_at_most: X`` / ``mean_at_least: X``
    The mean over seeds is at most (at least) X.
``each_at_most: X`` / ``each_at_least: X``
    Every seed is.
``better_than: {KEY: VALUE, ...}`` / ``worse_than: {...}``
    The configuration is better (worse) than the one the mapping selects (``where`` with those keys
    replaced), by the metric's declared direction; Welch's t-test, or ``paired: true`` for a paired
    t-test over the runs both have with the same ``pair_by`` keys (default: the seed; for a paired
    search, the sampled hyperparameters, e.g. ``pair_by: [optim.lr, model.hidden_size]``), at level
    ``alpha`` (default 0.05) divided by ``comparisons`` (the
    number of tests the claim is one of, Bonferroni; default 1). Reproduced if significant in the
    claimed direction, not reproduced if significant the other way, inconclusive otherwise.
``same_as: {...}`` with ``margin: M``
    No difference larger than M: reproduced if the (1 - 2 alpha) confidence interval of the difference
    lies within +-M (two one-sided tests), not reproduced if it lies outside, inconclusive otherwise.
``fanova: {largest: KEY, pairs_below: X}`` with ``params: {KEY: log|linear, ...}`` (and ``by: KEY``)
    fANOVA (:func:`lstmlab.report.studies.fanova_tables`) of the metric over every run that matches
    ``where``, the sampled hyperparameters ``params`` scaled over their observed range (on a log scale
    where marked), and ``by`` as a categorical parameter: reproduced if KEY has the largest main effect
    among ``params`` and every pairwise interaction of them is below X, not reproduced otherwise;
    inconclusive with fewer than ``seeds`` runs (default 20).

The metric's direction is the one its task declares (``direction:`` in the claim otherwise). ``cap: X``
in a criterion counts a value worse than X, or a run that diverged, as X (e.g. the uniform predictor's
bits per character), as the report's ``--cap`` does. A claim
with fewer seeds than ``seeds`` (default 3 for a threshold, 5 for a comparison) is inconclusive,
and so is one whose results file is missing. An expected file without claims is listed as "not
judged". ``ours`` ranges, where a file has them, are regression
ranges for our own runs, not criteria; they take no part here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_JUDGED = "not judged"
THRESHOLDS = ("mean_at_most", "mean_at_least", "each_at_most", "each_at_least")
COMPARISONS = ("better_than", "worse_than", "same_as")
FANOVA = "fanova"
KINDS = (*THRESHOLDS, *COMPARISONS, FANOVA)
FIELDS = ("claim", "source", "paper", "results", "metric", "where", "criterion")
MIN_SEEDS = {"threshold": 3, "comparison": 5, FANOVA: 20}


@dataclass
class Verdict:
    claim: str
    source: str
    paper: str
    ours: str
    verdict: str
    why: str
    command: str


def check_claims(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The ``claims`` of an expected file, each with every field; ValueError (one line, naming the file,
    the claim and what is valid) otherwise."""
    claims = data.get("claims") or []
    if not isinstance(claims, list):
        raise ValueError(f"{path}: claims: want a list of mappings with {', '.join(FIELDS)}")
    for number, claim in enumerate(claims, 1):
        where = f"{path}: claim {number}"
        if not isinstance(claim, dict):
            raise ValueError(f"{where}: want a mapping with {', '.join(FIELDS)}")
        missing = [f for f in FIELDS if f not in claim]
        if missing:
            raise ValueError(f"{where} ({claim.get('claim', '?')}): missing {', '.join(missing)}")
        criterion = claim["criterion"]
        kinds = [k for k in (criterion if isinstance(criterion, dict) else {}) if k in KINDS]
        if len(kinds) != 1:
            raise ValueError(f"{where}: criterion: want exactly one of {', '.join(KINDS)}")
        if kinds[0] == "same_as" and "margin" not in criterion:
            raise ValueError(f"{where}: criterion same_as wants margin: M")
        if kinds[0] == FANOVA:
            wanted, params = criterion[FANOVA], criterion.get("params")
            if not isinstance(wanted, dict) or not set(wanted) & {"largest", "pairs_below"}:
                raise ValueError(f"{where}: criterion fanova wants {{largest: KEY, pairs_below: X}}")
            scales = set(params.values()) if isinstance(params, dict) else {None}
            if not params or not scales <= {"log", "linear"}:
                raise ValueError(f"{where}: criterion fanova wants params: {{KEY: log|linear, ...}}")
        if not isinstance(claim["where"], dict):
            raise ValueError(f"{where}: where: want a mapping KEY: VALUE")
    return claims


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _ours(values: list[float]) -> str:
    import numpy as np

    if not values:
        return "no runs"
    if len(values) == 1:
        return f"n = 1, {_fmt(values[0])} (single seed)"
    return f"n = {len(values)}, {_fmt(float(np.mean(values)))} +- {_fmt(float(np.std(values, ddof=1)))}"


def judge(claim: dict[str, Any], base: Path, command: str = "", loaded: dict[Path, list] | None = None) -> Verdict:
    """The verdict of one claim (see the module docstring); ``base`` is the expected file's folder.
    ``loaded`` keeps the results files already read, so that claims on one file read it once."""
    import numpy as np
    from scipy import stats

    from lstmlab.report import results
    from lstmlab.report.runs import metric_direction

    criterion = dict(claim["criterion"])
    kind = next(k for k in criterion if k in KINDS)
    comparison = kind in COMPARISONS
    group = FANOVA if kind == FANOVA else "comparison" if comparison else "threshold"
    min_seeds = int(claim.get("seeds", MIN_SEEDS[group]))
    text = {
        "claim": str(claim["claim"]),
        "source": str(claim["source"]),
        "paper": str(claim["paper"]),
        "command": str(claim.get("command", command)),
    }
    path = base / str(claim["results"])
    if not path.is_file():
        return Verdict(**text, ours="no kept results", verdict=INCONCLUSIVE, why=f"{claim['results']} is missing")
    loaded = {} if loaded is None else loaded
    if path not in loaded:
        loaded[path] = results.load(path)
    runs = loaded[path]
    metric, where = str(claim["metric"]), dict(claim["where"])
    pair_by = criterion.get("pair_by", ["seed"])
    pair_by = tuple([pair_by] if isinstance(pair_by, str) else pair_by)
    cap = criterion.get("cap")
    cap = None if cap is None else float(cap)
    direction = claim.get("direction")
    if direction is None and (comparison or kind == FANOVA or cap is not None):  # a threshold needs none
        direction = metric_direction(metric, runs)
    direction = direction or "minimize"
    if kind == FANOVA:
        return _judge_fanova(claim, criterion, runs, direction, cap, min_seeds, text)
    ours = results.values(runs, metric, where, pair_by, cap, direction)
    mine = [v for _, v in ours]
    if not comparison:
        limit = float(criterion[kind])
        at_most = kind.endswith("at_most")
        ok = (lambda v: v <= limit) if at_most else (lambda v: v >= limit)
        word = "at most" if at_most else "at least"
        if len(mine) < min_seeds:
            return Verdict(**text, ours=_ours(mine), verdict=INCONCLUSIVE, why=f"{len(mine)} of {min_seeds} seeds")
        if kind.startswith("mean"):
            holds, why = ok(float(np.mean(mine))), f"mean {word} {_fmt(limit)}"
        else:
            passing = sum(ok(v) for v in mine)
            holds, why = passing == len(mine), f"{passing} of {len(mine)} seeds {word} {_fmt(limit)}"
        return Verdict(**text, ours=_ours(mine), verdict=REPRODUCED if holds else NOT_REPRODUCED, why=why)
    other_where = {**where, **dict(criterion[kind])}
    theirs = results.values(runs, metric, other_where, pair_by, cap, direction)
    other = [v for _, v in theirs]
    label = ", ".join(f"{k}={v}" for k, v in dict(criterion[kind]).items())
    shown = f"{_ours(mine)}; {label}: {_ours(other)}"
    if min(len(mine), len(other)) < min_seeds:
        why = f"{min(len(mine), len(other))} of {min_seeds} seeds"
        return Verdict(**text, ours=shown, verdict=INCONCLUSIVE, why=why)
    alpha = float(criterion.get("alpha", 0.05)) / int(criterion.get("comparisons", 1))
    sign = 1.0 if direction == "maximize" else -1.0  # > 0: ours is better
    if criterion.get("paired"):
        by_seed = dict(theirs)
        pairs = [(v, by_seed[s]) for s, v in ours if s in by_seed]
        if len(pairs) < min_seeds:
            return Verdict(**text, ours=shown, verdict=INCONCLUSIVE, why=f"{len(pairs)} paired seeds")
        a, b = np.array(pairs).T
        result, test = stats.ttest_rel(a, b), "paired t"
        degenerate = np.ptp(a - b) == 0  # every difference the same: no spread to test against
    else:
        a, b = np.asarray(mine), np.asarray(other)
        result, test = stats.ttest_ind(a, b, equal_var=False), "Welch t"
        degenerate = np.ptp(a) == 0 and np.ptp(b) == 0
    diff = float(a.mean() - b.mean())
    if degenerate:
        p, low, high = (0.0 if diff else 1.0), diff, diff
    else:
        ci = result.confidence_interval(1 - 2 * alpha)
        p, low, high = float(result.pvalue), float(ci.low), float(ci.high)
    if kind == "same_as":
        margin = float(criterion["margin"])
        why = f"{test}: difference {_fmt(diff)}, {100 * (1 - 2 * alpha):.0f} % CI [{_fmt(low)}, {_fmt(high)}]"
        why += f", margin {_fmt(margin)}"
        verdict = (
            REPRODUCED
            if -margin < low and high < margin
            else NOT_REPRODUCED
            if low > margin or high < -margin
            else INCONCLUSIVE
        )
        return Verdict(**text, ours=shown, verdict=verdict, why=why)
    claimed = 1.0 if kind == "better_than" else -1.0
    why = f"{test}: difference {_fmt(diff)}, p = {p:.2g} (level {alpha:.2g})"
    if p < alpha:
        verdict = REPRODUCED if sign * diff * claimed > 0 else NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Verdict(**text, ours=shown, verdict=verdict, why=why)


def _judge_fanova(claim, criterion, runs, direction: str, cap, min_seeds: int, text: dict) -> Verdict:
    """The verdict of a ``fanova`` criterion (see the module docstring)."""
    import math

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from lstmlab.report import results
    from lstmlab.report.studies import fanova_tables

    scales, by = dict(criterion["params"]), criterion.get("by")
    keys = [*scales, *([by] if by else [])]
    found = results.matching(runs, str(claim["metric"]), dict(claim["where"]), cap, direction)
    rows = [({k: run.flat[k] for k in keys}, value) for run, value in found if None not in map(run.flat.get, keys)]
    if len(rows) < min_seeds:
        return Verdict(**text, ours=f"n = {len(rows)}", verdict=INCONCLUSIVE, why=f"{len(rows)} of {min_seeds} runs")
    distributions = {}
    for k in keys:
        seen = [params[k] for params, _ in rows]
        if k == by:
            distributions[k] = CategoricalDistribution(sorted(set(map(str, seen))))
        else:
            distributions[k] = FloatDistribution(min(seen), max(seen), log=scales[k] == "log")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    for params, value in rows:
        values = {k: (str(v) if k == by else float(v)) for k, v in params.items()}
        study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions, value=value))
    main_effects, pairs = fanova_tables(study, by)
    wanted = dict(criterion[FANOVA])
    shares = {k: math.nan for k in scales} | dict(zip(main_effects["param"], main_effects["all trials"]))
    checks = []
    if "largest" in wanted:  # a parameter that never varied (no importance) cannot be the largest
        top = max(scales, key=lambda k: -math.inf if math.isnan(shares[k]) else shares[k])
        checks.append((f"largest main effect {top}, wanted {wanted['largest']}", top == wanted["largest"]))
    if "pairs_below" in wanted:
        limit = float(wanted["pairs_below"])
        largest = float(pairs["interaction"].max()) if len(pairs) else math.nan
        checks.append((f"largest interaction {_fmt(largest)}, wanted below {_fmt(limit)}", largest < limit))
    ours = f"n = {len(rows)}; main effects " + ", ".join(f"{k} {_fmt(shares[k])}" for k in scales)
    if len(pairs):
        ours += f"; largest interaction {pairs.iloc[0]['pair']} {_fmt(pairs.iloc[0]['interaction'])}"
    holds = all(ok for _, ok in checks)
    why = "; ".join(what for what, _ in checks)
    return Verdict(**text, ours=ours, verdict=REPRODUCED if holds else NOT_REPRODUCED, why=why)


def verdicts(expected_files: list[Path], root: Path | None = None) -> list[tuple[Path, Verdict]]:
    """Every claim of ``expected_files``, judged; paths shown relative to ``root``."""
    from lstmlab.report.expected import load_expected

    out, loaded = [], {}
    for path in expected_files:
        data = load_expected(path)
        command = " ".join(str(data.get("command", "")).split())
        claims = check_claims(data, path)
        for claim in claims:
            out.append((path, judge(claim, path.parent, command, loaded)))
        if not claims:  # a file that keeps only regression ranges: shown, not judged
            source = str(data.get("source", ""))
            why = f"{path.name} has no claims with criteria yet"
            out.append((path, Verdict(path.stem, source, "", "", NOT_JUDGED, why, command)))
    return out


def table(found: list[tuple[Path, Verdict]], root: Path, with_paper: bool = True) -> str:
    """The verdict table as Markdown: paper | claim | paper's value | ours (n, mean +- sd) | verdict |
    command. Without ``with_paper`` (one folder's table) a command shared by every row is given once,
    below the table, instead of a column."""

    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    commands = {v.command for _, v in found}
    shared = None if with_paper or len(commands) != 1 else next(iter(commands))
    head = (["paper"] if with_paper else []) + ["claim", "paper's value", "ours (n, mean +- sd)", "verdict"]
    head += [] if shared is not None else ["command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for path, v in found:
        folder = path.parent.relative_to(root).as_posix() if path.parent != root else "."
        row = [f"[{folder}]({folder}/README.md)"] if with_paper else []
        row += [cell(v.claim), cell(f"{v.paper} ({v.source})"), cell(v.ours), f"{v.verdict} ({cell(v.why)})"]
        if shared is None:
            row.append(f"`{cell(v.command)}`" if v.command else "")
        lines.append("| " + " | ".join(row) + " |")
    if shared:
        lines += ["", f"The runs: `{shared}`"]
    return "\n".join(lines)
