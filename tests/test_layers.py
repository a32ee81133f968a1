"""Every op's bprop against central differences, by random projection, in float64."""

import numpy as np
import pytest

import tradeoff
from tradeoff.layers import (
    Identity,
    LeakyReLU,
    Linear,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    SquaredError,
    Tanh,
)

EPS = 1e-6
TOL = 1e-6


def away_from_kinks(rng, shape):
    """Values with |v| >= 0.1, so that a central difference never straddles a kink."""
    v = rng.standard_normal(shape)
    return np.where(v >= 0, v + 0.1, v - 0.1)


def directional(f, x, direction):
    """Central difference of scalar f at x along direction."""
    return (f(x + EPS * direction) - f(x - EPS * direction)) / (2 * EPS)


def assert_close(numeric, analytic, scale=0.0):
    """Relative agreement to TOL; ``scale`` (|grad| |direction|) guards tiny projections,
    where the difference quotient's rounding error (~1e-16 / EPS) dominates."""
    assert abs(numeric - analytic) <= TOL * max(abs(numeric), abs(analytic), scale, 1e-8), (
        numeric,
        analytic,
    )


ACTIVATION_OPS = [
    ("relu", lambda w, rng: ReLU()),
    ("leaky_relu", lambda w, rng: LeakyReLU(0.01)),
    ("abs", lambda w, rng: LeakyReLU(-1.0)),
    ("leaky_relu_0.3", lambda w, rng: LeakyReLU(0.3)),
    ("prelu", lambda w, rng: PReLU(rng.uniform(-0.5, 0.5, w))),
    ("sigmoid", lambda w, rng: Sigmoid()),
    ("tanh", lambda w, rng: Tanh()),
    ("identity", lambda w, rng: Identity()),
]


@pytest.mark.parametrize("name,make", ACTIVATION_OPS, ids=[n for n, _ in ACTIVATION_OPS])
@pytest.mark.parametrize("seed", range(4))
def test_activation_input_gradient(name, make, seed):
    rng = np.random.default_rng(seed)
    rows, width = rng.integers(1, 9, size=2)
    op = make(width, rng)
    a = away_from_kinks(rng, (rows, width))
    R = rng.standard_normal((rows, width))
    V = rng.standard_normal((rows, width))
    if isinstance(op, PReLU):
        op.bind_grads(np.zeros(width))

    def f(a):
        y, _ = op.fprop(a.copy())
        return float((R * y).sum())

    _, tape = op.fprop(a.copy())
    da = op.bprop(tape, R.copy())
    assert_close(directional(f, a, V), float((da * V).sum()))


@pytest.mark.parametrize("seed", range(4))
def test_prelu_alpha_gradient(seed):
    rng = np.random.default_rng(seed)
    rows, width = rng.integers(1, 9, size=2)
    alpha = rng.uniform(-0.5, 0.5, width)
    a = away_from_kinks(rng, (rows, width))
    R = rng.standard_normal((rows, width))
    V = rng.standard_normal(width)

    def f(alpha):
        y, _ = PReLU(alpha).fprop(a.copy())
        return float((R * y).sum())

    op = PReLU(alpha.copy())
    op.bind_grads(np.zeros(width))
    _, tape = op.fprop(a.copy())
    op.bprop(tape, R.copy())
    assert_close(directional(f, alpha, V), float((op.dalpha * V).sum()))


