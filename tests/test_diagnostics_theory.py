"""The gradient diagnostics against theory: exact powers for a linear RNN, the Pascanu et al. (2013)
bound for tanh, the LSTM's long memory at initialisation, and the probe gradients against an independent
route. Runs in float64 (scoped to this module) so "exact" can mean ~1e-10."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmlab import cells
from lstmlab import diagnostics as dg

T, B, D, H = 30, 3, 4, 6
RHOS = (0.9, 1.0, 1.1)


@pytest.fixture(autouse=True, scope="module")
def float64():
    with jax.enable_x64(True):
        yield


def orthogonal(seed: int, size: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((size, size)))
    return q * np.sign(np.diag(r))  # exactly orthogonal in float64, unlike the float32 init


def rnn_params(rho: float, seed: int = 0) -> dict:
    params = cells.init("rnn", jax.random.key(seed), D, H, dtype=jnp.float64)
    params["w_h"] = jnp.asarray(rho * orthogonal(seed, H))
    return params


def inputs(seed: int = 1, length: int = T) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (length, B, D), jnp.float64)


def last_step_loss(seed: int = 2):
    v = jax.random.normal(jax.random.key(seed), (B, H), jnp.float64)
    return lambda hs: jnp.sum(hs[-1] * v)


@pytest.mark.parametrize("rho", RHOS)
def test_linear_rnn_gradient_norm_is_exactly_rho_to_the_distance(rho):
    layer = ("rnn", rnn_params(rho), {"activation": "identity"})
    norms = np.asarray(dg.state_grad_norms([layer], inputs(), last_step_loss()).h[0])  # (T, B)
    ratio = norms / norms[-1]
    expected = rho ** np.arange(T)[::-1, None]  # distance T-1-t from the loss
    np.testing.assert_allclose(ratio, np.broadcast_to(expected, ratio.shape), rtol=1e-10)
    assert dg.fit_decay_rate(dg.batch_mean(norms)).rate == pytest.approx(rho, rel=1e-10)


def test_tanh_rnn_with_spectral_radius_below_one_vanishes_at_least_as_fast_as_rho_to_the_k():
    # ||dh_t/dh_{t-1}|| <= ||w_h|| max tanh' <= rho (Pascanu, Mikolov & Bengio 2013); for a scaled
    # orthogonal w_h the spectral radius and the largest singular value are both rho.
    rho = 0.9
    norms = np.asarray(dg.state_grad_norms([("rnn", rnn_params(rho), {})], inputs(), last_step_loss()).h[0])
    ratio = norms / norms[-1]
    bound = rho ** np.arange(T)[::-1, None]
    assert np.all(ratio <= bound * (1 + 1e-12)), f"max ratio/bound {np.max(ratio / bound):.6g}"
    # with real inputs tanh' < 1, so over 29 steps the gradient falls well below the linear bound
    assert np.all(ratio[0] < 0.5 * bound[0]), f"ratio at k={T - 1}: {ratio[0]}, bound {bound[0, 0]:.3g}"


def test_lstm_with_forget_bias_one_keeps_far_more_gradient_100_steps_back_than_a_tanh_rnn():
    # Both at the library's default initialisation (glorot inputs, orthogonal recurrent blocks of
    # scale 1, LSTM forget bias 1), same size, same N(0, 1) inputs, loss at the last step.
    length, size = 101, 32
    xs = jax.random.normal(jax.random.key(1), (length, 8, 8), jnp.float64)
    v = jax.random.normal(jax.random.key(2), (8, size), jnp.float64)
    kept = {}
    for name in ("lstm", "rnn"):
        params = cells.init(name, jax.random.key(0), 8, size, forget_bias=1.0, dtype=jnp.float64)
        curve = np.asarray(
            dg.batch_mean(dg.state_grad_norms([(name, params)], xs, lambda hs: jnp.sum(hs[-1] * v)).h[0])
        )
        kept[name] = curve[0] / curve[-1]  # ||dL/dh_{T-100}|| / ||dL/dh_T||
    advantage = kept["lstm"] / kept["rnn"]
    # measured here: lstm 5.3e-7, rnn 5.9e-15 of the last step's norm, 9.1e7 times more (other seeds
    # of a float32 run: 1e7 to 4e7); the bound leaves two orders of magnitude of margin
    message = (
        f"100 steps back the LSTM keeps {kept['lstm']:.3g} of the last step's gradient norm, "
        f"the tanh RNN {kept['rnn']:.3g}: {advantage:.3g} times more"
    )
    print(message)
    assert advantage > 1e5, message


def direct_state_grads(layers, xs, loss_fn, seq_lengths, layer: int, t: int):
    """dL/ds_t of one layer by an independent route: run ``cells.scan`` up to t, then differentiate
    the continuation (the rest of this layer and all layers above) with respect to the state at t."""
    specs = dg.as_layers(layers)
    lengths = jnp.asarray(seq_lengths)
    hs = xs
    for cell, params, options in specs[:layer]:
        _, hs = cells.scan(cell, params, hs, seq_lengths=lengths, **options)
    cell, params, options = specs[layer]
    size = params["w_h"].shape[0]
    prefix = (
        cells.scan(cell, params, hs[:t], seq_lengths=lengths, **options)[1]
        if t > 0
        else jnp.zeros((0, xs.shape[1], size), xs.dtype)
    )
    state_t, _ = cells.scan(cell, params, hs[: t + 1], seq_lengths=lengths, **options)
    valid_t = (t < lengths)[:, None]

    def loss_of_state(state):
        out_t = jnp.where(valid_t, state.h if hasattr(state, "h") else state, 0.0)
        parts = [prefix, out_t[None]]
        if t + 1 < xs.shape[0]:
            _, rest = cells.scan(
                cell, params, hs[t + 1 :], state, seq_lengths=jnp.clip(lengths - (t + 1), 0), **options
            )
            parts.append(rest)
        top = jnp.concatenate(parts)
        for cell_above, params_above, options_above in specs[layer + 1 :]:
            _, top = cells.scan(cell_above, params_above, top, seq_lengths=lengths, **options_above)
        return loss_fn(top)

    return jax.grad(loss_of_state)(state_t)


def test_probe_gradients_equal_direct_gradients_with_respect_to_each_state():
    length, size = 5, 4
    key = jax.random.key(3)
    layers = [
        ("lstm", cells.init("lstm", key, D, size, dtype=jnp.float64), {}),
        ("gru", cells.init("gru", jax.random.fold_in(key, 1), size, size, dtype=jnp.float64)),
    ]
    xs = inputs(4, length)
    seq_lengths = jnp.array([5, 3, 1])
    targets = jax.random.normal(jax.random.key(5), (length, B, size), jnp.float64)

    def loss_fn(hs):  # a loss at every step
        return jnp.sum(jnp.tanh(hs) * targets) + 0.5 * jnp.sum(hs**2)

    result = dg.state_grad_norms(layers, xs, loss_fn, seq_lengths=seq_lengths)
    assert result.c[1] is None and result.c[0].shape == (length, B)
    for layer in (0, 1):
        for t in (0, 2, length - 1):  # first, middle (padded for one example), last
            direct = jax.jit(lambda xs: direct_state_grads(layers, xs, loss_fn, seq_lengths, layer, t))(xs)
            h = direct.h if hasattr(direct, "h") else direct
            np.testing.assert_allclose(
                result.h[layer][t],
                jnp.linalg.norm(h, axis=-1),
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"dL/dh at layer {layer}, t={t}",
            )
            if layer == 0:
                np.testing.assert_allclose(
                    result.c[0][t], jnp.linalg.norm(direct.c, axis=-1), rtol=1e-9, atol=1e-12, err_msg=f"dL/dc at t={t}"
                )
    # padded steps do not reach the loss, real ones do
    assert np.all(np.asarray(result.h[0])[3:, 1] == 0) and np.all(np.asarray(result.h[0])[:3, 1] > 0)


@pytest.mark.parametrize("rho", RHOS)
def test_linear_rnn_jacobian_singular_values_are_rho_to_the_k(rho):
    layer = ("rnn", rnn_params(rho), {"activation": "identity"})
    spectra = np.asarray(dg.state_jacobian_spectra([layer], inputs(length=12))[0])  # (K, B, H)
    expected = rho ** np.arange(1, 13)[:, None, None]
    np.testing.assert_allclose(spectra, np.broadcast_to(expected, spectra.shape), rtol=1e-10)


@pytest.mark.parametrize("state", dg.STATES)
def test_lstm_jacobian_spectra_equal_the_jacobian_of_the_composed_steps(state):
    length, size = 6, 3
    params = cells.init("lstm", jax.random.key(6), D, size, dtype=jnp.float64)
    xs = inputs(7, length)
    spectra = np.asarray(dg.state_jacobian_spectra([("lstm", params)], xs, state=state)[0])
    assert spectra.shape == (length, B, 2 * size if state == "full" else size)
    for k in (1, 3, length):
        start = (
            cells.scan("lstm", params, xs[: length - k, :1])[0]
            if k < length  # s_{T-k}, example 0
            else cells.initial_carry("lstm", 1, size, jnp.float64)
        )

        def final_state(h, c):
            carry, _ = cells.scan("lstm", params, xs[length - k :, :1], cells.LSTMState(h, c))
            return jnp.concatenate([carry.h[0], carry.c[0]])

        jac_h, jac_c = jax.jit(jax.jacrev(final_state, argnums=(0, 1)))(start.h, start.c)
        full = jnp.concatenate([jac_h[:, 0], jac_c[:, 0]], axis=1)  # (2H, 2H)
        matrix = full if state == "full" else full[:size, :size]
        np.testing.assert_allclose(
            spectra[k - 1, 0], jnp.linalg.svd(matrix, compute_uv=False), rtol=1e-9, atol=1e-14, err_msg=f"k={k}"
        )
