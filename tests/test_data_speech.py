"""Speech features: Japanese Vowels from aeon's shipped files, user .ts/.npz files, splits, scaling."""

import socket

import numpy as np
import pytest

from lstmlab import data
from lstmlab.data import speech


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def vowels():
    return data.build("vowels", seed=0, batch_size=32, val_fraction=0.1)


def _real(batches, key):
    return np.concatenate([b[key][b["weights"] > 0] for b in batches])


def test_japanese_vowels_loads_offline_with_the_published_shape(no_network):
    train, test = (speech.load_sequences(p) for p in speech.japanese_vowels_paths())
    assert len(train[0]) == 270 and len(test[0]) == 370
    assert {s.shape[1] for s in train[0] + test[0]} == {12}
    lengths = [len(s) for s in train[0] + test[0]]
    assert min(lengths) == 7 and max(lengths) == 29
    assert sorted(set(train[1].tolist())) == [str(i) for i in range(1, 10)]
    assert np.all(np.unique(train[1], return_counts=True)[1] == 30)  # 30 utterances per speaker
    ds = data.build("vowels", batch_size=16)  # offline end to end
    assert ds.spec.kind == "classify" and ds.spec.output_size == 9 and ds.spec.input_size == 12


def test_vowels_validation_split_is_stratified_and_carved_from_training(vowels):
    spec = vowels.spec
    assert spec.info["train_size"] == 243 and spec.info["val_size"] == 27 and spec.info["test_size"] == 370
    val = list(vowels.eval_batches("val"))
    assert np.all(np.bincount(_real(val, "labels")) == 3)  # 3 of each speaker's 30
    assert val[0]["inputs"].shape == (32, 29, 12) and val[-1]["weights"].sum() == 27
    test = list(vowels.eval_batches("test"))
    assert _real(test, "labels").shape == (370,)
    assert test[-1]["weights"].tolist() == [1] * (370 - 11 * 32) + [0] * (12 * 32 - 370)


def test_val_fraction_zero_reports_on_the_test_set():
    ds = data.build("vowels", val_fraction=0.0, batch_size=64)
    assert ds.spec.info["val_is_test"] and ds.spec.info["train_size"] == 270
    for v, t in zip(ds.eval_batches("val"), ds.eval_batches("test")):
        assert np.array_equal(v["inputs"], t["inputs"]) and np.array_equal(v["labels"], t["labels"])


def test_padding_lengths_and_normalisation_from_training_frames_only(vowels):
    train = vowels.sets["train"]
    frames = np.concatenate([x[:n] for x, n in zip(train["inputs"], train["seq_lengths"])])
    assert np.allclose(frames.mean(0), 0, atol=1e-5) and np.allclose(frames.std(0), 1, atol=1e-4)
    test = vowels.sets["test"]
    assert not np.allclose(
        np.concatenate([x[:n] for x, n in zip(test["inputs"], test["seq_lengths"])]).mean(0), 0, atol=1e-3
    )
    for x, n in zip(test["inputs"], test["seq_lengths"]):
        assert np.all(x[n:] == 0) and np.all(np.any(x[:n] != 0, axis=-1))


def test_train_batches_are_pure_in_seed_and_step(vowels):
    again = data.build("vowels", seed=0, batch_size=32, val_fraction=0.1)
    other = data.build("vowels", seed=1, batch_size=32, val_fraction=0.1)
    assert all(np.array_equal(vowels.train_batch(5)[k], again.train_batch(5)[k]) for k in ("inputs", "labels"))
    assert not np.array_equal(vowels.train_batch(5)["labels"], vowels.train_batch(6)["labels"])
    assert not np.array_equal(vowels.train_batch(5)["labels"], other.train_batch(5)["labels"])


def test_noise_and_crop_augment_training_batches_only_and_stay_pure(vowels):
    aug = data.build("vowels", seed=0, batch_size=32, val_fraction=0.1, noise_std=0.5, crop=0.5)
    plain, noisy, again = vowels.train_batch(3), aug.train_batch(3), aug.train_batch(3)
    assert np.array_equal(noisy["labels"], plain["labels"])
    assert all(np.array_equal(noisy[k], again[k]) for k in noisy)  # a function of (seed, step)
    assert not np.array_equal(noisy["inputs"], plain["inputs"])
    lengths, full = noisy["seq_lengths"], plain["seq_lengths"]
    assert np.all(lengths <= full) and np.all(lengths >= np.ceil(0.5 * full)) and np.any(lengths < full)
    for x, n in zip(noisy["inputs"], lengths):
        assert np.all(x[n:] == 0) and np.all(np.any(x[:n] != 0, axis=-1))  # noise only on valid frames
    for split in ("val", "test"):
        pairs = zip(aug.eval_batches(split), vowels.eval_batches(split))
        assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in pairs)


