"""User mistakes raise exceptions whose message names the operation and the offending
shapes, dtypes or values (API.md, "Errors")."""

import re

import numpy as np
import pytest

import autodiff
from autodiff import (GradcheckError, ShapeError, Tensor, Value, concatenate, grad,
                      gradcheck, maximum, stack, where)


def esc(text: str) -> str:
    return re.escape(text)


def ones(*shape):
    return Tensor(np.ones(shape), requires_grad=True)


# ---------------------------------------------------------------------------
# shapes

@pytest.mark.parametrize("op,fn", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b), ("maximum", maximum),
])
def test_shapes_that_do_not_broadcast(op, fn):
    with pytest.raises(ShapeError, match=rf"^{op}\b.*{esc('(2, 3)')}.*{esc('(4,)')}"):
        fn(ones(2, 3), ones(4))
    with pytest.raises(ValueError):          # ShapeError is a ValueError, as numpy's is
        fn(ones(2, 3), ones(4))


def test_reflected_shape_error_names_the_op():
    with pytest.raises(ShapeError, match=rf"add.*{esc('(4,)')}.*{esc('(2, 3)')}"):
        np.ones(4) + ones(2, 3)


@pytest.mark.parametrize("sa,sb,inner", [((3, 4), (5, 2), "4 and 5"), ((3,), (4,), "3 and 4"),
                                         ((2, 3), (2,), "3 and 2")])
def test_matmul_mismatch(sa, sb, inner):
    with pytest.raises(ShapeError, match=rf"matmul.*{esc(str(sa))}.*{esc(str(sb))}.*{inner}"):
        ones(*sa) @ ones(*sb)


def test_matmul_batch_mismatch_and_scalar():
    with pytest.raises(ShapeError, match=rf"matmul.*{esc('(2, 3, 4)')}.*{esc('(3, 4, 5)')}"):
        ones(2, 3, 4) @ ones(3, 4, 5)
    with pytest.raises(ShapeError, match=rf"matmul.*{esc('()')}.*{esc('(4,)')}"):
        Tensor(1.0) @ ones(4)


def test_where_shapes_and_cond_dtype():
    with pytest.raises(ShapeError, match=rf"where.*{esc('(4,)')}.*{esc('(2, 3)')}"):
        where(np.ones(4, dtype=bool), ones(2, 3), 0.0)
    with pytest.raises(TypeError, match="where.*int64"):
        where(np.ones(3, dtype=np.int64), ones(2, 3), 0.0)


def test_concatenate_and_stack_shapes():
    with pytest.raises(ShapeError, match=rf"concatenate.*{esc('(2, 3)')}.*{esc('(2, 4)')}"):
        concatenate([ones(2, 3), ones(2, 4)], axis=0)
    with pytest.raises(ShapeError, match=rf"stack.*{esc('(2, 3)')}.*{esc('(2, 4)')}"):
        stack([ones(2, 3), ones(2, 4)])
    with pytest.raises(TypeError, match="concatenate"):
        concatenate([])


@pytest.mark.parametrize("shape,bad", [((4,), "(4,)"), ((4, -1), "(4, -1)"), ((5, 2), "(5, 2)")])
def test_reshape_to_incompatible_size(shape, bad):
    with pytest.raises(ShapeError, match=rf"reshape.*\b6\b.*{esc(bad)}"):
        ones(2, 3).reshape(*shape)


def test_transpose_with_bad_axes():
    with pytest.raises(ShapeError, match=rf"transpose.*{esc('(0, 0)')}.*{esc('(2, 3)')}"):
        ones(2, 3).transpose((0, 0))  # a permutation (numpy's spelling)
    assert ones(2, 3).transpose(0, 0).shape == (2, 3)  # two dims swapped, as PyTorch
    with pytest.raises(ShapeError, match=rf"transpose.*{esc('(0, 1, 2)')}"):
        ones(2, 3).transpose(0, 1, 2)


@pytest.mark.parametrize("name,call,axis", [
    ("sum", lambda x: x.sum(axis=2), "2"),
    ("sum", lambda x: x.sum(axis=-3), "-3"),
    ("mean", lambda x: x.mean(axis=(0, 5)), "5"),
    ("max", lambda x: x.max(axis=3), "3"),
    ("min", lambda x: x.min(axis=-4, keepdims=True), "-4"),
    ("logsumexp", lambda x: x.logsumexp(axis=2), "2"),
    ("softmax", lambda x: x.softmax(axis=2), "2"),
    ("log_softmax", lambda x: x.log_softmax(axis=-3), "-3"),
])
def test_bad_axis(name, call, axis):
    with pytest.raises(ShapeError, match=rf"^{name}\b.*axis {axis}\b.*{esc('(2, 3)')}"):
        call(ones(2, 3))


