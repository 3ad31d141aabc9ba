"""Every primitive of the op table against central differences, in float64 and float32,
to first, second and third order, plus the gradient conventions at kinks."""

import numpy as np
import pytest

from autodiff import OPS, Tensor, Value, grad, gradcheck, maximum, minimum

from helpers_cases import ALL_CASES, CASES

ids = [case.id for case in ALL_CASES]


def test_every_op_has_cases():
    assert set(OPS) == set(CASES)
    assert all(CASES[name] for name in OPS)


def _inputs(case, rng, dtype=np.float64):
    return [Tensor(a.astype(dtype), requires_grad=True) for a in case.make(rng)]


# ---------------------------------------------------------------------------
# first order

@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_gradcheck(case, rng):
    xs = _inputs(case, rng)
    assert gradcheck(case.fn, xs, **case.gradcheck_kw)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_forward_matches_numpy_of_constants(case, rng):
    # The same function on constants (no graph) and on inputs requiring grad agree, and
    # a result built from inputs that require grad requires grad itself.
    arrays = case.make(rng)
    plain = case.fn(*[Tensor(a) for a in arrays])
    tracked = case.fn(*[Tensor(a, requires_grad=True) for a in arrays])
    assert not plain.requires_grad
    assert tracked.requires_grad
    np.testing.assert_array_equal(plain.data, tracked.data)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_gradient_shape_and_dtype(case, rng):
    xs = _inputs(case, rng)
    out = case.fn(*xs)
    out.backward(rng.standard_normal(out.shape))
    for x in xs:
        # a Tensor with no gradient of its own, around an ndarray (as in PyTorch)
        assert isinstance(x.grad, Tensor) and not x.grad.requires_grad
        assert type(x.grad.data) is np.ndarray
        assert x.grad.shape == x.shape
        assert x.grad.dtype == np.float64


# ---------------------------------------------------------------------------
# float32 stays float32, and agrees with float64

@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_float32_stays_float32(case, rng):
    arrays = case.make(rng)
    x64 = [Tensor(a, requires_grad=True) for a in arrays]
    x32 = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    out64, out32 = case.fn(*x64), case.fn(*x32)
    assert out32.dtype == (case.out_dtype or np.float32)
    np.testing.assert_allclose(out32.data, out64.data, rtol=1e-4, atol=1e-5)

    cot = rng.standard_normal(out64.shape)
    out64.backward(cot)
    out32.backward(cot.astype(out32.dtype))
    for a, b in zip(x32, x64):
        assert a.grad.dtype == np.float32
        scale = max(1.0, float(np.abs(b.grad).max(initial=0.0)))
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.second_order],
                         ids=[c.id for c in ALL_CASES if c.second_order])
def test_float32_second_order_stays_float32(case, rng):
    xs = _inputs(case, rng, np.float32)
    out = case.fn(*xs)
    w = Tensor(rng.standard_normal(out.shape), dtype=np.float32)
    gs = grad((out * out * w).sum(), xs, create_graph=True)
    for x, g in zip(xs, gs):
        assert g.dtype == np.float32 and g.shape == x.shape
    total = gs[0].sum()
    for g in gs[1:]:
        total = total + g.sum()
    hs = grad(total, xs, allow_unused=True)
    for h in hs:
        assert h is None or h.dtype == np.float32


# ---------------------------------------------------------------------------
# second and third order: the derivative of the (create_graph) gradient along a fixed
# direction, checked by gradcheck against central differences of that first gradient.

def _scalar_of(case, w, third=False):
    # out * out * w makes the loss non-linear in the op's output, so the Hessian
    # involves the op's Jacobian (the vjp run on graph nodes) as well as its own
    # second derivative. For the third order a quadratic is not enough (its third
    # derivative through a linear op is 0, a constant): use tanh instead.
    def loss(*xs):
        out = case.fn(*xs)
        return (out * w).tanh().sum() if third else (out * out * w).sum()
    return loss


def _directional_grad(f, vs):
    """x -> sum_i <d f / d x_i, v_i>, as a differentiable graph."""
    def g(*xs):
        gs = grad(f(*xs), xs, create_graph=True)
        total = (gs[0] * vs[0]).sum()
        for gi, vi in zip(gs[1:], vs[1:]):
            total = total + (gi * vi).sum()
        return total
    return g


SECOND = [c for c in ALL_CASES if c.second_order]


@pytest.mark.parametrize("case", SECOND, ids=[c.id for c in SECOND])
def test_second_order_hvp(case, rng):
    xs = _inputs(case, rng)
    w = Tensor(rng.standard_normal(case.fn(*xs).shape))
    vs = [Tensor(rng.standard_normal(x.shape)) for x in xs]
    assert gradcheck(_directional_grad(_scalar_of(case, w), vs), xs)


THIRD_OPS = ["mul", "div", "pow", "matmul", "exp", "log", "sqrt", "tanh", "sigmoid",
             "pow_const", "sum", "mean", "logsumexp", "softmax", "log_softmax", "getitem",
             "scatter", "broadcast_to", "sum_to", "where", "concatenate", "stack"]
