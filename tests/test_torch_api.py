"""PyTorch's surface of the tensor path (API.md Revision 2, "PyTorch habits") against
PyTorch itself: dtypes and factories, memory sharing, `dim=`/`keepdim=` reductions,
max/min/argmax, shape methods, `size`/`numel`/`dim`, `__index__`/`__format__`/`__bool__`,
`to`/devices, `.grad` as a Tensor, backward's PyTorch arguments, numpy meeting Tensors,
free functions, and the PyTorch beginner tutorials ported.

Comparisons ask for the `torch` fixture (they skip without PyTorch); finite-difference
checks never skip. Where our behaviour differs from PyTorch on purpose (API.md decides),
the test asserts ours and its name or comment says "differs from PyTorch".
"""

from __future__ import annotations

import operator

import numpy as np
import pytest

import autodiff as ad
from autodiff import ShapeError, Tensor, gradcheck, no_grad


# ---------------------------------------------------------------------------
# fixtures and helpers

@pytest.fixture(autouse=True)
def _restore_default_dtypes():
    """Tests switch the default float dtype (ours and torch's); every test starts and
    ends with ours float64 and torch's float32."""
    ours = ad.get_default_dtype()
    try:
        import torch
    except ImportError:
        torch = None
    theirs = torch.get_default_dtype() if torch else None
    yield
    ad.set_default_dtype(ours)
    if torch:
        torch.set_default_dtype(theirs)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def torch64(torch):
    """torch with float64 as its default, so that its float factories and Python floats
    give what ours give by default."""
    torch.set_default_dtype(torch.float64)
    return torch


def np_dtype(torch_dtype) -> np.dtype:
    import torch
    return torch.empty(0, dtype=torch_dtype).numpy().dtype


def arr(x) -> np.ndarray:
    """The values of one of ours, a torch tensor or an array, as an ndarray."""
    if isinstance(x, Tensor):
        return x.data
    if type(x).__module__.startswith("torch"):
        return x.detach().numpy()
    return np.asarray(x)


def assert_same(ours, theirs, rtol=1e-12, atol=1e-12):
    """Same shape, dtype and values (NaN where theirs has NaN)."""
    a, b = arr(ours), arr(theirs)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    if a.dtype.kind in "biu":
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def both(torch, data: np.ndarray, requires_grad=True):
    """The same float64 data as one of ours and as a torch tensor."""
    data = np.asarray(data, dtype=np.float64)
    return (ad.tensor(data, requires_grad=requires_grad),
            torch.tensor(data, requires_grad=requires_grad))


def backward_both(out, tout, rng):
    """Backpropagate the same random cotangent through ours and torch's output."""
    cot = rng.standard_normal(out.shape)
    out.backward(cot)
    tout.backward(torch_tensor(cot))


def torch_tensor(a):
    import torch
    return torch.tensor(np.asarray(a))


def assert_grads(pairs):
    for x, t in pairs:
        if t.grad is None:
            assert x.grad is None
        else:
            assert isinstance(x.grad, Tensor)
            assert_same(x.grad, t.grad)


# ---------------------------------------------------------------------------
# dtypes

DTYPE_NAMES = ["float16", "half", "float32", "float", "float64", "double", "int8", "uint8",
               "int16", "short", "int32", "int", "int64", "long", "bool"]


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_dtype_names_mean_what_torch_means(torch, name):
    assert getattr(ad, name) == np_dtype(getattr(torch, name))
    assert ad.zeros(2, dtype=getattr(ad, name)).dtype == getattr(ad, name)


def test_dtypes_are_numpy_dtypes():
    assert ad.float32 == np.float32 and ad.float64 == np.dtype("float64")
    assert ad.float is ad.float32 and ad.double is ad.float64 and ad.long is ad.int64
    assert ad.tensor([1.5]).dtype == ad.float64


def test_default_dtype_is_float64_differs_from_pytorch(torch):
    # differs from PyTorch (float32): API.md makes float64 our default.
    assert ad.get_default_dtype() == ad.float64
    assert ad.tensor([0.5, 1]).dtype == ad.float64 and ad.zeros(3).dtype == ad.float64
    assert torch.tensor([0.5]).dtype == torch.float32


FLOAT_FACTORIES = {
    "tensor(float)": lambda m: m.tensor(1.5),
    "tensor([int, float])": lambda m: m.tensor([1, 2.5]),
    "tensor([])": lambda m: m.tensor([]),
    "zeros": lambda m: m.zeros(2),
    "ones": lambda m: m.ones(2, 3),
    "empty": lambda m: m.empty(1),
    "full(float)": lambda m: m.full((2,), 1.5),
    "eye": lambda m: m.eye(2),
    "arange(float)": lambda m: m.arange(0.0, 1.0, 0.25),
    "linspace": lambda m: m.linspace(0, 1, 3),
    "rand": lambda m: m.rand(2),
    "randn": lambda m: m.randn(2),
    "normal(size)": lambda m: m.normal(0.0, 1.0, (2,)),
    "as_tensor(list)": lambda m: m.as_tensor([0.5]),
    "Tensor(list)": lambda m: m.Tensor([1.0, 2.0]),
}
INT_FACTORIES = {
    "tensor([int])": lambda m: m.tensor([0, 2, 1]),
    "tensor(int)": lambda m: m.tensor(3),
    "tensor([bool])": lambda m: m.tensor([True, False]),
    "full(int)": lambda m: m.full((2,), 3),
    "full(bool)": lambda m: m.full((2,), True),
    "arange(int)": lambda m: m.arange(5),
    "randint": lambda m: m.randint(0, 5, (3,)),
    "as_tensor([int])": lambda m: m.as_tensor([1, 2]),
}


@pytest.mark.parametrize("default", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(FLOAT_FACTORIES) + sorted(INT_FACTORIES))
def test_set_default_dtype_switches_what_floats_become(torch, default, name):
    make = {**FLOAT_FACTORIES, **INT_FACTORIES}[name]
    ad.set_default_dtype(getattr(ad, default))
    torch.set_default_dtype(getattr(torch, default))
    assert ad.get_default_dtype() == np_dtype(torch.get_default_dtype())
    ours, theirs = make(ad), make(torch)
    assert ours.dtype == np_dtype(theirs.dtype)
    assert ours.shape == tuple(theirs.shape)


def test_set_default_dtype_takes_every_spelling_and_refuses_the_rest():
    ad.set_default_dtype(np.float32)
    assert ad.zeros(1).dtype == np.float32
    ad.set_default_dtype("float64")
    assert ad.zeros(1).dtype == np.float64
    for bad in (ad.int64, ad.bool, "banana"):
        with pytest.raises(TypeError, match="set_default_dtype"):
            ad.set_default_dtype(bad)
    # differs from PyTorch, which accepts float16 as its default
    with pytest.raises(TypeError, match="set_default_dtype: only float32 or float64"):
        ad.set_default_dtype(ad.float16)
    assert ad.get_default_dtype() == ad.float64  # a refused switch changes nothing


def test_the_default_dtype_fixture_restores_it():
    # (runs after tests that switched it: each one started from float64 again)
    assert ad.get_default_dtype() == ad.float64
    ad.set_default_dtype(ad.float32)


def test_the_default_dtype_fixture_restored_it():
    assert ad.get_default_dtype() == ad.float64


BAD_DTYPE_CALLS = {
    "tensor": lambda d: ad.tensor([1.0], dtype=d),
    "as_tensor": lambda d: ad.as_tensor([1.0], dtype=d),
    "zeros": lambda d: ad.zeros(2, dtype=d),
    "ones": lambda d: ad.ones(2, dtype=d),
    "full": lambda d: ad.full((2,), 1.0, dtype=d),
    "eye": lambda d: ad.eye(2, dtype=d),
    "arange": lambda d: ad.arange(3, dtype=d),
    "linspace": lambda d: ad.linspace(0, 1, 3, dtype=d),
    "rand": lambda d: ad.rand(2, dtype=d),
    "randn": lambda d: ad.randn(2, dtype=d),
    "randint": lambda d: ad.randint(0, 3, (2,), dtype=d),
    "zeros_like": lambda d: ad.zeros_like(ad.zeros(2), dtype=d),
    "to": lambda d: ad.zeros(2).to(d),
    "Tensor": lambda d: Tensor([1.0], dtype=d),
}


@pytest.mark.parametrize("bad", ["banana", object(), str, "U3", 3])
@pytest.mark.parametrize("name", sorted(BAD_DTYPE_CALLS))
def test_a_bad_dtype_raises_naming_the_function(name, bad):
    # (to() reads a string as a device: see the device tests)
    error = RuntimeError if name == "to" and isinstance(bad, str) else TypeError
    with pytest.raises(error, match=rf"^{name}: "):
        BAD_DTYPE_CALLS[name](bad)


# ---------------------------------------------------------------------------
# tensor(): what Python data becomes

TENSOR_DATA = {
    "int list": [0, 2, 1],
    "nested ints": [[1, 2], [3, 4]],
    "bools": [True, False],
    "ints and a float": [1, 2.5],
    "nested mixed": [[1, 2.0], [3, 4]],
    "int": 3,
    "float": 2.5,
    "bool": True,
    "empty list": [],
    "empty nested": [[], []],
    "tuple": (1, 2),
    "int32 array": np.array([1, 2], dtype=np.int32),
    "float32 array": np.array([1.0, 2.0], dtype=np.float32),
    "uint8 array": np.array([1, 255], dtype=np.uint8),
    "bool array": np.array([True]),
    "float32 scalar": np.float32(1.5),
    "int64 scalar": np.int64(3),
    "0-d float array": np.array(2.0),
}


@pytest.mark.parametrize("default", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(TENSOR_DATA))
def test_tensor_infers_the_dtype_and_values_as_torch(torch, name, default):
    ad.set_default_dtype(getattr(ad, default))
    torch.set_default_dtype(getattr(torch, default))
    data = TENSOR_DATA[name]
    assert_same(ad.tensor(data), torch.tensor(data))


def test_tensor_of_integers_is_int64_as_in_pytorch():
    t = ad.tensor([0, 2, 1])
    assert t.dtype == ad.int64 and t.tolist() == [0, 2, 1]
    assert ad.tensor([[1, 2]], dtype=ad.float32).dtype == ad.float32
    assert ad.tensor([1, 2], dtype=float).dtype == ad.float64  # Python's float: the default


def test_tensor_of_tensors(torch):
    ours = ad.tensor([ad.tensor(1.0), ad.tensor(2.0)])
    assert_same(ours, torch.tensor([torch.tensor(1.0, dtype=torch.float64),
                                    torch.tensor(2.0, dtype=torch.float64)]))
    source = ad.tensor([1.0, 2.0], requires_grad=True)
    copy = ad.tensor(source)  # a new leaf: no gradient of source's, its own memory
    assert not copy.requires_grad and not np.shares_memory(copy.data, source.data)


@pytest.mark.parametrize("data", ["abc", [[1, 2], [3]], object(), {"a": 1}, [1, "a"]])
def test_tensor_refuses_what_is_not_numbers(data):
    with pytest.raises(TypeError, match="^tensor: "):
        ad.tensor(data)


def test_only_float_tensors_can_require_grad(torch):
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2], requires_grad=True)
    for make in (lambda: ad.tensor([1, 2], requires_grad=True),
                 lambda: ad.zeros(2, dtype=ad.int64, requires_grad=True),
                 lambda: ad.randint(0, 3, (2,), requires_grad=True),
                 lambda: ad.arange(3, requires_grad=True)):
        with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
            make()
    assert ad.arange(3.0, requires_grad=True).requires_grad


# ---------------------------------------------------------------------------
# memory: which calls share, which copy, which return self

def _sharing_cases(m, source_np):
    """(description, result, what it may share memory with), for module m."""
    t = m.tensor(source_np.copy())
    c = m.tensor(np.arange(6.0).reshape(2, 3))
    return [
        ("from_numpy", m.from_numpy(source_np), source_np),
        ("as_tensor(array)", m.as_tensor(source_np), source_np),
        ("as_tensor(array, other dtype)", m.as_tensor(source_np, dtype=m.float32), source_np),
        ("tensor(array)", m.tensor(source_np), source_np),
        ("clone", t.clone(), t),
        ("detach", t.detach(), t),
        ("view", c.view(-1), c),
        ("view(3, 2)", c.view(3, 2), c),
        ("reshape (contiguous)", c.reshape(6), c),
        ("numpy", t.numpy(), t),
        ("to(same dtype)", t.to(t.dtype), t),
        ("to(other dtype)", t.to(m.float32), t),
        ("to(copy=True)", t.to(t.dtype, copy=True), t),
        ("getitem int", c[0], c),
        ("getitem slice", c[:, 1:], c),
        ("getitem list", c[[0]], c),
        ("t()", c.t(), c),
        ("unsqueeze", c.unsqueeze(0), c),
        ("squeeze", c.unsqueeze(0).squeeze(0), c),
        ("flatten", c.flatten(), c),
        ("permute", c.permute(1, 0), c),
        ("expand", c[:1].expand(4, 3), c),
        ("float() of float64", t.float(), t),
        ("double() of float64", t.double(), t),
        ("cpu()", t.cpu(), t),
    ]


def test_memory_sharing_matches_torch(torch):
    ours = _sharing_cases(ad, np.array([1.0, 2.0, 3.0]))
    theirs = _sharing_cases(torch, np.array([1.0, 2.0, 3.0]))
    for (name, a, a_src), (_, b, b_src) in zip(ours, theirs):
        shared = np.shares_memory(arr(a), arr(a_src))
        assert shared == np.shares_memory(arr(b), arr(b_src)), name


