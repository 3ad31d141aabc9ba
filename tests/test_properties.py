"""Property-based tests: random expression graphs (with reused nodes, diamonds and
shared subexpressions) and random shapes, against central differences computed by an
independent numpy evaluator."""

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autodiff import Tensor, Value, gradcheck

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------
# A small expression grammar. A program is a list of steps (op, i, j): each step applies
# op to earlier nodes i (and j), so nodes are reused freely (x*x, diamonds, shared
# subexpressions). The output is the sum of the last node and one chosen earlier node.

UNARY = {
    "neg": (lambda a: -a, lambda a: -a),
    "tanh": (lambda a: a.tanh(), np.tanh),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    "square": (lambda a: a ** 2, lambda a: a ** 2),
    "exp_tanh": (lambda a: a.tanh().exp(), lambda a: np.exp(np.tanh(a))),
    "log1p_sq": (lambda a: (a * a + 1.0).log(), lambda a: np.log(a * a + 1.0)),
    "scale": (lambda a: 0.5 * a - 0.25, lambda a: 0.5 * a - 0.25),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    "pow": (lambda a, b: (a * a + 0.5) ** b.tanh(), lambda a, b: (a * a + 0.5) ** np.tanh(b)),
}
TENSOR_ONLY = {
    "sqrt1p": (lambda a: (a * a + 1.0).sqrt(), lambda a: np.sqrt(a * a + 1.0)),
}


@st.composite
def programs(draw, tensor: bool):
    n_inputs = draw(st.integers(2, 3))
    unary = sorted(UNARY) + (sorted(TENSOR_ONLY) if tensor else [])
    steps = []
    for k in range(draw(st.integers(1, 8))):
        available = n_inputs + k
        if draw(st.booleans()):
            op = draw(st.sampled_from(sorted(BINARY)))
            i = draw(st.integers(0, available - 1))
            j = draw(st.integers(0, available - 1))        # may equal i: x*x, a+a
        else:
            op = draw(st.sampled_from(unary))
            i = j = draw(st.integers(0, available - 1))
        steps.append((op, i, j))
    extra = draw(st.integers(0, n_inputs + len(steps) - 1))
    return n_inputs, steps, extra


def run(program, inputs, numeric: bool):
    """Evaluate with our engine (numeric=False) or with plain numpy (numeric=True)."""
    _, steps, extra = program
    col = 1
    nodes = list(inputs)
    table = {**UNARY, **BINARY, **TENSOR_ONLY}
    for op, i, j in steps:
        f = table[op][col if numeric else 0]
        nodes.append(f(nodes[i], nodes[j]) if op in BINARY else f(nodes[i]))
    return nodes[-1] + nodes[extra]


def numeric_grads(program, arrays, eps=1e-6):
    def total(args):
        return float(np.sum(run(program, args, numeric=True)))
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            g[idx] = (total(plus) - total(minus)) / (2 * eps)
        grads.append(g)
    return grads


values = st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False)


@SETTINGS
@given(program=programs(tensor=True), data=st.data())
def test_tensor_expression_graphs(program, data):
    n_inputs = program[0]
    shape = data.draw(st.sampled_from([(), (3,), (2, 2)]))
    arrays = [data.draw(hnp.arrays(np.float64, shape, elements=values)) for _ in range(n_inputs)]
    reference = run(program, arrays, numeric=True)
    assume(np.all(np.isfinite(reference)) and np.max(np.abs(reference)) < 1e4)

    xs = [Tensor(a, requires_grad=True) for a in arrays]
    out = run(program, xs, numeric=False)
    np.testing.assert_allclose(out.data, reference, rtol=1e-12, atol=1e-12)
    if not out.requires_grad:        # cannot happen: every program reads an input
        raise AssertionError("output does not require grad")
    out.sum().backward()
    for x, g in zip(xs, numeric_grads(program, arrays)):
        got = np.zeros(shape) if x.grad is None else x.grad
        np.testing.assert_allclose(got, g, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(g).max()))


