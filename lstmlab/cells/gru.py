"""GRU in the reset-after form (Cho et al. 2014, "Learning phrase representations using RNN
encoder-decoder for statistical machine translation"), as in PyTorch's ``nn.GRU`` and cuDNN.

One step, with ``x_t`` (B, D), previous state ``h`` (B, H), and gates in the order r, z, n::

    [a_r, a_z, a_n] = x_t @ w_i + b_i              input part, (B, H) each
    [u_r, u_z, u_n] = h @ w_h + b_h                recurrent part, (B, H) each
    r = sigmoid(a_r + u_r)                         reset gate
    z = sigmoid(a_z + u_z)                         update gate (the gate that keeps the old state)
    n = tanh(a_n + r * u_n)                        candidate; the reset applies *after* w_hn
    h_t = (1 - z) * n + z * h

Parameters ``w_i`` (D, 3H), ``w_h`` (H, 3H), ``b_i`` (3H,), ``b_h`` (3H,). The carry is ``h`` (B, H).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init

Array = jax.Array


def check_options(name: str) -> dict:
    return {}


def init(name: str, key: Array, input_size: int, hidden_size: int, *,
         input_init: str = "glorot_uniform", recurrent_scale: float = 1.0, forget_bias: float = 1.0,
         chrono_tmax: float = 0.0, dtype=jnp.float32) -> dict[str, Array]:
    """``forget_bias`` initialises the update-gate bias ``b_i[H:2H]`` (z keeps the old state); with
    ``chrono_tmax`` that bias is drawn by chrono initialisation instead (:mod:`lstmlab.cells.init`)."""
    H = hidden_size
    k_i, k_h = jax.random.split(key)
    z_bias = _init.chrono_bias(key, H, chrono_tmax, dtype) if chrono_tmax else forget_bias
    return {
        "w_i": _init.input_weights(k_i, input_size, H, 3, input_init, dtype),
        "w_h": _init.recurrent_weights(k_h, H, 3, recurrent_scale, dtype),
        "b_i": jnp.zeros((3 * H,), dtype).at[H:2 * H].set(z_bias),
        "b_h": jnp.zeros((3 * H,), dtype),
    }


def initial_carry(name: str, batch_size: int, hidden_size: int, dtype=jnp.float32) -> Array:
    return jnp.zeros((batch_size, hidden_size), dtype)


def project(params: dict[str, Array], xs: Array) -> Array:
    """``xs @ w_i + b_i`` for all time steps at once: (..., D) -> (..., 3H)."""
    return xs @ params["w_i"] + params["b_i"]


def step(name: str, params: dict[str, Array], h: Array, xp: Array) -> Array:
    """One time step from the projected input ``xp`` (B, 3H). Returns the new ``h`` (B, H)."""
    a_r, a_z, a_n = jnp.split(xp, 3, axis=-1)
    u_r, u_z, u_n = jnp.split(h @ params["w_h"] + params["b_h"], 3, axis=-1)
    r = jax.nn.sigmoid(a_r + u_r)
    z = jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    return ((1.0 - z) * n + z * h).astype(h.dtype)


def output(h: Array) -> Array:
    return h
