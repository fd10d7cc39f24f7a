"""Fast paths behind ``cells.scan(..., impl="fast")``: recurrences with a hand-written backward pass.

Autodiff through ``lax.scan`` (``impl="reference"``) is correct but slow on CPU: its backward loop
redoes bookkeeping for every intermediate and accumulates weight gradients one small (B, H) x (B, 4H)
product per step. Here each recurrence is a ``jax.custom_vjp`` built as follows, for the LSTM with
gates i, f, g, o (GRU and RNN alike)::

    forward loop over t:                  z_t = x_t @ w_i + b + h_{t-1} @ w_h, gate math;
                                          saves i, f, g, o and c_{t-1}
    backward loop over t (reversed):      carries only (dh, dc); per step the elementwise gate derivatives
                                          dz_t (B, 4H) and one matmul dh_{t-1} = dz_t @ w_h^T
    after the loop:                       dw_h = H_prev^T @ dZ and dw_i = X^T @ dZ, dX = dZ @ w_i^T, each
                                          one matmul over all T*B rows; d(bias), d(peepholes) are sums
                                          over time and batch.

The input projection is computed inside the forward loop, one (B, D) x (D, 4H) product per step, rather
than as one (T*B, D) x (D, 4H) matmul before it: measured on a 2-core AVX-512 CPU (jax 0.10.2), the
training step at B=64, T=128, D=128, H=512 took 23% less time this way (the (T, B, 4H) projected
inputs, 67 MB there, no longer go through memory, and their bias add is fused), and the same at the
smaller shapes. See ``scripts/bench.py`` for the benchmark and ``scripts/bench_notes.md`` for what else
was tried.

Covered: ``lstm`` and ``peephole`` with every variant except ``FGR``; ``gru``; ``rnn`` (every
activation). :func:`supports` says whether a cell has a kernel; ``cells.scan`` falls back to the
reference for the rest. The kernels support reverse-mode autodiff (``grad``, ``vjp``, ``jacrev``), ``jit``
and ``vmap``; forward mode (``jvp``, ``jacfwd``, ``hessian``) is not defined for a ``custom_vjp``, so use
``impl="reference"`` for it.

Right-padded batches (``seq_lengths``) follow the reference exactly: a finished sequence's carry stops
changing and its outputs are zero. The mask is a prefix in time (steps ``t < seq_lengths[b]``), which the
backward pass relies on: the h that entered a valid step t > 0 is the output of step t - 1.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmlab.cells import lstm as _lstm
from lstmlab.cells import rnn as _rnn
from lstmlab.cells.sequence import reverse_padded, time_mask

Array = jax.Array
Carry = Any


def supports(name: str, **options: Any) -> bool:
    """True if cell ``name`` with ``options`` (already validated) has a fast kernel."""
    if name in ("lstm", "peephole"):
        return options.get("variant", "vanilla") != "FGR"
    return name in ("gru", "rnn")


def scan(name: str, params: dict[str, Array], xs: Array, carry: Carry, *,
         seq_lengths: Array | None = None, reverse: bool = False, **options: Any) -> tuple[Carry, Array]:
    """The fast counterpart of the reference scan: same arguments, same results (up to rounding).

    ``xs`` (T, B, D), ``carry`` as from ``cells.initial_carry``; returns (final carry, hs (T, B, H)).
    Call only where :func:`supports` is True.
    """
    if reverse:
        xs = xs[::-1] if seq_lengths is None else reverse_padded(xs, seq_lengths)
    mask = None if seq_lengths is None else time_mask(xs.shape[0], jnp.asarray(seq_lengths))
    if name in ("lstm", "peephole"):
        spec = lstm_spec(name, options.get("variant", "vanilla"))
        peep = (params["p_i"], params["p_f"], params["p_o"]) if spec.peephole else None
        hs, h, c = _lstm_recurrence(spec, xs, params["w_i"], params["b"], params["w_h"], peep, carry.h,
                                    carry.c, mask)
        carry = _lstm.LSTMState(h, c)
    elif name == "gru":
        hs, carry = _gru_recurrence(xs, params["w_i"], params["b_i"], params["w_h"], params["b_h"], carry,
                                    mask)
    elif name == "rnn":
        hs, carry = _rnn_recurrence(options.get("activation", "tanh"), xs, params["w_i"], params["b"],
                                    params["w_h"], carry, mask)
    else:
        raise ValueError(f"cell={name!r} has no fast kernel; valid: lstm, peephole, gru, rnn")
    if reverse:
        hs = hs[::-1] if seq_lengths is None else reverse_padded(hs, seq_lengths)
    return carry, hs


# --------------------------------------------------------------------------------------------------
# Shared helpers

def _select(m: Array | None, new: Array, old: Array) -> Array:
    """``new`` where the (B,) mask ``m`` is set (or everywhere if there is no mask), else ``old``."""
    return new if m is None else jnp.where(m[:, None], new, old)


def _previous(first: Array, seq: Array) -> Array:
    """(T, B, ...) sequence of the values entering each step: ``first`` then ``seq[:-1]``."""
    return jnp.concatenate([first[None].astype(seq.dtype), seq[:-1]], axis=0)[:seq.shape[0]]


def _matmul_tn(a: Array, b: Array) -> Array:
    """sum over time and batch of a_t^T b_t: (T, B, M), (T, B, N) -> (M, N), as one 2-D matmul
    (measured 3-4% faster per training step than the equivalent einsum over two contracted axes)."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _zero_cotangent(mask: Array | None) -> Any:
    return None if mask is None else jnp.zeros(mask.shape, jax.dtypes.float0)


