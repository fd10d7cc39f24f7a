"""Gradients in the trainer: the grad/ metrics, clipping of the applied update, and the per-timestep
gradient-norm probes (diagnostics.every) with their files, exact resume and bad settings."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab.config import Config, ConfigError
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.train import build_dataset, build_model, gradnorms, losses, train_and_evaluate


def adding_config(max_steps: int, cell: str = "lstm") -> Config:
    config = Config()
    config.data = {"name": "adding", "seq_len": 12, "batch_size": 4, "val_size": 4, "test_size": 4}
    config.cell.name = cell
    config.model.hidden_size = 4
    config.trainer.max_steps = max_steps
    config.trainer.eval_every = max_steps
    config.trainer.log_every = 1
    config.trainer.progress = "none"
    config.checkpoint.every = 0
    config.logger.wandb.mode = "disabled"
    return config


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("clip", ["global_norm", "value"])
def test_the_trainer_applies_an_update_no_larger_than_the_clipping_threshold(tmp_path, clip):
    threshold = 1e-3  # far below the gradients at initialisation, so clipping acts
    config = adding_config(1, cell="peephole")
    o = config.optim
    o.name, o.lr, o.momentum, o.clip, o.clip_threshold = "sgd", 1.0, 0.0, clip, threshold
    train_and_evaluate(config, tmp_path)
    dataset = build_dataset(config)
    _, before = nnx.split(build_model(config, dataset.spec))  # the same seed: the run's initial params
    after = Checkpointer(tmp_path / "checkpoints").restore_params(1, before)
    deltas = [np.asarray(a) - np.asarray(b) for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))]
    [logged] = records(tmp_path)
    assert logged["grad/global_norm"] > 10 * threshold
    if clip == "global_norm":
        applied = float(np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in deltas)))
        assert applied == pytest.approx(threshold, rel=1e-3)  # lr 1: the update is the clipped gradient
        assert logged["grad/clip_factor"] == pytest.approx(threshold / logged["grad/global_norm"], rel=1e-5)
    else:
        assert max(float(np.abs(d).max()) for d in deltas) == pytest.approx(threshold, rel=1e-3)
        # float32 params near 1 change by 1e-3 only up to ~1e-7 of rounding
        assert all(float(np.abs(d).max()) <= threshold * (1 + 1e-3) for d in deltas)
        assert logged["grad/clip_factor"] < 1.0
    assert logged["grad/update_norm"] == pytest.approx(
        float(np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in deltas))), rel=1e-3
    )
    # per-parameter norms (weights, bias, peepholes), per-layer norms and the update ratio
    for name in ("w_i", "w_h", "b", "p_i", "p_f", "p_o"):
        assert logged[f"grad/rnn/layer0/{name}"] >= 0, name
    parts = [logged[f"grad/rnn/layer0/{n}"] for n in ("w_i", "w_h", "b", "p_i", "p_f", "p_o")]
    assert logged["grad/rnn/layer0"] == pytest.approx(float(np.sqrt(np.sum(np.square(parts)))), rel=1e-5)
    assert logged["grad/update_ratio"] == pytest.approx(
        logged["grad/update_norm"] / logged["grad/param_norm"], rel=1e-5
    )


def probe_setup(config: Config):
    dataset = build_dataset(config)
    model = build_model(config, dataset.spec)
    batch = gradnorms.probe_batch(dataset, config.diagnostics.batch_size)
    return dataset, model, batch


def test_probe_loss_at_the_last_step_is_the_training_loss_and_its_last_gradient_matches_autodiff():
    config = adding_config(1)
    dataset, model, batch = probe_setup(config)
    arrays = {k: jnp.asarray(v) for k, v in batch.items()}
    xs = jnp.swapaxes(arrays["inputs"], 0, 1)
    _, hs = model.rnn(xs, seq_lengths=arrays["seq_lengths"])
    _, outputs = model(arrays["inputs"], seq_lengths=arrays["seq_lengths"])
    expected, _ = losses.mean_loss("regress", outputs, arrays)  # pooling=last: the training loss
    assert float(gradnorms.probe_loss(model, "regress", hs, arrays, "last")) == pytest.approx(float(expected), rel=1e-6)

    # dL/dh at each example's last step, by plain autodiff with respect to those outputs
    last_index = arrays["seq_lengths"] - 1
    last = jnp.take_along_axis(hs, last_index[None, :, None], axis=0)[0]
    grad = jax.grad(lambda h: losses.mean_loss("regress", model.head(h), arrays)[0])(last)
    graphdef, params = nnx.split(model)
    curves = gradnorms.make_probe(graphdef, dataset.spec, batch, loss="last")(params)
    assert curves["layer0/h"].shape == (int(batch["seq_lengths"].min()),)
    assert curves["layer0/h"][-1] == pytest.approx(float(jnp.linalg.norm(grad, axis=-1).mean()), rel=1e-5)
    assert curves["layer0/c"][-1] == 0.0  # c_T reaches the loss only through h_T, computed before it
    assert np.all(curves["layer0/h"][:-1] > 0)


def test_probe_loss_at_every_step_of_a_language_model_is_the_training_loss():
    config = Config()
    config.data = {"name": "shakespeare", "plays": "macbeth", "seq_len": 6, "batch_size": 3}
    config.model.hidden_size = 4
    _, model, batch = probe_setup(config)
    arrays = {k: jnp.asarray(v) for k, v in batch.items()}
    _, hs = model.rnn(jnp.swapaxes(model.features(arrays["inputs"]), 0, 1))
    _, outputs = model(arrays["inputs"])
    expected, _ = losses.mean_loss("lm", outputs, arrays)
    assert float(gradnorms.probe_loss(model, "lm", hs, arrays, "all")) == pytest.approx(float(expected), rel=1e-6)
    only_last, _ = losses.mean_loss(
        "lm", outputs[:, -1:], {k: v[:, -1:] for k, v in arrays.items() if k in ("targets", "mask")}
    )
    assert float(gradnorms.probe_loss(model, "lm", hs, arrays, "last")) == pytest.approx(float(only_last), rel=1e-6)


def diag_config(max_steps: int) -> Config:
    config = adding_config(max_steps, cell="gru")
    config.diagnostics.every = 2
    config.diagnostics.jacobian = "full"
    config.checkpoint.every = 2
    return config


def test_probes_are_logged_at_init_and_every_n_steps_and_resume_exactly(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(diag_config(4), straight)
    train_and_evaluate(diag_config(2), resumed)
    longer = diag_config(4)
    longer.resume.allow_changes = ["trainer.max_steps"]  # a resume that changes max_steps must say so
    train_and_evaluate(longer, resumed)

    with np.load(straight / "gradnorms.npz") as a, np.load(resumed / "gradnorms.npz") as b:
        assert list(a["steps"]) == [0, 2, 4]
        assert sorted(a.files) == sorted(b.files) == ["jacobian/layer0", "layer0/h", "loss", "steps"]
        L = int(a["layer0/h"].shape[1])
        assert 12 <= L <= 13 and a["jacobian/layer0"].shape == (3, L, 4)  # K = L, S = H for a GRU
        assert str(a["loss"]) == str(b["loss"]) == "last"
        for key in ("steps", "layer0/h", "jacobian/layer0"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
        assert np.all(a["layer0/h"] > 0)
    diag = {r["step"]: r for r in records(straight) if "diag/layer0/h_rate" in r}
    assert sorted(diag) == [0, 2, 4]
    with np.load(straight / "gradnorms.npz") as a:
        assert diag[4]["diag/layer0/h_last"] == pytest.approx(float(a["layer0/h"][2, -1]), rel=1e-6)
        assert diag[0]["diag/layer0/h_first"] == pytest.approx(float(a["layer0/h"][0, 0]), rel=1e-6)
    assert 0 < diag[0]["diag/layer0/h_rate"] < 2 and 0 < diag[0]["diag/layer0/jacobian_rate"] < 2
    for name in ("gradnorm_heatmap.png", "gradnorm_decay.png"):
        assert (straight / "plots" / name).stat().st_size > 5000, name


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("loss", "first", "diagnostics.loss='first'; valid: last, all"),
        ("jacobian", "c", "diagnostics.jacobian='c'; valid: none, full, h"),
        ("every", -1, "diagnostics.every=-1 must be an integer >= 0"),
    ],
)
def test_bad_diagnostics_settings_are_named_before_anything_is_written(tmp_path, key, value, message):
    config = diag_config(2)
    setattr(config.diagnostics, key, value)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
