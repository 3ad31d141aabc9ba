"""Pictures of the computation graph and of the chain rule at work.

- `draw_graph(root)`: a graphviz picture of every node reachable from `root`, with values,
  gradients and the local derivative d(out)/d(in) on each edge.
- `chain_rule(output, wrt)`: d(output)/d(wrt) written as the sum over paths of products of
  named local derivatives, each evaluated.
- `backward_steps(root)`: backpropagation one node at a time, as text and pictures.

None of them changes the graph, its saved buffers or any `.grad`: derivatives are
recomputed on the side from each op's vjp. This module imports graphviz; the engine never
imports this module (`autodiff.draw_graph` loads it on first use).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import graphviz
import numpy as np

from .engine import Node
from .tensor import Tensor, fit_array
from .value import Value

__all__ = ["draw_graph", "chain_rule", "backward_steps", "ChainRule", "Step", "Graph",
           "DotNotFoundError"]

# Ops whose Jacobian is diagonal when input and output have the same shape.
_ELEMENTWISE = frozenset({
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "exp", "log", "sqrt",
    "abs", "tanh", "sigmoid", "relu", "clip", "pow_const", "where", "astype", "add_const",
    "mul_const"})
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@",
            "neg": "neg", "pow_const": "**", "add_const": "+", "mul_const": "*"}
_COMMUTATIVE = frozenset({"add", "mul", "maximum", "minimum"})
_VIEWS = ("both", "forward", "backward")

_RED = "#d62728"
_PARAM_FILL = "#dbeafe"
_CONST_FILL = "#f3f4f6"
_ROOT_FILL = "#dcfce7"
_OP_FILL = "#eeeeee"
_HIGHLIGHT = "#ff7f0e"


# ---------------------------------------------------------------------------------------
# Walking the graph, and derivatives computed on the side

def _as_roots(root, where: str) -> tuple:
    roots = tuple(root) if isinstance(root, (list, tuple)) else (root,)
    if not roots:
        raise ValueError(f"{where}: no node given")
    for r in roots:
        if not isinstance(r, Node):
            raise TypeError(f"{where}: expected a Value or a Tensor, got {type(r).__name__}")
    return roots


def _topo(roots) -> list:
    """Every node reachable from `roots`, inputs before the nodes computed from them
    (iterative depth-first post-order, so depth is not limited by recursion)."""
    order, seen = [], set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root._parents))]
        while stack:
            node, parents = stack[-1]
            for p in parents:
                if id(p) not in seen:
                    seen.add(id(p))
                    stack.append((p, iter(p._parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _inputs(node) -> tuple:
    """The operands the op's vjp reads: the saved ones, or the parents' data once a
    backward() released them."""
    return node._saved if node._saved is not None else tuple(p.data for p in node._parents)


def _vjp(node, g) -> tuple:
    """g times d(node)/d(input) for every input of `node`, each in its input's shape.

    Runs the op's own vjp on plain numbers (never on graph nodes), so nothing is recorded
    and no `.grad` changes.
    """
    op, kw = node._op, node._kw
    if kw and "need" in kw:  # the engine may skip inputs that need no grad; we want all
        kw = dict(kw, need=(True,) * len(node._parents))
    if kw and "cache" in kw:  # a forward's cache is the real backward's to consume
        kw = dict(kw, cache={})
    inputs = _inputs(node)
    with np.errstate(all="ignore"):
        try:
            grads = op.vjp(g, node.data, *inputs, **kw) if kw else op.vjp(g, node.data, *inputs)
        except (ZeroDivisionError, OverflowError):
            # A scalar rule divided by zero in Python floats; numpy floats give IEEE inf/nan.
            f64 = np.float64
            grads = op.vjp(f64(g), f64(node.data), *(f64(x) for x in inputs), **(kw or {}))
    out = []
    for parent, pg in zip(node._parents, grads):
        if pg is None:
            out.append(None)
        elif isinstance(parent, Tensor):
            out.append(fit_array(np.asarray(pg), parent))
        else:
            out.append(float(pg))
    return tuple(out)


def _seed(root, grad_output, where: str):
    if isinstance(root, Value):
        return 1.0 if grad_output is None else float(grad_output)
    if grad_output is None:
        if root.data.size != 1:
            raise ValueError(f"{where}: the output has shape {root.shape}; pass grad_output= "
                             "an array of that shape (it can be omitted only for one element)")
        return np.ones_like(root.data)
    g = np.asarray(grad_output.data if isinstance(grad_output, Tensor) else grad_output,
                   dtype=root.data.dtype)
    if g.shape != root.shape:
        raise ValueError(f"{where}: grad_output has shape {g.shape} but the output has shape "
                         f"{root.shape}")
    return g


def _replay(order, seeds: dict, wanted) -> Iterator[tuple]:
    """Backpropagate on the side, in reverse topological order.

    Yields (node, total gradient, sends) for every node reached, where sends lists
    (input index, input, contribution, input's gradient before, after). The engine's loop
    refuses a released graph and writes `.grad`; this one reads only forward data, so the
    explainer also works after backward(), and it reports each step, which the engine
    does not expose.
    """
    acc = dict(seeds)
    for node in reversed(order):
        g = acc.get(id(node))
        if g is None:
            continue
        sends = []
        if node._op is not None and any(wanted(p) for p in node._parents):
            for i, (p, pg) in enumerate(zip(node._parents, _vjp(node, g))):
                if pg is None or not wanted(p):
                    continue
                before = acc.get(id(p))
                after = pg if before is None else before + pg
                acc[id(p)] = after
                sends.append((i, p, pg, before, after))
        yield node, g, sends


def _requires_grad(node) -> bool:
    return node.requires_grad


# ---------------------------------------------------------------------------------------
# Names and number formatting

def _param_names(spec) -> dict:
    """id(node) -> name, from a module (its parameter names) or a mapping node -> name."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping) and all(isinstance(k, Node) for k in spec):
        return {id(k): str(v) for k, v in spec.items()}
    return _cluster_spec(spec)[1]


def _names(order, given: dict) -> dict:
    """id(node) -> (name, generated?): its label, else a given name, else the op's name
    numbered in topological order ('mul', 'mul2', ...; 'leaf' for unlabeled leaves)."""
    named, bases = {}, []
    for node in order:
        label = node.label or given.get(id(node))
        if label:
            named[id(node)] = (str(label), False)
        else:
            bases.append((node, "leaf" if node._op is None else node._op.name))
    totals = Counter(base for _, base in bases)
    seen = Counter()
    for node, base in bases:
        seen[base] += 1
        named[id(node)] = (base if totals[base] == 1 else f"{base}{seen[base]}", True)
    return named


def _num(x, precision: int = 4) -> str:
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.{precision}g}"
    return "0" if text == "-0" else text


