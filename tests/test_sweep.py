"""Sweeps: grids, resuming, interruption (SIGINT and SIGKILL), JSON on stdout."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tradeoff.cli import main
from tradeoff.sweep import check_grid, expand, read_rows

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
