"""The Value path of `autodiff.compile`: a micrograd-style scalar step replayed as
straight-line Python over floats.

While a trace runs, every Value goes through a recording `_node` (its op, inputs and
options), and the step's own reads and writes of `.data` and `.grad` (not the library's)
go through properties that hand out `_Sym`s: numbers that carry their value and the name
of the replay variable that will hold it, so `p.data -= lr * p.grad` is recorded line by
line (`x1 = E3.data`, `x2 = E3.grad`, `x3 = a0 * x2`, `x4 = x1 - x3`, `E3.data = x4`).
The replay runs each op's scalar forward, each vjp in the engine's order with the sums
of gradients decided at trace time, the `.grad` stores of the parameters, and the
recorded reads and writes, on plain floats: no node objects.

Float arguments of the step (a learning rate) become variables of the replay once a
signature has been seen to be a Value step; a float argument the replay cannot follow
(`math.exp(lr)`, `if wd:`, a dict key) keys the trace to its value instead. The model's
numbers (a parameter's data or gradient, a node's data) are refused where the replay
cannot follow them: turned into a plain number (`float(p.grad)`, `math.tanh(p.data)`),
compared (`if p.grad > 1`), or kept beyond the call. Python side effects of the step
(printing, appending to a list) happen at traces only, and floats it reads from
elsewhere than its arguments (`self.lr`, a global) are frozen, as in `jax.jit`.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import numbers
import os
import sys
import threading
import weakref

from . import value as _value
from .errors import CompileError
from .value import Value

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_DATA, _GRAD = Value.__dict__["data"], Value.__dict__["grad"]  # the slots' own descriptors


class _Sym:
    """A number the trace follows: its value `v` now and the replay variable `name` that
    holds it; `state` says whether it depends on the model (parameters, the graph) rather
    than only on the step's float arguments."""

    __slots__ = ("v", "name", "state", "trace", "__weakref__")

    def __init__(self, v, name, state, trace):
        self.v, self.name, self.state, self.trace = v, name, state, trace
        if state:
            trace.alive.append(weakref.ref(self))  # (a WeakSet would hash it)

    def _operand(self, x):
        if type(x) is _Sym:
            self.trace.own(x)
            return x.v, x.name, x.state
        if isinstance(x, numbers.Real):
            return x, self.trace.const(x), False
        return None

    def _binary(self, other, symbol, reverse=False):
        self.trace.own(self)
        got = self._operand(other)
        if got is None:
            return NotImplemented
        v, name, state = got
        a, b = (v, self.v) if reverse else (self.v, v)
        na, nb = (name, self.name) if reverse else (self.name, name)
        value = _BINARY[symbol](a, b)
        return self.trace.sym(value, f"{na} {symbol} {nb}", (self, other), self.state or state)

    def _decided(self, other, what):
        """The value of a comparison: the replay cannot follow the branch it decides."""
        self.trace.leak(self, what)
        if type(other) is _Sym:
            other.trace.leak(other, what)
            return other.v
        return other

    def __add__(self, o): return self._binary(o, "+")
    def __radd__(self, o): return self._binary(o, "+", True)
    def __sub__(self, o): return self._binary(o, "-")
    def __rsub__(self, o): return self._binary(o, "-", True)
    def __mul__(self, o): return self._binary(o, "*")
    def __rmul__(self, o): return self._binary(o, "*", True)
    def __truediv__(self, o): return self._binary(o, "/")
    def __rtruediv__(self, o): return self._binary(o, "/", True)
    def __floordiv__(self, o): return self._binary(o, "//")
    def __rfloordiv__(self, o): return self._binary(o, "//", True)
    def __mod__(self, o): return self._binary(o, "%")
    def __rmod__(self, o): return self._binary(o, "%", True)
    def __pow__(self, o): return self._binary(o, "**")
    def __rpow__(self, o): return self._binary(o, "**", True)

    def __neg__(self): return self.trace.sym(-self.v, f"-{self.name}", (self,), self.state)
    def __pos__(self): return self
    def __abs__(self): return self.trace.sym(abs(self.v), f"abs({self.name})", (self,), self.state)

    # a comparison decides a branch the replay would not take again: like a conversion to
    # a plain number, it keys the trace to the float arguments' values, and is refused
    # for the model's numbers (a gradient clipped by `if p.grad > 1` would stay clipped)
    def __lt__(self, o): return self.v < self._decided(o, "a comparison")
    def __le__(self, o): return self.v <= self._decided(o, "a comparison")
    def __gt__(self, o): return self.v > self._decided(o, "a comparison")
    def __ge__(self, o): return self.v >= self._decided(o, "a comparison")
    def __eq__(self, o): return self.v == self._decided(o, "a comparison")
    def __ne__(self, o): return self.v != self._decided(o, "a comparison")
    def __bool__(self): return bool(self.trace.leak(self, "a truth test"))
    def __hash__(self): return hash(self.trace.leak(self, "a dict or set key"))
    def is_integer(self): return self.trace.leak(self, "is_integer()").is_integer()

    # a plain number made from it: the replay cannot follow it
    def __float__(self): return float(self.trace.leak(self, "float()"))
    def __int__(self): return int(self.trace.leak(self, "int()"))
    def __complex__(self): return complex(self.trace.leak(self, "complex()"))
    def __round__(self, n=None): return round(self.trace.leak(self, "round()"), n)
    def __trunc__(self): return int(self.trace.leak(self, "math.trunc()"))
    def __floor__(self): return self.trace.leak(self, "math.floor()").__floor__()
    def __ceil__(self): return self.trace.leak(self, "math.ceil()").__ceil__()

    def __format__(self, spec): return format(self.v, spec)  # (printing is harmless)
    def __repr__(self): return repr(self.v)
    def __str__(self): return str(self.v)


