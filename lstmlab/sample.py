"""``python -m lstmlab.sample``: text from a trained character model; the command is :mod:`lstmlab.cli.sample`."""

from lstmlab.cli.sample import main

if __name__ == "__main__":
    raise SystemExit(main())
