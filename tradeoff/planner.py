"""The planner: the cheapest schedule that fits a memory budget, and the choice among strategies.

``optimal(chain, budget_bytes)`` solves the heterogeneous-chain dynamic program of Beaumont et
al. 2019 (arXiv 1911.13214) against the walk's own accounting (schedule.py), so that its plan's
accounted peak is exactly what ``simulate`` and the runner report. ``select`` compares it with
the named strategies, ``frontier`` gives the optimal FLOPs as a function of the budget, and
``parse_budget`` reads a budget as the command line writes it.

The dynamic program, in the walk's terms. Stages 0..n-1 are the blocks and stage n is the loss.
``solve(i, j)`` reverses stages i..j (blocks i..min(j, n-1), and the loss when j = n) starting
from the working x[i], with the gradient of x[j+1] alive (none when j = n), and ends holding the
gradient of x[i]. Two choices at block i:

- tape: ``F(i)*``, ``solve(i+1, j)``, ``B(i)``;
- checkpoint: ``S(i)`` (unless x[i] is already saved), ``F(i) .. F(k-1)`` untaped for some
  i < k <= j, ``solve(k, j)``, ``R(i)``, ``solve(i, k-1)`` (which may checkpoint x[i] again, at
  no cost), and ``D(i)`` after its last use.

A single block (i = j < n) is ``F(i)* B(i)``; ``solve(n, n)`` is ``L``. In every case x[i] stays
alive throughout ``solve(i, j)`` (on a tape or saved), so its bytes are a constant offset: the
tables are kept "held" (x[i] counted by the caller) and a fresh x[i] adds its size. The local
peaks, with x the activation sizes, g the gradient sizes (g[0] = 0, g[n] = the loss gradient),
t the tapes' extra bytes and G the gradient alive at the start:

- ``F(i)*``: G + x[i+1] + t[i]; then ``solve(i+1, j)`` on top of t[i] + x[i+1];
  ``B(i)``: t[i] + x[i+1] (if the tape keeps its output) + g[i+1] + g[i];
- untaped ``F(m)``: G + x[m] + x[m+1] + t[m] (x[i] itself is the saved one, not counted twice);
  ``solve(k, j)`` on top of x[k]; ``solve(i, k-1)`` on top of nothing new.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

from .chain import Chain
from .schedule import (
    Backward,
    Drop,
    Forward,
    Loss,
    Restore,
    Save,
    Schedule,
    describe,
    simulate,
)
from .strategies import build, check_options, segment_starts, store_all

# "auto" plans chains up to this many blocks with exact frontiers when the grid would round.
EXACT_MAX_BLOCKS = 20
# The discretised mode's memory unit: ceil(budget / DEFAULT_UNITS) bytes, at least the gcd of
# the chain's sizes (a grid of the gcd rounds nothing: it is exact).
DEFAULT_UNITS = 500
# The grid holds (n + 1)(n + 2) / 2 x (budget units + 1) float64 cells: at most this many
# (about 100 MB); a longer chain gets a coarser unit.
MAX_GRID_CELLS = 12_000_000
MODES = ("auto", "exact", "discretised")

INF = math.inf


# ---------------------------------------------------------------------------------------------
# Sizes: what the dynamic program reads from a chain, in bytes or in memory units.


@dataclass(frozen=True)
class _Sizes:
    """Per-stage sizes, each rounded up to ``unit`` bytes (unit 1: exact bytes)."""

    n: int
    x: tuple[int, ...]  # x[i]: bytes of x[i], i = 0..n
    grad: tuple[int, ...]  # grad[i]: bytes of the gradient of x[i] (0 for x[0], none kept)
    tape: tuple[int, ...]  # tape[i]: bytes the tape of block i adds beyond x[i] and x[i+1]
    keeps: tuple[bool, ...]  # keeps[i]: the tape of block i also holds x[i+1]
    unit: int

    @classmethod
    def of(cls, chain: Chain, unit: int = 1) -> _Sizes:
        """The sizes of ``chain``, each rounded UP to a multiple of ``unit`` (in units)."""

        def up(v: int) -> int:
            return -(-v // unit)

        n = chain.n
        x = tuple(up(chain.x_bytes(i)) for i in range(n + 1))
        grad = (0, *x[1:n], up(chain.loss_bytes))
        tape = tuple(up(b.tape_bytes) for b in chain.blocks)
        keeps = tuple(b.keeps_output for b in chain.blocks)
        return cls(n, x, grad, tape, keeps, unit)

    def grad_in(self, j: int) -> int:
        """The gradient alive when solve(., j) starts: of x[j+1], none before the loss."""
        return self.grad[j + 1] if j < self.n else 0

    def tape_floor(self, i: int, j: int) -> int:
        """The least local budget for taping block i in solve(i, j): its F(i)* and B(i)."""
        forward = self.grad_in(j) + self.x[i + 1] + self.tape[i]
        backward = self.tape[i] + self.keeps[i] * self.x[i + 1] + self.grad[i + 1] + self.grad[i]
        return max(forward, backward)

    def tape_offset(self, i: int) -> int:
        """What solve(i+1, j) runs on top of after F(i)*: the tape's extra and x[i+1]."""
        return self.tape[i] + self.x[i + 1]

    def advance_peaks(self) -> np.ndarray:
        """A[i, k] for i < k <= n: the largest local peak of F(i) .. F(k-1), untaped, less G."""
        n = self.n
        x, t = np.array(self.x, dtype=np.int64), np.array(self.tape + (0,), dtype=np.int64)
        # F(m) for m > i holds x[m], x[m+1] and the tape's extra; F(i) reads the saved x[i].
        inner = x[:-1] + x[1:] + t[:-1]
        peaks = np.zeros((n + 1, n + 1), dtype=np.int64)
        for i in range(n):
            first = x[i + 1] + t[i]
            peaks[i, i + 1 :] = np.maximum.accumulate(np.concatenate(([first], inner[i + 1 : n])))
        return peaks