_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
           "**": lambda a, b: a ** b}


numbers.Real.register(_Sym)  # (so a library check of a number lets it through, to leak)


def _plain(x):
    return x.v if type(x) is _Sym else x


def _syms_in(result) -> list:
    if type(result) is _Sym:
        return [result]
    if isinstance(result, (list, tuple)):
        return [x for r in result for x in _syms_in(r)]
    return []


def plain(result):
    """A traced step's result as its caller gets it: followed numbers as plain floats."""
    if type(result) is _Sym:
        return result.v
    if isinstance(result, (list, tuple)):
        return type(result)(plain(x) for x in result)
    return result


class ValueTrace:
    """The Value half of a trace: slots for the Values a step touches, and its events
    (appended to the recorder's event list, so calls and Value work keep their order)."""

    def __init__(self, rec):
        self.rec = rec
        self.slot_of = {}     # id(Value) -> slot
        self.keep = []        # the Values behind slot_of
        self.sources = []     # per slot: ("ext", value) | ("const", x) | ("sym", name) | ("op",)
        self.ops = {}         # op slot -> (op, input slots, options, reads inputs)
        self.names = itertools.count()
        self.consts = {}      # name -> a constant number of the replay
        self.leaks = []       # (depends on the model?, what) for numbers made plain
        self.used = False
        self.making = False   # inside the library's node constructor
        self.closed = False   # the trace has ended: its numbers are not to be used again
        self.alive = []       # weak references to the model's numbers handed to the step

    # -- numbers ----------------------------------------------------------------------
    def const(self, x) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = x
        return name

    def sym(self, value, expr, operands, state) -> _Sym:
        name = f"x{next(self.names)}"
        deps = tuple(o.name for o in operands if type(o) is _Sym)
        self.rec.events.append(("vline", name, f"{name} = {expr}", deps))
        return _Sym(value, name, state, self)

    def leak(self, s: _Sym, what: str):
        self.own(s)
        self.leaks.append((s.state, what))
        return s.v

    def own(self, s: _Sym) -> None:
        """Refuse a number read in another trace (kept on `self` from an earlier call)."""
        if s.trace is not self or self.closed:
            raise CompileError("compile: the step computes with a number it read from a Value "
                               "(.data or .grad) in an earlier call and kept; read it again "
                               "in each call, or keep float(...) of it outside the step")

    def argument(self, k: int, x: float) -> _Sym:
        return _Sym(x, f"a{k}", False, self)

    # -- values -----------------------------------------------------------------------
    def _new_slot(self, v, source) -> int:
        self.slot_of[id(v)] = s = len(self.sources)
        self.keep.append(v)
        self.sources.append(source)
        return s

    def slot(self, v) -> int:
        s = self.slot_of.get(id(v))
        if s is not None:
            return s
        if v._seq <= self.rec.start:
            raise CompileError("compile: the step used a Value the trace did not see made "
                               "(copied or unpickled inside the step)")
        s = self._new_slot(v, ("ext", v))  # made before the step: a parameter
        self.rec.events.append(("vread", s))
        return s

    def node(self, out, data, a, b, op, saved, kw) -> None:
        """A Value was made: a leaf (a number, a float argument) or an op's result."""
        self.used = True
        for x in (data, *(kw or {}).values()):
            if type(x) is _Sym:
                self.own(x)
        if op is None:
            source = ("sym", data.name) if type(data) is _Sym else ("const", data)
            s = self._new_slot(out, source)
            self.rec.events.append(("vleaf", s))
            return
        inputs = (a, b) if b is not None else (a if type(a) is tuple else (a,))
        ins = tuple(self.slot(v) for v in inputs)
        if saved and len(saved) != len(ins):
            raise CompileError(f"compile: a '{op.name}' Value saved other numbers than its "
                               "inputs; compile cannot replay it")
        options = {k: (("sym", x.name) if type(x) is _Sym else ("const", x))
                   for k, x in (kw or {}).items()}
        s = self._new_slot(out, ("op",))
        self.ops[s] = (op, ins, options, bool(saved))
        self.rec.events.append(("vop", s))

    def read(self, v, field: str, x):
        """The step's code reads `v.data` or `v.grad`: a _Sym naming the replay's copy."""
        s = self.slot(v)
        if self.sources[s][0] != "ext":
            if field == "grad":
                raise CompileError("compile: the step reads .grad of a Value made inside "
                                   "it; a replay makes no such Value. Read the gradients "
                                   "of parameters (made before the step)")
            return _Sym(x, f"s{s}", True, self)
        name = f"x{next(self.names)}"
        self.rec.events.append(("vline", name, f"{name} = E{s}.{field}", ()))
        return _Sym(x, name, True, self)

    def write(self, v, field: str, x) -> None:
        """The step's code assigns `v.data` or `v.grad`."""
        s = self.slot(v)
        if self.sources[s][0] != "ext":
            raise CompileError(f"compile: the step assigns .{field} of a Value made inside "
                               "it; a replay makes no such Value")
        if type(x) is _Sym:
            self.own(x)
            expr, deps = x.name, (x.name,)
        elif isinstance(x, numbers.Number):
            expr, deps = self.const(x), ()
        else:
            raise CompileError(f"compile: the step assigns a {type(x).__name__} to .{field} "
                               "of a Value; compile replays numbers only")
        self.rec.events.append(("vwrite", s, field, expr, deps))

    def backward(self, roots, seeds) -> None:
        """A backward from Value roots: the engine's order, precomputed."""
        seen, stack, nodes = set(), list(roots), []
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if v._hooks:
                raise CompileError("compile: a Value in the step has hooks; run it eagerly")
            nodes.append(v)
            stack.extend(v._parents)
        nodes.sort(key=lambda v: v._seq)  # the engine's heap: newest first
        plan, leaves = [], []
        for v in nodes:
            s = self.slot(v)
            if v._prim is None:
                leaves.append(s)
            elif s not in self.ops:
                raise CompileError("compile: the step's graph uses a Value computed before "
                                   "the step (a graph kept between calls); rebuild it inside")
            else:
                plan.append(s)
        roots = [self.slot(r) for r in roots]
        self.rec.events.append(("vbackward", roots, [float(g) for g in seeds], plan, leaves))

    def check(self, result) -> bool:
        """After the trace: raise if the model's numbers left the replay's sight; return
        whether the float arguments stayed variables."""
        self.closed = True
        returned = set(map(id, _syms_in(result)))
        if any(r() is not None and id(r()) not in returned for r in self.alive):
            raise CompileError(
                "compile: the step keeps a number read from a Value's .data or .grad after "
                "it returns (on self, in a global or a list); a replay would not update it. "
                "Return it from the step instead")
        state = [what for dep, what in self.leaks if dep]
        if state:
            raise CompileError(
                f"compile: the step decides or computes something from a Value's data or "
                f"gradient that the replay cannot follow ({state[0]}: e.g. `if p.grad > 1`, "
                "math.tanh(p.data), float(p.grad)); a replay would repeat the trace's "
                "decision or number. Compute with Value operations, or with + - * / ** "
                "on .data and .grad; compute accuracies and such outside the step")
        return not self.leaks


