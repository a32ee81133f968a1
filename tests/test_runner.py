"""The runner: bit-identical gradients for every strategy, exact agreement with the dry run."""

import itertools

import numpy as np
import pytest

import tradeoff
from conftest import identical, same_result

COMBOS = list(itertools.product(tradeoff.ACTIVATIONS, tradeoff.LOSSES, tradeoff.DTYPES))
WIDTHS = (1, 3, 8)


@pytest.mark.parametrize("n", range(1, 41))
def test_every_strategy_is_bit_identical_to_store_all(n):
    """For each n, every activation x loss x dtype, at a width that cycles with the combination."""
    for k, (activation, loss, dtype) in enumerate(COMBOS):
        width = WIDTHS[(n + k) % len(WIDTHS)]
        widths = [width + (i % 3) for i in range(n + 1)]  # heterogeneous, still small
        model = tradeoff.MLP(widths, activation=activation, loss=loss, dtype=dtype, seed=n)
        x, y = tradeoff.make_batch(model, batch=3, seed=k)
        base = tradeoff.run(model, x, y, "store-all")
        assert base.loss.dtype == model.dtype
        for name in tradeoff.STRATEGIES:
            r = tradeoff.run(model, x, y, name)
            assert same_result(r, base), (name, activation, loss, dtype)


HETEROGENEOUS = [
    [784, 512, 512, 256, 10],
    [7, 30, 2, 19, 1, 11, 5],
    [16, 64, 8, 64, 8, 64, 8, 64, 4],
    [3] * 30,
]


@pytest.mark.parametrize("widths", HETEROGENEOUS, ids=lambda w: "-".join(map(str, w)))
@pytest.mark.parametrize("activation", tradeoff.ACTIVATIONS)
@pytest.mark.parametrize("dtype", tradeoff.DTYPES)
def test_dry_run_predicts_the_runner_exactly(widths, activation, dtype):
    model = tradeoff.MLP(widths, activation=activation, dtype=dtype, pieces=3, seed=1)
    batch = 5
    x, y = tradeoff.make_batch(model, batch)
    runs = [(name, {}) for name in tradeoff.STRATEGIES] + [("sqrt", {"segments": 2})]
    for name, options in runs:
        r = tradeoff.run(model, x, y, name, **options)
        p = tradeoff.predict(model, batch, name, **options)
        assert r.flops == p.flops, name
        assert r.flops_by_kind == p.flops_by_kind, name
        assert r.peak_bytes == p.peak_bytes, name
        assert r.timeline == p.timeline, name
        assert max(r.timeline) == r.peak_bytes
        assert len(r.timeline) == len(r.schedule)


def test_matmul_flops_follow_the_textbook_formula():
    """Independent of the layers' own counts: 2*b*sum(w_i w_{i+1}) forward, and backward twice
    that less block 0's dx."""
    widths, batch = [10, 20, 30, 5], 4
    model = tradeoff.MLP(widths, activation="identity")
    x, y = tradeoff.make_batch(model, batch)
    r = tradeoff.run(model, x, y, "store-all")
    forward = sum(2 * batch * a * b for a, b in zip(widths[:-1], widths[1:]))
    assert r.flops_by_kind["matmul"]["forward"] == forward
    assert r.flops_by_kind["matmul"]["backward"] == 2 * forward - 2 * batch * widths[0] * widths[1]
    assert r.flops_by_kind["matmul"]["recompute"] == 0
    # identity activations cost nothing: element-wise forward is the bias adds alone
    assert r.flops_by_kind["elementwise"]["forward"] == batch * sum(widths[1:])


