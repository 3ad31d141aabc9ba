"""`Tensor`: construction, attributes, indexing, shape functions, functions of several
tensors, reductions, and numerics at large magnitudes."""

import numpy as np
import pytest

from autodiff import Tensor, concatenate, maximum, minimum, stack, where


def leaf(data, dtype=np.float64):
    return Tensor(np.asarray(data, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------------------
# construction

@pytest.mark.parametrize("data,shape", [(3, ()), (2.5, ()), ([1, 2, 3], (3,)),
                                        ([[1.0, 2.0], [3.0, 4.0]], (2, 2)), (True, ())])
def test_python_data_becomes_float64(data, shape):
    t = Tensor(data)
    assert t.dtype == np.float64 and t.shape == shape
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=np.float64))
    assert Tensor(data, requires_grad=True).requires_grad


def test_float_ndarrays_keep_their_dtype():
    for dtype in (np.float32, np.float64, np.float16):
        a = np.ones((2, 3), dtype=dtype)
        t = Tensor(a, requires_grad=True)
        assert t.dtype == dtype
    assert Tensor(np.float32(1.5)).dtype == np.float32
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32


def test_construction_copies_python_data_and_default_flags():
    t = Tensor([1.0, 2.0])
    assert not t.requires_grad and t.grad is None and t.is_leaf
    t2 = Tensor([1.0], requires_grad=True, label="w")
    assert t2.label == "w"


@pytest.mark.parametrize("data", [np.arange(3), np.array([True, False]), np.int32(4),
                                  np.arange(4, dtype=np.uint8)])
def test_integer_and_bool_data_cannot_require_grad(data):
    t = Tensor(data)              # fine without grad
    assert t.dtype.kind in "biu"
    with pytest.raises(TypeError, match=str(t.dtype)):
        Tensor(data, requires_grad=True)


@pytest.mark.parametrize("data", ["abc", None, {"a": 1}, [1.0, "x"], object(), [1 + 2j],
                                  [[1.0, 2.0], [3.0]]])
def test_non_numeric_data_is_a_type_error(data):
    with pytest.raises(TypeError, match="Tensor"):
        Tensor(data)


# ---------------------------------------------------------------------------
# attributes

def test_attributes():
    a = np.arange(6.0).reshape(2, 3)
    t = Tensor(a, requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and t.size == 6
    assert len(t) == 2
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(np.asarray(t), a)
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert Tensor([[4.5]]).item() == 4.5 and isinstance(Tensor(4.5).item(), float)
    with pytest.raises(TypeError):
        len(Tensor(1.0))


def test_detach_shares_data_and_cuts_graph():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad is None
    assert np.shares_memory(d.data, y.data)
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])     # no path through d


def test_numpy_functions_see_data():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert np.sum(np.asarray(t)) == 10.0
    assert np.array(t).shape == (2, 2)


# ---------------------------------------------------------------------------
# indexing

def _index_grad(index, shape=(3, 4)):
    x = leaf(np.arange(np.prod(shape), dtype=np.float64).reshape(shape))
    y = x[index]
    np.testing.assert_array_equal(y.data, x.data[index if not isinstance(index, list)
                                                 else np.asarray(index)])
    w = np.arange(1.0, y.size + 1).reshape(y.shape)
    (y * Tensor(w)).sum().backward()
    expected = np.zeros(shape)
    np.add.at(expected, index if not isinstance(index, list) else np.asarray(index), w)
    np.testing.assert_array_equal(x.grad, expected)
    return x.grad


@pytest.mark.parametrize("index", [
    1, -1, slice(1, None), (slice(None), 2), (slice(None, None, -1), slice(1, 3)),
    np.array([2, 0, 2, 2]), [0, 0, 1], (np.array([0, 2, 0]), np.array([1, 1, 1])),
    np.array([[True, False, True, False]] * 3), (Ellipsis, -1), (None, 1), (1, slice(None), None),
], ids=["int", "neg-int", "slice", "col", "reversed", "int-array-repeats", "list-repeats",
        "pairs-repeats", "bool-mask", "ellipsis", "newaxis", "int-slice-newaxis"])
def test_indexing_forms(index):
    _index_grad(index)


def test_repeated_indices_accumulate():
    x = leaf([10.0, 20.0, 30.0])
    y = x[[0, 0, 0, 2]]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_boolean_tensor_mask():
    x = leaf([-1.0, 2.0, -3.0, 4.0])
    mask = x.detach() > 0
    assert mask.dtype == np.bool_
    y = x[mask]
    np.testing.assert_array_equal(y.data, [2.0, 4.0])
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 4.0, 0.0, 8.0])


