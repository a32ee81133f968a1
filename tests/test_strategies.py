"""Strategies as schedules: the printed form, validity, and the recompute closed forms."""

import math

import numpy as np
import pytest

import tradeoff
from tradeoff import Backward, Forward, Loss, describe, parse, simulate


def chain(n, width=4, batch=2, activation="relu"):
    return tradeoff.MLP([width] * (n + 1), activation=activation).chain(batch)


def test_sqrt_on_nine_blocks_prints_as_designed():
    assert describe(tradeoff.sqrt_checkpoint(9)) == (
        "S0 F0 F1 F2 S3 F3 F4 F5 F6* F7* F8* L B8 B7 B6 R3 F3* F4* F5* B5 B4 B3 D3 "
        "R0 F0* F1* F2* B2 B1 B0 D0"
    )


@pytest.mark.parametrize("n", [1, 2, 5, 9, 17])
def test_describe_and_parse_round_trip(n):
    for schedule in (tradeoff.store_all(n), tradeoff.recompute_all(n), tradeoff.sqrt_checkpoint(n)):
        assert parse(describe(schedule)) == schedule


def test_describe_shortens_long_schedules():
    text = describe(tradeoff.store_all(100), limit=10)
    assert text.startswith("F0* F1* F2* F3* F4* ... (191 more) ...") and text.endswith("B0")


def recompute_forwards(schedule):
    """The blocks run forward after the loss, in order."""
    loss_at = next(k for k, a in enumerate(schedule) if isinstance(a, Loss))
    return [a.i for a in schedule[loss_at:] if isinstance(a, Forward)]


@pytest.mark.parametrize("n", range(1, 65))
def test_recompute_closed_forms(n):
    c = chain(n, activation="tanh")
    k = math.ceil(math.sqrt(n))
    expected = {
        "store-all": 0,
        "recompute-all": n * (n + 1) // 2,
        "sqrt": n - (n - (math.ceil(n / k) - 1) * k),  # n minus the last segment's length
    }
    for name, recompute in expected.items():
        schedule = tradeoff.build(name, c)
        blocks = recompute_forwards(schedule)
        assert len(blocks) == recompute, name
        p = simulate(schedule, c)
        assert p.flops["recompute"] == sum(c.blocks[i].forward_flops for i in blocks), name
        assert p.flops["forward"] == sum(b.forward_flops for b in c.blocks), name
        assert p.flops["total"] == sum(p.flops[k] for k in tradeoff.PHASES)


@pytest.mark.parametrize("n", range(1, 41))
@pytest.mark.parametrize("segments", [1, 2, 3, 7, 50])
def test_sqrt_with_segments(n, segments):
    k = math.ceil(n / segments)
    starts = list(range(0, n, k))
    schedule = tradeoff.sqrt_checkpoint(n, segments)
    assert len(recompute_forwards(schedule)) == starts[-1]  # n - (n - last start)
    assert simulate(schedule, chain(n)).saved_inputs == len(starts) - 1


def reversal_order(schedule):
    return [a.i for a in schedule if isinstance(a, Backward)]


@pytest.mark.parametrize("n", [1, 2, 3, 8, 33])
@pytest.mark.parametrize("name", list(tradeoff.STRATEGIES))
def test_every_schedule_is_valid_and_reverses_each_block_once(n, name):
    c = chain(n)
    schedule = tradeoff.build(name, c)
    simulate(schedule, c)  # raises if invalid
    assert reversal_order(schedule) == list(reversed(range(n)))
    assert sum(isinstance(a, Loss) for a in schedule) == 1


def test_slots_bound_the_saved_inputs():
    c = chain(16)
    sqrt = tradeoff.build("sqrt", c)
    assert simulate(sqrt, c, slots=3).saved_inputs == 3
    with pytest.raises(tradeoff.InvalidSchedule, match=r"action \d+ \(S8\): .*more than 2 slots"):
        simulate(sqrt, c, slots=2)