# Element-wise FLOPs per output element (forward, backward), as each op's docstring states
# them, written out here again so that a layer whose count drifts from its docstring is caught.
ELEMENTWISE_PER_ELEMENT = {
    "identity": (0, 0),
    "relu": (1, 2),
    "leaky_relu": (3, 2),
    "abs": (3, 2),
    "prelu": (3, 6),
    "maxout": (2, 0),  # k - 1 comparisons per output with k = 3 pieces
    "sigmoid": (4, 3),
    "tanh": (1, 3),
}
LOSS_FLOPS = {  # of (rows, classes) logits
    "softmax_ce": lambda r, c: 6 * r * c + 4 * r + 1,
    "sigmoid_bce": lambda r, c: 15 * r * c + 1,
    "mse": lambda r, c: 4 * r * c + 1,
}


@pytest.mark.parametrize("activation", list(ELEMENTWISE_PER_ELEMENT))
@pytest.mark.parametrize("loss", list(LOSS_FLOPS))
def test_elementwise_flops_follow_each_ops_stated_count(activation, loss):
    """Bias adds and db sums (one FLOP per Linear output each way), the activation's stated
    count per hidden output, and the loss's, for every phase; recompute-all's re-runs count the
    forward element-wise work again, block by block."""
    widths, batch, pieces = [6, 5, 4, 3], 7, 3
    model = tradeoff.MLP(widths, activation=activation, loss=loss, pieces=pieces)
    x, y = tradeoff.make_batch(model, batch)
    fwd, bwd = ELEMENTWISE_PER_ELEMENT[activation]
    linear_out = [w * (pieces if activation == "maxout" else 1) for w in widths[1:-1]]
    linear_out.append(widths[-1])  # the last block is a Linear alone
    block_forward = [batch * m for m in linear_out]
    block_backward = [batch * m for m in linear_out]
    for i, w in enumerate(widths[1:-1]):  # hidden blocks
        block_forward[i] += fwd * batch * w
        block_backward[i] += bwd * batch * w
    r = tradeoff.run(model, x, y, "store-all")
    elementwise = r.flops_by_kind["elementwise"]
    assert elementwise["forward"] == sum(block_forward)
    assert elementwise["backward"] == sum(block_backward)
    assert elementwise["loss"] == LOSS_FLOPS[loss](batch, widths[-1])
    assert elementwise["recompute"] == 0
    n = len(widths) - 1
    again = tradeoff.run(model, x, y, "recompute-all")  # block i re-runs blocks 0..i
    recompute = sum(block_forward[j] for i in range(n) for j in range(i + 1))
    assert again.flops_by_kind["elementwise"]["recompute"] == recompute


def test_accounted_bytes_of_store_all_follow_the_textbook_formula():
    """ReLU keeps x[i] and its output on the tape (the last block, a Linear alone, keeps x[n-1]).
    At the loss every x[0..n] and the loss gradient are alive; during B(i), the x's still on
    tapes, the incoming and the outgoing gradient."""
    widths, batch, n = [10, 20, 30, 5], 4, 3
    model = tradeoff.MLP(widths)
    x, y = tradeoff.make_batch(model, batch)
    r = tradeoff.run(model, x, y, "store-all")
    cols = {"L": sum(widths) + widths[n]}
    for i in reversed(range(n)):
        on_tapes = sum(widths[: i + 1 if i == n - 1 else i + 2])
        cols[f"B{i}"] = on_tapes + widths[i + 1] + (widths[i] if i > 0 else 0)
    for k, action in enumerate(r.schedule[n:]):
        assert r.timeline[n + k] == 8 * batch * cols[str(action)], action
    assert r.peak_bytes == 8 * batch * max(cols.values())


def test_results_do_not_share_gradient_buffers():
    model = tradeoff.MLP([6, 5, 4, 3], seed=0)
    x, y = tradeoff.make_batch(model, 4)
    first = tradeoff.run(model, x, y, "sqrt")
    before = [g.copy() for g in first.grads]
    model.params[0][...] += 1.0  # change the model so that a later run computes other values
    tradeoff.run(model, x, y, "store-all")
    tradeoff.run(model, x, y, "recompute-all")
    assert all(identical(a, b) for a, b in zip(before, first.grads))


