"""Every op, forward and backward, against PyTorch (float64 and float32), plus composite
expressions: an MLP, softmax cross-entropy, second-order products, Value expressions."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from autodiff import Tensor, Value, grad, maximum  # noqa: E402

from helpers_cases import ALL_CASES  # noqa: E402

ids = [case.id for case in ALL_CASES]


def _run_both(case, rng, dtype):
    arrays = [a.astype(dtype) for a in case.make(rng)]
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = case.fn(*xs), case.torch_fn(*ts)
    cot = rng.standard_normal(out.shape).astype(out.dtype)
    out.backward(cot)
    tout.backward(torch.from_numpy(cot.copy()))
    return out, tout, xs, ts


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_against_torch_float64(case, rng):
    out, tout, xs, ts = _run_both(case, rng, np.float64)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_against_torch_float32(case, rng):
    out, tout, xs, ts = _run_both(case, rng, np.float32)
    assert out.dtype == (case.out_dtype or np.float32)
    assert out.dtype == tout.detach().numpy().dtype
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    for x, t in zip(xs, ts):
        assert x.grad.dtype == np.float32
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# kinks, ties and edges where PyTorch defines the convention

EDGES = [
    ("relu@0", lambda x: x.relu(), lambda t: t.relu(), [-1.0, 0.0, 1.0]),
    ("abs@0", lambda x: x.abs(), lambda t: t.abs(), [-1.0, 0.0, 1.0]),
    ("clip@bounds", lambda x: x.clip(-1.0, 1.0), lambda t: t.clamp(-1.0, 1.0),
     [-1.0, 1.0, 0.0, 2.0]),
    ("max-ties", lambda x: x.max(axis=0), lambda t: t.amax(dim=0), [[1.0, 2.0], [1.0, 0.0]]),
    ("max-all-ties", lambda x: x.max(), lambda t: t.amax(dim=(0, 1)), [[3.0, 2.0], [3.0, 3.0]]),
    ("min-ties", lambda x: x.min(axis=-1, keepdims=True),
     lambda t: t.amin(dim=-1, keepdim=True), [[1.0, 1.0, 4.0], [0.0, 2.0, 0.0]]),
    ("maximum-ties", lambda x: maximum(x, 1.0), lambda t: torch.maximum(t, torch.ones_like(t)),
     [1.0, 0.0, 2.0]),
    ("x**0@0", lambda x: x ** 0, lambda t: t ** 0, [0.0, 1.5]),
    ("sqrt@0", lambda x: x.sqrt(), lambda t: t.sqrt(), [0.0, 4.0]),
    ("x**2@0", lambda x: x ** 2, lambda t: t ** 2, [0.0, -3.0]),
]


@pytest.mark.parametrize("name,fn,tfn,data", EDGES, ids=[e[0] for e in EDGES])
def test_edge_conventions_match_torch(name, fn, tfn, data):
    x = Tensor(np.array(data), requires_grad=True)
    t = torch.tensor(data, dtype=torch.float64, requires_grad=True)
    fn(x).sum().backward()
    tfn(t).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


def test_pow_zero_base_exponent_gradient_matches_torch():
    # d/db a**b = a**b log a: PyTorch defines it as 0 where a == 0 (and b >= 0), as the
    # limit a**b log a -> 0; 0 * -inf must not leak a nan.
    a = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    ta = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    tb = torch.tensor([2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (a ** b).sum().backward()
    (ta ** tb).sum().backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy())
    np.testing.assert_allclose(b.grad, tb.grad.numpy())


# ---------------------------------------------------------------------------
# composite expressions

def _mlp(x, w1, b1, w2, b2, ops):
    h = ops["relu"](x @ w1 + b1)
    out = ops["tanh"](h @ w2 + b2)
    return (out * out).mean()


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_mlp_forward_backward(rng, dtype, rtol):
    arrays = [rng.standard_normal(s).astype(dtype)
              for s in [(8, 5), (5, 16), (16,), (16, 3), (3,)]]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    loss = _mlp(*ours, {"relu": lambda z: z.relu(), "tanh": lambda z: z.tanh()})
    tloss = _mlp(*theirs, {"relu": torch.relu, "tanh": torch.tanh})
    loss.backward()
    tloss.backward()
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss.data, tloss.item(), rtol=rtol)
    for p, t in zip(ours, theirs):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)


def test_softmax_cross_entropy(rng):
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 0])
    x = Tensor(logits, requires_grad=True)
    loss = -(x.log_softmax(axis=1)[np.arange(6), labels]).mean()
    t = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.data, tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)
    # the same through softmax + log, and through logsumexp
    for build in (lambda z: -(z.softmax(axis=-1).log()[np.arange(6), labels]).mean(),
                  lambda z: (z.logsumexp(axis=1) - z[np.arange(6), labels]).mean()):
        z = Tensor(logits, requires_grad=True)
        build(z).backward()
        np.testing.assert_allclose(z.grad, t.grad.numpy(), rtol=1e-9, atol=1e-14)


def test_hessian_vector_product_of_composite(rng):
    arrays = [rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)]
    v = [rng.standard_normal(a.shape) for a in arrays]

    def f(x, w, b, lib):
        z = x @ w + b
        sm = z.softmax(axis=-1) if lib == "ours" else torch.softmax(z, dim=-1)
        return (sm * z.tanh()).sum() + (z.sigmoid() ** 2).mean()

    ours = [Tensor(a, requires_grad=True) for a in arrays]
    gs = grad(f(*ours, "ours"), ours, create_graph=True)
    hv = grad(sum(((g * Tensor(vi)).sum() for g, vi in zip(gs, v)), Tensor(0.0)), ours)

    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    tgs = torch.autograd.grad(f(*theirs, "torch"), theirs, create_graph=True)
    thv = torch.autograd.grad(sum((g * torch.tensor(vi)).sum() for g, vi in zip(tgs, v)), theirs)
    for a, b in zip(gs, tgs):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-13)
    for a, b in zip(hv, thv):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-9, atol=1e-12)


def test_third_derivative_against_torch():
    xs = np.array([-0.7, 0.3, 1.1])
    x = Tensor(xs, requires_grad=True)
    t = torch.tensor(xs, requires_grad=True)
    f = lambda z: (z.sigmoid() * z.exp()).sum() + (z ** 3).sum()  # noqa: E731
    d = f(x)
    td = f(t)
    for _ in range(3):
        (d,) = grad(d.sum() if d.ndim else d, x, create_graph=True)
        (td,) = torch.autograd.grad(td.sum(), t, create_graph=True)
        np.testing.assert_allclose(d.data, td.detach().numpy(), rtol=1e-10)


# ---------------------------------------------------------------------------
# Value expressions against 0-d tensors

VALUE_EXPRS = [
    ("polynomial", lambda a, b: a * a * b - 3 * b + 2 / a),
    ("reflected", lambda a, b: 1 - a + 2 * b + 1 / b + 2 ** a),
    ("pow", lambda a, b: (a * a + 1) ** b + a ** 3 - b ** -2),
    ("activations", lambda a, b: (a * b).tanh() + (a - b).sigmoid() + (a + b).relu()),
    ("exp-log", lambda a, b: (a * b).exp() + (a * a + b * b).log()),
    ("neuron", lambda a, b: (a * 0.3 + b * -1.2 + 0.5).tanh() * a - (b / 4).exp()),
]


@pytest.mark.parametrize("name,expr", VALUE_EXPRS, ids=[e[0] for e in VALUE_EXPRS])
@pytest.mark.parametrize("point", [(0.8, -1.3), (-2.0, 0.6)])
def test_value_expressions_against_torch(name, expr, point):
    a, b = Value(point[0]), Value(point[1])
    out = expr(a, b)
    out.backward()
    ta, tb = (torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point)
    tout = expr(ta, tb)
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-12)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-10, abs=1e-14)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("name,expr", VALUE_EXPRS, ids=[e[0] for e in VALUE_EXPRS])
def test_value_second_derivatives_against_torch(name, expr):
    point = (0.8, -1.3)
    a, b = Value(point[0]), Value(point[1])
    ga, gb = grad(expr(a, b), [a, b], create_graph=True)
    haa, hab = grad(ga, [a, b], allow_unused=True)
    ta, tb = (torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point)
    tga, tgb = torch.autograd.grad(expr(ta, tb), [ta, tb], create_graph=True)
    thaa, thab = torch.autograd.grad(tga, [ta, tb], allow_unused=True)
    assert ga.data == pytest.approx(tga.item(), rel=1e-10)
    assert gb.data == pytest.approx(tgb.item(), rel=1e-10)
    for ours, theirs in ((haa, thaa), (hab, thab)):
        expected = 0.0 if theirs is None else theirs.item()
        got = 0.0 if ours is None else ours.data
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_value_pow_zero_base_matches_torch():
    a, b = Value(0.0), Value(2.0)
    (a ** b).backward()
    ta = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (ta ** tb).backward()
    assert (a.grad, b.grad) == (ta.grad.item(), tb.grad.item())      # (0.0, 0.0)


def test_pow_zero_exponent_base_gradient_matches_torch():
    # a ** b with b == 0 is the constant 1: d/da = 0 even at a = 0, where b * a**(b-1)
    # is 0 * inf. PyTorch returns 0 there (as for x ** 0 with a number exponent).
    a = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([0.0, 0.0]), requires_grad=True)
    (a ** b).sum().backward()
    ta = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    tb = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)
    (ta ** tb).sum().backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())          # [0, 0]
    np.testing.assert_allclose(b.grad, tb.grad.numpy())             # [0, log 2]
    v, w = Value(0.0), Value(0.0)
    (v ** w).backward()
    assert (v.grad, w.grad) == (0.0, 0.0)


GRAPH_OPS = {"mul": lambda a, b: a * b, "add": lambda a, b: a + b,
             "tanh": lambda a, b: a.tanh(), "exp": lambda a, b: (a * 0.5).exp()}


def test_grad_on_random_graphs_with_several_outputs_and_inputs():
    # Random graphs with reused nodes; outputs may be inputs, ancestors of each other or
    # repeated; inputs may be intermediates or unused. autodiff.grad against torch.autograd.grad.
    rng = np.random.default_rng(7)
    for trial in range(120):
        base = [np.array([0.3, -0.7]), np.array([0.9, 0.4])]
        nodes = [Tensor(a, requires_grad=True) for a in base]
        tnodes = [torch.tensor(a, requires_grad=True) for a in base]
        for _ in range(5):
            i, j = rng.integers(len(nodes), size=2)
            op = GRAPH_OPS[rng.choice(sorted(GRAPH_OPS))]
            nodes.append(op(nodes[i], nodes[j]))
            tnodes.append(op(tnodes[i], tnodes[j]))
        outs = list(rng.integers(len(nodes), size=rng.integers(1, 5)))
        ins = sorted(set(rng.choice(len(nodes), size=2, replace=False)))
        seeds = [rng.standard_normal(2) for _ in outs]
        create = bool(trial % 2)
        got = grad([nodes[i] for i in outs], [nodes[i] for i in ins], grad_outputs=seeds,
                   allow_unused=True, create_graph=create)
        want = torch.autograd.grad([tnodes[i] for i in outs], [tnodes[i] for i in ins],
                                   grad_outputs=[torch.tensor(s) for s in seeds],
                                   allow_unused=True)
        for g, w in zip(got, want):
            assert (g is None) == (w is None), (trial, outs, ins)
            if g is not None:
                np.testing.assert_allclose(g.data, w.numpy(), rtol=1e-12, atol=1e-14)
