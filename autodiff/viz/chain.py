"""`chain_rule`: d(output)/d(wrt) as the sum over paths of products of named local
derivatives, each evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..value import Value
from ._common import (
    _array_text, _as_roots, _backprop, _check_precision, _diagonal, _factor_num, _kind, _names,
    _num, _param_names, _seed, _shape, _topo, _vjp)


@dataclass
class Factor:
    """One factor d(upper)/d(lower) of a path: the local derivatives of the ops between two
    named nodes, multiplied along this path."""

    name: str
    upper: Any
    lower: Any
    shape: tuple           # of the Jacobian: upper's shape + lower's shape
    diagonal: bool         # elementwise ops only: just the diagonal is nonzero
    value: float | None    # scalars: the number; tensors: None (see `running`)
    running: Any           # d(output)/d(lower) along this path so far (vector-Jacobian products)
    ops: list = field(default_factory=list)
    route: tuple = field(default=(), repr=False)   # the edges taken: (id(node), input index)


@dataclass
class Path:
    """One path from the output down to `wrt`: its factors and their product."""

    factors: list
    value: Any             # the product: a float, or an array shaped like wrt

    @property
    def names(self) -> list:
        return [f.name for f in self.factors]


class ChainRule:
    """d(output)/d(wrt) as a sum over paths of products of local derivatives.

    `str()` writes it out with numbers; `.paths` (the listed Paths), `.num_paths` (all of
    them), `.total` (the derivative, over all paths), `.grad` (wrt.grad when present) and
    `.agrees` (whether they match; None without a gradient to compare) give access.
    """

    def __init__(self, output, wrt, paths, num_paths, total, names, precision, grad):
        self.output, self.wrt = output, wrt
        self.paths, self.num_paths, self.total = paths, num_paths, total
        self._names, self._precision = names, precision
        self.grad = grad
        self.agrees = None if grad is None else _close(total, grad)

    @property
    def scalar(self) -> bool:
        return isinstance(self.wrt, Value)

    def _name(self, node) -> str:
        return self._names[id(node)][0]

    def _value(self, x) -> str:
        if self.scalar:
            return _num(x, self._precision)
        return _array_text(np.asarray(x), self._precision, threshold=24)

    def __str__(self) -> str:
        out, wrt, p = self._name(self.output), self._name(self.wrt), self._precision
        head = f"d({out})/d({wrt})"
        if not self.num_paths:
            return f"{head} = 0: {out} does not depend on {wrt} (no path between them)"
        n = self.num_paths
        lines = [f"{head} = sum over {n:,} path{'s' if n > 1 else ''} of products of local "
                 "derivatives"]
        if not self.scalar:
            lines.append("  each factor d(u)/d(v) is a Jacobian of shape u.shape + v.shape; "
                         "multiplying from the left contracts over u's axes")
        for k, path in enumerate(self.paths, 1):
            lines.append("")
            lines.append(f"path {k}: " + " · ".join(path.names))
            if not path.factors:
                lines[-1] += f"(none: the output is {wrt} itself, d({wrt})/d({wrt}) = identity)"
                continue
            if self.scalar:
                values = " · ".join(_factor_num(f.value, p) for f in path.factors)
                lines.append(f"      = {values}")
                if len(path.factors) > 1:
                    lines.append(f"      = {_num(path.value, p)}")
                continue
            width = max(len(f.name) for f in path.factors)
            for f in path.factors:
                kind = f"{_kind(_shape(f.upper))} by {_kind(_shape(f.lower))}"
                jac = f"diagonal {f.shape}" if f.diagonal and f.shape else str(f.shape)
                lines.append(f"  {f.name:<{width}}  {kind:<20} {jac:<22} -> d({out})/"
                             f"d({self._name(f.lower)}) {_shape(f.lower)}")
            lines.append("  path gradient = " + _indent(self._value(path.value), 18))
        if len(self.paths) < self.num_paths:
            rest = self.num_paths - len(self.paths)
            listed = sum(path.value for path in self.paths)
            lines.append("")
            lines.append(f"... and {rest:,} more paths, not listed; together they add "
                         + _indent(self._value(self.total - listed), 40))
        lines.append("")
        if self.scalar and len(self.paths) == self.num_paths and self.num_paths > 1:
            terms = " + ".join(_factor_num(path.value, p) for path in self.paths)
            lines.append(f"total {head} = {terms} = {_num(self.total, p)}")
        else:
            lines.append(f"total {head} = " + _indent(self._value(self.total), len(head) + 9))
        lines.append(self._check_text())
        return "\n".join(lines)

    def _check_text(self) -> str:
        wrt = self._name(self.wrt)
        if self.grad is None:
            return f"({wrt}.grad is not set: nothing to compare with)"
        if self.agrees:
            return f"{wrt}.grad agrees with the total ✓"
        if not np.any(self.grad):  # a Value's .grad is 0.0 until a backward() fills it
            return f"({wrt}.grad is 0: run backward() first to compare it with the total)"
        note = " (gradients accumulate over backward passes until reset)"
        return (f"{wrt}.grad = " + _indent(self._value(self.grad), len(wrt) + 8)
                + f" differs from the total ✗{note}")

    def __repr__(self) -> str:
        return (f"<ChainRule d({self._name(self.output)})/d({self._name(self.wrt)}): "
                f"{self.num_paths} paths>")

    def _d(self, upper, lower) -> str:
        """The lecture's ∂_lower upper, in LaTeX."""
        return f"\\partial_{{{_tex(self._name(lower))}}} {_tex(self._name(upper))}"

    def latex(self) -> str:
        """The chain rule as one LaTeX equation (aligned, a line per path) in the lecture's
        notation ∂_v u for ∂u/∂v: each path a product of local derivatives, with their
        values for scalars, and the sum."""
        head = self._d(self.output, self.wrt)
        p = self._precision
        if not self.num_paths:
            return f"{head} = 0 \\quad \\text{{(no path)}}"
        rows = []
        for path in self.paths:
            symbols = " \\, ".join(self._d(f.upper, f.lower) for f in path.factors) or "1"
            if self.scalar and path.factors:
                values = " \\cdot ".join(_factor_num(f.value, p) for f in path.factors)
                rows.append(f"{symbols} = {values}" + (f" = {_num(path.value, p)}"
                                                        if len(path.factors) > 1 else ""))
            else:
                shapes = ", ".join("×".join(map(str, f.shape)) or "1" for f in path.factors)
                rows.append(f"{symbols} \\quad \\text{{(Jacobians {shapes})}}")
        if len(self.paths) < self.num_paths:
            rows.append(f"\\dots \\quad \\text{{and {self.num_paths - len(self.paths):,} "
                        "more paths}")
        total = (_num(self.total, p) if self.scalar
                 else f"\\text{{an array of shape {np.shape(self.total)}}}")
        if len(rows) == 1:
            return f"{head} = {rows[0]}"
        lines = [f"{head} &= \\text{{the sum over {self.num_paths:,} paths}}"]
        lines += [("&= " if k == 0 else "&\\quad + ") + r for k, r in enumerate(rows)]
        lines.append(f"&= {total}")
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def _repr_markdown_(self) -> str:
        check = self._check_text().replace("✓", "✓").replace("$", "\\$")
        return f"$$\n{self.latex()}\n$$\n\n{check}"


