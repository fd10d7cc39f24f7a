"""Shared helpers: run the CLI in a subprocess against this checkout, tiny overrides."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "programs"  # what a test runs in a fresh process, as modules ruff checks

# XLA compile time dominates tiny runs: share compiled programs between tests and CLI subprocesses.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "lstmlab-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Shrinks any experiment to a few seconds (conf/preset/tiny.yaml, which users can run too), without
# wandb and with plain progress lines. Goes after +experiment=... on the command line.
TINY = ["+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=lines"]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("WANDB_MODE", "offline")
    env.pop("HYDRA_FULL_ERROR", None)
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def run_cli(
    args: list[str], cwd: Path | None = None, timeout: float = 300, module: str = "lstmlab", **env: str
) -> subprocess.CompletedProcess:
    """``python -m lstmlab ARGS`` in a subprocess; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or ROOT,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def program(name: str, *args: str) -> list[str]:
    """The command that runs ``tests/programs/NAME.py`` with ``args`` in a fresh Python process."""
    return [sys.executable, str(PROGRAMS / f"{name}.py"), *args]


@pytest.fixture
def run_cli_fixture():
    return run_cli


@pytest.fixture(scope="module")
def planted_nan_data():
    """Data sets ``test_nan_valid`` and ``test_nan_padding`` (test_nonfinite.PlantedNaN), registered only
    while the tests that ask for them run, so other tests see the shipped data sets alone."""
    from test_nonfinite import PlantedNaN

    from lstmlab import data

    names = {where: f"test_nan_{where}" for where in ("valid", "padding")}
    for where, name in names.items():
        data.register(name)(lambda seed=0, _w=where: PlantedNaN(_w, seed))
    yield names
    for name in names.values():
        data.unregister(name)
