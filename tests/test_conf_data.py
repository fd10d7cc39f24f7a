"""The ``data`` configs: each data set's defaults are written once, in its factory's signature; the
command line generates a node from them and ``conf/data/*.yaml`` set only what differs."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import yaml

from lstmlab import data
from lstmlab.cli import DATA_NODE, compose, conf_dir

DATA_FILES = sorted((conf_dir() / "data").glob("*.yaml"))


def inherited(name: str) -> tuple[str, dict]:
    """The data set a ``conf/data/NAME.yaml`` builds and the values it starts from: its factory's
    defaults, or the values of the data config it extends, following its defaults list."""
    text = yaml.safe_load((conf_dir() / "data" / f"{name}.yaml").read_text())
    entries = [e for e in text.get("defaults", []) if e != "_self_"]
    assert len(entries) == 1, f"conf/data/{name}.yaml: its defaults list must extend one config, has {entries}"
    entry = entries[0]
    if entry.startswith("/"):
        node = entry[1:].removesuffix("@_here_")
        dataset = node.removeprefix(DATA_NODE.format(""))
        assert node == DATA_NODE.format(dataset) and dataset in data.names(), f"{name}.yaml extends {entry}"
        return dataset, {"name": dataset, **data.defaults(dataset)}
    dataset, values = inherited(entry)
    parent = yaml.safe_load((conf_dir() / "data" / f"{entry}.yaml").read_text())
    return dataset, {**values, **{k: v for k, v in parent.items() if k != "defaults"}}


@pytest.mark.parametrize("path", DATA_FILES, ids=[p.stem for p in DATA_FILES])
def test_a_data_config_sets_no_key_to_its_factory_default(path):
    dataset, values = inherited(path.stem)
    own = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "defaults"}
    repeated = sorted(k for k, v in own.items() if k in values and values[k] == v)
    assert not repeated, f"{path.name} repeats the defaults of {dataset!r} for {repeated}; delete those lines"
    unknown = sorted(set(own) - set(values))
    assert not unknown, f"{path.name} sets {unknown}, which data set {dataset!r} does not take"


def test_every_data_set_is_a_data_choice_with_all_its_options():
    assert {p.stem for p in DATA_FILES} >= set(data.names())
    for path in DATA_FILES:
        dataset, values = inherited(path.stem)
        own = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "defaults"}
        resolved = asdict(compose(None, [f"data={path.stem}"]))
        assert resolved["data"] == {**values, **own}, path.stem
        assert set(resolved["data"]) == {"name", *data.options(dataset)} - {"seed"}, path.stem


def test_a_factory_option_missing_from_the_yaml_is_overridden_without_a_plus():
    config = compose("charlm", ["data.eval_batch_size=8", "data.seq_len=20"])
    assert config.data["eval_batch_size"] == 8 and config.data["seq_len"] == 20
    assert config.data["split_by"] == "play" and config.data["reset_every"] == 20  # from the yaml files


def test_a_resume_does_not_count_an_option_either_config_leaves_at_its_default(tmp_path):
    from lstmlab.config import ConfigError
    from lstmlab.io.rundir import RunDir
    from lstmlab.train.setup import check_resume

    config = compose("charlm", [])
    current = asdict(config)
    saved = {**current, "data": {k: v for k, v in current["data"].items() if k != "eval_batch_size"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert check_resume(config, current, RunDir(tmp_path), start=1) == {}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(current))  # and a config built in Python names fewer
    assert check_resume(config, saved, RunDir(tmp_path), start=1) == {}
    changed = {**current, "data": {**current["data"], "eval_batch_size": 8}}
    with pytest.raises(ConfigError, match="data.eval_batch_size"):
        check_resume(config, changed, RunDir(tmp_path), start=1)


def test_a_resume_does_not_count_a_schema_key_the_saved_config_predates(tmp_path):
    """A run saved before a key existed (here ``optim.omega``) resumes when the key is at its default,
    and not when it is set to something else."""
    from lstmlab.config import ConfigError
    from lstmlab.io.rundir import RunDir
    from lstmlab.train.setup import check_resume

    config = compose("adding", [])
    current = asdict(config)
    saved = {**current, "optim": {k: v for k, v in current["optim"].items() if k not in ("omega", "omega_exact")}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert check_resume(config, current, RunDir(tmp_path), start=1) == {}
    changed = {**current, "optim": {**current["optim"], "omega": 2.0}}
    with pytest.raises(ConfigError, match=r"optim.omega=0.0 \(now 2.0\)"):
        check_resume(config, changed, RunDir(tmp_path), start=1, trained=saved)


@pytest.fixture
def square_module():
    """``tests/register_square.py`` not yet imported, and its data set unregistered afterwards."""
    import sys

    sys.modules.pop("register_square", None)
    yield "register_square"
    sys.modules.pop("register_square", None)
    if "square" in data.names():
        data.unregister("square")


def test_a_data_set_registered_in_python_is_a_data_choice_once_imports_names_its_module(square_module, tmp_path):
    """``imports=[MODULE] data=NAME``: the module is imported before the config is composed, so the data
    set it registers is a choice of the data group, with its factory's defaults; it trains from the
    command line and composes from Python."""
    from lstmlab import cli

    run_dir = tmp_path / "run"
    args = ["data=square", "+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=none"]
    cli.main([*args, f"imports=[{square_module}]", "data.period=6", f"hydra.run.dir={run_dir}"])
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"] == {"name": "square", **data.defaults("square"), "period": 6}
    assert saved["data"]["seq_len"] == 20  # the factory's default, not another data set's
    assert (run_dir / "summary.json").exists()
    resolved = asdict(compose(None, [f"imports=[{square_module}]", "data=square"]))
    assert resolved["data"] == {"name": "square", **data.defaults("square")}


def test_without_imports_such_a_data_set_is_one_line_naming_the_choice(run_cli_fixture, tmp_path):
    result = run_cli_fixture(["data=square", "+preset=tiny", f"hydra.run.dir={tmp_path / 'run'}"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "data" in lines[0] and "square" in lines[0] and "shakespeare" in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_a_bad_imports_value_is_one_line_before_anything_is_composed(run_cli_fixture, tmp_path):
    result = run_cli_fixture(["imports=[nope_not_a_module]", "data=square", f"hydra.run.dir={tmp_path / 'run'}"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "imports: cannot import 'nope_not_a_module'" in lines[0], lines[0]
