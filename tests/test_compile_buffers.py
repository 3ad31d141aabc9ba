"""compile's kept buffers: ops lowered to ufunc calls with out=, equal to eager bit for
bit, and no buffer escaping the call that wrote it."""

import numpy as np
import pytest

import autodiff
import nn
from autodiff import CompileError, Tensor
from autodiff.compile_lower import Kernels, same_array, templates
from autodiff.ops import OPS


def _plan(f):
    family = next(iter(f.plans.values()))
    return (family.general or list(family.baked.values()))[0]


def _chain(x, W, M, B, cycles=3):
    y = x
    for _ in range(cycles):
        y = ((y @ W) * M + B).tanh()
    return y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_mixed_chain_replays_into_buffers_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    W = Tensor(rng.standard_normal((4, 4)).astype(dtype))
    M = Tensor(rng.standard_normal((3, 4)).astype(dtype))
    B = Tensor(rng.standard_normal(4).astype(dtype))  # (broadcast: its gradient is reduced)
    B.requires_grad_()
    W.requires_grad_()

    def step(x):
        W.grad = B.grad = None
        y = _chain(Tensor(x), W, M, B)
        (y * y).sum().backward()
        return y, W.grad, B.grad

    f = autodiff.compile(step)
    for k in range(4):
        x = rng.standard_normal((3, 4)).astype(dtype)
        got = [np.array(t.data) for t in f(x)]
        want = [np.array(t.data) for t in step(x)]
        for g, w in zip(got, want):
            assert same_array(g, w), k
    source = _plan(f).source
    assert "U_matmul(" in source and "U_tanh(" in source and ", out=B" in source


def test_what_a_call_returned_or_stored_is_not_overwritten_by_the_next():
    lin = nn.Linear(3, 3)

    def step(x):
        h = (lin(Tensor(x)) * 2.0).tanh()
        loss = (h * h).sum()
        loss.backward()
        return h, h.detach()

    f = autodiff.compile(step)
    x1, x2, x3 = (np.full((2, 3), v) for v in (0.1, 0.5, -0.7))
    f(x1)  # (the trace)
    lin.zero_grad()
    h1, d1 = f(x2)
    g1 = lin.weight.grad
    kept = [np.array(a.data) for a in (h1, d1, g1)]
    lin.zero_grad()  # (to None: the next backward makes a new .grad)
    f(x3)
    for a, before in zip((h1, d1, g1), kept):
        np.testing.assert_array_equal(a.data, before)
    assert lin.weight.grad is not g1


def test_gradients_accumulate_across_replays_as_eagerly():
    def run(compiled):
        lin = nn.Linear(2, 2)
        lin.weight.data[...] = [[0.5, -1.0], [2.0, 0.25]]
        lin.bias.data[...] = [0.1, -0.3]

        def step(x):
            (lin(Tensor(x)).tanh() ** 2).sum().backward()

        f = autodiff.compile(step) if compiled else step
        for v in (0.1, 0.2, 0.3, 0.4):
            f(np.full((3, 2), v))
        return lin.weight.grad.data.copy(), lin.bias.grad.data.copy()

    for a, b in zip(run(True), run(False)):
        assert same_array(a, b)


def test_a_parameter_rebound_to_another_shape_makes_a_new_trace():
    w = Tensor(np.ones((2, 2)), requires_grad=True)

    def step(x):
        w.grad = None
        (Tensor(x) @ w).tanh().sum().backward()
        return w.grad

    f = autodiff.compile(step)
    f(np.ones((1, 2)))
    f(np.ones((1, 2)))
    w.data = np.full((2, 3), 0.5)  # (a buffer of the old shape would broadcast silently)
    got = f(np.ones((1, 2)))
    assert f.traces == 2
    np.testing.assert_array_equal(got.data, step(np.ones((1, 2))).data)


def test_a_replay_that_is_already_running_is_refused():
    w = Tensor(np.ones(2), requires_grad=True)
    f = autodiff.compile(lambda x: (Tensor(x) * w).sum())
    f(np.ones(2))
    plan = _plan(f)
    plan.running.acquire()
    try:
        with pytest.raises(CompileError, match="called again while a replay of it runs"):
            f(np.ones(2))
    finally:
        plan.running.release()
    f(np.ones(2))


