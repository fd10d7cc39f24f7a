"""xLSTM's sLSTM and mLSTM, the minGRU / minLSTM and Jozefowicz et al.'s MUT1-3: every form of each cell
equals a NumPy float64 step-by-step transcription of the paper's equations (with ``seq_lengths``,
``reverse`` and a given initial carry), the forms agree in float32, and autodiff gradients equal central
finite differences.

The references are written from the papers, one example at a time, unstabilised (the stabiliser m of
xLSTM cancels out of h, so the plain equations give the same numbers):

* sLSTM: Beck et al. (2024), "xLSTM", Section 2.2; recurrent weights as an explicit (H, 4H)
  block-diagonal matrix built from the heads' blocks.
* mLSTM: Beck et al. (2024), Section 2.3, one head at a time; with ``norm``, each head's output
  layer-normed (the group norm of the paper's mLSTM block).
* minGRU, minLSTM: Feng et al. (2024), "Were RNNs All We Needed?", Sections 3.1 and 3.2 with the positive
  candidate g and minLSTM's gates scaled to sum to one.
* MUT1, MUT2, MUT3: Jozefowicz, Zaremba & Sutskever (2015), with the input's own term (MUT1's tanh(x),
  MUT2's x) through the block w_p of w_i that lstmlab/cells/mut.py documents.
* uRNN: Arjovsky, Shah & Bengio (2016), Eq. 6-8, its recurrent matrix built as a dense complex product
  of the phase matrices, reflections, permutation and DFT matrices.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lstmlab import cells

T, B, D, H = 6, 3, 3, 4
LENGTHS = np.array([6, 3, 0])

FORMS = {
    "slstm": [{"num_heads": 2}, {"num_heads": 1, "forget": "exp"}],
    "mlstm": [
        {"form": "sequential", "num_heads": 2},
        {"form": "parallel", "num_heads": 2},
        {"form": "chunkwise", "num_heads": 2, "chunk_size": 4},
        {"form": "chunkwise", "num_heads": 1, "chunk_size": 2, "forget": "exp"},
        {"form": "sequential", "num_heads": 2, "norm": True},
        {"form": "chunkwise", "num_heads": 2, "chunk_size": 4, "norm": True},
    ],
    "mingru": [{"form": "sequential"}, {"form": "parallel"}],
    "minlstm": [{"form": "sequential"}, {"form": "parallel"}],
    "mut1": [{}],
    "mut2": [{}],
    "mut3": [{}],
    "urnn": [{}],
}
CASES = [(name, opts) for name, forms in FORMS.items() for opts in forms]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for name, opts in CASES]


@pytest.fixture(scope="module", autouse=True)
def float64():
    """float64 for this module only (see test_cells_reference.py); the float32 test passes float32 arrays."""
    with jax.enable_x64(True):
        yield


# ----------------------------------------------------------------------------------------------------
# The papers' equations, one example at a time, in NumPy float64
# ----------------------------------------------------------------------------------------------------


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def g(v):
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def split(vector, sizes):
    return np.split(vector, np.cumsum(sizes)[:-1])


def slstm_step(p, opts, state, x):
    """state: (h, c, n) unstabilised."""
    h, c, n = state
    NH = opts.get("num_heads", 1)
    d = H // NH
    R = np.zeros((H, 4 * H))  # block-diagonal: head k's units feed only head k's units of each gate
    for k in range(NH):
        for j in range(4):
            R[k * d : (k + 1) * d, j * H + k * d : j * H + (k + 1) * d] = p["w_h"][k][:, j * d : (j + 1) * d]
    i_, f_, z_, o_ = split(x @ p["w_i"] + p["b"] + h @ R, [H] * 4)
    i = np.exp(i_)
    f = np.exp(f_) if opts.get("forget") == "exp" else sigmoid(f_)
    c = f * c + i * np.tanh(z_)
    n = f * n + i
    h = sigmoid(o_) * c / n
    return (h, c, n), h


def mlstm_step(p, opts, state, x):
    """state: (h, C (NH, d, d), n (NH, d)) unstabilised."""
    h, C, n = state
    NH = opts.get("num_heads", 1)
    d = H // NH
    q, k, v, o, i_, f_ = split(x @ p["w_i"] + p["b"], [H] * 4 + [NH] * 2)
    C, n, out = C.copy(), n.copy(), np.zeros(H)
    for j in range(NH):
        s = slice(j * d, (j + 1) * d)
        kj = k[s] / np.sqrt(d)
        i = np.exp(i_[j])
        f = np.exp(f_[j]) if opts.get("forget") == "exp" else sigmoid(f_[j])
        C[j] = f * C[j] + i * np.outer(v[s], kj)
        n[j] = f * n[j] + i * kj
        out[s] = C[j] @ q[s] / max(abs(n[j] @ q[s]), 1.0)
        if opts.get("norm"):  # the xLSTM block's group norm: each head's units to mean 0, variance 1
            out[s] = (out[s] - out[s].mean()) / np.sqrt(out[s].var() + 1e-5) * p["norm"][s]
    h = sigmoid(o) * out
    return (h, C, n), h


def mingru_step(p, opts, state, x):
    (h,) = state
    k_z, k_h = split(x @ p["w_i"] + p["b"], [H] * 2)
    z = sigmoid(k_z)
    h = (1 - z) * h + z * g(k_h)
    return (h,), h


def minlstm_step(p, opts, state, x):
    (h,) = state
    k_f, k_i, k_h = split(x @ p["w_i"] + p["b"], [H] * 3)
    f, i = sigmoid(k_f), sigmoid(k_i)
    h = f / (f + i) * h + i / (f + i) * g(k_h)
    return (h,), h


def mut_step(which, p, opts, state, x):
    """h_t = n z + h (1 - z), with the named blocks of lstmlab's layout."""
    (h,) = state
    W_xz, W_x2, W_x3 = np.split(p["w_i"], 3, axis=1)
    b_z, b_2, b_3 = np.split(p["b"], 3)
    if which == 1:
        W_hr, W_hh = np.split(p["w_h"], 2, axis=1)
        z = sigmoid(x @ W_xz + b_z)
        r = sigmoid(x @ W_x2 + h @ W_hr + b_2)
        n = np.tanh((r * h) @ W_hh + np.tanh(x @ W_x3 + b_3) + p["b_h"])
    else:
        W_hz, W_hr, W_hh = np.split(p["w_h"], 3, axis=1)
        z = sigmoid(x @ W_xz + (np.tanh(h) if which == 3 else h) @ W_hz + b_z)
        r = sigmoid(x @ W_x2 + h @ W_hr + b_2)  # MUT2: x @ w_p + b_r stands for the paper's x_t + b_r
        n = np.tanh((r * h) @ W_hh + x @ W_x3 + b_3)
    h = n * z + h * (1 - z)
    return (h,), h


