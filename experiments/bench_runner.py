"""The runner at the BLAS limit, measured side by side (issue 6).

In one process, interleaved (A B A B ...), the median of per-pair time ratios of:

a. the runner's store-all step against a minimal hand-written numpy forward and backward of the
   same MLP (same weights, dtype, shapes and arithmetic, so its gradients are bit-identical);
b. every other named strategy against store-all, beside its exact FLOPs ratio;
c. with torch importable: torch CPU autograd on the same weights, and
   torch.utils.checkpoint.checkpoint_sequential with as many segments as sqrt uses, with the
   gradients compared with ours.

It also times every op of one store-all step in isolation (the per-op sum explains a time ratio
that departs from the FLOPs ratio) and the array-free walk of each schedule (the runner's own
per-action bookkeeping). It writes reports/performance.json (raw) and reports/performance.md.

    python experiments/bench_runner.py            # the full study, a few minutes on 2 cores
    python experiments/bench_runner.py --quick    # small models and few pairs: a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import mmap
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tradeoff
from tradeoff import runner as runner_module
from tradeoff.files import write_atomically
from tradeoff.schedule import Backward, Forward
from tradeoff.strategies import segment_starts

# --- configuration ---------------------------------------------------------------------------
MODELS = (
    {"name": "16x1024 float32", "blocks": 16, "width": 1024, "batch": 256, "dtype": "float32"},
    {"name": "64x256 float64", "blocks": 64, "width": 256, "batch": 64, "dtype": "float64"},
)
QUICK_MODELS = (
    {"name": "4x64 float32", "blocks": 4, "width": 64, "batch": 16, "dtype": "float32"},
    {"name": "9x32 float64", "blocks": 9, "width": 32, "batch": 8, "dtype": "float64"},
)
ACTIVATION, LOSS, SEED = "relu", "softmax_ce", 0
PAIRS = 21  # interleaved pairs per comparison (at least 7; 21 narrows the median on a noisy host)
QUICK_PAIRS = 3
REPEATS = 3  # each side of a pair: the best of this many back-to-back calls
QUICK_REPEATS = 1
# OpenBLAS's idle worker threads spin for about 2**28 cycles (~0.1 s here) after every call
# before they sleep: torch timed right after numpy would share the 2 cores with them. Every
# timed call, on either side, starts after this pause, so that neither library pays for the
# other's idle threads.
PAUSE_S = 0.25
QUICK_PAUSE_S = 0.0
OTHER_STRATEGIES = ("sqrt", "recompute-all", "revolve", "optimal")
QUIET_CORES = 0.15  # other processes' CPU use (in cores) above which a pair is set aside
QUIET_WAIT_S = 20.0  # the longest wait for a quiet machine before a pair
MAX_ATTEMPTS = 3  # pairs measured at most, per pair wanted
OP_REPEATS = 7  # sweeps over the ops of one step, timed one op at a time
QUICK_OP_REPEATS = 2
# Targets of issue 6.
HAND_TARGET = 1.10  # runner store-all / hand-written numpy
FLOPS_TOLERANCE = 0.15  # |time ratio / FLOPs ratio - 1| on the first model
TORCH_TARGET = 1.0  # runner store-all / torch autograd
GRAD_RTOL = 1e-10  # ours against torch's gradients, float64
REPORTS = Path(__file__).resolve().parent.parent / "reports"
# ---------------------------------------------------------------------------------------------


def median(values) -> float:
    """The median of a non-empty sequence of numbers."""
    return float(statistics.median(values))


class Monitor:
    """CPU time that other processes use: /proc/stat's busy time less this process's own.

    This machine is shared: another process's burst halves the cores a 2-thread BLAS call has,
    and slows it several times over. A pair measured while others used more than QUIET_CORES
    is set aside (counted, kept in the JSON) and measured again.
    """

    def __init__(self, enabled: bool = True):
        self.available = enabled and Path("/proc/stat").exists()
        self.tick = os.sysconf("SC_CLK_TCK") if self.available else 100

    def snapshot(self) -> tuple[float, float, float]:
        """(busy seconds of all CPUs, this process's CPU seconds, wall clock)."""
        own = os.times()
        if not self.available:
            return 0.0, 0.0, time.perf_counter()
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        busy = (user + nice + system + irq + softirq + steal) / self.tick
        return busy, own.user + own.system, time.perf_counter()

    def others(self, since: tuple[float, float, float]) -> float:
        """Cores' worth of CPU that other processes used since ``since`` (0.0 when unknown)."""
        busy, own, wall = self.snapshot()
        return max(0.0, (busy - since[0]) - (own - since[1])) / max(wall - since[2], 1e-9)

    def wait_quiet(self, pause: float, max_wait: float) -> float:
        """Sleep at least ``pause``, then until others use at most QUIET_CORES over a pause
        (or ``max_wait`` has passed); returns the seconds waited."""
        start = time.perf_counter()
        while True:
            snap = self.snapshot()
            time.sleep(max(pause, 0.05))
            if self.others(snap) <= QUIET_CORES or time.perf_counter() - start >= max_wait:
                return time.perf_counter() - start


def interleave(a, b, pairs: int, pause: float, monitor: Monitor, repeats: int = 1) -> dict:
    """Time a and b alternately (A B A B ...): medians and the median of per-pair ratios a/b.

    Each side of a pair is the best of ``repeats`` back-to-back calls (after the pause), which
    drops the hiccups of a shared machine. One untimed call of each warms caches and BLAS
    buffers first. Each pair starts once the
    machine is quiet; a pair during which other processes used more than QUIET_CORES is set
    aside and measured again, up to MAX_ATTEMPTS * pairs attempts. If fewer than ``pairs``
    quiet pairs were measured by then, every pair counts, and ``quiet`` is False.
    """
    a(), b()
    quiet, noisy = [], []
    attempts = 0
    while len(quiet) < pairs and attempts < MAX_ATTEMPTS * pairs:
        attempts += 1
        waited = monitor.wait_quiet(pause, QUIET_WAIT_S) if pause else 0.0
        snap = monitor.snapshot()
        pair = []
        for k, fn in enumerate((a, b)):
            if k and pause:
                time.sleep(pause)
            best = math.inf
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - start)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            pair += [best, faults / repeats]
        others = monitor.others(snap)
        record = {
            "a_s": pair[0],
            "b_s": pair[2],
            "a_faults": pair[1],
            "b_faults": pair[3],
            "others_cores": others,
            "waited_s": waited,
        }
        (quiet if others <= QUIET_CORES else noisy).append(record)
    used = quiet if len(quiet) >= pairs else quiet + noisy
    ratios = [p["a_s"] / p["b_s"] for p in used]
    return {
        "a_s": median([p["a_s"] for p in used]),
        "b_s": median([p["b_s"] for p in used]),
        "ratio": median(ratios),
        "a_faults": median([p["a_faults"] for p in used]),
        "b_faults": median([p["b_faults"] for p in used]),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "quiet": len(quiet) >= pairs,
        "pairs_used": len(used),
        "pairs_set_aside": len(noisy) if len(quiet) >= pairs else 0,
        "quiet_pairs": quiet,
        "noisy_pairs": noisy,
    }