def _forward_prefix(chain: Chain) -> list[int]:
    """prefix[k] = forward FLOPs of blocks 0..k-1, so blocks i..k-1 cost prefix[k] - prefix[i]."""
    prefix = [0]
    for block in chain.blocks:
        prefix.append(prefix[-1] + block.forward_flops)
    return prefix


def _fixed_flops(chain: Chain) -> int:
    """The FLOPs every schedule spends once: the backwards and the loss."""
    return sum(b.backward_flops for b in chain.blocks) + chain.loss_flops


# ---------------------------------------------------------------------------------------------
# Reading a plan out of any table of solve() values: shared by every mode.

Value = Callable[[int, int, int], float]  # value(i, j, M): fewest FLOPs of solve(i, j) within M
TAPE = 0  # the choice "tape block i now"; a choice k > 0 means "checkpoint x[i], advance to k"


def _best_choice(sizes: _Sizes, prefix, peaks, value: Value, i: int, j: int, m: int):
    """(FLOPs, choice) of the cheapest option of solve(i, j) within local budget ``m``.

    Ties go to taping (fewer actions), then to the nearest checkpoint.
    """
    best, choice = INF, None
    if m >= sizes.tape_floor(i, j):
        best = prefix[i + 1] - prefix[i] + value(i + 1, j, m - sizes.tape_offset(i))
        choice = TAPE
    g = sizes.grad_in(j)
    for k in range(i + 1, j + 1):
        if m < g + peaks[i][k]:
            break  # the advance peaks only grow with k
        cost = prefix[k] - prefix[i] + value(k, j, m - sizes.x[k]) + value(i, k - 1, m)
        if cost < best:
            best, choice = cost, k
    return best, choice


def _emit(sizes: _Sizes, prefix, peaks, value: Value, budget: int) -> Schedule:
    """The schedule of solve(0, n) within ``budget`` (x[0] included), iteratively.

    Each task either emits an action or solves a range; a range pushes its later parts before
    emitting its first actions, so the stack replays the recursion in order.
    """
    n = sizes.n
    actions: list = []
    tasks: list = [(0, n, budget - sizes.x[0], False)]
    while tasks:
        task = tasks.pop()
        if not isinstance(task, tuple):
            actions.append(task)
            continue
        i, j, m, saved = task
        if i == j == n:
            actions.append(Loss())
            continue
        if i == j:
            actions += [Forward(i, tape=True), Backward(i)]
            continue
        cost, choice = _best_choice(sizes, prefix, peaks, value, i, j, m)
        assert cost < INF, f"solve({i}, {j}) has no plan within {m} units"
        if choice == TAPE:
            actions.append(Forward(i, tape=True))
            tasks += [Backward(i), (i + 1, j, m - sizes.tape_offset(i), False)]
            continue
        k = choice
        if not saved:
            actions.append(Save(i))
            tasks.append(Drop(i))
        actions += [Forward(b) for b in range(i, k)]
        tasks += [(i, k - 1, m, True), Restore(i), (k, j, m - sizes.x[k], False)]
    return tuple(actions)


# ---------------------------------------------------------------------------------------------
# Exact mode: every solve(i, j) as its Pareto frontier of (local peak, FLOPs).


class _Frontier:
    """A step function: the fewest FLOPs within each local budget, as (peak, FLOPs) corners.

    Peaks strictly increase and FLOPs strictly decrease; below the first peak there is no plan.
    """

    __slots__ = ("peaks", "costs")

    def __init__(self, corners: Sequence[tuple[int, int]]):
        self.peaks: list[int] = []
        self.costs: list[int] = []
        for peak, cost in sorted(corners):
            # sorted: at one peak the cheapest comes first and the rest fail this test
            if not self.costs or cost < self.costs[-1]:
                self.peaks.append(peak)
                self.costs.append(cost)

    def __call__(self, m: int) -> float:
        k = bisect.bisect_right(self.peaks, m) - 1
        return self.costs[k] if k >= 0 else INF


def _sum_corners(a: _Frontier, shift: int, b: _Frontier, floor: int, extra: int):
    """Corners of M -> a(M - shift) + b(M) + extra for M >= floor (the advance's peak)."""
    start = max(a.peaks[0] + shift, b.peaks[0], floor)
    points = sorted({start, *(p + shift for p in a.peaks), *b.peaks})
    return [(p, a(p - shift) + b(p) + extra) for p in points if p >= start]