STEPS = {"slstm": slstm_step, "mlstm": mlstm_step, "mingru": mingru_step, "minlstm": minlstm_step}
STEPS |= {f"mut{k}": partial(mut_step, k) for k in (1, 2, 3)}


def urnn_matrix(p):
    """W = D3 R2 F^-1 D2 P R1 F D1 as a dense (N, N) complex matrix acting on column vectors."""
    N = p["theta"].shape[1]
    D1, D2, D3 = (np.diag(np.exp(1j * theta)) for theta in p["theta"])
    v1, v2 = p["reflect"][0] + 1j * p["reflect"][1], p["reflect"][2] + 1j * p["reflect"][3]
    R1, R2 = (np.eye(N) - 2 * np.outer(v, v.conj()) / np.vdot(v, v).real for v in (v1, v2))
    k = np.arange(N)
    F = np.exp(-2j * np.pi * np.outer(k, k) / N) / np.sqrt(N)  # the unitary DFT
    P = np.eye(N)[np.random.default_rng(0).permutation(N)]  # (P z)_j = z_perm[j]
    return D3 @ R2 @ F.conj().T @ D2 @ P @ R1 @ F @ D1


def urnn_step(p, opts, state, x):
    (h,) = state
    N = h.size // 2
    W = urnn_matrix(p)
    assert np.allclose(W.conj().T @ W, np.eye(N))  # unitary
    v = x @ p["w_i"] + p["b_i"]
    z = W @ (h[:N] + 1j * h[N:]) + (v[:N] + 1j * v[N:])
    magnitude = np.sqrt(np.abs(z) ** 2 + 1e-12)
    new = np.maximum(magnitude + p["b"], 0) * z / magnitude
    h = np.concatenate([new.real, new.imag])
    return (h,), h


STEPS["urnn"] = urnn_step


def unstabilised(name, carry, b):
    """Row b of an lstmlab carry as the reference's state."""
    if name == "slstm":
        e = np.exp(carry.m[b])
        return carry.h[b], carry.c[b] * e, carry.n[b] * e
    if name == "mlstm":
        e = np.exp(carry.m[b])
        return carry.h[b], carry.C[b] * e[:, None, None], carry.n[b] * e[:, None]
    return (carry[b],)


