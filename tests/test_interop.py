"""Weights ported from PyTorch, Keras 3 and Flax compute what the source framework computes.

Each test builds a small layer in the source framework with random weights (biases included: most
frameworks initialise them to zero, which would hide a wrong bias mapping), runs it and lstmlab on the
same random inputs, and compares the outputs. PyTorch (``torch==2.13.0``) and Keras (``keras``, run on
the JAX backend) are in the ``test`` extra; Flax is a dependency.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported anywhere in this process

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab import cells, interop
from lstmlab.nn import RecurrentModel, RecurrentStack

B, T, D, H = 2, 5, 3, 4
TOL = dict(rtol=1e-5, atol=1e-5)


def inputs(seed: int = 0, shape=(B, T, D)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- PyTorch ------------------------------------------------------------------------------------------


def torch_module(kind: str, **kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch is in the test extra: pip install torch==2.13.0")
    torch.manual_seed(0)
    cell, _, activation = kind.partition("-")
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    extra = {"nonlinearity": activation} if cell == "rnn" else {}
    return torch, cls(D, H, **extra, **kwargs)


TORCH_SHAPES = {
    "one layer": {},
    "two layers bidirectional batch_first": {"num_layers": 2, "bidirectional": True, "batch_first": True},
}


@pytest.mark.parametrize("shape", list(TORCH_SHAPES))
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn-tanh", "rnn-relu"])
def test_from_torch_matches_torch(kind, shape):
    torch, module = torch_module(kind, **TORCH_SHAPES[shape])
    xs = inputs() if module.batch_first else inputs(shape=(T, B, D))
    with torch.no_grad():
        expected = module(torch.from_numpy(xs))[0].numpy()
    ported = interop.from_torch(module)
    assert ported.num_layers == module.num_layers and ported.bidirectional == module.bidirectional
    _, hs = ported.stack()(jnp.asarray(xs))
    np.testing.assert_allclose(np.asarray(hs), expected, **TOL)
    if not module.bidirectional:  # the per-layer cell params run in cells.scan directly
        _, hs = cells.scan(ported.cell, ported.layer(0), jnp.asarray(xs), **ported.options)
        np.testing.assert_allclose(np.asarray(hs), expected, **TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn-relu"])
def test_to_torch_copies_a_stack_into_torch(kind):
    cell, _, activation = kind.partition("-")
    options = {"activation": activation} if activation else {}
    stack = RecurrentStack(cell, D, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(1), **options)
    for rec in (r for layer in stack.layers for r in (layer.forward, layer.backward)):
        for name in rec.param_names:  # random biases: lstmlab initialises most of them to zero or one
            value = getattr(rec, name)[...]
            getattr(rec, name)[...] = jax.random.uniform(
                jax.random.key(len(name)), value.shape, minval=-0.5, maxval=0.5
            )
    torch, module = torch_module(kind, num_layers=2, bidirectional=True)
    interop.to_torch(interop.stack_params(stack), module)
    xs = inputs(shape=(T, B, D))
    with torch.no_grad():
        got = module(torch.from_numpy(xs))[0].numpy()
    np.testing.assert_allclose(got, np.asarray(stack(jnp.asarray(xs))[1]), **TOL)
    if cell != "gru":  # one lstmlab bias: all of it in bias_ih, zeros in bias_hh
        assert not module.bias_hh_l1_reverse.detach().any()


def test_to_torch_names_the_parameter_with_the_wrong_shape():
    torch, module = torch_module("lstm")
    ported = interop.from_torch(torch_module("lstm")[1])
    ported.params["layer0"]["fwd"]["w_h"] = np.zeros((H + 1, 4 * H), np.float32)
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(16, 4\); layer0/fwd gives \(16, 5\)"):
        interop.to_torch(ported, module)


def test_missing_torch_is_one_line_saying_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"^from_torch needs PyTorch: pip install torch==2.13.0$"):
        interop.from_torch(object())


# -- mingru-pytorch (the minGRU / minLSTM reference package) -----------------------------------------


@pytest.mark.parametrize("kind", ["minGRU", "minLSTM"])
def test_from_mingru_pytorch_matches_the_package_in_both_forms(kind):
    """The package's parallel (log-space) and one-step outputs equal lstmlab's, in each form, with its
    weights; its layers are batch-first."""
    torch = pytest.importorskip("torch", reason="PyTorch is in the test extra: pip install torch==2.13.0")
    pytest.importorskip(
        "minGRU_pytorch", reason="mingru-pytorch is in the test extra: pip install mingru-pytorch==0.2.1"
    )
    torch.manual_seed(0)
    module = getattr(importlib.import_module(f"minGRU_pytorch.{kind}"), kind)(H)
    x = inputs(shape=(3, 7, H))  # (B, T, D) with D = H, as the package builds it
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
        first = module(torch.from_numpy(x[:, :1])).numpy()  # one step from no hidden state
    ported = interop.from_mingru_pytorch(module)
    assert (ported.cell, ported.time_major, ported.hidden_size) == (kind.lower(), False, H)
    for form in ("sequential", "parallel"):
        _, hs = cells.scan(ported.cell, ported.layer(0), jnp.asarray(x.swapaxes(0, 1)), form=form)
        np.testing.assert_allclose(np.asarray(hs).swapaxes(0, 1), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(hs[0]), first[:, 0], rtol=1e-5, atol=1e-5)


def test_from_mingru_pytorch_refuses_an_output_projection():
    pytest.importorskip("torch", reason="PyTorch is in the test extra: pip install torch==2.13.0")
    package = pytest.importorskip(
        "minGRU_pytorch", reason="mingru-pytorch is in the test extra: pip install mingru-pytorch==0.2.1"
    )
    with pytest.raises(ValueError, match="minGRU has an output projection"):
        interop.from_mingru_pytorch(package.minGRU(H, expansion_factor=2.0))


# -- xlstm (the xLSTM authors' package) ---------------------------------------------------------------


def xlstm_package():
    pytest.importorskip("torch", reason="PyTorch is in the test extra: pip install torch==2.13.0")
    return pytest.importorskip("xlstm", reason="xlstm is in the test extra: pip install xlstm==2.0.6")


def test_from_xlstm_slstm_matches_the_package_s_slstm_cell():
    """The package's own sLSTM cell (its CPU 'vanilla' backend, two heads), with random weights, gives
    lstmlab's slstm outputs and final state."""
    xlstm_package()
    import torch
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    torch.manual_seed(0)
    config = sLSTMCellConfig(
        hidden_size=8, num_heads=2, backend="vanilla", dtype="float32", enable_automatic_mixed_precision=False,
        input_shape="BSGNH", output_shape="BSH",
    )  # fmt: skip
    cell = sLSTMCell(config)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 0.5)
        x = torch.randn(3, 6, 32)
        want, state = cell(x)  # (B, T, H); state (4, B, H): h, c, n, m
    ported = interop.from_xlstm_slstm(cell)
    assert (ported.cell, ported.options, ported.hidden_size) == ("slstm", {"num_heads": 2}, 8)
    final, hs = cells.scan("slstm", ported.layer(0), jnp.asarray(x.numpy().swapaxes(0, 1)), **ported.options)
    np.testing.assert_allclose(np.asarray(hs).swapaxes(0, 1), want.numpy(), **TOL)
    for got, theirs in zip(final, state.numpy()):
        np.testing.assert_allclose(np.asarray(got), theirs, **TOL)