_ALWAYS = ("add", "sub", "mul", "neg", "exp", "tanh", "sigmoid", "relu", "add_const",
           "mul_const", "matmul", "linear")  # (lowered at every shape here)
_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), ())]


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if n != "affine" and (
    callable(op.kernel) or (op.kernel or op.code or (None, None))[1] is not None)))
def test_each_lowered_template_computes_the_ops_own_arrays(name):
    """Where the lowering takes a template, its calls give forward's and vjp's arrays;
    where it refuses one, the replay calls the op (never a different answer)."""
    op = OPS[name]
    rng = np.random.default_rng(1)
    for shapes in _SHAPES:
        arity = 3 if name == "linear" else len(templates(op, 1)[1])
        if name == "linear":
            shapes = ((3, 4), (5, 4), (5,))
        elif name == "matmul":
            shapes = ((3, 4), (4, 2))
        opts = {"c": 0.5} if name.endswith("_const") else {}
        for dtype in (np.float64, np.float32):
            kernels = Kernels({})
            xs = [np.asarray(rng.standard_normal(s), dtype) for s in shapes[:arity]]
            out = np.asarray(op.forward(*xs, **opts))
            names = [f"s{k}" for k in range(arity)]
            fwd = kernels.forward(op, names, xs, opts, out)
            if fwd is not None:
                env = dict(kernels.ns, **dict(zip(names, xs)))
                exec("\n".join(x.strip() for x in fwd[0]) + f"\n_r = {fwd[1]}", env)
                assert same_array(np.asarray(env["_r"]), out)
            lowered = kernels.vjps(op, "g9", "s9", names, xs, opts, out, [True] * arity,
                                   [False] * arity)
            if lowered is None:
                assert name not in _ALWAYS, (name, shapes, dtype)
                continue
            g = np.asarray(rng.standard_normal(out.shape), dtype)
            env = dict(kernels.ns, **dict(zip(names, xs)), g9=g, s9=out)
            need = {"need": (True,) * arity} if op.masked else {}
            want = op.vjp(g, out, *(xs if op.reads_inputs else ()), **opts, **need)
            for (lines, expr, _), w in zip(lowered, want):
                exec("\n".join(x.strip() for x in lines) + f"\n_r = {expr}", env)
                assert same_array(np.asarray(env["_r"]), np.asarray(w)), (name, shapes)


def test_the_lowering_refuses_what_it_cannot_check():
    kernels = Kernels({})
    x = np.ones((2, 2))
    samples = {"x": x}
    assert kernels.checked("x ** 2", samples, x ** 2, fresh=False) is None  # (no power)
    assert kernels.checked("x * 2", samples, x * 3, fresh=False) is None    # (other numbers)
    assert kernels.checked("x * 2", samples, (x * 2).astype(np.float32), fresh=False) is None
    assert kernels.checked("x * 2", samples, x * 2, fresh=False) is not None


def test_a_shape_the_values_decide_gets_no_kept_buffer():
    w = Tensor(np.array(1.5), requires_grad=True)

    def step(x):
        w.grad = None
        picked = autodiff.where(Tensor(x) > 0)[0].double()  # (as long as x has positives)
        y = picked * w
        y.sum().backward()
        return y, w.grad

    f = autodiff.compile(step)
    f(np.array([1.0, 2.0, 3.0, -1.0]))
    for x in (np.array([-1.0, -1.0, 5.0, -1.0]), np.array([1.0, 2.0, 3.0, -1.0])):
        got, want = f(x), step(x)
        for g, e in zip(got, want):
            assert same_array(np.asarray(g.data), np.asarray(e.data))


def test_an_argument_in_another_memory_order_is_summed_as_eagerly():
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal(3), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)

    def step(x):
        w.grad = b.grad = None
        h = Tensor(x) * w + b
        (h * h).sum().backward()
        return w.grad, b.grad

    f = autodiff.compile(step)
    for order in ("C", "F", "F", "C"):
        x = np.asarray(rng.standard_normal((50, 3)) * 1e8, order=order)
        for g, e in zip(f(x), step(x)):
            assert same_array(g.data, e.data), order


def _kernels(**shapes):
    ns = {name: np.empty(shape) for name, shape in shapes.items()}
    ns.update(U_add=np.add, U_tanh=np.tanh, V1=lambda x: x)
    return Kernels(ns), ns