def test_timeline_peak_and_param_bytes():
    model = tradeoff.MLP([6, 5, 4, 3], activation="prelu")
    x, y = tradeoff.make_batch(model, 4)
    r = tradeoff.run(model, x, y, "sqrt")
    assert max(r.timeline) == r.peak_bytes
    assert r.param_bytes == r.param_grad_bytes == sum(p.nbytes for p in model.params)
    assert len(r.grads) == len(model.params) == 3 + 3 + 2  # W, b, alpha per hidden block


def test_peaks_order_on_a_64_block_mlp(capsys):
    model = tradeoff.MLP([256] * 65, seed=0)
    x, y = tradeoff.make_batch(model, 32)
    peaks = {name: tradeoff.run(model, x, y, name).peak_bytes for name in tradeoff.STRATEGIES}
    with capsys.disabled():
        print("\naccounted peaks, 64 blocks of width 256, batch 32:")
        for name, peak in peaks.items():
            print(f"  {name:14} {peak:>12,} bytes")
    assert peaks["store-all"] > peaks["sqrt"] > peaks["recompute-all"]


def test_xor_network_computes_xor_exactly():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    out = tradeoff.infer(tradeoff.xor_network(), x)
    assert out[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_model_is_reproducible_from_its_seed():
    a, b = tradeoff.MLP([5, 4, 3], seed=11), tradeoff.MLP([5, 4, 3], seed=11)
    assert all(identical(p, q) for p, q in zip(a.params, b.params))
    assert not identical(a.params[0], tradeoff.MLP([5, 4, 3], seed=12).params[0])
    assert [p.shape for p in a.params] == [(5, 4), (4,), (4, 3), (3,)]
    assert tradeoff.MLP([5, 4, 3], dtype="float32").params[0].dtype == np.float32
    for spelling in (np.float32, np.dtype("float32")):  # numpy's own spellings work too
        assert tradeoff.MLP([5, 4, 3], dtype=spelling).dtype == np.float32


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"widths": [5]}, "at least two entries"),
        ({"widths": [5, 0, 3]}, "every width must be a whole number >= 1"),
        ({"widths": [5, 2.5, 3]}, "every width must be a whole number >= 1"),
        ({"widths": [5, 3], "activation": "gelu"}, "unknown activation 'gelu'"),
        ({"widths": [5, 3], "loss": "hinge"}, "unknown loss 'hinge'"),
        ({"widths": [5, 3], "dtype": "float16"}, "unknown dtype 'float16'"),
        ({"widths": [5, 3], "dtype": None}, "unknown dtype None"),
        ({"widths": [5, 3], "seed": -1}, "seed must be a whole number >= 0, got -1"),
        ({"widths": [5, 3], "seed": 1.5}, "seed must be a whole number >= 0, got 1.5"),
        ({"widths": [5, 3], "alpha": float("nan")}, "alpha must be a finite number, got nan"),
        ({"widths": [5, 3], "alpha": "0.1"}, "alpha must be a finite number, got '0.1'"),
        ({"widths": [5, 4, 3], "activation": "maxout", "pieces": 2.5}, "whole number of pieces"),
        ({"widths": [5, 4, 3], "activation": "maxout", "pieces": 1}, "2 to 255 pieces, got 1"),
        # one block has no hidden maxout, but the argument is still wrong
        ({"widths": [5, 3], "activation": "maxout", "pieces": 0}, "2 to 255 pieces, got 0"),
    ],
)
def test_bad_model_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tradeoff.MLP(**kwargs)


