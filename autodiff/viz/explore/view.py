"""The explorer's data: graphviz's SVG layout of each view (groups folded or open), each
node's value and d(root)/d(node) (the engine's loop on the side), its chain-rule paths,
each group's local derivatives, and the engine's backward order."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np

from .._common import (_INVISIBLE, RULE_FAILURES, _array_text, _as_roots, _backprop,
                       _check_precision, _group_jacobians, _jacobian_text, _names, _op_text,
                       _param_names, _seed, _topo)
from ...value import Value
from ..chain import chain_rule_in
from ..draw import Graph, _attr
from ..groups import caption, scalar_model
from ..page import standalone_page
from ..steps import backward_steps
from .views import find_groups, make_views, op_summary, parameter_names

_ESM = Path(__file__).with_name("explore.js")
# graphs with more nodes list no chain-rule paths (each node's list costs two walks of the
# graph besides its paths, which CHAIN_BUDGET bounds)
CHAIN_LIMIT = 3000
# paths listed per node: every path costs one vjp per edge, and an unrolled loop's paths
# are as long as the loop
CHAIN_PATHS = 20
# local derivatives evaluated for all the nodes' paths together; the nodes nearest the
# root (short paths) and the leaves (what a reader clicks) go first
CHAIN_BUDGET = 40_000
# a graph with more nodes opens with its groups folded
AUTO_COLLAPSE = 500
# nodes in one view at most: graphviz takes seconds beyond, and crashes on huge graphs
MAX_LAYOUT = 1500
# an edge spanning more ranks than this is drawn from a copy of its source (see _far_consumers)
LONG_EDGE = 8


def _text(x, precision=4) -> str:
    return "none" if x is None else _array_text(np.asarray(x), precision)


def _layouts(views, order, named, nodes, folds) -> list:
    """Every view's SVG; graphviz's dot runs as a process per view, so they run side by
    side, one per core."""
    workers = min(len(views), os.cpu_count() or 1)
    if workers <= 1:
        return [_layout(v, order, named, nodes, folds) for v in views]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda v: _layout(v, order, named, nodes, folds), views))


def _layout(view, order, named, nodes, folds) -> str:
    """graphviz's SVG of one view; node k is DOT node n{k} and folded group j is g{j},
    titled so the page finds them."""
    graph = Graph("explore", graph_attr={"rankdir": "LR"},
                  node_attr={"shape": "box", "fontsize": "10", "fontname": "Helvetica"})
    edges = {}
    for k, n in enumerate(order):
        if view.rep[k] != f"n{k}":
            continue
        lines = [named[id(n)][0]] if n._prim is None else [named[id(n)][0], _op_text(n)]
        if "\n" not in nodes[k]["value"] and len(nodes[k]["value"]) < 24:
            lines += [f"value {nodes[k]['value']}", f"grad {nodes[k]['grad']}"]
        graph.node(f"n{k}", _attr("\n".join(lines)))
        sources = [f"g{view.via[k]}"] if k in view.via else \
            [view.rep[i] for i in nodes[k]["inputs"]]
        for src in sources:
            edges[src, f"n{k}"] = None
    for j in sorted({int(r[1:]) for r in view.rep if r and r[0] == "g"}):
        fold = folds[j]
        graph.node(f"g{j}", _attr(f"{caption(fold.name)}\n{len(fold.members)} nodes"),
                   style="filled,rounded,bold", fillcolor="#fef3c7")
        for i in fold.inputs:  # (not from a scalar MLP's weight: hundreds, read by every
            if view.rep[i] is not None and i not in view.weights:  # folded sample)
                edges[view.rep[i], f"g{j}"] = None
    leaves = {f"n{k}" for k, n in enumerate(order) if view.rep[k] == f"n{k}" and not n._parents}
    copies = _far_consumers([e for e in edges if e[0] != e[1]], leaves)
    for a, b in edges:
        if (a, b) in copies:
            k = int(a[1:])
            graph.node(copies[a, b], _attr(named[id(order[k])][0]), style="dashed")
            graph.edge(copies[a, b], b)
        elif a != b:
            graph.edge(a, b)
    try:
        svg = graph.pipe(format="svg", encoding="utf-8")
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"explore: graphviz's dot {_failure(err.returncode)} while laying out "
                           f"the graph of {view.size} nodes: {_last_line(err.stderr)}. Explore "
                           "a smaller part of it (the loss of one sample, a subgraph's output)"
                           ) from None
    return svg[svg.index("<svg"):]


def _add_chains(nodes, order, index, root, seed, named, grads, precision) -> None:
    """Each node's chain-rule paths from the root, until CHAIN_BUDGET local derivatives
    are spent; the page says which nodes go without. (The graph's order, names and
    gradients are the explorer's: each node costs its paths and two walks of the graph.)"""
    leaves = [k for k, n in enumerate(order) if n._prim is None]
    others = [k for k in reversed(range(len(order))) if order[k]._prim is not None]
    spent = 0
    for k in leaves + others:
        n = order[k]
        if spent > CHAIN_BUDGET:
            break
        if n is root:
            continue
        cr = chain_rule_in(order, named, root, n, seed, factors="ops", precision=precision,
                           max_paths=CHAIN_PATHS, total=grads.get(n))
        route = {(index[nid], i) for p in cr.paths for f in p.factors for nid, i in f.route}
        spent += sum(len(f.route) for p in cr.paths for f in p.factors)
        nodes[k]["chain"] = {"text": str(cr), "total": _text(cr.total, precision),
                             "edges": [list(e) for e in sorted(route)]}


def _far_consumers(edges, leaves) -> dict:
    """{(source, consumer): name of a dashed copy of the source drawn by the consumer}, for
    a leaf's consumers more than two ranks past its first one and any edge longer than
    LONG_EDGE ranks. A weight shared by every step of an unrolled loop, or a stack of
    every step's output, would otherwise pull edges across the whole picture, and dot's
    layout takes minutes on them. A copy is DOT node "n{k}~{m}"; the page treats it as k."""
    into = {b: [] for e in edges for b in e}
    for a, b in edges:
        into[b].append(a)
    depth = {}
    for node in into:  # longest path from a source; iterative, graphs can be deep
        stack = [node]
        while stack:
            top = stack[-1]
            if top in depth:
                stack.pop()
                continue
            todo = [a for a in into[top] if a not in depth]
            if todo:
                stack += todo
            else:
                depth[top] = 1 + max((depth[a] for a in into[top]), default=-1)
                stack.pop()
    first = {}
    for a, b in edges:
        if a in leaves:
            first[a] = min(first.get(a, depth[b]), depth[b])
    copies = {}
    for a, b in edges:
        far = depth[b] > first[a] + 2 if a in leaves else depth[b] > depth[a] + LONG_EDGE
        if far and a[0] == "n":
            copies[a, b] = f"{a}~{len(copies)}"
    return copies


def _group_data(fold, order, named, opens, precision) -> dict:
    """What the page shows of a folded group: its name, its ops, inputs and outputs, the
    view that opens it, and (one output) its local derivatives ∂ out / ∂ input."""
    local = []
    if len(fold.outputs) == 1:
        out = order[fold.outputs[0]]
        parents = [order[i] for i in fold.inputs]
        try:
            jacs = _group_jacobians(out, parents)
        except RULE_FAILURES:  # a rule that cannot run on these numbers: no derivatives shown
            jacs = {}
        matrices = {named[id(p)][0]: p.data for p in parents if not isinstance(p, Value)
                    and p.data.ndim == 2 and not named[id(p)][1]}
        for i, p in zip(fold.inputs, parents):
            short, tip = _jacobian_text(jacs.get(id(p)), out, p, matrices, precision)
            local.append({"input": i, "text": short, "tip": tip})
    return {"label": fold.name, "caption": caption(fold.name), "ops": op_summary(fold, order),
            "size": len(fold.members), "inputs": fold.inputs, "outputs": fold.outputs,
            "parent": fold.parent, "view": opens, "local": local}


def _failure(returncode: int) -> str:
    if returncode < 0:  # killed by a signal (dot crashes on some very large graphs)
        try:
            return f"crashed ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"crashed (signal {-returncode})"
    return f"failed (exit status {returncode})"


def _last_line(stderr) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


class Explorer:
    """The interactive view of one graph: `.data` (what the page shows), `.widget` (the
    Jupyter widget), `save(path)` (one self-contained HTML page)."""

    def __init__(self, root, *, collapse=None, grad_output=None, precision: int = 4) -> None:
        if collapse not in (None, "scopes"):
            raise ValueError("explore: collapse must be None (groups open unless the graph "
                             f"has more than {AUTO_COLLAPSE} nodes) or 'scopes', got {collapse!r}")
        _check_precision(precision, "explore")
        roots = _as_roots(root, "explore")
        if len(roots) != 1:
            raise ValueError(f"explore: give one root (a Value or a Tensor), got {len(roots)}; "
                             "explore each, or their sum")
        (root,) = roots
        seed = _seed(root, grad_output, "explore")
        order = _topo([root])
        index = {id(n): k for k, n in enumerate(order)}
        model = scalar_model(order)  # (a scalar MLP's calls are found from its weights)
        weights = frozenset(index[id(p)] for p in model.parameters() if id(p) in index) \
            if model is not None else frozenset()
        folds, chains = find_groups(order, index[id(root)], model)
        given = parameter_names(folds)
        if model is not None:  # its weights by the names draw_graph gives them (L0.N1.w0)
            given.update({k: v for k, v in _param_names(model).items() if k not in given})
        named = _names(order, given)
        # the texts (chain rule, steps) call a parameter by the name the graph shows
        names = {n: given[id(n)] for n in order if id(n) in given}
        grads = _backprop([root], [seed], targets=order)
        # The page's gradients run no hooks (it never runs user code): flag the nodes whose
        # gradient backward() passes through one (a hooked node and everything below it).
        hooked = set()
        for n in reversed(order):  # (outputs first)
            if n._hooks or id(n) in hooked:
                hooked.add(id(n))
                hooked.update(id(p) for p in n._parents)
        grads[root] = seed
        nodes = [{"id": k, "label": named[id(n)][0],
                  "op": "leaf" if n._prim is None else _op_text(n),
                  "inputs": [index[id(p)] for p in n._parents], "groups": chains[k],
                  "value": _text(n.data, precision), "grad": _text(grads.get(n), precision),
                  "hooked": id(n) in hooked}
                 for k, n in enumerate(order)]
        if len(order) <= CHAIN_LIMIT:
            _add_chains(nodes, order, index, root, seed, named, grads, precision)
        steps = [{"node": index[id(s.node)], "label": s.name, "grad": _text(s.grad, precision),
                  "text": str(s), "sends": [index[id(x.parent)] for x in s.sends]}
                 for s in backward_steps(root, grad_output=grad_output, names=names,
                                         precision=precision)]
        # (a big scalar MLP's graph opened whole draws every weight by each sample's use:
        # minutes of layout for a view nobody reads)
        views = make_views(order, folds, chains, max_size=MAX_LAYOUT, weights=weights,
                           full=len(order) <= AUTO_COLLAPSE or not weights)
        if not views:
            raise ValueError(f"explore: the graph has {len(order):,} nodes, too many to lay out "
                             f"(at most {MAX_LAYOUT:,} per view); group its parts with "
                             "autodiff.scope (nn modules are grouped already) or explore a "
                             "smaller part of it")
        opens = {v.group: i for i, v in enumerate(views) if v.group is not None}
        full = next((i for i, v in enumerate(views) if v.group is None and i > 0), None)
        groups = [_group_data(f, order, named, opens.get(j), precision)
                  for j, f in enumerate(folds)]
        start = 0
        if collapse is None and len(order) <= AUTO_COLLAPSE:  # the most open view (the
            # full one may have been merged into the view of the last group it opens)
            start = full if full is not None else max(
                range(len(views)), key=lambda i: len(views[i].expanded))
        else:  # open a group that is alone in the first view (a model's own call)
            while True:
                shown = {r for r in views[start].rep if r and r[0] == "g"}
                j = int(next(iter(shown))[1:]) if len(shown) == 1 else None
                if j is None or opens.get(j) is None or opens[j] == start:
                    break
                start = opens[j]
        self.data = {"nodes": _encodable(nodes), "steps": _encodable(steps),
                     "groups": _encodable(groups), "root": index[id(root)],
                     "views": [{"svg": svg, "group": v.group, "expanded": sorted(v.expanded)}
                               for v, svg in zip(views, _layouts(views, order, named, nodes,
                                                                 folds))],
                     "full": full, "start": start}  # (dot's SVG is UTF-8 already)
        self._widget = None

    @property
    def widget(self):
        if self._widget is None:
            self._widget = explorer_widget(self.data)
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def save(self, path) -> Path:
        """Write one self-contained HTML page (works offline from file://)."""
        path = Path(path)
        path.write_text(standalone_page("autodiff explorer",
                                        (_ESM.read_text(encoding="utf-8"), self.data)), encoding="utf-8")
        return path


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(x):
    """`x` with each lone surrogate in its texts written as its escape ('\\ud800', as
    pictures show it): Jupyter sends a widget's state as UTF-8, which cannot carry one."""
    if isinstance(x, str):
        return _LONE_SURROGATE.sub(lambda m: _INVISIBLE[ord(m.group())], x)
    if isinstance(x, dict):
        return {k: _encodable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_encodable(v) for v in x]
    return x


def explore(root, *, collapse=None, grad_output=None, precision: int = 4) -> Explorer:
    """An interactive view of the graph below `root` (a Value or a one-element Tensor;
    another Tensor with `grad_output`, the gradient it is seeded with, as in backward):
    click a node for its value, gradient and chain-rule paths; step through backward.
    Groups (`autodiff.scope` blocks, nn module calls) fold into one node and open on
    demand; `collapse="scopes"` starts with them folded (the default for graphs of more
    than 500 nodes).

    >>> from autodiff import Value
    >>> a = Value(2.0, label="a"); view = explore((a * a).tanh())
    >>> [n["label"] for n in view.data["nodes"]]
    ['a', 'mul', 'tanh']
    """
    return Explorer(root, collapse=collapse, grad_output=grad_output, precision=precision)


def page_part(data: dict) -> tuple:
    """(the explorer's JavaScript module, data): an explorer as one part of a saved page
    (`autodiff.viz.page.standalone_page`)."""
    return _ESM.read_text(encoding="utf-8"), data


def explorer_widget(data: dict | None = None):
    """The explorer's Jupyter widget showing `data` (an Explorer's `.data`; None: "no graph
    yet"); assigning another graph's data to its `.data` redraws it in place."""
    return _widget_class()(data=data or {})


@functools.cache
def _widget_class():
    try:
        import anywidget
        import traitlets
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("explore: the Jupyter widget needs anywidget (pip install "
                          "anywidget); save(path) works without it") from None

    class ExplorerWidget(anywidget.AnyWidget):
        _esm = _ESM
        data = traitlets.Dict().tag(sync=True)

    return ExplorerWidget
