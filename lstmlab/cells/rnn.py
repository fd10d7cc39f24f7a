"""Elman RNN (Elman 1990, "Finding structure in time").

One step, with ``x_t`` (B, D) and previous state ``h`` (B, H)::

    h_t = activation(x_t @ w_i + b + h @ w_h)

``activation`` is one of ``tanh`` (default), ``relu`` or ``identity``; ``identity`` gives the linear RNN
whose gradients are exactly powers of ``w_h`` (the gradient studies use it). Parameters ``w_i`` (D, H),
``w_h`` (H, H), ``b`` (H,). The carry is ``h`` (B, H).

Backward: ``dz = dh_t * activation'`` (written in terms of the output: ``1 - h_t^2`` for tanh,
``h_t > 0`` for relu, 1 for identity), ``dh_{t-1} = dz @ w_h^T``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell, matmul_tn

Array = jax.Array
Params = dict[str, Array]

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "identity": lambda a: a}


def activation_grad(activation: str, h: Array) -> Array:
    """d activation / d pre-activation, written in terms of the output ``h``."""
    if activation == "tanh":
        return 1 - h * h
    if activation == "relu":
        return (h > 0).astype(h.dtype)
    return jnp.ones_like(h)


class RNN(Cell):
    """The Elman RNN; option ``activation`` (default ``tanh``)."""

    num_gates = 1
    input_bias = "b"
    options = {"activation": "tanh"}

    def check_options(self, activation: str = "tanh") -> dict[str, Any]:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not an RNN activation; valid: {', '.join(ACTIVATIONS)}")
        return {"activation": activation}

    def init(
        self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, *, activation: str = "tanh"
    ) -> Params:
        """``how.forget_bias`` and ``how.chrono_tmax`` are ignored (an RNN has no gate)."""
        k_i, k_h = jax.random.split(key)
        return {
            "w_i": _init.input_weights(k_i, input_size, hidden_size, 1, how.input_init, how.dtype),
            "w_h": _init.recurrent_weights(k_h, hidden_size, 1, how.recurrent_scale, how.dtype),
            "b": jnp.zeros((hidden_size,), how.dtype),
        }

    def initial_carry(
        self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32, *, activation: str = "tanh"
    ) -> Array:
        return jnp.zeros((batch_size, hidden_size), dtype)

    def gates(self, params: Params, xp: Array, h: Array, *, activation: str = "tanh") -> dict[str, Array]:
        """One step from ``xp`` = x_t @ w_i + b (B, H): the new state ``h`` (B, H), the RNN's only
        activation (it has no gates)."""
        return {"h": ACTIVATIONS[activation](xp + h @ params["w_h"]).astype(h.dtype)}

    def forward(self, params: Params, xp: Array, h: Array, *, activation: str = "tanh") -> tuple[Array, None]:
        """One step (:meth:`gates`); nothing saved (the backward uses the output)."""
        return self.gates(params, xp, h, activation=activation)["h"], None

    def backward(
        self,
        params: Params,
        saved: None,
        h_prev: Array,
        h: Array,
        state: None,
        d_carry: Array,
        dh: Array,
        *,
        activation: str = "tanh",
    ) -> tuple[Array, Array, None]:
        dz = ((d_carry + dh) * activation_grad(activation, h)).astype(dh.dtype)
        return dz, (dz @ params["w_h.T"]).astype(d_carry.dtype), None

    def grads(
        self, params: Params, dzs: Array, saveds: None, h_prevs: Array, final_carry: Array, *, activation: str = "tanh"
    ) -> tuple[Array, Params]:
        return dzs, {"w_h": matmul_tn(h_prevs, dzs)}


CELL = RNN()
