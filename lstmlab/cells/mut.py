"""MUT1, MUT2 and MUT3, the three best architectures of the search of Jozefowicz, Zaremba & Sutskever
(2015, "An empirical exploration of recurrent network architectures", ICML; listed unnumbered in the
paper's results section beside the LSTM and the GRU).

The paper writes each as a GRU-like update ``h_t = n * z + h_{t-1} * (1 - z)``: z is the gate that
takes the candidate n, and ``1 - z`` keeps the old state. With ``x_t`` (B, D) and ``h = h_{t-1}``::

    MUT1:  z = sigmoid(W_xz x_t + b_z)
           r = sigmoid(W_xr x_t + W_hr h + b_r)
           n = tanh(W_hh (r * h) + tanh(x_t) + b_h)

    MUT2:  z = sigmoid(W_xz x_t + W_hz h + b_z)
           r = sigmoid(x_t + W_hr h + b_r)
           n = tanh(W_hh (r * h) + W_xh x_t + b_h)

    MUT3:  z = sigmoid(W_xz x_t + W_hz tanh(h) + b_z)
           r = sigmoid(W_xr x_t + W_hr h + b_r)
           n = tanh(W_hh (r * h) + W_xh x_t + b_h)

           h_t = n * z + h * (1 - z)

MUT1's ``tanh(x_t)`` and MUT2's ``x_t`` add the input itself to an H-vector, which presumes D = H.
A cell's step here sees only ``x_t @ w_i + b``, so that input enters through a (D, H) block ``w_p`` of
``w_i`` with its bias ``b_p``, drawn as the identity and zero when D = H (the paper's cell, at
initialisation) and like any input block otherwise; training updates it like the other weights.

Parameters, gates concatenated on the last axis, input blocks in the order [z, r, third]:

* MUT1: ``w_i`` (D, 3H) as [W_xz, W_xr, w_p], ``b`` (3H,) as [b_z, b_r, b_p], ``w_h`` (H, 2H) as
  [W_hr, W_hh], ``b_h`` (H,), so the candidate is ``tanh((r * h) @ W_hh + tanh(x_t @ w_p + b_p) + b_h)``.
* MUT2: ``w_i`` (D, 3H) as [W_xz, w_p, W_xh], ``b`` (3H,) as [b_z, b_r, b_h] (b_r is w_p's bias),
  ``w_h`` (H, 3H) as [W_hz, W_hr, W_hh].
* MUT3: ``w_i`` (D, 3H) as [W_xz, W_xr, W_xh], ``b`` (3H,) as [b_z, b_r, b_h], ``w_h`` (H, 3H) as
  [W_hz, W_hr, W_hh].

The carry is ``h`` (B, H). Initialisation (:mod:`lstmlab.cells.init`): input blocks by ``input_init``,
recurrent blocks orthogonal times ``recurrent_scale``, biases zero except ``b_z = -forget_bias``, so the
gate that keeps the old state, ``1 - z``, starts at ``sigmoid(forget_bias)`` as the GRU's update gate
does (with ``chrono_tmax``, ``b_z`` is the negative of the chrono draw).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell

Array = jax.Array
Params = dict[str, Array]


class MUT(Cell):
    """One of MUT1, MUT2, MUT3 (``which`` = 1, 2, 3); no options."""

    num_gates = 3
    input_bias = "b"

    def __init__(self, which: int) -> None:
        if which not in (1, 2, 3):
            raise ValueError(f"which={which!r} is not a mutant; valid: 1, 2, 3")
        self.which = which

    def param_shapes(self, **options: Any) -> dict[str, tuple[str, ...]]:
        if self.which == 1:
            return {"w_i": ("D", "3H"), "w_h": ("H", "2H"), "b": ("3H",), "b_h": ("H",)}
        return {"w_i": ("D", "3H"), "w_h": ("H", "3H"), "b": ("3H",)}

    def init(self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, **options: Any) -> Params:
        H, dtype = hidden_size, how.dtype
        k_i, k_h = jax.random.split(key)
        w_i = _init.input_weights(k_i, input_size, H, 3, how.input_init, dtype)
        identity_block = {1: 2, 2: 1}.get(self.which)  # where x_t itself enters
        if identity_block is not None and input_size == H:
            w_i = w_i.at[:, identity_block * H : (identity_block + 1) * H].set(jnp.eye(H, dtype=dtype))
        keep = _init.chrono_bias(key, H, how.chrono_tmax, dtype) if how.chrono_tmax else how.forget_bias
        params = {
            "w_i": w_i,
            "w_h": _init.recurrent_weights(k_h, H, 2 if self.which == 1 else 3, how.recurrent_scale, dtype),
            "b": jnp.zeros((3 * H,), dtype).at[:H].set(-keep),
        }
        if self.which == 1:
            params["b_h"] = jnp.zeros((H,), dtype)
        return params

    def gates(self, params: Params, xp: Array, h: Array, **options: Any) -> dict[str, Array]:
        """One step from ``xp`` = x_t @ w_i + b (B, 3H): the gates ``z`` and ``r``, the candidate ``n``
        and the new state ``h``, each (B, H)."""
        H = h.shape[-1]
        a_z, a_r, a_3 = jnp.split(xp, 3, axis=-1)
        w_h = params["w_h"]
        if self.which == 1:
            z = jax.nn.sigmoid(a_z)
            r = jax.nn.sigmoid(a_r + h @ w_h[:, :H])
            n = jnp.tanh((r * h) @ w_h[:, H:] + jnp.tanh(a_3) + params["b_h"])
        else:
            u_z = (jnp.tanh(h) if self.which == 3 else h) @ w_h[:, :H]
            z = jax.nn.sigmoid(a_z + u_z)
            r = jax.nn.sigmoid(a_r + h @ w_h[:, H : 2 * H])
            n = jnp.tanh((r * h) @ w_h[:, 2 * H :] + a_3)
        return {"z": z, "r": r, "n": n, "h": (h + z * (n - h)).astype(h.dtype)}  # = n z + h (1 - z)

    def forward(self, params: Params, xp: Array, h: Array, **options: Any) -> tuple[Array, None]:
        return self.gates(params, xp, h)["h"], None


MUT1, MUT2, MUT3 = MUT(1), MUT(2), MUT(3)
