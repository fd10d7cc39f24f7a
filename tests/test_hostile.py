"""Hostile input and hostile surroundings through the command line: bad values found only with the data,
run directories that are files, read-only, links or in use, resumes that change the run, damaged side
files, Ctrl-C during start-up, a full disk. Every failure ends in one line on stderr with its exit status
(2 bad input, 3 a stopped run, 130 SIGINT), and where nothing should be written the run directory is
byte for byte as it was."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lstmlab.io.lock import RunLock

from conftest import ROOT, TINY, cli_env, run_cli

BASE = [
    "+experiment=charlm_macbeth",
    *TINY,
    "data.seq_len=8",
    "data.batch_size=4",
    "model.dropout=0.0",
    "diagnostics.every=2",
    "diagnostics.batch_size=2",
]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (not following links) with its bytes (None for a directory)."""
    if not folder.exists() and not folder.is_symlink():
        return {}
    if folder.is_file():
        return {".": folder.read_bytes()}
    out: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = b"-> " + os.readlink(path).encode()
        elif path.is_dir():
            out[key] = None
        else:
            out[key] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 4-step run (checkpoints at 2 and 4, samples, gradient norms) to copy for each case."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli([*BASE, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.yaml", "metrics.jsonl", "samples.txt", "summary.json", "gradnorms.npz", ".lock"):
        assert (run_dir / name).is_file(), name
    return run_dir


@dataclass
class Case:
    """One hostile case: ``prepare(run_dir, tmp) -> extra args`` (run_dir starts as a copy of the
    finished run when ``existing``, else does not exist), the exit status, what the stderr must say,
    and whether the run directory must be left byte for byte as it was."""

    name: str
    args: list[str] | Callable[[Path, Path], list[str]]
    status: int
    says: str
    existing: bool = True
    unchanged: bool = True
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[Path, Path], None] | None = None  # more assertions after the run (run_dir, tmp)
    one_line: bool = True
    base: list[str] | None = None  # instead of BASE


def _no_newline_file(run_dir: Path, tmp: Path) -> list[str]:
    (tmp / "nonl.txt").write_text("abc def ghi " * 400)  # no newline: the default sample.prime "\n" is unknown
    return [f"data.path={tmp / 'nonl.txt'}"]


def _file_as_run_dir(run_dir: Path, tmp: Path) -> list[str]:
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.write_text("not a directory\n")
    return []


def _link(name: str) -> Callable[[Path, Path], list[str]]:
    def prepare(run_dir: Path, tmp: Path) -> list[str]:
        target = tmp / f"outside-{name}"
        target.write_text("outside\n")
        path = run_dir / name
        if path.exists():
            path.unlink()
        path.symlink_to(target)
        return ["+resume.allow_changes=[trainer.max_steps]", "trainer.max_steps=6"]

    return prepare


def _outside_unchanged(name: str) -> Callable[[Path, Path], None]:
    def check(run_dir: Path, tmp: Path) -> None:
        assert (tmp / f"outside-{name}").read_text() == "outside\n", "a write went through the link"

    return check


def _replace(name: str, kind: str) -> Callable[[Path, Path], list[str]]:
    def prepare(run_dir: Path, tmp: Path) -> list[str]:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        if kind == "dir":
            path.mkdir()
            (path / "x").write_text("x")
        else:
            path.write_text("a file\n")
        return ["+resume.allow_changes=[trainer.max_steps]", "trainer.max_steps=6"]

    return prepare


def _locked(run_dir: Path, tmp: Path) -> list[str]:
    return []  # the lock is taken by the test itself (see test_hostile_case)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _damage_metrics(how: bytes, append: bool) -> Callable[[Path, Path], list[str]]:
    def prepare(run_dir: Path, tmp: Path) -> list[str]:
        path = run_dir / "metrics.jsonl"
        (tmp / "metrics.before").write_bytes(path.read_bytes())
        path.write_bytes(path.read_bytes() + how if append else how + path.read_bytes())
        (tmp / "metrics.damaged.expected").write_bytes(path.read_bytes())
        return ["+resume.allow_changes=[trainer.max_steps]", "trainer.max_steps=6"]

    return prepare


def _metrics_kept_aside(run_dir: Path, tmp: Path) -> None:
    assert (run_dir / "metrics.jsonl.damaged").read_bytes() == (tmp / "metrics.damaged.expected").read_bytes()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4, 6], steps  # the good history kept, the run continued


