"""Generate text from a trained run directory.

    python -m lstmlab.sample RUN_DIR --prime "MACBETH:" --length 500 --temperature 0.5 --top-k 10

A temperature of 0 is greedy argmax decoding. Uses the latest checkpoint unless ``--checkpoint best``
or a step number is given. Callable from Python as :func:`lstmlab.train.sample.sample_from_run`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lstmlab.train.sample import sample_from_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lstmlab.sample", description=__doc__.split("\n")[1])
    parser.add_argument("run_dir")
    parser.add_argument("--prime", default="\n", help="text fed to the model first (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy argmax")
    parser.add_argument("--top-k", type=int, default=0, help="draw only from the k likeliest (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default="latest", help="latest, best, or a step number")
    args = parser.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on read-only managers
    try:
        text = sample_from_run(args.run_dir, args.prime, args.length, temperature=args.temperature,
                               top_k=args.top_k, seed=args.seed, checkpoint=args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        print(f"lstmlab.sample: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