class _ExactTables:
    """solve(i, j) for every range, as exact frontiers over local budgets in bytes."""

    def __init__(self, chain: Chain):
        sizes = self.sizes = _Sizes.of(chain)
        self.prefix = _forward_prefix(chain)
        self.peaks = sizes.advance_peaks().tolist()
        n = sizes.n
        self.front: dict[tuple[int, int], _Frontier] = {}
        for j in range(n + 1):
            for i in range(j, -1, -1):
                self.front[i, j] = self._solve(i, j)

    def _solve(self, i: int, j: int) -> _Frontier:
        sizes, prefix, n = self.sizes, self.prefix, self.sizes.n
        if i == j == n:
            return _Frontier([(sizes.grad[n], 0)])
        f = prefix[i + 1] - prefix[i]
        floor = sizes.tape_floor(i, j)
        if i == j:
            return _Frontier([(floor, f)])
        sub, offset = self.front[i + 1, j], sizes.tape_offset(i)
        corners = [(max(floor, p + offset), c + f) for p, c in zip(sub.peaks, sub.costs)]
        g = sizes.grad_in(j)
        for k in range(i + 1, j + 1):
            advance = prefix[k] - prefix[i]
            right, left = self.front[k, j], self.front[i, k - 1]
            corners += _sum_corners(right, sizes.x[k], left, g + self.peaks[i][k], advance)
        return _Frontier(corners)

    def value(self, i: int, j: int, m: int) -> float:
        return self.front[i, j](m)


@lru_cache(maxsize=8)
def _exact_tables(chain: Chain) -> _ExactTables:
    # Cached: select, frontier and the registry often plan the same chain in a row.
    return _ExactTables(chain)


# ---------------------------------------------------------------------------------------------
# Discretised mode: solve(i, j) tabulated on a grid of memory units, vectorised over budgets.


class _GridTables:
    """solve(i, j) for every range and every local budget 0..K units, as numpy rows.

    Every size is rounded up to the unit, so a plan's true peak never exceeds its grid peak.
    rows[i][j - i, M] is the fewest forward FLOPs of solve(i, j) within M units (inf: none).
    For a fixed j the rows are filled for i = j down to 0, each one vectorised over M and
    over the checkpoint's k.
    """

    def __init__(self, chain: Chain, unit: int, budget_units: int):
        sizes = self.sizes = _Sizes.of(chain, unit)
        self.prefix = _forward_prefix(chain)
        peaks = sizes.advance_peaks()
        self.peaks = peaks.tolist()
        n, K = sizes.n, budget_units
        self.K = K
        cumulative = np.array(self.prefix, dtype=np.float64)
        self.rows = [np.full((n + 1 - i, K + 1), INF) for i in range(n + 1)]
        # ahead[k, M] = prefix[k] + solve(k, j) within M - x[k]: the current j's rows with a
        # fresh x[k] counted, and with the FLOPs before block k added, so that every option of
        # solve(i, j) reads as ahead + (left part) - prefix[i].
        ahead = np.full((n + 1, K + 1), INF)
        options = np.empty((n + 1, K + 1))  # row 0: taping; row r: checkpoint to k = i + r
        for j in range(n + 1):
            g = sizes.grad_in(j)
            spare = np.arange(K + 1) - g  # the budget left beside the incoming gradient
            for i in range(j, -1, -1):
                row = self.rows[i][j - i]
                if i == j:  # the loss, or a single block: one way to do it
                    floor = sizes.grad[n] if i == n else sizes.tape_floor(i, j)
                    row[min(floor, K + 1) :] = cumulative[i + 1] - cumulative[i] if i < n else 0.0
                else:
                    width = j - i + 1
                    self._tape(options[0], i, j, ahead)
                    np.add(ahead[i + 1 : j + 1], self.rows[i][: j - i], out=options[1:width])
                    # budgets below an advance's peak cannot take that checkpoint
                    too_small = spare < peaks[i, i + 1 : j + 1, None]
                    np.putmask(options[1:width], too_small, INF)
                    options[:width].min(axis=0, out=row)
                    row -= cumulative[i]
                shift = sizes.x[i]
                ahead[i, : min(shift, K + 1)] = INF
                if shift <= K:
                    np.add(row[: K + 1 - shift], cumulative[i], out=ahead[i, shift:])

    def _tape(self, out, i, j, ahead) -> None:
        # F(i)*: solve(i+1, j) with x[i+1] fresh on top of the tape's extra.
        floor, extra, K = self.sizes.tape_floor(i, j), self.sizes.tape[i], self.K
        out[: min(floor, K + 1)] = INF
        if floor <= K:
            out[floor:] = ahead[i + 1, floor - extra : K + 1 - extra]

    def value(self, i: int, j: int, m: int) -> float:
        if m < 0:
            return INF
        return float(self.rows[i][j - i, min(m, self.K)])


# ---------------------------------------------------------------------------------------------
# The smallest feasible peak of the space (exact, one number per range).


