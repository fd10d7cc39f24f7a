"""Smoke test of scripts/bench.py on a tiny shape (the benchmark itself is not part of the suite)."""

import importlib.util
import json
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def test_bench_smoke_writes_json_and_markdown(tmp_path):
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    # 3 repetitions over 2 rounds: 2 per round, each contender (split ones too) timed in both rounds
    bench.main(["--smoke", "--cells", "lstm", "--no-torch", "--reps", "3", "--rounds", "2", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    (row,) = report["speed"]
    assert (row["reps"], row["rounds"]) == (4, 2)
    assert {name: r["samples"] for name, r in row["results"].items()} == {name: 4 for name in row["results"]}
    split = {"lstmlab-fast-split", "lstmlab-reference-split", "flax-split"} if bench.usable_cores() > 1 else set()
    assert set(row["results"]) == {"lstmlab-fast", "lstmlab-reference", "flax"} | split
    assert all(r["median_ms"] > 0 and r["compile_s"] > 0 for r in row["results"].values())
    assert row["flops"] == 3 * 2 * row["T"] * row["B"] * (row["D"] + row["H"]) * 4 * row["H"]
    assert "| lstmlab-fast |" in out.with_suffix(".md").read_text()
    if split:
        fast, mine = row["results"]["lstmlab-fast"], row["results"]["lstmlab-fast-split"]
        assert abs(row["split_ratios"]["split/lstmlab-fast"] - mine["gflops"] / fast["gflops"]) < 1e-9


def test_bench_charlm_times_the_trainers_step_for_both_impls(tmp_path):
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    tiny = ["data.plays=macbeth", "data.heldout=null", "data.batch_size=4", "data.seq_len=8", "model.hidden_size=8"]
    bench.main(
        ["--charlm-only", "--charlm-steps", "2", "--rounds", "2", "--out", str(out)]
        + [f"--charlm-override={o}" for o in tiny]
    )
    report = json.loads(out.with_suffix(".json").read_text())
    cores = bench.usable_cores()
    split = max(k for k in range(1, cores + 1) if 4 % k == 0)  # devices that divide the batch of 4
    runs = [("fast", 1), ("reference", 1)] + ([("fast", split)] if cores > 1 else [])
    assert [(r["impl"], r["devices"]) for r in report["charlm"]] == runs
    for r in report["charlm"]:
        assert (r["batch"], r["seq_len"], r["hidden_size"], r["num_layers"]) == (4, 8, 8, 2)
        assert r["steps"] == 2 and r["compile_s"] > 0 and r["first_step_s"] > r["compile_s"]
        assert len(r["tokens_per_s_rounds"]) == 2  # each configuration ran once per round
        assert abs(r["tokens_per_s"] - 4 * 8 / (r["median_step_ms"] / 1e3)) < 1e-6 * r["tokens_per_s"]
    assert report["targets"], "the charlm compile time is judged"
    rows = [line for line in out.with_suffix(".md").read_text().splitlines() if "| 4 x 8 |" in line]
    assert len(rows) == len(runs), rows  # one table row per charlm configuration
    assert (
        min(report["charlm"][0]["tokens_per_s_rounds"])
        <= report["charlm"][0]["tokens_per_s"]
        <= max(report["charlm"][0]["tokens_per_s_rounds"])
    )


def _row(cell, H, fast, split=None):
    row = {"cell": cell, "H": H, "ratios": {f"fast/{k}": v for k, v in fast.items()}}
    if split is not None:
        row["split_ratios"] = {f"split/{k}": v for k, v in split.items()}
    return row


def test_targets_follow_the_issue_lstm_against_torch_and_flax_gru_against_torch():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    lstm = _row(
        "lstm",
        128,
        {"torch": 0.95, "torch-alone": 0.85, "flax": 1.2, "matmul": 0.5},
        split={"lstmlab-fast": 1.1, "torch": 1.0, "torch-alone": 0.9, "flax-split": 1.4, "matmul": 0.6},
    )
    gru = _row("gru", 512, {"torch": 1.25, "torch-alone": 2.0, "flax": 1.1, "matmul": 0.85})
    lines = bench.check_targets([lstm, gru])

    def verdict(line: str) -> tuple[str, float, float, bool]:
        """(ratio name, ratio, target, met) of one line, whatever its wording around them."""
        name = line.split(": ", 1)[1].split(" ", 1)[0]
        ratio, target = (float(x) for x in re.findall(r"= ([0-9.]+)", line)[:1] + re.findall(r">= ([0-9.]+)", line))
        return name, ratio, target, " met" in line and "MISSED" not in line

    got = [verdict(line) for line in lines]
    # the LSTM is judged split (faster than one device here), against the faster of the two torch figures
    assert got[0] == ("split/torch", 0.90, 0.9, True)
    assert got[1] == ("fast/flax", 1.20, 1.3, False)
    assert got[2] == ("split/flax-split", 1.40, 1.3, True)
    # the GRU: 1.3x torch.nn.GRU, no Flax target; the matmul share at hidden 512
    assert got[3] == ("fast/torch", 1.25, 1.3, False)
    assert got[4] == ("fast/matmul", 0.85, 0.8, True)
    assert all(met == (ratio >= target) for _, ratio, target, met in got)
    assert len(lines) == 5


def test_bench_modern_times_the_new_cells_and_every_form(tmp_path):
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    kept = tmp_path / "kept"
    bench.main(["--smoke", "--modern-only", "--no-torch", "--reps", "2", "--out", str(out), "--keep", str(kept)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert [r["contender"] for r in report["cells"]] == ["lstm", *bench.MODERN_CELLS]
    forms = {(r["cell"], r["T"], r["contender"]) for r in report["forms"]}
    assert forms == {(cell, T, form) for cell, fs in bench.FORMS.items() for T in (8,) for form in fs}
    assert all(r["median_ms"] > 0 and r["xla_mib"] >= 0 for r in report["cells"] + report["forms"])
    text = out.with_suffix(".md").read_text()
    assert "| mlstm | 8 | chunkwise |" in text and "| 4 x 8, 3 -> 8 | minlstm |" in text
    # the kept rows are results the report reads: one configuration per cell (and form) and shape
    from lstmlab.report import build

    cells = build([kept / "bench_cells.jsonl"], "median_ms", "minimize").out
    assert sorted(cells["cell.name"]) == sorted(["lstm", *bench.MODERN_CELLS]) and (cells["n"] == 1).all()
    by_row = {r["contender"]: r["median_ms"] for r in report["cells"]}
    assert all(abs(row["median_ms mean"] - by_row[row["cell.name"]]) < 1e-3 for _, row in cells.iterrows())
    forms = build([kept / "bench_forms.jsonl"], "median_ms", "minimize").out
    assert len(forms) == len(report["forms"]) and {"cell.name", "cell.form"} <= set(forms.columns)
