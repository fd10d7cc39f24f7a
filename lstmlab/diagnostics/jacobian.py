"""Singular values of the state-to-state Jacobian ``ds_T / ds_{T-k}`` along real trajectories.

By the chain rule ``dL/ds_{T-k} = dL/ds_T . ds_T/ds_{T-k}`` and ``ds_T/ds_{T-k} = J_T J_{T-1} ... J_{T-k+1}``
with the one-step Jacobians ``J_t = ds_t/ds_{t-1}`` (Pascanu, Mikolov & Bengio 2013, "On the difficulty of
training recurrent neural networks"). The largest singular value of that product bounds how much a
gradient can grow or shrink over k steps: it decays like rho^k when gradients vanish and grows when they
explode.

Each one-step Jacobian is taken with ``jax.jacfwd`` at the states the layer actually visits on ``xs``
(one S x S matrix per step and example, S the state size), the products are accumulated from the last
step backwards, and each product is decomposed by ``jnp.linalg.svd``. The cost is T*B*S forward steps
plus T*B SVDs of S x S matrices: cheap for small hidden sizes.

``state`` chooses the state:

* ``"full"``: the whole carry, flattened per example: ``(h, c)`` (S = 2H) for the LSTM family
  (``(h, c, gates)``, S = 5H, for variant FGR), ``h`` (S = H) for GRU and RNN.
* ``"h"``: only ``h``: the (H, H) block ``dh_T/dh_{T-k}`` of the full product, i.e. the partial
  derivative that holds the other parts of the state at step T-k (the LSTM cell state c) fixed.

For GRU and RNN the two are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lstmlab import cells
from lstmlab.diagnostics.gradnorm import LayerSpec, as_layers, check_layer_inputs, initial_carries, run_layer

Array = jax.Array
Carry = Any
STATES = ("full", "h")


def _one_step_jacobians(
    cell: str, params: dict[str, Array], options: dict[str, Any], xs: Array, previous: Carry
) -> Array:
    """(T, B, S, S): ``ds_t/ds_{t-1}`` for each step t at the states ``previous`` (leading T, B axes)."""
    template = jax.tree.map(lambda a: a[0, 0], previous)
    _, unravel = ravel_pytree(template)

    def step_flat(state: Array, x: Array) -> Array:
        carry = jax.tree.map(lambda a: a[None], unravel(state))
        new, _ = cells.step(cell, params, carry, x[None], **options)
        new = jax.tree.map(lambda n, o: n.astype(o.dtype)[0], new, carry)
        return ravel_pytree(new)[0]

    flat = jax.vmap(jax.vmap(lambda s: ravel_pytree(s)[0]))(previous)  # (T, B, S)
    return jax.vmap(jax.vmap(jax.jacfwd(step_flat)))(flat, xs)


def jacobian_products(jacobians: Array, max_distance: int | None = None) -> Array:
    """(T, B, S, S) one-step Jacobians -> (K, B, S, S) products ``J_T ... J_{T-k+1}`` for k = 1..K."""
    T, B, S, _ = jacobians.shape
    K = T if max_distance is None else max_distance
    eye = jnp.broadcast_to(jnp.eye(S, dtype=jacobians.dtype), (B, S, S))

    def accumulate(product, jacobian):
        product = product @ jacobian
        return product, product

    _, products = jax.lax.scan(accumulate, eye, jacobians[::-1][:K])
    return products


def state_jacobian_spectra(
    layers: Sequence[LayerSpec],
    xs: Array,
    *,
    state: str = "full",
    carries: Sequence[Carry] | None = None,
    max_distance: int | None = None,
) -> list[Array]:
    """Singular values of ``ds_T/ds_{T-k}`` for k = 1..K, for every layer of a stack.

    Args:
      layers: one ``(cell, params, options)`` entry per layer, as for
        :func:`lstmlab.diagnostics.state_grad_norms`; each layer runs on the outputs of the one below.
      xs: (T, B, D) time-major inputs of the bottom layer (all sequences full length).
      state: ``"full"`` or ``"h"`` (see the module docstring).
      carries: initial carry per layer; zeros by default. s_0 is this carry, s_t the state after step t.
      max_distance: K, the largest k (1 <= K <= T); defaults to T (back to the initial carry).

    Returns:
      One (K, B, S) array per layer: row k-1 holds the singular values of ``ds_T/ds_{T-k}`` for each
      example, in descending order (so ``[..., 0]`` is the largest). Dimensionless (state per state).
    """
    if state not in STATES:
        raise ValueError(f"state={state!r} is not a Jacobian state; valid: {', '.join(STATES)}")
    specs = as_layers(layers)
    xs = jnp.asarray(xs)
    check_layer_inputs(specs, xs)
    T, B, _ = xs.shape
    if max_distance is not None and not 1 <= max_distance <= T:
        raise ValueError(f"max_distance={max_distance} must be between 1 and T={T}")
    if carries is None:
        carries = initial_carries(specs, B, xs.dtype)
    if len(carries) != len(specs):
        raise ValueError(f"got {len(carries)} carries for {len(specs)} layers")

    structure = tuple((cell, tuple(sorted(options.items()))) for cell, _, options in specs)
    return _spectra(
        structure, [params for _, params, _ in specs], xs, list(carries), state=state, max_distance=max_distance
    )


@partial(jax.jit, static_argnames=("structure", "state", "max_distance"))
def _spectra(
    structure: tuple, params_list: list, xs: Array, carries: list, *, state: str, max_distance: int | None
) -> list[Array]:
    spectra = []
    inputs = xs
    for (cell, options), params, carry in zip(structure, params_list, carries):
        options = dict(options)
        states, outputs = run_layer(cell, params, options, inputs, carry)
        previous = jax.tree.map(lambda c, s: jnp.concatenate([c[None], s[:-1]]), carry, states)
        products = jacobian_products(_one_step_jacobians(cell, params, options, inputs, previous), max_distance)
        if state == "h":
            H = cells.sizes(cell, params, **options)[1]  # h comes first in every flattened carry
            products = products[..., :H, :H]
        spectra.append(jnp.linalg.svd(products, compute_uv=False))
        inputs = outputs
    return spectra