def test_crop_keeps_a_contiguous_window_and_noise_has_its_standard_deviation():
    rng = np.random.default_rng(0)
    inputs = np.zeros((4, 10, 1), np.float32)
    inputs[:, :, 0] = np.arange(1, 11)
    inputs[3, 6:] = 0
    out, lengths = speech.crop_windows(inputs, np.array([10, 10, 10, 6]), 0.6, rng)
    assert np.all(lengths >= [6, 6, 6, 4]) and lengths.dtype == np.int64
    for x, n in zip(out[:, :, 0], lengths):
        assert np.all(np.diff(x[:n]) == 1) and np.all(x[n:] == 0)  # consecutive frames, then padding
    ds = data.build("vowels", seed=0, batch_size=256, val_fraction=0.1, noise_std=0.3)
    clean = data.build("vowels", seed=0, batch_size=256, val_fraction=0.1).train_batch(0)
    batch = ds.train_batch(0)
    valid = np.arange(29)[None, :] < batch["seq_lengths"][:, None]
    assert np.std((batch["inputs"] - clean["inputs"])[valid]) == pytest.approx(0.3, rel=0.05)


@pytest.mark.parametrize(
    "key, value",
    [("noise_std", -0.1), ("noise_std", float("nan")), ("noise_std", "x"), ("crop", 0), ("crop", 1.5), ("crop", True)],
)
def test_bad_augmentation_options_are_refused_in_one_line(key, value):
    with pytest.raises(ValueError, match=rf"^data\.{key}=.* must be") as err:
        data.build("vowels", **{key: value})
    assert "\n" not in str(err.value)


def test_accuracy_counts_only_real_rows(vowels):
    batches = list(vowels.eval_batches("val"))
    logits = [np.eye(9)[b["labels"]] for b in batches]
    logits[0][:2] = np.roll(logits[0][:2], 1, axis=-1)  # two wrong
    m = vowels.extra_metrics("val", logits, batches)
    assert m["errors"] == 2 and m["accuracy"] == pytest.approx(25 / 27)


# -- user files -----------------------------------------------------------------------------------


def _sequences(rng, n, dim=3, classes=("a", "b")):
    seqs = [rng.normal(size=(rng.integers(2, 6), dim)) + 5.0 for _ in range(n)]
    return seqs, np.array([classes[i % len(classes)] for i in range(n)])


def _write_ts(path, seqs, labels, header_dims=None):
    dims = header_dims or seqs[0].shape[1]
    lines = [
        "@problemName T",
        "@timeStamps false",
        "@missing true",
        "@univariate false",
        f"@dimensions {dims}",
        "@equalLength false",
        f"@classLabel true {' '.join(sorted(set(labels)))}",
        "@data",
    ]
    for s, y in zip(seqs, labels):
        lines.append(":".join(",".join("?" if np.isnan(v) else repr(float(v)) for v in col) for col in s.T) + f":{y}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_ts_file_pair_and_npz_layouts_load_the_same_sequences(tmp_path):
    rng = np.random.default_rng(0)
    train, test = _sequences(rng, 12), _sequences(rng, 6)
    ts = _write_ts(tmp_path / "My_TRAIN.ts", *train)
    _write_ts(tmp_path / "My_TEST.ts", *test)
    a = data.build("vowels", path=ts, val_fraction=0.0, batch_size=4)
    assert a.spec.info["test_source"].endswith("My_TEST.ts") and a.spec.info["test_size"] == 6
    speech.save_npz(str(tmp_path / "my_train.npz"), *train)  # concatenated + lengths
    dense = np.zeros((6, 5, 3))
    for i, s in enumerate(test[0]):
        dense[i, : len(s)] = s
    np.savez(tmp_path / "my_test.npz", features=dense, lengths=[len(s) for s in test[0]], labels=test[1])
    b = data.build("vowels", path=str(tmp_path / "my_train.npz"), val_fraction=0.0, batch_size=4)
    assert b.spec.info["test_source"].endswith("my_test.npz")
    for split in ("train", "test"):
        assert np.array_equal(a.sets[split]["seq_lengths"], b.sets[split]["seq_lengths"])
        assert np.allclose(a.sets[split]["inputs"], b.sets[split]["inputs"], atol=1e-5)
        assert np.array_equal(a.sets[split]["labels"], b.sets[split]["labels"])


def test_changing_the_test_file_does_not_change_the_scaler(tmp_path):
    rng = np.random.default_rng(1)
    train, test = _sequences(rng, 10), _sequences(rng, 4)
    speech.save_npz(str(tmp_path / "x_train.npz"), *train)
    speech.save_npz(str(tmp_path / "x_test.npz"), *test)
    speech.save_npz(str(tmp_path / "other.npz"), [s * 10 - 3 for s in test[0]], test[1])
    a = data.build("vowels", path=str(tmp_path / "x_train.npz"), batch_size=4)
    b = data.build("vowels", path=str(tmp_path / "x_train.npz"), test_path=str(tmp_path / "other.npz"), batch_size=4)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)
    assert np.array_equal(a.train_batch(0)["inputs"], b.train_batch(0)["inputs"])
    assert not np.allclose(a.sets["test"]["inputs"], b.sets["test"]["inputs"])


