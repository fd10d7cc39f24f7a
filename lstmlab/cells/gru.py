"""GRU (Cho et al. 2014, "Learning phrase representations using RNN encoder-decoder for statistical
machine translation"), in the reset-after form of PyTorch's ``nn.GRU`` and cuDNN by default.

One step, with ``x_t`` (B, D), previous state ``h`` (B, H), and gates in the order r, z, n::

    [a_r, a_z, a_n] = x_t @ w_i + b_i              input part, (B, H) each
    [u_r, u_z, u_n] = h @ w_h + b_h                recurrent part, (B, H) each
    r = sigmoid(a_r + u_r)                         reset gate
    z = sigmoid(a_z + u_z)                         update gate (the gate that keeps the old state)
    n = tanh(a_n + r * u_n)                        candidate; the reset applies *after* w_hn
    h_t = (1 - z) * n + z * h

``reset_after=False`` is the original form of Cho et al. (Keras's ``reset_after=False``), with the same
parameters; only the candidate changes, the reset applying to ``h`` *before* ``w_hn``::

    u_n = (r * h) @ w_hn + b_hn                    w_hn = w_h[:, 2H:], b_hn = b_h[2H:]
    n = tanh(a_n + u_n)

Parameters ``w_i`` (D, 3H), ``w_h`` (H, 3H), ``b_i`` (3H,), ``b_h`` (3H,). The carry is ``h`` (B, H).

The backward pass of one step, with ``dh_t`` the cotangent of h_t and ``dn = dh_t (1 - z)(1 - n^2)``
(the gradient of n's pre-activation)::

    du_z = dh_t (h - n) z (1 - z)
    reset after:   du_r = dn u_n r (1 - r),        du_n = dn r,     dh_{t-1} = dh_t z + du @ w_h^T
    reset before:  dq = dn @ w_hn^T (q = r * h),  du_r = dq h r (1 - r),
                   dh_{t-1} = dh_t z + dq r + [du_r, du_z] @ w_h[:, :2H]^T

and the input part gets ``[du_r, du_z, dn]``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell, matmul_tn, sum_tb

Array = jax.Array
Params = dict[str, Array]


class GRU(Cell):
    """The GRU; option ``reset_after`` (default True)."""

    num_gates = 3
    input_bias = "b_i"
    options = {"reset_after": True}

    def check_options(self, reset_after: bool = True) -> dict[str, Any]:
        if not isinstance(reset_after, bool):
            raise ValueError(f"reset_after={reset_after!r} must be True or False")
        return {"reset_after": bool(reset_after)}

    def param_shapes(self, reset_after: bool = True) -> dict[str, tuple[str, ...]]:
        return {"w_i": ("D", "3H"), "w_h": ("H", "3H"), "b_i": ("3H",), "b_h": ("3H",)}

    def init(
        self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, *, reset_after: bool = True
    ) -> Params:
        """``how.forget_bias`` initialises the update-gate bias ``b_i[H:2H]`` (z keeps the old state);
        with ``how.chrono_tmax`` that bias is drawn by chrono initialisation instead."""
        H, dtype = hidden_size, how.dtype
        k_i, k_h = jax.random.split(key)
        z_bias = _init.chrono_bias(key, H, how.chrono_tmax, dtype) if how.chrono_tmax else how.forget_bias
        return {
            "w_i": _init.input_weights(k_i, input_size, H, 3, how.input_init, dtype),
            "w_h": _init.recurrent_weights(k_h, H, 3, how.recurrent_scale, dtype),
            "b_i": jnp.zeros((3 * H,), dtype).at[H : 2 * H].set(z_bias),
            "b_h": jnp.zeros((3 * H,), dtype),
        }

    def initial_carry(
        self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32, *, reset_after: bool = True
    ) -> Array:
        return jnp.zeros((batch_size, hidden_size), dtype)

    def gates(self, params: Params, xp: Array, h: Array, *, reset_after: bool = True) -> dict[str, Array]:
        """The activations of one step from ``xp`` = x_t @ w_i + b_i (B, 3H), by name: the reset gate
        ``r`` and update gate ``z`` (sigmoids), the candidate ``n``, the recurrent part ``u_n`` of n's
        pre-activation and the new state ``h``, each (B, H). :meth:`forward` is this step."""
        H = h.shape[-1]
        a_r, a_z, a_n = jnp.split(xp, 3, axis=-1)
        w_h, b_h = params["w_h"], params["b_h"]
        if reset_after:
            u_r, u_z, u_n = jnp.split(h @ w_h + b_h, 3, axis=-1)
            r = jax.nn.sigmoid(a_r + u_r)
        else:
            u_r, u_z = jnp.split(h @ w_h[:, : 2 * H] + b_h[: 2 * H], 2, axis=-1)
            r = jax.nn.sigmoid(a_r + u_r)
            u_n = (r * h) @ w_h[:, 2 * H :] + b_h[2 * H :]
        z = jax.nn.sigmoid(a_z + u_z)
        n = jnp.tanh(a_n + r * u_n) if reset_after else jnp.tanh(a_n + u_n)
        h_new = (n + z * (h - n)).astype(h.dtype)  # = (1 - z) * n + z * h, one multiply fewer
        return {"r": r, "z": z, "n": n, "u_n": u_n, "h": h_new}

    def forward(self, params: Params, xp: Array, h: Array, *, reset_after: bool = True) -> tuple[Array, tuple]:
        """One step from ``xp`` = x_t @ w_i + b_i (B, 3H) (:meth:`gates`). ``saved`` = (r, z, n, u_n), each
        (B, H)."""
        a = self.gates(params, xp, h, reset_after=reset_after)
        return a["h"], (a["r"], a["z"], a["n"], a["u_n"])

    def backward(
        self,
        params: Params,
        saved: tuple,
        h_prev: Array,
        h: Array,
        state: None,
        d_carry: Array,
        dh: Array,
        *,
        reset_after: bool = True,
    ) -> tuple[tuple[Array, Array], Array, None]:
        """``dz`` = (du (B, 3H) or (B, 2H) reset-before: d loss / d(h @ w_h + b_h) as used, dn (B, H))."""
        r, z, n, u_n = saved
        H = h_prev.shape[-1]
        w_h_t = params["w_h.T"]
        dh_t = d_carry + dh
        du_z = dh_t * (h_prev - n) * z * (1 - z)
        dn = dh_t * (1 - z) * (1 - n * n)
        if reset_after:
            du_r = dn * u_n * r * (1 - r)
            du = jnp.concatenate([du_r, du_z, dn * r], axis=-1).astype(dh.dtype)
            dh_prev = dh_t * z + du @ w_h_t
        else:
            dq = dn @ w_h_t[2 * H :]
            du_r = dq * h_prev * r * (1 - r)
            du = jnp.concatenate([du_r, du_z], axis=-1).astype(dh.dtype)
            dh_prev = dh_t * z + dq * r + du @ w_h_t[: 2 * H]
        return (du, dn.astype(dh.dtype)), dh_prev.astype(d_carry.dtype), None

    def grads(
        self,
        params: Params,
        dzs: tuple[Array, Array],
        saveds: tuple,
        h_prevs: Array,
        final_carry: Array,
        *,
        reset_after: bool = True,
    ) -> tuple[Array, Params]:
        dus, dns = dzs
        H = h_prevs.shape[-1]
        dxp = jnp.concatenate([dus[..., : 2 * H], dns], axis=-1)
        if reset_after:
            return dxp, {"w_h": matmul_tn(h_prevs, dus), "b_h": sum_tb(dus)}
        rs = saveds[0]
        w_h = jnp.concatenate([matmul_tn(h_prevs, dus), matmul_tn(rs * h_prevs, dns)], axis=-1)
        return dxp, {"w_h": w_h, "b_h": sum_tb(dxp)}


CELL = GRU()
