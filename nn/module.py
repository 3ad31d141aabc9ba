"""`Module` and `Parameter`: the torch.nn-style containers of the tensor path.

A Module registers every `Parameter` and sub-`Module` assigned to one of its attributes,
in assignment order, and the buffers given to `register_buffer` (state that is not
trained, such as batch norm's running statistics); names are dotted paths ("0.weight",
"encoder.fc.bias", "bn.running_mean"), as in PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from autodiff import Tensor, Value
from autodiff.engine import bump_version
from autodiff.errors import ShapeError
from autodiff.scope import close_scope, module_scope


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
            p._grad = None  # (.grad's slot: skips the setter's checks, None needs none)


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
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    def _registries(self) -> tuple[OrderedDict, OrderedDict]:
        # Tolerate subclasses that forgot super().__init__(): create the registries lazily.
        d = self.__dict__
        if "_parameters" not in d:
            Module.__init__(self)
        return d["_parameters"], d["_modules"]

    def _buffer_registry(self) -> OrderedDict:
        d = self.__dict__
        if "_buffers" not in d:  # (no super().__init__(), or a module pickled before buffers)
            self._registries()
            object.__setattr__(self, "_buffers", OrderedDict())
            object.__setattr__(self, "_non_persistent_buffers", set())
        return d["_buffers"]

    def __setattr__(self, name: str, value: Any) -> None:
        params, modules = self._registries()
        buffers = self._buffer_registry()
        if name in buffers and not isinstance(value, (Parameter, Module)):
            # A registered buffer stays one (as in PyTorch): only a tensor or None fits.
            buffers[name] = value = _buffer_value(value, name, "assigning to")
            object.__setattr__(self, name, value)
            return
        # Replacing a parameter (or module) by another keeps its place in the order, as
        # in PyTorch; anything else takes the name out of the registries.
        if not (isinstance(value, Parameter) and name in params):
            params.pop(name, None)
        if not (isinstance(value, Module) and name in modules):
            modules.pop(name, None)
        if isinstance(value, (Parameter, Module)):
            buffers.pop(name, None)
            self._non_persistent_buffers.discard(name)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        params, modules = self._registries()
        params.pop(name, None)
        modules.pop(name, None)
        self._buffer_registry().pop(name, None)
        self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    # -- buffers ---------------------------------------------------------------------
    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Keep `tensor` (a Tensor, an array, which becomes a Tensor, or None) as state of
        the module that is not a parameter: it is not trained, but it follows `to()` and
        `float()`/`double()` (when floating-point) and, if `persistent`, it is part of
        `state_dict()` (after the module's own parameters, as in PyTorch). A None
        buffer is listed nowhere until a tensor is assigned to it.

        >>> m = Module(); m.register_buffer("steps", np.zeros(()))
        >>> list(m.state_dict()), m.steps.requires_grad
        (['steps'], False)
        """
        if not isinstance(name, str):
            raise TypeError(f"register_buffer: the name must be a str, got {name!r}")
        if "." in name or not name:
            raise KeyError(f"register_buffer: a buffer name must be non-empty without '.', "
                           f"got {name!r}")
        buffers = self._buffer_registry()
        if hasattr(self, name) and name not in buffers:
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer: {name!r} is given a Parameter; register it "
                            "as a parameter (assign it) or pass a plain tensor")
        value = _buffer_value(tensor, name, "register_buffer:")
        buffers[name] = value
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, value)

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, persistent or not, None buffers left out."""
        seen: set[int] = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        for module_name, module in modules:
            for name, b in module._buffer_registry().items():
                if b is None or (remove_duplicate and id(b) in seen):
                    continue
                seen.add(id(b))
                yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- running ---------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        # Each recorded call is a scope, so pictures can box or collapse the module.
        s = module_scope(self)
        if s is None:
            return self.forward(*args, **kwargs)
        try:
            return self.forward(*args, **kwargs)
        finally:
            close_scope(s)

    # -- sub-modules -----------------------------------------------------------------
    def add_module(self, name: str, module: "Module | None") -> None:
        """Register `module` under `name`, as `setattr(self, name, module)` does."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not an nn.Module")
        if not isinstance(name, str):
            raise TypeError(f"add_module: the name must be a str, got {name!r}")
        if "." in name or not name:
            raise KeyError(f"add_module: a module name must be non-empty without '.', "
                           f"got {name!r}")
        if hasattr(self, name) and name not in self._registries()[1]:
            raise KeyError(f"add_module: attribute {name!r} already exists")
        setattr(self, name, module)

    register_module = add_module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for each direct sub-module, a module registered twice once."""
        seen: set[int] = set()
        for name, module in self._registries()[1].items():
            if id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module and every sub-module, depth first in
        registration order, each once (unless remove_duplicate=False), as in PyTorch;
        `memo` is the set of modules to skip (and collects the ones given)."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:  # a stack, not recursion: deep nets do not hit the recursion limit
            name, module = stack.pop()
            if module in memo:
                continue
            if remove_duplicate:
                memo.add(module)
            yield name, module
            _, children = module._registries()
            for child_name, child in reversed(children.items()):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self, remove_duplicate: bool = True) -> Iterator["Module"]:
        for _, module in self.named_modules(remove_duplicate=remove_duplicate):
            yield module

    def apply(self, fn) -> "Module":
        """Call fn(module) on every sub-module, children first and then self (PyTorch's
        order: `net.apply(init_weights)` initialises each layer), and return self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- parameters ------------------------------------------------------------------
    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, each parameter once, in registration order;
        with recurse=False only this module's own."""
        seen: set[int] = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        for module_name, module in modules:
            for name, p in module._registries()[0].items():
                if remove_duplicate:
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def _all_named_parameters(self, buffers: bool = False) -> list[tuple[str, Tensor]]:
        """Every (dotted name, parameter) in PyTorch's state_dict order, a parameter tied
        into several places (or a module registered twice) under each of its names;
        `named_parameters()` gives each parameter once. With `buffers`, each module's
        persistent buffers follow its parameters: the entries of `state_dict()`."""
        out, stack = [], [("", self, ())]
        while stack:
            prefix, module, ancestors = stack.pop()
            params, children = module._registries()
            out.extend((prefix + name, p) for name, p in params.items())
            if buffers:
                registry, skip = module._buffer_registry(), module._non_persistent_buffers
                out.extend((prefix + name, b) for name, b in registry.items()
                           if b is not None and name not in skip)
            inside = ancestors + (id(module),)
            for name, child in reversed(children.items()):
                if id(child) not in inside:  # (a module inside itself: visited once)
                    stack.append((f"{prefix}{name}.", child, inside))
        return out

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def zero_grad(self) -> None:
        """Tensor grads to None, Value grads to 0.0."""
        zero_grads(self.parameters())

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set requires_grad on every parameter (False freezes the module); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- mode, device and dtype ------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set `training` on this module and, through their own train(), its children
        (layers such as dropout behave differently in training); returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        object.__setattr__(self, "training", bool(mode))
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        """train(False); returns self."""
        return self.train(False)

    def to(self, *args, **kwargs) -> "Module":
        """PyTorch's `to(device)`, `to(dtype)`, `to(device, dtype)`, `to(tensor)` (its
        dtype), `to(device=..., dtype=..., non_blocking=...)`. The only device is the CPU
        ("cpu"); a dtype converts every floating-point parameter (and its gradient) and
        buffer, keeping the Parameter objects, so an optimizer built before still updates
        them."""
        _, dtype = _parse_to(args, kwargs)
        if dtype is not None:
            self._convert(dtype)
        return self

    def float(self) -> "Module":
        """Floating-point parameters to float32; returns self."""
        return self._convert(np.dtype(np.float32))

    def double(self) -> "Module":
        """Floating-point parameters to float64; returns self."""
        return self._convert(np.dtype(np.float64))

    def _convert(self, dtype: np.dtype) -> "Module":
        for b in self.buffers():  # floating-point buffers only: a step count stays an int
            if b.dtype.kind == "f" and b.dtype != dtype:
                b.data = b.data.astype(dtype)
                bump_version(b)
        for p in self.parameters():
            if not isinstance(p, Tensor) or p.dtype.kind != "f" or p.dtype == dtype:
                continue
            # A new dtype needs new memory: the Parameter keeps its identity and gets a
            # new array (as PyTorch's `param.data = ...`); the version bump makes a graph
            # recorded with the old values refuse to backward.
            p.data = p.data.astype(dtype)
            bump_version(p)
            g = p.grad
            if isinstance(g, Tensor):
                g.data = g.data.astype(dtype)
            elif g is not None:
                p.grad = np.asarray(g).astype(dtype)
        return self

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter and persistent buffer name -> a copy of its array (PyTorch key names
        and order, e.g. "0.weight", "1.running_mean"; a tied parameter under each of its
        names, as PyTorch lists it)."""
        return OrderedDict((name, p.data.copy())
                           for name, p in self._all_named_parameters(buffers=True))

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters and persistent buffers (in place). Every key and
        shape is checked before anything is written, so on any error the module is left
        unchanged. With strict=False, missing and unexpected keys are skipped and
        returned. A tied parameter needs one of its names (if several are given, they
        must agree)."""
        entries = self._all_named_parameters(buffers=True)
        missing, unexpected = match_names(entries, state_dict)
        own = OrderedDict(entries)
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
        # PyTorch's layout: extra_repr on the first line when it is the only content,
        # otherwise each extra line and each "(name): child" on its own indented line.
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                       for name, child in self._registries()[1].items()]
        lines = extra_lines + child_lines
        head = f"{type(self).__name__}("
        if not lines:
            return head + ")"
        if len(extra_lines) == 1 and not child_lines:
            return head + extra_lines[0] + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _buffer_value(value, name: str, where: str) -> "Tensor | None":
    """A buffer's value: a Tensor that does not require grad (an array is wrapped), or None."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = Tensor(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"{where} buffer {name!r} needs a Tensor, an array or None, got "
                        f"{type(value).__name__}")
    return value


def _is_device(x) -> bool:
    """A device name ("cpu", "cuda:0") or a device object with a `type` (torch.device's
    shape)."""
    return isinstance(x, str) or isinstance(getattr(x, "type", None), str)


def _check_device(device) -> None:
    name = device if isinstance(device, str) else device.type
    if name.split(":")[0].strip() != "cpu":
        raise RuntimeError(f"Module.to: device {str(device)!r} is not available; this library "
                           "computes on the CPU only (use 'cpu')")


def _parse_to(args: tuple, kwargs: dict):
    """(device, dtype) from Module.to's PyTorch call forms; either may be None."""
    kwargs = dict(kwargs)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)  # nothing is asynchronous here
    if kwargs:
        raise TypeError(f"Module.to: unexpected keyword arguments {sorted(kwargs)}")
    args = list(args)
    if len(args) > 1 and isinstance(args[-1], bool):
        args.pop()  # to(device, dtype, non_blocking) or to(dtype, non_blocking)
    if len(args) > 2:
        raise TypeError(f"Module.to: takes at most a device and a dtype, got {len(args)} "
                        "arguments")
    for arg in args:
        if arg is None:
            continue
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif _is_device(arg):
            device = arg
        else:
            dtype = arg
    if device is not None:
        _check_device(device)
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"Module.to: {dtype!r} is neither a device nor a dtype") from None
        if dtype.kind != "f":  # as PyTorch: integer parameters are never cast
            raise TypeError(f"Module.to: only floating-point dtypes can be given, got {dtype}")
    return device, dtype
