"""Speech features: classify variable-length sequences of feature frames (data set ``vowels``).

Default data: Japanese Vowels (Kudo, Toyama & Shimbo 1999). Nine male speakers said /ae/; each
utterance is 7-29 frames of 12 LPC cepstrum coefficients; the task is the speaker (9 classes).
270 training utterances (30 per speaker), 370 test. Read from the files shipped inside aeon
(``aeon/datasets/data/JapaneseVowels``), never downloaded.

Your own data (``path=``), read the same way:

* a UEA/UCR ``.ts`` file with class labels (read by aeon's ``load_from_ts_file``). If its name
  contains ``_TRAIN`` and the matching ``_TEST`` file exists beside it, that is the test set.
* a ``.npz`` file (``numpy.savez``, no pickled objects) with

  - ``features``: float (total_frames, D), all sequences concatenated in order, plus ``lengths``
    (N,) int frames per sequence (each >= 1) summing to total_frames; or float (N, T, D) with
    optional ``lengths`` (N,) (each in 1..T; default: all T). aeon's (N, channels, T) layout is
    refused with a hint to transpose: lengths that exceed axis 1 but fit axis 2, or, without
    lengths, an axis 1 shorter than axis 2. A file whose sequences really have fewer frames than
    features adds ``layout="NTD"``.
  - ``labels``: (N,) int or str class labels.

  :func:`save_npz` writes this layout. A file named ``*_train.npz`` / ``*_TRAIN.npz`` finds its
  ``_test`` / ``_TEST`` partner the same way.

Otherwise ``test_path=`` names the test file, or (neither) ``test_fraction`` of the file becomes the
test set: stratified by class, drawn with a fixed seed so it is the same for every training seed.

Validation: ``val_fraction`` of the training data (stratified, seeded by ``seed``) is held out as the
``val`` split. ``val_fraction=0`` trains on all training data and makes ``val`` the test set (then
``val`` is the report split; do not select models or stop early on it).

Features are standardised per feature with the mean and standard deviation of the training frames
(after the validation split is taken out). Training batches can be augmented, freshly for every
step (a pure function of ``seed`` and step; validation and test batches never are):

* ``noise_std``: Gaussian noise of this standard deviation added to every valid frame of the
  standardised features (padding stays zero); 0 = off.
* ``crop``: each sequence is cut to a random contiguous window of between ``ceil(crop * length)``
  frames and its whole length (uniform length, then uniform start), moved to the front with its
  ``seq_lengths`` shortened to match; 1 = off.

Batches: inputs (B, T, D) float32 zero-padded to the
longest sequence of all splits, seq_lengths (B,) int32, labels (B,) int32; kind ``classify``.
Class ids follow the sorted labels (numerically when all labels are numbers), listed in
``spec.info["classes"]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

import numpy as np

from lstmlab.data import padded
from lstmlab.data.base import Batch, DataSpec
from lstmlab.data.registry import register

VALID_FILES = "a UEA/UCR .ts file with class labels, or a .npz with features, lengths, labels"


def japanese_vowels_paths() -> tuple[str, str]:
    """Paths of aeon's shipped JapaneseVowels_TRAIN.ts and _TEST.ts (no network)."""
    import aeon.datasets

    root = os.path.join(os.path.dirname(aeon.datasets.__file__), "data", "JapaneseVowels")
    return (os.path.join(root, "JapaneseVowels_TRAIN.ts"), os.path.join(root, "JapaneseVowels_TEST.ts"))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _load_ts(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    from aeon.datasets import load_from_ts_file

    try:
        X, y, meta = load_from_ts_file(path, return_meta_data=True)
    except Exception as e:  # aeon raises OSError/ValueError/IndexError with multi-line messages
        raise ValueError(f"{path}: not a readable .ts file ({_one_line(e)}); valid: {VALID_FILES}") from None
    declared = [str(c) for c in (meta or {}).get("class_values") or []]
    for i, label in enumerate(np.asarray(y).tolist()):
        if declared and str(label) not in declared:
            raise ValueError(
                f"{path}: case {i} has class {label!r}, which its @classLabel line does not declare; "
                f"valid: {', '.join(declared)}"
            )
    seqs = [np.asarray(x, np.float64).T for x in X]  # aeon gives (D, T_i) per case
    return seqs, np.asarray(y)


AEON_HINT = "looks like aeon's (N, channels, T); transpose to (N, T, channels) (numpy: features.transpose(0, 2, 1))"
LAYOUT_KEY = "layout"
NTD = "NTD"


def _check_layout(path: str, feats: np.ndarray, data: dict[str, np.ndarray]) -> None:
    """Refuse 3-D ``features`` that look like aeon's (N, channels, T) layout rather than (N, T, D):

    * with ``lengths``: some length exceeds axis 1 but fits axis 2 (the lengths count axis 2);
    * without: axis 1 (the time axis of (N, T, D)) is shorter than axis 2, i.e. fewer frames than
      features per frame, which sequence data rarely has and a transposed array always shows when
      sequences are longer than the number of channels.

    A file that really holds fewer frames than features per frame says so with a ``layout`` key
    holding ``"NTD"``; then only the lengths are checked."""
    if LAYOUT_KEY in data:
        declared = str(np.asarray(data[LAYOUT_KEY]).reshape(-1)[0]) if np.asarray(data[LAYOUT_KEY]).size else ""
        if declared != NTD:
            raise ValueError(f"{path}: 'layout' is {declared!r}; valid: {NTD!r} (features (N, T, D))")
        return
    _, steps, dims = feats.shape
    if "lengths" in data:
        lengths = np.asarray(data["lengths"])
        if lengths.ndim == 1 and lengths.size and np.issubdtype(lengths.dtype, np.integer):
            longest = int(lengths.max())
            if steps < longest <= dims:
                raise ValueError(
                    f"{path}: 'features' {feats.shape} {AEON_HINT}: 'lengths' reach {longest}, "
                    f"beyond axis 1 ({steps}) but within axis 2 ({dims})"
                )
        return
    if steps < dims:
        raise ValueError(
            f"{path}: 'features' {feats.shape} {AEON_HINT}: axis 1 ({steps}) is shorter than "
            f"axis 2 ({dims}); if axis 1 really is time, add layout='{NTD}' to the file"
        )


def _load_npz(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as e:
        raise ValueError(
            f"{path}: not a readable .npz without pickled objects ({_one_line(e)}); valid: {VALID_FILES}"
        ) from None
    missing = [k for k in ("features", "labels") if k not in data]
    if missing:
        raise ValueError(
            f"{path} has no {missing[0]!r} array (has: {', '.join(data) or 'none'}); valid: features, lengths, labels"
        )
    feats, labels = data["features"], data["labels"]
    if not np.issubdtype(feats.dtype, np.number) or np.iscomplexobj(feats):
        raise ValueError(f"{path}: 'features' has dtype {feats.dtype}; valid: a real (float or integer) array")
    if feats.ndim == 3:
        _check_layout(path, feats, data)
        lengths = padded.check_lengths(
            f"{path}: 'lengths'",
            data.get("lengths", np.full(len(feats), feats.shape[1])),
            count=len(feats),
            max_len=feats.shape[1],
        )
        seqs = [feats[i, : int(n)] for i, n in enumerate(lengths)]
    elif feats.ndim == 2:
        if "lengths" not in data:
            raise ValueError(f"{path}: 2-D 'features' {feats.shape} needs 'lengths' (frames per sequence)")
        lengths = padded.check_lengths(f"{path}: 'lengths'", data["lengths"])
        if lengths.sum() != len(feats):
            if lengths.sum() == feats.shape[1] and feats.shape[0] < feats.shape[1]:
                raise ValueError(
                    f"{path}: 'features' {feats.shape} looks like (D, frames): 'lengths' sum to "
                    f"{int(lengths.sum())}, its axis 1; transpose to (frames, D)"
                )
            raise ValueError(
                f"{path}: 'lengths' sum to {int(lengths.sum())} but 'features' has {len(feats)} "
                "frames; valid: positive lengths summing to the number of frames"
            )
        seqs = np.split(feats, np.cumsum(lengths)[:-1])
    else:
        raise ValueError(f"{path}: 'features' has shape {feats.shape}; valid: (frames, D) with 'lengths', or (N, T, D)")
    return [np.asarray(s, np.float64) for s in seqs], labels


def load_sequences(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Sequences [(T_i, D) float64] and labels (N,) from a .ts or .npz file, validated: the file
    exists, every sequence has >= 1 frame, the same D and finite values, one label per sequence.
    Raises a one-line ValueError naming the file and what is valid."""
    path = str(path)
    if not os.path.isfile(path):
        raise ValueError(f"data.path={path!r}: no such file; valid: {VALID_FILES}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".ts":
        seqs, labels = _load_ts(path)
    elif ext == ".npz":
        seqs, labels = _load_npz(path)
    else:
        raise ValueError(f"data.path={path!r} has extension {ext!r}; valid: {VALID_FILES}")
    if len(seqs) == 0:
        raise ValueError(f"{path} holds no sequences; valid: {VALID_FILES}")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(seqs):
        raise ValueError(
            f"{path} has {len(seqs)} sequences but {len(labels)} class labels; valid: one label per sequence"
        )
    _check_labels(path, labels)
    dim = seqs[0].shape[1] if seqs[0].ndim == 2 else None
    for i, s in enumerate(seqs):
        if s.ndim != 2 or s.shape[1] != dim:
            raise ValueError(
                f"{path}: sequence {i} has shape {s.shape} but sequence 0 has {seqs[0].shape[1:]} "
                "features per frame; valid: the same feature dimension in every sequence"
            )
        if len(s) == 0:
            raise ValueError(f"{path}: sequence {i} has no frames; valid: at least 1 frame per sequence")
        if not np.all(np.isfinite(s)):
            raise ValueError(
                f"{path}: sequence {i} has NaN or infinite values; valid: finite features (fill or drop missing frames)"
            )
    return seqs, labels


def _check_labels(path: str, labels: np.ndarray) -> None:
    """One-line ValueError for a class label that is not a whole number or a string (NaN, 1.5,
    complex, a boolean), naming the first bad sequence."""
    kind = labels.dtype.kind
    if kind in "iuUS":
        return
    if kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
    else:  # complex, boolean, objects
        bad = np.arange(len(labels))
    if len(bad):
        raise ValueError(
            f"{path}: sequence {bad[0]} has class label {labels[bad[0]].item()!r}; valid: whole numbers or strings "
            "as class labels"
        )


def save_npz(path: str, sequences: Sequence[np.ndarray], labels: Sequence) -> None:
    """Write sequences [(T_i, D)] and labels (N,) in the .npz layout :func:`load_sequences` reads."""
    np.savez(
        path,
        features=np.concatenate([np.asarray(s, np.float32) for s in sequences]),
        lengths=np.array([len(s) for s in sequences], np.int64),
        labels=np.asarray(labels),
    )


def partner_path(path: str) -> str | None:
    """The test file matching a training file name (``X_TRAIN.ts`` -> ``X_TEST.ts``,
    ``x_train.npz`` -> ``x_test.npz``) if it exists."""
    head, name = os.path.split(path)
    matches = list(re.finditer(r"_(TRAIN|train|Train)(?=[._])", name))
    if not matches:
        return None
    m = matches[-1]
    test = {"TRAIN": "TEST", "train": "test", "Train": "Test"}[m.group(1)]
    other = os.path.join(head, name[: m.start(1)] + test + name[m.end(1) :])
    return other if os.path.isfile(other) else None


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) sorted index arrays; ``round(fraction * count)`` of each class held out."""
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        held.extend(rng.permutation(idx)[: int(round(fraction * len(idx)))])
    held = np.sort(np.array(held, np.int64))
    return np.setdiff1d(np.arange(len(labels)), held), held


def check_augmentation(noise_std: float, crop: float) -> tuple[float, float]:
    """``(noise_std, crop)`` as floats, or a one-line ValueError naming the bad ``data.*`` key."""
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not 0.0 <= noise_std < np.inf:
        raise ValueError(f"data.noise_std={noise_std!r} must be a number >= 0 (0: no noise)")
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0.0 < crop <= 1.0:
        raise ValueError(f"data.crop={crop!r} must be in (0, 1] (1: no cropping)")
    return float(noise_std), float(crop)


def crop_windows(
    inputs: np.ndarray, lengths: np.ndarray, crop: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``inputs`` (B, T, D) cut to one random contiguous window per row of between
    ``ceil(crop * length)`` and ``length`` frames, moved to the front and zero-padded, with the new
    lengths."""
    lengths = np.asarray(lengths)
    shortest = np.maximum(np.ceil(crop * lengths - 1e-9).astype(np.int64), 1)
    new_lengths = rng.integers(shortest, lengths + 1)
    starts = rng.integers(0, lengths - new_lengths + 1)
    out = np.zeros_like(inputs)
    for row, (start, n) in enumerate(zip(starts, new_lengths)):
        out[row, :n] = inputs[row, start : start + n]
    return out, new_lengths.astype(lengths.dtype)


def _class_order(labels: np.ndarray) -> list:
    classes = np.unique(labels).tolist()
    try:
        return sorted(classes, key=float)
    except (TypeError, ValueError):
        return sorted(classes, key=str)


class SequenceClassification:
    """Variable-length feature sequences with one class each; see the module docstring."""

    def __init__(
        self,
        train: tuple[list[np.ndarray], np.ndarray],
        test: tuple[list[np.ndarray], np.ndarray],
        *,
        name: str,
        seed: int = 0,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        normalize: bool = True,
        noise_std: float = 0.0,
        crop: float = 1.0,
        info: dict | None = None,
    ):
        self.seed = int(seed)
        self.batch_size = padded.check_positive("batch_size", batch_size)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={val_fraction!r} must be in [0, 1) (0: val is the test set)")
        self.noise_std, self.crop = check_augmentation(noise_std, crop)
        (train_seqs, train_labels), (test_seqs, test_labels) = train, test
        if test_seqs[0].shape[1] != train_seqs[0].shape[1]:
            raise ValueError(
                f"{name}: test sequences have {test_seqs[0].shape[1]} features but training "
                f"sequences {train_seqs[0].shape[1]}; valid: the same feature dimension"
            )
        self.classes = _class_order(train_labels)
        if len(self.classes) < 2:
            raise ValueError(
                f"{name}: every training sequence has class {self.classes[0]!r}; valid: at least two classes "
                "(a classifier of one class is always right)"
            )
        unknown = sorted(set(np.unique(test_labels).tolist()) - set(self.classes), key=str)
        if unknown:
            raise ValueError(
                f"{name}: test label {unknown[0]!r} does not occur in training; "
                f"valid: {', '.join(map(str, self.classes))}"
            )
        class_id = {c: i for i, c in enumerate(self.classes)}
        y_train = np.array([class_id[c] for c in train_labels.tolist()], np.int32)
        y_test = np.array([class_id[c] for c in test_labels.tolist()], np.int32)

        kept, held = stratified_split(y_train, val_fraction, padded.rng(self.seed, padded.SPLIT))
        parts = {"train": ([train_seqs[i] for i in kept], y_train[kept]), "test": (list(test_seqs), y_test)}
        parts["val"] = ([train_seqs[i] for i in held], y_train[held]) if len(held) else parts["test"]

        frames = np.concatenate(parts["train"][0])  # training frames only
        padded.check_magnitude(f"{name}: the training features", frames)
        self.mean = frames.mean(axis=0) if normalize else np.zeros(frames.shape[1])
        std = frames.std(axis=0) if normalize else np.ones(frames.shape[1])
        self.std = np.where(std > 0, std, 1.0)
        self.max_len = max(len(s) for seqs, _ in parts.values() for s in seqs)
        self.sets = {
            split: {
                "inputs": padded.pad_sequences([(s - self.mean) / self.std for s in seqs], self.max_len),
                "seq_lengths": np.array([len(s) for s in seqs], np.int32),
                "labels": y,
            }
            for split, (seqs, y) in parts.items()
        }
        lengths = np.concatenate([v["seq_lengths"] for v in self.sets.values()])
        self.spec = DataSpec(
            kind="classify",
            output_size=len(self.classes),
            input_size=frames.shape[1],
            info={
                "data": name,
                "classes": [str(c) for c in self.classes],
                "max_len": self.max_len,
                "min_len": int(lengths.min()),
                "val_is_test": len(held) == 0,
                "normalized": bool(normalize),
                **{f"{s}_size": len(v["labels"]) for s, v in self.sets.items()},
                **(info or {}),
            },
        )

    def train_batch(self, step: int) -> Batch:
        """Training sequences in a seeded order per epoch, augmented if asked (``crop``, then
        ``noise_std``); depends only on (seed, step)."""
        data = self.sets["train"]
        idx = padded.epoch_indices(self.seed, step, self.batch_size, len(data["labels"]))
        batch = {k: v[idx] for k, v in data.items()}
        if self.crop < 1.0 or self.noise_std > 0.0:
            rng = padded.rng(self.seed, padded.TRAIN, step)
            if self.crop < 1.0:
                batch["inputs"], batch["seq_lengths"] = crop_windows(
                    batch["inputs"], batch["seq_lengths"], self.crop, rng
                )
            if self.noise_std > 0.0:
                valid = np.arange(batch["inputs"].shape[1])[None, :] < batch["seq_lengths"][:, None]
                noise = rng.normal(0.0, self.noise_std, batch["inputs"].shape) * valid[:, :, None]
                batch["inputs"] = (batch["inputs"] + noise).astype(np.float32)
        return batch

    def eval_batches(self, split: str) -> Iterator[Batch]:
        padded.check_split(split)
        data = self.sets[split]
        return padded.eval_batches(
            len(data["labels"]), self.batch_size, lambda idx: {k: v[idx] for k, v in data.items()}
        )

    def extra_metrics(self, split: str, outputs, batches: list[Batch]) -> dict[str, float]:
        """From class logits (B, K) per batch: ``accuracy`` and ``errors`` (misclassified count)."""
        logits, batch = padded.real_rows(outputs, batches)
        right = logits.argmax(-1) == batch["labels"]
        return {"accuracy": float(right.mean()), "errors": float((~right).sum())}


@register("vowels")
def vowels(
    seed: int = 0,
    batch_size: int = 32,
    path: str | None = None,
    test_path: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    normalize: bool = True,
    noise_std: float = 0.0,
    crop: float = 1.0,
    seq_len: int | None = None,
) -> SequenceClassification:
    """Japanese Vowels speaker classification, or your own .ts/.npz file with ``path``.

    ``seq_len`` must stay None: the data set the sequence lengths (batches are padded to the longest
    sequence and carry ``seq_lengths``); the key exists so that every data set answers to it."""
    if seq_len is not None:
        raise ValueError(
            f"data.seq_len={seq_len!r} cannot be set for vowels: the data set the sequence "
            "lengths (padded to the longest, with seq_lengths); valid: null"
        )
    if path is None:
        train_path, test_path = japanese_vowels_paths()
        name = "JapaneseVowels"
    else:
        train_path, name = str(path), os.path.basename(str(path))
        test_path = test_path if test_path is not None else partner_path(train_path)
    train = load_sequences(train_path)
    if test_path is not None:
        test, source = load_sequences(str(test_path)), str(test_path)
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"data.test_fraction={test_fraction!r} must be between 0 and 1")
        seqs, labels = train
        kept, held = stratified_split(labels, test_fraction, padded.rng(0, padded.SPLIT, 1))
        if len(held) == 0:
            raise ValueError(f"{train_path}: data.test_fraction={test_fraction} leaves no test sequences")
        train = ([seqs[i] for i in kept], labels[kept])
        test, source = ([seqs[i] for i in held], labels[held]), f"{test_fraction:g} of {train_path}"
    return SequenceClassification(
        train,
        test,
        name=name,
        seed=seed,
        batch_size=batch_size,
        val_fraction=val_fraction,
        normalize=normalize,
        noise_std=noise_std,
        crop=crop,
        info={"train_path": train_path, "test_source": source},
    )
