"""The command line: a thin click group over the library. Docstrings are the help text.

Data goes to stdout (a table, or JSON with ``--json``); progress goes to stderr. Bad input exits
with code 2 and a last line ``Error: ...`` on stderr, before anything is computed or written.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from . import __version__
from .files import check_writable, write_atomically
from .layers import ACTIVATIONS, LOSSES
from .measure import MAX_DEPTH, MAX_REPEATS, GradientMismatch
from .model import DTYPES, MLP, xor_network
from .planner import check_strategy, frontier, is_whole, parse_budget, select
from .runner import infer, predict
from .strategies import STRATEGIES, build

XOR_INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]
DEFAULT_DEPTH, DEFAULT_WIDTH, DEFAULT_BATCH = 16, 512, 128
SCHEDULE_TOKENS = 24  # how much of a long schedule the human summary shows
MAX_JOBS = 64  # processes measured side by side; each needs its share of memory


# ---------------------------------------------------------------------------------------------
# Option groups and their validation


class WidthsType(click.ParamType):
    """A comma-separated list of at least two whole numbers >= 1: '784,512,10'."""

    name = "widths"

    def convert(self, value, param, ctx):
        if isinstance(value, list | tuple):
            return list(value)
        parts = [p.strip() for p in str(value).split(",")]
        if len(parts) < 2 or not all(is_whole(p) and int(p) >= 1 for p in parts):
            self.fail(
                f"{value!r} is not a comma-separated list of at least two whole numbers >= 1 "
                "(for example 784,512,10)",
                param,
                ctx,
            )
        return [int(p) for p in parts]


def _apply(options, command):
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def model_options(measured: bool = True):
    """The options that describe a model and its batch (shared by run, compare and plan).

    Commands that measure also take --force, which overrides the memory guard.
    """
    guard = [
        click.option(
            "--force", is_flag=True, help="Run even if the memory guard predicts too little."
        )
    ]
    return functools.partial(
        _apply,
        [
            click.option(
                "--depth", type=click.IntRange(1, MAX_DEPTH), help=f"Blocks [{DEFAULT_DEPTH}]."
            ),
            click.option(
                "--width", type=click.IntRange(min=1), help=f"Units per layer [{DEFAULT_WIDTH}]."
            ),
            click.option("--widths", type=WidthsType(), help="Every width, e.g. 784,512,10."),
            click.option("--batch", type=click.IntRange(min=1), default=DEFAULT_BATCH),
            click.option("--activation", type=click.Choice(ACTIVATIONS), default="relu"),
            click.option("--pieces", type=click.IntRange(2, 255), default=2, help="Maxout pieces."),
            click.option("--loss", type=click.Choice(list(LOSSES)), default="softmax_ce"),
            click.option("--dtype", type=click.Choice(DTYPES), default="float64"),
            click.option("--seed", type=int, default=0),
            *(guard if measured else []),
        ],
    )


def strategy_options(command):
    """The options that shape a strategy: --segments, --slots, --budget."""
    return _apply(
        [
            click.option("--segments", type=click.IntRange(min=1), help="sqrt: segments."),
            click.option(
                "--slots", type=click.IntRange(min=1), help="revolve: saved inputs (x[0] counts)."
            ),
            click.option(
                "--budget",
                help="optimal: bytes (67108864), with a unit (64MiB, 1.5GB), or a fraction of "
                "store-all's accounted peak (0.25).",
            ),
        ],
        command,
    )


def model_spec(depth, width, widths, batch, activation, pieces, loss, dtype, seed, force=True):
    """The ModelSpec that the model options describe; --widths excludes --depth and --width.

    --depth n --width w means widths [w] * (n + 1): a chain of identical blocks. Unless
    ``force``, the memory guard refuses a model whose measurement would not fit in memory (plan,
    which allocates nothing, passes no --force and is never refused).
    """
    from .measure import ModelSpec, check_memory

    if widths is not None and (depth is not None or width is not None):
        raise click.UsageError("--widths cannot be combined with --depth or --width")
    if widths is None:
        depth = DEFAULT_DEPTH if depth is None else depth
        widths = [DEFAULT_WIDTH if width is None else width] * (depth + 1)
    if seed < 0:
        raise click.UsageError(f"--seed must be >= 0, got {seed}")
    spec = ModelSpec(tuple(widths), batch, activation, loss, dtype, seed, pieces)
    if not force:
        check_memory(spec)
    return spec


def budget_bytes(model: MLP, batch: int, text: str | None) -> int | None:
    """--budget in bytes: a bare integer, a number with a unit, or a fraction of store-all."""
    if text is None:
        return None
    return parse_budget(text, predict(model, batch, "store-all").peak_bytes)


def checked_output(path: str | None, option: str) -> Path | None:
    """An output path whose directory exists and is writable (checked before any work)."""
    if path is None:
        return None
    if not path.strip():
        raise click.UsageError(f"{option} is empty: give a file name")
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        raise click.UsageError(f"cannot write {path}: directory '{parent}' does not exist")
    if target.is_dir():
        raise click.UsageError(f"cannot write {path}: it is a directory")
    writable_directory(parent, f"cannot write {path}")
    return target


def writable_directory(directory: Path, what: str) -> None:
    """Refuse, as a usage error, a directory in which no file can be created."""
    try:
        check_writable(directory)
    except OSError as error:
        reason = error.strerror or str(error)
        raise click.UsageError(
            f"{what}: directory '{directory}' is not writable ({reason})"
        ) from None


def library_errors(fn):
    """Report the library's ValueError (bad input) as click's exit-2 usage error, and a failure
    of the file system after the checks (a full disk, say) as an exit-1 ``Error:`` line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        except GradientMismatch as error:
            raise click.ClickException(str(error)) from None
        except BrokenPipeError:
            raise  # stdout closed early (| head): click exits quietly
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            raise click.ClickException(f"{error.strerror or error}{where}") from None

    return wrapper


