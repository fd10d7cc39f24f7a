"""Figures of :mod:`lstmlab.diagnostics.gates`: saturation plots and text coloured by one unit's activation.

Drawn on matplotlib's Agg canvas (no ``pyplot``, so the global backend is left alone); each function
creates the file's parent directories and returns the path it wrote. Colours follow Karpathy et al.
(2015), Fig. 2: values from -1 (red) to +1 (blue) on matplotlib's ``RdBu`` map.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure

GATE_COLOURS = {"i": "tab:green", "f": "tab:red", "o": "tab:blue", "r": "tab:purple", "z": "tab:orange"}
GATE_NAMES = {"i": "input", "f": "forget", "o": "output", "r": "reset", "z": "update"}
CMAP = "RdBu"


def _save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return path


def plot_saturation(tables: Mapping[str, pd.DataFrame], path: str | Path, *, title: str | None = None) -> Path:
    """The paper's Fig. 3 layout: one row per model (``tables``: label -> :func:`saturation` table), one
    scatter per layer, a point per gate and unit at (fraction left-saturated, fraction right-saturated).
    Points near the top are gates almost always open (a forget gate there remembers), near the right
    almost always shut; the diagonal bounds the plane (the two fractions add up to at most 1)."""
    tables = {k: v for k, v in tables.items() if not v.empty}
    if not tables:
        raise ValueError("no gates to plot (a cell without sigmoid gates, such as the RNN, has none)")
    columns = max(int(t["layer"].max()) + 1 for t in tables.values())
    fig = Figure(figsize=(3.2 * columns, 3.2 * len(tables) + 0.4))
    axes = fig.subplots(len(tables), columns, squeeze=False)
    for row, (label, table) in enumerate(tables.items()):
        for layer in range(columns):
            ax = axes[row][layer]
            part = table[table["layer"] == layer]
            if part.empty:
                ax.set_visible(False)
                continue
            ax.plot([0, 1], [1, 0], color="0.8", lw=0.8)
            for gate, points in part.groupby("gate", sort=False):
                ax.scatter(
                    points["left_saturated"],
                    points["right_saturated"],
                    s=12,
                    alpha=0.6,
                    color=GATE_COLOURS.get(gate),
                    label=f"{GATE_NAMES.get(gate, gate)} gate",
                )
            ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=f"{label}, layer {layer + 1}")
            ax.set_xlabel("fraction left-saturated (< 0.1)")
            if layer == 0:
                ax.set_ylabel("fraction right-saturated (> 0.9)")
            ax.legend(loc="upper right", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _colours(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    return colormaps[CMAP](Normalize(vmin, vmax, clip=True)(np.asarray(values, dtype=np.float64)))


def render_html(
    text: str, values: np.ndarray, path: str | Path, *, title: str = "", vmin: float = -1.0, vmax: float = 1.0
) -> Path:
    """``text`` as an HTML page, each character on a background coloured by its value (``values``
    (len(text),), -1 red to +1 blue); hovering shows the value."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(text),):
        raise ValueError(f"values must be one per character ({len(text)}); got shape {values.shape}")
    spans = []
    for char, value, colour in zip(text, values, _colours(values, vmin, vmax)):
        shown = "\u21b5\n" if char == "\n" else html.escape(char)
        spans.append(f'<span style="background:{to_hex(colour)}" title="{value:.3f}">{shown}</span>')
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{t}</title></head>\n'
        '<body><h3 style="font-family:sans-serif">{t}</h3>\n'
        '<pre style="font-family:monospace;font-size:14px;line-height:1.35">{s}</pre>\n</body></html>\n'
    ).format(t=html.escape(title), s="".join(spans))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def text_grid(text: str, width: int) -> list[list[int]]:
    """Rows of character indices: a new row after each newline (the newline ends its row) and after
    ``width`` characters."""
    rows: list[list[int]] = [[]]
    for k, char in enumerate(text):
        if len(rows[-1]) >= width:
            rows.append([])
        rows[-1].append(k)
        if char == "\n":
            rows.append([])
    return [r for r in rows if r] or [[]]


def render_png(
    text: str,
    values: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    width: int = 80,
    vmin: float = -1.0,
    vmax: float = 1.0,
) -> Path:
    """``text`` on a monospace grid (``width`` columns, a row per line), each cell coloured by its value
    as in :func:`render_html`; a newline shows as a return arrow."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(text),):
        raise ValueError(f"values must be one per character ({len(text)}); got shape {values.shape}")
    rows = text_grid(text, width)
    columns = max(1, max(len(r) for r in rows))
    image = np.ones((len(rows), columns, 4))
    colours = _colours(values, vmin, vmax)
    for y, row in enumerate(rows):
        for x, k in enumerate(row):
            image[y, x] = colours[k]
    fig = Figure(figsize=(0.11 * columns + 0.4, 0.2 * len(rows) + 0.45))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.3 / fig.get_figheight()))
    ax.imshow(image, aspect="auto", interpolation="nearest", extent=(0, columns, len(rows), 0))
    dark = (colours[:, :3] @ np.array([0.299, 0.587, 0.114])) < 0.5  # white letters on dark cells
    for y, row in enumerate(rows):
        for x, k in enumerate(row):
            char = "\u21b5" if text[k] == "\n" else text[k]
            if char.strip():
                ink = "white" if dark[k] else "black"
                ax.text(x + 0.5, y + 0.55, char, ha="center", va="center", family="monospace", fontsize=8, color=ink)
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9, y=0.995, va="top")
    return _save(fig, path, dpi=110)
