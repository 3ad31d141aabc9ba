"""`compile(fn)`: trace a training step once per input signature, then replay it.

The first call with a given signature (shapes, dtypes and kinds of the arguments, which
of them are one and the same array; the values of plain Python numbers; a plain object's
attributes as if they were arguments) runs `fn` eagerly while recording, in order, every
primitive it ran (`Op.forward`, with its inputs and options), every backward, the in-place
updates made through the library (`add_`, `sub_`, `mul_`, `div_`, `copy_`, `fill_`,
`zero_`, `clamp_`, `t[i] = v`, and `normal_`/`uniform_`, which draw afresh) and the
optimizer and module calls (`step`, `zero_grad`). From that record it emits one
straight-line Python function over plain arrays: a line per `Op.forward`, a line per
`Op.vjp` in the engine's order (newest node first, broadcast gradients reduced as the
engine does, gradient sums decided at trace time), the `.grad` stores, and the recorded
calls. Where an op's shapes are fixed by the signature, its forward and vjp are lowered
to ufunc calls into buffers the plan keeps (compile_lower.py). Later calls run it: no
graph node, no heap, no tape. (While a trace runs, the
library's op functions are swapped for recording ones: trace from one thread at a time.)

What it assumes (as `jax.jit` does): Python control flow that depends on values is frozen
at trace time; numbers among the arguments are constants of the trace (a new value
retraces); a tensor made inside the step from an argument (`Tensor(xb)`) follows that
argument. Numpy work on the arguments inside functions marked `replayable` (the losses'
label checks and one-hot rows, a recurrent layer's zero state) is done again at each
replay, all of it first: a result of another structure than at the trace (labels with an
ignored sample where the trace had none) sends the call to a new trace before anything
changed; dropout draws its masks afresh from the seeded generator, as eagerly. A tensor
cut from the graph (`y.detach()`, `Tensor(y)`, `Tensor(y.data)` for y of the step or a
parameter of a module the step reaches) is its source's array (a copy) at the same point
of the replay, and so is a backward's seed taken from the step (`h.backward(z.grad)`); a
leaf made in the step has its gradient in a variable of the replay (read by the step,
returned with the leaf), a Tensor argument that requires grad gets it on the call's own
tensor. A comparison (`h > 0`) is computed again at a replay, and a boolean mask, of the
arguments or computed in the step, must select as many elements as at the trace (shapes
after it follow): another count traces afresh, or, once the replay has changed gradients
or parameters, raises CompileError. A trace holding other arrays or numpy numbers made
during the step (numpy code on the arguments, `x.std()`, a backward seed given as a
constant) replays only for arguments with the same contents. Frozen: other random draws
inside the step, arrays computed with numpy from a parameter's values (compute those
with tensor ops), and Python floats computed from the arguments' values
(`float(x.max())`: a trace cannot tell them from literals). Modules, optimizers and
functions among the arguments are keyed by identity, the globals and closure a step
reads not at all: attributes rebound on them go unseen, save the modules checked below.

A plan serves the train/eval modes of the modules it was traced in and the
requires_grad flags of the parameters it read, as they were when the call began
(`model.eval()` or `p.requires_grad_(False)` between calls makes or picks another; the
step's own train()/eval() and requires_grad_ calls are replayed), and checks that the
modules' parameters and buffers are the same objects and that the step still finds the
same modules (also through containers and plain objects: a trainer's self.model replaced
makes a new trace); gradient clipping (`nn.utils.clip_grad_norm_`) and batch norm's
statistics are replayed.

A replay's results keep no graph: one that required grad eagerly still does, and a
backward from it raises CompileError (differentiate inside the step).

What it refuses, with `CompileError`: a step that returns a Python number computed from
tensors (`loss.item()`), a loss given labels the step computed (`y = logits.argmax(1)`),
hooks, `retain_grad`, a parameter's `.data` rebound inside the step, an argument it
cannot see into (a random generator) when the trace holds arrays made during the step,
and (at call time) a module whose parameters or buffers were replaced since the trace.

A step on `Value`s (micrograd's way) is traced by `compile_value` and replayed as
straight-line Python over floats; its float arguments become variables of the replay.
"""

from __future__ import annotations

import builtins
import enum
import functools
import itertools
import math
import numbers
import sys
import threading
import types

import numpy as np

from . import compile_value as _values
from .compile_lower import Kernels
from . import tensor as _tensor
from .engine import Node, bump_version, no_grad
from .errors import CompileError
from .ops import Op
from .rng import generator
from .tensor import Tensor, _wrap, fit_array

__all__ = ["compile", "CompileError", "replayable"]

builtins_compile = builtins.compile  # (this module's `compile` is ours)


# Every Tensor method that changes values in place (a replay must do each again; the
# random fills draw afresh from the seeded generator, as eagerly).
_IN_PLACE = ("add_", "sub_", "mul_", "div_", "copy_", "fill_", "zero_", "clamp_",
             "normal_", "uniform_", "__setitem__")


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


def _library_object(x) -> bool:
    from nn.module import Module
    from nn.optim.lr_scheduler import LRScheduler
    from nn.optim.optimizer import Optimizer
    from nn.scalar import ScalarModule

    return isinstance(x, (Module, ScalarModule, Optimizer, LRScheduler))


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
        params, children = m._registries()
        ids += map(id, params.values())
        ids += map(id, m._buffer_registry().values())
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
    from nn.module import Module
    from nn.optim.optimizer import Optimizer
    from nn.scalar import ScalarModule

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