def _factor_num(x, precision: int) -> str:
    text = _num(x, precision)
    return f"({text})" if text.startswith("-") else text


def _array_text(a: np.ndarray, precision: int, *, threshold: int = 12) -> str:
    """A short preview of an array's values."""
    a = np.asarray(a)
    if a.ndim == 0 or a.size == 1:
        return _num(a.reshape(()), precision) if a.dtype.kind in "biuf" else str(a)
    return np.array2string(a, precision=precision, threshold=threshold, edgeitems=2,
                           max_line_width=48, separator=" ",
                           formatter={"float_kind": lambda v: _num(v, precision)})


def _stats_text(a: np.ndarray, precision: int) -> str:
    """min / mean / max / norm of the finite entries, and how many are not finite."""
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)]
    parts = []
    if finite.size:
        parts.append(f"min {_num(finite.min(), precision)}  mean {_num(finite.mean(), precision)}"
                     f"  max {_num(finite.max(), precision)}  "
                     f"norm {_num(np.linalg.norm(finite), precision)}")
    bad = a.size - finite.size
    if bad:
        parts.append(f"{int(np.isnan(a).sum())} nan, {int(np.isinf(a).sum())} inf")
    return "; ".join(parts)


def _finite(x) -> bool:
    if x is None:
        return True
    if isinstance(x, float):
        return math.isfinite(x)
    a = np.asarray(x)
    return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())


