"""Hooks on the engine's one backward loop, and the pictures following its order."""

import numpy as np
import pytest

import autodiff
from autodiff import Tensor, Value, grad
from autodiff.viz import backward_steps
from autodiff.viz._common import _topo


def _record_order(root):
    order = []
    for node in _topo([root]):
        node.register_hook(lambda g, node=node: order.append(node))
    return order


def test_the_issue_example_runs_in_the_engine_order():
    # q = a + b; p = a * b; r = q * 2; s = p + r: the engine goes s, r, p, q, then the leaves
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    q = a + b; q.label = "q"
    p = a * b; p.label = "p"
    r = q * 2; r.label = "r"
    s = p + r; s.label = "s"
    steps = backward_steps(s)
    assert [st.name for st in steps] == ["s", "r", "p", "q", "a", "b"]
    order = _record_order(s)
    s.backward()
    assert order == [st.node for st in steps]


@pytest.mark.parametrize("build", [
    lambda x, w: ((x @ w).tanh() * x.sum(axis=1, keepdims=True)).sum(),
    lambda x, w: ((x @ w).relu().sum(axis=0) + (x @ w).exp().mean(axis=0)).sum(),
    lambda x, w: ((x[1:] @ w).sigmoid() ** 2).sum() + (w * w).sum(),
])
def test_backward_steps_follow_the_engine_order_on_tensor_graphs(build):
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(3, 4)), requires_grad=True)
    w = Tensor(rng.normal(size=(4, 2)), requires_grad=True)
    loss = build(x, w)
    steps = backward_steps(loss)
    order = _record_order(loss)
    loss.backward()
    assert order == [st.node for st in steps]
    assert steps[-1].node._prim is None  # leaves come last


def test_a_hook_sees_the_total_gradient_once_and_may_replace_it():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    y = (h * h).sum() + h.sum()        # h has two consumers: one total, one call
    seen = []

    def double(g):
        seen.append(np.array(g.data))
        return g * 2

    h.register_hook(double)
    y.backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], 2 * 3.0 * np.array([1.0, 2.0]) + 1)
    np.testing.assert_array_equal(x.grad, 3.0 * 2 * seen[0])


def test_hooks_on_leaves_and_removal():
    x = Tensor([1.0, 2.0], requires_grad=True)
    calls = []
    handle = x.register_hook(lambda g: calls.append(g.data.copy()))
    (x * x).sum().backward()
    handle.remove()
    (x * x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])   # two backwards accumulated


def test_hooks_fire_in_grad_and_with_create_graph():
    x = Tensor(3.0, requires_grad=True)
    y = x ** 3
    seen = []
    y.register_hook(lambda g: seen.append(g))
    (d1,) = grad(y, x, create_graph=True)
    assert float(d1) == 27.0 and len(seen) == 1 and isinstance(seen[0], Tensor)
    v = Value(2.0)
    v.register_hook(lambda g: g * 10)
    (v * v).backward()
    assert v.grad == 40.0


def test_hook_errors_are_clear():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="register_hook: expected a callable"):
        x.register_hook(3)
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).register_hook(print)
    x.register_hook(lambda g: np.ones(3))
    with pytest.raises(autodiff.ShapeError, match=r"hook: the gradient returned by a hook has shape \(3,\)"):
        (x * 2.0).sum().backward()
    assert x._g is None  # the failed backward left no pending gradient behind


def test_hooks_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))

    def run(lib_tensor, matmul):
        x = lib_tensor(a)
        W = lib_tensor(w)
        h = matmul(x, W)
        seen = []
        h.register_hook(lambda g: seen.append(np.array(g.detach().numpy() if hasattr(g, "detach")
                                                       and not isinstance(g, Tensor) else g.data)))
        h.register_hook(lambda g: g * 0.5)
        loss = (h.tanh() ** 2).sum()
        loss.backward()
        grad_w = W.grad.numpy() if hasattr(W.grad, "numpy") else W.grad
        return seen[0], np.asarray(grad_w)

    ours = run(lambda v: Tensor(v.copy(), requires_grad=True), lambda x, W: x @ W)
    theirs = run(lambda v: torch.tensor(v.copy(), requires_grad=True), torch.matmul)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=1e-12)


def test_what_a_hook_keeps_or_returns_is_not_changed_by_later_backwards():
    x = Tensor([1.0, 1.0, 1.0], requires_grad=True)
    c = np.ones(3)
    handle = x.register_hook(lambda g: c)
    for _ in range(2):
        (x * 2.0).sum().backward()
    np.testing.assert_array_equal(c, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    handle.remove()
    seen = []
    y = Tensor([1.0, 1.0, 1.0], requires_grad=True)
    y.register_hook(lambda g: seen.append(g.data))
    (y * 2.0).sum().backward()
    (y * 3.0).sum().backward()
    np.testing.assert_array_equal(np.array(seen), [[2.0] * 3, [3.0] * 3])


def test_pictures_never_call_hooks():
    from autodiff.viz import chain_rule, draw_graph
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    calls = []
    h.register_hook(lambda g: calls.append(1))
    loss = (h * h).sum()
    draw_graph(loss).source
    backward_steps(loss)
    chain_rule(loss, x)
    assert calls == []
    loss.backward()
    assert calls == [1]
