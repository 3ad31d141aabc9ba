"""`backward_steps`: backpropagation one node at a time, as text and pictures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..value import Value
from ._common import (
    _array_text, _as_roots, _backprop, _check_precision, _factor_num, _names, _num,
    _param_names, _seed, _topo, _vjp)
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

    def _d(self, node) -> str:
        return f"∂{self._names[id(self._root)][0]}/∂{self._names[id(node)][0]}"

    def __str__(self) -> str:
        """Short sentences: what this node holds, what it sends to each input."""
        node, name = self.node, self.name
        head = f"step {self.index}: "
        if node is self._root and not self.sends:
            return head + f"{name} starts with {self._d(node)} = {self._fmt(self.grad)}"
        if node._prim is None:
            return (head + f"{name} is a leaf: its total {self._d(node)} = "
                    f"{self._fmt(self.grad)} is final")
        if not self.sends:
            return head + f"{name} holds {self._d(node)} = {self._fmt(self.grad)}; no input " \
                "needs a gradient"
        lines = []
        for k, s in enumerate(self.sends):
            if s.local is not None:
                part = (f"{self._fmt(self.grad)} × {_factor_num(s.local, self._precision)} = "
                        f"{self._fmt(s.contribution)}")
            else:
                part = self._fmt(s.contribution)
            text = f"{name} sends {self._d(s.parent)} = {part} to {s.name}"
            if s.before is not None:
                text += (f" ({s.name} had {self._fmt(s.before)}, now "
                         f"{self._fmt(s.after)})")
            lines.append((head if k == 0 else " " * len(head)) + text)
        return "\n".join(lines)

    def grads(self) -> dict:
        """Every gradient computed so far, node -> value (the state after this step)."""
        state = {}
        for node, g in self._log[:self._end]:
            state[node] = g
        return state

    def draw(self, **options) -> Graph:
        """The graph with the gradients known after this step: this node filled, the
        inputs it sends to outlined, the step written under it. Options go to
        `draw_graph` (default view='backward')."""
        options.setdefault("view", "backward")
        options.setdefault("focus", [self.node])
        options.setdefault("highlight", [s.parent for s in self.sends])
        receivers = ", ".join(s.name for s in self.sends)
        options.setdefault("caption", f"step {self.index}: {self.name}" + (
            f" sends its gradient to {receivers}" if receivers else " (its gradient is final)"))
        return draw_graph(self._root, grads=self.grads(), **options)


def backward_steps(root, *, grad_output=None, names=None, precision: int = 4) -> list:
    """Backpropagation from `root`, one node at a time, in the order the engine's
    backward visits them (its own loop, watched step by step).

    Each `Step` tells the node's finished gradient and, for each input, the local
    derivative, the contribution sent and the input's gradient before -> after; `str(step)`
    writes it out, `step.draw()` pictures the state. Computed on the side: the graph and
    its `.grad` are not touched, and it works before and after `backward()`.

    >>> from autodiff import Value
    >>> a = Value(2.0, label="a"); b = (a * 3.0).tanh()
    >>> [s.name for s in backward_steps(b)]
    ['tanh', 'mul_const', 'a']
    """
    (root,) = _as_roots(root, "backward_steps")
    _check_precision(precision, "backward_steps")
    seed = _seed(root, grad_output, "backward_steps")
    named = _names(_topo([root]), _param_names(names))
    visits = []
    _backprop([root], [seed], observer=lambda node, g, sends: visits.append((node, g, sends)))
    log: list = [(root, seed)]
    steps = []
    for k, (node, g, sends) in enumerate(visits, 1):
        local = _vjp(node, 1.0) if sends and isinstance(node, Value) else None
        items, claimed = [], set()
        for parent, contribution, before, after in sends:
            # the input's position: the first edge to it not yet accounted for (x * x)
            i = next(i for i, p in enumerate(node._parents) if p is parent and i not in claimed)
            claimed.add(i)
            items.append(Send(parent, named[id(parent)][0], i,
                              None if local is None else local[i], contribution, before, after))
            log.append((parent, after))
        steps.append(Step(k, node, named[id(node)][0], g, items, root, log, len(log), precision,
                          named))
    return steps
