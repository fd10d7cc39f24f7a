"""What a trained network's units do: gate activations per layer, their saturation, and units that track
features of the text (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks").

* :func:`layer_activations`: run a stack of layers of one cell over an input sequence and return, per
  layer, every step's activations by name (the cell's ``gates``, :func:`lstmlab.cells.scan_gates`): for
  the LSTM family the gates ``i``, ``f``, ``o``, the cell input ``g``, the cell state ``c`` and the output
  ``h``; for the GRU ``r``, ``z``, ``n``, ``h``; for the RNN ``h``.
* :func:`saturation`: per layer, gate and unit, the fraction of steps a gate is left-saturated
  (activation < 0.1) or right-saturated (> 0.9), the paper's Sec. 4.2 statistics.
* :func:`text_features` and :func:`find_cells`: per character, the position in the line (characters
  since the last newline), whether it is inside double quotes and inside brackets; every unit ranked by
  the absolute Pearson correlation of one of its activations with each feature.

Pure functions on arrays and text: the model's parameters come in as plain dicts (``layer.cell_params()``
of a :class:`lstmlab.nn.Recurrent`); the command that restores a run and writes the files is
:mod:`lstmlab.inspect`. Figures: :mod:`lstmlab.diagnostics.cellviz`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from lstmlab import cells

#: Activation names that are sigmoid gates (in (0, 1)), the ones :func:`saturation` counts.
SIGMOID_GATES = ("i", "f", "o", "r", "z")
LEFT, RIGHT = 0.1, 0.9  # the paper's saturation thresholds
FEATURES = ("line_position", "in_quotes", "in_brackets")
OPENING, CLOSING = "([{", ")]}"


def layer_activations(
    cell: str, layer_params: Sequence[Mapping[str, Any]], xs: Any, **options: Any
) -> list[dict[str, np.ndarray]]:
    """Per layer, {activation name: (T, B, H) array} of a stack of ``cell`` layers run from zero carries
    over ``xs`` (T, B, D), each layer's outputs ``h`` feeding the next (no dropout: evaluation)."""
    if not layer_params:
        raise ValueError("layer_params is empty; give one parameter dict per layer")
    run = jax.jit(lambda p, x: cells.scan_gates(cell, p, x, **options))
    out, inputs = [], xs
    for params in layer_params:
        acts = run(dict(params), inputs)
        inputs = acts["h"]
        out.append({name: np.asarray(value) for name, value in acts.items()})
    return out


