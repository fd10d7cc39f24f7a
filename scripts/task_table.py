"""Run the default speech, forecasting and long-time-lag experiments and print a Markdown table of
their results with wall time, CPU time and machine load, the numbers in experiments/README.md.

    python scripts/task_table.py                      # every row (about 25 minutes on 2 idle cores)
    python scripts/task_table.py --only adding copy   # rows whose experiment is named
    python scripts/task_table.py --runs /tmp/tables   # where the run directories go

Each row is one ``python -m lstmlab +experiment=...`` command (printed in the table), run in a
subprocess one after another; CPU time is that subprocess's user + system time. Load is the 1-minute
load average before and after: on a shared machine wall time grows with it, CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["logger.wandb.mode=disabled", "trainer.progress=none"]

# (experiment, extra overrides, seeds): one table row per entry; several seeds give mean +- std.
ROWS: list[tuple[str, list[str], list[int]]] = [
    ("vowels", [], [0, 1, 2, 3, 4]),
    ("sunspots", [], [0, 1, 2]),
    ("airline", [], [0, 1, 2]),
    ("adding", [], [0]),
    ("adding", ["cell=rnn"], [0]),
    ("temporal_order", [], [0]),
    ("temporal_order", ["cell=rnn"], [0]),
    ("temporal_order_6b", [], [0]),
    ("copy", [], [0]),
    ("copy", ["cell=rnn"], [0]),
    ("reber", [], [0]),
    ("reber", ["cell=rnn"], [0]),
]


def describe(experiment: str, s: dict) -> str:
    """The row's result in words and numbers from a summary.json."""
    if experiment == "vowels":
        return f"accuracy {s['test/accuracy']:.4f} ({int(s['test/errors'])} wrong of {s['data']['test_size']})"
    if experiment in ("sunspots", "airline"):
        return (
            f"RMSE {s['test/rmse']:.1f}, MAE {s['test/mae']:.1f}; persistence {s['test/persistence_rmse']:.1f} / "
            f"{s['test/persistence_mae']:.1f}; seasonal {s['test/seasonal_rmse']:.1f} / {s['test/seasonal_mae']:.1f}; "
            f"skill {s['test/skill']:.3f}"
        )
    if experiment == "adding":
        return f"{int(s['test/errors'])} wrong of {s['data']['test_size']}, MSE {s['test/mse']:.2e}"
    if experiment.startswith("temporal_order"):
        return (
            f"{int(s['test/errors'])} wrong of {s['data']['test_size']} (paper's 0.3 rule), "
            f"accuracy {s['test/accuracy']:.4f}"
        )
    if experiment == "copy":
        return (
            f"cross-entropy {s['test/cross_entropy']:.4f} (baseline {s['test/baseline_cross_entropy']:.4f}), "
            f"copied symbols right {s['test/copy_accuracy']:.3f}, sequences right {s['test/fraction_correct']:.3f}"
        )
    if experiment == "reber":
        return (
            f"{int(s['test/errors'])} wrong of {s['data']['test_size']} (sigmoid > 0.5 rule); "
            f"paper's top rule: {s['test/fraction_correct_top']:.4f} right"
        )
    return json.dumps({k: v for k, v in s.items() if k.startswith("test/")})


def run(args: list[str], run_dir: Path) -> tuple[dict, float, float, tuple[float, float]]:
    """One CLI run: (summary, wall seconds, CPU seconds, (load before, load after))."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, start = os.getloadavg()[0], time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lstmlab", *args, *QUIET, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall, load1 = time.perf_counter() - start, os.getloadavg()[0]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads((run_dir / "summary.json").read_text()), wall, cpu, (load0, load1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="experiments to run (default: all rows)")
    parser.add_argument("--runs", type=Path, default=Path("runs/task_table"), help="parent of the run directories")
    opts = parser.parse_args()
    print("| command | result (test split) | wall s | CPU s | load |")
    print("|---|---|---|---|---|")
    for experiment, extra, seeds in ROWS:
        if opts.only and experiment not in opts.only:
            continue
        results = []
        for seed in seeds:
            args = [f"+experiment={experiment}", *extra] + ([f"seed={seed}"] if len(seeds) > 1 else [])
            name = "_".join([experiment, *[e.replace("=", "-") for e in extra], f"seed{seed}"])
            summary, wall, cpu, load = run(args, (opts.runs / name).absolute())
            results.append((summary, wall, cpu, load))
            command = "python -m lstmlab " + " ".join(args)
            print(
                f"| `{command}` | {describe(experiment, summary)} | {wall:.0f} | {cpu:.0f} | "
                f"{load[0]:.1f}-{load[1]:.1f} |",
                flush=True,
            )
        key = {"vowels": "test/accuracy", "sunspots": "test/skill", "airline": "test/skill"}.get(experiment)
        if key and len(results) > 1:
            values = [r[0][key] for r in results]
            print(
                f"| {experiment}, seeds {seeds[0]}-{seeds[-1]} | {key} mean {statistics.mean(values):.4f} "
                f"+- {statistics.stdev(values):.4f} (sample std) | | | |",
                flush=True,
            )


if __name__ == "__main__":
    main()
