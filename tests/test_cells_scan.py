"""The scan's behaviour around the equations: padded batches, reverse, jit/vmap/grad, bfloat16, and the
worked examples of the LSTM literature; and that the cell core stays pure (no Flax, Hydra or I/O)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmlab import cells

from conftest import program

WORKTREE = Path(__file__).resolve().parents[1]
# One case per carry structure: LSTMState, FGRState (three-part carry, with peepholes), GRU h, RNN h.
# (Every variant's equations are pinned in test_cells_reference.py; this file tests the machinery.)
CASES = [("lstm", {}), ("peephole", {"variant": "FGR"}), ("gru", {}), ("rnn", {"activation": "tanh"})]
CASE_IDS = ["lstm", "peephole-FGR", "gru", "rnn"]


def random_params(name, opts, key, input_size, hidden_size, dtype=jnp.float32):
    """cells.init's shapes filled with random values, so peepholes, w_fgr and biases all matter."""
    shapes = cells.init(name, jax.random.key(0), input_size, hidden_size, **opts)
    keys = jax.random.split(key, len(shapes))
    return {k: (0.5 * jax.random.normal(kk, v.shape)).astype(dtype) for kk, (k, v) in zip(keys, shapes.items())}


def random_carry(name, opts, key, batch_size, hidden_size):
    zero = cells.initial_carry(name, batch_size, hidden_size, **opts)
    keys = jax.random.split(key, len(jax.tree.leaves(zero)))
    leaves = [0.5 * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, jax.tree.leaves(zero))]
    return jax.tree.unflatten(jax.tree.structure(zero), leaves)


def take(carry, b):
    """Sequence b of a batched carry, keeping a batch axis of 1."""
    return jax.tree.map(lambda a: a[b : b + 1], carry)


# ----------------------------------------------------------------------------------------------------
# Padded batches
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_padded_batch_equals_each_sequence_run_alone(name, opts, reverse):
    T, D, H = 5, 3, 4
    lengths = [5, 2]  # a full-length sequence and a padded one
    k_p, k_x, k_c = jax.random.split(jax.random.key(0), 3)
    params = random_params(name, opts, k_p, D, H)
    xs = jax.random.normal(k_x, (T, len(lengths), D))  # the padding holds non-zero garbage on purpose
    carry = random_carry(name, opts, k_c, len(lengths), H)

    final, hs = cells.scan(name, params, xs, carry, seq_lengths=jnp.array(lengths), reverse=reverse, **opts)
    for b, length in enumerate(lengths):
        alone_final, alone_hs = cells.scan(
            name, params, xs[:length, b : b + 1], take(carry, b), reverse=reverse, **opts
        )
        for got, want in zip(jax.tree.leaves(take(final, b)), jax.tree.leaves(alone_final)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hs[:length, b], alone_hs[:, 0], rtol=1e-5, atol=1e-5)
        assert not np.any(np.asarray(hs[length:, b])), "padded outputs must be exactly zero"


def test_reverse_padded_reverses_within_length_and_is_its_own_inverse():
    xs = jnp.arange(4 * 2).reshape(4, 2)  # (T, B)
    out = cells.reverse_padded(xs, jnp.array([4, 2]))
    np.testing.assert_array_equal(out[:, 0], [6, 4, 2, 0])
    np.testing.assert_array_equal(out[:, 1], [3, 1, 5, 7])  # padding (steps 2, 3) stays put
    np.testing.assert_array_equal(cells.reverse_padded(out, jnp.array([4, 2])), xs)