def test_sharing_is_seen_both_ways():
    a = np.array([1.0, 2.0])
    t = ad.from_numpy(a)
    a[0] = 5.0
    assert t[0].item() == 5.0
    t[1] = 7.0
    assert a[1] == 7.0
    shared = ad.as_tensor(a)
    a[0] = -1.0
    assert shared.tolist() == [-1.0, 7.0]
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    d = p.detach()
    with no_grad():
        p.mul_(10)
    assert d.tolist() == [10.0, 20.0] and not d.requires_grad
    copy = ad.tensor(a)
    a[0] = 99.0
    assert copy[0].item() == -1.0


def test_calls_that_return_self(torch):
    for m in (ad, torch):
        t = m.tensor([1.0, 2.0], dtype=m.float64)
        f = m.tensor([1.0], dtype=m.float32)
        assert t.to(m.float64) is t and t.to("cpu") is t and t.to(m.device("cpu")) is t
        assert t.cpu() is t and t.double() is t and f.float() is f
        assert t.to(t) is t and t.to(device="cpu", dtype=m.float64) is t
        assert t.to(m.float64, copy=True) is not t and t.to(m.float32) is not t
        assert m.as_tensor(t) is t and m.as_tensor(t, dtype=m.float32) is not t
        assert t.requires_grad_() is t


def test_from_numpy_and_as_tensor_refuse_what_they_cannot_share(torch):
    with pytest.raises(TypeError, match="^from_numpy: expected an ndarray, got list"):
        ad.from_numpy([1.0])
    with pytest.raises(TypeError, match="^from_numpy: dtype <U1 is not numeric"):
        ad.from_numpy(np.array(["a"]))
    strided = np.arange(12.0).reshape(3, 4)[:, ::2]
    assert_same(ad.from_numpy(strided), torch.from_numpy(strided))
    assert ad.from_numpy(np.array(3.0)).shape == ()


# ---------------------------------------------------------------------------
# factories against torch

SIZED = ["zeros", "ones", "empty", "rand", "randn"]
SIZE_FORMS = {
    "ints": ((2, 3), {}),
    "tuple": (((2, 3),), {}),
    "list": (([2, 3],), {}),
    "size=": ((), {"size": (2, 3)}),
    "0-d": (((),), {}),
    "empty": ((0, 3), {}),
    "one int": ((4,), {}),
}


@pytest.mark.parametrize("form", sorted(SIZE_FORMS))
@pytest.mark.parametrize("name", SIZED)
def test_sizes_are_given_as_in_pytorch(torch64, name, form):
    args, kw = SIZE_FORMS[form]
    ours, theirs = getattr(ad, name)(*args, **kw), getattr(torch64, name)(*args, **kw)
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np_dtype(theirs.dtype)
    if name in ("zeros", "ones"):
        assert_same(ours, theirs)
    grad = getattr(ad, name)(*args, **kw, requires_grad=True, dtype=ad.float32)
    assert grad.requires_grad and grad.dtype == ad.float32 and grad.is_leaf


@pytest.mark.parametrize("name", SIZED)
def test_bad_sizes_raise_naming_the_factory(name):
    make = getattr(ad, name)
    with pytest.raises(TypeError, match=f"^{name}: missing the size"):
        make()
    for bad in ("3", 2.0, None, [2, 1.5]):
        with pytest.raises(TypeError, match=f"^{name}: sizes must be ints"):
            make(bad)
    with pytest.raises(ValueError, match=f"^{name}: sizes must be >= 0"):
        make(2, -1)
    with pytest.raises(TypeError, match=f"^{name}: give the size positionally or as size="):
        make(2, size=(2,))
    assert make(ad.tensor(3)).shape == (3,)  # a one-element int tensor is an int


def test_random_factories_refuse_integer_dtypes(torch):
    for name in ("rand", "randn"):
        with pytest.raises(NotImplementedError):
            getattr(torch, name)(2, dtype=torch.int64)
        with pytest.raises(TypeError, match=f"^{name}: samples need a floating-point dtype"):
            getattr(ad, name)(2, dtype=ad.int64)
    for name in ("rand_like", "randn_like"):
        with pytest.raises(TypeError, match=f"^{name}: samples need a floating-point dtype"):
            getattr(ad, name)(ad.tensor([1, 2]))
        assert getattr(ad, name)(ad.tensor([1, 2]), dtype=ad.float).dtype == ad.float32


def test_random_factories_draw_from_the_seeded_generator():
    for make in (lambda: ad.rand(3, 2), lambda: ad.randn(4), lambda: ad.randint(0, 9, (5,)),
                 lambda: ad.normal(1.0, 2.0, (3,)), lambda: ad.rand_like(ad.zeros(2)),
                 lambda: ad.randn_like(ad.zeros(2)),
                 lambda: ad.normal(ad.zeros(2), ad.ones(2))):
        ad.manual_seed(7)
        first = make()
        ad.manual_seed(7)
        assert first.equal(make())
        assert not first.equal(make())


def test_rand_and_randn_samples():
    u = ad.rand(20000)
    assert 0.0 <= u.min().item() and u.max().item() < 1.0
    assert abs(u.mean().item() - 0.5) < 0.01
    z = ad.randn(20000)
    assert abs(z.mean().item()) < 0.03 and abs(z.data.std() - 1.0) < 0.03


@pytest.mark.parametrize("fill, dtype", [(3, None), (3.0, None), (True, None), (-2, "float32"),
                                         (2.5, "int64"), (0, "bool"), (1e300, None)])
def test_full_infers_its_dtype_as_torch(torch64, fill, dtype):
    kw = {} if dtype is None else {"dtype": getattr(ad, dtype)}
    tkw = {} if dtype is None else {"dtype": getattr(torch64, dtype)}
    assert_same(ad.full((2, 3), fill, **kw), torch64.full((2, 3), fill, **tkw))
    assert_same(ad.full([2], fill, **kw), torch64.full([2], fill, **tkw))


def test_full_errors():
    with pytest.raises(TypeError, match="^full: fill_value must be a number"):
        ad.full((2,), "x")
    with pytest.raises(ValueError, match="^full: sizes must be >= 0"):
        ad.full((-1,), 1.0)
    assert ad.full(2, 1.0).shape == (2,)  # (PyTorch wants a tuple; an int is accepted)


@pytest.mark.parametrize("args, kw", [((3,), {}), ((2, 4), {}), ((4, 2), {}), ((0,), {}),
                                      ((3,), {"dtype": "int64"}), ((2,), {"dtype": "bool"})])
def test_eye_as_torch(torch64, args, kw):
    assert_same(ad.eye(*args, **{k: getattr(ad, v) for k, v in kw.items()}),
                torch64.eye(*args, **{k: getattr(torch64, v) for k, v in kw.items()}))


def test_eye_errors():
    with pytest.raises(ValueError, match="^eye: sizes must be >= 0"):
        ad.eye(-1)
    with pytest.raises(TypeError, match="^eye: sizes must be ints"):
        ad.eye(2.0)


ARANGE_ARGS = [(5,), (0,), (5.0,), (1, 4), (2, 9, 3), (10, 0, -3), (0, 1, 0.1), (1, 2.5, 0.5),
               (-1, 1, 0.3), (0, -1, -0.25), (0, 1.0000001, 0.1), (0.5, 3), (3, 3),
               (-3.7, 50.1, 0.37), (0, 1, 1 / 3), (1e-3, 1e-2, 1e-3), (0, 10, 2.5)]


@pytest.mark.parametrize("dtype", [None, "float32", "float64", "int64"])
@pytest.mark.parametrize("args", ARANGE_ARGS, ids=str)
def test_arange_as_torch(torch64, args, dtype):
    kw = {} if dtype is None else {"dtype": getattr(ad, dtype)}
    tkw = {} if dtype is None else {"dtype": getattr(torch64, dtype)}
    if dtype == "int64" and not all(float(a).is_integer() for a in args):
        # differs from PyTorch, which truncates the arguments to ints first
        with pytest.raises(TypeError, match="^arange: an integer dtype"):
            ad.arange(*args, **kw)
        return
    theirs = torch64.arange(*args, **tkw)
    # (torch's vectorised kernel rounds some values differently: a few ulps)
    tol = 1e-6 if dtype == "float32" else 1e-13
    assert_same(ad.arange(*args, **kw), theirs, rtol=tol, atol=tol)


def test_arange_length_with_float_steps_matches_torch(torch64, rng):
    for _ in range(300):
        start = rng.uniform(-5, 5)
        step = rng.choice([-1, 1]) * rng.uniform(0.01, 2)
        end = start + step * rng.uniform(0, 40)
        ours, theirs = ad.arange(start, end, step), torch64.arange(start, end, step)
        assert ours.shape == tuple(theirs.shape), (start, end, step)
        assert_same(ours, theirs, rtol=1e-13, atol=1e-13)


def test_arange_forms_and_errors():
    assert ad.arange(0, end=3).tolist() == [0, 1, 2]
    assert ad.arange(ad.tensor(3)).tolist() == [0, 1, 2]
    assert ad.arange(3, dtype=ad.float32).dtype == ad.float32
    with pytest.raises(ValueError, match="^arange: step must not be 0"):
        ad.arange(0, 5, 0)
    with pytest.raises(ValueError, match="^arange: .*never reaches end"):
        ad.arange(5, 0)
    with pytest.raises(ValueError, match="^arange: .*never reaches end"):
        ad.arange(0, 5, -1)
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="^arange: start, end and step must be finite"):
            ad.arange(0, bad)
    with pytest.raises(TypeError, match="^arange: end must be a number"):
        ad.arange(0, "5")


@pytest.mark.parametrize("args", [(0, 1, 5), (0, 1, 1), (0, 1, 0), (3, -1, 5), (0, 10, 2),
                                  (-2.5, 7.25, 100), (1, 1, 4)], ids=str)
@pytest.mark.parametrize("dtype", [None, "float32", "int64"])
def test_linspace_as_torch(torch64, args, dtype):
    kw = {} if dtype is None else {"dtype": getattr(ad, dtype)}
    tkw = {} if dtype is None else {"dtype": getattr(torch64, dtype)}
    rtol = 1e-6 if dtype == "float32" else 1e-12
    assert_same(ad.linspace(*args, **kw), torch64.linspace(*args, **tkw), rtol=rtol, atol=rtol)
    assert_same(ad.linspace(args[0], args[1], steps=args[2], **kw),
                torch64.linspace(args[0], args[1], steps=args[2], **tkw), rtol=rtol, atol=rtol)


def test_linspace_with_one_step_is_the_start(torch64):
    assert ad.linspace(2.0, 9.0, 1).tolist() == [2.0] == torch64.linspace(2.0, 9.0, 1).tolist()


def test_linspace_errors():
    with pytest.raises(TypeError, match="^linspace: sizes must be ints"):
        ad.linspace(0, 1, 3.0)
    with pytest.raises(ValueError, match="^linspace: sizes must be >= 0"):
        ad.linspace(0, 1, -1)
    with pytest.raises(TypeError, match="^linspace: start must be a number"):
        ad.linspace("0", 1, 3)


RANDINT_FORMS = {
    "(high, size)": ((10, (3,)), {}),
    "(low, high, size)": ((3, 10, (2, 2)), {}),
    "size=": ((3, 10), {"size": (2,)}),
    "high=, size=": ((), {"high": 3, "size": (2,)}),
    "low=, high=, size=": ((), {"low": -5, "high": -2, "size": (50,)}),
    "(high, size=)": ((4,), {"size": (1, 2)}),
    "0-d": ((0, 3, ()), {}),
    "list size": ((0, 3, [2, 2]), {}),
    "dtype": ((0, 3, (4,)), {"dtype": "float32"}),
    "int32": ((0, 3, (4,)), {"dtype": "int32"}),
}


@pytest.mark.parametrize("form", sorted(RANDINT_FORMS))
def test_randint_signatures_as_torch(torch, form):
    args, kw = RANDINT_FORMS[form]
    ours = ad.randint(*args, **{k: getattr(ad, v) if k == "dtype" else v for k, v in kw.items()})
    theirs = torch.randint(*args, **{k: getattr(torch, v) if k == "dtype" else v
                                     for k, v in kw.items()})
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np_dtype(theirs.dtype)


def test_randint_stays_in_range():
    low_high = [(0, 1), (0, 2), (-5, -2), (10, 13)]
    for low, high in low_high:
        x = ad.randint(low, high, (2000,))
        assert set(np.unique(x.data).tolist()) == set(range(low, high))


def test_randint_errors():
    with pytest.raises(TypeError, match="^randint: missing the size"):
        ad.randint(3, 10)
    with pytest.raises(TypeError, match="^randint: missing the size"):
        ad.randint(3, 10, 5)  # (as PyTorch: the size is a tuple)
    with pytest.raises(TypeError, match="^randint: missing high"):
        ad.randint((3,))
    with pytest.raises(TypeError, match="^randint: high must be an int"):
        ad.randint(0, 3.5, (2,))
    with pytest.raises(TypeError, match="^randint: low must be an int"):
        ad.randint(True, 3, (2,))
    with pytest.raises(ValueError, match="^randint: needs low < high"):
        ad.randint(3, 3, (2,))
    with pytest.raises(TypeError, match="^randint: expected"):
        ad.randint(0, 1, 2, (2,))


