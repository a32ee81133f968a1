"""Figure d: the live accounted bytes over one step, for every strategy, on one model.

Run alone: python experiments/timeline.py
The accounted timeline is exact and deterministic (it does not depend on timing).
"""

import json
import sys
from pathlib import Path

import tradeoff
from tradeoff.files import write_atomically
from tradeoff.measure import ModelSpec, comparison

# --- config -----------------------------------------------------------------------------------
MODEL = ModelSpec(widths=(256,) * 17, batch=64, dtype="float64", activation="relu")
OUT = Path(__file__).resolve().parent.parent / "reports" / "data" / "timeline.json"
# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Run every strategy once in this process and keep its timeline."""
    model, x, y = MODEL.build()
    timelines = {}
    for name, options in comparison(model.chain(MODEL.batch)):
        timelines[name] = tradeoff.run(model, x, y, name, **options).timeline
    data = {"model": MODEL.to_json(), "timelines": timelines}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(OUT, lambda handle: json.dump(data, handle, indent=1))
    print(f"{len(timelines)} timelines in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
