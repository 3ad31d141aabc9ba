"""A plan as one straight-line Python function over arrays (`_emit`): a line per
forward op and per vjp, lowered to ufunc calls into kept buffers where the shapes are
fixed (compile_lower.py), and the small helpers the generated lines call."""

from __future__ import annotations

import numpy as np

from .compile_lower import Kernels
from . import tensor as _tensor
from .engine import bump_version
from .errors import CompileError
from .ops import Op
from .tensor import Tensor, _wrap, fit_array
from .compile_record import (_ArgRef, _CONSTANT, _DerivedRef, _Reshaped, _Retrace,
                             _SlotRef, _structure)


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
    exec(compile(source, "<autodiff.compile replay>", "exec"), ns)  # our own trace
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
