"""One owner of the run directory: the names of its files appear in the code of lstmlab.io.rundir
only (docstrings aside); every other module reaches them through it."""

from __future__ import annotations

import ast

from lstmlab.io import rundir

from conftest import ROOT

NAMES = (
    *rundir.FILES,
    rundir.DECAY_RATES,
    rundir.JOB,
    rundir.OVERRIDES,
    rundir.ERROR,
    rundir.JOBS_CSV,
    rundir.SEARCH,
    rundir.STUDY_DB,
)


def _code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string constant that is not a docstring."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_run_directory_file_names_live_in_one_module():
    assert len(NAMES) == len(set(NAMES)) and "config.yaml" in NAMES and "job.json" in NAMES
    found = []
    for path in sorted((ROOT / "lstmlab").rglob("*.py")):
        if path == ROOT / "lstmlab" / "io" / "rundir.py":
            continue
        for line, text in _code_strings(ast.parse(path.read_text())):
            found += [f"{path.relative_to(ROOT)}:{line}: {name}" for name in NAMES if name in text]
    assert found == []


def test_the_check_finds_a_name_written_elsewhere():
    tree = ast.parse('"""Writes config.yaml."""\nPATH = run_dir / "summary.json"\n')
    assert [text for _, text in _code_strings(tree) if text in NAMES] == ["summary.json"]