@pytest.mark.parametrize("pieces", [2, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_maxout_gradient(pieces, seed):
    rng = np.random.default_rng(seed)
    rows, width = rng.integers(1, 7, size=2)
    # Pieces at distinct levels, so that the winner never changes under the perturbation.
    levels = rng.permutation(pieces)[None, None, :] * 0.5
    a = (rng.standard_normal((rows, width, pieces)) * 0.01 + levels).reshape(rows, -1)
    R = rng.standard_normal((rows, width))
    V = rng.standard_normal(a.shape)
    op = Maxout(pieces)

    def f(a):
        y, _ = op.fprop(a.copy())
        return float((R * y).sum())

    _, tape = op.fprop(a.copy())
    da = op.bprop(tape, R.copy())
    assert_close(directional(f, a, V), float((da * V).sum()))


@pytest.mark.parametrize("seed", range(4))
def test_linear_gradients(seed):
    rng = np.random.default_rng(seed)
    rows, fan_in, fan_out = rng.integers(1, 9, size=3)
    W, b = rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out)
    x = rng.standard_normal((rows, fan_in))
    R = rng.standard_normal((rows, fan_out))
    layer = Linear(W, b)
    layer.bind_grads(np.zeros_like(W), np.zeros_like(b))
    _, tape = layer.fprop(x)
    dx = layer.bprop(tape, R.copy())

    def f(x, W, b):
        return float((R * (x @ W + b)).sum())

    Vx, VW, Vb = (rng.standard_normal(s) for s in (x.shape, W.shape, b.shape))
    assert_close(directional(lambda v: f(v, W, b), x, Vx), float((dx * Vx).sum()))
    assert_close(directional(lambda v: f(x, v, b), W, VW), float((layer.dW * VW).sum()))
    assert_close(directional(lambda v: f(x, W, v), b, Vb), float((layer.db * Vb).sum()))
    assert layer.bprop(tape, R.copy(), need_dx=False) is None


def targets_for(loss, rng, rows, classes):
    if isinstance(loss, SoftmaxCrossEntropy):
        return rng.integers(0, classes, rows)
    if isinstance(loss, SigmoidBinaryCrossEntropy):
        return rng.integers(0, 2, (rows, classes)).astype(float)
    return rng.standard_normal((rows, classes))


@pytest.mark.parametrize("loss_cls", [SoftmaxCrossEntropy, SigmoidBinaryCrossEntropy, SquaredError])
@pytest.mark.parametrize("seed", range(4))
def test_loss_gradient(loss_cls, seed):
    rng = np.random.default_rng(seed)
    rows, classes = rng.integers(1, 9, size=2)
    loss = loss_cls()
    z = rng.standard_normal((rows, classes)) * 3
    y = targets_for(loss, rng, rows, classes)
    V = rng.standard_normal(z.shape)
    _, g = loss.value_and_grad(z.copy(), y)
    numeric = directional(lambda v: float(loss.value_and_grad(v.copy(), y)[0]), z, V)
    assert_close(numeric, float((g * V).sum()))


def test_loss_values_match_their_definitions():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    labels = np.array([1, 2])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ce = -np.log(p[[0, 1], labels]).mean()
    assert np.isclose(SoftmaxCrossEntropy().value_and_grad(z, labels)[0], ce, rtol=1e-14)
    t = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    s = 1 / (1 + np.exp(-z))
    bce = -(t * np.log(s) + (1 - t) * np.log(1 - s)).sum(axis=1).mean()
    assert np.isclose(SigmoidBinaryCrossEntropy().value_and_grad(z, t)[0], bce, rtol=1e-14)
    assert np.isclose(SquaredError().value_and_grad(z, t)[0], ((z - t) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("scale", [1e3, 1e6, 1e300])
def test_huge_logits_do_not_overflow(scale):
    z = np.array([[scale, -scale, 0.0], [-scale, scale, scale]])
    for loss, y in [
        (SoftmaxCrossEntropy(), np.array([0, 2])),
        (SigmoidBinaryCrossEntropy(), np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    ]:
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            value, g = loss.value_and_grad(z.copy(), y)
        assert np.isfinite(value) and np.isfinite(g).all()
    with np.errstate(all="ignore"):
        y, _ = Sigmoid().fprop(z.copy())
    assert np.isfinite(y).all() and ((0 <= y) & (y <= 1)).all()


@pytest.mark.parametrize("activation", tradeoff.ACTIVATIONS)
@pytest.mark.parametrize("loss", tradeoff.LOSSES)
def test_store_all_matches_central_differences(activation, loss):
    """The whole network: store-all's gradient along a random direction of every parameter."""
    rng = np.random.default_rng(7)
    model = tradeoff.MLP([4, 5, 6, 3], activation=activation, loss=loss, seed=3, pieces=3)
    for p in model.params:  # non-zero biases, so that they are tested too
        p += rng.standard_normal(p.shape) * 0.1
    x, y = tradeoff.make_batch(model, batch=5, seed=1)
    r = tradeoff.run(model, x, y, "store-all")
    for k, p in enumerate(model.params):
        V = rng.standard_normal(p.shape)
        original = p.copy()

        def f(v, p=p):
            p[...] = v
            return float(tradeoff.run(model, x, y, "store-all").loss)

        numeric = directional(f, original, V)
        p[...] = original
        scale = float(np.linalg.norm(r.grads[k]) * np.linalg.norm(V))
        assert_close(numeric, float((r.grads[k] * V).sum()), scale)
