"""Helpers shared by the data sets that are a fixed or generated set of sequences (speech features,
forecast windows, the synthetic long-time-lag tasks): seeded random streams, the order in which
training batches are drawn, padded evaluation batches, and lining model outputs up with them.

Every batch of a data set built here has the same time length (the data set's longest sequence), so
the trainer compiles one shape for training and one for evaluation.

Outputs handed to ``extra_metrics(split, outputs, batches)``: the model outputs for the batches of
``eval_batches(split)``, in that order, either as a list with one array per batch or concatenated
along axis 0 (filler rows included; they are dropped here by their ``weights`` 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache

import numpy as np

from lstmlab.data.base import Batch

# Stream tags: a random stream is default_rng([seed, tag, ...]), so no two uses share numbers.
TRAIN, VAL, TEST, ORDER, SPLIT = 0, 1, 2, 3, 4
SPLITS = ("val", "test")


def rng(*keys: int) -> np.random.Generator:
    """A NumPy generator that depends only on the integers ``keys`` (seed, stream tag, step ...)."""
    return np.random.default_rng([int(k) for k in keys])


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not an evaluation split; valid: {', '.join(SPLITS)}")


def check_positive(name: str, value: int) -> int:
    """``value`` as an int if it is >= 1, else a ValueError naming ``data.<name>``."""
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"data.{name}={value!r} must be an integer >= 1")
    return int(value)


def check_lengths(name: str, lengths, *, count: int | None = None, max_len: int | None = None) -> np.ndarray:
    """``lengths`` as an int64 array (N,) after checking it is one-dimensional, integral, each entry
    in 1..``max_len`` (or >= 1) and, if ``count`` is given, that there are ``count`` of them; else a
    one-line ValueError that starts with ``name`` (e.g. ``"data.npz: 'lengths'"``) and names the
    first offending entry and what is valid."""
    arr = np.asarray(lengths)
    upper = "" if max_len is None else f"..{max_len}"
    valid = f"valid: integers 1{upper}" if max_len is not None else "valid: integers >= 1"
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}; valid: one length per sequence, shape (N,)")
    if arr.size and not (
        np.issubdtype(arr.dtype, np.integer)
        or (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    ):
        raise ValueError(f"{name} has dtype {arr.dtype} with non-integer values; {valid}")
    if count is not None and len(arr) != count:
        raise ValueError(f"{name} has {len(arr)} entries for {count} sequences; valid: one per sequence")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 1) | (arr > (max_len if max_len is not None else np.iinfo(np.int64).max)))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] is {int(arr[i])}; {valid} (frames per sequence)")
    return arr


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return rng(seed, ORDER, epoch).permutation(n)


def epoch_indices(seed: int, step: int, batch_size: int, n: int) -> np.ndarray:
    """Indices (batch_size,) into a training set of ``n`` examples for ``step``.

    Training batches walk through seeded permutations of the set, one per epoch: example number
    ``g = step * batch_size + j`` overall is ``perm_e[g % n]`` with ``e = g // n``. A pure function of
    (seed, step), so training can resume at any step.
    """
    g = step * batch_size + np.arange(batch_size)
    epochs, pos = g // n, g % n
    return np.array([_permutation(seed, int(e), n)[p] for e, p in zip(epochs, pos)], dtype=np.int64)


def index_batches(n: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive indices over ``n`` examples in batches of ``batch_size`` with their weights.

    The last batch is filled up with copies of example 0 (valid data, so no zero-length sequence
    reaches the model) that get weight 0.
    """
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        weights = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            weights[len(idx) :] = 0.0
            idx = np.concatenate([idx, np.zeros(batch_size - len(idx), np.int64)])
        yield idx, weights


def eval_batches(n: int, batch_size: int, make: Callable[[np.ndarray], Batch]) -> Iterator[Batch]:
    """Batches ``make(idx)`` over ``n`` examples, each with ``weights`` (last batch padded, see
    :func:`index_batches`)."""
    for idx, weights in index_batches(n, batch_size):
        batch = make(idx)
        batch["weights"] = weights
        yield batch


def real_rows(outputs: np.ndarray | Sequence[np.ndarray], batches: list[Batch]) -> tuple[np.ndarray, Batch]:
    """Outputs and batch arrays of the real examples (``weights`` 1) of a whole split.

    Args:
      outputs: one array per batch, or all of them concatenated along axis 0 (filler rows included).
      batches: the batches of ``eval_batches(split)`` in order.
    Returns:
      (outputs (N, ...), batch) where every array of ``batch`` is concatenated over the batches and
      N is the number of real examples.
    """
    if not batches:
        raise ValueError("extra_metrics needs the evaluation batches; got none")
    if isinstance(outputs, (list, tuple)):
        outputs = np.concatenate([np.asarray(o) for o in outputs], axis=0)
    outputs = np.asarray(outputs)
    total = sum(len(b["weights"]) for b in batches)
    if outputs.shape[0] != total:
        raise ValueError(
            f"outputs have {outputs.shape[0]} rows but the {len(batches)} batches hold {total} "
            "(pass one output array per batch, filler rows included)"
        )
    merged = {k: np.concatenate([b[k] for b in batches], axis=0) for k in batches[0]}
    keep = merged["weights"] > 0
    return outputs[keep], {k: v[keep] for k, v in merged.items()}


def one_hot(ids: np.ndarray, size: int) -> np.ndarray:
    """Float32 one-hot features (..., size) of integer ``ids`` (...)."""
    return np.eye(size, dtype=np.float32)[ids]


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


def pad_sequences(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Right-pad sequences (T_i, D) with zeros to (N, length, D) float32; ValueError (one line) for a
    sequence that is empty, longer than ``length`` or of another D than the first."""
    if not len(seqs):
        raise ValueError("pad_sequences needs at least one sequence")
    dim = seqs[0].shape[1]
    for i, s in enumerate(seqs):
        if np.ndim(s) != 2 or s.shape[1] != dim or not 1 <= len(s) <= length:
            raise ValueError(f"sequence {i} has shape {np.shape(s)}; valid: (T, {dim}) with 1 <= T <= {length}")
    out = np.zeros((len(seqs), length, dim), np.float32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


LARGEST_VALUE = 1e150  # the largest magnitude data may have: statistics and squared errors of more overflow


def check_magnitude(what: str, values: np.ndarray) -> None:
    """One-line ValueError if ``values`` reach :data:`LARGEST_VALUE`: finite as read, such values turn
    into infinities once squared (the scaler's variance, a squared error), and the run's numbers with them."""
    largest = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if not largest < LARGEST_VALUE:
        raise ValueError(
            f"{what} reach {largest:.3g}, too large to scale and score (their squares overflow); valid: values "
            f"within {LARGEST_VALUE:.0e}, e.g. in other units"
        )