# --- the hand-written reference ---------------------------------------------------------------
def hand_step(Ws, bs, x, labels, dWs, dbs):
    """A minimal numpy forward and backward of a ReLU MLP with softmax cross-entropy.

    The arithmetic is the runner's, op for op, so the gradients must be bit-identical to its
    store-all; only the bookkeeping (schedule, walk, meter, validation) differs.
    """
    n = len(Ws)
    hs = [x]
    for i in range(n):
        a = hs[-1] @ Ws[i]
        a += bs[i]
        if i < n - 1:
            np.maximum(a, 0, out=a)
        hs.append(a)
    z = hs[-1]
    rows = z.shape[0]
    picked = np.arange(rows)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    loss = (np.log(total[:, 0]) - shifted[picked, labels]).sum() / rows
    e /= total
    e[picked, labels] -= 1
    e /= rows
    g = e
    for i in reversed(range(n)):
        if i < n - 1:
            g *= hs[i + 1] > 0
        np.matmul(hs[i].T, g, out=dWs[i])
        np.add.reduce(g, axis=0, out=dbs[i])
        if i > 0:
            g = g @ Ws[i].T
    return loss


# --- torch -------------------------------------------------------------------------------------
def load_torch():
    """torch, or None when the optional extra is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_model(torch, model):
    """The same MLP in torch, its parameters sharing memory with ours (torch.from_numpy)."""

    class Block(torch.nn.Module):
        """x @ W + b, then ReLU unless it is the last block (as in tradeoff.MLP)."""

        def __init__(self, W, b, relu):
            super().__init__()
            self.W = torch.nn.Parameter(torch.from_numpy(W))
            self.b = torch.nn.Parameter(torch.from_numpy(b))
            self.relu = relu

        def forward(self, x):
            a = torch.addmm(self.b, x, self.W)
            return torch.relu(a) if self.relu else a

    blocks = [
        Block(block.linear.W, block.linear.b, i < model.n - 1)
        for i, block in enumerate(model.blocks)
    ]
    return torch.nn.Sequential(*blocks)


def torch_steps(torch, net, x, labels, segments):
    """(autograd step, checkpoint_sequential step); each returns the loss, grads in .grad."""
    from torch.utils.checkpoint import checkpoint_sequential

    tx, ty = torch.from_numpy(x), torch.from_numpy(labels)
    params = list(net.parameters())

    def autograd():
        for p in params:
            p.grad = None
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        loss.backward()
        return loss

    def checkpointed():
        for p in params:
            p.grad = None
        out = checkpoint_sequential(net, segments, tx, use_reentrant=False)
        loss = torch.nn.functional.cross_entropy(out, ty)
        loss.backward()
        return loss

    return autograd, checkpointed


def relative_difference(ours, theirs) -> float:
    """max over tensors of max|ours - theirs| / max|theirs|: a norm-wise relative difference."""
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        b = np.asarray(b, dtype=np.float64)
        scale = float(np.max(np.abs(b))) or 1.0
        worst = max(worst, float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b))) / scale)
    return worst


# --- per-op times and the walk ------------------------------------------------------------------
def quiet_runs(fn, repeats: int, pause: float, monitor: Monitor) -> list:
    """fn()'s results over ``repeats`` runs, each after a wait for a quiet machine; a run during
    which others used more than QUIET_CORES is repeated (up to MAX_ATTEMPTS * repeats runs)."""
    quiet, noisy = [], []
    while len(quiet) < repeats and len(quiet) + len(noisy) < MAX_ATTEMPTS * repeats:
        if pause:
            monitor.wait_quiet(pause, QUIET_WAIT_S)
        snap = monitor.snapshot()
        result = fn()
        (quiet if monitor.others(snap) <= QUIET_CORES else noisy).append(result)
    return quiet if len(quiet) >= repeats else quiet + noisy


def op_times(model, x, y, repeats: int, pause: float, monitor: Monitor) -> dict:
    """Median time of each action of a store-all step, each op timed alone, in step order.

    Forward(i) is the block's fprop, Backward(i) its bprop, Loss the loss: exactly the work the
    runner's ops do, without the walk and the meter around them.
    """
    grads = model.new_grads()
    model.bind_grads(grads)

    def sweep():
        forward, backward = [0.0] * model.n, [0.0] * model.n
        h, tapes = x, []
        for i, block in enumerate(model.blocks):
            start = time.perf_counter()
            h, tape = block.fprop(h)
            forward[i] = time.perf_counter() - start
            tapes.append(tape)
        start = time.perf_counter()
        _, g = model.loss.value_and_grad(h, y)
        loss = time.perf_counter() - start
        for i in reversed(range(model.n)):
            start = time.perf_counter()
            g = model.blocks[i].bprop(tapes[i], g)
            backward[i] = time.perf_counter() - start
        return forward, loss, backward

    sweeps = quiet_runs(sweep, repeats, pause, monitor)
    return {
        "forward_s": [median(s[0][i] for s in sweeps) for i in range(model.n)],
        "backward_s": [median(s[2][i] for s in sweeps) for i in range(model.n)],
        "loss_s": median(s[1] for s in sweeps),
    }


def op_sum(schedule, ops: dict) -> float:
    """The time a schedule would take if it cost exactly the sum of its ops' isolated times."""
    total = ops["loss_s"]
    for action in schedule:
        if isinstance(action, Forward):
            total += ops["forward_s"][action.i]
        elif isinstance(action, Backward):
            total += ops["backward_s"][action.i]
    return total


