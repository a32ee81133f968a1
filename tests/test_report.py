"""tradeoff report: every figure and README from rows, byte-identical on a rerun; bad data."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import tradeoff
from tradeoff.cli import main
from tradeoff.files import write_atomically
from tradeoff.measure import MeasureRequest, ModelSpec, comparison, measure_here
from tradeoff.sweep import write_rows

FIGURES = [
    "peak_vs_depth",
    "flops_vs_depth",
    "frontier",
    "timeline",
    "memory_measures",
    "time_vs_flops",
    "xor",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Small but real rows for every data file the report reads (measured in this process)."""
    from tradeoff.planner import frontier

    data = tmp_path_factory.mktemp("data")
    rows = []
    for depth in (1, 2, 4, 8):
        spec = ModelSpec((8,) * (depth + 1), batch=4)
        for name in ("store-all", "sqrt", "recompute-all"):
            rows.append(measure_here(MeasureRequest(spec, name, {}, repeats=1)))
    write_rows(data / "depth.jsonl", rows)
    spec = ModelSpec((8,) * 7, batch=4)
    chain = spec.model().chain(spec.batch)
    plan = comparison(chain)
    write_rows(
        data / "compare.jsonl",
        [measure_here(MeasureRequest(spec, n, o, repeats=1)) for n, o in plan],
    )
    points = [{"budget_bytes": b, "total_flops": f} for b, f in frontier(chain)]
    frontier_data = {"model": spec.to_json(), "points": points}
    write_atomically(data / "frontier.json", lambda h: json.dump(frontier_data, h))
    model, x, y = spec.build()
    timelines = {n: tradeoff.run(model, x, y, n, **o).timeline for n, o in plan}
    timeline_data = {"model": spec.to_json(), "timelines": timelines}
    write_atomically(data / "timeline.json", lambda h: json.dump(timeline_data, h))
    return data


def report(data, out):
    return CliRunner().invoke(main, ["report", "--data", str(data), "--out", str(out)])


