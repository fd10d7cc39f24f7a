"""Elman RNN (Elman 1990, "Finding structure in time").

One step, with ``x_t`` (B, D) and previous state ``h`` (B, H)::

    h_t = activation(x_t @ w_i + b + h @ w_h)

``activation`` is one of ``tanh`` (default), ``relu`` or ``identity``; ``identity`` gives the linear RNN
whose gradients are exactly powers of ``w_h`` (the gradient studies use it). Parameters ``w_i`` (D, H),
``w_h`` (H, H), ``b`` (H,). The carry is ``h`` (B, H).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init

Array = jax.Array

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "identity": lambda a: a}


def check_options(name: str, activation: str = "tanh") -> dict:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} is not an RNN activation; valid: {', '.join(ACTIVATIONS)}"
        )
    return {"activation": activation}


def init(name: str, key: Array, input_size: int, hidden_size: int, *, activation: str = "tanh",
         input_init: str = "glorot_uniform", recurrent_scale: float = 1.0, forget_bias: float = 1.0,
         chrono_tmax: float = 0.0, dtype=jnp.float32) -> dict[str, Array]:
    """``forget_bias`` and ``chrono_tmax`` are accepted for a uniform interface and ignored (an RNN has
    no gate)."""
    k_i, k_h = jax.random.split(key)
    return {
        "w_i": _init.input_weights(k_i, input_size, hidden_size, 1, input_init, dtype),
        "w_h": _init.recurrent_weights(k_h, hidden_size, 1, recurrent_scale, dtype),
        "b": jnp.zeros((hidden_size,), dtype),
    }


def initial_carry(name: str, batch_size: int, hidden_size: int, dtype=jnp.float32) -> Array:
    return jnp.zeros((batch_size, hidden_size), dtype)


def project(params: dict[str, Array], xs: Array) -> Array:
    """``xs @ w_i + b`` for all time steps at once: (..., D) -> (..., H)."""
    return xs @ params["w_i"] + params["b"]


def step(name: str, params: dict[str, Array], h: Array, xp: Array, *,
         activation: str = "tanh") -> Array:
    """One time step from the projected input ``xp`` (B, H). Returns the new ``h`` (B, H)."""
    return ACTIVATIONS[activation](xp + h @ params["w_h"]).astype(h.dtype)


def output(h: Array) -> Array:
    return h
