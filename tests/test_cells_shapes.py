"""Wrong-shaped parameters are a ValueError naming the key, its shape and the expected one, in
``cells.scan``, ``cells.step`` and the NNX layers, also under jit (shapes are static)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from lstmlab import cells
from lstmlab.nn import Recurrent

T, B, D, H = 3, 2, 32, 128


def _lstm():
    return cells.init("lstm", jax.random.key(0), D, H), jnp.ones((T, B, D))


def test_transposed_pytorch_weight_names_key_shapes_and_the_transpose():
    params, xs = _lstm()
    params["w_i"] = params["w_i"].T
    want = (
        "params['w_i'] has shape (512, 32); expected (32, 512) (input_size=32, 4*hidden_size=512); "
        "PyTorch weights need a transpose"
    )
    with pytest.raises(ValueError, match=re.escape(want)):
        cells.scan("lstm", params, xs)
    with pytest.raises(ValueError, match=re.escape(want)):
        jax.jit(lambda p, x: cells.scan("lstm", p, x))(params, xs)
    with pytest.raises(ValueError, match=re.escape(want)):
        cells.step("lstm", params, cells.initial_carry("lstm", B, H), xs[0])


def test_transposed_recurrent_weight_and_wrong_peephole():
    params = cells.init("peephole", jax.random.key(0), 3, 4)
    xs = jnp.ones((T, B, 3))
    bad = dict(params, w_h=params["w_h"].T)
    with pytest.raises(
        ValueError,
        match=re.escape("params['w_h'] has shape (16, 4); expected (4, 16) (hidden_size=4, 4*hidden_size=16); PyTorch"),
    ):
        cells.scan("peephole", bad, xs)
    bad = dict(params, p_o=jnp.zeros((5,)))
    with pytest.raises(ValueError, match=re.escape("params['p_o'] has shape (5,); expected (4,) (hidden_size=4)")):
        cells.scan("peephole", bad, xs)


def test_missing_and_extra_keys_are_named():
    params = cells.init("peephole", jax.random.key(0), 3, 4)
    xs = jnp.ones((T, B, 3))
    with pytest.raises(ValueError, match="missing 'p_f'.*expected keys w_i, w_h, b, p_i, p_f, p_o"):
        cells.scan("peephole", {k: v for k, v in params.items() if k != "p_f"}, xs)
    with pytest.raises(ValueError, match="unexpected 'p_i', 'p_f', 'p_o'"):
        cells.scan("lstm", params, xs)  # peephole weights given to the plain LSTM


def test_keras_stacked_gru_bias_gets_a_hint():
    params = cells.init("gru", jax.random.key(0), 3, 4)
    params["b_i"] = jnp.zeros((2, 12))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "params['b_i'] has shape (2, 12); expected (12,) (3*hidden_size=12); a (2, N) bias is Keras's stacked"
        )
        + ".*b_i = b\\[0\\] and b_h = b\\[1\\]",
    ):
        cells.scan("gru", params, jnp.ones((T, B, 3)))


def test_xs_whose_last_axis_does_not_match_w_i():
    params = cells.init("rnn", jax.random.key(0), 3, 4)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "xs has shape (3, 2, 5), last axis 5, but params['w_i'] has shape (3, 4): the cell takes inputs of size 3"
        ),
    ):
        cells.scan("rnn", params, jnp.ones((T, B, 5)))
    with pytest.raises(ValueError, match=re.escape("x has shape (2, 5)")):
        cells.step("rnn", params, jnp.zeros((B, 4)), jnp.ones((B, 5)))


def test_check_params_reads_sizes_off_the_weights_and_accepts_correct_ones():
    params = cells.init("gru", jax.random.key(0), 3, 4, reset_after=False)
    assert cells.check_params("gru", params) is None
    assert cells.param_shapes("gru", 3, 4) == {k: v.shape for k, v in params.items()}
    with pytest.raises(ValueError, match=re.escape("params['w_i'] has shape (3, 12); expected (5, 12)")):
        cells.check_params("gru", params, input_size=5)


def test_layer_with_wrong_shaped_weights_assigned_raises_on_call():
    layer = Recurrent("lstm", D, H, rngs=nnx.Rngs(0))
    layer.w_i = nnx.Param(layer.w_i[...].T)
    with pytest.raises(ValueError, match=re.escape("params['w_i'] has shape (512, 32); expected (32, 512)")):
        layer(jnp.ones((T, B, D)))
    layer = Recurrent("gru", 3, 4, rngs=nnx.Rngs(0))
    layer.b_h = nnx.Param(jnp.zeros((2, 12)))
    with pytest.raises(ValueError, match=re.escape("params['b_h'] has shape (2, 12); expected (12,)")):
        layer(jnp.ones((T, B, 3)))
