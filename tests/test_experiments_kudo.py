"""experiments/kudo1999 (Japanese Vowels): the experiment composes, and its expected.yaml parses and
names metrics that a real vowels run writes to summary.json."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from conftest import ROOT, TINY, run_cli

EXPECTED = ROOT / "experiments" / "kudo1999" / "expected.yaml"


def test_vowels_experiment_composes():
    result = run_cli(["+experiment=vowels", "--cfg", "job"])
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.safe_load(result.stdout)
    assert config["experiment"] == "vowels" and config["data"]["name"] == "vowels"
    model = config["model"]
    assert model["conv_channels"] == [128, 256, 128] and model["conv_kernels"] == [8, 5, 3]  # LSTM-FCN
    assert model["hidden_size"] == 8 and model["bidirectional"] is False and model["pooling"] == "last"


@pytest.mark.parametrize("experiment", ["greff2017_vowels", "jozefowicz2015_vowels"])
def test_the_cell_comparisons_on_vowels_use_no_convolutional_block(experiment):
    """They extend +experiment=vowels but compare recurrent cells, which the block would blur."""
    config = yaml.safe_load(run_cli([f"+experiment={experiment}", "--cfg", "job"]).stdout)
    assert config["model"]["conv_channels"] == [] and config["model"]["conv_kernels"] == []


def test_jozefowicz2015_vowels_is_the_configuration_its_table_ran():
    """experiments/jozefowicz2015: one direction of 64 units to the last frame, constant 3e-3, 600 steps;
    a later change of +experiment=vowels must not change it."""
    config = yaml.safe_load(run_cli(["+experiment=jozefowicz2015_vowels", "--cfg", "job"]).stdout)
    model, optim = config["model"], config["optim"]
    assert (model["hidden_size"], model["num_layers"], model["dropout"]) == (64, 1, 0.0)
    assert (model["bidirectional"], model["pooling"]) == (False, "last")
    assert (optim["name"], optim["lr"], optim["schedule"]) == ("adam", 3.0e-3, "constant")
    assert config["trainer"]["max_steps"] == 600


def test_the_readme_augmentation_and_pooling_options_compose():
    """The README's screen sets the vowels data options without a + (the data group knows every option)."""
    args = ["+experiment=vowels", "data.noise_std=0.6", "data.crop=0.8", "model.pooling=meanmax", "--cfg", "job"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.safe_load(result.stdout)
    assert config["data"]["noise_std"] == 0.6 and config["data"]["crop"] == 0.8
    assert config["model"]["pooling"] == "meanmax"


def _expected() -> dict:
    data = yaml.safe_load(EXPECTED.read_text())
    assert isinstance(data, dict), f"{EXPECTED}: want a mapping"
    return data


def test_expected_yaml_parses_with_paper_numbers_and_ranges():
    data = _expected()
    metrics = data["metrics"]
    assert isinstance(metrics, dict) and metrics
    for key, entry in metrics.items():
        lo, hi = (float(v) for v in entry["expected"])
        paper = float(entry["paper"])
        assert lo <= hi and math.isfinite(paper), f"{key}: expected range {lo}..{hi}, paper {paper}"
        if key.endswith("accuracy"):
            assert 0.0 <= lo and hi <= 1.0 and 0.0 < paper <= 1.0, f"{key}: not a fraction"
    # the layout python -m lstmlab.report --expected reads: metric, source, rows of {where, value}
    assert data["metric"] in metrics
    assert isinstance(data["source"], str) and data["source"]
    assert data["rows"] and all(isinstance(r["where"], dict) and math.isfinite(float(r["value"])) for r in data["rows"])


@pytest.fixture(scope="module")
def tiny_summary(tmp_path_factory) -> dict:
    """summary.json of a real (shrunken) vowels run."""
    tmp = tmp_path_factory.mktemp("vowels")
    run_dir = tmp / "run"
    result = run_cli(["+experiment=vowels", *TINY, "data.batch_size=8", f"hydra.run.dir={run_dir}"], cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def test_expected_metrics_are_keys_the_vowels_run_writes(tiny_summary):
    data = _expected()
    written = {k for k, v in tiny_summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    named = set(data["metrics"]) | {data["metric"]}
    assert named <= written, f"expected.yaml names {sorted(named - written)}; the run writes {sorted(written)}"
    config = yaml.safe_load(run_cli(["+experiment=vowels", "--cfg", "job"]).stdout)
    for row in data["rows"]:  # the report matches rows on these config keys: they must hold for vowels
        for key, value in row["where"].items():
            node = config
            for part in key.split("."):
                node = node[part]
            assert node == value, f"rows.where {key}={value!r}; the vowels config has {node!r}"
