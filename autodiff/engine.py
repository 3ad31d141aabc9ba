"""The graph engine shared by `Value` and `Tensor`.

A node is anything with the small protocol of `Node`: its forward value `data`, the
`_parents` it was computed from (an ordered tuple, so `x * x` keeps both edges), the
primitive `_op` that made it (None for a leaf), the `_saved` operands that op's vjp
reads, and the op's keyword options `_kw`. Backpropagation here never looks at what
kind of node it has beyond that, so the scalar and the tensor types share one loop.

The traversal is iterative (Kahn's algorithm from the roots), so graph depth is
limited only by memory, never by Python's recursion limit.
"""

from __future__ import annotations

import threading
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


class Node:
    """Base of `Value` and `Tensor`: the fields the engine reads, nothing more."""

    __slots__ = ()
    # subclasses declare: data, requires_grad, _parents, _op, _saved, _kw

    # subclasses also provide `_retain` (whether `.grad` keeps this node's gradient) and:
    def _store_grad(self, g) -> None:  # pragma: no cover - overridden
        """Add a finished gradient to `.grad`."""
        raise NotImplementedError

    @property
    def is_leaf(self) -> bool:
        return self._op is None


class ReleasedGraphError(RuntimeError):
    """A second backward went through buffers freed by the first one."""


def _released_error(node: Node) -> ReleasedGraphError:
    return ReleasedGraphError(
        f"backward: trying to go through the '{node._op.name}' node a second time, but its "
        "saved buffers were released by the earlier backward(). Pass retain_graph=True to the "
        "first backward() (or to autodiff.grad) if you need to backpropagate twice."
    )


def count_dependencies(roots) -> dict:
    """For each node reachable from `roots` that requires grad, how many edges lead into
    it from other reachable nodes (its consumers in the graph)."""
    deps = {}
    stack = []
    for root in roots:
        if root not in deps:
            deps[root] = 0
            stack.append(root)
    while stack:
        node = stack.pop()
        for parent in node._parents:
            if parent.requires_grad:
                if parent in deps:
                    deps[parent] += 1
                else:
                    deps[parent] = 1
                    stack.append(parent)
    return deps


def run_backward(roots, seeds, *, retain_graph: bool, create_graph: bool = False,
                 capture: dict | None = None, sum_to=None) -> None:
    """Apply the chain rule from `roots` (seeded with `seeds`) in reverse topological order.

    Every node's total gradient is the sum over its consumers of their vjp outputs; a
    node is processed once all its consumers have been. Without `capture`, totals go to
    `.grad` of the nodes whose `_retain` is true (Tensor leaves and retain_grad()
    intermediates; every Value). With `capture` (a dict node -> None), totals for those
    nodes are written into it instead and `.grad` is left alone.

    `sum_to(g, node)` reduces a broadcast gradient to the node's shape (one place for
    the whole library); it is None for scalar graphs. With `create_graph` the vjps run
    on the nodes themselves, so the gradients they return are graph nodes too.
    """
    deps = count_dependencies(roots)
    pending = {}
    for root, seed in zip(roots, seeds):
        pending[root] = pending[root] + seed if root in pending else seed
    ready = [root for root in pending if deps[root] == 0]
    record = capture is None

    while ready:
        node = ready.pop()
        g = pending.pop(node)
        if record:
            if node._retain:
                node._store_grad(g)
        elif node in capture:
            capture[node] = g
        op = node._op
        if op is None:
            continue
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
            if not parent.requires_grad:
                continue
            if sum_to is not None:
                pg = sum_to(pg, parent)
            if parent in pending:
                pending[parent] = pending[parent] + pg
            else:
                pending[parent] = pg
            left = deps[parent] - 1
            deps[parent] = left
            if not left:
                ready.append(parent)