def _project(x_t: Array, w_i: Array, b: Array) -> Array:
    """Input projection of one step, x_t (B, D) -> (B, G*H), done inside the loop (see module doc)."""
    return x_t @ w_i + b


def _projection_grads(xs: Array, w_i: Array, dxp: Array) -> tuple[Array, Array, Array]:
    """Gradients of xp = xs @ w_i + b from dxp (T, B, G*H): (d xs, d w_i, d b), each one large op."""
    T, B, D = xs.shape
    dxp2 = dxp.reshape(T * B, -1)
    d_xs = (dxp2 @ w_i.T).reshape(T, B, D).astype(xs.dtype)
    d_w_i = (xs.reshape(T * B, D).T @ dxp2).astype(w_i.dtype)
    return d_xs, d_w_i, dxp2.sum(axis=0).astype(w_i.dtype)


# --------------------------------------------------------------------------------------------------
# LSTM family

class LSTMSpec(NamedTuple):
    """What a variant changes in the gate math; constant gates are skipped entirely."""

    peephole: bool
    input_gate: str         # "sigmoid" | "one" (NIG) | "coupled" (CIFG: i = 1 - f)
    forget_gate: str        # "sigmoid" | "one" (NFG)
    output_gate: str        # "sigmoid" | "one" (NOG)
    cell_input_tanh: bool   # False for NIAF (g = z_g)
    output_tanh: bool       # False for NOAF (h = o * c)


def lstm_spec(name: str, variant: str) -> LSTMSpec:
    """The gate structure of ``cell=name variant=variant`` (any variant but FGR)."""
    return LSTMSpec(
        peephole=_lstm.has_peepholes(name, variant),
        input_gate={"NIG": "one", "CIFG": "coupled"}.get(variant, "sigmoid"),
        forget_gate="one" if variant == "NFG" else "sigmoid",
        output_gate="one" if variant == "NOG" else "sigmoid",
        cell_input_tanh=variant != "NIAF",
        output_tanh=variant != "NOAF",
    )


