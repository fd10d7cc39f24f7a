"""Karpathy et al. (2015), Fig. 3 and the found-cells table, from ``python -m lstmlab.inspect`` outputs.

    python experiments/karpathy2015/figures.py INSPECT_DIR... --out experiments/karpathy2015

Each INSPECT_DIR is the ``--out`` of one ``python -m lstmlab.inspect RUN_DIR --find`` (it holds
``saturation.json`` and ``cells.csv``). Writes ``saturation.png`` (one row of per-layer scatters per
model with gates, as in the paper's figure), ``saturation.md`` (per model, layer and gate: mean
fractions and the share of units saturated more than half of the time) and ``cells.md`` (the best
unit of each model per feature), and prints the two tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from lstmlab.diagnostics import cellviz
from lstmlab.report import markdown


def load(directory: Path) -> tuple[str, dict, pd.DataFrame]:
    report = json.loads((directory / "saturation.json").read_text())
    label = f"{report['cell']} {report['layers']}x{report['hidden_size']}"
    cells = pd.read_csv(directory / "cells.csv") if (directory / "cells.csv").exists() else pd.DataFrame()
    return label, report, cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="outputs of python -m lstmlab.inspect --find")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    tables, summaries, found = {}, [], []
    for directory in args.dirs:
        label, report, cells = load(directory)
        units = pd.DataFrame(report["units"])
        if not units.empty:
            tables[label] = units
        for row in report["summary"]:
            summaries.append({"model": label, **row, "layer": row["layer"] + 1})
        if not cells.empty:
            best = cells[cells["rank"] == 1].assign(model=label)
            found.append(best[["model", "feature", "layer", "unit", "correlation"]])
    args.out.mkdir(parents=True, exist_ok=True)
    if tables:
        cellviz.plot_saturation(tables, args.out / "saturation.png")
    saturation = pd.DataFrame(summaries).round(3)
    cells_table = pd.concat(found, ignore_index=True).round(3) if found else pd.DataFrame()
    (args.out / "saturation.md").write_text(markdown(saturation) + "\n")
    (args.out / "cells.md").write_text(markdown(cells_table) + "\n")
    print(markdown(saturation))
    print()
    print(markdown(cells_table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