class _Recorder:
    """What one eager call did, in order, with every array it touched given a slot."""

    def __init__(self, args):
        self.slot_of = {}      # id(Tensor) -> slot
        self.keep = []         # the Tensors behind slot_of (so ids stay unique)
        self.sources = []      # per slot: ("arg", k) | ("ext", tensor) | ("const", array)
                               #           | ("op", step index) | ("grad", tensor)
        self.events = []
        self.args = _arrays_of(args)
        self.quiet = 0         # >0 inside a recorded call: its own ops are not recorded
        self.rebound = {}      # id(ext tensor) -> its data when first seen
        self.start = next(_tensor.creation_counter)  # nodes made before have larger numbers
        self.values = _values.ValueTrace(self)       # the Value work (a micrograd step)
        self.thread = threading.get_ident()
        self.derived = {}      # id(array) -> (derivation, index): made by a replayable call
        self.made_from = {}    # id(array) -> ("a", k) | ("d", n, i): a Tensor(x) copy's source
        self.derivations = []  # the arrays behind `derived` (so ids stay unique)
        self.numbers_read = False  # a numpy number entered the graph (see note_operand)
        self.held = []         # what keeps the ids in made_from unique
        self.slot_of_array = {}  # id(array) -> slot, for arrays the plan computes or reads
                                 # (op results, gradients, parameters); kept by `keep`
        self.known = {}        # id(array) -> the module parameter or buffer holding it
        self.had_grad = set()  # ids of tensors made before the call that had a .grad when
                               # the trace first met them
        self.before = set()    # ids of tensors made before the call whose creation number
                               # requires_grad_() moved on during it
        self.flags = []        # (tensor made before the call, its requires_grad when met)
        self.modes = []        # (module, its training flag when the call began)
        self.sharing = set()   # slots of tensors made in the step that share an argument's
                               # array (x.detach(), from_numpy(a)): not copies of it

    def _new_slot(self, t, source) -> int:
        self.slot_of[id(t)] = s = len(self.sources)
        self.keep.append(t)
        self.sources.append(source)
        if source[0] in ("op", "grad", "ext"):
            self.slot_of_array.setdefault(id(t.data), s)
        if source[0] == "ext":
            self.flags.append((t, t.requires_grad))
            if t._grad is not None:
                self.had_grad.add(id(t))
        return s

    def made_here(self, t) -> bool:
        """Whether tensor t was made during the step (not a parameter that was there)."""
        return t._seq <= self.start and id(t) not in self.before

    def _alias(self, t, of: int, copy: bool) -> int:
        """A slot for `t`, whose data is (copy: a copy made now of) slot `of`'s array:
        `y.detach()`, `Tensor(y.data)`. The replay assigns it at this point of the step."""
        s = self._new_slot(t, ("alias", of))
        self.events.append(("alias", s, of, copy))
        return s

    def _arg_index(self, arr, by_value=True):
        """The argument `arr` is, or (by_value) the one a Tensor made in the step was
        built from (`Tensor(xb)` copies xb)."""
        for k, a in enumerate(self.args):
            if a is arr:
                return k
        ref = self.made_from.get(id(arr)) if by_value else None
        return ref[1] if ref is not None and ref[0] == "a" else None

    def made(self, t, source) -> None:
        """`Tensor(source)` was made in the step: remember which argument (or replayable
        result) its copy holds, when it holds it unchanged."""
        if isinstance(source, Tensor):  # (a parameter not used yet gets its slot now)
            of = self.slot(source)
            if source.data.shape == t.data.shape and source.data.dtype == t.data.dtype:
                self._alias(t, of, copy=True)  # (copied here: the step may change the
                return                         # source in place before or after)
            source = source.data
        if isinstance(source, np.ndarray) and id(source) in self.known:
            self.slot(self.known[id(source)])  # Tensor(p.data): p's slot, then a copy of it
        of = self.slot_of_array.get(id(source)) if isinstance(source, np.ndarray) else None
        if of is not None and source.shape == t.data.shape and source.dtype == t.data.dtype:
            self._alias(t, of, copy=True)
            return
        self.note_operand(source)
        self.copied(source, t.data, t)

    def copied(self, source, copy, owner) -> None:
        """`copy` holds the array `source` unchanged (a Tensor's data, an index array):
        remember the argument or replayable result it stands for. (`owner` keeps the copy
        alive, so its id stays unique.)"""
        if not isinstance(source, np.ndarray) or source.shape != copy.shape:
            return
        if source.dtype != copy.dtype:  # (a seed cast to its root's dtype: z.grad)
            s = self.slot_of_array.get(id(source))
            if s is not None:
                self.made_from[id(copy)] = ("s", s, copy.dtype)
                self.held.append(owner)
            return
        derived = self._derived_ref(source)
        if derived is not None:
            ref = ("d",) + derived
        else:
            k = self._arg_index(source)
            if k is not None:
                ref = ("a", k)
            elif id(source) in self.slot_of_array:  # (a backward's seed: z.grad)
                ref = ("s", self.slot_of_array[id(source)])
            else:
                return
        self.made_from[id(copy)] = ref
        self.held.append(owner)

    def computed(self, a) -> "_SlotRef | None":
        """A reference to the slot whose array `a` is, or holds a copy of (cast: the
        copy's dtype where it differs): an array the step computed. None for others."""
        ref = self.made_from.get(id(a))
        if ref is not None and ref[0] == "s":
            out = _SlotRef(ref[1])
            out.cast = ref[2] if len(ref) > 2 else None
            return out
        s = self.slot_of_array.get(id(a))
        return None if s is None else _SlotRef(s)

    def seed(self, g):
        """A backward's seed as the plan keeps it: an array of this step
        (`h.backward(z.grad)`) by reference, anything else as a copy."""
        ref = self.computed(g)
        return ref if ref is not None else np.array(g, copy=True)

    def note_operand(self, x) -> None:
        """A number or small array that enters the graph as a constant: a numpy scalar
        (`x.std()`) or a small array that is no argument may come from the arguments'
        values, so the plan is then keyed to their contents."""
        if isinstance(x, (np.floating, np.complexfloating)) or (
                isinstance(x, np.ndarray) and x.size <= 1 and x.dtype.kind in "fc"
                and self._arg_index(x) is None and self._derived_ref(x) is None):
            self.numbers_read = True

    def slot(self, t) -> int:
        s = self.slot_of.get(id(t))
        if s is not None:
            return s
        if t._prim is not None:
            raise CompileError(f"compile: the step used a '{t._prim.name}' node that was not "
                               "made by a primitive the trace saw (made before the step, or "
                               "by code that bypasses autodiff.tensor.apply); detach it")
        k = self._arg_index(t.data, by_value=False)
        if k is not None:
            s = self._new_slot(t, ("arg", k, t.data.dtype))
            if self.made_here(t):
                self.sharing.add(s)
            return s
        if not self.made_here(t):  # made before the call: a parameter, a buffer
            self.rebound[id(t)] = (t, t.data)
            return self._new_slot(t, ("ext", t))
        of = self.slot_of_array.get(id(t.data))
        if of is not None:  # y.detach(): the same array as a slot's, made in the step
            return self._alias(t, of, copy=False)
        derived = self._derived_ref(t.data)
        if derived is not None:
            return self._new_slot(t, ("derived",) + derived)
        k = self._arg_index(t.data)
        if k is not None:
            return self._new_slot(t, ("arg", k, t.data.dtype))
        # (a copy: the step may change the tensor in place after this point; whether the
        # array was writeable: a read-only one, a loss's class weights, is no value of the
        # arguments, so it does not key the plan to their contents)
        return self._new_slot(t, ("const", np.array(t.data, copy=True), t.data.flags.writeable))

    def option(self, v):
        """An op's option as the plan keeps it: an argument's array, or one the step
        computed (`x[h > 0]`'s mask), by reference."""
        if isinstance(v, tuple):
            return tuple(self.option(x) for x in v)
        if isinstance(v, Tensor):  # (an index of t[i] = v: its array)
            v = v.data
        if isinstance(v, np.ndarray):  # (of any size: a one-element or an empty index too)
            ref = self._derived_ref(v)
            if ref is not None:
                return _DerivedRef(*ref)
            k = self._arg_index(v)
            if k is not None:
                return self._counted(_ArgRef(k), v)
            ref = self.computed(v)
            if ref is not None:
                return self._counted(ref, v)
        return v

    def _counted(self, ref, v):
        """A boolean mask decides the shapes after it: its count at the trace is kept."""
        if v.dtype == np.bool_:
            ref.count = int(np.count_nonzero(v))
        return ref

    def _derived_ref(self, arr):
        """(derivation, index) of a replayable result, or of a Tensor's copy of one."""
        ref = self.derived.get(id(arr))
        if ref is None:
            made = self.made_from.get(id(arr))
            ref = made[1:] if made is not None and made[0] == "d" else None
        return ref

    def derive(self, fn, args, kwargs, out) -> None:
        """A replayable call: recorded when its arrays are the step's arguments, earlier
        replayable results or read-only (else its result stays a constant of the trace)."""
        def spec(a):
            if isinstance(a, Tensor):
                a = a.data
            if isinstance(a, np.ndarray):
                ref = self._derived_ref(a)
                if ref is not None:
                    return ("d",) + ref
                k = self._arg_index(a)
                if k is not None:
                    return ("a", k)
                if self.computed(a) is not None:
                    raise CompileError(
                        f"compile: {getattr(fn, '__name__', 'a replayable call')} got an array "
                        f"of shape {a.shape} that the step computed (labels from argmax, "
                        "targets from the model's output); a replay would keep the trace's. "
                        "Pass such labels or targets as an argument, or run the step eagerly")
                # (a read-only array, such as a loss's class weights, is a constant)
                return None if a.flags.writeable else ("v", a)
            if isinstance(a, (list, dict, set)) or _unexplained(a):
                return None
            return ("v", a)

        specs = [spec(a) for a in args]
        kwspecs = {k: spec(v) for k, v in kwargs.items()}
        structure = _structure(out)
        if None in specs or None in kwspecs.values() or structure is _UNKNOWN:
            return
        n = len(self.derivations)
        # (with copies: a result changed in place afterwards would differ at a replay)
        self.derivations.append((out, [np.copy(x) if isinstance(x, np.ndarray) else None
                                       for x in (out if type(out) is tuple else (out,))]))
        for i, x in enumerate(out if type(out) is tuple else (out,)):
            if isinstance(x, np.ndarray):
                self.derived[id(x)] = (n, i if type(out) is tuple else None)
        self.events.append(("derive", n, fn, specs, kwspecs, structure))

    def op(self, op, inputs, kw, out) -> None:
        ins = tuple(self.slot(t) for t in inputs)
        opts = {k: self.option(v) for k, v in (kw or {}).items()}
        step = len(self.events)
        self.events.append(("op", op, ins, opts, None))
        self.events[-1] = ("op", op, ins, opts, self._new_slot(out, ("op", step)))

    def backward(self, roots, seeds, kwargs) -> None:
        self.events.append(("backward", tuple(roots), tuple(seeds), kwargs))


