"""The meter: FLOPs by phase and kind, and the accounted live bytes of distinct buffers.

A buffer is anything with ``nbytes``: a numpy array (a view counts as its base) in a real run,
or a placeholder of known size in a dry run. The meter counts each distinct buffer once however
many places hold it (reference counts), so a saved x[i] that is also on a tape costs its bytes
once. Every update is O(1): the runner's loop calls it for every buffer it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PHASES = ("forward", "recompute", "backward", "loss")
KINDS = ("matmul", "elementwise")


def _root(buf):
    """The buffer that owns the memory: a numpy view's base, followed to its end."""
    base = getattr(buf, "base", None)
    while base is not None:
        buf, base = base, getattr(base, "base", None)
    return buf


@dataclass
class Meter:
    """Counts FLOPs and accounted bytes over one walk of a schedule.

    ``begin_action``/``end_action`` bracket each action; the timeline gets one point per action,
    the largest live total seen during it, so ``max(timeline) == peak_bytes``.
    """

    flops_by_kind: dict[str, dict[str, int]] = field(
        default_factory=lambda: {kind: dict.fromkeys(PHASES, 0) for kind in KINDS}
    )
    live_bytes: int = 0
    peak_bytes: int = 0
    timeline: list[int] = field(default_factory=list)
    _held: dict[int, list] = field(default_factory=dict)
    _action_peak: int = 0

    def count(self, phase: str, matmul: int, elementwise: int) -> None:
        """Add FLOPs to a phase."""
        self.flops_by_kind["matmul"][phase] += matmul
        self.flops_by_kind["elementwise"][phase] += elementwise

    def hold(self, buf) -> None:
        """One more holder of ``buf``; its bytes become live on the first."""
        # Most buffers own their memory: skip the call to _root for them (the walk calls this
        # several times per action).
        root = buf if getattr(buf, "base", None) is None else _root(buf)
        entry = self._held.get(id(root))
        if entry is None:
            # Keep the root itself so that its id cannot be reused while it is accounted.
            self._held[id(root)] = [1, root]
            self.live_bytes += root.nbytes
            if self.live_bytes > self._action_peak:
                self._action_peak = self.live_bytes
        else:
            entry[0] += 1

    def release(self, buf) -> None:
        """One holder fewer; the bytes leave the live total with the last."""
        root = buf if getattr(buf, "base", None) is None else _root(buf)
        entry = self._held[id(root)]
        entry[0] -= 1
        if entry[0] == 0:
            del self._held[id(root)]
            self.live_bytes -= root.nbytes

    def begin_action(self) -> None:
        """Start a timeline point at the current live total."""
        self._action_peak = self.live_bytes

    def end_action(self) -> None:
        """Close the timeline point: the largest live total since begin_action."""
        self.timeline.append(self._action_peak)
        if self._action_peak > self.peak_bytes:
            self.peak_bytes = self._action_peak

    @property
    def flops(self) -> dict[str, int]:
        """FLOPs by phase, matmul and element-wise summed, plus ``total``."""
        by_phase = {
            phase: sum(self.flops_by_kind[kind][phase] for kind in KINDS) for phase in PHASES
        }
        by_phase["total"] = sum(by_phase.values())
        return by_phase
