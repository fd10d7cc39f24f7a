"""Bad input through the command line: every case ends in one line naming the key or file and what is
valid, exit status 2, no traceback, and a run directory exactly as it was (an existing run is not
touched; a new one is not left behind)."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, run_cli

BASE = ["+experiment=charlm", *[o for o in TINY if not o.startswith("trainer.max_steps")], "trainer.max_steps=2"]
# trainer.devices=N makes the CLI give a run N CPU devices, at most one per core
CLI_DEVICES = len(os.sched_getaffinity(0))
OTHER_DATA = ["~data"]  # drop the Shakespeare options, then give another data set's with +data.KEY=...

# (overrides, what the one line must say). {files} is the folder of the bad files made below.
CASES = [
    # names: each lists the valid ones
    (
        ["cell=lstn"],
        "cell=lstn does not exist; valid: gru, lstm, mingru, minlstm, mlstm, mut1, mut2, mut3, peephole, rnn, slstm, "
        "urnn",
    ),
    (["cell.variant=NOPE"], "cell.variant='NOPE' is not an LSTM variant; valid: vanilla, NIG, NFG"),
    (["cell.chrono_tmax=1.5"], "cell.chrono_tmax=1.5 must be 0 (off) or > 2 (time steps)"),
    (["data.name=nope"], "data.name='nope' is not a data set; valid: adding, airline, copy, csv"),
    (["optim.name=adamx"], "optim.name='adamx' is not an optimiser; valid: adam, adamw, rmsprop, sgd"),
    (["optim.schedule=cosin"], "optim.schedule='cosin'; valid: constant, cosine, warmup_cosine, linear"),
    # keys and types
    (["model.hidden=3"], "model.hidden is not a config key; did you mean model.hidden_size?"),
    (["model.hidden_size=abc"], "'abc' of type 'str' could not be converted to Integer (key model.hidden_size)"),
    # a key added with + must be in the schema too
    (["+model.hiden_size=64"], "model.hiden_size is not a config key; did you mean model.hidden_size?"),
    (["+search.n_trials=3"], "search is not a config key; valid keys: seed, experiment"),
    # sizes, rates and step counts out of range
    (["model.hidden_size=0"], "model.hidden_size=0 must be >= 1"),
    (["model.hidden_size=300000"], "model.hidden_size=300000 with model.num_layers=1 and batches of"),
    (["model.pooling=max"], "model.pooling='max'; valid: last, mean, meanmax"),
    (
        ["model.conv_channels=[8,8]", "model.conv_kernels=[3]"],
        "model.conv_channels=[8, 8] and model.conv_kernels=[3] must be lists of one length of integers >= 1",
    ),
    (["model.conv_channels=[8]", "model.conv_kernels=[3]"], "model.conv_channels needs a per-sequence task"),
    (["optim.lr=inf"], "optim.lr=inf must be a finite number"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 must be an integer >= 1"),
    (["trainer.devices=99"], f"trainer.devices=99 must be in [1, {CLI_DEVICES}]"),
    (["trainer.devices=0"], "trainer.devices=0 must be an integer >= 1"),
    (
        ["distributed.coordinator_address=127.0.0.1:12355", "distributed.num_processes=2", "distributed.process_id=2"],
        "distributed.process_id=2 must be in [0, 1]",
    ),
    # a sequence longer than the data
    (["data.path={files}/short.txt"], "short.txt' is too short"),
    # text files
    (["data.path={files}/missing.txt"], "missing.txt': no such file; give a UTF-8 text file"),
    (["data.path={files}/empty.txt"], "empty.txt' is empty; give a UTF-8 text file"),
    (["data.path={files}/binary.txt"], "binary.txt' is binary (has NUL bytes at byte 3)"),
    (["data.path={files}/latin1.txt"], "latin1.txt' is not UTF-8 (bad byte at position 3)"),
    # feature files
    ([*OTHER_DATA, "+data.name=vowels", "+data.path={files}/nan.npz"], "sequence 2 has NaN or infinite values"),
    (
        [*OTHER_DATA, "+data.name=vowels", "+data.path={files}/ragged_TRAIN.npz"],
        "test sequences have 4 features but training sequences 3",
    ),
    ([*OTHER_DATA, "+data.name=vowels", "+data.path={files}/one_class.npz"], "every training sequence has class 1"),
    ([*OTHER_DATA, "+data.name=vowels", "+data.path={files}/nan_label.npz"], "sequence 3 has class label nan"),
    ([*OTHER_DATA, "+data.name=vowels", "+data.path={files}/complex.npz"], "'features' has dtype complex128"),
    (
        [*OTHER_DATA, "+data.name=vowels", "+data.path={files}/huge.npz"],
        "the training features reach 1e+300, too large to scale and score",
    ),
    (
        [*OTHER_DATA, "+data.name=vowels", "+data.path={files}/undeclared_TRAIN.ts"],
        "case 2 has class '3', which its @classLabel line does not declare; valid: 1, 2",
    ),
    (
        [*OTHER_DATA, "+data.name=csv", "+data.path={files}/dup_dates.csv", "+data.column=y"],
        "line 5, column 'date': '2024-01-03' repeats the time of the line before",
    ),
    (
        [*OTHER_DATA, "+data.name=csv", "+data.path={files}/huge.csv", "+data.column=y"],
        "huge.csv: the values reach 1e+300, too large to scale and score",
    ),
    (
        [*OTHER_DATA, "+data.name=csv", "+data.path={files}/nan.csv", "+data.column=y"],
        "line 9, column 'y': 'nan' is not a finite number",
    ),
    ([*OTHER_DATA, "+data.name=adding", "+data.seq_len=5"], "data.seq_len=5 must be an integer >= 10"),
    # a resume that does not fit the checkpoint
    (["data.plays=hamlet"], "was trained with another vocabulary than this data"),
    (["model.hidden_size=16"], "does not match this model: it was trained with model.hidden_size=8 (this config: 16)"),
]
RESUME_CASES = {"data.plays=hamlet", "model.hidden_size=16"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_files")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"abc\0def" * 20)
    (folder / "latin1.txt").write_bytes("caf\xe9 na\xefve ".encode("latin-1") * 50)
    (folder / "short.txt").write_text("hello world\n" * 3)
    features = np.random.default_rng(0).normal(size=(10, 5, 3)).astype(np.float32)
    features[2, 1, 0] = np.nan
    np.savez(folder / "nan.npz", features=features, labels=np.arange(10) % 2)
    np.savez(folder / "ragged_TRAIN.npz", features=np.ones((10, 5, 3)), labels=np.arange(10) % 2)
    np.savez(folder / "ragged_TEST.npz", features=np.ones((4, 5, 4)), labels=np.arange(4) % 2)
    np.savez(folder / "one_class.npz", features=np.ones((10, 5, 3)), labels=np.ones(10, int))
    np.savez(folder / "nan_label.npz", features=np.ones((10, 5, 3)), labels=np.array([0, 1, 0, np.nan] + [1] * 6))
    np.savez(folder / "huge.npz", features=np.ones((10, 5, 3)) * 1e300 * (np.arange(10) % 2 * 2 - 1)[:, None, None],
             labels=np.arange(10) % 2)  # fmt: skip
    np.savez(folder / "complex.npz", features=np.ones((10, 5, 3)) * (1 + 2j), labels=np.arange(10) % 2)
    (folder / "undeclared_TRAIN.ts").write_text(
        "@problemName t\n@timeStamps false\n@univariate true\n@classLabel true 1 2\n@data\n"
        "1.0,2.0,3.0:1\n1.0,2.5,3.0:2\n1.0,2.0,3.5:3\n"
    )
    days = [datetime.date(2024, 1, 1) + datetime.timedelta(days=d) for d in (0, 1, 2, 2, *range(3, 49))]  # one twice
    (folder / "dup_dates.csv").write_text("date,y\n" + "".join(f"{d},{i}\n" for i, d in enumerate(days)))
    (folder / "huge.csv").write_text("t,y\n" + "".join(f"{i},{1e300 if i % 2 else -1e300}\n" for i in range(50)))
    (folder / "nan.csv").write_text("t,y\n" + "".join(f"{i},{'nan' if i == 7 else i / 2}\n" for i in range(50)))
    return folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 2-step run to resume (or to fail to resume)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli([*BASE, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` with its kind, content digest and modification time."""
    return {
        str(p.relative_to(folder)): (
            p.is_dir(),
            p.stat().st_mtime_ns,
            None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("index", range(len(CASES)), ids=[" ".join(c[0])[-40:] for c in CASES])
def test_bad_input_ends_in_one_line_exit_2_and_an_untouched_run_directory(index, files, finished_run, tmp_path):
    overrides, expected = CASES[index]
    overrides = [o.format(files=files) for o in overrides]
    # another data set: without the charlm experiment, whose data section only Shakespeare takes
    base = [o for o in BASE if not o.startswith(("data.", "+experiment"))] if overrides[0] == "~data" else BASE
    existing = " ".join(overrides) in RESUME_CASES or index % 2 == 0  # the others start a new run
    run_dir = tmp_path / "new" / "run"
    if existing:
        run_dir = tmp_path / "run"
        shutil.copytree(finished_run, run_dir)
    before = snapshot(run_dir) if existing else None

    result = run_cli([*base, *overrides, f"hydra.run.dir={run_dir}"])

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("lstmlab: error: "), result.stderr[-3000:]
    assert expected in lines[0], lines[0]
    if existing:
        assert snapshot(run_dir) == before, "the run directory was changed"
    else:
        assert not (tmp_path / "new").exists(), "a directory was left behind"


def test_the_traceback_is_there_when_asked_for(tmp_path):
    result = run_cli([*BASE, "model.hidden_size=0", f"hydra.run.dir={tmp_path / 'run'}"], HYDRA_FULL_ERROR="1")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError: model.hidden_size=0 must be >= 1" in result.stderr


def test_resume_refuses_a_model_of_the_same_shapes_but_another_structure():
    """Shapes alone do not tell a tanh RNN from a ReLU one; the saved model signature does."""
    from lstmlab.config import Config
    from lstmlab.data.base import DataSpec
    from lstmlab.train.setup import model_mismatch as _model_mismatch
    from lstmlab.train.setup import model_signature

    spec = DataSpec(kind="lm", output_size=5, vocab_size=5, stateful=True)
    saved, current = Config(), Config()
    saved.cell.name = current.cell.name = "rnn"
    current.cell.activation = "relu"
    assert (
        _model_mismatch(model_signature(saved, spec), model_signature(current, spec))
        == "cell.activation='tanh' (this config: 'relu')"
    )
    current.cell.activation, current.model.dropout, current.cell.forget_bias = "tanh", 0.5, 3.0
    assert _model_mismatch(model_signature(saved, spec), model_signature(current, spec)) is None


def test_the_slurm_launcher_without_sbatch_is_one_line_and_writes_nothing(tmp_path):
    import sys

    sweep = tmp_path / "sweep"
    result = run_cli(
        [*BASE, "-m", "hydra/launcher=slurm", "seed=0,1", f"hydra.sweep.dir={sweep}"],
        PATH=os.path.dirname(sys.executable),  # no sbatch on it
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "hydra/launcher=slurm needs SLURM's sbatch" in lines[0], lines
    assert not sweep.exists()