@SETTINGS
@given(program=programs(tensor=False), data=st.data())
def test_value_expression_graphs(program, data):
    n_inputs = program[0]
    points = [data.draw(values) for _ in range(n_inputs)]
    arrays = [np.array(p) for p in points]
    reference = float(run(program, arrays, numeric=True))
    assume(math.isfinite(reference) and abs(reference) < 1e4)

    vs = [Value(p) for p in points]
    out = run(program, vs, numeric=False)
    assert out.data == np.float64(reference) or math.isclose(out.data, reference, rel_tol=1e-12,
                                                             abs_tol=1e-12)
    out.backward()
    for v, g in zip(vs, numeric_grads(program, arrays)):
        assert math.isclose(v.grad, float(g), rel_tol=1e-5, abs_tol=1e-5 * max(1.0, abs(g)))


@SETTINGS
@given(program=programs(tensor=False), data=st.data())
def test_value_and_tensor_agree(program, data):
    # The two node types share the op table: the same program gives the same numbers.
    n_inputs = program[0]
    points = [data.draw(values) for _ in range(n_inputs)]
    vs = [Value(p) for p in points]
    ts = [Tensor(p, requires_grad=True) for p in points]
    vout, tout = run(program, vs, numeric=False), run(program, ts, numeric=False)
    assume(math.isfinite(vout.data) and abs(vout.data) < 1e6)
    vout.backward()
    tout.backward()
    assert math.isclose(vout.data, float(tout.data), rel_tol=1e-12, abs_tol=1e-12)
    for v, t in zip(vs, ts):
        tg = 0.0 if t.grad is None else float(t.grad)
        assert math.isclose(v.grad, tg, rel_tol=1e-10, abs_tol=1e-12)


# ---------------------------------------------------------------------------
# random shapes

@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                max_side=3),
       op=st.sampled_from(["add", "sub", "mul", "div"]), data=st.data())
def test_broadcasting_binary_ops(shapes, op, data):
    sa, sb = shapes.input_shapes
    a = data.draw(hnp.arrays(np.float64, sa, elements=st.floats(-2, 2)))
    b = data.draw(hnp.arrays(np.float64, sb, elements=st.floats(0.5, 2)))
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    xa, xb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = fn(xa, xb)
    assert out.shape == shapes.result_shape
    assert gradcheck(lambda x, y: fn(x, y) * fn(x, y), [xa, xb])
    w = np.arange(1.0, math.prod(out.shape) + 1).reshape(out.shape)
    out.backward(w)
    assert xa.grad.shape == sa and xb.grad.shape == sb
    if op in ("add", "sub"):
        # d/da is all ones on the broadcast result: each element of a collects the weights
        # of the output elements it was copied to.
        ref = np.zeros(sa)
        full = np.broadcast_to(np.arange(math.prod(sa)).reshape(sa), out.shape)
        np.add.at(ref.reshape(-1), full.reshape(-1), w.reshape(-1))
        np.testing.assert_allclose(xa.grad, ref)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), data=st.data())
def test_reductions_over_random_axes(shape, data):
    ndim = len(shape)
    axes = data.draw(st.lists(st.integers(-ndim, ndim - 1), unique_by=lambda a: a % ndim,
                              max_size=ndim))
    axis = None if not axes else (axes[0] if len(axes) == 1 else tuple(axes))
    keepdims = data.draw(st.booleans())
    name = data.draw(st.sampled_from(["sum", "mean", "logsumexp", "max"]))
    n = math.prod(shape)
    base = (np.random.default_rng(n).permutation(n) * 0.3).reshape(shape)   # distinct values
    x = Tensor(base, requires_grad=True)
    y = getattr(x, name)(axis=axis, keepdims=keepdims)
    np_axis = axis
    if name == "logsumexp":
        expected = np.log(np.sum(np.exp(base), axis=np_axis, keepdims=keepdims))
    else:
        expected = getattr(np, name)(base, axis=np_axis, keepdims=keepdims)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    assert gradcheck(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims) ** 2, [x])


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(size=st.integers(1, 5), index=st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_getitem_repeated_indices(size, index):
    index = [i % size for i in index]
    x = Tensor(np.arange(float(size)), requires_grad=True)
    w = np.arange(1.0, len(index) + 1)
    (x[index] * Tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad, np.bincount(index, weights=w, minlength=size))
