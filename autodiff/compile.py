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

This file holds the plans and their cache; the checks a call makes are in
compile_guards.py, the trace in compile_record.py, the replay's source in compile_emit.py.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from . import compile_value as _values
from .engine import no_grad
from .errors import CompileError
from .rng import generator
from .compile_guards import (_aliases, _check_one_owner, _describe, _floats, _held,
                             _loose_signature, _modules_of)
from .compile_record import (_Retrace, _SlotRef, _contents, _output_spec, _recorder,
                             _trace, _unexplained, replayable)
from .compile_emit import _changed_copies, _emit


__all__ = ["compile", "CompileError", "replayable"]


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
