"""Tensor factories with PyTorch's names and arguments: `tensor`, `zeros`, `randn`, ...

Sizes are ints or one tuple/list of ints; `dtype=`, `requires_grad=` and `device="cpu"`
are accepted everywhere. Float factories give the default dtype (float64 unless
`set_default_dtype` changed it); random ones draw from the generator `manual_seed` seeds.
"""

from __future__ import annotations

import numbers

import numpy as np

from .dtypes import as_dtype, check_device, get_default_dtype
from .rng import generator
from .tensor import Tensor, _as_data, _new, _node, _wrap


def _size(size: tuple, where: str) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"{where}: sizes must be ints, got {n!r} in {tuple(size)!r}")
        if n < 0:
            raise ValueError(f"{where}: sizes must be >= 0, got {tuple(size)!r}")
    return tuple(int(n) for n in size)


def _finish(data: np.ndarray, where: str, requires_grad: bool, device) -> Tensor:
    if device is not None:
        check_device(device, where)
    if requires_grad and data.dtype.kind != "f":
        raise TypeError(f"{where}: only floating-point tensors can require grad, got dtype "
                        f"{data.dtype}")
    return _node(_new(Tensor), data, (), None, None, None, bool(requires_grad))


def _float_dtype(dtype, where: str) -> np.dtype:
    return get_default_dtype() if dtype is None else as_dtype(dtype, where)


def _dtype_of_python(data) -> np.dtype | None:
    """PyTorch's inference for Python data: bools stay bool, ints become int64, and
    anything with a float in it the default float dtype."""
    kinds = set()

    def walk(x):
        if isinstance(x, (list, tuple)):
            for item in x:
                walk(item)
        elif isinstance(x, Tensor):
            kinds.add(x.dtype.kind)
        else:
            kinds.add(np.asarray(x).dtype.kind)

    walk(data)
    if not kinds or kinds & {"f", "c"}:
        return get_default_dtype()
    if kinds == {"b"}:
        return np.dtype(np.bool_)
    return np.dtype(np.int64)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data`. Python ints give int64, bools bool, floats
    the default float dtype; an ndarray keeps its dtype.

    >>> tensor([0, 2, 1]).dtype, tensor([0.5, 1]).dtype
    (dtype('int64'), dtype('float64'))
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        dtype = _dtype_of_python(data)
    array = _as_data(data, None if dtype is None else as_dtype(dtype, "tensor"), "tensor")
    return _finish(np.array(array, copy=True), "tensor", requires_grad, device)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """As `tensor`, but shares memory with an ndarray (or Tensor) of the same dtype."""
    if isinstance(data, Tensor) and (dtype is None or as_dtype(dtype, "as_tensor") == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or as_dtype(dtype, "as_tensor") == data.dtype):
        return _finish(data, "as_tensor", False, device)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: dtype {array.dtype} is not numeric")
    return _wrap(array)


def _filled(where, size, value, dtype, requires_grad, device) -> Tensor:
    shape = _size(size, where)
    return _finish(np.full(shape, value, dtype=dtype), where, requires_grad, device)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled("zeros", size, 0, _float_dtype(dtype, "zeros"), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled("ones", size, 1, _float_dtype(dtype, "ones"), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uninitialised in PyTorch; zeros here (no stale memory is ever shown)."""
    return _filled("empty", size, 0, _float_dtype(dtype, "empty"), requires_grad, device)


def _fill_dtype(fill_value, dtype, where) -> np.dtype:
    if dtype is not None:
        return as_dtype(dtype, where)
    if isinstance(fill_value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(fill_value, (numbers.Integral,)):
        return np.dtype(np.int64)
    if isinstance(fill_value, numbers.Real):
        return get_default_dtype()
    raise TypeError(f"{where}: fill_value must be a number, got {fill_value!r}")


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value` (its dtype inferred as PyTorch does)."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    dtype = _fill_dtype(fill_value, dtype, "full")
    size = size if isinstance(size, (tuple, list)) else (size,)
    return _filled("full", (tuple(size),), fill_value, dtype, requires_grad, device)