NORMAL_FORMS = {
    "tensor, tensor": lambda m: m.normal(m.zeros(3), m.ones(3)),
    "tensor, float": lambda m: m.normal(m.zeros(2, 3), 1.0),
    "float, tensor": lambda m: m.normal(0.0, m.ones(2, 3)),
    "float, float, size": lambda m: m.normal(0.0, 1.0, (2, 3)),
    "size=": lambda m: m.normal(2.0, 3.0, size=(4,)),
    "broadcast": lambda m: m.normal(m.zeros(2, 3), m.ones(3)),
    "float32 mean": lambda m: m.normal(m.zeros(3, dtype=m.float32), 1.0),
    "float32 mean, float64 std": lambda m: m.normal(m.zeros(3, dtype=m.float32),
                                                    m.ones(3, dtype=m.float64)),
    "float64 mean, float32 std": lambda m: m.normal(m.zeros(3, dtype=m.float64),
                                                    m.ones(3, dtype=m.float32)),
    "dtype=": lambda m: m.normal(0.0, 1.0, (2,), dtype=m.float32),
}


@pytest.mark.parametrize("form", sorted(NORMAL_FORMS))
def test_normal_forms_as_torch(torch64, form):
    ours, theirs = NORMAL_FORMS[form](ad), NORMAL_FORMS[form](torch64)
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np_dtype(theirs.dtype)


def test_normal_with_tensor_means_and_stds():
    means = ad.arange(5.0) * 10
    x = ad.normal(means, 0.01)
    np.testing.assert_allclose(x.data, means.data, atol=0.1)
    stds = ad.tensor([0.0, 1.0, 4.0])
    draws = np.stack([ad.normal(ad.zeros(3), stds).data for _ in range(4000)])
    assert draws[:, 0].tolist() == [0.0] * 4000
    np.testing.assert_allclose(draws.std(axis=0), [0.0, 1.0, 4.0], atol=0.15)
    big = ad.normal(2.0, 3.0, (40000,))
    assert abs(big.mean().item() - 2.0) < 0.05 and abs(big.data.std() - 3.0) < 0.05


def test_normal_errors():
    with pytest.raises(ValueError, match="^normal: std must be >= 0"):
        ad.normal(0.0, -1.0, (2,))
    with pytest.raises(ValueError, match="^normal: std must be >= 0"):
        ad.normal(ad.zeros(2), ad.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="^normal: mean must be a floating-point tensor"):
        ad.normal(ad.zeros(3, dtype=ad.int64), 1.0)
    with pytest.raises(ShapeError, match="^normal: mean of shape .* do not broadcast"):
        ad.normal(ad.zeros(2, 3), ad.ones(4))
    with pytest.raises(TypeError, match="^normal: size= goes with a number mean"):
        ad.normal(ad.zeros(3), 1.0, (3,))
    with pytest.raises(TypeError, match="^normal: mean must be a number or a Tensor"):
        ad.normal("0", 1.0, (2,))
    with pytest.raises(TypeError, match="^normal: samples need a floating-point dtype"):
        ad.normal(0.0, 1.0, (2,), dtype=ad.int64)


def test_normal_without_a_size_is_one_sample_differs_from_pytorch(torch):
    # differs from PyTorch, which wants a size with number arguments
    with pytest.raises(TypeError):
        torch.normal(0.0, 1.0)
    assert ad.normal(0.0, 1.0).shape == ()


LIKE = {
    "zeros_like": lambda m, t: m.zeros_like(t),
    "ones_like": lambda m, t: m.ones_like(t),
    "empty_like": lambda m, t: m.empty_like(t),
    "full_like int": lambda m, t: m.full_like(t, 7),
    "full_like float": lambda m, t: m.full_like(t, 2.5),
    "rand_like float": lambda m, t: m.rand_like(t, dtype=m.float64),
    "randn_like float": lambda m, t: m.randn_like(t, dtype=m.float32),
    "zeros_like dtype": lambda m, t: m.zeros_like(t, dtype=m.int32),
}


@pytest.mark.parametrize("source", ["int64", "float32", "float64"])
@pytest.mark.parametrize("name", sorted(LIKE))
def test_like_factories_as_torch(torch, name, source):
    t = ad.tensor([[1, 2, 3], [4, 5, 6]], dtype=getattr(ad, source))
    tt = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=getattr(torch, source))
    ours, theirs = LIKE[name](ad, t), LIKE[name](torch, tt)
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np_dtype(theirs.dtype)
    if "rand" not in name and "empty" not in name:
        assert_same(ours, theirs)


def test_like_factories_do_not_copy_requires_grad(torch):
    p = ad.zeros(2, requires_grad=True)
    assert not ad.ones_like(p).requires_grad
    assert not torch.ones_like(torch.zeros(2, requires_grad=True)).requires_grad
    assert ad.zeros_like(p, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="^zeros_like: expected a Tensor, got list"):
        ad.zeros_like([1, 2])


# ---------------------------------------------------------------------------
# reductions with dim= / keepdim=, against torch (values and gradients, float64)

SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0, 3), (3, 0)]


def _dims(shape):
    """Every dim (negative ones too), a few tuples, and None."""
    n = max(len(shape), 1)
    dims = [None] + list(range(-n, n))
    if len(shape) >= 2:
        dims += [(0, -1), (-1, 0), tuple(range(len(shape)))]
    if len(shape) >= 3:
        dims += [(1, 2), [0, 2]]
    return dims


def _reduces_empty(shape, dim) -> bool:
    dims = range(len(shape)) if dim is None else dim if isinstance(dim, (tuple, list)) else [dim]
    return any(shape[d] == 0 for d in dims)


REDUCE_CASES = [(shape, dim, keep) for shape in SHAPES for dim in _dims(shape)
                for keep in (False, True)]


def _case_id(case):
    shape, dim, keep = case
    return f"{shape}-dim={dim}-keep={keep}"


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered",
                            "ignore:divide by zero encountered")
@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp"])
@pytest.mark.parametrize("case", REDUCE_CASES, ids=[_case_id(c) for c in REDUCE_CASES])
def test_reductions_match_torch(torch, rng, name, case):
    shape, dim, keep = case
    if name == "logsumexp" and dim is None:
        dim = tuple(range(len(shape))) or 0  # (torch's logsumexp needs a dim)
    if not len(shape) and isinstance(dim, tuple):
        dim = ()
    x, t = both(torch, rng.standard_normal(shape))
    if name == "logsumexp" and 0 in shape and _reduces_empty(shape, dim):
        # differs from PyTorch (-inf): ops.py's logsumexp refuses an empty reduction
        with pytest.raises(ShapeError, match="^logsumexp: zero-size array"):
            x.logsumexp(dim=dim)
        return
    if dim is None:
        forms = [(getattr(x, name)(), getattr(t, name)())]
    else:
        forms = [(getattr(x, name)(dim=dim, keepdim=keep),
                  getattr(t, name)(dim=dim, keepdim=keep)),
                 (getattr(x, name)(dim, keep), getattr(t, name)(dim, keep)),
                 (getattr(ad, name)(x, dim=dim, keepdim=keep),
                  getattr(torch, name)(t, dim=dim, keepdim=keep))]
    for ours, theirs in forms:
        assert_same(ours, theirs)
    backward_both(*forms[0], rng)
    assert_grads([(x, t)])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax_over_every_dim_matches_torch(torch, rng, name, shape):
    for dim in range(-max(len(shape), 1), max(len(shape), 1)):
        x, t = both(torch, rng.standard_normal(shape))
        if len(shape) and shape[dim] == 0:
            # differs from PyTorch (an empty result): ops.py's softmax refuses it
            with pytest.raises(ShapeError, match=f"^{name}: zero-size array"):
                getattr(x, name)(dim)
            continue
        forms = [(getattr(x, name)(dim=dim), getattr(t, name)(dim=dim)),
                 (getattr(x, name)(dim), getattr(t, name)(dim)),
                 (getattr(ad, name)(x, dim=dim), getattr(torch, name)(t, dim=dim)),
                 (getattr(ad, name)(x, dim), getattr(torch, name)(t, dim))]
        for ours, theirs in forms:
            assert_same(ours, theirs)
        backward_both(*forms[0], rng)
        assert_grads([(x, t)])


def test_numpy_and_pytorch_spellings_agree(rng):
    x = ad.tensor(rng.standard_normal((2, 3, 4)))
    for name in ("sum", "mean", "logsumexp"):
        f = getattr(x, name)
        assert f(axis=1, keepdims=True).equal(f(dim=1, keepdim=True))
        assert f(axis=(0, 2)).equal(f(dim=(0, 2)))
        with pytest.raises(TypeError, match=f"^{name}: give axis= or dim=, not both"):
            f(axis=1, dim=1)
        with pytest.raises(TypeError, match=f"^{name}: give keepdims= or keepdim=, not both"):
            f(1, keepdims=True, keepdim=True)
    assert x.softmax(axis=0).equal(x.softmax(dim=0)) and x.softmax().equal(x.softmax(-1))


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp", "max", "min", "argmax",
                                  "argmin", "softmax", "log_softmax"])
def test_out_of_range_and_non_int_dims_raise_naming_the_function(name):
    x = ad.zeros(2, 3)
    for dim in (2, -3):
        with pytest.raises((IndexError, ShapeError), match=f"^{name}: .*{dim}.*out of range"):
            getattr(x, name)(dim=dim)
    for dim in (1.0, "1", True):
        with pytest.raises(TypeError, match=f"^{name}: "):
            getattr(x, name)(dim=dim)
    with pytest.raises((IndexError, ShapeError), match=f"^{name}: "):
        getattr(ad.tensor(2.0), name)(dim=1)  # a 0-d tensor has dims 0 and -1 only


def test_duplicate_dims_raise(torch):
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).sum(dim=(0, 0))
    with pytest.raises(ShapeError, match="^sum: duplicate"):
        ad.zeros(2, 3).sum(dim=(0, -2))


def test_reduction_dtypes_as_torch(torch):
    for data, dtype in (([1, 2], "int64"), ([1, 2], "int32"), ([True, True], "bool"),
                        ([1.0, 2.0], "float32")):
        ours = ad.tensor(data, dtype=getattr(ad, dtype))
        theirs = torch.tensor(data, dtype=getattr(torch, dtype))
        assert_same(ours.sum(), theirs.sum())
        assert_same(ours.sum(dim=0, keepdim=True), theirs.sum(dim=0, keepdim=True))
        assert_same(ours.sum(dtype=ad.float32), theirs.sum(dtype=torch.float32))


def test_mean_of_integers_works_differs_from_pytorch(torch):
    # differs from PyTorch (which raises): numpy's mean, float64 (handy for accuracy)
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).mean()
    assert_same(ad.tensor([1, 2]).mean(), np.float64(1.5))
    assert ad.tensor([True, False, True, True]).mean().item() == 0.75
    assert ad.tensor([1, 2]).float().mean().dtype == ad.float32


# ---------------------------------------------------------------------------
# max / min / argmax / argmin: numpy's spelling gives values, PyTorch's (values, indices)

def test_max_min_forms():
    x = ad.tensor([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]])
    assert isinstance(x.max(), Tensor) and x.max().item() == 7.0
    for form in (x.max(1), x.max(dim=1), ad.max(x, 1), ad.max(x, dim=1)):
        values, indices = form  # a named pair, unpacked as in PyTorch
        assert form.values is values and form.indices is indices
        assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
        assert indices.dtype == ad.int64 and not indices.requires_grad
    assert x.max(1, True).values.shape == (2, 1) == x.max(dim=-1, keepdim=True).indices.shape
    assert x.min(0).values.tolist() == [1.0, 2.0, 5.0] and x.min(0)[1].tolist() == [0, 1, 0]
    other = ad.tensor(4.0)
    assert x.max(other).tolist() == [[4.0, 5.0, 5.0], [7.0, 4.0, 7.0]]
    assert ad.max(x, other).equal(ad.maximum(x, other)) and x.min(other).equal(
        ad.minimum(x, other))


def test_max_with_the_axis_keyword_gives_values_differs_from_pytorch(torch):
    # differs from PyTorch: API.md has max(axis=...) keep numpy's meaning (values only);
    # torch reads axis= as dim= and returns (values, indices).
    x = ad.tensor([[1.0, 5.0], [7.0, 2.0]])
    assert isinstance(x.max(axis=1), Tensor) and x.max(axis=1).tolist() == [5.0, 7.0]
    assert x.min(axis=0, keepdims=True).tolist() == [[1.0, 2.0]]
    assert isinstance(torch.tensor([[1.0]]).max(axis=1), tuple)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("case", [c for c in REDUCE_CASES if c[1] is None or
                                  isinstance(c[1], int)], ids=_case_id)
def test_max_min_with_dim_match_torch(torch, rng, name, case):
    shape, dim, keep = case
    # Integer values give many ties: the index (and the gradient) is the first one.
    data = rng.integers(0, 3, shape).astype(np.float64)
    x, t = both(torch, data)
    if 0 in shape and (dim is None or not len(shape) or shape[dim] == 0):
        with pytest.raises(ShapeError, match=f"^{name}: cannot reduce"):
            getattr(x, name)() if dim is None else getattr(x, name)(dim)
        return
    if dim is None:
        ours, theirs = getattr(x, name)(), getattr(t, name)()
    else:
        ours, theirs = getattr(x, name)(dim, keep), getattr(t, name)(dim, keep)
        assert_same(ours.indices, theirs.indices)
        assert_same(getattr(ad, name)(x, dim=dim, keepdim=keep).indices,
                    getattr(torch, name)(t, dim=dim, keepdim=keep).indices)
        ours, theirs = ours.values, theirs.values
    assert_same(ours, theirs)
    backward_both(ours, theirs, rng)
    assert_grads([(x, t)])