def _unexplained(v) -> bool:
    """Whether an option may come from the arguments' values: an array, a numpy number."""
    if isinstance(v, tuple):
        return any(_unexplained(x) for x in v)
    return isinstance(v, np.ndarray) and v.size > 0 or isinstance(
        v, (np.floating, np.complexfloating))


def _contents(arrays) -> tuple:
    return tuple(a.tobytes() for a in arrays)


class _ArgRef:
    """An argument's array (count: a boolean mask's number of True at the trace)."""

    __slots__ = ("k", "count")

    def __init__(self, k):
        self.k, self.count = k, None


class _SlotRef:
    """An array the step computes (a slot of the plan): a backward's seed, an index."""

    __slots__ = ("s", "count", "cast")

    def __init__(self, s):
        self.s, self.count, self.cast = s, None, None


class _DerivedRef:
    """An option that a replayable call made: the replay's own result of that call."""

    __slots__ = ("n", "i")

    def __init__(self, n, i):
        self.n, self.i = n, i


class _Retrace(Exception):
    """A replayable call gave a result of another structure than at the trace (labels
    with an ignored sample where the trace had none): the step must be traced again."""


class _Reshaped(_Retrace):
    """Raised by a replay before it starts: an argument's or a parameter's array has
    another shape, dtype or memory order than at the trace (a parameter's .data rebound,
    a Fortran-ordered batch): a new trace, whose buffers fit it."""


_UNKNOWN = object()


def _structure(x):
    """What a replay checks of a replayable call's result: its arrays' shapes and dtypes
    and where it has None."""
    if isinstance(x, np.ndarray):
        return ("A", x.shape, x.dtype.str)
    if x is None:
        return None
    if type(x) is tuple:
        parts = tuple(_structure(v) for v in x)
        return _UNKNOWN if _UNKNOWN in parts else parts
    return _UNKNOWN


def replayable(fn):
    """Mark `fn` (numpy work on a step's arguments that builds no graph: labels checked
    and turned into one-hot rows, a zero initial state) as a call that a trace records
    and a replay makes again on the new arguments, instead of freezing its result into
    the trace. Its result must depend only on its arguments; it may raise (bad labels
    then raise at a replay as they would eagerly)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        rec = _recorder()
        if rec is not None and not rec.quiet:
            rec.derive(fn, args, kwargs, out)
        return out

    return wrapper


_active: list = []  # the recorder of the trace under way (at most one)


def _recorder():
    """The trace under way in this thread, if any (other threads run eagerly)."""
    rec = _active[-1] if _active else None
    return rec if rec is not None and rec.thread == threading.get_ident() else None


def _recording(fn):
    """Wrap a tensor-module function so that, during a trace, its ops are recorded."""

    @functools.wraps(fn)
    def wrapper(op, *rest):
        if fn.__name__ == "apply":
            inputs, kw = rest[0], (rest[1] if len(rest) > 1 else None)
        elif fn.__name__ == "binary":
            a, b = rest
            if type(b) is not Tensor:
                rec = _recorder()
                if rec is not None and not rec.quiet:
                    rec.note_operand(b)
                b = _tensor._constant(b, a, op.name)
            inputs, kw, rest = (a, b), None, (a, b)
        else:
            inputs, kw = rest, None
        out = fn(op, *rest)
        rec = _recorder()
        if rec is not None and not rec.quiet:
            rec.op(op, inputs, kw, out)
        return out

    wrapper._compile_original = fn
    return wrapper


def _recorded_call(name, fn):
    """Wrap a method (optimizer step, zero_grad, an in-place method) to record the call."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        rec = _recorder()
        if rec is None or rec.quiet:
            return fn(self, *args, **kwargs)
        if isinstance(self, Tensor):
            target = rec.slot(self)  # (made in the step: a copy of an argument, a constant)
            def spec(a):
                return ("slot", rec.slot(a)) if isinstance(a, Tensor) else ("value", rec.option(a))
            rec.events.append(("inplace", name, target, [spec(a) for a in args],
                               {k: spec(v) for k, v in kwargs.items()}))
        else:
            for group in getattr(self, "param_groups", ()):
                for k, v in group.items():
                    if type(v) is _values._Sym:  # (a float argument as a setting: the trace
                        group[k] = rec.values.leak(v, "an optimizer's setting")  # is keyed to it)
                    if k == "params" and any(rec.made_here(p) for p in v):
                        raise CompileError(
                            f"compile: the step's {type(self).__name__} updates parameters "
                            "made inside the step; a replay would update the trace's. Make "
                            "the model and its optimizer before compiling the step")
            rec.events.append(("call", fn, self, args, kwargs))
        rec.quiet += 1
        try:
            return fn(self, *args, **kwargs)
        finally:
            rec.quiet -= 1

    return wrapper


def _recording_init(init):
    """Tensor(x) during a trace: note which argument the new tensor copies."""
    @functools.wraps(init)
    def wrapper(self, data, *args, **kwargs):
        init(self, data, *args, **kwargs)
        rec = _recorder()
        if rec is not None and not rec.quiet:
            rec.made(self, data)

    return wrapper


def _before(requires_grad_):
    """requires_grad_ during a trace: a tensor made before the call stays one, although
    its creation number moves on (see Tensor.requires_grad_)."""
    @functools.wraps(requires_grad_)
    def wrapper(self, *args, **kwargs):
        rec = _recorder()
        if rec is not None and self._seq > rec.start:
            rec.before.add(id(self))
        return requires_grad_(self, *args, **kwargs)

    return wrapper


def _recording_detach(detach):
    """t.detach() during a trace: t gets its slot first, so the detached tensor, which
    shares t's array, can follow it (a parameter not used in the step yet)."""
    @functools.wraps(detach)
    def wrapper(self):
        rec = _recorder()
        if rec is None or rec.quiet:
            return detach(self)
        of = rec.slot(self)
        out = detach(self)
        if rec.sources[of][0] != "op":  # (an op's array finds its slot by identity)
            rec._alias(out, of, copy=False)  # the same array: a copy's, a constant's too
        return out

    return wrapper


def _constant_forward(*operands, fn, **options):
    return np.asarray(fn(*operands, **options))


# Constants computed from tensors (comparisons, argmax, any/all, nonzero: no node, no
# gradient) are recorded as this op, so that a mask or an index computed in the step
# (x[h > 0], logits.argmax(1) == y) is computed again at a replay.
_CONSTANT = Op("constant", "fn(operands), a constant without gradient", _constant_forward,
               lambda g, out, *xs, fn, **options: (None,) * len(xs), reads="nothing")


def _record_constant(fn, operands, options, out):
    rec = _recorder()
    if rec is not None and not rec.quiet:
        rec.op(_CONSTANT, tuple(x if isinstance(x, Tensor) else _wrap(np.asarray(x))
                                for x in operands), dict(options, fn=fn), out)


def _recording_copy(copy_fn):
    """An index or condition copied during a trace: note what the copy holds."""
    @functools.wraps(copy_fn)
    def wrapper(array, dtype=None):
        out = copy_fn(array, dtype)
        rec = _recorder()
        if rec is not None and not rec.quiet:
            rec.copied(array, out, out)
        return out

    return wrapper


