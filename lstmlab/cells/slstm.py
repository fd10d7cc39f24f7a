"""The sLSTM of xLSTM (Beck, Poeppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter &
Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory", Section 2.2).

With ``x_t`` (B, D), the previous output ``h`` (B, H) and ``H = num_heads * d``::

    [i~, f~, z~, o~] = x_t @ w_i + b + R(h)             pre-activations (B, 4H), gate order i, f, z, o
    R(h): head k's d units of h times w_h[k] (d, 4d)    block-diagonal recurrent weights, one block per head
    z_t = tanh(z~),  o_t = sigmoid(o~)
    i_t = exp(i~),   f_t = sigmoid(f~) or exp(f~)       exponential input gate; option ``forget``
    c_t = f_t c_{t-1} + i_t z_t                          cell state
    n_t = f_t n_{t-1} + i_t                              normaliser state
    h_t = o_t * c_t / n_t

Stabilised (the paper's stabiliser state m, per unit), with ``log f_t`` = ``-softplus(-f~)`` or ``f~``::

    m_t  = max(log f_t + m_{t-1}, i~)                    (m_t = i~ at a state's first step, where n = 0)
    i'_t = exp(i~ - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
    c_t = f'_t c_{t-1} + i'_t z_t,  n_t = f'_t n_{t-1} + i'_t

c and n are then the unstabilised states times exp(-m_t), so ``h_t`` is unchanged. The carry is
``SLSTMState(h, c, n, m)``, each (B, H); c, n and m are kept in at least float32.

Parameters: ``w_i`` (D, 4H), ``w_h`` (num_heads, H/num_heads, 4H/num_heads), each head's block with
its gates concatenated as [i, f, z, o], and ``b`` (4H,). Initialisation (:mod:`lstmlab.cells.init`):
input weights per gate block, each head's recurrent (d, d) gate block orthogonal times
``recurrent_scale``, the forget bias ``forget_bias`` (or chrono, the input-gate bias then its negative).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell

Array = jax.Array
Params = dict[str, Array]

FORGET_GATES = ("sigmoid", "exp")


class SLSTMState(NamedTuple):
    h: Array
    c: Array
    n: Array
    m: Array


def check_heads(hidden_size: int, num_heads: int) -> None:
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")


def check_num_heads(num_heads: Any) -> int:
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads={num_heads!r} must be an integer >= 1")
    return num_heads


def log_forget(f_pre: Array, forget: str) -> Array:
    """``log f``: ``log sigmoid(f~)`` or ``f~`` for the exponential forget gate."""
    return -jax.nn.softplus(-f_pre) if forget == "sigmoid" else f_pre


def recurrent(h: Array, w_h: Array) -> Array:
    """R(h): (B, H) times the block-diagonal ``w_h`` (NH, d, 4d) -> (B, 4H), gates [i, f, z, o] of H each."""
    NH, d, _ = w_h.shape
    r = jnp.einsum("bkd,kde->bke", h.reshape(h.shape[0], NH, d), w_h)  # (B, NH, 4d)
    return r.reshape(h.shape[0], NH, 4, d).transpose(0, 2, 1, 3).reshape(h.shape[0], 4 * NH * d)


class SLSTM(Cell):
    """The sLSTM; options ``num_heads`` (default 1) and ``forget`` (``sigmoid``, default, or ``exp``)."""

    num_gates = 4
    input_bias = "b"
    options = {"num_heads": 1, "forget": "sigmoid"}

    def check_options(self, num_heads: int = 1, forget: str = "sigmoid") -> dict[str, Any]:
        if forget not in FORGET_GATES:
            raise ValueError(f"forget={forget!r} is not a forget gate; valid: {', '.join(FORGET_GATES)}")
        return {"num_heads": check_num_heads(num_heads), "forget": forget}

    def param_shapes(self, num_heads: int = 1, **options: Any) -> dict[str, tuple[str, ...]]:
        heads = f"/{num_heads}" if num_heads > 1 else ""
        return {"w_i": ("D", "4H"), "w_h": (str(num_heads), f"H{heads}", f"4H{heads}"), "b": ("4H",)}

    def init(
        self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, *, num_heads: int = 1, **options
    ) -> Params:
        check_heads(hidden_size, num_heads)
        H, d = hidden_size, hidden_size // num_heads
        k_i, k_h = jax.random.split(key)
        w_h = jnp.stack(
            [_init.recurrent_weights(k, d, 4, how.recurrent_scale, how.dtype) for k in jax.random.split(k_h, num_heads)]
        )
        b = jnp.zeros((4 * H,), how.dtype)
        if how.chrono_tmax > 0:
            bias = _init.chrono_bias(key, H, how.chrono_tmax, how.dtype)
            b = b.at[H : 2 * H].set(bias).at[:H].set(-bias)
        else:
            b = b.at[H : 2 * H].set(how.forget_bias)
        return {"w_i": _init.input_weights(k_i, input_size, H, 4, how.input_init, how.dtype), "w_h": w_h, "b": b}

    def initial_carry(self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32, **options: Any) -> SLSTMState:
        state = jnp.promote_types(dtype, jnp.float32)
        zeros = jnp.zeros((batch_size, hidden_size), state)
        return SLSTMState(jnp.zeros((batch_size, hidden_size), dtype), zeros, zeros, zeros)

    def output(self, carry: SLSTMState) -> Array:
        return carry.h

    def gates(self, params: Params, xp: Array, carry: SLSTMState, *, forget: str = "sigmoid", **options) -> dict:
        """One step: the gates ``i``, ``f`` (stabilised, as applied), ``z``, ``o`` and the new ``c``,
        ``n``, ``m``, ``h``, each (B, H)."""
        pre = (xp + recurrent(carry.h, params["w_h"])).astype(carry.c.dtype)
        i_pre, f_pre, z_pre, o_pre = jnp.split(pre, 4, axis=-1)
        log_f = log_forget(f_pre, forget)
        # a state's first step (n = 0, so c = 0 too): m_{t-1} such that m_t = i~ and f' = 1
        m_prev = jnp.where(carry.n == 0, i_pre - log_f, carry.m)
        m = jnp.maximum(log_f + m_prev, i_pre)
        i, f = jnp.exp(i_pre - m), jnp.exp(log_f + m_prev - m)
        z, o = jnp.tanh(z_pre), jax.nn.sigmoid(o_pre)
        c = f * carry.c + i * z
        n = f * carry.n + i
        return {"i": i, "f": f, "z": z, "o": o, "c": c, "n": n, "m": m, "h": (o * c / n).astype(carry.h.dtype)}

    def forward(self, params: Params, xp: Array, carry: SLSTMState, **options: Any) -> tuple[SLSTMState, None]:
        a = self.gates(params, xp, carry, **options)
        return SLSTMState(a["h"], a["c"], a["n"], a["m"]), None


CELL = SLSTM()
