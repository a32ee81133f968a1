"""The multilayer perceptron: a chain of blocks, each a Linear layer and its activation."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from .chain import BlockCost, Chain
from .layers import (
    ACTIVATIONS,
    LOSSES,
    Array,
    Identity,
    LeakyReLU,
    Linear,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    Tanh,
    Tape,
)

DTYPES = ("float64", "float32")


class Block:
    """One Linear layer and its activation: x[i+1] = act(x[i] @ W + b).

    The tape is the Linear's (x[i],) followed by the activation's own entries.
    """

    def __init__(self, index: int, linear: Linear, activation):
        self.index = index
        self.linear = linear
        self.activation = activation

    @property
    def params(self) -> list[Array]:
        """The Linear's parameters, then the activation's (PReLU's alpha)."""
        return self.linear.params + getattr(self.activation, "params", [])

    def bind_grads(self, grads: Sequence[Array]) -> None:
        """Point every parameter's gradient at the matching caller-owned buffer."""
        self.linear.bind_grads(grads[0], grads[1])
        if len(grads) > 2:
            self.activation.bind_grads(grads[2])

    def fprop(self, x: Array) -> tuple[Array, Tape]:
        """x[i] -> (x[i+1], tape)."""
        a, linear_tape = self.linear.fprop(x)
        y, act_tape = self.activation.fprop(a)
        return y, linear_tape + act_tape

    def bprop(self, tape: Tape, g: Array) -> Array | None:
        """Gradient of x[i+1] -> gradient of x[i] (None for block 0: the batch needs none)."""
        g = self.activation.bprop(tape[1:], g)
        return self.linear.bprop(tape[:1], g, need_dx=self.index > 0)

    def costs(self, rows: int) -> BlockCost:
        """Exact FLOPs and bytes of this block on ``rows`` examples, from shapes alone."""
        fan_in, linear_out = self.linear.W.shape
        width = linear_out // getattr(self.activation, "pieces", 1)
        itemsize = self.linear.W.dtype.itemsize
        (fwd_mm, fwd_ew), (bwd_mm, bwd_ew) = self.linear.flops(rows, need_dx=self.index > 0)
        act = self.activation.costs(rows, width, self.linear.W.dtype)
        return BlockCost(
            forward_matmul_flops=fwd_mm,
            forward_elementwise_flops=fwd_ew + act.forward_flops,
            backward_matmul_flops=bwd_mm,
            backward_elementwise_flops=bwd_ew + act.backward_flops,
            input_bytes=rows * fan_in * itemsize,
            output_bytes=rows * width * itemsize,
            tape_bytes=act.tape_bytes,
            keeps_output=act.keeps_output,
        )


def _dtype_name(dtype) -> str | None:
    """'float32' for 'float32', np.float32 or np.dtype('float32'); None for what is no dtype."""
    try:
        return np.dtype(dtype).name if dtype is not None else None
    except TypeError:
        return None


def _placeholder(shape, dtype) -> Array:
    """A read-only array of the right shape and dtype that occupies no memory (stride 0)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def _make_activation(name, width: int, dtype, alpha: float, pieces: int, allocate: bool = True):
    if name == "relu":
        return ReLU()
    if name == "leaky_relu":
        return LeakyReLU(alpha, name="leaky_relu")
    if name == "abs":
        return LeakyReLU(-1.0, name="abs")
    if name == "prelu":
        alpha_init = np.full(width, 0.25, dtype=dtype) if allocate else _placeholder(width, dtype)
        return PReLU(alpha_init)
    if name == "maxout":
        return Maxout(pieces)
    if name == "sigmoid":
        return Sigmoid()
    if name == "tanh":
        return Tanh()
    return Identity()


class MLP:
    """A multilayer perceptron of n = len(widths) - 1 blocks, reproducible from its seed.

    Block i maps x[i] (widths[i] columns) to x[i+1] (widths[i+1] columns) by
    x[i+1] = act(x[i] @ W_i + b_i); the last block is the Linear layer alone (its output is the
    logits) and ``loss`` applies the output unit. ``params`` is [W0, b0, W1, b1, ...], with
    PReLU's per-unit alpha after each hidden block's bias, and maxout's W_i of shape
    (widths[i], widths[i+1] * pieces).

    Weights are drawn from N(0, gain / fan_in) (gain 2 for the rectifiers, 1 otherwise); biases
    start at zero. With ``allocate=False`` the parameters are zero-memory placeholders of the
    right shapes: the model cannot run, but its ``chain()`` is exact, so a model far too large
    for this machine can be checked and planned before anything is allocated.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: str = "relu",
        loss: str = "softmax_ce",
        dtype: str = "float64",
        seed: int = 0,
        alpha: float = 0.01,
        pieces: int = 2,
        allocate: bool = True,
    ):
        widths = list(widths)
        if len(widths) < 2:
            raise ValueError(f"widths needs at least two entries (input and output), got {widths}")
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1:
                raise ValueError(f"every width must be a whole number >= 1, got {w!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        dtype_name = _dtype_name(dtype)
        if dtype_name not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number, got {alpha!r}")
        if activation == "maxout":
            # Checked here too: a one-block model has no hidden maxout that would check it.
            Maxout.check_pieces(pieces)
        self.widths = [int(w) for w in widths]
        self.activation = activation
        self.loss_name = loss
        self.dtype = np.dtype(dtype_name)
        self.seed = seed
        self.alpha = alpha
        self.pieces = pieces
        self.loss = LOSSES[loss]()
        rng = np.random.default_rng(seed)
        gain = 2.0 if activation in ("relu", "leaky_relu", "abs", "prelu", "maxout") else 1.0
        self.blocks: list[Block] = []
        # chain(batch) by batch size: the blocks are fixed from here on, and run() reads the
        # chain every step (building it costs about 1% of a step of 64 small blocks).
        self._chains: dict[int, Chain] = {}
        for i, (fan_in, width) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            last = i == len(self.widths) - 2
            act = (
                Identity()
                if last
                else _make_activation(activation, width, self.dtype, alpha, pieces, allocate)
            )
            out = width * getattr(act, "pieces", 1)
            if allocate:
                W = rng.standard_normal((fan_in, out)) * np.sqrt(gain / fan_in)
                W, b = W.astype(self.dtype), np.zeros(out, dtype=self.dtype)
            else:
                W, b = _placeholder((fan_in, out), self.dtype), _placeholder(out, self.dtype)
            self.blocks.append(Block(i, Linear(W, b), act))

    @property
    def n(self) -> int:
        """The number of blocks."""
        return len(self.blocks)

    @property
    def params(self) -> list[Array]:
        """Every parameter array, block by block."""
        return [p for block in self.blocks for p in block.params]

    @property
    def param_bytes(self) -> int:
        """The bytes of all parameters (equal to the bytes of their gradients)."""
        return sum(p.nbytes for p in self.params)

    def new_grads(self) -> list[Array]:
        """Fresh zeroed gradient buffers, one per entry of ``params``."""
        return [np.zeros_like(p) for p in self.params]

    def bind_grads(self, grads: Sequence[Array]) -> None:
        """Make the layers write their gradients into ``grads`` (as from ``new_grads``)."""
        at = 0
        for block in self.blocks:
            count = len(block.params)
            block.bind_grads(grads[at : at + count])
            at += count

    def chain(self, batch: int) -> Chain:
        """The per-block costs at this batch size: what the dry run and the planner read.

        Computed once per batch size and kept: a model's blocks do not change after it is built.
        """
        if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
            raise ValueError(f"batch must be a whole number >= 1, got {batch!r}")
        batch = int(batch)
        chain = self._chains.get(batch)
        if chain is None:
            classes = self.widths[-1]
            chain = Chain(
                blocks=tuple(block.costs(batch) for block in self.blocks),
                loss_flops=self.loss.flops(batch, classes),
                loss_bytes=batch * classes * self.dtype.itemsize,
                param_bytes=self.param_bytes,
            )
            self._chains[batch] = chain  # immutable (frozen dataclasses, tuples): safe to share
        return chain

    def describe(self) -> str:
        """A one-line summary, for example '784-512-10 relu softmax_ce float64'."""
        widths = "-".join(map(str, self.widths))
        return f"{widths} {self.activation} {self.loss_name} {self.dtype.name}"

    def __repr__(self) -> str:
        return (
            f"MLP({self.widths}, activation={self.activation!r}, loss={self.loss_name!r}, "
            f"dtype={self.dtype.name!r}, seed={self.seed})"
        )


def make_batch(model: MLP, batch: int, seed: int = 0) -> tuple[Array, Array]:
    """A reproducible batch for ``model``: inputs from N(0, 1) and targets that suit its loss.

    softmax_ce: integer labels in [0, classes); sigmoid_bce: 0/1 targets; mse: N(0, 1) targets.
    """
    model.chain(batch)  # validates the batch size
    rng = np.random.default_rng(seed)
    classes = model.widths[-1]
    x = rng.standard_normal((batch, model.widths[0])).astype(model.dtype)
    if model.loss_name == "softmax_ce":
        y = rng.integers(0, classes, size=batch)
    elif model.loss_name == "sigmoid_bce":
        y = rng.integers(0, 2, size=(batch, classes)).astype(model.dtype)
    else:
        y = rng.standard_normal((batch, classes)).astype(model.dtype)
    return x, y


def xor_network() -> MLP:
    """The hand-built XOR network: W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0, ReLU."""
    model = MLP([2, 2, 1], activation="relu", loss="mse")
    hidden, output = model.blocks
    hidden.linear.W[...] = [[1, 1], [1, 1]]
    hidden.linear.b[...] = [0, -1]
    output.linear.W[...] = [[1], [-2]]
    output.linear.b[...] = [0]
    return model