def own_time(model, x, y, schedule, grads, repeats: int, pause: float, monitor: Monitor):
    """The runner's own share of a step: its wall time less the time spent inside its ops.

    What is left is the walk, the meter, the validation and set-up, and the freeing of the
    arrays the walk lets go of. The ops are timed by wrapping the runner's private
    _ArrayOps for the duration (the wrappers cost well under a microsecond per action).
    """
    base = runner_module._ArrayOps
    inside = [0.0]

    def timed(method):
        def wrapper(self, *args):
            start = time.perf_counter()
            result = method(self, *args)
            inside[0] += time.perf_counter() - start
            return result

        return wrapper

    class TimedOps(base):
        forward = timed(base.forward)
        loss = timed(base.loss)
        backward = timed(base.backward)

    def one():
        inside[0] = 0.0
        start = time.perf_counter()
        tradeoff.run(model, x, y, schedule, grads=grads)
        total = time.perf_counter() - start
        return total, total - inside[0]

    runner_module._ArrayOps = TimedOps
    try:
        runs = quiet_runs(one, repeats, pause, monitor)
    finally:
        runner_module._ArrayOps = base
    return {
        "step_s": median(r[0] for r in runs),
        "own_s": median(r[1] for r in runs),
        "own_fraction": median(r[1] / r[0] for r in runs),
    }


def page_fault_cost(repeats: int) -> float:
    """Seconds per minor page fault here: the first fill of a fresh 64 MiB anonymous mapping
    (every page faults in, zeroed by the kernel) less a second fill of the same pages.

    A plain mapping, not numpy's allocator, which may ask for huge pages at this size."""
    costs = []
    for _ in range(repeats):
        with mmap.mmap(-1, 64 << 20) as mapping:
            a = np.frombuffer(mapping, dtype=np.uint8)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            a.fill(1)
            first = time.perf_counter() - start
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            start = time.perf_counter()
            a.fill(2)
            second = time.perf_counter() - start
            del a
        costs.append((first - second) / max(faults, 1))
    return median(costs)


