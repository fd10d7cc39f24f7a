"""experiments/kudo1999 (Japanese Vowels): the experiment composes, and its expected.yaml parses and
names metrics that a real vowels run writes to summary.json."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import ROOT, TINY, run_cli

EXPECTED = ROOT / "experiments" / "kudo1999" / "expected.yaml"


def test_vowels_is_a_recurrent_network_and_vowels_fcn_the_lstm_fcn():
    result = run_cli(["+experiment=vowels", "--cfg", "job"])
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.safe_load(result.stdout)
    assert config["experiment"] == "vowels" and config["data"]["name"] == "vowels"
    assert config["model"]["conv_channels"] == [] and config["cell"]["name"] == "lstm"
    fcn = yaml.safe_load(run_cli(["+experiment=vowels_fcn", "--cfg", "job"]).stdout)
    model = fcn["model"]
    assert model["conv_channels"] == [128, 256, 128] and model["conv_kernels"] == [8, 5, 3]  # LSTM-FCN
    assert model["hidden_size"] == 8 and model["bidirectional"] is False and model["pooling"] == "last"


@pytest.mark.parametrize("experiment", ["greff2017_vowels", "jozefowicz2015_vowels"])
def test_the_cell_comparisons_on_vowels_use_no_convolutional_block(experiment):
    """They extend +experiment=vowels_fcn but compare recurrent cells, which the block would blur."""
    config = yaml.safe_load(run_cli([f"+experiment={experiment}", "--cfg", "job"]).stdout)
    assert config["model"]["conv_channels"] == [] and config["model"]["conv_kernels"] == []


def test_jozefowicz2015_vowels_is_the_configuration_its_table_ran():
    """experiments/jozefowicz2015: one direction of 64 units to the last frame, constant 3e-3, 600 steps;
    a later change of +experiment=vowels or vowels_fcn must not change it."""
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


def _claims() -> list[dict]:
    from lstmlab.report.expected import load_expected
    from lstmlab.report.verdicts import check_claims

    return check_claims(load_expected(EXPECTED), EXPECTED)


def test_every_claim_names_the_paper_s_value_a_source_and_at_least_ten_seeds():
    claims = _claims()
    assert len(claims) == 4
    for claim in claims:
        assert claim["source"] and str(claim["paper"]) and int(claim["seeds"]) >= 10, claim["claim"]


@pytest.fixture(scope="module")
def tiny_summary(tmp_path_factory) -> dict:
    """summary.json of a real (shrunken) vowels run."""
    tmp = tmp_path_factory.mktemp("vowels")
    run_dir = tmp / "run"
    result = run_cli(["+experiment=vowels", *TINY, "data.batch_size=8", f"hydra.run.dir={run_dir}"], cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def test_the_claims_name_metrics_the_vowels_run_writes_and_keys_the_configs_hold(tiny_summary):
    written = {k for k, v in tiny_summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    configs = {
        name: yaml.safe_load(run_cli([f"+experiment={name}", "--cfg", "job"]).stdout)
        for name in ("vowels", "vowels_fcn")
    }
    for claim in _claims():
        assert claim["metric"] in written, claim["claim"]
        wheres = [claim["where"]]
        for kind in ("better_than", "worse_than", "same_as"):
            if kind in claim["criterion"]:
                wheres.append({**claim["where"], **claim["criterion"][kind]})
        for where in wheres:  # every selection names a configuration that exists
            config = configs[where["experiment"]]
            for key, value in where.items():
                node = config
                for part in key.split("."):
                    node = node[part]
                assert node == value or (key == "model.num_layers" and value == 0), (claim["claim"], key, node)
