"""The gradient-norm study through the command line: +experiment=gradnorm shrunken, and its multirun grid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lstmlab import diagnostics as dg

from conftest import run_cli

SHRINK = [
    "model.hidden_size=8",
    "data.seq_len=30",
    "data.batch_size=8",
    "data.val_size=8",
    "data.test_size=8",
    "trainer.max_steps=4",
    "trainer.log_every=2",
    "trainer.eval_every=4",
    "diagnostics.every=2",
    "trainer.progress=none",
]
CELLS = ["rnn", "lstm", "gru", "peephole"]
PLOTS = ["gradnorm_decay.png", "gradnorm_decay_trained.png", "jacobian_spectra.png", "jacobian_spectra_trained.png"] + [
    f"gradnorm_heatmap_{cell}.png" for cell in CELLS
]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("gradnorm") / "run"
    result = run_cli(
        ["+experiment=gradnorm", *SHRINK, "logger.wandb.mode=offline", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def init_rate(npz, key: str) -> float:
    return dg.fit_decay_rate(npz[key][0]).rate


def test_study_writes_curves_plots_table_and_the_run_directory_contract(study):
    for name in ["config.yaml", "metrics.jsonl", "summary.json", "gradnorms.npz", "decay_rates.md"]:
        assert (study / name).is_file(), name
    for name in PLOTS:
        data = (study / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    for cell in CELLS:  # every cell is a complete training run of its own
        assert (study / "cells" / cell / "checkpoints").is_dir(), cell
    assert "runner: gradnorm" in (study / "config.yaml").read_text()
    assert list((study / "wandb").glob("offline-run-*/run-*.wandb")), "no wandb log of the study"

    with np.load(study / "gradnorms.npz") as npz:
        for cell in CELLS:
            assert list(npz[f"{cell}/steps"]) == [0, 2, 4], cell
            h = npz[f"{cell}/layer0/h"]
            assert h.shape[0] == 3 and 30 <= h.shape[1] <= 33 and np.all(np.isfinite(h)) and np.all(h > 0)
            assert npz[f"{cell}/jacobian/layer0"].shape[:2] == (3, h.shape[1])
        assert "lstm/layer0/c" in npz.files and "rnn/layer0/c" not in npz.files
        # at initialisation the tanh RNN's gradient vanishes faster than the LSTM's (forget bias 1)
        rnn, lstm = init_rate(npz, "rnn/layer0/h"), init_rate(npz, "lstm/layer0/h")
        assert 0 < rnn < lstm < 1.05, (rnn, lstm)
        # the peephole LSTM starts with zero peepholes: the same cell as the LSTM
        np.testing.assert_allclose(npz["peephole/layer0/h"][0], npz["lstm/layer0/h"][0], rtol=1e-5)

    table = (study / "decay_rates.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "setting" not in line]
    # h for 4 cells, c for 2, at steps 0 and 4; the Jacobian table: 4 cells at steps 0 and 4
    assert len(rows) == (4 + 2) * 2 + 4 * 2, table
    assert f"| rnn layer0/h, step 0 | {rnn:.4g} |" in table
    assert "recurrent_scale 1, forget_bias 1, clip global_norm 1" in table

    records = [json.loads(line) for line in (study / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    assert all(f"diag/{cell}/layer0/h_rate" in r for r in records for cell in CELLS)
    assert all(f"grad/{cell}/global_norm" in r and f"train/{cell}/loss" in r for r in records[1:] for cell in CELLS)
    summary = json.loads((study / "summary.json").read_text())
    assert summary["cells"] == CELLS and summary["step"] == 4
    assert summary["diag/rnn/layer0/h_rate_init"] == pytest.approx(rnn)


def test_multirun_grid_writes_one_study_per_setting(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "+experiment=gradnorm",
            "-m",
            "cell.recurrent_scale=0.5,2.0",
            "diagnostics.cells=[rnn]",
            *SHRINK,
            "logger.wandb.mode=disabled",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rates = {}
    for job, scale in (("0", 0.5), ("1", 2.0)):
        assert "recurrent_scale: " + str(scale) in (sweep / job / "config.yaml").read_text()
        assert (sweep / job / "plots" / "gradnorm_decay.png").is_file()
        with np.load(sweep / job / "gradnorms.npz") as npz:
            rates[scale] = init_rate(npz, "rnn/layer0/h")
    # recurrent weights of spectral radius 0.5 make the gradient vanish, of 2 explode
    assert rates[0.5] < 0.6 and rates[2.0] > 1.0, rates


def test_unknown_runner_ends_in_one_line_exit_2_and_leaves_the_run_directory_alone(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    result = run_cli(
        ["+experiment=gradnorm", *SHRINK, "runner=gradnrm", "logger.wandb.mode=disabled", f"hydra.run.dir={run_dir}"]
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "runner='gradnrm' is not a runner; valid: train, gradnorm" in lines[0]
    assert sorted(p.name for p in run_dir.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("cells", ["rnn", "lsmt"], "diagnostics.cells has 'lsmt', not a cell; valid: lstm, peephole, gru, rnn"),
        ("cells", ["rnn", "rnn"], "names a cell twice"),
        ("cells", [], "diagnostics.cells is empty"),
        ("every", 0, "diagnostics.every=0 must be >= 1 for runner=gradnorm"),
    ],
)
def test_study_rejects_bad_settings_before_writing(tmp_path, key, value, message):
    from lstmlab.config import Config, ConfigError
    from lstmlab.study import run_gradnorm_study

    config = Config(runner="gradnorm", data={"name": "adding", "seq_len": 10, "batch_size": 2})
    config.diagnostics.every = 1
    setattr(config.diagnostics, key, value)
    with pytest.raises(ConfigError, match=message):
        run_gradnorm_study(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_study_directory_has_one_writer(tmp_path):
    from lstmlab.cli import compose
    from lstmlab.io.lock import RunLock, RunLockedError
    from lstmlab.study import run_gradnorm_study

    config = compose("gradnorm", ["+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=none"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with RunLock(run_dir), pytest.raises(RunLockedError, match=str(os.getpid())):
        run_gradnorm_study(config, run_dir)
    assert {p.name for p in run_dir.iterdir()} <= {".lock", ".lock.owner"}  # no config.yaml, nothing else
