"""The diagnostics' plumbing: shapes, jit, errors, the decay fit, plots and clipping metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lstmlab import cells
from lstmlab import diagnostics as dg
from lstmlab.nn import RecurrentStack
from lstmlab.train.optim import clipping

T, B, D, H = 7, 3, 4, 5


def stack(names=("lstm", "rnn")):
    keys = jax.random.split(jax.random.key(0), len(names))
    sizes = [D] + [H] * (len(names) - 1)
    return [(name, cells.init(name, key, size, H), {}) for name, key, size in zip(names, keys, sizes)]


def test_state_grad_norms_shapes_under_jit_and_batch_means():
    layers = stack()
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    params = [p for _, p, _ in layers]

    @jax.jit
    def run(params, xs):
        return dg.state_grad_norms(
            [("lstm", params[0]), ("rnn", params[1])], xs, lambda hs: jnp.sum(hs**2), seq_lengths=jnp.array([7, 4, 2])
        )

    result = run(params, xs)
    assert [h.shape for h in result.h] == [(T, B), (T, B)]
    assert result.c[0].shape == (T, B) and result.c[1] is None
    curves = dg.norm_curves(result, seq_lengths=jnp.array([7, 4, 2]))
    assert sorted(curves) == ["layer0/c", "layer0/h", "layer1/h"]
    # steps 4..6 are covered by example 0 only, so the mean there is example 0's norm
    np.testing.assert_allclose(curves["layer1/h"][4:], result.h[1][4:, 0], rtol=1e-6)
    np.testing.assert_allclose(curves["layer1/h"][:2], result.h[1][:2].mean(axis=1), rtol=1e-6)
    assert np.isnan(dg.batch_mean(jnp.ones((3, 2)), jnp.array([1, 2]))[2])


def test_state_grad_norms_rejects_bad_input_with_a_named_reason():
    layers = stack()
    xs = jnp.zeros((T, B, D))
    with pytest.raises(ValueError, match=r"layers\[1\] takes inputs of size 4, but gets 5"):
        dg.state_grad_norms([layers[0], ("rnn", cells.init("rnn", jax.random.key(0), D, H))], xs, jnp.sum)
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        dg.state_grad_norms(layers, xs, lambda hs: hs[-1])
    with pytest.raises(ValueError, match="time-major"):
        dg.state_grad_norms(layers, xs[0], jnp.sum)
    with pytest.raises(ValueError, match=r"layers\[0\] must be"):
        dg.state_grad_norms(["lstm"], xs, jnp.sum)
    with pytest.raises(ValueError, match="valid: full, h"):
        dg.state_jacobian_spectra(layers, xs, state="c")
    with pytest.raises(ValueError, match="max_distance=8"):
        dg.state_jacobian_spectra(layers, xs, max_distance=8)


def test_end_aligned_batch_mean_puts_every_sequence_end_at_the_last_entry():
    norms = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, 0.0], [3.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    lengths = jnp.array([4, 2, 1])  # padded steps have norm 0
    # entry t is at distance 3 - t from each end: distance 0 holds 4, 20, 100; distance 1 holds 3, 10
    np.testing.assert_allclose(
        dg.batch_mean(norms, lengths, align="end"), [1.0, 2.0, (3.0 + 10.0) / 2, (4.0 + 20.0 + 100.0) / 3]
    )
    np.testing.assert_allclose(dg.batch_mean(norms, lengths), [37.0, 11.0, 3.0, 4.0])
    np.testing.assert_allclose(dg.batch_mean(norms, align="end"), norms.mean(axis=1))
    with pytest.raises(ValueError, match="valid: start, end"):
        dg.batch_mean(norms, lengths, align="left")


def test_jacobian_spectra_of_a_stack_have_one_row_per_distance_in_descending_order():
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    spectra = dg.state_jacobian_spectra(stack(("lstm", "gru")), xs, max_distance=4)
    assert [s.shape for s in spectra] == [(4, B, 2 * H), (4, B, H)]
    for s in spectra:
        assert np.all(np.diff(np.asarray(s), axis=-1) <= 1e-6)
    only_h = dg.state_jacobian_spectra(stack(("lstm", "gru")), xs, state="h", max_distance=4)
    np.testing.assert_allclose(only_h[1], spectra[1], rtol=1e-5)  # GRU: the state is h


def test_fit_decay_rate_recovers_a_geometric_rate_and_skips_unusable_points():
    distance = np.arange(20)[::-1]
    fit = dg.fit_decay_rate(3.0 * 0.8**distance)
    assert fit.rate == pytest.approx(0.8, rel=1e-9)
    assert fit.intercept == pytest.approx(np.log(3.0), rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0) and fit.num_points == 20
    bent = np.where(distance < 5, 10.0 * 0.5**distance, 10.0 * 0.5**5 * 1.2 ** (distance - 5))
    bent[0], bent[1] = np.nan, 0.0  # distances 19 and 18 are unusable
    late = dg.fit_decay_rate(bent, start=5)
    assert late.rate == pytest.approx(1.2, rel=1e-9) and late.num_points == 13
    assert dg.fit_decay_rate(bent, stop=5).rate == pytest.approx(0.5, rel=1e-9)
    assert dg.fit_decay_rate(bent).r_squared < 0.99
    with pytest.raises(ValueError, match="at least 2"):
        dg.fit_decay_rate(np.array([1.0, np.nan, 0.0]))
    table = dg.decay_table({"rnn rho=0.9": fit})
    assert "| rnn rho=0.9 | 0.8 |" in table and table.count("\n") == 3


def test_plots_write_non_empty_png_files(tmp_path):
    curve = 0.9 ** np.arange(10)[::-1]
    written = [
        dg.plot_norm_decay({"rnn": curve, "lstm": np.append(curve[:-1], np.nan)}, tmp_path / "a/decay.png"),
        dg.plot_norm_heatmap(np.stack([curve, curve * 2, np.zeros(10)]), tmp_path / "heat.png", steps=[0, 100, 200]),
        dg.plot_jacobian_spectra({"lstm": np.outer(curve, [1.0, 0.5]), "rnn": curve}, tmp_path / "jac.png"),
    ]
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path
    with pytest.raises(ValueError, match="steps must be"):
        dg.plot_norm_heatmap(np.ones((3, 4)), tmp_path / "bad.png", steps=[1, 2])
    with pytest.raises(ValueError, match="curves is empty"):
        dg.plot_norm_decay({}, tmp_path / "empty.png")


def random_grads(scale):
    keys = jax.random.split(jax.random.key(int(scale)), 3)
    return [
        {"w_h": scale * jax.random.normal(keys[0], (4, 8)), "b": scale * jax.random.normal(keys[1], (8,))},
        {"w_h": scale * jax.random.normal(keys[2], (4, 4))},
    ]


@pytest.mark.parametrize("clip", ["global_norm", "value"])
@pytest.mark.parametrize("scale", [0.01, 1.0, 1e3, 1e6])
def test_applied_update_never_exceeds_the_clipping_threshold(clip, scale):
    threshold = 0.5
    grads = random_grads(scale)
    optimizer = optax.chain(clipping(clip, threshold), optax.sgd(1.0))
    updates, _ = optimizer.update(grads, optimizer.init(grads))
    if clip == "global_norm":
        assert float(dg.global_norm(updates)) <= threshold * (1 + 1e-6)
    else:
        assert max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(updates)) <= threshold
    # our clip_grads is what optax applies, and small gradients pass unchanged
    jax.tree.map(
        lambda u, c: np.testing.assert_allclose(-u, c, rtol=1e-6), updates, dg.clip_grads(grads, clip, threshold)
    )
    metrics = dg.grad_metrics(grads, clip=clip, clip_threshold=threshold)
    norm = float(metrics["grad/global_norm"])
    assert float(metrics["grad/clipped_norm"]) == pytest.approx(float(dg.global_norm(updates)), rel=1e-5)
    if clip == "global_norm":
        assert float(metrics["grad/clip_factor"]) == pytest.approx(min(1.0, threshold / norm), rel=1e-6)
    if scale == 0.01:
        assert float(metrics["grad/clip_factor"]) == 1.0


def test_grad_metrics_names_every_parameter_and_layer_and_the_update_ratio():
    grads = random_grads(1.0)
    params = jax.tree.map(lambda g: 2.0 * g, grads)
    updates = jax.tree.map(lambda g: -0.1 * g, grads)
    metrics = dg.grad_metrics(grads, params=params, updates=updates)
    leaf = float(jnp.linalg.norm(grads[0]["w_h"]))
    assert float(metrics["grad/layer0/w_h"]) == pytest.approx(leaf, rel=1e-6)
    layer0 = np.sqrt(leaf**2 + float(jnp.sum(grads[0]["b"] ** 2)))
    assert float(metrics["grad/layer0"]) == pytest.approx(layer0, rel=1e-6)
    assert float(metrics["grad/update_ratio"]) == pytest.approx(0.05, rel=1e-6)
    assert float(metrics["grad/clip_factor"]) == 1.0  # clip="none"
    assert set(metrics) == {
        "grad/global_norm",
        "grad/clipped_norm",
        "grad/clip_factor",
        "grad/layer0/w_h",
        "grad/layer0/b",
        "grad/layer1/w_h",
        "grad/layer0",
        "grad/layer1",
        "grad/param_norm",
        "grad/update_norm",
        "grad/update_ratio",
    }
    model = RecurrentStack("lstm", 3, 4, num_layers=2, rngs=nnx.Rngs(0))
    names = set(dg.grad_metrics(nnx.state(model, nnx.Param)))
    assert {"grad/layer1/w_h", "grad/layer1"} <= names, sorted(names)
    with pytest.raises(ValueError, match="valid: global_norm, value, none"):
        clipping("norm", 1.0)
    with pytest.raises(ValueError, match="clip_threshold"):
        dg.grad_metrics(grads, clip="value", clip_threshold=0.0)
