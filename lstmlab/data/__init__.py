"""Data sources -> batches. Never imports :mod:`lstmlab.train`. See :mod:`lstmlab.data.base`."""

from lstmlab.data.base import KINDS, Batch, DataSpec, Dataset

__all__ = ["KINDS", "Batch", "DataSpec", "Dataset"]
