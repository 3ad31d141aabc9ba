"""`draw_graph`: a graphviz picture of a computation graph, with values, gradients and
the local derivative d(out)/d(in) on each edge."""

from __future__ import annotations

from collections import Counter, deque
from typing import Iterable, Mapping

import graphviz
import numpy as np

from ..engine import Node
from ..value import Value
from ._common import (
    RULE_FAILURES, _CONST_FILL, _HIGHLIGHT, _OP_FILL, _PARAM_FILL, _RED, _ROOT_FILL, _VIEWS,
    _all_grads, _array_text, _as_roots, _backprop, _check_precision, _cluster_spec, _diagonal,
    _esc, _finite, _group_jacobians, _jacobian_text, _lines, _names, _num, _op_text, _seed,
    _shape, _size, _stats_text, _sub, _topo, _visible, _vjp)
from ..scope import scopes_of
from .groups import (check_collapse, collapse_groups, merge_constants, module_clusters,
                     neuron_scopes, scalar_model, shared_parameters)


_INSTALL = ("Rendering a graph needs Graphviz's `dot` program, which was not found on PATH. "
            "Install it: `sudo apt-get install graphviz` (Debian/Ubuntu), "
            "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`. "
            "The DOT text needs no `dot`: it is `str(graph)` / `graph.source`.")


def _attr(text: str) -> str:
    """Text for a plain (not HTML-like) attribute, shown as it is: a backslash would
    start an escape (a final one swallows the closing quote), text in <...> would be
    read as HTML, an entity (&amp;) would be decoded, and control characters are made
    visible; a newline breaks the line."""
    text = "\n".join(_visible(line) for line in text.split("\n"))
    return graphviz.escape(text.replace("&", "&amp;"))


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


def _memberships(order, groups) -> dict:
    """id(node) -> cluster index: the given nodes, the nodes computed only from them (W.T),
    the ops that consume them (x @ W.T, ... + b) or combine two members (a sum), and an
    activation applied to a member (so a neuron's tanh sits in its neuron's box)."""
    member, pure, layer_out = {}, set(), set()
    for k, (_, nodes) in enumerate(groups):
        for n in nodes:
            member[id(n)] = k
            pure.add(id(n))
    for node in order:
        if id(node) in member or node._prim is None:
            continue
        pure_ks = {member[id(p)] for p in node._parents if id(p) in pure}
        any_ks = [member[id(p)] for p in node._parents if id(p) in member]
        if pure_ks:
            k = max(pure_ks)
            member[id(node)] = k
            layer_out.add(id(node))
            if all(id(p) in pure and member[id(p)] == k
                   for p in node._parents if p.requires_grad):
                pure.add(id(node))
        elif len(any_ks) >= 2 and len(set(any_ks)) == 1:
            member[id(node)] = any_ks[0]
        elif (len(node._parents) == 1 and id(node._parents[0]) in layer_out
              and node._prim.elementwise and not node._kw):  # its activation
            member[id(node)] = any_ks[0]
    return member


def _nearest(roots, limit: int | None, inputs_of) -> tuple[list, bool]:
    """The first `limit` nodes met going back from the roots (breadth first)."""
    seen = {id(r) for r in roots}
    out = list(dict.fromkeys(roots))
    queue = deque(out)
    while queue:
        node = queue.popleft()
        for p in inputs_of(node):
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


def _ranks(shown, index, inputs_of) -> dict:
    """id(node) -> its rank in the picture (leaves 0; an op and its output take two)."""
    rank = {}
    for node in sorted(shown, key=lambda n: index[id(n)]):
        parents = inputs_of(node)
        if parents:
            rank[id(node)] = max((rank.get(id(p), 0) for p in parents), default=0) + 2
    return rank


def _layout_cost(shown, index, inputs_of) -> int:
    """Estimated virtual nodes `dot` needs for these nodes: the ranks their edges cross."""
    visible = {id(n) for n in shown}
    rank, heads, hidden_heads = {}, {}, []
    for node in sorted(shown, key=lambda n: index[id(n)]):
        parents = inputs_of(node)
        if not parents:
            continue
        ranks = [rank[id(p)] for p in parents if id(p) in rank]
        op_rank = max(ranks, default=0) + 1
        rank[id(node)] = op_rank + 1
        for p in parents:
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


