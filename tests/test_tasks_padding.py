"""Padding never changes an answer: models, heads, losses and evaluation over right-padded batches
give what each sequence gives alone; data.seq_len sets every data set's input length."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab import data
from lstmlab.config import Config
from lstmlab.nn import RecurrentModel
from lstmlab.train import build_dataset, build_model, evaluate, losses

LENGTHS = np.array([5, 2, 4], np.int32)
T, D, H, K = 6, 3, 5, 4


def padded_inputs(seed: int = 0) -> np.ndarray:
    """(3, T, D) features; the padding past each length holds large garbage, not zeros."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(LENGTHS), T, D)).astype(np.float32)
    for b, n in enumerate(LENGTHS):
        x[b, n:] = 100.0 * rng.normal(size=(T - n, D))
    return x


def make_model(per_step: bool, pooling: str = "last", bidirectional: bool = False, cell: str = "lstm"):
    return RecurrentModel(
        cell,
        output_size=K,
        per_step=per_step,
        hidden_size=H,
        num_layers=2,
        input_size=D,
        pooling=pooling,
        bidirectional=bidirectional,
        rngs=nnx.Rngs(0),
    )


@pytest.mark.parametrize(
    "pooling, bidirectional, cell",
    [
        ("last", False, "lstm"),
        ("mean", False, "lstm"),
        ("last", True, "lstm"),
        ("mean", True, "lstm"),
        ("meanmax", True, "lstm"),
        ("last", True, "gru"),
    ],
)
def test_per_sequence_outputs_of_a_padded_batch_equal_each_sequence_alone(pooling, bidirectional, cell):
    model = make_model(False, pooling, bidirectional, cell)
    x = padded_inputs()
    _, batched = model(jnp.asarray(x), seq_lengths=jnp.asarray(LENGTHS))
    assert batched.shape == (len(LENGTHS), K)
    for b, n in enumerate(LENGTHS):
        _, alone = model(jnp.asarray(x[b : b + 1, :n]))  # no padding, no seq_lengths
        np.testing.assert_allclose(batched[b], alone[0], rtol=1e-5, atol=1e-5, err_msg=f"sequence {b}")


def test_pooling_reads_the_valid_steps_only():
    """Sanity of the test above: without seq_lengths the garbage does change the answer."""
    model = make_model(False, "mean", True)
    x = padded_inputs()
    _, masked = model(jnp.asarray(x), seq_lengths=jnp.asarray(LENGTHS))
    _, unmasked = model(jnp.asarray(x))
    assert not np.allclose(masked[1], unmasked[1], atol=1e-3)


def test_meanmax_pooling_is_the_masked_mean_beside_the_masked_maximum():
    model = make_model(False, "meanmax")
    hs = jnp.asarray(np.random.default_rng(2).normal(size=(T, len(LENGTHS), model.rnn.output_size)))
    hs = hs.at[:, 1].set(hs[:, 1].at[LENGTHS[1] :].set(1e3))  # padding larger than every valid step
    pooled = np.asarray(model.pool(hs, jnp.asarray(LENGTHS)))
    assert model.head.in_features == 2 * model.rnn.output_size
    for b, n in enumerate(LENGTHS):
        valid = np.asarray(hs[:n, b])
        np.testing.assert_allclose(pooled[b], np.concatenate([valid.mean(0), valid.max(0)]), rtol=1e-5, atol=1e-6)


