"""Gradient clipping with torch.nn.utils' names and arithmetic.

    clip_grad_norm_:   n = || (||g_1||_p, ..., ||g_k||_p) ||_p       (the norm of all grads)
                       g_i <- g_i * min(1, max_norm / (n + 1e-6))
    clip_grad_value_:  g_i <- clamp(g_i, -clip_value, clip_value)

Both change the gradients in place, in the array `.grad` holds, so every other holder of
that array sees the clipped values. They work through tensor operations (the norm is a
constant made from the gradients' values, the scaling and clamping in-place methods), so
a compiled step (`autodiff.compile`) replays them.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np

from autodiff import Tensor
from autodiff.tensor import _derived_constant

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients by one factor so that their joint p-norm is at most
    `max_norm`; return that norm (before clipping) as a 0-d Tensor.

    >>> import numpy as np
    >>> w = Tensor(np.zeros(2), requires_grad=True); w.grad = np.array([3.0, 4.0])
    >>> clip_grad_norm_([w], max_norm=1.0).item()
    5.0
    >>> np.round(np.asarray(w.grad), 6)                   # now of norm 1 (less 1e-6 / 5)
    array([0.6, 0.8])
    """
    where = "clip_grad_norm_"
    grads = _grads(where, parameters)
    max_norm = _real(where, "max_norm", max_norm)
    if not max_norm >= 0:
        raise ValueError(f"{where}: max_norm must be >= 0, got {max_norm!r}")
    p = _real(where, "norm_type", norm_type)
    if not p > 0:  # (NaN included)
        raise ValueError(f"{where}: norm_type must be a number > 0 or inf, got {norm_type!r}")
    if not grads:
        return Tensor(0.0)
    total = _derived_constant(_total_norm, *[grad for grad, _ in grads], p=p)
    if error_if_nonfinite and not np.isfinite(total.data):
        raise RuntimeError(f"{where}: the total norm of order {norm_type} of the gradients "
                           f"is {total.item()}, so they cannot be clipped; pass "
                           "error_if_nonfinite=False to scale them by it anyway")
    # (a factor of 1 multiplies too, as in PyTorch: a NaN norm makes every grad NaN)
    coefs = {}
    with np.errstate(invalid="ignore"):  # (an inf gradient times a NaN factor, as torch)
        for grad, g in grads:
            if g.dtype not in coefs:  # (the factor in each gradient's own dtype, as torch)
                coefs[g.dtype] = _derived_constant(_clip_factor, total, max_norm=max_norm,
                                                   dtype=g.dtype)
            grad.mul_(coefs[g.dtype])
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value], in place.

    >>> import numpy as np
    >>> w = Tensor(np.zeros(3), requires_grad=True); w.grad = np.array([-3.0, 0.5, 2.0])
    >>> clip_grad_value_(w, 1.0); np.asarray(w.grad)
    array([-1. ,  0.5,  1. ])
    """
    where = "clip_grad_value_"
    grads = _grads(where, parameters)
    c = _real(where, "clip_value", clip_value)
    if not c >= 0:
        raise ValueError(f"{where}: clip_value must be >= 0, got {clip_value!r}")
    for grad, _ in grads:
        grad.clamp_(-c, c)


def _grads(where: str, parameters) -> list[tuple]:
    """(p.grad, its ndarray) of every parameter that has a gradient, checked writable."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    out = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: parameter {i} is a {type(p).__name__}, expected a "
                            "Tensor")
        if p.grad is None:
            continue
        g = p.grad.data
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f" or not g.flags.writeable:
            what = (f"a {type(g).__name__}" if not isinstance(g, np.ndarray) else
                    f"a read-only array" if g.dtype.kind == "f" else f"of dtype {g.dtype}")
            raise TypeError(f"{where}: the gradient of parameter {i} is {what}; it must be "
                            "a writable floating-point array to be changed in place")
        out.append((p.grad, g))
    return out


def _real(where: str, name: str, value) -> float:
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf"):
        return math.inf  # (PyTorch takes float(norm_type), so "inf" works there too)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


def _total_norm(*grads: np.ndarray, p: float) -> np.ndarray:
    """PyTorch's two stages: each gradient's p-norm, then the p-norm of those norms."""
    return np.asarray(_norm(np.array([_norm(g.reshape(-1), p) for g in grads]), p))


def _clip_factor(total: np.ndarray, max_norm: float, dtype) -> np.ndarray:
    """min(1, max_norm / (total + 1e-6)) in `dtype` (inf * 0 gives NaN, as in torch)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(max_norm / (total + total.dtype.type(1e-6)), 1).astype(dtype)


def _norm(x: np.ndarray, p: float):
    """||x||_p in x's dtype (inf: the largest magnitude)."""
    if p == math.inf:
        return np.max(np.abs(x)) if x.size else x.dtype.type(0)
    if p == 2:
        return np.sqrt(np.dot(x, x))
    if p == 1:
        return np.sum(np.abs(x))
    return np.sum(np.abs(x) ** p) ** (1 / p)