# ----------------------------------------------------------------------------------------------------
# Transformations and dtypes
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_jit_vmap_and_grad_agree_with_eager(name, opts):
    T, B, D, H, K = 3, 2, 3, 4, 3
    keys = jax.random.split(jax.random.key(1), K)
    xs = jax.random.normal(jax.random.key(2), (K, T, B, D))
    assert xs.dtype == jnp.float32  # float64 stays inside test_cells_reference.py, also under xdist
    params = random_params(name, opts, keys[0], D, H)

    def run(p, x):
        return cells.scan(name, p, x, **opts)[1]

    jitted = jax.jit(run)  # compiled once, reused below
    np.testing.assert_allclose(jitted(params, xs[0]), run(params, xs[0]), rtol=1e-6, atol=1e-6)

    # vmap over a batch of K parameter sets (initialised under vmap too), and over K sequences.
    stacked = jax.vmap(lambda k: cells.init(name, k, D, H, **opts))(keys)
    by_params = jax.jit(jax.vmap(run, in_axes=(0, None)))(stacked, xs[0])
    by_seqs = jax.jit(jax.vmap(run, in_axes=(None, 0)))(params, xs)
    for k in range(K):
        one = jax.tree.map(lambda a: a[k], stacked)
        np.testing.assert_allclose(by_params[k], jitted(one, xs[0]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(by_seqs[k], jitted(params, xs[k]), rtol=1e-5, atol=1e-6)

    grads = jax.jit(jax.grad(lambda p: jnp.sum(run(p, xs[0]) ** 2)))(params)
    assert set(grads) == set(params)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert float(jnp.abs(grads["w_h"]).max()) > 0


@pytest.mark.parametrize("variant,gate,peephole", [("CIFG", 0, "p_i"), ("NFG", 1, "p_f"), ("NOG", 3, "p_o")])
def test_ablated_gate_keeps_its_columns_with_zero_gradient(variant, gate, peephole):
    """The (D, 4H) layout is kept; the removed gate's columns and peephole get exactly zero gradient."""
    T, B, D, H = 3, 2, 3, 4
    opts = {"variant": variant}
    params = random_params("peephole", opts, jax.random.key(7), D, H)
    xs = jax.random.normal(jax.random.key(8), (T, B, D))
    grads = jax.grad(lambda p: jnp.sum(cells.scan("peephole", p, xs, **opts)[1] ** 2))(params)
    cols = slice(gate * H, (gate + 1) * H)
    for removed in (grads["w_i"][:, cols], grads["w_h"][:, cols], grads["b"][cols], grads[peephole]):
        assert not np.any(np.asarray(removed))
    kept = [k for k in range(4) if k != gate]
    assert all(float(jnp.abs(grads["w_i"][:, k * H : (k + 1) * H]).max()) > 0 for k in kept)


# bfloat16 keeps 8 significant bits, so every rounding is off by up to 2^-9 (0.2%) relative. Against a
# float32 run on the same bf16-valued weights and inputs, 6 steps of these cells with |h| < 1 differ by at
# most 0.007 (measured; GRU and RNN are the largest). 0.02 leaves room for that, while a cell that
# computed the wrong thing in bf16 (a dropped term, a saturating cast) would be off by O(0.1). Where c
# lives is pinned by the dtype assertions, not by the tolerance.
BF16_ATOL = 0.02


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_bfloat16_runs_close_to_float32_and_keeps_c_in_float32(name, opts):
    T, B, D, H = 6, 2, 3, 8
    params16 = random_params(name, opts, jax.random.key(3), D, H, jnp.bfloat16)
    xs16 = jax.random.normal(jax.random.key(4), (T, B, D)).astype(jnp.bfloat16)
    params32 = jax.tree.map(lambda a: a.astype(jnp.float32), params16)
    final32, hs32 = cells.scan(name, params32, xs16.astype(jnp.float32), **opts)

    final16, hs16 = cells.scan(name, params16, xs16, **opts)  # bf16 params and inputs
    assert hs16.dtype == jnp.bfloat16
    np.testing.assert_allclose(hs16.astype(jnp.float32), hs32, atol=BF16_ATOL)

    _, hs_mixed = cells.scan(name, params32, xs16, **opts)  # bf16 inputs, float32 params
    assert hs_mixed.dtype == jnp.float32
    np.testing.assert_allclose(hs_mixed, hs32, atol=1e-5)

    if name in ("lstm", "peephole"):
        assert final16.h.dtype == jnp.bfloat16
        assert final16.c.dtype == jnp.float32
        np.testing.assert_allclose(final16.c, final32.c, atol=2 * BF16_ATOL)


# ----------------------------------------------------------------------------------------------------
# Worked examples
# ----------------------------------------------------------------------------------------------------

WORKED_BATCH = [[1.0, 2.0, 3.0, 4.0, 3.0, 2.0], [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]]


@pytest.mark.parametrize("name", ["lstm", "peephole"])
def test_one_step_of_a_size_3_cell_gives_h_equal_o_times_tanh_c(name):
    """Batch of 2 examples with 6 features, one step from the zero state: state (c, h) of shape (2, 3)."""
    x = jnp.array(WORKED_BATCH)
    params = random_params(name, {}, jax.random.key(5), 6, 3)
    carry, out = cells.step(name, params, cells.initial_carry(name, 2, 3), x)
    assert out.shape == carry.h.shape == carry.c.shape == (2, 3)
    np.testing.assert_array_equal(out, carry.h)

    # The output gate computed independently: h_{t-1} = 0, so only the input part and the peephole
    # from the new c remain.
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    z_o = np.asarray(WORKED_BATCH) @ p["w_i"][:, 9:12] + p["b"][9:12]
    if name == "peephole":
        z_o = z_o + p["p_o"] * np.asarray(carry.c, np.float64)
    o = 1.0 / (1.0 + np.exp(-z_o))
    np.testing.assert_allclose(carry.h, o * np.tanh(np.asarray(carry.c)), rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(np.asarray(carry.c)) > 1e-3)  # the example does move the state


def test_three_stacked_size_3_layers_return_one_state_per_layer():
    """A (batch 2, time 3, features 6) batch through 3 LSTM layers of size 3, layer by layer."""
    xs = jnp.array([WORKED_BATCH, WORKED_BATCH[::-1], WORKED_BATCH]).transpose(1, 0, 2)  # (2, 3, 6)
    keys = jax.random.split(jax.random.key(6), 3)
    layers = [cells.init("lstm", keys[0], 6, 3)] + [cells.init("lstm", k, 3, 3) for k in keys[1:]]
    hs = jnp.swapaxes(xs, 0, 1)  # time-major for the cells
    states = []
    for params in layers:
        state, hs = cells.scan("lstm", params, hs)
        states.append(state)
    assert len(states) == 3
    for state in states:
        assert isinstance(state, cells.LSTMState)
        assert state.h.shape == state.c.shape == (2, 3)
    np.testing.assert_array_equal(states[-1].h, hs[-1])
    assert not np.allclose(states[0].h, states[1].h)  # each layer has its own state


# ----------------------------------------------------------------------------------------------------
# Purity of the cell core
# ----------------------------------------------------------------------------------------------------


def test_cells_import_no_flax_hydra_and_do_no_io():
    env = dict(os.environ, PYTHONPATH=str(WORKTREE), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the tests' shared XLA cache is JAX's I/O, not the cells'
    result = subprocess.run(program("cells_purity"), env=env, cwd=WORKTREE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "pure"
