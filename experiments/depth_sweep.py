"""Figures a, b and f: accounted peak and FLOPs overhead against depth, each point measured.

Run alone: python experiments/depth_sweep.py  (resumes; --fresh starts over)
The same grid from the command line:
  tradeoff sweep --depth 1,2,4,8,16,32,64,128 --width 128 --batch 64 \
      --strategy store-all,sqrt,recompute-all,revolve --slots 2,4,8 --repeats 3 \
      --out reports/data/depth.jsonl
"""

import sys
from pathlib import Path

from tqdm import tqdm

from tradeoff.sweep import check_grid, expand, run_sweep

# --- config -----------------------------------------------------------------------------------
GRID = {
    "depth": [1, 2, 4, 8, 16, 32, 64, 128],
    "width": [128],
    "batch": [64],
    "dtype": ["float64"],
    "strategy": ["store-all", "sqrt", "recompute-all", "revolve"],
    "slots": [2, 4, 8],
    "repeats": 3,
}
OUT = Path(__file__).resolve().parent.parent / "reports" / "data" / "depth.jsonl"
# ----------------------------------------------------------------------------------------------


def main(fresh: bool = False) -> None:
    """Measure every point of GRID not yet in OUT."""
    points = expand(check_grid(GRID))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(points), desc="depth sweep", unit="point") as bar:
        rows = run_sweep(points, OUT, fresh=fresh, progress=lambda p: bar.update())
    print(f"{len(rows)} rows in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main(fresh="--fresh" in sys.argv)
