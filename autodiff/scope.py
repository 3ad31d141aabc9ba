"""Named groups of graph nodes: `with autodiff.scope("h = σ(y, a)"): ...`.

A scope is a stretch of the engine's clock. Every node takes the next creation number
when it is made (`engine.creation_counter`, counting down), so a scope only notes the
number when it opens and when it closes: the nodes made in between are its members.
That costs nothing per node, and nodes need no extra field. Every call of an
`nn.Module` that records a graph opens a scope too, so pictures can box or collapse a
layer, a loss or a user's block into one node.

Scopes nest (a module inside a module inside a user's block). They are kept in a
bounded log of the most recent ones; a graph recorded long before (more than
`LOG_SIZE` scopes ago) is drawn without its groups. Scopes opened in one thread while
another thread records nodes would claim that thread's nodes too: record graphs you want
grouped from one thread at a time.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from .engine import _mode, creation_counter

LOG_SIZE = 50_000


class Scope:
    """A named group: the nodes made while it was open (creation numbers strictly between
    `end` and `start`; the counter counts down, so `start > end`). `kind` is "scope" for
    a user's block and "module" for a call of an nn module, whose `module` then gives the
    module (None once it is gone). `parent` is the enclosing scope, `depth` its nesting."""

    __slots__ = ("name", "kind", "start", "end", "parent", "depth", "_module")

    def __init__(self, name: str, kind: str, parent: "Scope | None", module=None) -> None:
        self.name = name
        self.kind = kind
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self._module = None if module is None else weakref.ref(module)
        self.start = next(creation_counter)
        self.end = None  # still open

    @property
    def module(self):
        return None if self._module is None else self._module()

    def contains(self, node) -> bool:
        """Whether `node` was made while this scope was open."""
        end = self.end
        return node._seq < self.start and (end is None or node._seq > end)

    def path(self) -> tuple:
        """The scopes from the outermost to this one."""
        chain, s = [], self
        while s is not None:
            chain.append(s)
            s = s.parent
        return tuple(reversed(chain))

    def __repr__(self) -> str:
        return f"<Scope {self.name!r} ({self.kind})>"


class _Open(threading.local):
    innermost: Scope | None = None


_open = _Open()
_log: deque = deque(maxlen=LOG_SIZE)  # closed scopes, oldest first
_log_lock = threading.Lock()


def open_scope(name: str, kind: str = "scope", module=None) -> Scope:
    """Open a scope (pair with `close_scope`); `scope()` is the usual way in."""
    s = Scope(name, kind, _open.innermost, module)
    _open.innermost = s
    return s


def close_scope(s: Scope) -> None:
    s.end = next(creation_counter)
    _open.innermost = s.parent
    with _log_lock:
        _log.append(s)


@contextmanager
def scope(name: str) -> Iterator[Scope]:
    """Group the nodes recorded inside the block under `name`, for the pictures (they
    can box it or collapse it into one node whose edges carry the block's local
    derivatives).

    >>> import autodiff
    >>> x = autodiff.Value(0.5)
    >>> with autodiff.scope("h = tanh(2x)") as s:
    ...     h = (2 * x).tanh()
    >>> s.contains(h), s.contains(x)
    (True, False)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"scope: the name must be a non-empty str, got {name!r}")
    s = open_scope(name)
    try:
        yield s
    finally:
        close_scope(s)


def module_scope(module) -> Scope | None:
    """Open the scope of one call of `module` (None when nothing is being recorded)."""
    if not _mode.enabled:
        return None
    return open_scope(type(module).__name__, "module", module)


def scopes_of(nodes) -> dict:
    """For each node (by id), the innermost closed scope it was made in, or None; the
    outer ones follow through `.parent`.

    >>> import autodiff
    >>> a = autodiff.Value(1.0)
    >>> with autodiff.scope("outer"):
    ...     b = a * 2
    ...     with autodiff.scope("inner"):
    ...         c = b + 1
    >>> found = scopes_of([a, b, c])
    >>> found[id(a)], found[id(b)].name, found[id(c)].name, found[id(c)].parent.name
    (None, 'outer', 'inner', 'outer')
    """
    nodes = list(nodes)
    if not nodes:
        return {}
    seqs = [n._seq for n in nodes]
    lo, hi = min(seqs), max(seqs)
    with _log_lock:
        # the scopes that overlap the nodes' span of creation numbers
        relevant = [s for s in _log if s.start > lo and s.end < hi]
    # Sweep the nodes from the oldest (the counter counts down: largest number first),
    # opening scopes as their start passes. `active` stays a chain of nested scopes:
    # a scope that closed before the next one opened leaves it first.
    relevant.sort(key=lambda s: (-s.start, s.depth))
    order = sorted(range(len(nodes)), key=lambda i: -seqs[i])
    found, active, k = {}, [], 0
    for i in order:
        seq = seqs[i]
        while k < len(relevant) and relevant[k].start > seq:
            s = relevant[k]
            while active and active[-1].end >= s.start:
                active.pop()
            active.append(s)
            k += 1
        while active and active[-1].end >= seq:
            active.pop()
        found[id(nodes[i])] = active[-1] if active else None
    return found
