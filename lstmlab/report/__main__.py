"""``python -m lstmlab.report``: tables and figures from runs (:mod:`lstmlab.cli.report`)."""

from lstmlab.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
