"""Figures c, e and f: every strategy measured on one model, as `tradeoff compare` does.

Run alone: python experiments/measures.py
The same rows from the command line: tradeoff compare --depth 32 --width 512 --batch 128 --json
"""

import sys
from pathlib import Path

from tqdm import tqdm

from tradeoff.measure import MeasureRequest, ModelSpec, comparison, measure
from tradeoff.sweep import write_rows

# --- config -----------------------------------------------------------------------------------
MODEL = ModelSpec(widths=(512,) * 33, batch=128, dtype="float64", activation="relu")
REPEATS = 5
OUT = Path(__file__).resolve().parent.parent / "reports" / "data" / "compare.jsonl"
# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Measure every strategy of `tradeoff compare` on MODEL, each in a fresh process."""
    plan = comparison(MODEL.model().chain(MODEL.batch))
    rows = [measure(MeasureRequest(MODEL, name, options, REPEATS)) for name, options in tqdm(plan)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_rows(OUT, rows)
    print(f"{len(rows)} rows in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
