"""`Linear` and `Sequential`, with PyTorch's shapes, initialisation and key names."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Iterator

import numpy as np

from autodiff import Tensor
from autodiff.errors import ShapeError
from autodiff.rng import generator

from .functional import linear
from .module import Module, Parameter


def as_tensor(x, where: str) -> Tensor:
    """Tensors pass through; arrays and lists become constant Tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, float, int, np.generic)):
        try:
            return Tensor(x)
        except TypeError as err:  # non-numeric data: say which layer or loss it was for
            raise TypeError(f"{where}: {err}") from None
    raise TypeError(f"{where}: expected a Tensor or an array, got {type(x).__name__}")


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) and b of shape
    (out_features,); both start uniform in +-1/sqrt(in_features) (PyTorch's default).

    >>> Linear(3, 2)(np.ones((5, 3))).shape
    (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype=np.float64):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
                raise TypeError(f"Linear: {name} must be an int, got {n!r}")
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: in_features and out_features must be positive, got "
                             f"{in_features} and {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dtype = np.dtype(dtype)
        bound = 1.0 / math.sqrt(in_features)
        rng = generator()
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features))
                                .astype(dtype))
        self.bias = (Parameter(rng.uniform(-bound, bound, out_features).astype(dtype))
                     if bias else None)

    def forward(self, x) -> Tensor:
        if type(x) is not Tensor:
            x = as_tensor(x, "Linear")
        shape = x.data.shape
        if not shape or shape[-1] != self.in_features:
            raise ShapeError(f"Linear(in_features={self.in_features}): input of shape "
                             f"{shape} does not end in {self.in_features}")
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: sub-modules kept in order, found by position."""

    def _add(self, module, where: str) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{where}: expected an nn.Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)

    def append(self, module: Module):
        self._add(module, f"{type(self).__name__}.append")
        return self

    def __len__(self) -> int:
        return len(self._registries()[1])

    def __iter__(self) -> Iterator[Module]:
        return iter(self._registries()[1].values())

    def _position(self, index: int) -> int:
        n = len(self)
        if not isinstance(index, int) or not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index!r} is out of range for "
                             f"{n} modules")
        return index % n

    def __getitem__(self, index):
        items = list(self._registries()[1].items())
        if isinstance(index, slice):
            return self._from_items(items[index])
        return items[self._position(index)][1]

    def _from_items(self, items: list) -> "_ModuleSequence":  # pragma: no cover - overridden
        raise NotImplementedError


class Sequential(_ModuleSequence):
    """Modules applied in order; sub-modules are named "0", "1", ... (or by an OrderedDict).

    >>> net = Sequential(Linear(2, 3), Linear(3, 1))
    >>> list(net.state_dict())
    ['0.weight', '0.bias', '1.weight', '1.bias']
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {name!r} is a {type(module).__name__}, "
                                "not an nn.Module")
            setattr(self, name, module)

    def _from_items(self, items: list) -> "Sequential":
        return Sequential(OrderedDict(items))  # a slice keeps the names

    def forward(self, x):
        for module in self._registries()[1].values():
            x = module(x)
        return x


class ModuleList(_ModuleSequence):
    """A list of sub-modules, registered (their parameters count) but not called in any order:
    `forward` is yours to write. Named "0", "1", ... as in PyTorch.

    >>> blocks = ModuleList([Linear(2, 2) for _ in range(3)])
    >>> len(blocks), list(blocks.state_dict())[:2]
    (3, ['0.weight', '0.bias'])
    """

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def extend(self, modules) -> "ModuleList":
        if isinstance(modules, Module):
            raise TypeError("ModuleList.extend: expected an iterable of modules, got a "
                            f"single {type(modules).__name__} (use append)")
        for module in modules:
            self._add(module, "ModuleList")
        return self

    def __setitem__(self, index: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: expected an nn.Module, got {type(module).__name__}")
        setattr(self, str(self._position(index)), module)

    def _from_items(self, items: list) -> "ModuleList":
        return ModuleList(m for _, m in items)  # a slice is numbered afresh, as in PyTorch