# ---------------------------------------------------------------------------------------------
# Output


def emit_json(data: Any) -> None:
    """Plain JSON on stdout; a NaN would be a bug, so it is refused rather than printed."""
    click.echo(json.dumps(data, allow_nan=False, indent=2))


def fmt_bytes(n: int) -> str:
    """'4,718,592 B (4.50 MiB)'."""
    return f"{n:,} B ({n / 2**20:.2f} MiB)"


def model_line(model: dict[str, Any]) -> str:
    """'16 blocks of width 512 (512-...-512), relu, softmax_ce, float64, batch 128, seed 0'."""
    widths = model["widths"]
    shape = "-".join(map(str, widths))
    if len(shape) > 40:
        shape = f"{widths[0]}-{widths[1]}-...-{widths[-1]}"
    return (
        f"{len(widths) - 1} blocks ({shape}), {model['activation']}, {model['loss']}, "
        f"{model['dtype']}, batch {model['batch']}, seed {model['seed']}"
    )


def print_summary(row: dict[str, Any], base_flops: int, base_peak: int) -> None:
    """The aligned human summary of one measured run."""
    from .schedule import describe, parse

    flops = row["flops"]
    options = ", ".join(f"{key} {value}" for key, value in row["options"].items())
    lines = [
        ("model", model_line(row["model"])),
        ("strategy", row["strategy"] + (f" ({options})" if options else "")),
        ("schedule", describe(parse(row["schedule"]), limit=SCHEDULE_TOKENS)),
        ("FLOPs", f"{flops['total']:,} total, {flops['total'] / base_flops:.3f}x store-all"),
        *(
            (f"  {phase}", f"{flops[phase]:,}")
            for phase in ("forward", "recompute", "backward", "loss")
        ),
        ("recomputes", f"{row['recompute_forwards']} block forwards after the loss"),
        (
            "peak",
            f"{fmt_bytes(row['peak_bytes'])} accounted, {row['peak_bytes'] / base_peak:.3f}x"
            " store-all",
        ),
        ("  predicted", fmt_bytes(row["predicted_peak_bytes"])),
        ("  tracemalloc", fmt_bytes(row["tracemalloc_peak_bytes"])),
        ("  RSS", f"{fmt_bytes(row['rss_peak_bytes'])}, sampled by memory-profiler"),
        ("time", f"{row['time_s'] * 1e3:.1f} ms, median of {len(row['time_samples_s'])} steps"),
        ("gradients", "bit-identical to store-all" if row["gradients_identical"] else "DIFFER"),
    ]
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")