def _damage_gradnorms(run_dir: Path, tmp: Path) -> list[str]:
    (run_dir / "gradnorms.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    return ["+resume.allow_changes=[trainer.max_steps]", "trainer.max_steps=6"]


def _gradnorms_kept_aside(run_dir: Path, tmp: Path) -> None:
    assert (run_dir / "gradnorms.npz.damaged").read_bytes() == b"PK\x03\x04 not a zip at all"
    assert (run_dir / "gradnorms.npz").is_file()


def _damage_all_checkpoints(run_dir: Path, tmp: Path) -> list[str]:
    (tmp / "metrics.before").write_bytes((run_dir / "metrics.jsonl").read_bytes())
    for step in (run_dir / "checkpoints").iterdir():
        if step.name.isdigit():
            for path in (step / "state").rglob("*"):
                if path.is_file():
                    path.write_bytes(b"\0" * 16)
    return []


def _history_kept_aside(run_dir: Path, tmp: Path) -> None:
    assert (run_dir / "metrics.jsonl.damaged").read_bytes() == (tmp / "metrics.before").read_bytes()
    assert (run_dir / "checkpoints" / "4.damaged").is_dir()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4], steps  # trained again from step 0


def _changes_recorded(run_dir: Path, tmp: Path) -> None:
    record = json.loads((run_dir / "resume_changes.jsonl").read_text())
    assert record == {"step": 4, "changes": {"trainer.max_steps": [4, 6]}}, record
    assert "max_steps: 6" in (run_dir / "config.yaml").read_text()


ALLOW_6 = ["+resume.allow_changes=[trainer.max_steps]", "trainer.max_steps=6"]

