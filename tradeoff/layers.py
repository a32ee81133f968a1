"""Layers: fprop/bprop pairs that own parameters and their gradients, never activations.

Every op follows one protocol:

- ``fprop(a) -> (y, tape)``: the forward; ``tape`` is a tuple holding what ``bprop`` needs. The
  caller (the runner) decides whether to keep it; the op never stores it.
- ``bprop(tape, g) -> dx``: the backward; it writes parameter gradients into the op's gradient
  buffers (assigned by the runner before a step) and returns the gradient of its input.
- ``costs(rows, width, dtype)``: the exact FLOPs and tape bytes for ``rows`` examples, from shapes.

FLOP convention (DESIGN section 4): a matmul of (m x k) by (k x n) is 2*m*k*n FLOPs; every
element-wise pass (a ufunc over an array, a select, a reduction) counts one FLOP per element it
reads, and each op's docstring states its count. Activations may work in place on the freshly
computed pre-activation and on the incoming gradient: both belong to the runner, which never
shares them, and in-place work keeps the hot path free of temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray
Tape = tuple


@dataclass(frozen=True)
class ActCosts:
    """What one activation costs on a (rows x width) output.

    ``tape_bytes`` counts only the buffers the activation adds to the tape; ``keeps_output``
    says whether the tape also references the output itself (which is then shared with x[i+1]).
    """

    forward_flops: int
    backward_flops: int
    tape_bytes: int
    keeps_output: bool


class Linear:
    """y = x @ W + b, with W of shape (fan_in, fan_out) and b of shape (fan_out,)."""

    def __init__(self, W: Array, b: Array):
        self.W = W
        self.b = b
        self.dW: Array | None = None
        self.db: Array | None = None

    @property
    def params(self) -> list[Array]:
        """The parameters, in the order of ``MLP.params``."""
        return [self.W, self.b]

    def bind_grads(self, dW: Array, db: Array) -> None:
        """Point the gradient outputs at caller-owned buffers (overwritten, not accumulated)."""
        self.dW, self.db = dW, db

    def fprop(self, x: Array) -> tuple[Array, Tape]:
        """One matmul and one bias add (rows * fan_out FLOPs); the tape is (x,)."""
        a = x @ self.W
        a += self.b
        return a, (x,)

    def bprop(self, tape: Tape, g: Array, need_dx: bool = True) -> Array | None:
        """dW = x^T g, db = sum of g over rows (rows * fan_out FLOPs), dx = g W^T.

        ``need_dx=False`` skips dx: the batch needs no gradient, so Backward(0) saves a matmul.
        """
        (x,) = tape
        np.matmul(x.T, g, out=self.dW)
        # np.add.reduce is what np.sum calls, minus its Python wrapper (the same arithmetic).
        np.add.reduce(g, axis=0, out=self.db)
        return g @ self.W.T if need_dx else None

    def flops(self, rows: int, need_dx: bool = True) -> tuple[tuple[int, int], tuple[int, int]]:
        """((forward matmul, forward element-wise), (backward matmul, backward element-wise))."""
        fan_in, fan_out = self.W.shape
        forward = (2 * rows * fan_in * fan_out, rows * fan_out)
        backward_matmul = 2 * rows * fan_in * fan_out * (2 if need_dx else 1)
        backward = (backward_matmul, rows * fan_out)
        return forward, backward


class Identity:
    """A linear hidden layer: y = a. No FLOPs, no tape beyond the Linear's input."""

    name = "identity"

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """Returns a itself: 0 FLOPs."""
        return a, ()

    def bprop(self, tape: Tape, g: Array) -> Array:
        """Returns g itself: 0 FLOPs."""
        return g

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """Nothing to count."""
        return ActCosts(0, 0, 0, False)


class ReLU:
    """y = max(a, 0). Tape: the output y, whose sign is the mask (y > 0 iff a > 0)."""

    name = "relu"

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """In place: one comparison per element."""
        np.maximum(a, 0, out=a)
        return a, (a,)

    def bprop(self, tape: Tape, g: Array) -> Array:
        """g *= (y > 0): one comparison and one multiply per element."""
        (y,) = tape
        g *= y > 0
        return g

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """1 FLOP per element forward, 2 backward; the tape adds nothing but the output."""
        n = rows * width
        return ActCosts(n, 2 * n, 0, True)


class LeakyReLU:
    """y = a if a > 0 else alpha * a. alpha = 0.01 is leaky ReLU, alpha = -1 is |a|.

    The tape is a boolean mask (1 byte per element): the output alone cannot tell the sign of a
    when alpha <= 0.
    """

    def __init__(self, alpha: float = 0.01, name: str = "leaky_relu"):
        self.alpha = float(alpha)
        self.name = name

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """mask = a > 0, then a *= where(mask, 1, alpha): 3 FLOPs per element."""
        mask = a > 0
        a *= np.where(mask, a.dtype.type(1), a.dtype.type(self.alpha))
        return a, (mask,)

    def bprop(self, tape: Tape, g: Array) -> Array:
        """g *= where(mask, 1, alpha): 2 FLOPs per element."""
        (mask,) = tape
        g *= np.where(mask, g.dtype.type(1), g.dtype.type(self.alpha))
        return g

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """3 FLOPs per element forward, 2 backward; the tape adds one bool per element."""
        n = rows * width
        return ActCosts(3 * n, 2 * n, n, False)


