"""gradient_flow: per-layer gradient norms over training, and their pictures."""

import random

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor
from autodiff.viz import gradient_flow


def deep_sigmoid(depth=6, width=8):
    autodiff.manual_seed(0)
    layers = []
    for i in range(depth):
        layers += [nn.Linear(2 if i == 0 else width, width), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def test_norms_are_the_layers_gradient_norms_and_vanish_towards_the_input():
    model = deep_sigmoid()
    flow = gradient_flow(model)
    x = Tensor(np.random.default_rng(0).standard_normal((16, 2)))
    for step in range(3):
        for p in model.parameters():
            p.grad = None
        (model(x) ** 2).mean().backward()
        now = flow.record(step * 10)
    assert flow.steps == [0, 10, 20]
    names = list(flow.norms)
    assert names[0] == "0: Linear" and names[-1] == "12: Linear" and len(names) == 7
    first = model[0]
    expected = np.sqrt(np.sum(first.weight.grad.data ** 2) + np.sum(first.bias.grad.data ** 2))
    assert now["0: Linear"] == pytest.approx(expected, rel=1e-12)
    assert all(len(v) == 3 for v in flow.norms.values())
    # each sigmoid layer multiplies the gradient by at most 1/4 times a weight
    assert flow.norms["0: Linear"][0] < 0.1 * flow.norms["12: Linear"][0]


def test_scalar_mlp_and_mapping():
    random.seed(0)
    m = nn.MLP(2, [3, 1])
    (m([1.0, -1.0]) ** 2).backward()
    flow = gradient_flow(m)
    assert list(flow.record()) == ["layer 0", "layer 1"]
    w = autodiff.Tensor(np.ones(3), requires_grad=True)
    assert gradient_flow({"w": w}).record() == {"w": 0.0}   # no gradient yet counts as 0
    with pytest.raises(TypeError, match="gradient_flow: expected"):
        gradient_flow(42)


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    model = deep_sigmoid(depth=3)
    flow = gradient_flow(model)
    with pytest.raises(ValueError, match="nothing recorded"):
        flow.plot(tmp_path / "none.png")
    x = Tensor(np.ones((4, 2)))
    for _ in range(4):
        (model(x) ** 2).mean().backward()
        flow.record()
    fig = flow.plot(tmp_path / "flow.png")
    assert len(fig.axes) == 2 and (tmp_path / "flow.png").stat().st_size > 1000
    left, right = fig.axes
    assert len(left.get_lines()) == 4 and left.get_yscale() == "log"
    fig = flow.histograms(tmp_path / "hist.png")
    assert len(fig.axes) == 4
