"""Scopes: named groups of graph nodes, by the engine's creation clock."""

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor, Value, no_grad, scope
from autodiff.scope import scopes_of
from autodiff.viz._common import _topo


def test_members_are_the_nodes_made_inside():
    x = Value(1.5)
    y = x * 2
    with scope("h") as s:
        h = y.tanh()
        k = h + 1
    z = k * 3
    assert [s.contains(n) for n in (x, y, h, k, z)] == [False, False, True, True, False]
    found = scopes_of([x, y, h, k, z])
    assert [None if found[id(n)] is None else found[id(n)].name for n in (x, y, h, k, z)] \
        == [None, None, "h", "h", None]


def test_siblings_and_nesting():
    a = Tensor(np.ones(3), requires_grad=True)
    with scope("outer") as outer:
        with scope("first"):
            b = a * 2
        mid = b + 1
        with scope("second") as second:
            c = mid.exp()
        d = c.sum()
    found = scopes_of([a, b, mid, c, d])
    assert found[id(a)] is None
    assert found[id(b)].name == "first" and found[id(b)].parent is outer
    assert found[id(mid)] is outer and found[id(d)] is outer
    assert found[id(c)] is second and second.path() == (outer, second)
    assert second.depth == 1 and outer.depth == 0


def test_module_calls_open_module_scopes_in_order():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    x = Tensor(np.ones((4, 2)))
    out = net(x)
    nodes = _topo([out])
    found = scopes_of(nodes)
    inner = {found[id(n)] for n in nodes if found[id(n)] is not None}
    by_module = {}
    for s in inner:
        by_module.setdefault(s.module, []).append(s)
    # every layer's own nodes sit in that layer's scope, nested in the Sequential's
    assert set(by_module) == {net[0], net[1], net[2]}
    for s in inner:
        assert s.kind == "module" and s.parent.module is net
    assert found[id(out)].module is net[2]


def test_no_scope_without_recording():
    net = nn.Linear(2, 2)
    with no_grad():
        out = net(Tensor(np.ones((1, 2))))
    assert scopes_of([out])[id(out)] is None


def test_scope_closes_on_error():
    with pytest.raises(ZeroDivisionError):
        with scope("bad"):
            1 / 0
    x = Value(2.0)
    y = x * x
    assert scopes_of([y])[id(y)] is None


@pytest.mark.parametrize("name", ["", 3, None])
def test_scope_name_must_be_text(name):
    with pytest.raises(TypeError, match="scope"):
        with scope(name):
            pass


def test_exported_from_the_package():
    assert autodiff.scope is scope

