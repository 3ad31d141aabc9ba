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