def _indent(text: str, n: int) -> str:
    return text.replace("\n", "\n" + " " * n)


def _tex(name: str) -> str:
    for ch in "\\_#%&{}$":
        name = name.replace(ch, "\\" + ch)
    return f"\\mathrm{{{name}}}"


def _close(total, grad) -> bool:
    a, b = np.asarray(total, dtype=np.float64), np.asarray(grad, dtype=np.float64)
    if a.shape != b.shape:
        return False
    tol = 1e-4 if np.asarray(grad).dtype == np.float32 else 1e-7
    return bool(np.allclose(a, b, rtol=tol, atol=tol * 1e-2, equal_nan=True))


def _grad_copy(wrt):
    g = wrt.grad
    if g is None:
        return None
    return float(g) if isinstance(wrt, Value) else np.array(g)


def chain_rule(output, wrt, *, factors: str = "auto", max_paths: int = 20,
               grad_output=None, names=None, precision: int = 4) -> ChainRule:
    """Write d(output)/d(wrt) as the sum over paths of products of local derivatives.

    A path's factors are d(u)/d(v) between consecutive named nodes on it (`factors=
    'labels'`: nodes with a label, or a name from `names`, a module or mapping node ->
    name) or between every pair of adjacent nodes (`'ops'`); `'auto'` uses labels when
    any node between output and wrt has one. Scalar factors are numbers; tensor factors
    are Jacobians shown by shape (a scalar by a vector: (n,); a vector by a matrix:
    (m, k, n); ...) with the gradient each product leaves. At most `max_paths` paths are
    listed; `.total` always sums all of them. Needs no backward() and changes no `.grad`.

    >>> from autodiff import Value
    >>> x = Value(3.0, label="x")
    >>> cr = chain_rule(x * x, x)       # two paths: one per edge of x * x
    >>> [p.value for p in cr.paths], cr.total
    ([3.0, 3.0], 6.0)
    """
    (output,) = _as_roots(output, "chain_rule")
    (wrt,) = _as_roots(wrt, "chain_rule")
    if isinstance(output, Value) != isinstance(wrt, Value):
        raise TypeError("chain_rule: output and wrt must both be Values or both be Tensors")
    if factors not in ("auto", "labels", "ops"):
        raise ValueError(f"chain_rule: factors must be 'auto', 'labels' or 'ops', got {factors!r}")
    if max_paths < 0:
        raise ValueError(f"chain_rule: max_paths must be >= 0, got {max_paths}")
    _check_precision(precision, "chain_rule")
    seed = _seed(output, grad_output, "chain_rule")
    named = _names(_topo([output, wrt]), _param_names(names))  # wrt may be elsewhere
    return chain_rule_in(_topo([output]), named, output, wrt, seed, factors=factors,
                         max_paths=max_paths, precision=precision)