def reference(name, opts, params, xs, carry, lengths, reverse):
    """(hs (T, B, H), final h (B, H)): each example run over its own steps, in its own direction."""
    p = {k: np.asarray(v) for k, v in params.items()}
    carry = jax.tree.map(np.asarray, carry)
    hs = np.zeros(xs.shape[:2] + (H,))
    finals = np.zeros((xs.shape[1], H))
    for b in range(xs.shape[1]):
        state = unstabilised(name, carry, b)
        steps = range(lengths[b])
        for t in reversed(steps) if reverse else steps:
            state, hs[t, b] = STEPS[name](p, opts, state, np.asarray(xs[t, b]))
        finals[b] = state[0]
    return hs, finals


def random_inputs(name, opts, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    shapes = cells.init(name, jax.random.key(0), D, H, **opts)
    params = {k: jnp.asarray(0.6 * rng.standard_normal(v.shape), dtype) for k, v in shapes.items()}
    xs = jnp.asarray(rng.standard_normal((T, B, D)), dtype)
    zero = cells.initial_carry(name, B, H, dtype, **opts)
    carry = jax.tree.map(lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), a.dtype), zero)
    if name == "slstm":  # a normaliser state is positive
        carry = carry._replace(n=jnp.abs(carry.n) + 0.5)
    return params, xs, carry


# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_every_form_equals_the_papers_equations_in_float64(name, opts, reverse):
    params, xs, carry = random_inputs(name, opts)
    for given, lengths in [(carry, LENGTHS), (None, np.full(B, T))]:
        final, hs = cells.scan(name, params, xs, given, seq_lengths=jnp.asarray(lengths), reverse=reverse, **opts)
        assert hs.dtype == jnp.float64
        start = given if given is not None else cells.initial_carry(name, B, H, jnp.float64, **opts)
        ref_hs, ref_h = reference(name, opts, params, xs, start, lengths, reverse)
        np.testing.assert_allclose(hs, ref_hs, rtol=0, atol=1e-10)
        np.testing.assert_allclose(cells.get(name).output(final), ref_h, rtol=0, atol=1e-10)
        if not reverse:  # the one-step forward, through the time loop that scan_states runs
            _, loop_hs = cells.scan_states(name, params, xs, given, seq_lengths=jnp.asarray(lengths), **opts)
            np.testing.assert_allclose(loop_hs, ref_hs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name,opts", [c for c in CASES if c[1].get("form", "sequential") != "sequential"])
def test_parallel_forms_agree_with_the_sequential_form_in_float32(name, opts):
    params, xs, carry = random_inputs(name, opts, seed=3, dtype=np.float32)
    xs = jnp.concatenate([xs] * 8)  # 48 steps: several chunks
    lengths = jnp.asarray([48, 29, 1])
    sequential = {k: v for k, v in opts.items() if k != "chunk_size"} | {"form": "sequential"}
    for reverse in (False, True):
        want_final, want = cells.scan(name, params, xs, carry, seq_lengths=lengths, reverse=reverse, **sequential)
        final, got = cells.scan(name, params, xs, carry, seq_lengths=lengths, reverse=reverse, **opts)
        assert got.dtype == jnp.float32
        assert float(jnp.abs(want).max()) > 0.1
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(want_final)):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_gradients_equal_central_finite_differences(name, opts):
    """d loss / d (params, xs, carry) by autodiff equals (f(x + e) - f(x - e)) / 2e for every coordinate,
    through padding (seq_lengths) and the initial carry."""
    params, xs, carry = random_inputs(name, opts, seed=1)
    rng = np.random.default_rng(2)
    out_weights = jnp.asarray(rng.standard_normal((T, B, H)))
    carry_weights = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), carry)
    flat, unravel = ravel_pytree((params, xs, carry))
    lengths = jnp.asarray(LENGTHS)

    def loss(theta):
        p, x, c = unravel(theta)
        final, hs = cells.scan(name, p, x, c, seq_lengths=lengths, **opts)
        carry_term = sum(jnp.sum(a * w) for a, w in zip(jax.tree.leaves(final), jax.tree.leaves(carry_weights)))
        return jnp.sum(hs * out_weights) + carry_term

    grad = jax.jit(jax.grad(loss))(flat)
    eps = 1e-6
    steps = eps * jnp.eye(flat.size, dtype=flat.dtype)
    losses = jax.jit(jax.vmap(loss))(jnp.concatenate([flat + steps, flat - steps]))
    finite_diff = (losses[: flat.size] - losses[flat.size :]) / (2 * eps)
    assert np.isfinite(np.asarray(grad)).all()
    assert np.abs(np.asarray(grad)).max() > 1e-3
    np.testing.assert_allclose(grad, finite_diff, rtol=1e-6, atol=1e-7)


