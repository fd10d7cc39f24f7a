"""lstmlab: a JAX/Flax research framework for LSTMs and their relatives.

Layers, each usable from Python without the command line: :mod:`lstmlab.cells` (pure cell math),
:mod:`lstmlab.nn` (Flax NNX modules), :mod:`lstmlab.data` (data sets -> batches),
:mod:`lstmlab.train` (steps, loop, evaluation, sampling), :mod:`lstmlab.io` (checkpoints, trackers,
plots), :mod:`lstmlab.cli` (Hydra).
"""

__version__ = "0.1.0"