def patches(trace: ValueTrace) -> list:
    """(owner, attribute, replacement) that make Value work visible to `trace`."""
    node, number = _value._node, _value._number

    def recording_node(data, a, b, op, saved, kw=None, v=None):
        if threading.get_ident() != trace.rec.thread:
            return node(data, a, b, op, saved, kw, v)
        real = data.v if type(data) is _Sym else data
        if saved and any(type(x) is _Sym for x in saved):
            saved = tuple(_plain(x) for x in saved)
        plain_kw = {k: _plain(x) for k, x in kw.items()} if kw else kw
        trace.making = True  # (its fields are being set: not the step's writes)
        try:
            out = node(real, a, b, op, saved, plain_kw, v)
        finally:
            trace.making = False
        if not trace.rec.quiet:
            trace.node(out, data, a, b, op, saved, kw)
        return out

    def recording_number(x, where):
        return x if type(x) is _Sym else number(x, where)

    def field(descriptor, name):
        # (the library's own reads and writes, most of them, pass straight through)
        def get(v):
            x = descriptor.__get__(v, Value)
            if trace.rec.quiet or sys._getframe(1).f_code.co_filename.startswith(_PACKAGE) \
                    or threading.get_ident() != trace.rec.thread:
                return x
            return trace.read(v, name, x)

        def put(v, x):
            if not (trace.making or trace.rec.quiet or
                    sys._getframe(1).f_code.co_filename.startswith(_PACKAGE) or
                    threading.get_ident() != trace.rec.thread):
                trace.write(v, name, x)
            descriptor.__set__(v, _plain(x))

        return property(get, put)

    def store_grad(v, g):  # the engine's accumulation into .grad, past the properties
        _GRAD.__set__(v, _GRAD.__get__(v, Value) + g)

    return [(_value, "_node", recording_node), (_value, "_number", recording_number),
            # (constant operands share option dicts keyed by value; a _Sym must get its own)
            (_value, "_options", lambda c: {"c": c}), (_value, "_OPTIONS", {}),
            (Value, "data", field(_DATA, "data")), (Value, "grad", field(_GRAD, "grad")),
            (Value, "_store_grad", store_grad)]