def test_per_step_outputs_at_valid_steps_equal_each_sequence_alone():
    model = make_model(True)
    x = padded_inputs()
    _, batched = model(jnp.asarray(x), seq_lengths=jnp.asarray(LENGTHS))
    assert batched.shape == (len(LENGTHS), T, K)
    for b, n in enumerate(LENGTHS):
        _, alone = model(jnp.asarray(x[b : b + 1, :n]))
        np.testing.assert_allclose(batched[b, :n], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lm", "multilabel"])
def test_masked_per_step_losses_ignore_padded_steps(kind):
    rng = np.random.default_rng(1)
    mask = (np.arange(T)[None, :] < LENGTHS[:, None]).astype(np.float32)
    if kind == "lm":
        targets = rng.integers(0, K, size=(len(LENGTHS), T)).astype(np.int32)
    else:
        targets = (rng.random((len(LENGTHS), T, K)) < 0.5).astype(np.float32)
    batch = {"targets": jnp.asarray(targets), "mask": jnp.asarray(mask)}
    logits = rng.normal(size=(len(LENGTHS), T, K)).astype(np.float32)
    changed = logits.copy()
    changed[mask == 0] = 1e3 * rng.normal(size=(int((mask == 0).sum()), K))
    a = losses.batch_sums(kind, jnp.asarray(logits), batch)
    b = losses.batch_sums(kind, jnp.asarray(changed), batch)
    for key in ("loss", "correct", "count"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
    assert float(a["count"]) == LENGTHS.sum()


@pytest.mark.parametrize("kind", ["classify", "regress"])
def test_filler_rows_with_weight_zero_do_not_count(kind):
    rng = np.random.default_rng(2)
    weights = np.array([1, 1, 0], np.float32)
    batch = {
        "weights": jnp.asarray(weights),
        "labels": jnp.asarray(rng.integers(0, K, size=3).astype(np.int32)),
        "targets": jnp.asarray(rng.normal(size=(3, K)).astype(np.float32)),
    }
    out = rng.normal(size=(3, K)).astype(np.float32)
    changed = out.copy()
    changed[2] = 1e3
    a, b = losses.batch_sums(kind, jnp.asarray(out), batch), losses.batch_sums(kind, jnp.asarray(changed), batch)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
    assert float(a["count"]) == 2.0


def _adding_config(batch_size: int) -> Config:
    config = Config()
    config.data = {"name": "adding", "seq_len": 10, "batch_size": batch_size, "val_size": 24, "test_size": 8}
    config.model.hidden_size = 8
    return config


def test_evaluation_scores_every_batch_from_a_fresh_state():
    """Per-sequence data: the metrics of a split do not depend on how it is cut into batches (each
    batch starts from a zero carry, not from the previous batch's final state)."""
    small, large = _adding_config(4), _adding_config(24)
    ds_small, ds_large = build_dataset(small), build_dataset(large)
    model = build_model(small, ds_small.spec)
    graphdef, params = nnx.split(model)
    a = evaluate(graphdef, params, ds_small, "val")
    b = evaluate(graphdef, params, ds_large, "val")
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key


def test_evaluate_hands_the_split_outputs_to_on_outputs():
    config = _adding_config(16)  # 24 sequences: a full batch and a padded one
    ds = build_dataset(config)
    graphdef, params = nnx.split(build_model(config, ds.spec))
    seen = {}
    metrics = evaluate(graphdef, params, ds, "val", on_outputs=lambda o, b: seen.update(outputs=o, batches=b))
    assert seen["outputs"].shape == (32, 1) and len(seen["batches"]) == 2
    assert ds.extra_metrics("val", seen["outputs"], seen["batches"])["mse"] == pytest.approx(metrics["mse"])


# -- data.seq_len: one meaning per data set -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, seq_len, steps",
    [
        ("adding", 20, 22),  # the paper's T; lengths in [T, T + T//10]
        ("temporal_order", 30, 33),
        ("copy", 7, 27),  # the paper's T (the delay); T + 20 steps
        ("reber", 12, 12),  # the padded input length
        ("sunspots", 9, 9),  # the input window
        ("airline", 13, 13),
        ("sines", 15, 15),
        ("mackey_glass", 8, 8),
    ],
)
def test_seq_len_sets_the_input_length(name, seq_len, steps):
    extra = {"length": 300} if name in ("sines", "mackey_glass") else {}
    if name in ("adding", "temporal_order", "copy", "reber"):
        extra = {"val_size": 4, "test_size": 4}
    ds = data.build(name, seq_len=seq_len, batch_size=4, **extra)
    assert ds.train_batch(0)["inputs"].shape[1] == steps
    assert next(ds.eval_batches("test"))["inputs"].shape[1] == steps
    assert "seq_len" in data.options(name)


def test_vowels_takes_seq_len_only_as_null():
    assert data.build("vowels", seq_len=None).spec.info["max_len"] == 29
    with pytest.raises(ValueError, match=r"data.seq_len=10 cannot be set for vowels.*valid: null"):
        data.build("vowels", seq_len=10)


def test_every_data_set_declares_its_real_options():
    """The trainer checks data.* keys against these, so a **kwargs factory would reject every key."""
    for name in (n for n in data.names() if not n.startswith("test_")):  # tests register their own
        options = data.options(name)
        assert "kwargs" not in options and "batch_size" in options and "seq_len" in options, name
