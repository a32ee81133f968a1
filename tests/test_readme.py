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
    # .ci/run spells the command out (and runs it) as README shows it
    ci = (ROOT / ".ci/run").read_text()
    assert f"test_command='{command}'" in ci
    assert f"\n{command}\n" in ci


def test_performance_figures_are_the_benchmarks():
    """README's performance table quotes reports/performance.json, which bench_runner.py wrote."""
    import json

    report = json.loads((ROOT / "reports" / "performance.json").read_text())
    small, deep = report["models"]  # 16 x 1024 float32, then 64 x 256 float64
    expected = {
        "runner store-all / hand-written numpy step": [m["hand"]["ratio"] for m in (small, deep)],
        "runner store-all / torch CPU autograd": [
            m["torch"]["store_all_vs_autograd"]["ratio"] for m in (small, deep)
        ],
        "runner sqrt / torch `checkpoint_sequential`": [
            m["torch"]["sqrt_vs_checkpoint"]["ratio"] for m in (small, deep)
        ],
    }
    for label, ratios in expected.items():
        line = next(line for line in README.splitlines() if line.startswith(f"| {label}"))
        quoted = [float(cell) for cell in line.strip("|").split("|")[1:]]
        assert quoted == [round(r, 3) for r in ratios], label
    worst = deep["torch"]["grad_rel_diff_autograd"]
    assert f"{worst:.1e}" in README