def test_bad_axis_concatenate_stack():
    with pytest.raises((IndexError, ValueError), match=r"concatenate.*axis.*2"):
        concatenate([ones(2, 3), ones(2, 3)], axis=2)
    with pytest.raises((IndexError, ValueError), match=r"stack.*axis.*4"):
        stack([ones(2, 3), ones(2, 3)], axis=4)


def test_axis_of_wrong_type():
    with pytest.raises(TypeError, match=r"sum.*axis.*1\.5"):
        ones(2, 3).sum(axis=1.5)


def test_index_out_of_range():
    with pytest.raises(IndexError, match=rf"getitem.*\b5\b.*{esc('(2, 3)')}"):
        ones(2, 3)[5]
    with pytest.raises(IndexError, match=r"getitem.*\b7\b"):
        ones(2, 3)[:, [0, 7]]


# ---------------------------------------------------------------------------
# backward

def test_backward_on_non_scalar_without_grad():
    y = ones(2, 3) * 2.0
    with pytest.raises(RuntimeError, match=rf"backward.*{esc('(2, 3)')}"):
        y.backward()


def test_backward_through_released_graph():
    y = (ones(2, 3).exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward.*retain_graph=True"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"retain_graph"):
        grad(y, y._parents[0]._parents[0]._parents[0])


def test_backward_grad_of_wrong_shape():
    y = ones(2, 3) * 2.0
    with pytest.raises(ShapeError, match=rf"backward.*{esc('(3,)')}.*{esc('(2, 3)')}"):
        y.backward(np.ones(3))
    with pytest.raises(ShapeError, match=rf"backward.*{esc('(3, 2)')}.*{esc('(2, 3)')}"):
        y.backward(Tensor(np.ones((3, 2))))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="backward.*requires_grad|backward.*require grad"):
        (Tensor([1.0]) * 2.0).sum().backward()


def test_grad_argument_errors():
    x = ones(2, 3)
    with pytest.raises(ShapeError, match=rf"grad_outputs.*{esc('(3,)')}.*{esc('(2, 3)')}"):
        grad(x * 2.0, x, grad_outputs=np.ones(3))
    with pytest.raises(RuntimeError, match=rf"grad.*{esc('(2, 3)')}"):
        grad(x * 2.0, x)
    with pytest.raises(RuntimeError, match=r"inputs\[1\].*allow_unused"):
        grad((x * 2.0).sum(), [x, ones(1)])
    with pytest.raises(TypeError, match="grad"):
        grad((x * 2.0).sum(), Value(1.0))


# ---------------------------------------------------------------------------
# data

@pytest.mark.parametrize("data,dtype", [(np.arange(3), "int64"), (np.array([True]), "bool"),
                                        (np.arange(3, dtype=np.int32), "int32")])
def test_int_or_bool_tensor_cannot_require_grad(data, dtype):
    with pytest.raises(TypeError, match=rf"Tensor.*grad.*{dtype}"):
        Tensor(data, requires_grad=True)


def test_requires_grad_on_int_via_astype():
    with pytest.raises(TypeError, match="astype.*int64"):
        ones(2).astype(np.int64)


@pytest.mark.parametrize("data,what", [("abc", "str"), ([1.0, "x"], "list"), (None, "NoneType"),
                                       ({"a": 1}, "dict")])
def test_non_numeric_tensor_data(data, what):
    with pytest.raises(TypeError, match=rf"Tensor.*{what}"):
        Tensor(data)


@pytest.mark.parametrize("data,what", [("2.0", "str"), (None, "NoneType"), ([1.0], "list"),
                                       (1 + 2j, "complex")])
def test_value_with_non_numeric(data, what):
    with pytest.raises(TypeError, match=rf"Value.*{what}"):
        Value(data)


def test_value_arithmetic_with_non_numeric():
    with pytest.raises(TypeError, match="str"):
        Value(1.0) + "a"
    with pytest.raises(TypeError, match="list"):
        Value(1.0) * [1.0]
    with pytest.raises(TypeError, match="Tensor"):
        Value(1.0) + Tensor([1.0])


