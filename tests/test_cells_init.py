"""Initialisation knobs: orthogonal recurrent blocks times ``recurrent_scale``, ``forget_bias`` in the
slice of the gate that keeps the old state, named input initialisers, and which parameters exist."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmlab import cells

D, H = 5, 4


@pytest.mark.parametrize("recurrent_scale", [0.5, 1.0, 1.7])
@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_recurrent_blocks_are_orthogonal_times_recurrent_scale(name, recurrent_scale):
    params = cells.init(name, jax.random.key(0), D, H, recurrent_scale=recurrent_scale)
    G = cells.num_gates(name)
    assert params["w_h"].shape == (H, G * H)
    blocks = np.split(np.asarray(params["w_h"], np.float64), G, axis=1)
    for block in blocks:
        np.testing.assert_allclose(np.linalg.svd(block, compute_uv=False), recurrent_scale, rtol=1e-5)
    for a, b in zip(blocks, blocks[1:]):
        assert not np.allclose(a, b), "each gate's block is drawn independently"


def test_recurrent_scale_zero_gives_zero_and_negative_is_an_error():
    assert not np.any(np.asarray(cells.init("lstm", jax.random.key(0), D, H, recurrent_scale=0.0)["w_h"]))
    with pytest.raises(ValueError, match="recurrent_scale=-1.0 must be >= 0"):
        cells.init("lstm", jax.random.key(0), D, H, recurrent_scale=-1.0)


@pytest.mark.parametrize("name", ["lstm", "peephole"])
def test_forget_bias_fills_the_forget_gate_slice_only(name):
    b = np.asarray(cells.init(name, jax.random.key(0), D, H, forget_bias=2.5)["b"])
    i, f, g, o = np.split(b, 4)
    np.testing.assert_array_equal(f, 2.5)
    assert not np.any(np.concatenate([i, g, o]))


def test_forget_bias_fills_the_gru_update_gate_bias():
    params = cells.init("gru", jax.random.key(0), D, H, forget_bias=2.5)
    r, z, n = np.split(np.asarray(params["b_i"]), 3)
    np.testing.assert_array_equal(z, 2.5)  # z near 1 keeps the old state, like an open forget gate
    assert not np.any(np.concatenate([r, n])) and not np.any(np.asarray(params["b_h"]))
    assert not np.any(np.asarray(cells.init("rnn", jax.random.key(0), D, H, forget_bias=2.5)["b"]))


@pytest.mark.parametrize("name", ["lstm", "peephole", "gru"])
def test_chrono_init_spreads_forget_biases_over_log_1_to_log_tmax(name):
    tmax, hidden = 120.0, 2000
    plain = cells.init(name, jax.random.key(3), D, hidden)
    chrono = cells.init(name, jax.random.key(3), D, hidden, chrono_tmax=tmax)
    key = "b_i" if name == "gru" else "b"
    blocks = np.split(np.asarray(chrono[key], np.float64), 3 if name == "gru" else 4)
    keep = blocks[1]  # the LSTM forget gate, the GRU update gate z
    # log(U(1, T - 1)): within its bounds, and its distribution function is exp(b) - 1 over T - 2
    assert keep.min() >= 0.0 and keep.max() <= np.log(tmax - 1) + 1e-6
    for q in (0.1, 0.5, 0.9):
        assert abs(np.mean(keep <= np.log(1 + q * (tmax - 2))) - q) < 0.03
    if name == "gru":
        assert not np.any(np.concatenate([blocks[0], blocks[2]]))
    else:
        np.testing.assert_array_equal(blocks[0], -keep)  # input gate bias = -forget gate bias
        assert not np.any(np.concatenate([blocks[2], blocks[3]]))
    for k in plain:  # every other parameter is drawn exactly as without chrono
        if k != key:
            np.testing.assert_array_equal(np.asarray(plain[k]), np.asarray(chrono[k]))
    rnn = cells.init("rnn", jax.random.key(3), D, H, chrono_tmax=tmax)
    assert not np.any(np.asarray(rnn["b"]))  # no gate: ignored
    with pytest.raises(ValueError, match="chrono_tmax=2.0 must be 0 \\(off\\) or > 2"):
        cells.init(name, jax.random.key(0), D, H, chrono_tmax=2.0)


@pytest.mark.parametrize("input_init", sorted(cells.INPUT_INITIALIZERS))
def test_every_named_input_init_draws_independent_blocks(input_init):
    w = np.asarray(cells.init("lstm", jax.random.key(0), D, H, input_init=input_init)["w_i"])
    assert w.shape == (D, 4 * H) and np.all(np.isfinite(w))
    blocks = np.split(w, 4, axis=1)
    assert all(np.std(b) > 0 for b in blocks)
    assert not np.allclose(blocks[0], blocks[1])


def test_uniform_and_glorot_uniform_stay_within_their_bounds():
    w = np.asarray(cells.init("lstm", jax.random.key(0), D, H, input_init="uniform")["w_i"])
    assert np.abs(w).max() <= 1 / np.sqrt(H)  # PyTorch: U(-1/sqrt(H), 1/sqrt(H))
    w = np.asarray(cells.init("lstm", jax.random.key(0), D, H, input_init="glorot_uniform")["w_i"])
    assert np.abs(w).max() <= np.sqrt(6 / (D + H))  # per (D, H) block: fan_in D, fan_out H


def test_unknown_input_init_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"input_init='xavier' is not an initialiser; valid: glorot_uniform"):
        cells.init("lstm", jax.random.key(0), D, H, input_init="xavier")


@pytest.mark.parametrize(
    "name,variant,expected",
    [
        ("lstm", "vanilla", {"w_i", "w_h", "b"}),
        ("lstm", "FGR", {"w_i", "w_h", "b", "w_fgr"}),
        ("peephole", "vanilla", {"w_i", "w_h", "b", "p_i", "p_f", "p_o"}),
        ("peephole", "NP", {"w_i", "w_h", "b"}),
        ("peephole", "CIFG", {"w_i", "w_h", "b", "p_i", "p_f", "p_o"}),
        ("peephole", "FGR", {"w_i", "w_h", "b", "p_i", "p_f", "p_o", "w_fgr"}),
    ],
)
def test_parameters_of_each_variant_and_their_zero_start(name, variant, expected):
    params = cells.init(name, jax.random.key(0), D, H, variant=variant)
    assert set(params) == expected
    assert params["w_i"].shape == (D, 4 * H) and params["b"].shape == (4 * H,)  # full layout kept
    for k in ("p_i", "p_f", "p_o"):
        if k in params:
            assert params[k].shape == (H,) and not np.any(np.asarray(params[k]))
    if "w_fgr" in params:
        assert params["w_fgr"].shape == (3 * H, 3 * H) and not np.any(np.asarray(params["w_fgr"]))


def test_init_is_a_pure_function_of_the_key_and_honours_dtype():
    a = cells.init("peephole", jax.random.key(7), D, H, dtype=jnp.bfloat16)
    b = cells.init("peephole", jax.random.key(7), D, H, dtype=jnp.bfloat16)
    c = cells.init("peephole", jax.random.key(8), D, H, dtype=jnp.bfloat16)
    assert all(v.dtype == jnp.bfloat16 for v in a.values())
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["w_i"], c["w_i"])


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(ValueError, match="hidden_size=0"):
        cells.init("gru", jax.random.key(0), D, 0)
