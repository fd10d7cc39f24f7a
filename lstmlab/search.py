"""``python -m lstmlab.search``: an Optuna search over a config space; the command is :mod:`lstmlab.cli.search`."""

from lstmlab.cli.search import main

if __name__ == "__main__":
    raise SystemExit(main())