def matmul_throughput(model, x, repeats: int, pause: float, monitor: Monitor) -> dict:
    """GFLOP/s of the three matmul shapes of a middle block, hot in cache (the median of
    ``repeats`` quiet runs of 5 back-to-back calls each)."""
    block = model.blocks[model.n // 2]
    W = block.linear.W
    rows, (fan_in, fan_out) = x.shape[0], W.shape
    g = np.ones((rows, fan_out), dtype=W.dtype)
    dW = np.empty_like(W)
    flops = 2 * rows * fan_in * fan_out
    shapes = {
        "forward x @ W": lambda: x @ W,
        "backward dx = g @ W.T": lambda: g @ W.T,
        "backward dW = x.T @ g": lambda: np.matmul(x.T, g, out=dW),
    }
    out = {}
    for name, fn in shapes.items():

        def five(fn=fn):
            fn()
            start = time.perf_counter()
            for _ in range(5):
                fn()
            return (time.perf_counter() - start) / 5

        out[name] = flops / median(quiet_runs(five, repeats, pause, monitor)) / 1e9
    return out


# --- strategies ---------------------------------------------------------------------------------
def strategy_options(name: str, model, batch: int) -> dict | None:
    """Options for a strategy whose builder requires some, or None when they are unknown.

    A memory parameter gets sqrt's figure (its slots, or its accounted peak), so that a strategy
    is compared at sqrt's memory.
    """
    builder = tradeoff.STRATEGIES[name]
    required = [
        p.name
        for p in list(inspect.signature(builder).parameters.values())[1:]
        if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    ]
    if not required:
        return {}
    sqrt = tradeoff.predict(model, batch, "sqrt")
    known = {
        "slots": sqrt.saved_inputs,
        "budget": sqrt.peak_bytes,
        "budget_bytes": sqrt.peak_bytes,
    }
    if any(p not in known for p in required):
        return None
    return {p: known[p] for p in required}


# --- environment ----------------------------------------------------------------------------------
def environment(torch) -> dict:
    """BLAS library, version, threads and kernel; CPU; versions; the variables that steer BLAS."""
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tradeoff": tradeoff.__version__,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "blas_environment": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOTO", "BLIS", "NVPL"))
        },
        "git_commit": git("rev-parse", "HEAD"),
        # Uncommitted changes to the code measured, if any (others' files do not matter).
        "git_modified": git(
            "status", "--porcelain", "--", "tradeoff", "experiments/bench_runner.py"
        ).splitlines(),
    }
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        env["numpy_blas_build"] = {
            k: blas.get(k) for k in ("name", "version", "openblas configuration")
        }
    except Exception as error:  # the layout of show_config is not a stable API
        env["numpy_blas_build"] = f"unavailable: {error}"
    try:
        from threadpoolctl import threadpool_info

        env["threadpools"] = [
            {
                k: pool.get(k)
                for k in (
                    "user_api",
                    "internal_api",
                    "version",
                    "num_threads",
                    "threading_layer",
                    "architecture",
                    "prefix",
                    "filepath",
                )
            }
            for pool in threadpool_info()
        ]
    except ImportError:
        env["threadpools"] = "threadpoolctl not installed"
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_blas"] = "mkl" if torch.backends.mkl.is_available() else "other"
    return env


def environment_summary(env: dict) -> str:
    """One paragraph: who computes, on how many threads, with which kernel, on what CPU."""
    pools = env["threadpools"] if isinstance(env["threadpools"], list) else []
    blas_pools = [p for p in pools if p["user_api"] == "blas"]
    numpy_blas = next(
        (p for p in blas_pools if "numpy" in (p.get("filepath") or "")),
        blas_pools[0] if blas_pools else None,
    )
    if numpy_blas:
        blas = (
            f"{numpy_blas['internal_api']} {numpy_blas['version']} ({numpy_blas['prefix']}, "
            f"{numpy_blas['threading_layer']} threading, kernel {numpy_blas['architecture']}) on "
            f"{numpy_blas['num_threads']} threads"
        )
    else:
        blas = f"{env['numpy_blas_build']} (thread count unknown: no threadpoolctl)"
    text = f"numpy {env['numpy']} computes with {blas}."
    if "torch" in env:
        text += (
            f" torch {env['torch']} (BLAS: {env['torch_blas']}) on {env['torch_threads']} "
            "threads, set equal to numpy's BLAS threads."
        )
    steering = env["blas_environment"]
    text += (
        f" CPU: {env['cpu']}, {env['cores']} cores. Variables that steer BLAS, as CI has "
        "them (the benchmark sets none): "
        + (", ".join(f"{k}={v}" for k, v in steering.items()) if steering else "none")
        + f". Python {env['python']}."
    )
    return text