def _recording_backward(fn):
    @functools.wraps(fn)
    def wrapper(roots, seeds, **kwargs):
        rec = _recorder()
        if rec is None or rec.quiet:
            return fn(roots, seeds, **kwargs)
        if kwargs.get("create_graph") or kwargs.get("capture") is not None:
            raise CompileError("compile: create_graph and autodiff.grad inside a step "
                               "are not supported; call loss.backward()")
        roots = tuple(roots)
        if not all(isinstance(r, Tensor) for r in roots):
            if any(isinstance(r, Tensor) for r in roots):
                raise CompileError("compile: one backward from Tensors and Values together")
            rec.values.backward(roots, seeds)
            return fn(roots, seeds, **kwargs)
        for r in roots:
            rec.slot(r)
        rec.backward(roots, [rec.seed(s) for s in seeds], kwargs)
        # (Leaves without .grad now that had one when first met: reset by something the
        # trace does not see. Those without one from the start accumulate, as eagerly.)
        rec.fresh = {id(t) for t in rec.keep if t._prim is None and t._grad is None
                     and id(t) in rec.had_grad}
        # (the leaves' flags as this backward meets them: the step may toggle them after)
        flags = {id(t): t.requires_grad for t in rec.keep if t._prim is None}
        fn(roots, seeds, **kwargs)
        rec.events[-1] = rec.events[-1] + (_grad_owners(rec), rec.fresh, flags)

    return wrapper


def _grad_owners(rec):
    """After a recorded backward, every leaf's `.grad` Tensor stands for that leaf's
    gradient (a later `p.sub_(p.grad)` reads the replayed one): [(leaf, slot of its
    .grad)], taken now, as the step may reset the gradients before it ends."""
    owners = []
    for t in list(rec.keep):
        if t._prim is None and t.requires_grad and t._grad is not None:
            g = t._grad
            s = rec.slot_of.get(id(g))
            owners.append((t, rec._new_slot(g, ("grad", t)) if s is None else s))
    return owners


def _patches():
    """(owner, attribute, replacement) for everything a trace listens to."""
    from nn.module import Module
    from nn.optim.lr_scheduler import LRScheduler
    from nn.optim.optimizer import Optimizer

    out = []
    originals = {n: getattr(_tensor, n) for n in ("apply", "binary", "_unary")}
    for mod in list(sys.modules.values()):
        name = getattr(mod, "__name__", "")
        if not (name.startswith("autodiff") or name.startswith("nn")):
            continue
        for n, f in originals.items():
            if getattr(mod, n, None) is f:
                out.append((mod, n, _recording(f)))
        if getattr(mod, "run_backward", None) is _tensor.run_backward:
            out.append((mod, "run_backward", _recording_backward(_tensor.run_backward)))
    for n in _IN_PLACE:
        out.append((Tensor, n, _recorded_call(n, getattr(Tensor, n))))
    out.append((Tensor, "__init__", _recording_init(Tensor.__init__)))
    out.append((Tensor, "detach", _recording_detach(Tensor.detach)))
    out.append((_tensor, "_constant_recorder", _record_constant))
    out.append((_tensor, "_kept_copy", _recording_copy(_tensor._kept_copy)))
    for cls in {Optimizer, Module}:
        out.append((cls, "zero_grad", _recorded_call("zero_grad", cls.zero_grad)))
    out.append((Module, "train", _recorded_call("train", Module.train)))  # (eval() too)
    out.append((Tensor, "requires_grad_", _recorded_call("requires_grad_",
                                                         _before(Tensor.requires_grad_))))
    out.append((Optimizer, "step", _recorded_call("step", Optimizer.step)))
    out.append((LRScheduler, "step", _recorded_call("step", LRScheduler.step)))
    out.append((Tensor, "grad", property(Tensor.grad.fget, _recording_grad_setter)))
    return out


def _recording_grad_setter(self, value):
    """`p.grad = None` (or an array) inside a step: replayed as a recorded assignment."""
    rec = _recorder()
    _GRAD_SETTER(self, value)
    if rec is not None and not rec.quiet:
        if value is not None:
            raise CompileError("compile: the step assigns a gradient (p.grad = ...); only "
                               "p.grad = None and zero_grad() can be replayed")
        rec.events.append(("setgrad", self))


_GRAD_SETTER = Tensor.grad.fset


def _trace(fn, args, kwargs, symbolic_floats=False, modules=()):
    rec = _Recorder(list(args) + [kwargs[k] for k in sorted(kwargs)])
    for m in modules:  # (so that Tensor(p.data) in the step can follow p)
        if hasattr(m, "buffers"):
            for t in itertools.chain(m.parameters(), m.buffers()):
                rec.known[id(t.data)] = t
        if hasattr(m, "modules"):
            rec.modes += [(sub, sub.training) for sub in m.modules()]
    if symbolic_floats:  # (a Value step: its float arguments become replay variables)
        k = itertools.count()
        args = [rec.values.argument(next(k), x) if type(x) is float else x for x in args]
        kwargs = {n: rec.values.argument(next(k), kwargs[n]) if type(kwargs[n]) is float
                  else kwargs[n] for n in sorted(kwargs)}
    patches = _patches() + _values.patches(rec.values)
    saved = [(o, n, o.__dict__[n] if isinstance(o, type) else getattr(o, n))
             for o, n, _ in patches]
    for o, n, f in patches:
        setattr(o, n, f)
    _active.append(rec)
    try:
        result = fn(*args, **kwargs)
    finally:
        _active.pop()
        for o, n, f in saved:
            setattr(o, n, f)
    for t, data in rec.rebound.values():
        if t.data is not data:
            raise CompileError(f"compile: the step rebinds .data of a tensor of shape "
                               f"{t.data.shape} made before it; a replay would keep using "
                               "the old array. Update it in place (copy_, sub_, an optimizer)")
    return rec, result


def _output_spec(rec, result):
    """How to rebuild the step's result from the plan's slots."""
    if isinstance(result, _values.Value):
        return ("vslot", rec.values.slot(result))
    if isinstance(result, _values._Sym):
        return ("sym", result.name)
    if isinstance(result, Tensor):
        s = rec.slot_of.get(id(result))
        if s is None:
            s = rec.slot(result)
        if result._prim is None and result.requires_grad and rec.made_here(result):
            return ("leaf", s)  # made in the step: returned with its gradient, as eagerly
        if rec.sources[s][0] == "ext":
            return ("tensor", result)  # a parameter or buffer: the very tensor, as eagerly
        if rec.sources[s][0] == "arg" and not rec.made_here(result):
            return ("arg", rec.sources[s][1])  # the call's own tensor, as eagerly
        return ("graphless", s) if result.requires_grad else ("slot", s)
    if isinstance(result, (list, tuple)):
        return (type(result),) + tuple(_output_spec(rec, r) for r in result)
    if result is None or isinstance(result, (str, bool)):
        return ("value", result)
    if isinstance(result, (int, float, np.generic, np.ndarray)):
        raise CompileError(f"compile: the step returned a {type(result).__name__}; a number "
                           "or array computed during the trace would be replayed unchanged. "
                           "Return Tensors (loss, not loss.item())")
    raise CompileError(f"compile: cannot replay a step that returns {type(result).__name__}")


