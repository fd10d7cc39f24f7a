"""Long-time-lag tasks, generated from a seed: ``adding``, ``temporal_order``, ``copy``, ``reber``.

Definitions follow the papers (positions below are 0-based array indices unless marked "paper"):

* ``adding`` -- Hochreiter & Schmidhuber (1997), Experiment 4. Each step is a pair (value, marker),
  value uniform in [-1, 1]. The length L is a uniform integer in [T, T + T//10] (T = ``seq_len``).
  Exactly two pairs are marked with 1.0: X1 is one of the first ten pairs, X2 one of the first
  T//2 - 1 pairs still unmarked. The first and last pair have marker -1 unless marked, all others 0.
  A marked first pair gets value 0 ("X1 is set to zero"; we apply the same rule if X2 lands there).
  Target 0.5 + (X1 + X2) / 4, output at the sequence end. A sequence is right if |error| < 0.04
  (the paper: 1 wrong of 2560 test sequences at T = 100).
* ``temporal_order`` -- Experiment 6a (``num_relevant=2``: 4 classes) and 6b (``num_relevant=3``:
  8 classes). The sequence starts with E, ends with the trigger B, and is otherwise distractors
  (a, b, c, d) except X or Y at paper positions t1 in [10, 20], t2 in [50, 60] (6a) or t1 in
  [10, 20], t2 in [33, 43], t3 in [66, 76] (6b); length uniform in [100, 110]. For another
  ``seq_len`` the ranges scale by seq_len / 100. Class = the X/Y pattern read as a binary number
  (X = 0, Y = 1, first symbol most significant): XX -> 0 (paper Q), XY -> 1 (R), YX -> 2 (S),
  YY -> 3 (U). The paper calls a sequence right if every output is within 0.3 of its target.
* ``copy`` -- Arjovsky, Shah & Bengio (2016). Categories 0 (blank), 1-8 (data), 9 (delimiter).
  Input: 10 data symbols, T - 1 blanks, the delimiter, 10 blanks (T + 20 steps, T = ``seq_len``).
  Target: T + 10 blanks, then the 10 data symbols. The loss is averaged over all T + 20 steps
  (mask all ones), so the memoryless baseline is 10 ln 8 / (T + 20) nats per step.
* ``reber`` -- embedded Reber grammar, Experiment 1: B, T|P, a Reber string (B ... E), the same
  T|P, E. At every step the targets are the set of legal next symbols (multi-hot). As in the paper,
  no validation or test string occurs in the (fixed, default 256 strings) training set, so those
  sets also depend on ``seed``. Batches are ``seq_len`` steps long (the model's input length);
  strings longer than ``seq_len`` + 1 symbols are redrawn (about 5 in a million at the default 50).

``seq_len`` is each task's one length parameter: the paper's T for adding and temporal order (the
shortest sequence; lengths are uniform in [T, T + T//10]) and for copy (the delay; T + 20 steps), and
the padded input length for Reber, whose string lengths the grammar sets.

Symbol inputs are one-hot float features (``spec.input_size`` = number of symbols, ``vocab_size``
None), exactly the papers' local representation; the symbol order is in ``spec.info["symbols"]``.

Training data: with ``train_size=None`` (the papers' on-line setting for adding, temporal order and
copy) every step draws a fresh batch from ``rng(seed, step)``; with an integer ``train_size`` a fixed
training set is drawn once from ``seed`` and batches walk through it in seeded per-epoch orders.
Validation and test sets are fixed: drawn from ``eval_seed`` (default 0), the same for every
training ``seed``, so runs with different seeds are scored on the same sequences.

``extra_metrics(split, outputs, batches)`` takes per-batch model outputs (see
:mod:`lstmlab.data.padded`): regression predictions (B, 1) for adding, class logits (B, K) for
temporal order, per-step logits (B, T, K) for copy (softmax) and reber (sigmoid).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from lstmlab.data import padded
from lstmlab.data.base import Batch, DataSpec
from lstmlab.data.registry import register


class GeneratedTask:
    """A data set of generated sequences stored compactly (``_generate``) and expanded to batches
    (``_to_batch``). Subclasses set ``spec`` and define those two methods and ``extra_metrics``."""

    spec: DataSpec

    def __init__(
        self, seed: int, batch_size: int, train_size: int | None, val_size: int, test_size: int, eval_seed: int
    ):
        self.seed = int(seed)
        self.batch_size = padded.check_positive("batch_size", batch_size)
        self.train_size = None if train_size is None else padded.check_positive("train_size", train_size)
        self.sizes = {
            "val": padded.check_positive("val_size", val_size),
            "test": padded.check_positive("test_size", test_size),
        }
        self.eval_seed = int(eval_seed)
        self.size_info = {
            "train_size": self.train_size,
            "val_size": self.sizes["val"],
            "test_size": self.sizes["test"],
            "eval_seed": self.eval_seed,
        }
        self._sets: dict[str, dict[str, np.ndarray]] = {}

    # -- subclasses ------------------------------------------------------------------------------
    def _generate(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _to_batch(self, arrays: dict[str, np.ndarray]) -> Batch:
        raise NotImplementedError

    # -- the Dataset protocol --------------------------------------------------------------------
    def _set(self, split: str) -> dict[str, np.ndarray]:
        if split not in self._sets:
            if split == "train":
                self._sets[split] = self._generate(padded.rng(self.seed, padded.TRAIN), self.train_size)
            else:
                tag = padded.VAL if split == "val" else padded.TEST
                self._sets[split] = self._generate(padded.rng(self.eval_seed, tag), self.sizes[split])
        return self._sets[split]

    def train_batch(self, step: int) -> Batch:
        """A training batch that depends only on (seed, step)."""
        if self.train_size is None:
            arrays = self._generate(padded.rng(self.seed, padded.TRAIN, step), self.batch_size)
        else:
            idx = padded.epoch_indices(self.seed, step, self.batch_size, self.train_size)
            arrays = {k: v[idx] for k, v in self._set("train").items()}
        return self._to_batch(arrays)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """The fixed ``split`` set in order; the last batch is padded with ``weights`` 0."""
        padded.check_split(split)
        arrays = self._set(split)
        return padded.eval_batches(
            self.sizes[split], self.batch_size, lambda idx: self._to_batch({k: v[idx] for k, v in arrays.items()})
        )


# -- adding ---------------------------------------------------------------------------------------


def adding_arrays(rng: np.random.Generator, n: int, seq_len: int) -> dict[str, np.ndarray]:
    """``n`` adding-problem sequences of minimal length T = ``seq_len`` (module docstring rules).

    Returns inputs (n, T + T//10, 2) float32 [value, marker] zero-padded, seq_lengths (n,) int32,
    targets (n, 1) float32.
    """
    T = seq_len
    max_len = T + T // 10
    rows = np.arange(n)
    lengths = rng.integers(T, max_len + 1, size=n)
    values = rng.uniform(-1.0, 1.0, size=(n, max_len))
    p1 = rng.integers(0, 10, size=n)  # X1: one of the first ten pairs
    r = rng.integers(0, T // 2 - 1, size=n)  # X2: r-th of the first T//2 - 1 unmarked pairs
    p2 = r + (r >= p1)  # skip over X1's position
    markers = np.zeros((n, max_len))
    markers[:, 0] = -1.0
    markers[rows, lengths - 1] = -1.0
    markers[rows, p1] = 1.0
    markers[rows, p2] = 1.0
    values[markers[:, 0] == 1.0, 0] = 0.0  # a marked first pair has value 0
    valid = np.arange(max_len)[None, :] < lengths[:, None]
    values, markers = values * valid, markers * valid
    targets = 0.5 + (values[rows, p1] + values[rows, p2]) / 4.0
    return {
        "inputs": np.stack([values, markers], axis=-1).astype(np.float32),
        "seq_lengths": lengths.astype(np.int32),
        "targets": targets[:, None].astype(np.float32),
    }


class Adding(GeneratedTask):
    """Adding problem (Exp. 4); ``seq_len`` is the paper's T, the shortest sequence. A sequence is
    right if its prediction is within ``tolerance`` of the target."""

    def __init__(
        self,
        seed: int = 0,
        batch_size: int = 32,
        seq_len: int = 100,
        train_size: int | None = None,
        val_size: int = 512,
        test_size: int = 2560,
        eval_seed: int = 0,
        tolerance: float = 0.04,
    ):
        super().__init__(seed, batch_size, train_size, val_size, test_size, eval_seed)
        if int(seq_len) != seq_len or seq_len < 10:
            raise ValueError(f"data.seq_len={seq_len!r} must be an integer >= 10 (X1 is one of the first ten pairs)")
        self.seq_len = int(seq_len)
        self.tolerance = float(tolerance)
        self.spec = DataSpec(
            kind="regress",
            output_size=1,
            input_size=2,
            info={
                "task": "adding (Hochreiter & Schmidhuber 1997, Exp. 4)",
                "seq_len": self.seq_len,
                "max_len": self.seq_len + self.seq_len // 10,
                "tolerance": self.tolerance,
                **self.size_info,
            },
        )

    def _generate(self, rng, n):
        return adding_arrays(rng, n, self.seq_len)

    def _to_batch(self, arrays):
        return dict(arrays)

    def extra_metrics(self, split: str, outputs, batches: list[Batch]) -> dict[str, float]:
        """From predictions (B, 1) per batch: ``mse``, ``fraction_correct`` (|error| < tolerance) and
        ``errors`` (number of sequences not correct)."""
        pred, batch = padded.real_rows(outputs, batches)
        err = np.abs(pred.reshape(len(pred), -1)[:, 0] - batch["targets"][:, 0])
        correct = err < self.tolerance
        return {
            "mse": float(np.mean(err**2)),
            "fraction_correct": float(correct.mean()),
            "errors": float((~correct).sum()),
        }


register("adding")(Adding)  # the registry reads the options from Adding.__init__


# -- temporal order -------------------------------------------------------------------------------

# Paper positions (1-based, for sequences of 100-110 steps) of the relevant X/Y symbols.
TEMPORAL_ORDER_RANGES = {2: ((10, 20), (50, 60)), 3: ((10, 20), (33, 43), (66, 76))}


def temporal_order_arrays(
    rng: np.random.Generator, n: int, seq_len: int, num_relevant: int, num_distractors: int
) -> dict[str, np.ndarray]:
    """``n`` temporal-order sequences. Symbol ids: E=0, B=1, X=2, Y=3, distractors 4, 5, ...

    Returns ids (n, seq_len + seq_len//10) int8 (-1 after the end), seq_lengths (n,) int32,
    labels (n,) int32.
    """
    max_len = seq_len + seq_len // 10
    rows = np.arange(n)
    lengths = rng.integers(seq_len, max_len + 1, size=n)
    ids = rng.integers(4, 4 + num_distractors, size=(n, max_len))
    ids[:, 0] = 0  # E starts every sequence
    ids[rows, lengths - 1] = 1  # the trigger B ends it
    xy = rng.integers(0, 2, size=(n, num_relevant))  # 0 = X, 1 = Y
    for k, (lo, hi) in enumerate(TEMPORAL_ORDER_RANGES[num_relevant]):
        lo, hi = lo * seq_len // 100, hi * seq_len // 100
        t = rng.integers(lo, hi + 1, size=n)  # paper position (1-based)
        ids[rows, t - 1] = 2 + xy[:, k]
    ids[np.arange(max_len)[None, :] >= lengths[:, None]] = -1
    labels = (xy * (2 ** np.arange(num_relevant - 1, -1, -1))).sum(axis=1)
    return {"ids": ids.astype(np.int8), "seq_lengths": lengths.astype(np.int32), "labels": labels.astype(np.int32)}


class TemporalOrder(GeneratedTask):
    """Temporal order, Exp. 6a (``num_relevant=2``) or 6b (``num_relevant=3``); ``seq_len`` is the
    shortest sequence (the paper's 100)."""

    def __init__(
        self,
        seed: int = 0,
        batch_size: int = 32,
        seq_len: int = 100,
        num_relevant: int = 2,
        num_distractors: int = 4,
        train_size: int | None = None,
        val_size: int = 512,
        test_size: int = 2560,
        eval_seed: int = 0,
        tolerance: float = 0.3,
    ):
        super().__init__(seed, batch_size, train_size, val_size, test_size, eval_seed)
        if num_relevant not in TEMPORAL_ORDER_RANGES:
            raise ValueError(f"data.num_relevant={num_relevant!r} is not valid; valid: 2 (Exp. 6a), 3 (Exp. 6b)")
        if int(seq_len) != seq_len or seq_len < 20:
            raise ValueError(f"data.seq_len={seq_len!r} must be an integer >= 20")
        self.seq_len, self.num_relevant = int(seq_len), int(num_relevant)
        self.num_distractors = padded.check_positive("num_distractors", num_distractors)
        self.tolerance = float(tolerance)
        symbols = ["E", "B", "X", "Y"] + [f"d{i}" for i in range(self.num_distractors)]
        self.spec = DataSpec(
            kind="classify",
            output_size=2**self.num_relevant,
            input_size=len(symbols),
            info={
                "task": f"temporal order (Hochreiter & Schmidhuber 1997, Exp. 6{'a' if num_relevant == 2 else 'b'})",
                "seq_len": self.seq_len,
                "max_len": self.seq_len + self.seq_len // 10,
                "symbols": symbols,
                **self.size_info,
            },
        )

    def _generate(self, rng, n):
        return temporal_order_arrays(rng, n, self.seq_len, self.num_relevant, self.num_distractors)

    def _to_batch(self, arrays):
        ids = arrays["ids"].astype(np.int64)
        inputs = padded.one_hot(np.maximum(ids, 0), self.spec.input_size) * (ids >= 0)[..., None]
        return {"inputs": inputs, "seq_lengths": arrays["seq_lengths"], "labels": arrays["labels"]}

    def extra_metrics(self, split: str, outputs, batches: list[Batch]) -> dict[str, float]:
        """From class logits (B, K) per batch: ``accuracy`` (argmax), ``fraction_correct`` (the
        paper's rule on softmax probabilities: every |p_k - target_k| < tolerance) and ``errors``
        (sequences failing that rule)."""
        logits, batch = padded.real_rows(outputs, batches)
        probs = np.exp(padded.log_softmax(logits))
        target = np.eye(logits.shape[-1])[batch["labels"]]
        correct = np.all(np.abs(probs - target) < self.tolerance, axis=-1)
        return {
            "accuracy": float(np.mean(logits.argmax(-1) == batch["labels"])),
            "fraction_correct": float(correct.mean()),
            "errors": float((~correct).sum()),
        }


register("temporal_order")(TemporalOrder)  # the registry reads the options from TemporalOrder.__init__


# -- copy -----------------------------------------------------------------------------------------

COPY_LENGTH, COPY_CATEGORIES, BLANK, DELIMITER = 10, 8, 0, 9


def copy_arrays(rng: np.random.Generator, n: int, seq_len: int) -> dict[str, np.ndarray]:
    """``n`` copy-memory sequences of T + 20 steps (T = ``seq_len``, the paper's delay).

    Returns inputs (n, T + 20) int8 and targets (n, T + 20) int8 category ids (0 blank, 1-8 data,
    9 delimiter).
    """
    data = rng.integers(1, COPY_CATEGORIES + 1, size=(n, COPY_LENGTH))
    steps = seq_len + 2 * COPY_LENGTH
    inputs = np.full((n, steps), BLANK, np.int8)
    inputs[:, :COPY_LENGTH] = data
    inputs[:, COPY_LENGTH + seq_len - 1] = DELIMITER
    targets = np.full((n, steps), BLANK, np.int8)
    targets[:, -COPY_LENGTH:] = data
    return {"inputs": inputs, "targets": targets}


class Copy(GeneratedTask):
    """Copy-memory task; ``seq_len`` is the paper's T (the delay between the data and its recall), so
    every sequence has T + 20 steps."""

    def __init__(
        self,
        seed: int = 0,
        batch_size: int = 32,
        seq_len: int = 100,
        train_size: int | None = None,
        val_size: int = 512,
        test_size: int = 2560,
        eval_seed: int = 0,
    ):
        super().__init__(seed, batch_size, train_size, val_size, test_size, eval_seed)
        self.seq_len = padded.check_positive("seq_len", seq_len)
        self.baseline = COPY_LENGTH * math.log(COPY_CATEGORIES) / (self.seq_len + 2 * COPY_LENGTH)
        self.spec = DataSpec(
            kind="symbols",
            output_size=10,
            input_size=10,
            info={
                "task": "copy memory (Arjovsky, Shah & Bengio 2016)",
                "seq_len": self.seq_len,
                "steps": self.seq_len + 2 * COPY_LENGTH,
                "baseline_cross_entropy": self.baseline,
                "symbols": ["blank"] + [f"c{i}" for i in range(1, 9)] + ["delimiter"],
                **self.size_info,
            },
        )

    def _generate(self, rng, n):
        return copy_arrays(rng, n, self.seq_len)

    def _to_batch(self, arrays):
        targets = arrays["targets"].astype(np.int32)
        return {
            "inputs": padded.one_hot(arrays["inputs"].astype(np.int64), 10),
            "targets": targets,
            "mask": np.ones(targets.shape, np.float32),
        }

    def extra_metrics(self, split: str, outputs, batches: list[Batch]) -> dict[str, float]:
        """From per-step logits (B, T + 20, 10): ``cross_entropy`` (nats per step over all steps),
        ``baseline_cross_entropy`` (memoryless: 10 ln 8 / (T + 20)), ``copy_accuracy`` (share of the
        10 copied symbols predicted right by argmax) and ``fraction_correct`` (sequences with all
        10 right)."""
        logits, batch = padded.real_rows(outputs, batches)
        targets = batch["targets"].astype(np.int64)
        logp = np.take_along_axis(padded.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
        right = logits[:, -COPY_LENGTH:].argmax(-1) == targets[:, -COPY_LENGTH:]
        return {
            "cross_entropy": float(-logp.mean()),
            "baseline_cross_entropy": self.baseline,
            "copy_accuracy": float(right.mean()),
            "fraction_correct": float(right.all(axis=1).mean()),
        }


register("copy")(Copy)  # the registry reads the options from Copy.__init__


# -- embedded Reber grammar -----------------------------------------------------------------------

REBER_SYMBOLS = ("B", "T", "P", "S", "X", "V", "E")
# Reber grammar: node -> two (symbol, next node) arcs, each taken with probability 1/2; node 5 ends.
REBER_ARCS = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
}


def embedded_reber(rng: np.random.Generator) -> tuple[str, list[set[str]]]:
    """One embedded Reber string and, for each symbol but the last, the set of legal next symbols."""
    outer = "TP"[rng.integers(2)]
    symbols, legal = ["B", outer, "B"], [{"T", "P"}, {"B"}]
    node = 0
    while node != 5:
        legal.append({s for s, _ in REBER_ARCS[node]})
        symbol, node = REBER_ARCS[node][rng.integers(2)]
        symbols.append(symbol)
    legal.append({"E"})  # after the inner string's last symbol
    symbols += ["E", outer, "E"]
    legal += [{outer}, {"E"}]  # the long-lag prediction, then the end
    return "".join(symbols), legal


class Reber(GeneratedTask):
    """Embedded Reber grammar (Exp. 1), next-symbol sets as multi-hot targets; ``seq_len`` is the
    padded input length."""

    def __init__(
        self,
        seed: int = 0,
        batch_size: int = 32,
        train_size: int | None = 256,
        val_size: int = 256,
        test_size: int = 256,
        eval_seed: int = 0,
        seq_len: int = 50,
    ):
        super().__init__(seed, batch_size, train_size, val_size, test_size, eval_seed)
        self.seq_len = padded.check_positive("seq_len", seq_len)
        if self.seq_len < 8:
            raise ValueError(
                f"data.seq_len={seq_len!r} must be >= 8 (the shortest embedded Reber string has 9 symbols)"
            )
        self.spec = DataSpec(
            kind="multilabel",
            output_size=7,
            input_size=7,
            info={
                "task": "embedded Reber grammar (Hochreiter & Schmidhuber 1997, Exp. 1)",
                "symbols": list(REBER_SYMBOLS),
                "seq_len": self.seq_len,
                **self.size_info,
            },
        )

    def _set(self, split):
        # The paper tests on strings not used for training: val/test strings avoid the training set.
        if split != "train" and split not in self._sets and self.train_size is not None:
            tag = padded.VAL if split == "val" else padded.TEST
            avoid = set(self._set("train")["strings"])
            self._sets[split] = self._generate(padded.rng(self.eval_seed, tag), self.sizes[split], avoid)
        return super()._set(split)

    def _generate(self, rng, n, avoid: set[str] = frozenset()):
        strings, legal = [], []
        while len(strings) < n:
            s, lg = embedded_reber(rng)
            if len(s) - 1 <= self.seq_len and s not in avoid:  # inputs are all symbols but the last
                strings.append(s)
                legal.append(lg)
        index = {c: i for i, c in enumerate(REBER_SYMBOLS)}
        ids = np.full((n, self.seq_len), -1, np.int8)
        targets = np.zeros((n, self.seq_len, 7), np.float32)
        for i, (s, lg) in enumerate(zip(strings, legal)):
            ids[i, : len(s) - 1] = [index[c] for c in s[:-1]]
            for t, successors in enumerate(lg):
                targets[i, t, [index[c] for c in successors]] = 1.0
        return {"ids": ids, "targets": targets, "strings": np.array(strings)}

    def _to_batch(self, arrays):
        ids = arrays["ids"].astype(np.int64)
        valid = ids >= 0
        return {
            "inputs": padded.one_hot(np.maximum(ids, 0), 7) * valid[..., None],
            "seq_lengths": valid.sum(axis=1).astype(np.int32),
            "targets": arrays["targets"],
            "mask": valid.astype(np.float32),
        }

    def extra_metrics(self, split: str, outputs, batches: list[Batch]) -> dict[str, float]:
        """From per-step logits (B, T, 7): ``fraction_correct`` (strings where at every step the
        units with sigmoid > 0.5 are exactly the legal next symbols), ``errors`` (strings failing
        that) and ``fraction_correct_top`` (the paper's rule: at every step the legal next symbols
        are the most active units)."""
        logits, batch = padded.real_rows(outputs, batches)
        legal, valid = batch["targets"] > 0.5, batch["mask"] > 0
        step_ok = np.all((padded.sigmoid(logits) > 0.5) == legal, axis=-1)
        top_ok = np.where(legal, logits, np.inf).min(-1) > np.where(legal, -np.inf, logits).max(-1)
        correct = np.all(step_ok | ~valid, axis=1)
        return {
            "fraction_correct": float(correct.mean()),
            "errors": float((~correct).sum()),
            "fraction_correct_top": float(np.all(top_ok | ~valid, axis=1).mean()),
        }


register("reber")(Reber)  # the registry reads the options from Reber.__init__