def blas_threads() -> int | None:
    """The thread count of numpy's BLAS, from threadpoolctl (None when it is not installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in (pool.get("filepath") or ""):
            return pool.get("num_threads")
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return pool.get("num_threads")
    return None


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git(*args: str) -> str:
    """The output of a git command in this repository, or '' when git is unavailable."""
    try:
        return subprocess.run(
            ["git", *args], cwd=REPORTS.parent, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# --- one model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """How to time: pairs per comparison, the pause, best-of repeats, and the monitor."""

    pairs: int
    pause: float
    repeats: int
    op_repeats: int
    monitor: Monitor

    def compare(self, a, b) -> dict:
        """a against b, interleaved (see interleave)."""
        return interleave(a, b, self.pairs, self.pause, self.monitor, self.repeats)


def bench_model(spec: dict, cfg: Settings, torch, log) -> dict:
    """Every comparison on one model."""
    n, width, batch = spec["blocks"], spec["width"], spec["batch"]
    model = tradeoff.MLP(
        [width] * (n + 1), activation=ACTIVATION, loss=LOSS, dtype=spec["dtype"], seed=SEED
    )
    x, y = tradeoff.make_batch(model, batch, seed=SEED)
    chain = model.chain(batch)
    out = {"spec": spec, "params_bytes": model.param_bytes}

    # a. store-all against hand-written numpy.
    grads = model.new_grads()
    Ws, bs = model.params[0::2], model.params[1::2]
    hand_grads = model.new_grads()
    hand_dWs, hand_dbs = hand_grads[0::2], hand_grads[1::2]

    def runner_store_all():
        return tradeoff.run(model, x, y, "store-all", grads=grads)

    def hand():
        return hand_step(Ws, bs, x, y, hand_dWs, hand_dbs)

    base = runner_store_all()
    hand_loss = hand()
    identical = base.loss.tobytes() == hand_loss.tobytes() and all(
        g.tobytes() == h.tobytes() for g, h in zip(grads, hand_grads)
    )
    log(f"{spec['name']}: store-all vs hand-written numpy")
    out["hand"] = cfg.compare(runner_store_all, hand)
    out["hand"]["bit_identical"] = identical

    # b. every other strategy against store-all.
    ops = op_times(model, x, y, cfg.op_repeats, cfg.pause, cfg.monitor)
    store_all_schedule = tradeoff.build("store-all", chain)
    out["ops"] = ops
    out["op_sum_store_all_s"] = op_sum(store_all_schedule, ops)
    # The throughput each kind of op reaches inside a step (its FLOPs over its time).
    out["ops_gflops"] = {
        "forward": sum(b.forward_flops for b in chain.blocks) / sum(ops["forward_s"]) / 1e9,
        "backward": sum(b.backward_flops for b in chain.blocks) / sum(ops["backward_s"]) / 1e9,
    }
    out["matmul_gflops"] = matmul_throughput(model, x, cfg.op_repeats, cfg.pause, cfg.monitor)
    out["strategies"], out["skipped"] = {}, {}
    store_flops = base.flops["total"]
    out["store_all"] = {
        "flops": base.flops,
        "peak_bytes": base.peak_bytes,
        "own": own_time(
            model, x, y, store_all_schedule, grads, cfg.op_repeats, cfg.pause, cfg.monitor
        ),
        "actions": len(store_all_schedule),
    }
    for name in OTHER_STRATEGIES:
        if name not in tradeoff.STRATEGIES:
            out["skipped"][name] = "not in tradeoff.STRATEGIES"
            continue
        options = strategy_options(name, model, batch)
        if options is None:
            out["skipped"][name] = "its builder requires options this script does not know"
            continue
        try:
            schedule = tradeoff.build(name, chain, **options)
        except Exception as error:  # another helper may be mid-way through adding it
            out["skipped"][name] = f"could not build: {type(error).__name__}: {error}"
            continue
        strategy_grads = model.new_grads()

        def strategy(schedule=schedule, strategy_grads=strategy_grads):
            return tradeoff.run(model, x, y, schedule, grads=strategy_grads)

        r = strategy()
        log(f"{spec['name']}: {name} vs store-all")
        timing = cfg.compare(strategy, runner_store_all)
        flops_ratio = r.flops["total"] / store_flops
        predicted = op_sum(schedule, ops) / out["op_sum_store_all_s"]
        out["strategies"][name] = {
            "options": options,
            "flops": r.flops,
            "flops_ratio": flops_ratio,
            "time_ratio": timing["ratio"],
            "time_over_flops": timing["ratio"] / flops_ratio,
            "op_sum_ratio": predicted,
            "time_over_op_sum": timing["ratio"] / predicted,
            "peak_bytes": r.peak_bytes,
            "bit_identical": all(g.tobytes() == h.tobytes() for g, h in zip(strategy_grads, grads)),
            "own": own_time(
                model, x, y, schedule, strategy_grads, cfg.op_repeats, cfg.pause, cfg.monitor
            ),
            "actions": len(schedule),
            "timing": timing,
        }

    # c. torch.
    if torch is not None:
        net = torch_model(torch, model)
        segments = len(segment_starts(n))
        autograd, checkpointed = torch_steps(torch, net, x, y, segments)
        sqrt_grads = model.new_grads()

        def runner_sqrt():
            return tradeoff.run(model, x, y, "sqrt", grads=sqrt_grads)

        torch_loss = autograd()
        autograd_grads = [p.grad.numpy().copy() for p in net.parameters()]
        checkpoint_loss = checkpointed()
        checkpoint_grads = [p.grad.numpy().copy() for p in net.parameters()]
        log(f"{spec['name']}: store-all vs torch autograd")
        vs_autograd = cfg.compare(runner_store_all, autograd)
        log(f"{spec['name']}: sqrt vs torch checkpoint_sequential ({segments} segments)")
        vs_checkpoint = cfg.compare(runner_sqrt, checkpointed)
        out["torch"] = {
            "segments": segments,
            "store_all_vs_autograd": vs_autograd,
            "sqrt_vs_checkpoint": vs_checkpoint,
            "checkpoint_over_autograd": vs_checkpoint["b_s"] / vs_autograd["b_s"],
            "grad_rel_diff_autograd": relative_difference(grads, autograd_grads),
            "grad_rel_diff_checkpoint": relative_difference(grads, checkpoint_grads),
            "loss_rel_diff": abs(float(base.loss) - torch_loss.item()) / abs(torch_loss.item()),
            "loss_rel_diff_checkpoint": abs(float(base.loss) - checkpoint_loss.item())
            / abs(checkpoint_loss.item()),
        }
    return out


# --- the report -----------------------------------------------------------------------------------
def verdicts(results: list[dict]) -> list[tuple[str, bool | None, str]]:
    """(target, met, evidence) for each target of issue 6 (None: not measured here)."""

    def noisy(c: dict) -> str:
        return "" if c["quiet"] else " (noisy)"

    rows = []
    for m in results:
        h = m["hand"]
        target = f"{m['spec']['name']}: store-all / hand-written numpy <= {HAND_TARGET}"
        rows.append((target, h["ratio"] <= HAND_TARGET, f"{h['ratio']:.3f}{noisy(h)}"))
    first = results[0]
    for name, s in first["strategies"].items():
        target = (
            f"{first['spec']['name']}: {name} time ratio within {FLOPS_TOLERANCE:.0%} of its "
            "FLOPs ratio"
        )
        evidence = (
            f"time {s['time_ratio']:.3f}, FLOPs {s['flops_ratio']:.3f} "
            f"({s['time_over_flops'] - 1:+.1%}); per-op sum {s['op_sum_ratio']:.3f}"
            + noisy(s["timing"])
        )
        rows.append((target, abs(s["time_over_flops"] - 1) <= FLOPS_TOLERANCE, evidence))
    for m in results:
        t = m.get("torch")
        target = f"{m['spec']['name']}: store-all / torch autograd <= {TORCH_TARGET}"
        if t is None:
            rows.append((target, None, "torch not installed"))
            continue
        c = t["store_all_vs_autograd"]
        rows.append((target, c["ratio"] <= TORCH_TARGET, f"{c['ratio']:.3f}{noisy(c)}"))
        if m["spec"]["dtype"] == "float64":
            diff = max(t["grad_rel_diff_autograd"], t["grad_rel_diff_checkpoint"])
            target = f"{m['spec']['name']}: gradients agree with torch to {GRAD_RTOL:g} relative"
            rows.append((target, diff <= GRAD_RTOL, f"{diff:.2e}"))
    return rows


def markdown(report: dict) -> str:
    """reports/performance.md from the raw results."""
    env, cfg = report["environment"], report["config"]
    lines = [
        "# Performance: the runner measured side by side",
        "",
        "Generated by:",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"on {report['date']} at commit `{env['git_commit'][:12]}`"
        + (
            f" with uncommitted changes ({', '.join(env['git_modified'])})"
            if env["git_modified"]
            else ""
        )
        + ". Do not edit by hand: rerun the command.",
        "",
        "**How it is measured.** Everything runs in one process. Each comparison alternates "
        f"its two sides (A B A B ...) for {cfg['pairs']} pairs after one untimed call of each; "
        f"each side of a pair is the best of {cfg['repeats']} back-to-back calls, a ratio is the "
        "median of the per-pair ratios A/B, and a time is a median. Each side starts after a "
        f"{cfg['pause_s']} s pause: OpenBLAS's idle worker threads spin for about 0.1 s after "
        "each call, and torch timed right after numpy would otherwise share the cores with "
        "them. **This machine has 2 cores and is shared with other work (other "
        "sessions run their test suites on it), so timings are noisy**: a burst of another "
        "process takes a core from a 2-thread BLAS call and slows it several times over. So "
        "each pair starts once other processes have used at most "
        f"{cfg['quiet_cores']} of a core for a pause (waiting up to {cfg['quiet_wait_s']:g} s), "
        "and a pair during which they used more (from /proc/stat, less this process's own CPU "
        "time) is set aside and measured again, up to "
        f"{cfg['max_attempts']} times as many pairs as wanted; a comparison that never got "
        "enough quiet pairs uses them all and is marked *noisy*. Read the ratios, measured side "
        "by side, rather than absolute times; the min..max of the per-pair ratios is shown. "
        "Load average (1 min) before and after: "
        f"{report['load_before'][0]:.2f} and {report['load_after'][0]:.2f}.",
        "",
        "## Targets (issue 6)",
        "",
        "| target | met | measured |",
        "|---|---|---|",
    ]
    for target, met, evidence in report["verdicts"]:
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {target} | {mark} | {evidence} |")
    for m in report["models"]:
        spec = m["spec"]
        lines += [
            "",
            f"## {spec['name']}: {spec['blocks']} blocks of width {spec['width']}, "
            f"batch {spec['batch']}, {spec['dtype']}, {ACTIVATION}, {LOSS}",
            "",
            "| A / B | A median | B median | A/B (median of pairs) | min..max | pairs "
            "| FLOPs ratio | per-op sum ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        h = m["hand"]
        lines.append(row("runner store-all / hand-written numpy", h, 1, 1))
        for name, s in m["strategies"].items():
            opts = ", ".join(f"{k}={v}" for k, v in s["options"].items())
            label = f"{name} ({opts})" if opts else name
            lines.append(
                row(f"{label} / store-all", s["timing"], s["flops_ratio"], s["op_sum_ratio"])
            )
        t = m.get("torch")
        if t is not None:
            lines.append(row("runner store-all / torch autograd", t["store_all_vs_autograd"]))
            label = f"runner sqrt / torch checkpoint_sequential ({t['segments']} segments)"
            lines.append(row(label, t["sqrt_vs_checkpoint"]))
        lines.append("")
        lines.append(
            f"Hand-written numpy gradients bit-identical to the runner's: {h['bit_identical']}. "
            "Every strategy's gradients bit-identical to store-all's: "
            f"{all(s['bit_identical'] for s in m['strategies'].values())}."
        )
        if m["skipped"]:
            skipped = "; ".join(f"{k}: {v}" for k, v in m["skipped"].items())
            lines.append(f"Skipped strategies: {skipped}.")
        if t is not None:
            lines += [
                "",
                "Gradients against torch (max over tensors of max|ours - torch| / max|torch|): "
                f"autograd {t['grad_rel_diff_autograd']:.2e}, checkpoint_sequential "
                f"{t['grad_rel_diff_checkpoint']:.2e}; loss {t['loss_rel_diff']:.2e}. "
                "torch's checkpoint_sequential / its autograd: "
                f"{t['checkpoint_over_autograd']:.3f}.",
            ]
        lines += [
            "",
            "The runner's own time (its wall time less the time inside its ops: the walk, the "
            "meter, validation, set-up, and freeing what the walk lets go of): "
            + ", ".join(
                f"{name} {ms(c['own']['own_s'])} of {ms(c['own']['step_s'])} "
                f"({c['own']['own_fraction']:.1%}, {c['actions']} actions)"
                for name, c in [("store-all", m["store_all"]), *m["strategies"].items()]
            )
            + ".",
            "",
            "Inside a store-all step, forward blocks run at "
            f"{m['ops_gflops']['forward']:.1f} GFLOP/s and backward blocks at "
            f"{m['ops_gflops']['backward']:.1f} GFLOP/s (each op timed alone; they sum to "
            f"{ms(m['op_sum_store_all_s'])}: forward blocks {ms(sum(m['ops']['forward_s']))}, "
            f"loss {ms(m['ops']['loss_s'])}, backward blocks {ms(sum(m['ops']['backward_s']))}). "
            "Matmul throughput of one block's three shapes, hot in cache, back to back: "
            + ", ".join(f"{k}: {v:.1f} GFLOP/s" for k, v in m["matmul_gflops"].items())
            + ".",
            "",
            "Minor page faults per call, counted during the pairs above (memory the allocator "
            "returned to the OS after the previous call, which the kernel maps and zeroes "
            f"again), at {report['page_fault_s'] * 1e6:.2f} µs each as measured here: "
            + "; ".join(
                f"{label} {c['a_faults']:.0f} against {c['b_faults']:.0f} "
                f"(~{ms(c['a_faults'] * report['page_fault_s'])} against "
                f"~{ms(c['b_faults'] * report['page_fault_s'])})"
                for label, c in [
                    ("runner store-all / hand-written numpy", m["hand"]),
                    *(
                        [("runner store-all / torch autograd", t["store_all_vs_autograd"])]
                        if t is not None
                        else []
                    ),
                ]
            )
            + ".",
        ]
    lines += ["", "## Why a time ratio departs from the FLOPs ratio", "", report["notes"], ""]
    lines += ["## Environment", "", environment_summary(env), "", "```"]
    lines += [json.dumps(env, indent=2), "```", ""]
    return "\n".join(lines)


def row(label: str, c: dict, flops_ratio=None, op_sum_ratio=None) -> str:
    """One line of a comparison table."""
    pairs = str(c["pairs_used"])
    if c["pairs_set_aside"]:
        pairs += f" (+{c['pairs_set_aside']} set aside)"
    if not c["quiet"]:
        pairs += " *noisy*"
    extra = " | ".join("" if v is None else f"{v:.3f}" for v in (flops_ratio, op_sum_ratio))
    return (
        f"| {label} | {ms(c['a_s'])} | {ms(c['b_s'])} | **{c['ratio']:.3f}** "
        f"| {c['ratio_min']:.3f}..{c['ratio_max']:.3f} | {pairs} | {extra} |"
    )


def ms(seconds: float) -> str:
    """Seconds as milliseconds, for the tables."""
    return f"{seconds * 1e3:.2f} ms"


def _side(gaps) -> str:
    """'above', 'below' or 'on both sides of', for relative gaps against a reference."""
    if all(g > 0 for g in gaps):
        return "above"
    if all(g < 0 for g in gaps):
        return "below"
    return "on both sides of"


def _span(gaps) -> str:
    """'-7.7% to -1.8%': the range of relative gaps."""
    return f"{min(gaps):+.1%} to {max(gaps):+.1%}"


def notes(results: list[dict], page_fault_s: float) -> str:
    """Why a time ratio departs from its FLOPs ratio, every statement from this run's figures."""
    text = [
        "A strategy's FLOPs ratio weighs a recomputed forward like any other FLOP; its time "
        "ratio weighs it by what a forward actually costs. A forward block is one matmul, a bias "
        "add and the activation; a backward block two matmuls (dx and dW; block 0 skips dx), a "
        "bias reduction and the activation's derivative; each runs at the throughput of its own "
        "shapes and memory traffic. The *per-op sum ratio* column is the time each strategy "
        "would take if it cost exactly the sum of its ops, each timed alone outside the runner "
        "in store-all's order (the same layer code and BLAS calls, no walk, no meter, no "
        "validation), over the same sum for store-all. The runner's own time, measured directly, "
        "bounds what the runner itself adds."
    ]
    for m in results:
        strategies = m["strategies"]
        if not strategies:
            continue
        g = m["ops_gflops"]
        measured = [s["time_over_flops"] - 1 for s in strategies.values()]
        priced = [s["op_sum_ratio"] / s["flops_ratio"] - 1 for s in strategies.values()]
        own = [m["store_all"]["own"]["own_fraction"]]
        own += [s["own"]["own_fraction"] for s in strategies.values()]
        paragraph = (
            f"On {m['spec']['name']}, forward blocks run at {g['forward']:.1f} GFLOP/s and "
            f"backward blocks at {g['backward']:.1f} GFLOP/s when each op is timed alone, so the "
            f"per-op sums put the time ratios {_side(priced)} the FLOPs ratios "
            f"({_span(priced)}). The measured time ratios lie {_side(measured)} them "
            f"({_span(measured)}: "
            + ", ".join(f"{name} {gap:+.1%}" for name, gap in zip(strategies, measured))
            + ")."
        )
        if _side(measured) != _side(priced):
            # time ratio / per-op sum ratio = (T / O) / (T_store_all / O_store_all): which
            # side of that quotient departs from its isolated ops says where the gap lies.
            isolated = m["op_sum_store_all_s"]
            excess = {"store-all": m["store_all"]["own"]["step_s"] / isolated - 1}
            for name, c in strategies.items():
                excess[name] = c["own"]["step_s"] / (c["op_sum_ratio"] * isolated) - 1
            paragraph += (
                " Each step's time against the sum of its ops timed alone: "
                + ", ".join(f"{name} {gap:+.1%}" for name, gap in excess.items())
                + (
                    ": store-all's step exceeds its ops timed alone by more than any other does, "
                    "which puts every time ratio below its per-op sum ratio."
                    if max(excess, key=excess.get) == "store-all"
                    else "."
                )
            )
        faults = [
            (name, s["timing"]["a_faults"], s["timing"]["b_faults"])
            for name, s in strategies.items()
            if s["timing"]["a_faults"] or s["timing"]["b_faults"]
        ]
        if faults:
            paragraph += (
                " Minor page faults per call (median over the pairs, "
                f"{page_fault_s * 1e6:.2f} µs each) differ between the sides of "
                + ", ".join(
                    f"{name} against store-all: {a:.0f} against {b:.0f} "
                    f"(~{ms(a * page_fault_s)} against ~{ms(b * page_fault_s)})"
                    for name, a, b in faults
                )
                + (
                    "; store-all, which keeps every output alive and so needs the most fresh "
                    "memory, takes more of them."
                    if all(b > a for _, a, b in faults)
                    else "."
                )
            )
        paragraph += (
            f" The runner's own time is {min(own):.1%} to {max(own):.1%} of a step, so the gap "
            "between time and FLOPs is not the runner's bookkeeping."
        )
        text.append(paragraph)
    return "\n\n".join(text)