THIRD = [CASES[name][0] for name in THIRD_OPS]


@pytest.mark.parametrize("case", THIRD, ids=[c.id for c in THIRD])
def test_third_order(case, rng):
    xs = _inputs(case, rng)
    w = Tensor(rng.standard_normal(case.fn(*xs).shape))
    vs = [Tensor(rng.standard_normal(x.shape)) for x in xs]
    us = [Tensor(rng.standard_normal(x.shape)) for x in xs]
    second = _directional_grad(_scalar_of(case, w, third=True), vs)
    assert gradcheck(_directional_grad(second, us), xs)


def test_second_order_reaches_internal_ops():
    # The gradient of x[idx] is a scatter, of a broadcast add a sum_to, of a sum a
    # broadcast_to: differentiating those gradients exercises the internal ops' vjps.
    x = Tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    (g,) = grad((x[[0, 2, 0]] ** 3).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.data, [6.0, 0.0, 27.0, 0.0])  # 3*1 + 3*1, 3*9
    (h,) = grad((g * Tensor([1.0, 1.0, 1.0, 1.0])).sum(), x)
    np.testing.assert_allclose(h.data, [12.0, 0.0, 18.0, 0.0])  # 2 * 6x, 6x

    a = Tensor(np.array([[1.0], [2.0]]), requires_grad=True)        # (2, 1)
    b = Tensor(np.array([1.0, -1.0, 2.0]), requires_grad=True)      # (3,)
    ga, gb = grad(((a + b) ** 2).sum(), [a, b], create_graph=True)
    np.testing.assert_allclose(ga.data, [[2 * (3 + 2.0)], [2 * (6 + 2.0)]])
    ha, hb = grad(ga.sum() + gb.sum(), [a, b])
    # ga = 2(3a + sum b) and gb = 2(sum a + 2b): d/da_i (sum ga + sum gb) = 6 + 6 ...
    np.testing.assert_allclose(ha.data, [[12.0]] * 2)
    np.testing.assert_allclose(hb.data, [8.0] * 3)        # ... and d/db_j = 4 + 4


# ---------------------------------------------------------------------------
# conventions at kinks and ties (API.md: relu'(0) = 0, abs'(0) = 0, clip passes the
# gradient on [lo, hi], max/min and maximum/minimum split ties evenly)

def _grad_of(fn, data):
    x = Tensor(np.asarray(data, dtype=np.float64), requires_grad=True)
    fn(x).sum().backward()
    return x.grad


def test_relu_and_abs_at_zero():
    np.testing.assert_array_equal(_grad_of(lambda x: x.relu(), [-1.0, 0.0, 2.0]), [0, 0, 1])
    np.testing.assert_array_equal(_grad_of(lambda x: x.abs(), [-1.0, 0.0, 2.0]), [-1, 0, 1])
    a = Value(0.0)
    a.relu().backward()
    assert a.grad == 0.0


