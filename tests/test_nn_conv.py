"""The convolutional block beside the recurrent stack (model.conv_channels, LSTM-FCN): it reads only each
sequence's valid steps, its output reaches the head, its parameters are counted, and a resume notices
when it changes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab.config import Config, ConfigError, ModelConfig
from lstmlab.data.base import DataSpec
from lstmlab.nn import Convolutional, RecurrentModel
from lstmlab.train.setup import model_mismatch, model_signature

LENGTHS = np.array([6, 2, 4], np.int32)
T, D, K = 7, 3, 4


def padded_inputs() -> np.ndarray:
    """(3, T, D) features whose padding past each length is large garbage."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(LENGTHS), T, D)).astype(np.float32)
    for b, n in enumerate(LENGTHS):
        x[b, n:] = 100.0 * rng.normal(size=(T - n, D))
    return x


def conv_model(bidirectional: bool = False, pooling: str = "last") -> RecurrentModel:
    return RecurrentModel(
        "lstm",
        output_size=K,
        per_step=False,
        hidden_size=5,
        input_size=D,
        bidirectional=bidirectional,
        pooling=pooling,
        conv_channels=(6, 8),
        conv_kernels=(5, 3),
        rngs=nnx.Rngs(0),
    )


@pytest.mark.parametrize("bidirectional, pooling", [(False, "last"), (True, "mean")])
def test_a_padded_batch_gives_what_each_sequence_gives_alone(bidirectional, pooling):
    model = conv_model(bidirectional, pooling)
    x = padded_inputs()
    _, batched = model(jnp.asarray(x), seq_lengths=jnp.asarray(LENGTHS))
    for b, n in enumerate(LENGTHS):
        _, alone = model(jnp.asarray(x[b : b + 1, :n]))
        np.testing.assert_allclose(batched[b], alone[0], rtol=1e-5, atol=1e-5, err_msg=f"sequence {b}")
    # without the lengths the garbage reaches the convolutions (and the answer)
    _, unmasked = conv_model(bidirectional, pooling)(jnp.asarray(x))
    assert not np.allclose(batched[1], unmasked[1], atol=1e-3)


def test_the_block_is_convolution_norm_relu_then_the_masked_mean():
    block = Convolutional(D, [4], [3], rngs=nnx.Rngs(1))
    x = padded_inputs()
    pooled = np.asarray(block(jnp.asarray(x), jnp.asarray(LENGTHS)))
    kernel, bias = np.asarray(block.convs[0].kernel), np.asarray(block.convs[0].bias)  # (3, D, 4), (4,)
    for b, n in enumerate(LENGTHS):
        seq = np.pad(x[b, :n], ((1, 1), (0, 0)))  # "same" padding of a width-3 filter, by hand
        out = np.stack([np.einsum("kd,kdc->c", seq[t : t + 3], kernel) + bias for t in range(n)])
        out = (out - out.mean(-1, keepdims=True)) / np.sqrt(out.var(-1, keepdims=True) + 1e-6)  # scale 1, offset 0
        np.testing.assert_allclose(pooled[b], np.maximum(out, 0).mean(0), rtol=1e-4, atol=1e-5)


def test_the_head_reads_the_pooled_stack_and_block_side_by_side():
    model = conv_model(bidirectional=True)
    assert model.head.in_features == 2 * 5 + 8
    x = jnp.asarray(padded_inputs())
    lengths = jnp.asarray(LENGTHS)
    _, before = model(x, seq_lengths=lengths)
    model.conv.norms[1].scale[...] = 2.0 * model.conv.norms[1].scale[...]
    _, after = model(x, seq_lengths=lengths)
    assert not np.allclose(before, after, atol=1e-4), "the head ignores the convolutional block"


def test_num_layers_0_is_the_block_alone_and_needs_the_block():
    model = RecurrentModel(
        "lstm", output_size=K, per_step=False, hidden_size=5, input_size=D, num_layers=0, conv_channels=(6, 8),
        conv_kernels=(5, 3), rngs=nnx.Rngs(0),
    )  # fmt: skip
    assert model.rnn is None and model.head.in_features == 8
    x, lengths = jnp.asarray(padded_inputs()), jnp.asarray(LENGTHS)
    carries, out = model(x, seq_lengths=lengths)
    expected = model.head(model.conv(x, lengths))
    assert carries == [] and out.shape == (len(LENGTHS), K)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"model.num_layers=0 must be >= 1 \(0, the convolutional block alone"):
        ModelConfig(num_layers=0).check()
    ModelConfig(num_layers=0, conv_channels=[4], conv_kernels=[3]).check()


def test_a_per_step_model_refuses_the_block():
    with pytest.raises(ValueError, match="model.conv_channels needs a per-sequence task"):
        RecurrentModel(
            "lstm", output_size=K, per_step=True, hidden_size=5, input_size=D, conv_channels=(4,), conv_kernels=(3,),
            rngs=nnx.Rngs(0),
        )  # fmt: skip


@pytest.mark.parametrize("channels, kernels", [([8], []), ([8, 0], [3, 3]), ([8], [0])])
def test_bad_block_lists_are_one_line_naming_both_keys(channels, kernels):
    with pytest.raises(ConfigError, match=r"model.conv_channels=.* and model.conv_kernels=.* must be lists"):
        ModelConfig(conv_channels=channels, conv_kernels=kernels).check()


def test_a_resume_notices_another_block():
    spec = DataSpec(kind="classify", output_size=K, input_size=D)
    saved, current = Config(), Config()
    saved.model.conv_channels, saved.model.conv_kernels = [8], [3]
    current.model.conv_channels, current.model.conv_kernels = [8], [5]
    assert model_mismatch(model_signature(saved, spec), model_signature(current, spec)) == (
        "model.conv_kernels=[3] (this config: [5])"
    )


def test_a_run_with_the_block_resumes_to_exactly_the_uninterrupted_result(tmp_path):
    """The block's filters and norms go through the checkpoint like the cells' weights: a run resumed
    from step 2 ends at step 4 with the arrays of the run never interrupted (dropout included)."""
    import shutil

    from lstmlab.cli import compose
    from lstmlab.io.checkpoint import Checkpointer
    from lstmlab.train import setup, train_and_evaluate

    overrides = ["+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=none", "data.batch_size=8"]
    overrides += ["model.conv_channels=[4,6]", "model.conv_kernels=[3,3]", "checkpoint.every=2", "checkpoint.keep=5"]
    config = compose("vowels", overrides)
    straight = tmp_path / "straight"
    train_and_evaluate(
        config,
        straight,
    )
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "4")
    (resumed / "summary.json").unlink()
    config = compose("vowels", overrides)
    assert (
        setup(
            config,
            resumed,
        ).start
        == 2
    )  # a resume, not a fresh start
    train_and_evaluate(
        config,
        resumed,
    )
    a, _ = Checkpointer(straight / "checkpoints", read_only=True).read(4)
    b, _ = Checkpointer(resumed / "checkpoints", read_only=True).read(4)
    assert any("conv" in key for key in a) and sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