class _Plan:
    """One trace made replayable: a flat list of steps over a list of arrays."""

    def __init__(self, rec, result, modules, floats=0):
        self.out = _output_spec(rec, result)  # (may give the result a slot: first)
        self.graph = result  # the traced graph (pictures: autodiff.draw_graph(step.graph))
        self.guards = [(m, _held(m)) for m in modules]
        self.module_ids = tuple(map(id, modules))  # (self.model replaced: a new trace)
        # train() / eval() changes what a module's forward does (dropout, batch norm): a
        # plan serves only the modes it was traced in
        self.modes = rec.modes  # (as the call began: a step may call train() or eval())
        self.wants_grad = []  # (a Tensor step's parameters and their requires_grad, below)
        self.values = rec.values.used
        if self.values:  # a Value step: straight-line Python over floats
            self.floats_free = rec.values.check(result)
            if any(ev[0] in ("op", "backward", "inplace", "setgrad") for ev in rec.events):
                raise CompileError("compile: the step mixes Tensor and Value work; compile "
                                   "steps of one kind")
            # (numbers read from array arguments are constants of the trace)
            self.baked = bool(rec.args)
            self.replay, self.source = _values.emit(rec.values, rec.events, self.out, floats)
            return
        for out, copies in rec.derivations:
            for x, c in zip(out if type(out) is tuple else (out,), copies):
                if c is not None and not np.array_equal(x, c, equal_nan=True):
                    raise CompileError(
                        "compile: the step changed the result of a replayable call in place "
                        f"(an array of shape {x.shape}); a replay would use the call's own "
                        "result. Make a new array (a = a * w, not a *= w)")
        self.n = len(rec.sources)
        self.sources = rec.sources
        self.inputs = [(s, src) for s, src in enumerate(rec.sources)
                       if src[0] in ("arg", "ext", "const")]
        self.steps = []
        for ev in rec.events:
            kind = ev[0]
            if kind == "op":
                self.steps.append(ev)
            elif kind == "backward":
                self.steps.append(self._backward_step(rec, *ev[1:]))
            else:
                self.steps.append(ev)
        # Arrays the step made with numpy during the trace (a one-hot matrix of labels, a
        # mask) that are not an argument: they may depend on the arguments' values, so
        # this plan replays only for arguments with the very same contents.
        self.baked = rec.numbers_read \
            or any(src[0] == "const" and np.size(src[1]) > 1 and src[2]
                   for src in rec.sources) \
            or any(_unexplained(v) for ev in rec.events if ev[0] == "op" for v in ev[3].values()) \
            or any(_unexplained(v) for ev in rec.events if ev[0] == "inplace"  # (an array)
                   for how, v in ev[3] + list(ev[4].values()) if how == "value") \
            or any(type(g) is not _SlotRef and np.size(g) > 1 and not (g == 1).all()
                   for ev in rec.events if ev[0] == "backward" for g in ev[2])  # (a seed)
        # Tensor arguments (made before the call) by slot and by identity: as leaves, their
        # gradients go to the call's tensors (TA[k] in the replay).
        self.arg_leaves = {s: src[1] for s, src in enumerate(rec.sources)
                           if src[0] == "arg" and not rec.made_here(rec.keep[s])}
        self.arg_tensors = {id(rec.keep[s]): k for s, k in self.arg_leaves.items()}
        self.tensors = rec.keep  # slot -> its tensor at the trace
        # (a parameter frozen or unfrozen since, p.requires_grad_(False), needs another plan;
        # its flag as the trace met it, before the step's own requires_grad_ calls)
        self.wants_grad = rec.flags
        self.own_copy = _changed_copies(rec)
        self.sharing = rec.sharing
        self.running = threading.Lock()  # (held by a replay: buffers are not shared)
        self.replay, self.source = _emit(self)
        self.may_retrace = "raise _Retrace()" in self.source

    def _backward_step(self, rec, roots, seeds, kwargs, owners, fresh, flags):
        """The engine's backward, precomputed: the nodes in its order with their vjps."""
        slot = rec.slot_of

        def wants(t) -> bool:  # (as the backward met it)
            return flags.get(id(t), t.requires_grad)

        nodes, seen, stack = [], set(), list(roots)
        while stack:
            t = stack.pop()
            if id(t) in seen or not wants(t):
                continue
            seen.add(id(t))
            if t._hooks:
                raise CompileError("compile: a tensor in the step has hooks; run it eagerly")
            if t._prim is not None and t._retain:
                raise CompileError("compile: retain_grad() inside a step is not supported")
            nodes.append(t)
            stack.extend(t._parents)
        nodes.sort(key=lambda t: t._seq)  # the heap's order: newest first
        plan = []
        for t in nodes:
            if t._prim is None:
                continue
            if id(t) not in slot:
                raise CompileError("compile: the step's graph uses a node made outside the "
                                   "step (a graph kept between calls); detach it")
            op, parents = t._prim, t._parents
            need = tuple(wants(p) for p in parents)
            # (an elementwise op's gradient has its output's shape and dtype: where an
            # input has them too, the replay need not check whether to reduce it)
            same = [op.elementwise and p.data.shape == t.data.shape
                    and p.data.dtype == t.data.dtype for p in parents]
            plan.append((slot[id(t)], op, need if op.masked and False in need else None,
                         [slot[id(p)] if wants(p) else None for p in parents], same))
        leaves = [slot[id(t)] for t in nodes if t._prim is None]
        # Leaves made in the step (`Tensor(xb, requires_grad=True)`) are new at every call:
        # their gradient is a variable of the replay, not the traced tensor's .grad.
        inside = {slot[id(t)] for t in nodes if t._prim is None and rec.made_here(t)}
        # Leaves whose .grad was None when the traced backward ran: if one is set at a
        # replay, something outside the library reset it during the trace.
        # (Not for an argument's tensor, whose .grad the replay adds to as eagerly.)
        unset = [t for t in nodes if t._prim is None and id(t) in fresh
                 and slot[id(t)] not in inside and rec.sources[slot[id(t)]][0] != "arg"]
        return ("backward", [slot[id(r)] for r in roots], seeds, plan, leaves, unset,
                {slot[id(t)]: t for t in nodes if t._prim is None},
                {gs: slot[id(t)] for t, gs in owners}, inside)


def _fixed_shapes(plan) -> set:
    """The slots whose shape and dtype every replay of the plan gives them: arguments
    (the signature), parameters (checked as a replay starts), constants, replayable
    results (their structure is checked) and results of ops on such slots whose options
    hold no reference to this call's arrays (an index or mask may select another number
    of elements: such results and all after them are not given kept buffers)."""
    fixed = {s for s, src in enumerate(plan.sources)
             if src[0] in ("arg", "ext", "const", "derived")}
    for step in plan.steps:
        if step[0] == "op":
            _, op, ins, opts, out = step
            # (the constant op, where(cond)'s indices, has a shape of the values; and a
            # buffer is C-ordered: an op with other inputs makes arrays of their layout)
            if op is not _CONSTANT and all(j in fixed for j in ins) and not any(
                    _has_ref(v) for v in opts.values()) and all(
                    plan.tensors[j].data.flags.c_contiguous for j in ins):
                fixed.add(out)
        elif step[0] == "alias" and step[2] in fixed:
            fixed.add(step[1])
    return fixed


def _changed_copies(rec) -> set:
    """The slots of tensors the step made from an argument (`Tensor(x)`, a copy) or a
    constant (`Tensor(np.zeros(3))`) that it changes in place, directly or through a
    view: the replay must copy the argument or constant too, at every call."""
    out = set()
    for ev in rec.events:
        if ev[0] != "inplace":
            continue
        s = ev[2]
        while True:  # (a view: its first input's array; a detach: its source's)
            src = rec.sources[s]
            if src[0] == "op" and rec.events[src[1]][1].view:
                s = rec.events[src[1]][2][0]
            elif src[0] == "alias" and not _copied_alias(rec.events, s):
                s = src[1]
            else:
                break
        if rec.sources[s][0] == "const" or (rec.sources[s][0] == "arg" and s not in
                                            rec.sharing and rec.made_here(rec.keep[s])):
            out.add(s)
    return out


def _copied_alias(events, s) -> bool:
    """Whether alias slot `s` holds a copy of its source (Tensor(y)), not its array."""
    return any(ev[0] == "alias" and ev[1] == s and ev[3] for ev in events)


