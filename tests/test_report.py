"""tradeoff report: every figure and README from rows, byte-identical on a rerun; bad data."""

import json
import os
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


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "timeline.json").unlink(), "missing data file .*timeline.json"),
        (
            lambda d: (d / "depth.jsonl").write_text('{"strategy": "sqrt"'),
            r"depth.jsonl:1: not a JSON row",
        ),
        (
            lambda d: (d / "compare.jsonl").write_text('{"a": 1}\n'),
            r"compare.jsonl:1: a row without",
        ),
        (lambda d: (d / "frontier.json").write_text("{"), "frontier.json is not valid JSON"),
        (
            lambda d: (d / "frontier.json").write_text('{"model": {}}'),
            "frontier.json lacks 'points'",
        ),
        (lambda d: (d / "depth.jsonl").write_text(""), "depth.jsonl holds no rows"),
    ],
)
def test_bad_data_exits_2_and_writes_nothing(data_dir, tmp_path, damage, message):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    damage(data)
    out = tmp_path / "out"
    result = report(data, out)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("Error:")
    import re

    assert re.search(message, result.stderr), result.stderr
    assert not out.exists() or not any(out.rglob("*.*"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("delay", [0.8, 1.6])
def test_interrupted_report_leaves_only_whole_files(data_dir, tmp_path, sig, delay):
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
    time.sleep(delay)
    if process.poll() is None:
        os.killpg(process.pid, sig)
    _, stderr = process.communicate(timeout=60)
    if sig == signal.SIGINT and process.returncode != 0:
        assert process.returncode == 130 and b"Traceback" not in stderr, stderr

    def whole(directory):
        # A writer killed outright may leave its hidden temporary (cleared by the next write);
        # every file that carries a real name is complete.
        for path in directory.rglob("*"):
            if path.is_file() and path.suffix != ".tmp":
                assert path.read_bytes() == (reference / path.relative_to(directory)).read_bytes()

    if out.exists():
        whole(out)  # every file there is complete: identical to the reference's
    assert report(data_dir, out).exit_code == 0  # a rerun completes
    whole(out)
    assert not [p for p in out.rglob("*.tmp")]
