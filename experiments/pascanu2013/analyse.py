"""Success rates and gradient norms over training for a Pascanu et al. (2013) temporal-order sweep.

    python experiments/pascanu2013/analyse.py SWEEP_DIR [--threshold 0.99] [--out DIR]

``python -m lstmlab.report`` gives the mean test accuracy per configuration; this script adds what the
report cannot: the share of seeds that succeed (``test/accuracy >= threshold``) and statistics of
``grad/global_norm`` (before clipping) and ``grad/update_norm`` over training, read from each run's
``metrics.jsonl``. Writes ``success.md`` and ``grad_norms.png`` (the gradient norm against the
training step, one panel per sequence length, seed 0 of each learning rate and clipping setting) to ``--out``
(default: SWEEP_DIR) and prints the table.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from lstmlab.io.rundir import RunDir, RunRecord
from lstmlab.report import find_runs

GROUP = ("data.seq_len", "optim.lr", "optim.clip")


def grad_series(run: RunRecord, key: str = "grad/global_norm") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` in the run's metrics.jsonl (empty arrays if it has none)."""
    steps, values = [], []
    for record in RunDir(run.path).read_metrics():
        if key in record:
            steps.append(record["step"])
            values.append(record[key])
    return np.asarray(steps, dtype=int), np.asarray(values, dtype=float)


def success_rows(runs: list[RunRecord], threshold: float, metric: str = "test/accuracy") -> list[dict]:
    """One row per (seq_len, lr, clip): runs, successes (metric >= threshold), success rate, mean metric and
    the median, 99th percentile and maximum gradient norm and the largest update norm over all its runs'
    logged steps. A run without the metric (failed, stopped) counts as a failure."""
    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(tuple(run.flat.get(k) for k in GROUP), []).append(run)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        members = groups[key]
        values = [run.summary.get(metric) for run in members if run.status == "completed"]
        values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        norms = np.concatenate([grad_series(r)[1] for r in members] or [np.zeros(0)])
        updates = np.concatenate([grad_series(r, "grad/update_norm")[1] for r in members] or [np.zeros(0)])
        successes = sum(v >= threshold for v in values)
        rows.append(
            {
                **dict(zip(GROUP, key)),
                "runs": len(members),
                "successes": int(successes),
                "success rate": successes / len(members),
                f"{metric} mean": float(np.mean(values)) if values else math.nan,
                "grad norm median": float(np.median(norms)) if norms.size else math.nan,
                "grad norm p99": float(np.percentile(norms, 99)) if norms.size else math.nan,
                "grad norm max": float(norms.max()) if norms.size else math.nan,
                "update norm max": float(updates.max()) if updates.size else math.nan,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no runs)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(":---" if c in GROUP else "---:" for c in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def draw(runs: list[RunRecord], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r.flat.get("data.seq_len") for r in runs}, key=str)
    fig, axes = plt.subplots(1, len(lengths), figsize=(4 * len(lengths), 3.2), squeeze=False)
    for ax, length in zip(axes[0], lengths):
        lrs = sorted({r.flat.get("optim.lr") for r in runs}, key=str)
        for i, lr in enumerate(lrs):
            for clip, colours in (("none", ("C3", "C1")), ("global_norm", ("C0", "C2"))):
                picked = [
                    r
                    for r in runs
                    if r.flat.get("data.seq_len") == length
                    and r.flat.get("seed") == 0
                    and r.flat.get("optim.clip") == clip
                    and r.flat.get("optim.lr") == lr
                ]
                for run in picked:
                    steps, values = grad_series(run)
                    ax.plot(steps, values, color=colours[i % 2], lw=0.8, label=f"lr={lr:g} clip={clip}")
        ax.set_yscale("log")
        ax.set_title(f"T = {length} (seed 0)")
        ax.set_xlabel("training step")
        ax.set_ylabel("||grad|| before clipping")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        runs, _ = find_runs([args.sweep])
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = success_rows(runs, args.threshold)
    out = args.out or args.sweep
    out.mkdir(parents=True, exist_ok=True)
    text = (
        f"Success: test/accuracy >= {args.threshold:g}. Gradient norms: grad/global_norm before clipping "
        f"over every logged step of every seed.\n\n{markdown(rows)}\n"
    )
    (out / "success.md").write_text(text)
    draw(runs, out / "grad_norms.png")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
