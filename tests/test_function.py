"""`autodiff.Function` (PyTorch's torch.autograd.Function) and `grad_fn`, through the one
engine: gradients against finite differences and PyTorch, double backward, release,
in-place detection, hooks, pictures, and every refused misuse."""

import copy
import gc
import pickle
import weakref

import numpy as np
import pytest

import autodiff
from autodiff import Function, Tensor, Value, grad, gradcheck, no_grad
from autodiff.engine import ModifiedInPlaceError, ReleasedGraphError
from autodiff.errors import ShapeError
from autodiff.viz import backward_steps, chain_rule, draw_graph


def _torch():
    return pytest.importorskip("torch")


def _g(t):
    return np.asarray(t.grad)


# ---------------------------------------------------------------------------------------
# The Functions under test, in the shapes PyTorch's documentation teaches them.

class Exp(Function):
    """exp(x); d/dx = exp(x) = out (saved)"""

    @staticmethod
    def forward(ctx, x):
        out = x.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out


class LinearFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias=None):
        ctx.save_for_backward(input, weight, bias)
        ctx.seen_needs = ctx.needs_input_grad
        out = input @ weight.T
        return out if bias is None else out + bias

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, bias = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output @ weight
        if ctx.needs_input_grad[1]:
            grad_weight = grad_output.T @ input
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias


class MulConstant(Function):
    @staticmethod
    def forward(ctx, tensor, constant):
        ctx.constant = constant  # not a Tensor: an attribute of ctx, no gradient
        return tensor * constant

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.constant, None


class Cube(Function):
    """x**3 scaled; a non-Tensor argument with a default, and a keyword-only one"""

    @staticmethod
    def forward(ctx, x, scale=1.0, *, shift=0.0):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale + shift

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x * x * ctx.scale, None


class SetupExp(Function):
    """PyTorch's other style: forward without ctx, then setup_context"""

    @staticmethod
    def forward(x):
        return x.exp()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out


def _torch_functions(torch):
    class TExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = x.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad_output):
            (out,) = ctx.saved_tensors
            return grad_output * out

    class TLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias=None):
            ctx.save_for_backward(input, weight, bias)
            ctx.seen_needs = ctx.needs_input_grad
            out = input @ weight.T
            return out if bias is None else out + bias

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output @ weight
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.T @ input
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias

    class TMulConstant(torch.autograd.Function):
        @staticmethod
        def forward(ctx, tensor, constant):
            ctx.constant = constant
            return tensor * constant

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.constant, None

    class TCube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale=1.0):
            ctx.save_for_backward(x)
            ctx.scale = scale
            return x * x * x * scale

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x * x * ctx.scale, None

    return {"exp": TExp, "linear": TLinear, "mulconstant": TMulConstant, "cube": TCube}


def _leaf(rng, *shape, requires_grad=True):
    return Tensor(rng.normal(size=shape), requires_grad=requires_grad)


# ---------------------------------------------------------------------------------------
# Gradients: finite differences, PyTorch

def test_gradcheck_exp(rng):
    assert gradcheck(Exp.apply, [_leaf(rng, 3, 2)])


@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck_linear(rng, with_bias):
    x, w, b = _leaf(rng, 4, 3), _leaf(rng, 2, 3), _leaf(rng, 2)
    if with_bias:
        assert gradcheck(LinearFunction.apply, [x, w, b])
    else:
        assert gradcheck(LinearFunction.apply, [x, w])


def test_gradcheck_with_non_tensor_arguments(rng):
    x = _leaf(rng, 5)
    assert gradcheck(lambda t: MulConstant.apply(t, -2.5), [x])
    assert gradcheck(lambda t: Cube.apply(t, 0.5, shift=3.0), [x])
    assert gradcheck(lambda t: Cube.apply(t, scale=2.0), [x])
    assert gradcheck(SetupExp.apply, [x])


def test_gradcheck_catches_a_wrong_backward(rng):
    class WrongExp(Exp):
        @staticmethod
        def backward(ctx, grad_output):
            (out,) = ctx.saved_tensors
            return grad_output * out * 1.01

    with pytest.raises(autodiff.GradcheckError, match="input 0"):
        gradcheck(WrongExp.apply, [_leaf(rng, 3)])


