"""The graph engine shared by `Value` and `Tensor`.

A node is anything with the small protocol of `Node`: its forward value `data`, the
`_parents` it was computed from (an ordered tuple, so `x * x` keeps both edges), the
primitive `_op` that made it (None for a leaf), the `_saved` operands that op's vjp
reads, and the op's keyword options `_kw`. Backpropagation here never looks at what
kind of node it has beyond that, so the scalar and the tensor types share one loop.

The traversal is iterative (a heap ordered by creation number), so graph depth is
limited only by memory, never by Python's recursion limit.
"""

from __future__ import annotations

import gc
import itertools
import threading
from heapq import heappop, heappush
from contextlib import contextmanager
from typing import Iterator


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


class Node:
    """Base of `Value` and `Tensor`: the fields the engine reads, nothing more."""

    __slots__ = ()
    # subclasses declare: data, requires_grad, _parents, _op, _saved, _kw, and the
    # engine's bookkeeping _g (pending gradient) and _seq (creation number)

    # subclasses also provide `_retain` (whether `.grad` keeps this node's gradient) and:
    def _store_grad(self, g) -> None:  # pragma: no cover - overridden
        """Add a finished gradient to `.grad`."""
        raise NotImplementedError

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    def __setstate__(self, state) -> None:
        # A copy (copy.deepcopy, pickle) is a new node: it takes a new creation number,
        # after those of its inputs (restored first), so the backward order stays right.
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in (slots or {}).items():
            setattr(self, name, value)
        self._g = None
        self._seq = next(creation_counter)


class ReleasedGraphError(RuntimeError):
    """A second backward went through buffers freed by the first one."""


def _released_error(node: Node) -> ReleasedGraphError:
    return ReleasedGraphError(
        f"backward: trying to go through the '{node._op.name}' node a second time, but its "
        "saved buffers were released by the earlier backward(). Pass retain_graph=True to the "
        "first backward() (or to autodiff.grad) if you need to backpropagate twice."
    )


_backward_lock = threading.Lock()

# Every node takes the next number of this counter when it is created. The numbers
# decrease, and a node is always created after its inputs, so increasing creation number
# (the order a min-heap pops them in) is a reverse topological order: newest first.
creation_counter = itertools.count(0, -1)


def run_backward(roots, seeds, *, retain_graph: bool, create_graph: bool = False,
                 capture: dict | None = None, sum_to=None) -> None:
    """Apply the chain rule from `roots` (seeded with `seeds`) in reverse topological order.

    A node's total gradient is the sum over its consumers of their vjp outputs. Pending
    nodes wait in a heap keyed by creation number, newest first: every consumer of a
    node was created after it, so when a node leaves the heap its total is complete. This
    needs no separate pass to count consumers, and no recursion at any depth.

    Without `capture`, totals go to `.grad` of the nodes whose `_retain` is true (Tensor
    leaves and retain_grad() intermediates; every Value). With `capture` (a dict
    node -> None), totals for those nodes are written into it and `.grad` is left alone.

    `sum_to(g, node)` reduces a broadcast gradient to the node's shape and dtype (one
    place for the whole library); it is None for scalar graphs. With `create_graph` the
    vjps run on the nodes themselves, so the gradients they return are graph nodes too.

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
            _propagate(heap, leaves, retain_graph, create_graph, capture, sum_to, needed)
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


def _propagate(heap, leaves, retain_graph, create_graph, capture, sum_to, needed) -> None:
    record = capture is None
    aliased = set()  # ids of gradients a rule passed through, stored as they are

    while heap:
        node = heappop(heap)[1]
        g = node._g
        node._g = None
        if record:  # (as in the leaves' loop at the end)
            if node._retain:
                node._store_grad(g.copy() if aliased and id(g) in aliased else g)
        elif node in capture:
            capture[node] = g
        op = node._op
        if op is None:
            continue
        if needed is not None and not any(id(p) in needed for p in node._parents):
            continue  # a requested input with nothing requested below it
        saved = node._saved
        if saved is None:
            raise _released_error(node)
        kw = node._kw
        if create_graph:
            grads = op.vjp(g, node, *node._parents, **kw) if kw else op.vjp(g, node, *node._parents)
        else:
            grads = op.vjp(g, node.data, *saved, **kw) if kw else op.vjp(g, node.data, *saved)
        if not retain_graph:
            node._saved = None
        for parent, pg in zip(node._parents, grads):
            # (pg is None: the input needed no gradient when the op was recorded)
            if pg is None or not parent.requires_grad or (
                    needed is not None and id(parent) not in needed):
                continue
            if sum_to is not None:
                data = parent.data
                dtype = pg.dtype  # (builtin dtypes are singletons: `is` settles most)
                if pg.shape != data.shape or dtype is not data.dtype and dtype != data.dtype:
                    pg = sum_to(pg, parent)
            acc = parent._g
            if acc is None:
                parent._g = pg
                if parent._op is None:  # a leaf: nothing to propagate, finished last
                    leaves.append(parent)
                else:
                    heappush(heap, (parent._seq, parent))
                if pg is g and record and sum_to is not None and parent._retain:
                    # A rule passed its incoming gradient through (add, sub...): the
                    # array may end up in another .grad too, so if it is stored as it
                    # is (no other contribution is added to it), store a copy.
                    aliased.add(id(pg))
            else:
                parent._g = acc + pg

    for node in leaves:  # their totals are complete once the heap is empty
        g = node._g
        node._g = None
        if record:
            if node._retain:
                node._store_grad(g.copy() if aliased and id(g) in aliased else g)
        elif node in capture:
            capture[node] = g
