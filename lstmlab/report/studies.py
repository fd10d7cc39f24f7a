"""A search's Optuna study: its fANOVA tables (main effects, the share left to interactions, pairwise
interactions), through Optuna's public API only.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from lstmlab.io.rundir import SweepDir
from lstmlab.report.tables import capped, markdown


def _study_of(trials: list, params: list[str], target=None):
    """An in-memory study of ``trials`` (finished, all with ``params``) restricted to ``params``, with
    each value passed through ``target``."""
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
    return study


def _main_effects(study, params: list[str] | None = None, n_trees: int = 64, seed: int = 0) -> dict[str, float]:
    """Optuna's fANOVA main effects of ``params`` (all by default), unnormalised: each parameter's share
    of the variance of the forest fitted to those parameters."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # normalize=False is marked experimental
        return optuna.importance.get_param_importances(study, evaluator=evaluator, params=params, normalize=False)


def _unit_cube(trials: list, params: list[str]):
    """The trials' values of ``params`` mapped to [0, 1]: ranges linearly (or on a log scale for a log
    distribution), categories to the centres of k equal bins."""
    import numpy as np
    from optuna.distributions import CategoricalDistribution

    columns = []
    for name in params:
        dist = trials[0].distributions[name]
        values = [t.params[name] for t in trials]
        if isinstance(dist, CategoricalDistribution):
            k = len(dist.choices)
            columns.append([(dist.choices.index(v) + 0.5) / k for v in values])
        else:
            scale = np.log if dist.log else (lambda x: np.asarray(x, float))
            low, high = scale(dist.low), scale(dist.high)
            columns.append((scale(np.asarray(values, float)) - low) / (high - low))
    return np.column_stack(columns)


def _leaf_boxes(tree, n_features: int):
    """The leaves of a fitted sklearn tree (``tree_``'s public arrays) as boxes in the unit cube:
    (lower corners (L, P), upper corners (L, P), values (L,))."""
    import numpy as np

    lows, highs, values = [], [], []
    stack = [(0, np.zeros(n_features), np.ones(n_features))]
    while stack:
        node, low, high = stack.pop()
        left, right = tree.children_left[node], tree.children_right[node]
        if left == right:  # a leaf
            lows.append(low), highs.append(high), values.append(tree.value[node].ravel()[0])
            continue
        feature, threshold = tree.feature[node], tree.threshold[node]
        left_high, right_low = high.copy(), low.copy()
        left_high[feature] = right_low[feature] = min(max(threshold, low[feature]), high[feature])
        stack += [(left, low, left_high), (right, right_low, high)]
    return np.array(lows), np.array(highs), np.array(values)


def _marginal_variance(low, high, value, dims: list[int]) -> float:
    """The variance, over the uniform measure on the unit cube, of the tree's prediction averaged over
    every dimension but ``dims`` (one or two): fANOVA's marginal (Hutter et al. 2014), computed on
    the grid the leaves' edges make along ``dims``."""
    import numpy as np

    others = [d for d in range(low.shape[1]) if d not in dims]
    coef = value * np.prod(high[:, others] - low[:, others], axis=1)
    inside, widths = [], []
    for d in dims:
        edges = np.unique(np.concatenate([[0.0, 1.0], low[:, d], high[:, d]]))
        inside.append((edges[None, :-1] >= low[:, d, None]) & (edges[None, 1:] <= high[:, d, None]))
        widths.append(np.diff(edges))
    if len(dims) == 1:
        marginal, weight = inside[0].T.astype(float) @ coef, widths[0]
    else:
        marginal = inside[0].T.astype(float) @ (coef[:, None] * inside[1])
        weight = np.outer(widths[0], widths[1])
    mean = float((weight * marginal).sum())
    return float((weight * marginal**2).sum()) - mean**2


