"""Schedules: the actions, their printed form, and the one walk that executes or simulates them.

A schedule is a tuple of small frozen actions. ``walk`` is the state machine that every
execution goes through: the runner walks a schedule with numpy arrays, ``simulate`` walks it
with placeholders that only know their size (the dry run). Because both go through the same
walk, the same validity checks and the same accounting apply to both, and the dry run predicts
the runner's FLOPs and accounted bytes exactly.

State of a walk: the working activation (the x that the next forward reads), the saved inputs,
the tapes of blocks not yet reversed, and the gradient flowing back. The working activation is
released as soon as no later action reads it (the next action that touches it is a Restore, or
there is none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .chain import Chain
from .meter import Meter


@dataclass(frozen=True, slots=True)
class Save:
    """Keep a reference to the working activation x[i] (a slot), to restart forwards from it."""

    i: int

    def __str__(self) -> str:
        return f"S{self.i}"


@dataclass(frozen=True, slots=True)
class Forward:
    """Run block i on the working x[i]; with ``tape=True`` keep what Backward(i) needs."""

    i: int
    tape: bool = False

    def __str__(self) -> str:
        return f"F{self.i}{'*' if self.tape else ''}"


@dataclass(frozen=True, slots=True)
class Loss:
    """Apply the output unit and the loss to x[n]; start the gradient flowing back."""

    def __str__(self) -> str:
        return "L"


@dataclass(frozen=True, slots=True)
class Backward:
    """Reverse block i from its tape: parameter gradients, and the gradient of x[i]."""

    i: int

    def __str__(self) -> str:
        return f"B{self.i}"


@dataclass(frozen=True, slots=True)
class Restore:
    """Make the saved x[i] the working activation again."""

    i: int

    def __str__(self) -> str:
        return f"R{self.i}"


@dataclass(frozen=True, slots=True)
class Drop:
    """Let go of the saved x[i], freeing its slot."""

    i: int

    def __str__(self) -> str:
        return f"D{self.i}"


Action = Save | Forward | Loss | Backward | Restore | Drop
Schedule = tuple[Action, ...]


class InvalidSchedule(ValueError):
    """A schedule that cannot be executed; the message names the offending action."""


def describe(schedule: Iterable[Action], limit: int | None = None) -> str:
    """The printed form, one token per action: 'S0 F0 F1* L B1 R0 F0* B0 D0'.

    With ``limit``, a longer schedule keeps its first and last ``limit // 2`` tokens around
    '... (k more) ...'.
    """
    tokens = [str(a) for a in schedule]
    if limit is not None and len(tokens) > limit:
        half = max(limit // 2, 1)
        hidden = len(tokens) - 2 * half
        tokens = tokens[:half] + [f"... ({hidden} more) ..."] + tokens[-half:]
    return " ".join(tokens)


_PARSERS = {"S": Save, "R": Restore, "D": Drop, "B": Backward}


def parse(text: str) -> Schedule:
    """The inverse of ``describe``: 'S0 F0 F1* L B1 ...' -> a schedule."""
    actions: list[Action] = []
    for token in text.split():
        head, body = token[0], token[1:]
        if token == "L":
            actions.append(Loss())
        elif head == "F" and body.rstrip("*").isdigit():
            actions.append(Forward(int(body.rstrip("*")), tape=body.endswith("*")))
        elif head in _PARSERS and body.isdigit():
            actions.append(_PARSERS[head](int(body)))
        else:
            raise ValueError(f"cannot parse schedule token {token!r}")
    return tuple(actions)


def _prepass(schedule: Sequence[Action], n: int) -> tuple[list[bool], int]:
    """(needed, first_bad): one pass over the schedule before the walk.

    needed[k]: does an action after k read the working activation left by action k? It does if
    the next action that touches the working activation is a Forward, a Save or the Loss; a
    Restore replaces it, and Backward and Drop do not touch it.

    first_bad: the position of the first action whose index lies outside its range (blocks are
    0..n-1; inputs that may be saved are x[0]..x[n]), or -1. The walk raises there, after every
    earlier action has been checked, so the first offending action is still the one named; the
    range check thus costs the walk's loop one comparison per action.
    """
    needed = [False] * len(schedule)
    first_bad = -1
    reads = False
    for k in range(len(schedule) - 1, -1, -1):
        needed[k] = reads
        action = schedule[k]
        if isinstance(action, Forward | Save | Loss):
            reads = True
        elif isinstance(action, Restore):
            reads = False
        index = getattr(action, "i", None)
        if index is not None and not 0 <= index <= _index_limit(action, n):
            first_bad = k
    return needed, first_bad


def _index_limit(action, n: int) -> int:
    """The largest valid index of an action: n for a saved input, n - 1 for a block."""
    return n if isinstance(action, Save | Restore | Drop) else n - 1


def walk(schedule: Sequence[Action], n: int, ops, meter: Meter, slots: int | None = None) -> int:
    """Execute ``schedule`` on a chain of ``n`` blocks through ``ops``, accounting in ``meter``.

    ``ops`` computes: ``batch()`` gives x[0]; ``forward(i, x)`` gives (output, tape buffers,
    matmul FLOPs, element-wise FLOPs); ``loss(x)`` gives (gradient, FLOPs...);
    ``backward(i, tape, g)`` gives (gradient of x[i] or None, FLOPs...). Raises InvalidSchedule
    naming the first action that cannot run. Returns the most saved inputs held at once.
    """
    needed, first_bad = _prepass(schedule, n)
    working = ops.batch()
    meter.hold(working)
    at: int | None = 0  # the index of the working activation, None when there is none
    saved: dict[int, object] = {}
    tapes: dict[int, tuple] = {}
    grad = None
    next_reverse = n - 1  # blocks are reversed from last to first, each once
    loss_done = False
    most_saved = 0

    def have() -> str:
        return (
            "there is no working activation" if at is None else f"the working activation is x[{at}]"
        )

    # Error texts are formatted only when raised (these closures read the loop's current k and
    # action): formatting every action's name would cost the loop more than its bookkeeping.
    def where() -> str:
        return f"action {k} ({action})"

    for k, action in enumerate(schedule):
        if k == first_bad:
            raise InvalidSchedule(
                f"{where()}: index {action.i} is outside 0..{_index_limit(action, n)}"
            )
        meter.begin_action()
        match action:
            case Forward(i=i, tape=keep):
                if at != i:
                    raise InvalidSchedule(f"{where()}: block {i} needs x[{i}], but {have()}")
                if loss_done and i > next_reverse:
                    raise InvalidSchedule(f"{where()}: block {i} is already reversed")
                if keep and i in tapes:
                    raise InvalidSchedule(f"{where()}: block {i} already holds a tape")
                out, tape, matmul, elementwise = ops.forward(i, working)
                meter.count("recompute" if loss_done else "forward", matmul, elementwise)
                # Input, output and tape are alive together during the forward.
                meter.hold(out)
                for buf in tape:
                    meter.hold(buf)
                if keep:
                    tapes[i] = tape
                else:
                    for buf in tape:
                        meter.release(buf)
                meter.release(working)
                working, at = out, i + 1
            case Loss():
                if loss_done:
                    raise InvalidSchedule(f"{where()}: the loss was already taken")
                if at != n:
                    raise InvalidSchedule(f"{where()}: the loss needs x[{n}], but {have()}")
                grad, matmul, elementwise = ops.loss(working)
                meter.count("loss", matmul, elementwise)
                meter.hold(grad)
                loss_done = True
            case Backward(i=i):
                if not loss_done:
                    raise InvalidSchedule(f"{where()}: a backward before the loss")
                if i > next_reverse:
                    raise InvalidSchedule(f"{where()}: block {i} is reversed twice")
                if i < next_reverse:
                    raise InvalidSchedule(
                        f"{where()}: out of order, block {next_reverse} must be reversed first"
                    )
                if i not in tapes:
                    raise InvalidSchedule(f"{where()}: block {i} has no tape (run F{i}* first)")
                tape = tapes.pop(i)
                out, matmul, elementwise = ops.backward(i, tape, grad)
                meter.count("backward", matmul, elementwise)
                # Tape, incoming and outgoing gradient are alive together during the backward.
                if out is not None:
                    meter.hold(out)
                for buf in tape:
                    meter.release(buf)
                meter.release(grad)
                grad = out
                next_reverse -= 1
            case Save(i=i):
                if at != i:
                    raise InvalidSchedule(f"{where()}: cannot save x[{i}]: {have()}")
                if i in saved:
                    raise InvalidSchedule(f"{where()}: x[{i}] is already saved")
                if slots is not None and len(saved) >= slots:
                    held = len(saved) + 1
                    raise InvalidSchedule(
                        f"{where()}: would hold {held} saved inputs, more than {slots} slots"
                    )
                saved[i] = working
                meter.hold(working)
                most_saved = max(most_saved, len(saved))
            case Restore(i=i):
                if i not in saved:
                    raise InvalidSchedule(f"{where()}: x[{i}] was never saved (or was dropped)")
                assert working is None, f"{action} while {have()} is still needed"
                working, at = saved[i], i
                meter.hold(working)
            case Drop(i=i):
                if i not in saved:
                    raise InvalidSchedule(f"{where()}: x[{i}] is not saved")
                meter.release(saved.pop(i))
            case _:
                raise InvalidSchedule(f"{where()}: not an action")
        if working is not None and not needed[k]:
            meter.release(working)
            working, at = None, None
        meter.end_action()

    if not loss_done:
        raise InvalidSchedule("the schedule ends before the loss (L)")
    if next_reverse >= 0:
        raise InvalidSchedule(f"the schedule ends with blocks {next_reverse}..0 not reversed")
    if saved:
        held = ", ".join(f"x[{i}]" for i in sorted(saved))
        raise InvalidSchedule(f"the schedule ends with {held} still saved (drop them)")
    return most_saved


@dataclass(frozen=True, slots=True, eq=False)
class Placeholder:
    """A buffer in a dry run: it has a size and an identity, and no data."""

    nbytes: int


class _ShapeOps:
    """The walk's operations on placeholders, with the costs read from a chain."""

    def __init__(self, chain: Chain):
        self.chain = chain

    def batch(self):
        return Placeholder(self.chain.x_bytes(0))

    def forward(self, i, x):
        cost = self.chain.blocks[i]
        out = Placeholder(cost.output_bytes)
        tape = (x,)
        if cost.tape_bytes:
            tape += (Placeholder(cost.tape_bytes),)
        if cost.keeps_output:
            tape += (out,)
        return out, tape, cost.forward_matmul_flops, cost.forward_elementwise_flops

    def loss(self, x):
        return Placeholder(self.chain.loss_bytes), 0, self.chain.loss_flops

    def backward(self, i, tape, g):
        cost = self.chain.blocks[i]
        out = Placeholder(cost.input_bytes) if i > 0 else None
        return out, cost.backward_matmul_flops, cost.backward_elementwise_flops


@dataclass
class Prediction:
    """What a dry run predicts: FLOPs by phase and kind, the accounted peak, the timeline."""

    schedule: Schedule
    flops: dict[str, int]
    flops_by_kind: dict[str, dict[str, int]]
    peak_bytes: int
    timeline: list[int] = field(repr=False)
    saved_inputs: int
    param_bytes: int


def simulate(schedule: Sequence[Action], chain: Chain, slots: int | None = None) -> Prediction:
    """Walk ``schedule`` without arrays: validate it and predict FLOPs and accounted bytes."""
    schedule = tuple(schedule)
    meter = Meter()
    most_saved = walk(schedule, chain.n, _ShapeOps(chain), meter, slots=slots)
    return Prediction(
        schedule=schedule,
        flops=meter.flops,
        flops_by_kind=meter.flops_by_kind,
        peak_bytes=meter.peak_bytes,
        timeline=meter.timeline,
        saved_inputs=most_saved,
        param_bytes=chain.param_bytes,
    )