def _shape(node) -> tuple:
    return () if isinstance(node, Value) else tuple(node.data.shape)


def _kind(shape: tuple) -> str:
    return {0: "scalar", 1: "vector", 2: "matrix"}.get(len(shape), f"{len(shape)}-d tensor")


def _diagonal(node, parent) -> bool:
    """Whether d(node)/d(parent) is diagonal: an elementwise op with equal shapes."""
    return node._op.name in _ELEMENTWISE and _shape(node) == _shape(parent)


def _short(v, limit: int = 18) -> str:
    text = repr(v.tolist() if isinstance(v, np.ndarray) else v)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _op_text(node) -> str:
    """An op node's caption: its symbol or name and its options."""
    op, kw = node._op, dict(node._kw or {})
    for hidden in ("need", "cond", "cache"):
        kw.pop(hidden, None)
    text = _SYMBOLS.get(op.name, op.name)
    if "c" in kw and op.name.endswith("_const"):
        return f"{text} {_num(kw['c'])}"
    if op.name == "affine":
        return f"b + Σ w·x (n={kw['n']})"
    if op.name in ("sum", "mean", "max", "min", "logsumexp") and not kw.get("keepdims"):
        kw.pop("keepdims", None)
    if kw.get("axis", 0) is None:
        kw.pop("axis")
    if kw:
        text += "(" + ", ".join(f"{k}={_short(v)}" for k, v in kw.items()) + ")"
    return text


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _lines(text: str) -> str:
    return "<br/>".join(_esc(line) for line in text.split("\n"))


# ---------------------------------------------------------------------------------------
# draw_graph

_INSTALL = ("Rendering a graph needs Graphviz's `dot` program, which was not found on PATH. "
            "Install it: `sudo apt-get install graphviz` (Debian/Ubuntu), "
            "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`. "
            "The DOT text needs no `dot`: it is `str(graph)` / `graph.source`.")


class DotNotFoundError(graphviz.ExecutableNotFound):
    """Graphviz's `dot` program is missing; the message says how to install it."""

    def __init__(self) -> None:
        RuntimeError.__init__(self, _INSTALL)


class Graph(graphviz.Digraph):
    """A `graphviz.Digraph` whose rendering says how to install `dot` when it is missing."""

    def pipe(self, *args, **kwargs):
        try:
            return super().pipe(*args, **kwargs)
        except graphviz.ExecutableNotFound as err:
            raise DotNotFoundError() from err

    def render(self, *args, **kwargs):
        try:
            return super().render(*args, **kwargs)
        except graphviz.ExecutableNotFound as err:
            raise DotNotFoundError() from err

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # In a notebook without `dot`, show the advice instead of a traceback.
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except DotNotFoundError as err:
            return {"text/plain": str(err)}


