"""``python tests/programs/search_killed.py TRIAL:STEP ARGS...``: ``python -m lstmlab.search ARGS`` whose
worker kills itself (SIGKILL) right after trial TRIAL reports its value at step STEP, as a worker that
dies mid-trial would: the study holds the trial as running and its run directory is half written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lstmlab.runner
from lstmlab.cli import search


def main() -> None:
    trial, step = (int(part) for part in sys.argv[1].split(":"))
    run = lstmlab.runner.run

    def run_and_die(config, run_dir, *, on_evaluate=None, notify=None):
        def evaluate(at: int, metrics: dict[str, float]) -> None:
            on_evaluate(at, metrics)
            if Path(run_dir).name == f"trial_{trial:04d}" and at == step:
                os.kill(os.getpid(), 9)

        return run(config, run_dir, on_evaluate=evaluate, notify=notify)

    lstmlab.runner.run = run_and_die  # the search looks it up when each trial starts
    raise SystemExit(search.main(sys.argv[2:]))


if __name__ == "__main__":
    main()