CASES = [
    # 1. checked before anything is written: sampling and logging against the data and the environment
    Case(
        "text without newline", _no_newline_file, 2, "sample.prime='\\n': text has characters outside", existing=False
    ),
    Case("top_k above vocabulary", ["sample.top_k=1000"], 2, "sample.top_k=1000 is more than the data's"),
    Case("prime outside vocabulary", ["sample.prime='#'"], 2, "sample.prime='#': text has characters outside"),
    Case("prime empty", ["sample.prime=''"], 2, "sample.prime is empty"),
    Case("top_k on a new run", ["sample.top_k=1000"], 2, "sample.top_k=1000", existing=False),
    Case(
        "wandb online without login",
        ["logger.wandb.mode=online"],
        2,
        "no wandb credentials",
        env={"WANDB_API_KEY": "", "NETRC": "/nonexistent/netrc"},
    ),
    Case(
        "wandb online, new run",
        ["logger.wandb.mode=online"],
        2,
        "run `wandb login`",
        existing=False,
        env={"WANDB_API_KEY": "", "NETRC": "/nonexistent/netrc"},
    ),
    Case(
        "max_skipped_fraction out of range",
        ["trainer.max_skipped_fraction=2"],
        2,
        "trainer.max_skipped_fraction=2.0 must be in [0, 1]",
    ),
    Case(
        "allow_changes of a free key",
        ["+resume.allow_changes=[logger.wandb.mode]"],
        2,
        "resume.allow_changes has 'logger.wandb.mode'",
    ),
    # 2. one writer per run directory
    Case("run directory locked", _locked, 2, f"is in use by another lstmlab run (pid {os.getpid()} on host"),
    # 3. symbolic links are never followed
    Case(
        "metrics.jsonl is a link",
        _link("metrics.jsonl"),
        2,
        "metrics.jsonl is a symbolic link",
        check=_outside_unchanged("metrics.jsonl"),
    ),
    Case(
        "samples.txt is a link",
        _link("samples.txt"),
        2,
        "samples.txt is a symbolic link",
        check=_outside_unchanged("samples.txt"),
    ),
    Case(
        "config.yaml is a link",
        _link("config.yaml"),
        2,
        "config.yaml is a symbolic link",
        check=_outside_unchanged("config.yaml"),
    ),
    Case(
        "summary.json is a link",
        _link("summary.json"),
        2,
        "summary.json is a symbolic link",
        check=_outside_unchanged("summary.json"),
    ),
    # 4. the resume policy
    Case("resume with another seed", ["seed=1"], 2, "saved seed=0 (now 1)"),
    Case("resume with another dropout", ["model.dropout=0.1"], 2, "saved model.dropout=0.0 (now 0.1)"),
    Case("resume with another seq_len", ["data.seq_len=9"], 2, "saved data.seq_len=8 (now 9)"),
    Case("resume with more steps", ["trainer.max_steps=6"], 2, "+resume.allow_changes=[trainer.max_steps] to continue"),
    Case(
        "resume with fewer steps than the checkpoint", ["trainer.max_steps=2"], 2, "saved trainer.max_steps=4 (now 2)"
    ),
    Case(
        "fewer steps, allowed",
        ["+resume.allow_changes=[trainer.max_steps]", "trainer.max_steps=2"],
        2,
        "trainer.max_steps=2 is below step 4 of the checkpoint",
    ),
    Case("resume with another lr", ["optim.lr=0.01"], 2, "saved optim.lr=0.003 (now 0.01)"),
    Case("already finished", [], 0, "lstmlab: already finished at step 4"),
    Case(
        "already finished, free keys changed",
        ["trainer.progress=none", "sample.length=5"],
        0,
        "lstmlab: already finished at step 4",
    ),
    Case(
        "allowed change is recorded",
        ALLOW_6,
        0,
        "changed on resume at step 4: trainer.max_steps=4 -> 6",
        unchanged=False,
        check=_changes_recorded,
        one_line=False,
    ),
    # 5. damaged side files: reported, set aside, never blocking a resume
    Case(
        "random bytes appended to metrics.jsonl",
        _damage_metrics(b"\x8f\xff\x00garbage\n", True),
        0,
        "damaged line",
        unchanged=False,
        check=_metrics_kept_aside,
        one_line=False,
    ),
    Case(
        "metrics.jsonl line not an object",
        _damage_metrics(b"[1, 2, 3]\n", False),
        0,
        "a JSON list, not an object",
        unchanged=False,
        check=_metrics_kept_aside,
        one_line=False,
    ),
    Case(
        "corrupt gradnorms.npz",
        _damage_gradnorms,
        0,
        "resuming from step 4",
        unchanged=False,
        check=_gradnorms_kept_aside,
        one_line=False,
    ),
    # 7. one line instead of a traceback
    Case("run directory is a file", _file_as_run_dir, 2, "is a file; valid: a directory"),
    Case(
        "run directory name too long",
        lambda r, t: [f"hydra.run.dir={t / ('x' * 300)}"],
        2,
        "File name too long",
        existing=False,
    ),
    Case("checkpoints is a file", _replace("checkpoints", "file"), 2, "checkpoints is not a directory"),
    Case("summary.json is a directory", _replace("summary.json", "dir"), 2, "summary.json is a directory"),
    Case("non-ASCII character in an override", ["sample.prime=é"], 2, "cannot parse the override sample.prime=é"),
    Case("quote inside an override", ["sample.prime=it's"], 2, "cannot parse the override sample.prime=it's"),
    Case(
        "multirun with a bad type",
        lambda r, t: ["-m", "model.hidden_size=8,abc", f"hydra.sweep.dir={t / 'sweep'}"],
        2,
        "model.hidden_size=abc",
        check=lambda r, t: _absent(t / "sweep"),
    ),
    Case(
        "experiment without +",
        ["experiment=charlm"],
        2,
        "use +experiment=charlm",
        existing=False,
        base=[o for o in BASE if not o.startswith(("+experiment", "data."))],
    ),
    Case(
        "unknown data key",
        ["data.nope=1"],
        2,
        "data.nope is not an option of data set 'shakespeare'; valid: seq_len, batch_size",
        existing=False,
    ),
    # 8. smaller
    Case(
        "unreachable coordinator",
        lambda r, t: [
            f"distributed.coordinator_address=127.0.0.1:{_free_port()}",
            "distributed.num_processes=2",
            "distributed.process_id=1",
            "distributed.initialization_timeout=1",
        ],
        2,
        "is not reachable",
        existing=False,
    ),
    Case(
        "checkpoint.keep that cannot fit",
        ["checkpoint.keep=100000000000"],
        2,
        "checkpoint.keep=100000000000: ",
        existing=False,
    ),
    Case(
        "every checkpoint damaged",
        _damage_all_checkpoints,
        0,
        "kept as metrics.jsonl.damaged",
        unchanged=False,
        check=_history_kept_aside,
        one_line=False,
    ),
]


