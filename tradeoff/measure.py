"""One measured step of one strategy, in a fresh process.

Each measurement spawns a new interpreter, so that every strategy starts from the same memory
state (no allocator or BLAS buffers left by another strategy). In that process:

1. the model, the batch and the parameter-gradient buffers are built;
2. a warm-up step runs (BLAS allocates its work buffers on first use);
3. one step runs under tracemalloc, traced around the step only: the peak of traced allocations;
4. one step runs under memory-profiler: the sampled resident-set (RSS) peak of the process;
5. ``repeats`` untraced steps are timed: their median wall time;
6. store-all runs once more and the gradients are compared bit for bit. A mismatch raises
   GradientMismatch: it is an error, never a warning.

Bounds (tested): all accounted buffers but the batch are allocated inside the traced step and
alive at the accounted peak, so ``tracemalloc_peak_bytes >= peak_bytes - batch bytes``; and
``tracemalloc_peak_bytes <= peak_bytes + temporary_bound_bytes(model, batch)``, where the
temporaries are what one op allocates beyond the accounted buffers (see that function).
RSS is sampled every millisecond: it includes the interpreter, numpy and BLAS, may miss short
spikes, and is at least the parameters, their gradients and the batch.
"""

from __future__ import annotations

import inspect
import multiprocessing
import multiprocessing.connection
import os
import statistics
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .chain import Chain
from .model import MLP, make_batch
from .runner import run
from .schedule import Forward, Loss, describe, simulate
from .strategies import STRATEGIES, build

# What the interpreter may allocate during a step besides arrays: the timeline list, the result
# objects, small numpy scalars. Generous; the arrays dominate every measured model.
INTERPRETER_SLACK_BYTES = 256 * 1024
RSS_INTERVAL_S = 0.001
# Bounds on what one measurement (run, compare, a sweep's point) may be asked for.
MAX_DEPTH = 10**6  # schedules are Python tuples; deeper chains belong to plan --chain
MAX_REPEATS = 1000  # timed steps: more only hides a typo behind hours of work


class GradientMismatch(RuntimeError):
    """A strategy's gradients are not bit-identical to store-all's."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and its batch in another process."""

    widths: tuple[int, ...]
    batch: int = 128
    activation: str = "relu"
    loss: str = "softmax_ce"
    dtype: str = "float64"
    seed: int = 0
    pieces: int = 2

    def model(self, allocate: bool = True) -> MLP:
        """The model, reproducible from the seed (shape-only with ``allocate=False``)."""
        return MLP(
            list(self.widths),
            activation=self.activation,
            loss=self.loss,
            dtype=self.dtype,
            seed=self.seed,
            pieces=self.pieces,
            allocate=allocate,
        )

    def build(self) -> tuple[MLP, np.ndarray, np.ndarray]:
        """The model and a batch for it, reproducible from the seed."""
        model = self.model()
        x, y = make_batch(model, self.batch, seed=self.seed)
        return model, x, y

    def to_json(self) -> dict[str, Any]:
        """The ``model`` object of the JSON form."""
        data = asdict(self)
        data["widths"] = list(self.widths)
        if self.activation != "maxout":
            del data["pieces"]
        return data


@dataclass(frozen=True)
class MeasureRequest:
    """One strategy with its options on one model; ``repeats`` timed steps."""

    spec: ModelSpec
    strategy: str
    options: dict[str, int] = field(default_factory=dict)
    repeats: int = 5
    keep_grads: bool = False