def saturation(
    activations: Sequence[Mapping[str, np.ndarray]], left: float = LEFT, right: float = RIGHT
) -> pd.DataFrame:
    """One row per layer, sigmoid gate (:data:`SIGMOID_GATES`) and unit: the fraction of steps (and batch
    rows) with activation < ``left`` (``left_saturated``) and > ``right`` (``right_saturated``). Columns
    layer, gate, unit, left_saturated, right_saturated; no rows for a cell without such gates (the RNN)."""
    if not 0 <= left < right <= 1:
        raise ValueError(f"thresholds left={left}, right={right}; valid: 0 <= left < right <= 1")
    frames = []
    for layer, acts in enumerate(activations):
        for gate in (g for g in SIGMOID_GATES if g in acts):
            values = np.asarray(acts[gate], dtype=np.float64)
            values = values.reshape(-1, values.shape[-1])  # (steps, H)
            frames.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "gate": gate,
                        "unit": np.arange(values.shape[1]),
                        "left_saturated": (values < left).mean(axis=0),
                        "right_saturated": (values > right).mean(axis=0),
                    }
                )
            )
    columns = ["layer", "gate", "unit", "left_saturated", "right_saturated"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def saturation_summary(table: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per layer and gate: the units' mean left- and right-saturated fractions and the share of units
    left- or right-saturated more than ``threshold`` of the time."""
    if table.empty:
        return pd.DataFrame(columns=["layer", "gate", "units", "mean_left", "mean_right", "share_left", "share_right"])
    grouped = table.groupby(["layer", "gate"], sort=True)
    return grouped.agg(
        units=("unit", "size"),
        mean_left=("left_saturated", "mean"),
        mean_right=("right_saturated", "mean"),
        share_left=("left_saturated", lambda s: float((s > threshold).mean())),
        share_right=("right_saturated", lambda s: float((s > threshold).mean())),
    ).reset_index()


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character of ``text`` (each (len,) float64), as seen when that character is read:
    ``line_position`` the characters since the last newline (0 at a newline), ``in_quotes`` 1 from an
    opening double quote up to its closing one, ``in_brackets`` 1 from an opening bracket (``([{``) up to
    its closing one (nesting counted)."""
    n = len(text)
    position, quotes, brackets = np.zeros(n), np.zeros(n), np.zeros(n)
    column, inside_quote, depth = 0, False, 0
    for k, char in enumerate(text):
        column = 0 if char == "\n" else column + 1
        if char == '"':
            inside_quote = not inside_quote
        if char in OPENING:
            depth += 1
        position[k] = column
        quotes[k] = inside_quote or char == '"'
        brackets[k] = depth > 0
        if char in CLOSING:
            depth = max(depth - 1, 0)
    return {"line_position": position, "in_quotes": quotes, "in_brackets": brackets}


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``values`` (T, H) with ``feature`` (T,); 0 where either is
    constant."""
    v = np.asarray(values, dtype=np.float64)
    f = np.asarray(feature, dtype=np.float64)
    if v.ndim != 2 or f.shape != (v.shape[0],):
        raise ValueError(f"values (T, H) and feature (T,) must share T; got {v.shape} and {f.shape}")
    v = v - v.mean(axis=0)
    f = f - f.mean()
    denominator = np.sqrt((v * v).sum(axis=0) * (f * f).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (v * f[:, None]).sum(axis=0) / denominator
    return np.where(denominator > 0, r, 0.0)


def find_cells(
    activations: Sequence[Mapping[str, np.ndarray]],
    features: Mapping[str, np.ndarray],
    *,
    state: str | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Every (layer, unit, feature) ranked by |correlation| of the unit's ``state`` activation (default:
    the LSTM's cell state passed through tanh, as the paper colours it, else ``h``) with the feature,
    strongest first within each feature. Activations are (T, H) or (T, 1, H) for one sequence. Columns
    feature, rank, layer, unit, correlation; ``top`` keeps that many rows per feature. A feature that is
    constant over the text (no brackets in it, say) correlates with nothing and has no rows."""
    rows = [pd.DataFrame({"feature": [], "layer": [], "unit": [], "correlation": []})]
    varying = {name: f for name, f in features.items() if np.ptp(np.asarray(f, dtype=np.float64)) > 0}
    for layer, acts in enumerate(activations):
        values = unit_values(acts, state)
        for name, feature in varying.items():
            r = correlations(values, feature)
            rows.append(pd.DataFrame({"feature": name, "layer": layer, "unit": np.arange(r.size), "correlation": r}))
    table = pd.concat(rows, ignore_index=True)
    table["strength"] = table["correlation"].abs()
    table = table.sort_values(["feature", "strength"], ascending=[True, False], kind="stable")
    table["rank"] = table.groupby("feature").cumcount() + 1
    table = table.astype({"layer": int, "unit": int, "rank": int})
    if top is not None:
        table = table[table["rank"] <= top]
    return table[["feature", "rank", "layer", "unit", "correlation"]].reset_index(drop=True)


def unit_values(acts: Mapping[str, np.ndarray], state: str | None = None) -> np.ndarray:
    """(T, H) values of one sequence to colour or correlate: ``acts[state]``, by default tanh(c) when
    the cell has a cell state ``c`` and ``h`` otherwise. ValueError naming the valid names."""
    name = state or ("c" if "c" in acts else "h")
    if name not in acts:
        raise ValueError(f"no activation {name!r}; valid: {', '.join(acts)}")
    values = np.asarray(acts[name], dtype=np.float64)
    if values.ndim == 3:
        if values.shape[1] != 1:
            raise ValueError(f"activations of one sequence are (T, 1, H); got {values.shape}")
        values = values[:, 0]
    return np.tanh(values) if state is None and name == "c" else values
