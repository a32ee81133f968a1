"""The command line: JSON forms, the measured bounds, --save-grads, and bad input."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
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
    # The console script installed beside this interpreter, never a stand-in for it.
    exe = Path(sys.executable).with_name("tradeoff")
    assert exe.is_file(), f"the console script {exe} is not installed"
    command = [str(exe)]
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


def test_a_gradient_mismatch_is_an_error_line_not_a_traceback(monkeypatch):
    """measure raises GradientMismatch in the child; the CLI reports it as exit 1, Error:."""
    from tradeoff.measure import GradientMismatch

    def mismatch(request):
        raise GradientMismatch(f"{request.strategy} gives gradients that are not bit-identical")

    monkeypatch.setattr("tradeoff.measure.measure", mismatch)
    for command in ("run", "compare"):
        result = invoke(command, *SMALL)
        assert result.exit_code == 1, (command, result.output)
        assert result.stdout == ""
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: ") and "not bit-identical" in last, result.stderr
        assert "Traceback" not in result.stderr


def test_compare_refuses_an_infeasible_budget_before_measuring(monkeypatch):
    measured = []
    monkeypatch.setattr("tradeoff.measure.measure", measured.append)
    result = invoke("compare", *SMALL, "--budget", "10")
    assert result.exit_code == 2 and "smallest feasible" in result.stderr, result.output
    assert measured == []


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_save_grads_writes_through_links_and_into_devices(tmp_path, kind):
    """A symbolic link is written through (not replaced); a FIFO, like /dev/null, is written
    into rather than renamed over (as root, replacing /dev/null would break the machine)."""
    target = tmp_path / "real.npz"
    path = tmp_path / "grads.npz"
    received = []
    if kind == "symlink":
        path.symlink_to(target)
    else:
        os.mkfifo(path)
        # A FIFO blocks its writer until a reader opens it.
        reader = threading.Thread(target=lambda: received.append(path.read_bytes()))
        reader.start()
    result = invoke("run", *SMALL, "--save-grads", str(path))
    assert result.exit_code == 0, result.output
    if kind == "symlink":
        assert path.is_symlink() and os.readlink(path) == str(target)
        with np.load(target) as saved:
            assert "grad_W0" in saved.files
    else:
        reader.join(timeout=60)
        assert path.is_fifo()
        assert received and received[0].startswith(b"PK")  # an npz is a zip file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["grads.npz"] + (["real.npz"] if kind == "symlink" else [])
    )


def test_a_worker_ends_with_its_parent():
    """SIGTERM to tradeoff run ends its measuring worker too, rather than orphaning it."""
    exe = Path(sys.executable).with_name("tradeoff")
    # About a minute of timed steps: long enough to still be measuring when the signal comes.
    args = ["run", "--depth", "16", "--width", "512", "--repeats", "1000"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    parent = subprocess.Popen([str(exe), *args], **quiet)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline:
            time.sleep(0.2)
            # the measuring worker (spawn also starts a resource tracker, which is not it)
            workers = [
                p
                for p in psutil.Process(parent.pid).children(recursive=True)
                if "measure" in " ".join(p.cmdline()) or "spawn_main" in " ".join(p.cmdline())
            ]
        assert workers, "no worker process was started"
        assert parent.poll() is None, "the run finished before the signal was sent"
        os.kill(parent.pid, signal.SIGTERM)
        parent.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"workers outlived their parent: {alive}"
    finally:  # never leave a process behind, whatever failed
        for worker in workers:
            if worker.is_running():
                worker.kill()
        if parent.poll() is None:
            parent.kill()
        parent.wait()


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