class PReLU:
    """y = a if a > 0 else alpha * a, with one learned alpha per unit (He et al. 2015).

    The tape is the pre-activation a, which the gradient of alpha needs.
    """

    name = "prelu"

    def __init__(self, alpha: Array):
        self.alpha = alpha
        self.dalpha: Array | None = None

    @property
    def params(self) -> list[Array]:
        """[alpha]."""
        return [self.alpha]

    def bind_grads(self, dalpha: Array) -> None:
        """Point the gradient output at a caller-owned buffer."""
        self.dalpha = dalpha

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """y = where(a > 0, a, alpha * a): a multiply, a comparison, a select: 3 per element."""
        y = np.where(a > 0, a, a * self.alpha)
        return y, (a,)

    def bprop(self, tape: Tape, g: Array) -> Array:
        """dalpha = sum over rows of where(a > 0, 0, g * a); g *= where(a > 0, 1, alpha).

        Comparison, multiply, select, sum (4) then select, multiply (2): 6 FLOPs per element.
        """
        (a,) = tape
        positive = a > 0
        np.sum(np.where(positive, 0, g * a), axis=0, out=self.dalpha)
        g *= np.where(positive, g.dtype.type(1), self.alpha)
        return g

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """3 FLOPs per element forward, 6 backward; the tape adds the pre-activation."""
        n = rows * width
        return ActCosts(3 * n, 6 * n, n * np.dtype(dtype).itemsize, False)


class Maxout:
    """y[:, j] = max over p of a[:, j * k + p] (Goodfellow et al. 2013), k pieces per unit.

    The Linear before it has k * width outputs. The tape is the winning piece of each unit as
    uint8 (k <= 255), the smallest record the backward needs.
    """

    name = "maxout"

    def __init__(self, pieces: int):
        self.pieces = self.check_pieces(pieces)

    @staticmethod
    def check_pieces(pieces: int) -> int:
        """``pieces`` as an int if it is a whole number from 2 to 255; ValueError otherwise."""
        if isinstance(pieces, bool) or not isinstance(pieces, int | np.integer):
            raise ValueError(f"maxout needs a whole number of pieces, got {pieces!r}")
        if not 2 <= pieces <= 255:
            raise ValueError(f"maxout needs 2 to 255 pieces, got {pieces}")
        return int(pieces)

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """argmax over the pieces: k - 1 comparisons per output element; the gather is free."""
        rows = a.shape[0]
        pieces = a.reshape(rows, -1, self.pieces)
        winner = pieces.argmax(axis=2)[..., None]
        y = np.take_along_axis(pieces, winner, axis=2)[..., 0]
        return y, (winner.astype(np.uint8),)

    def bprop(self, tape: Tape, g: Array) -> Array:
        """Scatter g to the winning pieces: no arithmetic, 0 FLOPs."""
        (winner,) = tape
        rows, width = g.shape
        da = np.zeros((rows, width, self.pieces), dtype=g.dtype)
        np.put_along_axis(da, winner.astype(np.intp), g[..., None], axis=2)
        return da.reshape(rows, width * self.pieces)

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """(k - 1) FLOPs per output element forward, 0 backward; one uint8 per output element."""
        n = rows * width
        return ActCosts((self.pieces - 1) * n, 0, n, False)


class Sigmoid:
    """y = 1 / (1 + exp(-a)). Tape: the output y (y' = y (1 - y)).

    exp(-a) overflows to inf for a < -709 (float64); 1 / (1 + inf) is then exactly 0, the
    correct limit, so the overflow warning is silenced rather than the formula changed.
    """

    name = "sigmoid"

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """In place: negate, exp, add 1, reciprocal: 4 FLOPs per element."""
        with np.errstate(over="ignore"):
            np.negative(a, out=a)
            np.exp(a, out=a)
        a += 1
        np.reciprocal(a, out=a)
        return a, (a,)

    def bprop(self, tape: Tape, g: Array) -> Array:
        """g *= y * (1 - y): 3 FLOPs per element."""
        (y,) = tape
        g *= y * (1 - y)
        return g

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """4 FLOPs per element forward, 3 backward; the tape adds nothing but the output."""
        n = rows * width
        return ActCosts(4 * n, 3 * n, 0, True)


