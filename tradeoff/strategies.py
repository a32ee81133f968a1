"""Strategies: pure functions that return schedules. They know the order of operations only.

Each docstring states the strategy's recompute count (block forwards after the loss), which
the tests pin for every n.
"""

from __future__ import annotations

import bisect
import inspect
import math
import numbers
from collections.abc import Callable

from .chain import Chain
from .schedule import Backward, Drop, Forward, Loss, Restore, Save, Schedule, simulate


def _whole(name: str, value) -> int:
    """``value`` as an int when it is a whole number >= 1 (numpy integers too); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def store_all(n: int) -> Schedule:
    """Plain backprop: tape every block on the way up, unwind on the way down.

    recompute = 0; the peak holds every block's tape.
    """
    n = _whole("n", n)
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
    n = _whole("n", n)
    actions = [Save(0), *(Forward(i) for i in range(n)), Loss()]
    for i in reversed(range(n)):
        actions += [Restore(0), *(Forward(j) for j in range(i)), Forward(i, tape=True), Backward(i)]
    return (*actions, Drop(0))


def segment_starts(n: int, segments: int | None = None) -> list[int]:
    """The first block of each sqrt segment: length k = ceil(sqrt(n)), or ceil(n / segments)."""
    n = _whole("n", n)
    if segments is not None:
        segments = _whole("segments", segments)
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


# Binomial checkpointing (revolve). The cost table comes first, apart from the code that emits
# actions: the emitter asks the table only where to place the next checkpoint.
def _beta(slots: int, reps: int) -> int:
    """beta(s, r) = C(s + r, s): the most blocks that s slots reverse with r repetitions."""
    return math.comb(slots + reps, slots) if reps >= 0 else 0


class _BinomialTable:
    """r(l, s) and the optimal first checkpoint of revolve, with beta(s, .) cached per s.

    r(l, s) is the integer with beta(s, r - 1) < l <= beta(s, r): how often the most
    repeated block of an optimal reversal of l blocks with s slots runs forward.
    """

    def __init__(self, n: int):
        self.n = n
        self.betas: dict[int, list[int]] = {}

    def reps(self, length: int, slots: int) -> int:
        """r(length, slots), by bisection in the cached beta(slots, 0), beta(slots, 1), ..."""
        betas = self.betas.get(slots)
        if betas is None:
            betas = [1]
            while betas[-1] < self.n:
                betas.append(_beta(slots, len(betas)))
            self.betas[slots] = betas
        return bisect.bisect_left(betas, length)

    def split(self, length: int, slots: int) -> int:
        """How many blocks to advance before the next checkpoint, for length >= 2.

        Any j with beta(s, r - 2) < j <= beta(s, r - 1) and
        beta(s - 1, r - 1) <= length - j <= beta(s - 1, r) splits optimally: then
        t(j, s) + t(length - j, s - 1) + j = t(length, s). The two ranges always meet; this
        takes the smallest such j. With one slot the only choice is j = length - 1.
        """
        if slots == 1:
            return length - 1
        r = self.reps(length, slots)
        return max(length - _beta(slots - 1, r), _beta(slots, r - 2) + 1)


def revolve_recompute(n: int, slots: int) -> int:
    """t(n, s) = r n - C(s + r, s + 1), the fewest forwards after the loss for revolve(n, s).

    r is the integer with C(s + r - 1, s) < n <= C(s + r, s) (Griewank and Walther 2000).
    """
    n, slots = _whole("n", n), _whole("slots", slots)
    slots = min(slots, n)  # with s >= n - 1 slots r is 1 (0 for n = 1) whatever s is
    r = _BinomialTable(n).reps(n, slots)
    return r * n - _beta(slots + 1, r - 1)


def revolve(n: int, slots: int) -> Schedule:
    """Binomial checkpointing (Griewank and Walther 2000): the fewest recomputes for ``slots``.

    States only: x[0] takes a slot, never more than ``slots`` inputs are saved at once, and a
    tape is kept only for the block reversed next. To reverse blocks m..e-1 (l = e - m of them)
    from the working x[m] with s slots: save x[m], advance j blocks untaped, reverse the last
    l - j blocks from x[m+j] with s - 1 slots, then restore x[m] and reverse the first j blocks
    with s slots. A single block runs taped and is reversed at once (no slot needed); the first
    pass runs block n-1 taped just before the loss. With t(l, s) the untaped advances:

        t(1, s) = 0,   t(l, 1) = l (l - 1) / 2,
        t(l, s) = min over 1 <= j < l of  j + t(l - j, s - 1) + t(j, s),

    whose minimum is t(l, s) = r l - C(s + r, s + 1), with C(s + r - 1, s) < l <= C(s + r, s).
    The first pass holds the n forwards, so recompute = t(n, slots) exactly; for example
    revolve(10, 2) recomputes 20 blocks, revolve(1000, 10) 3636. With slots >= n - 1 every
    input but x[n-1] is saved and recompute = n - 1. Iterative: no recursion limit for any n.
    """
    n, slots = _whole("n", n), _whole("slots", slots)
    table = _BinomialTable(n)
    advance = [Forward(i) for i in range(n)]  # actions are immutable: share one per block
    actions: list = []
    # A task reverses blocks m..e-1 with s slots; ``restore`` says that x[m] is already saved
    # (and must be restored first) rather than the working activation just computed.
    tasks = [(0, n, min(slots, n), False)]
    while tasks:
        m, e, s, restore = tasks.pop()
        if restore:
            actions.append(Restore(m))
        if e - m == 1:
            actions.append(Forward(m, tape=True))
            if m == n - 1:  # the first pass reaches the end here, and only here
                actions.append(Loss())
            actions.append(Backward(m))
            if restore:  # the last use of this saved input
                actions.append(Drop(m))
            continue
        if not restore:
            actions.append(Save(m))
        j = table.split(e - m, s)
        actions.extend(advance[m : m + j])
        tasks.append((m, m + j, s, True))  # done second: the first j blocks, from x[m] again
        tasks.append((m + j, e, s - 1, False))  # done first: the rest, from the fresh x[m+j]
    return tuple(actions)


# The registry: every named strategy as a builder from a chain and its options. Builders take
# keyword options and reject the ones that do not apply, so that a typo never passes silently.
def _build_store_all(chain: Chain) -> Schedule:
    return store_all(chain.n)


def _build_recompute_all(chain: Chain) -> Schedule:
    return recompute_all(chain.n)


def _build_sqrt(chain: Chain, segments: int | None = None) -> Schedule:
    return sqrt_checkpoint(chain.n, segments)


def _build_revolve(chain: Chain, slots: int | None = None) -> Schedule:
    # By default as many slots as sqrt saves, so that the two compare on equal terms.
    if slots is None:
        slots = max(1, len(segment_starts(chain.n)) - 1)
    return revolve(chain.n, slots)


def _build_optimal(chain: Chain, budget: int | None = None) -> Schedule:
    # Imported here because the planner builds on this module (an import cycle otherwise).
    from .planner import optimal

    # By default sqrt's accounted peak, so that optimal answers "as cheap as possible in
    # sqrt's memory".
    if budget is None:
        budget = simulate(sqrt_checkpoint(chain.n), chain).peak_bytes
    return optimal(chain, budget)


STRATEGIES: dict[str, Callable[..., Schedule]] = {
    "store-all": _build_store_all,
    "recompute-all": _build_recompute_all,
    "sqrt": _build_sqrt,
    "revolve": _build_revolve,
    "optimal": _build_optimal,
}


def build(strategy: str, chain: Chain, **options) -> Schedule:
    """The schedule of a named strategy for ``chain``; options that are None are ignored.

    Raises ValueError for an unknown name or an option the strategy does not take.
    """
    given = check_options(strategy, options)  # first: it names an unknown strategy
    return STRATEGIES[strategy](chain, **given)


def check_options(strategy: str, options: dict) -> dict:
    """The options of ``strategy`` that are not None; ValueError for an unknown name or an
    option the strategy does not take."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    given = {key: value for key, value in options.items() if value is not None}
    takes = inspect.signature(STRATEGIES[strategy]).parameters
    unknown = [key for key in given if key not in takes]
    if unknown:
        raise ValueError(f"strategy {strategy!r} does not take {', '.join(unknown)}")
    return given
