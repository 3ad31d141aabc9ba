"""Activations with the lecture's gain h, f(h a), optionally learning h; and Softmax.

    Sigmoid: 1 / (1 + e^{-h a})   Tanh: tanh(h a)   ReLU: max(0, h a)

Each uses the engine's stable primitive; with h = 1 and not learnable the product is
skipped. d f(h a) / d h = a f'(h a), which the engine derives from the product.
"""

from __future__ import annotations

import numpy as np

from autodiff import Tensor
from autodiff.dtypes import as_dtype, get_default_dtype

from .layers import as_tensor
from .module import Module, Parameter


class _Gained(Module):
    """f(h * a) for the primitive f named by `_fn`; h a float or a learnable Parameter."""

    _fn = ""

    def __init__(self, h: float = 1.0, learnable: bool = False, *, dtype=None):
        super().__init__()
        self.learnable = bool(learnable)
        if self.learnable:
            self.h = Parameter(np.asarray(h, dtype=get_default_dtype() if dtype is None
                                          else as_dtype(dtype, type(self).__name__)))
        else:
            self.h = float(h)

    def forward(self, x) -> Tensor:
        if type(x) is not Tensor:
            x = as_tensor(x, type(self).__name__)
        if self.learnable or self.h != 1.0:
            x = x * self.h
        return getattr(x, self._fn)()

    def extra_repr(self) -> str:
        if self.learnable:
            return f"h={float(self.h.data):g}, learnable=True"
        return "" if self.h == 1.0 else f"h={self.h:g}"


class Sigmoid(_Gained):
    """1 / (1 + exp(-h a)); d/da = h s (1 - s) with s the output."""

    _fn = "sigmoid"


class Tanh(_Gained):
    """tanh(h a); d/da = h (1 - tanh(h a)^2)."""

    _fn = "tanh"


class ReLU(_Gained):
    """max(0, h a); d/da = h [h a > 0]."""

    _fn = "relu"


class Softmax(Module):
    """exp(x_i) / sum_j exp(x_j) along `axis` (PyTorch's `dim` is accepted as a synonym)."""

    def __init__(self, axis: int = -1, *, dim: int | None = None):
        super().__init__()
        self.axis = int(axis if dim is None else dim)

    def forward(self, x) -> Tensor:
        return as_tensor(x, "Softmax").softmax(axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
