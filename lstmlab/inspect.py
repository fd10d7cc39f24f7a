"""``python -m lstmlab.inspect``: gates and cells inside a character model (:mod:`lstmlab.cli.inspect`)."""

from lstmlab.cli.inspect import main

if __name__ == "__main__":
    raise SystemExit(main())
