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
import functools
import itertools
import json
import math
import multiprocessing
import os
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chain import Chain
from .files import write_atomically
from .layers import ACTIVATIONS, LOSSES
from .measure import (
    MAX_DEPTH,
    MAX_REPEATS,
    MeasureRequest,
    ModelSpec,
    exit_with_parent,
    measure_here,
)
from .model import DTYPES
from .planner import check_strategy, parse_budget
from .schedule import simulate
from .strategies import STRATEGIES, store_all

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
# Grids share `tradeoff run`'s bounds (MAX_DEPTH and MAX_REPEATS come from measure.py).
PIECES = (2, 255)  # maxout's smallest and largest number of pieces


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
        return point_key(self.spec.to_json(), self.strategy, dict(self.options), self.repeats)

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


def _whole(key: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"grid key {key!r}: {value!r} is not a whole number >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"grid key {key!r}: {value!r} is more than {maximum:,}, the most it takes")
    return value


def _check_numbers(out: dict[str, list]) -> None:
    """The numeric axes, with the bounds of `tradeoff run` (width and batch are left to the
    memory guard, which names the bytes a model needs)."""
    bounds = {
        "depth": (1, MAX_DEPTH),
        "width": (1, None),
        "batch": (1, None),
        "segments": (1, None),
        "slots": (1, None),
        "pieces": PIECES,
        "seed": (0, None),
    }
    for key, (low, high) in bounds.items():
        for value in out.get(key, []):
            _whole(key, value, low, high)
    if len(out["repeats"]) > 1:
        raise ValueError(f"grid key 'repeats' takes one number, got {out['repeats']!r}")
    out["repeats"] = [_whole("repeats", out["repeats"][0], 1, MAX_REPEATS)]


def _check_widths(out: dict[str, list]) -> None:
    """Explicit widths: lists of two or more whole numbers >= 1, at most MAX_DEPTH blocks."""
    out["widths"] = [list(w) if isinstance(w, list) else w for w in out["widths"]]
    for widths in out["widths"]:
        if not isinstance(widths, list) or len(widths) < 2:
            raise ValueError(f"grid key 'widths': {widths!r} is not a list of two or more widths")
        if len(widths) - 1 > MAX_DEPTH:
            raise ValueError(
                f"grid key 'widths': {len(widths) - 1:,} blocks is more than {MAX_DEPTH:,}, "
                "the most it takes"
            )
        for w in widths:
            _whole("widths", w)


def check_grid(grid: dict[str, Any]) -> dict[str, list]:
    """Validate a grid and fill its defaults; every value becomes a list.

    Raises ValueError naming the key: unknown keys, empty lists, unknown names, numbers that
    are not whole or lie outside the bounds of `tradeoff run` (depth at most MAX_DEPTH, repeats
    at most MAX_REPEATS, maxout pieces 2 to 255), ``widths`` together with ``depth`` or
    ``width``.
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
    out.setdefault("repeats", [3])
    _check_numbers(out)
    if "widths" in out:
        _check_widths(out)
    for key, names in {**CHOICES, "strategy": tuple(STRATEGIES)}.items():
        for value in out.get(key, []):
            if value not in names:
                raise ValueError(
                    f"grid key {key!r}: unknown {value!r} (choose from {', '.join(names)})"
                )
    return out


def load_grid(path: str | os.PathLike) -> dict[str, list]:
    """A grid from a TOML file (named .toml) or a JSON file (any other name), checked.

    Raises ValueError naming the file and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")  # TOML is UTF-8 by definition; JSON too here
    except OSError as error:
        raise ValueError(f"cannot read grid file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"grid file {path} is not UTF-8 text (byte {error.start}: {error.reason})"
        ) from None
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        grid = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        # Only .toml is read as TOML; say so, or a grid.yaml would seem to be read as YAML.
        hint = "" if kind == "TOML" else " (grid files are TOML when named .toml, else JSON)"
        raise ValueError(f"grid file {path} is not valid {kind}{hint}: {error}") from None
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
    peak = _store_all_peak(spec)
    return [(("budget", parse_budget(str(value), peak)),) for value in grid["budget"]]


def check_points(points: Iterable[Point]) -> None:
    """Refuse, before anything is measured, any point whose schedule cannot be built.

    Each point is checked from shapes alone (nothing allocated) by ``planner.check_strategy``,
    which builds every schedule but optimal's and checks optimal's budget against the smallest
    feasible peak instead. Raises ValueError naming the first point that cannot run and why.
    """
    for point in points:
        try:
            check_strategy(_shapes(point.spec), point.strategy, **dict(point.options))
        except ValueError as error:
            raise ValueError(f"point {point.label()} cannot run: {error}") from None


@functools.lru_cache(maxsize=64)
def _shapes(spec: ModelSpec) -> Chain:
    """The chain of a model spec, from shapes alone (cached: a grid repeats its models).

    Nothing is allocated: the memory guard may not yet have seen this model.
    """
    return spec.model(allocate=False).chain(spec.batch)


def _store_all_peak(spec: ModelSpec) -> int:
    chain = _shapes(spec)
    return simulate(store_all(chain.n), chain).peak_bytes


# ---------------------------------------------------------------------------------------------
# Results files


@dataclass(frozen=True)
class Kind:
    """What a field of a row must be: a test, and the words an error message uses for it."""

    test: Callable[[Any], bool]
    words: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


TEXT = Kind(lambda v: isinstance(v, str), "text")
OBJECT = Kind(lambda v: isinstance(v, dict), "a JSON object")
WHOLE = Kind(lambda v: _is_int(v) and v >= 0, "a whole number >= 0")
COUNT = Kind(lambda v: _is_int(v) and v >= 1, "a whole number >= 1")
SECONDS = Kind(_is_seconds, "a positive number of seconds")
SAMPLES = Kind(
    lambda v: isinstance(v, list) and bool(v) and all(map(_is_seconds, v)),
    "a non-empty list of positive numbers of seconds",
)
WIDTHS = Kind(
    lambda v: isinstance(v, list) and len(v) >= 2 and all(map(COUNT.test, v)),
    "a list of two or more whole numbers >= 1",
)
# The fields every row has, parents before the fields inside them. Ratios and logarithms are
# taken of the FLOPs and the peak, so both are >= 1 (x[0] alone has bytes, a block FLOPs).
ROW_FIELDS = {
    "strategy": TEXT,
    "flops": OBJECT,
    "flops.total": COUNT,
    "peak_bytes": COUNT,
    "model": OBJECT,
    "model.widths": WIDTHS,
}
# Fields a row may lack, but which must be of their kind when present (a sweep keys on them).
OPTIONAL_ROW_FIELDS = {"point": TEXT, "options": OBJECT, "time_samples_s": SAMPLES}


def _lookup(data: dict[str, Any], name: str) -> tuple[bool, Any]:
    """(found, value) of a dotted field name such as 'flops.total'."""
    value: Any = data
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _shown(value: Any) -> str:
    """A value as the file spells it, cut short: an error message quotes it."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(
    data: Any,
    fields: dict[str, Kind],
    where: str,
    optional: dict[str, Kind] | None = None,
) -> None:
    """Raise ValueError naming ``where`` and the field unless ``data`` is a JSON object with
    every field of ``fields`` of its kind, and of its kind every field of ``optional`` it has.

    Dotted names ('flops.total') reach into nested objects; list parents before their fields.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {_shown(data)} is not a JSON object")
    missing: list[str] = []
    for name, kind in {**fields, **(optional or {})}.items():
        found, value = _lookup(data, name)
        if not found:
            # A field inside a missing one is not named again: 'flops' says it all.
            if name in fields and not any(name.startswith(f"{m}.") for m in missing):
                missing.append(name)
        elif not kind.test(value):
            raise ValueError(f"{where}: field '{name}' is {_shown(value)}, not {kind.words}")
    if missing:
        raise ValueError(f"{where} lacks {', '.join(repr(m) for m in missing)}")


def read_rows(
    path: str | os.PathLike, fields: dict[str, Kind] | None = None
) -> list[dict[str, Any]]:
    """The rows of a JSON-lines results file; [] if it does not exist.

    Raises ValueError naming the file and line of anything that is not a JSON object with the
    fields of a row (ROW_FIELDS, OPTIONAL_ROW_FIELDS when present, and ``fields``, which a
    reader that needs more may add) of the right kinds.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read results file {path}: {error}") from None
    required = {**ROW_FIELDS, **(fields or {})}
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{number}: not a JSON row (corrupt or truncated)") from None
        check_fields(row, required, f"{path}:{number}", OPTIONAL_ROW_FIELDS)
        rows.append(row)
    return rows


def row_key(row: dict[str, Any]) -> str | None:
    """The key of the point a row measured, by which a rerun skips it; None if it has none.

    A sweep stores the key in the row. A row measured without one (``tradeoff compare --json``,
    or experiments/measures.py before it resumed) gets the key its point would have, from its
    model, strategy, options and number of timed steps, so that it need not be measured again.
    """
    if "point" in row:
        return row["point"]
    if "time_samples_s" not in row:
        return None
    # one sample per timed step
    repeats = len(row["time_samples_s"])
    return point_key(row["model"], row["strategy"], row.get("options", {}), repeats)


def point_key(model: dict[str, Any], strategy: str, options: dict[str, int], repeats: int) -> str:
    """The key of a point: its model (as ``ModelSpec.to_json``), strategy, options, repeats."""
    point = {"model": model, "strategy": strategy, "options": options, "repeats": repeats}
    return json.dumps(point, sort_keys=True)


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
    is rewritten atomically with every row so far. ``progress(point)`` is called as each point
    finishes. ``fresh`` ignores (and replaces) the rows already there. Every point still to
    measure is checked first (``check_points``): one that cannot run raises ValueError before
    anything is measured or written.
    """
    rows = [] if fresh else read_rows(path)
    done = {row_key(row) for row in rows}
    todo = [p for p in points if p.key not in done]
    check_points(todo)  # before anything is written: a point that cannot run stops the sweep
    if fresh:
        write_rows(path, rows)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, max_tasks_per_child=1, initializer=exit_with_parent
    ) as pool:
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
    return [row for row in rows if row_key(row) in wanted]
