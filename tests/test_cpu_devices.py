"""How many CPU devices the command line gives a run (one per core, as many as divide the batch), and
that a run really trains on them."""

from __future__ import annotations

import json
import os

import pytest

from conftest import TINY, run_cli
from lstmlab.config import Config
from lstmlab.train import distributed


def config(batch_size=32, runner="train", devices=None, cell="lstm", hidden_size=128, bidirectional=False,
           **dist) -> Config:
    c = Config()
    c.runner, c.data, c.trainer.devices = runner, {"name": "adding", "batch_size": batch_size}, devices
    c.cell.name, c.model.hidden_size, c.model.bidirectional = cell, hidden_size, bidirectional
    for key, value in dist.items():
        setattr(c.distributed, key, value)
    return c


@pytest.mark.parametrize("cfg, want", [
    (config(), 4),                        # one per core
    (config(batch_size=24), 3),           # as many as divide the batch
    (config(batch_size=18), 2),
    (config(batch_size=7), 1),
    (config(batch_size=16), 2),           # ... leaving each at least 8 rows
    (config(batch_size=12), 1),
    (config(devices=2), 2),               # trainer.devices caps it
    (config(devices=99), 4),              # ... and the mesh then reports the bad value
    (config(runner="gradnorm"), 1),       # the study trains one cell at a time on one device
    (config(enabled=True), 1),            # jax.distributed: one device per process
])
def test_cpu_devices_one_per_core_dividing_the_batch(monkeypatch, cfg, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert distributed.cpu_devices(cfg) == want


@pytest.mark.parametrize("cfg, want", [
    # each device must get >= 2048 gate units (rows x gates x hidden x directions) per time step
    (config(cell="rnn", hidden_size=64), 1),             # 16 rows x 64 = 1024 on 2 devices: too little
    (config(cell="rnn", hidden_size=128), 2),            # 16 x 128 = 2048
    (config(cell="lstm", hidden_size=16), 1),            # 16 x 4 x 16 = 1024
    (config(cell="lstm", hidden_size=32), 2),            # 16 x 4 x 32 = 2048
    (config(cell="gru", hidden_size=32), 1),             # 16 x 3 x 32 = 1536
    (config(cell="rnn", hidden_size=64, bidirectional=True), 2),   # both directions: 2048
    (config(cell="rnn", hidden_size=64, devices=2), 2),  # an explicit trainer.devices is obeyed
    (config(cell="no-such-cell"), 2),                    # no rule; validation reports the name
])
def test_small_models_stay_on_one_device(monkeypatch, cfg, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert distributed.cpu_devices(cfg) == want


def test_cpu_devices_leave_every_device_eight_rows_on_many_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert distributed.cpu_devices(config(batch_size=64)) == 8


@pytest.mark.parametrize("env", [{"JAX_NUM_CPU_DEVICES": "1"},
                                 {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}])
def test_split_cpu_leaves_a_users_device_count_alone(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert distributed.split_cpu(config()) is None


def test_cli_run_trains_on_one_device_per_core_and_says_so(tmp_path):
    cores = len(os.sched_getaffinity(0))
    # a 32-unit LSTM with batch 32: 16 rows x 4 x 32 = 2048 gate units per device on 2 devices
    want = max(k for k in range(1, cores + 1) if 32 % k == 0 and 32 // k >= 8 and 32 // k * 4 * 32 >= 2048)
    runs = {}
    for name, env in (("default", {}), ("one", {"JAX_NUM_CPU_DEVICES": "1"})):
        run_dir = tmp_path / name
        result = run_cli(["+experiment=adding", *TINY, "model.hidden_size=32", f"hydra.run.dir={run_dir}"],
                         **env)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = json.loads((run_dir / "summary.json").read_text())
    assert runs["default"]["devices"] == want
    assert runs["one"]["devices"] == 1
    assert runs["default"]["test/loss"] == pytest.approx(runs["one"]["test/loss"], rel=1e-4)


def test_thousands_of_small_steps_on_two_cpu_devices_do_not_deadlock(tmp_path):
    """With several steps in flight, XLA's in-process collectives deadlocked on 2 CPU devices: this run
    (2000 steps of a 32-unit LSTM) hung in 5 runs of 5 before the trainer kept one step in flight; XLA
    aborts a collective stuck for 40 s, so a regression fails here rather than hanging."""
    run_dir = tmp_path / "reber"
    result = run_cli(["+experiment=reber", "logger.wandb.mode=disabled", "trainer.progress=none",
                      "trainer.eval_every=2000", f"hydra.run.dir={run_dir}"], timeout=240,
                     JAX_NUM_CPU_DEVICES="2")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["step"], summary["devices"]) == (2000, 2)