def chain_rule_in(order, named, output, wrt, seed, *, factors="auto", max_paths=20,
                  precision=4, total=None) -> ChainRule:
    """`chain_rule` on a graph already in topological order (`order`, from `output`) and
    named (`named`, as `_names` gives), with d(output)/d(wrt) given as `total` when it
    is known: the explorer asks for every node of one graph, and computes those once."""
    grad = _grad_copy(wrt)

    # The nodes on some path: those computed from wrt (wrt itself included).
    on_path = {id(wrt)}
    for node in order:
        if node is not wrt and any(id(p) in on_path for p in node._parents):
            on_path.add(id(node))
    if id(output) not in on_path:
        zero = 0.0 if isinstance(wrt, Value) else np.zeros_like(wrt.data)
        return ChainRule(output, wrt, [], 0, zero, named, precision, grad)

    # How many paths reach wrt from each node (exact, however many there are).
    count = {id(wrt): 1}
    for node in order:
        if id(node) in on_path and node is not wrt:
            count[id(node)] = sum(count[id(p)] for p in node._parents if id(p) in on_path)

    # The total over all paths: the engine's backward, on the side, pruned to the paths.
    if total is not None:
        pass
    elif wrt.requires_grad:
        total = _backprop([output], [seed], targets=[wrt])[wrt]
    else:  # a constant gets no gradient from the engine: add up what its consumers send
        total = _total_to_constant(output, seed, wrt)

    interior = [n for n in order if id(n) in on_path and n is not wrt and n is not output]
    if factors == "auto":
        factors = "labels" if any(not named[id(n)][1] for n in interior) else "ops"
    stops = ({id(n) for n in order} if factors == "ops" else
             {id(n) for n in interior if not named[id(n)][1]} | {id(output), id(wrt)})

    memo: dict = {}  # paths found depth first share prefixes: each prefix's vjps run once
    paths = [_evaluate(edges, seed, stops, named, memo)
             for edges in _enumerate_paths(output, wrt, on_path, max_paths)]
    _disambiguate(paths, named)
    return ChainRule(output, wrt, paths, count[id(output)], total, named, precision, grad)


