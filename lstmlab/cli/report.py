"""``python -m lstmlab.report PATH...``: the command line over :func:`lstmlab.report.report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from lstmlab.config import fail
from lstmlab.io.rundir import STUDY_DB, SUMMARY
from lstmlab.report import report


def _compose(overrides: list[str]) -> dict:
    """The nested config of a job's overrides, composed as the command line composes it."""
    from dataclasses import asdict

    from lstmlab.cli import compose

    return asdict(compose(None, overrides))


def main(argv: list[str] | None = None) -> int:
    """``python -m lstmlab.report``; exit status 2 for a bad path or file."""
    parser = argparse.ArgumentParser(prog="python -m lstmlab.report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help=f"run, sweep or search directories, a {STUDY_DB}, or kept results (.jsonl)"
    )
    parser.add_argument("--metric", help=f"a {SUMMARY} key (default: the search's metric, else val/loss)")
    parser.add_argument(
        "--direction",
        choices=("minimize", "maximize"),
        help="default: the direction the runs' task declares for the metric (lstmlab.tasks)",
    )
    parser.add_argument("--expected", type=Path, help="experiments/PAPER/expected.yaml")
    parser.add_argument("--out", type=Path, help="where report.md/.csv/.png go (default: the first PATH)")
    parser.add_argument("--by", help="a config key, e.g. cell.variant: a row per value, boxplot.png")
    parser.add_argument("--reference", help="with --by: the value the others are tested against (Welch)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Bonferroni")
    parser.add_argument(
        "--cap", type=float, help="with --by and fANOVA: a value worse than this counts as this (e.g. chance level)"
    )
    parser.add_argument(
        "--success", type=float, help="count the runs per row whose metric is this or better (column successes)"
    )
    parser.add_argument("--keep", type=Path, help="write the runs of PATHS to this results file (.jsonl) and stop")
    parser.add_argument(
        "--rebuild",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="rebuild every generated section (<!-- report ... -->) of the Markdown files under DIR",
    )
    parser.add_argument("--check", action="store_true", help="with --rebuild: write nothing; fail if a section differs")
    args = parser.parse_args(argv)
    if args.check and not args.rebuild:
        fail("--check goes with --rebuild DIR...")
    if args.rebuild:
        return _rebuild(args.rebuild, args.check)
    if not args.paths:
        fail("name run, sweep or search directories or results files, or --rebuild DIR...")
    if args.keep:
        return _keep(args.paths, args.keep)
    try:
        out, out_dir = report(
            args.paths,
            args.metric,
            args.direction,
            args.expected,
            args.out,
            args.by,
            args.reference,
            args.alpha,
            args.cap,
            compose=_compose,
            success=args.success,
        )
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    except OSError as err:  # --out cannot be written: the first write fails, so nothing is half written
        fail(f"cannot write the report: {err.strerror or err} ({err.filename}); valid: a writable --out directory")
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(out.to_string(index=False))
    print(f"lstmlab: wrote {out_dir / 'report.md'}, report.csv, report.png")
    return 0


def _keep(paths: list[Path], target: Path) -> int:
    """``--keep FILE``: the runs of ``paths`` as a results file (:mod:`lstmlab.report.results`)."""
    from lstmlab.report import find_runs, results

    if target.suffix != results.SUFFIX:
        fail(f"--keep {target}: a results file ends in {results.SUFFIX}")
    try:
        runs, _ = find_runs(paths, compose=_compose)
        kept = results.keep(runs, paths, target)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    except OSError as err:
        fail(f"cannot write {target}: {err.strerror or err}; valid: a writable file path")
    print(f"lstmlab: kept {kept} runs in {target}")
    return 0


def _rebuild(roots: list[Path], check: bool) -> int:
    """``--rebuild DIR... [--check]`` (:mod:`lstmlab.report.rebuild`)."""
    from lstmlab.report.rebuild import rebuild

    for root in roots:
        if not root.exists():
            fail(f"--rebuild {root}: no such file or directory")
    try:
        every, differ = rebuild(roots, check)
    except (FileNotFoundError, ValueError) as err:
        fail(err)
    for section in differ:
        verb = "differs from its results" if check else "rebuilt"
        print(f"{section.path}:{section.line}: {verb} (<!-- report {section.args} -->)")
    print(f"lstmlab: {len(every)} generated sections, {len(differ)} {'differ' if check else 'rewritten'}")
    return 1 if check and differ else 0