def main(argv=None) -> int:
    """Run the study; write the JSON and the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models and few pairs")
    parser.add_argument("--pairs", type=int, help="interleaved pairs per comparison")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for performance.json and performance.md (default: reports/; "
        "with --quick nothing is written unless --out is given)",
    )
    args = parser.parse_args(argv)
    models = QUICK_MODELS if args.quick else MODELS
    out_dir = args.out or (None if args.quick else REPORTS)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    torch = None if args.no_torch else load_torch()
    threads = blas_threads()
    if torch is not None and threads:
        # The same number of threads on both sides, so that the comparison is fair.
        torch.set_num_threads(threads)
    load_before = os.getloadavg()
    cfg = Settings(
        pairs=args.pairs or (QUICK_PAIRS if args.quick else PAIRS),
        pause=QUICK_PAUSE_S if args.quick else PAUSE_S,
        repeats=QUICK_REPEATS if args.quick else REPEATS,
        op_repeats=QUICK_OP_REPEATS if args.quick else OP_REPEATS,
        # A quick run's calls last about a millisecond, far below /proc/stat's resolution (a
        # clock tick, 10 ms): it does not watch the other processes.
        monitor=Monitor(enabled=not args.quick),
    )
    results = [bench_model(spec, cfg, torch, log) for spec in models]
    report = {
        "command": " ".join(
            # the command anyone can rerun, not this machine's interpreter path
            ["python", "experiments/bench_runner.py", *map(shlex.quote, sys.argv[1:])]
        ),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "config": {
            "pairs": cfg.pairs,
            "pause_s": cfg.pause,
            "repeats": cfg.repeats,
            "op_repeats": cfg.op_repeats,
            "activation": ACTIVATION,
            "loss": LOSS,
            "seed": SEED,
            "quick": args.quick,
            "quiet_cores": QUIET_CORES,
            "quiet_wait_s": QUIET_WAIT_S,
            "max_attempts": MAX_ATTEMPTS,
        },
        "environment": environment(torch),
        "page_fault_s": page_fault_cost(cfg.op_repeats),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "models": results,
        "notes": None,
    }
    report["notes"] = notes(results, report["page_fault_s"])
    report["verdicts"] = verdicts(results)
    for target, met, evidence in report["verdicts"]:
        mark = "n/a" if met is None else ("met" if met else "NOT MET")
        print(f"{mark:8} {target}: {evidence}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, indent=1) + "\n"
        write_atomically(out_dir / "performance.json", lambda handle: handle.write(text))
        write_atomically(out_dir / "performance.md", lambda handle: handle.write(markdown(report)))
        log(f"wrote {out_dir / 'performance.json'} and {out_dir / 'performance.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