def _total_to_constant(output, seed, wrt):
    """d(output)/d(wrt) for a wrt that does not require grad: the engine's backward on the
    side gives each consumer of wrt its total, and the consumers' vjps give the rest."""
    total = None

    def watch(node, g, sends):
        nonlocal total
        for i, p in enumerate(node._parents):
            if p is wrt:
                part = _vjp(node, g)[i]
                total = part if total is None else total + part

    _backprop([output], [seed], observer=watch)
    return total


def _enumerate_paths(output, wrt, on_path, limit) -> Iterator[list]:
    """The first `limit` paths from output to wrt, each a list of edges (node, input index),
    depth first (iteratively)."""
    if limit == 0:
        return
    if output is wrt:
        yield []
        return
    found = 0
    edges: list = []
    stack = [iter(_path_edges(output, on_path))]
    while stack:
        step = next(stack[-1], None)
        if step is None:
            stack.pop()
            if edges:
                edges.pop()
            continue
        node, i = step
        edges.append(step)
        parent = node._parents[i]
        if parent is wrt:
            yield list(edges)
            found += 1
            if found >= limit:
                return
            edges.pop()
        else:
            stack.append(iter(_path_edges(parent, on_path)))


def _path_edges(node, on_path) -> list:
    return [(node, i) for i, p in enumerate(node._parents) if id(p) in on_path]


def _evaluate(edges, seed, stops, named, memo) -> Path:
    """Group a path's edges into factors between stop nodes and evaluate them. `memo`
    maps (prefix, node, input) to (the longer prefix, the gradient it carries, the edge's
    local derivative for scalars), shared by the paths of one chain_rule."""
    if not edges:
        return Path([], seed)
    scalar = isinstance(edges[0][0], Value)
    factors, run, g = [], [], seed
    upper = edges[0][0]
    value, diagonal, ops = 1.0, True, []
    prefix = -1
    for node, i in edges:
        parent = node._parents[i]
        key = (prefix, id(node), i)
        if key not in memo:
            memo[key] = (len(memo), _vjp(node, g)[i], _vjp(node, 1.0)[i] if scalar else None)
        prefix, g, local = memo[key]
        if scalar:
            value *= local
        diagonal = diagonal and _diagonal(node, parent)
        ops.append(node._prim.name)
        run.append((node, i))
        if id(parent) in stops:
            name = f"d({named[id(upper)][0]})/d({named[id(parent)][0]})"
            factors.append(Factor(name, upper, parent, _shape(upper) + _shape(parent),
                                  diagonal, value if scalar else None, g, ops,
                                  tuple((id(n), k) for n, k in run)))
            upper, value, diagonal, ops, run = parent, 1.0, True, [], []
    return Path(factors, g)


def _disambiguate(paths, named) -> None:
    """Where two listed factors join the same pair of nodes by different routes (x * x's two
    edges, or two ways through unnamed ops), say which route each one takes."""
    routes: dict = {}
    for path in paths:
        for f in path.factors:
            routes.setdefault((id(f.upper), id(f.lower)), set()).add(f.route)
    for path in paths:
        for f in path.factors:
            if len(routes[(id(f.upper), id(f.lower))]) > 1:
                via = " <- ".join(named[nid][0] for nid, _ in f.route[1:])
                f.name += f" [{'via ' + via + ', ' if via else ''}input {f.route[-1][1]}]"
