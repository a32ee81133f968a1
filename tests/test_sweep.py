"""Sweeps: grids, resuming, interruption (SIGINT and SIGKILL), JSON on stdout."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradeoff import sweep as sweep_module
from tradeoff.cli import main
from tradeoff.measure import MeasureRequest, ModelSpec, measure_here
from tradeoff.planner import optimal, smallest_peak
from tradeoff.sweep import (
    Point,
    check_grid,
    check_points,
    expand,
    read_rows,
    row_key,
    run_sweep,
    write_rows,
)

ROOT = Path(__file__).resolve().parent.parent

TINY = [
    "--depth",
    "1,2,3",
    "--width",
    "4",
    "--batch",
    "2",
    "--strategy",
    "store-all,sqrt",
    "--repeats",
    "1",
]


def test_grid_expands_strategy_options_only_where_they_apply():
    grid = check_grid(
        {
            "depth": [2, 4],
            "width": 3,
            "strategy": ["store-all", "sqrt", "revolve"],
            "segments": [1, 2],
            "slots": [1, 2, 3],
        }
    )
    points = expand(grid)
    assert len(points) == 2 * (1 + 2 + 3)
    assert len({p.key for p in points}) == len(points)
    assert {dict(p.options).get("segments") for p in points if p.strategy == "sqrt"} == {1, 2}


@pytest.mark.parametrize(
    "grid,message",
    [
        ({"depths": [1]}, "unknown grid keys: depths"),
        ({"depth": []}, "grid key 'depth' has an empty list"),
        ({"depth": [0]}, "grid key 'depth': 0 is not a whole number >= 1"),
        ({"depth": [10**6 + 1]}, "grid key 'depth': 1000001 is more than 1,000,000"),
        ({"pieces": [1]}, "grid key 'pieces': 1 is not a whole number >= 2"),
        ({"pieces": [256]}, "grid key 'pieces': 256 is more than 255"),
        ({"repeats": 10**12}, "grid key 'repeats': 1000000000000 is more than 1,000"),
        ({"repeats": [1, 2]}, "grid key 'repeats' takes one number"),
        ({"seed": [-1]}, "grid key 'seed': -1 is not a whole number >= 0"),
        ({"width": ["wide"]}, "grid key 'width': 'wide' is not a whole number"),
        ({"activation": "gelu"}, "grid key 'activation': unknown 'gelu'"),
        ({"strategy": ["fast"]}, "grid key 'strategy': unknown 'fast'"),
        ({"widths": [[3, 4]], "depth": [2]}, "'widths' cannot be combined"),
        ({"widths": [[3]]}, "is not a list of two or more widths"),
    ],
)
def test_bad_grids_name_the_problem(grid, message):
    with pytest.raises(ValueError, match=message):
        check_grid(grid)


def sweep_command(out, *extra):
    return [sys.executable, "-m", "tradeoff", "sweep", *TINY, "--out", str(out), *extra]


def wait_for_rows(path, count, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(read_rows(path)) >= count:
            return
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no rows appeared")


def check_complete(path):
    rows = read_rows(path)
    points = [row["point"] for row in rows]
    assert len(points) == len(set(points)) == 6, "duplicated or missing rows"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_sweep_resumes_without_duplicates_or_gaps(tmp_path, sig):
    out = tmp_path / "rows.jsonl"
    process = subprocess.Popen(
        sweep_command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    wait_for_rows(out, 1, process)
    os.killpg(process.pid, sig)  # the whole session: the sweep and its workers
    _, stderr = process.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert process.returncode == 130, stderr
        assert b"rerun to resume" in stderr
    finished = read_rows(out)  # every row that is there is whole
    assert 1 <= len(finished) < 6
    rerun = subprocess.run(sweep_command(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    check_complete(out)
    kept = {row["point"]: row for row in read_rows(out)}
    assert all(kept[row["point"]] == row for row in finished), "a finished row was redone"


def test_sweep_json_puts_only_data_on_stdout_and_resumes(tmp_path):
    out = tmp_path / "rows.jsonl"
    first = CliRunner().invoke(
        main, ["sweep", *TINY, "--out", str(out), "--json", "--csv", str(tmp_path / "rows.csv")]
    )
    assert first.exit_code == 0, first.stderr
    rows = json.loads(first.stdout)
    assert len(rows) == 6 and all(r["gradients_identical"] for r in rows)
    assert (tmp_path / "rows.csv").read_text().startswith("batch_bytes,env.blas")
    again = CliRunner().invoke(main, ["sweep", *TINY, "--out", str(out), "--json"])
    assert json.loads(again.stdout) == rows  # nothing re-measured: the same rows
    fresh = CliRunner().invoke(
        main,
        [
            "sweep",
            "--depth",
            "1",
            "--width",
            "4",
            "--batch",
            "2",
            "--strategy",
            "sqrt",
            "--repeats",
            "1",
            "--out",
            str(out),
            "--fresh",
        ],
    )
    assert fresh.exit_code == 0 and len(read_rows(out)) == 1


def test_sweep_reads_a_toml_grid(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text('depth = [1, 2]\nwidth = 3\nbatch = 2\nstrategy = ["sqrt"]\nrepeats = 1\n')
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(main, ["sweep", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert len(read_rows(out)) == 2 and "2 rows for 2 points" in result.stdout


def test_jobs_mark_rows_as_contended(tmp_path):
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(main, ["sweep", *TINY, "--out", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == 6
    assert all(
        r["timing"].startswith("contended: 2 jobs") and r["env"]["blas_threads"] == 1 for r in rows
    )


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, an Error: line naming the problem, nothing on stdout, no file written


def snapshot(directory):
    """Every file under ``directory`` with its bytes: a failed command must leave them as is."""
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def refused(args, directory):
    """Run the CLI; assert it refused ``args`` cleanly and wrote nothing. Returns stderr."""
    before = snapshot(directory)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("Error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(directory) == before, "a file was written"
    return result.stderr


DEEP = "99999999999"
BAD_SWEEPS = [
    (["--depth", DEEP], "grid key 'depth': 99999999999 is more than 1,000,000"),
    (["--depth", "1", "--width", "4", "--config", "{dir}/pieces.json"], "'pieces': 1 is not"),
    (["--config", "{dir}/repeats.toml"], "grid key 'repeats': 1000000000000 is more than"),
    (["--config", "{dir}/seed.json"], "grid key 'seed': -1 is not a whole number >= 0"),
    (["--config", "{dir}/grid.yaml"], "grid file {dir}/grid.yaml is not valid JSON"),
    (["--config", "{dir}/latin1.toml"], "grid file {dir}/latin1.toml is not UTF-8 text"),
    (["--config", "{dir}/latin1.json"], "grid file {dir}/latin1.json is not UTF-8 text"),
    # An optimal budget that fits depth 1 (store-all's peak there) but not depth 8: refused
    # before depth 1's points are measured, naming the point.
    (
        ["--depth", "1,8", "--width", "8", "--batch", "2", "--strategy", "store-all,optimal"]
        + ["--budget", "600", "--repeats", "1"],
        "point optimal budget=600 8x8 b2 float64 cannot run: budget 600 bytes is below the "
        "smallest feasible accounted peak, 640 bytes",
    ),
]


@pytest.fixture
def configs(tmp_path):
    """Grid files with bad values, a bad suffix, a bad encoding."""
    (tmp_path / "pieces.json").write_text('{"activation": "maxout", "pieces": 1}')
    (tmp_path / "repeats.toml").write_text("repeats = 1000000000000\n")
    (tmp_path / "seed.json").write_text('{"seed": [-1]}')
    (tmp_path / "grid.yaml").write_text("depth: [1, 2]\n")
    (tmp_path / "latin1.toml").write_bytes("depth = [1] # caf\u00e9\n".encode("latin-1"))
    (tmp_path / "latin1.json").write_bytes('{"loss": "caf\u00e9"}'.encode("latin-1"))
    return tmp_path


@pytest.mark.parametrize("args,message", BAD_SWEEPS, ids=[" ".join(a) for a, _ in BAD_SWEEPS])
@pytest.mark.parametrize("fresh", [[], ["--fresh"]], ids=["resume", "fresh"])
def test_bad_sweeps_exit_2_before_measuring_anything(configs, args, message, fresh):
    out = configs / "rows.jsonl"
    args = [a.replace("{dir}", str(configs)) for a in args]
    stderr = refused(["sweep", *args, "--out", str(out), *fresh], configs)
    assert message.replace("{dir}", str(configs)) in " ".join(stderr.split())


def test_fresh_sweep_with_a_point_that_cannot_run_keeps_the_old_rows(tmp_path):
    out = tmp_path / "rows.jsonl"
    spec = ModelSpec((8,) * 2, batch=2)
    write_rows(out, [measure_here(MeasureRequest(spec, "store-all", {}, repeats=1))])
    args = ["--depth", "8", "--width", "8", "--batch", "2", "--strategy", "optimal"]
    stderr = refused(["sweep", *args, "--budget", "600", "--out", str(out), "--fresh"], tmp_path)
    assert "point optimal budget=600 8x8" in stderr


def test_a_widths_grid_is_bounded_like_depth(monkeypatch):
    monkeypatch.setattr(sweep_module, "MAX_DEPTH", 3)
    check_grid({"widths": [[2, 2, 2, 2]]})
    with pytest.raises(ValueError, match="'widths': 4 blocks is more than 3"):
        check_grid({"widths": [[2, 2, 2, 2, 2]]})


@pytest.mark.parametrize("depth", [1, 2, 5, 8, 13])
def test_the_check_of_optimal_agrees_with_optimal(depth):
    spec = ModelSpec((8,) * (depth + 1), batch=3)
    chain = spec.model(allocate=False).chain(spec.batch)
    floor = smallest_peak(chain)
    check_points([Point(spec, "optimal", (("budget", floor),))])
    optimal(chain, floor)
    with pytest.raises(ValueError, match="smallest feasible"):
        optimal(chain, floor - 1)
    with pytest.raises(ValueError, match=f"point optimal budget={floor - 1} .* cannot run"):
        check_points([Point(spec, "optimal", (("budget", floor - 1),))])


def good_row():
    return {
        "strategy": "sqrt",
        "options": {},
        "flops": {"total": 10},
        "peak_bytes": 64,
        "model": {"widths": [4, 4]},
        "time_samples_s": [0.1],
        "point": "p",
    }


BAD_ROWS = [
    ("[1, 2]", "rows.jsonl:1: [1, 2] is not a JSON object"),
    ({"point": [1]}, "rows.jsonl:1: field 'point' is [1], not text"),
    ({"peak_bytes": "x"}, "rows.jsonl:1: field 'peak_bytes' is \"x\", not a whole number >= 1"),
    ({"peak_bytes": None}, "field 'peak_bytes' is null"),
    ({"peak_bytes": True}, "field 'peak_bytes' is true"),
    ({"flops": {"total": 1.5}}, "field 'flops.total' is 1.5, not a whole number >= 1"),
    ({"flops": {}}, "rows.jsonl:1 lacks 'flops.total'"),
    ({"flops": 3}, "field 'flops' is 3, not a JSON object"),
    ({"model": {"batch": 2}}, "rows.jsonl:1 lacks 'model.widths'"),
    ({"model": {"widths": [4]}}, "field 'model.widths' is [4], not a list of two or more"),
    ({"options": [2]}, "field 'options' is [2], not a JSON object"),
    ({"time_samples_s": []}, "field 'time_samples_s' is [], not a non-empty list"),
    ({"strategy": 7}, "field 'strategy' is 7, not text"),
]


@pytest.mark.parametrize("change,message", BAD_ROWS, ids=[str(c) for c, _ in BAD_ROWS])
def test_bad_rows_in_the_results_file_exit_2_and_name_file_line_and_field(
    tmp_path, change, message
):
    out = tmp_path / "rows.jsonl"
    row = change if isinstance(change, str) else json.dumps({**good_row(), **change})
    out.write_text(row + "\n")
    stderr = refused(["sweep", "--depth", "1", "--width", "4", "--out", str(out)], tmp_path)
    assert message in stderr, stderr


def test_a_row_without_a_point_key_is_recognised_by_its_fields(tmp_path):
    spec = ModelSpec((4,) * 3, batch=2)
    point = Point(spec, "revolve", (("slots", 2),), repeats=2)
    row = measure_here(MeasureRequest(spec, "revolve", {"slots": 2}, repeats=2))
    assert "point" not in row and row_key(row) == point.key
    out = tmp_path / "rows.jsonl"
    write_rows(out, [row])
    before = out.read_bytes()
    assert run_sweep([point], out) == read_rows(out)  # nothing measured, nothing written
    assert out.read_bytes() == before


def load_experiment(name):
    """An experiments/ script as a module (they import each other by bare name)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "experiments"))


