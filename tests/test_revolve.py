"""revolve: exactly the fewest recompute forwards t(n, s), never more than s saved inputs."""

import functools
import math

import pytest

import tradeoff
from conftest import same_result
from tradeoff import Backward, Drop, Forward, Loss, Save, simulate
from tradeoff.strategies import revolve_recompute


def closed_form(n: int, s: int) -> int:
    """DESIGN section 4, written out again here: t = r n - C(s + r, s + 1)."""
    r = 0
    while math.comb(s + r, s) < n:
        r += 1
    return r * n - math.comb(s + r, s + 1)


@functools.cache
def fewest_advances(length: int, slots: int) -> float:
    """The recurrence by brute force over every first checkpoint: the true minimum."""
    if length == 1:
        return 0
    if slots == 0:
        return math.inf
    return min(
        j + fewest_advances(length - j, slots - 1) + fewest_advances(j, slots)
        for j in range(1, length)
    )


def counts(schedule):
    """(forwards before the loss, forwards after it, most inputs saved at once)."""
    loss_at = schedule.index(Loss())
    before = sum(type(a) is Forward for a in schedule[:loss_at])
    after = sum(type(a) is Forward for a in schedule[loss_at:])
    held = most = 0
    for a in schedule:
        if type(a) is Save:
            held += 1
            most = max(most, held)
        elif type(a) is Drop:
            held -= 1
    return before, after, most


def test_the_closed_form_is_the_minimum_of_the_recurrence():
    for n in range(1, 61):
        for s in range(1, 9):
            assert closed_form(n, s) == fewest_advances(n, s), (n, s)


def test_design_examples():
    assert [revolve_recompute(n, s) for n, s in [(10, 2), (100, 5), (1000, 10)]] == [20, 316, 3636]
    assert counts(tradeoff.revolve(10, 2))[1] == 20


def test_recompute_is_t_n_s_for_every_n_up_to_300_and_s_up_to_20():
    for n in range(1, 301):
        for s in range(1, 21):
            before, after, most = counts(tradeoff.revolve(n, s))
            assert (before, after) == (n, closed_form(n, s)), (n, s)
            assert most <= s, (n, s)
            assert revolve_recompute(n, s) == closed_form(n, s)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 31, 64, 100])
def test_the_simulator_confirms_validity_slots_and_flops(n):
    chain = tradeoff.MLP([3 + i % 4 for i in range(n + 1)], activation="tanh").chain(2)
    for s in range(1, 21):
        schedule = tradeoff.revolve(n, s)
        p = simulate(schedule, chain, slots=s)  # raises past s saved inputs, or if invalid
        assert p.saved_inputs <= s
        assert [a.i for a in schedule if isinstance(a, Backward)] == list(reversed(range(n)))
        loss_at = schedule.index(Loss())
        recomputed = [a.i for a in schedule[loss_at:] if isinstance(a, Forward)]
        assert len(recomputed) == closed_form(n, s)
        assert p.flops["recompute"] == sum(chain.blocks[i].forward_flops for i in recomputed)


def test_one_slot_is_recompute_all_without_its_wasted_forward():
    for n in range(1, 30):
        assert counts(tradeoff.revolve(n, 1))[1] == n * (n - 1) // 2


def test_enough_slots_save_every_input_but_the_last():
    for n in range(2, 40):
        for s in (n - 1, n, 5 * n):
            before, after, most = counts(tradeoff.revolve(n, s))
            assert (after, most) == (n - 1, n - 1)


def test_a_hundred_thousand_blocks_need_no_recursion():
    n, s = 100_000, 10
    before, after, most = counts(tradeoff.revolve(n, s))
    assert (before, after) == (n, closed_form(n, s)) and most <= s


def test_revolve_prints_as_designed_on_ten_blocks_and_two_slots():
    assert tradeoff.describe(tradeoff.revolve(10, 2)).startswith(
        "S0 F0 F1 F2 F3 F4 F5 S6 F6 F7 F8 F9* L B9 R6 F6 F7 F8* B8"
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None, "2"])
def test_bad_slots_are_value_errors(bad):
    with pytest.raises(ValueError, match="slots must be a whole number >= 1"):
        tradeoff.revolve(5, bad)
    with pytest.raises(ValueError, match="n must be a whole number >= 1"):
        tradeoff.revolve(0, 2)


def test_the_registry_defaults_to_as_many_slots_as_sqrt_saves():
    for n in (1, 2, 5, 9, 16, 50):
        chain = tradeoff.MLP([4] * (n + 1)).chain(2)
        sqrt_saves = max(1, simulate(tradeoff.build("sqrt", chain), chain).saved_inputs)
        assert tradeoff.build("revolve", chain) == tradeoff.revolve(n, sqrt_saves)
        assert tradeoff.build("revolve", chain, slots=3) == tradeoff.revolve(n, 3)


@pytest.mark.parametrize("activation", ["relu", "maxout", "sigmoid"])
def test_revolve_gradients_are_bit_identical_to_store_all(activation):
    model = tradeoff.MLP([5, 9, 4, 7, 6, 3, 8, 2], activation=activation, dtype="float32")
    x, y = tradeoff.make_batch(model, batch=4)
    base = tradeoff.run(model, x, y, "store-all")
    for s in (1, 2, 3, 7):
        r = tradeoff.run(model, x, y, "revolve", slots=s)
        assert same_result(r, base)
        assert r.peak_bytes == tradeoff.predict(model, 4, "revolve", slots=s).peak_bytes
