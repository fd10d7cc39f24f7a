"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?").

Both drop the hidden state from the gates, so that the recurrence is linear in h and a whole sequence is
one parallel scan. With ``x_t`` (B, D), ``g(v) = v + 0.5`` for v >= 0 and ``sigmoid(v)`` below (the
paper's positive candidate, Section 3.1 and Appendix B)::

    minGRU   [k_z, k_h] = x_t @ w_i + b                 w_i (D, 2H), b (2H,)
             z_t = sigmoid(k_z),  h~_t = g(k_h)
             h_t = (1 - z_t) * h_{t-1} + z_t * h~_t       (Section 3.1, with h~ kept positive)

    minLSTM  [k_f, k_i, k_h] = x_t @ w_i + b            w_i (D, 3H), b (3H,)
             f_t = sigmoid(k_f),  i_t = sigmoid(k_i),  h~_t = g(k_h)
             f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)     (length-independent scaling)
             h_t = f'_t * h_{t-1} + i'_t * h~_t           (Section 3.2, with its length-independent scaling)

The carry is ``h`` (B, H). Since the gates see only the input, both forms compute them for all steps
at once before the recurrence. Option ``form``: ``sequential`` (the default: then ``h_t = a_t h_{t-1} +
b_t`` step by step, as :meth:`forward` does one step) or ``parallel``:
with ``a_t`` the coefficient of h_{t-1} and ``b_t`` the added term, ``h_t = A_t h_0 + B_t`` where
``(log A_t, log B_t)`` is a ``jax.lax.associative_scan`` of the pairs ``(log a_t, log b_t)`` under
``(a1, b1) . (a2, b2) = (a1 + a2, logaddexp(b1 + a2, b2))``; ``b_t > 0`` because ``g > 0``, so the whole
scan runs in log space (the paper's Appendix B), and ``h_0`` of any sign enters as ``exp(log A_t) h_0``.
The parallel form does more work than the loop in fewer sequential steps: it pays where many cores run
the scan's levels at once (``scripts/bench.py --modern`` measures both).

Initialisation (:mod:`lstmlab.cells.init`): input weights per gate block; the gate that keeps the old
state starts at ``forget_bias`` (minLSTM's ``k_f`` bias; minGRU's ``k_z`` bias is ``-forget_bias``,
since ``z`` lets the new state in), or by chrono initialisation. There is no ``w_h``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell

Array = jax.Array
Params = dict[str, Array]

FORMS = ("sequential", "parallel")


def g(v: Array) -> Array:
    """The paper's positive candidate: ``v + 0.5`` for v >= 0, ``sigmoid(v)`` below (continuous at 0)."""
    return jnp.where(v >= 0, jax.nn.relu(v) + 0.5, jax.nn.sigmoid(v))


def log_g(v: Array) -> Array:
    """``log g(v)``, finite with finite gradients for every v."""
    return jnp.where(v >= 0, jnp.log(jax.nn.relu(v) + 0.5), -jax.nn.softplus(-v))


def _combine(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    (a1, b1), (a2, b2) = first, second
    return a1 + a2, jnp.logaddexp(b1 + a2, b2)


def linear_scan(log_a: Array, log_b: Array, h0: Array, mask: Array | None) -> tuple[Array, Array]:
    """``h_t = a_t h_{t-1} + b_t`` over time for all t at once, from ``log a`` and ``log b`` (T, B, H)
    and ``h0`` (B, H); masked steps (``mask`` (T, B) False) keep h and output zero. Returns (h_T, hs)."""
    if mask is not None:
        m = mask[..., None]
        never = jnp.asarray(jnp.finfo(log_b.dtype).min / 4, log_b.dtype)
        log_a = jnp.where(m, log_a, jnp.zeros_like(log_a))
        log_b = jnp.where(m, log_b, never)
    log_A, log_B = jax.lax.associative_scan(_combine, (log_a, log_b), axis=0)
    hs = jnp.exp(log_A) * h0[None] + jnp.exp(log_B)
    final = hs[-1]
    if mask is not None:
        hs = jnp.where(mask[..., None], hs, jnp.zeros_like(hs))
    return final, hs


def linear_loop(a: Array, b: Array, h0: Array, mask: Array | None) -> tuple[Array, Array]:
    """``h_t = a_t h_{t-1} + b_t`` step by step (``a``, ``b`` (T, B, H), computed for all steps before
    the loop, since the gates see only the input); masked steps keep h and output zero."""

    def body(h: Array, inputs: tuple) -> tuple[Array, Array]:
        a_t, b_t, m = inputs
        new = a_t * h + b_t
        if m is None:
            return new, new
        h = jnp.where(m[:, None], new, h)
        return h, jnp.where(m[:, None], h, jnp.zeros_like(h))

    return jax.lax.scan(body, h0, (a.astype(h0.dtype), b.astype(h0.dtype), mask))


def _check_form(form: str) -> dict[str, Any]:
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not a form of this cell; valid: {', '.join(FORMS)}")
    return {"form": form}


def _init_params(
    key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, gates: int, keep: int, sign: float
) -> Params:
    """``w_i`` (D, gates*H) and ``b``, the ``keep`` block of ``b`` at ``sign * forget_bias`` (or chrono)."""
    H = hidden_size
    b = jnp.zeros((gates * H,), how.dtype)
    if how.chrono_tmax > 0:
        keep_bias = _init.chrono_bias(key, H, how.chrono_tmax, how.dtype)
    else:
        keep_bias = jnp.full((H,), how.forget_bias, how.dtype)
    b = b.at[keep * H : (keep + 1) * H].set(sign * keep_bias)
    return {"w_i": _init.input_weights(key, input_size, H, gates, how.input_init, how.dtype), "b": b}


class MinGRU(Cell):
    """minGRU; option ``form`` (``sequential`` | ``parallel``)."""

    num_gates = 2
    input_bias = "b"
    options = {"form": "sequential"}

    def check_options(self, form: str = "sequential") -> dict[str, Any]:
        return _check_form(form)

    def param_shapes(self, **options: Any) -> dict[str, tuple[str, ...]]:
        return {"w_i": ("D", "2H"), "b": ("2H",)}

    def init(self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, **options: Any) -> Params:
        """``b``'s ``k_z`` block starts at ``-forget_bias`` (minus chrono biases), so the cell starts keeping."""
        return _init_params(key, input_size, hidden_size, how, gates=2, keep=0, sign=-1.0)

    def gates(self, params: Params, xp: Array, h: Array, **options: Any) -> dict[str, Array]:
        """One step: update gate ``z``, candidate ``h_tilde`` and new state ``h``, each (B, H)."""
        k_z, k_h = jnp.split(xp, 2, axis=-1)
        z, h_tilde = jax.nn.sigmoid(k_z), g(k_h)
        return {"z": z, "h_tilde": h_tilde, "h": ((1 - z) * h + z * h_tilde).astype(h.dtype)}

    def forward(self, params: Params, xp: Array, h: Array, **options: Any) -> tuple[Array, None]:
        return self.gates(params, xp, h)["h"], None

    def has_sequence(self, form: str = "sequential") -> bool:
        return True  # both forms: the gates of all steps at once, then the recurrence

    def sequence(self, params: Params, xps: Array, h0: Array, mask: Array | None, *, form: str = "sequential"):
        k_z, k_h = jnp.split(xps, 2, axis=-1)
        if form == "sequential":
            z = jax.nn.sigmoid(k_z)
            return linear_loop(1 - z, z * g(k_h), h0, mask)
        # log(1 - z) = -softplus(k_z), log z = -softplus(-k_z)
        return linear_scan(-jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(k_h), h0, mask)


def _minlstm_logs(k_f: Array, k_i: Array) -> tuple[Array, Array]:
    """(log f', log i') of the scaled gates f / (f + i) and i / (f + i), computed stably."""
    diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)  # log(i / f)
    return -jax.nn.softplus(diff), -jax.nn.softplus(-diff)


class MinLSTM(Cell):
    """minLSTM; option ``form`` (``sequential`` | ``parallel``)."""

    num_gates = 3
    input_bias = "b"
    options = {"form": "sequential"}

    def check_options(self, form: str = "sequential") -> dict[str, Any]:
        return _check_form(form)

    def param_shapes(self, **options: Any) -> dict[str, tuple[str, ...]]:
        return {"w_i": ("D", "3H"), "b": ("3H",)}

    def init(self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, **options: Any) -> Params:
        """``b``'s ``k_f`` block starts at ``forget_bias`` (or chrono biases)."""
        return _init_params(key, input_size, hidden_size, how, gates=3, keep=0, sign=1.0)

    def gates(self, params: Params, xp: Array, h: Array, **options: Any) -> dict[str, Array]:
        """One step: scaled forget and input gates ``f``, ``i``, candidate ``h_tilde``, new state ``h``."""
        k_f, k_i, k_h = jnp.split(xp, 3, axis=-1)
        log_f, log_i = _minlstm_logs(k_f, k_i)
        f, i, h_tilde = jnp.exp(log_f), jnp.exp(log_i), g(k_h)
        return {"f": f, "i": i, "h_tilde": h_tilde, "h": (f * h + i * h_tilde).astype(h.dtype)}

    def forward(self, params: Params, xp: Array, h: Array, **options: Any) -> tuple[Array, None]:
        return self.gates(params, xp, h)["h"], None

    def has_sequence(self, form: str = "sequential") -> bool:
        return True  # both forms: the gates of all steps at once, then the recurrence

    def sequence(self, params: Params, xps: Array, h0: Array, mask: Array | None, *, form: str = "sequential"):
        k_f, k_i, k_h = jnp.split(xps, 3, axis=-1)
        log_f, log_i = _minlstm_logs(k_f, k_i)
        if form == "sequential":
            return linear_loop(jnp.exp(log_f), jnp.exp(log_i) * g(k_h), h0, mask)
        return linear_scan(log_f, log_i + log_g(k_h), h0, mask)


MINGRU = MinGRU()
MINLSTM = MinLSTM()