def test_bad_batches_are_value_errors():
    model = tradeoff.MLP([3, 4, 2])
    x, y = tradeoff.make_batch(model, 4)
    cases = [
        (x[:, :2], y, r"x must be an array of shape \(batch, 3\)"),
        (x.astype(np.float32), y, "x has dtype float32 but the model is float64"),
        (np.where(x > 0, np.nan, x), y, "x contains NaN or inf"),
        (x, y + 2, r"labels must lie in \[0, 2\)"),
        (x, y[:3], r"labels must have shape \(4,\)"),
        (x, y.astype(float), "labels must be integers"),
    ]
    for bx, by, message in cases:
        with pytest.raises(ValueError, match=message):
            tradeoff.run(model, bx, by)
    with pytest.raises(ValueError, match="batch must be a whole number >= 1"):
        tradeoff.make_batch(model, 0)
    model.params[2][0, 0] = np.inf
    with pytest.raises(ValueError, match="parameter 2 of the model contains NaN or inf"):
        tradeoff.run(model, x, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("strategy", ["store-all", "sqrt", "recompute-all"])
def test_bad_parameters_are_named_before_any_gradient_is_written(bad, strategy):
    """The runner checks each block's parameters as the block first runs: the first bad one is
    still the one named, and no gradient buffer has been touched when it raises."""
    model = tradeoff.MLP([4, 5, 5, 5, 3], activation="prelu", seed=0)
    x, y = tradeoff.make_batch(model, 3)
    last = len(model.params) - 1
    # The last bias, a PReLU alpha in the middle, the first W: each new bad one comes earlier
    # than those already bad, and must be the one named.
    for k in (last, 5, 0):
        model.params[k].flat[-1] = bad
        grads = [np.full_like(p, 7.0) for p in model.params]
        with pytest.raises(ValueError, match=f"parameter {k} of the model contains NaN or inf"):
            tradeoff.run(model, x, y, strategy, grads=grads)
        assert all((g == 7.0).all() for g in grads)
    with pytest.raises(ValueError, match="parameter 0 of the model contains NaN or inf"):
        tradeoff.check_batch(model, x, y)


@pytest.mark.parametrize("dtype", tradeoff.DTYPES)
def test_finite_checks_see_every_non_finite_and_pass_huge_finite_values(dtype):
    model = tradeoff.MLP([3, 4, 2], dtype=dtype)
    x, y = tradeoff.make_batch(model, 4)
    big = np.finfo(dtype).max
    x[...] = [[big, -big, 0.0]] * 4  # finite, however large
    with np.errstate(all="raise"):  # the check's own overflow is not the caller's error
        tradeoff.check_batch(model, x, y)
        model.params[0][0, 0] = big
        tradeoff.check_batch(model, x, y)
        tiny = x.copy()
        tiny[...] = np.finfo(dtype).smallest_subnormal  # its square underflows
        tradeoff.check_batch(model, tiny, y)
        tiny[0, 0] = np.nan  # found as a value, not raised as a floating-point error
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            tradeoff.check_batch(model, tiny, y)
    tradeoff.check_batch(model, np.asfortranarray(x), y)
    for bad in (np.nan, np.inf, -np.inf):
        for where in ((0, 0), (3, 2), (1, 1)):
            z = x.copy()
            z[where] = bad
            wide = np.zeros((4, 6), dtype=dtype)
            wide[:, ::2] = z
            # C order, Fortran order, and a strided view (the check cannot flatten it)
            for case in (z, np.asfortranarray(z), wide[:, ::2]):
                with pytest.raises(ValueError, match="x contains NaN or inf"):
                    tradeoff.run(model, case, y)


@pytest.mark.parametrize(
    "text,message",
    [
        ("F1* F5* L B1 B0", r"action 0 \(F1\*\): block 1 needs x\[1\]"),  # earlier error first
        ("F0* F5* F9* L B1 B0", r"action 1 \(F5\*\): index 5 is outside 0\.\.1"),
        ("S0 F0* F1* L B1 B0 D3", r"action 6 \(D3\): index 3 is outside 0\.\.2"),
        ("S3 F0* F1* L B1 B0", r"action 0 \(S3\): index 3 is outside 0\.\.2"),
    ],
)
def test_the_first_offending_action_is_named(text, message):
    model = tradeoff.MLP([3, 3, 3])
    x, y = tradeoff.make_batch(model, 2)
    for check in (
        lambda s: tradeoff.simulate(s, model.chain(2)),
        lambda s: tradeoff.run(model, x, y, s),
    ):
        with pytest.raises(tradeoff.InvalidSchedule, match=message):
            check(tradeoff.parse(text))


def test_run_leaves_no_state_between_runs():
    """A run after a failed run (bad schedule, bad parameter) computes what a fresh one does."""
    model = tradeoff.MLP([4, 6, 6, 3], seed=2)
    x, y = tradeoff.make_batch(model, 5)
    base = tradeoff.run(model, x, y, "sqrt")
    with pytest.raises(tradeoff.InvalidSchedule):
        tradeoff.run(model, x, y, tradeoff.parse("F0* F1* L B2 B1 B0"))
    saved = model.params[2].copy()
    model.params[2][0, 0] = np.nan
    with pytest.raises(ValueError):
        tradeoff.run(model, x, y, "store-all")
    model.params[2][...] = saved
    assert same_result(tradeoff.run(model, x, y, "sqrt"), base)


def test_the_benchmark_runs_in_quick_mode(tmp_path):
    """experiments/bench_runner.py --quick (without torch: the tests never import it) runs in a
    few seconds and writes a report whose references are what they claim to be."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "experiments" / "bench_runner.py"
    subprocess.run(
        [sys.executable, str(script), "--quick", "--no-torch", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    report = json.loads((tmp_path / "performance.json").read_text())
    assert "torch" not in report["environment"]
    for m in report["models"]:
        assert m["hand"]["bit_identical"]  # the hand-written step is the same arithmetic
        assert m["hand"]["ratio"] > 0
        assert "sqrt" in m["strategies"] and "recompute-all" in m["strategies"]
        assert all(s["bit_identical"] for s in m["strategies"].values())
    text = (tmp_path / "performance.md").read_text()
    assert "experiments/bench_runner.py --quick --no-torch" in text


@pytest.mark.parametrize("strategy", ["store-all", "sqrt"])
@pytest.mark.parametrize(
    "widths, batch, dtype",
    [([1024] * 17, 256, "float32"), ([256] * 65, 64, "float64")],
    ids=["16x1024-float32", "64x256-float64"],
)
def test_tracemalloc_peak_within_the_performance_bound(strategy, widths, batch, dtype):
    """Issue 6's bound on the benchmark's two models: a step's tracemalloc peak is at most the
    accounted peak plus the parameter-gradient bytes plus one op's largest temporary (the
    per-op part of temporary_bound_bytes, without its interpreter slack)."""
    from tradeoff.measure import (
        INTERPRETER_SLACK_BYTES,
        MeasureRequest,
        ModelSpec,
        measure_here,
        temporary_bound_bytes,
    )

    spec = ModelSpec(widths=tuple(widths), batch=batch, dtype=dtype)
    row = measure_here(MeasureRequest(spec, strategy, repeats=1))
    largest_temporary = temporary_bound_bytes(spec.model(), batch) - INTERPRETER_SLACK_BYTES
    bound = row["peak_bytes"] + row["param_grad_bytes"] + largest_temporary
    print(f"{strategy} {widths[1]}x{len(widths) - 1}: traced {row['tracemalloc_peak_bytes']:,}")
    print(f"  <= {bound:,} (accounted {row['peak_bytes']:,})")
    assert row["peak_bytes"] - row["batch_bytes"] <= row["tracemalloc_peak_bytes"] <= bound
    # The gradient buffers are allocated before tracing, so README's tighter bound (without
    # them) holds too: a step that kept extra copies of its activations would break this one.
    assert row["tracemalloc_peak_bytes"] <= row["tracemalloc_upper_bound_bytes"]