def test_buffers_whose_lives_do_not_overlap_share_one_array():
    k, ns = _kernels(B0=(3,), B1=(3,), B2=(3,), B3=(2,))
    lines = ["    s1 = U_tanh(s0, out=B0)",        # B0 lives from here ...
             "    s2 = s1",                         # (through its other name)
             "    s3 = U_add(s2, s2, out=B1)",      # ... to here: B1 overlaps it
             "    s4 = U_tanh(s3, out=B2)",         # B0 is free again: B2 takes its array
             "    s5 = U_tanh(s4, out=B3)"]         # another shape: its own array
    arrays = {b: ns[b] for b in ns if b.startswith("B")}
    assert k.share(lines) == 3
    assert ns["B2"] is arrays["B0"] and ns["B1"] is arrays["B1"]
    assert ns["B3"] is arrays["B3"] and ns["B0"] is not ns["B1"]


@pytest.mark.parametrize("kept_by", [
    "    q = V1(s2)",                  # an op's function may keep what it is given
    "    return _wrap(s2)",            # a result
    "    if s2.shape != (3,): s2 = _fit(s2, s0)"])
def test_a_buffer_another_line_may_keep_gets_an_array_of_its_own(kept_by):
    k, ns = _kernels(B0=(3,), B1=(3,))
    lines = ["    s1 = U_tanh(s0, out=B0)", "    s2 = s1", kept_by,
             "    s3 = U_tanh(s0, out=B1)"]
    k.share(lines)
    assert ns["B1"] is not ns["B0"]


def test_a_buffer_read_before_it_is_written_keeps_its_array():
    # it would carry numbers from one call to the next: no other buffer may write it
    k, ns = _kernels(B0=(3,), B1=(3,))
    lines = ["    s1 = U_tanh(B0, out=B1)", "    s2 = U_tanh(s1, out=B0)",
             "    s3 = U_tanh(s2, out=B1)"]
    k.share(lines)
    assert ns["B0"] is not ns["B1"]


def test_a_long_chain_works_in_a_few_arrays_and_still_equals_eager():
    rng = np.random.default_rng(3)
    W, M, B = (Tensor(rng.standard_normal((8, 8))) for _ in range(3))
    x = Tensor(rng.standard_normal((8, 8)), requires_grad=True)
    seed = np.ones((8, 8))

    def step():
        x.grad = None
        y = _chain(x, W, M, B, cycles=40)
        y.backward(seed)
        return y, x.grad

    eager = [np.array(t.data) for t in step()]
    f = autodiff.compile(step)
    for _ in range(3):
        got = [np.array(t.data) for t in f()]
        assert all(same_array(a, b) for a, b in zip(got, eager))
    ns = _plan(f).replay.__globals__
    buffers = [v for name, v in ns.items() if name[:1] == "B" and name[1:].isdigit()]
    assert len(buffers) > 200 and len({id(b) for b in buffers}) < 50



def _write(kind, p, h):
    if kind == "copy_":
        p.copy_(h.data)
    elif kind == "add_":
        p.add_(h.data)
    elif kind == "setitem":
        p[...] = h.data
    else:  # clamp_
        with autodiff.no_grad():
            p.clamp_(h.data)


@pytest.mark.parametrize("kind", ["copy_", "add_", "setitem", "clamp_"])
def test_an_in_place_update_reading_an_intermediates_array_sees_its_values(kind):
    # h's array is read by the update, which share() must see: else it hands h's buffer
    # to a later op of the same shape before the update reads it.
    def run(compiled):
        p = Tensor(np.full(3, -5.0))

        def step(x):
            h = (Tensor(x) * 2.0).tanh()
            k = (h * 3.0).exp()
            m = (k + 1.0).sin()   # (may be written into h's array)
            n = (m * 0.5).tanh()
            _write(kind, p, h)
            return n

        f = autodiff.compile(step) if compiled else step
        outs = [f(np.full(3, v)).data.copy() for v in (0.1, 0.2, 0.3)]
        return outs, p.data.copy()

    (eager_outs, eager_p), (outs, p) = run(False), run(True)
    for a, b in zip(outs, eager_outs):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(p, eager_p, rtol=1e-12)
