"""Every cell and variant equals a NumPy step-by-step transcription of its published equations, and its
autodiff gradients equal central finite differences. Both in float64.

The references below are written from the papers, one gate matrix per gate, in the papers' notation
(column-vector form ``W x``, applied to a batch of row vectors as ``x @ W.T``):

* LSTM with forget gate: Gers, Schmidhuber & Cummins (2000), "Learning to forget", with tanh as the
  squashing functions g and h (the paper used scaled logistic functions).
* Peepholes: Gers & Schmidhuber (2002), "Learning precise timing with LSTM recurrent networks":
  i and f see c_{t-1}, o sees c_t.
* Ablations: Greff et al. (2017), "LSTM: A Search Space Odyssey", Section 3 (NIG, NFG, NOG, NIAF, NOAF,
  NP, CIFG, FGR; FGR adds nine matrices R_{a->b} from gate a's previous activation to gate b).
* GRU: Cho et al. (2014) with the reset applied after the recurrent matrix, as in PyTorch's nn.GRU
  (``reset_after=True``), and before it, as in the paper and Keras's ``reset_after=False``.
* RNN: Elman (1990).

The only thing taken from lstmlab here is the parameter layout (``w_i`` (D, G*H) etc., gate blocks in
column order), which ``test_cells_layout.py`` pins against PyTorch's layout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lstmlab import cells

T, B, D, H = 4, 2, 3, 2

CASES = (
    [("lstm", {"variant": v}) for v in cells.VARIANTS]
    + [("peephole", {"variant": v}) for v in cells.VARIANTS]
    + [("gru", {"reset_after": True}), ("gru", {"reset_after": False})]
    + [("rnn", {"activation": a}) for a in cells.ACTIVATIONS]
)
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for name, opts in CASES]


@pytest.fixture(scope="module", autouse=True)
def float64():
    """float64 for this module only: jax.enable_x64 is a context manager that restores the old value, and
    pytest tears a module fixture down before running a test of another module (also under xdist)."""
    with jax.enable_x64(True):
        yield


# ----------------------------------------------------------------------------------------------------
# Published equations, in NumPy
# ----------------------------------------------------------------------------------------------------


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def blocks(matrix, num_gates, names):
    """Split a (rows, G*H) lstmlab matrix into the papers' per-gate (H, rows) matrices."""
    parts = np.split(np.asarray(matrix), num_gates, axis=-1)
    return {n: p.T for n, p in zip(names, parts)}


def lstm_reference(name, variant, p, xs, h0, c0, gates0=None):
    """Greff et al.'s notation: block input z (lstmlab's g), gates i, f, o, cell c, block output y (= h).

    Returns (hs (T, B, H), h_T, c_T, [i, f, o]_T)."""
    W = blocks(p["w_i"], 4, "ifzo")
    R = blocks(p["w_h"], 4, "ifzo")
    b = dict(zip("ifzo", np.split(np.asarray(p["b"]), 4)))
    peep = name == "peephole" and variant != "NP"
    p_i, p_f, p_o = (np.asarray(p[k]) for k in ("p_i", "p_f", "p_o")) if peep else (0.0, 0.0, 0.0)
    if variant == "FGR":  # R_fgr[a][b]: from gate a at t-1 into gate b at t
        Hn = h0.shape[1]
        wf = np.asarray(p["w_fgr"])
        R_fgr = {
            a: {bb: wf[ia * Hn : (ia + 1) * Hn, ib * Hn : (ib + 1) * Hn].T for ib, bb in enumerate("ifo")}
            for ia, a in enumerate("ifo")
        }
    y, c = np.asarray(h0), np.asarray(c0)
    prev = dict(zip("ifo", np.split(np.asarray(gates0), 3, axis=-1))) if variant == "FGR" else None
    g_act = (lambda a: a) if variant == "NIAF" else np.tanh  # input activation g
    h_act = (lambda a: a) if variant == "NOAF" else np.tanh  # output activation h
    hs = []
    for x in np.asarray(xs):

        def pre(k):
            a = x @ W[k].T + y @ R[k].T + b[k]
            if variant == "FGR" and k in "ifo":
                a = a + sum(prev[src] @ R_fgr[src][k].T for src in "ifo")
            return a

        z = g_act(pre("z"))
        i = sigmoid(pre("i") + p_i * c)
        f = sigmoid(pre("f") + p_f * c)
        if variant == "NIG":
            i = np.ones_like(i)
        if variant == "NFG":
            f = np.ones_like(f)
        if variant == "CIFG":
            # Greff et al. couple the gates as f = 1 - i. lstmlab keeps the forget-gate columns and
            # sets i = 1 - f; that is the same model with the input gate's weights, bias and peephole
            # equal to minus the forget gate's: sigmoid(-a) = 1 - sigmoid(a). Written here in the
            # paper's form with those coupled parameters.
            i = sigmoid(-(x @ W["f"].T + y @ R["f"].T + b["f"]) - p_f * c)
            f = 1.0 - i
        c = z * i + c * f
        o = sigmoid(pre("o") + p_o * c)
        if variant == "NOG":
            o = np.ones_like(o)
        y = h_act(c) * o
        if variant == "FGR":
            prev = {"i": i, "f": f, "o": o}
        hs.append(y)
    gates = np.concatenate([prev[k] for k in "ifo"], axis=-1) if variant == "FGR" else None
    return np.stack(hs), y, c, gates