class _LeanTables:
    """solve(i, j)'s smallest local peak, exactly, in O(n^3).

    With it, the FLOPs of one plan of that peak: at each range the cheapest of the choices of
    least peak (peak first, then FLOPs), which need not be the cheapest plan of that peak.
    """

    def __init__(self, chain: Chain):
        sizes = self.sizes = _Sizes.of(chain)
        self.prefix = _forward_prefix(chain)
        peaks = sizes.advance_peaks()
        self.peaks = peaks.tolist()
        n = sizes.n
        x = np.array(sizes.x, dtype=np.int64)
        cumulative = np.array(self.prefix, dtype=np.float64)
        self.peak = np.zeros((n + 1, n + 1), dtype=np.int64)
        self.cost = np.zeros((n + 1, n + 1), dtype=np.float64)
        for j in range(n + 1):
            g = sizes.grad_in(j)
            for i in range(j, -1, -1):
                f = cumulative[i + 1] - cumulative[i] if i < n else 0.0
                if i == j:  # the loss, or a single block: one way to do it
                    p = sizes.grad[n] if i == n else sizes.tape_floor(i, j)
                    self.peak[i, j], self.cost[i, j] = p, f
                    continue
                p = max(sizes.tape_floor(i, j), sizes.tape_offset(i) + self.peak[i + 1, j])
                c = f + self.cost[i + 1, j]
                ks = slice(i + 1, j + 1)
                pk = np.maximum(peaks[i, ks] + g, x[ks] + self.peak[ks, j])
                pk = np.maximum(pk, self.peak[i, i:j])
                ck = cumulative[ks] - cumulative[i] + self.cost[ks, j] + self.cost[i, i:j]
                lowest = pk.min()
                cheapest = ck[pk == lowest].min()
                if (lowest, cheapest) < (p, c):  # peak first, then FLOPs; ties keep taping
                    p, c = lowest, cheapest
                self.peak[i, j], self.cost[i, j] = p, c

    def value(self, i: int, j: int, m: int) -> float:
        return float(self.cost[i, j]) if self.peak[i, j] <= m else INF

    @property
    def smallest_peak(self) -> int:
        """The smallest accounted peak of any schedule in the space (x[0] included)."""
        return int(self.peak[0, self.sizes.n]) + self.sizes.x[0]

    def schedule(self) -> Schedule:
        """A schedule whose accounted peak is the smallest."""
        return _emit(self.sizes, self.prefix, self.peaks, self.value, self.smallest_peak)


@lru_cache(maxsize=8)
def _lean_tables(chain: Chain) -> _LeanTables:
    return _LeanTables(chain)


def check_feasible(chain: Chain, budget_bytes: int) -> None:
    """Raise ValueError, naming the smallest feasible peak, unless some plan fits the budget.

    Cheap at or above store-all's peak (store-all is then the plan); below it, the table of the
    smallest peak, cached per chain.
    """
    budget = _check_budget(budget_bytes)
    if simulate(store_all(chain.n), chain).peak_bytes <= budget:
        return
    minimum = smallest_peak(chain)
    if budget < minimum:
        raise _too_small(budget, minimum)


def check_strategy(chain: Chain, strategy: str, **options) -> None:
    """Raise ValueError unless ``build(strategy, chain, **options)`` would succeed.

    For optimal this checks its options and its budget's feasibility rather than running the
    dynamic program, which can take longer than the measurement it would precede (the measuring
    process plans it once). Every other strategy is simply built.
    """
    given = check_options(strategy, options)
    if strategy != "optimal":
        build(strategy, chain, **given)
    elif "budget" in given:
        check_feasible(chain, given["budget"])


def smallest_peak(chain: Chain) -> int:
    """The smallest accounted peak, in bytes, of any schedule in optimal's space.

    No schedule of the named strategies goes lower (they all lie in that space).
    """
    return _lean_tables(chain).smallest_peak


# ---------------------------------------------------------------------------------------------
# optimal: the public entry points.


@dataclass(frozen=True)
class OptimalSolution:
    """What ``solve_optimal`` found: the schedule and how it was planned.

    ``mode`` is "exact", "discretised", "store-all" (the budget holds store-all, which is then
    optimal) or "smallest-peak" (the grid found nothing at a budget that the exact smallest peak
    fits, so the plan of smallest peak is returned). ``unit_bytes`` is the grid's memory unit
    (1 for exact frontiers; a grid of the gcd of the sizes is exact too). ``forward_flops``
    counts forward plus recompute FLOPs.
    """

    schedule: Schedule = field(repr=False)
    mode: str
    unit_bytes: int
    budget_bytes: int
    forward_flops: int


def _check_budget(budget_bytes) -> int:
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int | np.integer):
        raise ValueError(f"budget must be a whole number of bytes, got {budget_bytes!r}")
    if budget_bytes < 1:
        raise ValueError(f"budget must be at least 1 byte, got {budget_bytes}")
    return int(budget_bytes)


def _check_mode(mode: str, units: int) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"units must be a whole number >= 1, got {units!r}")


def _too_small(budget: int, minimum: int) -> ValueError:
    return ValueError(
        f"budget {budget} bytes is below the smallest feasible accounted peak, "
        f"{minimum} bytes: no schedule fits"
    )