def _lstm_gates(spec: LSTMSpec, peep, z: Array, c: Array):
    """Gate math of one step from z (B, 4H) and c_{t-1} (B, H).

    Returns (h_t, c_t, (i, f, g, o)); a gate fixed to one is None.
    """
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    if spec.peephole:
        p_i, p_f, p_o = peep
        z_i = z_i + p_i * c
        z_f = z_f + p_f * c
    f = jax.nn.sigmoid(z_f) if spec.forget_gate == "sigmoid" else None
    if spec.input_gate == "sigmoid":
        i = jax.nn.sigmoid(z_i)
    elif spec.input_gate == "coupled":
        i = 1.0 - (f if f is not None else jnp.ones_like(z_f))
    else:
        i = None
    g = jnp.tanh(z_g) if spec.cell_input_tanh else z_g
    kept = c if f is None else f.astype(c.dtype) * c
    c_new = kept + (g if i is None else i * g).astype(c.dtype)
    if spec.peephole:
        z_o = z_o + p_o * c_new
    o = jax.nn.sigmoid(z_o) if spec.output_gate == "sigmoid" else None
    tc = jnp.tanh(c_new) if spec.output_tanh else c_new
    h_new = tc if o is None else o * tc
    saved_i = i if spec.input_gate == "sigmoid" else None   # CIFG recomputes i = 1 - f
    return h_new, c_new, (saved_i, f, g, o)


def _lstm_forward(spec: LSTMSpec, xs, w_i, b, w_h, peep, h0, c0, mask, save: bool):
    def body(carry, inputs):
        h, c = carry
        x_t, m = inputs
        h_new, c_new, gates = _lstm_gates(spec, peep, _project(x_t, w_i, b) + h @ w_h, c)
        h_new = h_new.astype(h.dtype)
        y = h_new if m is None else jnp.where(m[:, None], h_new, 0)
        h, c_new = _select(m, h_new, h), _select(m, c_new, c)
        return (h, c_new), (y, (gates, c) if save else None)

    (h, c), (hs, saved) = jax.lax.scan(body, (h0, c0), (xs, mask))
    return hs, h, c, saved


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm_recurrence(spec: LSTMSpec, xs: Array, w_i: Array, b: Array, w_h: Array, peep, h0: Array,
                     c0: Array, mask: Array | None) -> tuple[Array, Array, Array]:
    """hs (T, B, H), final h and c (B, H) from inputs xs (T, B, D)."""
    hs, h, c, _ = _lstm_forward(spec, xs, w_i, b, w_h, peep, h0, c0, mask, save=False)
    return hs, h, c


def _lstm_recurrence_fwd(spec, xs, w_i, b, w_h, peep, h0, c0, mask):
    hs, h, c, (gates, c_prev) = _lstm_forward(spec, xs, w_i, b, w_h, peep, h0, c0, mask, save=True)
    return (hs, h, c), (xs, w_i, w_h, peep, h0, c, hs, gates, c_prev, mask)


