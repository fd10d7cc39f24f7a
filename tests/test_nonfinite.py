"""The non-finite guard: ``trainer.nonfinite=stop`` ends the run naming the step, the quantity (loss or
gradient norm) and the last good checkpoint; ``skip`` drops that update and counts it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lstmlab.config import Config
from lstmlab.data.base import DataSpec
from lstmlab.io.checkpoint import Checkpointer
from lstmlab.train import NonFiniteError, train_and_evaluate

from conftest import run_cli

BAD_STEP = 2  # the third update (step 3 in metrics.jsonl) sees the planted NaN
LENGTHS = np.array([5, 3, 4, 2], np.int32)


class PlantedNaN:
    """Regression on float sequences (B=4, T=5, D=2, right-padded to ``LENGTHS``) whose training batch at
    ``BAD_STEP`` holds one NaN: inside a sequence (``where="valid"``: the loss is NaN) or in the padding
    after a sequence's end (``where="padding"``: the loss ignores it and stays finite, but the gradient
    of the input weights picks up NaN * 0 = NaN)."""

    def __init__(self, where: str, seed: int = 0):
        self.where = where
        self.spec = DataSpec(kind="regress", output_size=1, input_size=2)

    def train_batch(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(step)
        inputs = rng.normal(size=(4, 5, 2)).astype(np.float32)
        inputs[np.arange(5)[None, :] >= LENGTHS[:, None]] = 0.0
        if step == BAD_STEP:
            if self.where == "valid":
                inputs[0, 1, 0] = np.nan
            else:
                inputs[3, 4, 1] = np.nan  # sequence 3 has 2 steps: step 4 is padding
        return {"inputs": inputs, "seq_lengths": LENGTHS, "targets": rng.normal(size=(4, 1)).astype(np.float32)}

    def eval_batches(self, split: str):
        batch = self.train_batch(1000)
        yield {**batch, "weights": np.ones(4, np.float32)}

    def extra_metrics(self, split, outputs, batches):
        return {}


pytestmark = pytest.mark.usefixtures("planted_nan_data")


def nan_config(where: str, policy: str) -> Config:
    config = Config()
    config.data = {"name": f"test_nan_{where}"}
    config.model.hidden_size = 4
    config.trainer.max_steps = 5
    config.trainer.log_every = 1
    config.trainer.eval_every = 5
    config.trainer.nonfinite = policy
    config.trainer.progress = "none"
    config.checkpoint.every = 1
    config.checkpoint.keep = 10
    config.logger.wandb.mode = "disabled"
    return config


@pytest.mark.parametrize(
    "where, quantity",
    [("valid", "non-finite loss at step 3"), ("padding", "non-finite gradient norm (the loss was finite) at step 3")],
)
def test_stop_names_the_step_the_quantity_and_the_last_good_checkpoint(tmp_path, where, quantity):
    with pytest.raises(NonFiniteError) as caught:
        train_and_evaluate(nan_config(where, "stop"), tmp_path)
    message = str(caught.value)
    assert quantity in message, message
    assert f"last good checkpoint: {tmp_path / 'checkpoints' / '2'};" in message, message
    assert "\n" not in message
    # nothing after the bad step was saved, and what was saved is finite
    checkpointer = Checkpointer(tmp_path / "checkpoints", read_only=True)
    assert checkpointer.steps() == [1, 2]
    flat, _ = checkpointer.read(2)
    assert all(np.isfinite(v).all() for k, v in flat.items() if v.dtype.kind == "f"), "a saved state has NaN"


def test_skip_drops_the_update_and_counts_it_in_the_metrics(tmp_path):
    summary = train_and_evaluate(nan_config("padding", "skip"), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["train/skipped"] for r in records] == [0, 0, 1, 1, 1]
    assert summary["train/skipped"] == 1 and math.isfinite(summary["val/loss"])
    # the skipped update left parameters and optimiser state exactly as they were after step 2
    checkpointer = Checkpointer(tmp_path / "checkpoints", read_only=True)
    before, _ = checkpointer.read(2)
    after, _ = checkpointer.read(3)
    for key in before:
        if key.startswith(("params.", "opt_state.")):
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    final, _ = checkpointer.read(5)
    assert not np.array_equal(final["params.head.kernel.value"], after["params.head.kernel.value"])
    assert all(np.isfinite(v).all() for k, v in final.items() if v.dtype.kind == "f")


def test_cli_exits_with_status_3_and_one_line_when_the_loss_explodes(tmp_path):
    # A linear RNN with recurrent weights scaled by 1e6: the hidden state overflows float32 in 8 steps.
    result = run_cli(
        [
            "+experiment=charlm",
            "model.hidden_size=8",
            "model.num_layers=1",
            "data.seq_len=8",
            "data.batch_size=4",
            "trainer.max_steps=3",
            "trainer.log_every=1",
            "checkpoint.every=1",
            "logger.wandb.mode=disabled",
            "trainer.progress=none",
            "cell=rnn",
            "cell.activation=identity",
            "cell.recurrent_scale=1e6",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert result.returncode == 3, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "non-finite loss at step 1" in lines[0] and "last good checkpoint: none yet" in lines[0]
    assert not list((tmp_path / "checkpoints").iterdir()), "a non-finite state was checkpointed"
