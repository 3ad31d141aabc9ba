"""What the pictures and the explainer share: walking the graph, backpropagating on the
side through the engine's own loop, naming nodes, and formatting numbers and arrays."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from typing import Mapping

import numpy as np

from ..engine import Node, ReleasedGraphError, local_vjp, run_backward
from ..tensor import Tensor, fit_array
from ..value import Value


_VIEWS = ("both", "forward", "backward")

_RED = "#d62728"
_PARAM_FILL = "#dbeafe"
_CONST_FILL = "#f3f4f6"
_ROOT_FILL = "#dcfce7"
_OP_FILL = "#eeeeee"
_HIGHLIGHT = "#ff7f0e"


# ---------------------------------------------------------------------------------------
# Walking the graph, and derivatives computed on the side

# What a rule may raise on the numbers a picture feeds it (a division by zero, a domain
# error, a graph whose buffers backward() released): the picture then leaves that part
# out. Anything else is a bug and is raised.
RULE_FAILURES = (ArithmeticError, ValueError, ReleasedGraphError)

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


def _vjp(node, g) -> tuple:
    """g times d(node)/d(input) for every input of `node`, each in its input's shape.

    The op's own vjp on plain numbers (never on graph nodes), so nothing is recorded and
    no `.grad` changes.
    """
    with np.errstate(all="ignore"):
        try:
            grads = local_vjp(node, g)
        except (ZeroDivisionError, OverflowError):
            # A scalar rule divided by zero in Python floats; numpy floats give IEEE inf/nan.
            grads = local_vjp(node, np.float64(g), cast=np.float64)
    out = []
    for parent, pg in zip(node._parents, grads):
        if pg is None:
            out.append(None)
        elif isinstance(parent, Tensor):
            out.append(fit_array(np.asarray(pg), parent))
        else:
            out.append(float(pg))
    return tuple(out)


def _backprop(roots, seeds, *, observer=None, targets=None) -> dict | None:
    """Backpropagate on the side through the engine's own loop, in its order: `.grad` is
    untouched, nothing is released, and a graph that backward() already released is
    read from its forward data. Returns the totals of `targets` (node -> gradient), or
    calls `observer(node, gradient, sends)` at every step (see `run_backward`)."""
    capture = None if targets is None else dict.fromkeys(targets)
    scalar = isinstance(roots[0], Value)
    with np.errstate(all="ignore"):
        run_backward(tuple(roots), tuple(seeds), retain_graph=True, capture=capture,
                     sum_to=None if scalar else fit_array, store=False, observer=observer,
                     released_ok=True)
    return capture


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
            bases.append((node, "leaf" if node._prim is None else node._prim.name))
    totals = Counter(base for _, base in bases)
    seen = Counter()
    taken = {name for name, _ in named.values()}  # (a leaf labelled 'mul1' keeps its name)
    for node, base in bases:
        while True:
            seen[base] += 1
            name = base if totals[base] == 1 and seen[base] == 1 else f"{base}{seen[base]}"
            if name not in taken:
                break
        taken.add(name)
        named[id(node)] = (name, True)
    return named


def _check_precision(precision, where: str) -> None:
    """The significant digits a picture or text shows: a positive integer."""
    if isinstance(precision, bool) or not isinstance(precision, numbers.Integral) \
            or precision < 1:
        raise ValueError(f"{where}: precision must be a positive integer (significant "
                         f"digits shown), got {precision!r}")


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
    return node._prim.elementwise and _shape(node) == _shape(parent)


def _short(v, limit: int = 18) -> str:
    text = repr(v.tolist() if isinstance(v, np.ndarray) else v)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _op_text(node) -> str:
    """An op node's caption: its symbol, with the options it names filled in, and the
    other options that are not internal."""
    op = node._prim
    kw = {k: v for k, v in (node._kw or {}).items() if k not in op.internal}
    named = {k: _num(v) if isinstance(v, (int, float)) else _short(v)
             for k, v in kw.items() if "{" + k + "}" in op.symbol}
    text = op.symbol.format(**named) if named else op.symbol
    for k in named:
        kw.pop(k)
    for k, default in op.defaults.items():
        if k in kw and _at_default(kw[k], default, node._kw):
            kw.pop(k)
    if kw:
        text += (" (" if named else "(") + ", ".join(f"{k}={_short(v)}" for k, v in kw.items()) + ")"
    return text


def _at_default(value, default, options) -> bool:
    """Whether an option holds its default (see `Op.defaults`): every entry equal to a
    number, or equal to the option the default names."""
    if isinstance(default, str):
        default = options.get(default)
    if value is None or default is None:
        return value is default
    try:
        return bool(np.all(np.asarray(value) == np.asarray(default)))
    except (TypeError, ValueError):  # (entries of unequal lengths: not a default)
        return False


# Characters DOT text cannot carry as they are, each shown as its Python escape (\x07):
# control characters (invalid in the XML of an HTML-like label; NUL ends the text), lone
# surrogates (not encodable as UTF-8) and XML's two non-characters.
_INVISIBLE = {c: chr(c).encode("unicode_escape").decode("ascii")
              for c in (*range(0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000), 0xFFFE,
                        0xFFFF)}


def _visible(text: str) -> str:
    """`text` with each character DOT cannot carry written as its escape ('\\x07')."""
    return text.translate(_INVISIBLE)


def _esc(text: str) -> str:
    """Text for an HTML-like label: markup characters as entities, controls made visible
    (a backslash needs nothing: it is literal there)."""
    return _visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _lines(text: str) -> str:
    return "<br/>".join(_esc(line) for line in text.split("\n"))


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
        elif hasattr(item, "layers"):  # a scalar MLP: one box per layer, in order
            for i, layer in enumerate(item.layers):
                for j, neuron in enumerate(layer.neurons):
                    for k, w in enumerate(neuron.w):
                        param(prefix, join(prefix, f"layer {i}"), f"L{i}.N{j}.w{k}", w)
                    param(prefix, join(prefix, f"layer {i}"), f"L{i}.N{j}.b", neuron.b)
        elif hasattr(item, "neurons"):  # a scalar Layer: one box per neuron
            for i, sub in enumerate(item.neurons):
                add(join(prefix, f"N{i}"), sub)
        elif hasattr(item, "w") and hasattr(item, "b"):  # a scalar Neuron
            group = prefix or "neuron"
            for i, w in enumerate(item.w):
                param(prefix, group, f"w{i}", w)
            param(prefix, group, "b", item.b)
        elif hasattr(item, "parameters"):
            groups.setdefault(prefix or type(item).__name__, []).extend(item.parameters())
        elif isinstance(item, (str, bytes)) or not hasattr(item, "__iter__"):
            raise TypeError(f"draw_graph: clusters: {item!r} (in {prefix or 'the spec'!r}) is "
                            "not a node, a module or a sequence of them")
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


# ---------------------------------------------------------------------------------------
# Gradients of every node, and local derivatives of a group of nodes, on the side

def _all_grads(roots) -> dict | None:
    """id(node) -> d(root)/d(node) for every node the engine's backward visits (the root
    gets 1), computed on the side; None when a root has more than one element (its
    gradient needs a grad_output)."""
    try:
        seeds = [_seed(r, None, "draw_graph") for r in roots]
    except ValueError:
        return None
    found = {}

    def watch(node, g, sends):
        found[id(node)] = g

    _backprop(roots, seeds, observer=watch)
    return found


def _group_jacobians(out, inputs, *, max_rows: int = 64) -> dict:
    """id(input) -> d(out)/d(input) for the inputs of a group of nodes whose output is
    `out`: a float for scalars, else the Jacobian as an array of shape out.shape +
    input.shape (None when `out` has more than `max_rows` elements). One backward on the
    side per element of `out`, pruned to the group; inputs that need no gradient
    (constants) get theirs from their consumers' vjps."""
    inputs = list(inputs)
    ids = {id(p) for p in inputs}
    scalar = isinstance(out, Value)
    size = 1 if scalar else out.data.size
    if size > max_rows or not out.requires_grad:
        return {}
    # the consumers of constant inputs are targets too, so the visit reaches them
    targets = [p for p in inputs if p.requires_grad]
    rows = {id(p): [] for p in inputs}
    for k in range(size):
        if scalar:
            seed = 1.0
        else:
            seed = np.zeros_like(out.data)
            seed.reshape(-1)[k] = 1
        row = {id(p): None for p in inputs}

        def watch(node, g, sends):
            for i, p in enumerate(node._parents):
                if id(p) in ids and not p.requires_grad:
                    part = _vjp(node, g)[i]
                    if part is not None:
                        row[id(p)] = part if row[id(p)] is None else row[id(p)] + part

        consumers = [n for n in _topo([out]) if any(id(p) in ids and not p.requires_grad
                                                    for p in n._parents)]
        capture = _backprop([out], [seed], observer=watch,
                            targets=list({id(n): n for n in targets + consumers}.values()))
        for p in targets:
            row[id(p)] = capture.get(p)
        for p in inputs:
            rows[id(p)].append(row[id(p)])
    result = {}
    for p in inputs:
        parts = rows[id(p)]
        if any(r is None for r in parts):
            result[id(p)] = None
        elif scalar:
            result[id(p)] = float(parts[0])
        else:
            result[id(p)] = np.stack([np.asarray(r, dtype=np.float64).reshape(_shape(p))
                                      for r in parts]).reshape(_shape(out) + _shape(p))
    return result


