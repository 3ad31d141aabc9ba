"""`Module` and `Parameter`: the torch.nn-style containers of the tensor path.

A Module registers every `Parameter` and sub-`Module` assigned to one of its attributes,
in assignment order; names are dotted paths ("0.weight", "encoder.fc.bias"), as in PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from autodiff import Tensor, Value
from autodiff.engine import bump_version
from autodiff.errors import ShapeError


class IncompatibleKeys(NamedTuple):
    """What a non-strict `load_state_dict` skipped (PyTorch's return value)."""

    missing_keys: list
    unexpected_keys: list


class Parameter(Tensor):
    """A Tensor that requires grad and that a Module registers as one of its weights.

    >>> p = Parameter(np.zeros(3))
    >>> p.requires_grad, p.shape
    (True, (3,))
    """

    def __init__(self, data, requires_grad: bool = True, *, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def zero_grads(params: Iterable) -> None:
    """Reset gradients: a Tensor's to None (as PyTorch does), a Value's to 0.0 (micrograd)."""
    for p in params:
        if isinstance(p, Value):
            p.grad = 0.0
        else:
            p.grad = None


def match_names(entries: list, keys) -> tuple[list, list]:
    """(missing, unexpected) names for loading `keys` into the (name, parameter) `entries`:
    a name is missing only if no other name of its (tied) parameter is given."""
    names = {name for name, _ in entries}
    given = {id(p) for name, p in entries if name in keys}
    missing = [name for name, p in entries if name not in keys and id(p) not in given]
    return missing, [k for k in keys if k not in names]


class Module:
    """Base class of every tensor-path layer: subclass it, assign Parameters and Modules
    in `__init__`, and write `forward`.

    >>> class Affine(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = Parameter(np.ones(2))
    ...     def forward(self, x):
    ...         return x * self.w
    >>> [name for name, _ in Affine().named_parameters()]
    ['w']
    """

    training: bool = True

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def _registries(self) -> tuple[OrderedDict, OrderedDict]:
        # Tolerate subclasses that forgot super().__init__(): create the registries lazily.
        d = self.__dict__
        if "_parameters" not in d:
            Module.__init__(self)
        return d["_parameters"], d["_modules"]

    def __setattr__(self, name: str, value: Any) -> None:
        params, modules = self._registries()
        # Replacing a parameter (or module) by another keeps its place in the order, as
        # in PyTorch; anything else takes the name out of the registries.
        if not (isinstance(value, Parameter) and name in params):
            params.pop(name, None)
        if not (isinstance(value, Module) and name in modules):
            modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        params, modules = self._registries()
        params.pop(name, None)
        modules.pop(name, None)
        object.__delattr__(self, name)

    # -- running ---------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- parameters ------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module and every sub-module, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            _, children = module._registries()
            for child_name, child in reversed(children.items()):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator["Module"]:
        yield from self._registries()[1].values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, each parameter once, in registration order."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._registries()[0].items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def _all_named_parameters(self) -> list[tuple[str, Parameter]]:
        """Every (dotted name, parameter) in PyTorch's state_dict order, a parameter tied
        into several places (or a module registered twice) under each of its names;
        `named_parameters()` gives each parameter once."""
        out, stack = [], [("", self, ())]
        while stack:
            prefix, module, ancestors = stack.pop()
            params, children = module._registries()
            out.extend((prefix + name, p) for name, p in params.items())
            inside = ancestors + (id(module),)
            for name, child in reversed(children.items()):
                if id(child) not in inside:  # (a module inside itself: visited once)
                    stack.append((f"{prefix}{name}.", child, inside))
        return out

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def zero_grad(self) -> None:
        """Tensor grads to None, Value grads to 0.0."""
        zero_grads(self.parameters())

    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter name -> a copy of its array (PyTorch key names, e.g. "0.weight"; a
        tied parameter under each of its names, as PyTorch lists it)."""
        return OrderedDict((name, p.data.copy()) for name, p in self._all_named_parameters())

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters (in place). Every key and shape is checked before
        anything is written, so on any error the module is left unchanged. With
        strict=False, missing and unexpected keys are skipped and returned. A tied
        parameter needs one of its names (if several are given, they must agree)."""
        missing, unexpected = match_names(self._all_named_parameters(), state_dict)
        own = OrderedDict(self._all_named_parameters())
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict: {type(self).__name__}: {'; '.join(parts)}")
        arrays, seen = {}, {}
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            arr = np.asarray(value.data if isinstance(value, Tensor) else value)
            if arr.shape != p.shape:
                raise ShapeError(f"load_state_dict: {name!r} has shape {arr.shape} in the "
                                 f"state dict but {p.shape} in the model")
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: {name!r} has non-numeric dtype {arr.dtype}")
            other = seen.setdefault(id(p), name)
            if other != name and not np.array_equal(arrays[other], arr, equal_nan=True):
                raise ValueError(f"load_state_dict: {other!r} and {name!r} name the same "
                                 "(tied) parameter but hold different values")
            arrays[name] = arr
        for name, arr in arrays.items():
            np.copyto(own[name].data, arr, casting="unsafe")
            bump_version(own[name])
        return IncompatibleKeys(missing, unexpected)

    # -- printing --------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = self._registries()[1]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