def test_tensor_arithmetic_with_non_numeric():
    with pytest.raises(TypeError, match=r"add.*str"):
        ones(2) + "a"
    with pytest.raises(TypeError, match=r"mul.*Value"):
        ones(2) * Value(2.0)


def test_other_mistakes():
    with pytest.raises(ValueError, match=rf"item.*{esc('(2, 3)')}"):
        ones(2, 3).item()
    with pytest.raises(ValueError, match=r"clip.*lo=2.*hi=1"):
        ones(2).clip(2, 1)
    shape = esc("(2, 3)")
    with pytest.raises(ValueError, match=rf"{shape}.*ambiguous|ambiguous.*{shape}"):
        bool(ones(2, 3))
    with pytest.raises(RuntimeError, match="retain_grad"):
        Tensor([1.0]).retain_grad()


# ---------------------------------------------------------------------------
# gradcheck failure message: names input, index and both values

NUM = r"(-?[\d.]+(?:e[-+]?\d+)?)"


def _values(message):
    m = re.search(rf"analytic gradient {NUM} but numerical {NUM}", message)
    assert m, message
    return float(m.group(1)), float(m.group(2))


def test_gradcheck_failure_names_input_index_and_values():
    # .detach() hides one factor from the graph: analytic d/dx (x.detach() * x) is x,
    # the true derivative 2x; the worst mismatch is at the largest |x|.
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True, label="w")
    pattern = rf"input 0.*'w'.*{esc('(3,)')}.*index {esc('(2,)')}"
    with pytest.raises(GradcheckError, match=pattern) as info:
        gradcheck(lambda a: (a.detach() * a).sum(), [x])
    analytic, numerical = _values(str(info.value))
    assert numerical == pytest.approx(2 * analytic, rel=1e-4)
    assert analytic != 0


def test_gradcheck_failure_names_the_right_input():
    good = Tensor([0.5, 0.7], requires_grad=True)
    bad = Tensor([[1.0, 4.0], [2.0, 3.0]], requires_grad=True)
    pattern = rf"input 1\b.*{esc('(2, 2)')}.*index {esc('(0, 1)')}"
    with pytest.raises(GradcheckError, match=pattern) as info:
        gradcheck(lambda a, b: (a * 2.0).sum() + (b.detach() * b).sum(), [good, bad])
    analytic, numerical = _values(str(info.value))
    assert numerical == pytest.approx(2 * analytic, rel=1e-4)


def test_gradcheck_failure_on_values():
    pattern = r"input 1\b.*index \(\).*analytic gradient 0\b"
    with pytest.raises(GradcheckError, match=pattern) as info:
        gradcheck(lambda a, b: a * Value(b.data) + b * 0.0, [Value(1.5), Value(2.0)])
    analytic, numerical = _values(str(info.value))
    assert analytic == 0.0 and numerical != 0.0


def test_gradcheck_passes_and_rejects_bad_arguments():
    assert gradcheck(lambda a: (a * a).sum(), [Tensor([1.0, 2.0], requires_grad=True)])
    with pytest.raises(ValueError, match="gradcheck.*requires grad"):
        gradcheck(lambda a: a.sum(), [Tensor([1.0])])
    with pytest.raises(TypeError, match="gradcheck"):
        gradcheck(lambda a: 1.0, [Tensor([1.0], requires_grad=True)])


def test_more_mistakes_name_the_operation():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ShapeError, match=r"swapaxes: axis 5 is out of range .*\(2, 3\)"):
        x.swapaxes(0, 5)
    with pytest.raises(ValueError, match="clip: lo=.* is greater than hi="):
        x.clip(np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match="backward: gradient must be numeric"):
        (x * 2.0).backward(np.array([["a"] * 3] * 2))
    assert np.isinf((Tensor([1.0]) * 10 ** 400).data).all()


# ---------------------------------------------------------------------------
# axes and sizes: out of range or not ints (PyTorch refuses floats, and so do we)

@pytest.mark.parametrize("axes,bad", [((2, 1), "2"), ((0, 2), "2"), ((-3, 0), "-3"),
                                      ((1, -3), "-3")])