def _absent(path: Path) -> None:
    assert not path.exists(), f"{path} was made"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, finished: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    if case.existing:
        shutil.copytree(finished, run_dir, symlinks=True)
    args = case.args(run_dir, tmp_path) if callable(case.args) else list(case.args)
    before = snapshot(run_dir)
    lock = RunLock(run_dir).acquire() if case.args is _locked else None
    if lock is not None:
        before = snapshot(run_dir)  # with the holder's .lock.owner
    try:
        if not any(a.startswith("hydra.run.dir=") for a in args) and "-m" not in args:
            args.append(f"hydra.run.dir={run_dir}")
        result = run_cli([*(BASE if case.base is None else case.base), *args], **case.env)
    finally:
        if lock is not None:
            lock.release()
    lines = result.stderr.strip().splitlines()
    assert result.returncode == case.status, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if case.one_line:
        assert len(lines) == 1, result.stderr[-3000:]
    assert any(case.says in line for line in lines), result.stderr[-3000:]
    if case.status:
        assert lines[-1].startswith("lstmlab: error: "), lines
    if case.unchanged:
        after = snapshot(run_dir)
        if lock is not None:
            before.pop(".lock.owner", None)
        assert after == before, "the run directory was changed"
    if case.check is not None:
        case.check(run_dir, tmp_path)


def test_the_table_has_every_case() -> None:
    assert len(CASES) >= 30


# -- two processes, one run directory ------------------------------------------------------------------


def test_a_second_process_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """The first run holds the lock from start-up to its end. It is paused (SIGSTOP) after its first
    progress line, so that it certainly holds the lock while the same command, and then another config,
    are started in the same directory: each is refused in one line naming the first's PID and host,
    exit status 2. Resumed (SIGCONT), the first run finishes with every step once in metrics.jsonl."""
    run_dir = tmp_path / "run"
    args = [*BASE, "trainer.max_steps=20", "checkpoint.every=10", "diagnostics.every=0", f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "lstmlab", *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = first.stdout.readline()
        assert line.startswith("step 2/20 "), line + first.stderr.read()[-2000:]
        first.send_signal(signal.SIGSTOP)
        try:
            for extra in ([], ["seed=1"]):  # the same command, another config
                second = run_cli([*args, *extra])
                assert second.returncode == 2, second.stderr[-2000:]
                lines = second.stderr.strip().splitlines()
                assert len(lines) == 1 and f"(pid {first.pid} on host {socket.gethostname()}" in lines[0], lines
        finally:
            first.send_signal(signal.SIGCONT)
        first.stdout.read()
        first.wait(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            first.kill()
    assert first.returncode == 0, first.stderr.read()[-2000:]
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 21, 2)), steps


# -- symbolic links --------------------------------------------------------------------------------------


