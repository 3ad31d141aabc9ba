"""The graph engine shared by `Value` and `Tensor`.

A node is anything with the small protocol of `Node`: its forward value `data`, the
`_parents` it was computed from (an ordered tuple, so `x * x` keeps both edges), the
primitive `_prim` that made it (None for a leaf), the `_saved` operands that op's vjp
reads, and the op's keyword options `_kw`. Backpropagation here never looks at what
kind of node it has beyond that, so the scalar and the tensor types share one loop,
and everything that backpropagates (backward, grad, hooks, the pictures) runs it.

The traversal is iterative (a heap ordered by creation number), so graph depth is
limited only by memory, never by Python's recursion limit. Creation numbers are also
the clock of the version counters: an in-place change takes a number too, so a node
made before it can tell that something it saved has changed since.
"""

from __future__ import annotations

import gc
import itertools
import threading
from heapq import heappop, heappush
from contextlib import contextmanager
from typing import Iterator

import numpy as np


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when operations are being recorded in this thread."""
    return _mode.enabled


@contextmanager
def no_grad() -> Iterator[None]:
    """Within this block (in this thread) no operation is recorded for backward."""
    previous = _mode.enabled
    _mode.enabled = False
    try:
        yield
    finally:
        _mode.enabled = previous


@contextmanager
def enable_grad() -> Iterator[None]:
    """Turn recording back on inside a `no_grad` block (in this thread)."""
    previous = _mode.enabled
    _mode.enabled = True
    try:
        yield
    finally:
        _mode.enabled = previous


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block.

    The graphs this library builds hold no reference cycles, so reference counting
    frees them and the cyclic collector never finds garbage in them; it still walks
    them, and on large scalar graphs (a micrograd-style training step) those walks cost
    more than the arithmetic. Wrap a training step in this to skip them; anything
    cyclic you create inside is collected after the block.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Version:
    """How often a tensor's memory was changed in place through the library (`count`),
    and when last (`tick`, a creation number: the change is newer than every node made
    before it). Shared by tensors that share memory (views, `detach()`)."""

    __slots__ = ("count", "tick")

    def __init__(self) -> None:
        self.count = 0
        self.tick = 1  # older than every node


class _Changes:
    # The tick of the newest in-place change anywhere: a node made after it saved
    # nothing that has changed since, so backward checks only the nodes made before.
    last = 1
    # The tick of the newest leaf to start requiring grad (requires_grad_()): it takes
    # a new creation number then, and nodes made before it send it no gradient.
    grad_on = 1


_changes = _Changes()


def bump_version(node) -> None:
    """Record that `node`'s memory was just changed in place."""
    vc = node._vc
    if vc is None:
        vc = node._vc = Version()
    vc.count += 1
    vc.tick = _changes.last = next(creation_counter)


class ModifiedInPlaceError(RuntimeError):
    """Backward would read an array that an in-place operation changed after the forward."""


def _modified_error(node, what: str, changed) -> ModifiedInPlaceError:
    shape = getattr(changed.data, "shape", ())
    dtype = getattr(changed.data, "dtype", type(changed.data).__name__)
    return ModifiedInPlaceError(
        f"backward: {what} of the '{node._prim.name}' node (shape {shape}, dtype {dtype}) was "
        f"modified by an in-place operation after the node was recorded (it is now at "
        f"version {changed._vc.count}); its gradient needs the values it saved. Run the "
        "forward again after the change (e.g. call optimizer.step() after backward()), or "
        "make the change out of place.")


def _check_versions(node, op) -> None:
    """Raise if an array the vjp reads changed in place after `node` was made."""
    seq = node._seq
    if op.reads == "values":
        for i, p in enumerate(node._parents):
            vc = p._vc
            if vc is not None and vc.tick < seq:
                raise _modified_error(node, f"input {i}", p)
    if op.reads_output:
        vc = node._vc
        if vc is not None and vc.tick < seq:
            raise _modified_error(node, "the output", node)


