"""What every data set gives the trainer: a :class:`DataSpec` and batches that are pure functions of
the step, so training can start (and resume exactly) from any step.

Batches are dicts of NumPy arrays, batch-major (the model turns them time-major for the cells):

==============  ==================  ============================================================
key             shape, dtype        meaning
==============  ==================  ============================================================
inputs          (B, T) int32        token ids, when ``spec.vocab_size`` is set
                (B, T, D) float32   features otherwise (D = ``spec.input_size``)
seq_lengths     (B,) int32          valid steps of each right-padded sequence (absent: all T)
targets         (B, T) int32        kind ``lm``: the next token at every step
                (B, T, K) float32   kind ``multilabel``: multi-hot set of right answers per step
                (B, K) float32      kind ``regress``: one target vector per sequence
labels          (B,) int32          kind ``classify``: one class per sequence
mask            (B, T) float32      kinds ``lm``/``multilabel``: 1 where a step counts in the loss
weights         (B,) float32        evaluation only: 1 for real examples, 0 for batch filler
reset           (B,) bool           stateful data only: zero this stream's carry before the window
==============  ==================  ============================================================

Kinds: ``lm`` (softmax over ``output_size`` characters at every step), ``symbols`` (the same over
symbols that are not text: copy task),
``multilabel`` (sigmoid per class at every step: embedded Reber), ``classify`` (softmax per sequence:
vowels, temporal order), ``regress`` (``output_size`` values per sequence: adding, forecasting).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Batch = dict[str, np.ndarray]
KINDS = ("lm", "symbols", "multilabel", "classify", "regress")


@dataclass(frozen=True)
class DataSpec:
    """Shapes the model is built from.

    kind: one of :data:`KINDS`. vocab_size: number of input tokens (embedding input) or None for float
    features of size input_size. output_size: classes (lm/multilabel/classify) or target dimension
    (regress). stateful: consecutive training windows continue the same streams (truncated BPTT), so
    the trainer carries the recurrent state across steps and resets it where ``reset`` is set.
    """

    kind: str
    output_size: int
    vocab_size: int | None = None
    input_size: int | None = None
    stateful: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # sizes and facts for logs and the README


class Dataset(Protocol):
    """A data source for the trainer. ``train_batch(step)`` must depend only on the construction
    arguments (seed included) and ``step``; ``eval_batches(split)`` yields the same batches every time.
    """

    spec: DataSpec

    def train_batch(self, step: int) -> Batch: ...

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """``split`` is ``"val"`` or ``"test"``. The last batch is padded with ``weights`` 0."""
        ...

    def extra_metrics(self, split: str, outputs: np.ndarray, batches: list[Batch]) -> dict[str, float]:
        """Task-specific metrics from the model outputs of a whole split (e.g. the adding task's share
        of sequences with absolute error below 0.04, forecast RMSE in original units). May return {}."""
        ...