class Tanh:
    """y = tanh(a). Tape: the output y (y' = 1 - y^2)."""

    name = "tanh"

    def fprop(self, a: Array) -> tuple[Array, Tape]:
        """In place: 1 FLOP per element."""
        np.tanh(a, out=a)
        return a, (a,)

    def bprop(self, tape: Tape, g: Array) -> Array:
        """g *= 1 - y * y: 3 FLOPs per element."""
        (y,) = tape
        g *= 1 - y * y
        return g

    def costs(self, rows: int, width: int, dtype: np.dtype) -> ActCosts:
        """1 FLOP per element forward, 3 backward; the tape adds nothing but the output."""
        n = rows * width
        return ActCosts(n, 3 * n, 0, True)


ACTIVATIONS = ("relu", "leaky_relu", "abs", "prelu", "maxout", "sigmoid", "tanh", "identity")


class SoftmaxCrossEntropy:
    """Softmax output with cross-entropy against integer class labels, mean over the batch.

    Stable by log-sum-exp: the row maximum is subtracted before exp, so huge logits cannot
    overflow. The gradient is (softmax(z) - onehot(y)) / rows.
    """

    name = "softmax_ce"

    def check_targets(self, y: Array, rows: int, classes: int) -> None:
        """Labels: integers in [0, classes), one per example."""
        if y.shape != (rows,):
            raise ValueError(f"softmax_ce labels must have shape ({rows},), got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"softmax_ce labels must be integers, got {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(
                f"softmax_ce labels must lie in [0, {classes}), got {y.min()}..{y.max()}"
            )

    def value_and_grad(self, z: Array, y: Array) -> tuple[Array, Array]:
        """6 FLOPs per logit (max, subtract, exp, sum, divide, scale) + 4 per row + 1."""
        rows = z.shape[0]
        picked = np.arange(rows)
        shifted = z - z.max(axis=1, keepdims=True)
        picked_shifted = shifted[picked, y]
        e = np.exp(shifted, out=shifted)  # in place: shifted is ours, and one temporary fewer
        total = e.sum(axis=1, keepdims=True)
        loss = (np.log(total[:, 0]) - picked_shifted).sum() / rows
        e /= total
        e[picked, y] -= 1
        e /= rows
        return loss, e

    def flops(self, rows: int, classes: int) -> int:
        """See value_and_grad."""
        return 6 * rows * classes + 4 * rows + 1


class SigmoidBinaryCrossEntropy:
    """Sigmoid output with binary cross-entropy, summed over outputs, mean over the batch.

    Per element: max(z, 0) - z t + log1p(exp(-|z|)), which never overflows; the gradient is
    (sigmoid(z) - t) / rows with sigmoid built from the same exp(-|z|).
    """

    name = "sigmoid_bce"

    def check_targets(self, y: Array, rows: int, classes: int) -> None:
        """Targets: an array of shape (rows, classes) with values in [0, 1]."""
        if y.shape != (rows, classes):
            raise ValueError(
                f"sigmoid_bce targets must have shape ({rows}, {classes}), got {y.shape}"
            )
        if y.size and not (np.all(y >= 0) and np.all(y <= 1)):
            raise ValueError("sigmoid_bce targets must lie in [0, 1]")

    def value_and_grad(self, z: Array, y: Array) -> tuple[Array, Array]:
        """15 FLOPs per logit + 1: abs, negate, exp, log1p, max, multiply, subtract, add, sum
        for the loss; compare, select, add, divide, subtract, scale for the gradient."""
        rows = z.shape[0]
        e = np.exp(-np.abs(z))
        loss = (np.maximum(z, 0) - z * y + np.log1p(e)).sum() / rows
        g = np.where(z >= 0, 1, e) / (1 + e)
        g -= y
        g /= rows
        return loss, g

    def flops(self, rows: int, classes: int) -> int:
        """See value_and_grad: 9 passes for the loss, 6 for the gradient, 1 final divide."""
        return 15 * rows * classes + 1


class SquaredError:
    """Identity output with squared error summed over outputs, mean over the batch (no 1/2)."""

    name = "mse"

    def check_targets(self, y: Array, rows: int, classes: int) -> None:
        """Targets: a real array of shape (rows, classes)."""
        if y.shape != (rows, classes):
            raise ValueError(f"mse targets must have shape ({rows}, {classes}), got {y.shape}")

    def value_and_grad(self, z: Array, y: Array) -> tuple[Array, Array]:
        """subtract, square, sum, then scale the difference: 4 FLOPs per output + 1."""
        rows = z.shape[0]
        d = z - y
        loss = (d * d).sum() / rows
        d *= 2 / rows
        return loss, d

    def flops(self, rows: int, classes: int) -> int:
        """See value_and_grad."""
        return 4 * rows * classes + 1


LOSSES = {
    "softmax_ce": SoftmaxCrossEntropy,
    "sigmoid_bce": SigmoidBinaryCrossEntropy,
    "mse": SquaredError,
}