class Node:
    """Base of `Value` and `Tensor`: the fields the engine reads, nothing more."""

    __slots__ = ()
    # subclasses declare: data, requires_grad, _parents, _prim, _saved, _kw, the engine's
    # bookkeeping _g (pending gradient) and _seq (creation number), _hooks (None or a
    # dict of the hooks registered on it) and _vc (None or its `Version`)

    # subclasses also provide `_retain` (whether `.grad` keeps this node's gradient) and:
    def _store_grad(self, g) -> None:  # pragma: no cover - overridden
        """Add a finished gradient to `.grad`."""
        raise NotImplementedError

    def _hook_arg(self, g):  # pragma: no cover - overridden
        """A gradient as a hook receives it."""
        raise NotImplementedError

    def _hook_result(self, result, g):  # pragma: no cover - overridden
        """A hook's returned gradient in the engine's form (checked against `g`'s)."""
        raise NotImplementedError

    @property
    def is_leaf(self) -> bool:
        return self._prim is None

    @property
    def grad_fn(self) -> "GradFn | None":
        """The op that computed this node, named as PyTorch names its backward nodes
        ('MulBackward0'; 'ExpBackward' for a custom Function `Exp`); None for a leaf or a
        constant.

        >>> from autodiff import Value
        >>> a = Value(2.0); b = a * a
        >>> b.grad_fn, a.grad_fn
        (<MulBackward0>, None)
        """
        return None if self._prim is None else GradFn(self)

    @property
    def _version(self) -> int:
        """How many in-place changes the library made to this node's memory."""
        return 0 if self._vc is None else self._vc.count

    def register_hook(self, hook) -> "HookHandle":
        """Call `hook(grad)` with this node's total gradient during backward, in the
        engine's order; a returned gradient replaces it. `.remove()` on the handle
        unregisters it.

        >>> from autodiff import Value
        >>> x = Value(2.0); seen = []
        >>> h = x.register_hook(seen.append)
        >>> (x * x).backward(); seen
        [4.0]
        """
        if not callable(hook):
            raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does "
                               "not require grad")
        if self._hooks is None:
            self._hooks = {}
        handle = HookHandle(self._hooks)
        self._hooks[handle.key] = hook
        return handle

    def __setstate__(self, state) -> None:
        # A copy (copy.deepcopy, pickle) is a new node: it takes a new creation number,
        # after those of its inputs (restored first), so the backward order stays right.
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in (slots or {}).items():
            # (`_op` was the primitive's field before `Value._op` became micrograd's string)
            setattr(self, "_prim" if name == "_op" else name, value)
        self._g = None
        self._seq = next(creation_counter)
        for name in ("_hooks", "_vc"):  # (pickles from before these fields)
            try:
                getattr(self, name)
            except AttributeError:
                setattr(self, name, None)


class GradFn:
    """What `node.grad_fn` gives: the op that made `node`, for printing and walking the
    graph backwards. `name()` is the op's backward name ('MulBackward0': the op's name
    in CamelCase, as PyTorch spells most of them), `op` the op's record (its `name` and
    `math`), `next_functions` one `(grad_fn, 0)` pair per input: the input's `GradFn`,
    an `AccumulateGrad` for a leaf that requires grad, None for a constant."""

    __slots__ = ("node",)

    def __init__(self, node) -> None:
        self.node = node

    @property
    def op(self):
        return self.node._prim

    def name(self) -> str:
        return self.node._prim.backward_name

    @property
    def next_functions(self) -> tuple:
        return tuple((_next_function(p), 0) for p in self.node._parents)

    def __eq__(self, other) -> bool:
        return type(other) is GradFn and other.node is self.node

    def __hash__(self) -> int:
        return id(self.node)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class AccumulateGrad:
    """A leaf that requires grad, as `next_functions` lists it: where its gradient ends
    up (`variable.grad`)."""

    __slots__ = ("variable",)

    def __init__(self, variable) -> None:
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    next_functions = ()

    def __eq__(self, other) -> bool:
        return type(other) is AccumulateGrad and other.variable is self.variable

    def __hash__(self) -> int:
        return id(self.variable)

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _next_function(node):
    if node._prim is not None:
        return GradFn(node)
    return AccumulateGrad(node) if node.requires_grad else None


class HookHandle:
    """What `register_hook` returns: `.remove()` unregisters the hook."""

    __slots__ = ("hooks", "key")
    _keys = itertools.count()

    def __init__(self, hooks: dict) -> None:
        self.hooks = hooks
        self.key = next(HookHandle._keys)

    def remove(self) -> None:
        self.hooks.pop(self.key, None)


