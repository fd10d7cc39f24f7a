"""Generate text from a trained character-model run directory.

    python -m lstmlab.sample RUN_DIR --prime "MACBETH:" --length 500 --temperature 0.5 --top-k 10

A temperature of 0 is greedy argmax decoding. Uses the latest checkpoint unless ``--checkpoint best``
or a step number is given. Bad input (an option out of range, a prime with characters the model does
not know, a missing or foreign run directory, a config.yaml that is not plain YAML) ends with one line
``lstmlab: error: ...`` on stderr and exit status 2. From Python: :func:`lstmlab.train.sample.load_model`
and :func:`lstmlab.train.generate`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from lstmlab.config import MAX_SAMPLE_LENGTH, fail

PROG = "python -m lstmlab.sample"
EXAMPLES = """examples:
  python -m lstmlab.sample outputs/charlm/2026-01-01_12-00-00 --prime "MACBETH:" --length 300
  python -m lstmlab.sample RUN_DIR --temperature 0 --checkpoint best       # greedy, best checkpoint
  python -m lstmlab.sample RUN_DIR --temperature 0.5 --top-k 10 --seed 3

exit status: 0 text printed; 2 bad input (one line "lstmlab: error: ..." on stderr)"""


class UsageError(ValueError):
    """Bad input to the sample command; the message is one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors as one line ``lstmlab: error: ...`` and exit status 2 (no usage block)."""

    def __init__(self, prog: str, doc: str, examples: str) -> None:
        """The command ``prog``, described by the first line of its module's ``doc``, with ``examples``."""
        super().__init__(
            prog=prog,
            description=doc.split("\n")[0],
            epilog=examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def _int_at_least(low: int, name: str, high: int | None = None):
    valid = f"an integer >= {low}" if high is None else f"an integer from {low} to {high:,}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not an integer; valid: {valid}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{name}={value}; valid: {valid}")
        return value

    return parse


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--temperature={text!r} is not a number; valid: a number >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"--temperature={text}; valid: a finite number >= 0 (0 = greedy)")
    return value


def _checkpoint(text: str) -> str:
    if text in ("latest", "best") or text.isdigit():
        return text
    raise argparse.ArgumentTypeError(f"--checkpoint={text!r}; valid: latest, best, or a step number")


def _prime(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("--prime is empty; valid: at least one character")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser (options validated as they are parsed)."""
    from lstmlab.io.rundir import CHECKPOINTS, CONFIG

    parser = OneLineParser(PROG, __doc__, EXAMPLES)
    parser.add_argument(
        "run_dir", type=Path, help=f"a run directory written by python -m lstmlab (holds {CONFIG} and {CHECKPOINTS}/)"
    )
    parser.add_argument(
        "--prime",
        type=_prime,
        default="\n",
        help="text fed to the model first; every character must be in the model's vocabulary (default: a newline)",
    )
    parser.add_argument(
        "--length",
        type=_int_at_least(1, "--length", MAX_SAMPLE_LENGTH),
        default=500,
        help=f"characters to generate, 1 to {MAX_SAMPLE_LENGTH:,} (default: 500)",
    )
    parser.add_argument(
        "--temperature",
        type=_temperature,
        default=0.8,
        help="softmax temperature, >= 0; 0 = greedy argmax (default: 0.8)",
    )
    parser.add_argument(
        "--top-k",
        type=_int_at_least(0, "--top-k"),
        default=0,
        help="draw only from the k likeliest characters, 0..vocabulary size; 0 = all (default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the draws (default: 0)")
    parser.add_argument(
        "--checkpoint",
        type=_checkpoint,
        default="latest",
        help="latest, best (lowest validation loss), or a step number (default: latest)",
    )
    return parser


def restore(run_dir: Path, checkpoint: str = "latest"):
    """(config, model, checkpoint meta) of a run directory, after importing the modules its config
    names (e.g. one that registers its cell); UsageError (one line) for a missing or foreign run
    directory, a ``config.yaml`` that cannot be read back, or a checkpoint that cannot be read."""
    from omegaconf.errors import OmegaConfBaseException

    from lstmlab.config import import_modules
    from lstmlab.io.rundir import RunDir
    from lstmlab.train.sample import load_model

    try:
        saved = RunDir(run_dir).read_config_checked()
    except ValueError as err:
        raise UsageError(str(err)) from None
    import_modules(saved.get("imports", []))
    try:
        config, model, meta = load_model(run_dir, checkpoint)
    except (ValueError, OSError, OmegaConfBaseException) as err:
        raise UsageError(" ".join(str(err).split())) from None
    except Exception as err:  # orbax/tensorstore raise many types for a damaged or foreign checkpoint
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise UsageError(
            f"{run_dir}: its checkpoint cannot be read ({reason}); valid: a run directory "
            "with an intact checkpoint written by python -m lstmlab"
        ) from None
    for reason in meta.get("passed_over", {}).values():  # as training does: the previous good one is used
        print(f"lstmlab: {' '.join(reason.split())}; using the previous good checkpoint", file=sys.stderr)
    return config, model, meta


def sample(args: argparse.Namespace) -> str:
    """The prime and the generated text for parsed ``args``; UsageError/ValueError for bad input."""
    import jax

    from lstmlab.data.text import Vocab
    from lstmlab.train.sample import generate

    _, model, meta = restore(args.run_dir, args.checkpoint)
    if not meta.get("vocab"):
        raise UsageError(f"{args.run_dir} is not a character model (its checkpoint has no vocabulary)")
    vocab = Vocab.from_json(meta["vocab"])
    if args.top_k > vocab.size:
        raise UsageError(
            f"--top-k={args.top_k} exceeds the model's {vocab.size}-character vocabulary; "
            f"valid: 0..{vocab.size} (0 = all)"
        )
    try:
        prime = vocab.encode(args.prime)
    except ValueError as err:
        raise UsageError(f"--prime: {err}") from None
    ids = generate(
        model, prime, args.length, temperature=args.temperature, top_k=args.top_k, key=jax.random.PRNGKey(args.seed)
    )
    return args.prime + vocab.decode(ids)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, print the generated text; returns 0, or exits 2 after one line on stderr."""
    args = build_parser().parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on read-only managers
    from omegaconf.errors import OmegaConfBaseException

    try:
        text = sample(args)
    except (ValueError, OSError, OmegaConfBaseException) as err:  # OSError: FileNotFoundError, permissions
        fail(str(err))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