def _emit(plan):
    """The plan as one straight-line Python function over arrays: a line per forward op,
    a line per vjp, gradient sums decided now (first contribution taken as it is, the
    second added into a new array, later ones added in place into that one)."""
    ns = {"_fit": _fit, "_wrap": _wrap, "_graphless": _graphless, "_leaf": _leaf,
          "_own": _own, "_zeros": np.zeros, "_count": np.count_nonzero,
          "_mask_count_changed": _mask_count_changed, "_stale": _stale,
          "_resolve": _resolve, "_structure": _structure, "_Retrace": _Retrace,
          "_Reshaped": _Reshaped, "_bump": bump_version}
    # A: the call's arrays; TA: the Tensor arguments they belong to (a leaf that is an
    # argument gets its gradient on the call's tensor, not on the traced one)
    lines = ["def replay(A, TA):", "    DV = {}  # the replayable calls' results"]
    kernels = Kernels(ns)
    fixed = _fixed_shapes(plan)  # (the slots that may have kept buffers)

    def const(v, name):
        ns[name] = v
        return name

    for s, src in plan.inputs:
        if src[0] == "arg":
            # (a copy where the step changes its Tensor(x) in place: x stays as it was)
            lines.append(f"    s{s} = A[{src[1]}]{'.copy()' if s in plan.own_copy else ''}")
            lines.append(f"    if s{s}.dtype != {const(src[2], f'D{s}')}: "
                         f"s{s} = s{s}.astype(D{s})")
            # (a buffer is C-ordered, and its order decides the order of later sums)
            if plan.tensors[s].data.flags.c_contiguous and plan.tensors[s].data.ndim > 1:
                lines.append(f"    if not s{s}.flags.c_contiguous: raise _Reshaped()")
        elif src[0] == "ext":
            lines.append(f"    s{s} = {const(src[1], f'E{s}')}.data")
            # (a parameter's .data rebound to another shape or dtype since: a new trace,
            # whose buffers and reductions fit it)
            shape = const(plan.tensors[s].data.shape, f"SH{s}")
            dtype = const(plan.tensors[s].data.dtype, f"D{s}")
            traced = plan.tensors[s].data  # (and its layout, as for an argument)
            c = f" or not s{s}.flags.c_contiguous" if traced.flags.c_contiguous \
                and traced.ndim > 1 else ""
            lines.append(f"    if s{s}.shape != {shape} or s{s}.dtype != {dtype}{c}: "
                         "raise _Reshaped()")
        else:
            lines.append(f"    s{s} = {const(src[1], f'C{s}')}"
                         f"{'.copy()' if s in plan.own_copy else ''}")
    # The replayable calls first: they depend only on the arguments, and a result of
    # another structure must send the call to a new trace before anything has changed.
    for i, step in enumerate(plan.steps):
        if step[0] != "derive":
            continue
        _, n, fn, specs, kwspecs, structure = step
        xs = [_derive_arg(sp, f"DA{i}_{j}", const) for j, sp in enumerate(specs)] + [
            f"{k}={_derive_arg(sp, f'DA{i}_k{k}', const)}" for k, sp in kwspecs.items()]
        lines.append(f"    DV[{n}] = {const(fn, f'DF{i}')}({', '.join(xs)})")
        lines.append(f"    if _structure(DV[{n}]) != {const(structure, f'DS{i}')}: "
                     "raise _Retrace()")
        for s, src in enumerate(plan.sources):
            if src[0] == "derived" and src[1] == n:
                lines.append(f"    s{s} = DV[{n}]" + ("" if src[2] is None else f"[{src[2]}]"))
    info = {}  # op output slot -> (arguments of its vjp after g and out, options)
    changed = [False]  # whether the replay has changed state (.grad, parameters) so far
    # in a way that running the step again (a new trace) would not repeat exactly
    inside = {}  # slot of a leaf made in the step -> its gradient has a variable GL{slot}
    for i, step in enumerate(plan.steps):
        kind = step[0]
        if kind == "op":
            _, op, ins, opts, out = step
            f = const(op.forward, f"F{out}")
            xs = ", ".join(f"s{j}" for j in ins)
            kw = ""
            if opts:
                k = const(opts, f"K{out}")
                if any(_has_ref(v) for v in opts.values()):
                    refs = [r for v in opts.values() for r in _refs(v)]
                    if op.name == "getitem":  # (x[mask]'s shape is the mask's count; a
                        _emit_mask_checks(lines, refs, changed)  # where()'s is not)
                    slots = _slot_names(refs)
                    if slots:
                        lines.append(f"    LS = {slots}")
                    lines.append(f"    k{out} = {{n: _resolve(v, A, DV{', LS' if slots else ''}) "
                                 f"for n, v in {k}.items()}}")
                    k = f"k{out}"
                kw = f"**{k}"
            call = f"{f}({xs}{', ' if xs and kw else ''}{kw})"
            lowered = None if out not in fixed else kernels.forward(
                op, [f"s{j}" for j in ins], [plan.tensors[j].data for j in ins], opts,
                plan.tensors[out].data)
            if lowered is not None:  # (into a buffer of its own, kept from call to call)
                lines.extend(lowered[0])
                lines.append(f"    s{out} = {lowered[1]}")
                saved = xs if op.reads_inputs else ""
            elif op.residuals:
                lines.append(f"    s{out}, r{out} = {call}")
                saved = (xs if op.reads_inputs else ", ".join(["None"] * len(ins)))
                saved = f"{saved}, *r{out}" if saved else f"*r{out}"
            else:
                lines.append(f"    s{out} = {call}")
                saved = xs if op.reads_inputs else ""
            info[out] = (saved, kw)
        elif kind == "derive":
            continue  # (emitted above)
        elif kind == "backward":
            _emit_backward(lines, ns, const, info, step, i, inside, plan, kernels, fixed)
            changed[0] = True
        elif kind == "inplace":
            _, name, target, spec, kw = step
            src = plan.sources[target]
            t = f"E{target}" if src[0] == "ext" else f"TA[{plan.arg_leaves[target]}]" \
                if target in plan.arg_leaves else f"_wrap(s{target})"
            # (no count check: t[mask] = v makes no shape; a value of another length
            # fails in numpy as eagerly)
            named = list(enumerate(spec)) + list(kw.items())
            refs = [r for _, (how, v) in named if how != "slot" for r in _refs(v)]
            slots = _slot_names(refs)
            if slots:
                lines.append(f"    LS = {slots}")
            vals = [("" if type(j) is int else f"{j}=") + (
                f"_wrap(s{v})" if how == "slot" else
                f"_resolve({const(v, f'I{i}_{j}')}, A, DV{', LS' if slots else ''})"
                if _has_ref(v) else const(v, f"I{i}_{j}")) for j, (how, v) in named]
            lines.append(f"    {t}.{name}({', '.join(vals)})")
            owner = _memory_owner(plan, target)
            if owner is not None and name != "requires_grad_":  # (as eagerly: its backward
                lines.append(f"    _bump({owner})")  # through older values then raises)
            # (a requires_grad_ toggle sets a flag: a new trace after it sets it again)
            changed[0] = changed[0] or name != "requires_grad_"
        elif kind == "alias":
            _, s, of, copy = step
            lines.append(f"    s{s} = s{of}{'.copy()' if copy else ''}")
        elif kind == "setgrad":
            s = next((k for k, t in inside.items() if t is step[1]), None)
            k = plan.arg_tensors.get(id(step[1]))
            lines.append(f"    GL{s} = None" if s is not None else f"    TA[{k}]._grad = None"
                         if k is not None else f"    {const(step[1], f'T{i}')}._grad = None")
        else:
            _, fn, obj, a, kw = step
            # (zero_grad, like p.grad = None, and train(mode) may run twice: a new trace
            # after them is safe)
            changed[0] = changed[0] or fn.__name__ not in ("zero_grad", "train")
            lines.append(f"    {const(fn, f'P{i}')}({const(obj, f'O{i}')}, *{const(a, f'PA{i}')}, "
                         f"**{const(kw, f'PK{i}')})")
    lines.append(f"    return {_emit_output(plan.out, inside, const)}")
    kernels.share(lines)
    kernels.positional_out(lines)
    source = "\n".join(lines)
    exec(builtins_compile(source, "<autodiff.compile replay>", "exec"), ns)  # our own trace
    return ns["replay"], source