class _Found(Exception):
    def __init__(self, node) -> None:
        self.node = node


def _first_bad_grad(roots) -> int | None:
    """id of the op whose vjp first (in the engine's backward order) turned a finite
    gradient into nan/inf, found by backpropagating on the side."""
    seeds = []
    for r in roots:
        try:
            seeds.append(_seed(r, None, "draw_graph"))
        except ValueError:
            return None

    def watch(node, g, sends):
        if _finite(g) and not all(_finite(contribution) for _, contribution, _, _ in sends):
            raise _Found(node)

    try:
        _backprop(roots, seeds, observer=watch)
    except _Found as found:
        return id(found.node)
    except RULE_FAILURES:  # a best-effort hint: never let it break the picture
        return None
    return None


_FLOW = {"LR": "right to left", "RL": "left to right", "TB": "bottom to top",
         "BT": "top to bottom"}


def draw_graph(root, *, rankdir: str = "auto", show_grad: bool = True, view: str = "both",
               edge_labels: bool | None = None, clusters=None, collapse=None,
               max_nodes: int | None = 500, grads: Mapping | None = None,
               highlight: Iterable = (), focus: Iterable = (), caption: str | None = None,
               precision: int = 4) -> Graph:
    """Draw the computation graph behind `root` (a Value or a Tensor, or a list of them).

    Each value node shows its name (label, or a generated name such as 'mul2' in
    italics), its value (a Tensor: dtype, shape, a preview, and min/mean/max/norm when
    large) and, with `show_grad`, its gradient d(root)/d(node), computed on the side
    through the engine's backward loop (the root shows 1; a root with more than one
    element shows `.grad` where kept). Each operation is one node named after it ('+',
    '*', '@', 'tanh', ...); each edge input -> op is labeled with the local derivative
    d(out)/d(in): a number for scalars, for tensors a short form of the Jacobian ('diag',
    'I', a matrix's name such as 'W1', or its 2-D shape rows×columns) with its full shape
    in the tooltip. Non-finite values and gradients are red, and the op that first
    produced them is filled red. The graph and its `.grad` are never changed.

    Groups: `collapse` draws each group of nodes recorded in an `autodiff.scope(name)`
    block or an nn module's call as ONE node, its edges labeled with the group's local
    derivatives (∂ of its output by each input): 'scopes' the outermost groups,
    'modules' the modules' calls (below the model given as `clusters`), an int the
    groups at that nesting depth, a set of names just those; None draws primitives (a
    graph above `max_nodes` nodes then collapses its modules, or its scopes, first; a
    scalar MLP's loss, its calls found from the weights they read, one node per sample).
    A module folded in several calls has its parameters drawn once, outside, and more
    than four as one node that feeds every call.
    `clusters` boxes nodes: a module (a box per sub-module call, named '0: Linear'; its
    parameter names name its tensors), a mapping name -> nodes/module, or (name, nodes)
    pairs.

    Options: `view` 'both', 'forward' (values only) or 'backward' (gradients first, edges
    pointing from each op back to its inputs, as gradients flow); `rankdir` 'auto' (top
    to bottom for a graph deeper than wide, else left to right), 'LR', 'TB', ...;
    `edge_labels` (default: on except in the forward view); `max_nodes` keeps the nodes
    nearest the root and collapses the rest into one summary node (None: draw all);
    `grads` shows these gradients (node -> gradient); `highlight` outlines nodes, `focus`
    fills them (the node a step processes); `caption` is a first line for the legend.

    >>> from autodiff import Value
    >>> a = Value(2.0, label="a"); b = a * a
    >>> src = draw_graph(b).source          # DOT text; no `dot` program needed
    >>> src.count("-> n1op") >= 2           # both edges of a * a
    True
    """
    roots = _as_roots(root, "draw_graph")
    _check_precision(precision, "draw_graph")
    if view not in _VIEWS:
        raise ValueError(f"draw_graph: view must be one of {_VIEWS}, got {view!r}")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be at least 1 (or None), got {max_nodes}")
    if rankdir != "auto" and rankdir not in _FLOW:
        raise ValueError(f"draw_graph: rankdir must be 'auto' or one of {tuple(_FLOW)}, "
                         f"got {rankdir!r}")
    check_collapse(collapse)
    show_grad = show_grad and view != "forward"
    if edge_labels is None:
        edge_labels = view != "forward"
    backward = view == "backward"

    order = _topo(roots)
    index = {id(n): i for i, n in enumerate(order)}
    groups, param_names = _cluster_spec(clusters)
    model = clusters if hasattr(clusters, "named_modules") else None
    scopes = scopes_of(order)
    for k, v in neuron_scopes(order, clusters).items():
        scopes[k] = scopes.get(k) or v
    if collapse is None and max_nodes is not None and len(order) > max_nodes:
        kinds = {s.kind for s in scopes.values() if s is not None}
        found = scalar_model(order) if not kinds and clusters is None else None
        if found is not None:  # a scalar MLP opens no scopes: its calls, from its weights
            scopes.update(neuron_scopes(order, found, nested=True))
            kinds = {"module"}
            param_names = _cluster_spec(found)[1]  # (and tells its weights from inputs)
        collapse = "modules" if "module" in kinds else "scopes" if kinds else None
    folded, folded_in = collapse_groups(order, roots, collapse, model, scopes)
    shared = shared_parameters(folded)
    merged = merge_constants(order, param_names)
    names = _names([n for n in order if id(n) not in merged], param_names)
    names.update({k: names[id(twin)] for k, twin in merged.items()})
    for g in folded:
        if len(g.outputs) == 1 and g.output_name and names[id(g.outputs[0])][1]:
            names[id(g.outputs[0])] = (g.output_name, False)
    group_index = {id(g): k for k, g in enumerate(folded)}

    def producer(node):
        """The group whose output `node` is, else None (its own op makes it)."""
        g = folded_in.get(id(node))
        # By identity: `in` would fall back to Tensor ==, an elementwise comparison.
        return g if g is not None and any(o is node for o in g.outputs) else None

    def inputs_of(node) -> list:
        g = producer(node)
        parents = g.inputs if g is not None else node._parents
        return list({id(q): q for q in (_drawn(p, merged) for p in parents)
                     if id(q) not in shared}.values())

    shown, collapsed = _nearest(roots, max_nodes, inputs_of)
    if max_nodes is not None:
        while len(shown) > 20 and _layout_cost(shown, index, inputs_of) > _LAYOUT_BUDGET:
            shown, collapsed = shown[:len(shown) * 4 // 5], True
    visible = {id(n) for n in shown}
    if rankdir == "auto":
        rank = _ranks(shown, index, inputs_of)
        depth = max(rank.values(), default=0) + 1
        breadth = max(Counter(rank.get(id(n), 0) for n in shown).values(), default=1)
        rankdir = "TB" if depth >= breadth else "LR"

    side = None
    if show_grad and grads is None and _after_backward(order):
        try:
            side = _all_grads(roots)
        except RULE_FAILURES:  # a rule that cannot run on these numbers: fall back to .grad
            side = None
    override = None if grads is None else {id(k): v for k, v in grads.items()}

    def grad_of(node):
        if not show_grad:
            return None
        if override is not None:
            return override.get(id(node))
        if side is not None:
            return side.get(id(node))
        g = node.grad
        return g.data if isinstance(g, Node) else g  # (a Tensor's .grad is a Tensor)

    # Non-finite values: the first node in topological order whose data is nan/inf.
    bad_data = {id(n) for n in order if not _finite(n.data)}
    first_bad = next((id(n) for n in order if id(n) in bad_data), None)
    bad_grad = {id(n) for n in order if not _finite(grad_of(n))} if show_grad else set()
    first_bad_grad = _first_bad_grad(roots) if bad_grad else None
    marked = {id(n) for n in highlight}
    focused = {id(n) for n in focus}
    root_ids = {id(r) for r in roots}
    member = _memberships(order, groups)
    boxes = module_clusters(order, model, scopes)
    if boxes:  # a module's call: its ops in its box, in call order
        where = {name: k for k, (name, _) in enumerate(groups)}
        for node in order:
            name = boxes.get(id(node))
            folded = producer(node)
            if folded is not None and folded.name == name:  # the box folded: its node names it
                member.pop(id(node), None)
            elif name is not None:
                if name not in where:
                    where[name] = len(groups)
                    groups.append((name, []))
                member[id(node)] = where[name]
            elif node._prim is not None:
                member.pop(id(node), None)
    def matrices(nodes) -> dict:
        """The named matrices among `nodes`: what a Jacobian may turn out to equal."""
        return {names[id(n)][0]: n.data for n in nodes
                if not isinstance(n, Value) and n.data.ndim == 2 and not names[id(n)][1]}

    dot = Graph(name="autodiff", graph_attr={"rankdir": rankdir, "fontname": "Helvetica",
                                             "nodesep": "0.25", "ranksep": "0.22"},
                node_attr={"fontname": "Helvetica", "fontsize": "11"},
                edge_attr={"fontname": "Helvetica", "fontsize": "10", "arrowsize": "0.6"})

    def node_id(node) -> str:
        return f"n{index[id(node)]}"

    def op_id(node) -> str:
        g = producer(node)
        return f"g{group_index[id(g)]}" if g is not None else node_id(node) + "op"

    emitted_ops = set()

    def emit(g, node) -> None:
        name, generated = names[id(node)]
        fill = (_HIGHLIGHT if id(node) in focused else
                _ROOT_FILL if id(node) in root_ids else
                _CONST_FILL if not node.requires_grad else
                _PARAM_FILL if node._prim is None else "white")
        border = (_RED if id(node) in bad_data or id(node) in bad_grad else
                  _HIGHLIGHT if id(node) in marked else "#555555")
        width = "3" if id(node) in marked or id(node) == first_bad else "1"
        cells = _node_cells(node, name, generated, grad_of(node), backward, precision,
                            id(node) in bad_data, id(node) in bad_grad)
        if id(node) == first_bad and node._prim is None:
            cells.append(f'<font color="{_RED}">non-finite input</font>')
        horizontal = isinstance(node, Value)
        body = ("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" if horizontal
                else "".join(f"<tr><td>{c}</td></tr>" for c in cells))
        label = (f'<<table border="{width}" cellborder="{1 if horizontal else 0}" '
                 f'cellspacing="0" cellpadding="3" color="{border}" bgcolor="{fill}">'
                 f"{body}</table>>")
        g.node(node_id(node), label=label, shape="plain")
        if not inputs_of(node) and node._prim is None:
            return
        oid = op_id(node)
        if oid in emitted_ops:
            return
        emitted_ops.add(oid)
        grp = producer(node)
        if grp is not None:
            count = f"{len(grp.members)} node{'s' if len(grp.members) != 1 else ''}"
            attrs = {"tooltip": _attr(f"{grp.name}: {count} folded into one"),
                     "style": "filled,bold", "fillcolor": "#fef3c7"}
            text = grp.caption
        else:
            attrs = {"tooltip": _attr(f"{node._prim.name}: {node._prim.math}")}
            text = _op_text(node)
            if id(node) == first_bad or id(node) == first_bad_grad:
                attrs.update(style="filled", fillcolor=_RED, fontcolor="white")
                text += ("\nfirst nan/inf value" if id(node) == first_bad
                         else "\nfirst nan/inf gradient")
            else:
                attrs.update(style="filled", fillcolor=_OP_FILL)
        g.node(oid, label=_attr(text), shape="ellipse", height="0.3", margin="0.04", **attrs)

    # Nodes, inside their cluster boxes where they have one.
    by_cluster: dict[int | None, list] = {}
    for node in shown:
        by_cluster.setdefault(member.get(id(node)), []).append(node)
    for k, (cname, _) in enumerate(groups):
        if k in by_cluster:
            with dot.subgraph(name=f"cluster_{k}") as sub:
                sub.attr(label=_attr(_visible(cname)), style="rounded,dashed", color="#888888",
                         fontname="Helvetica", fontsize="10")
                for node in by_cluster[k]:
                    emit(sub, node)
    for node in by_cluster.get(None, ()):
        emit(dot, node)

    # Edges: input -> op -> output (reversed arrows in the backward view).
    direction = {"dir": "back", "color": "#b45309"} if backward else {}
    hidden_inputs: Counter = Counter()
    shared_inputs = {key: Counter() for key in set(shared.values())}
    done = set()
    for node in shown:
        parents = inputs_of(node)
        if not parents and node._prim is None:
            continue
        oid = op_id(node)
        dot.edge(oid, node_id(node), **direction)
        if oid in done:
            continue
        done.add(oid)
        grp = producer(node)
        if not edge_labels:
            texts = None
        elif grp is not None:
            texts = _group_edge_texts(grp, grp.inputs, names, matrices(grp.inputs),
                                      precision)
        else:
            texts = _edge_texts(node, names, matrices(node._parents), precision)
        seen_edges = set()
        for i, parent in enumerate(node._parents if grp is None else grp.inputs):
            parent = _drawn(parent, merged)
            if id(parent) in shared:
                shared_inputs[shared[id(parent)]][oid] += 1
                continue
            if id(parent) not in visible:
                hidden_inputs[oid] += 1
                continue
            attrs = dict(direction)
            if texts is not None and texts[i] is not None:
                if grp is not None and id(parent) in seen_edges:
                    continue
                label, tip = texts[i]
                attrs.update(label=label, tooltip=_attr(tip), fontcolor="#1d4ed8")
            seen_edges.add(id(parent))
            dot.edge(node_id(parent), oid, **attrs)

    for k, ((module_name, count), readers) in enumerate(sorted(shared_inputs.items())):
        _parameters_node(dot, f"shared{k}", module_name, count, readers, direction)
    if collapsed:
        _summary_node(dot, [n for n in order if id(n) not in shared], visible, names,
                      first_bad, first_bad_grad, hidden_inputs, max_nodes, direction)
    legend = [caption] if caption else []
    if edge_labels:
        legend.append("edge labels: local derivative ∂(out)/∂(in)")
    if show_grad and side is not None:
        legend.append(f"grad: ∂{names[id(roots[0])][0]}/∂(node), computed on the side")
    if backward:
        legend.append("backward view: gradients flow along the arrows, "
                      f"{_FLOW[rankdir]}")
    if legend:
        dot.attr(label=_attr("\n".join(legend)), labelloc="b", fontsize="10",
                 fontcolor="#555555")
    return dot


def _after_backward(order) -> bool:
    """Whether a backward() has filled some leaf's .grad (then every node's gradient is
    worth showing; before it, none is)."""
    for n in order:
        if n._prim is None and n.requires_grad:
            g = n.grad
            if g is not None and not (isinstance(g, float) and g == 0.0):
                return True
    return False


def _drawn(node, merged):
    """The node drawn for `node` (a merged constant leaf is drawn as its first twin)."""
    return merged.get(id(node), node)


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
    # (a separate font and two spaces: a short bold name never runs into the dtype)
    title += (f'&#160;&#160;<font color="#555555" point-size="9">{a.dtype} '
              f"{_esc(str(a.shape))}</font>")
    data_cells = [red(_lines(_array_text(a, precision)), bad_data)]
    if a.size > 12 and a.dtype.kind in "biuf":
        data_cells.append(f'<font point-size="8">{_esc(_stats_text(a, precision))}</font>')
    if backward:  # values recede, gradients lead
        data_cells = [f'<font color="#777777">{c}</font>' for c in data_cells]
    grad_cells = []
    if grad is not None:
        g = np.asarray(grad)
        grad_cells.append(red("grad " + _lines(_array_text(g, precision)), bad_grad))
        if g.size > 12:
            grad_cells.append(f'<font point-size="8">grad {_esc(_stats_text(g, precision))}'
                              "</font>")
    return [title] + (grad_cells + data_cells if backward else data_cells + grad_cells)


# Jacobians of one op are built row by row from its vjp up to this many entries.
_JACOBIAN_ENTRIES = 1024


def _edge_texts(node, names, matrices, precision) -> list:
    """(label, tooltip) for each input edge of `node`: the local derivative d(node)/d(input),
    its value for scalars (the vjp with g = 1); for tensors 'diag' for an elementwise op,
    else a short form of the Jacobian (see `_jacobian_text`) when small enough to build."""
    out_name = _visible(names[id(node)][0])  # one line, even if the label has several
    parents = node._parents
    values = None
    if isinstance(node, Value) or (node.data.size == 1 and all(p.data.size == 1 for p in parents)):
        try:
            values = _vjp(node, 1.0 if isinstance(node, Value) else np.ones_like(node.data))
        except RULE_FAILURES:  # an op whose rule cannot run on these numbers: show no value
            values = None
    texts = []
    for i, p in enumerate(parents):
        tip_head = f"∂({out_name})/∂({_visible(names[id(p)][0])})"
        if values is not None and values[i] is not None:
            body = _num(np.asarray(values[i]).reshape(()), precision)
            tip = f"{tip_head} = {body}"
        elif _diagonal(node, p):
            body, tip = "diag", f"{tip_head}: diagonal Jacobian of shape {_shape(node) + _shape(p)}"
        else:
            jac = None
            if _size(node) * _size(p) <= _JACOBIAN_ENTRIES:
                jac = _op_jacobian(node, i)
            body, tip = _jacobian_text(jac, node, p, matrices, precision)
            tip = f"{tip_head}: {tip}"
        texts.append((_attr(f" {body}  "), tip))  # (padded: see _group_edge_texts)
    return texts


def _op_jacobian(node, i):
    """d(node)/d(input i) of one op, row by row from its vjp (None if the rule fails)."""
    rows = []
    try:
        for k in range(node.data.size):
            seed = np.zeros_like(node.data)
            seed.reshape(-1)[k] = 1
            part = _vjp(node, seed)[i]
            if part is None:
                return None
            rows.append(np.asarray(part, dtype=np.float64).reshape(-1))
    except RULE_FAILURES:
        return None
    return np.stack(rows).reshape(_shape(node) + _shape(node._parents[i]))


def _group_edge_texts(group, parents, names, matrices, precision) -> list:
    """(HTML label, tooltip) per input edge of a folded group with one output:
    ∂_in out = its local derivative (through all the group's nodes)."""
    if len(group.outputs) != 1:
        return [None] * len(parents)
    out = group.outputs[0]
    try:
        jacs = _group_jacobians(out, parents)
    except RULE_FAILURES:
        jacs = {}
    out_name = names[id(out)][0]
    texts = []
    for p in parents:
        short, tip = _jacobian_text(jacs.get(id(p)), out, p, matrices, precision)
        # (padded: graphviz sizes a label with its own metrics for Helvetica, which few
        # machines have; a browser draws it in a wider substitute, and the labels of edges
        # meeting at one node ran into each other)
        label = f"<&nbsp;{_sub(names[id(p)][0], out_name)} = {_esc(short)}&nbsp;&nbsp;>"
        texts.append((label, f"∂({out_name})/∂({names[id(p)][0]}): {tip}"))
    return texts


def _parameters_node(dot, node_id, module_name, count, readers, direction) -> None:
    """One node for the parameters of a module called several times (each of its folded
    calls reads them all): a dashed edge into every call."""
    dot.node(node_id, label=_attr(f"{module_name}: its {count:,} parameters\n"
                                  "(read by every call)"),
             shape="box", style="dashed,rounded", color=_PARAM_EDGE, fontcolor=_PARAM_EDGE)
    for op_id, n in readers.items():
        dot.edge(node_id, op_id, style="dashed", color=_PARAM_EDGE,
                 label=f"{n:,} inputs" if n > 1 else "", **direction)


_PARAM_EDGE = "#1e40af"


def _summary_node(dot, order, visible, names, first_bad, first_bad_grad, hidden_inputs,
                  max_nodes, direction) -> None:
    hidden = [n for n in order if id(n) not in visible]
    ops = Counter(n._prim.name for n in hidden if n._prim is not None)
    leaves = sum(1 for n in hidden if n._prim is None)
    top = ", ".join(f"{c:,} {name}" for name, c in ops.most_common(5))
    lines = [f"... {len(hidden):,} more nodes not drawn",
             f"(showing the {len(visible):,} nearest the output; max_nodes={max_nodes})"]
    if top:
        lines.append(f"ops: {top}" + (", ..." if len(ops) > 5 else ""))
    lines.append(f"{leaves:,} lea{'f' if leaves == 1 else 'ves'}")
    for which, marker in (("value", first_bad), ("gradient", first_bad_grad)):
        if marker is not None and marker not in visible:
            lines.append(f"first nan/inf {which} at hidden node {_visible(names[marker][0])}")
    color = _RED if "first nan/inf" in lines[-1] else "#555555"
    dot.node("hidden", label=_attr("\n".join(lines)), shape="box", style="dashed,rounded",
             color=color, fontcolor=color)
    for op_id, count in hidden_inputs.items():
        dot.edge("hidden", op_id, style="dashed",
                 label=f"{count} inputs" if count > 1 else "", **direction)
