"""`backward_steps`: backpropagation one node at a time, as text and pictures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..value import Value
from ._common import (
    _array_text, _as_roots, _factor_num, _names, _num, _param_names, _replay, _requires_grad,
    _seed, _topo, _vjp)
from .draw import Graph, draw_graph
from .chain import _indent


@dataclass
class Send:
    """What one step sent to one input: the contribution and the input's gradient."""

    parent: Any
    name: str
    index: int
    local: float | None    # d(node)/d(input) for scalars
    contribution: Any      # g * local (the vjp)
    before: Any            # the input's gradient so far (None: nothing yet)
    after: Any


@dataclass
class Step:
    """One node of a backward pass: its finished gradient and what it sent to its inputs."""

    index: int
    node: Any
    name: str
    grad: Any
    sends: list
    _root: Any = field(repr=False, default=None)
    _log: list = field(repr=False, default_factory=list)
    _end: int = field(repr=False, default=0)
    _precision: int = field(repr=False, default=4)
    _names: dict = field(repr=False, default_factory=dict)

    def _fmt(self, x) -> str:
        if x is None:
            return "0" if isinstance(self.node, Value) else "none"
        if isinstance(x, float):
            return _num(x, self._precision)
        return _indent(_array_text(np.asarray(x), self._precision), 8)

    def __str__(self) -> str:
        node = self.node
        what = ("leaf" if node._op is None else
                f"{node._op.name} of " + ", ".join(self._names[id(p)][0] for p in node._parents))
        lines = [f"step {self.index}: {self.name} ({what})  gradient = {self._fmt(self.grad)}"]
        if node._op is None:
            lines.append("  a leaf: its gradient is final")
        elif not self.sends:
            lines.append("  no input needs a gradient")
        for s in self.sends:
            if s.local is not None:
                how = (f"local d({self.name})/d({s.name}) = {_num(s.local, self._precision)}, "
                       f"sends {self._fmt(self.grad)} × {_factor_num(s.local, self._precision)}"
                       f" = {self._fmt(s.contribution)}")
            else:
                how = f"sends vjp {np.shape(s.contribution)} = {self._fmt(s.contribution)}"
            lines.append(f"  -> {s.name} (input {s.index}): {how}")
            lines.append(f"     {s.name}'s gradient: {self._fmt(s.before)} -> {self._fmt(s.after)}")
        return "\n".join(lines)

    def grads(self) -> dict:
        """Every gradient computed so far, node -> value (the state after this step)."""
        state = {}
        for node, g in self._log[:self._end]:
            state[node] = g
        return state

    def draw(self, **options) -> Graph:
        """The graph with the gradients known after this step; this node and its inputs
        outlined. Options go to `draw_graph` (default view='backward')."""
        options.setdefault("view", "backward")
        options.setdefault("highlight", [self.node, *self.node._parents])
        return draw_graph(self._root, grads=self.grads(), **options)


def backward_steps(root, *, grad_output=None, names=None, precision: int = 4) -> Iterator[Step]:
    """Backpropagation from `root`, one node at a time in reverse topological order.

    Each `Step` tells the node's finished gradient and, for each input, the local
    derivative, the contribution sent and the input's gradient before -> after; `str(step)`
    writes it out, `step.draw()` pictures the state. Computed on the side: the graph and
    its `.grad` are not touched.

    >>> from autodiff import Value
    >>> a = Value(2.0, label="a"); b = (a * 3.0).tanh()
    >>> [s.name for s in backward_steps(b)]
    ['tanh', 'mul_const', 'a']
    """
    (root,) = _as_roots(root, "backward_steps")
    seed = _seed(root, grad_output, "backward_steps")
    order = _topo([root])
    named = _names(order, _param_names(names))
    log: list = [(root, seed)]
    for k, (node, g, sends) in enumerate(_replay(order, {id(root): seed}, _requires_grad), 1):
        local = None
        if sends and isinstance(node, Value):
            local = _vjp(node, 1.0)
        items = []
        for i, p, pg, before, after in sends:
            items.append(Send(p, named[id(p)][0], i, None if local is None else local[i],
                              pg, before, after))
            log.append((p, after))
        yield Step(k, node, named[id(node)][0], g, items, root, log, len(log), precision, named)
