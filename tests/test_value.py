"""`Value`, the micrograd-compatible scalar: expressions, reflected operators, IEEE
behaviour, gradients on every node, accumulation, and derivatives of any order."""

import math

import numpy as np
import pytest

from autodiff import Tensor, Value, grad, gradcheck, no_grad


# ---------------------------------------------------------------------------
# micrograd-style expressions (our own), checked by hand, by central differences and
# against PyTorch

def sanity_expression(a, b):
    c = a * b + b ** 2                   # -6 + 4 = -2
    d = (c * a).relu() + c.relu() * b    # relu(6) + relu(-2) * 2 = 6
    e = d + d * a - 1 / b                # 6 - 18 - 0.5 = -12.5
    return c, d, e, (e / 5).tanh() + (a + b).exp()


def more_ops_expression(p, q):
    r = p + q
    r += r * 2 + 1
    r += 3 + r + (-p)
    s = p * q + q ** 3
    s += s * 2 + (q - p).relu()
    s += 2 * s + (p + q).relu()
    t = r - s
    u = t ** 2
    v = u / 3.0
    v += 5.0 / u
    return v + (p * p + 1).log() + q.sigmoid() - (q / 2).exp()


def test_sanity_expression_by_hand():
    a, b = Value(-3.0), Value(2.0)
    c, d, e, f = sanity_expression(a, b)
    assert (c.data, d.data, e.data) == (-2.0, 6.0, -12.5)
    assert f.data == pytest.approx(math.tanh(-2.5) + math.exp(-1.0))
    f.backward()
    # by hand: f = tanh(e/5) + exp(a+b); on this branch d = (ab + b^2) a (c*a > 0, c < 0),
    # e = d (1 + a) - 1/b
    k = (1 - math.tanh(-2.5) ** 2) / 5
    dd_da = 2 * a.data * b.data + b.data ** 2          # d(a^2 b + a b^2)/da = 2ab + b^2
    dd_db = a.data ** 2 + 2 * a.data * b.data
    de_da = dd_da * (1 + a.data) + d.data
    de_db = dd_db * (1 + a.data) + 1 / b.data ** 2
    assert a.grad == pytest.approx(k * de_da + math.exp(-1.0))
    assert b.grad == pytest.approx(k * de_db + math.exp(-1.0))
    assert e.grad == pytest.approx(k)
    assert f.grad == 1.0


@pytest.mark.parametrize("expr", [lambda a, b: sanity_expression(a, b)[-1], more_ops_expression],
                         ids=["sanity", "more_ops"])
@pytest.mark.parametrize("point", [(-3.0, 2.0), (1.5, -0.5), (0.7, 0.4)])
def test_expressions_against_central_differences(expr, point):
    assert gradcheck(expr, [Value(point[0]), Value(point[1])], rtol=1e-5)


@pytest.mark.parametrize("expr", [lambda a, b: sanity_expression(a, b)[-1], more_ops_expression],
                         ids=["sanity", "more_ops"])
@pytest.mark.parametrize("point", [(-3.0, 2.0), (1.5, -0.5), (0.7, 0.4)])
def test_expressions_against_torch(expr, point):
    torch = pytest.importorskip("torch")
    a, b = Value(point[0]), Value(point[1])
    out = expr(a, b)
    out.backward()
    ta = torch.tensor(point[0], dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(point[1], dtype=torch.float64, requires_grad=True)
    tout = expr(ta, tb)
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-12, abs=1e-12)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-10, abs=1e-12)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-10, abs=1e-12)


# ---------------------------------------------------------------------------
# operators, reflected forms, functions