def save_npz(handle, model: MLP, arrays: dict[str, Any]) -> None:
    """The arrays of ``--save-grads``; the key names are documented in README."""
    from .measure import param_names

    names = param_names(model)
    data = {"x": arrays["x"], "y": arrays["y"]}
    data.update(zip(names, arrays["params"], strict=True))
    data.update((f"grad_{name}", g) for name, g in zip(names, arrays["grads"], strict=True))
    np.savez(handle, **data)


# ---------------------------------------------------------------------------------------------
# Commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradeoff")
def main() -> None:
    """Measure and choose the memory-versus-compute trade-off of backpropagation.

    \b
    Examples:
      tradeoff run                      sqrt on the default model, measured
      tradeoff compare --depth 32 --width 256
      tradeoff xor
    """


@main.command()
@click.option("--strategy", type=click.Choice(list(STRATEGIES)), default="sqrt", show_default=True)
@model_options()
@strategy_options
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=5, help="Timed steps [5].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option(
    "--save-grads",
    type=click.Path(dir_okay=False),
    help="Write parameters, batch, labels and gradients to this .npz file.",
)
@library_errors
def run(strategy, segments, slots, budget, repeats, as_json, save_grads, **model_args):
    """Measure one strategy on one model, in a fresh process, and check its gradients.

    With no options: sqrt on 16 blocks of width 512, batch 128. After a warm-up step it reports
    FLOPs by phase, the accounted peak and its dry-run prediction, the tracemalloc peak, the
    sampled RSS peak, the median time, and a bit-for-bit gradient check against store-all.

    \b
    Example:
      tradeoff run --strategy sqrt --depth 32 --width 256 --json
    """
    from .measure import MeasureRequest, measure

    spec = model_spec(**model_args)
    target = checked_output(save_grads, "--save-grads")
    model = spec.model()
    given = {
        "segments": segments,
        "slots": slots,
        "budget": budget_bytes(model, spec.batch, budget),
    }
    options = {key: value for key, value in given.items() if value is not None}
    check_strategy(model.chain(spec.batch), strategy, **options)  # before the measurement
    row = measure(MeasureRequest(spec, strategy, options, repeats, keep_grads=target is not None))
    arrays = row.pop("_arrays", None)
    if target is not None:
        write_atomically(target, lambda handle: save_npz(handle, model, arrays), binary=True)
    if as_json:
        emit_json(row)
        return
    base = predict(model, spec.batch, "store-all")
    print_summary(row, base.flops["total"], base.peak_bytes)