def test_function_inside_a_larger_graph_and_used_twice(rng):
    x, w = _leaf(rng, 4, 3), _leaf(rng, 2, 3)

    def f(x, w):
        h = Exp.apply(LinearFunction.apply(x, w).tanh())
        return (h * LinearFunction.apply(x, w)).sum() + MulConstant.apply(h, 3.0).mean()

    assert gradcheck(f, [x, w])


def test_the_same_tensor_as_two_inputs_gets_both_gradients(rng):
    class Mul(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g * b, g * a

    x = _leaf(rng, 3)
    Mul.apply(x, x).sum().backward()
    np.testing.assert_allclose(_g(x), 2 * x.data)
    assert gradcheck(lambda t: Mul.apply(t, t), [x])


def test_grad_for_some_inputs_only(rng):
    x, w, b = _leaf(rng, 4, 3), _leaf(rng, 2, 3), _leaf(rng, 2)
    out = LinearFunction.apply(x, w, b)
    (gw,) = grad((out * out).sum(), w)
    np.testing.assert_allclose(gw.data, 2 * out.data.T @ x.data, rtol=1e-12)
    assert x.grad is None and w.grad is None and b.grad is None


def test_training_with_a_function_equals_training_with_primitives(rng):
    from nn import optim

    X, Y = Tensor(rng.normal(size=(8, 3))), Tensor(rng.normal(size=(8, 2)))
    w0, b0 = rng.normal(size=(2, 3)), rng.normal(size=(2,))
    losses = {}
    for how in ("function", "primitives"):
        w, b = Tensor(w0.copy(), requires_grad=True), Tensor(b0.copy(), requires_grad=True)
        opt = optim.SGD([w, b], lr=0.1, momentum=0.9)
        losses[how] = []
        for _ in range(5):
            opt.zero_grad()
            out = LinearFunction.apply(X, w, b) if how == "function" else X @ w.T + b
            loss = ((out - Y) ** 2).mean()
            loss.backward()
            opt.step()  # in place: the next forward saves the new version
            losses[how].append(float(loss))
    np.testing.assert_allclose(losses["function"], losses["primitives"], rtol=1e-12)
    assert losses["function"][-1] < losses["function"][0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_torch(rng, dtype):
    torch = _torch()
    T = _torch_functions(torch)
    arrays = [rng.normal(size=s).astype(dtype) for s in ((4, 3), (2, 3), (2,))]
    cot = rng.normal(size=(4, 2)).astype(dtype)

    def ours(x, w, b):
        h = LinearFunction.apply(x, w, b)
        return Cube.apply(MulConstant.apply(Exp.apply(h * 0.3), 0.7), 1.5)

    def theirs(x, w, b):
        h = T["linear"].apply(x, w, b)
        return T["cube"].apply(T["mulconstant"].apply(T["exp"].apply(h * 0.3), 0.7), 1.5)

    xs = [Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = ours(*xs), theirs(*ts)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol)
    out.backward(cot)
    tout.backward(torch.from_numpy(cot))
    for x, t in zip(xs, ts):
        assert _g(x).dtype == dtype
        np.testing.assert_allclose(_g(x), t.grad.numpy(), **tol)


@pytest.mark.parametrize("which", [(True, True, False), (False, True, True), (True, False, True)])
def test_needs_input_grad_as_torch(rng, which):
    torch = _torch()
    T = _torch_functions(torch)
    arrays = [rng.normal(size=s) for s in ((4, 3), (2, 3), (2,))]
    xs = [Tensor(a, requires_grad=r) for a, r in zip(arrays, which)]
    ts = [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, which)]
    out, tout = LinearFunction.apply(*xs), T["linear"].apply(*ts)
    assert out.grad_fn.node._kw["ctx"].seen_needs == which == tout.grad_fn.seen_needs
    out.sum().backward()
    tout.sum().backward()
    for x, t, r in zip(xs, ts, which):
        assert (x.grad is None) == (not r) == (t.grad is None)
        if r:
            np.testing.assert_allclose(_g(x), t.grad.numpy(), rtol=1e-12)


def test_defaults_and_keywords_count_as_inputs_as_in_torch(rng):
    torch = _torch()
    T = _torch_functions(torch)
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, x, scale=2.0):
            seen["ours"] = ctx.needs_input_grad
            return x * scale

        @staticmethod
        def backward(ctx, g):
            return g * 2.0, None

    x = Tensor([1.0, 2.0], requires_grad=True)
    Probe.apply(x)
    Probe.apply(x, scale=3.0)
    assert seen["ours"] == (True, False)
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    y = T["cube"].apply(t, scale=2.0)  # torch binds keywords to positions too
    ours = Cube.apply(Tensor([1.0, 2.0], requires_grad=True), scale=2.0)
    np.testing.assert_allclose(ours.data, y.detach().numpy())