def _run_hooks(node, g):
    """Call the node's hooks in turn; a returned gradient replaces the one passed on.
    (Each hook is given a copy, and a returned array is copied: neither may become a
    `.grad` that later backwards add into in place.)"""
    for hook in list(node._hooks.values()):
        result = hook(node._hook_arg(g))
        if result is not None:
            g = node._hook_result(result, g)
    return g


class ReleasedGraphError(RuntimeError):
    """A second backward went through buffers freed by the first one."""


def _released_error(node: Node) -> ReleasedGraphError:
    return ReleasedGraphError(
        f"backward: trying to go through the '{node._prim.name}' node a second time, but its "
        "saved buffers were released by the earlier backward(). Pass retain_graph=True to the "
        "first backward() (or to autodiff.grad) if you need to backpropagate twice."
    )


class _Released:
    """Stands in for an option array that a releasing backward dropped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


RELEASED = _Released()


class SavedState:
    """Base of an option value that holds what only the node's vjp reads, such as a custom
    Function's context with the tensors it saved: a releasing backward drops it as it
    drops an option array."""

    __slots__ = ()


def _drop_buffers(node, op) -> None:
    """Release the arrays (and `SavedState`s) among a node's options that only its vjp
    reads (index arrays, masks), as a releasing backward releases its saved arrays.
    Structure and forward values stay, so the graph can still be drawn."""
    if node._kw:
        node._kw = {k: RELEASED if k in op.buffers and _holds_array(v) else v
                    for k, v in node._kw.items()}


def _inputs_after_release(node):
    """The vjp's operands read from the inputs' data, for a node already released
    (pictures drawn after backward); refused where an option array is gone too."""
    if node._kw and any(v is RELEASED for v in node._kw.values()):
        raise ReleasedGraphError(
            f"the '{node._prim.name}' node's backward buffers (an index array, a mask, a "
            "Function's saved tensors) were released by backward(); call "
            "backward(retain_graph=True) to keep them for pictures and explanations "
            "afterwards")
    return tuple(p.data for p in node._parents)


def _holds_array(v) -> bool:
    if isinstance(v, tuple):
        return any(_holds_array(x) for x in v)
    return isinstance(v, SavedState) or (
        hasattr(v, "__array_interface__") and not isinstance(v, (int, float, bool)))


_backward_lock = threading.RLock()

# Every node takes the next number of this counter when it is created. The numbers
# decrease, and a node is always created after its inputs, so increasing creation number
# (the order a min-heap pops them in) is a reverse topological order: newest first.
creation_counter = itertools.count(0, -1)


def run_backward(roots, seeds, *, retain_graph: bool, create_graph: bool = False,
                 capture: dict | None = None, sum_to=None, store: bool = True,
                 observer=None, released_ok: bool = False) -> None:
    """Apply the chain rule from `roots` (seeded with `seeds`) in reverse topological order.

    The one backward loop of the library: `backward()`, `autodiff.grad`, hooks and the
    pictures (`autodiff.viz`) all run through it. A node's total gradient is the sum over
    its consumers of their vjp outputs. Pending nodes wait in a heap keyed by creation
    number, newest first: every consumer of a node was created after it, so when a node
    leaves the heap its total is complete. Leaves, which send nothing on, wait in a list
    and finish last, in the order they were reached. No recursion at any depth.

    - `store`: totals go to `.grad` of the nodes whose `_retain` is true (Tensor leaves
      and retain_grad() intermediates; every Value), and hooks run (a backward on the
      side, for pictures, has store=False: no side effects). With `capture` (a dict
      node -> None) the visit is pruned to the nodes that lead to its keys, their
      totals are written into it, and `.grad` is left alone.
    - `sum_to(g, node)` reduces a broadcast gradient to the node's shape and dtype (one
      place for the whole library); None for scalar graphs.
    - `create_graph`: the vjps run on the nodes themselves, so the gradients they
      return are graph nodes too.
    - `observer(node, g, sends)` is called at every step with the node's total and what
      it sent, [(input, contribution, input's total before, after)] in edge order.
    - `released_ok`: a node whose buffers were released reads its inputs' data instead
      (for pictures drawn after a backward).

    The pending gradient lives in a slot of each node (`_g`, None outside this function)
    rather than in a dict; a lock keeps concurrent backwards apart.
    """
    # Our graphs hold no reference cycles, so the cyclic collector has nothing to find
    # here; on large scalar graphs its passes would otherwise dominate backward. (This is
    # gc_paused() written out: it runs once per training step, and the lock comes first
    # so that changes of the gc state are serialised.)
    with _backward_lock:
        gc_was_enabled = gc.isenabled()
        gc.disable()
        heap, leaves = [], []
        try:
            # grad(): go only through nodes from which a requested input can be reached,
            # so the graph below the inputs, and branches that lead to none, stay untouched.
            needed = None if capture is None else _leading_to(roots, capture)
            _push_roots(heap, roots, seeds, needed)
            _propagate(heap, leaves, retain_graph, create_graph, capture, sum_to, needed,
                       store and capture is None, store, observer, released_ok)
        except BaseException:
            for node in leaves + [node for _, node in heap]:
                node._g = None
            raise
        finally:
            if gc_was_enabled:
                gc.enable()


def _leading_to(roots, targets) -> set:
    """The ids of the nodes (among those reachable from `roots` through nodes that
    require grad) from which some node of `targets` can be reached, targets included."""
    target_ids = {id(t) for t in targets}
    needed, seen = set(), set()
    stack = [(root, False) for root in roots]
    while stack:  # iterative depth-first search; a node is decided after its parents
        node, parents_done = stack.pop()
        if parents_done:
            if id(node) in target_ids or any(id(p) in needed for p in node._parents):
                needed.add(id(node))
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents
                     if p.requires_grad and id(p) not in seen)
    return needed


def _push_roots(heap, roots, seeds, needed) -> None:
    for root, seed in zip(roots, seeds):
        if needed is not None and id(root) not in needed:
            continue
        if root._g is None:
            root._g = seed
            heappush(heap, (root._seq, root))
        else:
            root._g = root._g + seed


def _finish(node, g, record, capture, aliased, hooks):
    """A node's total is complete: hooks, then `.grad` or the capture."""
    if node._hooks and hooks:
        g = _run_hooks(node, g)
    if record:
        if node._retain:
            node._store_grad(g.copy() if aliased and id(g) in aliased else g)
    elif capture is not None and node in capture:
        capture[node] = g
    return g


_NEED_OPTIONS: dict = {}


def _need_options(need: tuple) -> dict:
    """The options {"need": need}, one shared (never changed) dict per mask."""
    kw = _NEED_OPTIONS.get(need)
    if kw is None:
        kw = _NEED_OPTIONS[need] = {"need": need}
    return kw


def _propagate(heap, leaves, retain_graph, create_graph, capture, sum_to, needed,
               record, hooks, observer, released_ok) -> None:
    aliased = set()  # ids of gradients a rule passed through, stored as they are
    # Arrays this loop made itself (sums of contributions) while their node is pending:
    # nobody else holds them, so later contributions are added in place. The dict holds
    # them, so an id cannot be reused by another array meanwhile. (Not with graph nodes,
    # floats, or an observer, which is shown the total before and after each addition.)
    owned = {} if sum_to is not None and not create_graph and observer is None else None
    last_change, grad_on = _changes.last, _changes.grad_on
    first_event = min(last_change, grad_on)  # nodes made after it skip both checks
    late = False
    # In a scalar graph every node requires grad: unless pruned, every input wants one.
    some_need_none = sum_to is not None or needed is not None

    while heap:
        node = heappop(heap)[1]
        g = node._g
        node._g = None
        if owned:  # popped: its vjp may pass g on, so g is no longer the loop's alone
            owned.pop(id(g), None)
        if node._hooks and hooks:  # (pictures, store=False, never call the user's hooks)
            g = _run_hooks(node, g)
        if record:  # (as in `_finish`, written out: this runs for every node)
            if node._retain:
                node._store_grad(g.copy() if aliased and id(g) in aliased else g)
        elif capture is not None and node in capture:
            capture[node] = g
        op = node._prim
        if op is None:  # a root that is a leaf
            if observer is not None:
                observer(node, g, [])
            continue
        parents = node._parents
        if needed is not None and not any(id(p) in needed for p in parents):
            if observer is not None:
                observer(node, g, [])
            continue  # a requested input with nothing requested below it
        saved = node._saved
        seq = node._seq
        if saved is None:
            if not released_ok:
                raise _released_error(node)
            saved = _inputs_after_release(node)
        if seq > first_event:
            if seq > last_change:  # something changed in place since node was made
                _check_versions(node, op)
            late = seq > grad_on  # an input may have started requiring grad since
        kw = node._kw
        if op.scatter_add is not None and owned is not None:
            _scatter_into(node, g, op, parents[0], leaves, heap, owned, needed, late, seq)
            if not retain_graph:
                node._saved = None
                _drop_buffers(node, op)
            late = False
            continue
        if create_graph:
            saved, out = parents, node
        else:
            out = node.data
        if op.masked and (some_need_none or late):  # (the rule's default: all want one)
            if needed is None and not late and len(parents) == 2:  # the common case
                need = (parents[0].requires_grad, parents[1].requires_grad)
            else:
                need = tuple([p.requires_grad and (needed is None or id(p) in needed)
                              and not (late and p._seq < seq) for p in parents])
            if False in need:
                kw = dict(kw, need=need) if kw else (
                    _NEED_OPTIONS.get(need) or _need_options(need))
        grads = op.vjp(g, out, *saved, **kw) if kw else op.vjp(g, out, *saved)
        if not retain_graph:  # release what was kept only for backward
            node._saved = None
            if op.buffers:
                _drop_buffers(node, op)
        sends = [] if observer is not None else None
        for parent, pg in zip(parents, grads):
            # (pg is None: the rule skipped an input that needs no gradient)
            if pg is None or not parent.requires_grad or (
                    needed is not None and id(parent) not in needed) or (
                    late and parent._seq < seq):
                continue
            if sum_to is not None:
                data = parent.data
                dtype = pg.dtype  # (builtin dtypes are singletons: `is` settles most)
                if pg.shape != data.shape or dtype is not data.dtype and dtype != data.dtype:
                    pg = sum_to(pg, parent)
            acc = parent._g
            if acc is None:
                parent._g = pg
                if parent._prim is None:  # a leaf: nothing to propagate, finished last
                    leaves.append(parent)
                else:
                    heappush(heap, (parent._seq, parent))
                if pg is g and record and sum_to is not None and parent._retain:
                    # A rule passed its incoming gradient through (add, sub...): the
                    # array may end up in another .grad too, so if it is stored as it
                    # is (no other contribution is added to it), store a copy.
                    aliased.add(id(pg))
            elif owned is not None and id(acc) in owned:
                np.add(acc, pg, out=acc)
            else:
                total = parent._g = acc + pg
                if owned is not None and type(total) is np.ndarray:
                    owned[id(total)] = total
            if sends is not None:
                sends.append((parent, pg, acc, parent._g))
        if observer is not None:
            observer(node, g, sends)
        late = False

    for node in leaves:  # their totals are complete once the heap is empty
        g = node._g
        node._g = None
        g = _finish(node, g, record, capture, aliased, hooks)
        if observer is not None:
            observer(node, g, [])


def _scatter_into(node, g, op, parent, leaves, heap, owned, needed, late, seq) -> None:
    """The gradient of node = parent[index] added into parent's pending total at the
    index (op.scatter_add), instead of first spread into zeros of parent's shape."""
    if not parent.requires_grad or (needed is not None and id(parent) not in needed) or (
            late and parent._seq < seq):
        return
    acc = parent._g
    if acc is not None and id(acc) in owned:
        total = acc
    else:  # a new array: zeros, or a copy of a first contribution others may hold
        data = parent.data
        total = np.zeros(data.shape, data.dtype) if acc is None else np.array(acc, data.dtype)
        owned[id(total)] = total
    op.scatter_add(total, g, **node._kw)
    parent._g = total
    if acc is None:
        if parent._prim is None:
            leaves.append(parent)
        else:
            heappush(heap, (parent._seq, parent))


def local_vjp(node, g, cast=None) -> tuple:
    """g times d(node)/d(input) for every input of `node` (None where the rule gives
    none), computed on raw numbers from the saved buffers or, once released, from the
    inputs' data (each passed through `cast` if given). Nothing is recorded and no
    `.grad` changes: this is what pictures show on an edge."""
    op, kw = node._prim, node._kw or {}
    saved = node._saved
    if saved is None:
        saved = _inputs_after_release(node)
    out = node.data
    if cast is not None:
        saved = tuple(x if x is None else cast(x) for x in saved)
        out = cast(out)
    if op.masked:
        kw = dict(kw, need=(True,) * len(node._parents))
    return op.vjp(g, out, *saved, **kw)
