"""Figure c: the optimal compute-memory frontier of the model that measures.py compares.

Run alone: python experiments/frontier.py
The frontier comes from the planner's dry runs (exact: accounted bytes and FLOPs do not depend
on timing); the named strategies' points on the figure are the measured rows of measures.py.
"""

import json
import sys
from pathlib import Path

from measures import MODEL  # the same model, so that the measured points sit on this frontier

from tradeoff.files import write_atomically
from tradeoff.planner import frontier

# --- config -----------------------------------------------------------------------------------
OUT = Path(__file__).resolve().parent.parent / "reports" / "data" / "frontier.json"
# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Compute the frontier of MODEL at its batch size and write it with the model."""
    chain = MODEL.model().chain(MODEL.batch)
    points = [{"budget_bytes": b, "total_flops": f} for b, f in frontier(chain)]
    data = {"model": MODEL.to_json(), "points": points}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(OUT, lambda handle: json.dump(data, handle, indent=1))
    print(f"{len(points)} frontier points in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
