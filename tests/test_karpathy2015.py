"""Karpathy et al. (2015) machinery: the cells' gate activations are the step's own, a parameter budget
picks the hidden size, saturation fractions and the cell finder on made-up activations, and
``python -m lstmlab.inspect`` on a tiny trained run (in-process)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

from lstmlab import cells
from lstmlab.config import CellConfig, ConfigError, ModelConfig
from lstmlab.diagnostics import cellviz, gates

from conftest import ROOT

CASES = [
    ("lstm", {}),
    ("lstm", {"variant": "CIFG"}),
    ("lstm", {"variant": "NIG"}),
    ("lstm", {"variant": "FGR"}),
    ("peephole", {}),
    ("gru", {}),
    ("gru", {"reset_after": False}),
    ("rnn", {}),
]


@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_gates_are_what_the_step_computes(name, options):
    key = jax.random.PRNGKey(3)
    params = cells.init(name, key, input_size=4, hidden_size=5, **options)
    if name == "peephole":  # non-zero peepholes, so that they take part
        params = {k: (v + 0.3 if k.startswith("p_") else v) for k, v in params.items()}
    xs = jax.random.normal(jax.random.PRNGKey(4), (6, 2, 4))
    acts = cells.scan_gates(name, params, xs, **options)
    _, hs = cells.scan(name, params, xs, **options)
    np.testing.assert_allclose(acts["h"], hs, atol=1e-6)
    # one step by hand through the cell's forward, from the carry that entered step 3
    states, _ = cells.scan_states(name, params, xs, **options)
    carry = jax.tree.map(lambda s: s[2], states)
    cell = cells.get(name)
    opts = cells.cell_options(name, **options)
    xp = xs[3] @ params["w_i"] + params[cell.input_bias]
    new, saved = cell.forward(params, xp, carry, **opts)
    np.testing.assert_allclose(acts["h"][3], cell.output(new), atol=1e-6)
    if name in ("lstm", "peephole"):
        np.testing.assert_allclose(acts["c"][3], new.c, atol=1e-6)
        i, f, g, o, _ = saved
        for gate, value in (("i", i), ("f", f), ("g", g), ("o", o)):
            if value is not None:
                np.testing.assert_allclose(acts[gate][3], value, atol=1e-6)
        assert ("i" in acts) == (options.get("variant") != "NIG")
        if options.get("variant") == "CIFG":
            np.testing.assert_allclose(acts["i"], 1 - acts["f"], atol=1e-6)
    elif name == "gru":
        for gate, value in zip("rzn", saved[:3]):
            np.testing.assert_allclose(acts[gate][3], value, atol=1e-6)
        assert set(acts) == {"r", "z", "n", "u_n", "h"}


def test_each_cells_gate_math_lives_in_one_file():
    def files(pattern: str) -> set[str]:
        out = subprocess.run(
            ["git", "grep", "-l", "-F", pattern, "--", "lstmlab"], cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode in (0, 1), out.stderr
        return set(out.stdout.split())

    assert files("jax.nn.sigmoid(") == {
        f"lstmlab/cells/{name}.py" for name in ("lstm", "gru", "slstm", "mlstm", "minrnn", "mut")
    }  # the gated cells' own files, and nowhere else
    assert files("f.astype(c.dtype) * c") == {"lstmlab/cells/lstm.py"}  # c_t = f * c + i * g
    assert files("n + z * (h - n)") == {"lstmlab/cells/gru.py"}  # h_t = (1 - z) n + z h
    assert files('h @ params["w_h"]') <= {"lstmlab/cells/lstm.py", "lstmlab/cells/rnn.py"}


def test_scan_gates_refuses_a_cell_without_gates():
    class NoGates(cells.Cell):
        pass

    cells.register("nogates_test", NoGates())
    try:
        with pytest.raises(ValueError, match="has no gates"):
            cells.scan_gates("nogates_test", {}, np.zeros((2, 1, 3), np.float32))
    finally:
        cells.unregister("nogates_test")


# -- the parameter budget ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_param_budget_picks_the_largest_hidden_size_that_fits(cell):
    from lstmlab.config import Config
    from lstmlab.data import DataSpec
    from lstmlab.train import fit_param_budget, param_count

    spec = DataSpec(kind="lm", output_size=30, vocab_size=30)
    for layers in (1, 2, 3):
        config = Config(cell=CellConfig(name=cell), model=ModelConfig(num_layers=layers, param_budget=20_000))
        h = fit_param_budget(config, spec)
        assert param_count(config, spec, h) <= 20_000 < param_count(config, spec, h + 1)


@pytest.mark.parametrize("cell, gates", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_param_count_of_one_layer_on_one_hot_characters_is_the_textbook_count(cell, gates):
    from lstmlab.config import Config
    from lstmlab.data import DataSpec
    from lstmlab.train import param_count

    V, H = 30, 17
    biases = 2 if cell == "gru" else 1  # the reset-after GRU has input and recurrent biases
    expected = gates * H * (V + H) + biases * gates * H + H * V + V  # cell weights and biases, then the head
    spec = DataSpec(kind="lm", output_size=V, vocab_size=V)
    assert param_count(Config(cell=CellConfig(name=cell)), spec, H) == expected


def test_a_budget_below_the_smallest_model_is_one_line_naming_the_key():
    from lstmlab.config import Config
    from lstmlab.data import DataSpec
    from lstmlab.train import fit_param_budget

    config = Config(model=ModelConfig(num_layers=3, param_budget=50))
    with pytest.raises(ConfigError, match=r"model.param_budget=50 is below .* valid: >= \d+") as err:
        fit_param_budget(config, DataSpec(kind="lm", output_size=60, vocab_size=60))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="model.param_budget=0 must be an integer >= 1"):
        ModelConfig(param_budget=0).check()


# -- saturation and the cell finder ------------------------------------------------------------------


def test_saturation_fractions_on_a_hand_made_case():
    f = np.array([[0.05, 0.95], [0.5, 0.95], [0.05, 0.5], [0.95, 0.91]])  # (T=4, H=2)
    table = gates.saturation([{"f": f, "h": f, "c": f}, {"r": 1 - f}])
    assert set(table["gate"]) == {"f", "r"}  # h and c are not gates
    forget = table[table["gate"] == "f"].set_index("unit")
    assert forget.loc[0, "left_saturated"] == 0.5 and forget.loc[0, "right_saturated"] == 0.25
    assert forget.loc[1, "left_saturated"] == 0.0 and forget.loc[1, "right_saturated"] == 0.75
    reset = table[(table["gate"] == "r") & (table["layer"] == 1)].set_index("unit")
    assert reset.loc[1, "left_saturated"] == 0.75 and reset.loc[1, "right_saturated"] == 0.0
    summary = gates.saturation_summary(table)
    row = summary[(summary["layer"] == 0) & (summary["gate"] == "f")].iloc[0]
    assert row["mean_right"] == pytest.approx(0.5) and row["share_right"] == 0.5
    assert gates.saturation([{"h": f}]).empty


def test_text_features_count_the_line_and_the_enclosures():
    text = 'ab\n[c]"d"\n'
    feats = gates.text_features(text)
    assert feats["line_position"].tolist() == [1, 2, 0, 1, 2, 3, 4, 5, 6, 0]
    assert feats["in_brackets"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert feats["in_quotes"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]


def test_the_finder_finds_a_unit_that_is_the_position_in_the_line():
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abc de"), size=rng.integers(5, 40))) for _ in range(60)]
    text = "\n".join(f"[{line}]" if k % 3 == 0 else line for k, line in enumerate(lines))
    feats = gates.text_features(text)
    T, H = len(text), 16
    layer0 = rng.normal(size=(T, H))
    layer1 = rng.normal(size=(T, H))
    layer1[:, 11] = feats["line_position"] / 40  # a cell that counts the characters of the line
    layer0[:, 5] = feats["in_brackets"] + 0.3 * rng.normal(size=T)
    found = gates.find_cells([{"h": layer0}, {"h": layer1}], feats)
    best = found[found["rank"] == 1].set_index("feature")
    assert (best.loc["line_position", "layer"], best.loc["line_position", "unit"]) == (1, 11)
    assert best.loc["line_position", "correlation"] == pytest.approx(1.0)
    assert (best.loc["in_brackets", "layer"], best.loc["in_brackets", "unit"]) == (0, 5)
    assert "in_quotes" not in set(found["feature"])  # no quote in the text: constant, left out
    assert len(gates.find_cells([{"h": layer0}], feats, top=3)) == 6


def test_renderings_colour_each_character(tmp_path):
    text = "to be,\nor not"
    values = np.linspace(-1, 1, len(text))
    page = cellviz.render_html(text, values, tmp_path / "c.html", title="t").read_text()
    assert page.count("<span") == len(text) and "#67001f" in page.lower() and "#053061" in page.lower()
    assert cellviz.text_grid(text, 4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10], [11, 12]]
    png = cellviz.render_png(text, values, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="one per character"):
        cellviz.render_html(text, values[:-1], tmp_path / "bad.html")


# -- python -m lstmlab.inspect, in-process -----------------------------------------------------------

TINY_RUN = [
    "+preset=tiny",
    "logger.wandb.mode=disabled",
    "trainer.progress=none",
    "cell=lstm",
    "model.num_layers=2",
    "model.param_budget=4000",
    "data.plays=macbeth",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from lstmlab.cli import compose
    from lstmlab.train import train_and_evaluate

    run_dir = tmp_path_factory.mktemp("inspect") / "run"
    train_and_evaluate(compose("karpathy2015", TINY_RUN), run_dir)
    return run_dir


def test_the_run_records_the_hidden_size_its_budget_chose(tiny_run):
    from lstmlab.train.sample import load_model

    saved = yaml.safe_load((tiny_run / "config.yaml").read_text())["model"]
    from lstmlab.config import Config
    from lstmlab.data import DataSpec
    from lstmlab.train import fit_param_budget

    config, model, meta = load_model(tiny_run)
    vocab = meta["model"]["vocab_size"]
    spec = DataSpec(kind="lm", output_size=vocab, vocab_size=vocab)
    fitted = fit_param_budget(Config(model=ModelConfig(num_layers=2, param_budget=4000)), spec)
    assert saved["param_budget"] == 4000 and saved["hidden_size"] == fitted == model.rnn.hidden_size != 8


def test_a_budget_run_run_again_is_already_finished_not_a_changed_config(tiny_run):
    from lstmlab.cli import compose
    from lstmlab.train import train_and_evaluate

    config = compose("karpathy2015", TINY_RUN)
    before = (tiny_run / "config.yaml").read_text()
    summary = train_and_evaluate(config, tiny_run)  # resume: nothing refused
    assert summary["step"] == 4 and (tiny_run / "config.yaml").read_text() == before


def test_inspect_writes_saturation_cells_and_pictures(tiny_run, tmp_path, capsys):
    from lstmlab.cli import inspect

    out = tmp_path / "out"
    assert inspect.main([str(tiny_run), "--find", "--chars", "400", "--cell", "2:1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "line_position:" in printed and "layer 2 forget gate" in printed
    report = json.loads((out / "saturation.json").read_text())
    assert report["layers"] == 2 and {r["gate"] for r in report["summary"]} == {"i", "f", "o"}
    assert len(report["units"]) == 2 * 3 * report["hidden_size"]
    cells_csv = pd.read_csv(out / "cells.csv")
    assert list(cells_csv.columns) == ["feature", "rank", "layer", "unit", "correlation"]
    assert set(cells_csv["layer"]) == {1, 2} and cells_csv["correlation"].abs().max() <= 1
    for name in ("saturation.png", "cell_2_1.html", "cell_2_1.png"):
        assert (out / name).stat().st_size > 0, name


def test_figures_keeps_the_gate_and_cell_tables_as_results_the_report_reads(tiny_run, tmp_path):
    import importlib.util

    from lstmlab.cli import inspect
    from lstmlab.report import build

    out = tmp_path / "inspect"
    assert inspect.main([str(tiny_run), "--find", "--chars", "400", "--out", str(out)]) == 0
    script = Path(__file__).resolve().parents[1] / "experiments" / "karpathy2015" / "figures.py"
    spec = importlib.util.spec_from_file_location("figures", script)
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    assert figures.main([str(out), "--out", str(tmp_path / "fig"), "--keep", str(tmp_path / "kept")]) == 0
    summary = json.loads((out / "saturation.json").read_text())["summary"]
    table = build([tmp_path / "kept" / "saturation.jsonl"], "mean_right", "maximize").out
    assert len(table) == len(summary) == 2 * 3  # one row per layer and gate of the 2-layer LSTM
    want = {(r["layer"] + 1, r["gate"]): round(r["mean_right"], 3) for r in summary}
    assert {(row["inspect.layer"], row["inspect.gate"]): row["mean_right mean"] for _, row in table.iterrows()} == want
    record = json.loads((tmp_path / "kept" / "saturation.jsonl").read_text().splitlines()[0])
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert record["config"]["seed"] == config["seed"] and record["config"]["cell"]["name"] == "lstm"
    assert record["config"]["model"]["num_layers"] == 2  # the inspected run's keys, for claims to select
    cells = build([tmp_path / "kept" / "cells.jsonl"], "correlation", "maximize").out
    assert set(cells["inspect.feature"]) <= {"line_position", "in_quotes", "in_brackets"} and len(cells) >= 1
    # the figure's points are kept too, and a generated section redraws the figure from them
    from lstmlab.report.rebuild import rebuild

    units = [json.loads(line) for line in (tmp_path / "kept" / "saturation_units.jsonl").read_text().splitlines()]
    assert len(units) == len(json.loads((out / "saturation.json").read_text())["units"])
    readme = tmp_path / "kept" / "README.md"
    section = "<!-- report saturation_units.jsonl --plot saturation --figure fig.png -->\n<!-- end report -->\n"
    readme.write_text(section)
    rebuild([readme])
    assert "![saturation](fig.png)" in readme.read_text() and (tmp_path / "kept" / "fig.png").stat().st_size > 0
    readme.write_text("<!-- report saturation_units.jsonl --plot saturation -->\n<!-- end report -->\n")
    with pytest.raises(ValueError, match="--plot saturation wants --figure FILE.png"):
        rebuild([readme])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--cell", "3:0"], "--cell=3:0 is out of range; valid: layer 1..2"),
        (["--cell", "1:9999"], "--cell=1:9999 is out of range"),
        (["--cell", "0:1"], "--cell='0:1'; valid: LAYER:UNIT"),
        (["--chars", "0"], "--chars='0'; valid: an integer >= 1"),
    ],
)
def test_inspect_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_run, tmp_path, capsys, args, fragment):
    from lstmlab.cli import inspect

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        inspect.main([str(tiny_run), *args, "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lstmlab: error: ") and fragment in err[0], err
    assert not out.exists()


def test_inspect_a_run_without_checkpoint_is_one_line(tiny_run, tmp_path, capsys):
    from lstmlab.cli import inspect

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    with pytest.raises(SystemExit) as exit_:
        inspect.main([str(bare), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no checkpoint" in err[0], err
    assert not (tmp_path / "out").exists()
