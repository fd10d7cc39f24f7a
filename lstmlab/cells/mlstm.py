"""The mLSTM of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", Section 2.3 and
Appendix A.3): a matrix memory per head, updated by a covariance rule under exponential gating, with no
hidden-to-hidden weights.

With ``x_t`` (B, D), ``H = num_heads * d``, and per head (vectors of d, gates scalars)::

    [q~, k~, v~, o~, i~, f~] = x_t @ w_i + b            (B, 4H + 2 num_heads)
    q_t = q~,  k_t = k~ / sqrt(d),  v_t = v~             query, key, value
    i_t = exp(i~),  f_t = sigmoid(f~) or exp(f~),  o_t = sigmoid(o~)     option ``forget``
    C_t = f_t C_{t-1} + i_t v_t k_t^T                    matrix memory (d, d)
    n_t = f_t n_{t-1} + i_t k_t                          normaliser (d,)
    h~_t = C_t q_t / max(|n_t . q_t|, 1),  h_t = o_t * h~_t    (heads concatenated)

Stabilised like the sLSTM (:mod:`lstmlab.cells.slstm`), with ``log f_t`` = ``-softplus(-f~)`` or ``f~``::

    m_t = max(log f_t + m_{t-1}, i~),  i'_t = exp(i~ - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
    C_t = f'_t C_{t-1} + i'_t v_t k_t^T,  n_t = f'_t n_{t-1} + i'_t k_t
    h~_t = C_t q_t / max(|n_t . q_t|, exp(-m_t))

The carry is ``MLSTMState(h (B, H), C (B, NH, d, d), n (B, NH, d), m (B, NH))``; C, n and m are kept in
at least float32. Option ``form`` chooses how a sequence is computed; all forms give the same numbers up
to rounding:

* ``sequential``: the step above in the time loop, the reference.
* ``parallel``: all steps at once. With ``F_t = sum_{r<=t} log f_r`` and the carry (C_0, n_0, m_0)
  entering, the weight of step s in step t >= s is ``D_ts = exp(F_t - F_s + i~_s - m_t)`` and that of
  the carry ``w_t = exp(F_t + m_0 - m_t)``, with ``m_t = max(F_t + m_0, max_s F_t - F_s + i~_s)`` (the
  sequential stabiliser, unrolled); then ``h~_t = (sum_s D_ts (q_t . k_s) v_s + w_t C_0 q_t) /
  max(|sum_s D_ts (q_t . k_s) + w_t n_0 . q_t|, exp(-m_t))``. Time and memory grow as T^2.
* ``chunkwise`` (the default): the parallel form inside chunks of ``chunk_size`` steps, the carry passed
  from chunk to chunk: time T * chunk_size, memory per chunk.

Option ``norm`` (default off) adds the per-head layer norm that the xLSTM blocks apply to the cell's
output (the group norm "GN" of the paper's mLSTM block; inside the ``xlstm`` package's ``mLSTMCell``),
before the output gate::

    h_t = o_t * norm * LN_head(h~_t),   LN_head(x) = (x - mean) / sqrt(var + 1e-5) over each head's d units

Parameters: ``w_i`` (D, 4H + 2 num_heads) and ``b`` alike, as [q, k, v, o, i, f], the gates i and f one
column per head; with ``norm``, also ``norm`` (H,), the norm's scale (drawn as ones). Initialisation
(:mod:`lstmlab.cells.init`): input weights per block; the forget bias ``forget_bias`` (or chrono per
head, the input-gate bias then its negative).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell
from lstmlab.cells.slstm import FORGET_GATES, check_heads, check_num_heads, log_forget

Array = jax.Array
Params = dict[str, Array]

FORMS = ("sequential", "parallel", "chunkwise")


class MLSTMState(NamedTuple):
    h: Array
    C: Array
    n: Array
    m: Array


def split(xp: Array, num_heads: int, forget: str) -> tuple[Array, ...]:
    """Projected inputs (..., 4H + 2 NH) -> q, k (scaled), v (..., NH, d), o (..., H), i~, log f (..., NH)."""
    H = (xp.shape[-1] - 2 * num_heads) // 4
    d = H // num_heads

    def heads(a: Array) -> Array:
        return a.reshape(a.shape[:-1] + (num_heads, d))

    q, k, v, o = (xp[..., j * H : (j + 1) * H] for j in range(4))
    i_pre, f_pre = xp[..., 4 * H : 4 * H + num_heads], xp[..., 4 * H + num_heads :]
    return heads(q), heads(k) / math.sqrt(d), heads(v), o, i_pre, log_forget(f_pre, forget)


def chunk(q, k, v, i_pre, log_f, C0, n0, m0) -> tuple[Array, tuple[Array, Array, Array]]:
    """The parallel form over one stretch of time: q, k, v (T, B, NH, d), i~ and log f (T, B, NH), the
    carry (C0, n0, m0) entering. Returns (h~ (T, B, NH, d), the stabilised (C, n, m) after the last step)."""
    T = q.shape[0]
    F = jnp.cumsum(log_f, axis=0)  # (T, B, NH)
    log_D = F[:, None] - F[None, :] + i_pre[None, :]  # (t, s, B, NH)
    causal = jnp.tril(jnp.ones((T, T), bool))[:, :, None, None]
    log_D = jnp.where(causal, log_D, -jnp.inf)
    log_w = F + m0[None]  # the carry's weight, (T, B, NH)
    m = jnp.maximum(log_w, log_D.max(axis=1))  # (T, B, NH)
    S = jnp.einsum("tbhd,sbhd->tsbh", q, k) * jnp.exp(log_D - m[:, None])
    w = jnp.exp(log_w - m)
    num = jnp.einsum("tsbh,sbhd->tbhd", S, v) + w[..., None] * jnp.einsum("bhvk,tbhk->tbhv", C0, q)
    den = jnp.maximum(jnp.abs(S.sum(axis=1) + w * jnp.einsum("bhk,tbhk->tbh", n0, q)), jnp.exp(-m))
    last = jnp.exp(log_D[-1] - m[-1][None])  # weight of each step in the last one, (s, B, NH)
    C = w[-1][..., None, None] * C0 + jnp.einsum("sbh,sbhv,sbhk->bhvk", last, v, k)
    n = w[-1][..., None] * n0 + jnp.einsum("sbh,sbhk->bhk", last, k)
    return num / den[..., None], (C, n, m[-1])


def head_norm(h_tilde: Array, scale: Array, eps: float = 1e-5) -> Array:
    """The per-head layer norm of ``h_tilde`` (..., NH, d), times ``scale`` (H,): (..., H)."""
    mean = h_tilde.mean(axis=-1, keepdims=True)
    var = jnp.square(h_tilde - mean).mean(axis=-1, keepdims=True)
    normed = (h_tilde - mean) * jax.lax.rsqrt(var + eps)
    return normed.reshape(normed.shape[:-2] + (-1,)) * scale.astype(normed.dtype)


def readout(params: Params, h_tilde: Array, norm: bool) -> Array:
    """h~ (..., NH, d) as the (..., H) the output gate multiplies: heads concatenated, or normed."""
    return head_norm(h_tilde, params["norm"]) if norm else h_tilde.reshape(h_tilde.shape[:-2] + (-1,))


class MLSTM(Cell):
    """The mLSTM; options ``form`` (``chunkwise``, the default, ``parallel`` or ``sequential``), ``num_heads``
    (default 1), ``chunk_size`` (default 64, for ``chunkwise``), ``forget`` (``sigmoid`` or ``exp``) and
    ``norm`` (the per-head layer norm, default off)."""

    num_gates = 4
    input_bias = "b"
    options = {"form": "chunkwise", "num_heads": 1, "chunk_size": 64, "forget": "sigmoid", "norm": False}

    def check_options(
        self,
        form: str = "chunkwise",
        num_heads: int = 1,
        chunk_size: int = 64,
        forget: str = "sigmoid",
        norm: bool = False,
    ) -> dict[str, Any]:
        if form not in FORMS:
            raise ValueError(f"form={form!r} is not a form of this cell; valid: {', '.join(FORMS)}")
        if forget not in FORGET_GATES:
            raise ValueError(f"forget={forget!r} is not a forget gate; valid: {', '.join(FORGET_GATES)}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size!r} must be an integer >= 1")
        if not isinstance(norm, bool):
            raise ValueError(f"norm={norm!r} must be true or false")
        heads = check_num_heads(num_heads)
        return {"form": form, "num_heads": heads, "chunk_size": chunk_size, "forget": forget, "norm": norm}

    def param_shapes(self, num_heads: int = 1, norm: bool = False, **options: Any) -> dict[str, tuple[str, ...]]:
        width = f"4H+{2 * num_heads}"
        return {"w_i": ("D", width), "b": (width,)} | ({"norm": ("H",)} if norm else {})

    def init(
        self,
        key: Array,
        input_size: int,
        hidden_size: int,
        how: _init.InitOptions,
        *,
        num_heads: int = 1,
        norm: bool = False,
        **options,
    ) -> Params:
        check_heads(hidden_size, num_heads)
        H, NH = hidden_size, num_heads
        k_qkvo, k_gates = jax.random.split(key)
        w_i = jnp.concatenate(
            [
                _init.input_weights(k_qkvo, input_size, H, 4, how.input_init, how.dtype),
                _init.input_weights(k_gates, input_size, NH, 2, how.input_init, how.dtype),
            ],
            axis=1,
        )
        b = jnp.zeros((4 * H + 2 * NH,), how.dtype)
        if how.chrono_tmax > 0:
            bias = _init.chrono_bias(key, NH, how.chrono_tmax, how.dtype)
            b = b.at[4 * H + NH :].set(bias).at[4 * H : 4 * H + NH].set(-bias)
        else:
            b = b.at[4 * H + NH :].set(how.forget_bias)
        return {"w_i": w_i, "b": b} | ({"norm": jnp.ones((H,), how.dtype)} if norm else {})

    def initial_carry(
        self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32, *, num_heads: int = 1, **options
    ) -> MLSTMState:
        check_heads(hidden_size, num_heads)
        B, NH, d = batch_size, num_heads, hidden_size // num_heads
        state = jnp.promote_types(dtype, jnp.float32)
        return MLSTMState(
            jnp.zeros((B, hidden_size), dtype),
            jnp.zeros((B, NH, d, d), state),
            jnp.zeros((B, NH, d), state),
            jnp.zeros((B, NH), state),
        )

    def output(self, carry: MLSTMState) -> Array:
        return carry.h

    def gates(
        self,
        params: Params,
        xp: Array,
        carry: MLSTMState,
        *,
        num_heads: int = 1,
        forget: str = "sigmoid",
        norm: bool = False,
        **options,
    ) -> dict[str, Array]:
        """One step: gates ``i``, ``f`` (stabilised, (B, NH)), ``o`` (B, H), and the new ``C``, ``n``,
        ``m`` and ``h``."""
        q, k, v, o_pre, i_pre, log_f = split(xp.astype(carry.C.dtype), num_heads, forget)
        m = jnp.maximum(log_f + carry.m, i_pre)
        i, f = jnp.exp(i_pre - m), jnp.exp(log_f + carry.m - m)
        C = f[..., None, None] * carry.C + i[..., None, None] * v[..., :, None] * k[..., None, :]
        n = f[..., None] * carry.n + i[..., None] * k
        num = jnp.einsum("bhvk,bhk->bhv", C, q)
        den = jnp.maximum(jnp.abs(jnp.einsum("bhk,bhk->bh", n, q)), jnp.exp(-m))
        o = jax.nn.sigmoid(o_pre)
        h = o * readout(params, num / den[..., None], norm)
        return {"i": i, "f": f, "o": o, "C": C, "n": n, "m": m, "h": h.astype(carry.h.dtype)}

    def forward(self, params: Params, xp: Array, carry: MLSTMState, **options: Any) -> tuple[MLSTMState, None]:
        a = self.gates(params, xp, carry, **options)
        return MLSTMState(a["h"], a["C"], a["n"], a["m"]), None

    def has_sequence(self, form: str = "chunkwise", **options: Any) -> bool:
        return form != "sequential"

    def sequence(
        self,
        params: Params,
        xps: Array,
        carry: MLSTMState,
        mask: Array | None,
        *,
        form: str = "chunkwise",
        num_heads: int = 1,
        chunk_size: int = 64,
        forget: str = "sigmoid",
        norm: bool = False,
    ) -> tuple[MLSTMState, Array]:
        T, B = xps.shape[:2]
        q, k, v, o_pre, i_pre, log_f = split(xps.astype(carry.C.dtype), num_heads, forget)
        never = jnp.finfo(i_pre.dtype).min / 4  # an input gate of exp(never) = 0
        if mask is not None:  # a step past a sequence's end keeps the state: f = 1, i = 0
            i_pre = jnp.where(mask[..., None], i_pre, never)
            log_f = jnp.where(mask[..., None], log_f, 0.0)
        state = (carry.C, carry.n, carry.m)
        if form == "parallel":
            h_tilde, state = chunk(q, k, v, i_pre, log_f, *state)
        else:
            L = chunk_size
            pad = -T % L

            def chunks(a: Array, fill: float = 0.0) -> Array:
                a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)
                return a.reshape((a.shape[0] // L, L) + a.shape[1:])

            def body(state, inputs):
                h_tilde, state = chunk(*inputs, *state)
                return state, h_tilde

            state, h_tilde = jax.lax.scan(
                body, state, (chunks(q), chunks(k), chunks(v), chunks(i_pre, never), chunks(log_f))
            )
            h_tilde = h_tilde.reshape((-1,) + h_tilde.shape[2:])[:T]
        hs = (jax.nn.sigmoid(o_pre) * readout(params, h_tilde, norm)).astype(carry.h.dtype)
        if mask is None:
            h = hs[-1]
        else:
            lengths = mask.sum(axis=0)
            last = jnp.take_along_axis(hs, jnp.maximum(lengths - 1, 0)[None, :, None], axis=0)[0]
            h = jnp.where((lengths > 0)[:, None], last, carry.h)
            hs = jnp.where(mask[..., None], hs, jnp.zeros_like(hs))
        return MLSTMState(h, *state), hs


CELL = MLSTM()
