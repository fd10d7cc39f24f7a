"""Speech .npz files that would silently give wrong data are refused in one line naming the file and
the key: bad ``lengths``, and arrays in aeon's (N, channels, T) layout instead of (N, T, channels)."""

from __future__ import annotations

import numpy as np
import pytest

from lstmlab.data import padded, speech


def _dense(n: int = 4, steps: int = 5, dims: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, steps, dims))


LABELS = np.array(["a", "b", "a", "b"])


@pytest.mark.parametrize(
    "lengths, message",
    [
        ([5, -2, 3, 4], r"'lengths'\[1\] is -2; valid: integers 1\.\.5"),
        ([5, 0, 3, 4], r"'lengths'\[1\] is 0; valid: integers 1\.\.5"),
        ([5, 2, 3, 6], r"'lengths'\[3\] is 6; valid: integers 1\.\.5"),
        ([5, 2, 3], r"'lengths' has 3 entries for 4 sequences"),
        ([5.0, 2.5, 3.0, 4.0], r"'lengths' has dtype float64 with non-integer values"),
        ([[5, 2, 3, 4]], r"'lengths' has shape \(1, 4\)"),
    ],
)
def test_bad_lengths_of_dense_features_are_refused_naming_file_and_key(tmp_path, lengths, message):
    path = tmp_path / "dense.npz"
    np.savez(path, features=_dense(), lengths=np.array(lengths), labels=LABELS)
    with pytest.raises(ValueError, match=f"dense.npz: {message}") as err:
        speech.load_sequences(str(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "lengths, message",
    [
        ([6, -1, 2, 3], r"'lengths'\[1\] is -1; valid: integers >= 1"),  # sums to the 10 frames
        ([5, 0, 2, 3], r"'lengths'\[1\] is 0; valid: integers >= 1"),
    ],
)
def test_bad_lengths_of_concatenated_features_are_refused(tmp_path, lengths, message):
    path = tmp_path / "flat.npz"
    np.savez(path, features=np.ones((10, 3)), lengths=np.array(lengths), labels=LABELS)
    with pytest.raises(ValueError, match=f"flat.npz: {message}"):
        speech.load_sequences(str(path))


def test_whole_integral_float_lengths_are_accepted(tmp_path):
    path = tmp_path / "dense.npz"
    np.savez(path, features=_dense(), lengths=np.array([5.0, 2.0, 3.0, 4.0]), labels=LABELS)
    seqs, _ = speech.load_sequences(str(path))
    assert [len(s) for s in seqs] == [5, 2, 3, 4]


def test_aeon_layout_with_lengths_is_refused_with_the_transpose_hint(tmp_path):
    features = _dense(steps=7, dims=3).transpose(0, 2, 1)  # (N, channels=3, T=7)
    path = tmp_path / "aeon.npz"
    np.savez(path, features=features, lengths=np.array([7, 6, 5, 4]), labels=LABELS)
    with pytest.raises(
        ValueError,
        match=r"aeon.npz: 'features' \(4, 3, 7\) looks like aeon's \(N, channels, T\); "
        r"transpose to \(N, T, channels\)",
    ) as err:
        speech.load_sequences(str(path))
    assert "\n" not in str(err.value)


def test_aeon_layout_without_lengths_is_refused_and_layout_key_lets_short_sequences_through(tmp_path):
    features = _dense(steps=7, dims=3).transpose(0, 2, 1)
    path = tmp_path / "aeon.npz"
    np.savez(path, features=features, labels=LABELS)
    with pytest.raises(ValueError, match=r"transpose to \(N, T, channels\).*axis 1 \(3\) is shorter than axis 2 \(7\)"):
        speech.load_sequences(str(path))
    np.savez(path, features=features, labels=LABELS, layout="NTD")  # 3 frames of 7 features, on purpose
    seqs, _ = speech.load_sequences(str(path))
    assert [s.shape for s in seqs] == [(3, 7)] * 4
    np.savez(path, features=features, labels=LABELS, layout="NCT")
    with pytest.raises(ValueError, match=r"aeon.npz: 'layout' is 'NCT'; valid: 'NTD'"):
        speech.load_sequences(str(path))


def test_transposed_concatenated_features_are_refused_with_a_hint(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, features=np.ones((3, 20)), lengths=np.array([5, 5, 5, 5]), labels=LABELS)
    with pytest.raises(ValueError, match=r"flat.npz: 'features' \(3, 20\) looks like \(D, frames\).*transpose"):
        speech.load_sequences(str(path))


def test_japanese_vowels_padded_loads_in_its_layout_and_is_refused_transposed(tmp_path):
    seqs, labels = speech.load_sequences(speech.japanese_vowels_paths()[0])
    longest = max(len(s) for s in seqs)
    dense = padded.pad_sequences(seqs, longest)  # (270, 29, 12)
    lengths = np.array([len(s) for s in seqs])
    for name, extra in (("with.npz", {"lengths": lengths}), ("without.npz", {})):
        np.savez(tmp_path / name, features=dense, labels=labels, **extra)
        loaded, _ = speech.load_sequences(str(tmp_path / name))
        assert len(loaded) == len(seqs) and loaded[0].shape[1] == 12
    assert [len(s) for s in speech.load_sequences(str(tmp_path / "with.npz"))[0]] == lengths.tolist()
    for name, extra in (("aeon_with.npz", {"lengths": lengths}), ("aeon_without.npz", {})):
        np.savez(tmp_path / name, features=dense.transpose(0, 2, 1), labels=labels, **extra)
        with pytest.raises(ValueError, match=r"looks like aeon's \(N, channels, T\); transpose to \(N, T, channels\)"):
            speech.load_sequences(str(tmp_path / name))


def test_pad_sequences_refuses_sequences_it_would_cut_or_leave_empty():
    with pytest.raises(ValueError, match=r"sequence 1 has shape \(6, 2\); valid: \(T, 2\) with 1 <= T <= 5"):
        padded.pad_sequences([np.ones((3, 2)), np.ones((6, 2))], 5)
    with pytest.raises(ValueError, match=r"sequence 0 has shape \(0, 2\)"):
        padded.pad_sequences([np.ones((0, 2))], 5)
    assert padded.pad_sequences([np.ones((3, 2))], 5).shape == (1, 5, 2)


def test_check_lengths_returns_int64():
    out = padded.check_lengths("x", [1, 2, 3], count=3, max_len=3)
    assert out.dtype == np.int64 and out.tolist() == [1, 2, 3]
