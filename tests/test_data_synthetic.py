"""The long-time-lag tasks against their paper definitions, recomputed here from the batches."""

import math
import re

import numpy as np
import pytest

from lstmlab import data
from lstmlab.data import padded


def _all_eval(ds, split):
    return list(ds.eval_batches(split))


# -- shared machinery -----------------------------------------------------------------------------


def test_epoch_indices_visit_every_example_once_per_epoch():
    n, b = 10, 4
    seen = np.concatenate([padded.epoch_indices(7, s, b, n) for s in range(5)])  # 20 = two epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:])  # a fresh order each epoch
    assert np.array_equal(padded.epoch_indices(7, 3, b, n), seen[12:16])  # pure in the step


def test_eval_batches_pad_last_batch_with_zero_weights():
    ds = data.build("adding", seq_len=20, batch_size=8, val_size=5, test_size=19)
    batches = _all_eval(ds, "test")
    assert [len(b["weights"]) for b in batches] == [8, 8, 8]
    assert batches[-1]["weights"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert sum(b["weights"].sum() for b in batches) == 19
    assert all(b["seq_lengths"].min() >= 20 for b in batches)  # filler rows are real sequences
    with pytest.raises(ValueError, match="valid: val, test"):
        ds.eval_batches("train")


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("adding", dict(seq_len=20)),
        ("temporal_order", dict(seq_len=20)),
        ("copy", dict(seq_len=5)),
        ("reber", dict(train_size=16)),
        ("adding", dict(seq_len=20, train_size=12)),
    ],
)
def test_train_batches_are_pure_in_seed_and_step(name, kwargs):
    a = data.build(name, seed=3, batch_size=4, val_size=8, test_size=8, **kwargs)
    b = data.build(name, seed=3, batch_size=4, val_size=8, test_size=8, **kwargs)
    other = data.build(name, seed=4, batch_size=4, val_size=8, test_size=8, **kwargs)
    for step in (0, 5):
        x, y = a.train_batch(step), b.train_batch(step)
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
    assert not np.array_equal(a.train_batch(0)["inputs"], a.train_batch(1)["inputs"])
    assert not np.array_equal(a.train_batch(0)["inputs"], other.train_batch(0)["inputs"])
    e1, e2 = _all_eval(a, "test"), _all_eval(a, "test")
    assert all(np.array_equal(p["inputs"], q["inputs"]) for p, q in zip(e1, e2))


def test_eval_sets_do_not_depend_on_the_training_seed():
    a = data.build("adding", seed=1, seq_len=20, batch_size=8, val_size=8, test_size=8)
    b = data.build("adding", seed=2, seq_len=20, batch_size=8, val_size=8, test_size=8)
    assert np.array_equal(next(a.eval_batches("test"))["inputs"], next(b.eval_batches("test"))["inputs"])
    assert not np.array_equal(next(a.eval_batches("val"))["inputs"], next(a.eval_batches("test"))["inputs"])


# -- adding ---------------------------------------------------------------------------------------