@main.command()
@model_options()
@strategy_options
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=5, help="Timed steps [5].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@library_errors
def compare(segments, slots, budget, repeats, as_json, **model_args):
    """Measure every strategy on the same model, each in a fresh process, in one table.

    revolve gets as many slots as sqrt saves and optimal gets sqrt's accounted peak as its
    budget, unless --slots or --budget say otherwise. Ratios are against store-all.

    \b
    Example:
      tradeoff compare --depth 32 --width 256 --json
    """
    from tqdm import tqdm

    from .measure import MeasureRequest, comparison, measure

    spec = model_spec(**model_args)
    model = spec.model()
    chain = model.chain(spec.batch)
    plan = comparison(
        chain, segments=segments, slots=slots, budget=budget_bytes(model, spec.batch, budget)
    )
    for name, options in plan:
        check_strategy(chain, name, **options)  # an infeasible budget stops it before measuring
    rows = []
    with tqdm(plan, desc="compare", unit="strategy", leave=False, disable=None) as progress:
        for name, options in progress:
            progress.set_postfix_str(name)
            rows.append(measure(MeasureRequest(spec, name, options, repeats)))
    if as_json:
        emit_json(rows)
        return
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The compare table: one line per strategy, ratios against the first row (store-all)."""
    base = rows[0]
    header = (
        "strategy",
        "total FLOPs",
        "x",
        "recomputes",
        "accounted peak",
        "x",
        "tracemalloc",
        "RSS (sampled)",
        "time ms",
        "x",
        "gradients",
    )
    table = [header]
    for row in rows:
        table.append(
            (
                row["strategy"],
                f"{row['flops']['total']:,}",
                f"{row['flops']['total'] / base['flops']['total']:.3f}",
                str(row["recompute_forwards"]),
                f"{row['peak_bytes']:,}",
                f"{row['peak_bytes'] / base['peak_bytes']:.3f}",
                f"{row['tracemalloc_peak_bytes']:,}",
                f"{row['rss_peak_bytes']:,}",
                f"{row['time_s'] * 1e3:.1f}",
                f"{row['time_s'] / base['time_s']:.2f}",
                "identical" if row["gradients_identical"] else "DIFFER",
            )
        )
    widths = [max(len(line[k]) for line in table) for k in range(len(header))]
    click.echo(f"model: {model_line(rows[0]['model'])}")
    for line in table:
        cells = [
            cell.ljust(w) if k == 0 else cell.rjust(w)
            for k, (cell, w) in enumerate(zip(line, widths))
        ]
        click.echo("  ".join(cells))
    from .measure import RSS_INTERVAL_S

    click.echo(
        "bytes: accounted activations (the dry run predicts them exactly); tracemalloc: traced "
        f"peak of one step; RSS: the process's resident-set peak, sampled every "
        f"{RSS_INTERVAL_S * 1e3:g} ms"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def xor(as_json: bool) -> None:
    """The seed's hand-built XOR network on its four inputs.

    W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0, ReLU.

    \b
    Example:
      tradeoff xor --json
    """
    outputs = infer(xor_network(), np.array(XOR_INPUTS, dtype=np.float64))[:, 0]
    values = [int(v) if float(v).is_integer() else float(v) for v in outputs]
    if as_json:
        click.echo(json.dumps({"inputs": XOR_INPUTS, "outputs": values}))
        return
    click.echo("x1 x2  XOR network")
    for (a, b), v in zip(XOR_INPUTS, values):
        click.echo(f"{a:>2} {b:>2}  {v}")


def int_list(text: str | None, name: str) -> list[int] | None:
    """'4,8,16' -> [4, 8, 16]; ValueError naming the option otherwise."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(is_whole(p) for p in parts):
        raise ValueError(f"--{name} takes whole numbers separated by commas, got {text!r}")
    return [int(p) for p in parts]


def name_list(text: str | None) -> list[str] | None:
    """'store-all,sqrt' -> ['store-all', 'sqrt']."""
    return None if text is None else [p.strip() for p in text.split(",")]


