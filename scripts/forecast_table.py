"""Forecasting skill on real series, with the default settings a user's CSV file gets.

Trains ``+experiment=sunspots`` and ``+experiment=airline`` as shipped, and ``+experiment=sunspots
data=csv`` (the command the CSV config documents) on four statsmodels series written to CSV files:
``co2`` (Mauna Loa, weekly resampled to monthly means, season 12), ``elnino`` (monthly sea surface
temperature, season 12), ``nile`` (yearly Nile flow, 100 values) and ``realgdp`` (US real GDP,
quarterly, season 4). Prints a Markdown table of the test RMSE of the model, persistence and
seasonal naive, and the skill 1 - rmse / persistence_rmse (mean +- standard deviation over seeds).

    python scripts/forecast_table.py [--seeds 3] [--out runs/forecast_table] [--only co2,nile]
        [--set data.residual=false ...]   (extra overrides, applied to every run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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
    """{name: Hydra overrides} for every series in the table."""
    out = {"sunspots": ["+experiment=sunspots"], "airline": ["+experiment=airline"]}
    for name, (values, season, seq_len) in statsmodels_series().items():
        path = csv_dir / f"{name}.csv"
        write_csv(path, values)
        out[name] = [
            "+experiment=sunspots",
            "data=csv",
            f"data.path={path}",
            "data.column=value",
            f"data.season={season}",
            f"data.seq_len={seq_len}",
        ]
    return out


def train(overrides: list[str], run_dir: Path) -> dict:
    """Compose the config like the CLI does and train it in this process; returns the summary."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lstmlab.cli import conf_dir, register_schema
    from lstmlab.train import train_and_evaluate

    register_schema()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides + ["trainer.progress=none", "logger.wandb.mode=disabled"])
    config = OmegaConf.to_object(cfg)
    return train_and_evaluate(config, run_dir, config_dict=OmegaConf.to_container(cfg, resolve=True))


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/forecast_table")
    parser.add_argument("--only", default="", help="comma-separated series names (default: all)")
    parser.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        table = runs(Path(tmp))
        names = [n for n in table if not args.only or n in args.only.split(",")]
        for name in names:
            summaries = []
            for seed in range(args.seeds):
                start = time.perf_counter()
                run_dir = out / f"{name}-seed{seed}"
                summary = train(table[name] + [f"seed={seed}"] + list(args.set), run_dir)
                summaries.append(summary)
                print(
                    f"{name} seed {seed}: skill {summary['test/skill']:.3f} "
                    f"residual={summary['data'].get('residual')} ({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            s0 = summaries[0]
            rows.append(
                {
                    "series": name,
                    "test windows": s0["data"]["test_windows"],
                    "residual": s0["data"].get("residual"),
                    "rmse": mean_sd([s["test/rmse"] for s in summaries]),
                    "persistence": f"{s0['test/persistence_rmse']:.3g}",
                    "seasonal naive": f"{s0['test/seasonal_rmse']:.3g}",
                    "skill": mean_sd([s["test/skill"] for s in summaries]),
                    "seasonal skill": mean_sd([1 - s["test/rmse"] / s["test/seasonal_rmse"] for s in summaries]),
                }
            )
    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
