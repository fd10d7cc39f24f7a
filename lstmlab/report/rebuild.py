"""Generated sections: every table in the Markdown files that quotes results is rebuilt from kept results.

A generated section sits between two markers, the first holding the report's arguments, paths relative
to the Markdown file's folder::

    <!-- report results/table.jsonl --expected expected.yaml --columns cell.name,n,test/errors mean -->
    | cell.name | ... |
    <!-- end report -->

The arguments are those of ``python -m lstmlab.report`` (``--metric``, ``--direction``, ``--expected``,
``--by``, ``--reference``, ``--alpha``, ``--cap``, ``--success``), plus ``--columns A,B,...`` (the columns to
show, in that order; ``KEY mean`` and ``KEY std`` of another summary key add its statistics per
configuration), ``--sort A,B`` (rows ordered by these columns, ties in the metric's order),
``--figure FILE.png`` (with ``--by``, the box plot of the groups; without, the runs' plot; with ``--plot
KIND``, that figure alone, drawn from the results: ``saturation``, see :func:`saturation_plot`)
and ``--verdicts GLOB...`` (the verdict table of the expected files that match, see
:mod:`lstmlab.report.verdicts`). ``python -m lstmlab.report --rebuild DIR...`` rewrites every section
of every ``*.md`` under the DIRs (and draws the figures); with ``--check`` it writes nothing and fails,
naming each file and section, when a section differs from what the results give.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from lstmlab.io.files import atomic_write_text

SECTION = re.compile(r"(<!-- report (?P<args>[^\n]*?) -->\n)(?P<body>.*?)(<!-- end report -->)", re.S)


@dataclass
class Section:
    path: Path
    line: int
    args: str
    body: str
    new: str


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="<!-- report", add_help=False, exit_on_error=False)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--metric")
    parser.add_argument("--direction", choices=("minimize", "maximize"))
    parser.add_argument("--expected", type=Path)
    parser.add_argument("--by")
    parser.add_argument("--reference")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--cap", type=float)
    parser.add_argument("--success", type=float)
    parser.add_argument("--columns")
    parser.add_argument("--sort")
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--plot", choices=tuple(PLOTS))
    parser.add_argument("--verdicts", nargs="+")
    return parser


def render(args_text: str, base: Path, root: Path, draw: bool) -> str:
    """The body of one section: its Markdown table (ending in a newline). ValueError (one line) for
    arguments that do not parse or name nothing."""
    from lstmlab.report import build, results, verdicts
    from lstmlab.report.tables import markdown

    try:
        args, extra = _parser().parse_known_args(shlex.split(args_text))
    except (argparse.ArgumentError, ValueError) as err:
        raise ValueError(f"cannot read the section's arguments ({err})") from None
    if extra:
        raise ValueError(f"unknown arguments {' '.join(extra)}; quote a column name that has spaces")
    if args.verdicts:
        files = sorted({p for pattern in args.verdicts for p in base.glob(pattern) if p.is_file()})
        if not files:
            raise ValueError(f"--verdicts {' '.join(args.verdicts)}: no expected file matches")
        found = verdicts.verdicts(files, root)
        return verdicts.table(found, base, with_paper=len({p.parent for p in files}) > 1) + "\n"
    if not args.paths:
        raise ValueError("a section names the results it is built from, or --verdicts")
    if args.plot:  # a figure alone: the section is its image
        if not args.figure:
            raise ValueError(f"--plot {args.plot} wants --figure FILE.png")
        runs = [r for p in args.paths for r in results.load(base / p)]
        if draw:
            PLOTS[args.plot](runs, base / args.figure)
        return f"![{args.plot}]({args.figure.as_posix()})\n"
    built = build(
        [base / p for p in args.paths],
        args.metric,
        args.direction,
        base / args.expected if args.expected else None,
        args.by,
        args.reference,
        args.alpha,
        args.cap,
        success=args.success,
    )
    shown = built.groups if built.groups is not None else built.out
    if args.sort:
        keys = [c.strip() for c in args.sort.split(",") if c.strip()]
        unknown = [c for c in keys if c not in shown.columns]
        if unknown:
            raise ValueError(f"--sort {', '.join(unknown)}: not a column; valid: {', '.join(map(str, shown.columns))}")
        shown = shown.sort_values(keys, kind="stable").reset_index(drop=True)
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        if built.groups is None:
            shown = with_metrics(shown, built.runs, built.varying, [c for c in wanted if c not in shown.columns])
        unknown = [c for c in wanted if c not in shown.columns]
        if unknown:
            raise ValueError(
                f"--columns {', '.join(unknown)}: not a column; valid: {', '.join(map(str, shown.columns))}"
            )
        shown = shown[wanted]
    if draw and args.figure:
        _draw(built, base / args.figure)
    return markdown(shown) + "\n"


def with_metrics(shown, runs, varying: list[str], columns: list[str]):
    """``shown`` (the table per configuration) with the columns ``KEY mean`` and ``KEY std`` among
    ``columns`` for summary keys other than the table's metric, e.g. ``test/persistence_rmse mean``
    beside a table of ``test/skill``: each configuration's mean and standard deviation over seeds."""
    from lstmlab.report.tables import table

    summary_keys = {k for r in runs for k in r.summary}
    metrics = list(dict.fromkeys(c.rsplit(" ", 1)[0] for c in columns if c.endswith((" mean", " std"))))
    for metric in (m for m in metrics if m in summary_keys):
        other = table(runs, metric, "minimize")[0][[*varying, f"{metric} mean", f"{metric} std"]]
        if varying:
            shown = shown.merge(other, on=varying, how="left")
        else:
            shown = shown.assign(**{c: other[c].iloc[0] for c in other.columns})
    return shown