def test_max_gradient_at_ties(torch):
    data = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    x, t = both(torch, data)
    x.max(1).values.sum().backward()  # max(dim): all to the first maximum
    t.max(1).values.sum().backward()
    assert x.grad.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert_grads([(x, t)])
    for ours, theirs in ((lambda a: a.max(), lambda a: a.max()),  # max(): shared evenly
                         (lambda a: a.max(axis=1), lambda a: torch.amax(a, dim=1)),
                         (lambda a: a.min(dim=0, keepdim=True)[0],
                          lambda a: a.min(dim=0, keepdim=True)[0])):
        x, t = both(torch, data)
        ours(x).sum().backward()
        theirs(t).sum().backward()
        assert_grads([(x, t)])


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("shape", [s for s in SHAPES if 0 not in s], ids=str)
def test_argmax_argmin_match_torch_with_ties_and_nans(torch, rng, name, shape):
    for data in (rng.integers(0, 3, shape).astype(np.float64),
                 np.where(rng.random(shape) < 0.2, np.nan, rng.integers(0, 2, shape))):
        x, t = ad.tensor(data), torch.tensor(data)
        assert_same(getattr(x, name)(), getattr(t, name)())
        assert_same(getattr(x, name)(keepdim=True), getattr(t, name)(keepdim=True))
        assert_same(getattr(ad, name)(x), getattr(torch, name)(t))
        for dim in range(-max(len(shape), 1), max(len(shape), 1)):
            for keep in (False, True):
                assert_same(getattr(x, name)(dim, keep), getattr(t, name)(dim, keep))
                assert_same(getattr(x, name)(dim=dim, keepdim=keep),
                            getattr(torch, name)(t, dim=dim, keepdim=keep))


def test_argmax_of_integers_and_bools_is_int64(torch):
    for data in ([1, 5, 5], [[3, 1], [-2, 7]]):
        assert_same(ad.tensor(data).argmax(), torch.tensor(data).argmax())
        assert_same(ad.tensor(data).max(0).indices, torch.tensor(data).max(0).indices)
        assert_same(ad.tensor(data).max(0).values, torch.tensor(data).max(0).values)
        assert_same(ad.tensor(data).max(), torch.tensor(data).max())
    # differs from PyTorch (argmax refuses bool): the first True, as numpy
    flags = [[True, False], [False, True]]
    assert_same(ad.tensor(flags).argmax(1), np.array([0, 1]))
    assert_same(ad.tensor(flags).max(1).values, torch.tensor(flags).max(1).values)


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered",
                            "ignore:divide by zero encountered")
def test_empty_tensors_reduce_where_torch_does(torch):
    x, t = both(torch, np.zeros((0, 3)))
    assert_same(x.max(1).values, t.max(1).values)
    assert_same(x.argmax(1), t.argmax(1))
    assert_same(x.sum(0), t.sum(0))
    assert_same(x.mean(0), t.mean(0))
    assert_same(x.logsumexp(1), t.logsumexp(1))
    assert_same(x.softmax(1), t.softmax(1))
    for call in (lambda a: a.max(), lambda a: a.max(0), lambda a: a.argmax(),
                 lambda a: a.argmin(0), lambda a: a.min(axis=0)):
        with pytest.raises(ShapeError, match="cannot reduce"):
            call(x)
        with pytest.raises((RuntimeError, IndexError)):
            call(t) if call.__code__.co_names != ("min",) else t.amin(0)


def test_max_errors():
    x = ad.zeros(2, 3)
    with pytest.raises(TypeError, match="^max: dim must be an int"):
        x.max(1.5)
    with pytest.raises(TypeError, match="^max: dim must be an int"):
        x.max((0, 1))
    with pytest.raises(TypeError, match=r"^max\(other\) takes no other arguments"):
        x.max(ad.zeros(3), 1)
    with pytest.raises(TypeError, match="^min: dim given twice"):
        x.min(0, dim=1)
    with pytest.raises(TypeError, match="^max: at most dim and keepdim"):
        x.max(0, True, 1)
    with pytest.raises(TypeError, match="^max: out= is not supported"):
        x.max(0, out=ad.zeros(3))


def test_0d_tensors_reduce_over_dims_0_and_minus_1(torch):
    for dim in (0, -1):
        for keep in (False, True):
            x, t = both(torch, 3.0)
            assert_same(x.sum(dim, keep), t.sum(dim, keep))
            assert_same(x.max(dim, keep).values, t.max(dim, keep).values)
            assert_same(x.max(dim, keep).indices, t.max(dim, keep).indices)
            assert_same(x.argmax(dim, keep), t.argmax(dim, keep))
            assert_same(x.softmax(dim), t.softmax(dim))
            x.max(dim, keep).values.backward()
            t.max(dim, keep).values.backward()
            assert_grads([(x, t)])
    x, t = both(torch, 3.0)
    assert_same(x.sum(dim=(0,)), t.sum(dim=(0,)))


# ---------------------------------------------------------------------------
# transpose: API.md's rules (a full permutation permutes as numpy; two axes of a tensor
# that is not 2-D, or dim0=/dim1=, swap as PyTorch)

def test_transpose_swaps_two_dims_of_a_non_2d_tensor_as_torch(torch, rng):
    data = rng.standard_normal((2, 3, 4))
    for dims in ((0, 1), (1, 0), (-1, 0), (0, 2), (2, -2), (1, 1), (-3, -1)):
        x, t = both(torch, data)
        assert_same(x.transpose(*dims), t.transpose(*dims))
        assert_same(ad.transpose(x, *dims), torch.transpose(t, *dims))
        backward_both(x.transpose(*dims), t.transpose(*dims), rng)
        assert_grads([(x, t)])
    for shape in ((4,), ()):
        x, t = both(torch, rng.standard_normal(shape))
        for dims in ((0, 0), (0, -1), (-1, -1)):
            assert_same(x.transpose(*dims), t.transpose(*dims))


def test_transpose_with_dim0_dim1_keywords_swaps_as_torch(torch, rng):
    for shape in ((3, 4), (2, 3, 4)):
        x, t = both(torch, rng.standard_normal(shape))
        assert_same(x.transpose(dim0=0, dim1=1), t.transpose(dim0=0, dim1=1))
        assert_same(x.transpose(dim0=-1, dim1=0), t.transpose(dim0=-1, dim1=0))
    with pytest.raises(TypeError, match="^transpose: give both dim0 and dim1"):
        ad.zeros(2, 3).transpose(dim0=0)
    with pytest.raises(TypeError, match="^transpose: give both dim0 and dim1"):
        ad.zeros(2, 3).transpose(1, dim0=0, dim1=1)


def test_transpose_of_a_matrix_with_two_axes_swaps_as_torch(torch, rng):
    # numpy would read m.transpose(0, 1) as the identity permutation; PyTorch code means
    # the transpose, and so do we (every spelling below transposes in both libraries).
    data = rng.standard_normal((3, 4))
    m, tm = both(torch, data)
    for ours, theirs in ((m.transpose(0, 1), tm.transpose(0, 1)),
                         (ad.transpose(m, 0, 1), torch.transpose(tm, 0, 1))):
        assert_same(ours, theirs)
    for ours in (m.transpose(1, 0), m.transpose(-1, 0), m.t(), m.T, m.transpose(),
                 m.transpose(dim0=0, dim1=1), m.transpose((1, 0)), ad.t(m)):
        assert_same(ours, tm.t())
    x = ad.tensor(data, requires_grad=True)
    assert gradcheck(lambda a: a.transpose(0, 1) * ad.arange(12.0).view(4, 3), [x])


def test_transpose_full_permutations_as_numpy(rng):
    data = rng.standard_normal((2, 3, 4))
    x = ad.tensor(data, requires_grad=True)
    for axes in ((2, 0, 1), (0, 1, 2), (-1, 0, 1), (1, 2, 0)):
        assert_same(x.transpose(*axes), data.transpose(axes))
        assert_same(x.transpose(axes), data.transpose(axes))
        assert_same(x.transpose(list(axes)), data.transpose(axes))
    assert_same(x.transpose(), data.transpose())
    assert_same(x.T, data.T)
    assert gradcheck(lambda a: a.transpose(2, 0, 1) * ad.arange(24.0).view(4, 2, 3), [x])


def test_transpose_errors():
    x = ad.zeros(2, 3, 4)
    with pytest.raises(ShapeError, match=r"^transpose: axis 3 .*out of range"):
        x.transpose(0, 3)
    with pytest.raises(ShapeError, match=r"^transpose: axis -4 .*out of range"):
        x.transpose(-4, 0)
    with pytest.raises(ShapeError, match="^transpose: axes .* are not a permutation"):
        x.transpose(0, 0, 1)
    with pytest.raises(ShapeError, match="^transpose: axis 3 of axes .* is out of range"):
        x.transpose(0, 1, 2, 3)
    with pytest.raises(TypeError, match="^transpose: axes must be ints"):
        x.transpose(0, 1.0)
    with pytest.raises(ShapeError, match=r"^transpose: axis 2 .*out of range"):
        ad.zeros(2, 3).transpose(0, 2)
    with pytest.raises(ShapeError, match=r"^transpose: axis 1 .*out of range"):
        ad.zeros(4).transpose(0, 1)
    with pytest.raises(IndexError, match="^transpose: dim 1 is out of range"):
        ad.tensor(1.0).transpose(0, 1)


def test_permute_and_t_as_torch(torch, rng):
    data = rng.standard_normal((2, 3, 4, 1))
    for _ in range(12):
        perm = tuple(int(p) - (4 if rng.random() < 0.5 else 0) for p in rng.permutation(4))
        x, t = both(torch, data)
        assert_same(x.permute(*perm), t.permute(*perm))
        assert_same(x.permute(perm), t.permute(perm))
        assert_same(ad.permute(x, perm), torch.permute(t, perm))
        backward_both(x.permute(perm), t.permute(perm), rng)
        assert_grads([(x, t)])
    for shape in ((3, 4), (4,), ()):
        x, t = both(torch, rng.standard_normal(shape))
        assert_same(x.t(), t.t())
    with pytest.raises(ShapeError, match="^t: expects a tensor with at most 2 dimensions"):
        ad.zeros(2, 3, 4).t()
    with pytest.raises(ShapeError, match=r"^permute: dims \(0, 1\) for a tensor of shape"):
        ad.zeros(2, 3, 4).permute(0, 1)
    with pytest.raises(ShapeError, match="^permute: .*give each of its 3 dimensions once"):
        ad.zeros(2, 3, 4).permute(0, -3, 1)
    with pytest.raises(IndexError, match="^permute: dim 3 is out of range"):
        ad.zeros(2, 3, 4).permute(0, 3, 1)
    with pytest.raises(TypeError, match="^permute: dim must be an int"):
        ad.zeros(2, 3, 4).permute(0, 1.0, 2)
    assert ad.tensor(1.0).permute().shape == ()


# ---------------------------------------------------------------------------
# shape methods, against torch (with gradients)

SHAPE_CALLS = {
    "view(-1)": lambda a: a.view(-1),
    "view(4, -1)": lambda a: a.view(4, -1),
    "view((3, 8))": lambda a: a.view((3, 8)),
    "view(size())": lambda a: a.view(a.size()),
    "view_as": lambda a: a.view_as(a.reshape(6, 4)),
    "reshape(-1, 2)": lambda a: a.reshape(-1, 2),
    "reshape(size(0), -1)": lambda a: a.reshape(a.size(0), -1),
    "reshape_as": lambda a: a.reshape_as(a.view(24)),
    "flatten()": lambda a: a.flatten(),
    "flatten(1)": lambda a: a.flatten(1),
    "flatten(0, 1)": lambda a: a.flatten(0, 1),
    "flatten(-2)": lambda a: a.flatten(-2),
    "flatten(start_dim=1, end_dim=-1)": lambda a: a.flatten(start_dim=1, end_dim=-1),
    "flatten(1, 1)": lambda a: a.flatten(1, 1),
    "unsqueeze(0)": lambda a: a.unsqueeze(0),
    "unsqueeze(-1)": lambda a: a.unsqueeze(-1),
    "unsqueeze(3)": lambda a: a.unsqueeze(3),
    "unsqueeze(-4)": lambda a: a.unsqueeze(-4),
    "unsqueeze(dim=1)": lambda a: a.unsqueeze(dim=1),
    "squeeze()": lambda a: a.unsqueeze(0).unsqueeze(2).squeeze(),
    "squeeze(0)": lambda a: a.unsqueeze(0).squeeze(0),
    "squeeze(1) (not 1)": lambda a: a.squeeze(1),
    "squeeze(-2)": lambda a: a.unsqueeze(-2).squeeze(-2),
    "squeeze((0, 2))": lambda a: a.unsqueeze(0).unsqueeze(2).squeeze((0, 2)),
    "squeeze(dim=0)": lambda a: a.unsqueeze(0).squeeze(dim=0),
    "expand": lambda a: a[:, :1].expand(2, 3, 4),
    "expand(-1, ...)": lambda a: a[:1].expand(5, -1, -1, -1),
    "expand_as": lambda a: a[:1, :, :1].expand_as(a),
    "repeat": lambda a: a.repeat(2, 1, 3),
    "repeat(lead)": lambda a: a.repeat(2, 1, 1, 2),
    "repeat((0, 1, 1))": lambda a: a.repeat((0, 1, 1)),
    "getitem": lambda a: a[1, ::2, -1],
    "getitem tensor": lambda a: a[ad_or_torch(a).tensor([1, 0, 1])],
    "getitem mask": lambda a: a[a > 0],
    "cat dim=1": lambda a: ad_or_torch(a).cat([a, a * 2], dim=1),
    "cat -1": lambda a: ad_or_torch(a).cat((a, a), -1),
    "stack dim=-1": lambda a: ad_or_torch(a).stack([a, -a], dim=-1),
    "stack 0": lambda a: ad_or_torch(a).stack([a, a]),
    "unflatten by view": lambda a: a.flatten().view(2, 3, 4),
}