def _forward_flops(chain: Chain, schedule: Schedule) -> int:
    return sum(chain.blocks[a.i].forward_flops for a in schedule if isinstance(a, Forward))


def size_gcd(chain: Chain) -> int:
    """The greatest common divisor of every size in the chain: a grid of it rounds nothing."""
    sizes = [chain.x_bytes(i) for i in range(chain.n + 1)] + [chain.loss_bytes]
    sizes += [b.tape_bytes for b in chain.blocks]
    return math.gcd(*sizes) or 1


def _grid_unit(chain: Chain, budget: int, units: int) -> int:
    """The discretised mode's unit: budget / units, at least the gcd, within MAX_GRID_CELLS."""
    pairs = (chain.n + 1) * (chain.n + 2) // 2
    units = max(1, min(units, MAX_GRID_CELLS // pairs - 1))
    return max(size_gcd(chain), -(-budget // units))


def _method(chain: Chain, budget: int, mode: str, units: int) -> tuple[str, int]:
    """("frontiers", 1) for exact frontiers, or ("grid", unit) for a grid of that unit.

    "auto" takes the grid when it rounds nothing (fast and exact), else exact frontiers up to
    EXACT_MAX_BLOCKS blocks, else the rounding grid.
    """
    _check_mode(mode, units)
    if mode == "exact":
        return "frontiers", 1
    unit = _grid_unit(chain, budget, units)
    if mode == "auto" and unit > size_gcd(chain) and chain.n <= EXACT_MAX_BLOCKS:
        return "frontiers", 1
    return "grid", unit


def solve_optimal(
    chain: Chain, budget_bytes: int, mode: str = "auto", units: int = DEFAULT_UNITS
) -> OptimalSolution:
    """``optimal`` with its working shown: how it planned, and the memory unit.

    ``mode`` "exact" tabulates exact frontiers in bytes; "discretised" tabulates a grid of
    ``_grid_unit`` bytes (budget / units, at least the gcd of the sizes), rounding every size
    up; "auto" uses the grid when that unit is the gcd (then nothing rounds), else exact
    frontiers up to EXACT_MAX_BLOCKS blocks, else the rounding grid.
    """
    budget = _check_budget(budget_bytes)
    method, unit = _method(chain, budget, mode, units)
    full = store_all(chain.n)
    if simulate(full, chain).peak_bytes <= budget:
        return OptimalSolution(full, "store-all", 1, budget, _forward_flops(chain, full))
    if method == "frontiers":
        tables = _exact_tables(chain)
        if tables.front[0, chain.n].peaks[0] + tables.sizes.x[0] > budget:
            raise _too_small(budget, smallest_peak(chain))
        schedule = _emit(tables.sizes, tables.prefix, tables.peaks, tables.value, budget)
        return OptimalSolution(schedule, "exact", 1, budget, _forward_flops(chain, schedule))
    schedule = _grid_plan(chain, budget, unit)
    if schedule is not None:
        if unit == size_gcd(chain):
            return OptimalSolution(schedule, "exact", unit, budget, _forward_flops(chain, schedule))
        mode = "discretised"
    else:
        lean = _lean_tables(chain)
        if budget < lean.smallest_peak:
            raise _too_small(budget, lean.smallest_peak)
        # The budget fits a plan that the rounded sizes miss: the leanest one.
        schedule, mode = lean.schedule(), "smallest-peak"
    schedule = _no_worse_than_named(chain, budget, schedule)
    return OptimalSolution(schedule, mode, unit, budget, _forward_flops(chain, schedule))


def _no_worse_than_named(chain: Chain, budget: int, schedule: Schedule) -> Schedule:
    """``schedule``, or a named strategy's that fits ``budget`` with fewer total FLOPs.

    Rounding sizes up can cost a grid plan more than revolve or sqrt in the same memory (seen
    on a 96-layer transformer chain: 0.7% more than revolve). The contract of DESIGN section 4
    is that optimal never costs more than a named strategy whose peak fits, in every mode, so
    a rounding plan is checked against each of ``select``'s named candidates.
    """
    best, best_flops = schedule, simulate(schedule, chain).flops["total"]
    for name, options in _named_candidates(chain.n):
        other = build(name, chain, **options)
        p = simulate(other, chain)
        if p.peak_bytes <= budget and p.flops["total"] < best_flops:
            best, best_flops = other, p.flops["total"]
    return best


def _grid_plan(chain: Chain, budget: int, unit: int) -> Schedule | None:
    """The cheapest plan of a grid of ``unit`` bytes that truly fits ``budget`` (None: none).

    Rounded sizes overstate peaks, so a grid plan for budget // unit units always fits, and one
    for a few units more often does too: the grid reaches (2n + 4) units (at most a quarter)
    past the budget, and its plans are tried from the largest grid budget down, each checked by
    ``simulate``, down to budget // unit.
    """
    safe = budget // unit
    slack = 0 if unit == size_gcd(chain) else min(2 * chain.n + 4, max(1, safe // 4))
    tables = _GridTables(chain, unit, safe + slack)
    x0 = tables.sizes.x[0]
    row = tables.rows[0][chain.n]  # nonincreasing in the local budget m - x0

    def drops(m: int) -> bool:  # the smallest grid budget of its cost
        here = m - x0
        return here >= 0 and row[here] < (row[here - 1] if here > 0 else INF)

    for m in range(safe + slack, safe, -1):
        if drops(m):
            schedule = _emit(tables.sizes, tables.prefix, tables.peaks, tables.value, m)
            if simulate(schedule, chain).peak_bytes <= budget:
                return schedule
    if tables.value(0, chain.n, safe - x0) == INF:
        return None
    return _emit(tables.sizes, tables.prefix, tables.peaks, tables.value, safe)


def optimal(
    chain: Chain, budget_bytes: int, mode: str = "auto", units: int = DEFAULT_UNITS
) -> Schedule:
    """The schedule with the fewest total FLOPs whose accounted peak fits ``budget_bytes``.

    The space it is optimal over (Beaumont et al. 2019, heterogeneous chains): schedules built
    by the recursion ``solve(i, j)`` of this module's docstring. At each block, starting from
    the working x[i], either tape the block now (``F(i)*``, reverse everything after it, then
    ``B(i)``), or save x[i] (a slot, kept until block i itself is reversed), run blocks
    i..k-1 untaped for some k, reverse everything from x[k] on, restore x[i] and reverse blocks
    i..k-1 the same way. The space includes store-all, recompute-all, sqrt and revolve. It
    excludes, for example, a saved input that only serves to recompute the blocks after it and
    is dropped at that restore while its own block is later recomputed from an earlier input;
    taping a block during an untaped advance; or holding two copies of one x[i]. A search over
    every valid schedule (tests/test_planner.py) measures what the space misses.

    The peak is the walk's accounted peak (x[0], working activations, saved inputs, tapes with
    shared buffers counted once, the transient bytes of each forward and backward, the loss
    gradient and the gradient flowing back), from the chain's real per-block sizes and FLOPs.

    Modes: "exact" tabulates each range's Pareto frontier of (peak, FLOPs) in bytes, so the
    plan is optimal in the space. "discretised" rounds every size up to a unit of
    u = max(ceil(budget / units), gcd of the sizes) bytes and tabulates every budget
    0..budget // u with numpy, in O(n^3 budget / u) time and O(n^2 budget / u) memory. Rounding
    up keeps every plan within the budget. A peak is a sum of at most 2n + 3 sizes (x[0..n],
    n tapes, two gradients), each rounded up by less than u, so the grid plan costs no more
    than the exact optimum at budget - (2n + 4) u; with u the gcd nothing rounds and the grid
    is exact. To win back some of the rounding, the grid also reaches a few units past the
    budget and keeps the cheapest of its plans whose simulated peak still fits (measured cost
    against exact: reports/planner.md). "auto" takes the exact grid when
    ceil(budget / units) <= gcd, else exact frontiers up to EXACT_MAX_BLOCKS blocks, else the
    rounding grid. At or above store-all's peak the answer is store-all.

    Raises ValueError when the budget is below the smallest feasible peak, naming it.
    """
    return solve_optimal(chain, budget_bytes, mode, units).schedule


# ---------------------------------------------------------------------------------------------
# The frontier.


def frontier(chain: Chain, mode: str = "auto", units: int = DEFAULT_UNITS) -> list[tuple[int, int]]:
    """Optimal total FLOPs against the budget: (budget_bytes, total_flops) at every change.

    Each point is the smallest budget at which that many FLOPs become possible, from the
    smallest feasible peak (the first point) up to store-all's peak (the last); between points
    the FLOPs of the point below apply. Modes as for ``solve_optimal``, with store-all's peak
    as the budget that sets the unit. Exact (frontiers, or a grid of the gcd) gives the exact
    frontier of optimal's space. Rounding grids, one per octave of budgets (store-all's peak,
    half of it, ... down to the smallest feasible peak, each with ``units`` cells), give for
    every grid budget where a grid's optimum changes the simulated peak and FLOPs of its plan:
    achievable points, each budget b planned at a unit of at most about 2 b / units.
    """
    full = simulate(store_all(chain.n), chain)
    top = (full.peak_bytes, full.flops["total"])
    method, unit = _method(chain, full.peak_bytes, mode, units)
    if method == "frontiers":
        tables = _exact_tables(chain)
        front, x0, fixed = tables.front[0, chain.n], tables.sizes.x[0], _fixed_flops(chain)
        points = [(p + x0, c + fixed) for p, c in zip(front.peaks, front.costs)]
        return [point for point in points if point[0] < top[0]] + [top]
    points = [top]
    if unit == size_gcd(chain):  # a grid of the gcd rounds nothing: one exact pass
        return _envelope(points + _grid_points(chain, unit, full.peak_bytes, 0))
    # Rounding: one grid at store-all's peak would round a small budget's sizes by a unit of
    # store-all's peak / units, far coarser than optimal(budget) rounds them (budget / units).
    # So tabulate a grid per octave, store-all's peak, half of it, ... down to the smallest
    # feasible peak, each keeping the points of its own octave: a budget b is then planned at
    # a unit of at most about 2 b / units.
    lean = simulate(_lean_tables(chain).schedule(), chain)
    points.append((lean.peak_bytes, lean.flops["total"]))  # rounding may miss the leanest
    ceiling = full.peak_bytes
    while True:
        unit = _grid_unit(chain, ceiling, units)
        last = unit == size_gcd(chain) or ceiling // 2 < lean.peak_bytes
        points += _grid_points(chain, unit, ceiling, 0 if last else ceiling // 2)
        if last:
            return _envelope(points)
        ceiling //= 2


def _grid_points(chain: Chain, unit: int, ceiling: int, floor: int) -> list[tuple[int, int]]:
    """(peak, total FLOPs) of the grid's plan at every grid budget in (floor, ceiling] bytes
    where its optimum changes, each simulated (so achievable, whatever the rounding)."""
    tables = _GridTables(chain, unit, ceiling // unit)
    x0 = tables.sizes.x[0]
    row = tables.rows[0][chain.n]  # nonincreasing in the budget
    before = np.concatenate(([INF], row[:-1]))
    points = []
    for m in np.flatnonzero(row < before).tolist():
        if (m + x0) * unit <= floor:
            continue  # a finer grid covers it
        schedule = _emit(tables.sizes, tables.prefix, tables.peaks, tables.value, m + x0)
        p = simulate(schedule, chain)
        points.append((p.peak_bytes, p.flops["total"]))
    return points


def _envelope(points) -> list[tuple[int, int]]:
    """The corners of the lower envelope: increasing budgets, strictly decreasing FLOPs."""
    out: list[tuple[int, int]] = []
    for budget, flops in sorted(points):
        if not out or flops < out[-1][1]:
            if out and out[-1][0] == budget:
                continue
            out.append((budget, flops))
    return out


# ---------------------------------------------------------------------------------------------
# select: the cheapest strategy that fits.


@dataclass(frozen=True)
class Candidate:
    """One strategy with its options, as the dry run predicts it."""

    strategy: str
    options: dict[str, int]
    schedule: Schedule = field(repr=False)
    flops: dict[str, int]
    flops_by_kind: dict[str, dict[str, int]] = field(repr=False)
    peak_bytes: int
    saved_inputs: int

    def to_dict(self) -> dict:
        """A JSON-ready summary (the schedule in its printed form)."""
        return {
            "strategy": self.strategy,
            "options": dict(self.options),
            "flops": dict(self.flops),
            "predicted_peak_bytes": self.peak_bytes,
            "saved_inputs": self.saved_inputs,
            "schedule": describe(self.schedule),
        }


@dataclass(frozen=True)
class Plan:
    """The strategy ``select`` chose for a budget, what it costs, and what else fitted.

    ``flops`` is by phase (forward, recompute, backward, loss, total), ``peak_bytes`` the
    predicted accounted peak (<= ``budget_bytes``). ``saves_memory`` is False when the plan's
    peak is no lower than store-all's (then ``note`` says so). ``runners_up`` holds every other
    fitting candidate, cheapest first. ``optimal_mode`` and ``optimal_unit_bytes`` say how
    the optimal candidate was planned (``OptimalSolution.mode`` and ``unit_bytes``): in the
    discretised mode every size was rounded up to that unit.
    """

    strategy: str
    options: dict[str, int]
    schedule: Schedule = field(repr=False)
    flops: dict[str, int]
    flops_by_kind: dict[str, dict[str, int]] = field(repr=False)
    peak_bytes: int
    budget_bytes: int
    saved_inputs: int
    store_all_peak_bytes: int
    store_all_flops: int
    saves_memory: bool
    note: str
    runners_up: list[Candidate] = field(repr=False)
    optimal_mode: str = "exact"
    optimal_unit_bytes: int = 1

    def to_dict(self) -> dict:
        """A JSON-ready form, for ``tradeoff plan --json``."""
        return {
            "strategy": self.strategy,
            "options": dict(self.options),
            "schedule": describe(self.schedule),
            "flops": dict(self.flops),
            "flops_by_kind": {kind: dict(v) for kind, v in self.flops_by_kind.items()},
            "predicted_peak_bytes": self.peak_bytes,
            "budget_bytes": self.budget_bytes,
            "saved_inputs": self.saved_inputs,
            "store_all_peak_bytes": self.store_all_peak_bytes,
            "store_all_flops": self.store_all_flops,
            "saves_memory": self.saves_memory,
            "note": self.note,
            "runners_up": [c.to_dict() for c in self.runners_up],
            "optimal_planning": {"mode": self.optimal_mode, "unit_bytes": self.optimal_unit_bytes},
        }


def revolve_slot_counts(n: int) -> list[int]:
    """The slot counts ``select`` tries for revolve: 1..8, sqrt's count, powers of two < n."""
    counts = set(range(1, min(n, 8) + 1)) | {max(1, len(segment_starts(n)) - 1)}
    counts |= {2**e for e in range(n.bit_length()) if 2**e < n}
    return sorted(counts)


def _named_candidates(n: int) -> list[tuple[str, dict[str, int]]]:
    """The named strategies ``select`` weighs, with their options (store-all first)."""
    named = [("store-all", {}), ("recompute-all", {}), ("sqrt", {})]
    return named + [("revolve", {"slots": s}) for s in revolve_slot_counts(n)]


def _candidate(chain: Chain, strategy: str, schedule: Schedule | None = None, **options):
    if schedule is None:
        schedule = build(strategy, chain, **options)
    p = simulate(schedule, chain)
    return Candidate(
        strategy, options, schedule, p.flops, p.flops_by_kind, p.peak_bytes, p.saved_inputs
    )


def select(chain: Chain, budget_bytes: int) -> Plan:
    """The plan with the fewest total FLOPs among every strategy whose accounted peak fits.

    Candidates: store-all, recompute-all, sqrt, revolve at ``revolve_slot_counts(n)`` and
    optimal at the budget. Ties go to store-all (so a budget at or above store-all's peak
    selects it, even where zero-FLOP blocks make a leaner plan cost the same), then to the
    lower peak, then to the earlier candidate. Raises ValueError when nothing fits, naming the
    smallest feasible peak in bytes.
    """
    budget = _check_budget(budget_bytes)
    check_feasible(chain, budget)
    solution = solve_optimal(chain, budget)
    named = _named_candidates(chain.n)
    candidates = [_candidate(chain, name, **options) for name, options in named]
    candidates.append(_candidate(chain, "optimal", solution.schedule, budget=budget))
    store = candidates[0]
    fitting = [c for c in candidates if c.peak_bytes <= budget]
    order = sorted(
        range(len(fitting)),
        key=lambda k: (
            fitting[k].flops["total"],
            fitting[k].strategy != "store-all",
            fitting[k].peak_bytes,
            k,
        ),
    )
    best = fitting[order[0]]
    saves = best.peak_bytes < store.peak_bytes
    if saves:
        saved = store.peak_bytes - best.peak_bytes
        note = (
            f"saves {saved:,} bytes ({saved / store.peak_bytes:.1%}) of store-all's accounted "
            f"peak for {best.flops['total'] / store.flops['total'] - 1:.1%} more FLOPs"
        )
    elif best.strategy == "store-all":
        note = "store-all fits the budget: no recomputation needed, nothing to save"
    else:
        note = "saves no memory against store-all"
    return Plan(
        strategy=best.strategy,
        options=best.options,
        schedule=best.schedule,
        flops=best.flops,
        flops_by_kind=best.flops_by_kind,
        peak_bytes=best.peak_bytes,
        budget_bytes=budget,
        saved_inputs=best.saved_inputs,
        store_all_peak_bytes=store.peak_bytes,
        store_all_flops=store.flops["total"],
        saves_memory=saves,
        note=note,
        runners_up=[fitting[k] for k in order[1:]],
        optimal_mode=solution.mode,
        optimal_unit_bytes=solution.unit_bytes,
    )


# ---------------------------------------------------------------------------------------------
# Budgets as the command line writes them (DESIGN section 3).

_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
# ASCII digits only: \d and str.isdigit also take '²' and other scripts' digits.
_WITH_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(KiB|MiB|GiB|KB|MB|GB)")
_DECIMAL = re.compile(r"[0-9]*\.[0-9]+|[0-9]+\.")


def is_whole(text: str) -> bool:
    """True for ASCII digits only ('12'); str.isdigit also says yes to '²', which int() refuses."""
    return text.isascii() and text.isdigit()


def parse_budget(text: str, store_all_peak_bytes: int) -> int:
    """A budget in bytes from '67108864', '64MiB', '1.5GB' or a fraction '0.25' of store-all.

    A bare integer is bytes; a number with a unit (KiB, MiB, GiB, KB, MB, GB) is rounded down
    to whole bytes; a bare decimal in (0, 1] is that fraction of ``store_all_peak_bytes``,
    rounded down. Anything else ('1.5', 'nan', '-1', '0', '', '12XB', 'inf'), or a budget that
    comes to 0 bytes, raises ValueError naming the problem.
    """
    if not isinstance(text, str):
        raise ValueError(f"budget must be text, got {text!r}")
    s = text.strip()
    if not s:
        raise ValueError("budget is empty: give bytes (67108864), a unit (64MiB) or a fraction")
    if is_whole(s):
        value = int(s)
    elif match := _WITH_UNIT.fullmatch(s):
        value = math.floor(Fraction(match[1]) * _UNITS[match[2]])
    elif _DECIMAL.fullmatch(s):
        fraction = Fraction(s)
        if not 0 < fraction <= 1:
            raise ValueError(
                f"budget {text!r}: a bare decimal is a fraction of store-all's peak and must "
                "lie in (0, 1]; write bytes or a unit for more"
            )
        value = math.floor(fraction * store_all_peak_bytes)
    else:
        raise ValueError(
            f"budget {text!r} is not bytes (67108864), a number with a unit "
            f"({', '.join(_UNITS)}) or a fraction in (0, 1]"
        )
    if value < 1:
        raise ValueError(f"budget {text!r} comes to {value} bytes; it must be at least 1 byte")
    return value
