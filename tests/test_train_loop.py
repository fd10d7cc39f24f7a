"""The training loop from Python (no CLI): exact resume, sampling, losses, optimisers."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from lstmlab import diagnostics
from lstmlab.config import Config, ConfigError
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.train import build_dataset, build_model, generate, losses, optim, train_and_evaluate


def tiny_config(max_steps: int, **data) -> Config:
    config = Config()
    config.data = {"name": "shakespeare", "plays": "macbeth", "seq_len": 8, "batch_size": 4, **data}
    config.model.hidden_size = 8
    config.model.num_layers = 2
    config.model.dropout = 0.3  # so the dropout keys must line up too
    config.trainer.max_steps = max_steps
    config.trainer.eval_every = 3
    config.trainer.log_every = 1
    config.trainer.eval_max_batches = 1
    config.trainer.progress = "none"
    config.checkpoint.every = 0
    config.logger.wandb.mode = "disabled"
    config.sample.length = 5
    return config


def test_trainer_test_false_never_reads_the_test_split(tmp_path, monkeypatch):
    from lstmlab.cli import result_lines
    from lstmlab.train import steps

    splits = []
    evaluate = steps.evaluate
    monkeypatch.setattr(
        steps,
        "evaluate",
        lambda graphdef, params, dataset, split, **kw: (
            splits.append(split) or evaluate(graphdef, params, dataset, split, **kw)
        ),
    )
    config = tiny_config(3)
    config.trainer.test = False
    summary = train_and_evaluate(config, tmp_path)
    assert "test" not in splits and "val" in splits
    assert not [k for k in summary if k.startswith("test/")] and "val/bpc" in summary
    assert "the test split was not read" in result_lines(summary, tmp_path)[1]
    splits.clear()
    config.trainer.test = True
    train_and_evaluate(config, tmp_path / "with_test")
    assert "test" in splits


def saved_state(run_dir, step):
    manager = Checkpointer(run_dir / "checkpoints").manager
    return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(tiny_config(6), straight)
    train_and_evaluate(tiny_config(3), resumed)
    longer = tiny_config(6)
    longer.resume.allow_changes = ["trainer.max_steps"]  # a resume that changes max_steps must say so
    train_and_evaluate(longer, resumed)
    a, b = saved_state(straight, 6), saved_state(resumed, 6)
    assert sorted(a) == sorted(b)
    assert any(k.startswith("carries.") for k in a), "the TBPTT carry must be part of the state"
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_checkpoint_of_another_model_and_writes_nothing(tmp_path):
    train_and_evaluate(tiny_config(2), tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    bigger = tiny_config(4)
    bigger.model.hidden_size = 16
    with pytest.raises(ConfigError, match="does not match this model"):
        train_and_evaluate(bigger, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_resume_refuses_another_vocabulary(tmp_path):
    train_and_evaluate(tiny_config(2), tmp_path)
    other = tiny_config(4, plays="hamlet")
    with pytest.raises(ConfigError, match="another vocabulary"):
        train_and_evaluate(other, tmp_path)


def test_sampling_at_temperature_zero_is_argmax_decoding():
    config = tiny_config(1)
    dataset = build_dataset(config)
    model = build_model(config, dataset.spec)
    prime = dataset.vocab.encode("MACBETH")
    fast = generate(model, prime, 12, temperature=0.0)
    # the same thing one Python step at a time
    carries, logits = model(jnp.asarray(prime)[None], model.initial_carries(1))
    token, slow = int(logits[0, -1].argmax()), []
    for _ in range(12):
        slow.append(token)
        carries, logits = model.step(carries, jnp.array([token]))
        token = int(logits[0].argmax())
    np.testing.assert_array_equal(fast, slow)


def test_top_k_sampling_draws_only_from_the_k_likeliest():
    from lstmlab.train.sample import choose

    logits = jnp.log(jnp.array([[0.05, 0.5, 0.05, 0.3, 0.1]]))
    draws = {int(choose(logits, jax.random.PRNGKey(i), 1.0, 2)[0]) for i in range(200)}
    assert draws == {1, 3}


def test_masked_losses_ignore_padding():
    outputs = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5))
    batch = {"targets": jnp.array([[1, 2, 3], [4, 0, 0]]), "mask": jnp.array([[1, 1, 1], [1, 0, 0.0]])}
    garbage = outputs.at[1, 1:].set(1e6)  # padded steps: anything
    a, b = losses.batch_sums("lm", outputs, batch), losses.batch_sums("lm", garbage, batch)
    assert float(a["count"]) == 4
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
    expected = -sum(
        float(jax.nn.log_softmax(outputs[b_, t])[batch["targets"][b_, t]]) for b_, t in [(0, 0), (0, 1), (0, 2), (1, 0)]
    )
    np.testing.assert_allclose(float(a["loss"]), expected, rtol=1e-5)
    metrics = losses.metrics_from_sums("lm", a)
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / np.log(2))


@pytest.mark.parametrize("clip", ["global_norm", "value"])
def test_clipping_bounds_the_gradient_the_optimiser_sees(clip):
    config = Config().optim
    config.name, config.lr, config.clip, config.clip_threshold = "sgd", 1.0, clip, 0.5
    config.momentum = 0.0
    tx = optim.make_optimizer(config, 10)
    params = {"w": jnp.zeros(4)}
    grads = {"w": jnp.array([3.0, -4.0, 0.1, 0.0])}
    updates, _ = tx.update(grads, tx.init(params), params)
    if clip == "global_norm":
        assert float(optax.tree.norm(updates)) == pytest.approx(0.5, rel=1e-6)
        assert float(diagnostics.clip_factor(optax.tree.norm(grads), 0.5)) == pytest.approx(
            0.5 / float(jnp.linalg.norm(grads["w"]))
        )
    else:
        assert float(jnp.abs(updates["w"]).max()) == pytest.approx(0.5)
        assert float(updates["w"][2]) == pytest.approx(-0.1)


def test_warmup_then_cosine_schedule():
    config = Config().optim
    config.schedule, config.warmup_steps, config.lr, config.final_lr_ratio = "warmup_cosine", 10, 1.0, 0.1
    lr = optim.schedule(config, 110)
    assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.5)
    assert float(lr(10)) == pytest.approx(1.0) and float(lr(110)) == pytest.approx(0.1)