def ad_or_torch(a):
    import torch
    return ad if isinstance(a, Tensor) else torch


@pytest.mark.parametrize("name", sorted(SHAPE_CALLS))
def test_shape_methods_match_torch(torch, rng, name):
    x, t = both(torch, rng.standard_normal((2, 3, 4)))
    ours, theirs = SHAPE_CALLS[name](x), SHAPE_CALLS[name](t)
    assert_same(ours, theirs)
    backward_both(ours, theirs, rng)
    assert_grads([(x, t)])


@pytest.mark.parametrize("shape", [(), (1,), (3,), (1, 1), (0, 2), (2, 1, 0)], ids=str)
def test_shape_methods_on_small_and_empty_tensors(torch, shape):
    x, t = both(torch, np.ones(shape))
    n = max(len(shape), 1)
    assert_same(x.flatten(), t.flatten())
    assert_same(x.squeeze(), t.squeeze())
    assert_same(x.view(-1), t.view(-1))
    for d in range(-n, n):
        assert_same(x.squeeze(d), t.squeeze(d))
        assert_same(x.flatten(d), t.flatten(d))
    for d in range(-len(shape) - 1, len(shape) + 1):
        assert_same(x.unsqueeze(d), t.unsqueeze(d))


SHAPE_ERRORS = [
    ("view", lambda a: a.view(5, -1), ShapeError, "^reshape: cannot reshape"),
    ("view", lambda a: a.view(-1, -1), ShapeError, "^reshape: can only specify one unknown"),
    ("view", lambda a: a.view(2.0, 12), TypeError, "^reshape: sizes must be ints"),
    ("view", lambda a: a.view(ad.float32), TypeError, "^view: expected sizes as ints"),
    ("reshape", lambda a: a.reshape(2, -2, 6), ShapeError, "^reshape: invalid size -2"),
    ("reshape", lambda a: a.reshape("6", 4), TypeError, "^reshape: sizes must be ints"),
    ("flatten", lambda a: a.flatten(2, 1), ValueError, "^flatten: start_dim 2 comes after"),
    ("flatten", lambda a: a.flatten(3), IndexError, "^flatten: dim 3 is out of range"),
    ("unsqueeze", lambda a: a.unsqueeze(4), IndexError, "^unsqueeze: dim 4 is out of range"),
    ("unsqueeze", lambda a: a.unsqueeze(-5), IndexError, "^unsqueeze: dim -5 is out of"),
    ("unsqueeze", lambda a: a.unsqueeze(1.0), TypeError, "^unsqueeze: dim must be an int"),
    ("squeeze", lambda a: a.squeeze(3), IndexError, "^squeeze: dim 3 is out of range"),
    ("expand", lambda a: a.expand(2, 4, 4), ShapeError, "^expand: cannot expand"),
    ("expand", lambda a: a.expand(3, 4), ShapeError, "^expand: 2 sizes"),
    ("expand", lambda a: a.expand(-1, 2, 3, 4), ShapeError, "^expand: cannot expand"),
    ("repeat", lambda a: a.repeat(2, 2), ShapeError, "^repeat: 2 repeat counts"),
    ("repeat", lambda a: a.repeat(-1, 1, 1), ValueError, "^repeat: counts must be ints >= 0"),
    ("repeat", lambda a: a.repeat(1.5, 1, 1), ValueError, "^repeat: counts must be ints"),
    ("cat", lambda a: ad.cat([a, a[0]]), ShapeError, "^concatenate: all the input arrays"),
    ("cat", lambda a: ad.cat([]), TypeError, "^concatenate: expected a non-empty list"),
    ("cat", lambda a: ad.cat([a, a], dim=3), ShapeError, "^concatenate: axis 3 is out"),
    ("stack", lambda a: ad.stack([a, a[0]]), ShapeError, "^stack: all input arrays"),
    ("mm", lambda a: ad.mm(a[0], a[0, 0]), ShapeError, "^mm: both operands must be matrices"),
    ("mm", lambda a: a.mm(a), ShapeError, "^mm: both operands must be matrices"),
]


@pytest.mark.parametrize("name, call, error, message", SHAPE_ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(SHAPE_ERRORS)])
def test_shape_errors_name_the_function(torch, name, call, error, message):
    with pytest.raises(error, match=message):
        call(ad.zeros(2, 3, 4))


# ---------------------------------------------------------------------------
# size / numel / dim

@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4), (0, 3)], ids=str)
def test_size_numel_dim_as_torch(torch, shape):
    x, t = ad.zeros(shape), torch.zeros(shape)
    assert x.size() == tuple(t.size()) and isinstance(x.size(), tuple)
    for d in range(-len(shape), len(shape)):
        assert x.size(d) == t.size(d) == x.size(dim=d) == x.shape[d]
    assert x.numel() == t.numel() == ad.numel(x) == x.nelement()
    assert x.dim() == t.dim() == x.ndimension() == x.ndim


def test_size_is_also_numpys_element_count():
    x = ad.zeros(2, 3, 4)
    assert x.size == 24 and isinstance(x.size, int) and int(x.size) == 24
    assert x.size * 2 == 48 and x.size + 1 == 25 and x.size > 10 and x.size // 5 == 4
    assert len(range(x.size)) == 24 and [0] * ad.zeros(3).size == [0, 0, 0]
    assert ad.tensor(7.0).size == 1 and ad.zeros(0, 3).size == 0
    assert np.zeros(x.size).shape == (24,)


def test_size_objects_are_shapes_as_torch_size(torch):
    for m in (ad, torch):
        x = m.zeros(2, 3, 4)
        assert isinstance(x.size(), m.Size) and x.size() == (2, 3, 4)
        assert m.Size([2, 3]) == (2, 3) and m.Size([2, 3]).numel() == 6
        assert tuple(m.zeros(m.Size([2, 3])).shape) == (2, 3)
        assert tuple(x.view(m.Size([3, 8])).shape) == (3, 8)
        assert tuple(x.reshape(x.size()[1:] + (2,)).shape) == (3, 4, 2)
    assert repr(ad.zeros(2, 3).size()) == "autodiff.Size([2, 3])"
    import copy
    import pickle
    count = ad.zeros(2, 3).size
    for copied in (copy.copy(count), copy.deepcopy(count), pickle.loads(pickle.dumps(count))):
        assert copied == 6 and copied() == (2, 3) and copied(1) == 3


def test_size_errors(torch):
    x = ad.zeros(2, 3)
    with pytest.raises(IndexError, match="^size: dim 2 is out of range"):
        x.size(2)
    with pytest.raises(IndexError, match="^size: dim -3 is out of range"):
        x.size(-3)
    with pytest.raises(TypeError, match="^size: dim must be an int"):
        x.size("a")
    with pytest.raises(TypeError, match="^size: dim must be an int"):
        x.size(True)
    with pytest.raises(IndexError):
        torch.tensor(1.0).size(0)
    with pytest.raises(IndexError, match="^size: dim 0 is out of range for a 0-d tensor"):
        ad.tensor(1.0).size(0)


# ---------------------------------------------------------------------------
# __index__, __format__, __bool__, float(), int()

def test_index_as_torch(torch):
    for m in (ad, torch):
        assert [10, 20, 30][m.tensor(1)] == 20
        assert list(range(m.tensor(3))) == [0, 1, 2]
        assert "abc"[m.tensor(2)] == "c" and [10, 20][m.tensor([1])] == 20
        assert [10, 20][m.tensor(True)] == 20 and hex(m.tensor(255)) == "0xff"
        assert operator.index(m.tensor(-4)) == -4
        assert np.arange(5)[m.tensor(3)] == 3
        assert list(range(10))[m.tensor(1):m.tensor(7):m.tensor(3)] == [1, 4]
        for bad in (m.tensor(1.0), m.tensor([0, 1])):
            with pytest.raises(TypeError):
                [10, 20][bad]
    with pytest.raises(TypeError, match="only a one-element integer tensor can be used as "
                                        "an index, not one of shape \\(\\) and dtype float64"):
        [10, 20][ad.tensor(1.0)]


def test_format_as_torch(torch):
    for m in (ad, torch):
        loss = m.tensor(3.14159)
        assert f"{loss:.4f}" == "3.1416" and f"{loss:8.2f}" == "    3.14"
        assert f"{m.tensor(3):d}" == "3" and f"{m.tensor(1234.5):e}" == "1.234500e+03"
        assert f"{m.tensor(2.5, requires_grad=True):.3f}" == "2.500"
        assert f"{m.tensor(3.5)}" == "3.5"  # a 0-d tensor formats as its number
        assert "loss={:.2f}".format(m.tensor(0.125)) == "loss=0.12"
    assert f"{ad.tensor([1.0, 2.0])}" == str(ad.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"^format: the format '.2f' needs a one-element "
                                        r"tensor, this one has shape \(2,\)"):
        f"{ad.tensor([1.0, 2.0]):.2f}"


def test_format_of_a_one_element_vector_differs_from_pytorch(torch):
    # differs from PyTorch (which raises): the number is formatted
    with pytest.raises(TypeError):
        f"{torch.tensor([3.14159]):.2f}"
    assert f"{ad.tensor([3.14159]):.2f}" == "3.14" == f"{ad.tensor([[3.14159]]):.2f}"


def test_bool_as_torch(torch):
    for m in (ad, torch):
        assert not m.tensor(0.0) and m.tensor([2.0]) and m.tensor([[True]])
        assert ("yes" if m.tensor(3.0) > 0 else "no") == "yes"
        assert bool(m.tensor(-0.0)) is False and bool(m.tensor(float("nan"))) is True
        n = m.tensor(3)
        while n:
            n = n - 1
        assert n.item() == 0
    for data in ([1.0, 2.0], [], [[1.0], [0.0]]):
        with pytest.raises(RuntimeError):
            bool(torch.tensor(data))
        with pytest.raises(ValueError, match="^the truth value of a tensor of shape .* is "
                                             "ambiguous"):
            bool(ad.tensor(data))


def test_float_int_item_tolist_as_torch(torch64):
    torch = torch64
    for data in (2.5, [2.5], [[-2.7]], 7, [True]):
        x, t = ad.tensor(data), torch.tensor(data)
        assert float(x) == float(t) and int(x) == int(t) and x.item() == t.item()
        assert type(x.item()) is type(t.item())
    for data in ([[1, 2], [3, 4]], 2.5, [[0.5]], [], [True, False]):
        assert ad.tensor(data).tolist() == torch.tensor(data).tolist()
    with pytest.raises(ValueError, match="^item: only a single-element tensor"):
        float(ad.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="^item: only a single-element tensor"):
        ad.zeros(0).item()


# ---------------------------------------------------------------------------
# to(), conversions and devices

CONVERSIONS = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8",
               "bool"]


@pytest.mark.parametrize("target", CONVERSIONS)
@pytest.mark.parametrize("source", ["float64", "float32", "int64", "bool"])
def test_to_dtype_converts_as_torch(torch, source, target):
    data = [-2.5, -1.7, -0.0, 0.0, 0.4, 1.7, 2.5, 100.9] if source[0] == "f" else \
        [0, 1, 1, 0] if source == "bool" else [-3, 0, 1, 100]
    x = ad.tensor(data, dtype=getattr(ad, source))
    t = torch.tensor(data, dtype=getattr(torch, source))
    if target == "uint8" and source != "bool":
        x, t = x.abs(), t.abs()  # (negative floats to uint8 are undefined in C)
    ours, theirs = x.to(getattr(ad, target)), t.to(getattr(torch, target))
    assert_same(ours, theirs, rtol=1e-3 if "16" in target else 1e-12)


@pytest.mark.parametrize("method, dtype", [("float", "float32"), ("double", "float64"),
                                           ("half", "float16"), ("long", "int64"),
                                           ("int", "int32"), ("bool", "bool")])
def test_conversion_methods_as_torch(torch, method, dtype):
    x = ad.tensor([-1.7, 0.0, 2.5])
    t = torch.tensor([-1.7, 0.0, 2.5], dtype=torch.float64)
    assert_same(getattr(x, method)(), getattr(t, method)(), rtol=1e-3)
    assert getattr(x, method)().dtype == getattr(ad, dtype)
    assert getattr(x, method)().dtype == x.type(getattr(ad, dtype)).dtype
    assert x.type() == "float64"  # (torch says "torch.DoubleTensor")