def test_from_xlstm_mlstm_matches_the_package_s_mlstm_cell():
    """The package's mLSTMCell (two heads, random gate and norm weights) on queries, keys and values,
    in its parallel forward and step by step, gives lstmlab's mlstm, in every form, on [q, k, v]."""
    xlstm_package()
    import torch
    from xlstm.blocks.mlstm.cell import mLSTMCell, mLSTMCellConfig

    torch.manual_seed(2)
    Bn, S, E, NH = 3, 7, 8, 2
    cell = mLSTMCell(mLSTMCellConfig(context_length=S, embedding_dim=E, num_heads=NH))
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 0.5)
        q, k, v = (torch.randn(Bn, S, E) for _ in range(3))
        want = cell(q, k, v).numpy()  # (B, S, E), the parallel form
        state, steps = None, []
        for t in range(S):
            h, state = cell.step(*(a[:, t : t + 1] for a in (q, k, v)), mlstm_state=state)
            steps.append(h[:, 0].numpy())
    np.testing.assert_allclose(np.stack(steps, axis=1), want, **TOL)
    ported = interop.from_xlstm_mlstm(cell)
    assert (ported.cell, ported.options, ported.hidden_size, ported.input_size) == (
        "mlstm", {"num_heads": NH, "norm": True}, E, 3 * E
    )  # fmt: skip
    assert float(np.abs(ported.layer(0)["norm"] - 1).max()) > 0.1  # the scale is 1 + the package's weight
    xs = jnp.asarray(torch.cat([q, k, v], dim=-1).numpy().swapaxes(0, 1))  # (S, B, 3E)
    for form in ("sequential", "parallel", "chunkwise"):
        _, hs = cells.scan("mlstm", ported.layer(0), xs, form=form, chunk_size=3, **ported.options)
        np.testing.assert_allclose(np.asarray(hs).swapaxes(0, 1), want, **TOL)
    _, hs = ported.stack()(xs.swapaxes(0, 1))  # and as lstmlab.nn layers, batch-first like the package
    np.testing.assert_allclose(np.asarray(hs), want, **TOL)


