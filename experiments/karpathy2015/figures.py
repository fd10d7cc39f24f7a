"""Karpathy et al. (2015), Fig. 3 and the found-cells table, from ``python -m lstmlab.inspect`` outputs.

    python experiments/karpathy2015/figures.py INSPECT_DIR... --out experiments/karpathy2015 [--keep DIR]

Each INSPECT_DIR is the ``--out`` of one ``python -m lstmlab.inspect RUN_DIR --find`` (it holds
``saturation.json`` and ``cells.csv``). Writes ``saturation.png`` (one row of per-layer scatters per
model with gates, as in the paper's figure), ``saturation.md`` (per model, layer and gate: mean
fractions and the share of units saturated more than half of the time) and ``cells.md`` (the best
unit of each model per feature), and prints the two tables. ``--keep DIR`` also writes both tables'
rows as kept results (:mod:`lstmlab.report.results`), ``DIR/saturation.jsonl`` (one record per
model, layer and gate), ``DIR/cells.jsonl`` (one per model and feature) and
``DIR/saturation_units.jsonl`` (the figure's points), from which the README's tables and figure are
generated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from lstmlab.diagnostics import cellviz
from lstmlab.report import markdown, results


def load(directory: Path) -> tuple[str, dict, pd.DataFrame, dict]:
    """(the model's label, saturation.json, cells.csv, the inspected run's config keys that name it)."""
    import yaml

    report = json.loads((directory / "saturation.json").read_text())
    label = f"{report['cell']} {report['layers']}x{report['hidden_size']}"
    cells = pd.read_csv(directory / "cells.csv") if (directory / "cells.csv").exists() else pd.DataFrame()
    config = yaml.safe_load((Path(report["run_dir"]) / "config.yaml").read_text())
    run = {
        "cell": {"name": config["cell"]["name"]},
        "model": {"num_layers": config["model"]["num_layers"], "hidden_size": config["model"]["hidden_size"]},
        "optim": {"lr": config["optim"]["lr"]},
        "seed": config["seed"],
    }
    return label, report, cells, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="outputs of python -m lstmlab.inspect --find")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--keep", type=Path, help="also write saturation.jsonl and cells.jsonl here")
    args = parser.parse_args(argv)
    tables, summaries, found, runs = {}, [], [], {}
    for directory in args.dirs:
        label, report, cells, run = load(directory)
        name = f"{label} seed {run['seed']}"
        runs[name] = run
        units = pd.DataFrame(report["units"])
        if not units.empty and run["seed"] == min(r["seed"] for r in [run, *runs.values()]):
            tables[label] = units.assign(seed=run["seed"])  # the figure: one row per model, its lowest seed
        for row in report["summary"]:
            summaries.append({"model": label, "seed": run["seed"], **row, "layer": row["layer"] + 1})
        if not cells.empty:
            best = cells[cells["rank"] == 1].assign(model=label, seed=run["seed"])
            found.append(best[["model", "seed", "feature", "layer", "unit", "correlation"]])
    args.out.mkdir(parents=True, exist_ok=True)
    if tables:
        cellviz.plot_saturation({k: v.drop(columns="seed") for k, v in tables.items()}, args.out / "saturation.png")
    saturation = pd.DataFrame(summaries).round(3)
    cells_table = pd.concat(found, ignore_index=True).round(3) if found else pd.DataFrame()
    (args.out / "saturation.md").write_text(markdown(saturation) + "\n")
    (args.out / "cells.md").write_text(markdown(cells_table) + "\n")
    print(markdown(saturation))
    print()
    print(markdown(cells_table))
    if args.keep:
        keep(saturation, ["layer", "gate"], runs, args.keep / "saturation.jsonl")
        if len(cells_table):
            cells_table["abs_correlation"] = cells_table["correlation"].abs()
        keep(cells_table, ["feature"], runs, args.keep / "cells.jsonl")
        keep_units(tables, args.keep / "saturation_units.jsonl")
    return 0


def keep_units(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """The figure's points as kept results, one record per model, layer (from 1), gate and unit, from
    which ``python -m lstmlab.report --rebuild`` redraws it (``--plot saturation``)."""
    records = []
    for label, units in tables.items():
        for row in units.to_dict("records"):
            inspect = {"model": label, "layer": int(row["layer"]) + 1, "gate": row["gate"], "unit": int(row["unit"])}
            summary = {k: round(float(row[k]), 4) for k in ("left_saturated", "right_saturated")}
            name = f"{label.replace(' ', '_')}/seed{row['seed']}/{inspect['layer']}/{row['gate']}/{inspect['unit']}"
            config = {"seed": int(row["seed"]), "inspect": inspect}
            records.append({"run": name, "status": "completed", "seconds": None, "config": config, "summary": summary})
    results.write(records, path)


def keep(table: pd.DataFrame, keys: list[str], runs: dict[str, dict], path: Path) -> None:
    """``table``'s rows as kept results: the inspected run's config keys, and ``inspect.model`` and the
    ``keys`` columns (``inspect.layer``, ...) as the config; the other columns as the summary."""
    records = []
    for row in table.to_dict("records"):
        run = runs[f"{row['model']} seed {row['seed']}"]
        config = {**run, "inspect": {"model": row["model"], **{k: row[k] for k in keys}}}
        summary = {k: v for k, v in row.items() if k not in {"model", "seed", *keys}}
        name = "/".join([row["model"].replace(" ", "_"), f"seed{row['seed']}", *(str(row[k]) for k in keys)])
        records.append({"run": name, "status": "completed", "seconds": None, "config": config, "summary": summary})
    results.write(records, path)


if __name__ == "__main__":
    raise SystemExit(main())