def emit(trace: ValueTrace, events, out_spec, floats: int):
    """The trace as one Python function over floats: replay(A) with A the step's float
    arguments (those that stayed variables)."""
    ns = {"_V": _leaf_value, "math": math}
    ns.update(trace.consts)
    live = _live_lines(trace, events, out_spec)
    lines = ["def replay(A):"]
    lines += [f"    a{k} = A[{k}]" for k in range(floats)]
    # the Values the step returns: its parameters themselves, and new Values with the
    # data and the gradients (summed over the step's backwards) of the others
    returned = [s for s in _output_slots(out_spec) if trace.sources[s][0] != "ext"]
    lines += [f"    R{s} = 0.0" for s in returned]

    def arg(ref):
        kind, x = ref
        if kind == "sym":
            return x
        ns[f"k{len(ns)}"] = x
        return f"k{len(ns) - 1}"

    for ev in events:
        kind = ev[0]
        if kind == "vline":
            if ev[1] in live:
                lines.append(f"    {ev[2]}")
        elif kind == "vread":
            s = ev[1]
            ns[f"E{s}"] = trace.sources[s][1]
            lines.append(f"    s{s} = E{s}.data")
        elif kind == "vleaf":
            s = ev[1]
            kind_, x = trace.sources[s]
            lines.append(f"    s{s} = {x if kind_ == 'sym' else arg(('const', x))}")
        elif kind == "vop":
            s = ev[1]
            op, ins, options, _ = trace.ops[s]
            forward = _code(op, len(ins))[0]
            opts = {k: arg(r) for k, r in options.items()}
            if forward is not None:
                lines.append(f"    s{s} = {forward.format(**_names(ins), **opts)}")
                continue
            ns[f"F{s}"] = op.scalar
            by_name = _keywords(op.scalar)
            xs = [f"s{i}" for i in ins] + [f"{k}={v}" if k in by_name else v
                                           for k, v in opts.items()]
            lines.append(f"    s{s} = F{s}({', '.join(xs)})")
        elif kind == "vwrite":
            _, s, name, expr, _ = ev
            if name == "data":
                lines.append(f"    s{s} = E{s}.data = {expr}")
            else:
                lines.append(f"    E{s}.grad = {expr}")
        elif kind == "vbackward":
            _emit_backward(lines, ns, trace, ev, arg, returned)
        elif kind == "call":
            _, fn, obj, a, kw = ev
            i = len(ns)
            ns.update({f"P{i}": fn, f"O{i}": obj, f"PA{i}": a, f"PK{i}": kw})
            lines.append(f"    P{i}(O{i}, *PA{i}, **PK{i})")
            # (a recorded call, an optimizer's step, may have changed parameters' data)
            lines += [f"    s{s} = E{s}.data" for s, src in enumerate(trace.sources)
                      if src[0] == "ext" and f"E{s}" in ns]
        else:
            raise CompileError(f"compile: a Value step cannot replay a '{kind}' event "
                               "(Tensor work in a Value step)")
    lines.append(f"    return {_output(out_spec, trace)}")
    source = "\n".join(lines)
    exec(compile(source, "<autodiff.compile replay of a Value step>", "exec"), ns)
    return ns["replay"], source


