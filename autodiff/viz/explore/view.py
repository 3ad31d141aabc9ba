"""The explorer's data: graphviz's SVG layout, each node's value and d(root)/d(node)
(the engine's loop on the side), its chain-rule paths, and the engine's backward order."""

from __future__ import annotations

import functools
import signal
import subprocess
from pathlib import Path

import numpy as np

from .._common import _array_text, _as_roots, _backprop, _names, _op_text, _seed, _topo
from ..draw import Graph, _attr
from ..page import standalone_page
from ..chain import chain_rule
from ..steps import backward_steps

_ESM = Path(__file__).with_name("explore.js")
# chain-rule paths are listed for at most this many nodes (each costs a walk of the graph)
CHAIN_LIMIT = 400


def _text(x, precision=4) -> str:
    return "none" if x is None else _array_text(np.asarray(x), precision)


def _layout(order, named, nodes) -> str:
    """graphviz's SVG of the graph; node k is DOT node n{k}, titled so the page finds it."""
    index = {id(n): k for k, n in enumerate(order)}
    graph = Graph("explore", graph_attr={"rankdir": "LR"},
                  node_attr={"shape": "box", "fontsize": "10", "fontname": "Helvetica"})
    for k, n in enumerate(order):
        lines = [named[id(n)][0]] if n._prim is None else [named[id(n)][0], _op_text(n)]
        if "\n" not in nodes[k]["value"] and len(nodes[k]["value"]) < 24:
            lines += [f"value {nodes[k]['value']}", f"grad {nodes[k]['grad']}"]
        graph.node(f"n{k}", _attr("\n".join(lines)))
        for p in n._parents:
            graph.edge(f"n{index[id(p)]}", f"n{k}")
    try:
        svg = graph.pipe(format="svg", encoding="utf-8")
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"explore: graphviz's dot {_failure(err.returncode)} while laying out "
                           f"the graph of {len(order)} nodes: {_last_line(err.stderr)}. Explore "
                           "a smaller part of it (the loss of one sample, a subgraph's output)"
                           ) from None
    return svg[svg.index("<svg"):]


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

    def __init__(self, root, *, precision: int = 4) -> None:
        (root,) = _as_roots(root, "explore")
        seed = _seed(root, None, "explore")
        order = _topo([root])
        named = _names(order, {})
        grads = _backprop([root], [seed], targets=order)
        grads[root] = seed
        index = {id(n): k for k, n in enumerate(order)}
        nodes = []
        for k, n in enumerate(order):
            item = {"id": k, "label": named[id(n)][0],
                    "op": "leaf" if n._prim is None else _op_text(n),
                    "inputs": [index[id(p)] for p in n._parents],
                    "value": _text(n.data, precision), "grad": _text(grads.get(n), precision)}
            if len(order) <= CHAIN_LIMIT and n is not root:
                cr = chain_rule(root, n, factors="ops", precision=precision)
                item["chain"] = {"text": str(cr), "total": _text(cr.total, precision),
                                 "edges": [list(e) for e in sorted(
                                     {(index[nid], i) for p in cr.paths for f in p.factors
                                      for nid, i in f.route})]}
            nodes.append(item)
        steps = [{"node": index[id(s.node)], "label": s.name, "grad": _text(s.grad, precision),
                  "text": str(s), "sends": [index[id(x.parent)] for x in s.sends]}
                 for s in backward_steps(root, precision=precision)]
        self.data = {"nodes": nodes, "steps": steps, "svg": _layout(order, named, nodes),
                     "root": index[id(root)]}
        self._widget = None

    @property
    def widget(self):
        if self._widget is None:
            self._widget = _widget_class()(data=self.data)
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def save(self, path) -> Path:
        """Write one self-contained HTML page (works offline from file://)."""
        path = Path(path)
        path.write_text(standalone_page("autodiff explorer", _ESM.read_text(encoding="utf-8"),
                                        self.data), encoding="utf-8")
        return path


def explore(root, *, precision: int = 4) -> Explorer:
    """An interactive view of the graph below `root` (a Value or a one-element Tensor):
    click a node for its value, gradient and chain-rule paths; step through backward.

    >>> from autodiff import Value
    >>> a = Value(2.0, label="a"); view = explore((a * a).tanh())
    >>> [n["label"] for n in view.data["nodes"]]
    ['a', 'mul', 'tanh']
    """
    return Explorer(root, precision=precision)


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
