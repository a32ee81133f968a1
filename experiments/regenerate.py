"""Regenerate the whole study: every experiment's rows, then the figures and reports/README.md.

Run: python experiments/regenerate.py   (about a minute on an idle 2-core machine: 48 s here)
--fresh re-measures every point instead of resuming.
Each experiment also runs alone; `tradeoff report` alone redraws from the committed rows.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# --- config -----------------------------------------------------------------------------------
EXPERIMENTS = ["depth_sweep.py", "measures.py", "frontier.py", "timeline.py"]
# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Run each experiment, then the report, stopping at the first failure."""
    for script in EXPERIMENTS:
        print(f"== {script}", file=sys.stderr)
        subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)
    data, out = HERE.parent / "reports" / "data", HERE.parent / "reports"
    subprocess.run(
        [sys.executable, "-m", "tradeoff", "report", "--data", str(data), "--out", str(out)],
        check=True,
    )


if __name__ == "__main__":
    main()
