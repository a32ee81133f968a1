"""Sweeps: a grid of measured points, resumable, one fresh process per point.

A grid names lists of values for the model (depth and width, or explicit widths; batch, dtype,
activation, loss, seed) and for the strategies (strategy, segments, slots, budget). Every point
is measured by ``measure`` in a process of its own. Rows go to a JSON-lines file: after each
point the whole file is written to a temporary file and renamed over the old one, so an
interruption (SIGINT, SIGKILL, a crash) leaves every finished row and never half a row; a rerun
skips the points already there.
"""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import write_atomically
from .layers import ACTIVATIONS, LOSSES
from .measure import MeasureRequest, ModelSpec, measure_here
from .model import DTYPES
from .runner import predict
from .strategies import STRATEGIES

# Grid keys and the option each strategy-specific key feeds.
MODEL_KEYS = ("depth", "width", "widths", "batch", "dtype", "activation", "loss", "seed", "pieces")
STRATEGY_KEYS = ("strategy", "segments", "slots", "budget")
GRID_KEYS = (*MODEL_KEYS, *STRATEGY_KEYS, "repeats")
DEFAULTS: dict[str, list] = {
    "depth": [16],
    "width": [256],
    "batch": [64],
    "dtype": ["float64"],
    "activation": ["relu"],
    "loss": ["softmax_ce"],
    "seed": [0],
    "pieces": [2],
}
CHOICES = {"dtype": DTYPES, "activation": ACTIVATIONS, "loss": tuple(LOSSES)}


@dataclass(frozen=True)
class Point:
    """One measured point of a grid: a model, a strategy with its options, timed steps."""

    spec: ModelSpec
    strategy: str
    options: tuple[tuple[str, int], ...] = ()
    repeats: int = 3
    budget_text: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """A stable identity, stored in each row, by which a rerun recognises finished points."""
        return json.dumps(
            {
                "model": self.spec.to_json(),
                "strategy": self.strategy,
                "options": dict(self.options),
                "repeats": self.repeats,
            },
            sort_keys=True,
        )

    def label(self) -> str:
        """A short description for the progress bar."""
        options = " ".join(f"{k}={v}" for k, v in self.options)
        widths = self.spec.widths
        shape = (
            f"{len(widths) - 1}x{widths[1]}"
            if len(set(widths)) == 1
            else "-".join(map(str, widths))
        )
        return f"{self.strategy} {options} {shape} b{self.spec.batch} {self.spec.dtype}".replace(
            "  ", " "
        )


def _as_list(key: str, value: Any) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"grid key {key!r} has an empty list")
    return values


def _whole(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"grid key {key!r}: {value!r} is not a whole number >= {minimum}")
    return value


def check_grid(grid: dict[str, Any]) -> dict[str, list]:
    """Validate a grid and fill its defaults; every value becomes a list.

    Raises ValueError naming the key: unknown keys, empty lists, unknown names, bad numbers,
    ``widths`` together with ``depth`` or ``width``.
    """
    if not isinstance(grid, dict):
        raise ValueError("a grid must be a table of keys and values")
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"unknown grid keys: {', '.join(unknown)} (known: {', '.join(GRID_KEYS)})")
    if "widths" in grid and ({"depth", "width"} & set(grid)):
        raise ValueError("grid key 'widths' cannot be combined with 'depth' or 'width'")
    out = {key: _as_list(key, value) for key, value in grid.items()}
    for key, values in DEFAULTS.items():
        if key not in out and not (key in ("depth", "width") and "widths" in out):
            out[key] = list(values)
    out.setdefault("strategy", list(STRATEGIES))
    out["repeats"] = [_whole("repeats", out.get("repeats", [3])[0])]
    for key in ("depth", "width", "batch", "segments", "slots", "pieces"):
        for value in out.get(key, []):
            _whole(key, value)
    for value in out.get("seed", []):
        _whole("seed", value, minimum=0)
    if "widths" in out:
        out["widths"] = [list(w) if isinstance(w, list) else w for w in out["widths"]]
        for widths in out["widths"]:
            if not isinstance(widths, list) or len(widths) < 2:
                raise ValueError(
                    f"grid key 'widths': {widths!r} is not a list of two or more widths"
                )
            for w in widths:
                _whole("widths", w)
    for key, names in {**CHOICES, "strategy": tuple(STRATEGIES)}.items():
        for value in out.get(key, []):
            if value not in names:
                raise ValueError(
                    f"grid key {key!r}: unknown {value!r} (choose from {', '.join(names)})"
                )
    return out


