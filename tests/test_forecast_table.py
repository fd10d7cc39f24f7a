"""scripts/forecast_table.py: its runs are named after their series, read their CSV files relative to
the run folder (so kept configs hold no temporary paths), are kept in a results file, and are not
trained again when the command is repeated."""

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "forecast_table.py"


def test_forecast_table_keeps_named_runs_and_reuses_finished_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the script works in its --out folder; restored after the test
    spec = importlib.util.spec_from_file_location("forecast_table", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--only", "nile", "--seeds", "1", "--set", "+preset=tiny", "--out", "out", "--keep", "kept.jsonl"]
    assert script.main(argv) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert record["config"]["experiment"] == "nile" and record["config"]["data"]["path"] == "nile.csv"
    assert record["config"]["data"]["season"] == 1 and math.isfinite(record["summary"]["test/skill"])
    summary = tmp_path / "out" / record["run"] / "summary.json"
    before = summary.stat().st_mtime_ns
    assert script.main(argv) == 0
    assert summary.stat().st_mtime_ns == before  # the finished run is kept, not trained again