def test_single_file_gets_a_fixed_stratified_test_part(tmp_path):
    rng = np.random.default_rng(2)
    path = str(tmp_path / "all.npz")
    speech.save_npz(path, *_sequences(rng, 20))
    a = data.build("vowels", path=path, seed=0, test_fraction=0.2, val_fraction=0.2, batch_size=4)
    b = data.build("vowels", path=path, seed=5, test_fraction=0.2, val_fraction=0.2, batch_size=4)
    assert np.bincount(a.sets["test"]["labels"]).tolist() == [2, 2]

    def raw(ds):  # the test frames in file units (the scaler differs: each seed holds out other val data)
        t = ds.sets["test"]
        return np.concatenate([x[:n] * ds.std + ds.mean for x, n in zip(t["inputs"], t["seq_lengths"])])

    assert not np.array_equal(a.mean, b.mean)
    assert np.allclose(raw(a), raw(b), atol=1e-5)  # same for every seed
    assert a.spec.info["train_size"] == 12 and a.spec.info["val_size"] == 4


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    rng = np.random.default_rng(3)
    seqs, labels = _sequences(rng, 4)
    nan_seqs = [s.copy() for s in seqs]
    nan_seqs[2][1, 0] = np.nan
    ragged = seqs[:2] + [rng.normal(size=(3, 2))] + seqs[3:]
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        str(tmp_path / "missing.ts"): "missing.ts.*no such file; valid: a UEA/UCR .ts",
        _write_ts(tmp_path / "nan.ts", nan_seqs, labels): "nan.ts: sequence 2 has NaN",
        _write_ts(tmp_path / "ragged.ts", ragged, labels): "ragged.ts: not a readable .ts file .*dimensions",
        str(tmp_path / "notes.txt"): "notes.txt.*extension '.txt'; valid",
    }
    np.savez(tmp_path / "nan.npz", features=np.concatenate(nan_seqs), lengths=[len(s) for s in seqs], labels=labels)
    cases[str(tmp_path / "nan.npz")] = "nan.npz: sequence 2 has NaN"
    np.savez(tmp_path / "nolen.npz", features=np.concatenate(seqs), labels=labels)
    cases[str(tmp_path / "nolen.npz")] = "nolen.npz: 2-D 'features' .* needs 'lengths'"
    np.savez(tmp_path / "short.npz", features=np.concatenate(seqs), lengths=[1, 2], labels=labels)
    cases[str(tmp_path / "short.npz")] = "short.npz: 'lengths' sum to 3"
    np.savez(tmp_path / "nolabels.npz", features=np.concatenate(seqs), lengths=[len(s) for s in seqs])
    cases[str(tmp_path / "nolabels.npz")] = "nolabels.npz has no 'labels'"
    np.savez(tmp_path / "objects.npz", features=np.array(seqs, dtype=object), labels=labels)
    cases[str(tmp_path / "objects.npz")] = "objects.npz: not a readable .npz without pickled objects"
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            data.build("vowels", path=path, batch_size=2)
        assert "\n" not in str(err.value)
    speech.save_npz(str(tmp_path / "d2_train.npz"), seqs, labels)
    speech.save_npz(str(tmp_path / "d2_test.npz"), [s[:, :2] for s in seqs], labels)
    with pytest.raises(ValueError, match="test sequences have 2 features but training sequences 3"):
        data.build("vowels", path=str(tmp_path / "d2_train.npz"))