def _lstm_recurrence_bwd(spec, residuals, cotangents):
    xs, w_i, w_h, peep, h0, c_final, hs, gates, c_prev_seq, mask = residuals
    d_hs, d_h, d_c = cotangents
    w_h_t = w_h.T
    dtype = hs.dtype

    def body(carry, inputs):
        dh, dc, c = carry                      # c: the cell state this step produced
        dy, (i, f, g, o), c_prev, m = inputs
        dh_new = dh + dy
        dc_new = dc
        if m is not None:
            dh_new = jnp.where(m[:, None], dh_new, 0)
            dc_new = jnp.where(m[:, None], dc, 0)
        dh_new = dh_new.astype(c.dtype)
        tc = jnp.tanh(c) if spec.output_tanh else c
        if o is None:
            d_zo, dtc = jnp.zeros_like(dh_new), dh_new
        else:
            d_zo, dtc = dh_new * tc * o * (1 - o), dh_new * o
        dc_t = dc_new + (dtc * (1 - tc * tc) if spec.output_tanh else dtc)
        if spec.peephole and o is not None:
            dc_t = dc_t + d_zo * peep[2]
        i_val = i if spec.input_gate == "sigmoid" else (1 - f if spec.input_gate == "coupled" else None)
        d_g = dc_t if i_val is None else dc_t * i_val
        d_zg = d_g * (1 - g * g) if spec.cell_input_tanh else d_g
        d_i = dc_t * g
        d_f = dc_t * c_prev
        if spec.input_gate == "coupled":
            d_f = d_f - d_i
        d_zi = d_i * i * (1 - i) if spec.input_gate == "sigmoid" else jnp.zeros_like(d_i)
        d_zf = d_f * f * (1 - f) if f is not None else jnp.zeros_like(d_f)
        dc_prev = dc_t if f is None else dc_t * f
        if spec.peephole:
            dc_prev = dc_prev + d_zi * peep[0] + d_zf * peep[1]
        dz = jnp.concatenate([d_zi, d_zf, d_zg, d_zo], axis=-1).astype(dtype)
        dh_prev = (dz @ w_h_t).astype(dh.dtype)
        if m is not None:
            dh_prev = dh_prev + jnp.where(m[:, None], 0, dh)
            dc_prev = dc_prev + jnp.where(m[:, None], 0, dc)
        return (dh_prev, dc_prev, c_prev), dz

    (dh0, dc0, _), dzs = jax.lax.scan(body, (d_h, d_c, c_final), (d_hs, gates, c_prev_seq, mask),
                                      reverse=True)
    d_w_h = _matmul_tn(_previous(h0, hs), dzs).astype(w_h.dtype)
    d_peep = None
    if spec.peephole:
        H = w_h.shape[0]
        c_seq = jnp.concatenate([c_prev_seq[1:], c_final[None]], axis=0)
        d_peep = (jnp.einsum("tbh,tbh->h", dzs[..., :H], c_prev_seq).astype(peep[0].dtype),
                  jnp.einsum("tbh,tbh->h", dzs[..., H:2 * H], c_prev_seq).astype(peep[1].dtype),
                  jnp.einsum("tbh,tbh->h", dzs[..., 3 * H:], c_seq).astype(peep[2].dtype))
    d_xs, d_w_i, d_b = _projection_grads(xs, w_i, dzs)
    return (d_xs, d_w_i, d_b, d_w_h, d_peep, dh0.astype(h0.dtype), dc0.astype(c_final.dtype),
            _zero_cotangent(mask))


_lstm_recurrence.defvjp(_lstm_recurrence_fwd, _lstm_recurrence_bwd)


# --------------------------------------------------------------------------------------------------
# GRU (reset-after)

def _gru_forward(xs, w_i, b_i, w_h, b_h, h0, mask, save: bool):
    def body(h, inputs):
        x_t, m = inputs
        a_r, a_z, a_n = jnp.split(_project(x_t, w_i, b_i), 3, axis=-1)
        u_r, u_z, u_n = jnp.split(h @ w_h + b_h, 3, axis=-1)
        r = jax.nn.sigmoid(a_r + u_r)
        z = jax.nn.sigmoid(a_z + u_z)
        n = jnp.tanh(a_n + r * u_n)
        h_new = (n + z * (h - n)).astype(h.dtype)
        y = h_new if m is None else jnp.where(m[:, None], h_new, 0)
        return _select(m, h_new, h), (y, (r, z, n, u_n) if save else None)

    h, (hs, saved) = jax.lax.scan(body, h0, (xs, mask))
    return hs, h, saved


@jax.custom_vjp
def _gru_recurrence(xs: Array, w_i: Array, b_i: Array, w_h: Array, b_h: Array, h0: Array,
                    mask: Array | None) -> tuple[Array, Array]:
    """hs (T, B, H) and the final h (B, H) from inputs xs (T, B, D)."""
    hs, h, _ = _gru_forward(xs, w_i, b_i, w_h, b_h, h0, mask, save=False)
    return hs, h


def _gru_recurrence_fwd(xs, w_i, b_i, w_h, b_h, h0, mask):
    hs, h, saved = _gru_forward(xs, w_i, b_i, w_h, b_h, h0, mask, save=True)
    return (hs, h), (xs, w_i, w_h, h0, hs, saved, mask)


