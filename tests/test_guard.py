"""The memory guard refuses before allocating; the smallest shapes still work."""

import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import tradeoff
from conftest import same_result
from tradeoff.cli import main
from tradeoff.measure import ModelSpec, check_memory


def test_a_model_too_large_is_refused_without_allocating_it():
    """About 10 TB of parameters: refused, naming both figures, while tracemalloc sees < 64 MiB."""
    tracemalloc.start()
    result = CliRunner().invoke(main, ["run", "--depth", "4", "--width", "400000"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.exit_code == 2 and result.stdout == ""
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: this model needs at least 10,24")
    assert "exceeds the memory available" in error and "--force" in error
    assert peak < 64 * 2**20


def test_the_precise_guard_names_both_figures_and_a_plan_that_fits():
    spec = ModelSpec((256,) * 33, batch=256)
    needed = check_memory(spec)  # fits this machine
    with pytest.raises(ValueError) as refused:
        check_memory(spec, available=needed - 1)  # one byte short: the precise check refuses
    message = str(refused.value)
    assert f"needs {needed:,} bytes" in message
    assert f"memory available ({needed - 1:,} bytes)" in message
    assert "would fit: see tradeoff plan --budget" in message


def test_force_overrides_the_guard(monkeypatch):
    import tradeoff.measure as measure

    monkeypatch.setattr(measure, "available_memory_bytes", lambda: 1000)
    refused = CliRunner().invoke(main, ["run", "--depth", "2", "--width", "4", "--batch", "2"])
    assert refused.exit_code == 2 and "exceeds the memory available" in refused.stderr
    forced = CliRunner().invoke(
        main, ["run", "--depth", "2", "--width", "4", "--batch", "2", "--repeats", "1", "--force"]
    )
    assert forced.exit_code == 0, forced.stderr


@pytest.mark.parametrize("activation", tradeoff.ACTIVATIONS)
def test_a_batch_of_one_and_a_width_of_one_work(activation):
    model = tradeoff.MLP([1, 1, 1, 1], activation=activation, loss="sigmoid_bce", seed=4)
    x, y = tradeoff.make_batch(model, batch=1)
    base = tradeoff.run(model, x, y, "store-all")
    assert np.isfinite(base.loss) and all(np.isfinite(g).all() for g in base.grads)
    for name in tradeoff.STRATEGIES:
        assert same_result(tradeoff.run(model, x, y, name), base), name
