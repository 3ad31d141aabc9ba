"""The trace of a compiled step: while the step runs eagerly once, the library's op
functions, in-place methods, backward and recorded calls are swapped for recording
ones, and `_Recorder` gives every array a slot and notes, in order, every event a
replay must repeat (ops, backwards, in-place updates, aliases, optimizer calls).
(Trace from one thread at a time.)"""

from __future__ import annotations

import functools
import itertools
import sys
import threading

import numpy as np

from . import compile_value as _values
from . import tensor as _tensor
from .errors import CompileError
from .ops import Op
from .tensor import Tensor, _wrap
from .compile_guards import _arrays_of


# Every Tensor method that changes values in place (a replay must do each again; the
# random fills draw afresh from the seeded generator, as eagerly).
_IN_PLACE = ("add_", "sub_", "mul_", "div_", "copy_", "fill_", "zero_", "clamp_",
             "normal_", "uniform_", "__setitem__")


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
