"""The package's layers only point down (import-linter contracts in pyproject.toml), and importing it
changes no process-wide state."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, cli_env, program

MODULES = [
    "lstmlab",
    "lstmlab.cells",
    "lstmlab.config",
    "lstmlab.data",
    "lstmlab.nn",
    "lstmlab.io",
    "lstmlab.io.plots",
    "lstmlab.io.checkpoint",
    "lstmlab.io.rundir",
    "lstmlab.diagnostics",
    "lstmlab.tasks",
    "lstmlab.train",
    "lstmlab.study",
    "lstmlab.sample",
    "lstmlab.cli",
    "lstmlab.search",
    "lstmlab.report",
    "lstmlab.cli.sweep",
    "lstmlab.cli.search",
    "lstmlab.cli.sample",
    "lstmlab.cli.inspect",
    "lstmlab.cli.report",
    "lstmlab.inspect",
    "lstmlab.interop",
]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: pip install -e '.[test]' (import-linter)")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_importing_lstmlab_leaves_matplotlib_and_the_unraisable_hook_alone():
    env = cli_env()
    env.pop("MPLBACKEND", None)
    result = subprocess.run(
        program("import_state", *MODULES), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "clean"


def test_no_private_jax_imports():
    offenders = [str(p.relative_to(ROOT)) for p in Path(ROOT, "lstmlab").rglob("*.py") if "jax._src" in p.read_text()]
    assert not offenders, offenders


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is missing: pip install -e '.[test]'")
    result = subprocess.run(
        [ruff, *command, "lstmlab", "tests", "scripts", "experiments"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
