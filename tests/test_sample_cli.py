"""``python -m lstmlab.sample``: every kind of bad input ends in one line ``lstmlab: error: ...`` on
stderr and exit status 2, without a traceback; --help describes the command with examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import TINY, run_cli

SAMPLE = "lstmlab.sample"


def _sample(args: list[str]):
    return run_cli(args, module=SAMPLE, timeout=300)


def _assert_one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("lstmlab: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory) -> Path:
    """A tiny trained charlm run directory."""
    run_dir = tmp_path_factory.mktemp("sample") / "run"
    result = run_cli(
        ["+experiment=charlm", *TINY, "trainer.max_steps=2", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--length", "-5"], ["--length=-5; valid: an integer from 1 to 1,000,000"]),
        (["--length", "0"], ["--length=0; valid: an integer from 1 to 1,000,000"]),
        (["--length", "ten"], ["--length='ten' is not an integer"]),
        (["--temperature", "-1"], ["--temperature=-1; valid: a finite number >= 0"]),
        (["--temperature", "nan"], ["--temperature=nan; valid: a finite number >= 0"]),
        (["--top-k", "-3"], ["--top-k=-3; valid: an integer >= 0"]),
        (["--checkpoint", "last"], ["--checkpoint='last'; valid: latest, best, or a step number"]),
        (["--prime", ""], ["--prime is empty"]),
        (["--bogus", "1"], ["unrecognized arguments: --bogus 1"]),
    ],
)
def test_bad_options_end_in_one_line_and_exit_2(tmp_path, args, fragments):
    _assert_one_line_error(_sample([str(tmp_path), *args]), *fragments)


def test_a_missing_run_directory_argument_is_one_line():
    _assert_one_line_error(_sample([]), "required: run_dir")


def test_a_run_directory_that_does_not_exist_is_one_line(tmp_path):
    missing = tmp_path / "no-such-run"
    _assert_one_line_error(_sample([str(missing)]), str(missing), "does not exist")


def test_a_directory_without_config_is_one_line(tmp_path):
    _assert_one_line_error(_sample([str(tmp_path)]), "config.yaml does not exist")


def test_a_config_with_a_python_object_tag_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "the-tag-ran"
    (tmp_path / "config.yaml").write_text(f"seed: 0\nmodel: !!python/object/apply:os.system ['touch {marker}']\n")
    line = _assert_one_line_error(_sample([str(tmp_path)]), "config.yaml is not plain YAML at line 2")
    assert "python/object" in line
    assert not marker.exists()


def test_a_damaged_checkpoint_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)  # a step directory with nothing in it
    _assert_one_line_error(_sample([str(tmp_path), "--length", "3"]), "every checkpoint is damaged (checkpoint")


def test_a_run_without_checkpoints_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    _assert_one_line_error(_sample([str(tmp_path)]), "holds no checkpoint")


def test_a_module_of_the_runs_imports_that_cannot_be_imported_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("imports: [no_such_module_here]\n")
    _assert_one_line_error(_sample([str(tmp_path)]), "imports: cannot import 'no_such_module_here'")


def test_a_config_yaml_of_the_wrong_shape_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("model: 5\n")
    (tmp_path / "checkpoints").mkdir()
    _assert_one_line_error(_sample([str(tmp_path)]), "ModelConfig")


def test_help_describes_the_command_with_examples():
    result = _sample(["--help"])
    assert result.returncode == 0
    assert "Generate text from a trained character-model run directory" in result.stdout
    assert "examples:" in result.stdout and "python -m lstmlab.sample RUN_DIR --temperature 0" in result.stdout
    for option in ("--prime", "--length", "--temperature", "--top-k", "--seed", "--checkpoint"):
        assert option in result.stdout


def test_top_k_beyond_the_vocabulary_is_refused_and_the_vocabulary_size_accepted(charlm_run):
    line = _assert_one_line_error(
        _sample([str(charlm_run), "--top-k", "100000", "--length", "5"]), "--top-k=100000 exceeds the model's"
    )
    size = int(re.search(r"valid: 0\.\.(\d+)", line)[1])
    result = _sample([str(charlm_run), "--top-k", str(size), "--length", "5", "--prime", "A"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("A") and len(result.stdout.rstrip("\n")) == 6


def test_a_prime_outside_the_vocabulary_is_one_line_naming_the_characters(charlm_run):
    _assert_one_line_error(
        _sample([str(charlm_run), "--prime", "ab\u2603", "--length", "5"]),
        "--prime: text has characters outside the",
        "'\u2603'",
    )


def test_an_unknown_checkpoint_step_is_one_line(charlm_run):
    _assert_one_line_error(_sample([str(charlm_run), "--checkpoint", "999"]), "--checkpoint='999'; valid:")
