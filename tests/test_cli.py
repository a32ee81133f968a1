"""The command line: JSON forms, the measured bounds, --save-grads, and bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tradeoff
from conftest import identical
from tradeoff.cli import main
from tradeoff.measure import temporary_bound_bytes

SMALL = ["--depth", "4", "--width", "16", "--batch", "8", "--repeats", "1"]


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_run_json_in_a_real_subprocess_holds_its_promises():
    """The issue's command, through the installed entry point: one JSON object on stdout."""
    exe = shutil.which("tradeoff")
    command = [exe] if exe else [sys.executable, "-m", "tradeoff"]
    args = ["run", "--strategy", "sqrt", "--depth", "32", "--width", "256", "--json"]
    done = subprocess.run(command + args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert isinstance(row, dict)
    assert row["peak_bytes"] == row["predicted_peak_bytes"]
    assert row["flops"] == row["predicted_flops"]
    assert row["gradients_identical"] is True
    # README's bound: peak - batch <= tracemalloc <= peak + temporary_bound_bytes
    assert row["tracemalloc_lower_bound_bytes"] == row["peak_bytes"] - row["batch_bytes"]
    assert (
        row["tracemalloc_lower_bound_bytes"]
        <= row["tracemalloc_peak_bytes"]
        <= row["tracemalloc_upper_bound_bytes"]
    )
    model = tradeoff.MLP([256] * 33)
    bound = temporary_bound_bytes(model, 128)
    assert row["tracemalloc_upper_bound_bytes"] == row["peak_bytes"] + bound
    # RSS is sampled, but the parameters, their gradients and the batch are resident
    assert (
        row["rss_peak_bytes"] >= row["param_bytes"] + row["param_grad_bytes"] + row["batch_bytes"]
    )
    for key in ("forward", "recompute", "backward", "loss", "total"):
        assert isinstance(row["flops"][key], int)
    assert row["model"] == {
        "widths": [256] * 33,
        "batch": 128,
        "activation": "relu",
        "loss": "softmax_ce",
        "dtype": "float64",
        "seed": 0,
    }
    assert row["time_s"] > 0 and row["strategy"] == "sqrt"


@pytest.mark.parametrize("activation", ["maxout", "prelu", "sigmoid", "leaky_relu"])
def test_tracemalloc_bound_holds_for_other_activations(activation):
    result = invoke("run", *SMALL, "--width", "64", "--activation", activation, "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    low, high = row["tracemalloc_lower_bound_bytes"], row["tracemalloc_upper_bound_bytes"]
    assert low <= row["tracemalloc_peak_bytes"] <= high


def test_compare_orders_flops_up_and_peaks_down():
    result = invoke("compare", "--depth", "32", "--width", "256", "--repeats", "1", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["strategy"]: row for row in json.loads(result.stdout)}
    assert set(tradeoff.STRATEGIES) == set(rows)
    order = [rows[name] for name in ("store-all", "sqrt", "recompute-all")]
    flops = [row["flops"]["total"] for row in order]
    peaks = [row["peak_bytes"] for row in order]
    assert flops[0] < flops[1] < flops[2]
    assert peaks[0] > peaks[1] > peaks[2]
    assert all(row["gradients_identical"] for row in rows.values())


def test_compare_table_for_humans():
    result = invoke("compare", *SMALL)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model: 4 blocks (16-16-16-16-16), relu")
    assert "strategy" in lines[1] and "accounted peak" in lines[1]
    assert [line.split()[0] for line in lines[2:-1]] == list(tradeoff.STRATEGIES)


def test_run_summary_for_humans():
    result = invoke("run", *SMALL)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for label in ("model", "schedule", "FLOPs", "recompute", "peak", "predicted", "tracemalloc"):
        assert f"\n{label}" in "\n" + out or f"  {label}" in out, label
    assert "bit-identical to store-all" in out


def test_save_grads_equal_the_in_process_gradients(tmp_path):
    path = tmp_path / "grads.npz"
    args = ["--widths", "5,7,3", "--activation", "prelu", "--batch", "6", "--seed", "3"]
    result = invoke(
        "run", "--strategy", "recompute-all", *args, "--repeats", "1", "--save-grads", str(path)
    )
    assert result.exit_code == 0, result.stderr
    model = tradeoff.MLP([5, 7, 3], activation="prelu", seed=3)
    x, y = tradeoff.make_batch(model, 6, seed=3)
    r = tradeoff.run(model, x, y, "recompute-all")
    with np.load(path) as saved:
        assert sorted(saved.files) == sorted(
            ["x", "y", "W0", "b0", "alpha0", "W1", "b1"]
            + ["grad_W0", "grad_b0", "grad_alpha0", "grad_W1", "grad_b1"]
        )
        assert identical(saved["x"], x) and identical(saved["y"], y)
        for name, p, g in zip(["W0", "b0", "alpha0", "W1", "b1"], model.params, r.grads):
            assert identical(saved[name], p)
            assert identical(saved[f"grad_{name}"], g)
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_a_write_that_fails_after_the_checks_is_an_error_line_not_a_traceback(
    tmp_path, monkeypatch
):
    """A disk that fills up during the run: exit 1, an Error: line, and no file left."""

    def disk_full(path, write, binary=False):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("tradeoff.cli.write_atomically", disk_full)
    path = tmp_path / "grads.npz"
    result = invoke("run", *SMALL, "--save-grads", str(path))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (f"Error: No space left on device ({path})")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_version_module_entry_and_help_examples():
    done = subprocess.run(
        [sys.executable, "-m", "tradeoff", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (
        done.returncode == 0 and done.stdout.strip() == f"tradeoff, version {tradeoff.__version__}"
    )
    for command in main.commands:
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, command


def test_xor_json():
    result = invoke("xor", "--json")
    assert json.loads(result.stdout) == {
        "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
        "outputs": [0, 1, 1, 0],
    }


def test_plan_json_for_a_chain_file_end_to_end():
    chain_file = Path(__file__).parent / "data" / "small_chain.json"
    chain = tradeoff.Chain.from_json(chain_file)
    result = invoke("plan", "--budget", "0.75", "--chain", str(chain_file), "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    store_all = tradeoff.simulate(tradeoff.store_all(chain.n), chain)
    assert plan["budget_bytes"] == int(store_all.peak_bytes * 0.75)
    assert plan["predicted_peak_bytes"] <= plan["budget_bytes"]
    schedule = tradeoff.parse(plan["schedule"])
    assert tradeoff.simulate(schedule, chain).flops == plan["flops"]
    frontier = plan["frontier"]
    assert frontier[-1] == {
        "budget_bytes": store_all.peak_bytes,
        "total_flops": store_all.flops["total"],
    }
    assert all(a["total_flops"] > b["total_flops"] for a, b in zip(frontier, frontier[1:]))


def test_plan_for_a_model_prints_the_choice_and_a_frontier_table():
    result = invoke("plan", "--budget", "1MiB", "--depth", "16", "--width", "128", "--batch", "64")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("for ") and "strategy" in out and "frontier (" in out
    assert "budget     1,048,576 B" in out


def test_run_optimal_fits_its_budget_and_is_bit_identical():
    result = invoke("run", "--strategy", "optimal", "--budget", "0.9", *SMALL, "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["peak_bytes"] == row["predicted_peak_bytes"] <= row["options"]["budget"]
    assert row["gradients_identical"]
