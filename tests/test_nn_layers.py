"""The NNX layers compute exactly what the functional cells compute, and their extras (stacking, dropout,
bidirectional, learned initial carry, batch-major input) behave as documented."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab import cells
from lstmlab.nn import Recurrent, RecurrentStack, dropout

T, B, D, H = 5, 3, 2, 4
LENGTHS = jnp.array([5, 2, 4])


def inputs(seed=0):
    return jax.random.normal(jax.random.key(seed), (T, B, D))


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cell,options",
    [("peephole", {"variant": "FGR"}), ("gru", {}), ("rnn", {"activation": "relu"})],
    ids=["peephole-FGR", "gru", "rnn-relu"],
)
def test_recurrent_equals_cells_scan_with_its_cell_params(cell, options):
    layer = Recurrent(cell, D, H, rngs=nnx.Rngs(0), **options)
    assert layer.options == cells.cell_options(cell, **options)
    params = layer.cell_params()
    assert set(params) == set(cells.init(cell, jax.random.key(0), D, H, **options))
    for reverse in (False, True):
        got_carry, got = layer(inputs(), seq_lengths=LENGTHS, reverse=reverse)
        want_carry, want = cells.scan(cell, params, inputs(), seq_lengths=LENGTHS, reverse=reverse, **options)
        close(got, want)
        for a, b in zip(jax.tree.leaves(got_carry), jax.tree.leaves(want_carry)):
            close(a, b)


def chain(stack, xs, seq_lengths=None):
    """The stack without dropout, layer by layer through cells.scan."""
    carries, hs = [], xs
    for layer in stack.layers:
        carry, hs = cells.scan(layer.cell, layer.cell_params(), hs, seq_lengths=seq_lengths, **layer.options)
        carries.append(carry)
    return carries, hs


def test_stack_without_dropout_key_is_deterministic_and_equals_the_chained_cells():
    stack = RecurrentStack("lstm", D, H, num_layers=3, dropout=0.5, rngs=nnx.Rngs(0))
    carries, hs = stack(inputs(), seq_lengths=LENGTHS)
    again_carries, again = stack(inputs(), seq_lengths=LENGTHS)
    np.testing.assert_array_equal(hs, again)
    want_carries, want = chain(stack, inputs(), LENGTHS)
    assert len(carries) == 3 and hs.shape == (T, B, H)
    close(hs, want)
    for got, ref in zip(carries, want_carries):
        close(got.h, ref.h)
        close(got.c, ref.c)


def test_dropout_key_zeroes_the_expected_fraction_and_rescales_the_rest():
    rate = 0.4
    stack = RecurrentStack("lstm", D, 16, num_layers=1, dropout=rate, rngs=nnx.Rngs(0))
    xs = jax.random.normal(jax.random.key(1), (8, 4, D))
    _, clean = stack(xs)
    _, noisy = stack(xs, dropout_key=jax.random.key(2))
    _, same = stack(xs, dropout_key=jax.random.key(2))
    _, other = stack(xs, dropout_key=jax.random.key(3))

    np.testing.assert_array_equal(noisy, same)  # the mask is a pure function of the key
    assert not np.array_equal(noisy, other)
    dropped = np.asarray(noisy) == 0
    assert not np.any(np.asarray(clean) == 0)
    # 512 draws: the zeroed fraction has a standard deviation of sqrt(0.4 * 0.6 / 512) = 0.022.
    assert abs(dropped.mean() - rate) < 0.09
    close(np.asarray(noisy)[~dropped], np.asarray(clean)[~dropped] / (1 - rate))


def test_dropout_between_layers_changes_what_the_next_layer_sees():
    stack = RecurrentStack("gru", D, H, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    carries_clean, _ = stack(inputs())
    carries_noisy, _ = stack(inputs(), dropout_key=jax.random.key(0))
    np.testing.assert_array_equal(carries_clean[0], carries_noisy[0])  # first layer sees the raw input
    assert not np.allclose(carries_clean[1], carries_noisy[1])


def test_dropout_function_is_inverted_dropout():
    x = jnp.ones((1000,))
    y = dropout(jax.random.key(0), x, 0.25)
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float(jnp.mean(y == 0)) - 0.25) < 0.05


def test_bidirectional_backward_half_equals_reverse_scan_with_seq_lengths():
    stack = RecurrentStack("lstm", D, H, num_layers=1, bidirectional=True, rngs=nnx.Rngs(0))
    (carry,), hs = stack(inputs(), seq_lengths=LENGTHS)
    assert hs.shape == (T, B, 2 * H)
    layer = stack.layers[0]
    fwd_carry, fwd = cells.scan("lstm", layer.forward.cell_params(), inputs(), seq_lengths=LENGTHS)
    bwd_carry, bwd = cells.scan("lstm", layer.backward.cell_params(), inputs(), seq_lengths=LENGTHS, reverse=True)
    close(hs[..., :H], fwd)
    close(hs[..., H:], bwd)
    close(carry[0].h, fwd_carry.h)
    close(carry[1].h, bwd_carry.h)
    assert not np.allclose(layer.forward.w_h[...], layer.backward.w_h[...])  # two separate layers


def test_stacked_bidirectional_layers_take_2h_inputs():
    stack = RecurrentStack("rnn", D, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    assert stack.layers[1].forward.w_i.shape == (2 * H, H)
    _, hs = stack(inputs())
    assert hs.shape == (T, B, 2 * H)


def test_learned_initial_carry_is_a_param_used_by_the_layer_and_gets_a_gradient():
    layer = Recurrent("lstm", D, H, rngs=nnx.Rngs(0), learn_initial_carry=True)
    assert all(isinstance(v, nnx.Param) for v in layer.initial)
    _, before = layer(inputs())
    close(before, cells.scan("lstm", layer.cell_params(), inputs())[1])  # starts at zero

    grads = nnx.grad(lambda m: jnp.sum(m(inputs())[1] ** 2))(layer)
    for g in (grads["initial"][0], grads["initial"][1]):  # h0 and c0
        assert g[...].shape == (H,) and float(jnp.abs(g[...]).max()) > 0

    h0, c0 = jnp.full((H,), 0.3), jnp.full((H,), -0.7)
    layer.initial[0][...] = h0
    layer.initial[1][...] = c0
    start = cells.LSTMState(jnp.broadcast_to(h0, (B, H)), jnp.broadcast_to(c0, (B, H)))
    _, after = layer(inputs())
    close(after, cells.scan("lstm", layer.cell_params(), inputs(), start)[1])
    assert not np.allclose(after, before)


def test_learned_initial_carry_of_fgr_has_one_param_per_carry_part():
    layer = Recurrent("lstm", D, H, rngs=nnx.Rngs(0), learn_initial_carry=True, variant="FGR")
    assert [v[...].shape for v in layer.initial] == [(H,), (H,), (3 * H,)]
    carry, _ = layer(inputs())
    assert isinstance(carry, cells.FGRState)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["unidirectional", "bidirectional"])
def test_each_stack_layer_gives_the_initial_carry_it_starts_from(bidirectional):
    """What stateful training passes in (layer.initial_carry per layer) equals the default start."""
    stack = RecurrentStack(
        "lstm", D, H, num_layers=2, bidirectional=bidirectional, rngs=nnx.Rngs(0), learn_initial_carry=True
    )
    first = stack.layers[0].forward if bidirectional else stack.layers[0]
    first.initial[0][...] = jnp.full((H,), 0.5)
    explicit = [layer.initial_carry(B) for layer in stack.layers]
    _, default = stack(inputs())
    _, given = stack(inputs(), explicit)
    np.testing.assert_array_equal(given, default)
    _, from_zero = stack(inputs(), jax.tree.map(jnp.zeros_like, explicit))
    assert not np.allclose(from_zero, default)


def test_batch_major_equals_transposed_time_major():
    time_major = RecurrentStack("lstm", D, H, num_layers=2, rngs=nnx.Rngs(0))
    batch_major = RecurrentStack("lstm", D, H, num_layers=2, time_major=False, rngs=nnx.Rngs(0))
    carries_t, hs_t = time_major(inputs(), seq_lengths=LENGTHS)
    carries_b, hs_b = batch_major(jnp.swapaxes(inputs(), 0, 1), seq_lengths=LENGTHS)
    np.testing.assert_array_equal(hs_b, jnp.swapaxes(hs_t, 0, 1))
    for a, b in zip(jax.tree.leaves(carries_t), jax.tree.leaves(carries_b)):
        np.testing.assert_array_equal(a, b)


def test_stack_runs_under_nnx_jit():
    stack = RecurrentStack("peephole", D, H, num_layers=2, dropout=0.3, rngs=nnx.Rngs(0), variant="CIFG")
    run = nnx.jit(lambda m, x, k: m(x, dropout_key=k)[1])
    close(run(stack, inputs(), jax.random.key(0)), stack(inputs(), dropout_key=jax.random.key(0))[1])


def test_bad_stack_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="num_layers=0"):
        RecurrentStack("lstm", D, H, num_layers=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout=1.0"):
        RecurrentStack("lstm", D, H, dropout=1.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="valid: lstm, peephole, gru, rnn"):
        RecurrentStack("lstn", D, H, rngs=nnx.Rngs(0))


def test_init_knobs_reach_every_layer_of_a_model_from_the_config():
    from lstmlab.config import Config
    from lstmlab.data import DataSpec
    from lstmlab.train import build_model

    config = Config()
    config.cell.chrono_tmax, config.model.hidden_size, config.model.num_layers = 50.0, 8, 2
    model = build_model(config, DataSpec(kind="lm", output_size=5, vocab_size=5))
    for layer in model.rnn.layers:
        i, f, g, o = np.split(np.asarray(layer.b[...]), 4)
        assert np.all((f >= 0) & (f <= np.log(49) + 1e-6)) and np.std(f) > 0.1
        np.testing.assert_array_equal(i, -f)
    config.cell.chrono_tmax, config.cell.forget_bias = 0.0, 2.0
    model = build_model(config, DataSpec(kind="lm", output_size=5, vocab_size=5))
    for layer in model.rnn.layers:
        np.testing.assert_array_equal(np.split(np.asarray(layer.b[...]), 4)[1], 2.0)
