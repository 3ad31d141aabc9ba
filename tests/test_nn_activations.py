"""Activations with a gain h, f(h a): closed forms, stability, learnable h (gradcheck)."""

import numpy as np
import pytest

import nn
from autodiff import Tensor, gradcheck

CLOSED = {
    "Sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    "Tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "ReLU": (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
@pytest.mark.parametrize("h", [1.0, 2.5, -0.5])
def test_gain_closed_form(rng, name, h):
    f, df = CLOSED[name]
    a = rng.normal(size=(4, 3))
    x = Tensor(a, requires_grad=True)
    out = getattr(nn, name)(h=h)(x)
    np.testing.assert_allclose(out.data, f(h * a), rtol=1e-13, atol=1e-15)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, h * df(h * a), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_learnable_gain_gradient(rng, name):
    f, df = CLOSED[name]
    act = getattr(nn, name)(h=1.3, learnable=True)
    assert [n for n, _ in act.named_parameters()] == ["h"]
    a = rng.normal(size=(5, 2))
    x = Tensor(a, requires_grad=True)
    act(x).sum().backward()
    # d/dh sum f(h a) = sum a f'(h a)
    np.testing.assert_allclose(act.h.grad, np.sum(a * df(1.3 * a)), rtol=1e-12)
    assert gradcheck(lambda x, h: getattr(nn, name)(h=1.0)(x * h), [x, act.h])
    assert gradcheck(lambda h: _with_gain(name, h)(Tensor(a)), [act.h])


def _with_gain(name, h):
    act = getattr(nn, name)(learnable=True)
    act.h = h
    return act


def test_learnable_gain_is_trained(rng):
    act = nn.Sigmoid(h=0.1, learnable=True)
    opt = nn.optim.SGD(act.parameters(), lr=5.0)
    x = Tensor(rng.normal(size=200))
    target = 1 / (1 + np.exp(-3.0 * x.data))
    for _ in range(300):
        opt.zero_grad()
        loss = nn.MSELoss()(act(x), target)
        loss.backward()
        opt.step()
    assert abs(float(act.h.data) - 3.0) < 0.05


def test_sigmoid_and_tanh_are_stable():
    x = Tensor([-1000.0, 1000.0], requires_grad=True)
    s = nn.Sigmoid(h=2.0)(x)
    np.testing.assert_allclose(s.data, [0.0, 1.0])
    s.sum().backward()
    assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(nn.Tanh(h=3.0)(x).data, [-1.0, 1.0])


def test_relu_gain_is_inside_the_max():
    # max(0, h a): a negative gain lets negative inputs through (the lecture's form).
    np.testing.assert_allclose(nn.ReLU(h=-2.0)(Tensor([-1.0, 1.0])).data, [2.0, 0.0])


def test_softmax(rng):
    a = rng.normal(size=(3, 4))
    out = nn.Softmax()(Tensor(a)).data
    e = np.exp(a)
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(nn.Softmax(axis=0)(Tensor(a)).data.sum(axis=0), 1.0)
    np.testing.assert_allclose(nn.Softmax(dim=0)(Tensor(a)).data.sum(axis=0), 1.0)
    assert np.all(np.isfinite(nn.Softmax()(Tensor([[1000.0, -1000.0]])).data))


def test_float32_and_learnable_dtype():
    act = nn.Tanh(h=2.0, learnable=True, dtype=np.float32)
    out = act(Tensor(np.ones(3, dtype=np.float32)))
    assert out.dtype == np.float32 and act.h.dtype == np.float32


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_activations_match_torch(rng, name):
    torch = pytest.importorskip("torch")
    a = rng.normal(size=(4, 3))
    x, xt = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    out, ref = getattr(nn, name)()(x), getattr(torch.nn, name)()(xt)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-14)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-14)
