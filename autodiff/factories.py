"""Tensor factories with PyTorch's names and arguments: `tensor`, `zeros`, `randn`, ...

Sizes are ints or one tuple/list of ints; `dtype=`, `requires_grad=` and `device="cpu"`
are accepted everywhere. Float factories give the default dtype (float64 unless
`set_default_dtype` changed it); random ones draw from the generator `manual_seed` seeds.
"""

from __future__ import annotations

import numbers

import numpy as np

from .dtypes import as_dtype, check_device, get_default_dtype
from .errors import ShapeError
from .rng import generator
from .tensor import Tensor, _as_data, _new, _node, _wrap


def _size(size: tuple, where: str) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    # (a one-element integer Tensor counts as an int, as in PyTorch)
    size = tuple(n.__index__() if isinstance(n, Tensor) and n.data.size == 1
                 and n.dtype.kind in "iu" else n for n in size)
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


def _sampled_dtype(dtype, where: str) -> np.dtype:
    """The dtype of a continuous random factory: a float one (an integer dtype would
    silently round every sample, so it is refused, as PyTorch does)."""
    dtype = _float_dtype(dtype, where)
    if dtype.kind != "f":
        raise TypeError(f"{where}: samples need a floating-point dtype, got {dtype} (use "
                        "randint for integers)")
    return dtype


def _shape_args(where: str, sizes: tuple, size) -> tuple:
    """The sizes given positionally (`zeros(2, 3)`, `zeros((2, 3))`) or as `size=`."""
    if size is not None:
        if sizes:
            raise TypeError(f"{where}: give the size positionally or as size=, not both")
        sizes = (size,)
    elif not sizes:
        raise TypeError(f"{where}: missing the size (e.g. {where}(2, 3), or {where}(()) "
                        "for a 0-d tensor)")
    return _size(sizes, where)


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
    return _copied(data, dtype, device, requires_grad, "tensor")


def _copied(data, dtype, device, requires_grad, where: str) -> Tensor:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = as_dtype(dtype, where)
    elif not isinstance(data, (np.ndarray, np.generic)):
        dtype = _dtype_of_python(data)
    array = _as_data(data, dtype, where)
    return _finish(np.array(array, copy=True), where, requires_grad, device)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """As `tensor`, but shares memory with an ndarray (or Tensor) of the same dtype."""
    if device is not None:
        check_device(device, "as_tensor")
    if dtype is not None:
        dtype = as_dtype(dtype, "as_tensor")
    if isinstance(data, (Tensor, np.ndarray)) and dtype in (None, data.dtype):
        return data if isinstance(data, Tensor) else _finish(data, "as_tensor", False, None)
    return _copied(data, dtype, device, False, "as_tensor")


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: dtype {array.dtype} is not numeric")
    return _wrap(array)


def _filled(where, shape, value, dtype, requires_grad, device) -> Tensor:
    return _finish(np.full(shape, value, dtype=dtype), where, requires_grad, device)


