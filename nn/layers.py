"""`Linear`, the shape layers `Flatten`, `Unflatten` and `Identity`, and the containers
`Sequential` and `ModuleList`, with PyTorch's shapes, initialisation and key names."""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from typing import Iterator

import numpy as np

from autodiff import Tensor
from autodiff.dtypes import as_dtype, check_device, get_default_dtype
from autodiff.errors import ShapeError
from autodiff.rng import generator

from .functional import as_tensor, linear
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) and b of shape
    (out_features,); both start uniform in +-1/sqrt(in_features) (PyTorch's default).

    >>> Linear(3, 2)(np.ones((5, 3))).shape
    (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 device=None, dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
                raise TypeError(f"Linear: {name} must be an int, got {n!r}")
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: in_features and out_features must be positive, got "
                             f"{in_features} and {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        if device is not None:
            check_device(device, "Linear")
        dtype = get_default_dtype() if dtype is None else as_dtype(dtype, "Linear")
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


def _dim(dim, ndim: int, where: str, what: str = "dim") -> int:
    """`dim` as an index into `ndim` axes (negative counts from the end), as PyTorch reads
    it: a 0-d tensor has the one position 0 (or -1)."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{where}: {what} must be an int, got {dim!r}")
    top = max(ndim, 1)
    if not -top <= dim < top:
        raise IndexError(f"{where}: {what}={dim} is out of range for a tensor with {ndim} "
                         f"dimension{'s' if ndim != 1 else ''} (expected {-top} to {top - 1})")
    return int(dim) % top


class Flatten(Module):
    """Merge the dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) with the
    defaults, which keep the batch dimension.

    >>> Flatten()(np.zeros((2, 3, 4))).shape
    (2, 12)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
                raise TypeError(f"Flatten: {name} must be an int, got {d!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, input) -> Tensor:
        x = input if type(input) is Tensor else as_tensor(input, "Flatten")
        shape = x.shape
        start = _dim(self.start_dim, len(shape), "Flatten", "start_dim")
        end = _dim(self.end_dim, len(shape), "Flatten", "end_dim")
        if start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} comes after end_dim="
                             f"{self.end_dim} for an input of shape {shape}")
        # The merged size is computed, not left as -1, which a zero-size input leaves open.
        merged = math.prod(shape[start:end + 1])
        return x.reshape(shape[:start] + (merged,) + shape[end + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension `dim` into `unflattened_size` (one entry may be -1, inferred):
    the inverse of Flatten.

    >>> Unflatten(1, (3, 4))(np.zeros((2, 12))).shape
    (2, 3, 4)
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"Unflatten: dim must be an int, got {dim!r}")
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                            f"{type(unflattened_size).__name__}")
        for i, n in enumerate(unflattened_size):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
                raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, but "
                                f"entry {i} is {n!r}")
            if n < -1:
                raise ValueError(f"Unflatten: invalid size {n} in {tuple(unflattened_size)} "
                                 "(-1 stands for the one inferred size)")
        if list(unflattened_size).count(-1) > 1:
            raise ValueError(f"Unflatten: only one size may be -1, got "
                             f"{tuple(unflattened_size)}")
        self.dim = int(dim)
        self.unflattened_size = unflattened_size

    def _sizes(self, n: int, shape: tuple) -> tuple:
        sizes = tuple(int(k) for k in self.unflattened_size)
        known = math.prod(k for k in sizes if k != -1)
        if -1 in sizes and known != 0 and n % known == 0:
            sizes = tuple(n // known if k == -1 else k for k in sizes)
        if -1 in sizes or math.prod(sizes) != n:
            raise ShapeError(f"Unflatten: sizes {tuple(self.unflattened_size)} do not multiply "
                             f"to {n}, the size of dim {self.dim} of an input of shape {shape}")
        return sizes

    def forward(self, input) -> Tensor:
        x = input if type(input) is Tensor else as_tensor(input, "Unflatten")
        shape = x.shape
        if not shape:
            raise ShapeError("Unflatten: cannot unflatten a 0-d tensor")
        d = _dim(self.dim, len(shape), "Unflatten")
        return x.reshape(shape[:d] + self._sizes(shape[d], shape) + shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """Returns its input unchanged (the same object); any constructor arguments are ignored,
    as in PyTorch, so it can stand in for a layer being switched off.

    >>> x = Tensor([1.0]); Identity(54, unused="x")(x) is x
    True
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: sub-modules kept in order, found by position.
    Deleting or inserting renumbers them "0", "1", ... as PyTorch does."""

    def _add(self, module, where: str) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{where}: expected an nn.Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)

    def append(self, module: Module):
        self._add(module, f"{type(self).__name__}.append")
        return self

    def extend(self, modules):
        name = type(self).__name__
        if isinstance(modules, Module) and not isinstance(modules, _ModuleSequence):
            raise TypeError(f"{name}.extend: expected an iterable of modules, got a "
                            f"single {type(modules).__name__} (use append)")
        try:
            modules = list(modules)
        except TypeError:
            raise TypeError(f"{name}.extend: expected an iterable of modules, got "
                            f"{type(modules).__name__}") from None
        for module in modules:
            self._add(module, f"{name}.extend")
        return self

    def insert(self, index: int, module: Module):
        """Put `module` before position `index` (PyTorch's list.insert; -n <= index <= n)."""
        name = type(self).__name__
        if not isinstance(module, Module):
            raise TypeError(f"{name}.insert: expected an nn.Module, got "
                            f"{type(module).__name__}")
        n = len(self)
        index = self._as_index(index)
        if not -n <= index <= n:
            raise IndexError(f"{name}.insert: index {index} is out of range for {n} modules")
        modules = list(self)
        modules.insert(index, module)
        self._renumber(modules)
        return self

    def pop(self, index=-1) -> Module:
        module = self[index]
        del self[index]
        return module

    def _renumber(self, modules: list) -> None:
        for key in list(self._registries()[1]):
            delattr(self, key)
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def __len__(self) -> int:
        return len(self._registries()[1])

    def __iter__(self) -> Iterator[Module]:
        return iter(self._registries()[1].values())

    def _as_index(self, index) -> int:
        try:
            return operator.index(index)
        except TypeError:
            raise TypeError(f"{type(self).__name__}: indices must be ints or slices, got "
                            f"{type(index).__name__}") from None

    def _position(self, index) -> int:
        n = len(self)
        i = self._as_index(index)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {index!r} is out of range for "
                             f"{n} modules")
        return i % n

    def __getitem__(self, index):
        items = list(self._registries()[1].items())
        if isinstance(index, slice):
            return self._from_items(items[index])
        return items[self._position(index)][1]

    def __setitem__(self, index, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected an nn.Module, got "
                            f"{type(module).__name__}")
        keys = list(self._registries()[1])
        setattr(self, keys[self._position(index)], module)

    def __delitem__(self, index) -> None:
        items = list(self._registries()[1].values())
        if isinstance(index, slice):
            gone = set(range(len(items))[index])
        else:
            gone = {self._position(index)}
        self._renumber([m for i, m in enumerate(items) if i not in gone])

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

    def _from_items(self, items: list) -> "ModuleList":
        return ModuleList(m for _, m in items)  # a slice is numbered afresh, as in PyTorch