def available_memory_bytes() -> int:
    """What the operating system says can still be allocated without swapping."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(spec: ModelSpec, available: int | None = None) -> int:
    """Refuse a model whose measurement would not fit in memory, before allocating anything.

    A measurement holds the parameters and their gradients and runs store-all (the gradient
    check), so it needs store-all's accounted peak, twice the parameter bytes and one op's
    temporaries; all predicted from shapes by a dry run. Returns that figure; raises ValueError
    with both figures and a hint (the plan ``select`` makes for the memory left) otherwise.
    """
    from .planner import select

    available = available_memory_bytes() if available is None else available
    # First a lower bound in Python integers, which cannot overflow however absurd the sizes:
    # weights and their gradients (at least widths[i] * widths[i+1] each) and every x[i].
    item, w = np.dtype(spec.dtype).itemsize, spec.widths
    floor = item * (2 * sum(a * b for a, b in zip(w[:-1], w[1:])) + spec.batch * sum(w))
    if floor > available:
        raise ValueError(
            f"this model needs at least {floor:,} bytes (weights, their gradients and one copy "
            f"of every activation), which exceeds the memory available ({available:,} bytes); "
            "use a smaller model or batch; --force runs it anyway"
        )
    model = spec.model(allocate=False)
    chain = model.chain(spec.batch)
    params = 2 * model.param_bytes
    temporaries = temporary_bound_bytes(model, spec.batch)
    needed = params + temporaries + simulate(build("store-all", chain), chain).peak_bytes
    if needed <= available:
        return needed
    hint = "use a smaller model or batch"
    left = available - params - temporaries
    if left > 0:
        try:
            plan = select(chain, left)
            hint = (
                f"within the {left:,} bytes left beside the parameters, {plan.strategy} "
                f"(accounted peak {plan.peak_bytes:,} bytes) would fit: see tradeoff plan "
                f"--budget {left}; measuring also runs store-all for the gradient check"
            )
        except ValueError:
            pass
    raise ValueError(
        f"this model needs {needed:,} bytes (store-all's accounted peak, the parameters and "
        f"their gradients, temporaries), which exceeds the memory available ({available:,} "
        f"bytes); {hint}; --force runs it anyway"
    )


def param_names(model: MLP) -> list[str]:
    """Names for ``model.params`` in order: W0, b0 (alpha0 for PReLU), W1, b1, ..."""
    kinds = ("W", "b", "alpha")
    return [
        f"{kinds[k]}{i}" for i, block in enumerate(model.blocks) for k in range(len(block.params))
    ]


def temporary_bound_bytes(model: MLP, batch: int) -> int:
    """The most bytes one op allocates beyond the accounted buffers, plus interpreter slack.

    Per block, with m = batch * (the Linear's outputs) and u = batch * units: at most three
    float arrays of m elements (maxout's pre-activation and its scattered gradient, PReLU's
    selects, sigmoid's y * (1 - y)) and two index arrays of u 8-byte integers (maxout's argmax
    and gather). For the loss, with c = batch * classes: five float arrays of c elements. The
    largest of these, since ops run one after another.
    """
    item = model.dtype.itemsize
    per_block = [
        3 * batch * block.linear.W.shape[1] * item + 2 * batch * width * 8
        for block, width in zip(model.blocks, model.widths[1:])
    ]
    loss = 5 * batch * model.widths[-1] * item
    return max(*per_block, loss) + INTERPRETER_SLACK_BYTES


def _environment() -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return {
        "numpy": np.__version__,
        "blas": blas[0].get("internal_api") if blas else "unknown",
        "blas_version": blas[0].get("version") if blas else None,
        "blas_threads": blas[0].get("num_threads") if blas else None,
    }


def exit_with_parent() -> None:
    """In a spawned worker, exit as soon as the parent process dies (a pool's initializer).

    A parent ended by SIGTERM or SIGKILL cannot shut its pool down, and the worker would measure
    on alone (for hours, with a large --repeats). A daemon thread waits on the parent's sentinel,
    which becomes ready when the parent exits, and ends this process then.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return  # not a spawned worker: nothing to follow

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def measure_here(request: MeasureRequest) -> dict[str, Any]:
    """The measurement itself, in the current process: call it in a fresh one (see measure)."""
    from memory_profiler import memory_usage

    spec = request.spec
    model, x, y = spec.build()
    grads = model.new_grads()
    options = request.options

    # Built once: a planned schedule (optimal) costs a dynamic program, not to be redone per step.
    chain = model.chain(spec.batch)
    schedule = build(request.strategy, chain, **options)

    def step():
        return run(model, x, y, schedule, grads=grads)

    step()  # warm-up: BLAS allocates its work buffers on first use
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = step()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mib = memory_usage((step, (), {}), interval=RSS_INTERVAL_S, max_usage=True)
    times = []
    for _ in range(request.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    # The last step left its gradients in ``grads``; compare them with a fresh store-all.
    base = run(model, x, y, "store-all")
    identical = result.loss.tobytes() == base.loss.tobytes() and all(
        g.tobytes() == h.tobytes() for g, h in zip(grads, base.grads, strict=True)
    )
    if not identical:
        raise GradientMismatch(
            f"{request.strategy} gives gradients that are not bit-identical to store-all's"
        )
    prediction = simulate(schedule, chain)
    loss_at = next(k for k, a in enumerate(result.schedule) if isinstance(a, Loss))
    recomputes = sum(isinstance(a, Forward) for a in result.schedule[loss_at:])
    row: dict[str, Any] = {
        "strategy": request.strategy,
        "options": dict(options),
        "schedule": describe(result.schedule),
        "flops": result.flops,
        "flops_matmul": result.flops_by_kind["matmul"],
        "flops_elementwise": result.flops_by_kind["elementwise"],
        "predicted_flops": prediction.flops,
        "recompute_forwards": recomputes,
        "saved_inputs": result.saved_inputs,
        "peak_bytes": result.peak_bytes,
        "predicted_peak_bytes": prediction.peak_bytes,
        "tracemalloc_peak_bytes": traced_peak,
        "tracemalloc_lower_bound_bytes": result.peak_bytes - x.nbytes,
        "tracemalloc_upper_bound_bytes": result.peak_bytes
        + temporary_bound_bytes(model, spec.batch),
        "rss_peak_bytes": int(rss_mib * 2**20),
        "time_s": statistics.median(times),
        "time_samples_s": times,
        "gradients_identical": identical,
        "loss": float(result.loss),
        "param_bytes": result.param_bytes,
        "param_grad_bytes": result.param_grad_bytes,
        "batch_bytes": x.nbytes,
        "model": spec.to_json(),
        "env": _environment(),
    }
    if request.keep_grads:
        row["_arrays"] = {"params": model.params, "x": x, "y": y, "grads": grads}
    return row


def comparison(chain: Chain, **given: int | None) -> list[tuple[str, dict[str, int]]]:
    """What ``compare`` measures: every strategy of STRATEGIES with its options.

    Options given (``segments``, ``slots``, ``budget``) go to the strategies that take them.
    Otherwise revolve gets as many slots as sqrt saves, and optimal gets sqrt's accounted peak
    as its budget, so that both are compared with sqrt on sqrt's own terms.
    """
    given = {key: value for key, value in given.items() if value is not None}
    sqrt = simulate(build("sqrt", chain, segments=given.get("segments")), chain)
    # At least one slot: for n <= 2 sqrt saves nothing, and revolve needs x[0] in a slot.
    defaults = {"slots": max(1, sqrt.saved_inputs), "budget": sqrt.peak_bytes}
    plan = []
    for name, builder in STRATEGIES.items():
        takes = inspect.signature(builder).parameters
        options = {key: given.get(key, defaults.get(key)) for key in takes if key != "chain"}
        plan.append((name, {key: value for key, value in options.items() if value is not None}))
    return plan


def measure(request: MeasureRequest) -> dict[str, Any]:
    """Measure one strategy in a freshly spawned process; returns the JSON row.

    Raises what the child raised: ValueError for bad input, GradientMismatch for gradients that
    differ from store-all's.
    """
    # A process pool's workers are not daemonic, so memory-profiler may start its sampler.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=exit_with_parent
    ) as pool:
        return pool.submit(measure_here, request).result()
