"""A chain: the costs of a network at one batch size, which the dry run and the planner read.

``MLP.chain(batch)`` builds one from shapes; a user can write one for any network whose blocks
form a chain (x[i+1] = f_i(x[i])), and plan it without running it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockCost:
    """The costs of block i, which maps x[i] to x[i+1].

    ``tape_bytes`` counts the buffers the tape adds beyond x[i] (always on the tape: the Linear
    needs it for dW) and beyond x[i+1] (on the tape too when ``keeps_output``, as for ReLU,
    sigmoid and tanh, which take their derivative from their output).
    """

    forward_matmul_flops: int
    forward_elementwise_flops: int
    backward_matmul_flops: int
    backward_elementwise_flops: int
    input_bytes: int
    output_bytes: int
    tape_bytes: int = 0
    keeps_output: bool = False

    def __post_init__(self):
        for name, value in vars(self).items():
            if name != "keeps_output" and (not isinstance(value, int) or value < 0):
                raise ValueError(f"block cost {name} must be a whole number >= 0, got {value!r}")

    @property
    def forward_flops(self) -> int:
        """Matmul plus element-wise FLOPs of one forward."""
        return self.forward_matmul_flops + self.forward_elementwise_flops

    @property
    def backward_flops(self) -> int:
        """Matmul plus element-wise FLOPs of the backward."""
        return self.backward_matmul_flops + self.backward_elementwise_flops


@dataclass(frozen=True)
class Chain:
    """Per-block costs plus the loss: FLOPs (element-wise) and the bytes of its gradient."""

    blocks: tuple[BlockCost, ...]
    loss_flops: int
    loss_bytes: int
    param_bytes: int = 0

    def __post_init__(self):
        if not self.blocks:
            raise ValueError("a chain needs at least one block")
        for i in range(len(self.blocks) - 1):
            out, nxt = self.blocks[i].output_bytes, self.blocks[i + 1].input_bytes
            if out != nxt:
                raise ValueError(
                    f"block {i} outputs {out} bytes but block {i + 1} takes {nxt} bytes as input"
                )

    @property
    def n(self) -> int:
        """The number of blocks."""
        return len(self.blocks)

    def x_bytes(self, i: int) -> int:
        """The bytes of x[i], for i in 0..n."""
        return self.blocks[i].input_bytes if i < self.n else self.blocks[-1].output_bytes
