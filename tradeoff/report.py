"""The written report: figures and reports/README.md, regenerated from the rows in data/.

Every number in the README is computed here from the rows, next to the command that made the
rows, so a claim can never drift from its data. The same rows give the same files, byte for
byte (SVG and Markdown; PNG too with the same matplotlib and fonts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from . import plots
from .files import write_atomically
from .model import xor_network
from .runner import infer
from .sweep import (
    COUNT,
    OBJECT,
    SAMPLES,
    SECONDS,
    TEXT,
    WHOLE,
    WIDTHS,
    Kind,
    check_fields,
    read_rows,
)

MiB = 2**20
DATA_FILES = {
    "depth": "depth.jsonl",
    "compare": "compare.jsonl",
    "frontier": "frontier.json",
    "timeline": "timeline.json",
}
COMMANDS = {
    "depth": "python experiments/depth_sweep.py",
    "compare": "python experiments/measures.py",
    "frontier": "python experiments/frontier.py",
    "timeline": "python experiments/timeline.py",
}
REGENERATE = "python experiments/regenerate.py"
XOR_INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]


# What each figure and sentence reads beyond the fields every row has (sweep.ROW_FIELDS).
MODEL_FIELDS = {"model": OBJECT, "model.widths": WIDTHS, "model.batch": COUNT, "model.dtype": TEXT}
TIMED_FIELDS = {**MODEL_FIELDS, "time_s": SECONDS, "time_samples_s": SAMPLES}
COMPARE_FIELDS = {
    **TIMED_FIELDS,
    "predicted_peak_bytes": COUNT,
    "tracemalloc_peak_bytes": COUNT,  # drawn on a log scale, as is RSS
    "tracemalloc_lower_bound_bytes": WHOLE,
    "tracemalloc_upper_bound_bytes": WHOLE,
    "rss_peak_bytes": COUNT,
}
ROWS_FIELDS = {"depth": TIMED_FIELDS, "compare": COMPARE_FIELDS}
NON_EMPTY_LIST = Kind(lambda v: isinstance(v, list) and bool(v), "a non-empty list")
NON_EMPTY_OBJECT = Kind(lambda v: isinstance(v, dict) and bool(v), "a non-empty JSON object")
FRONTIER_FIELDS = {**MODEL_FIELDS, "points": NON_EMPTY_LIST}
FRONTIER_POINT_FIELDS = {"budget_bytes": COUNT, "total_flops": COUNT}
TIMELINE_FIELDS = {**MODEL_FIELDS, "timelines": NON_EMPTY_OBJECT}
TIMELINE = Kind(
    lambda v: isinstance(v, list) and bool(v) and all(map(WHOLE.test, v)),
    "a non-empty list of whole numbers of bytes >= 0",
)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON (corrupt or truncated): {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def _read_frontier(path: Path) -> dict[str, Any]:
    """frontier.json: the model and its points, each a budget and the FLOPs it allows."""
    data = _read_json(path)
    check_fields(data, FRONTIER_FIELDS, str(path))
    for k, point in enumerate(data["points"]):
        check_fields(point, FRONTIER_POINT_FIELDS, f"{path}: points[{k}]")
    return data


def _read_timelines(path: Path) -> dict[str, Any]:
    """timeline.json: the model and, per strategy, the live bytes at each action."""
    data = _read_json(path)
    check_fields(data, TIMELINE_FIELDS, str(path))
    for name, timeline in data["timelines"].items():
        if not TIMELINE.test(timeline):
            shown = json.dumps(timeline)[:60]
            raise ValueError(f"{path}: timeline '{name}' is {shown}, not {TIMELINE.words}")
    return data


def _check_baselines(data: dict[str, Any], data_dir: Path) -> None:
    """Ratios are against store-all: the depth sweep needs it at every depth, compare once."""
    depth = plots._depth
    rows = data["depth"]
    measured = {depth(r) for r in rows if r["strategy"] == "store-all"}
    missing = sorted({depth(r) for r in rows} - measured)
    if missing:
        raise ValueError(
            f"{data_dir / DATA_FILES['depth']} has no store-all row at depth {missing[0]}: "
            "the ratios are against store-all's"
        )
    if not any(r["strategy"] == "store-all" for r in data["compare"]):
        raise ValueError(
            f"{data_dir / DATA_FILES['compare']} has no store-all row: the ratios are against "
            "store-all's"
        )


def load_data(data_dir: Path) -> dict[str, Any]:
    """The rows the report needs, every field it reads checked.

    Raises ValueError naming the file (and line, or entry) of anything missing, corrupt, empty
    or of the wrong kind, before any figure is drawn or any file written.
    """
    readers = {
        "depth": lambda path: read_rows(path, ROWS_FIELDS["depth"]),
        "compare": lambda path: read_rows(path, ROWS_FIELDS["compare"]),
        "frontier": _read_frontier,
        "timeline": _read_timelines,
    }
    data: dict[str, Any] = {}
    for key, name in DATA_FILES.items():
        path = data_dir / name
        if not path.exists():
            raise ValueError(f"missing data file {path} (make it with: {COMMANDS[key]})")
        data[key] = readers[key](path)
        if not data[key]:
            raise ValueError(f"data file {path} holds no rows")
    _check_baselines(data, data_dir)
    return data


def _slope(rows: list[dict[str, Any]]) -> float:
    """The log-log slope of accounted peak against depth, by least squares."""
    x = np.log([len(r["model"]["widths"]) - 1 for r in rows])
    y = np.log([r["peak_bytes"] for r in rows])
    return float(np.polyfit(x, y, 1)[0])


def _mib(n: float) -> str:
    return f"{n / MiB:.2f} MiB"


def _depth_text(rows: list[dict[str, Any]]) -> tuple[str, str]:
    series = plots._by_series(rows)
    depth = lambda r: len(r["model"]["widths"]) - 1  # noqa: E731
    deepest = max(depth(r) for r in rows)
    at_deepest = {
        name: next(r for r in g if depth(r) == deepest)
        for name, g in series.items()
        if any(depth(r) == deepest for r in g)
    }
    slopes = ", ".join(f"{name} {_slope(g):.2f}" for name, g in series.items() if len(g) > 1)
    peaks = ", ".join(f"{name} {_mib(r['peak_bytes'])}" for name, r in at_deepest.items())
    memory = (
        f"At depth {deepest} the accounted peaks are: {peaks}. Fitted log-log slopes of peak "
        f"against depth (1 is O(n), 0.5 is O(sqrt n), 0 is O(1)): {slopes}."
    )
    base = at_deepest["store-all"]["flops"]["total"]
    ratios = ", ".join(
        f"{name} {r['flops']['total'] / base:.2f}x" for name, r in at_deepest.items()
    )
    shallow = min(depth(r) for r in rows)
    rc = {depth(r): r for r in series.get("recompute-all", [])}
    sa = {depth(r): r for r in series["store-all"]}
    growth = ""
    if shallow in rc and deepest in rc:
        lo = rc[shallow]["flops"]["total"] / sa[shallow]["flops"]["total"]
        hi = rc[deepest]["flops"]["total"] / sa[deepest]["flops"]["total"]
        growth = (
            f" recompute-all's ratio grows from {lo:.2f}x at depth {shallow} to {hi:.2f}x at "
            f"depth {deepest}, linearly in n: its recompute count is n(n+1)/2."
        )
    sqrt_max = max(
        (
            r["flops"]["total"] / sa[depth(r)]["flops"]["total"]
            for r in series.get("sqrt", [])
            if depth(r) in sa
        ),
        default=float("nan"),
    )
    compute = (
        f"Total FLOPs against store-all's at depth {deepest}: {ratios}.{growth} sqrt never exceeds "
        f"{sqrt_max:.2f}x: at most one extra forward per block; revolve trades slots for "
        "recomputation, fewer slots costing more."
    )
    return memory, compute


def _frontier_text(frontier: dict[str, Any], named: list[dict[str, Any]]) -> str:
    points = frontier["points"]
    base = next(r for r in named if r["strategy"] == "store-all")
    lines = []
    for r in named:
        fits = [p for p in points if p["budget_bytes"] <= r["peak_bytes"]]
        best = min(p["total_flops"] for p in fits) if fits else None
        if best is None:
            continue
        lines.append(
            f"{plots.series_name(r)} at {_mib(r['peak_bytes'])} costs "
            f"{r['flops']['total'] / base['flops']['total']:.3f}x store-all's FLOPs; optimal "
            f"within the same budget {best / base['flops']['total']:.3f}x"
        )
    return (
        f"The frontier has {len(points)} steps, from {_mib(points[0]['budget_bytes'])} (the "
        f"smallest feasible peak) to {_mib(points[-1]['budget_bytes'])}. " + "; ".join(lines) + "."
    )


def _timeline_text(data: dict[str, Any]) -> str:
    parts = [
        f"{name} peaks at {_mib(max(t))} over {len(t)} actions"
        for name, t in data["timelines"].items()
    ]
    return (
        "Store-all climbs through the forward pass and falls through the backward; the "
        "checkpointing strategies keep a low floor of saved inputs and rise in a sawtooth, one "
        "tooth per recomputed segment. " + "; ".join(parts) + "."
    )


def _measures_text(rows: list[dict[str, Any]]) -> str:
    exact = all(r["peak_bytes"] == r["predicted_peak_bytes"] for r in rows)
    within = all(
        r["tracemalloc_lower_bound_bytes"]
        <= r["tracemalloc_peak_bytes"]
        <= r["tracemalloc_upper_bound_bytes"]
        for r in rows
    )
    gaps = [(r["tracemalloc_peak_bytes"] - r["peak_bytes"]) / MiB for r in rows]
    rss = [r["rss_peak_bytes"] for r in rows]
    return (
        f"The dry run's prediction {'equals' if exact else 'DIFFERS FROM'} the accounted peak for "
        f"every strategy. tracemalloc (which also sees element-wise temporaries, and not the "
        f"batch) lies {min(gaps):+.2f} to {max(gaps):+.2f} MiB from the accounted peak, "
        f"{'inside' if within else 'OUTSIDE'} the stated bound for every row. Sampled RSS, "
        f"{_mib(min(rss))} to {_mib(max(rss))}, is dominated by the interpreter, numpy and BLAS, "
        "so it hardly tells the strategies apart at this size."
    )


def _time_text(rows: list[dict[str, Any]]) -> str:
    flops = np.array([r["flops"]["total"] for r in rows], dtype=float)
    times = np.array([r["time_s"] for r in rows])
    slope = float(np.polyfit(np.log(flops), np.log(times), 1)[0])
    rates = flops / times / 1e9
    slowest = rows[int(np.argmin(rates))]["time_samples_s"]
    contended = sum("contended" in str(r.get("timing", "")) for r in rows)
    return (
        f"A least-squares line through log time against log FLOPs of the {len(rows)} measured "
        f"steps has slope {slope:.2f} (1 would be time proportional to FLOPs). The throughput "
        f"is {np.median(rates):.1f} GFLOP/s median, {rates.min():.1f} to {rates.max():.1f}. "
        f"Small steps also pay a fixed cost per action, and all share a 2-core machine with "
        f"other work: the step of lowest throughput took {min(slowest) * 1e3:.2f} to "
        f"{max(slowest) * 1e3:.2f} ms over its repeats. "
        + (f"{contended} rows were timed under contention. " if contended else "")
        + "Times are medians of repeated steps."
    )


def _xor_text(outputs: list[float]) -> str:
    values = ", ".join(f"{v:g}" for v in outputs)
    return (
        f"The network outputs exactly {values} at (0,0), (0,1), (1,0), (1,1). The hidden ReLU "
        "units compute relu(x1 + x2) and relu(x1 + x2 - 1); the output subtracts twice the "
        "second from the first, so the plane folds along x1 + x2 = 1 and the 0.5 contour "
        "separates the two classes with two parallel lines."
    )


def write_report(data_dir: Path, out_dir: Path) -> list[Path]:
    """Make every figure and reports/README.md from the rows in ``data_dir``.

    Everything is read, checked, drawn and composed in memory first, so that bad data raises
    ValueError before any directory or file is created.
    """
    data = load_data(data_dir)
    xor_model = xor_network()
    xor_outputs = [float(v) for v in infer(xor_model, np.array(XOR_INPUTS, dtype=np.float64))[:, 0]]
    with matplotlib.rc_context(plots.RC):
        figures = {
            "peak_vs_depth": plots.peak_vs_depth(data["depth"]),
            "flops_vs_depth": plots.flops_vs_depth(data["depth"]),
            "frontier": plots.frontier(
                data["frontier"]["points"], data["compare"], data["frontier"]["model"]
            ),
            "timeline": plots.timelines(data["timeline"]),
            "memory_measures": plots.memory_measures(data["compare"]),
            "time_vs_flops": plots.time_vs_flops(data["depth"] + data["compare"]),
            "xor": plots.xor_regions(lambda x: infer(xor_model, x)[:, 0]),
        }
    readme_text = _readme(_sections(data, xor_outputs))
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures.items():
        written += plots.save(fig, figures_dir / stem)
    readme = out_dir / "README.md"
    write_atomically(readme, lambda handle: handle.write(readme_text))
    return [*written, readme]


def _sections(data: dict[str, Any], xor_outputs: list[float]) -> list[tuple[str, str, str, str]]:
    """(figure stem, title, text, command that made its rows) for each section of README.md."""
    memory, compute = _depth_text(data["depth"])
    return [
        ("peak_vs_depth", "Peak memory against depth", memory, COMMANDS["depth"]),
        ("flops_vs_depth", "Compute overhead against depth", compute, COMMANDS["depth"]),
        (
            "frontier",
            "The compute-memory frontier",
            _frontier_text(data["frontier"], data["compare"]),
            f"{COMMANDS['frontier']} && {COMMANDS['compare']}",
        ),
        (
            "timeline",
            "Live bytes over one step",
            _timeline_text(data["timeline"]),
            COMMANDS["timeline"],
        ),
        (
            "memory_measures",
            "Four views of peak memory",
            _measures_text(data["compare"]),
            COMMANDS["compare"],
        ),
        (
            "time_vs_flops",
            "Does time follow FLOPs?",
            _time_text(data["depth"] + data["compare"]),
            f"{COMMANDS['depth']} && {COMMANDS['compare']}",
        ),
        ("xor", "The seed's XOR network", _xor_text(xor_outputs), "tradeoff report"),
    ]


def _readme(sections) -> str:
    lines = [
        "# The study",
        "",
        "Generated by `tradeoff report` from the rows in `reports/data/`; do not edit by hand.",
        f"Regenerate everything (measurements, then figures and this page) with `{REGENERATE}`",
        "(about a minute on an idle 2-core machine); `tradeoff report` alone redraws the",
        "figures and this page from the committed rows, byte for byte. Each section names the",
        "command that made its rows.",
        "",
    ]
    for stem, title, text, command in sections:
        lines += [
            f"## {title}",
            "",
            f"![{title}](figures/{stem}.png)",
            "",
            text,
            "",
            f"Rows: `{command}`; figure: `tradeoff report` ([SVG](figures/{stem}.svg)).",
            "",
        ]
    return "\n".join(lines)