def test_to_forms_as_torch(torch):
    for m in (ad, torch):
        x = m.tensor([1.0, 2.0], dtype=m.float64)
        other = m.tensor([1], dtype=m.int32)
        assert x.to("cpu", m.float32).dtype == m.float32
        assert x.to(device="cpu", dtype=m.float32).dtype == m.float32
        assert x.to(m.device("cpu"), dtype=m.float16).dtype == m.float16
        assert x.to(other).dtype == m.int32
        assert x.to(m.float32, copy=True).dtype == m.float32
        assert str(x.device) == "cpu" and x.device.type == "cpu"
        assert x.device == m.device("cpu") and not x.is_cuda
        assert not m.cuda.is_available()
    assert ad.accelerator.is_available() is False
    assert ad.accelerator.current_accelerator() is None and ad.cuda.device_count() == 0
    assert ad.tensor(1.0).to(np.float32).dtype == ad.float32  # numpy's names work too


def test_to_keeps_the_graph_for_float_dtypes(torch, rng):
    data = rng.standard_normal(4)
    x, t = both(torch, data)
    ours, theirs = (x.to(ad.float32) * 3).double(), (t.to(torch.float32) * 3).double()
    assert_same(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    assert x.grad.dtype == ad.float64
    assert_grads([(x, t)])


def test_to_an_integer_dtype_gives_a_constant_as_torch(torch):
    for m in (ad, torch):
        p = m.tensor([1.7, -2.2], requires_grad=True)
        for conversion in (lambda a: a.long(), lambda a: a.int(), lambda a: a.bool(),
                           lambda a: a.to(m.int64)):
            q = conversion(p)
            assert not q.requires_grad and q.tolist() == conversion(p.detach()).tolist()
        assert p.requires_grad  # (the source is untouched)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "banana", "float32"])
def test_devices_other_than_the_cpu_raise_naming_the_function(device):
    calls = {
        "to": lambda: ad.zeros(2).to(device),
        "to": lambda: ad.zeros(2).to(device=device),
        "zeros": lambda: ad.zeros(2, device=device),
        "tensor": lambda: ad.tensor([1.0], device=device),
        "as_tensor": lambda: ad.as_tensor(ad.zeros(2), device=device),
        "randn": lambda: ad.randn(2, device=device),
        "arange": lambda: ad.arange(3, device=device),
        "ones_like": lambda: ad.ones_like(ad.zeros(2), device=device),
        "device": lambda: ad.device(device),
        "Tensor": lambda: Tensor([1.0], device=device),
    }
    for name, call in calls.items():
        with pytest.raises(RuntimeError, match=rf"^{name}: device '{device}' is not "
                                               r"available; this library runs on the CPU"):
            call()
    with pytest.raises(RuntimeError, match="^cuda: device 'cuda' is not available"):
        ad.zeros(2).cuda()


def test_to_refuses_what_is_neither_a_dtype_nor_a_device():
    with pytest.raises(TypeError, match="^to: 3 is not a dtype"):
        ad.zeros(2).to(3)
    with pytest.raises(TypeError, match="^to: only numeric dtypes"):
        ad.zeros(2).to(object)


def test_device_cpu_compares_with_strings_differs_from_pytorch(torch):
    # differs from PyTorch, where a device never equals a string
    assert ad.zeros(1).device == "cpu" and torch.zeros(1).device != "cpu"
    assert repr(ad.device("cpu")) == repr(torch.device("cpu"))


# ---------------------------------------------------------------------------
# .grad is a Tensor

def test_grad_is_a_constant_tensor_as_torch(torch):
    for m in (ad, torch):
        p = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
        (p * p).sum().backward()
        assert isinstance(p.grad, m.Tensor) and not p.grad.requires_grad
        assert p.grad.grad is None and p.grad.is_leaf
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype
        assert p.grad.tolist() == [2.0, 4.0, 6.0]
        assert np.asarray(p.grad).tolist() == [2.0, 4.0, 6.0]
    f32 = ad.tensor([1.0], dtype=ad.float32, requires_grad=True)
    (f32 * 2).sum().backward()
    assert f32.grad.dtype == ad.float32


def test_grad_data_is_the_ndarray_differs_from_pytorch():
    # differs from PyTorch (whose .data is a Tensor): API.md makes t.grad.data the ndarray
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    (p * 3).sum().backward()
    assert type(p.grad.data) is np.ndarray and p.grad.data.tolist() == [3.0, 3.0]


def test_grad_accumulates_in_place_and_zero_resets_it_as_torch(torch):
    traces = []
    for m in (ad, torch):
        p = m.tensor([1.0, -2.0], dtype=m.float64, requires_grad=True)
        (p * p).sum().backward()
        g = p.grad
        (p ** 3).sum().backward()
        assert p.grad is g  # accumulated into the same tensor
        trace = [g.tolist()]
        assert p.grad.zero_() is g and p.grad.tolist() == [0.0, 0.0]
        (p * 5).sum().backward()
        assert p.grad is g
        trace.append(g.tolist())
        p.grad = None
        (p * 7).sum().backward()
        assert p.grad is not g and g.tolist() == [5.0, 5.0]
        trace.append(p.grad.tolist())
        assigned = m.ones(2, dtype=m.float64)
        p.grad = assigned
        (p * 2).sum().backward()
        assert p.grad is assigned  # an assigned gradient is accumulated into, too
        trace.append(assigned.tolist())
        traces.append(trace)
    assert traces[0] == traces[1]
    assert traces[0] == [[5.0, 8.0], [5.0, 5.0], [7.0, 7.0], [3.0, 3.0]]


def test_assigning_a_wrong_grad_raises(torch):
    p = ad.zeros(3, requires_grad=True)
    for bad in (ad.zeros(2), ad.zeros(3, 1), ad.zeros(3, dtype=ad.float32), np.zeros(4)):
        with pytest.raises(ShapeError, match=r"^grad: the assigned gradient has shape"):
            p.grad = bad
    assert p.grad is None
    with pytest.raises(RuntimeError):
        torch.zeros(3, requires_grad=True).grad = torch.zeros(2)


def test_assigning_an_array_as_grad_differs_from_pytorch(torch):
    # differs from PyTorch (a Tensor or None only): arrays and lists are wrapped
    p = ad.zeros(2, requires_grad=True)
    p.grad = np.array([1.0, 2.0])
    assert isinstance(p.grad, Tensor) and p.grad.tolist() == [1.0, 2.0]
    p.grad = [3.0, 4.0]
    assert p.grad.dtype == ad.float64 and p.grad.tolist() == [3.0, 4.0]
    with pytest.raises(TypeError):
        torch.zeros(2, requires_grad=True).grad = np.zeros(2)


def test_manual_sgd_steps_as_torch(torch, rng):
    data, target = rng.standard_normal((8, 3)), rng.standard_normal(8)
    w0 = rng.standard_normal(3)
    results = []
    for m in (ad, torch):
        X, y = m.tensor(data), m.tensor(target)
        w = m.tensor(w0, requires_grad=True)
        first = w
        for _ in range(5):
            loss = ((X @ w - y) ** 2).mean()
            loss.backward()
            with m.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
        assert w is first and w.is_leaf and w.requires_grad
        results.append((arr(w).copy(), loss.item()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-12)


def test_grad_of_intermediates_and_integers(torch):
    for m in (ad, torch):
        x = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
        h, k = x * 2, x * 3
        h.retain_grad()
        (h ** 2 + k).sum().backward()
        assert h.grad.tolist() == [4.0, 8.0]
        assert m.tensor([1, 2]).grad is None
        if m is ad:  # (torch warns on reading it)
            assert k.grad is None


def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad(torch):
    p = ad.zeros(2, requires_grad=True)
    for change in (lambda: p.add_(1), lambda: p.zero_(), lambda: p.__setitem__(0, 1.0),
                   lambda: p.mul_(2), lambda: p.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="a leaf tensor that requires grad cannot be "
                                               "changed in place"):
            change()
    with pytest.raises(RuntimeError):
        torch.zeros(2, requires_grad=True).add_(1)
    p.grad = ad.ones(2)
    p.grad.zero_()  # a gradient is a constant: no restriction
    assert p.grad.tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------
# backward(gradient=, retain_graph=, create_graph=, inputs=) against torch

def test_backward_with_gradient_as_torch(torch, rng):
    data, cot = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    for gradient in (lambda m: m.tensor(cot), lambda m: cot if m is ad else torch_tensor(cot)):
        x, t = both(torch, data)
        (x.tanh() * x).backward(gradient=gradient(ad))
        (t.tanh() * t).backward(gradient=gradient(torch))
        assert_grads([(x, t)])
    x, t = both(torch, data)
    (x * 2).backward(ad.tensor(cot))  # positionally, as torch
    (t * 2).backward(torch_tensor(cot))
    assert_grads([(x, t)])
    x = ad.tensor(data, requires_grad=True)
    (x * 2).backward(grad=cot)  # (our older name)
    assert_same(x.grad, 2 * cot)


def test_backward_gradient_errors():
    x = ad.zeros(3, requires_grad=True)
    with pytest.raises(ShapeError, match=r"^backward: gradient has shape \(2,\) but the "
                                         r"tensor has shape \(3,\)"):
        (x * 2).backward(gradient=ad.ones(2))
    with pytest.raises(RuntimeError, match="^backward: a gradient can be omitted only for a "
                                           "single-element output"):
        (x * 2).backward()
    with pytest.raises(TypeError, match="^backward: give the upstream gradient once"):
        (x * 2).backward(ad.ones(3), grad=ad.ones(3))
    with pytest.raises(RuntimeError, match="^backward: this tensor does not require grad"):
        ad.zeros(2).sum().backward()


def test_backward_gradient_as_a_list_differs_from_pytorch(torch):
    # differs from PyTorch (Tensors only): numbers, lists and arrays are accepted
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward(gradient=[1.0, 0.5])
    assert x.grad.tolist() == [2.0, 2.0]
    with pytest.raises(TypeError):
        torch.tensor([1.0], requires_grad=True).mul(2).backward(gradient=[1.0])


def test_backward_inputs_as_torch(torch):
    results = []
    for m in (ad, torch):
        a = m.tensor(2.0, dtype=m.float64, requires_grad=True)
        b = m.tensor(3.0, dtype=m.float64, requires_grad=True)
        c = m.tensor(1.0, dtype=m.float64, requires_grad=True)
        (a * b).backward(inputs=[a])
        step = [a.grad.item(), b.grad]
        (a * b * b).backward(inputs=b)  # one tensor, not a list
        step += [a.grad.item(), b.grad.item()]
        (a * b).backward(inputs=[c])  # unused: its grad stays None
        step.append(c.grad)
        h = a * 4
        (h * b).backward(inputs=[h, a])  # a non-leaf fills its .grad when asked
        step += [h.grad.item(), a.grad.item()]
        results.append(step)
    assert results[0] == results[1] == [3.0, None, 3.0, 12.0, None, 3.0, 15.0]


def test_backward_inputs_errors(torch):
    a = ad.tensor(2.0, requires_grad=True)
    with pytest.raises(ValueError, match="^backward: inputs is empty"):
        (a * 2).backward(inputs=[])
    with pytest.raises(TypeError, match=r"^backward: inputs\[1\] must be a Tensor that "
                                        "requires grad"):
        (a * 2).backward(inputs=[a, ad.tensor(1.0)])
    with pytest.raises(RuntimeError):
        (torch.tensor(2.0, requires_grad=True) * 2).backward(inputs=[])


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_create_graph_as_torch(torch):
    results = []
    for m in (ad, torch):
        x = m.tensor(3.0, dtype=m.float64, requires_grad=True)
        (x ** 3 * x.sin()).backward(create_graph=True)
        first = x.grad
        assert first.requires_grad
        row = [first.item()]
        x.grad = None
        first.backward()  # the second derivative, through the recorded gradient
        row.append(x.grad.item())
        y = m.tensor(2.0, dtype=m.float64, requires_grad=True)
        (y ** 2).backward(create_graph=True)
        (y ** 3).backward(create_graph=True)  # accumulates as a graph node
        row += [y.grad.item(), y.grad.requires_grad]
        z = m.tensor(1.5, dtype=m.float64, requires_grad=True)
        out = z.exp() * z
        out.backward(create_graph=True)
        out.backward()  # retain_graph defaults to create_graph
        row.append(z.grad.item())
        results.append(row)
    np.testing.assert_allclose(results[0][:3] + results[0][4:], results[1][:3] + results[1][4:],
                               rtol=1e-12)
    assert results[0][3] is results[1][3] is True


def test_retain_graph_as_torch(torch):
    results = []
    for m in (ad, torch):
        x = m.tensor(2.0, dtype=m.float64, requires_grad=True)
        y = x.exp() * x
        y.backward(retain_graph=True)
        y.backward()
        results.append(x.grad.item())
        with pytest.raises(RuntimeError):
            y.backward()  # the buffers are gone now
    assert results[0] == pytest.approx(results[1], rel=1e-12)
    with pytest.raises(RuntimeError, match="^backward: trying to go through the 'mul_const' "
                                           "node a second time"):
        y = ad.tensor(2.0, requires_grad=True).exp() * 2.0
        y.backward()
        y.backward()


def test_create_graph_gradients_pass_gradcheck():
    """d/dx of f(x) = sum(x**3 sin x) through backward(create_graph=True), checked
    against central differences (never skips)."""
    def derivative(x):
        x.grad = None
        leaf = x if x.is_leaf else x
        (leaf ** 3 * leaf.sin()).sum().backward(create_graph=True, inputs=[leaf])
        g = leaf.grad
        leaf.grad = None
        return g

    x = ad.tensor([0.3, -1.2, 2.0], requires_grad=True)
    assert gradcheck(derivative, [x])
    g = derivative(x)
    data = x.data
    np.testing.assert_allclose(g.data, 3 * data ** 2 * np.sin(data) + data ** 3 * np.cos(data),
                               rtol=1e-12)


# ---------------------------------------------------------------------------
# numpy meeting Tensors

def test_numpy_functions_work_on_gradients():
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    assert np.isfinite(p.grad).tolist() == [True, True]
    assert bool(np.all(np.isfinite(p.grad))) and not np.any(np.isnan(p.grad))
    assert np.linalg.norm(p.grad) == pytest.approx(np.sqrt(20))
    assert isinstance(np.exp(ad.tensor([0.0])), np.ndarray)  # a constant: an ndarray back
    assert np.sum(p.grad).item() == 6.0 and np.mean(p.grad).item() == 3.0
    assert np.max(p.grad).item() == 4.0 and np.sum(ad.ones(2, 3), axis=0).tolist() == [2, 2, 2]


@pytest.mark.parametrize("ufunc", [np.exp, np.abs, np.negative, np.sqrt, np.isnan])
def test_numpy_functions_refuse_tensors_that_require_grad(ufunc):
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=f"^numpy.{ufunc.__name__}: a tensor that requires "
                                        "grad cannot go through a numpy function"):
        ufunc(p)
    with pytest.raises(TypeError, match="^numpy.maximum: a tensor that requires grad"):
        np.maximum(p, 1.0)
    with pytest.raises(TypeError, match="^numpy.add: a tensor that requires grad"):
        np.add.reduce(p)
    assert ufunc(p.detach()).shape == (2,)


OPERATORS_FROM_THE_LEFT = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "**": operator.pow, "@": operator.matmul,
}