def test_setup_context_style_against_torch(rng):
    torch = _torch()

    class TSetupExp(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.exp()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, grad_output):
            (out,) = ctx.saved_tensors
            return grad_output * out

    a = rng.normal(size=(3,))
    x, t = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (SetupExp.apply(x) * x).sum().backward()
    (TSetupExp.apply(t) * t).sum().backward()
    np.testing.assert_allclose(_g(x), t.grad.numpy(), rtol=1e-12)


def test_a_broadcast_gradient_is_summed_back_as_in_torch():
    torch = _torch()

    class Spread(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return np.broadcast_to(np.asarray(g), (4, 3))  # the input's shape is (3,)

    class TSpread(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.expand(4, 3)

    x, t = Tensor([1.0, 2.0, 3.0], requires_grad=True), torch.ones(3, requires_grad=True)
    Spread.apply(x).sum().backward()
    TSpread.apply(t).sum().backward()
    np.testing.assert_array_equal(_g(x), t.grad.numpy())  # [4, 4, 4]


# ---------------------------------------------------------------------------------------
# What backward may return

@pytest.mark.parametrize("form", ["tensor", "ndarray", "number", "numpy scalar", "int array"])
def test_backward_may_return_a_tensor_an_array_or_a_number(form):
    make = {"tensor": lambda g: g * 3.0, "ndarray": lambda g: np.asarray(g) * 3.0,
            "number": lambda g: 3.0, "numpy scalar": lambda g: np.float64(3.0),
            "int array": lambda g: np.full(g.shape, 3)}[form]

    class Triple(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3.0

        @staticmethod
        def backward(ctx, g):
            return make(g)

    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    Triple.apply(x).sum().backward()
    assert _g(x).dtype == np.float32 and _g(x).shape == (2, 2)
    np.testing.assert_array_equal(_g(x), 3.0)


def test_a_none_gradient_leaves_the_input_without_one(rng):
    class FirstOnly(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, g):
            return g, None

    a, b = _leaf(rng, 3), _leaf(rng, 3)
    (FirstOnly.apply(a, b) + b).sum().backward()
    np.testing.assert_array_equal(_g(a), 1.0)
    np.testing.assert_array_equal(_g(b), 1.0)  # from the `+ b` only
    with pytest.raises(RuntimeError, match="not used"):
        grad(FirstOnly.apply(a, b).sum(), b)
    assert grad(FirstOnly.apply(a, b).sum(), b, allow_unused=True) == (None,)


def test_gradients_returned_twice_or_held_elsewhere_are_not_shared_by_grads():
    class Add(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.ones = np.ones(3)
            return a + b

        @staticmethod
        def backward(ctx, g):
            return g, g  # the incoming gradient, passed through to both

    class FromCtx(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.ones = np.ones(3)
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            return ctx.ones  # an array ctx keeps: must not become .grad itself

    a, b = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    y = Add.apply(a, b).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(_g(a), 2.0)
    np.testing.assert_array_equal(_g(b), 2.0)
    c = Tensor(np.zeros(3), requires_grad=True)  # no .grad yet: it would keep the array
    z = FromCtx.apply(c)
    ctx = z.grad_fn.node._kw["ctx"]
    z.backward(np.ones(3), retain_graph=True)
    z.backward(np.ones(3))
    np.testing.assert_array_equal(_g(c), 2.0)
    np.testing.assert_array_equal(ctx.ones, 1.0)


def test_grad_output_is_read_only_in_a_plain_backward():
    class Scribble(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2.0

        @staticmethod
        def backward(ctx, g):
            np.asarray(g)[...] = 0  # would change a gradient the engine may share
            return g

    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="read-only"):
        Scribble.apply(x).sum().backward()


# ---------------------------------------------------------------------------------------
# Higher order: create_graph records the user's backward

def test_double_backward_of_exp(rng):
    x = _leaf(rng, 4)
    (d1,) = grad(Exp.apply(x).sum(), x, create_graph=True)
    (d2,) = grad(d1.sum(), x)
    np.testing.assert_allclose(d2.data, np.exp(x.data), rtol=1e-12)
    assert gradcheck(lambda t: grad(Exp.apply(t).sum(), t, create_graph=True)[0], [x])


def test_double_backward_of_linear_against_torch(rng):
    torch = _torch()
    T = _torch_functions(torch)
    arrays = [rng.normal(size=s) for s in ((4, 3), (2, 3), (2,))]
    v = [rng.normal(size=a.shape) for a in arrays]

    def hvp(apply, xs, wrap):
        out = apply(*xs)
        loss = (out * out).sum()
        gs = (torch.autograd.grad if wrap is torch.tensor else grad)(
            loss, xs, create_graph=True)
        dot = sum((g * wrap(vi)).sum() for g, vi in zip(gs, v))
        return (torch.autograd.grad if wrap is torch.tensor else grad)(dot, xs)

    ours = hvp(LinearFunction.apply, [Tensor(a, requires_grad=True) for a in arrays], Tensor)
    theirs = hvp(T["linear"].apply, [torch.tensor(a, requires_grad=True) for a in arrays],
                 torch.tensor)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.data, t.numpy(), rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_first_derivative_of_linear(rng):
    x, w, b = _leaf(rng, 3, 2), _leaf(rng, 2, 2), _leaf(rng, 2)

    def first(x, w, b):
        out = LinearFunction.apply(x, w, b)
        gx, gw = grad((out.tanh() * out).sum(), [x, w], create_graph=True)
        return (gx * gx).sum() + (gw * w).sum()

    assert gradcheck(first, [x, w, b])


def test_a_backward_that_calls_another_function_is_differentiable_again(rng):
    class ExpViaExp(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.exp()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * Exp.apply(x)  # recorded with create_graph, as any op is

    x = _leaf(rng, 3)
    assert gradcheck(lambda t: grad(ExpViaExp.apply(t).sum(), t, create_graph=True)[0], [x])


def test_a_backward_written_with_arrays_gives_constant_gradients_under_create_graph():
    class ArrayExp(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.exp()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return np.asarray(g) * np.exp(x.data)  # not recorded: a constant

    x = Tensor([0.5], requires_grad=True)
    (d1,) = grad(ArrayExp.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(d1.data, np.exp(0.5))
    assert d1.grad_fn is None  # as in PyTorch, the double backward then has nothing to go on


# ---------------------------------------------------------------------------------------
# The engine's machinery: hooks, no_grad, release, in-place changes, copies

def test_hooks_on_the_output_and_the_input():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = Exp.apply(x)
    seen = []
    y.register_hook(lambda g: seen.append(("y", np.array(g.data))) or g * 2)
    x.register_hook(lambda g: seen.append(("x", np.array(g.data))))
    y.sum().backward()
    assert [name for name, _ in seen] == ["y", "x"]
    np.testing.assert_array_equal(seen[0][1], [1.0, 1.0])
    np.testing.assert_allclose(_g(x), 2 * np.exp([1.0, 2.0]))


def test_under_no_grad_forward_runs_and_nothing_is_recorded():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = LinearFunction.apply(x.reshape(1, 2), Tensor(np.eye(2), requires_grad=True))
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    np.testing.assert_array_equal(y.data, [[1.0, 2.0]])
    z = Exp.apply(Tensor([0.0]))  # no input requires grad
    assert z.grad_fn is None and not z.requires_grad


def test_release_frees_the_saved_tensors_and_a_second_backward_raises():
    class SavesAnIntermediate(Function):
        @staticmethod
        def forward(ctx, x):
            e = x.exp()
            ctx.save_for_backward(e)
            return e * 2

        @staticmethod
        def backward(ctx, g):
            (e,) = ctx.saved_tensors
            return g * 2 * e

    x = Tensor([0.1, 0.2], requires_grad=True)
    y = SavesAnIntermediate.apply(x)
    ctx = y.grad_fn.node._kw["ctx"]
    saved = weakref.ref(ctx._saved[0][0])
    ctx_ref = weakref.ref(ctx)
    del ctx
    y.backward(np.ones(2))
    gc.collect()
    assert saved() is None and ctx_ref() is None  # released, not just hidden
    with pytest.raises(ReleasedGraphError, match="'SavesAnIntermediate' node a second time"):
        y.backward(np.ones(2))
    np.testing.assert_allclose(_g(x), 2 * np.exp([0.1, 0.2]))


def test_retain_graph_allows_a_second_backward():
    x = Tensor([0.3], requires_grad=True)
    loss = Exp.apply(x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(_g(x), 2 * np.exp(0.3))


def test_a_saved_input_changed_in_place_makes_backward_raise():
    x = Tensor([1.0, 2.0], requires_grad=True)
    w = Tensor([[1.0, 0.0], [0.5, 1.0]], requires_grad=True)
    loss = LinearFunction.apply(x.reshape(1, 2), w).sum()
    with no_grad():
        w.mul_(2.0)
    with pytest.raises(ModifiedInPlaceError,
                       match=r"saved tensor 1 .*'LinearFunction' Function was modified by an "
                             r"in-place operation"):
        loss.backward()


def test_a_saved_output_changed_in_place_makes_backward_raise():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = Exp.apply(x)
    loss = y.sum()
    with no_grad():
        y.add_(1.0)
    with pytest.raises(ModifiedInPlaceError, match="the output .*'Exp' Function was modified"):
        loss.backward()


def test_an_input_that_was_not_saved_may_change_in_place():
    x = Tensor([1.0, 2.0], requires_grad=True)
    loss = MulConstant.apply(x, 3.0).sum()
    with no_grad():
        x.add_(1.0)
    loss.backward()  # as in PyTorch: MulConstant reads nothing of x
    np.testing.assert_array_equal(_g(x), 3.0)


def test_an_output_that_is_the_input_shares_its_version():
    class Same(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x  # the very input: the output shares its memory

        @staticmethod
        def backward(ctx, g):
            ctx.saved_tensors  # (versions are checked as they are read, as in PyTorch)
            return g

    x = Tensor([1.0, 2.0], requires_grad=True)
    loss = (Same.apply(x) * 2.0).sum()
    with no_grad():
        x.mul_(3.0)
    with pytest.raises(ModifiedInPlaceError):
        loss.backward()


def test_deepcopy_and_pickle_of_a_graph_with_a_function_node():
    x = Tensor([0.5, 1.5], requires_grad=True)
    for copied in (copy.deepcopy(Exp.apply(x)), pickle.loads(pickle.dumps(Exp.apply(x)))):
        assert copied._prim is Exp._op  # one op record per class, also in copies
        copied.sum().backward()
        leaf = copied._parents[0]
        np.testing.assert_allclose(_g(leaf), np.exp([0.5, 1.5]))


def test_one_op_record_per_class_outside_the_primitives_table():
    x = Tensor([1.0], requires_grad=True)
    assert Exp.apply(x)._prim is Exp.apply(x)._prim is Exp._op
    assert Exp._op.name == "Exp" and "Exp" not in autodiff.OPS

    class Exp2(Exp):
        pass

    assert Exp2.apply(x).grad_fn.name() == "Exp2Backward" and Exp2._op is not Exp._op
    assert Exp._op.math == "exp(x); d/dx = exp(x) = out (saved)"
    assert "LinearFunction.backward" in LinearFunction._op.math


def test_non_differentiable_outputs_are_constants():
    class Argsort(Function):
        @staticmethod
        def forward(ctx, x):
            return Tensor(np.argsort(x.data))  # integer: never differentiable

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("not called")

    class Marked(Function):
        @staticmethod
        def forward(ctx, x):
            out = x * 1.0
            ctx.mark_non_differentiable(out)
            ctx.set_materialize_grads(False)
            return out

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("not called")

    x = Tensor([3.0, 1.0, 2.0], requires_grad=True)
    for y in (Argsort.apply(x), Marked.apply(x)):
        assert not y.requires_grad and y.grad_fn is None
    np.testing.assert_array_equal(Argsort.apply(x).data, [1, 2, 0])


# ---------------------------------------------------------------------------------------
# Misuse: each a clear error naming the Function and what is wrong

def _fn(backward, forward=lambda ctx, x, k=2.0: x * k, name="Bad"):
    return type(name, (Function,), {"forward": staticmethod(forward),
                                    "backward": staticmethod(backward)})


@pytest.mark.parametrize("backward, error, message", [
    (lambda ctx, g: g, RuntimeError, r"Bad.backward returned 1 gradient, but forward has 2 "
                                     r"inputs"),
    (lambda ctx, g: (g, None, g), RuntimeError, r"returned 3 gradients"),
    (lambda ctx, g: (g, g), RuntimeError, r"for input 1 \(k\), which is a float, not a Tensor"),
    (lambda ctx, g: (g[:1], None), ShapeError, r"shape \(1,\) for input 0 \(x\) of shape "
                                               r"\(3,\)"),
    (lambda ctx, g: (np.ones((3, 2)), None), ShapeError, r"shape \(3, 2\) for input 0"),
    (lambda ctx, g: ("grad", None), TypeError, r"returned a str for input 0 \(x\)"),
    (lambda ctx, g: (Value(1.0), None), TypeError, r"returned a Value for input 0"),
    (lambda ctx, g: (np.array(["a", "b", "c"]), None), TypeError, r"dtype <U1"),
])
def test_wrong_gradients_are_refused(backward, error, message):
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(error, match=message):
        _fn(backward).apply(x).sum().backward()


def test_extra_trailing_none_gradients_are_accepted_as_in_torch():
    x = Tensor([1.0, 2.0], requires_grad=True)
    _fn(lambda ctx, g: (g * 2.0, None, None)).apply(x).sum().backward()
    np.testing.assert_array_equal(_g(x), 2.0)


@pytest.mark.parametrize("forward, error, message", [
    (lambda ctx, x: (x * 2, x * 3), NotImplementedError, r"Bad.forward returned a tuple of 2 "
                                                         r"values; Functions with more than one"),
    (lambda ctx, x: x.data * 2, TypeError, r"Bad.forward must return a Tensor, got a ndarray"),
    (lambda ctx, x: ctx.save_for_backward(x, 2.0), TypeError, r"argument 1 is a float"),
    (lambda ctx, x: x.add_(1.0), RuntimeError, r"changed input 0 \(x\), which requires grad, "
                                               r"in place"),
    (lambda ctx, x: ctx.mark_dirty(x), NotImplementedError, r"mark_dirty"),
    (lambda ctx, x: ctx.saved_tensors, RuntimeError, r"only in backward"),
    (lambda ctx, x: ctx.mark_non_differentiable(x) or x * 2, ValueError, r"outputs of forward"),
])
def test_wrong_forwards_are_refused(forward, error, message):
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(error, match=message):
        _fn(lambda ctx, g: g, forward=forward).apply(x)


def test_wrong_calls_are_refused():
    x = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"Exp.apply: the arguments do not fit forward"):
        Exp.apply()
    with pytest.raises(TypeError, match=r"Exp.apply: the arguments do not fit"):
        Exp.apply(x, x)
    with pytest.raises(TypeError, match=r"input 0 \(x\) is a Value"):
        Exp.apply(Value(1.0))
    with pytest.raises(TypeError, match="keyword-only argument .shift. is a Tensor that requires"):
        Cube.apply(x, shift=Tensor([1.0], requires_grad=True))
    with pytest.raises(TypeError, match="define a subclass"):
        Function.apply(x)
    with pytest.raises(TypeError, match=r"Exp.apply\(...\), not Exp\(\)\(...\)"):
        Exp()(x)


def test_a_function_without_backward_says_so_when_differentiated():
    class NoBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    y = NoBackward.apply(Tensor([1.0], requires_grad=True))  # forward alone is fine
    with pytest.raises(NotImplementedError, match="NoBackward must define backward"):
        y.sum().backward()


def test_save_for_backward_outside_forward_is_refused():
    class Late(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            ctx.save_for_backward(g)
            return g

    with pytest.raises(RuntimeError, match="only in forward"):
        Late.apply(Tensor([1.0], requires_grad=True)).sum().backward()


# ---------------------------------------------------------------------------------------
# grad_fn on every node type

def test_grad_fn_of_leaves_constants_and_primitives():
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    assert x.grad_fn is None and c.grad_fn is None and (c * 2).grad_fn is None
    y = x * c
    assert y.grad_fn.name() == "MulBackward0" and repr(y.grad_fn) == "<MulBackward0>"
    assert y.grad_fn.op is autodiff.OPS["mul"] and y.grad_fn == y.grad_fn
    (acc, k), (const, _) = y.grad_fn.next_functions
    assert acc.name() == "AccumulateGrad" and acc.variable is x and k == 0 and const is None
    z = (y.sum() + 1.0).tanh()
    assert z.grad_fn.next_functions[0][0].name() == "AddConstBackward0"
    assert z.grad_fn.next_functions[0][0].next_functions[0][0].name() == "SumBackward0"
    with no_grad():
        assert (x * x).grad_fn is None


def test_grad_fn_of_values():
    a = Value(2.0)
    b = (a * a).relu()
    assert a.grad_fn is None
    assert b.grad_fn.name() == "ReluBackward0"
    assert [f.name() for f, _ in b.grad_fn.next_functions] == ["MulBackward0"]
    assert b.grad_fn.next_functions[0][0].next_functions[0][0].variable is a


def test_grad_fn_names_match_torch_where_the_op_is_the_same():
    torch = _torch()
    x = Tensor([0.5, 1.5], requires_grad=True)
    t = torch.tensor([0.5, 1.5], requires_grad=True)
    pairs = [(lambda a: a + a, lambda a: a + a), (lambda a: a * a, lambda a: a * a),
             (lambda a: a / a, lambda a: a / a), (lambda a: -a, lambda a: -a),
             (lambda a: a.exp(), lambda a: a.exp()), (lambda a: a.tanh(), lambda a: a.tanh()),
             (lambda a: a.sigmoid(), lambda a: a.sigmoid()),
             (lambda a: a.relu(), lambda a: a.relu()), (lambda a: a.sum(), lambda a: a.sum()),
             (lambda a: a.mean(), lambda a: a.mean()), (lambda a: a.log(), lambda a: a.log())]
    for ours, theirs in pairs:
        assert ours(x).grad_fn.name() == theirs(t).grad_fn.name()
    T = _torch_functions(torch)
    assert Exp.apply(x).grad_fn.name() == "ExpBackward"
    assert T["exp"].apply(t).grad_fn.name() == "TExpBackward"  # class name + "Backward"


# ---------------------------------------------------------------------------------------
# Pictures: a Function node is drawn and explained like any op

def test_pictures_of_a_graph_with_a_function_node():
    x = Tensor([0.2, -0.4], requires_grad=True, label="x")
    w = Tensor([[1.0, 2.0]], requires_grad=True, label="w")
    y = Exp.apply(LinearFunction.apply(x.reshape(1, 2), w)).sum()
    y.label = "y"
    y.backward(retain_graph=True)
    src = draw_graph(y).source
    assert 'label=Exp' in src and 'label=LinearFunction' in src
    assert "Exp: exp(x); d/dx = exp(x) = out (saved)" in src  # the tooltip: name and math
    assert "label=Exp" in draw_graph(y, view="backward").source
    explained = chain_rule(y, wrt=w)
    assert explained.agrees and "Exp" in str(explained)
    steps = backward_steps(y)
    assert [s.name for s in steps][:3] == ["y", "Exp", "LinearFunction"]
    by_node = {id(s.node): s.grad for s in steps}
    np.testing.assert_allclose(by_node[id(w)], _g(w))
    assert "grad_fn=<ExpBackward>" in repr(y._parents[0])


def test_pictures_after_a_releasing_backward():
    x = Tensor([0.2, -0.4], requires_grad=True, label="x")
    y = Exp.apply(x).sum()
    y.backward()
    assert "label=Exp" in draw_graph(y).source  # drawn from the forward values and .grad
    with pytest.raises(ReleasedGraphError, match="retain_graph=True"):
        chain_rule(y, wrt=x)
    s = Exp.apply(Tensor(0.5, requires_grad=True))  # one element: edges labelled with numbers
    s.backward(retain_graph=True)
    assert f"{np.exp(0.5):.4g}" in draw_graph(s).source
