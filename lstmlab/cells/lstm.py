"""The LSTM family: LSTM with forget gate, peephole LSTM, and the Greff et al. (2017) ablations.

One step, with ``x_t`` (B, D), previous state ``(h, c)`` (B, H) each, and gates in the order i, f, g, o::

    z = x_t @ w_i + b + h @ w_h                    z = [z_i, z_f, z_g, z_o], each (B, H)
    i = sigmoid(z_i + p_i * c)                     input gate      (peephole sees c_{t-1})
    f = sigmoid(z_f + p_f * c)                     forget gate     (peephole sees c_{t-1})
    g = tanh(z_g)                                  cell input
    c_t = f * c + i * g
    o = sigmoid(z_o + p_o * c_t)                   output gate     (peephole sees the new c_t)
    h_t = o * tanh(c_t)

``lstm`` is this without the peephole terms: Gers, Schmidhuber & Cummins (2000), "Learning to forget:
continual prediction with LSTM" (with tanh where that paper used scaled logistic squashing functions for g
and for the output). ``peephole`` adds the diagonal peepholes ``p_i, p_f, p_o`` (H,):
Gers & Schmidhuber (2002), "Learning precise timing with LSTM recurrent networks"; it is the "vanilla"
LSTM of Greff et al. (2017), "LSTM: A Search Space Odyssey".

``variant`` selects one of Greff et al.'s eight ablations; each changes exactly one thing:

=========  =====================================================================================
vanilla    no change (the default)
NIG        no input gate: i = 1
NFG        no forget gate: f = 1
NOG        no output gate: o = 1
NIAF       no input activation: g = z_g (no tanh)
NOAF       no output activation: h_t = o * c_t (no tanh; h is then unbounded)
NP         no peepholes (for ``peephole`` this is ``lstm``; for ``lstm`` it changes nothing)
CIFG       coupled input and forget gate: i = 1 - f (the input-gate weights and ``p_i`` are unused)
FGR        full gate recurrence: i, f and o also see the previous step's [i, f, o] activations
           through ``w_fgr`` (3H, 3H), the paper's nine extra recurrent matrices
=========  =====================================================================================

Greff et al. ran their ablations on the peephole LSTM, so ``cell=peephole variant=X`` reproduces the
paper; ``cell=lstm variant=X`` applies the same change to the LSTM without peepholes.

CIFG couples the two gates through one set of weights. Written as ``f = 1 - i`` or as ``i = 1 - f`` it is
the same model (sigmoid(-a) = 1 - sigmoid(a): negate the gate's weights, bias and peephole); lstmlab keeps
the forget gate's columns so that ``forget_bias`` keeps its meaning.

FGR: the (H, H) block of ``w_fgr`` at row block a, column block b (a, b in the order i, f, o) carries gate
a's previous activation into gate b's pre-activation, ``z_b += gates_a @ w_fgr[a, b]`` (Greff et al.'s
R_{a->b}, transposed like every lstmlab matrix). The previous activations at the first step come from
the carry (zero by default).

Gate ablations keep the full (D, 4H) layout so weights port unchanged; unused columns get zero
gradients. The FGR carry is :class:`FGRState` (h, c, gates); every other variant carries
:class:`LSTMState` (h, c).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init

Array = jax.Array

VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


class LSTMState(NamedTuple):
    """Carry of the LSTM family: hidden state ``h`` and cell state ``c``, each (B, H)."""

    h: Array
    c: Array


class FGRState(NamedTuple):
    """Carry of the FGR variant: ``h``, ``c`` (B, H) and the previous [i, f, o] activations (B, 3H)."""

    h: Array
    c: Array
    gates: Array


def check_options(name: str, variant: str = "vanilla") -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not an LSTM variant; valid: {', '.join(VARIANTS)}")
    return {"variant": variant}


def has_peepholes(name: str, variant: str) -> bool:
    return name == "peephole" and variant != "NP"


def init(name: str, key: Array, input_size: int, hidden_size: int, *, variant: str = "vanilla",
         input_init: str = "glorot_uniform", recurrent_scale: float = 1.0, forget_bias: float = 1.0,
         chrono_tmax: float = 0.0, dtype=jnp.float32) -> dict[str, Array]:
    """Parameters ``w_i`` (D, 4H), ``w_h`` (H, 4H), ``b`` (4H,), gate order i, f, g, o; plus
    ``p_i, p_f, p_o`` (H,) for peepholes and ``w_fgr`` (3H, 3H) for FGR. See :mod:`lstmlab.cells.init`."""
    H = hidden_size
    k_i, k_h = jax.random.split(key)
    b = jnp.zeros((4 * H,), dtype).at[H:2 * H].set(forget_bias)
    if chrono_tmax:
        b_f = _init.chrono_bias(key, H, chrono_tmax, dtype)
        b = b.at[H:2 * H].set(b_f).at[:H].set(-b_f)
    params = {
        "w_i": _init.input_weights(k_i, input_size, H, 4, input_init, dtype),
        "w_h": _init.recurrent_weights(k_h, H, 4, recurrent_scale, dtype),
        "b": b,
    }
    if has_peepholes(name, variant):
        params.update(p_i=jnp.zeros((H,), dtype), p_f=jnp.zeros((H,), dtype), p_o=jnp.zeros((H,), dtype))
    if variant == "FGR":
        params["w_fgr"] = jnp.zeros((3 * H, 3 * H), dtype)
    return params


def initial_carry(name: str, batch_size: int, hidden_size: int, dtype=jnp.float32, *,
                  variant: str = "vanilla") -> LSTMState | FGRState:
    """Zero state. ``h`` has ``dtype``; ``c`` is kept in at least float32."""
    h = jnp.zeros((batch_size, hidden_size), dtype)
    c = jnp.zeros((batch_size, hidden_size), jnp.promote_types(dtype, jnp.float32))
    if variant == "FGR":
        return FGRState(h, c, jnp.zeros((batch_size, 3 * hidden_size), dtype))
    return LSTMState(h, c)


def project(params: dict[str, Array], xs: Array) -> Array:
    """Input projection ``xs @ w_i + b`` for all time steps at once: (..., D) -> (..., 4H)."""
    return xs @ params["w_i"] + params["b"]


def step(name: str, params: dict[str, Array], carry: LSTMState | FGRState, xp: Array, *,
         variant: str = "vanilla") -> LSTMState | FGRState:
    """One time step from the projected input ``xp`` = x_t @ w_i + b (B, 4H). Returns the new carry."""
    h, c = carry.h, carry.c
    z = xp + h @ params["w_h"]
    if variant == "FGR":
        z_ifo = carry.gates @ params["w_fgr"]
        z_i, z_f, z_o = jnp.split(z_ifo, 3, axis=-1)
        z = z + jnp.concatenate([z_i, z_f, jnp.zeros_like(z_i), z_o], axis=-1)
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    peep = has_peepholes(name, variant)
    if peep:
        z_i = z_i + params["p_i"] * c
        z_f = z_f + params["p_f"] * c

    f = jnp.ones_like(z_f) if variant == "NFG" else jax.nn.sigmoid(z_f)
    if variant == "NIG":
        i = jnp.ones_like(z_i)
    elif variant == "CIFG":
        i = 1.0 - f
    else:
        i = jax.nn.sigmoid(z_i)
    g = z_g if variant == "NIAF" else jnp.tanh(z_g)

    c_new = f.astype(c.dtype) * c + i.astype(c.dtype) * g.astype(c.dtype)

    if peep:
        z_o = z_o + params["p_o"] * c_new
    o = jnp.ones_like(z_o) if variant == "NOG" else jax.nn.sigmoid(z_o)
    h_new = (o * (c_new if variant == "NOAF" else jnp.tanh(c_new))).astype(h.dtype)

    if variant == "FGR":
        gates = jnp.concatenate([i, f, o], axis=-1).astype(carry.gates.dtype)
        return FGRState(h_new, c_new, gates)
    return LSTMState(h_new, c_new)


def output(carry: LSTMState | FGRState) -> Array:
    """The per-step output of the LSTM family is ``h`` (B, H)."""
    return carry.h
