"""PyTorch's free functions (`torch.sum(x, dim=1)`, `torch.cat(...)`, ...): each calls the
Tensor method of the same name on its first argument (a number, list or ndarray becomes
a constant Tensor first). `out=` writes the result into an existing tensor, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from .engine import is_grad_enabled
from .errors import ShapeError
from .tensor import Tensor, _wrap, concatenate, maximum, minimum  # noqa: F401 (re-exported)
from .tensor import _derived_constant, stack as _stack, where as _where


def _as_tensor(x, where: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from .factories import as_tensor
    try:
        return as_tensor(x)
    except TypeError as err:
        raise TypeError(f"{where}: expected a Tensor, got {type(x).__name__} ({err})") from None


def _into(out, result, where: str):
    """PyTorch's `out=`: the result copied into `out` (same shape), which is returned."""
    if out is None:
        return result
    if not isinstance(out, Tensor):
        raise TypeError(f"{where}: out must be a Tensor, got {type(out).__name__}")
    if not isinstance(result, Tensor):
        raise TypeError(f"{where}: out= is not supported here (the result is a "
                        f"{type(result).__name__})")
    if result.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{where}: out= is not recorded for backward, but the result "
                           "requires grad; assign the result instead (y = ...)")
    if out.shape != result.shape:
        raise ShapeError(f"{where}: out has shape {out.shape}, but the result has shape "
                         f"{result.shape}")
    return out.copy_(result)


def _method(name: str):
    def function(input, *args, out=None, **kwargs):
        return _into(out, getattr(_as_tensor(input, name), name)(*args, **kwargs), name)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"`input.{name}(...)`, as a function (PyTorch's `torch.{name}`)."
    return function


_NAMES = ("sin cos exp log sqrt abs tanh sigmoid relu pow clamp matmul mm sum mean max min "
          "argmax argmin softmax log_softmax logsumexp numel flatten unsqueeze squeeze "
          "reshape permute t transpose detach clone square neg add sub mul div").split()

for _name in _NAMES:
    globals()[_name] = _method(_name)
del _name


def clip(input, min=None, max=None):
    return _as_tensor(input, "clip").clip(min, max)


_UNSET = object()


def cat(tensors, dim: int = 0, *, axis=_UNSET, out=None) -> Tensor:
    """Join tensors along an existing dimension (numpy's concatenate)."""
    return _into(out, concatenate(tensors, dim if axis is _UNSET else axis), "cat")


def stack(tensors, dim: int = 0, *, axis=_UNSET, out=None) -> Tensor:
    """Join tensors along a new dimension (`axis=` as numpy spells it)."""
    return _into(out, _stack(tensors, dim if axis is _UNSET else axis), "stack")


def _nonzero(cond, axis):
    """The indices of cond's true elements along one axis (a 0-d condition as one element,
    as PyTorch's), int64."""
    return np.nonzero(np.atleast_1d(cond))[axis].astype(np.int64, copy=False)


def where(condition, input=_UNSET, other=_UNSET):
    """`input` where `condition` is true, else `other`; with the condition alone, the
    indices of its true elements, one int64 Tensor per dimension (PyTorch's)."""
    if input is _UNSET and other is _UNSET:
        cond = condition if isinstance(condition, Tensor) else np.asarray(condition)
        ndim = np.ndim(cond.data if isinstance(cond, Tensor) else cond) or 1  # (0-d: one)
        return tuple(_derived_constant(_nonzero, cond, axis=d) for d in range(ndim))
    if input is _UNSET or other is _UNSET:
        raise TypeError("where: give the condition alone, or the condition, input and other")
    return _where(condition, input, other)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    return _as_tensor(input, "allclose").allclose(other, rtol, atol, equal_nan)


def equal(input, other) -> bool:
    return _as_tensor(input, "equal").equal(other)


__all__ = list(_NAMES) + ["clip", "cat", "stack", "is_tensor", "allclose", "equal",
                          "maximum", "minimum", "where", "concatenate"]
