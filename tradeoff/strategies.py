"""Strategies: pure functions that return schedules. They know the order of operations only.

Each docstring states the strategy's recompute count (block forwards after the loss), which
the tests pin for every n.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

from .chain import Chain
from .schedule import Backward, Drop, Forward, Loss, Restore, Save, Schedule


def store_all(n: int) -> Schedule:
    """Plain backprop: tape every block on the way up, unwind on the way down.

    recompute = 0; the peak holds every block's tape.
    """
    return (
        *(Forward(i, tape=True) for i in range(n)),
        Loss(),
        *(Backward(i) for i in reversed(range(n))),
    )


def recompute_all(n: int) -> Schedule:
    """Keep only x[0]; before reversing block i, restore x[0] and run blocks 0..i-1, then i taped.

    The memory-lean extreme with no shortcut (the first pass tapes nothing):
    recompute = sum over i of (i + 1) = n (n + 1) / 2.
    """
    actions = [Save(0), *(Forward(i) for i in range(n)), Loss()]
    for i in reversed(range(n)):
        actions += [Restore(0), *(Forward(j) for j in range(i)), Forward(i, tape=True), Backward(i)]
    return (*actions, Drop(0))


def segment_starts(n: int, segments: int | None = None) -> list[int]:
    """The first block of each sqrt segment: length k = ceil(sqrt(n)), or ceil(n / segments)."""
    if segments is not None and (isinstance(segments, bool) or segments < 1):
        raise ValueError(f"segments must be a whole number >= 1, got {segments!r}")
    k = math.ceil(n / segments) if segments else math.isqrt(n - 1) + 1
    return list(range(0, n, k))


def sqrt_checkpoint(n: int, segments: int | None = None) -> Schedule:
    """Gradient checkpointing (Chen et al. 2016) with segments of k = ceil(sqrt(n)) blocks.

    The first pass saves each segment's input and tapes the last segment (as torch's
    checkpoint_sequential does); each earlier segment is then recomputed taped from its saved
    input and reversed. recompute = n - (length of the last segment). With ``segments=m``,
    k = ceil(n / m), the last segment possibly shorter.
    """
    starts = segment_starts(n, segments)
    last = starts[-1]
    actions: list = []
    for s, e in zip(starts[:-1], starts[1:]):
        actions += [Save(s), *(Forward(i) for i in range(s, e))]
    actions += [*(Forward(i, tape=True) for i in range(last, n)), Loss()]
    actions += [Backward(i) for i in reversed(range(last, n))]
    for s, e in reversed(list(zip(starts[:-1], starts[1:]))):
        actions += [Restore(s), *(Forward(i, tape=True) for i in range(s, e))]
        actions += [*(Backward(i) for i in reversed(range(s, e))), Drop(s)]
    return tuple(actions)


# The registry: every named strategy as a builder from a chain and its options. Builders take
# keyword options and reject the ones that do not apply, so that a typo never passes silently.
def _build_store_all(chain: Chain) -> Schedule:
    return store_all(chain.n)


def _build_recompute_all(chain: Chain) -> Schedule:
    return recompute_all(chain.n)


def _build_sqrt(chain: Chain, segments: int | None = None) -> Schedule:
    return sqrt_checkpoint(chain.n, segments)


STRATEGIES: dict[str, Callable[..., Schedule]] = {
    "store-all": _build_store_all,
    "recompute-all": _build_recompute_all,
    "sqrt": _build_sqrt,
}


def build(strategy: str, chain: Chain, **options) -> Schedule:
    """The schedule of a named strategy for ``chain``; options that are None are ignored.

    Raises ValueError for an unknown name or an option the strategy does not take.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    given = {key: value for key, value in options.items() if value is not None}
    builder = STRATEGIES[strategy]
    unknown = [key for key in given if key not in inspect.signature(builder).parameters]
    if unknown:
        raise ValueError(f"strategy {strategy!r} does not take {', '.join(unknown)}")
    return builder(chain, **given)