def test_the_mlstm_equals_the_package_s_parallel_and_recurrent_mlstm():
    """The package's mLSTM kernels (parallel_stabilized_simple and the recurrent step) on the same
    queries, keys, values and gate pre-activations give lstmlab's mlstm in each form. lstmlab's cell
    projects its input to [q, k, v, o, i, f]; here the input is [q, k, v, i, f] itself, and the output
    gate is held open (bias 30: sigmoid 1 in float32) to compare the package's h~."""
    xlstm_package()
    import torch
    from xlstm.blocks.mlstm.backends import parallel_stabilized_simple, recurrent_step_stabilized_simple

    Bn, NH, S, d = 2, 2, 7, 4
    H = NH * d
    torch.manual_seed(1)
    q, k, v = (torch.randn(Bn, NH, S, d) for _ in range(3))
    i_pre, f_pre = torch.randn(Bn, NH, S, 1), torch.randn(Bn, NH, S, 1) + 1.0
    with torch.no_grad():
        want = parallel_stabilized_simple(q, k, v, i_pre, f_pre).numpy()  # (B, NH, S, d)
        C, n, m = torch.zeros(Bn, NH, d, d), torch.zeros(Bn, NH, d, 1), torch.zeros(Bn, NH, 1, 1)
        steps = []
        for t in range(S):
            h, (C, n, m) = recurrent_step_stabilized_simple(
                C, n, m, *(a[:, :, t : t + 1] for a in (q, k, v, i_pre, f_pre))
            )
            steps.append(h[:, :, 0].numpy())
    np.testing.assert_allclose(np.stack(steps, axis=2), want, **TOL)

    def time_major(a):  # (B, NH, S, x) -> (S, B, NH * x)
        return a.numpy().transpose(2, 0, 1, 3).reshape(S, Bn, -1)

    xs = np.concatenate([time_major(a) for a in (q, k, v, i_pre, f_pre)], axis=-1)  # (S, B, 3H + 2NH)
    w_i = np.zeros((3 * H + 2 * NH, 4 * H + 2 * NH), np.float32)
    w_i[: 3 * H, : 3 * H] = np.eye(3 * H)
    w_i[3 * H :, 4 * H :] = np.eye(2 * NH)
    b = np.zeros(4 * H + 2 * NH, np.float32)
    b[3 * H : 4 * H] = 30.0
    params = {"w_i": jnp.asarray(w_i), "b": jnp.asarray(b)}
    for form in ("sequential", "parallel", "chunkwise"):
        _, hs = cells.scan("mlstm", params, jnp.asarray(xs), num_heads=NH, form=form, chunk_size=3)
        np.testing.assert_allclose(np.asarray(hs), time_major(torch.from_numpy(want)), **TOL)


