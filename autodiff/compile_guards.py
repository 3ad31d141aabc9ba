"""What a compiled step's call is checked against before a plan replays: the signature
of its arguments (shapes, dtypes, numbers, which are one array), and the modules the
step reaches (through its closure, globals, `self` and arguments) with their
parameters and buffers. All of it runs at every call, so it is written for speed."""

from __future__ import annotations

import enum
import functools
import math
import numbers
import types

import numpy as np

from .engine import Node
from .errors import CompileError
from .tensor import Tensor


def _signature(x):
    """What a trace depends on in one argument (a retrace happens when it changes)."""
    return _walk(x, [], [], False)


def _arrays_of(args) -> list:
    """The arrays behind the arguments, in order (Tensors' data, ndarrays, and the arrays
    among a plain object's attributes)."""
    arrays = []
    _walk(list(args), arrays, [], False)
    return arrays


def _describe(args) -> tuple:
    """(signature, arrays, opaque, owners) of a call's arguments in one walk; `opaque`
    names the objects that could only be keyed by identity; owners[k] is the Tensor
    argument whose data arrays[k] is (None for an ndarray)."""
    arrays, opaque, owners = [], [], []
    return _walk(list(args), arrays, opaque, False, 0, owners), arrays, opaque, owners


_OBJECT_DEPTH = 4  # how deep a plain object's attributes are followed


def _walk(x, arrays, opaque, inside, depth=0, owners=None):
    """The signature of `x`, appending its arrays to `arrays`. Inside a plain object
    (`inside`), a Tensor or Value is keyed by identity, as a parameter is: its data is read
    afresh at every replay."""
    if isinstance(x, Tensor):
        if inside:
            return ("P", id(x))
        arrays.append(x.data)
        if owners is not None:
            owners.append(x)
        return ("T", x.data.shape, x.data.dtype.str, x.requires_grad)
    if isinstance(x, np.ndarray):
        arrays.append(x)
        if owners is not None:
            owners.append(None)
        return ("A", x.shape, x.dtype.str)
    if isinstance(x, (float, np.floating)):  # (-0.0 == 0.0, yet 1 / x differs)
        return ("N", type(x).__name__, x, math.copysign(1.0, x))
    if isinstance(x, (bool, int, float, complex, str, bytes, type(None), np.generic,
                      enum.Enum)):
        return ("N", type(x).__name__, x)
    if isinstance(x, (list, tuple)):
        return (type(x).__name__,) + tuple(_walk(v, arrays, opaque, inside, depth, owners)
                                           for v in x)
    if isinstance(x, dict):
        return ("D",) + tuple((k, _walk(v, arrays, opaque, inside, depth, owners))
                              for k, v in sorted(x.items()))
    if isinstance(x, Node):
        if inside:
            return ("P", id(x))
        raise CompileError("compile: a Value as an argument: a replay would go on computing "
                           "with the Value of the trace. Pass numbers, lists or arrays and make "
                           "the Values inside the step (Value(x))")
    if _library_object(x) or callable(x):  # (parameters guarded, calls recorded; code frozen)
        return ("O", id(x))
    fields = getattr(x, "__dict__", None)
    if isinstance(fields, dict) and depth < _OBJECT_DEPTH:  # a batch, a config: its fields
        return ("obj", type(x)) + _walk(fields, arrays, opaque, True, depth + 1, owners)
    opaque.append(type(x).__name__)
    return ("O", id(x))


@functools.cache
def _nn_types() -> tuple:
    """(Module, ScalarModule, Optimizer, LRScheduler), imported at the first call rather
    than with this module (nn imports autodiff)."""
    from nn.module import Module
    from nn.optim.lr_scheduler import LRScheduler
    from nn.optim.optimizer import Optimizer
    from nn.scalar import ScalarModule
    return Module, ScalarModule, Optimizer, LRScheduler


def _library_object(x) -> bool:
    return isinstance(x, _nn_types())


def _aliases(arrays) -> tuple | None:
    """Which argument arrays are one and the same (a trace of `f(a, a)` reads one array
    for both): per array, the index of its first occurrence; None when all differ."""
    first = {}
    pattern = tuple(first.setdefault(id(a), k) for k, a in enumerate(arrays))
    return pattern if len(first) < len(arrays) else None


