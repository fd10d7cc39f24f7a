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
