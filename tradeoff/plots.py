"""Figures from result rows, with matplotlib's object API (no pyplot state).

Each function takes rows (dicts as ``measure`` and the experiments write them) and returns a
Figure; ``save`` writes it as PNG and SVG with fixed metadata and a fixed SVG hash salt, so
that the same rows always give byte-identical SVG files.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from .files import write_atomically

MiB = 2**20
STYLE = {
    "store-all": ("tab:blue", "o"),
    "sqrt": ("tab:orange", "s"),
    "recompute-all": ("tab:red", "^"),
    "revolve": ("tab:green", "D"),
    "optimal": ("tab:purple", "*"),
}
RC = {"svg.hashsalt": "tradeoff", "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8}


def series_name(row: dict[str, Any]) -> str:
    """A strategy with its options: 'sqrt', 'revolve (slots 4)'."""
    options = ", ".join(f"{k} {v}" for k, v in sorted(row.get("options", {}).items()))
    if row["strategy"] == "optimal":
        options = ""  # its budget differs per point; the name is the series
    return f"{row['strategy']} ({options})" if options else row["strategy"]


REVOLVE_SHADES = {1: "tab:brown", 2: "tab:olive", 3: "tab:pink", 4: "tab:cyan", 5: "tab:gray"}


def style(name: str) -> dict[str, Any]:
    """Colour and marker of a series: by strategy; revolve's slot counts in shades that depend
    on the count alone, so that a series looks the same in every figure."""
    color, marker = STYLE.get(name.split(" ")[0], ("tab:gray", "x"))
    slots = re.search(r"slots (\d+)", name)
    if name.startswith("revolve") and slots:
        color = REVOLVE_SHADES.get(int(slots.group(1)), color)
    return {"color": color, "marker": marker}


def _depth(row: dict[str, Any]) -> int:
    return len(row["model"]["widths"]) - 1


def _by_series(rows):
    """Rows grouped by series name, each group by depth, series in STYLE's order."""
    groups: dict[str, list] = defaultdict(list)
    for row in rows:
        groups[series_name(row)].append(row)
    for group in groups.values():
        group.sort(key=_depth)

    def order(name):
        strategy = name.split(" ")[0]
        return (list(STYLE).index(strategy) if strategy in STYLE else len(STYLE), name)

    return dict(sorted(groups.items(), key=lambda item: order(item[0])))


def _styled(rows):
    """(name, rows, style) per series."""
    for name, group in _by_series(rows).items():
        yield name, group, style(name)


