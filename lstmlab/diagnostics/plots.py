"""Plots of the gradient studies: pure functions from arrays to a PNG file.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so plotting needs no display and
never changes the global backend. Each function creates the file's parent directories and returns the
path it wrote. Points that are not finite or not positive are left out of log-scale plots.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ArrayLike = np.ndarray
LINESTYLES = ("-", "--", "-.", ":")  # cycled per line, so curves that coincide (lstm and peephole at
# initialisation, whose peephole weights start at zero) stay visible


def _positive(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def plot_norm_decay(
    curves: Mapping[str, ArrayLike],
    path: str | Path,
    *,
    title: str = "Gradient norm against distance from the loss",
    ylabel: str = "||dL/dh_t||",
) -> Path:
    """Log norm against distance from the loss, one line per cell or setting.

    curves: name -> (T,) norms in time order, the last entry at the loss (as from
    :func:`lstmlab.diagnostics.norm_curves`); entry t is drawn at distance ``T - 1 - t``.
    """
    if not curves:
        raise ValueError("curves is empty; give at least one name -> (T,) norm curve")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for index, (name, values) in enumerate(curves.items()):
        values = _positive(values)
        if values.ndim != 1:
            raise ValueError(f"curve {name!r} must be (T,); got shape {values.shape}")
        ax.plot(np.arange(values.shape[0])[::-1], values, label=name, linestyle=LINESTYLES[index % len(LINESTYLES)])
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss k = T - 1 - t (steps)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_norm_heatmap(
    norms: ArrayLike,
    path: str | Path,
    *,
    steps: ArrayLike | None = None,
    title: str = "log10 ||dL/dh_t|| over training",
) -> Path:
    """Heat map of log10 norm over time step t (x) and training step (y).

    norms: (N, T), one (T,) curve per logged training step. steps: (N,) the training steps (default
    0..N-1). Cells that are not finite or not positive are left blank.
    """
    values = _positive(norms)
    if values.ndim != 2:
        raise ValueError(f"norms must be (num_logged_steps, T); got shape {values.shape}")
    N, T = values.shape
    steps = np.arange(N) if steps is None else np.asarray(steps)
    if steps.shape != (N,):
        raise ValueError(f"steps must be ({N},) like norms' first axis; got shape {steps.shape}")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    image = ax.imshow(
        np.log10(values), aspect="auto", origin="lower", interpolation="nearest", extent=(-0.5, T - 0.5, -0.5, N - 0.5)
    )
    ticks = np.unique(np.linspace(0, N - 1, min(N, 6)).round().astype(int))
    ax.set_yticks(ticks)
    ax.set_yticklabels([str(steps[i]) for i in ticks])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log10 norm")
    fig.tight_layout()
    return _save(fig, path)


def plot_jacobian_spectra(
    spectra: Mapping[str, ArrayLike], path: str | Path, *, title: str = "Singular values of ds_T/ds_{T-k}"
) -> Path:
    """Largest singular value against k, one line per cell or setting; the rest of the spectrum faint.

    spectra: name -> (K,) largest singular values, or (K, S) full spectra in descending order (e.g.
    one example's, or the batch mean, of :func:`lstmlab.diagnostics.state_jacobian_spectra`); row k-1
    belongs to distance k.
    """
    if not spectra:
        raise ValueError("spectra is empty; give at least one name -> (K,) or (K, S) array")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for index, (name, values) in enumerate(spectra.items()):
        values = _positive(values)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ValueError(f"spectrum {name!r} must be (K,) or (K, S); got shape {values.shape}")
        k = np.arange(1, values.shape[0] + 1)
        (line,) = ax.plot(k, values[:, 0], label=name, linestyle=LINESTYLES[index % len(LINESTYLES)])
        if values.shape[1] > 1:
            ax.plot(k, values[:, 1:], color=line.get_color(), alpha=0.15, linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("distance k (steps)")
    ax.set_ylabel("singular value")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
