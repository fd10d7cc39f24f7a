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

The backward pass of one step (every variant but FGR, which is differentiated by autodiff), with
``dh_t``, ``dc_t`` the cotangents of the new state and ``tc = tanh(c_t)``::

    dz_o = dh_t * tc * o * (1 - o)
    dc   = dc_t + dh_t * o * (1 - tc^2) + dz_o * p_o
    dz_g = dc * i * (1 - g^2)        dz_i = dc * g * i * (1 - i)        dz_f = dc * c * f * (1 - f)
    dc_{t-1} = dc * f + dz_i * p_i + dz_f * p_f
    dh_{t-1} = dz @ w_h^T

(CIFG: ``d f`` gains ``- dc * g`` since i = 1 - f; a gate fixed to one drops its terms.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell, matmul_tn

Array = jax.Array
Params = dict[str, Array]

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


class LSTM(Cell):
    """The LSTM family; ``peephole=True`` is the ``peephole`` cell (``p_i, p_f, p_o`` (H,))."""

    num_gates = 4
    input_bias = "b"
    options = {"variant": "vanilla"}

    def __init__(self, peephole: bool = False):
        self.peephole = peephole

    def check_options(self, variant: str = "vanilla") -> dict[str, Any]:
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is not an LSTM variant; valid: {', '.join(VARIANTS)}")
        return {"variant": variant}

    def has_peepholes(self, variant: str) -> bool:
        return self.peephole and variant != "NP"

    def param_shapes(self, variant: str = "vanilla") -> dict[str, tuple[str, ...]]:
        shapes = {"w_i": ("D", "4H"), "w_h": ("H", "4H"), "b": ("4H",)}
        if self.has_peepholes(variant):
            shapes.update(p_i=("H",), p_f=("H",), p_o=("H",))
        if variant == "FGR":
            shapes["w_fgr"] = ("3H", "3H")
        return shapes

    def init(
        self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, *, variant: str = "vanilla"
    ) -> Params:
        """``w_i`` (D, 4H), ``w_h`` (H, 4H), ``b`` (4H,), gate order i, f, g, o; plus ``p_i, p_f, p_o``
        (H,) for peepholes and ``w_fgr`` (3H, 3H) for FGR. See :mod:`lstmlab.cells.init`."""
        H, dtype = hidden_size, how.dtype
        k_i, k_h = jax.random.split(key)
        b = jnp.zeros((4 * H,), dtype).at[H : 2 * H].set(how.forget_bias)
        if how.chrono_tmax:
            b_f = _init.chrono_bias(key, H, how.chrono_tmax, dtype)
            b = b.at[H : 2 * H].set(b_f).at[:H].set(-b_f)
        params = {
            "w_i": _init.input_weights(k_i, input_size, H, 4, how.input_init, dtype),
            "w_h": _init.recurrent_weights(k_h, H, 4, how.recurrent_scale, dtype),
            "b": b,
        }
        if self.has_peepholes(variant):
            params.update(p_i=jnp.zeros((H,), dtype), p_f=jnp.zeros((H,), dtype), p_o=jnp.zeros((H,), dtype))
        if variant == "FGR":
            params["w_fgr"] = jnp.zeros((3 * H, 3 * H), dtype)
        return params

    def initial_carry(
        self, batch_size: int, hidden_size: int, dtype: Any = jnp.float32, *, variant: str = "vanilla"
    ) -> LSTMState | FGRState:
        """Zero state. ``h`` has ``dtype``; ``c`` is kept in at least float32."""
        h = jnp.zeros((batch_size, hidden_size), dtype)
        c = jnp.zeros((batch_size, hidden_size), jnp.promote_types(dtype, jnp.float32))
        if variant == "FGR":
            return FGRState(h, c, jnp.zeros((batch_size, 3 * hidden_size), dtype))
        return LSTMState(h, c)

    def output(self, carry: LSTMState | FGRState) -> Array:
        return carry.h

    def gates(
        self, params: Params, xp: Array, carry: LSTMState | FGRState, *, variant: str = "vanilla"
    ) -> dict[str, Array]:
        """The activations of one step from ``xp`` = x_t @ w_i + b (B, 4H), by name: the gates ``i``,
        ``f``, ``o`` (sigmoids), the cell input ``g``, the new cell state ``c`` and output ``h``, each
        (B, H). A gate the variant fixes to one is absent (NIG, NFG, NOG); under CIFG ``i`` is 1 - f.
        :meth:`forward` is this step, packed into the carry and what the backward pass needs."""
        h, c = carry.h, carry.c
        z = xp + h @ params["w_h"]
        if variant == "FGR":
            z_i, z_f, z_o = jnp.split(carry.gates @ params["w_fgr"], 3, axis=-1)
            z = z + jnp.concatenate([z_i, z_f, jnp.zeros_like(z_i), z_o], axis=-1)
        z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
        peep = self.has_peepholes(variant)
        if peep:
            z_i = z_i + params["p_i"] * c
            z_f = z_f + params["p_f"] * c
        f = None if variant == "NFG" else jax.nn.sigmoid(z_f)
        if variant == "NIG":
            i = None
        elif variant == "CIFG":
            i = 1.0 - f
        else:
            i = jax.nn.sigmoid(z_i)
        g = z_g if variant == "NIAF" else jnp.tanh(z_g)
        kept = c if f is None else f.astype(c.dtype) * c
        c_new = kept + (g if i is None else i * g).astype(c.dtype)
        if peep:
            z_o = z_o + params["p_o"] * c_new
        o = None if variant == "NOG" else jax.nn.sigmoid(z_o)
        tc = c_new if variant == "NOAF" else jnp.tanh(c_new)
        h_new = (tc if o is None else o * tc).astype(h.dtype)
        named = {"i": i, "f": f, "g": g, "o": o, "c": c_new, "h": h_new}
        return {k: v for k, v in named.items() if v is not None}

    def forward(
        self, params: Params, xp: Array, carry: LSTMState | FGRState, *, variant: str = "vanilla"
    ) -> tuple[LSTMState | FGRState, tuple]:
        """One step from ``xp`` = x_t @ w_i + b (B, 4H) (:meth:`gates`). ``saved`` = (i, f, g, o, c_{t-1}),
        each (B, H), with None for a gate fixed to one (and for i under CIFG, where it is 1 - f)."""
        a = self.gates(params, xp, carry, variant=variant)
        i, f, o = a.get("i"), a.get("f"), a.get("o")
        saved = (None if variant == "CIFG" else i, f, a["g"], o, carry.c)
        if variant == "FGR":
            gates = jnp.concatenate([i, f, o], axis=-1).astype(carry.gates.dtype)
            return FGRState(a["h"], a["c"], gates), saved
        return LSTMState(a["h"], a["c"]), saved

    def has_backward(self, variant: str = "vanilla") -> bool:
        return variant != "FGR"

    def backward_state(self, carry: LSTMState, **options: Any) -> Array:
        """The cell state each step produced, walked backwards through ``saved``'s c_{t-1}."""
        return carry.c

    def backward(
        self,
        params: Params,
        saved: tuple,
        h_prev: Array,
        h: Array,
        c: Array,
        d_carry: LSTMState,
        dh: Array,
        *,
        variant: str = "vanilla",
    ) -> tuple[Array, LSTMState, Array]:
        """``dz`` (B, 4H) = d loss / d(x_t @ w_i + b + h_{t-1} @ w_h); see the module docstring."""
        i, f, g, o, c_prev = saved
        peep = self.has_peepholes(variant)
        dh_t = (d_carry.h + dh).astype(c.dtype)
        tc = c if variant == "NOAF" else jnp.tanh(c)
        if o is None:
            d_zo, dtc = jnp.zeros_like(dh_t), dh_t
        else:
            d_zo, dtc = dh_t * tc * o * (1 - o), dh_t * o
        dc = d_carry.c + (dtc if variant == "NOAF" else dtc * (1 - tc * tc))
        if peep and o is not None:
            dc = dc + d_zo * params["p_o"]
        i_val = 1 - f if variant == "CIFG" else i
        d_g = dc if i_val is None else dc * i_val
        d_zg = d_g if variant == "NIAF" else d_g * (1 - g * g)
        d_i = dc * g
        d_f = dc * c_prev
        if variant == "CIFG":
            d_f = d_f - d_i
        d_zi = jnp.zeros_like(d_i) if i is None else d_i * i * (1 - i)
        d_zf = jnp.zeros_like(d_f) if f is None else d_f * f * (1 - f)
        dc_prev = dc if f is None else dc * f
        if peep:
            dc_prev = dc_prev + d_zi * params["p_i"] + d_zf * params["p_f"]
        dz = jnp.concatenate([d_zi, d_zf, d_zg, d_zo], axis=-1).astype(dh.dtype)
        dh_prev = (dz @ params["w_h.T"]).astype(d_carry.h.dtype)
        return dz, LSTMState(dh_prev, dc_prev), c_prev

    def grads(
        self,
        params: Params,
        dzs: Array,
        saveds: tuple,
        h_prevs: Array,
        final_carry: LSTMState,
        *,
        variant: str = "vanilla",
    ) -> tuple[Array, Params]:
        """``dz`` is also the gradient of the projected input; ``w_h`` and the peepholes from it."""
        out = {"w_h": matmul_tn(h_prevs, dzs)}
        if self.has_peepholes(variant):
            H = params["w_h"].shape[0]
            c_prevs = saveds[4]
            cs = jnp.concatenate([c_prevs[1:], final_carry.c[None]], axis=0)
            out.update(
                p_i=jnp.einsum("tbh,tbh->h", dzs[..., :H], c_prevs),
                p_f=jnp.einsum("tbh,tbh->h", dzs[..., H : 2 * H], c_prevs),
                p_o=jnp.einsum("tbh,tbh->h", dzs[..., 3 * H :], cs),
            )
        return dzs, out


CELL = LSTM(peephole=False)
PEEPHOLE = LSTM(peephole=True)