def _check_one_owner(alias, owners) -> None:
    """A leaf argument over the array of an earlier argument (from_numpy(a) twice, both
    requiring grad) is one whose gradient a trace, which knows arrays, would give to the
    earlier one: refused."""
    for k, first in enumerate(alias):
        if first != k and owners[k] is not owners[first] and owners[k] is not None \
                and owners[k].requires_grad:  # ((x, x.detach()) is fine: one leaf)
            names = [type(o).__name__ if o is not None else "ndarray"
                     for o in (owners[first], owners[k])]
            raise CompileError(
                f"compile: arguments {first} and {k} ({names[0]} and {names[1]}) are two "
                "objects over one array; a trace cannot tell their gradients apart. Pass "
                "one of them, or a copy")


_MAX_VISITS = 10_000  # objects _modules_of looks at (a trainer may hold a whole dataset)


def _held(module) -> tuple:
    """The ids of a module's parameters and buffers, its sub-modules' too (a replaced one
    means a new trace). Read from the registries directly: this runs at every call."""
    if not hasattr(module, "_buffer_registry"):  # (a scalar module)
        return tuple(map(id, module.parameters()))
    ids, stack, seen = [], [module], set()
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        d = m.__dict__
        if "_buffers" in d and "_parameters" in d:  # (the registries, read as they are)
            params, children, buffers = d["_parameters"], d["_modules"], d["_buffers"]
        else:  # (a subclass that skipped Module.__init__: made on first use)
            (params, children), buffers = m._registries(), m._buffer_registry()
        ids += map(id, params.values())
        ids += map(id, buffers.values())
        stack += children.values()
    return tuple(ids)


# What a step's objects hold most: checked by type first (the Number ABC is slow).
_ATOMS = frozenset({int, float, bool, str, bytes, type(None), np.ndarray, np.float64,
                    np.float32, np.int64})


_OPTIMIZER_OWN = frozenset({"defaults", "param_groups", "state", "_flat", "_work"})


def _modules_of(fn, args) -> list:
    """The nn modules a step can reach through its closure, its `self`, the globals it
    names and its arguments, also inside lists, tuples, dicts and plain objects' attributes
    (a trainer's self.model), a few levels deep: their parameters, buffers and train/eval
    modes are checked at every call."""
    Module, ScalarModule, Optimizer, _ = _nn_types()
    found, seen = [], set()
    cands = list(args)
    f = fn
    if isinstance(f, functools.partial):
        cands += list(f.args) + list(f.keywords.values())
        f = f.func
    if isinstance(f, types.MethodType):
        cands.append(f.__self__)
        f = f.__func__
    code = getattr(f, "__code__", None)
    if code is not None:
        cands += [c.cell_contents for c in (f.__closure__ or ()) if _has_contents(c)]
        g = getattr(f, "__globals__", {})
        cands += [g[n] for n in code.co_names if n in g]
    todo = [(c, 0) for c in cands]
    visits = 0
    while todo and visits < _MAX_VISITS:
        c, depth = todo.pop()
        visits += 1
        if type(c) in _ATOMS or isinstance(c, (np.ndarray, Tensor, str, bytes, numbers.Number)):
            continue
        if id(c) in seen:
            continue
        seen.add(id(c))
        if isinstance(c, (Module, ScalarModule)):
            found.append(c)
        elif isinstance(c, Optimizer):  # (its own state holds tensors and numbers only)
            todo += [(v, depth + 1) for k, v in vars(c).items() if k not in _OPTIMIZER_OWN]
        elif depth < _OBJECT_DEPTH and not isinstance(c, (type, types.ModuleType)):
            inner = (list(c) if isinstance(c, (list, tuple)) else list(c.values())
                     if isinstance(c, dict) else list(vars(c).values())
                     if isinstance(getattr(c, "__dict__", None), dict) and not callable(c)
                     else [])
            todo += [(x, depth + 1) for x in inner]
    return found


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _loose_signature(args, kwargs) -> tuple:
    """The signature with the float arguments' values left out (a Value step's floats are
    variables of its replay)."""
    def sig(x):
        return ("F",) if type(x) is float else _signature(x)
    return ("floats", tuple(sig(x) for x in args), tuple((k, sig(kwargs[k])) for k in sorted(kwargs)))


def _floats(args, kwargs) -> list:
    """The float arguments, in the order a trace numbers them."""
    return [x for x in args if type(x) is float] + [
        kwargs[k] for k in sorted(kwargs) if type(kwargs[k]) is float]
