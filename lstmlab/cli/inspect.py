"""Look inside a trained character model: gate saturation, and cells that track the text.

    python -m lstmlab.inspect RUN_DIR --find --out DIR [--split val | --text FILE] [--chars N] [--cell L:U]

Runs the run's model (its latest checkpoint, or ``--checkpoint``) from a zero state over ``--chars``
characters of a data split or of a text file, and writes to ``--out``:

* ``saturation.json`` and ``saturation.png``: per layer, gate and unit the fraction of characters at
  which the gate is left-saturated (< 0.1) or right-saturated (> 0.9), and the scatter of the two
  (Karpathy, Johnson & Fei-Fei 2015, Sec. 4.2 and Fig. 3); a cell without gates (``rnn``) has none.
* with ``--find``: ``cells.csv``, every unit ranked by |correlation| of its activation (tanh of the LSTM
  cell state, else the output h) with the position in the line, being inside double quotes and being
  inside brackets; the best ``--top`` per feature are printed and the best of each rendered.
* for each rendered cell (``--cell`` and those found): ``cell_L_U.html`` and ``cell_L_U.png``, the text
  coloured by that unit's activation from -1 (red) to +1 (blue).

Layers are counted from 1 (as in the paper), units from 0. Bad input (no run directory or checkpoint,
a cell out of range, characters the model does not know) ends with one line ``lstmlab: error: ...`` on
stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from lstmlab.cli.sample import OneLineParser, UsageError, restore
from lstmlab.config import fail

PROG = "python -m lstmlab.inspect"
EXAMPLES = """examples:
  python -m lstmlab.inspect RUN_DIR --find --out inspect/        # saturation, and cells that track the text
  python -m lstmlab.inspect RUN_DIR --cell 2:17 --chars 800 --out inspect/   # render layer 2, unit 17
  python -m lstmlab.inspect RUN_DIR --text play.txt --find --top 10 --out inspect/