def _cluster_spec(clusters) -> tuple[list, dict]:
    """Normalise `clusters` to [(name, [nodes])] and names of parameters (id -> name).

    Accepted: a module with named_parameters() (one cluster per sub-module), a mapping
    name -> nodes or module, or a sequence of (name, nodes or module) pairs.
    """
    if clusters is None:
        return [], {}
    groups: dict[str, list] = {}
    names: dict[int, str] = {}

    def join(prefix: str, name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    def param(prefix: str, group: str, name: str, p) -> None:
        names[id(p)] = join(prefix, name)
        groups.setdefault(group, []).append(p)

    def add(prefix: str, item) -> None:
        if isinstance(item, Node):
            groups.setdefault(prefix, []).append(item)
        elif hasattr(item, "named_parameters"):  # nn.Module: a cluster per sub-module
            kinds = {}
            if hasattr(item, "named_modules"):
                kinds = {name: type(m).__name__ for name, m in item.named_modules()}
            for name, p in item.named_parameters():
                owner = name.rsplit(".", 1)[0] if "." in name else ""
                kind = kinds.get(owner)
                group = join(prefix, owner) or type(item).__name__
                if owner and kind:
                    group += f": {kind}"
                param(prefix, group, name, p)
        elif hasattr(item, "layers") or hasattr(item, "neurons"):  # scalar MLP / Layer
            letter, subs = ("L", item.layers) if hasattr(item, "layers") else ("N", item.neurons)
            for i, sub in enumerate(subs):
                add(join(prefix, f"{letter}{i}"), sub)
        elif hasattr(item, "w") and hasattr(item, "b"):  # a scalar Neuron
            group = prefix or "neuron"
            for i, w in enumerate(item.w):
                param(prefix, group, f"w{i}", w)
            param(prefix, group, "b", item.b)
        elif hasattr(item, "parameters"):
            groups.setdefault(prefix or type(item).__name__, []).extend(item.parameters())
        else:
            for x in item:
                add(prefix, x)

    if hasattr(clusters, "named_parameters") or hasattr(clusters, "parameters"):
        add("", clusters)
    else:
        pairs = clusters.items() if isinstance(clusters, Mapping) else clusters
        for name, item in pairs:
            add(str(name), item)
    return list(groups.items()), names


def _memberships(order, groups) -> dict:
    """id(node) -> cluster index: the given nodes, the nodes computed only from them (W.T),
    and the ops that consume them (x @ W.T, ... + b) or combine two members (a sum)."""
    member, pure = {}, set()
    for k, (_, nodes) in enumerate(groups):
        for n in nodes:
            member[id(n)] = k
            pure.add(id(n))
    for node in order:
        if id(node) in member or node._op is None:
            continue
        pure_ks = {member[id(p)] for p in node._parents if id(p) in pure}
        any_ks = [member[id(p)] for p in node._parents if id(p) in member]
        if pure_ks:
            k = max(pure_ks)
            member[id(node)] = k
            if all(id(p) in pure and member[id(p)] == k
                   for p in node._parents if p.requires_grad):
                pure.add(id(node))
        elif len(any_ks) >= 2 and len(set(any_ks)) == 1:
            member[id(node)] = any_ks[0]
    return member


def _nearest(roots, limit: int | None) -> tuple[list, bool]:
    """The first `limit` nodes met going back from the roots (breadth first)."""
    seen = {id(r) for r in roots}
    out = list(dict.fromkeys(roots))
    queue = deque(out)
    while queue:
        node = queue.popleft()
        for p in node._parents:
            if id(p) not in seen:
                if limit is not None and len(out) >= limit:
                    return out, True
                seen.add(id(p))
                out.append(p)
                queue.append(p)
    return out, False


# `dot` slows down sharply with long edges (it lays out one virtual node per rank an edge
# crosses): on a long chain of adds fed by shared leaves, 2,500 of them take 0.1 s, 6,000
# take 30 s. Above this estimate the picture keeps fewer nodes.
_LAYOUT_BUDGET = 2500


def _layout_cost(shown, index) -> int:
    """Estimated virtual nodes `dot` needs for these nodes: the ranks their edges cross."""
    visible = {id(n) for n in shown}
    rank, heads, hidden_heads = {}, {}, []
    for node in sorted(shown, key=lambda n: index[id(n)]):
        if node._op is None:
            continue
        ranks = [rank[id(p)] for p in node._parents if id(p) in rank]
        op_rank = max(ranks, default=0) + 1
        rank[id(node)] = op_rank + 1
        for p in node._parents:
            if id(p) in visible:
                heads.setdefault(id(p), []).append(op_rank)
            else:
                hidden_heads.append(op_rank)
    cost = 0
    for tail, ranks in list(heads.items()) + [("hidden", hidden_heads)]:
        if ranks:
            # a leaf (or the summary node) sits just before its first consumer
            start = rank.get(tail, min(ranks) - 1)
            cost += sum(r - start - 1 for r in ranks)
    return cost


def _first_bad_grad(order, roots) -> int | None:
    """id of the op whose vjp first (in backward order) turned a finite gradient into
    nan/inf, found by backpropagating on the side."""
    seeds = {}
    for r in roots:
        try:
            seeds[id(r)] = _seed(r, None, "draw_graph")
        except ValueError:
            return None
    try:
        for node, g, sends in _replay(order, seeds, _requires_grad):
            if _finite(g) and not all(_finite(s[2]) for s in sends):
                return id(node)
    except Exception:  # a best-effort hint: never let it break the picture
        return None
    return None


def draw_graph(root, *, rankdir: str = "LR", show_grad: bool = True, view: str = "both",
               edge_labels: bool | None = None, clusters=None, max_nodes: int | None = 500,
               grads: Mapping | None = None, highlight: Iterable = (),
               precision: int = 4) -> Graph:
    """Draw the computation graph behind `root` (a Value or a Tensor, or a list of them).

    Each value node shows its name (label, or a generated name such as 'mul2' in
    italics), its value (a Tensor: dtype, shape, a preview, and min/mean/max/norm when
    large) and, with `show_grad`, its `.grad` where one is kept. Each operation is one node
    named after it ('+', '*', '@', 'tanh', ...); each edge input -> op is labeled with the
    local derivative d(out)/d(in) (a number for scalars, the Jacobian's shape for tensors).
    Non-finite values and gradients are red, and the op that first produced them is filled
    red. The graph and its gradients are never changed.

    Options: `view` 'both', 'forward' (values only) or 'backward' (gradients first, edges
    pointing from each op back to its inputs, as gradients flow); `edge_labels` (default:
    on except in the forward view); `clusters` groups nodes into boxes (a module, a mapping
    name -> nodes/module, or (name, nodes) pairs; a module's parameter names name its
    tensors); `max_nodes` keeps the nodes nearest the root and collapses the rest into one
    summary node (None: draw all; `dot` gets slow beyond a few thousand); `grads` shows
    these gradients (node -> gradient) instead of `.grad`; `highlight` outlines nodes.

    >>> from autodiff import Value
    >>> a = Value(2.0, label="a"); b = a * a
    >>> src = draw_graph(b).source          # DOT text; no `dot` program needed
    >>> src.count("-> n1op") >= 2           # both edges of a * a
    True
    """
    roots = _as_roots(root, "draw_graph")
    if view not in _VIEWS:
        raise ValueError(f"draw_graph: view must be one of {_VIEWS}, got {view!r}")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be at least 1 (or None), got {max_nodes}")
    show_grad = show_grad and view != "forward"
    if edge_labels is None:
        edge_labels = view != "forward"
    backward = view == "backward"

    order = _topo(roots)
    index = {id(n): i for i, n in enumerate(order)}
    groups, param_names = _cluster_spec(clusters)
    names = _names(order, param_names)
    shown, collapsed = _nearest(roots, max_nodes)
    if max_nodes is not None:
        while len(shown) > 20 and _layout_cost(shown, index) > _LAYOUT_BUDGET:
            shown, collapsed = shown[:len(shown) * 4 // 5], True
    visible = {id(n) for n in shown}

    override = None if grads is None else {id(k): v for k, v in grads.items()}

    def grad_of(node):
        if not show_grad:
            return None
        if override is not None:
            return override.get(id(node))
        return node.grad

    # Non-finite values: the first node in topological order whose data is nan/inf.
    bad_data = {id(n) for n in order if not _finite(n.data)}
    first_bad = next((id(n) for n in order if id(n) in bad_data), None)
    bad_grad = {id(n) for n in order if not _finite(grad_of(n))} if show_grad else set()
    first_bad_grad = _first_bad_grad(order, roots) if bad_grad else None
    marked = {id(n) for n in highlight}
    root_ids = {id(r) for r in roots}
    member = _memberships(order, groups)

    dot = Graph(name="autodiff", graph_attr={"rankdir": rankdir, "fontname": "Helvetica",
                                             "nodesep": "0.25", "ranksep": "0.35"},
                node_attr={"fontname": "Helvetica", "fontsize": "10"},
                edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.6"})

    def node_id(node) -> str:
        return f"n{index[id(node)]}"

    def emit(g, node) -> None:
        name, generated = names[id(node)]
        fill = (_ROOT_FILL if id(node) in root_ids else
                _CONST_FILL if not node.requires_grad else
                _PARAM_FILL if node._op is None else "white")
        border = (_RED if id(node) in bad_data or id(node) in bad_grad else
                  _HIGHLIGHT if id(node) in marked else "#555555")
        width = "3" if id(node) in marked or id(node) == first_bad else "1"
        cells = _node_cells(node, name, generated, grad_of(node), backward, precision,
                            id(node) in bad_data, id(node) in bad_grad)
        if id(node) == first_bad and node._op is None:
            cells.append(f'<font color="{_RED}">non-finite input</font>')
        horizontal = isinstance(node, Value)
        body = ("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" if horizontal
                else "".join(f"<tr><td>{c}</td></tr>" for c in cells))
        label = (f'<<table border="{width}" cellborder="{1 if horizontal else 0}" '
                 f'cellspacing="0" cellpadding="3" color="{border}" bgcolor="{fill}">'
                 f"{body}</table>>")
        g.node(node_id(node), label=label, shape="plain")
        if node._op is not None:
            attrs = {"tooltip": f"{node._op.name}: {node._op.math}"}
            text = _op_text(node)
            if id(node) == first_bad or id(node) == first_bad_grad:
                attrs.update(style="filled", fillcolor=_RED, fontcolor="white")
                text += ("\nfirst nan/inf value" if id(node) == first_bad
                         else "\nfirst nan/inf gradient")
            else:
                attrs.update(style="filled", fillcolor=_OP_FILL)
            g.node(node_id(node) + "op", label=text, shape="ellipse", height="0.3",
                   margin="0.04", **attrs)

    # Nodes, inside their cluster boxes where they have one.
    by_cluster: dict[int | None, list] = {}
    for node in shown:
        by_cluster.setdefault(member.get(id(node)), []).append(node)
    for k, (cname, _) in enumerate(groups):
        if k in by_cluster:
            with dot.subgraph(name=f"cluster_{k}") as sub:
                sub.attr(label=cname, style="rounded,dashed", color="#888888",
                         fontname="Helvetica", fontsize="10")
                for node in by_cluster[k]:
                    emit(sub, node)
    for node in by_cluster.get(None, ()):
        emit(dot, node)

    # Edges: input -> op -> output (reversed arrows in the backward view).
    direction = {"dir": "back", "color": "#b45309"} if backward else {}
    hidden_inputs: Counter = Counter()
    for node in shown:
        if node._op is None:
            continue
        op_id = node_id(node) + "op"
        dot.edge(op_id, node_id(node), **direction)
        locals_ = _edge_texts(node, names, precision) if edge_labels else None
        for i, parent in enumerate(node._parents):
            if id(parent) not in visible:
                hidden_inputs[op_id] += 1
                continue
            attrs = dict(direction)
            if locals_ is not None:
                attrs.update(label=locals_[i][0], tooltip=locals_[i][1], fontcolor="#1d4ed8")
            dot.edge(node_id(parent), op_id, **attrs)

    if collapsed:
        _summary_node(dot, order, visible, names, first_bad, first_bad_grad, hidden_inputs,
                      max_nodes, direction)
    legend = ["edge labels: local derivative d(out)/d(in)"] if edge_labels else []
    if backward:
        legend.append("backward view: gradients flow along the arrows, right to left")
    if legend:
        dot.attr(label="\n".join(legend), labelloc="b", fontsize="9", fontcolor="#555555")
    return dot


def _node_cells(node, name, generated, grad, backward, precision, bad_data, bad_grad) -> list:
    """The HTML cells of a value node: name, value, gradient."""
    title = f"<i>{_esc(name)}</i>" if generated else f"<b>{_esc(name)}</b>"

    def red(text, bad):
        return f'<font color="{_RED}">{text}</font>' if bad else text

    if isinstance(node, Value):
        data = red(f"data {_num(node.data, precision)}", bad_data)
        cells = [title, data]
        if grad is not None:
            cells.insert(1 if backward else 2, red(f"grad {_num(grad, precision)}", bad_grad))
        return cells
    a = node.data
    title += f" {a.dtype} {_esc(str(a.shape))}"
    data_cells = [red(_lines(_array_text(a, precision - 1)), bad_data)]
    if a.size > 12 and a.dtype.kind in "biuf":
        data_cells.append(f'<font point-size="8">{_esc(_stats_text(a, precision - 1))}</font>')
    if backward:  # values recede, gradients lead
        data_cells = [f'<font color="#777777">{c}</font>' for c in data_cells]
    grad_cells = []
    if grad is not None:
        g = np.asarray(grad)
        grad_cells.append(red("grad " + _lines(_array_text(g, precision - 1)), bad_grad))
        if g.size > 12:
            grad_cells.append(f'<font point-size="8">grad {_esc(_stats_text(g, precision - 1))}'
                              "</font>")
    return [title] + (grad_cells + data_cells if backward else data_cells + grad_cells)


def _edge_texts(node, names, precision) -> list:
    """(label, tooltip) for each input edge of `node`: the local derivative d(node)/d(input),
    its value for scalars (the vjp with g = 1), the Jacobian's shape for tensors."""
    out_name = names[id(node)][0]
    parents = node._parents
    tag = len(parents) > 1 and node._op.name not in _COMMUTATIVE
    letters = "ab" if len(parents) == 2 else None
    values = None
    if isinstance(node, Value) or (node.data.size == 1 and all(p.data.size == 1 for p in parents)):
        try:
            values = _vjp(node, 1.0 if isinstance(node, Value) else np.ones_like(node.data))
        except Exception:  # an op whose rule cannot run on these numbers: show no value
            values = None
    texts = []
    for i, p in enumerate(parents):
        if values is not None and values[i] is not None:
            body = _num(np.asarray(values[i]).reshape(()), precision)
        elif _diagonal(node, p):
            body = f"diag {_shape(p)}"
        else:
            body = str(_shape(node) + _shape(p))
        prefix = (letters[i] if letters else str(i)) + ": " if tag else ""
        tip = f"d({out_name})/d({names[id(p)][0]}) = {body}"
        texts.append((prefix + body, tip))
    return texts


def _summary_node(dot, order, visible, names, first_bad, first_bad_grad, hidden_inputs,
                  max_nodes, direction) -> None:
    hidden = [n for n in order if id(n) not in visible]
    ops = Counter(n._op.name for n in hidden if n._op is not None)
    leaves = sum(1 for n in hidden if n._op is None)
    top = ", ".join(f"{c:,} {name}" for name, c in ops.most_common(5))
    lines = [f"... {len(hidden):,} more nodes not drawn",
             f"(showing the {len(visible):,} nearest the output; max_nodes={max_nodes})"]
    if top:
        lines.append(f"ops: {top}" + (", ..." if len(ops) > 5 else ""))
    lines.append(f"{leaves:,} lea{'f' if leaves == 1 else 'ves'}")
    for which, marker in (("value", first_bad), ("gradient", first_bad_grad)):
        if marker is not None and marker not in visible:
            lines.append(f"first nan/inf {which} at hidden node {names[marker][0]}")
    color = _RED if "first nan/inf" in lines[-1] else "#555555"
    dot.node("hidden", label="\n".join(lines), shape="box", style="dashed,rounded",
             color=color, fontcolor=color)
    for op_id, count in hidden_inputs.items():
        dot.edge("hidden", op_id, style="dashed",
                 label=f"{count} inputs" if count > 1 else "", **direction)


# ---------------------------------------------------------------------------------------
# chain_rule

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
        note = (" (0: has backward() run?)" if not np.any(self.grad) else
                " (gradients accumulate over backward passes until reset)")
        return (f"{wrt}.grad = " + _indent(self._value(self.grad), len(wrt) + 8)
                + f" differs from the total ✗{note}")

    def __repr__(self) -> str:
        return (f"<ChainRule d({self._name(self.output)})/d({self._name(self.wrt)}): "
                f"{self.num_paths} paths>")

    def _repr_markdown_(self) -> str:
        out, wrt = _tex(self._name(self.output)), _tex(self._name(self.wrt))
        lines = [f"**Chain rule** $\\dfrac{{\\partial {out}}}{{\\partial {wrt}}}$: "
                 f"{self.num_paths:,} path{'s' if self.num_paths != 1 else ''}", "",
                 "| path | product of local derivatives | value |", "|---|---|---|"]
        for k, path in enumerate(self.paths, 1):
            factors = " \\cdot ".join(
                f"\\frac{{\\partial {_tex(self._name(f.upper))}}}{{\\partial "
                f"{_tex(self._name(f.lower))}}}" for f in path.factors)
            value = (_num(path.value, self._precision) if self.scalar
                     else f"shape {np.shape(path.value)}")
            lines.append(f"| {k} | ${factors}$ | {value} |")
        if len(self.paths) < self.num_paths:
            lines.append(f"| … | {self.num_paths - len(self.paths):,} more paths | |")
        lines.append("")
        lines.append("```text\n" + str(self) + "\n```")
        return "\n".join(lines)


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
    seed = _seed(output, grad_output, "chain_rule")
    order = _topo([output])
    named = _names(_topo([output, wrt]), _param_names(names))  # wrt may be elsewhere
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

    # The total over all paths, by backpropagating on the side through the path nodes.
    total = None
    for node, g, _ in _replay(order, {id(output): seed}, lambda p: id(p) in on_path):
        if node is wrt:
            total = g
            break

    interior = [n for n in order if id(n) in on_path and n is not wrt and n is not output]
    if factors == "auto":
        factors = "labels" if any(not named[id(n)][1] for n in interior) else "ops"
    stops = ({id(n) for n in order} if factors == "ops" else
             {id(n) for n in interior if not named[id(n)][1]} | {id(output), id(wrt)})

    paths = [_evaluate(edges, seed, stops, named)
             for edges in _enumerate_paths(output, wrt, on_path, max_paths)]
    _disambiguate(paths, named)
    return ChainRule(output, wrt, paths, count[id(output)], total, named, precision, grad)


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


def _evaluate(edges, seed, stops, named) -> Path:
    """Group a path's edges into factors between stop nodes and evaluate them."""
    if not edges:
        return Path([], seed)
    scalar = isinstance(edges[0][0], Value)
    factors, run, g = [], [], seed
    upper = edges[0][0]
    value, diagonal, ops = 1.0, True, []
    for node, i in edges:
        parent = node._parents[i]
        if scalar:
            value *= _vjp(node, 1.0)[i]
        g = _vjp(node, g)[i]
        diagonal = diagonal and _diagonal(node, parent)
        ops.append(node._op.name)
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


# ---------------------------------------------------------------------------------------
# backward_steps

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
