"""Forecast plot: truth, model forecast and baselines over time (``plots/forecast.png``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def plot_forecast(path: str, arrays: Mapping[str, np.ndarray], title: str = "", ylabel: str = "") -> None:
    """Write a PNG of ``arrays`` from :meth:`lstmlab.data.series.Forecast.forecast_arrays`:
    ``time`` (W,) on the x axis; ``truth``, ``forecast`` and, where present, ``persistence`` and
    ``seasonal`` (W,) in original units. Uses no pyplot state, so it is safe in any process."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5), dpi=110)
    ax = fig.subplots()
    t = np.asarray(arrays["time"])
    ax.plot(t, arrays["truth"], color="black", lw=1.6, label="truth")
    ax.plot(t, arrays["forecast"], color="tab:blue", lw=1.4, label="forecast")
    styles = {"persistence": ("tab:gray", ":"), "seasonal": ("tab:orange", "--")}
    for key, (color, ls) in styles.items():
        if key in arrays:
            ax.plot(t, arrays[key], color=color, ls=ls, lw=1.0, label=key)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