def test_iteration_yields_rows_with_gradients():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    rows = list(x)
    assert len(rows) == 2
    (rows[0] * rows[1]).sum().backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 4.0], [1.0, 2.0]])


# ---------------------------------------------------------------------------
# shape

def test_reshape_with_minus_one_and_tuple():
    x = leaf(np.arange(12.0))
    y = x.reshape(3, -1)
    assert y.shape == (3, 4)
    assert x.reshape((-1, 6)).shape == (2, 6)
    assert x.reshape(2, 2, -1).shape == (2, 2, 3)
    (y * Tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(12.0))


def test_transpose_and_T():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(a)
    np.testing.assert_array_equal(x.T.data, a.T)
    np.testing.assert_array_equal(x.transpose(1, 2, 0).data, a.transpose(1, 2, 0))
    np.testing.assert_array_equal(x.transpose((2, 0, 1)).data, a.transpose(2, 0, 1))
    y = x.transpose(1, 2, 0)
    w = np.arange(24.0).reshape(3, 4, 2)
    (y * Tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad, w.transpose(2, 0, 1))
    v = leaf([1.0, 2.0])
    assert v.T.shape == (2,)


def test_concatenate_and_stack_values_and_grads():
    a, b = leaf(np.ones((2, 2))), leaf(np.zeros((2, 3)))
    c = concatenate([a, b], axis=-1)
    assert c.shape == (2, 5)
    w = np.arange(10.0).reshape(2, 5)
    (c * Tensor(w)).sum().backward()
    np.testing.assert_array_equal(a.grad, w[:, :2])
    np.testing.assert_array_equal(b.grad, w[:, 2:])

    p, q = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    s = stack([p, q, p], axis=-1)
    assert s.shape == (2, 3)
    np.testing.assert_array_equal(s.data, [[1, 3, 1], [2, 4, 2]])
    w = np.arange(6.0).reshape(2, 3)
    (s * Tensor(w)).sum().backward()
    np.testing.assert_array_equal(p.grad, w[:, 0] + w[:, 2])
    np.testing.assert_array_equal(q.grad, w[:, 1])
    assert stack([p, q]).shape == (2, 2)


def test_concatenate_accepts_arrays_and_lists_of_numbers():
    a = leaf([1.0, 2.0])
    c = concatenate([a, np.array([3.0]), [4.0, 5.0]])
    np.testing.assert_array_equal(c.data, [1, 2, 3, 4, 5])
    c.sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])


# ---------------------------------------------------------------------------
# maximum / minimum / where accept numbers, arrays and Tensors

@pytest.mark.parametrize("other", [0.5, np.array([0.5, 0.5, 0.5]), Tensor([0.5, 0.5, 0.5])],
                         ids=["number", "array", "tensor"])
def test_maximum_minimum_operand_kinds(other):
    x = leaf([0.0, 1.0, 2.0])
    y = maximum(x, other)
    np.testing.assert_array_equal(y.data, [0.5, 1.0, 2.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])
    x.grad = None
    z = minimum(other, x)
    np.testing.assert_array_equal(z.data, [0.0, 0.5, 0.5])
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 0.0])


def test_where_operand_kinds():
    x = leaf([1.0, 2.0, 3.0])
    cond = np.array([True, False, True])
    for other in (-1.0, np.array([-1.0, -1.0, -1.0]), Tensor([-1.0, -1.0, -1.0])):
        x.grad = None
        y = where(cond, x, other)
        np.testing.assert_array_equal(y.data, [1.0, -1.0, 3.0])
        y.sum().backward()
        np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0])
    x.grad = None
    y = where(Tensor(cond), 0.0, x * 2.0)              # a bool Tensor condition, number first
    np.testing.assert_array_equal(y.data, [0.0, 4.0, 0.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 0.0])
    y = where(x.detach() > 1.5, x, 0.0)                # comparison result as condition
    np.testing.assert_array_equal(y.data, [0.0, 2.0, 3.0])


