"""tradeoff: study, measure and choose the memory-versus-compute trade-off of backpropagation.

The public API::

    model = tradeoff.MLP([784, 512, 512, 10], activation="relu", loss="softmax_ce", seed=0)
    x, y = tradeoff.make_batch(model, batch=128, seed=0)
    r = tradeoff.run(model, x, y, strategy="sqrt")       # or any schedule
    p = tradeoff.predict(model, batch=128, strategy="sqrt")  # dry run, no arrays
"""

from importlib.metadata import PackageNotFoundError, version

from .chain import BlockCost, Chain
from .layers import ACTIVATIONS, LOSSES
from .meter import PHASES
from .model import DTYPES, MLP, make_batch, xor_network
from .planner import (
    OptimalSolution,
    Plan,
    frontier,
    optimal,
    parse_budget,
    select,
    smallest_peak,
    solve_optimal,
)
from .runner import RunResult, check_batch, infer, predict, run
from .schedule import (
    Backward,
    Drop,
    Forward,
    InvalidSchedule,
    Loss,
    Prediction,
    Restore,
    Save,
    Schedule,
    describe,
    parse,
    simulate,
)
from .strategies import (
    STRATEGIES,
    build,
    recompute_all,
    revolve,
    revolve_recompute,
    sqrt_checkpoint,
    store_all,
)

try:
    __version__ = version("tradeoff")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "LOSSES",
    "PHASES",
    "STRATEGIES",
    "Backward",
    "BlockCost",
    "Chain",
    "Drop",
    "Forward",
    "InvalidSchedule",
    "Loss",
    "MLP",
    "OptimalSolution",
    "Plan",
    "Prediction",
    "Restore",
    "RunResult",
    "Save",
    "Schedule",
    "build",
    "check_batch",
    "describe",
    "frontier",
    "infer",
    "make_batch",
    "optimal",
    "parse",
    "parse_budget",
    "predict",
    "recompute_all",
    "revolve",
    "revolve_recompute",
    "run",
    "select",
    "simulate",
    "smallest_peak",
    "solve_optimal",
    "sqrt_checkpoint",
    "store_all",
    "xor_network",
]
