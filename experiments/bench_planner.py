"""The planner's speed and the discretised mode's cost (issue 4). Not a timed test.

Measures, on this machine:

a. revolve: generating the schedule for n = 1000 blocks (median of repeats), at a few slot
   counts, and the recompute count against t(n, s);
b. optimal in its discretised mode planning a 200-block MLP with heterogeneous widths (median
   of repeats), at a few budgets, with the unit and what the plan costs against store-all and
   against sqrt;
c. the discretised mode's FLOPs against the exact mode on chains where both run: every budget
   of the exact frontier, the relative excess of the grid plan's total FLOPs;
d. the transformer-like example (experiments/transformer_chain.py): a 96-layer plan.

It writes reports/planner_bench.json (raw) and reports/planner.md (tables, with the command
that produced them at the top).

    python experiments/bench_planner.py
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from transformer_chain import transformer_chain

import tradeoff
from tradeoff import simulate
from tradeoff.planner import DEFAULT_UNITS, size_gcd

# --- config -----------------------------------------------------------------------------------
REPORTS = Path(__file__).resolve().parent.parent / "reports"
REVOLVE_N = 1000
REVOLVE_SLOTS = (2, 10, 31)  # 31: as many as sqrt saves on 1000 blocks
REVOLVE_REPEATS = 21
LONG_BLOCKS = 200
LONG_BATCH = 64
LONG_FRACTIONS = (0.1, 0.25, 0.5)  # budgets, as fractions of store-all's accounted peak
LONG_REPEATS = 3
COMPARE_BLOCKS = (8, 12, 16, 20)
COMPARE_SEEDS = range(3)
COMPARE_UNITS = (DEFAULT_UNITS, 100)
TRANSFORMER_LAYERS = 96
TRANSFORMER_BUDGET = "64GiB"
SEED = 0
COMMAND = "python experiments/bench_planner.py"
# ----------------------------------------------------------------------------------------------


def median_seconds(work, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``work()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heterogeneous_mlp(blocks: int, seed: int) -> tradeoff.MLP:
    """An MLP whose widths are drawn from 16..512: sizes and FLOPs differ block to block."""
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(16, 513, size=blocks + 1)]
    return tradeoff.MLP(widths, activation="relu")


def bench_revolve() -> list[dict]:
    """a. revolve's generation time at n = REVOLVE_N, and its recompute count against t(n, s)."""
    rows = []
    for slots in REVOLVE_SLOTS:
        seconds = median_seconds(lambda s=slots: tradeoff.revolve(REVOLVE_N, s), REVOLVE_REPEATS)
        schedule = tradeoff.revolve(REVOLVE_N, slots)
        loss_at = schedule.index(tradeoff.Loss())
        recompute = sum(isinstance(a, tradeoff.Forward) for a in schedule[loss_at:])
        rows.append(
            {
                "n": REVOLVE_N,
                "slots": slots,
                "seconds": seconds,
                "actions": len(schedule),
                "recompute": recompute,
                "t_n_s": tradeoff.revolve_recompute(REVOLVE_N, slots),
            }
        )
    return rows


def bench_long_chain() -> list[dict]:
    """b. optimal (auto: discretised at this length) on a long heterogeneous MLP."""
    chain = heterogeneous_mlp(LONG_BLOCKS, SEED).chain(LONG_BATCH)
    full = simulate(tradeoff.store_all(chain.n), chain)
    sqrt = simulate(tradeoff.build("sqrt", chain), chain)
    rows = []
    budgets = [int(full.peak_bytes * f) for f in LONG_FRACTIONS] + [sqrt.peak_bytes]
    for budget in budgets:
        seconds = median_seconds(lambda b=budget: tradeoff.solve_optimal(chain, b), LONG_REPEATS)
        solution = tradeoff.solve_optimal(chain, budget)
        p = simulate(solution.schedule, chain)
        rows.append(
            {
                "blocks": chain.n,
                "budget_bytes": budget,
                "budget_of_store_all": budget / full.peak_bytes,
                "mode": solution.mode,
                "unit_bytes": solution.unit_bytes,
                "grid_units": budget // solution.unit_bytes,
                "seconds": seconds,
                "peak_bytes": p.peak_bytes,
                "total_flops": p.flops["total"],
                "flops_over_store_all": p.flops["total"] / full.flops["total"],
                "sqrt_peak_bytes": sqrt.peak_bytes,
                "flops_over_sqrt": p.flops["total"] / sqrt.flops["total"],
            }
        )
    return rows


def bench_rounding() -> list[dict]:
    """c. the discretised mode's FLOPs over exact, at every budget of the exact frontier."""
    rows = []
    for n in COMPARE_BLOCKS:
        for seed in COMPARE_SEEDS:
            chain = heterogeneous_mlp(n, 100 * n + seed).chain(LONG_BATCH)
            front = tradeoff.frontier(chain, mode="exact")
            for units in COMPARE_UNITS:
                excess = []
                for budget, exact_flops in front[:-1]:  # store-all's peak needs no grid
                    s = tradeoff.solve_optimal(chain, budget, mode="discretised", units=units)
                    p = simulate(s.schedule, chain)
                    assert p.peak_bytes <= budget
                    excess.append(p.flops["total"] / exact_flops - 1)
                rows.append(
                    {
                        "blocks": n,
                        "seed": seed,
                        "units": units,
                        "gcd_bytes": size_gcd(chain),
                        "budgets": len(excess),
                        "max_excess": max(excess),
                        "mean_excess": statistics.fmean(excess),
                    }
                )
    return rows