def test_transpose_axis_out_of_range(axes, bad):
    # `a % ndim` wrapped 2 round to 0: transpose(2, 1) returned the tensor unchanged
    shape, given = esc("(2, 3)"), esc(str(axes))
    with pytest.raises(ShapeError, match=rf"^transpose: axis {bad}\b.*{given}.*{shape}"):
        ones(2, 3).transpose(*axes)
    with pytest.raises(ShapeError, match=r"transpose: axis 0\b.*\(\)"):
        Tensor(1.0).transpose(0)


@pytest.mark.parametrize("axes,bad", [((1.0, 0), "1.0"), ((0, 1.5), "1.5"), (("1", 0), "'1'"),
                                      ((True, False), "True")])
def test_transpose_axes_of_wrong_type(axes, bad):
    with pytest.raises(TypeError, match=rf"^transpose: axes must be ints, got {esc(bad)}"):
        ones(2, 3).transpose(*axes)


def test_transpose_accepts_numpy_integers_and_negative_axes():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.transpose(np.int64(1), np.int32(0)).shape == (3, 2)
    assert x.transpose(-1, -2).shape == (3, 2) and x.transpose((0, 1)).shape == (2, 3)
    assert x.transpose(None).shape == (3, 2) and Tensor(1.0).transpose().shape == ()


@pytest.mark.parametrize("shape,bad", [((2.5, 3), "2.5"), (("a",), "'a'"), (("6",), "'6'"),
                                       ((2, 3.0), "3.0"), ((True, 6), "True"), ((None,), "None"),
                                       (([[2, 3]],), "[2, 3]")])
def test_reshape_sizes_of_wrong_type(shape, bad):
    # int() read 2.5 as 2 and "6" as 6
    with pytest.raises(TypeError, match=rf"^reshape: sizes must be ints, got {esc(bad)}"):
        ones(2, 3).reshape(*shape)


def test_reshape_negative_size_other_than_minus_one():
    with pytest.raises(ShapeError, match=rf"reshape: invalid size -2 in {esc('(-2, 3)')}"):
        ones(2, 3).reshape(-2, 3)  # numpy took it for -1
    assert ones(2, 3).reshape(np.int64(-1), 2).shape == (3, 2)


@pytest.mark.parametrize("fn,name", [(concatenate, "concatenate"), (stack, "stack")])
@pytest.mark.parametrize("axis", [1.5, 0.0, "0", None, True])
def test_concatenate_stack_axis_of_wrong_type(fn, name, axis):
    with pytest.raises(TypeError, match=rf"^{name}: axis must be an int, got {esc(repr(axis))}"):
        fn([ones(2, 3), ones(2, 3)], axis=axis)


@pytest.mark.parametrize("fn,name,bad,ok", [
    (concatenate, "concatenate", (2, -3), (1, -2)),
    (stack, "stack", (3, -4), (2, -3)),   # stack's new axis may also be the last
])
def test_concatenate_stack_axis_out_of_range(fn, name, bad, ok):
    xs = [ones(2, 3), ones(2, 3)]
    for axis in bad:
        with pytest.raises(ShapeError, match=rf"^{name}: axis {axis} is out of range .*"
                                             rf"{esc('(2, 3)')}"):
            fn(xs, axis=axis)
    for axis in ok:
        assert fn(xs, axis=np.int64(axis)).shape == fn(xs, axis=axis).shape
    with pytest.raises(ShapeError, match="concatenate: 0-d"):
        concatenate([Tensor(1.0), Tensor(2.0)])


# ---------------------------------------------------------------------------
# clip bounds, grad_outputs: numbers only

@pytest.mark.parametrize("kw,name", [
    (dict(lo="a"), "lo"), (dict(hi="a"), "hi"), (dict(lo=0.0, hi="1"), "hi"),
    (dict(lo=[0.0, "x"]), "lo"), (dict(lo=Tensor([0.0])), "lo"), (dict(lo=[[0.0], [1, 2]]), "lo"),
    (dict(hi=True), "hi"),
])
def test_clip_bounds_must_be_numbers(kw, name):
    with pytest.raises(TypeError, match=rf"^clip: {name} must be a number or an array of "
                                        r"numbers, got"):
        ones(2).clip(**kw)