def load_grid(path: str | os.PathLike) -> dict[str, list]:
    """A grid from a TOML or JSON file, checked. Raises ValueError naming the problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read grid file {path}: {error.strerror}") from None
    try:
        grid = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"grid file {path} is not valid {path.suffix[1:].upper()}: {error}"
        ) from None
    return check_grid(grid)


def expand(grid: dict[str, list]) -> list[Point]:
    """Every point of a checked grid, in a stable order.

    segments go to sqrt, slots to revolve, budget to optimal; a strategy is not multiplied by
    options it does not take. A budget may be any form ``parse_budget`` reads (bytes, a unit, a
    fraction of store-all's accounted peak at that point).
    """
    if "widths" in grid:
        shapes = [tuple(w) for w in grid["widths"]]
    else:
        shapes = [(w,) * (d + 1) for d in grid["depth"] for w in grid["width"]]
    repeats = grid["repeats"][0]
    points = []
    model_axes = itertools.product(
        shapes,
        grid["batch"],
        grid["dtype"],
        grid["activation"],
        grid["loss"],
        grid["seed"],
        grid["pieces"],
    )
    for widths, batch, dtype, activation, loss, seed, pieces in model_axes:
        pieces = pieces if activation == "maxout" else 2
        spec = ModelSpec(widths, batch, activation, loss, dtype, seed, pieces)
        for strategy in grid["strategy"]:
            for options in _strategy_options(spec, strategy, grid):
                points.append(Point(spec, strategy, options, repeats))
    unique = list(dict.fromkeys(points))  # pieces collapse for non-maxout models
    return unique


def _strategy_options(spec: ModelSpec, strategy: str, grid: dict[str, list]):
    """The option tuples of one strategy at one model."""
    key = {"sqrt": "segments", "revolve": "slots", "optimal": "budget"}.get(strategy)
    if key is None or key not in grid:
        return [()]
    if key != "budget":
        return [((key, value),) for value in grid[key]]
    from .planner import parse_budget

    store_all = predict(spec.model(), spec.batch, "store-all").peak_bytes
    return [(("budget", parse_budget(str(value), store_all)),) for value in grid["budget"]]


# ---------------------------------------------------------------------------------------------
# Results files


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a JSON-lines results file; [] if it does not exist.

    Raises ValueError naming the file and line of anything that is not a JSON object with the
    fields a row has.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read results file {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{number}: not a JSON row (corrupt or truncated)") from None
        missing = [
            k
            for k in ("strategy", "flops", "peak_bytes", "model")
            if not isinstance(row, dict) or k not in row
        ]
        if missing:
            raise ValueError(f"{path}:{number}: a row without {', '.join(missing)}")
        rows.append(row)
    return rows


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace the results file with ``rows``, one JSON object per line, atomically."""

    def write(handle):
        for row in rows:
            handle.write(json.dumps(row, allow_nan=False, sort_keys=True) + "\n")

    write_atomically(path, write)


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def export_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The rows as CSV, nested fields flattened with dots (flops.total, model.batch, ...)."""
    flat = [_flatten({k: v for k, v in row.items() if k != "point"}) for row in rows]
    columns = sorted({key for row in flat for key in row})

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)

    write_atomically(path, write)


# ---------------------------------------------------------------------------------------------
# Running


def _measure_point(point: Point, jobs: int) -> dict[str, Any]:
    """Measure one point in this (fresh) process; with jobs > 1, BLAS gets one thread."""
    request = MeasureRequest(point.spec, point.strategy, dict(point.options), point.repeats)
    if jobs > 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            row = measure_here(request)
        row["timing"] = f"contended: {jobs} jobs, 1 BLAS thread each"
    else:
        row = measure_here(request)
        row["timing"] = "exclusive"
    row["point"] = point.key
    return row


def run_sweep(
    points: list[Point],
    path: Path,
    *,
    jobs: int = 1,
    fresh: bool = False,
    progress: Callable | None = None,
) -> list[dict[str, Any]]:
    """Measure every point not yet in ``path`` and return all rows of the grid.

    Each point runs in a new process (one task per process). After each point the results file
    is rewritten atomically with every row so far. ``progress(done_point_label)`` is called as
    each point finishes. ``fresh`` ignores (and replaces) the rows already there.
    """
    rows = [] if fresh else read_rows(path)
    done = {row.get("point") for row in rows}
    todo = [p for p in points if p.key not in done]
    if fresh:
        write_rows(path, rows)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(_measure_point, point, jobs): point for point in todo}
        try:
            for future in as_completed(futures):
                rows.append(future.result())
                write_rows(path, rows)
                if progress is not None:
                    progress(futures[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    wanted = {p.key for p in points}
    return [row for row in rows if row.get("point") in wanted]