def saturation_plot(runs, path: Path) -> None:
    """Karpathy et al.'s Fig. 3 from kept per-unit records (config ``inspect.model``, ``inspect.layer``
    from 1, ``inspect.gate``, ``inspect.unit``; summary ``left_saturated``, ``right_saturated``): one row
    per model, in the order of their names, :func:`lstmlab.diagnostics.cellviz.plot_saturation`."""
    import pandas as pd

    from lstmlab.diagnostics import cellviz

    rows: dict[str, list[dict]] = {}
    for run in runs:
        flat = run.flat
        rows.setdefault(str(flat["inspect.model"]), []).append(
            {
                "layer": int(flat["inspect.layer"]) - 1,
                "gate": flat["inspect.gate"],
                "unit": int(flat["inspect.unit"]),
                "left_saturated": float(run.summary["left_saturated"]),
                "right_saturated": float(run.summary["right_saturated"]),
            }
        )
    cellviz.plot_saturation({model: pd.DataFrame(rows[model]) for model in sorted(rows)}, path)


PLOTS = {"saturation": saturation_plot}


def _draw(built, path: Path) -> None:
    from lstmlab.report.figures import boxplot, draw
    from lstmlab.report.groups import group_values

    if built.by:
        values = group_values(built.runs, built.by, built.metric, built.cap, built.direction)
        groups = built.groups
        marked = set()
        if built.reference:
            marked = set(groups.loc[groups[f"vs {built.reference}"].isin(["better", "worse"]), built.by])
        boxplot(values, list(groups[built.by]), built.by, built.metric, path, marked)
    else:
        draw(built.df, built.varying, built.metric, path)


def sections(path: Path, root: Path, draw: bool = False) -> list[Section]:
    """The generated sections of one Markdown file, each with its current and its rebuilt body."""
    text = path.read_text(encoding="utf-8")
    out = []
    for match in SECTION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        try:
            new = render(match["args"], path.parent, root, draw)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"{path}:{line}: {err}") from None
        out.append(Section(path, line, match["args"], match["body"], new))
    return out


def rebuild(roots: list[Path], check: bool = False) -> tuple[list[Section], list[Section]]:
    """Rebuild (or with ``check``, only compare) every generated section under ``roots``; returns (all
    sections, those that differ)."""
    every, differ = [], []
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.md"))
        for path in files:
            found = sections(path, root if root.is_dir() else root.parent, draw=not check)
            every += found
            changed = [s for s in found if s.body != s.new]
            differ += changed
            if changed and not check:
                bodies = iter([s.new for s in found])  # the sections in the order SECTION finds them
                text = SECTION.sub(lambda m: m.group(1) + next(bodies) + m.group(4), path.read_text(encoding="utf-8"))
                atomic_write_text(path, text)
    return every, differ