@main.command()
@click.option("--config", type=click.Path(dir_okay=False), help="A TOML or JSON grid file.")
@click.option("--depth", help="Depths, e.g. 4,8,16.")
@click.option("--width", help="Widths of identical blocks, e.g. 64,256.")
@click.option("--batch", help="Batch sizes, e.g. 32,128.")
@click.option("--dtype", help="dtypes: float64,float32.")
@click.option("--activation", help="Activations, e.g. relu,tanh.")
@click.option("--loss", help="Losses, e.g. softmax_ce,mse.")
@click.option("--strategy", help="Strategies, e.g. store-all,sqrt (all by default).")
@click.option("--segments", help="sqrt segment counts, e.g. 2,4.")
@click.option("--slots", help="revolve slot counts, e.g. 2,4,8.")
@click.option("--budget", help="optimal budgets, e.g. 0.5,0.25 or 1MiB,4MiB.")
@click.option("--seed", help="Seeds, e.g. 0,1.")
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), help="Timed steps per point [3].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="sweep.jsonl",
    show_default=True,
    help="Results file (JSON lines); finished points in it are skipped.",
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also export as CSV.")
@click.option(
    "--jobs",
    type=click.IntRange(1, MAX_JOBS),
    default=1,
    show_default=True,
    help="Points measured at once (BLAS pinned to 1 thread; rows marked contended).",
)
@click.option("--fresh", is_flag=True, help="Start over instead of resuming.")
@click.option("--force", is_flag=True, help="Run even if the memory guard predicts too little.")
@click.option("--json", "as_json", is_flag=True, help="Print every row of the grid as JSON.")
@library_errors
def sweep(config, out, csv_path, jobs, fresh, force, as_json, repeats, **axes):
    """Measure a grid of points, each in a fresh process, resumably.

    Axes come from --config (keys: depth, width, widths, batch, dtype, activation, loss, seed,
    pieces, strategy, segments, slots, budget, repeats) and from options, which override it.
    Each finished point is written at once (atomically) to --out; a rerun skips it.

    \b
    Example:
      tradeoff sweep --depth 4,8,16 --width 64 --strategy store-all,sqrt --out depth.jsonl
    """
    from tqdm import tqdm

    from .sweep import check_grid, expand, export_csv, load_grid, run_sweep

    target = checked_output(out, "--out")
    csv_target = checked_output(csv_path, "--csv")
    if csv_target is not None and csv_target.resolve() == target.resolve():
        raise click.UsageError(
            f"--csv and --out name the same file ({out}): the CSV would replace the rows"
        )
    grid = dict(load_grid(config)) if config else {}
    for key in ("depth", "width", "batch", "segments", "slots", "seed"):
        values = int_list(axes[key], key)
        if values is not None:
            grid[key] = values
            if key in ("depth", "width"):
                grid.pop("widths", None)
    for key in ("dtype", "activation", "loss", "strategy", "budget"):
        if axes[key] is not None:
            grid[key] = name_list(axes[key])
    if repeats is not None:
        grid["repeats"] = repeats
    points = expand(check_grid(grid))
    if not force:
        from .measure import available_memory_bytes, check_memory

        share = available_memory_bytes() // jobs  # jobs measure side by side
        for spec in dict.fromkeys(point.spec for point in points):
            check_memory(spec, available=share)
    with tqdm(total=len(points), desc="sweep", unit="point", disable=None) as bar:

        def progress(point):
            bar.set_postfix_str(f"done {point.label()}")
            bar.update()

        try:
            rows = run_sweep(points, target, jobs=jobs, fresh=fresh, progress=progress)
        except KeyboardInterrupt:
            bar.close()
            click.echo(f"Interrupted: finished rows are in {target}; rerun to resume.", err=True)
            raise SystemExit(130) from None
    if csv_target is not None:
        export_csv(rows, csv_target)
    if as_json:
        emit_json([{k: v for k, v in row.items() if k != "point"} for row in rows])
        return
    click.echo(f"{len(rows)} rows for {len(points)} points in {target}")


@main.command()
@click.option("--data", type=click.Path(file_okay=False), default="reports/data", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="reports", show_default=True)
@library_errors
def report(data, out):
    """Draw every figure (PNG and SVG) and write README.md from the rows in --data.

    The same rows always give the same files. The rows come from the scripts in experiments/
    (python experiments/regenerate.py runs them all, then this command).

    \b
    Example:
      tradeoff report --data reports/data --out reports
    """
    from .report import write_report

    if not out.strip():
        raise click.UsageError("--out is empty: give a directory")
    out_dir = Path(out)
    if not out_dir.parent.is_dir():
        raise click.UsageError(f"cannot write into {out}: '{out_dir.parent}' does not exist")
    writable_directory(out_dir if out_dir.is_dir() else out_dir.parent, f"cannot write into {out}")
    try:
        written = write_report(Path(data), out_dir)
    except KeyboardInterrupt:
        click.echo("Interrupted: files already written are whole; rerun to finish.", err=True)
        raise SystemExit(130) from None
    click.echo(f"wrote {len(written)} files into {out}", err=True)


def frontier_rows(points: list[tuple[int, int]], count: int = 6) -> list[tuple[int, int]]:
    """A handful of frontier points for a table: the ends and some spread between them."""
    if len(points) <= count:
        return points
    picks = np.unique(np.linspace(0, len(points) - 1, count).round().astype(int))
    return [points[k] for k in picks]