def test_adding_follows_hochreiter_schmidhuber_experiment_4():
    T = 40
    ds = data.build("adding", seed=0, seq_len=T, batch_size=500, val_size=8, test_size=8)
    batch = ds.train_batch(0)
    assert ds.spec.kind == "regress" and ds.spec.output_size == 1 and ds.spec.input_size == 2
    assert batch["inputs"].shape == (500, T + T // 10, 2)
    first, last = [], []
    for x, length, target in zip(batch["inputs"], batch["seq_lengths"], batch["targets"]):
        assert T <= length <= T + T // 10
        values, markers = x[:length, 0], x[:length, 1]
        assert np.all(x[length:] == 0)  # padding
        assert np.all(np.abs(values) <= 1)
        marked = np.flatnonzero(markers == 1.0)
        assert len(marked) == 2
        # X1 is one of the first ten pairs; X2 one of the first T/2 - 1 pairs left unmarked after it
        valid = [
            (a, b)
            for a, b in (marked, marked[::-1])
            if a < 10 and b in [i for i in range(length) if i != a][: T // 2 - 1]
        ]
        assert valid, marked
        for i in (0, length - 1):
            if i not in marked:
                assert markers[i] == -1.0
        others = np.setdiff1d(np.arange(1, length - 1), marked)
        assert np.all(markers[others] == 0.0)
        if 0 in marked:
            assert values[0] == 0.0  # "X1 is set to zero"
        assert target[0] == pytest.approx(0.5 + values[marked].sum() / 4.0, abs=1e-6)
        if marked[1] >= 10:
            first.append(marked[0])  # unambiguous X1
        last.append(marked[1])
    assert set(first) == set(range(10))  # every one of the first ten pairs
    assert max(last) == T // 2 - 1  # X2's whole range, no further
    assert 0 in first  # the first-pair rule was exercised


def test_adding_metrics_count_sequences_off_by_more_than_0_04():
    ds = data.build("adding", seq_len=20, batch_size=8, val_size=5, test_size=10)
    batches = _all_eval(ds, "test")
    targets = np.concatenate([b["targets"] for b in batches])
    errors = np.zeros_like(targets)
    errors[[1, 4, 7], 0] = [0.05, -0.039, -0.2]  # rows 1 and 7 are wrong
    errors[12:] = 9.0  # filler rows must not count
    outputs = [(targets + errors)[i * 8 : (i + 1) * 8] for i in range(len(batches))]
    m = ds.extra_metrics("test", outputs, batches)
    assert m["errors"] == 2 and m["fraction_correct"] == pytest.approx(0.8)
    assert m["mse"] == pytest.approx((0.05**2 + 0.039**2 + 0.2**2) / 10, rel=1e-4)
    assert ds.extra_metrics("test", targets + errors, batches) == m  # concatenated outputs too


def test_adding_rejects_too_short_sequences():
    with pytest.raises(ValueError, match="data.seq_len"):
        data.build("adding", seq_len=5)


# -- temporal order -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_relevant, ranges",
    [
        (2, [(10, 20), (50, 60)]),
        (3, [(10, 20), (33, 43), (66, 76)]),
    ],
)
def test_temporal_order_follows_experiment_6(num_relevant, ranges):
    ds = data.build("temporal_order", seq_len=100, num_relevant=num_relevant, batch_size=200, val_size=8, test_size=8)
    assert ds.spec.kind == "classify" and ds.spec.output_size == 2**num_relevant
    symbols = ds.spec.info["symbols"]
    batch = ds.train_batch(0)
    assert batch["inputs"].shape == (200, 110, 8)
    labels_seen, positions = set(), []
    for x, length, label in zip(batch["inputs"], batch["seq_lengths"], batch["labels"]):
        assert 100 <= length <= 110
        assert np.all(x[length:] == 0) and np.all(x[:length].sum(-1) == 1)  # one-hot, padded
        seq = [symbols[i] for i in x[:length].argmax(-1)]
        assert seq[0] == "E" and seq[-1] == "B"
        relevant = [t + 1 for t, s in enumerate(seq) if s in "XY"]  # paper positions, 1-based
        assert len(relevant) == num_relevant
        assert all(lo <= t <= hi for t, (lo, hi) in zip(relevant, ranges))
        assert all(s.startswith("d") for s in seq[1:-1] if s not in "XY")
        order = "".join(seq[t - 1] for t in relevant)
        assert label == int(order.replace("X", "0").replace("Y", "1"), 2)  # XX->Q=0 ... YY->U=3
        labels_seen.add(int(label))
        positions.append(relevant)
    assert labels_seen == set(range(2**num_relevant))
    positions = np.array(positions)
    assert [(lo, hi) for lo, hi in zip(positions.min(0), positions.max(0))] == ranges  # whole ranges


def test_temporal_order_metrics_use_the_paper_0_3_rule():
    ds = data.build("temporal_order", seq_len=20, batch_size=4, val_size=4, test_size=4)
    batches = _all_eval(ds, "test")
    labels = batches[0]["labels"]
    probs = np.full((4, 4), 0.05)
    probs[np.arange(4), labels] = 0.85  # right: every error < 0.3
    probs[1] = 0.25  # argmax ties at 0: maybe right, not by the rule
    probs[2] = 0.1
    probs[2, labels[2]] = 0.6  # argmax right, but |0.6 - 1| > 0.3
    m = ds.extra_metrics("test", np.log(probs), batches)
    assert m["fraction_correct"] == 0.5 and m["errors"] == 2
    assert m["accuracy"] == pytest.approx(np.mean(np.log(probs).argmax(-1) == labels))


# -- copy -----------------------------------------------------------------------------------------


def test_copy_follows_arjovsky_shah_bengio():
    T = 7
    ds = data.build("copy", seq_len=T, batch_size=16, val_size=4, test_size=4)
    batch = ds.train_batch(0)
    assert ds.spec.kind == "symbols" and ds.spec.output_size == 10 and ds.spec.input_size == 10
    ids = batch["inputs"].argmax(-1)
    assert batch["inputs"].shape == (16, T + 20, 10) and np.all(batch["inputs"].sum(-1) == 1)
    data_part = ids[:, :10]
    assert data_part.min() >= 1 and data_part.max() <= 8
    assert np.all(ids[:, 10 : 10 + T - 1] == 0)  # T - 1 blanks
    assert np.all(ids[:, 10 + T - 1] == 9)  # the delimiter
    assert np.all(ids[:, -10:] == 0)
    assert np.all(batch["targets"][:, : T + 10] == 0)
    assert np.array_equal(batch["targets"][:, -10:], data_part)
    assert np.all(batch["mask"] == 1)  # loss over all T + 20 steps


def test_copy_memoryless_strategy_scores_the_baseline():
    T = 30
    ds = data.build("copy", seq_len=T, batch_size=4, val_size=6, test_size=6)
    batches = _all_eval(ds, "test")
    probs = np.zeros((8, T + 20, 10))
    probs[:, : T + 10, 0] = 1.0  # blank until the copy ...
    probs[:, T + 10 :, 1:9] = 1 / 8  # ... then a uniform guess among the 8 data symbols
    with np.errstate(divide="ignore"):
        m = ds.extra_metrics("test", np.maximum(np.log(probs), -1e9), batches)
    assert m["baseline_cross_entropy"] == pytest.approx(10 * math.log(8) / (T + 20))
    assert m["cross_entropy"] == pytest.approx(m["baseline_cross_entropy"], rel=1e-9)
    perfect = np.concatenate([np.eye(10)[b["targets"]] * 50.0 for b in batches])
    p = ds.extra_metrics("test", perfect, batches)
    assert p["copy_accuracy"] == 1.0 and p["fraction_correct"] == 1.0 and p["cross_entropy"] < 1e-6


# -- embedded Reber -------------------------------------------------------------------------------

_INNER = r"B((TS*X|PT*VP)(XT*VP)*(S|XT*VV)|PT*VV)E"  # the Reber graph as a regular expression
EMBEDDED = re.compile(rf"B(T{_INNER}T|P{_INNER}P)E")
# Reber graph written as (node, symbol) -> node, for the legal next symbols.
_ARCS = {
    (0, "T"): 1,
    (0, "P"): 2,
    (1, "S"): 1,
    (1, "X"): 3,
    (2, "T"): 2,
    (2, "V"): 4,
    (3, "X"): 2,
    (3, "S"): 5,
    (4, "P"): 3,
    (4, "V"): 5,
}


def _legal_next(string):
    """Legal successors after each prefix of an embedded Reber string, from the arc table."""
    outer, inner = string[1], string[2:-2]
    out = [{"T", "P"}, {"B"}]
    node = 0
    for symbol in inner[1:-1]:
        out.append({s for (n, s) in _ARCS if n == node})
        node = _ARCS[(node, symbol)]
    assert node == 5
    return out + [{"E"}, {outer}, {"E"}]


def test_reber_strings_and_targets_follow_the_grammar():
    ds = data.build("reber", batch_size=64, train_size=64, val_size=8, test_size=8)
    symbols = ds.spec.info["symbols"]
    assert ds.spec.kind == "multilabel" and ds.spec.output_size == 7 and ds.spec.input_size == 7
    batch = ds.train_batch(0)
    for x, length, targets, mask in zip(batch["inputs"], batch["seq_lengths"], batch["targets"], batch["mask"]):
        inputs = "".join(symbols[i] for i in x[:length].argmax(-1))
        string = inputs + "E"
        assert EMBEDDED.fullmatch(string), string
        assert np.all(mask[:length] == 1) and np.all(mask[length:] == 0) and np.all(x[length:] == 0)
        got = [{symbols[k] for k in np.flatnonzero(t)} for t in targets[:length]]
        assert got == _legal_next(string)
        assert got[-2] == {string[1]}  # the long-lag prediction


def test_reber_test_strings_are_not_training_strings():
    ds = data.build("reber", batch_size=16, train_size=32, val_size=32, test_size=32)
    symbols = ds.spec.info["symbols"]

    def strings(batches):
        return {
            "".join(symbols[i] for i in x[:n].argmax(-1))
            for b in batches
            for x, n in zip(b["inputs"], b["seq_lengths"])
        }

    train = strings(ds.train_batch(s) for s in range(2))  # one epoch = all 32
    assert train.isdisjoint(strings(ds.eval_batches("test")))
    assert train.isdisjoint(strings(ds.eval_batches("val")))


def test_reber_metrics_threshold_and_top_rules():
    ds = data.build("reber", batch_size=4, train_size=8, val_size=4, test_size=4)
    batches = _all_eval(ds, "test")
    legal = batches[0]["targets"]
    logits = np.where(legal > 0, 3.0, -3.0)
    logits[0, 0, :] += 4.0  # every unit > 0.5: threshold rule fails, ranking still right
    logits[1, 2, :] *= -1.0  # ranking inverted at one step: both rules fail
    assert batches[0]["mask"][2, -1] == 0
    logits[2, -1, :] = 5.0  # padding steps do not count
    m = ds.extra_metrics("test", logits, batches)
    assert m["fraction_correct"] == 0.5 and m["errors"] == 2
    assert m["fraction_correct_top"] == 0.75
