"""The graph engine: accumulation, release of saved buffers, retain_grad, no_grad and its
thread-locality, deep graphs, freeing memory, edges, and autodiff.grad."""

import gc
import threading
import time
import weakref

import numpy as np
import pytest

from autodiff import Tensor, Value, enable_grad, gc_paused, grad, is_grad_enabled, no_grad


def leaf(data):
    return Tensor(np.asarray(data, dtype=np.float64), requires_grad=True)


# ---------------------------------------------------------------------------
# accumulation and retain_graph

def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [2 * 1 + 3, 2 * 2 + 3])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_retain_graph_allows_second_backward():
    x = leaf([1.0, -2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = np.array(x.grad)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    np.testing.assert_allclose(first, np.exp([1.0, -2.0]) * (1 + np.array([1.0, -2.0])))


def test_second_backward_without_retain_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.tanh() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_second_backward_value_graph_raises():
    a = Value(0.5)
    c = (a * a).tanh()
    c.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        c.backward()
    a.grad = 0.0
    d = (a * a).tanh()
    d.backward(retain_graph=True)
    d.backward()
    assert a.grad == pytest.approx(2 * 2 * 0.5 * (1 - np.tanh(0.25) ** 2))


def test_release_keeps_structure_and_forward_values():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    y = h.exp().sum()
    before = (y.data.copy(), h.data.copy())
    y.backward()
    assert y._parents and y._parents[0]._parents[0] is h
    assert h._parents[0] is x
    np.testing.assert_array_equal(y.data, before[0])
    np.testing.assert_array_equal(h.data, before[1])
    assert y._prim.name == "sum" and h._prim.name == "mul_const" and h._kw == {"c": 3.0}


def test_released_buffers_are_dropped():
    # The saved operands are what backward frees (the structure stays).
    x = leaf([1.0, 2.0])
    nodes = [x * 2.0]
    nodes.append(nodes[-1].exp())
    nodes.append(nodes[-1].sum())
    nodes[-1].backward(retain_graph=True)
    assert all(n._saved is not None for n in nodes)
    nodes[-1].backward()
    assert all(n._saved is None for n in nodes)


def test_failed_backward_leaves_engine_clean():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    y.sum().backward()               # releases y's buffers
    z = (y * x).sum()                # reuses the released y
    with pytest.raises(RuntimeError, match="retain_graph"):
        z.backward()
    x.grad = None
    (x * x).sum().backward()         # a fresh graph through the same leaf still works
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_retain_grad_on_intermediate_and_non_leaf_grad_is_none():
    x = leaf([1.0, 2.0, 3.0])
    h = x * 2.0
    h.retain_grad()
    u = h * h                        # not retained
    loss = u.sum()
    loss.backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    np.testing.assert_array_equal(x.grad, 2 * 2 * h.data)
    assert u.grad is None and loss.grad is None
    assert x.is_leaf and not h.is_leaf


def test_retain_grad_accumulates_like_a_leaf():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    s = h.sum()
    s.backward(retain_graph=True)
    s.backward()
    np.testing.assert_array_equal(h.grad, [2.0, 2.0])


def test_leaf_that_does_not_require_grad_gets_no_grad():
    x = leaf([1.0, 2.0])
    c = Tensor([5.0, 6.0])
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])


# ---------------------------------------------------------------------------
# no_grad / enable_grad

def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad
    assert y._parents == () and y.is_leaf
    with pytest.raises(RuntimeError):
        y.backward()
    a = Value(2.0)
    with no_grad():
        b = a * a + 1.0
    assert b._parents == ()
    b.backward()
    assert a.grad == 0.0


def test_enable_grad_inside_no_grad():
    x = leaf([1.0, 2.0])
    with no_grad():
        with enable_grad():
            y = (x * x).sum()
        z = x * 2.0
        assert not is_grad_enabled()
    assert y.requires_grad and not z.requires_grad
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_no_grad_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()