def _emit_backward(lines, ns, trace, ev, arg, returned):
    """The engine's loop for one backward, written out. A node's gradient lives in the
    variable grad[slot]: its own g{slot}, or, while nothing was added to it, the name of
    the share it got (add and sub pass their gradient through: no copy is written)."""
    _, roots, seeds, plan, leaves = ev
    grad = {}

    def add(p, share):
        have = grad.get(p)
        if have is None:
            if share.isidentifier():
                grad[p] = share
                return
            lines.append(f"    g{p} = {share}")
        elif have == f"g{p}":
            lines.append(f"    g{p} += {share}")
        else:
            lines.append(f"    g{p} = {have} + {share}")
        grad[p] = f"g{p}"

    for r, seed in zip(roots, seeds):
        add(r, arg(("const", seed)))
    for s in plan:
        g = grad.get(s)
        if g is None:
            continue
        op, ins, options, reads = trace.ops[s]
        opts = {k: arg(r) for k, r in options.items()}
        vjps = _code(op, len(ins))[1]
        if vjps is not None:  # each input's share written out, added as it comes
            names = dict(_names(ins), g=g, out=f"s{s}", **opts)
            for k, p in enumerate(ins):
                add(p, vjps[k].format_map(names))
            continue
        ns[f"V{s}"] = op.vjp
        xs = [g, f"s{s}"] + ([f"s{i}" for i in ins] if reads else []) + \
            [f"{k}={v}" for k, v in opts.items()]
        targets, later = [], []
        for k, p in enumerate(ins):
            if p in grad:
                targets.append(f"t{k}")
                later.append((p, f"t{k}"))
            else:
                targets.append(f"g{p}")
                grad[p] = f"g{p}"
        lines.append(f"    {', '.join(targets)}, = V{s}({', '.join(xs)})")
        for p, t in later:
            add(p, t)
    for s in leaves:
        if s in grad and trace.sources[s][0] == "ext":
            lines.append(f"    E{s}.grad += {grad[s]}")
    lines += [f"    R{s} += {grad[s]}" for s in returned if s in grad]


def _code(op, inputs: int) -> tuple:
    """(forward, vjps) as expression templates (None where the op's functions are
    called instead)."""
    code = op.code
    if callable(code):
        code = code(inputs)
    return code or (None, None)


def _names(ins) -> dict:
    return {f"x{k}": f"s{i}" for k, i in enumerate(ins)}


@functools.cache
def _keywords(fn) -> frozenset:
    """The parameters of `fn` that can be passed by name (operator.add's cannot: an
    option such as add_const's c then goes by position)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(n for n, p in inspect.signature(fn).parameters.items() if p.kind in kinds)


def _live_lines(trace, events, out_spec) -> set:
    """The names of the recorded number lines something replayed depends on (the rest,
    arithmetic the library did on the step's numbers, is dropped)."""
    need = set()
    for ev in events:
        if ev[0] == "vwrite":
            need.update(ev[4])
        elif ev[0] == "vop":
            need.update(x for kind, x in trace.ops[ev[1]][2].values() if kind == "sym")
        elif ev[0] == "vleaf" and trace.sources[ev[1]][0] == "sym":
            need.add(trace.sources[ev[1]][1])
    need.update(_output_names(out_spec))
    for ev in reversed(events):
        if ev[0] == "vline" and ev[1] in need:
            need.update(ev[3])
    return need


def _output_slots(spec) -> list:
    if spec[0] == "vslot":
        return [spec[1]]
    if spec[0] in ("sym", "slot", "value"):
        return []
    return [s for x in spec[1:] for s in _output_slots(x)]


def _output_names(spec):
    if spec[0] == "sym":
        return [spec[1]]
    if spec[0] in ("vslot", "slot", "value"):
        return []
    return [n for x in spec[1:] for n in _output_names(x)]


def _output(spec, trace) -> str:
    head = spec[0]
    if head == "vslot":
        s = spec[1]
        return f"E{s}" if trace.sources[s][0] == "ext" else f"_V(s{s}, R{s})"
    if head == "sym":
        return spec[1]
    if head == "value":
        return repr(spec[1]) if spec[1] is None or isinstance(spec[1], (bool, str)) else "None"
    if head == "slot":
        raise CompileError("compile: a Value step returned a Tensor")
    items = ", ".join(_output(x, trace) for x in spec[1:])
    return f"({items}{',' if len(spec) == 2 else ''})" if head is tuple else f"[{items}]"


def _leaf_value(x, g) -> Value:
    v = Value(x)
    v.grad = g
    return v
