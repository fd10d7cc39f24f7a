"""Pascanu, Mikolov & Bengio's (2013) regulariser Omega: its value equals a NumPy float64 transcription
of the paper's Eq. 9 for a tanh RNN (with back-propagation through time written out by hand), the
gradient of the simplified form equals finite differences of Omega with dE/dx and the states held
fixed (Eq. 10), the exact form's gradient equals finite differences of Omega itself, and training
takes it as ``optim.omega``."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lstmlab import cells
from lstmlab.train.regularisers import omega

T, B, D, H = 7, 3, 2, 4
LENGTHS = np.array([7, 4, 1])


@pytest.fixture(scope="module", autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {k: 0.8 * rng.standard_normal(v.shape) for k, v in cells.init("rnn", jax.random.key(0), D, H).items()}
    xs = rng.standard_normal((T, B, D))
    h0 = 0.3 * rng.standard_normal((B, H))
    weights = rng.standard_normal((T, B, H))  # E = sum over valid steps of weights . h
    return params, xs, h0, weights


def backprop(params, xs, h0, weights, lengths):
    """(dE/dh_k per sequence, h_k per sequence) in NumPy for h_k = tanh(x_k W_i + h_{k-1} W_h + b) and
    E = sum_k w_k . h_k: the forward pass, then the total derivatives from the last step back."""
    W_i, W_h, b = params["w_i"], params["w_h"], params["b"]
    ds, hss = [], []
    for s in range(xs.shape[1]):
        n, hs, h = lengths[s], [], h0[s]
        for k in range(n):
            h = np.tanh(xs[k, s] @ W_i + h @ W_h + b)
            hs.append(h)
        d = [None] * n
        for k in reversed(range(n)):
            d[k] = weights[k, s] + (0 if k == n - 1 else ((d[k + 1] * (1 - hs[k + 1] ** 2)) @ W_h.T))
        ds.append(d)
        hss.append(hs)
    return ds, hss


def numpy_omega(params, xs, h0, weights, lengths, fixed=None):
    """Eq. 9, one sequence at a time, with dE/dh and the states of :func:`backprop` at ``params``, or
    ``fixed`` = (d, hs) from another parameter vector: the simplified form's dE/dx and states."""
    W_i, W_h, b = params["w_i"], params["w_h"], params["b"]
    ds, hss = fixed if fixed is not None else backprop(params, xs, h0, weights, lengths)
    total = 0.0
    for s in range(xs.shape[1]):
        d, hs = ds[s], hss[s]
        for k in range(1, lengths[s]):  # Omega_k: the step from h_{k-1} to h_k
            h_k = np.tanh(xs[k, s] @ W_i + hs[k - 1] @ W_h + b)  # = hs[k], with the Jacobian's weights
            pulled = (d[k] * (1 - h_k**2)) @ W_h.T
            total += (np.linalg.norm(pulled) / np.linalg.norm(d[k]) - 1) ** 2
    return total / xs.shape[1]


def lstmlab_omega(params, xs, h0, weights, lengths, exact):
    def loss_of_hs(hs):
        return jnp.sum(hs * weights)  # hs are zero past each sequence's end

    return omega("rnn", params, jnp.asarray(xs), jnp.asarray(h0), loss_of_hs, seq_lengths=lengths, exact=exact)


@pytest.mark.parametrize("lengths", [LENGTHS, np.full(B, T)], ids=["padded", "full"])
def test_omega_equals_the_papers_equation_9(lengths):
    params, xs, h0, weights = problem()
    want = numpy_omega(params, xs, h0, weights, lengths)
    assert want > 0.05
    for exact in (False, True):
        p = {k: jnp.asarray(v) for k, v in params.items()}
        got = lstmlab_omega(p, xs, h0, weights, jnp.asarray(lengths), exact)
        np.testing.assert_allclose(float(got), want, rtol=1e-10)


@pytest.mark.parametrize("exact", [False, True], ids=["simplified", "exact"])
def test_gradient_equals_finite_differences(exact):
    """Simplified (Eq. 10): dE/dh and the states come from the point of differentiation and are held
    fixed; only the Jacobian's own weights move. Exact: everything moves."""
    params, xs, h0, weights = problem(seed=1)
    flat, unravel = ravel_pytree({k: jnp.asarray(v) for k, v in params.items()})
    fixed = None if exact else backprop(params, xs, h0, weights, LENGTHS)
    grad = jax.grad(lambda theta: lstmlab_omega(unravel(theta), xs, h0, weights, jnp.asarray(LENGTHS), exact))(flat)
    eps = 1e-6

    def f(theta):
        return numpy_omega({k: np.asarray(v) for k, v in unravel(theta).items()}, xs, h0, weights, LENGTHS, fixed)

    finite = [(f(flat + eps * e) - f(flat - eps * e)) / (2 * eps) for e in np.eye(flat.size)]
    assert np.abs(np.asarray(grad)).max() > 1e-2
    np.testing.assert_allclose(grad, finite, rtol=1e-5, atol=1e-8)


def test_the_two_forms_differ():
    """The simplification is a different gradient, not a rounding of the same one."""
    params, xs, h0, weights = problem(seed=1)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    lengths = jnp.asarray(LENGTHS)
    simple, full = (jax.grad(lambda q, e=e: lstmlab_omega(q, xs, h0, weights, lengths, e))(p) for e in (False, True))
    assert float(jnp.abs(simple["w_h"] - full["w_h"]).max()) > 1e-3


def test_training_with_omega_logs_it_and_changes_the_update(tmp_path):
    from lstmlab.cli import compose
    from lstmlab.train import train_and_evaluate

    base = ["+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=none", "trainer.log_every=1"]
    runs = {}
    for name, extra in [("plain", []), ("omega", ["optim.omega=5"])]:
        config = compose("pascanu2013_temporal_order", [*base, "trainer.max_steps=2", *extra])
        train_and_evaluate(config, tmp_path / name)
        runs[name] = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    logged = [m["reg/omega"] for m in runs["omega"] if "reg/omega" in m]
    assert logged and all(np.isfinite(v) and v > 0 for v in logged)
    assert not any("reg/omega" in m for m in runs["plain"])
    first = [next(m for m in runs[name] if m.get("step") == 1) for name in ("plain", "omega")]
    assert first[0]["train/loss"] == first[1]["train/loss"]  # the task's loss is logged, not the objective
    assert first[0]["grad/global_norm"] != first[1]["grad/global_norm"]


@pytest.mark.parametrize(
    "override,got",
    [("model.num_layers=2", "model.num_layers=2"), ("model.bidirectional=true", "model.bidirectional=true")],
)
def test_omega_on_a_model_it_is_not_defined_for_is_refused(override, got):
    from lstmlab.cli import compose
    from lstmlab.config import ConfigError

    config = compose("pascanu2013_temporal_order", ["+preset=tiny", "optim.omega=1", override])
    with pytest.raises(ConfigError) as err:
        config.check()
    assert str(err.value) == (f"optim.omega=1.0 needs one recurrent layer in one direction without dropout; got {got}")