def gru_reference(p, xs, h0, reset_after=True):
    """Cho et al. (2014): r = s(W_r x + b_ir + U_r h + b_hr), z = s(W_z x + b_iz + U_z h + b_hz),
    h' = (1 - z) * n + z * h with, reset after the recurrent matrix (PyTorch nn.GRU),
    n = tanh(W_n x + b_in + r * (U_n h + b_hn)), or reset before it (the paper; Keras reset_after=False),
    n = tanh(W_n x + b_in + U_n (r * h) + b_hn)."""
    W = blocks(p["w_i"], 3, "rzn")
    U = blocks(p["w_h"], 3, "rzn")
    bi = dict(zip("rzn", np.split(np.asarray(p["b_i"]), 3)))
    bh = dict(zip("rzn", np.split(np.asarray(p["b_h"]), 3)))
    h = np.asarray(h0)
    hs = []
    for x in np.asarray(xs):
        r = sigmoid(x @ W["r"].T + bi["r"] + h @ U["r"].T + bh["r"])
        z = sigmoid(x @ W["z"].T + bi["z"] + h @ U["z"].T + bh["z"])
        if reset_after:
            n = np.tanh(x @ W["n"].T + bi["n"] + r * (h @ U["n"].T + bh["n"]))
        else:
            n = np.tanh(x @ W["n"].T + bi["n"] + (r * h) @ U["n"].T + bh["n"])
        h = (1.0 - z) * n + z * h
        hs.append(h)
    return np.stack(hs), h


def rnn_reference(p, xs, h0, activation):
    """Elman (1990): h_t = act(W x_t + U h_{t-1} + b)."""
    act = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "identity": lambda a: a}[activation]
    W, U, b = np.asarray(p["w_i"]).T, np.asarray(p["w_h"]).T, np.asarray(p["b"])
    h = np.asarray(h0)
    hs = []
    for x in np.asarray(xs):
        h = act(x @ W.T + h @ U.T + b)
        hs.append(h)
    return np.stack(hs), h


# ----------------------------------------------------------------------------------------------------
# Inputs: every parameter random and non-zero (peepholes, w_fgr, biases), non-zero initial carry
# ----------------------------------------------------------------------------------------------------


def random_inputs(name, opts, seed=0):
    rng = np.random.default_rng(seed)
    shapes = cells.init(name, jax.random.key(0), D, H, **opts)
    params = {k: jnp.asarray(0.6 * rng.standard_normal(v.shape)) for k, v in shapes.items()}
    xs = jnp.asarray(rng.standard_normal((T, B, D)))
    zero = cells.initial_carry(name, B, H, jnp.float64, **opts)
    carry = jax.tree.map(lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape)), zero)
    if name in ("lstm", "peephole") and opts["variant"] == "FGR":  # previous gates lie in (0, 1)
        carry = carry._replace(gates=jnp.asarray(rng.uniform(0.0, 1.0, carry.gates.shape)))
    return params, xs, carry


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_scan_equals_published_equations_in_float64(name, opts):
    params, xs, carry = random_inputs(name, opts)
    final, hs = cells.scan(name, params, xs, carry, **opts)
    assert hs.dtype == jnp.float64  # else a float32 path could hide below the tolerance
    tol = dict(rtol=0, atol=1e-10)
    if name in ("lstm", "peephole"):
        gates0 = carry.gates if opts["variant"] == "FGR" else None
        ref_hs, ref_h, ref_c, ref_gates = lstm_reference(name, opts["variant"], params, xs, carry.h, carry.c, gates0)
        np.testing.assert_allclose(final.c, ref_c, **tol)
        np.testing.assert_allclose(final.h, ref_h, **tol)
        if ref_gates is not None:
            np.testing.assert_allclose(final.gates, ref_gates, **tol)
    elif name == "gru":
        ref_hs, ref_h = gru_reference(params, xs, carry, opts["reset_after"])
        np.testing.assert_allclose(final, ref_h, **tol)
    else:
        ref_hs, ref_h = rnn_reference(params, xs, carry, opts["activation"])
        np.testing.assert_allclose(final, ref_h, **tol)
    np.testing.assert_allclose(hs, ref_hs, **tol)


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_gradients_equal_central_finite_differences(name, opts):
    """d loss / d (params, xs) by autodiff equals (f(x + e) - f(x - e)) / 2e for every coordinate."""
    params, xs, carry = random_inputs(name, opts, seed=1)
    rng = np.random.default_rng(2)
    out_weights = jnp.asarray(rng.standard_normal((T, B, H)))
    carry_weights = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), carry)
    flat, unravel = ravel_pytree((params, xs))

    def loss(theta):
        p, x = unravel(theta)
        final, hs = cells.scan(name, p, x, carry, **opts)
        carry_term = sum(jnp.sum(a * w) for a, w in zip(jax.tree.leaves(final), jax.tree.leaves(carry_weights)))
        return jnp.sum(hs * out_weights) + carry_term

    grad = jax.jit(jax.grad(loss))(flat)
    eps = 1e-6
    steps = eps * jnp.eye(flat.size, dtype=flat.dtype)
    losses = jax.jit(jax.vmap(loss))(jnp.concatenate([flat + steps, flat - steps]))
    finite_diff = (losses[: flat.size] - losses[flat.size :]) / (2 * eps)
    assert np.abs(np.asarray(grad)).max() > 1e-3  # the loss does depend on the inputs
    np.testing.assert_allclose(grad, finite_diff, rtol=1e-6, atol=1e-8)
