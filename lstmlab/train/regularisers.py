"""Loss terms added to the task's loss in training: Pascanu, Mikolov & Bengio's (2013) regulariser Omega.

Omega (the paper's Eq. 9, "On the difficulty of training recurrent neural networks", Sec. 3.3) asks the
back-propagated gradient to keep its norm from one step to the one before::

    Omega = sum_k Omega_k,   Omega_k = ( || dE/dx_{k+1} . dx_{k+1}/dx_k || / || dE/dx_{k+1} || - 1 )^2

where x_k is the state at step k and ``dE/dx_{k+1}`` the total derivative of the loss E with respect to
it. The training objective becomes ``E + alpha * Omega`` (``optim.omega`` = alpha). The paper's
simplification (Eq. 10) holds ``dE/dx_{k+1}`` constant, and differentiates Omega_k only through the
weights' immediate appearance in the Jacobian ``dx_{k+1}/dx_k`` (its ``d+``), the states x_k held
fixed too; ``exact=True`` differentiates through all of them instead.

Here the state is the cell's whole carry (for the tanh RNN, h; for the LSTM, (h, c)), its norm taken
over all its parts, per sequence; a step past a sequence's end, or whose ``dE/dx_{k+1}`` is zero, adds
nothing. Omega is summed over the steps k = 1 .. T-1 of each sequence and averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lstmlab import cells

Array = jax.Array


def _squared_norms(tree: Any) -> Array:
    """Per (time, batch) row: the sum of squares over every part of a carry-shaped tree (T, B, ...)."""
    return sum(jnp.sum(jnp.square(a).reshape(a.shape[0], a.shape[1], -1), axis=-1) for a in jax.tree.leaves(tree))


def omega(
    cell: str,
    params: dict[str, Array],
    xs: Array,
    carry: Any,
    loss_of_hs: Callable[[Array], Array],
    *,
    seq_lengths: Array | None = None,
    exact: bool = False,
    **options: Any,
) -> Array:
    """Omega of one recurrent layer of cell ``cell`` over ``xs`` (T, B, D) from ``carry`` (or zeros),
    where ``loss_of_hs`` maps the layer's outputs hs (T, B, H) to the loss E (a scalar)."""
    T, B = xs.shape[:2]
    if carry is None:
        carry = cells.initial_carry(cell, B, cells.sizes(cell, params, **options)[1], xs.dtype, **options)
    probes = jax.tree.map(lambda a: jnp.zeros((T, *a.shape), a.dtype), carry)
    held = params if exact else jax.lax.stop_gradient(params)

    def loss_of_probes(probes):
        states, hs = cells.scan_states(cell, held, xs, carry, seq_lengths=seq_lengths, probes=probes, **options)
        return loss_of_hs(hs), states

    d_states, states = jax.grad(loss_of_probes, has_aux=True)(probes)  # dE/dx_k for every step k

    def back(state_before, x, d_after):  # d_after . dx_{k+1}/dx_k, for one step k -> k + 1
        _, vjp = jax.vjp(lambda s: cells.step(cell, params, s, x, **options)[0], state_before)
        return vjp(d_after)[0]

    before = jax.tree.map(lambda a: a[:-1], states)
    after = jax.tree.map(lambda a: a[1:], d_states)
    pulled = jax.vmap(back)(before, xs[1:], after)
    d_norm2, pulled_norm2 = _squared_norms(after), _squared_norms(pulled)  # (T - 1, B)
    lengths = jnp.full((B,), T) if seq_lengths is None else jnp.asarray(seq_lengths)
    valid = (jnp.arange(1, T)[:, None] < lengths[None, :]) & (d_norm2 > 0)
    ratio = jnp.sqrt(pulled_norm2 + 1e-30) / jnp.sqrt(jnp.where(valid, d_norm2, 1.0))
    return jnp.sum(jnp.where(valid, jnp.square(ratio - 1.0), 0.0)) / B


def model_omega(
    model: Any,
    inputs: Array,
    carries: Any,
    loss_of_outputs: Callable[[Array], Array],
    *,
    seq_lengths: Array | None = None,
    exact: bool = False,
) -> Array:
    """Omega of a one-layer, one-direction :class:`lstmlab.nn.RecurrentModel` on a batch (its ``inputs``
    batch-major, its ``carries`` or None); ``loss_of_outputs`` maps the model's outputs to the loss."""
    if model.rnn is None or len(model.rnn.layers) != 1 or model.rnn.bidirectional:
        raise ValueError("Omega needs a model of one recurrent layer in one direction")
    layer = model.rnn.layers[0]
    features = model.features(inputs)
    carry = carries[0] if carries is not None else layer.initial_carry(inputs.shape[0], features.dtype)
    return omega(
        layer.cell,
        layer.cell_params(),
        jnp.swapaxes(features, 0, 1),
        carry,
        lambda hs: loss_of_outputs(model.readout(hs, features, seq_lengths)),
        seq_lengths=seq_lengths,
        exact=exact,
        **layer.options,
    )