def _memory_owner(plan, s) -> str | None:
    """The tensor from before the call (an argument, a parameter) whose version counter
    an in-place change of slot `s` counts in, as eagerly (views and detach share their
    source's counter; a copy has its own), when the replay writes through another tensor
    than that one. None when there is none, or the replay writes through it itself."""
    vc = plan.tensors[s]._vc
    if vc is None or plan.sources[s][0] == "ext" or s in plan.arg_leaves:
        return None
    for k, src in enumerate(plan.sources):
        if plan.tensors[k]._vc is vc and k != s:
            if src[0] == "ext":
                return f"E{k}"
            if k in plan.arg_leaves:
                return f"TA[{plan.arg_leaves[k]}]"
    return None


def _derive_arg(spec, name, const) -> str:
    """A replayable call's argument in the replay: an argument's array, an earlier
    replayable result, or a constant."""
    if spec[0] == "a":
        return f"A[{spec[1]}]"
    if spec[0] == "d":
        return f"DV[{spec[1]}]" + ("" if spec[2] is None else f"[{spec[2]}]")
    return const(spec[1], name)


def _emit_backward(lines, ns, const, info, step, i, inside, plan, kernels, fixed):
    _, roots, seeds, nodes, leaves, unset, leaf_tensor, grad_slots, made_inside = step
    for j, t in enumerate(unset):
        lines.append(f"    if {const(t, f'U{i}_{j}')}._grad is not None: _stale(U{i}_{j})")
    count, origin = {}, {}  # slot -> contributions so far; the g a first one may alias
    fits = {}  # slot -> whether its sum so far has its array's shape and dtype for sure
    is_leaf = set(leaves)

    def add(p, expr, g, fit=False):
        n = count.get(p, 0)
        count[p] = n + 1
        if n == 0:
            lines.append(f"    g{p} = {expr}")
            origin[p], fits[p] = g, fit
        elif n == 1:
            data = plan.tensors[p].data
            if fit and fits[p] and p not in is_leaf and p in fixed:  # (a leaf's: a new array)
                b = kernels.buffer(data.shape, data.dtype)
                lines.append(f"    g{p} = {kernels.ufunc(np.add)}(g{p}, {expr}, out={b})")
            else:
                lines.append(f"    g{p} = g{p} + {expr}")
            origin[p] = None
        else:
            lines.append(f"    g{p} += {expr}")

    for j, (r, seed) in enumerate(zip(roots, seeds)):
        if type(seed) is _SlotRef:  # (the array may be passed on as it is: stored, copied)
            cast = "" if seed.cast is None else f".astype({const(seed.cast, f'GD{i}_{j}')})"
            add(r, f"s{seed.s}{cast}", f"s{seed.s}")
        else:
            add(r, const(seed, f"G{i}_{j}"), None)
    for out, op, need, parents, same in nodes:
        if out not in count:
            continue
        saved, kw = info[out]
        if op.scatter_add is not None:  # x[index]: added into x's total where it belongs
            p = parents[0]
            if p is not None:
                n = count.get(p, 0)
                count[p], origin[p] = max(n, 2), None  # (from now on, a sum of its own)
                sa = const(op.scatter_add, f"SA{out}")
                if n == 0:
                    lines.append(f"    g{p} = _zeros(s{p}.shape, s{p}.dtype)")
                elif n == 1:
                    lines.append(f"    g{p} = g{p}.astype(s{p}.dtype, copy=True)")
                lines.append(f"    {sa}(g{p}, g{out}, {kw})")
            continue
        _, _, ins, opts, _ = plan.steps[plan.sources[out][1]]  # (the op's forward step)
        lowered = kernels.vjps(
            op, f"g{out}", f"s{out}", [f"s{j}" for j in ins], [plan.tensors[j].data for j in ins],
            opts, plan.tensors[out].data, [p is not None for p in parents],
            [p in is_leaf for p in parents]) if out in fixed else None
        if lowered is not None:  # (ufunc calls into kept buffers, no vjp call)
            for low in lowered:
                if low is not None:
                    lines.extend(low[0])
            for k, (p, low) in enumerate(zip(parents, lowered)):
                if p is None:
                    continue
                data, value = plan.tensors[p].data, low[2]
                if value.shape == data.shape and value.dtype == data.dtype:
                    add(p, low[1], low[1] if low[1].startswith("g") else None, fit=True)
                else:
                    lines.append(f"    t = _fit({low[1]}, s{p})")
                    add(p, "t", None, fit=True)
            continue
        v = const(op.vjp, f"V{out}")
        extra = ", ".join(x for x in (saved, f"need={const(need, f'N{out}')}" if need else "",
                                      kw) if x)
        lines.append(f"    q = {v}(g{out}, s{out}{', ' if extra else ''}{extra})")
        for k, p in enumerate(parents):
            if p is None:
                continue
            if same[k]:
                add(p, f"q[{k}]", f"g{out}")
                continue
            lines.append(f"    t = q[{k}]")
            lines.append(f"    if t.shape != s{p}.shape or t.dtype != s{p}.dtype: t = _fit(t, s{p})")
            add(p, "t", f"g{out}", fit=True)
    def leaf_of(s):  # (a leaf of this backward, or of an earlier one: its .grad is read)
        if s in plan.arg_leaves:
            return f"TA[{plan.arg_leaves[s]}]"
        return const(leaf_tensor[s] if s in leaf_tensor else plan.tensors[s], f"L{s}")

    for s in leaves:
        if s not in count:
            continue
        leaf = leaf_of(s)
        g = origin.get(s)
        value = f"g{s}" if g is None else f"(g{s}.copy() if g{s} is {g} else g{s})"
        if s not in made_inside:
            lines.append(f"    {leaf}._store_grad({value})")
        elif s in inside:  # a second backward in the step (the gradient may be reset)
            lines.append(f"    if GL{s} is None: GL{s} = _own({value})")
            lines.append(f"    else: GL{s} += g{s}  # (in place, as .grad is eagerly)")
        else:
            inside[s] = leaf_tensor[s]
            lines.append(f"    GL{s} = _own({value})")
    for gs, owner in grad_slots.items():
        lines.append(f"    s{gs} = GL{owner}" if owner in inside
                     else f"    s{gs} = {leaf_of(owner)}._grad.data")


def _emit_output(spec, inside, const=None) -> str:
    head = spec[0]
    if head == "tensor":
        return const(spec[1], f"R{id(spec[1])}")
    if head == "arg":
        return f"TA[{spec[1]}]"
    if head == "slot":
        return f"_wrap(s{spec[1]}.copy())"
    if head == "graphless":
        return f"_graphless(s{spec[1]}.copy())"
    if head == "leaf":
        return f"_leaf(s{spec[1]}, {f'GL{spec[1]}' if spec[1] in inside else 'None'})"
    if head == "value":
        return repr(spec[1]) if spec[1] is None or isinstance(spec[1], (bool, str)) else "None"
    items = ", ".join(_emit_output(x, inside, const) for x in spec[1:])
    return f"({items}{',' if len(spec) == 2 else ''})" if head is tuple else f"[{items}]"


def _no_graph_vjp(g, out):
    raise CompileError(
        "compile: backward from a tensor a replay of a compiled step returned: a replay keeps "
        "no graph (only the first call, the trace, did). Call backward inside the step, or "
        "do not compile a function whose result is differentiated outside it")


# The op of a replay's result that required grad eagerly: requires_grad as eagerly, and a
# backward from it explains why there is no graph behind it.
_GRAPHLESS = Op("replayed", "the result of a compiled step's replay (no graph)",
                lambda x: x, _no_graph_vjp, reads="nothing")


def _graphless(data):
    return _tensor._node(_tensor._new(Tensor), data, (), _GRAPHLESS, (), None, True)


def _own(g):
    """A first gradient as `.grad` keeps it: a view or a read-only array is copied (a
    second backward adds into it in place)."""
    if type(g) is np.ndarray and g.base is None and g.flags.writeable:
        return g
    return np.array(g)


def _leaf(data, grad):
    """A leaf the step made and returned: a new one at every call, with its gradient."""
    t = Tensor(data.copy(), requires_grad=True)
    if grad is not None:
        t._store_grad(grad)
    return t


