"""Plots written as PNG files into ``run_dir/plots``. Drawn on plain ``Figure`` objects with the Agg
canvas, never through pyplot, so importing this module leaves matplotlib's backend as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def learning_curves(history: list[dict[str, Any]], path: Path, title: str | None = None) -> Path | None:
    """Training and validation loss (and bits per character, if logged) against the step; ``title``
    (e.g. the experiment and the run directory's name) heads the figure and is the PNG's Title."""

    def series(key):
        points = [(r["step"], r[key]) for r in history if key in r]
        return [p[0] for p in points], [p[1] for p in points]

    panels = [k for k in ("loss", "bpc", "accuracy") if any(f"val/{k}" in r or f"train/{k}" in r for r in history)]
    if not panels:
        return None
    fig = Figure(figsize=(5 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        for split, style in (("train", "-"), ("val", "o-")):
            steps, values = series(f"{split}/{metric}")
            if steps:
                ax.plot(steps, values, style, label=split, markersize=3)
        unit = {"loss": " (nats)", "bpc": " (bits)"}.get(metric, "")
        ax.set_xlabel("step")
        ax.set_ylabel(metric + unit)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Title": title} if title else None)
    return path


def confusion_matrix(counts, classes: list[str], path: Path, title: str | None = None) -> Path:
    """The confusion matrix ``counts`` (K, K), true classes down and predicted across, as a heat map
    with each cell's count; ``classes`` label the axes."""
    import numpy as np

    counts = np.asarray(counts)
    size = max(3.0, 0.45 * len(classes) + 1.5)
    fig = Figure(figsize=(size + 0.8, size))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45 if max(map(len, classes), default=0) > 3 else 0)
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(classes) <= 20:
        high = counts.max() if counts.size else 0
        for (i, j), n in np.ndenumerate(counts):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > high / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