INVALID = [
    (
        "F1* L B1 B0",
        r"action 0 \(F1\*\): block 1 needs x\[1\], but the working activation is x\[0\]",
    ),
    ("F0 F1* L B1 B0", r"action 4 \(B0\): block 0 has no tape"),
    ("F0* F1* L B0 B1", r"action 3 \(B0\): out of order, block 1 must be reversed first"),
    ("F0* F1* L B1 B1 B0", r"action 4 \(B1\): block 1 is reversed twice"),
    ("F0* F1* L B1 R0 F0* B0", r"action 4 \(R0\): x\[0\] was never saved"),
    ("F0* F1* B1 L B0", r"action 2 \(B1\): a backward before the loss"),
    (
        "F0* L F1* B1 B0",
        r"action 1 \(L\): the loss needs x\[2\], but the working activation is x\[1\]",
    ),
    ("F0* F1* L L B1 B0", r"action 3 \(L\): the loss was already taken"),
    ("S0 F0* F1* L B1 B0", r"ends with x\[0\] still saved"),
    ("F0* F1* L B1", r"ends with blocks 0\.\.0 not reversed"),
    ("F0* F1*", r"ends before the loss"),
    ("S0 S0 F0* F1* L B1 B0 D0", r"action 1 \(S0\): x\[0\] is already saved"),
    ("F0* F1* L B1 D0 B0", r"action 4 \(D0\): x\[0\] is not saved"),
    (
        "F0* F0* F1* L B1 B0",
        r"action 1 \(F0\*\): block 0 needs x\[0\], but the working activation is x\[1\]",
    ),
    ("S0 F0* R0 F0* F1* L B1 B0 D0", r"action 3 \(F0\*\): block 0 already holds a tape"),
    (
        "F0* F1* L B1 F1* B0",
        r"action 4 \(F1\*\): block 1 needs x\[1\], but the working activation is x\[2\]",
    ),
    ("S0 F0* F1* L B1 R0 F0 F1* B0 D0", r"action 7 \(F1\*\): block 1 is already reversed"),
    ("F0* F5* L B1 B0", r"action 1 \(F5\*\): index 5 is outside 0\.\.1"),
]


@pytest.mark.parametrize("text,message", INVALID, ids=[t for t, _ in INVALID])
def test_invalid_schedules_are_rejected_naming_the_action(text, message):
    with pytest.raises(tradeoff.InvalidSchedule, match=message):
        simulate(parse(text), chain(2))


def test_the_runner_rejects_what_the_simulator_rejects():
    model = tradeoff.MLP([3, 3, 3])
    x, y = tradeoff.make_batch(model, 2)
    with pytest.raises(tradeoff.InvalidSchedule, match="out of order"):
        tradeoff.run(
            model, x, y, (Forward(0, tape=True), Forward(1, tape=True), Loss(), Backward(0))
        )


def test_unknown_strategy_and_option_are_value_errors():
    c = chain(3)
    with pytest.raises(ValueError, match="unknown strategy 'fast'; choose from store-all"):
        tradeoff.build("fast", c)
    with pytest.raises(ValueError, match="'store-all' does not take segments"):
        tradeoff.build("store-all", c, segments=2)
    with pytest.raises(ValueError, match="segments must be a whole number >= 1"):
        tradeoff.build("sqrt", c, segments=0)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: tradeoff.store_all(0), "n must be a whole number >= 1, got 0"),
        (lambda: tradeoff.recompute_all(-2), "n must be a whole number >= 1, got -2"),
        (lambda: tradeoff.sqrt_checkpoint(0), "n must be a whole number >= 1, got 0"),
        (lambda: tradeoff.sqrt_checkpoint(9, 2.5), "segments must be a whole number >= 1"),
        (lambda: tradeoff.sqrt_checkpoint(9, True), "segments must be a whole number >= 1"),
        (lambda: tradeoff.revolve(2.0, 2), "n must be a whole number >= 1, got 2.0"),
    ],
)
def test_strategy_functions_reject_what_is_no_chain_length(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_strategy_functions_take_numpy_integers():
    n, k = np.int64(9), np.int64(3)
    assert tradeoff.sqrt_checkpoint(n, k) == tradeoff.sqrt_checkpoint(9, 3)
    assert tradeoff.revolve(n, k) == tradeoff.revolve(9, 3)
    assert tradeoff.store_all(n) == tradeoff.store_all(9)


def test_parse_rejects_garbage():
    with pytest.raises(ValueError, match="cannot parse schedule token 'X1'"):
        parse("F0* X1")
