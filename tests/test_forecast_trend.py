"""A user's CSV file with a trend is forecast better than persistence with the default settings.

The test part of a trending series lies above anything seen in training; a model of standardised
levels cannot reach it (its skill against persistence was far below zero on real trending series),
the default model of changes from the last value can.
"""

from __future__ import annotations

import json

import numpy as np

from conftest import run_cli


def test_a_trending_csv_beats_persistence_by_default(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(300)
    values = 0.5 * t + rng.standard_normal(len(t))  # drift 0.5 per step, noise 1
    csv = tmp_path / "trend.csv"
    csv.write_text("y\n" + "".join(f"{v:.4f}\n" for v in values))
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "+experiment=sunspots",
            "data=csv",
            f"data.path={csv}",
            "data.column=y",
            "data.seq_len=8",
            "model.hidden_size=8",
            "trainer.max_steps=150",
            "trainer.eval_every=150",
            "trainer.log_every=150",
            "trainer.progress=none",
            "logger.wandb.mode=disabled",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    # persistence misses the drift every step: RMSE about sqrt(0.5**2 + 2) = 1.5; a model that learns
    # the drift is near 1.2 (skill about 0.2)
    assert summary["test/skill"] > 0.1, summary
    assert summary["test/seasonal_skill"] == summary["test/skill"]  # season 1: the same baseline