def _plain_log_ticks(axis) -> None:
    """Plain numbers at 1, 1.5, 2, 3, 5, 10, 20, ... rather than powers on a log axis."""
    axis.set_major_locator(
        FixedLocator([m * 10**e for e in range(-1, 4) for m in (1, 1.5, 2, 3, 5)])
    )
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def peak_vs_depth(rows: list[dict[str, Any]]) -> Figure:
    """Accounted peak against depth, log-log, per strategy, with O(n), O(sqrt n), O(1) guides."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for name, group, look in _styled(rows):
        peaks = [r["peak_bytes"] / MiB for r in group]
        ax.plot([_depth(r) for r in group], peaks, label=name, **look)
    depths = np.array(sorted({_depth(r) for r in rows}), dtype=float)
    anchor = min(r["peak_bytes"] for r in rows if _depth(r) == depths[0]) / MiB
    guides = [
        ("O(n)", depths, "--"),
        ("O(sqrt n)", np.sqrt(depths), "-."),
        ("O(1)", np.ones_like(depths), ":"),
    ]
    for label, curve, dash in guides:
        ax.plot(depths, anchor * curve / curve[0], dash, color="0.5", lw=1, label=f"guide {label}")
    ax.set(xscale="log", yscale="log", xlabel="depth n (blocks)", ylabel="accounted peak (MiB)")
    ax.set_title(f"Accounted peak memory against depth ({_model_words(rows[0])})")
    ax.legend(ncols=2, loc="upper left")
    ax.grid(True, which="major", alpha=0.3)
    return fig


def flops_vs_depth(rows: list[dict[str, Any]]) -> Figure:
    """Total FLOPs over store-all's at the same depth, per strategy."""
    base = {_depth(r): r["flops"]["total"] for r in rows if r["strategy"] == "store-all"}
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for name, group, look in _styled(rows):
        group = [r for r in group if _depth(r) in base]
        ratios = [r["flops"]["total"] / base[_depth(r)] for r in group]
        ax.plot([_depth(r) for r in group], ratios, label=name, **look)
    ax.set(
        xscale="log", yscale="log", xlabel="depth n (blocks)", ylabel="total FLOPs / store-all's"
    )
    _plain_log_ticks(ax.yaxis)
    ax.set_title(f"Compute overhead against depth ({_model_words(rows[0])})")
    ax.legend(loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def frontier(points: list[dict[str, int]], named: list[dict[str, Any]], model: dict) -> Figure:
    """Optimal total FLOPs over every budget (a step curve), named strategies as points."""
    base = next(r for r in named if r["strategy"] == "store-all")["flops"]["total"]
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    budgets = [p["budget_bytes"] / MiB for p in points]
    ratios = [p["total_flops"] / base for p in points]
    ax.step(budgets, ratios, where="post", color="tab:purple", label="optimal (frontier)")
    previous = None
    for r in sorted(named, key=lambda r: r["peak_bytes"]):
        name = series_name(r)
        x, y = r["peak_bytes"] / MiB, r["flops"]["total"] / base
        ax.plot([x], [y], linestyle="none", markersize=8, label=name, **style(name))
        # A label near the previous one (within 15% in budget) goes below its point instead.
        below = previous is not None and x < previous * 1.15
        offset = (6, -14 if below else 5)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        previous = None if below else x
    ax.set(
        xscale="log",
        xlabel="memory budget = accounted peak (MiB)",
        ylabel="total FLOPs / store-all's",
    )
    _plain_log_ticks(ax.xaxis)
    ax.set_title(f"Compute-memory frontier ({_model_words({'model': model})})")
    ax.legend(loc="upper right")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def timelines(data: dict[str, Any]) -> Figure:
    """Live accounted bytes over one step, one panel per strategy, on shared axes."""
    items = list(data["timelines"].items())
    fig = Figure(figsize=(6.4, 1.5 + 1.3 * len(items)), layout="constrained")
    axes = fig.subplots(len(items), 1, sharey=True, squeeze=False)[:, 0]
    for ax, (name, timeline) in zip(axes, items):
        steps, live, color = range(len(timeline)), np.array(timeline) / MiB, style(name)["color"]
        ax.fill_between(steps, live, step="mid", alpha=0.35, color=color)
        ax.step(steps, live, where="mid", lw=0.8, color=color)
        ax.set_ylabel("live (MiB)")
        ax.set_title(
            f"{name}: {len(timeline)} actions, peak {max(timeline) / MiB:.2f} MiB", loc="left"
        )
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("action index in the schedule")
    fig.suptitle(f"Live accounted bytes over one step ({_model_words({'model': data['model']})})")
    return fig


def memory_measures(rows: list[dict[str, Any]]) -> Figure:
    """Accounted, predicted, tracemalloc and sampled RSS peaks, side by side per strategy."""
    measures = [
        ("peak_bytes", "accounted"),
        ("predicted_peak_bytes", "predicted (dry run)"),
        ("tracemalloc_peak_bytes", "tracemalloc"),
        ("rss_peak_bytes", "RSS (sampled)"),
    ]
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for k, (field, label) in enumerate(measures):
        values = [r[field] / MiB for r in rows]
        ax.bar(x + (k - 1.5) * 0.2, values, width=0.2, label=label)
    ax.set_xticks(x, [series_name(r) for r in rows], rotation=15)
    ax.set(yscale="log", ylabel="peak (MiB, log scale)")
    ax.set_title(f"Four views of peak memory ({_model_words(rows[0])})")
    ax.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return fig


def time_vs_flops(rows: list[dict[str, Any]]) -> Figure:
    """Median measured time against total FLOPs, log-log, with a constant-throughput line."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for name, group, look in _styled(rows):
        flops, times = [r["flops"]["total"] for r in group], [r["time_s"] for r in group]
        ax.plot(flops, times, linestyle="none", label=name, **look)
    flops = np.array([r["flops"]["total"] for r in rows], dtype=float)
    rate = float(np.median(flops / np.array([r["time_s"] for r in rows])))
    line = np.array([flops.min(), flops.max()])
    ax.plot(line, line / rate, "--", color="0.5", label=f"median rate {rate / 1e9:.1f} GFLOP/s")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="total FLOPs of one step",
        ylabel="median time of one step (s)",
    )
    ax.set_title("Does time follow FLOPs?")
    ax.legend(loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def xor_regions(predict_fn) -> Figure:
    """The hand-built XOR network's output over the plane, its 0.5 contour and the four points."""
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    grid = np.linspace(-0.5, 1.5, 201)
    xx, yy = np.meshgrid(grid, grid)
    out = predict_fn(np.column_stack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    levels = np.arange(np.floor(out.min() * 4), np.ceil(out.max() * 4) + 1) / 4
    filled = ax.contourf(xx, yy, out, levels=levels, cmap="RdBu_r")
    ax.contour(xx, yy, out, levels=[0.5], colors="k", linewidths=1.2)
    fig.colorbar(filled, ax=ax, label="network output")
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    values = predict_fn(corners)
    for (a, b), v in zip(corners, values):
        ax.plot([a], [b], "o", color="white" if v > 0.5 else "black", mec="k", ms=9)
        ax.annotate(f"XOR = {v:g}", (a, b), textcoords="offset points", xytext=(8, -12))
    ax.set(xlabel="x1", ylabel="x2", aspect="equal")
    ax.set_title("XOR network: output and the 0.5 contour")
    return fig


def _model_words(row: dict[str, Any]) -> str:
    m = row["model"]
    widths = m["widths"]
    shape = f"width {widths[1]}" if len(set(widths)) == 1 else "-".join(map(str, widths))
    return f"{shape}, batch {m['batch']}, {m['dtype']}"


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg, reproducibly (fixed metadata and hash salt)."""
    paths = []
    formats = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
    with matplotlib.rc_context(RC):
        for ext, metadata in formats.items():
            path = stem.with_suffix(f".{ext}")

            def write(handle, ext=ext, metadata=metadata):
                fig.savefig(handle, format=ext, dpi=150, metadata=metadata)

            write_atomically(path, write, binary=True)
            paths.append(path)
    return paths
