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