def test_clip_positional_string_and_unbroadcastable_bounds():
    with pytest.raises(TypeError, match=r"^clip: lo .*'a'"):
        ones(2).clip("a")
    with pytest.raises(ShapeError, match=rf"clip: lo of shape {esc('(2,)')} and hi of shape "
                                         rf"{esc('(3,)')}"):
        ones(2).clip(np.zeros(2), np.ones(3))
    assert np.array_equal(Tensor([-1.0, 5.0]).clip(np.int64(0), 2).data, [0.0, 2.0])


@pytest.mark.parametrize("given", ["abc", ["abc"], [[["1", "2", "3"]] * 2], [object()],
                                   [[[1.0], [1.0, 2.0]]]])
def test_grad_outputs_must_be_numbers(given):
    x = ones(2, 3)
    with pytest.raises(TypeError, match=r"^grad: grad_outputs\[0\] must be a number"):
        grad(x * 2.0, x, grad_outputs=given)


def test_grad_outputs_of_a_value_must_be_one_number():
    v = Value(2.0)
    with pytest.raises(TypeError, match=r"^grad: grad_outputs\[0\] must be a number"):
        grad(v * v, v, grad_outputs="1.5")      # float("1.5") used to read it
    with pytest.raises(ShapeError, match=rf"grad: grad_outputs\[0\] has shape {esc('(2,)')}"):
        grad(v * v, v, grad_outputs=np.ones(2))
    assert grad(v * v, v, grad_outputs=np.float32(3.0))[0].data == 12.0


# ---------------------------------------------------------------------------
# gradcheck reports what it compared: the user's own gradient for one output element

def _wrong_tanh(monkeypatch):
    """tanh's vjp with 1 + tanh**2 for 1 - tanh**2 (restored after the test)."""
    monkeypatch.setattr(autodiff.ops.OPS["tanh"], "vjp", lambda g, out, x: (g * (1 + out * out),))


def test_gradcheck_single_output_reports_the_gradient_backward_gives(monkeypatch):
    _wrong_tanh(monkeypatch)
    data = np.array([0.3, -1.2, 0.7])
    x = Tensor(data, requires_grad=True, label="x")
    t = np.tanh(data)
    with pytest.raises(GradcheckError, match=r"index \(1,\).*for d\(output\)/d\(input") as info:
        gradcheck(lambda a: a.tanh().sum(), [x])
    analytic, numerical = _values(str(info.value))
    assert analytic == pytest.approx(1 + t[1] ** 2, rel=1e-6)    # the wrong rule's value
    assert numerical == pytest.approx(1 - t[1] ** 2, rel=1e-6)   # the true derivative
    x.tanh().sum().backward()
    assert analytic == pytest.approx(float(x.grad[1]), rel=1e-6)       # what the user sees
    with pytest.raises(GradcheckError, match=r"index \(\)") as info:
        gradcheck(lambda a: a.tanh(), [Value(0.5)])
    assert _values(str(info.value)) == pytest.approx((1 + np.tanh(0.5) ** 2,
                                                      1 - np.tanh(0.5) ** 2), rel=1e-6)


def test_gradcheck_larger_output_says_it_compared_a_random_projection(monkeypatch):
    _wrong_tanh(monkeypatch)
    data = np.array([0.3, -1.2, 0.7])
    with pytest.raises(GradcheckError, match=r"d\(sum\(v \* output\)\).*random.*"
                                             rf"{esc('(3,)')}.*seed=0") as info:
        gradcheck(lambda a: a.tanh(), [Tensor(data, requires_grad=True)], seed=0)
    index = int(re.search(r"at index \((\d+),\)", str(info.value)).group(1))
    v = np.random.default_rng(0).standard_normal(3)  # the direction gradcheck drew
    t = np.tanh(data[index])
    assert _values(str(info.value)) == pytest.approx((v[index] * (1 + t ** 2),
                                                      v[index] * (1 - t ** 2)), rel=1e-6)


def test_gradcheck_catches_a_vjp_that_ignores_its_incoming_gradient(monkeypatch):
    # seeded with 1, the values agree; a second seed shows the gradient does not scale
    monkeypatch.setattr(autodiff.ops.OPS["tanh"], "vjp", lambda g, out, x: (1 - out * out,))
    for x in (Value(0.5), Tensor([0.5], requires_grad=True)):
        with pytest.raises(GradcheckError, match=r"seeded with .* instead of 1.*ignores"):
            gradcheck(lambda a: a.tanh(), [x])
    assert gradcheck(lambda a: (a * a).sum(), [Tensor([0.5, 2.0], requires_grad=True)])