def _has_ref(v) -> bool:
    return bool(_refs(v))


def _refs(v):
    """The references inside an option."""
    if type(v) is tuple:
        return [r for x in v for r in _refs(x)]
    return [v] if type(v) in (_ArgRef, _DerivedRef, _SlotRef) else []


def _stale(t):
    raise CompileError(
        f"compile: a parameter of shape {t.data.shape} had its .grad reset during the traced "
        "step by something the trace does not record (not zero_grad() or p.grad = None), "
        "and a replay would add to the gradient it has now. Reset gradients with "
        "optimizer.zero_grad(), module.zero_grad() or p.grad = None")


def _slot_names(refs) -> str:
    """The replay's variables that `refs` read, as the source of a dict (named, not
    taken from locals(): the buffer sharing must see every line that reads a buffer)."""
    names = sorted({f"s{r.s}" for r in refs if type(r) is _SlotRef})
    return "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}" if names else ""


def _resolve(v, arrays, derived, slots=None):
    """An option with its references replaced by this call's arrays (`slots`: the
    replay's variables)."""
    if type(v) is _ArgRef:
        return arrays[v.k]
    if type(v) is _DerivedRef:
        return derived[v.n] if v.i is None else derived[v.n][v.i]
    if type(v) is _SlotRef:
        return slots[f"s{v.s}"]
    if type(v) is tuple:
        return tuple(_resolve(x, arrays, derived, slots) for x in v)
    return v


def _emit_mask_checks(lines, refs, changed) -> None:
    """A boolean mask's count must be the trace's: a new trace when nothing has changed
    yet (an argument's mask, checked first; a computed one before any state change),
    else a CompileError."""
    for r in refs:
        if getattr(r, "count", None) is None:
            continue
        array = f"A[{r.k}]" if type(r) is _ArgRef else f"s{r.s}"
        now = f"_count({array})"
        action = (f"_mask_count_changed({r.count}, {now})" if changed[0] and type(r) is _SlotRef
                  else "raise _Retrace()")
        line = f"    if {now} != {r.count}: {action}"
        if type(r) is _ArgRef:
            lines.insert(2, line)  # (an argument's: before anything is done)
        else:
            lines.append(line)


def _mask_count_changed(traced, now):
    raise CompileError(
        f"compile: a boolean mask computed in the step selects {now} elements where the "
        f"trace's selected {traced}, after the replay had changed gradients or parameters; "
        "shapes after it would differ. Compute the mask from the arguments (it then keys "
        "a new trace) or run the step eagerly")


class _Shape:
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


def _fit(g, data):
    return fit_array(g, _Shape(data))


class Compiled:
    """What `compile(fn)` returns: call it as `fn`; `.graph` is the last traced result
    (its graph can be drawn), `.traces` how many signatures were traced."""

    max_baked = 256  # traces kept per signature when a trace bakes argument values in

    def __init__(self, fn):
        self.fn = fn
        self.plans = {}  # signature -> _Family
        self.graph = None
        self.value_steps = set()  # signatures (floats aside) traced as Value steps
        functools.update_wrapper(self, fn)

    @property
    def traces(self) -> int:
        return sum(len(f) for f in self.plans.values())

    def __call__(self, *args, **kwargs):
        if _recorder() is not None:  # inside another step's trace: recorded there, as written
            return self.fn(*args, **kwargs)
        sig, arrays, opaque, owners = _describe(list(args) + [kwargs])
        alias = _aliases(arrays)
        if alias is not None:
            _check_one_owner(alias, owners)
        key = (sig, alias)
        loose = (_loose_signature(args, kwargs), alias) if self.value_steps else None
        family = (loose is not None and self.plans.get(loose)) or self.plans.get(key)
        modules = tuple(map(id, _modules_of(self.fn, args))) if family else ()
        for plan in family.candidates(arrays) if family else ():
            if plan.module_ids != modules:
                continue  # (another model where the step finds its modules: a new trace)
            for module, ids in plan.guards:
                if _held(module) != ids:
                    raise CompileError(
                        f"compile: the parameters or buffers of {type(module).__name__} "
                        "changed since the step was traced (one was replaced); the trace "
                        "would use the old ones. Compile the step again (autodiff.compile(fn))")
            if any(sub.training is not mode for sub, mode in plan.modes) or any(
                    t.requires_grad is not flag for t, flag in plan.wants_grad):
                continue  # (another plan, or a new trace, for the present modes and flags)
            if plan.values:
                with no_grad():
                    return plan.replay(_floats(args, kwargs))
            # A replay that may turn back (a new trace) before it changes anything must
            # leave the random stream as it found it (dropout draws its masks first).
            drawn = generator().bit_generator.state if plan.may_retrace else None
            if not plan.running.acquire(blocking=False):
                raise CompileError(
                    "compile: the step was called again while a replay of it runs (from "
                    "another thread, or from inside the step); a replay's buffers are its "
                    "own. Compile the function once per thread")
            try:
                with no_grad():  # (the recorded in-place updates ran under no_grad)
                    return plan.replay(arrays, owners)
            except _Retrace:  # (nothing has changed yet: the next plan, or a new trace)
                if drawn is not None:
                    generator().bit_generator.state = drawn
                continue
            finally:
                plan.running.release()
        return self._trace(key, loose, args, kwargs, arrays, opaque)

    def _trace(self, key, loose, args, kwargs, arrays, opaque):
        """Run the step eagerly while recording, and keep its plan under `key`."""
        symbolic = loose is not None and loose[0] in self.value_steps
        modules = _modules_of(self.fn, args)
        rec, result = _trace(self.fn, args, kwargs, symbolic, modules)
        plan = _Plan(rec, result, modules, len(_floats(args, kwargs)) if symbolic else 0)
        if plan.baked and opaque:
            # (the plan is keyed to its arguments' arrays; such an object's state is unseen)
            raise CompileError(
                f"compile: the step takes a {opaque[0]} argument, which a trace can key only "
                "by identity, and its trace holds arrays made during the step (numpy work, "
                "random draws) that may come from that object's state; a replay would reuse "
                "them. Pass arrays, numbers, lists, dicts or plain objects with attributes")
        if plan.values:
            self.value_steps.add(_loose_signature(args, kwargs))
            if symbolic and plan.floats_free:
                key = loose
        self.plans.setdefault(key, _Family()).add(plan, arrays, self.max_baked)
        self.graph = result
        return _values.plain(result)


class _Family:
    """The plans of one signature: those keyed to the arguments' contents (they hold
    arrays baked from them), and those for any contents (more than one when replayable
    calls met results of different structures: labels with and without ignored ones)."""

    def __init__(self):
        self.baked = {}
        self.general = []

    def __len__(self) -> int:
        return len(self.baked) + len(self.general)

    def candidates(self, arrays) -> list:
        if self.baked:
            plan = self.baked.get(_contents(arrays))
            if plan is not None:
                return [plan]
        return self.general

    def add(self, plan, arrays, max_baked: int) -> None:
        if not plan.baked:
            self.general.insert(0, plan)  # (the newest first: the structure just met)
            return
        if len(self.baked) >= max_baked:
            self.baked.clear()
        self.baked[_contents(arrays)] = plan


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


def compile(fn) -> Compiled:
    """Trace `fn` (a training step on Tensors or Values) once per input signature and
    replay it.

    >>> import numpy as np, autodiff
    >>> w = autodiff.Tensor(np.ones(3), requires_grad=True)
    >>> def step(x):
    ...     w.grad = None
    ...     loss = (w * x).sum(); loss.backward()
    ...     with autodiff.no_grad():
    ...         w.sub_(w.grad, alpha=0.5)
    ...     return loss
    >>> f = autodiff.compile(step)
    >>> [float(f(np.arange(3.0)).data) for _ in range(2)], w.data.tolist()
    ([3.0, 0.5], [1.0, 0.0, -1.0])
    """
    if not callable(fn):
        raise TypeError(f"compile: expected a callable, got {type(fn).__name__}")
    return Compiled(fn)
