"""The fast path (impl="fast", lstmlab/cells/scan.py), remat_chunk and impl="cudnn" against the reference.

Values and gradients (parameters, inputs and initial carry) of impl="fast" must match autodiff through
the plain scan (impl="reference") for every cell and variant with a kernel, with seq_lengths and reverse;
cells without a kernel must fall back to the reference. Shapes are tiny; float32 tolerances.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab import cells
from lstmlab.cells import cudnn
from lstmlab.nn import RecurrentStack

T, B, D, H = 6, 3, 2, 4
LENGTHS = jnp.array([6, 3, 0])  # full, partial and empty sequences


def _inputs(name, **options):
    """Parameters perturbed away from their init (so zero peepholes/biases are exercised), xs, a
    non-zero initial carry and output weights for the loss."""
    params = cells.init(name, jax.random.key(0), D, H, **options)
    params = {
        k: v + 0.3 * jax.random.normal(jax.random.key(10 + i), v.shape)
        for i, (k, v) in enumerate(sorted(params.items()))
    }
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    leaves, tree = jax.tree.flatten(cells.initial_carry(name, B, H, **options))
    carry = jax.tree.unflatten(
        tree, [0.5 * jax.random.normal(jax.random.key(20 + i), a.shape) for i, a in enumerate(leaves)]
    )
    w_out = jax.random.normal(jax.random.key(2), (T, B, H))
    return params, xs, carry, w_out


def _loss(name, impl, seq_lengths, reverse, remat_chunk=None, **options):
    """A scalar that depends on every output and on the final carry (non-linearly)."""

    def loss(params, xs, carry, w_out):
        final, hs = cells.scan(
            name,
            params,
            xs,
            carry,
            seq_lengths=seq_lengths,
            reverse=reverse,
            impl=impl,
            remat_chunk=remat_chunk,
            **options,
        )
        return jnp.sum(hs * w_out) + sum(jnp.sum(jnp.tanh(leaf)) for leaf in jax.tree.leaves(final))

    return loss


def _value_and_grads(name, impl, seq_lengths=None, reverse=False, remat_chunk=None, **options):
    params, xs, carry, w_out = _inputs(name, **options)
    loss = _loss(name, impl, seq_lengths, reverse, remat_chunk, **options)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, xs, carry, w_out)


def _assert_close(got, want, rtol=2e-5, atol=2e-6):
    (v_got, g_got), (v_want, g_want) = got, want
    np.testing.assert_allclose(v_got, v_want, rtol=rtol, atol=atol)
    assert jax.tree.structure(g_got) == jax.tree.structure(g_want)
    for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want)):
        scale = float(jnp.max(jnp.abs(b))) + 1e-3
        np.testing.assert_allclose(a / scale, b / scale, rtol=0, atol=rtol * 5)


MODES = {
    "plain": dict(),
    "reverse": dict(reverse=True),
    "lengths": dict(seq_lengths=LENGTHS),
    "lengths_reverse": dict(seq_lengths=LENGTHS, reverse=True),
}
CORE = [("lstm", {}), ("peephole", {}), ("gru", {}), ("rnn", {})]
VARIANTS = [("peephole", {"variant": v}) for v in cells.VARIANTS if v not in ("vanilla", "FGR")] + [
    ("lstm", {"variant": "CIFG"}),
    ("lstm", {"variant": "NOG"}),
    ("rnn", {"activation": "relu"}),
    ("rnn", {"activation": "identity"}),
    ("gru", {"reset_after": False}),
]


CORE_CASES = [(c, o, m) for c, o in CORE for m in ("plain", "lengths_reverse")] + [
    ("lstm", {}, "reverse"),
    ("lstm", {}, "lengths"),
    ("gru", {}, "reverse"),
    ("gru", {"reset_after": False}, "plain"),
]


@pytest.mark.parametrize("name,options,mode", CORE_CASES, ids=[f"{c}-{m}" for c, _, m in CORE_CASES])
def test_fast_matches_reference_values_and_grads(name, options, mode):
    assert cells.has_fast_path(name, **options)
    want = _value_and_grads(name, "reference", **MODES[mode], **options)
    got = _value_and_grads(name, "fast", **MODES[mode], **options)
    _assert_close(got, want)


@pytest.mark.parametrize("name,options", VARIANTS, ids=[f"{c}-{list(o.values())[0]}" for c, o in VARIANTS])
def test_fast_matches_reference_for_variants(name, options):
    assert cells.has_fast_path(name, **options)
    mode = MODES["lengths_reverse"]
    _assert_close(
        _value_and_grads(name, "fast", **mode, **options), _value_and_grads(name, "reference", **mode, **options)
    )


def _uses_custom_vjp(name, impl, **options):
    params, xs, carry, w_out = _inputs(name, **options)
    jaxpr = jax.make_jaxpr(_loss(name, impl, None, False, **options))(params, xs, carry, w_out)
    return "custom_vjp" in str(jaxpr)


def test_fast_is_the_default_and_uses_the_kernel():
    assert inspect.signature(cells.scan).parameters["impl"].default == "fast"
    assert _uses_custom_vjp("lstm", "fast")
    assert not _uses_custom_vjp("lstm", "reference")


def test_variant_without_kernel_falls_back_to_reference():
    options = {"variant": "FGR"}
    assert not cells.has_fast_path("peephole", **options)
    params, xs, carry, w_out = _inputs("peephole", **options)

    def program(impl):
        loss = _loss("peephole", impl, LENGTHS, True, **options)
        return str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(params, xs, carry, w_out))

    assert program("fast") == program("reference")  # the very same computation


def test_fast_works_under_vmap_of_grad():
    params, xs, carry, w_out = _inputs("lstm")
    xs_batch = jnp.stack([xs, 2 * xs])

    def grads(impl):
        loss = _loss("lstm", impl, LENGTHS, False)
        return jax.vmap(jax.grad(loss), in_axes=(None, 0, None, None))(params, xs_batch, carry, w_out)

    for a, b in zip(jax.tree.leaves(grads("fast")), jax.tree.leaves(grads("reference"))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bfloat16_fast_is_close_to_reference():
    params, xs, carry, w_out = _inputs("lstm")
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    xs = xs.astype(jnp.bfloat16)

    def run(impl):
        def loss(p):
            _, hs = cells.scan("lstm", p, xs, impl=impl)
            return jnp.sum(hs.astype(jnp.float32) * w_out)

        return jax.value_and_grad(loss)(params)

    (v_fast, g_fast), (v_ref, g_ref) = run("fast"), run("reference")
    assert g_fast["w_h"].dtype == jnp.bfloat16
    np.testing.assert_allclose(v_fast, v_ref, rtol=3e-2, atol=3e-2)
    for k in g_ref:
        scale = float(jnp.max(jnp.abs(g_ref[k].astype(jnp.float32)))) + 1e-3
        np.testing.assert_allclose(
            g_fast[k].astype(jnp.float32) / scale, g_ref[k].astype(jnp.float32) / scale, atol=5e-2
        )


def test_recurrent_stack_passes_impl_to_every_layer():
    xs = jax.random.normal(jax.random.key(1), (T, B, D))

    def loss(m):
        _, hs = m(xs, seq_lengths=LENGTHS)
        return jnp.sum(jnp.sin(hs))

    def run(impl):
        m = RecurrentStack("lstm", D, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0), impl=impl)
        graphdef, state = nnx.split(m)
        kernels = str(jax.make_jaxpr(lambda s: loss(nnx.merge(graphdef, s)))(state)).count("custom_vjp_call")
        return kernels, nnx.jit(nnx.value_and_grad(loss))(m)

    kernels, (v_got, g_got) = run("fast")
    kernels_ref, (v_ref, g_ref) = run("reference")
    assert (kernels, kernels_ref) == (4, 0)  # 2 layers x 2 directions
    np.testing.assert_allclose(v_got, v_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# remat_chunk


# chunk 4 does not divide T = 6: a tail chunk of 2 steps
@pytest.mark.parametrize("name,impl,chunk", [("lstm", "fast", 4), ("gru", "fast", 2), ("peephole", "reference", 4)])
def test_remat_chunk_gives_the_same_values_and_grads(name, impl, chunk):
    mode = MODES["lengths_reverse"]
    _assert_close(_value_and_grads(name, impl, remat_chunk=chunk, **mode), _value_and_grads(name, impl, **mode))


def test_remat_chunk_reduces_compiled_memory():
    T_long, H_big = 512, 32
    params = cells.init("lstm", jax.random.key(0), 1, H_big)
    xs = jnp.ones((T_long, 2, 1))

    def temp_bytes(remat_chunk):
        grad = jax.jit(jax.grad(lambda p: jnp.sum(cells.scan("lstm", p, xs, remat_chunk=remat_chunk)[1])))
        return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(32) < 0.5 * temp_bytes(None)


def test_bad_remat_chunk_and_impl_name_the_valid_values():
    params, xs, _, _ = _inputs("lstm")
    with pytest.raises(ValueError, match="remat_chunk=0 must be None or an int >= 1"):
        cells.scan("lstm", params, xs, remat_chunk=0)
    with pytest.raises(ValueError, match="valid: fast, reference, cudnn"):
        cells.scan("lstm", params, xs, impl="cuda")


# ---------------------------------------------------------------------------------------------------
# impl="cudnn"

ON_GPU = jax.default_backend() == "gpu"


@pytest.mark.skipif(ON_GPU, reason="checks the error raised on machines without a CUDA GPU")
def test_cudnn_on_cpu_is_a_one_line_error():
    params, xs, _, _ = _inputs("lstm")
    with pytest.raises(ValueError, match="impl='cudnn' needs a CUDA GPU") as info:
        cells.scan("lstm", params, xs, impl="cudnn")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="runs only cell='lstm'"):
        cells.scan("gru", cells.init("gru", jax.random.key(0), D, H), xs, impl="cudnn")


def test_cudnn_weight_packing_matches_jax_reference_lstm():
    """Runs on CPU: our params packed for cuDNN and unpacked by jax.experimental.rnn give, through its
    reference LSTM (lstm_ref), the outputs of our reference scan."""
    from jax.experimental import rnn

    params, xs, carry, _ = _inputs("lstm")
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(cudnn.pack_weights(params), D, H, 1, False)
    y, h_n, c_n = rnn.lstm_ref(
        jnp.swapaxes(xs, 0, 1),
        carry.h[None],
        carry.c[None],
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        jnp.full((B,), T, jnp.int32),
        D,
        H,
        1,
        0.0,
        False,
    )
    final, hs = cells.scan("lstm", params, xs, carry, impl="reference")
    np.testing.assert_allclose(jnp.swapaxes(y, 0, 1), hs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n[0], final.h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n[0], final.c, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not ON_GPU, reason="impl='cudnn' needs a CUDA GPU; jax's backend here is not 'gpu'")
@pytest.mark.parametrize("mode", ["plain", "lengths_reverse"])
def test_cudnn_matches_reference_on_gpu(mode):
    mode = {"plain": {}, "lengths_reverse": dict(seq_lengths=jnp.array([6, 3, 1]), reverse=True)}[mode]
    got = _value_and_grads("lstm", "cudnn", **mode)
    want = _value_and_grads("lstm", "reference", **mode)
    _assert_close(got, want, rtol=1e-3, atol=1e-4)  # cuDNN may use TF32 matmuls
