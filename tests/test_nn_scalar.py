"""The scalar, micrograd-compatible path: Neuron, Layer, MLP on Values."""

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Value, gc_paused


def test_neuron_init_and_forward():
    n = nn.Neuron(3)
    assert len(n.parameters()) == 4 and n.b.data == 0.0
    assert all(-1 <= w.data <= 1 for w in n.w)
    x = [1.0, -2.0, 0.5]
    act = sum(w.data * xi for w, xi in zip(n.w, x))
    assert n(x).data == pytest.approx(max(act, 0.0), rel=1e-14)
    assert repr(n) == "ReLUNeuron(3)" and repr(nn.Neuron(3, nonlin=False)) == "LinearNeuron(3)"


def test_neuron_linear_is_exact():
    n = nn.Neuron(2, nonlin=False)
    n.b.data = 0.25
    out = n([Value(2.0), 3.0])
    assert out.data == n.w[0].data * 2 + n.w[1].data * 3 + 0.25
    out.backward()
    assert [w.grad for w in n.w] == [2.0, 3.0] and n.b.grad == 1.0


@pytest.mark.parametrize("activation, f, name", [
    ("relu", lambda a: max(a, 0.0), "ReLU"), ("tanh", np.tanh, "Tanh"),
    ("sigmoid", lambda a: 1 / (1 + np.exp(-a)), "Sigmoid"), ("linear", lambda a: a, "Linear")])
def test_neuron_activations(activation, f, name):
    n = nn.Neuron(2, activation=activation)
    a = n.w[0].data * 0.3 + n.w[1].data * -1.2
    assert n([0.3, -1.2]).data == pytest.approx(f(a), rel=1e-14, abs=1e-15)
    assert repr(n) == f"{name}Neuron(2)"


def test_neuron_wrong_input_length_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 3 inputs, got 2"):
        nn.Neuron(3)([1.0, 2.0])
    with pytest.raises(ValueError, match="activation"):
        nn.Neuron(3, activation="gelu")


def test_layer_returns_a_value_for_one_output():
    assert isinstance(nn.Layer(3, 1)([1, 2, 3]), Value)
    out = nn.Layer(3, 4)([1, 2, 3])
    assert isinstance(out, list) and len(out) == 4
    assert len(nn.Layer(3, 4).parameters()) == 16


def test_mlp_structure_and_repr():
    model = nn.MLP(3, [4, 4, 1])
    assert len(model.parameters()) == 4 * 4 + 4 * 5 + 5
    assert repr(model).startswith("MLP of [Layer of [ReLUNeuron(3)")
    assert repr(model).endswith("Layer of [LinearNeuron(4)]]")
    tanh = nn.MLP(2, [3, 2], activation="tanh")
    assert [n.activation for n in tanh.layers[0].neurons] == ["tanh"] * 3
    assert [n.activation for n in tanh.layers[1].neurons] == ["linear"] * 2
    assert isinstance(nn.MLP(3, [4, 4, 1])([2.0, 3.0, -1.0]), Value)
    assert len(nn.MLP(3, [4, 2])([2.0, 3.0, -1.0])) == 2
    assert isinstance(nn.MLP(2, [1, 3, 1])([1.0, 2.0]), Value)  # a 1-wide hidden layer


def test_zero_grad_and_seeded_init():
    autodiff.manual_seed(1)
    model = nn.MLP(2, [3, 1])
    first = [p.data for p in model.parameters()]
    model([1.0, 2.0]).backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
    autodiff.manual_seed(1)
    assert [p.data for p in nn.MLP(2, [3, 1]).parameters()] == first


def test_matches_micrograd():
    mg = pytest.importorskip("micrograd.nn")
    ours = nn.MLP(3, [4, 4, 1])
    theirs = mg.MLP(3, [4, 4, 1])
    for p, q in zip(ours.parameters(), theirs.parameters()):
        q.data = p.data
    x = [2.0, 3.0, -1.0]
    a, b = ours(x), theirs(x)
    assert a.data == pytest.approx(b.data, rel=1e-14)
    a.backward()
    b.backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert p.grad == pytest.approx(q.grad, rel=1e-13, abs=1e-15)


def test_scalar_mlp_learns_two_moons():
    autodiff.manual_seed(0)
    X, y = nn.data.make_moons(100, noise=0.1, seed=0)
    signs = (2 * y - 1).tolist()
    model = nn.MLP(2, [8, 8, 1])
    opt = nn.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(50):
        with gc_paused():
            scores = [model(x) for x in X.tolist()]
            # micrograd's demo loss: mean hinge loss
            loss = sum((1 - s * yi).relu() for s, yi in zip(scores, signs)) * (1 / len(signs))
            opt.zero_grad()
            loss.backward()
            opt.step()
    accuracy = np.mean([(model(x).data > 0) == (yi > 0) for x, yi in zip(X.tolist(), signs)])
    assert accuracy >= 0.95, accuracy
