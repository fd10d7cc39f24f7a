"""Per-timestep gradient norms ``||dL/dh_t||`` (and ``||dL/dc_t||``) of a stack of recurrent layers.

How it works: a zero *probe* ``p_t`` is added to every layer's carry right after step t::

    s_t = step(s_{t-1}, x_t) + p_t          (p_t = 0, so nothing changes)

The derivative of the loss with respect to ``p_t`` is then exactly ``dL/ds_t``: the total derivative
with respect to the state at step t, through the output at t, every later step and every higher layer.
One reverse-mode pass with respect to all probes gives every layer's gradient at every step, at the cost
of one ordinary backward pass, so the diagnostic is cheap enough to leave on during training.

Layers are given at the functional level, as a list with one ``(cell, params, options)`` entry per layer
(``options`` may be left out): ``cell`` is a name of :data:`lstmlab.cells.CELLS`, ``params`` the dict of
arrays :func:`lstmlab.cells.init` returns and ``options`` the cell's options (``variant``, ``activation``).
Layer l's outputs (T, B, H) are layer l+1's inputs; there is no dropout between layers (evaluation mode).
From an NNX ``RecurrentStack`` ``stack``: ``[(l.cell, l.cell_params(), l.options) for l in stack.layers]``.

Units: a gradient norm has the units of the loss per unit of hidden state (nats per unit of ``h`` when the
loss is in nats). If ``loss_fn`` averages over the batch, each example's gradient carries a factor 1/B; a
sum over the batch gives per-example gradients that do not depend on B. Ratios and decay rates are
unaffected either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmlab import cells

Array = jax.Array
Carry = Any
LayerSpec = Sequence[Any]  # (cell, params) or (cell, params, options)


class StateGradNorms(NamedTuple):
    """Result of :func:`state_grad_norms` (a pytree, so it can be returned from ``jax.jit``).

    loss: the scalar ``loss_fn`` value.
    h: one (T, B) array per layer, ``||dL/dh_t||`` of each example (Euclidean norm over the H units).
    c: one (T, B) array per layer, ``||dL/dc_t||``, for LSTM-family layers; None for GRU and RNN layers.
    Steps past an example's ``seq_lengths`` have norm 0 (its state there does not reach the loss).
    """

    loss: Array
    h: tuple[Array, ...]
    c: tuple[Array | None, ...]


def as_layers(layers: Sequence[LayerSpec]) -> list[tuple[str, dict[str, Array], dict[str, Any]]]:
    """Check a layer list and return it as ``(cell, params, options)`` triples with options filled in."""
    if len(layers) == 0:
        raise ValueError("layers is empty; give one (cell, params, options) entry per layer")
    out = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (2, 3):
            raise ValueError(f"layers[{index}] must be (cell, params) or (cell, params, options)")
        cell, params = layer[0], layer[1]
        options = cells.cell_options(cell, **(dict(layer[2]) if len(layer) == 3 else {}))
        out.append((cell, params, options))
    return out


def hidden(carry: Carry) -> Array:
    """``h`` of a carry: the ``h`` field of ``LSTMState``/``FGRState``, the carry itself for GRU/RNN."""
    return carry.h if hasattr(carry, "h") else carry


def cell_state(carry: Carry) -> Array | None:
    """The memory of a carry: ``c`` of the LSTM family and the sLSTM, the matrix memory ``C`` of the
    mLSTM; None for carries that are ``h`` alone (GRU, RNN, minGRU, minLSTM)."""
    for name in ("c", "C"):
        if hasattr(carry, name):
            return getattr(carry, name)
    return None


def initial_carries(layers: Sequence[LayerSpec], batch_size: int, dtype) -> list[Carry]:
    """Zero carries for every layer, in the dtype ``cells.scan`` would use for inputs of ``dtype``."""
    carries = []
    for cell, params, options in as_layers(layers):
        dtype = jnp.result_type(dtype, params["w_i"].dtype)
        hidden_size = cells.sizes(cell, params, **options)[1]
        carries.append(cells.initial_carry(cell, batch_size, hidden_size, dtype, **options))
    return carries


def run_layer(
    cell: str,
    params: dict[str, Array],
    options: Mapping[str, Any],
    xs: Array,
    carry: Carry,
    probes: Carry | None = None,
    seq_lengths: Array | None = None,
) -> tuple[Carry, Array]:
    """Run one layer over ``xs`` (T, B, D) from ``carry``, adding ``probes`` (the carry's structure with
    a leading T axis) to the carry after each step, through :func:`lstmlab.cells.scan_states`.
    ``seq_lengths`` (B,) as in :func:`lstmlab.cells.scan`. Returns (states at every step (leading T
    axis), outputs (T, B, H))."""
    return cells.scan_states(cell, params, xs, carry, seq_lengths=seq_lengths, probes=probes, **options)


def check_layer_inputs(layers: Sequence[LayerSpec], xs: Array) -> None:
    """ValueError unless xs is (T, B, D) and each layer's input size matches the one below."""
    if xs.ndim != 3:
        raise ValueError(f"xs must be time-major (T, B, D); got shape {xs.shape}")
    size = xs.shape[-1]
    for index, (cell, params, options) in enumerate(layers):
        if params["w_i"].shape[0] != size:
            raise ValueError(f"layers[{index}] takes inputs of size {params['w_i'].shape[0]}, but gets {size}")
        size = cells.sizes(cell, params, **options)[1]


