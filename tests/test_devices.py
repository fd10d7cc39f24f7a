"""Data parallelism: 8 simulated CPU devices in one process, and two processes joined by
jax.distributed on 127.0.0.1 (gloo collectives). Both follow the single-device loss trajectory, and
checkpoints move between device and process counts."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lstmlab.io.checkpoint import Checkpointer

from conftest import ROOT, cli_env, program, run_cli

TOLERANCE = 1e-5


def losses(run_dir: Path, key: str = "train/loss") -> list[float]:
    return [
        json.loads(line)[key]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if key in json.loads(line)
    ]


def params(run_dir: Path, step: int) -> dict[str, np.ndarray]:
    flat, _ = Checkpointer(run_dir / "checkpoints", read_only=True).read(step)
    return {k: v for k, v in flat.items() if k.startswith("params.")}


def assert_close_runs(a: Path, b: Path) -> None:
    for key in ("train/loss", "val/loss"):
        np.testing.assert_allclose(losses(a, key), losses(b, key), rtol=0, atol=TOLERANCE, err_msg=key)
    pa, pb = params(a, 4), params(b, 4)
    for key in pa:
        np.testing.assert_allclose(pa[key], pb[key], rtol=0, atol=TOLERANCE, err_msg=key)


def test_eight_devices_follow_one_device_and_checkpoints_move_between_them(tmp_path):
    result = subprocess.run(
        program("eight_devices", str(tmp_path)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    one = tmp_path / "one"
    assert len(losses(one)) == 4
    for other in ("eight", "eight_then_one", "one_then_eight"):
        assert_close_runs(tmp_path / other, one)
        steps = [json.loads(line)["step"] for line in (tmp_path / other / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4], other
    assert "default mesh: 8 devices" in result.stdout, result.stdout
    assert "batch of 12: 6 devices" in result.stdout, result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STEPS = 40
TWO = [
    "+experiment=charlm",
    "model.hidden_size=8",
    "model.num_layers=1",
    "data.seq_len=8",
    "data.batch_size=4",
    f"trainer.max_steps={STEPS}",
    "trainer.eval_every=10",
    "trainer.log_every=1",
    "trainer.eval_max_batches=1",
    "checkpoint.every=2",
    "checkpoint.keep=100",
    "sample.length=5",
    "logger.wandb.mode=disabled",
    "trainer.progress=lines",
]


def test_two_processes_follow_one_process_stop_together_and_only_process_0_writes(tmp_path):
    """One process trains the reference. Two processes (a global batch of 4 split 2 + 2) resume its
    step-2 checkpoint; process 1 alone gets SIGTERM, both stop at the same step and process 0 saves it;
    one process finishes the run from there. The whole trajectory matches the reference."""
    single = tmp_path / "single"
    result = run_cli([*TWO, f"hydra.run.dir={single}"])
    assert result.returncode == 0, result.stderr[-3000:]
    two = tmp_path / "two"
    shutil.copytree(single, two)
    for step_dir in (two / "checkpoints").iterdir():
        if int(step_dir.name) > 2:
            shutil.rmtree(step_dir)
    address = f"127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lstmlab",
                *TWO,
                f"hydra.run.dir={two}",
                f"distributed.coordinator_address={address}",
                "distributed.num_processes=2",
                f"distributed.process_id={i}",
                "distributed.initialization_timeout=120",
            ],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    try:
        deadline = time.monotonic() + 300
        while not (two / "checkpoints" / "6").is_dir():
            assert all(p.poll() is None for p in processes), [p.communicate()[1][-2000:] for p in processes]
            assert time.monotonic() < deadline, "the two processes made no checkpoint"
            time.sleep(0.005)
        processes[1].send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for i, (p, (_, err)) in enumerate(zip(processes, outputs)):
        assert p.returncode == 128 + signal.SIGTERM, f"process {i}: {err[-3000:]}"
    saved = max(int(d.name) for d in (two / "checkpoints").iterdir())
    assert 6 < saved < STEPS, saved
    assert f"SIGTERM received; saved checkpoint at step {saved}" in outputs[0][1]
    assert f"step {saved}/{STEPS}" in outputs[0][0], "process 0 shows no progress"
    assert "step " not in outputs[1][0] and "lstmlab" not in outputs[1][1], "process 1 reported or logged"
    steps = [json.loads(line)["step"] for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, saved + 1)), "metrics.jsonl has repeated or missing steps (written twice?)"

    result = run_cli([*TWO, f"hydra.run.dir={two}"])  # one process again, from the two processes' checkpoint
    assert result.returncode == 0, result.stderr[-3000:]
    for key in ("train/loss", "val/loss"):
        np.testing.assert_allclose(losses(two, key), losses(single, key), rtol=0, atol=TOLERANCE, err_msg=key)
    a, b = params(single, STEPS), params(two, STEPS)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=TOLERANCE, err_msg=key)
