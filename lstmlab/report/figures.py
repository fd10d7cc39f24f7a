"""The report's figures: the metric per configuration, the box plot per group (Greff et al. 2017,
Fig. 3) and a study's optimisation history and importances.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from lstmlab.report.studies import load_study


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