exit status: 0 files written; 2 bad input (one line "lstmlab: error: ..." on stderr)"""
SPLITS = ("train", "val", "test")


def _positive(name: str):
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{name}={text!r}; valid: an integer >= 1")
        return int(text)

    return parse


def _cell(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if not match or int(match[1]) < 1:
        raise argparse.ArgumentTypeError(f"--cell={text!r}; valid: LAYER:UNIT, layer from 1, unit from 0 (e.g. 1:17)")
    return int(match[1]), int(match[2])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(PROG, __doc__, EXAMPLES)
    parser.add_argument("run_dir", type=Path, help="a run directory of a character model written by python -m lstmlab")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", type=Path, help="a UTF-8 text file to read (default: the run's --split)")
    source.add_argument("--split", choices=SPLITS, default="val", help="the run's data split to read (default: val)")
    parser.add_argument(
        "--chars", type=_positive("--chars"), default=20000, help="characters to read, from the start (default: 20000)"
    )
    parser.add_argument(
        "--cell", type=_cell, action="append", default=[], help="LAYER:UNIT to render (layer from 1); repeatable"
    )
    parser.add_argument("--find", action="store_true", help="rank the units by correlation with the text features")
    parser.add_argument(
        "--top", type=_positive("--top"), default=5, help="found cells printed per feature (default: 5)"
    )
    parser.add_argument(
        "--render-chars",
        type=_positive("--render-chars"),
        default=600,
        help="characters shown in each picture (default: 600)",
    )
    parser.add_argument("--checkpoint", default="latest", help="latest, best, or a step number (default: latest)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the files to")
    return parser


def _read_text(args: argparse.Namespace, config) -> str:
    if args.text is not None:
        try:
            return args.text.read_text(encoding="utf-8")[: args.chars]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--text {args.text}: {err}") from None
    from lstmlab.train.setup import build_dataset

    dataset = build_dataset(config)
    if not hasattr(dataset, "split_text"):
        raise UsageError(f"{args.run_dir}: its data set has no text splits; give --text FILE")
    return dataset.split_text(args.split)[: args.chars]


def inspect(args: argparse.Namespace) -> list[str]:
    """Write the files for parsed ``args``; returns the lines to print. UsageError for bad input."""
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    config, model, meta = restore(args.run_dir, args.checkpoint)
    if not meta.get("vocab"):
        raise UsageError(f"{args.run_dir} is not a character model (its checkpoint has no vocabulary)")
    layers = list(model.rnn.layers)
    if model.rnn.bidirectional:
        raise UsageError(f"{args.run_dir} is a bidirectional model; valid: a character model (one direction)")
    hidden = model.rnn.hidden_size
    for layer, unit in args.cell:
        if not (1 <= layer <= len(layers) and 0 <= unit < hidden):
            raise UsageError(
                f"--cell={layer}:{unit} is out of range; valid: layer 1..{len(layers)}, unit 0..{hidden - 1}"
            )
    text = _read_text(args, config)
    if len(text) < 2:
        raise UsageError(f"the text has {len(text)} character(s); valid: at least 2")

    import jax.numpy as jnp

    from lstmlab.data.text import Vocab
    from lstmlab.diagnostics import cellviz, gates

    vocab = Vocab.from_json(meta["vocab"])
    try:
        ids = vocab.encode(text)
    except ValueError as err:
        raise UsageError(f"{args.text or args.split}: {err}") from None

    xs = jnp.swapaxes(model.features(jnp.asarray(ids)[None, :]), 0, 1)  # (T, 1, D)
    acts = gates.layer_activations(layers[0].cell, [layer.cell_params() for layer in layers], xs, **layers[0].options)
    label = f"{config.cell.name} {len(layers)}x{hidden}"

    args.out.mkdir(parents=True, exist_ok=True)
    lines = [f"read {len(text)} characters of {args.text or f'the {args.split} split'} with {label}"]
    table = gates.saturation(acts)
    summary = gates.saturation_summary(table)
    report = {
        "run_dir": str(args.run_dir),
        "cell": config.cell.name,
        "layers": len(layers),
        "hidden_size": hidden,
        "chars": len(text),
        "thresholds": {"left": gates.LEFT, "right": gates.RIGHT},
        "summary": summary.to_dict(orient="records"),
        "units": table.to_dict(orient="records"),
    }
    (args.out / "saturation.json").write_text(json.dumps(report, indent=1) + "\n")
    if table.empty:
        lines.append(f"{config.cell.name} has no sigmoid gates: saturation.json lists none, no saturation.png")
    else:
        cellviz.plot_saturation({label: table}, args.out / "saturation.png")
        for row in summary.itertuples():
            lines.append(
                f"layer {row.layer + 1} {cellviz.GATE_NAMES.get(row.gate, row.gate)} gate: "
                f"left-saturated {row.mean_left:.3f}, right-saturated {row.mean_right:.3f} of the time (unit mean)"
            )

    render = list(dict.fromkeys(args.cell))
    if args.find:
        features = gates.text_features(text)
        found = gates.find_cells(acts, features)
        for feature in features:
            if feature not in set(found["feature"]):
                lines.append(f"{feature}: constant over these {len(text)} characters, nothing to correlate with")
        found.assign(layer=found["layer"] + 1).to_csv(args.out / "cells.csv", index=False, float_format="%.4f")
        for feature, part in found.groupby("feature", sort=False):
            best = part.head(args.top)
            listed = ", ".join(f"{r.layer + 1}:{r.unit} ({r.correlation:+.2f})" for r in best.itertuples())
            lines.append(f"{feature}: {listed}")
            top = best.iloc[0]
            render.append((int(top["layer"]) + 1, int(top["unit"])))
        render = list(dict.fromkeys(render))
    shown = text[: args.render_chars]
    for layer, unit in render:
        values = gates.unit_values(acts[layer - 1])[: len(shown), unit]
        what = "tanh(c)" if "c" in acts[layer - 1] else "h"
        title = f"{label}: layer {layer}, unit {unit}, {what} (-1 red, +1 blue)"
        cellviz.render_html(shown, values, args.out / f"cell_{layer}_{unit}.html", title=title)
        cellviz.render_png(shown, values, args.out / f"cell_{layer}_{unit}.png", title=title)
        lines.append(f"rendered layer {layer} unit {unit}: {args.out / f'cell_{layer}_{unit}.png'} (and .html)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, write the files, print what was found; 0, or exit 2 after one line on stderr."""
    args = build_parser().parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on read-only managers
    try:
        lines = inspect(args)
    except (ValueError, OSError) as err:  # UsageError, ConfigError, FileNotFoundError
        fail(str(err))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