def test_report_is_reproducible_byte_for_byte(data_dir, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = report(data_dir, out)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""  # progress and notes go to stderr
    for stem in FIGURES:
        assert (first / "figures" / f"{stem}.png").stat().st_size > 10_000
        svg = (first / "figures" / f"{stem}.svg").read_bytes()
        assert svg == (second / "figures" / f"{stem}.svg").read_bytes(), stem
    readme = (first / "README.md").read_text()
    assert readme == (second / "README.md").read_text()
    for stem in FIGURES:
        assert f"(figures/{stem}.png)" in readme
    assert "python experiments/regenerate.py" in readme
    assert "exactly 0, 1, 1, 0" in readme


def test_report_claims_match_the_rows(data_dir, tmp_path):
    report(data_dir, tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "prediction equals the accounted peak for every strategy" in readme
    assert "inside the stated bound for every row" in readme
    rows = [json.loads(line) for line in (data_dir / "depth.jsonl").read_text().splitlines()]
    deepest = {r["strategy"]: r for r in rows if len(r["model"]["widths"]) == 9}
    assert f"store-all {deepest['store-all']['peak_bytes'] / 2**20:.2f} MiB" in readme
    ratio = deepest["recompute-all"]["flops"]["total"] / deepest["store-all"]["flops"]["total"]
    assert f"recompute-all {ratio:.2f}x" in readme


def edit_row(name, change, line=0):
    """A damage that rewrites one row of a JSON-lines data file with ``change(row)``."""

    def damage(data):
        path = data / name
        rows = [json.loads(text) for text in path.read_text().splitlines()]
        change(rows[line])
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    return damage


def edit_json(name, change):
    """A damage that rewrites a JSON data file with ``change(data)``."""

    def damage(data):
        path = data / name
        content = json.loads(path.read_text())
        change(content)
        path.write_text(json.dumps(content))

    return damage


def drop_rows(name, keep):
    """A damage that keeps only the rows of a JSON-lines data file for which ``keep(row)``."""

    def damage(data):
        path = data / name
        rows = [json.loads(text) for text in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if keep(r)))

    return damage


BAD_DATA = [
    ("missing", lambda d: (d / "timeline.json").unlink(), "missing data file .*timeline.json"),
    (
        "truncated row",
        lambda d: (d / "depth.jsonl").write_text('{"strategy": "sqrt"'),
        r"depth.jsonl:1: not a JSON row",
    ),
    (
        "row without fields",
        lambda d: (d / "compare.jsonl").write_text('{"a": 1}\n'),
        r"compare.jsonl:1 lacks 'strategy', 'flops', 'peak_bytes', 'model'",
    ),
    (
        "corrupt json",
        lambda d: (d / "frontier.json").write_text("{"),
        "frontier.json is not valid JSON",
    ),
    ("empty rows", lambda d: (d / "depth.jsonl").write_text(""), "depth.jsonl holds no rows"),
    (
        "not utf-8",
        lambda d: (d / "depth.jsonl").write_bytes(b'{"strategy": "caf\xe9"}\n'),
        "cannot read results file .*depth.jsonl",
    ),
    (
        "model without widths",
        edit_row("depth.jsonl", lambda r: r["model"].pop("widths"), line=2),
        r"depth.jsonl:3 lacks 'model.widths'",
    ),
    (
        "model without batch",
        edit_row("compare.jsonl", lambda r: r["model"].pop("batch")),
        r"compare.jsonl:1 lacks 'model.batch'",
    ),
    (
        "peak as text",
        edit_row("compare.jsonl", lambda r: r.update(peak_bytes="x"), line=1),
        r"""compare.jsonl:2: field 'peak_bytes' is "x", not a whole number >= 1""",
    ),
    (
        "null tracemalloc",
        edit_row("compare.jsonl", lambda r: r.update(tracemalloc_peak_bytes=None)),
        r"compare.jsonl:1: field 'tracemalloc_peak_bytes' is null, not a whole number",
    ),
    (
        "rss missing",
        edit_row("compare.jsonl", lambda r: r.pop("rss_peak_bytes")),
        r"compare.jsonl:1 lacks 'rss_peak_bytes'",
    ),
    (
        "time as text",
        edit_row("depth.jsonl", lambda r: r.update(time_s="fast")),
        r"""depth.jsonl:1: field 'time_s' is "fast", not a positive number of seconds""",
    ),
    (
        "no time samples",
        edit_row("depth.jsonl", lambda r: r.update(time_samples_s=[])),
        r"depth.jsonl:1: field 'time_samples_s' is \[\], not a non-empty list",
    ),
    (
        "options as a list",
        edit_row("compare.jsonl", lambda r: r.update(options=[])),
        r"compare.jsonl:1: field 'options' is \[\], not a JSON object",
    ),
    (
        "frontier without points",
        edit_json("frontier.json", lambda d: d.pop("points")),
        "frontier.json lacks 'points'",
    ),
    (
        "frontier points of numbers",
        edit_json("frontier.json", lambda d: d.update(points=[1, 2])),
        r"frontier.json: points\[0\]: 1 is not a JSON object",
    ),
    (
        "frontier point without flops",
        edit_json("frontier.json", lambda d: d["points"][1].pop("total_flops")),
        r"frontier.json: points\[1\] lacks 'total_flops'",
    ),
    (
        "frontier without points at all",
        edit_json("frontier.json", lambda d: d.update(points=[])),
        r"frontier.json: field 'points' is \[\], not a non-empty list",
    ),
    (
        "no timelines",
        edit_json("timeline.json", lambda d: d.update(timelines={})),
        r"timeline.json: field 'timelines' is \{\}, not a non-empty JSON object",
    ),
    (
        "empty timeline",
        edit_json("timeline.json", lambda d: d["timelines"].update(sqrt=[])),
        r"timeline.json: timeline 'sqrt' is \[\], not a non-empty list",
    ),
    (
        "timeline model without dtype",
        edit_json("timeline.json", lambda d: d["model"].pop("dtype")),
        r"timeline.json lacks 'model.dtype'",
    ),
    (
        "depth without store-all",
        drop_rows(
            "depth.jsonl", lambda r: r["strategy"] != "store-all" or r["model"]["widths"] != [8] * 9
        ),
        r"depth.jsonl has no store-all row at depth 8",
    ),
    (
        "compare without store-all",
        drop_rows("compare.jsonl", lambda r: r["strategy"] != "store-all"),
        r"compare.jsonl has no store-all row",
    ),
]


@pytest.mark.parametrize("damage,message", [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_bad_data_exits_2_and_writes_nothing(data_dir, tmp_path, damage, message):
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    damage(data)
    out = tmp_path / "out"
    result = report(data, out)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("Error:")
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not out.exists(), "a directory or file was created"


def wait_for_files(directory, count, process, timeout=120):
    """Wait until ``directory`` holds ``count`` finished files (not temporaries) while
    ``process`` is still running; fail if it ends first, so that the test cannot pass idly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the report ended before it could be interrupted"
        finished = [p for p in directory.rglob("*") if p.is_file() and p.suffix != ".tmp"]
        if len(finished) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"no {count} files appeared in {directory}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("files", [1, 8], ids=["after 1 file", "after 8 files"])
def test_interrupted_report_leaves_only_whole_files(data_dir, tmp_path, sig, files):
    reference = tmp_path / "reference"
    assert report(data_dir, reference).exit_code == 0
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "tradeoff",
        "report",
        "--data",
        str(data_dir),
        "--out",
        str(out),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True)
    wait_for_files(out, files, process)
    assert process.poll() is None  # still writing (15 files in all) when the signal is sent
    os.killpg(process.pid, sig)
    _, stderr = process.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert process.returncode == 130 and b"Traceback" not in stderr, stderr
        assert b"rerun to finish" in stderr
    else:
        assert process.returncode == -signal.SIGKILL

    def whole(directory):
        # A writer killed outright may leave its hidden temporary (cleared by the next write);
        # every file that carries a real name is complete.
        for path in directory.rglob("*"):
            if path.is_file() and path.suffix != ".tmp":
                assert path.read_bytes() == (reference / path.relative_to(directory)).read_bytes()

    whole(out)  # every file there is complete: identical to the reference's
    assert report(data_dir, out).exit_code == 0  # a rerun completes
    whole(out)
    assert not [p for p in out.rglob("*.tmp")]