def state_grad_norms(
    layers: Sequence[LayerSpec],
    xs: Array,
    loss_fn: Callable[[Array], Array],
    *,
    seq_lengths: Array | None = None,
    carries: Sequence[Carry] | None = None,
) -> StateGradNorms:
    """``||dL/dh_t||`` (and ``||dL/dc_t||``) for every step t and layer, in one backward pass.

    Args:
      layers: one ``(cell, params, options)`` entry per layer, bottom first (see the module docstring).
      xs: (T, B, D) time-major inputs of the bottom layer.
      loss_fn: the top layer's outputs (T, B, H) -> scalar loss. For a loss at the last step only use
        e.g. ``lambda hs: loss(head(hs[-1]))``; for a loss at every step use all of ``hs``. Targets and
        head parameters are closed over.
      seq_lengths: (B,) valid steps of right-padded sequences (the same masking as ``cells.scan``).
      carries: initial carry per layer; zeros by default.

    Returns:
      :class:`StateGradNorms` with per-layer (T, B) norms; :func:`norm_curves` averages them over the
      batch. Index t is the state after step t, so with a loss at the last step the distance from the
      loss is ``T - 1 - t``.

    Cell names and options are static: to jit, close over them, e.g.
    ``jax.jit(lambda ps, xs: state_grad_norms([("lstm", p) for p in ps], xs, loss_fn))``.
    """
    specs = as_layers(layers)
    xs = jnp.asarray(xs)
    check_layer_inputs(specs, xs)
    T, B, _ = xs.shape
    if carries is None:
        carries = initial_carries(specs, B, xs.dtype)
    if len(carries) != len(specs):
        raise ValueError(f"got {len(carries)} carries for {len(specs)} layers")
    probes = [jax.tree.map(lambda a: jnp.zeros((T,) + a.shape, a.dtype), c) for c in carries]

    def loss_of_probes(probes):
        hs = xs
        for (cell, params, options), carry, probe in zip(specs, carries, probes):
            _, hs = run_layer(cell, params, options, hs, carry, probe, seq_lengths)
        loss = loss_fn(hs)
        if jnp.shape(loss) != ():
            raise ValueError(f"loss_fn must return a scalar; got shape {jnp.shape(loss)}")
        return loss

    loss, grads = jax.value_and_grad(loss_of_probes)(probes)

    def norm(g: Array) -> Array:  # (T, B, ...) -> (T, B), over all of a step's entries (the mLSTM's C is a matrix)
        g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
        return jnp.linalg.norm(g.reshape(g.shape[:2] + (-1,)), axis=-1)

    h = tuple(norm(hidden(g)) for g in grads)
    c = tuple(None if cell_state(g) is None else norm(cell_state(g)) for g in grads)
    return StateGradNorms(loss, h, c)


ALIGNS = ("start", "end")


