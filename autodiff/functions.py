"""PyTorch's free functions (`torch.sum(x, dim=1)`, `torch.cat(...)`, ...): each calls the
Tensor method of the same name on its first argument (a number, list or ndarray becomes
a constant Tensor first)."""

from __future__ import annotations

from .tensor import Tensor, concatenate, maximum, minimum, stack as _stack, where  # noqa: F401


def _as_tensor(x, where: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from .factories import as_tensor
    try:
        return as_tensor(x)
    except TypeError as err:
        raise TypeError(f"{where}: expected a Tensor, got {type(x).__name__} ({err})") from None


def _method(name: str):
    def function(input, *args, **kwargs):
        return getattr(_as_tensor(input, name), name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"`input.{name}(...)`, as a function (PyTorch's `torch.{name}`)."
    return function


_NAMES = ("sin cos exp log sqrt abs tanh sigmoid relu pow clamp matmul mm sum mean max min "
          "argmax argmin softmax log_softmax logsumexp numel flatten unsqueeze squeeze "
          "reshape permute t transpose detach clone square neg").split()

for _name in _NAMES:
    globals()[_name] = _method(_name)
del _name


def clip(input, min=None, max=None):
    return _as_tensor(input, "clip").clip(min, max)


_UNSET = object()


def cat(tensors, dim: int = 0, *, axis=_UNSET) -> Tensor:
    """Join tensors along an existing dimension (numpy's concatenate)."""
    return concatenate(tensors, dim if axis is _UNSET else axis)


def stack(tensors, dim: int = 0, *, axis=_UNSET) -> Tensor:
    """Join tensors along a new dimension (`axis=` as numpy spells it)."""
    return _stack(tensors, dim if axis is _UNSET else axis)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    return _as_tensor(input, "allclose").allclose(other, rtol, atol, equal_nan)


def equal(input, other) -> bool:
    return _as_tensor(input, "equal").equal(other)


__all__ = list(_NAMES) + ["clip", "cat", "stack", "is_tensor", "allclose", "equal",
                          "maximum", "minimum", "where", "concatenate"]
