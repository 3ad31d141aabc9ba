"""The explorer's synced state, without a browser."""

import numpy as np
import pytest

import autodiff
from autodiff import Tensor, Value
from autodiff.viz.steps import backward_steps


def _graph():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    d = (a * b + a).tanh(); d.label = "d"
    return a, b, d


def test_values_and_gradients_match_backward_without_touching_grad():
    a, b, d = _graph()
    data = autodiff.explore(d).data
    assert a.grad == 0 and b.grad == 0
    d.backward()
    byname = {n["label"]: n for n in data["nodes"]}
    assert float(byname["a"]["grad"]) == pytest.approx(a.grad, rel=1e-3)
    assert float(byname["b"]["grad"]) == pytest.approx(b.grad, rel=1e-3)
    assert float(byname["a"]["chain"]["total"]) == pytest.approx(a.grad, rel=1e-3)
    assert float(byname["b"]["value"]) == -3.0


def test_steps_follow_the_engine_order():
    _, _, d = _graph()
    data = autodiff.explore(d).data
    assert [s["label"] for s in data["steps"]] == [s.name for s in backward_steps(d)]


def test_tensor_graph_and_page(tmp_path):
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    loss = (x * x).sum()
    view = autodiff.explore(loss)
    page = view.save(tmp_path / "p.html").read_text()
    assert "<svg" in page and "data-action" in page
    assert "src=\"http" not in page and "import(\"http" not in page  # offline: no CDN


def test_widget_state():
    pytest.importorskip("anywidget")
    _, _, d = _graph()
    view = autodiff.explore(d)
    assert view.widget.data == view.data