def eye(n: int, m: int | None = None, *, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    rows, cols = _size((n, n if m is None else m), "eye")
    return _finish(np.eye(rows, cols, dtype=_float_dtype(dtype, "eye")), "eye",
                   requires_grad, device)


def _number(x, where: str, name: str):
    if isinstance(x, Tensor):
        x = x.item()
    if not isinstance(x, (numbers.Real, np.generic)) or isinstance(x, bool):
        raise TypeError(f"{where}: {name} must be a number, got {x!r}")
    return x


def arange(start, end=None, step=1, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """start, start + step, ... up to but excluding end (`arange(n)` is 0..n-1). All-int
    arguments give int64, as in PyTorch; otherwise the default float dtype."""
    if end is None:
        start, end = 0, start
    start, end, step = (_number(v, "arange", n) for v, n in
                        ((start, "start"), (end, "end"), (step, "step")))
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if dtype is None:
        all_int = all(isinstance(v, (numbers.Integral, np.integer)) for v in (start, end, step))
        dtype = np.int64 if all_int else get_default_dtype()
    return _finish(np.arange(start, end, step, dtype=as_dtype(dtype, "arange")), "arange",
                   requires_grad, device)


def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    (steps,) = _size((steps,), "linspace")
    return _finish(np.linspace(start, end, steps, dtype=_float_dtype(dtype, "linspace")),
                   "linspace", requires_grad, device)


def rand(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Samples of U[0, 1)."""
    dtype = _float_dtype(dtype, "rand")
    data = generator().random(_size(size, "rand")).astype(dtype, copy=False)
    return _finish(data, "rand", requires_grad, device)


def randn(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Samples of N(0, 1)."""
    dtype = _float_dtype(dtype, "randn")
    data = generator().standard_normal(_size(size, "randn")).astype(dtype, copy=False)
    return _finish(data, "randn", requires_grad, device)


def randint(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`randint(high, size)` or `randint(low, high, size)`: integers in [low, high), int64."""
    if size is None:
        if not args or not isinstance(args[-1], (tuple, list)):
            raise TypeError("randint: give the size as a tuple, e.g. randint(0, 10, (3,))")
        *bounds, size = args
    else:
        bounds = list(args)
    if len(bounds) == 1:
        low, high = 0, bounds[0]
    elif len(bounds) == 2:
        low, high = bounds
    else:
        raise TypeError(f"randint: expected (high, size) or (low, high, size), got {args!r}")
    low, high = _number(low, "randint", "low"), _number(high, "randint", "high")
    if not low < high:
        raise ValueError(f"randint: needs low < high, got low={low}, high={high}")
    dtype = np.dtype(np.int64) if dtype is None else as_dtype(dtype, "randint")
    data = generator().integers(low, high, _size((size,), "randint")).astype(dtype, copy=False)
    return _finish(data, "randint", requires_grad, device)


def normal(mean=0.0, std=1.0, size=None, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Samples of N(mean, std**2): numbers with a `size`, or tensors of means/stds."""
    means = np.asarray(mean.data if isinstance(mean, Tensor) else mean, dtype=float)
    stds = np.asarray(std.data if isinstance(std, Tensor) else std, dtype=float)
    if np.any(stds < 0) or np.any(np.isnan(stds)):
        raise ValueError(f"normal: std must be >= 0, got {std!r}")
    if size is None:
        try:
            shape = np.broadcast_shapes(means.shape, stds.shape)
        except ValueError:
            raise ValueError(f"normal: mean of shape {means.shape} and std of shape "
                             f"{stds.shape} do not broadcast") from None
    else:
        shape = _size(size if isinstance(size, tuple) else (size,), "normal")
    like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
    dtype = (like.dtype if like is not None and dtype is None else _float_dtype(dtype, "normal"))
    data = generator().normal(means, stds, shape).astype(dtype, copy=False)
    return _finish(data, "normal", requires_grad, device)


def _like(name, t, make, dtype, requires_grad, device) -> Tensor:
    if not isinstance(t, (Tensor, np.ndarray)):
        raise TypeError(f"{name}: expected a Tensor, got {type(t).__name__}")
    dtype = t.dtype if dtype is None else as_dtype(dtype, name)
    return make(t.shape, dtype=dtype, requires_grad=requires_grad, device=device)


def zeros_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("zeros_like", input, zeros, dtype, requires_grad, device)


def ones_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("ones_like", input, ones, dtype, requires_grad, device)


def empty_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("empty_like", input, empty, dtype, requires_grad, device)


def full_like(input, fill_value, *, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    return _like("full_like", input, lambda shape, **kw: full(shape, fill_value, **kw),
                 dtype, requires_grad, device)


def rand_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("rand_like", input, rand, dtype, requires_grad, device)


def randn_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("randn_like", input, randn, dtype, requires_grad, device)


__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "eye",
           "arange", "linspace", "rand", "randn", "randint", "normal", "zeros_like",
           "ones_like", "empty_like", "full_like", "rand_like", "randn_like"]
