"""Your own data through an experiment: swapping the experiment's data group for a compatible one (or
pointing its data at a file) trains to the end and reports on that file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lstmlab.data.speech import save_npz
from lstmlab.io.rundir import RunDir

from conftest import TINY, run_cli


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_charlm_trains_on_your_own_text(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("the cat sat on the mat.\n" * 200)
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "+experiment=charlm",
            "data=text",
            f"data.path={text}",
            *TINY,
            "data.batch_size=4",
            "data.seq_len=16",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = _summary(run_dir)
    assert summary["step"] == 4 and "test/bpc" in summary
    assert "notes.txt" in json.dumps(summary["data"])  # trained on the file, not on the plays
    out = result.stdout.strip().splitlines()
    at = out.index(f"run directory: {run_dir}")  # the run directory, the result, then a taste of the text
    assert out[at + 1].startswith(f"test {summary['test/bpc']:.3f} bits per character"), out[at:]
    assert out[at + 2].startswith("generated text, step 4 (temperature") and str(run_dir / "samples.txt") in out[at + 2]
    heading, text = RunDir(run_dir).last_sample()
    shown = [line.rstrip() for line in out[at + 3 :]]
    assert shown == [f"  {line}".rstrip() for line in text.splitlines()[:4]] and shown


def test_vowels_trains_on_your_own_npz_sequences(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    save_npz(
        str(tmp_path / "mine.npz"), [rng.normal(label, 1.0, (int(rng.integers(3, 8)), 2)) for label in labels], labels
    )
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "+experiment=vowels",
            f"data.path={tmp_path / 'mine.npz'}",
            "data.batch_size=4",
            *TINY,
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = _summary(run_dir)
    assert summary["step"] == 4 and 0.0 <= summary["test/accuracy"] <= 1.0
    # the learning curves name the experiment and the run directory
    title = Image.open(run_dir / "plots" / "learning_curves.png").info.get("Title")
    assert title == f"{yaml.safe_load((run_dir / 'config.yaml').read_text())['experiment']}, run {run_dir.name}"


def test_sunspots_trains_on_your_own_csv_column(tmp_path):
    t = np.arange(200)
    values = 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t
    (tmp_path / "sales.csv").write_text("month,units\n" + "".join(f"{i},{v:.4f}\n" for i, v in zip(t, values)))
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "+experiment=sunspots",
            "data=csv",
            f"data.path={tmp_path / 'sales.csv'}",
            "data.column=units",
            "data.season=12",
            "data.batch_size=4",
            *TINY,
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = _summary(run_dir)
    assert summary["step"] == 4 and summary["test/rmse"] > 0 and "test/skill" in summary


@pytest.mark.parametrize(
    "experiment, data",
    [
        ("charlm", "text"),
        ("vowels", "vowels"),
        ("sunspots", "csv"),
        ("sunspots", "sines"),
        ("sunspots", "mackey_glass"),
        ("airline", "csv"),
        ("airline", "sines"),
        ("airline", "mackey_glass"),
    ],
)
def test_an_experiment_sets_only_data_keys_a_swapped_data_set_takes(experiment, data):
    """Composing is enough to see it: every data key of the experiment with data=DATA is an option of
    that data set (a key only the experiment's own data set knows is refused when training starts)."""
    from lstmlab.cli import compose
    from lstmlab.data import options

    resolved = asdict(compose(experiment, [f"data={data}"]))
    keys = set(resolved["data"]) - {"name"}
    assert keys <= set(options(resolved["data"]["name"])), keys - set(options(resolved["data"]["name"]))
