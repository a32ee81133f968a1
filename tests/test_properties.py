"""Property tests: random chains, strategies, slots and budgets.

Every example checks that the schedule is valid, that the runner's accounted peak equals the
dry run's prediction (and fits the budget, for optimal, and the slots, for revolve), and that
the loss and gradients are bit-identical to store-all's. 500 examples by default;
`pytest --hypothesis-profile=thorough` makes 5000.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tradeoff
from conftest import same_result
from tradeoff import simulate

ACTIVATIONS = st.sampled_from(tradeoff.ACTIVATIONS)


@st.composite
def cases(draw, names=tuple(tradeoff.STRATEGIES)):
    """A random model, batch, strategy and options."""
    n = draw(st.integers(1, 50))
    widths = draw(st.lists(st.integers(1, 64), min_size=n + 1, max_size=n + 1))
    model = tradeoff.MLP(
        widths,
        activation=draw(ACTIVATIONS),
        loss=draw(st.sampled_from(list(tradeoff.LOSSES))),
        dtype=draw(st.sampled_from(tradeoff.DTYPES)),
        seed=draw(st.integers(0, 2**16)),
        pieces=draw(st.integers(2, 4)),
    )
    batch = draw(st.integers(1, 6))
    name = draw(st.sampled_from(names))
    options = {}
    if name == "sqrt":
        options["segments"] = draw(st.none() | st.integers(1, n + 1))
    elif name == "revolve":
        options["slots"] = draw(st.integers(1, n + 1))
    elif name == "optimal":
        store_all = tradeoff.predict(model, batch, "store-all").peak_bytes
        options["budget"] = int(store_all * draw(st.floats(0.05, 1.2)))
    return model, batch, name, {k: v for k, v in options.items() if v is not None}


def check(model, batch, builder, options):
    """The properties of one example, for a builder as the registry holds them."""
    chain = model.chain(batch)
    try:
        schedule = builder(chain, **options)
    except ValueError as error:
        # Only optimal may refuse, and only a budget below what its space can reach.
        assert "budget" in options and "smallest feasible" in str(error), error
        return
    prediction = simulate(schedule, chain, slots=options.get("slots"))  # raises if invalid
    x, y = tradeoff.make_batch(model, batch, seed=1)
    r = tradeoff.run(model, x, y, schedule)
    assert r.peak_bytes == prediction.peak_bytes
    assert r.flops == prediction.flops
    assert max(r.timeline) == r.peak_bytes
    if "budget" in options:
        assert r.peak_bytes <= options["budget"]
    assert same_result(r, tradeoff.run(model, x, y, "store-all"))


@given(cases())
def test_every_strategy_holds_its_properties(case):
    model, batch, name, options = case
    check(model, batch, tradeoff.STRATEGIES[name], options)


def reverses_a_block_twice(chain):
    """Broken: store-all, but the last block is reversed once more at the end."""
    schedule = tradeoff.store_all(chain.n)
    return (*schedule, schedule[-chain.n])


def ignores_its_slots(chain, slots):
    """Broken: claims to honour ``slots`` but saves as sqrt does, however many it is given."""
    return tradeoff.sqrt_checkpoint(chain.n)


def ignores_its_budget(chain, budget):
    """Broken yet valid: plain backprop, whatever the budget; only the budget check sees it."""
    return tradeoff.store_all(chain.n)


@pytest.mark.parametrize(
    "broken,options,caught",
    [
        (reverses_a_block_twice, {}, tradeoff.InvalidSchedule),
        (ignores_its_slots, {"slots": 1}, tradeoff.InvalidSchedule),
        (ignores_its_budget, {"budget": 64}, AssertionError),
    ],
    ids=["reverses-twice", "ignores-slots", "ignores-budget"],
)
def test_the_properties_catch_a_broken_strategy(broken, options, caught):
    @given(cases(names=("store-all",)))
    def property_with_broken_strategy(case):
        model, batch, _, _ = case
        check(model, batch, broken, options)

    with pytest.raises(caught):
        property_with_broken_strategy()
