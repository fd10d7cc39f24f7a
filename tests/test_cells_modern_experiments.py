"""The xLSTM and min cells, Jozefowicz et al.'s MUT1-3 and the unitary RNN through the experiments by name
(``cell=NAME``), without edits to the experiment configs: every experiment composes, checks and builds
its model with each of them; each cell trains end to end in one of them; the gradient-norm study runs
them beside the classics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstmlab.cli import compose

MODERN = ["slstm", "mlstm", "mingru", "minlstm"]
MUTANTS = ["mut1", "mut2", "mut3"]
URNN = ["urnn"]
EXPERIMENTS = ["adding", "temporal_order", "copy", "charlm", "vowels"]
TINY = ["+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=none"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_builds_its_model_with_every_new_cell(experiment):
    from lstmlab.train import build_dataset, build_model

    spec = build_dataset(compose(experiment, TINY)).spec
    for cell in MODERN + MUTANTS + URNN:
        config = compose(experiment, [*TINY, f"cell={cell}"])
        config.check()
        model = build_model(config, spec)
        layer = model.rnn.layers[0]
        assert getattr(layer, "forward", layer).cell == cell  # a bidirectional layer has two


@pytest.mark.parametrize(
    "cell,experiment,options",
    [
        ("slstm", "charlm", ["cell.num_heads=2"]),
        ("mlstm", "vowels", ["cell.form=chunkwise", "cell.chunk_size=4"]),  # bidirectional, padded
        ("mingru", "copy", ["cell.form=parallel"]),  # minlstm trains in the gradient-norm study below
        ("mut2", "temporal_order", []),
        ("urnn", "copy", []),
    ],
)
def test_each_new_cell_trains_end_to_end(tmp_path, cell, experiment, options):
    from lstmlab.train import train_and_evaluate

    config = compose(experiment, [*TINY, f"cell={cell}", *options])
    for option in options:
        key, value = option.split("=")
        assert str(config.cell.options()[key.split(".")[1]]) == value
    summary = train_and_evaluate(config, tmp_path / "run")
    assert summary["step"] == config.trainer.max_steps
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert np.isfinite(saved["test/loss"])


def test_heads_that_do_not_divide_the_hidden_size_name_both_keys():
    from lstmlab.config import ConfigError

    config = compose("adding", [*TINY, "cell=slstm", "cell.num_heads=4", "model.hidden_size=30"])
    with pytest.raises(ConfigError) as err:
        config.check()
    assert str(err.value) == (
        "model.hidden_size=30 must be divisible by cell.num_heads=4 (cell=slstm splits it between its heads)"
    )


def test_an_odd_hidden_size_for_the_unitary_rnn_is_named():
    from lstmlab.config import ConfigError

    config = compose("copy", [*TINY, "cell=urnn", "model.hidden_size=7"])
    with pytest.raises(ConfigError) as err:
        config.check()
    assert str(err.value) == (
        "model.hidden_size=7 must be a multiple of 2 (cell=urnn: it has hidden_size / 2 complex units)"
    )


def test_an_option_the_cell_does_not_take_is_named():
    from lstmlab.config import ConfigError

    config = compose("adding", [*TINY, "cell=lstm", "cell.form=parallel"])
    with pytest.raises(ConfigError) as err:
        config.check()
    assert str(err.value) == "cell.cell 'lstm' takes no option 'form'; valid: variant"


def test_the_gradient_norm_study_runs_them_beside_the_classics(tmp_path):
    """The new cells in one study with the LSTM (and a mutant and the uRNN): the mLSTM's output h feeds no
    later step (it has no hidden-to-hidden weights), so its gradient flows back through the memory C only."""
    from lstmlab.study import run_gradnorm_study

    cells = ["lstm", *MODERN, "mut3", "urnn"]
    shrink = ["model.hidden_size=8", "data.seq_len=20", "data.batch_size=8", "data.val_size=8", "data.test_size=8"]
    shrink += ["trainer.max_steps=1", "trainer.eval_every=1", "trainer.log_every=1", "diagnostics.every=1"]
    config = compose(
        "gradnorm", [*TINY, *shrink, f"diagnostics.cells=[{','.join(cells)}]", "diagnostics.jacobian=none"]
    )
    config.cell.num_heads = 2  # taken by slstm and mlstm only
    summary = run_gradnorm_study(config, tmp_path / "run")
    assert summary["cells"] == cells
    with np.load(tmp_path / "run" / "gradnorms.npz") as npz:
        for cell in cells:
            h = npz[f"{cell}/layer0/h"]
            assert h.shape[0] == 2 and np.all(np.isfinite(h)) and h[0, -1] > 0, cell
            if cell != "mlstm":
                assert np.all(h > 0), cell
        assert np.all(npz["mlstm/layer0/h"][:, :-1] == 0)
        assert np.all(npz["mlstm/layer0/c"][:, :-1] > 0) and np.all(npz["slstm/layer0/c"][:, :-1] > 0)
        assert "mingru/layer0/c" not in npz.files
    assert (tmp_path / "run" / "plots" / "gradnorm_decay.png").is_file()
    saved = (tmp_path / "run" / "cells" / "mlstm" / "config.yaml").read_text()
    assert (
        "num_heads: 2" in saved
        and "num_heads: 2" not in (tmp_path / "run" / "cells" / "lstm" / "config.yaml").read_text()
    )
