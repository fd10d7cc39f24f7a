"""The command line end to end on shrunken configs: the run-directory contract, resume, sampling."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, TINY, program, run_cli

CONTRACT = ["config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "plots/learning_curves.png", "samples.txt"]


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory) -> Path:
    """One tiny charlm run through the CLI with wandb offline, shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("charlm") / "run"
    overrides = [o for o in TINY if not o.startswith("logger.")]
    result = run_cli(
        ["+experiment=charlm", *overrides, "logger.wandb.mode=offline", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_cli_run_writes_every_file_of_the_run_directory_contract(charlm_run):
    for name in CONTRACT:
        assert (charlm_run / name).exists(), f"{name} missing from the run directory"
    records = [json.loads(line) for line in (charlm_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for key in ("train/loss", "train/bpc", "val/loss", "val/bpc", "grad/global_norm"):
        assert all(key in r for r in records), key
    summary = json.loads((charlm_run / "summary.json").read_text())
    assert summary["step"] == 4
    assert summary["test/bpc"] == pytest.approx(summary["test/loss"] / np.log(2))
    assert sorted(int(p.name) for p in (charlm_run / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    assert (charlm_run / "samples.txt").read_text().count("=== step") == 2
    assert "hidden_size: 8" in (charlm_run / "config.yaml").read_text()


def test_wandb_offline_writes_its_run_files(charlm_run):
    runs = list((charlm_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((charlm_run / "wandb").iterdir())
    assert list(runs[0].glob("run-*.wandb")), "no wandb transaction log"


def test_sample_command_reads_a_run_directory(charlm_run):
    result = run_cli(
        [str(charlm_run), "--prime", "MAC", "--length", "30", "--temperature", "0"], module="lstmlab.sample"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout.rstrip("\n")
    assert text.startswith("MAC") and len(text) == 33
    # greedy decoding is deterministic
    again = run_cli(
        [str(charlm_run), "--prime", "MAC", "--length", "30", "--temperature", "0"], module="lstmlab.sample"
    )
    assert again.stdout == result.stdout


def test_sample_command_rejects_characters_outside_the_vocabulary(charlm_run):
    result = run_cli([str(charlm_run), "--prime", "\u2603", "--length", "5"], module="lstmlab.sample")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "override, named",
    [
        (
            "cell=lstn",
            "cell=lstn does not exist; valid: gru, lstm, mingru, minlstm, mlstm, mut1, mut2, mut3, peephole, rnn, "
            "slstm, urnn",
        ),
        ("model.hidden_size=abc", "model.hidden_size"),
        ("optim.name=adamx", "optim.name='adamx' is not an optimiser; valid: adam, adamw, rmsprop, sgd"),
        ("data.plays=hamlett", "hamlett"),
    ],
)
def test_bad_override_ends_in_one_line_exit_2_and_leaves_the_run_directory_alone(tmp_path, override, named):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    result = run_cli(["+experiment=charlm", *TINY, override, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["keep.txt"]


def test_every_experiment_config_composes():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lstmlab.cli import conf_dir, register_schema
    from lstmlab.config import Config

    register_schema()
    names = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
    assert "charlm" in names
    for name in names:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("config", overrides=[f"+experiment={name}"])
        config = OmegaConf.to_object(cfg)
        assert isinstance(config, Config) and config.experiment == name, name


def test_wheel_ships_the_configs_and_finds_them_from_elsewhere(tmp_path):
    import subprocess
    import sys

    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("lstmlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "lstmlab/conf/config.yaml" in names and "lstmlab/conf/experiment/charlm.yaml" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    found = subprocess.run(
        program("conf_dir"),
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == target / "lstmlab" / "conf"