def batch_mean(norms: Array, seq_lengths: Array | None = None, *, align: str = "start") -> Array:
    """(T, B) per-example norms -> (T,) mean over the examples that cover each entry.

    The mean is of per-example norms (norm first, then mean over the batch). ``align`` says how
    right-padded sequences of different lengths line up:

    * ``"start"``: entry t is time step t (examples cover t < their ``seq_lengths``).
    * ``"end"``: each example is shifted so that its last valid step is the last entry, so entry t is
      at distance ``T - 1 - t`` from every example's end (its loss, for a loss at the last step);
      examples cover the last ``seq_lengths`` entries.

    Without ``seq_lengths`` both are the plain mean over the batch. Entries no example covers are NaN.
    """
    if align not in ALIGNS:
        raise ValueError(f"align={align!r} is not an alignment; valid: {', '.join(ALIGNS)}")
    norms = jnp.asarray(norms)
    if norms.ndim != 2:
        raise ValueError(f"norms must be (T, B); got shape {norms.shape}")
    if seq_lengths is None:
        return norms.mean(axis=1)
    T = norms.shape[0]
    lengths = jnp.asarray(seq_lengths)
    mask = cells.time_mask(T, lengths)
    if align == "end":  # example b's step t moves to entry t + T - length_b
        index = (jnp.arange(T)[:, None] - (T - lengths)[None, :]) % T
        norms = jnp.take_along_axis(norms, index, axis=0)
        mask = mask[::-1]
    count = mask.sum(axis=1)
    total = jnp.where(mask, norms, 0.0).sum(axis=1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def norm_curves(result: StateGradNorms, seq_lengths: Array | None = None, *, align: str = "start") -> dict[str, Array]:
    """Batch-mean curves of a :class:`StateGradNorms`: ``{"layer0/h": (T,), "layer0/c": (T,), ...}``
    (``c`` only for LSTM-family layers), in time order (the last entry is the last step); ``align`` as
    for :func:`batch_mean`."""
    curves = {}
    for index, (h, c) in enumerate(zip(result.h, result.c)):
        curves[f"layer{index}/h"] = batch_mean(h, seq_lengths, align=align)
        if c is not None:
            curves[f"layer{index}/c"] = batch_mean(c, seq_lengths, align=align)
    return curves


class DecayFit(NamedTuple):
    """A straight line through ``log(norm)`` against the distance ``k`` from the loss.

    rate: the per-step factor ``exp(slope)``; below 1 gradients vanish, above 1 they explode.
    slope: d log(norm) / dk in natural log per step. intercept: fitted log(norm) at k = 0.
    r_squared: the fit's coefficient of determination (1 for an exact geometric curve).
    num_points: how many (finite, positive) points the fit used.
    """

    rate: float
    slope: float
    intercept: float
    r_squared: float
    num_points: int


def fit_decay_rate(norms: Array, *, start: int = 0, stop: int | None = None) -> DecayFit:
    """Fit the per-step decay rate of a norm curve.

    Args:
      norms: (T,) gradient norms in time order, the last entry at the loss (as from
        :func:`norm_curves`); the distance of entry t from the loss is ``k = T - 1 - t``.
      start, stop: fit only the distances ``start <= k < stop`` (e.g. skip the first few steps, where
        a loss at every step adds direct terms). ``stop`` defaults to T.

    Points that are not finite or not positive (padding, underflow to 0) are left out. For a loss at
    every step the curve is a sum of decaying terms and the fitted rate is that sum's overall decay.
    """
    values = np.asarray(norms, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"norms must be a (T,) curve; got shape {values.shape}")
    distances = np.arange(values.shape[0])[::-1]
    stop = values.shape[0] if stop is None else stop
    keep = np.isfinite(values) & (values > 0) & (distances >= start) & (distances < stop)
    if keep.sum() < 2:
        raise ValueError(
            f"fit_decay_rate needs at least 2 finite positive norms with {start} <= k < {stop}; got {int(keep.sum())}"
        )
    k, log_norm = distances[keep].astype(np.float64), np.log(values[keep])
    slope, intercept = np.polyfit(k, log_norm, 1)
    residual = log_norm - (slope * k + intercept)
    spread = ((log_norm - log_norm.mean()) ** 2).sum()
    r_squared = 1.0 - (residual**2).sum() / spread if spread > 0 else 1.0
    return DecayFit(float(np.exp(slope)), float(slope), float(intercept), float(r_squared), int(keep.sum()))


def decay_table(fits: Mapping[str, DecayFit]) -> str:
    """A Markdown table of fitted decay rates, one row per setting (the mapping's keys)."""
    rows = ["| setting | rate per step | log-slope per step | R^2 | points |", "|---|---|---|---|---|"]
    for name, fit in fits.items():
        rows.append(f"| {name} | {fit.rate:.4g} | {fit.slope:.4g} | {fit.r_squared:.4f} | {fit.num_points} |")
    return "\n".join(rows) + "\n"