def _jacobian_text(jac, out, inp, names: dict, precision: int) -> tuple[str, str]:
    """A short form of the Jacobian d(out)/d(inp) for an edge label, and a longer one for
    its tooltip: the number for scalars; 'diag' when only the diagonal is nonzero; a named
    matrix (W1) when it equals one; else its 2-D shape (rows = out's elements)."""
    full = _shape(out) + _shape(inp)
    if jac is None:
        return (f"{_size(out)}×{_size(inp)}", f"Jacobian of shape {full}")
    a = np.asarray(jac, dtype=np.float64)
    if a.size == 1:
        value = _num(a.reshape(()), precision)
        return value, value if not full else f"{value} (Jacobian of shape {full})"
    flat = a.reshape(_size(out), _size(inp))
    if flat.shape[0] == flat.shape[1] and not np.any(flat - np.diag(np.diag(flat))):
        d = np.diag(flat)
        short = "I" if np.all(d == 1) else f"diag({_num(d[0], precision)})" if np.all(d == d[0]) \
            else "diag"
        return short, f"diagonal Jacobian of shape {full}; diagonal {_array_text(d, precision)}"
    for name, matrix in names.items():
        if matrix.shape == flat.shape and np.allclose(flat, matrix):
            return name, f"Jacobian of shape {full}, equal to {name}"
        if matrix.T.shape == flat.shape and np.allclose(flat, matrix.T):
            return name + "ᵀ", f"Jacobian of shape {full}, equal to {name}ᵀ"
    return f"{flat.shape[0]}×{flat.shape[1]}", f"Jacobian of shape {full}"


def _size(node) -> int:
    return 1 if isinstance(node, Value) else int(node.data.size)


def _sub(inp: str, out: str) -> str:
    """The lecture's ∂_inp out, as HTML-like label text (the input as a subscript)."""
    return f"∂<sub>{_esc(_visible(inp))}</sub>{_esc(_visible(out))}"
