"""A chain: the costs of a network at one batch size, which the dry run and the planner read.

``MLP.chain(batch)`` builds one from shapes; a user can write one for any network whose blocks
form a chain (x[i+1] = f_i(x[i])), and plan it without running it: ``Chain.from_json`` reads one
from a JSON file such as::

    {
      "blocks": [
        {"forward_flops": 2048, "backward_flops": 4096, "input_bytes": 512, "tape_bytes": 0},
        {"forward_flops": 1024, "backward_flops": 2048, "input_bytes": 256, "tape_bytes": 64,
         "output_bytes": 128, "keeps_output": true}
      ],
      "loss_flops": 40,
      "loss_bytes": 128
    }

Per block: ``forward_flops`` and ``backward_flops`` (totals), ``input_bytes`` (x[i]) and
``tape_bytes`` (what the tape holds beyond x[i], and beyond x[i+1] when ``keeps_output``);
optionally ``output_bytes`` (x[i+1]: by default the next block's input, and for the last block
``loss_bytes``), ``keeps_output`` (false), and ``forward_elementwise_flops`` and
``backward_elementwise_flops`` (the element-wise part of each total, 0). At the top:
``loss_flops`` and ``loss_bytes`` (the gradient of x[n]), optionally ``param_bytes`` (0),
``description`` (text) and ``meta`` (any object, kept out of the costs).
"""

from __future__ import annotations

import json
import math
import os
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
        # Every report divides by store-all's FLOPs and peak: a chain of nothing is no chain.
        if self.loss_flops + sum(b.forward_flops + b.backward_flops for b in self.blocks) < 1:
            raise ValueError("a chain must cost some FLOPs: every block and the loss cost 0")
        sizes = [self.x_bytes(i) for i in range(self.n + 1)] + [b.tape_bytes for b in self.blocks]
        if self.loss_bytes + sum(sizes) < 1:
            raise ValueError("a chain must hold some bytes: every size in it is 0")

    @property
    def n(self) -> int:
        """The number of blocks."""
        return len(self.blocks)

    def x_bytes(self, i: int) -> int:
        """The bytes of x[i], for i in 0..n."""
        return self.blocks[i].input_bytes if i < self.n else self.blocks[-1].output_bytes

    def to_dict(self) -> dict:
        """The JSON form that ``from_json`` reads (every optional field written out)."""
        blocks = []
        for b in self.blocks:
            entry = {
                "forward_flops": b.forward_flops,
                "backward_flops": b.backward_flops,
                "input_bytes": b.input_bytes,
                "output_bytes": b.output_bytes,
                "tape_bytes": b.tape_bytes,
                "keeps_output": b.keeps_output,
            }
            # Only when nonzero: hand-written chains rarely split FLOPs by kind.
            if b.forward_elementwise_flops:
                entry["forward_elementwise_flops"] = b.forward_elementwise_flops
            if b.backward_elementwise_flops:
                entry["backward_elementwise_flops"] = b.backward_elementwise_flops
            blocks.append(entry)
        return {
            "blocks": blocks,
            "loss_flops": self.loss_flops,
            "loss_bytes": self.loss_bytes,
            "param_bytes": self.param_bytes,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The chain as JSON text; written to ``path`` too when one is given."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike | dict) -> Chain:
        """A chain from a JSON file (a path) or from its already parsed dict.

        Raises ValueError naming the problem (and the file): unreadable or not JSON, a missing
        or unknown key, a value of the wrong type, a negative number, or blocks whose sizes do
        not connect.
        """
        if isinstance(source, dict):
            return _chain_from_dict(source, "chain")
        if not isinstance(source, str | os.PathLike):
            raise ValueError(f"a chain comes from a path or a dict, got {type(source).__name__}")
        where = f"chain file {os.fspath(source)}"
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ValueError(f"{where}: cannot read it ({reason})") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{where}: not JSON ({e.msg}, line {e.lineno} column {e.colno})"
            ) from None
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        return _chain_from_dict(data, where)


_BLOCK_REQUIRED = ("forward_flops", "backward_flops", "input_bytes", "tape_bytes")
_BLOCK_OPTIONAL = (
    "output_bytes",
    "keeps_output",
    "forward_elementwise_flops",
    "backward_elementwise_flops",
)
_CHAIN_REQUIRED = ("blocks", "loss_flops", "loss_bytes")
_CHAIN_OPTIONAL = ("param_bytes", "description", "meta")


def _reject_constant(name: str):
    # json accepts NaN and Infinity by default; no cost can be either.
    raise ValueError(f"{name} is not a valid number here")


def _check_keys(data, required, optional, where: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: must be a JSON object, got {type(data).__name__}")
    for key in required:
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r}")
    unknown = [key for key in data if key not in required + optional]
    if unknown:
        known = ", ".join(required + optional)
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known keys: {known})")


def _whole(value, name: str, where: str) -> int:
    """A whole number >= 0; JSON writes 1e12 as a float, which is accepted when whole."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: {name} must be a whole number >= 0, got {value!r}")
    return value


def _block_from_dict(data, where: str, next_input: int) -> BlockCost:
    _check_keys(data, _BLOCK_REQUIRED, _BLOCK_OPTIONAL, where)
    get = {key: _whole(data[key], key, where) for key in data if key != "keeps_output"}
    keeps = data.get("keeps_output", False)
    if not isinstance(keeps, bool):
        raise ValueError(f"{where}: keeps_output must be true or false, got {keeps!r}")
    parts = {}
    for phase in ("forward", "backward"):
        total, elementwise = get[f"{phase}_flops"], get.get(f"{phase}_elementwise_flops", 0)
        if elementwise > total:
            raise ValueError(
                f"{where}: {phase}_elementwise_flops ({elementwise}) exceeds "
                f"{phase}_flops ({total})"
            )
        parts[phase] = (total - elementwise, elementwise)
    return BlockCost(
        forward_matmul_flops=parts["forward"][0],
        forward_elementwise_flops=parts["forward"][1],
        backward_matmul_flops=parts["backward"][0],
        backward_elementwise_flops=parts["backward"][1],
        input_bytes=get["input_bytes"],
        output_bytes=get.get("output_bytes", next_input),
        tape_bytes=get["tape_bytes"],
        keeps_output=keeps,
    )


def _chain_from_dict(data, where: str) -> Chain:
    _check_keys(data, _CHAIN_REQUIRED, _CHAIN_OPTIONAL, where)
    blocks = data["blocks"]
    if not isinstance(blocks, list) or not blocks:
        raise ValueError(f"{where}: blocks must be a non-empty list of objects")
    if "description" in data and not isinstance(data["description"], str):
        raise ValueError(f"{where}: description must be text")
    loss_bytes = _whole(data["loss_bytes"], "loss_bytes", where)
    costs = []
    for i, block in enumerate(blocks):
        here = f"{where}: block {i}"
        # x[i+1] defaults to what the next block reads (the loss gradient's size at the end)
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if isinstance(following, dict) and "input_bytes" in following:
            next_input = _whole(following["input_bytes"], "input_bytes", f"{where}: block {i + 1}")
        else:
            next_input = loss_bytes
        costs.append(_block_from_dict(block, here, next_input))
    try:
        return Chain(
            blocks=tuple(costs),
            loss_flops=_whole(data["loss_flops"], "loss_flops", where),
            loss_bytes=loss_bytes,
            param_bytes=_whole(data.get("param_bytes", 0), "param_bytes", where),
        )
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
