"""lstmlab: a JAX/Flax research framework for LSTMs and their relatives.

Layers, each usable from Python without the command line and each importing only those below it
(contracts in pyproject.toml, checked by ``lint-imports``):

* :mod:`lstmlab.cli`: every entry point, one thin module each (training and Hydra, sweep jobs, search,
  report, sample, inspect; the only package that knows Hydra, prints errors and sets exit statuses).
  ``lstmlab.search``, ``lstmlab.sample`` and ``lstmlab.inspect`` are the two-line modules that
  ``python -m`` runs.
* :mod:`lstmlab.report` (tables, tests, fANOVA, figures from run directories), :mod:`lstmlab.runner`
  (which program a config runs, for every entry point)
* :mod:`lstmlab.study` (the gradient-norm study runner)
* :mod:`lstmlab.train` (setup, steps, loop, hooks, evaluation, sampling)
* :mod:`lstmlab.tasks` (what each data kind means: loss, head, metrics, plots, sampling)
* :mod:`lstmlab.nn` (Flax NNX modules), :mod:`lstmlab.data` (data sets -> batches),
  :mod:`lstmlab.io` (run directory, checkpoints, trackers, plots), :mod:`lstmlab.diagnostics`
* :mod:`lstmlab.config` (the config schema, its defaults and checks)
* :mod:`lstmlab.cells` (pure cell math)

Importing the package changes no process-wide state.
"""

__version__ = "0.1.0"
