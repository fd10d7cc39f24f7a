"""The README's promises that can be checked mechanically."""

from conftest import ROOT


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert ci.startswith("pip install") and "pytest" in ci
    assert f"\n{ci}\n" in readme, f"README must show the CI command verbatim: {ci}"


def test_readme_opens_with_the_charlm_command():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].strip()
    assert first_block == "pip install -e . && python -m lstmlab +experiment=charlm"


# -- every snippet of the README runs (Python) or composes (command lines) as written -----------------

import re  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from conftest import cli_env  # noqa: E402


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def _commands() -> list[str]:
    """Every ``python -m lstmlab ...`` line of the README's bash blocks (comments and ``[optional]``
    parts removed, continuation lines joined)."""
    lines = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s#.*$", "", line).strip()
            for part in line.split("&&"):
                part = re.sub(r"\[[^\]]*\]", "", part).strip()
                if part.startswith("python -m lstmlab"):
                    lines.append(part)
    return lines


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_snippet_runs_as_written(index, tmp_path):
    code = _blocks("python")[index]
    (tmp_path / "snippet.py").write_text(code)  # a file, so that a traceback names its lines
    result = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"snippet {index}:\n{code}\n{result.stderr[-3000:]}"


def test_readme_command_lines_compose():
    """Training commands compose (multirun lists: their first value), search configs exist, and the
    report, sample and inspect commands are the package's modules."""
    from lstmlab.cli import compose, conf_dir

    commands = _commands()
    assert len(commands) >= 10, commands
    for command in commands:
        args = shlex.split(command)[2:]
        module, args = args[0], args[1:]
        if module == "lstmlab":
            if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
                continue  # --help, --cfg job: Hydra's own flags, run by the tests of the CLI
            experiment = next(a.split("=", 1)[1] for a in args if a.startswith("+experiment="))
            overrides = [a.split(",")[0] for a in args if "=" in a and not a.startswith(("+experiment=", "hydra"))]
            config = compose(experiment, overrides)
            if "data.path" not in command and "init_from" not in command:  # files of the reader's own
                config.check()
        elif module == "lstmlab.search":
            name = next(a.split("=", 1)[1] for a in args if a.startswith("+search="))
            assert (conf_dir() / "search" / f"{name}.yaml").is_file(), command
        else:
            assert module in ("lstmlab.report", "lstmlab.sample", "lstmlab.inspect"), command
