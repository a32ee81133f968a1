"""Figures c, e and f: every strategy measured on one model, as `tradeoff compare` does.

Run alone: python experiments/measures.py  (resumes; --fresh starts over)
The same rows from the command line: tradeoff compare --depth 32 --width 512 --batch 128 --json
Each strategy is one point of a sweep, measured in a fresh process; a point already in OUT is
kept, so regenerating the study from committed rows measures nothing here.
"""

import sys
from pathlib import Path

from tqdm import tqdm

from tradeoff.measure import ModelSpec, comparison
from tradeoff.sweep import Point, run_sweep

# --- config -----------------------------------------------------------------------------------
MODEL = ModelSpec(widths=(512,) * 33, batch=128, dtype="float64", activation="relu")
REPEATS = 5
OUT = Path(__file__).resolve().parent.parent / "reports" / "data" / "compare.jsonl"
# ----------------------------------------------------------------------------------------------


def points() -> list[Point]:
    """Every strategy of `tradeoff compare` on MODEL, with the options compare gives it."""
    plan = comparison(MODEL.model(allocate=False).chain(MODEL.batch))
    return [Point(MODEL, name, tuple(options.items()), REPEATS) for name, options in plan]


def main(fresh: bool = False) -> None:
    """Measure every point not yet in OUT (every point with ``fresh``)."""
    todo = points()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(todo), desc="compare", unit="strategy") as bar:
        rows = run_sweep(todo, OUT, fresh=fresh, progress=lambda p: bar.update())
    print(f"{len(rows)} rows in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main(fresh="--fresh" in sys.argv)
