"""README's promises: its Python examples run as written, and CI runs its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_examples_run_as_written():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_test_command_that_readme_shows():
    command = next(
        line for line in README.splitlines() if line.startswith('pip install -e ".[test]"')
    )
    assert "pytest" in command
    assert (
        "grep -m 1 '^pip install -e \".\\[test\\]\" && ' README.md"
        in (ROOT / ".ci/run").read_text()
    )