def _pair_interactions(
    trials: list, params: list[str], pairs: list[tuple[str, str]], target, n_trees: int = 64, seed: int = 0
) -> list[float]:
    """For each pair of ``params``, the share of the variance of a random forest fitted to the trials
    (as Optuna's fANOVA fits its forest) that is due to the pair's interaction: per tree, the variance
    of the pair's joint marginal minus both main effects, over the tree's variance; the mean over
    trees. Uses only the public API of scikit-learn's trees."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    x = _unit_cube(trials, params)
    y = np.array([target(t.value) for t in trials], float)
    forest = RandomForestRegressor(n_estimators=n_trees, max_depth=64, random_state=seed).fit(x, y)
    shares: list[list[float]] = [[] for _ in pairs]
    for estimator in forest.estimators_:
        low, high, value = _leaf_boxes(estimator.tree_, x.shape[1])
        volume = np.prod(high - low, axis=1)
        total = float((volume * value**2).sum() - (volume * value).sum() ** 2)
        if total <= 1e-12 * max(1.0, float(np.abs(value).max()) ** 2):
            continue
        for share, (a, b) in zip(shares, pairs):
            ia, ib = params.index(a), params.index(b)
            joint = _marginal_variance(low, high, value, [ia, ib])
            alone = _marginal_variance(low, high, value, [ia]) + _marginal_variance(low, high, value, [ib])
            share.append(max(joint - alone, 0.0) / total)
    return [float(np.mean(share)) if share else math.nan for share in shares]


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

    whole = _study_of(trials, params, target)
    main = _main_effects(whole, n_trees=n_trees)
    table = pd.DataFrame({"param": list(main), "all trials": list(main.values())})
    hyper = [k for k in params if k != by and not trials[0].distributions[k].single()]
    if by is not None and by in params:
        rest = [k for k in params if k != by]
        scopes = {}
        for value in dict.fromkeys(str(t.params[by]) for t in trials):
            members = [t for t in trials if str(t.params[by]) == value]
            if len(members) >= min_trials and rest:
                try:
                    scopes[f"{by}={value}"] = _main_effects(_study_of(members, rest, target), n_trees=n_trees)
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
    pairs = [(a, b) for i, a in enumerate(hyper) for b in hyper[i + 1 :]]
    shares = _pair_interactions(trials, hyper, pairs, target, n_trees) if pairs else []
    pairs = [{"pair": f"{a} x {b}", "interaction": share} for (a, b), share in zip(pairs, shares)]
    pair_table = pd.DataFrame(pairs, columns=["pair", "interaction"])
    pair_table = pair_table.sort_values("interaction", ascending=False, kind="stable").reset_index(drop=True)
    return table, pair_table


def load_study(directory: Path):
    """The Optuna study of a search directory (its ``search.yaml`` names the storage)."""
    import optuna

    saved = SweepDir(directory).read_search()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=saved["study_name"], storage=open_storage(saved["storage"]))


def write_fanova(directory: Path, metric: str, by: str | None, cap: float | None, wanted: dict, out_dir: Path):
    """Write ``fanova.csv``, ``fanova_pairs.csv`` and ``fanova.md`` for the study of a search
    directory; returns (the Markdown lines, notes for what could not be computed)."""
    from lstmlab.report.expected import fanova_checks

    try:
        main_effects, pairs = fanova_tables(load_study(directory), by, cap=cap)
    except (ValueError, RuntimeError) as err:
        return [], [f"fANOVA not computed: {' '.join(str(err).split())}"]
    main_effects.to_csv(out_dir / "fanova.csv", index=False)
    pairs.to_csv(out_dir / "fanova_pairs.csv", index=False)
    lines = [
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
        *fanova_checks(main_effects, pairs, wanted, by),
    ]
    (out_dir / "fanova.md").write_text("\n".join(lines))
    return lines, []


def open_storage(url: str):
    """An Optuna storage for ``url``: ``journal:PATH`` is a journal file, anything else an RDB URL."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