def test_a_link_named_like_an_old_temporary_file_is_never_written_through(tmp_path: Path) -> None:
    """Temporary names are unpredictable: links planted at the old fixed names (config.yaml.tmp,
    gradnorms.npz.partial.npz) are left alone and their targets untouched."""
    run_dir, outside = tmp_path / "run", tmp_path / "outside.txt"
    outside.write_text("outside\n")
    run_dir.mkdir()
    for name in ("config.yaml.tmp", ".config.yaml.tmp", "gradnorms.npz.partial.npz", "summary.json.tmp"):
        (run_dir / name).symlink_to(outside)
    result = run_cli([*BASE, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert outside.read_text() == "outside\n"
    assert all((run_dir / name).is_symlink() for name in ("config.yaml.tmp", "gradnorms.npz.partial.npz"))
    left = [p.name for p in run_dir.glob(".*.tmp") if not p.is_symlink()]
    assert not left, f"temporary files left behind: {left}"


# -- Ctrl-C during start-up ------------------------------------------------------------------------------


def _main_thread_sleeping(pid: int) -> bool:
    """Whether the process's main thread is in clock_nanosleep (x86-64 syscall 230), e.g. in a retry."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == "230"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64", reason="reads /proc/PID/syscall (x86-64 numbers)"
)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_start_up_ends_in_one_line_and_130(tmp_path: Path, sig: signal.Signals) -> None:
    """Start-up waits for an unreachable coordinator (retrying for up to 120 s, sleeping between
    attempts); SIGINT (Ctrl-C) or SIGTERM sent while it waits ends the command at once with one line and
    status 130 or 143, and nothing is written."""
    run_dir = tmp_path / "run"
    args = [
        *BASE,
        f"distributed.coordinator_address=127.0.0.1:{_free_port()}",
        "distributed.num_processes=2",
        "distributed.process_id=1",
        "distributed.initialization_timeout=120",
        f"hydra.run.dir={run_dir}",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "lstmlab", *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test runner's worker may ignore SIGINT, and a child inherits that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 110
        while not _main_thread_sleeping(process.pid):
            assert process.poll() is None, process.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "start-up never waited for the coordinator"
            time.sleep(0.05)
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode == 128 + sig, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted ({sig.name}) outside the training loop" in lines[0], err[-2000:]
    assert not run_dir.exists()


# -- a full disk ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Write into ``folder`` until its file system is full."""
    block = b"\0" * 4096
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as f:
        while True:
            f.write(block)


def test_a_full_disk_stops_the_run_in_one_line_with_its_checkpoints_intact(tmp_path: Path) -> None:
    """The disk fills up while the run trains (after its second progress line): the run ends with one line
    and status 3, its last checkpoint reads back whole, and once space is freed the same command
    resumes and finishes."""
    from lstmlab.io.checkpoint import Checkpointer

    with tmpfs(tmp_path / "disk", "8m") as disk:
        run_dir = disk / "run"
        args = [
            *BASE,
            "trainer.max_steps=100",
            "trainer.log_every=1",
            "checkpoint.every=1",
            "checkpoint.keep=1",
            "checkpoint.keep_best=false",
            "diagnostics.every=0",
            f"hydra.run.dir={run_dir}",
        ]
        process = subprocess.Popen(
            [sys.executable, "-m", "lstmlab", *args],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2):  # step 2's line comes after step 1's checkpoint is saved
            line = process.stdout.readline()
        assert line.startswith("step 2/100 "), line + process.stderr.read()[-2000:]
        fill(disk)
        process.stdout.read()
        err = process.stderr.read()
        process.wait(timeout=300)
        assert process.returncode == 3, err[-3000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "No space left on device" in lines[0], err[-3000:]
        assert lines[0].endswith("free the space and run the same command to resume"), lines[0]
        reader = Checkpointer(run_dir / "checkpoints", read_only=True)
        step, _, _, damaged = reader.read_latest_good()
        reader.close()
        assert step is not None and not damaged, damaged
        (disk / "filler").unlink()
        again = run_cli([*args, "trainer.max_steps=100"])
        assert again.returncode == 0, again.stderr[-3000:]
        assert "resuming from step" in again.stderr, again.stderr[-3000:]


# -- too many skipped updates; summary.json without NaN/Infinity ------------------------------------------


def _strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_skipping_more_than_max_skipped_fraction_stops_the_run(tmp_path: Path, planted_nan_data) -> None:
    """trainer.nonfinite=skip with 1 of 5 updates skipped: past trainer.max_skipped_fraction=0.1 the run
    raises TooManySkipped (exit status 3 through the CLI) after writing a strict-JSON summary; at 0.5 it
    passes."""
    from test_nonfinite import nan_config

    from lstmlab.train import NonFiniteError, TooManySkipped, train_and_evaluate

    config = nan_config("padding", "skip")
    config.trainer.max_skipped_fraction = 0.1
    with pytest.raises(TooManySkipped) as caught:
        train_and_evaluate(config, tmp_path / "strict")
    assert isinstance(caught.value, NonFiniteError)  # the CLI ends it with exit status 3
    assert "1 of 5 updates were skipped" in str(caught.value) and "\n" not in str(caught.value)
    assert _strict_json(tmp_path / "strict" / "summary.json")["train/skipped"] == 1

    config.trainer.max_skipped_fraction = 0.5
    summary = train_and_evaluate(config, tmp_path / "lenient")
    assert summary["train/skipped"] == 1


def test_summary_json_has_null_for_values_that_are_not_finite(tmp_path: Path) -> None:
    from lstmlab.io.rundir import RunDir

    rundir = RunDir(tmp_path)
    rundir.write_summary({"step": 3, "val/best_loss": float("inf"), "test/loss": float("nan")})
    saved = _strict_json(tmp_path / "summary.json")
    assert saved["val/best_loss"] is None and saved["test/loss"] is None
    assert saved["nonfinite_keys"] == ["test/loss", "val/best_loss"]


def test_a_read_only_run_directory_ends_in_one_line_and_is_left_as_it_was(finished: Path, tmp_path: Path) -> None:
    """A finished run on a file system remounted read-only (root bypasses mode bits, a read-only mount it
    does not), resumed with more steps: one line, exit status 2, nothing changed; a new run directory
    there: the same."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        run_dir = disk / "run"
        shutil.copytree(finished, run_dir, symlinks=True)
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if remount.returncode:
            pytest.skip(f"cannot remount read-only here ({remount.stderr.strip()})")
        before = snapshot(run_dir)
        for target, says in ((run_dir, "is not writable"), (disk / "new", "cannot be made")):
            result = run_cli([*BASE, *ALLOW_6, f"hydra.run.dir={target}"])
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2, result.stderr[-3000:]
            assert len(lines) == 1 and says in lines[0], lines
        assert snapshot(run_dir) == before
        assert not (disk / "new").exists()