@pytest.mark.parametrize("name", sorted(OPERATORS_FROM_THE_LEFT))
def test_an_array_on_the_left_gives_a_recorded_tensor(torch, rng, name):
    op = OPERATORS_FROM_THE_LEFT[name]
    left = rng.uniform(0.5, 2, 3)
    x, t = both(torch, rng.uniform(0.5, 2, 3))
    ours, theirs = op(left, x), op(torch_tensor(left), t)
    assert isinstance(ours, Tensor) and ours.requires_grad
    assert_same(ours, theirs)
    backward_both(ours, theirs, rng)
    assert_grads([(x, t)])
    scalar = op(np.float64(1.5), x) if name != "@" else None
    if scalar is not None:
        assert isinstance(scalar, Tensor) and scalar.requires_grad


def test_numpy_operator_calls_and_comparisons():
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    assert np.add(p, p).requires_grad and np.multiply(p, 3.0).requires_grad
    assert (np.array([2.0, 2.0]) < p).tolist() == [False, False]
    assert (np.array([1.0, 3.0]) == p).tolist() == [True, False]
    assert (np.float32(2.0) * ad.tensor([1.0], dtype=ad.float32)).dtype == ad.float32
    out = np.zeros(1)
    np.add(ad.tensor([1.0]), 1.0, out=out)
    assert out.tolist() == [2.0]
    with pytest.raises(TypeError, match="^numpy.add: out= cannot be a Tensor"):
        np.add(np.ones(1), np.ones(1), out=(ad.zeros(1),))
    assert np.asarray(p).tolist() == [1.0, 2.0] and np.shares_memory(np.asarray(p), p.data)
    s = np.sum(p)  # goes through Tensor.sum: recorded
    s.backward()
    assert p.grad.tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="^sum: out= is not supported"):
        np.sum(p, out=np.zeros(()))


def test_numpy_on_a_tensor_that_requires_grad_differs_from_pytorch(torch):
    # differs from PyTorch: .numpy() and np.asarray give the values of a tensor that
    # requires grad (torch asks for .detach() first)
    p = ad.tensor([1.0], requires_grad=True)
    assert p.numpy().tolist() == [1.0]
    with pytest.raises(RuntimeError):
        torch.tensor([1.0], requires_grad=True).numpy()


# ---------------------------------------------------------------------------
# free functions (torch.sum(x, dim=1), torch.cat, ...), against torch

# name -> (the arguments, from x (standard normal) and y (in [0.5, 2]), 3x4 each; kwargs)
FUNCTIONS = {
    "sin": (lambda x, y: (x,), {}), "cos": (lambda x, y: (x,), {}),
    "exp": (lambda x, y: (x,), {}), "log": (lambda x, y: (y,), {}),
    "sqrt": (lambda x, y: (y,), {}), "abs": (lambda x, y: (x,), {}),
    "tanh": (lambda x, y: (x,), {}), "sigmoid": (lambda x, y: (x,), {}),
    "relu": (lambda x, y: (x,), {}), "square": (lambda x, y: (x,), {}),
    "neg": (lambda x, y: (x,), {}), "clone": (lambda x, y: (x,), {}),
    "pow": (lambda x, y: (y, 2.5), {}), "pow tensor": (lambda x, y: (y, x), {}),
    "clamp": (lambda x, y: (x,), {"min": -0.5, "max": 0.5}),
    "clamp(min)": (lambda x, y: (x,), {"min": 0.1}),
    "clamp(max)": (lambda x, y: (x,), {"max": 0.1}),
    "matmul": (lambda x, y: (x, y.T), {}), "mm": (lambda x, y: (x, y.T), {}),
    "add": (lambda x, y: (x, y), {}), "add(alpha)": (lambda x, y: (x, y), {"alpha": 2.5}),
    "sub": (lambda x, y: (x, y), {}), "sub(alpha)": (lambda x, y: (x, y), {"alpha": -2}),
    "mul": (lambda x, y: (x, y), {}), "div": (lambda x, y: (x, y), {}),
    "maximum": (lambda x, y: (x, y), {}), "minimum": (lambda x, y: (x, y), {}),
    "sum": (lambda x, y: (x,), {"dim": 1}),
    "mean": (lambda x, y: (x,), {"dim": -1, "keepdim": True}),
    "logsumexp": (lambda x, y: (x,), {"dim": 0}),
    "softmax": (lambda x, y: (x,), {"dim": 1}),
    "log_softmax": (lambda x, y: (x, 0), {}),
    "flatten": (lambda x, y: (x,), {}), "unsqueeze": (lambda x, y: (x, 1), {}),
    "squeeze": (lambda x, y: (x[:1],), {}), "reshape": (lambda x, y: (x, (4, 3)), {}),
    "permute": (lambda x, y: (x, (1, 0)), {}), "t": (lambda x, y: (x,), {}),
    "transpose": (lambda x, y: (x, 1, 0), {}), "detach": (lambda x, y: (x,), {}),
}


@pytest.mark.parametrize("case", sorted(FUNCTIONS))
def test_free_functions_match_torch(torch, rng, case):
    name = case.split()[0].split("(")[0]
    arguments, kw = FUNCTIONS[case]
    data = [rng.standard_normal((3, 4)), rng.uniform(0.5, 2, (3, 4))]
    x = [ad.tensor(d, requires_grad=True) for d in data]
    t = [torch.tensor(d, requires_grad=True) for d in data]
    ours = getattr(ad, name)(*arguments(*x), **kw)
    theirs = getattr(torch, name)(*arguments(*t), **kw)
    assert_same(ours, theirs)
    if theirs.requires_grad:
        backward_both(ours, theirs, rng)
        assert_grads(list(zip(x, t)))
    else:
        assert not ours.requires_grad


def test_free_functions_take_numbers_and_lists_differs_from_pytorch(torch):
    # differs from PyTorch (Tensors only): the first argument may be data
    with pytest.raises(TypeError):
        torch.exp(2.0)
    assert ad.exp(2.0).item() == pytest.approx(np.exp(2.0))
    assert ad.sum([1, 2, 3]).item() == 6 and ad.sum([1, 2, 3]).dtype == ad.int64
    assert_same(ad.pow(2, ad.tensor([1.0, 3.0])), torch.pow(2, torch.tensor([1.0, 3.0],
                                                                             dtype=torch.float64)))
    with pytest.raises(TypeError, match="^exp: expected a Tensor, got str"):
        ad.exp("x")


def test_out_writes_into_an_existing_tensor_as_torch(torch, rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    for m in (ad, torch):
        out = m.zeros(2, 2, dtype=m.float64)
        result = m.matmul(m.tensor(a), m.tensor(b), out=out)
        assert result is out
        np.testing.assert_allclose(arr(out), a @ b, rtol=1e-12)
        z = m.zeros(2, 3, dtype=m.float64)
        assert m.mul(m.tensor(a), m.tensor(a), out=z) is z
        np.testing.assert_allclose(arr(z), a * a, rtol=1e-12)
        c = m.zeros(4, 3, dtype=m.float64)
        assert m.cat([m.tensor(a), m.tensor(a)], dim=0, out=c) is c
        s = m.zeros(3, dtype=m.float64)
        assert m.sum(m.tensor(a), dim=0, out=s) is s
        np.testing.assert_allclose(arr(s), a.sum(0), rtol=1e-12)
        with pytest.raises(RuntimeError, match="mul|out="):
            m.mul(m.tensor(a, requires_grad=True), 2.0, out=m.zeros(2, 3, dtype=m.float64))
        with m.no_grad():  # nothing is recorded: fine
            m.mul(m.tensor(a, requires_grad=True), 2.0, out=z)
    with pytest.raises(RuntimeError, match="^mul: out= is not recorded for backward"):
        ad.mul(ad.tensor(a, requires_grad=True), 2.0, out=ad.zeros(2, 3))


def test_out_errors_differ_from_pytorch_on_shape(torch):
    # differs from PyTorch (which resizes out, with a warning): a wrong shape raises
    with pytest.raises(ShapeError, match=r"^mul: out has shape \(3,\), but the result has "
                                         r"shape \(2,\)"):
        ad.mul(ad.ones(2), 2.0, out=ad.zeros(3))
    with pytest.raises(TypeError, match="^exp: out must be a Tensor"):
        ad.exp(ad.ones(2), out=np.zeros(2))
    with pytest.raises(TypeError, match="^max: out= is not supported here"):
        ad.max(ad.ones(2, 2), 1, out=ad.zeros(2))


def test_where_as_torch(torch, rng):
    data = rng.standard_normal((3, 4))
    x, t = both(torch, data)
    y, u = both(torch, -data)
    assert_same(ad.where(x > 0, x, y), torch.where(t > 0, t, u))
    assert_same(ad.where(x > 0, x, 0.0), torch.where(t > 0, t, 0.0))
    backward_both(ad.where(x > 0, x * 2, y), torch.where(t > 0, t * 2, u), rng)
    assert_grads([(x, t), (y, u)])
    for cond in (data > 0, [[True, False]], True, np.zeros((2, 0), bool)):
        ours, theirs = ad.where(ad.tensor(cond)), torch.where(torch.tensor(cond))
        assert len(ours) == len(theirs)
        for o, th in zip(ours, theirs):
            assert_same(o, th)
    with pytest.raises(TypeError, match="^where: give the condition alone, or"):
        ad.where(x > 0, x)
    with pytest.raises(TypeError, match="^where: cond must be boolean"):
        ad.where(x, x, y)


def test_clamp_with_tensor_bounds_as_torch(torch, rng):
    data, lo = rng.standard_normal((3, 4)), rng.standard_normal(4) - 0.5
    x, t = both(torch, data)
    ours = ad.clamp(x, min=ad.tensor(lo), max=2.0)
    theirs = torch.clamp(t, min=torch_tensor(lo), max=torch_tensor(2.0))
    assert_same(ours, theirs)
    backward_both(ours, theirs, rng)
    assert_grads([(x, t)])
    with pytest.raises(TypeError, match="^clamp: a min that requires grad"):
        x.clamp(min=ad.tensor(lo, requires_grad=True))
    with pytest.raises(ValueError, match="^clamp: give at least one of min and max"):
        x.clamp()


def test_clamp_with_min_above_max_raises_differs_from_pytorch(torch):
    # differs from PyTorch (which gives max everywhere): crossed bounds are a mistake
    assert torch.tensor([0.0, 5.0]).clamp(3, 1).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="^clip: lo=3 is greater than hi=1"):
        ad.tensor([0.0, 5.0]).clamp(3, 1)


def test_all_any_eq_equal_allclose_as_torch(torch):
    data = [[1.0, 0.0, 3.0], [2.0, 2.0, 2.0]]
    x, t = ad.tensor(data), torch.tensor(data, dtype=torch.float64)
    for dim in (None, 0, 1, -1):
        for keep in (False, True):
            kw = {} if dim is None else {"dim": dim, "keepdim": keep}
            assert_same(x.all(**kw), t.all(**kw))
            assert_same((x > 1).any(**kw), (t > 1).any(**kw))
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        assert_same(getattr(x, name)(2.0), getattr(t, name)(2.0))
    assert x.equal(x.clone()) and ad.equal(x, data) and not x.equal(x[0])
    assert ad.allclose(x, x + 1e-9) and not ad.allclose(x, x + 1e-3)
    assert ad.is_tensor(x) and not ad.is_tensor(data)


# ---------------------------------------------------------------------------
# the new ops sin, cos, clone