def test_the_committed_rows_hold_every_point_of_the_study():
    """So `python experiments/regenerate.py` on a fresh clone measures nothing and changes no
    committed file (the rows of measures.py carry no point key: it is derived from them)."""
    measures, depth_sweep = load_experiment("measures"), load_experiment("depth_sweep")
    for points, path in [
        (measures.points(), measures.OUT),
        (expand(check_grid(depth_sweep.GRID)), depth_sweep.OUT),
    ]:
        keys = {row_key(row) for row in read_rows(path)}
        assert [p.label() for p in points if p.key not in keys] == [], path


def test_measures_resumes_and_fresh_starts_over(tmp_path, monkeypatch):
    measures = load_experiment("measures")
    monkeypatch.setattr(measures, "MODEL", ModelSpec((4,) * 4, batch=2))
    monkeypatch.setattr(measures, "REPEATS", 1)
    monkeypatch.setattr(measures, "OUT", tmp_path / "compare.jsonl")
    measures.main()
    rows = read_rows(measures.OUT)
    assert [r["strategy"] for r in rows] == [p.strategy for p in measures.points()]
    stranger = {**rows[0], "point": "a point of another grid"}
    write_rows(measures.OUT, [*rows, stranger])
    before = measures.OUT.read_bytes()
    measures.main()
    assert measures.OUT.read_bytes() == before  # every point there: nothing measured again
    measures.main(fresh=True)
    again = read_rows(measures.OUT)
    assert len(again) == 5 and stranger not in again
    assert [r["time_samples_s"] for r in again] != [r["time_samples_s"] for r in rows]