def test_where_broadcasting_condition():
    a = leaf(np.ones((2, 3)))
    b = leaf([5.0, 6.0, 7.0])
    y = where(np.array([[True], [False]]), a, b)
    np.testing.assert_array_equal(y.data, [[1, 1, 1], [5, 6, 7]])
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [[1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(b.grad, [1, 1, 1])


def test_reflected_and_array_operands():
    x = leaf([1.0, 2.0])
    cases = [(2.0 - x, [-1, -1]), (2.0 / x, [-2.0, -0.5]),
             (2.0 ** x, 2.0 ** np.array([1.0, 2.0]) * np.log(2)),
             (np.array([3.0, 4.0]) * x, [3, 4]), (np.array([1.0, 1.0]) @ x, [1, 1]),
             ([1.0, 1.0] + x, [1, 1])]
    for y, dy in cases:
        x.grad = None
        assert isinstance(y, Tensor)
        y.sum().backward()
        np.testing.assert_allclose(x.grad, dy)


def test_broadcast_gradients_sum_back_to_input_shape():
    a = leaf(np.ones((3, 1)))
    b = leaf(np.arange(4.0))
    c = leaf(2.0)
    y = (a * b + c) * c
    assert y.shape == (3, 4)
    y.sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == ()
    np.testing.assert_array_equal(a.grad, [[2.0 * 6.0]] * 3)
    np.testing.assert_array_equal(b.grad, [2.0 * 3] * 4)
    # dy/dc = a_i b_j + 2c, summed: 3 * (0 + 1 + 2 + 3) + 12 * 2 * 2
    assert float(c.grad) == pytest.approx(3 * 6.0 + 12 * 2 * 2.0)


# ---------------------------------------------------------------------------
# reductions

A = np.arange(24.0).reshape(2, 3, 4) / 7.0


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, False), (1, True),
                                           ((0, 2), False), ((-1, 0), True), (None, True)])
def test_reductions_forward_and_shapes(name, axis, keepdims):
    x = leaf(A)
    y = getattr(x, name)(axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(A, axis=axis, keepdims=keepdims)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected)
    y.sum().backward()
    assert x.grad.shape == A.shape


def test_reduction_gradients():
    x = leaf(A)
    x.mean(axis=(0, -1)).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(A.shape, 1 / 8))
    x.grad = None
    x.sum(axis=1, keepdims=True).backward(np.ones((2, 1, 4)) * 2.0)
    np.testing.assert_allclose(x.grad, np.full(A.shape, 2.0))
    x.grad = None
    x.max(axis=-1).sum().backward()
    expected = np.zeros(A.shape)
    expected[..., -1] = 1.0
    np.testing.assert_array_equal(x.grad, expected)


def test_logsumexp_softmax_forward():
    x = Tensor(A)
    lse = x.logsumexp(axis=(0, 2))
    np.testing.assert_allclose(lse.data, np.log(np.exp(A).sum(axis=(0, 2))))
    sm = x.softmax(axis=1)
    np.testing.assert_allclose(sm.data.sum(axis=1), 1.0)
    np.testing.assert_allclose(x.log_softmax(axis=0).data, np.log(np.exp(A) / np.exp(A).sum(0)))


# ---------------------------------------------------------------------------
# numerics at +-1000: finite values and correct gradients

def test_sigmoid_tanh_at_large_magnitude():
    x = leaf([1000.0, -1000.0, 0.0])
    s = x.sigmoid()
    np.testing.assert_array_equal(s.data, [1.0, 0.0, 0.5])
    s.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.25])
    x.grad = None
    t = x.tanh()
    np.testing.assert_array_equal(t.data, [1.0, -1.0, 0.0])
    t.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_at_large_magnitude(dtype):
    # float32 spacing near 1000 is 6e-5: the gradient exp(x - out) inherits that error
    tol = 1e-4 if dtype == np.float32 else 1e-12
    x = leaf([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype)
    y = x.logsumexp(axis=1)
    np.testing.assert_allclose(y.data, [1000 + np.log(2), -1000 + np.log(2)], rtol=tol)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 2), 0.5), rtol=tol)
    z = leaf([1000.0, 0.0, -1000.0], dtype)
    zz = z.logsumexp()
    assert np.isfinite(zz.data) and float(zz) == pytest.approx(1000.0)
    zz.backward()
    np.testing.assert_allclose(z.grad, [1.0, 0.0, 0.0])
    assert x.grad.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_and_softmax_at_large_magnitude(dtype):
    x = leaf([1000.0, 0.0, -1000.0], dtype)
    y = x.log_softmax()
    np.testing.assert_allclose(y.data, [0.0, -1000.0, -2000.0], rtol=1e-6)
    y.sum().backward()                      # g - softmax * sum(g) = 1 - 3 * [1, 0, 0]
    np.testing.assert_allclose(x.grad, [-2.0, 1.0, 1.0], atol=1e-6)
    x.grad = None
    p = x.softmax()
    assert np.all(np.isfinite(p.data))
    np.testing.assert_allclose(p.data, [1.0, 0.0, 0.0])
    (p * Tensor(np.array([1.0, 2.0, 3.0], dtype=dtype))).sum().backward()
    assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 0.0], atol=1e-6)


def test_repr_and_label():
    t = Tensor([1.0, 2.0], requires_grad=True, label="w")
    r = repr(t)
    assert "Tensor" in r and "w" in r
    assert "float32" in repr(Tensor(np.ones(2, dtype=np.float32)))
