"""Data sources -> batches. Never imports :mod:`lstmlab.train`. See :mod:`lstmlab.data.base`."""

from lstmlab.data.base import KINDS, Batch, Dataset, DataSpec
from lstmlab.data.registry import build, defaults, names, options, register, unregister

__all__ = ["KINDS", "Batch", "DataSpec", "Dataset", "build", "defaults", "names", "options", "register", "unregister"]
