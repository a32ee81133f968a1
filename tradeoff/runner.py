"""The runner: executes any schedule on a model and a batch. The only holder of activations.

It walks the schedule with numpy arrays (``schedule.walk``, the same state machine the dry run
uses), reports every array it holds to a meter, and returns the loss, the parameter gradients,
FLOPs by phase and kind, the accounted peak and the live-bytes timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .chain import Chain
from .layers import Array
from .meter import Meter
from .model import MLP
from .schedule import Action, Prediction, Schedule, simulate, walk
from .strategies import build

StrategyArg = str | Sequence[Action]


@dataclass
class RunResult:
    """One executed step: loss, gradients (in ``model.params`` order), FLOPs and bytes."""

    strategy: str
    schedule: Schedule = field(repr=False)
    loss: np.floating
    grads: list[Array] = field(repr=False)
    flops: dict[str, int]
    flops_by_kind: dict[str, dict[str, int]]
    peak_bytes: int
    timeline: list[int] = field(repr=False)
    saved_inputs: int
    param_bytes: int
    param_grad_bytes: int


class _ArrayOps:
    """The walk's operations on numpy arrays; FLOPs from the chain at the batch's size.

    Each block's bound methods and FLOP counts are looked up once per run, not once per action:
    a recompute-heavy schedule calls these thousands of times.
    """

    def __init__(self, model: MLP, chain: Chain, x: Array, y: Array):
        self.x, self.y = x, y
        # Each block's parameters are checked for NaN and inf just before its first forward
        # rather than all up front: the check brings them into cache for the matmul that reads
        # them next (measured: nearly free), instead of streaming every parameter from memory
        # once more per step. Every valid schedule runs blocks 0..n-1 in order before the loss
        # (and so before any gradient is written), so the first bad parameter is still the one
        # named.
        self.unchecked: list[tuple[int, list[Array]] | None] = []
        first = 0
        for block in model.blocks:
            params = block.params
            self.unchecked.append((first, params))
            first += len(params)
        self.forwards = [
            (block.fprop, cost.forward_matmul_flops, cost.forward_elementwise_flops)
            for block, cost in zip(model.blocks, chain.blocks)
        ]
        self.backwards = [
            (block.bprop, cost.backward_matmul_flops, cost.backward_elementwise_flops)
            for block, cost in zip(model.blocks, chain.blocks)
        ]
        self.loss_op = model.loss
        self.loss_value = None

    def batch(self) -> Array:
        return self.x

    def forward(self, i: int, x: Array):
        if self.unchecked[i] is not None:
            _check_params(*self.unchecked[i])
            self.unchecked[i] = None
        fprop, matmul, elementwise = self.forwards[i]
        out, tape = fprop(x)
        return out, tape, matmul, elementwise

    def loss(self, z: Array):
        self.loss_value, g = self.loss_op.value_and_grad(z, self.y)
        return g, 0, self.loss_op.flops(*z.shape)

    def backward(self, i: int, tape: tuple, g: Array):
        bprop, matmul, elementwise = self.backwards[i]
        return bprop(tape, g), matmul, elementwise


def resolve(model: MLP, batch: int, strategy: StrategyArg, **options) -> tuple[str, Schedule]:
    """(name, schedule) for a strategy name from STRATEGIES with its options, or a schedule."""
    return _resolve(model.chain(batch), strategy, options)


def _resolve(chain: Chain, strategy: StrategyArg, options: dict) -> tuple[str, Schedule]:
    if isinstance(strategy, str):
        return strategy, build(strategy, chain, **options)
    if any(value is not None for value in options.values()):
        raise ValueError("strategy options apply to named strategies, not to a given schedule")
    return "custom", tuple(strategy)


def check_batch(model: MLP, x: Array, y: Array, *, params: bool = True) -> Array:
    """Validate the batch and the weights before any work; returns targets in the model's dtype.

    Raises ValueError naming the problem: wrong shape or dtype, NaN or inf, bad labels.
    ``params=False`` leaves the parameters out (``run`` checks each block's as it first runs).
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != model.widths[0]:
        shape = getattr(x, "shape", None)
        raise ValueError(f"x must be an array of shape (batch, {model.widths[0]}), got {shape}")
    if x.shape[0] < 1:
        raise ValueError("x must hold at least one example")
    if x.dtype != model.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model is {model.dtype}")
    with np.errstate(all="ignore"):
        finite = _all_finite(x)
    if not finite:
        raise ValueError("x contains NaN or inf")
    if params:
        _check_params(0, model.params)
    y = np.asarray(y)
    if model.loss_name != "softmax_ce":
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all():
            raise ValueError("targets must be finite numbers")
        y = y.astype(model.dtype, copy=False)
    model.loss.check_targets(y, x.shape[0], model.widths[-1])
    return y


def _all_finite(a: Array) -> bool:
    """Whether every element of a float array is finite: one pass, no temporary array.

    The dot product of the flattened array with itself is finite when every element is: NaN
    and infinities propagate into it. It is also infinite when huge finite values overflow the
    sum of their squares; min and max then decide exactly (NaN propagates through them, and an
    infinity is an extreme). The BLAS dot is the fastest pass numpy has over an array (about
    twice as fast as min and max together), which matters because run() checks every parameter
    every step; np.isfinite(a).all() would also allocate a boolean array of a's size. The
    caller silences floating-point errors (np.errstate): here an overflow is a finding.
    """
    if a.flags.c_contiguous or a.flags.f_contiguous:  # flattened without a copy
        flat = a.ravel(order="K")
        if np.isfinite(np.dot(flat, flat)):
            return True
    return bool(
        np.isfinite(np.minimum.reduce(a, axis=None))
        and np.isfinite(np.maximum.reduce(a, axis=None))
    )


def _check_params(first: int, params: list[Array]) -> None:
    """Raise ValueError naming the first of ``params`` (numbered from ``first``) that is not
    finite."""
    with np.errstate(all="ignore"):
        for k, p in enumerate(params, start=first):
            if not _all_finite(p):
                raise ValueError(f"parameter {k} of the model contains NaN or inf")


def run(
    model: MLP,
    x: Array,
    y: Array,
    strategy: StrategyArg = "store-all",
    *,
    grads: list[Array] | None = None,
    **options,
) -> RunResult:
    """Execute one training step's forward and backward under ``strategy``.

    ``strategy`` is a name from ``STRATEGIES`` (options such as ``segments=`` go with it) or a
    schedule. Gradients go into fresh buffers unless ``grads`` (as from ``model.new_grads()``)
    is given; they are overwritten, never accumulated.
    """
    y = check_batch(model, x, y, params=False)  # the ops check each block's parameters
    # One chain serves the strategy's builder and the ops' FLOP counts.
    chain = model.chain(x.shape[0])
    name, schedule = _resolve(chain, strategy, options)
    if grads is None:
        grads = model.new_grads()
    model.bind_grads(grads)
    ops = _ArrayOps(model, chain, x, y)
    meter = Meter()
    saved_inputs = walk(schedule, model.n, ops, meter)
    return RunResult(
        strategy=name,
        schedule=schedule,
        loss=ops.loss_value,
        grads=grads,
        flops=meter.flops,
        flops_by_kind=meter.flops_by_kind,
        peak_bytes=meter.peak_bytes,
        timeline=meter.timeline,
        saved_inputs=saved_inputs,
        param_bytes=model.param_bytes,
        param_grad_bytes=sum(g.nbytes for g in grads),
    )


def predict(model: MLP, batch: int, strategy: StrategyArg = "store-all", **options) -> Prediction:
    """The dry run: FLOPs and accounted peak of ``strategy`` from shapes alone, no arrays."""
    _, schedule = resolve(model, batch, strategy, **options)
    return simulate(schedule, model.chain(batch))


def infer(model: MLP, x: Array) -> Array:
    """The network's output (logits) for ``x``: forwards only, nothing kept."""
    for block in model.blocks:
        x, _ = block.fprop(x)
    return x