# -- Keras 3 ------------------------------------------------------------------------------------------


def keras_randomised(layer, seed: int):
    """``layer`` built for (B, T, D) inputs with every weight drawn uniformly from [-0.5, 0.5]."""
    layer.build((None, T, D))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def keras_layers():
    return pytest.importorskip("keras", reason="Keras 3 is in the test extra: pip install keras").layers


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN", "SimpleRNN-relu"])
def test_from_keras_matches_keras(kind):
    layers = keras_layers()
    name, _, act = kind.partition("-")
    layer = keras_randomised(
        getattr(layers, name)(H, return_sequences=True, **({"activation": act} if act else {})), seed=2
    )
    xs = inputs()
    ported = interop.from_keras(layer)
    assert ported.time_major is False
    np.testing.assert_allclose(np.asarray(ported.stack()(jnp.asarray(xs))[1]), np.asarray(layer(xs)), **TOL)


def test_from_keras_sequential_of_two_bidirectional_gru_layers():
    keras = pytest.importorskip("keras", reason="Keras 3 is in the test extra: pip install keras")
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True)),
            keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True)),
        ]
    )
    rng = np.random.default_rng(3)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    xs = inputs()
    ported = interop.from_keras(model)
    assert (ported.cell, ported.num_layers, ported.bidirectional, ported.options) == ("gru", 2, True, {})
    np.testing.assert_allclose(np.asarray(ported.stack()(jnp.asarray(xs))[1]), np.asarray(model(xs)), **TOL)


def test_from_keras_gru_reset_before():
    layer = keras_randomised(keras_layers().GRU(H, return_sequences=True, reset_after=False), seed=4)
    ported = interop.from_keras(layer)
    assert ported.options == {"reset_after": False}
    xs = inputs()
    np.testing.assert_allclose(np.asarray(ported.stack()(jnp.asarray(xs))[1]), np.asarray(layer(xs)), **TOL)


def test_from_keras_refuses_activations_lstmlab_does_not_have():
    layer = keras_randomised(keras_layers().LSTM(H, recurrent_activation="hard_sigmoid"), seed=5)
    with pytest.raises(ValueError, match="recurrent_activation='hard_sigmoid'"):
        interop.from_keras(layer)


# -- Flax ---------------------------------------------------------------------------------------------


def flax_run(step, carry, xs: np.ndarray) -> np.ndarray:
    """Run a Flax cell step function over xs (B, T, D); returns (B, T, H)."""
    outs = []
    for t in range(xs.shape[1]):
        carry, y = step(carry, jnp.asarray(xs[:, t]))
        outs.append(y)
    return np.stack(outs, axis=1)


def randomised(tree, seed: int):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.uniform(k, x.shape, minval=-0.5, maxval=0.5) for k, x in zip(keys, leaves)]
    )


def lstmlab_run(ported, xs: np.ndarray) -> np.ndarray:
    _, hs = cells.scan(ported.cell, ported.layer(0), jnp.swapaxes(jnp.asarray(xs), 0, 1), **ported.options)
    return np.asarray(jnp.swapaxes(hs, 0, 1))