def test_a_state_s_first_step_is_finite_whatever_the_gates():
    """From the zero carry, the stabilised first step of the sLSTM stays finite (and differentiable) with
    an input gate far below the forget gate, where exp(i~ - log f) underflows."""
    params = cells.init("slstm", jax.random.key(0), D, H)
    params["b"] = params["b"].at[:H].set(-200.0).at[H : 2 * H].set(50.0)
    xs = jnp.ones((T, B, D))
    loss = jax.grad(lambda p: jnp.sum(cells.scan("slstm", p, xs)[1]))
    assert all(np.isfinite(np.asarray(v)).all() for v in loss(params).values())
    assert np.isfinite(np.asarray(cells.scan("slstm", params, xs)[1])).all()


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("mlstm", {"form": "fast"}, "form='fast' is not a form of this cell; valid: sequential, parallel, chunkwise"),
        ("mingru", {"form": "chunkwise"}, "form='chunkwise' is not a form of this cell; valid: sequential, parallel"),
        ("mlstm", {"chunk_size": 0}, "chunk_size=0 must be an integer >= 1"),
        ("mlstm", {"norm": "yes"}, "norm='yes' must be true or false"),
        ("slstm", {"num_heads": 0}, "num_heads=0 must be an integer >= 1"),
        ("slstm", {"forget": "tanh"}, "forget='tanh' is not a forget gate; valid: sigmoid, exp"),
    ],
)
def test_bad_options_are_named(name, options, message):
    with pytest.raises(ValueError) as err:
        cells.cell_options(name, **options)
    assert str(err.value) == message


def test_heads_must_divide_the_hidden_size():
    with pytest.raises(ValueError, match="hidden_size=6 must be divisible by num_heads=4"):
        cells.init("mlstm", jax.random.key(0), 3, 6, num_heads=4)


@pytest.mark.parametrize("name,opts", [("mlstm", {"num_heads": 2}), ("mingru", {}), ("slstm", {"num_heads": 2})])
def test_shapes_without_a_square_recurrent_matrix_are_read_and_checked(name, opts):
    params = cells.init(name, jax.random.key(0), 5, 8, **opts)
    assert cells.sizes(name, params, **opts) == (5, 8)
    cells.check_params(name, params, **opts)
    bad = dict(params, b=params["b"][:-1])
    with pytest.raises(ValueError, match=r"params\['b'\] has shape"):
        cells.check_params(name, bad, **opts)


@pytest.mark.parametrize("name,block", [("mut1", 2), ("mut2", 1)])
def test_a_mutant_s_own_input_term_starts_as_the_input_itself_when_sizes_match(name, block):
    """With D = H, MUT1's tanh(x_t) and MUT2's x_t are the paper's: w_p starts as the identity, b_p at 0;
    with D != H it is drawn like the other input blocks. The kept gate 1 - z starts at sigmoid(forget_bias)."""
    params = cells.init(name, jax.random.key(0), H, H, forget_bias=2.0)
    np.testing.assert_array_equal(params["w_i"][:, block * H : (block + 1) * H], np.eye(H))
    np.testing.assert_array_equal(params["b"][H:], 0.0)
    np.testing.assert_array_equal(params["b"][:H], -2.0)
    other = cells.init(name, jax.random.key(0), D, H)["w_i"][:, block * H : (block + 1) * H]
    assert other.shape == (D, H) and float(jnp.abs(other).min()) > 0


def test_the_urnn_step_equals_its_dense_unitary_form_at_a_size_with_a_real_permutation():
    """At N = 7 complex units (the module's sizes give N = 2, where P may be the identity): one step equals
    the dense product of the paper's factors, and W h keeps the norm of h."""
    rng = np.random.default_rng(5)
    n = 14
    params = {
        k: jnp.asarray(0.6 * rng.standard_normal(v.shape))
        for k, v in cells.init("urnn", jax.random.key(0), D, n).items()
    }
    h, x = rng.standard_normal((B, n)), rng.standard_normal((B, D))
    assert not (np.random.default_rng(0).permutation(n // 2) == np.arange(n // 2)).all()
    _, got = cells.step("urnn", params, jnp.asarray(h), jnp.asarray(x))
    p = {k: np.asarray(v) for k, v in params.items()}
    want = np.stack([urnn_step(p, {}, (h[b],), x[b])[1] for b in range(B)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    from lstmlab.cells.urnn import recurrent

    c = h[:, : n // 2] + 1j * h[:, n // 2 :]
    np.testing.assert_allclose(np.linalg.norm(recurrent(params, jnp.asarray(c)), axis=1), np.linalg.norm(c, axis=1))
