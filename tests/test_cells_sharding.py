"""One recurrence per device (``cells.scan(..., batch_axis=...)`` under ``jax.set_mesh``): the same
values and gradients as the unsplit scan, for every kernel and option; no split without a mesh axis,
when the batch does not divide, or without an explicit ``batch_axis`` (also in the NNX layer). Run on 2
simulated CPU devices in a fresh process, ``tests/programs/split_scan.py`` (the device count is fixed when
JAX starts)."""

from __future__ import annotations

import subprocess

from conftest import cli_env, program


def test_split_scan_matches_the_unsplit_scan_on_two_devices():
    result = subprocess.run(
        program("split_scan"),
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout, result.stdout