@pytest.mark.parametrize("kind", ["LSTMCell", "OptimizedLSTMCell", "GRUCell"])
def test_from_flax_linen_matches_flax(kind):
    from flax import linen

    cell = getattr(linen, kind)(features=H)
    xs = inputs(6)
    carry = cell.initialize_carry(jax.random.key(0), (B, D))
    variables = randomised(cell.init(jax.random.key(0), carry, jnp.asarray(xs[:, 0])), seed=7)
    expected = flax_run(lambda c, x: cell.apply(variables, c, x), carry, xs)
    ported = interop.from_flax(variables)
    np.testing.assert_allclose(lstmlab_run(ported, xs), expected, **TOL)


@pytest.mark.parametrize("kind", ["LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell"])
def test_from_flax_nnx_matches_flax(kind):
    cell = getattr(nnx, kind)(D, H, rngs=nnx.Rngs(0))
    nnx.update(cell, randomised(nnx.state(cell, nnx.Param), seed=8))
    xs = inputs(9)
    expected = flax_run(cell, cell.initialize_carry((B, D), rngs=nnx.Rngs(0)), xs)
    ported = interop.from_flax(cell)
    np.testing.assert_allclose(lstmlab_run(ported, xs), expected, **TOL)


def test_from_flax_list_of_cells_is_a_stack():
    ported = interop.from_flax([nnx.LSTMCell(D, H, rngs=nnx.Rngs(0)), nnx.LSTMCell(H, H, rngs=nnx.Rngs(1))])
    assert (ported.num_layers, ported.input_size, ported.hidden_size) == (2, D, H)
    assert isinstance(ported.stack(), RecurrentStack)


# -- files --------------------------------------------------------------------------------------------


def small_ported() -> interop.Ported:
    stack = RecurrentStack("gru", D, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    return interop.Ported("gru", interop.stack_params(stack), bidirectional=True)


def test_save_and_load_params_round_trip_with_flat_keys(tmp_path):
    ported = small_ported()
    interop.save_params(tmp_path / "w.npz", ported.params)
    assert "layer1/bwd/b_h" in np.load(tmp_path / "w.npz").files
    loaded = interop.load_params(tmp_path / "w.npz")
    interop.check_compatible(ported.params, loaded)
    np.testing.assert_array_equal(loaded["layer1"]["bwd"]["w_h"], ported.layer(1, "bwd")["w_h"])
    ported.save(tmp_path / "p.npz")
    again = interop.Ported.load(tmp_path / "p.npz")
    assert (again.cell, again.bidirectional, again.num_layers) == ("gru", True, 2)


def test_check_compatible_names_the_key_and_both_shapes():
    ported = small_ported()
    loaded = interop.unflatten(interop.flatten(ported.params))
    loaded["layer1"]["fwd"]["w_i"] = np.zeros((3, 12), np.float32)
    with pytest.raises(ValueError, match=r"'layer1/fwd/w_i' has shape \(3, 12\), expected \(8, 12\)"):
        interop.check_compatible(ported.params, loaded)
    del loaded["layer1"]["bwd"]
    with pytest.raises(ValueError, match="has no 'layer1/bwd/b_h'"):
        interop.check_compatible(ported.params, loaded)


def model_params(seed: int, hidden: int = H):
    model = RecurrentModel(
        "gru",
        output_size=2,
        per_step=False,
        hidden_size=hidden,
        num_layers=2,
        bidirectional=True,
        input_size=D,
        rngs=nnx.Rngs(seed),
    )
    return nnx.state(model, nnx.Param)


def test_load_matching_puts_stack_weights_into_a_model_and_keeps_its_head(tmp_path):
    ported = small_ported()
    ported.save(tmp_path / "stack.npz")
    template = model_params(seed=5)
    params = interop.load_matching(template, tmp_path / "stack.npz")
    assert jax.tree.structure(params) == jax.tree.structure(template)
    np.testing.assert_array_equal(params["rnn"]["layers"][1]["backward"]["w_i"][...], ported.layer(1, "bwd")["w_i"])
    np.testing.assert_array_equal(params["head"]["kernel"][...], template["head"]["kernel"][...])
    with pytest.raises(ValueError, match=r"stack.npz: 'layer0/bwd/b_h' has shape \(12,\), the model needs \(15,\)"):
        interop.load_matching(model_params(seed=5, hidden=5), tmp_path / "stack.npz")


def test_load_matching_reads_the_params_of_another_runs_checkpoint(tmp_path):
    from lstmlab.io.checkpoint import Checkpointer

    saved = model_params(seed=1)
    writer = Checkpointer(tmp_path / "run" / "checkpoints")
    writer.save(3, {"params": saved, "step": jnp.int32(3)}, {"step": 3})
    writer.close()
    params = interop.load_matching(model_params(seed=2), tmp_path / "run")
    np.testing.assert_array_equal(params["head"]["kernel"][...], saved["head"]["kernel"][...])
    with pytest.raises(ValueError, match="does not match this model"):
        interop.load_matching(model_params(seed=2, hidden=5), tmp_path / "run")


def test_load_into_refuses_a_stack_of_another_shape():
    ported = small_ported()
    with pytest.raises(ValueError, match="params have 2 layer"):
        interop.load_into(RecurrentStack("gru", D, H, num_layers=1, bidirectional=True, rngs=nnx.Rngs(0)), ported)
    with pytest.raises(ValueError, match=r"'layer0/fwd/w_i' has shape \(3, 12\), expected \(5, 12\)"):
        interop.load_into(RecurrentStack("gru", D + 2, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0)), ported)


