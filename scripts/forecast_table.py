"""Forecasting skill on real series, with the default settings a user's CSV file gets.

Trains ``+experiment=sunspots`` and ``+experiment=airline`` as shipped, and ``+experiment=sunspots
data=csv`` (the command the CSV config documents; its ``experiment`` key set to the series' name) on
four statsmodels series written to CSV files in ``--out``: ``co2`` (Mauna Loa, weekly resampled to
monthly means, season 12), ``elnino`` (monthly sea surface temperature, season 12), ``nile`` (yearly
Nile flow, 100 values) and ``realgdp`` (US real GDP, quarterly, season 4); and the synthetic
``data=mackey_glass`` and ``data=sines`` with the same settings; seeds 0 to ``--seeds`` - 1.
Each run is a run directory under ``--out``; ``--keep FILE`` writes them to a results file
(:mod:`lstmlab.report.results`), from which docs/forecasting.md's tables are generated::

    python scripts/forecast_table.py --keep docs/results/forecast.jsonl
    python scripts/forecast_table.py --set data.residual=false --keep docs/results/forecast_levels.jsonl
    python scripts/forecast_table.py --only nile --set trainer.max_steps=100 --keep FILE   # any override

A run directory that already holds a finished run is not trained again.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

SERIES = ("sunspots", "airline", "co2", "elnino", "nile", "realgdp", "mackey_glass", "sines")


def write_csv(path: Path, values: np.ndarray) -> None:
    path.write_text("value\n" + "".join(f"{float(v)!r}\n" for v in np.asarray(values, np.float64)))


def statsmodels_series() -> dict[str, tuple[np.ndarray, int, int]]:
    """{name: (values (N,), season, seq_len)} of the four statsmodels series."""
    from statsmodels import datasets

    co2 = datasets.co2.load_pandas().data["co2"]
    co2 = co2.resample("MS").mean().interpolate().to_numpy()  # 526 months, a few gaps filled
    elnino = datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy().ravel()  # 732 months
    nile = datasets.nile.load_pandas().data["volume"].to_numpy()  # 100 years
    gdp = datasets.macrodata.load_pandas().data["realgdp"].to_numpy()  # 203 quarters
    return {"co2": (co2, 12, 24), "elnino": (elnino, 12, 24), "nile": (nile, 1, 10), "realgdp": (gdp, 4, 8)}


def runs(csv_dir: Path) -> dict[str, list[str]]:
    """{name: Hydra overrides} for every series in the table; writes the CSV files to ``csv_dir``."""
    out = {"sunspots": ["+experiment=sunspots"], "airline": ["+experiment=airline"]}
    out |= {name: ["+experiment=sunspots", f"data={name}"] for name in ("mackey_glass", "sines")}
    for name, (values, season, seq_len) in statsmodels_series().items():
        path = csv_dir / f"{name}.csv"
        write_csv(path, values)
        out[name] = [
            "+experiment=sunspots",
            "data=csv",
            f"data.path={path.name}",
            "data.column=value",
            f"data.season={season}",
            f"data.seq_len={seq_len}",
        ]
    return out


def train(name: str, overrides: list[str], run_dir: Path) -> dict:
    """Compose the config as the command line does (``lstmlab.cli.compose``), name its experiment
    after the series, and train it in this process; returns the summary."""
    import dataclasses

    from lstmlab.cli import compose
    from lstmlab.train import train_and_evaluate

    experiment = overrides[0].removeprefix("+experiment=")
    config = compose(experiment, overrides[1:] + ["trainer.progress=none", "logger.wandb.mode=disabled"])
    # the experiment key names the series: on the command line +experiment selects the config group
    return train_and_evaluate(dataclasses.replace(config, experiment=name), run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/forecast_table", help="the run directories and CSV files")
    parser.add_argument("--only", default="", help=f"comma-separated series (default: all of {', '.join(SERIES)})")
    parser.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for every run")
    parser.add_argument("--keep", help="write this invocation's runs to this results file (.jsonl)")
    args = parser.parse_args(argv)
    names = [n for n in SERIES if not args.only or n in args.only.split(",")]
    unknown = sorted(set(filter(None, args.only.split(","))) - set(SERIES))
    if unknown or not names:
        parser.error(f"--only {args.only}: valid series are {', '.join(SERIES)}")
    out = Path(args.out).absolute()
    keep = Path(args.keep).absolute() if args.keep else None
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # the CSV runs name their files relative to here, so the kept configs hold no temp paths
    table = runs(out)
    tag = re.sub(r"[^A-Za-z0-9.=_-]+", "_", "-".join(args.set))
    done = []
    for name in names:
        for seed in range(args.seeds):
            run_dir = out / (f"{name}-seed{seed}" + (f"-{tag}" if tag else ""))
            if not (run_dir / "summary.json").exists():
                start = time.perf_counter()
                summary = train(name, table[name] + [f"seed={seed}"] + list(args.set), run_dir)
                print(
                    f"{name} seed {seed}: validation skill {summary['val/skill']:.3f} "
                    f"({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            done.append(run_dir)
    if keep is not None:
        from lstmlab.report import find_runs, results

        print(f"kept {results.keep(find_runs(done)[0], [out], keep)} runs in {keep}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