def _gru_recurrence_bwd(residuals, cotangents):
    xs, w_i, w_h, h0, hs, saved, mask = residuals
    d_hs, d_h = cotangents
    w_h_t = w_h.T
    h_prev_seq = _previous(h0, hs)

    def body(dh, inputs):
        dy, (r, z, n, u_n), h_prev, m = inputs
        dh_new = dh + dy
        if m is not None:
            dh_new = jnp.where(m[:, None], dh_new, 0)
        d_az = dh_new * (h_prev - n) * z * (1 - z)
        d_an = dh_new * (1 - z) * (1 - n * n)
        d_ar = d_an * u_n * r * (1 - r)
        du = jnp.concatenate([d_ar, d_az, d_an * r], axis=-1).astype(hs.dtype)
        dh_prev = (dh_new * z + du @ w_h_t).astype(dh.dtype)
        if m is not None:
            dh_prev = dh_prev + jnp.where(m[:, None], 0, dh)
        return dh_prev, (du, d_an.astype(hs.dtype))

    dh0, (dus, d_ans) = jax.lax.scan(body, d_h, (d_hs, saved, h_prev_seq, mask), reverse=True)
    H = w_h.shape[0]
    dxp = jnp.concatenate([dus[..., :2 * H], d_ans], axis=-1)
    d_w_h = _matmul_tn(h_prev_seq, dus).astype(w_h.dtype)
    d_b_h = dus.sum(axis=(0, 1)).astype(w_h.dtype)
    d_xs, d_w_i, d_b_i = _projection_grads(xs, w_i, dxp)
    return d_xs, d_w_i, d_b_i, d_w_h, d_b_h, dh0.astype(h0.dtype), _zero_cotangent(mask)


_gru_recurrence.defvjp(_gru_recurrence_fwd, _gru_recurrence_bwd)


# --------------------------------------------------------------------------------------------------
# Elman RNN

def _activation_grad(activation: str, h: Array) -> Array:
    """d activation / d pre-activation, written in terms of the output h."""
    if activation == "tanh":
        return 1 - h * h
    if activation == "relu":
        return (h > 0).astype(h.dtype)
    return jnp.ones_like(h)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rnn_recurrence(activation: str, xs: Array, w_i: Array, b: Array, w_h: Array, h0: Array,
                    mask: Array | None) -> tuple[Array, Array]:
    """hs (T, B, H) and the final h (B, H) from inputs xs (T, B, D)."""
    act = _rnn.ACTIVATIONS[activation]

    def body(h, inputs):
        x_t, m = inputs
        h_new = act(_project(x_t, w_i, b) + h @ w_h).astype(h.dtype)
        y = h_new if m is None else jnp.where(m[:, None], h_new, 0)
        return _select(m, h_new, h), y

    h, hs = jax.lax.scan(body, h0, (xs, mask))
    return hs, h


def _rnn_recurrence_fwd(activation, xs, w_i, b, w_h, h0, mask):
    hs, h = _rnn_recurrence(activation, xs, w_i, b, w_h, h0, mask)
    return (hs, h), (xs, w_i, w_h, h0, hs, mask)


def _rnn_recurrence_bwd(activation, residuals, cotangents):
    xs, w_i, w_h, h0, hs, mask = residuals
    d_hs, d_h = cotangents
    w_h_t = w_h.T

    def body(dh, inputs):
        dy, h, m = inputs
        dh_new = dh + dy
        if m is not None:
            dh_new = jnp.where(m[:, None], dh_new, 0)
        d_pre = (dh_new * _activation_grad(activation, h)).astype(hs.dtype)
        dh_prev = (d_pre @ w_h_t).astype(dh.dtype)
        if m is not None:
            dh_prev = dh_prev + jnp.where(m[:, None], 0, dh)
        return dh_prev, d_pre

    dh0, d_pres = jax.lax.scan(body, d_h, (d_hs, hs, mask), reverse=True)
    d_w_h = _matmul_tn(_previous(h0, hs), d_pres).astype(w_h.dtype)
    d_xs, d_w_i, d_b = _projection_grads(xs, w_i, d_pres)
    return d_xs, d_w_i, d_b, d_w_h, dh0.astype(h0.dtype), _zero_cotangent(mask)


_rnn_recurrence.defvjp(_rnn_recurrence_fwd, _rnn_recurrence_bwd)