def test_no_grad_is_thread_local():
    inside = threading.Barrier(2)
    computed = threading.Barrier(2)
    results = {}
    errors = []

    def silent():
        try:
            with no_grad():
                inside.wait(timeout=10)           # now the other thread computes
                computed.wait(timeout=10)
                results["silent"] = (leaf([1.0]) * 2.0).requires_grad
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    def recording():
        try:
            inside.wait(timeout=10)               # the other thread is inside no_grad
            results["recording"] = (leaf([1.0]) * 2.0).requires_grad
            results["enabled"] = is_grad_enabled()
            computed.wait(timeout=10)
        except Exception as err:  # pragma: no cover
            errors.append(err)

    threads = [threading.Thread(target=silent), threading.Thread(target=recording)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors
    assert results == {"silent": False, "recording": True, "enabled": True}


def test_concurrent_backwards_in_threads_are_correct():
    # Independent graphs in two threads (sharing one leaf) backpropagate correctly.
    shared = leaf(np.ones(3))
    out = {}
    start = threading.Barrier(2)

    def work(k):
        own = leaf(np.full(3, float(k)))
        start.wait(timeout=10)
        for _ in range(200):
            own.grad = None
            ((own * shared) * float(k)).sum().backward()
        out[k] = np.array(own.grad)

    threads = [threading.Thread(target=work, args=(k,)) for k in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    np.testing.assert_array_equal(out[2], [2.0] * 3)
    np.testing.assert_array_equal(out[3], [3.0] * 3)
    # every backward added (k * own) to shared.grad: 200 * (2*2 + 3*3) per element
    np.testing.assert_allclose(shared.grad, [200 * (4 + 9)] * 3)


# ---------------------------------------------------------------------------
# deep graphs (no recursion) and memory

def test_deep_value_chain_of_a_million_ops():
    x = Value(0.5)
    y = x
    t0 = time.perf_counter()
    with gc_paused():             # building a million objects: skip the cyclic collector
        for _ in range(500_000):
            y = -y
            y = y * 1.0
    y.backward()                  # no RecursionError
    assert x.grad == 1.0          # an even number of negations
    del y                         # freeing a million-deep chain must not recurse either
    assert time.perf_counter() - t0 < 30


def test_deep_tensor_chain_of_100k_ops():
    x = leaf([1.0, 2.0])
    y = x
    with gc_paused():
        for _ in range(100_000):
            y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    del y


def test_deep_chain_create_graph():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0 + 0.0
    (g,) = grad(y * y, x, create_graph=True)
    (h,) = grad(g, x)
    assert float(g) == pytest.approx(1.0) and float(h) == pytest.approx(2.0)


def _build(x):
    h1 = x * 2.0
    h2 = h1.exp()
    h3 = h2 * h1            # diamond: h1 used twice
    return h1, h2, h3, h3.sum()


@pytest.mark.parametrize("retain", [False, True])
def test_graph_freed_by_refcount_alone(retain):
    gc.disable()
    try:
        x = leaf([0.1, 0.2, 0.3])
        h1, h2, h3, loss = _build(x)
        refs = [weakref.ref(n) for n in (h1, h2, h3, loss)]
        loss.backward(retain_graph=retain)
        del h1, h2, h3
        assert all(r() is not None for r in refs)   # the root keeps its graph alive
        del loss
        assert [r() for r in refs] == [None] * 4     # no cycle holds any of them
        assert x.grad is not None
    finally:
        gc.enable()


def test_value_graph_freed_by_refcount_alone():
    gc.disable()
    try:
        a = Value(0.3)
        b = a * a
        c = b.tanh() + b
        refs = [weakref.ref(b), weakref.ref(c)]
        c.backward()
        del b, c
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


def test_create_graph_gradients_freed_by_refcount_alone():
    gc.disable()
    try:
        x = leaf([0.1, 0.2, 0.3])
        h = (x * x).tanh()
        loss = h.sum()
        (g,) = grad(loss, x, create_graph=True)
        refs = [weakref.ref(h), weakref.ref(loss), weakref.ref(g)]
        (hv,) = grad(g.sum(), x)
        del h, loss, g
        assert [r() for r in refs] == [None, None, None]
        assert hv.shape == (3,)
    finally:
        gc.enable()


def test_intermediates_not_kept_alive_by_backward_state():
    # After backward nothing in the engine (pending gradients, counters) still points
    # at the nodes: dropping the root frees everything, gc or not.
    gc.disable()
    try:
        x = leaf(np.ones(4))
        y = (x * 3.0).relu()
        r = weakref.ref(y)
        z = y.sum()
        z.backward()
        del y, z
        assert r() is None
    finally:
        gc.enable()


# ---------------------------------------------------------------------------
# edges: x*x, a+a, diamonds

def test_self_multiplication_keeps_both_edges():
    x = leaf([3.0, -1.0])
    y = x * x
    assert y._parents == (x, x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, -2.0])
    a = Value(3.0)
    b = a + a
    assert b._parents == (a, a) and len(b._prev) == 1
    b.backward()
    assert a.grad == 2.0


def test_diamond_sums_both_paths():
    x = leaf([0.5])
    a = x * 2.0
    b = a.exp()
    c = a * 3.0
    d = b * c                       # d = 3 * 2x * exp(2x)
    d.sum().backward()
    expected = 6 * np.exp(1.0) + 12 * 0.5 * np.exp(1.0)
    np.testing.assert_allclose(x.grad, [expected])


def test_wide_shared_subexpression():
    x = leaf([2.0])
    s = x * x
    total = s
    for _ in range(10):
        total = total + s
    total.sum().backward()
    np.testing.assert_allclose(x.grad, [11 * 4.0])


# ---------------------------------------------------------------------------
# autodiff.grad

def test_grad_multiple_outputs_and_inputs():
    x = leaf([1.0, 2.0])
    y = leaf([3.0])
    o1 = (x * y).sum()
    o2 = (x * x).sum() + y.sum()
    gx, gy = grad([o1, o2], [x, y])
    np.testing.assert_allclose(gx.data, [3.0 + 2.0, 3.0 + 4.0])
    np.testing.assert_allclose(gy.data, [1.0 + 2.0 + 1.0])
    assert x.grad is None and y.grad is None


def test_grad_outputs_weighting():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    (g,) = grad(y, x, grad_outputs=np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(g.data, [2.0, 0.0, -6.0])
    z = (x * 2.0)
    (g2,) = grad([z, x.exp().sum()], [x], grad_outputs=[Tensor([1.0, 1.0, 1.0]), 2.0])
    np.testing.assert_allclose(g2.data, 2.0 + 2.0 * np.exp([1.0, 2.0, 3.0]))


def test_grad_output_that_is_ancestor_of_another():
    x = leaf([1.0])
    y = x * 2.0
    z = y * 3.0
    (g,) = grad([z.sum(), y.sum()], x, retain_graph=True)
    np.testing.assert_allclose(g.data, [8.0])
    (g,) = grad([y.sum(), z.sum()], x)
    np.testing.assert_allclose(g.data, [8.0])


def test_grad_same_output_twice_counts_twice():
    x = leaf([1.0])
    y = (x * 5.0).sum()
    (g,) = grad([y, y], [x])
    np.testing.assert_allclose(g.data, [10.0])


def test_grad_wrt_intermediate():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    y = (h * h).sum()
    gh, gx = grad(y, [h, x])
    np.testing.assert_allclose(gh.data, 2 * h.data)
    np.testing.assert_allclose(gx.data, 4 * h.data)
    assert h.grad is None and x.grad is None


def test_grad_allow_unused():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match="allow_unused"):
        grad((x * 2.0).sum(), [x, unused])
    gx, gu = grad((x * 2.0).sum(), [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.data, [2.0])
    a, b = Value(1.0), Value(2.0)
    ga, gb = grad(a * 3.0, [a, b], allow_unused=True)
    assert gb is None and ga.data == 3.0


def test_grad_does_not_touch_grad_attributes():
    x = leaf([1.0, 2.0])
    x.grad = np.array([10.0, 20.0])
    h = x * 2.0
    h.retain_grad()
    grad((h * h).sum(), x)
    np.testing.assert_array_equal(x.grad, [10.0, 20.0])
    assert h.grad is None
    a = Value(2.0)
    b = a * a
    grad(b, a)
    assert a.grad == 0.0 and b.grad == 0.0


def test_grad_retain_graph_defaults():
    x = leaf([1.0])
    y = (x * x).sum()
    grad(y, x)                       # retain_graph defaults to create_graph = False
    with pytest.raises(RuntimeError, match="retain_graph"):
        grad(y, x)
    y = (x * x).sum()
    grad(y, x, create_graph=True)    # ... and to True with create_graph
    (g,) = grad(y, x)
    np.testing.assert_allclose(g.data, [2.0])


def test_grad_returns_tensors_of_input_dtype():
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    (g,) = grad((x * x).sum(), x)
    assert isinstance(g, Tensor) and g.dtype == np.float32 and not g.requires_grad


def test_grad_non_differentiable_output_raises():
    x = leaf([1.0])
    with pytest.raises(RuntimeError, match="require"):
        grad(Tensor([1.0]).sum(), x)


# ---------------------------------------------------------------------------
# higher order

def test_third_derivative_of_cube():
    x = Tensor(2.0, requires_grad=True)
    (d1,) = grad(x ** 3, x, create_graph=True)
    (d2,) = grad(d1, x, create_graph=True)
    (d3,) = grad(d2, x)
    assert (float(d1), float(d2), float(d3)) == pytest.approx((12.0, 12.0, 6.0))
    v = Value(2.0)
    (e1,) = grad(v ** 3, v, create_graph=True)
    (e2,) = grad(e1, v, create_graph=True)
    (e3,) = grad(e2, v)
    assert (e1.data, e2.data, e3.data) == pytest.approx((12.0, 12.0, 6.0))


def _tanh_derivatives(x):
    t = np.tanh(x)
    return 1 - t ** 2, -2 * t * (1 - t ** 2), (1 - t ** 2) * (6 * t ** 2 - 2)


@pytest.mark.parametrize("kind", ["tensor", "value"])
def test_tanh_up_to_third_derivative(kind):
    xs = np.array([-1.3, 0.2, 0.9])
    x = Tensor(xs, requires_grad=True) if kind == "tensor" else Value(0.2)
    y = x.tanh().sum() if kind == "tensor" else x.tanh()
    (d1,) = grad(y, x, create_graph=True)
    (d2,) = grad(d1.sum() if kind == "tensor" else d1, x, create_graph=True)
    (d3,) = grad(d2.sum() if kind == "tensor" else d2, x)
    expect = _tanh_derivatives(xs if kind == "tensor" else 0.2)
    for got, want in zip((d1, d2, d3), expect):
        np.testing.assert_allclose(np.asarray(got.data), want, rtol=1e-12, atol=1e-14)


def test_higher_order_mixed_partials():
    # f = x^2 y^3: d2f/dxdy = 6 x y^2
    x, y = Tensor(1.5, requires_grad=True), Tensor(-2.0, requires_grad=True)
    f = x * x * y ** 3
    gx, gy = grad(f, [x, y], create_graph=True)
    (gxy,) = grad(gx, y)
    assert float(gxy) == pytest.approx(6 * 1.5 * 4.0)
    assert float(gy) == pytest.approx(1.5 ** 2 * 3 * 4.0)


def test_backward_through_create_graph_gradient():
    # The gradient returned with create_graph can seed an ordinary backward (a gradient
    # penalty): d/dx of |df/dx|^2 for f = sum(x^3) is 2 * 3x^2 * 6x = 36 x^3.
    x = leaf([1.0, -2.0])
    (g,) = grad((x ** 3).sum(), x, create_graph=True)
    (g * g).sum().backward()
    np.testing.assert_allclose(x.grad, 36 * np.array([1.0, -2.0]) ** 3)


def test_grad_same_input_twice():
    x = leaf([1.0, 2.0])
    g1, g2 = grad((x * x).sum(), [x, x])
    np.testing.assert_array_equal(g1.data, [2.0, 4.0])
    np.testing.assert_array_equal(g2.data, [2.0, 4.0])


def test_no_grad_as_decorator():
    @no_grad()
    def double(t):
        assert not is_grad_enabled()
        return t * 2.0

    x = leaf([1.0])
    assert not double(x).requires_grad
    assert is_grad_enabled() and (x * 2.0).requires_grad


def test_grad_wrt_intermediate_leaves_the_graph_below_it_intact():
    # As in PyTorch, grad(y, h) runs (and releases) only the part of the graph between
    # y and h: the exp node below h keeps its buffers, so a later backward through it works.
    x = leaf([1.0, 2.0])
    h = x.exp()
    (gh,) = grad((h * 2.0).sum(), h)
    np.testing.assert_array_equal(gh.data, [2.0, 2.0])
    (h * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 * np.exp([1.0, 2.0]))


def test_grad_leaves_unrelated_branches_intact():
    # grad(s, a) needs nothing from b's branch: it must neither run nor release it.
    a, b = leaf([1.0]), leaf([2.0])
    ea, eb = a.exp(), b.exp()
    (ga,) = grad((ea + eb).sum(), a)
    np.testing.assert_allclose(ga.data, np.exp([1.0]))
    eb.sum().backward()
    np.testing.assert_allclose(b.grad, np.exp([2.0]))
    assert a.grad is None


def test_stored_grads_never_alias_each_other_or_the_seed():
    # add passes its gradient through unchanged: the same array reaches both leaves and
    # the retained intermediate. Each .grad must still be its own array, because the
    # next backward accumulates into it in place (and users may edit it).
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = a + b
    y.retain_grad()
    z = y + 0.0
    seed = np.ones(2)
    z.backward(seed)
    arrays = [a.grad, b.grad, y.grad, seed]
    for i, first in enumerate(arrays):
        for second in arrays[i + 1:]:
            assert not np.shares_memory(first, second)
    a.grad *= 10.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad, [11.0, 11.0])
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_a_leaf_root_does_not_keep_the_callers_seed():
    x = leaf([1.0, 2.0])
    seed = np.array([0.5, 0.25])
    x.backward(seed)
    seed[:] = 0.0
    np.testing.assert_array_equal(x.grad, [0.5, 0.25])


def test_copies_take_a_new_place_in_the_backward_order():
    # A deep copy or an unpickled node is created now: built on, it must still be
    # processed after everything computed from it (and two copies must never tie).
    import copy
    import pickle

    p = leaf([2.0, 3.0])
    for clone in (copy.deepcopy(p), pickle.loads(pickle.dumps(p)), copy.copy(p)):
        y = (clone * 2.0).sum() + (clone * 5.0).sum() + (p * 1.0).sum()
        (g_clone, g_p) = grad(y, [clone, p])
        np.testing.assert_array_equal(g_clone.data, [7.0, 7.0])
        np.testing.assert_array_equal(g_p.data, [1.0, 1.0])
    a = Value(1.5)
    b = copy.deepcopy(a)
    (a * b + b).backward()
    assert (a.grad, b.grad) == (1.5, 2.5)


def test_requires_grad_turned_on_after_recording_gets_no_gradient():
    x, c = leaf([1.0, 2.0]), Tensor([3.0, 4.0])
    y = (x * c).sum()
    c.requires_grad_()
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    assert c.grad is None


def test_concurrent_backward_leaves_the_collector_as_it_was():
    assert gc.isenabled()
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        for _ in range(200):
            x = leaf([1.0, 2.0])
            (x * x).sum().backward()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gc.isenabled()


def test_gradcheck_checks_float32_inputs_in_float64():
    from autodiff import gradcheck

    x = Tensor(np.array([0.3, -1.2, 2.0], dtype=np.float32), requires_grad=True)
    assert gradcheck(lambda t: (t * t).tanh() * 3.0, [x])
    assert x.dtype == np.float32 and x.grad is None


def test_value_graphs_copy_and_unpickle_including_the_old_layout():
    import copy
    import pickle

    a = Value(2.0)
    y = (a * 3.0).tanh() + a  # unary nodes keep their input bare
    for clone in (copy.deepcopy(y), pickle.loads(pickle.dumps(y))):
        assert clone._prim is y._prim  # one object per primitive
        clone.backward()
        leaf_ = clone._parents[1]
        assert leaf_.is_leaf and leaf_.grad == pytest.approx(1 + 3 * (1 - np.tanh(6.0) ** 2))
    # A pickle written when the inputs were stored under `_parents`:
    _, slots = a.__getstate__()
    old = dict(slots)
    del old["_a"], old["_b"]
    old["_parents"] = ()
    restored = Value.__new__(Value)
    restored.__setstate__((None, old))
    assert restored._parents == () and restored.data == 2.0
    # ... and one from when they were under `_in` (a unary node kept its input bare)
    _, slots = y._parents[0].__getstate__()
    old = dict(slots)
    old["_in"] = old.pop("_a")
    del old["_b"]
    restored = Value.__new__(Value)
    restored.__setstate__((None, old))
    assert restored._parents[0].data == y._parents[0]._parents[0].data