@main.command()
@click.option(
    "--budget", required=True, help="Bytes (67108864), 64MiB, 1.5GB, or 0.25 of store-all."
)
@model_options(measured=False)
@click.option(
    "--chain",
    "chain_file",
    type=click.Path(dir_okay=False),
    help="Plan for this chain description (JSON) instead of an MLP.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@library_errors
def plan(budget, chain_file, as_json, **model_args):
    """Choose the cheapest schedule whose accounted peak fits a memory budget.

    Every named strategy and the optimal dynamic program are predicted by dry runs (nothing is
    allocated, so a model far larger than this machine can be planned); the plan with the
    fewest total FLOPs that fits wins. Also prints the frontier: optimal FLOPs per budget.

    \b
    Examples:
      tradeoff plan --budget 64MiB --depth 64 --width 1024 --batch 256
      tradeoff plan --budget 0.25 --json
      tradeoff plan --budget 40GB --chain transformer.json
    """
    from .chain import Chain
    from .schedule import simulate

    if chain_file is not None:
        if any(model_args[k] is not None for k in ("depth", "width", "widths")):
            raise click.UsageError("--chain cannot be combined with --depth, --width or --widths")
        chain = Chain.from_json(chain_file)
        subject: dict[str, Any] = {"chain": str(chain_file), "n": chain.n}
    else:
        spec = model_spec(**model_args)
        chain = spec.model(allocate=False).chain(spec.batch)
        subject = {"model": spec.to_json()}
    store_all = simulate(build("store-all", chain), chain)
    chosen = select(chain, parse_budget(budget, store_all.peak_bytes))
    points = frontier(chain)
    if as_json:
        data = {**chosen.to_dict(), **subject}
        data["frontier"] = [{"budget_bytes": b, "total_flops": f} for b, f in points]
        emit_json(data)
        return
    print_plan(chosen, subject, points)


def optimal_planning(mode: str, unit_bytes: int) -> str:
    """How the optimal candidate was planned, for the human form of a plan."""
    if mode == "discretised":
        return f"planned in discretised mode, every size rounded up to {unit_bytes:,} bytes"
    if mode == "smallest-peak":
        return "the plan of smallest peak (the rounded grid found none that fits)"
    return f"planned in {mode} mode (nothing rounded)"


def print_plan(chosen, subject: dict[str, Any], points: list[tuple[int, int]]) -> None:
    """The human form of a plan, with a short frontier table."""
    from .schedule import describe

    base_flops, base_peak = chosen.store_all_flops, chosen.store_all_peak_bytes
    options = ", ".join(f"{k} {v}" for k, v in chosen.options.items())
    about = (
        model_line(subject["model"])
        if "model" in subject
        else (f"chain {subject['chain']} ({subject['n']} blocks)")
    )
    lines = [
        ("for", about),
        ("budget", fmt_bytes(chosen.budget_bytes)),
        ("strategy", chosen.strategy + (f" ({options})" if options else "")),
        ("schedule", describe(chosen.schedule, limit=SCHEDULE_TOKENS)),
        (
            "FLOPs",
            f"{chosen.flops['total']:,} total, {chosen.flops['total'] / base_flops:.3f}x "
            f"store-all ({chosen.flops['recompute']:,} recompute)",
        ),
        (
            "peak",
            f"{fmt_bytes(chosen.peak_bytes)} predicted accounted, "
            f"{chosen.peak_bytes / base_peak:.3f}x store-all's {fmt_bytes(base_peak)}",
        ),
        ("note", chosen.note),
        ("optimal", optimal_planning(chosen.optimal_mode, chosen.optimal_unit_bytes)),
    ]
    for c in chosen.runners_up[:3]:
        name = c.strategy + (
            f" ({', '.join(f'{k} {v}' for k, v in c.options.items())})" if c.options else ""
        )
        lines.append(
            (
                "runner-up",
                f"{name}: {c.flops['total'] / base_flops:.3f}x FLOPs, "
                f"peak {fmt_bytes(c.peak_bytes)}",
            )
        )
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")
    click.echo(f"\nfrontier ({len(points)} points; --json lists them all):")
    click.echo(f"  {'budget (bytes)':>16}  {'MiB':>10}  {'total FLOPs':>20}  {'x store-all':>11}")
    for b, f in frontier_rows(points):
        click.echo(f"  {b:>16,}  {b / 2**20:>10.2f}  {f:>20,}  {f / base_flops:>11.3f}")
