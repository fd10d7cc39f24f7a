"""Smoke test of scripts/bench.py on a tiny shape (the benchmark itself is not part of the suite)."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def test_bench_smoke_writes_json_and_markdown(tmp_path):
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    bench.main(["--smoke", "--cells", "lstm", "--no-torch", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    (row,) = report["speed"]
    assert set(row["results"]) == {"lstmlab-fast", "lstmlab-reference", "flax"}
    assert all(r["median_ms"] > 0 and r["compile_s"] > 0 for r in row["results"].values())
    assert row["flops"] == 3 * 2 * row["T"] * row["B"] * (row["D"] + row["H"]) * 4 * row["H"]
    assert "| lstmlab-fast |" in out.with_suffix(".md").read_text()
