"""Run by tests/test_devices.py in a process started with 8 simulated CPU devices (the device count is
fixed when JAX starts): tiny Shakespeare runs on 8 devices and on 1, and runs that switch between the two
at a checkpoint, written under the directory ``argv[1]``; the test compares their trajectories. Prints
the mesh sizes chosen by default."""

import sys
from pathlib import Path

import jax

from lstmlab.config import Config
from lstmlab.train import train_and_evaluate
from lstmlab.train.setup import make_mesh

assert len(jax.local_devices()) == 8, jax.local_devices()


def config(devices, max_steps):
    c = Config()
    c.resume.allow_changes = ["trainer.max_steps"]  # the second half of a run resumes with more steps
    c.data = {"name": "shakespeare", "plays": "macbeth", "seq_len": 8, "batch_size": 8}
    c.model.hidden_size, c.model.dropout = 8, 0.2
    c.trainer.devices, c.trainer.max_steps = devices, max_steps
    c.trainer.log_every, c.trainer.eval_every, c.trainer.eval_max_batches = 1, 2, 1
    c.trainer.progress, c.logger.wandb.mode, c.sample.length = "none", "disabled", 5
    c.checkpoint.every = 2
    return c


print(f"default mesh: {make_mesh(None, 8).devices.size} devices")  # trainer.devices=null: all local ones
print(f"batch of 12: {make_mesh(None, 12).devices.size} devices")  # ... or as many as divide the batch
root = Path(sys.argv[1])
train_and_evaluate(config(8, 4), root / "eight")
train_and_evaluate(config(1, 4), root / "one")
train_and_evaluate(config(8, 2), root / "eight_then_one")
train_and_evaluate(config(1, 4), root / "eight_then_one")
train_and_evaluate(config(1, 2), root / "one_then_eight")
train_and_evaluate(config(8, 4), root / "one_then_eight")