REFLECTED = [
    ("2*a", lambda a: 2 * a, lambda x: 2 * x, lambda x: 2.0),
    ("1-a", lambda a: 1 - a, lambda x: 1 - x, lambda x: -1.0),
    ("1/a", lambda a: 1 / a, lambda x: 1 / x, lambda x: -1 / x ** 2),
    ("2**a", lambda a: 2 ** a, lambda x: 2 ** x, lambda x: 2 ** x * math.log(2)),
    ("3+a", lambda a: 3 + a, lambda x: 3 + x, lambda x: 1.0),
    ("a-1", lambda a: a - 1, lambda x: x - 1, lambda x: 1.0),
    ("a/4", lambda a: a / 4, lambda x: x / 4, lambda x: 0.25),
    ("-a", lambda a: -a, lambda x: -x, lambda x: -1.0),
    ("a**3", lambda a: a ** 3, lambda x: x ** 3, lambda x: 3 * x ** 2),
    ("a**-0.5", lambda a: a ** -0.5, lambda x: x ** -0.5, lambda x: -0.5 * x ** -1.5),
    ("a**Value(2.5)", lambda a: a ** Value(2.5), lambda x: x ** 2.5, lambda x: 2.5 * x ** 1.5),
    ("exp", lambda a: a.exp(), math.exp, math.exp),
    ("log", lambda a: a.log(), math.log, lambda x: 1 / x),
    ("tanh", lambda a: a.tanh(), math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    ("sigmoid", lambda a: a.sigmoid(), lambda x: 1 / (1 + math.exp(-x)),
     lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2),
    ("relu", lambda a: a.relu(), lambda x: max(x, 0.0), lambda x: float(x > 0)),
]


@pytest.mark.parametrize("name,fn,f,df", REFLECTED, ids=[r[0] for r in REFLECTED])
@pytest.mark.parametrize("x", [0.7, 1.9])
def test_operator_values_and_gradients(name, fn, f, df, x):
    a = Value(x)
    out = fn(a)
    assert isinstance(out, Value)
    assert out.data == pytest.approx(f(x), rel=1e-14)
    out.backward()
    assert a.grad == pytest.approx(df(x), rel=1e-12)
    assert isinstance(a.grad, float) and isinstance(out.data, float)


def test_relu_negative_side():
    a = Value(-0.5)
    r = a.relu()
    r.backward()
    assert r.data == 0.0 and a.grad == 0.0


def test_number_exponent_and_value_exponent():
    a, b = Value(3.0), Value(2.0)
    c = a ** b
    c.backward()
    assert c.data == 9.0
    assert a.grad == pytest.approx(2 * 3.0)
    assert b.grad == pytest.approx(9.0 * math.log(3.0))


def test_numpy_scalars_and_ints_are_numbers():
    a = Value(np.float64(2.0))
    b = a * np.float32(3.0) + 1
    assert type(a.data) is float and type(b.data) is float
    assert b.data == 7.0
    assert Value(3).data == 3.0 and type(Value(3).data) is float


def test_label_op_and_prev():
    a = Value(2.0, label="a")
    b = Value(3.0, label="b")
    c = a * b
    assert a.label == "a" and c.op == "mul" and a.op == ""
    assert c._prev == {a, b}
    assert c._parents == (a, b)
    assert "6" in repr(c)


# ---------------------------------------------------------------------------
# IEEE: overflow gives inf, division by zero inf/nan, log(0) = -inf; never an exception,
# neither forward nor backward

def test_exp_overflow_is_inf():
    a = Value(1000.0)
    b = a.exp()
    assert b.data == math.inf
    b.backward()
    assert a.grad == math.inf
    assert Value(-1000.0).exp().data == 0.0


@pytest.mark.parametrize("make", [
    lambda: Value(10.0) ** 400,
    lambda: 2 ** Value(5000.0),
    lambda: Value(2.0) ** Value(5000.0),
    lambda: Value(1e300) * Value(1e300),
    lambda: Value(1e308) + Value(1e308),
    lambda: Value(1e300) ** 2,
], ids=["pow_const", "rpow", "pow", "mul", "add", "square"])
def test_overflow_is_inf_not_overflowerror(make):
    v = make()
    assert v.data == math.inf
    v.backward()                                    # no exception either


def test_large_tanh_sigmoid_are_finite():
    for x in (1000.0, -1000.0):
        t, s = Value(x).tanh(), Value(x).sigmoid()
        assert t.data == math.copysign(1.0, x)
        assert s.data == (1.0 if x > 0 else 0.0)
    a = Value(-1000.0)
    a.sigmoid().backward()
    assert a.grad == 0.0


def test_division_by_zero_forward_follows_ieee():
    assert (Value(1.0) / Value(0.0)).data == math.inf
    assert (Value(-2.0) / 0.0).data == -math.inf
    assert math.isnan((Value(0.0) / Value(0.0)).data)
    assert (1 / Value(0.0)).data == math.inf
    assert Value(0.0).log().data == -math.inf
    assert math.isnan(Value(-1.0).log().data)
    assert (Value(0.0) ** -1).data == math.inf
    assert math.isnan((Value(-8.0) ** (1 / 3)).data)


def test_division_by_zero_backward_follows_ieee():
    a, b = Value(1.0), Value(0.0)
    c = a / b
    c.backward()                       # d/da = 1/b = inf, d/db = -a/b^2 = -inf
    assert a.grad == math.inf
    assert b.grad == -math.inf


def test_log_zero_backward_follows_ieee():
    a = Value(0.0)
    y = a.log()
    y.backward()                       # d/da log(a) = 1/a = inf at 0
    assert y.data == -math.inf
    assert a.grad == math.inf


def test_reciprocal_of_zero_backward_no_exception():
    a = Value(0.0)
    (a ** -1).backward()
    assert a.grad == -math.inf


# ---------------------------------------------------------------------------
# gradients on every node, accumulation

def _walk(root):
    seen, order, stack = set(), [], [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        stack.extend(node._parents)
    return order


def test_every_node_has_its_grad_after_backward():
    a, b = Value(0.5), Value(-1.5)
    c = a * b            # -0.75
    d = c + a            # -0.25
    e = d.tanh()
    e.backward()
    k = 1 - math.tanh(-0.25) ** 2
    assert e.grad == 1.0
    assert d.grad == pytest.approx(k)
    assert c.grad == pytest.approx(k)
    assert a.grad == pytest.approx(k * (b.data + 1))
    assert b.grad == pytest.approx(k * a.data)
    for node in _walk(e):
        assert isinstance(node.grad, float)


def test_number_operands_are_options_of_one_node():
    # a * 3.0 + 1.0 is two nodes over the leaf a: the numbers ride on the nodes as
    # options (no constant leaves to allocate, visit or give gradients).
    a = Value(2.0)
    y = a * 3.0 + 1.0
    y.backward()
    nodes = _walk(y)
    assert len(nodes) == 3          # y, a*3, a
    assert [n.op for n in nodes] == ["add_const", "mul_const", ""]
    assert y._kw == {"c": 1.0} and y._parents[0]._kw == {"c": 3.0}
    assert a.grad == 3.0 and all(n.grad for n in nodes)


def test_grads_accumulate_until_reset():
    a, b = Value(2.0), Value(3.0)
    for _ in range(3):
        (a * b + a).backward()
    assert a.grad == 3 * (3.0 + 1)
    assert b.grad == 3 * 2.0
    a.grad = 0.0
    b.grad = 0.0
    (a * b).backward()
    assert (a.grad, b.grad) == (3.0, 2.0)


def test_value_no_grad_records_nothing():
    a = Value(2.0)
    with no_grad():
        b = (a * a).exp()
    assert b._parents == () and b.op == ""
    c = b * a
    c.backward()
    assert a.grad == b.data               # b is a constant here


def test_deep_value_expression_vs_closed_form():
    # y = x * (1 + 1e-3)^n via repeated mul by a Value used n times
    x, k = Value(1.2), Value(1.001)
    y = x
    for _ in range(2000):
        y = y * k
    y.backward()
    assert x.grad == pytest.approx(1.001 ** 2000)
    assert k.grad == pytest.approx(2000 * 1.2 * 1.001 ** 1999)


def test_value_and_tensor_do_not_mix():
    with pytest.raises(TypeError):
        Value(1.0) + Tensor([1.0])
    with pytest.raises(TypeError):
        Tensor([1.0]) * Value(2.0)


# ---------------------------------------------------------------------------
# first, second and third order on Values

VALUE_CASES = [
    ("add", lambda a, b: a + b, (0.4, -1.1)),
    ("sub", lambda a, b: a - b * 3, (0.4, -1.1)),
    ("mul", lambda a, b: a * b, (0.4, -1.1)),
    ("x*x", lambda a, b: a * a * b, (0.4, -1.1)),
    ("div", lambda a, b: a / b, (0.4, -1.1)),
    ("rdiv", lambda a, b: 1 / (a * b), (0.4, -1.1)),
    ("pow", lambda a, b: a ** b, (1.4, -1.1)),
    ("rpow", lambda a, b: 2 ** (a * b), (0.4, -1.1)),
    ("pow_const", lambda a, b: a ** 3 + b ** -2, (0.4, -1.1)),
    ("pow_const_frac", lambda a, b: a ** 1.5 * b, (0.4, -1.1)),
    ("neg", lambda a, b: -(a * b), (0.4, -1.1)),
    ("exp", lambda a, b: (a * b).exp(), (0.4, -1.1)),
    ("log", lambda a, b: (a * a + b * b).log(), (0.4, -1.1)),
    ("tanh", lambda a, b: (a * b).tanh(), (0.4, -1.1)),
    ("sigmoid", lambda a, b: (a * b).sigmoid(), (0.4, -1.1)),
    ("relu", lambda a, b: (a * b).relu() + (a - b).relu() * a, (0.4, -1.1)),
]


@pytest.mark.parametrize("name,fn,point", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_value_gradcheck(name, fn, point):
    assert gradcheck(fn, [Value(point[0]), Value(point[1])])


def _value_directional(f, v):
    def g(a, b):
        ga, gb = grad(f(a, b), [a, b], create_graph=True, allow_unused=True)
        terms = [gi * vi for gi, vi in zip((ga, gb), v) if gi is not None]
        return sum(terms[1:], terms[0])
    return g


@pytest.mark.parametrize("name,fn,point", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_value_second_order_hvp(name, fn, point):
    def loss(a, b):
        out = fn(a, b)
        return out * out * 0.7
    assert gradcheck(_value_directional(loss, (0.3, -1.2)), [Value(point[0]), Value(point[1])])


@pytest.mark.parametrize("name,fn,point", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_value_third_order(name, fn, point):
    def loss(a, b):
        return (fn(a, b) * 0.8).tanh()
    second = _value_directional(loss, (0.3, -1.2))
    assert gradcheck(_value_directional(second, (-0.5, 0.9)),
                     [Value(point[0]), Value(point[1])])


def test_value_grad_returns_values_and_matches_backward():
    a, b = Value(0.3), Value(-0.8)
    ga, gb = grad(more_ops_expression(a, b), [a, b])
    assert isinstance(ga, Value) and isinstance(gb, Value)
    assert a.grad == 0.0 and b.grad == 0.0
    out = more_ops_expression(a, b)
    out.backward()
    assert ga.data == pytest.approx(a.grad, rel=1e-13)
    assert gb.data == pytest.approx(b.grad, rel=1e-13)


def test_affine_is_one_node_with_the_composite_values_and_gradients():
    from autodiff import grad, gradcheck
    from autodiff.value import affine

    def composite(b, w, x):
        return sum((wi * xi for wi, xi in zip(w, x)), b)

    b, w, x = Value(0.3), [Value(-1.2), Value(0.7)], [Value(2.0), 1.5]
    y, ref = affine(b, w, x), composite(b, w, x)
    assert y.data == ref.data and len(y._parents) == 5
    got = grad(y.tanh(), [b, *w, x[0]])
    want = grad(ref.tanh(), [b, *w, x[0]])
    assert [g.data for g in got] == pytest.approx([g.data for g in want], rel=1e-15)
    assert gradcheck(lambda b, w0, w1, x0: affine(b, [w0, w1], [x0, 1.5]).tanh() ** 2,
                     [b, *w, x[0]])
    # second order through the fused node
    (d_w0,) = grad(affine(b, w, x).tanh(), w[0], create_graph=True)
    (d_w0x0,) = grad(d_w0, x[0])
    (r_w0,) = grad(composite(b, w, x).tanh(), w[0], create_graph=True)
    (r_w0x0,) = grad(r_w0, x[0])
    assert d_w0x0.data == pytest.approx(r_w0x0.data, rel=1e-12)
    with pytest.raises(ValueError, match="affine: 2 weights but 1 inputs"):
        affine(b, w, [1.0])


def test_huge_ints_and_pow_edge_cases_follow_ieee():
    assert Value(10 ** 400).data == math.inf and Value(-(10 ** 400)).data == -math.inf
    assert (Value(1.0) * 10 ** 400).data == math.inf
    assert math.isnan((Value(-1e200) ** 3.5).data)       # numpy: nan
    assert (Value(-0.0) ** -1).data == -math.inf           # IEEE: -inf for odd exponents
    assert (Value(0.0) ** -2).data == math.inf
    assert (Value(-1e200) ** 3).data == -math.inf


@pytest.mark.parametrize("k", [2, 3, -1, 0])
def test_float_and_int_exponents_compute_the_same(k):
    # A number exponent is kept as written (micrograd's `_op` shows '**2.0' for 2.0), so
    # an integral float exponent must give exactly what the int gives, to second order.
    def second(g, x):
        (h,) = grad(g, x, allow_unused=True)
        return None if h is None else h.data

    for x in (-1.5, 0.75, 2.0):
        a, b = Value(x), Value(x)
        p, q = a ** k, b ** float(k)
        assert p.data == q.data and (p._op, q._op) == (f"**{k}", f"**{float(k)}")
        (ga,) = grad(p, a, create_graph=True)
        (gb,) = grad(q, b, create_graph=True)
        assert ga.data == gb.data and second(ga, a) == second(gb, b)