@pytest.mark.parametrize("name", ["sin", "cos", "clone"])
def test_sin_cos_clone_match_torch(torch, rng, name):
    for dtype in ("float64", "float32"):
        data = rng.uniform(-4, 4, (3, 5)).astype(dtype)
        x = ad.tensor(data, requires_grad=True)
        t = torch.tensor(data, requires_grad=True)
        ours, theirs = getattr(x, name)(), getattr(t, name)()
        tol = 1e-12 if dtype == "float64" else 1e-6
        assert_same(ours, theirs, rtol=tol, atol=tol)
        assert_same(getattr(ad, name)(x), getattr(torch, name)(t), rtol=tol, atol=tol)
        cot = rng.standard_normal(ours.shape).astype(dtype)
        ours.backward(cot)
        theirs.backward(torch_tensor(cot))
        assert_same(x.grad, t.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["sin", "cos", "clone"])
def test_sin_cos_clone_pass_gradcheck_to_second_order(name):
    x = ad.tensor([0.3, -1.2, 2.5, 0.0], requires_grad=True)
    assert gradcheck(lambda a: getattr(a, name)() * a, [x])

    def first_derivative(a):
        (g,) = ad.grad(getattr(a, name)().sum(), a, create_graph=True)
        return g * a

    assert gradcheck(first_derivative, [x])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_sin_cos_at_infinities_give_nan(torch):
    data = [float("inf"), float("-inf"), float("nan")]
    for name in ("sin", "cos"):
        assert_same(getattr(ad.tensor(data), name)(),
                    getattr(torch.tensor(data, dtype=torch.float64), name)())


def test_clone_copies_memory_and_keeps_the_graph(torch):
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    c = p.clone()
    assert c.requires_grad and not c.is_leaf and not np.shares_memory(c.data, p.data)
    (c * c).sum().backward()
    assert p.grad.tolist() == [2.0, 4.0]
    constant = ad.tensor([1.0]).clone()
    assert not constant.requires_grad and constant.is_leaf


# ---------------------------------------------------------------------------
# t[index] = value

SETITEMS = {
    "int": (1, 5.0),
    "negative int": (-1, 5.0),
    "slice": (slice(1, None), 7.0),
    "row of a matrix": ((0,), [1.0, 2.0, 3.0]),
    "column": ((slice(None), 1), 9.0),
    "mask": ("mask", 0.0),
    "index tensor": ("index", -1.0),
    "broadcast row": ((slice(None),), [4.0, 5.0, 6.0]),
    "tensor value": ((1,), "tensor"),
    "ellipsis": ((Ellipsis, -1), 8.0),
}


@pytest.mark.parametrize("name", sorted(SETITEMS))
def test_setitem_as_torch(torch, rng, name):
    index, value = SETITEMS[name]
    data = rng.standard_normal((2, 3))
    for m in (ad, torch):
        t = m.tensor(data)
        i = t > 0 if index == "mask" else m.tensor([1, 0]) if index == "index" else index
        v = m.tensor([-1.0, -2.0, -3.0], dtype=m.float64) if value == "tensor" else \
            m.tensor(value, dtype=m.float64) if isinstance(value, list) else value
        t[i] = v
        if m is ad:
            ours = t
    assert_same(ours, t)


def test_setitem_bumps_the_version_so_an_old_graph_refuses_backward():
    p = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (p * p).sum()
    with no_grad():
        p[0] = 10.0
    assert p.tolist() == [10.0, 2.0, 3.0]
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_setitem_errors(torch):
    z = ad.zeros(3)
    with pytest.raises(ValueError, match=r"^setitem: cannot set index .* of a tensor of shape "
                                         r"\(3,\) to a value of shape \(2,\)"):
        z[:] = ad.zeros(2)
    with pytest.raises(IndexError, match="^setitem: cannot set index 1.5"):
        z[1.5] = 3.0
    with pytest.raises(IndexError, match="^setitem: cannot set index 5"):
        z[5] = 1.0
    with pytest.raises(IndexError, match="^getitem: only integers"):
        z[1.5]
    with pytest.raises(IndexError, match="^getitem: arrays used as indices must be of integer"):
        z[ad.tensor(1.0)]


def test_setitem_on_a_graph_node_raises_differs_from_pytorch(torch):
    # differs from PyTorch (which records the copy into the slice): refused, so that
    # the graph never sees values it did not record
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    h = w * 2
    with pytest.raises(RuntimeError, match="^setitem: in-place operations on tensors that "
                                           "are part of a graph are not recorded"):
        h[0] = 0.0
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    th = tw * 2
    th[0] = 0.0
    th.sum().backward()
    assert tw.grad.tolist() == [0.0, 2.0]


# ---------------------------------------------------------------------------
# gradients of the PyTorch-named methods against central differences (never skip)

METHOD_GRADCHECKS = {
    "max(dim).values": lambda a: a.max(1).values,
    "min(dim=0, keepdim).values": lambda a: a.min(dim=0, keepdim=True)[0],
    "max()": lambda a: a.max(),
    "sum(dim, keepdim)": lambda a: a.sum(dim=(0, -1), keepdim=True),
    "mean(dim)": lambda a: a.mean(dim=1),
    "logsumexp(dim)": lambda a: a.logsumexp(dim=-1),
    "softmax(dim)": lambda a: a.softmax(dim=0),
    "log_softmax(dim)": lambda a: ad.log_softmax(a, 1),
    "transpose(0, 2)": lambda a: a.transpose(0, 2),
    "transpose(dim0, dim1)": lambda a: a.transpose(dim0=1, dim1=2),
    "permute": lambda a: a.permute(2, 0, 1),
    "flatten(1)": lambda a: a.flatten(1),
    "unsqueeze": lambda a: a.unsqueeze(-1),
    "squeeze": lambda a: a[:1].squeeze(0),
    "view": lambda a: a.view(-1, 2),
    "expand": lambda a: a[:, :1].expand(2, 3, 4),
    "repeat": lambda a: a.repeat(1, 2, 1),
    "clamp": lambda a: a.clamp(min=-0.8, max=0.9),
    "pow": lambda a: ad.pow(a.abs() + 1, 1.5),
    "matmul": lambda a: ad.matmul(a, a.transpose(1, 2)),
    "mm": lambda a: ad.mm(a[0], a[1].t()),
    "cat": lambda a: ad.cat([a, a.sin()], dim=-1),
    "stack": lambda a: ad.stack([a, a.cos()], dim=1),
    "where": lambda a: ad.where(a > 0, a.sin(), a * 3),
    "add(alpha)": lambda a: ad.add(a, a.exp(), alpha=0.5),
    "sub(alpha)": lambda a: a.sub(a.tanh(), alpha=2),
    "getitem": lambda a: a[1, ::2, ad.tensor([0, 3, 3])],
    "to(float64)": lambda a: a.to(ad.float64) * a,
    "clone": lambda a: a.clone() * a,
}


@pytest.mark.parametrize("name", sorted(METHOD_GRADCHECKS))
def test_pytorch_named_methods_pass_gradcheck(name):
    # distinct values away from clamp's bounds and zero: no ties, no kinks
    data = np.linspace(-1.3, 1.4, 24)
    data = np.where(np.abs(np.abs(data) - 0.85) < 0.06, data + 0.13, data)
    x = ad.tensor(np.random.default_rng(3).permutation(data).reshape(2, 3, 4),
                  requires_grad=True)
    assert gradcheck(METHOD_GRADCHECKS[name], [x])


# ---------------------------------------------------------------------------
# PyTorch's beginner tutorials ("Tensors", "Automatic differentiation with torch.autograd"
# and the 60-minute blitz's autograd page), their steps written out here, run with
# `import autodiff as torch` and compared with torch itself where the numbers are fixed.

def _tensors_tutorial(torch):
    seen = {}
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    x_np = torch.from_numpy(np.array(data))
    x_ones = torch.ones_like(x_data)
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    seen["made"] = [(str(t.dtype), tuple(t.shape)) for t in (x_data, x_np, x_ones, x_rand)]
    shape = (2, 3,)
    made = [torch.rand(shape), torch.ones(shape), torch.zeros(shape)]
    seen["by shape"] = [tuple(t.shape) for t in made]
    tensor = torch.rand(3, 4)
    seen["attributes"] = (tuple(tensor.shape), str(tensor.dtype), str(tensor.device))
    if torch.cuda.is_available():  # (False for both here: this machine has no GPU)
        tensor = tensor.to("cuda")
    tensor = torch.ones(4, 4)
    seen["first row"] = tensor[0].tolist()
    seen["first column"] = tensor[:, 0].tolist()
    seen["last column"] = tensor[..., -1].tolist()
    tensor[:, 1] = 0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    seen["cat"] = tuple(t1.shape)
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.rand_like(y1)
    torch.matmul(tensor, tensor.T, out=y3)
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    z3 = torch.rand_like(tensor)
    torch.mul(tensor, tensor, out=z3)
    seen["products"] = [t.tolist() for t in (y1, y2, y3, z1, z2, z3)]
    agg = tensor.sum()
    agg_item = agg.item()
    seen["agg"] = (agg_item, type(agg_item).__name__, f"{agg:.1f}")
    before = tensor.tolist()
    tensor.add_(5)
    seen["add_"] = (before, tensor.tolist())
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    seen["numpy bridge"] = (t.tolist(), n.tolist())
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    seen["from_numpy bridge"] = (t.tolist(), n.tolist())
    return seen


def test_tensors_tutorial_runs_and_matches_torch(torch):
    ours, theirs = _tensors_tutorial(ad), _tensors_tutorial(torch)
    # differs from PyTorch only by the default dtype (float64 here, float32 there)
    ours["made"] = [(d.replace("float64", "float32"), s) for d, s in ours["made"]]
    theirs["made"] = [(d.replace("torch.", ""), s) for d, s in theirs["made"]]
    theirs["attributes"] = (theirs["attributes"][0], "float64", theirs["attributes"][2])
    assert ours == theirs
    assert ours["agg"] == (12.0, "float", "12.0")
    assert ours["numpy bridge"] == ([2.0] * 5, [2.0] * 5)


def test_tensors_tutorial_under_float32_matches_torch_exactly(torch):
    ad.set_default_dtype(ad.float32)
    ours, theirs = _tensors_tutorial(ad), _tensors_tutorial(torch)
    theirs["made"] = [(d.replace("torch.", ""), s) for d, s in theirs["made"]]
    theirs["attributes"] = (theirs["attributes"][0], "float32", theirs["attributes"][2])
    assert ours == theirs


def _bce_with_logits(m, z, y):
    """mean(max(z, 0) - z*y + log(1 + exp(-|z|))), written from primitives."""
    return (m.clamp(z, min=0) - z * y + (1 + (-z.abs()).exp()).log()).mean()


def _autograd_tutorial(m, w0, b0):
    seen = {}
    x = m.ones(5, dtype=m.float64)
    y = m.zeros(3, dtype=m.float64)
    w = m.tensor(w0, requires_grad=True)
    b = m.tensor(b0, requires_grad=True)
    z = m.matmul(x, w) + b
    loss = _bce_with_logits(m, z, y)
    loss.backward()
    seen["loss"], seen["w.grad"], seen["b.grad"] = loss.item(), arr(w.grad), arr(b.grad)
    z = m.matmul(x, w) + b
    flags = [z.requires_grad]
    with m.no_grad():
        z = m.matmul(x, w) + b
    flags.append(z.requires_grad)
    z = m.matmul(x, w) + b
    z_det = z.detach()
    flags.append(z_det.requires_grad)
    seen["flags"] = flags
    inp = m.eye(4, 5, dtype=m.float64, requires_grad=True)
    out = (inp + 1).pow(2).t()
    out.backward(m.ones_like(out), retain_graph=True)
    calls = [arr(inp.grad).copy()]
    out.backward(m.ones_like(out), retain_graph=True)
    calls.append(arr(inp.grad).copy())
    inp.grad.zero_()
    out.backward(m.ones_like(out), retain_graph=True)
    calls.append(arr(inp.grad).copy())
    seen["jacobian products"] = calls
    return seen


def test_autograd_tutorial_runs_and_matches_torch(torch, rng):
    w0, b0 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    ours, theirs = _autograd_tutorial(ad, w0, b0), _autograd_tutorial(torch, w0, b0)
    assert ours["flags"] == theirs["flags"] == [True, False, False]
    assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-12)
    z = torch.tensor(w0).sum(0) + torch.tensor(b0)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.zeros(3,
                                                                     dtype=torch.float64))
    assert ours["loss"] == pytest.approx(reference.item(), rel=1e-12)
    for key in ("w.grad", "b.grad"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12)
    for a, b in zip(ours["jacobian products"], theirs["jacobian products"]):
        np.testing.assert_array_equal(a, b)
    first, second, zeroed = ours["jacobian products"]
    np.testing.assert_array_equal(second, 2 * first)
    np.testing.assert_array_equal(zeroed, first)


def test_blitz_autograd_page():
    torch = ad
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    assert (9 * a ** 2 == a.grad).all() and bool((-2 * b == b.grad).all())
    x = torch.rand(5, 5)
    y = torch.rand(5, 5)
    z = torch.rand((5, 5), requires_grad=True)
    assert not (x + y).requires_grad and (x + z).requires_grad
    assert f"Does `a` require gradients?: {(x + y).requires_grad}".endswith("False")


# (d2l's linear- and softmax-regression chapters run on both libraries with the same data and
# weights in test_ports.py.)