def bench_transformer() -> dict:
    """d. select on the 96-layer transformer-like chain at TRANSFORMER_BUDGET."""
    chain = transformer_chain(layers=TRANSFORMER_LAYERS)
    full = simulate(tradeoff.store_all(chain.n), chain)
    budget = tradeoff.parse_budget(TRANSFORMER_BUDGET, full.peak_bytes)
    start = time.perf_counter()
    plan = tradeoff.select(chain, budget)
    seconds = time.perf_counter() - start
    return {
        "layers": TRANSFORMER_LAYERS,
        "budget": TRANSFORMER_BUDGET,
        "budget_bytes": budget,
        "store_all_peak_bytes": full.peak_bytes,
        "strategy": plan.strategy,
        "peak_bytes": plan.peak_bytes,
        "flops_over_store_all": plan.flops["total"] / full.flops["total"],
        "seconds": seconds,
    }


def markdown(data: dict) -> str:
    """reports/planner.md from the measurements."""
    lines = [
        "# Planner benchmark",
        "",
        f"Produced by `{COMMAND}` ({data['env']['python']}, numpy {data['env']['numpy']}, "
        f"{data['env']['machine']}). Raw rows: `planner_bench.json`.",
        "",
        f"## revolve: generating the schedule for n = {REVOLVE_N}",
        "",
        f"Median of {REVOLVE_REPEATS} generations.",
        "",
        "| slots | seconds | actions | recompute | t(n, s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in data["revolve"]:
        lines.append(
            f"| {r['slots']} | {r['seconds']:.4f} | {r['actions']:,} | {r['recompute']:,} | "
            f"{r['t_n_s']:,} |"
        )
    lines += [
        "",
        f"## optimal, discretised: a {LONG_BLOCKS}-block MLP with widths drawn from 16..512",
        "",
        f"relu, float64, batch {LONG_BATCH}; median of {LONG_REPEATS} plans. The unit is "
        f"ceil(budget / {DEFAULT_UNITS}) bytes; the last row is sqrt's accounted peak.",
        "",
        "| budget (of store-all) | unit (bytes) | seconds | peak / budget | FLOPs / store-all "
        "| FLOPs / sqrt |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["long_chain"]:
        lines.append(
            f"| {r['budget_of_store_all']:.3f} | {r['unit_bytes']:,} | {r['seconds']:.2f} | "
            f"{r['peak_bytes'] / r['budget_bytes']:.4f} | {r['flops_over_store_all']:.4f} | "
            f"{r['flops_over_sqrt']:.4f} |"
        )
    lines += [
        "",
        "## The discretised mode against the exact mode",
        "",
        "Heterogeneous MLPs (widths 16..512, batch 64): at every budget where the exact "
        "optimum changes (below store-all's peak), the grid plan's total FLOPs over the exact "
        "optimum's, less one. Every grid plan fits its budget.",
        "",
        "| blocks | seed | units | budgets | max excess | mean excess |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rounding"]:
        lines.append(
            f"| {r['blocks']} | {r['seed']} | {r['units']} | {r['budgets']} | "
            f"{r['max_excess']:.2%} | {r['mean_excess']:.2%} |"
        )
    for units, s in data["rounding_summary"].items():
        lines.append("")
        lines.append(
            f"With {units} units: at most {s['max_excess']:.2%} more FLOPs than exact, "
            f"{s['mean_excess']:.3%} on average over {s['budgets']} budgets."
        )
    t = data["transformer"]
    lines += [
        "",
        "## A model far too large to run here",
        "",
        f"experiments/transformer_chain.py with {t['layers']} layers (GPT-3-like: s = 2048, "
        f"h = 12288, 96 heads), budget {t['budget']}: select chose **{t['strategy']}**, peak "
        f"{t['peak_bytes'] / 2**30:.1f} GiB of {t['store_all_peak_bytes'] / 2**30:.1f} GiB for "
        f"store-all, {t['flops_over_store_all']:.3f}x store-all's FLOPs, planned in "
        f"{t['seconds']:.2f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run every measurement and write the two reports (--help only prints the help)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Takes a few minutes; writes planner_bench.json and planner.md into --out.",
    )
    parser.add_argument("--out", type=Path, default=REPORTS, help="output directory [reports/]")
    out = parser.parse_args().out
    random.seed(SEED)
    data = {
        "command": COMMAND,
        "env": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": f"{platform.machine()}, {platform.system()}",
        },
    }
    print("revolve ...", file=sys.stderr)
    data["revolve"] = bench_revolve()
    print("a 200-block MLP ...", file=sys.stderr)
    data["long_chain"] = bench_long_chain()
    print("discretised against exact ...", file=sys.stderr)
    data["rounding"] = bench_rounding()
    data["rounding_summary"] = {}
    for units in COMPARE_UNITS:
        rows = [r for r in data["rounding"] if r["units"] == units]
        data["rounding_summary"][str(units)] = {
            "max_excess": max(r["max_excess"] for r in rows),
            "mean_excess": sum(r["mean_excess"] * r["budgets"] for r in rows)
            / sum(r["budgets"] for r in rows),
            "budgets": sum(r["budgets"] for r in rows),
        }
    print("the transformer example ...", file=sys.stderr)
    data["transformer"] = bench_transformer()
    out.mkdir(exist_ok=True)
    (out / "planner_bench.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "planner.md").write_text(markdown(data))
    print(f"wrote {out / 'planner.md'} and {out / 'planner_bench.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