# -- a run that starts from imported weights ------------------------------------------------------------


def _vowels_config(*extra: str):
    from lstmlab.cli import compose

    return compose(
        "vowels",
        [
            "+preset=tiny",
            "logger.wandb.mode=disabled",
            "trainer.progress=none",
            "model.num_layers=1",
            "model.hidden_size=8",
            *extra,
        ],
    )


def test_run_starts_from_another_runs_checkpoint_and_refuses_other_shapes(tmp_path):
    from lstmlab.config import ConfigError
    from lstmlab.io import checkpoint as ckpt
    from lstmlab.train import setup, train_and_evaluate

    config = _vowels_config()
    train_and_evaluate(config, tmp_path / "a")
    trained = setup(config, tmp_path / "a").state["params"]
    fresh = setup(_vowels_config("seed=1")).state["params"]
    started = setup(_vowels_config("seed=1", f"model.init_from={tmp_path / 'a'}")).state["params"]
    flat = lambda tree: {k: np.asarray(v) for k, v in ckpt.flatten(tree).items()}  # noqa: E731
    for key, value in flat(trained).items():
        np.testing.assert_array_equal(flat(started)[key], value)
    assert any(not np.array_equal(flat(fresh)[k], v) for k, v in flat(trained).items())
    with pytest.raises(ConfigError, match=r"model.init_from=.*shape"):
        setup(_vowels_config("model.hidden_size=16", f"model.init_from={tmp_path / 'a'}"))
    with pytest.raises(ConfigError, match="model.init_from=.*no such file"):
        _vowels_config(f"model.init_from={tmp_path / 'missing.npz'}").check()


def test_run_starts_from_a_torch_lstm_saved_as_npz(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is in the test extra (torch==2.13.0)")
    from lstmlab.train import setup

    module = torch.nn.LSTM(12, 8, batch_first=True)  # vowels: 12 LPC coefficients per frame
    interop.save_params(tmp_path / "lstm.npz", interop.from_torch(module).params)
    run = setup(_vowels_config("model.bidirectional=false", f"model.init_from={tmp_path / 'lstm.npz'}"))
    w_h = [np.asarray(v) for k, v in ckpt_flat(run.state["params"]).items() if k.endswith("w_h.value")]
    np.testing.assert_allclose(w_h[0], module.weight_hh_l0.detach().numpy().T)


def ckpt_flat(tree):
    from lstmlab.io import checkpoint as ckpt

    return ckpt.flatten(tree)