def test_clip_passes_gradient_on_closed_interval():
    g = _grad_of(lambda x: x.clip(-1.0, 1.0), [-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad_of(lambda x: x.clip(lo=0.0), [-1.0, 0.0, 1.0]), [0, 1, 1])
    np.testing.assert_array_equal(_grad_of(lambda x: x.clip(hi=0.0), [-1.0, 0.0, 1.0]), [1, 1, 0])


def test_max_min_split_ties_evenly():
    data = [[1.0, 3.0, 3.0, 3.0], [2.0, 2.0, 0.0, 1.0]]
    np.testing.assert_allclose(_grad_of(lambda x: x.max(), data),
                               [[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0, 0]])
    np.testing.assert_allclose(_grad_of(lambda x: x.max(axis=1), data),
                               [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0, 0]])
    np.testing.assert_allclose(_grad_of(lambda x: x.min(axis=-1, keepdims=True), data),
                               [[1, 0, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_allclose(_grad_of(lambda x: x.min(axis=0), [[1.0, 5.0], [1.0, 4.0]]),
                               [[0.5, 0], [0.5, 1]])
    np.testing.assert_allclose(_grad_of(lambda x: x.max(axis=(0, 1)), [[2.0, 1.0], [2.0, 2.0]]),
                               [[1 / 3, 0], [1 / 3, 1 / 3]])


@pytest.mark.parametrize("fn", [maximum, minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_split_ties(fn):
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = Tensor([1.0, 0.0, 5.0], requires_grad=True)
    fn(a, b).sum().backward()
    if fn is maximum:
        np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
        np.testing.assert_array_equal(b.grad, [0.5, 0.0, 1.0])
    else:
        np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
        np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    # a tie against a broadcast operand: the broadcast side sums its halves
    x = Tensor([0.0, 0.0, 1.0], requires_grad=True)
    y = Tensor(0.0, requires_grad=True)
    fn(x, y).sum().backward()
    expect_x = [0.5, 0.5, 1.0] if fn is maximum else [0.5, 0.5, 0.0]
    np.testing.assert_array_equal(x.grad, expect_x)
    assert y.grad == pytest.approx(3 - sum(expect_x))


def test_pow_const_zero_exponent_has_zero_gradient_at_zero():
    # d/dx x**0 = 0 everywhere (PyTorch agrees); 0 * 0**-1 must not leak a nan.
    g = _grad_of(lambda x: x ** 0, [0.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 0.0])
    a = Value(0.0)
    (a ** 0).backward()
    assert a.grad == 0.0


# ---------------------------------------------------------------------------
# the op record: every fact an op declares is checked against what its vjp does

def _nodes_of(case, rng):
    """The case's graph, and its nodes made by the case's own op."""
    from autodiff.viz._common import _topo  # every node reachable from out
    out = case.fn(*_inputs(case, rng))
    order = _topo([out])
    own = [n for n in order if n._prim is not None and n._prim.name == case.op]
    # (x + 2 is an add_const node, not an add: then check the ops it does make)
    return out, own or [n for n in order if n._prim is not None]


def _vjp_with(node, g, *, out=None, saved=None):
    op = node._prim
    kw = dict(node._kw or {})
    if op.masked:
        kw["need"] = (True,) * len(node._parents)
    return op.vjp(g, node.data if out is None else out,
                  *(node._saved if saved is None else saved), **kw)


def _same(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_every_op_states_its_facts():
    for name, op in OPS.items():
        assert ";" in op.math, name   # the math: forward; its derivative (or vjp)
        assert isinstance(op.symbol, str) and op.symbol, name
        assert callable(op.forward) and callable(op.vjp), name
        assert op.reads in ("values", "shapes", "nothing"), name
        assert isinstance(op.elementwise, bool) and isinstance(op.reads_output, bool), name
        assert set(op.buffers) <= set(op.internal) | {"index"}, name
        for key in op.internal | set(op.buffers):
            assert key.isidentifier(), name


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.op not in ("affine",)], ids=lambda c: c.id)
def test_declared_reads_match_the_vjp(case, rng):
    out, nodes = _nodes_of(case, rng)
    assert nodes, f"{case.id}: the case makes no {case.op} node"
    for node in nodes:
        op = node._prim
        g = np.asarray(rng.normal(size=np.shape(node.data)), dtype=node.data.dtype)
        base = _vjp_with(node, g)
        if not op.reads_output:  # the vjp must not read out: garbage there changes nothing
            _same(base, _vjp_with(node, g, out=np.full_like(node.data, np.nan)))
        if op.reads != "values" and op.reads_inputs:  # shapes only: garbage values are fine
            n = len(node._parents)
            garbage = tuple(np.full_like(s, np.nan) if i < n and isinstance(s, np.ndarray)
                            and s.dtype.kind == "f" else s for i, s in enumerate(node._saved))
            _same(base, _vjp_with(node, g, saved=garbage))
        if op.reads == "nothing":
            assert all(s is None for s in node._saved[:len(node._parents)])


@pytest.mark.parametrize("case", [c for c in ALL_CASES if OPS[c.op].elementwise], ids=lambda c: c.id)
def test_elementwise_ops_have_diagonal_jacobians(case, rng):
    _, nodes = _nodes_of(case, rng)
    for node in nodes:
        shape = node.data.shape
        for k in range(min(node.data.size, 4)):
            g = np.zeros(shape, dtype=node.data.dtype)
            g.reshape(-1)[k] = 1.0
            for parent, pg in zip(node._parents, _vjp_with(node, g)):
                if pg is None or parent.data.shape != shape or np.shape(pg) != shape:
                    continue
                off = np.array(pg, dtype=np.float64).reshape(-1)
                off[k] = 0.0
                assert not np.any(off), f"{case.id}: d(out[{k}])/d(input) reaches other entries"


def test_a_releasing_backward_drops_index_arrays_and_masks():
    x = Tensor(np.arange(6.0), requires_grad=True)
    idx = np.array([0, 2, 2, 5])
    y = x[idx]
    z = autodiff_where(np.array([True, False, True, True]), y, 0.0)
    z.sum().backward()
    assert y._saved is None and z._saved is None
    assert not any(isinstance(v, np.ndarray) for v in y._kw.values())
    assert not any(isinstance(v, np.ndarray) for v in z._kw.values())
    np.testing.assert_array_equal(x.grad, [1, 0, 1, 0, 0, 1])  # y[1] is masked out
    # structure and forward values stay: it can still be drawn
    from autodiff.viz import draw_graph
    assert "getitem" in draw_graph(z).source
    # slices are structure, not buffers: they stay
    w = Tensor(np.arange(6.0), requires_grad=True)
    v = w[1:3]
    v.sum().backward()
    assert v._kw["index"] == slice(1, 3)


def autodiff_where(cond, a, b):
    from autodiff import where
    return where(cond, a, b)
