"""How many CPU devices the command line gives a run: one by default; ``trainer.devices=N`` makes N;
``trainer.split_per_device=true`` one per core (as many as divide the batch); and that a run really
trains on them."""

from __future__ import annotations

import json
import os

import pytest

from lstmlab.config import Config
from lstmlab.train import distributed

from conftest import TINY, run_cli

ROWS, UNITS = distributed.MIN_ROWS_PER_CPU_DEVICE, distributed.MIN_GATE_UNITS_PER_CPU_DEVICE


def config(
    batch_size=32, runner="train", devices=None, cell="lstm", hidden_size=128, bidirectional=False, split=True, **dist
) -> Config:
    c = Config()
    c.runner, c.data, c.trainer.devices = runner, {"name": "adding", "batch_size": batch_size}, devices
    c.trainer.split_per_device = split
    c.cell.name, c.model.hidden_size, c.model.bidirectional = cell, hidden_size, bidirectional
    for key, value in dist.items():
        setattr(c.distributed, key, value)
    return c


@pytest.mark.parametrize(
    "cfg, want",
    [
        (config(split=False), 1),  # the default: one device
        (config(split=False, devices=3), 3),  # trainer.devices=N: N
        (config(split=False, devices=99), 4),  # ... at most one per core; the mesh then reports the bad value
        (config(), 4),  # split_per_device: one per core
        (config(batch_size=3 * ROWS), 3),  # as many as divide the batch
        (config(batch_size=2 * ROWS + 2), 2),  # 2 divide it; 3 would leave fewer than ROWS rows each
        (config(batch_size=7), 1),  # prime: only one device divides it
        (config(batch_size=2 * ROWS), 2),  # ... leaving each at least ROWS rows
        (config(batch_size=2 * ROWS - 4), 1),  # two devices would leave each fewer than ROWS
        (config(devices=2), 2),  # trainer.devices is obeyed
        (config(runner="gradnorm"), 1),  # the study trains one cell at a time on one device
        (config(enabled=True), 1),  # jax.distributed: one device per process
    ],
)
def test_cpu_devices_one_by_default_n_when_asked_or_one_per_core_dividing_the_batch(monkeypatch, cfg, want):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert distributed.cpu_devices(cfg) == want


@pytest.mark.parametrize(
    "cell, gates, bidirectional", [("rnn", 1, False), ("lstm", 4, False), ("gru", 3, False), ("rnn", 1, True)]
)
def test_small_models_stay_on_one_device(monkeypatch, cell, gates, bidirectional):
    """A split needs MIN_GATE_UNITS_PER_CPU_DEVICE gate units (rows x gates x hidden x directions) per
    device and time step: just enough splits, one hidden unit fewer does not, unless asked for."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    rows = 2 * ROWS  # a batch that two devices divide
    per_row = gates * (2 if bidirectional else 1)
    enough = -(-UNITS // (ROWS * per_row))  # the smallest hidden size that reaches the floor
    assert distributed.cpu_devices(config(rows, cell=cell, hidden_size=enough, bidirectional=bidirectional)) == 2
    small = config(rows, cell=cell, hidden_size=enough - 1, bidirectional=bidirectional)
    assert distributed.cpu_devices(small) == (1 if ROWS * per_row * (enough - 1) < UNITS else 2)
    asked = config(rows, cell=cell, hidden_size=enough - 1, bidirectional=bidirectional, devices=2)
    assert distributed.cpu_devices(asked) == 2


def test_cpu_devices_leave_every_device_the_minimum_rows_on_many_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert distributed.cpu_devices(config(batch_size=8 * ROWS, hidden_size=UNITS)) == 8


@pytest.mark.parametrize(
    "env", [{"JAX_NUM_CPU_DEVICES": "1"}, {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}]
)
def test_set_cpu_devices_leaves_a_users_device_count_alone(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert distributed.set_cpu_devices(config()) is None


def test_the_library_sets_no_device_count_of_its_own():
    """Only the command line calls set_cpu_devices; the default config asks for nothing."""
    assert distributed.cpu_devices(Config()) == 1


def test_cli_runs_on_one_device_by_default_and_on_the_devices_asked_for(tmp_path):
    cores = len(os.sched_getaffinity(0))
    # a 32-unit LSTM with batch 32: 16 rows x 4 x 32 = 2048 gate units per device on 2 devices
    split = max(k for k in range(1, cores + 1) if 32 % k == 0 and 32 // k >= 8 and 32 // k * 4 * 32 >= 2048)
    runs = {}
    for name, extra in (("default", []), ("two", ["trainer.devices=2"]), ("split", ["trainer.split_per_device=true"])):
        run_dir = tmp_path / name
        result = run_cli(["+experiment=adding", *TINY, "model.hidden_size=32", *extra, f"hydra.run.dir={run_dir}"])
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = json.loads((run_dir / "summary.json").read_text())
    assert runs["default"]["devices"] == 1
    assert runs["two"]["devices"] == min(2, cores)
    assert runs["split"]["devices"] == split
    for name in ("two", "split"):
        assert runs[name]["test/loss"] == pytest.approx(runs["default"]["test/loss"], rel=1e-4), name


def test_thousands_of_small_steps_on_two_cpu_devices_do_not_deadlock(tmp_path):
    """With several steps in flight, XLA's in-process collectives deadlocked on 2 CPU devices split per
    device: the trainer keeps one step in flight on several CPU devices; XLA aborts a collective stuck
    for 40 s, so a regression fails here rather than hanging."""
    run_dir = tmp_path / "reber"
    result = run_cli(
        [
            "+experiment=reber",
            "logger.wandb.mode=disabled",
            "trainer.progress=none",
            "trainer.split_per_device=true",
            "trainer.eval_every=2000",
            f"hydra.run.dir={run_dir}",
        ],
        timeout=240,
        JAX_NUM_CPU_DEVICES="2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["step"], summary["devices"]) == (2000, 2)