def zeros(*sizes, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled("zeros", _shape_args("zeros", sizes, size), 0,
                   _float_dtype(dtype, "zeros"), requires_grad, device)


def ones(*sizes, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled("ones", _shape_args("ones", sizes, size), 1,
                   _float_dtype(dtype, "ones"), requires_grad, device)


def empty(*sizes, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uninitialised in PyTorch; zeros here (no stale memory is ever shown)."""
    return _filled("empty", _shape_args("empty", sizes, size), 0,
                   _float_dtype(dtype, "empty"), requires_grad, device)


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
    return _filled("full", _size((tuple(size),), "full"), fill_value, dtype, requires_grad,
                   device)


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
    if not all(np.isfinite(v) for v in (start, end, step)):
        raise ValueError(f"arange: start, end and step must be finite, got start={start}, "
                         f"end={end}, step={step}")
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if (end - start) * step < 0:
        raise ValueError(f"arange: from start={start} the step {step} never reaches "
                         f"end={end} (its sign is the wrong one)")
    all_int = all(isinstance(v, (numbers.Integral, np.integer)) for v in (start, end, step))
    dtype = (np.dtype(np.int64) if all_int else get_default_dtype()) if dtype is None \
        else as_dtype(dtype, "arange")
    if all_int or dtype.kind in "biu" and all(float(v).is_integer() for v in (start, end, step)):
        values = np.arange(int(start), int(end), int(step), dtype=np.int64)  # exact
    elif dtype.kind in "biu":
        # PyTorch truncates the arguments to ints first (so step 2.5 becomes 2, and 0.5
        # an error); refused here rather than giving that surprise.
        raise TypeError(f"arange: an integer dtype ({dtype}) needs integer start, end and "
                        f"step, got start={start}, end={end}, step={step}")
    else:
        # ceil((end - start) / step) values start + i * step, as PyTorch; each computed
        # in float64 from i (np.arange would add up a rounded step) and then cast.
        count = max(0, int(np.ceil((end - start) / step)))
        values = start + step * np.arange(count, dtype=np.float64)
    return _finish(values.astype(dtype, copy=False), "arange", requires_grad, device)


def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    (steps,) = _size((steps,), "linspace")
    dtype = _float_dtype(dtype, "linspace")
    if dtype.kind in "biu":  # (PyTorch makes the ends integers first, truncating)
        start, end = int(start), int(end)
    # PyTorch's formula, in float64: the first half counts up from start, the second
    # down from end, so both ends are exact; then cast (an integer dtype truncates).
    index = np.arange(steps, dtype=np.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    values = np.where(index < steps // 2, start + step * index,
                      end - step * (steps - 1 - index)) if steps > 1 else index + start
    return _finish(values.astype(dtype, copy=False), "linspace", requires_grad, device)


def rand(*sizes, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Samples of U[0, 1)."""
    dtype = _sampled_dtype(dtype, "rand")
    shape = _shape_args("rand", sizes, size)
    data = generator().random(shape).astype(dtype, copy=False)
    return _finish(data, "rand", requires_grad, device)


def randn(*sizes, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Samples of N(0, 1)."""
    dtype = _sampled_dtype(dtype, "randn")
    shape = _shape_args("randn", sizes, size)
    data = generator().standard_normal(shape).astype(dtype, copy=False)
    return _finish(data, "randn", requires_grad, device)


def _int_bound(x, name: str) -> int:
    if isinstance(x, Tensor):
        x = x.item()
    if not isinstance(x, (numbers.Integral, np.integer)) or isinstance(x, bool):
        raise TypeError(f"randint: {name} must be an int, got {x!r}")
    return int(x)


def randint(*args, low=None, high=None, size=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """`randint(high, size)` or `randint(low, high, size)` (each may be a keyword):
    integers drawn uniformly from [low, high), int64 unless `dtype` says otherwise."""
    args = list(args)
    if size is None and args and isinstance(args[-1], (tuple, list)):
        size = args.pop()
    if size is None:
        raise TypeError("randint: missing the size, a tuple such as (3,) (e.g. "
                        "randint(0, 10, (3,)))")
    if high is None:
        if not args:
            raise TypeError("randint: missing high (e.g. randint(10, (3,)))")
        high = args.pop()
    if low is None:
        low = args.pop() if args else 0
    if args:
        raise TypeError(f"randint: expected (high, size) or (low, high, size), got extra "
                        f"arguments {tuple(args)!r}")
    low, high = _int_bound(low, "low"), _int_bound(high, "high")
    if not low < high:
        raise ValueError(f"randint: needs low < high, got low={low}, high={high}")
    dtype = np.dtype(np.int64) if dtype is None else as_dtype(dtype, "randint")
    shape = _size(size if isinstance(size, (tuple, list)) else (size,), "randint")
    data = generator().integers(low, high, shape).astype(dtype, copy=False)
    return _finish(data, "randint", requires_grad, device)


def _moment(x, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        if x.dtype.kind != "f":
            raise TypeError(f"normal: {name} must be a floating-point tensor, got dtype "
                            f"{x.dtype}")
        return x.data
    if not isinstance(x, (numbers.Real, np.floating, np.integer)) or isinstance(x, bool):
        raise TypeError(f"normal: {name} must be a number or a Tensor, got {x!r}")
    return np.asarray(x, dtype=np.float64)


def normal(mean=0.0, std=1.0, size=None, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Samples of N(mean, std**2): numbers with a `size`, or tensors of means and/or
    stds (the result has their broadcast shape and the tensor's dtype)."""
    means, stds = _moment(mean, "mean"), _moment(std, "std")
    if np.any(stds < 0) or np.any(np.isnan(stds)):
        raise ValueError(f"normal: std must be >= 0, got {std!r}")
    try:
        shape = np.broadcast_shapes(means.shape, stds.shape)
    except ValueError:
        raise ShapeError(f"normal: mean of shape {means.shape} and std of shape "
                         f"{stds.shape} do not broadcast") from None
    if size is not None:
        if shape:
            raise TypeError("normal: size= goes with a number mean and std; for tensors "
                            "the result takes their shape")
        shape = _size(size if isinstance(size, (tuple, list)) else (size,), "normal")
    # (a tensor mean gives its dtype, else a tensor std does, as in PyTorch)
    like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
    dtype = like.dtype if like is not None and dtype is None else _sampled_dtype(dtype, "normal")
    data = generator().normal(means, stds, shape).astype(dtype, copy=False)
    return _finish(data, "normal", requires_grad, device)


def _like(name, t, make, dtype, requires_grad, device, sampled=False) -> Tensor:
    if not isinstance(t, (Tensor, np.ndarray)):
        raise TypeError(f"{name}: expected a Tensor, got {type(t).__name__}")
    if device is not None:
        check_device(device, name)
    dtype = t.dtype if dtype is None else as_dtype(dtype, name)
    if sampled:
        _sampled_dtype(dtype, name)
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
    return _like("rand_like", input, rand, dtype, requires_grad, device, sampled=True)


def randn_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _like("randn_like", input, randn, dtype, requires_grad, device, sampled=True)


__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "eye",
           "arange", "linspace", "rand", "randn", "randint", "normal", "zeros_like",
           "ones_like", "empty_like", "full_like", "rand_like", "randn_like"]
