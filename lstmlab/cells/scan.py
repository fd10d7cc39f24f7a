"""The time loop: a cell (:mod:`lstmlab.cells.base`) run over a time-major sequence, with padding.

One loop, :func:`loop`, drives every cell's ``forward`` step; per step t::

    xp_t = x_t @ w_i + b_in                         input projection of the step, (B, G*H)
    carry', saved_t = cell.forward(params, xp_t, carry)
    carry = carry' where step t is valid, else carry     (and + probes[t], if given)
    hs[t] = cell.output(carry) where valid, else 0

Two implementations differentiate it:

* ``reference`` (:func:`reference`): autodiff through ``lax.scan``. The input projection is one
  (T*B, D) x (D, G*H) matrix multiply before the loop.
* ``fast`` (:func:`fast`): a ``jax.custom_vjp``. The forward loop projects each step inside the loop and
  stacks ``saved``. The backward loop runs over t reversed, carrying only the carry's cotangent (and the
  cell's ``backward_state``); per step, ``cell.backward`` gives the gate derivatives ``dz_t`` and the
  recurrent matrix multiply ``d carry_{t-1}``. After it, ``cell.grads`` turns the stacked ``dz`` into the
  recurrent weights' gradients, and ``d xs = dXP @ w_i^T``, ``d w_i = X^T @ dXP``, ``d b_in = sum dXP`` are
  one matrix multiply (or sum) over all T*B rows each. Reverse mode only (``grad``, ``vjp``, ``jacrev``);
  use the reference for ``jvp``/``jacfwd``.

Right-padded batches: with ``seq_lengths`` (B,) the carry of sequence b stops changing after
``seq_lengths[b]`` steps and its outputs there are zero. ``reverse=True`` runs each sequence backwards
*within its own length* (padding stays at the end), and outputs are returned in the original time order.
The mask is a prefix in time, which the fast backward relies on: the h that entered a valid step t > 0 is
the output of step t - 1.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells.base import Cell

Array = jax.Array
Carry = Any
Params = dict[str, Array]


def reverse_padded(xs: Array, seq_lengths: Array) -> Array:
    """Reverse each sequence of the time-major batch ``xs`` (T, B, ...) within its length (B,).

    Steps at or past a sequence's length stay where they are. Applying it twice gives ``xs`` back.
    """
    T = xs.shape[0]
    t = jnp.arange(T)[:, None]  # (T, 1)
    lengths = seq_lengths[None, :]  # (1, B)
    src = jnp.where(t < lengths, lengths - 1 - t, t)  # (T, B)
    src = src.reshape(src.shape + (1,) * (xs.ndim - 2))
    return jnp.take_along_axis(xs, src, axis=0)


def time_mask(T: int, seq_lengths: Array) -> Array:
    """(T, B) boolean: True where step t is inside sequence b."""
    return jnp.arange(T)[:, None] < seq_lengths[None, :]


def batch_where(m: Array, new: Array, old: Array) -> Array:
    """``new`` in the rows b where the (B,) mask ``m`` is set, else ``old``; arrays (B, ...) of any rank."""
    return jnp.where(m.reshape(m.shape + (1,) * (jnp.ndim(new) - 1)), new, old)


def _where(m: Array | None, new: Any, old: Any) -> Any:
    """``new`` where the (B,) mask ``m`` is set (everywhere if there is no mask), else ``old``; pytrees."""
    if m is None:
        return new
    return jax.tree.map(lambda n, o: batch_where(m, n, o), new, old)


def keep_dtypes(new: Carry, old: Carry) -> Carry:
    """``new`` with each leaf cast to the dtype of the same leaf of ``old`` (the carry keeps its dtypes)."""
    return jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)


def loop(
    cell: Cell,
    options: dict[str, Any],
    params: Params,
    xs: Array,
    carry: Carry,
    mask: Array | None = None,
    *,
    project_first: bool = True,
    save: bool = False,
    probes: Carry | None = None,
    states: bool = False,
) -> tuple[Carry, Array, Any, Any]:
    """The masked time loop in the forward direction (see the module docstring).

    ``xs`` (T, B, D); ``mask`` (T, B) bool or None; ``probes``: the carry's structure with a leading T
    axis, added to the carry after each step. ``project_first``: one input projection before the loop
    (else one per step inside it). Returns (final carry, hs (T, B, H), stacked ``saved`` if ``save``,
    the carry after every step (leading T axis) if ``states``).
    """
    w_i, b_in = params["w_i"], params[cell.input_bias]
    inputs = xs @ w_i + b_in if project_first else xs

    def body(carry: Carry, step_inputs: tuple) -> tuple[Carry, tuple]:
        x_t, m, p_t = step_inputs
        xp = x_t if project_first else x_t @ w_i + b_in
        new, saved = cell.forward(params, xp, carry, **options)
        carry = _where(m, keep_dtypes(new, carry), carry)
        if p_t is not None:
            carry = jax.tree.map(jnp.add, carry, p_t)
        h = cell.output(carry)
        y = h if m is None else jnp.where(m[:, None], h, jnp.zeros_like(h))
        return carry, (y, saved if save else None, carry if states else None)

    carry, (hs, saved, all_states) = jax.lax.scan(body, carry, (inputs, mask, probes))
    return carry, hs, saved, all_states


def reference(
    cell: Cell, options: dict[str, Any], params: Params, xs: Array, carry: Carry, mask: Array | None = None
) -> tuple[Carry, Array]:
    """(final carry, hs) by autodiff through :func:`loop`."""
    carry, hs, _, _ = loop(cell, options, params, xs, carry, mask)
    return carry, hs


def _previous(first: Array, seq: Array) -> Array:
    """(T, B, ...) sequence of the values entering each step: ``first`` then ``seq[:-1]``."""
    return jnp.concatenate([first[None].astype(seq.dtype), seq[:-1]], axis=0)[: seq.shape[0]]


def _zero_cotangent(mask: Array | None) -> Any:
    return None if mask is None else jnp.zeros(mask.shape, jax.dtypes.float0)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fast(
    cell: Cell, option_items: tuple, params: Params, xs: Array, carry: Carry, mask: Array | None
) -> tuple[Carry, Array]:
    carry, hs, _, _ = loop(cell, dict(option_items), params, xs, carry, mask, project_first=False)
    return carry, hs


def _fast_fwd(cell, option_items, params, xs, carry, mask):
    final, hs, saved, _ = loop(cell, dict(option_items), params, xs, carry, mask, project_first=False, save=True)
    return (final, hs), (params, xs, carry, final, hs, saved, mask)


def _fast_bwd(cell, option_items, residuals, cotangents):
    options = dict(option_items)
    params, xs, carry0, final, hs, saveds, mask = residuals
    d_final, d_hs = cotangents
    h_prevs = _previous(cell.output(carry0), hs)
    # each matrix's transpose once, outside the loop, under "<key>.T" (see lstmlab.cells.base)
    bwd_params = dict(params, **{f"{k}.T": v.T for k, v in params.items() if jnp.ndim(v) == 2})

    def body(state: tuple, step_inputs: tuple) -> tuple[tuple, Any]:
        d_carry, cell_state = state
        dy, saved, h_prev, h, m = step_inputs
        d_in = d_carry
        if m is not None:
            d_in = jax.tree.map(lambda d: batch_where(m, d, jnp.zeros_like(d)), d_carry)
            dy = jnp.where(m[:, None], dy, jnp.zeros_like(dy))
        dz, d_prev, cell_state = cell.backward(bwd_params, saved, h_prev, h, cell_state, d_in, dy, **options)
        if m is not None:
            d_prev = jax.tree.map(lambda p, d: p + batch_where(m, jnp.zeros_like(d), d), d_prev, d_carry)
        return (keep_dtypes(d_prev, d_carry), cell_state), dz

    (d_carry0, _), dzs = jax.lax.scan(
        body, (d_final, cell.backward_state(final, **options)), (d_hs, saveds, h_prevs, hs, mask), reverse=True
    )
    dxp, grads = cell.grads(params, dzs, saveds, h_prevs, final, **options)
    T, B, D = xs.shape
    w_i = params["w_i"]
    dxp2 = dxp.reshape(T * B, -1)
    d_xs = (dxp2 @ w_i.T).reshape(T, B, D).astype(xs.dtype)
    grads = dict(grads, w_i=xs.reshape(T * B, D).T @ dxp2)
    grads[cell.input_bias] = dxp2.sum(axis=0)
    d_params = {k: grads[k].astype(v.dtype) if k in grads else jnp.zeros_like(v) for k, v in params.items()}
    return d_params, d_xs, keep_dtypes(d_carry0, carry0), _zero_cotangent(mask)


_fast.defvjp(_fast_fwd, _fast_bwd)


def fast(
    cell: Cell, options: dict[str, Any], params: Params, xs: Array, carry: Carry, mask: Array | None = None
) -> tuple[Carry, Array]:
    """(final carry, hs) of :func:`loop` with the hand-written backward pass; the cell must have one
    (``cell.has_backward(**options)``)."""
    return _fast(cell, tuple(sorted(options.items())), params, xs, carry, mask)


def run(
    cell: Cell,
    options: dict[str, Any],
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    seq_lengths: Array | None = None,
    reverse: bool = False,
    impl: str = "fast",
) -> tuple[Carry, Array]:
    """``xs`` (T, B, D) -> (final carry, hs (T, B, H)), padded and reversed as in the module docstring.
    ``impl``: ``"fast"`` (falls back to ``"reference"`` for cells without a backward) or ``"reference"``.
    A cell whose options choose a whole-sequence form (``cell.has_sequence``, e.g. ``form="parallel"``)
    runs that form instead of the loop, differentiated by autodiff."""
    if seq_lengths is not None:
        seq_lengths = jnp.asarray(seq_lengths)
    if reverse:
        xs = xs[::-1] if seq_lengths is None else reverse_padded(xs, seq_lengths)
    mask = None if seq_lengths is None else time_mask(xs.shape[0], seq_lengths)
    if getattr(cell, "has_sequence", lambda **_: False)(**options):
        xp = xs @ params["w_i"] + params[cell.input_bias]
        new, hs = cell.sequence(params, xp, carry, mask, **options)
        carry = keep_dtypes(new, carry)
    else:
        use_fast = impl == "fast" and cell.has_backward(**options)
        carry, hs = (fast if use_fast else reference)(cell, options, params, xs, carry, mask)
    if reverse:
        hs = hs[::-1] if seq_lengths is None else reverse_padded(hs, seq_lengths)
    return carry, hs
