"""autodiff.viz: DOT text, rendering, the chain-rule explainer and the step-by-step backward."""

import math
import os
import re
import shutil
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import autodiff
from autodiff.viz import _common as viz_internals
from autodiff import Tensor, Value
from autodiff.viz import DotNotFoundError, backward_steps, chain_rule, draw_graph


def need_dot():
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("graphviz's `dot` program is missing on CI (apt-get install graphviz)")
        pytest.skip("graphviz's `dot` program is not installed")


def edges(source: str) -> list:
    """(tail, head, attributes) for every edge statement of the DOT text."""
    return re.findall(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$", source, flags=re.M)


def label_of(attrs: str) -> str:
    """The value of the label attribute in a DOT attribute list, unquoted."""
    m = re.search(r'(?:^| )label=("(?:[^"\\]|\\.)*"|\S+)', attrs)
    return m.group(1).strip('"').strip() if m else ""  # (edge labels are padded)


def node_id(source: str, text: str) -> str:
    """The DOT id of the (first) node whose label contains `text`."""
    m = re.search(r"^\s*(\w+) \[label=.*" + re.escape(text), source, flags=re.M)
    assert m, f"no node labelled with {text!r}"
    return m.group(1)


# ---------------------------------------------------------------------------------------
# The lecture's network: y = W1 x + b1, h = sigmoid(a y), o = W2 h + b2, Loss = mean((o-t)^2)

def lecture_tensors(seed=0):
    rng = np.random.default_rng(seed)

    def param(shape, label):
        return Tensor(rng.normal(0, 0.8, size=shape), requires_grad=True, label=label)

    p = {"x": Tensor(rng.normal(size=3), label="x"), "t": Tensor([0.5, -0.25], label="t"),
         "W1": param((4, 3), "W1"), "b1": param(4, "b1"), "a": param((), "a"),
         "W2": param((2, 4), "W2"), "b2": param(2, "b2")}
    y = p["W1"] @ p["x"] + p["b1"]
    y.label = "y"
    h = (p["a"] * y).sigmoid()
    h.label = "h"
    o = p["W2"] @ h + p["b2"]
    o.label = "o"
    loss = ((o - p["t"]) ** 2).mean()
    loss.label = "Loss"
    return p, loss


def lecture_by_hand(p):
    """The lecture's gradients written out with numpy."""
    x, t, W1, b1, a, W2, b2 = (p[k].data for k in ("x", "t", "W1", "b1", "a", "W2", "b2"))
    y = W1 @ x + b1
    s = 1 / (1 + np.exp(-a * y))
    o = W2 @ s + b2
    d_o = 2 * (o - t) / o.size              # dLoss/do
    d_h = W2.T @ d_o                        # . do/dh
    d_y = d_h * s * (1 - s) * a             # . dh/dy (diagonal)
    return {"W1": np.outer(d_y, x), "b1": d_y, "a": np.sum(d_h * s * (1 - s) * y),
            "W2": np.outer(d_o, s), "b2": d_o}


def lecture_scalars():
    """The same network on Values: 2 inputs, 2 hidden units sharing the gain a, 1 output."""
    x = [Value(0.5, label="x1"), Value(-1.5, label="x2")]
    W1 = [[Value(0.3, label="w11"), Value(-0.8, label="w12")],
          [Value(1.1, label="w21"), Value(0.4, label="w22")]]
    b1 = [Value(0.1, label="b11"), Value(-0.2, label="b12")]
    a = Value(1.7, label="a")
    W2 = [Value(-0.6, label="v1"), Value(0.9, label="v2")]
    b2 = Value(0.05, label="b2")
    ys, hs = [], []
    for j in range(2):
        y = W1[j][0] * x[0] + W1[j][1] * x[1] + b1[j]
        y.label = f"y{j + 1}"
        h = (a * y).sigmoid()
        h.label = f"h{j + 1}"
        ys.append(y)
        hs.append(h)
    o = W2[0] * hs[0] + W2[1] * hs[1] + b2
    o.label = "o"
    loss = (o - 0.25) ** 2
    loss.label = "Loss"
    return dict(x=x, W1=W1, b1=b1, a=a, W2=W2, b2=b2, y=ys, h=hs, o=o), loss


def snapshot(root):
    """Everything about a graph that viz must not change."""
    state = []
    for n in viz_internals._topo([root]):
        grad = None if n.grad is None else np.array(n.grad, copy=True)
        saved = None if n._saved is None else tuple(id(s) for s in n._saved)
        state.append((id(n), np.array(n.data, copy=True), grad, saved, n._parents, n._prim,
                      None if n._kw is None else {k: id(v) for k, v in n._kw.items()},
                      n.label, n._g, n._seq, n.requires_grad))
    return state


def assert_same(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        assert b[0] == a[0] and b[3:] == a[3:]
        np.testing.assert_array_equal(b[1], a[1])
        if b[2] is None:
            assert a[2] is None
        else:
            np.testing.assert_array_equal(b[2], a[2])


# ---------------------------------------------------------------------------------------
# Importing

def test_core_import_does_not_load_graphviz():
    code = "import sys, autodiff; print('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lazy_names_on_the_package():
    # A fresh interpreter: `autodiff.viz` not imported yet, as in a user's first cell.
    code = ("import autodiff; from autodiff import draw_graph, chain_rule; "
            "assert draw_graph is autodiff.viz.draw_graph; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
    assert {"draw_graph", "chain_rule"} <= set(autodiff.__all__)


# ---------------------------------------------------------------------------------------
# draw_graph: the DOT text

def test_value_graph_labels_values_grads_and_ops():
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = (a * b + a ** 2).tanh()
    c.label = "c"
    before = draw_graph(c).source
    assert isinstance(draw_graph(c), __import__("graphviz").Digraph)
    for text in ("<b>a</b>", "<b>b</b>", "<b>c</b>", "data 2", "data -3", "grad 0"):
        assert text in before
    for op in ("label=\"*\"", "label=\"+\"", "label=tanh", "label=\"** 2\""):
        assert op in before
    c.backward()
    after = draw_graph(c).source
    assert f"grad {viz_internals._num(a.grad)}" in after and f"grad {viz_internals._num(b.grad)}" in after
    assert "grad 1</td>" in after  # the root's own gradient


def test_both_edges_of_a_reused_node():
    x = Value(3.0, label="x")
    for y in (x * x, x + x):
        src = draw_graph(y).source
        xid = node_id(src, "<b>x</b>")
        into_op = [e for e in edges(src) if e[0] == xid]
        assert len(into_op) == 2
        assert into_op[0][1] == into_op[1][1]
    # and each edge of x * x carries its local derivative, x
    src = draw_graph(x * x).source
    labels = [label_of(e[2]) for e in edges(src) if e[0] == node_id(src, "<b>x</b>")]
    assert labels == ["3", "3"]


def test_edge_labels_are_local_derivatives_before_and_after_backward():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    d = c.tanh()
    for stage in ("before", "after"):  # after: backward released the saved buffers
        src = draw_graph(d).source
        by_tail = {e[0]: label_of(e[2]) for e in edges(src) if e[1].endswith("op")}
        assert by_tail[node_id(src, "<b>a</b>")] == "-3"       # d(ab)/da = b
        assert by_tail[node_id(src, "<b>b</b>")] == "2"        # d(ab)/db = a
        local = 1 - math.tanh(-6.0) ** 2
        assert by_tail[node_id(src, "<i>mul</i>")] == viz_internals._num(local)
        if stage == "before":
            d.backward()
    assert c._saved is None  # really released, and still drawn with numbers


def test_tensor_edges_show_jacobian_shapes_and_operands():
    p, loss = lecture_tensors()
    src = draw_graph(loss).source
    def label_from(name):
        (label,) = [label_of(e[2]) for e in edges(src) if e[0] == node_id(src, f"<b>{name}</b>")]
        return label

    assert label_from("W1") == "4×12"   # d(y)/d(W1): vector by matrix, as rows × columns
    assert label_from("x") == "W1"      # d(W1 @ x)/d(x) is W1 itself
    assert label_from("h") == "W2"
    assert label_from("y") == "diag"    # elementwise (a * y)
    assert label_from("a") == "4×1"     # vector by scalar
    tips = [e[2] for e in edges(src) if e[0] == node_id(src, "<b>W1</b>")]
    assert "(4, 4, 3)" in tips[0]       # the full Jacobian shape on hover


def test_tensor_preview_dtype_shape_and_stats():
    small = Tensor([1.0, 2.0, 3.0], requires_grad=True, label="small")
    big = Tensor(np.arange(100, dtype=np.float32), requires_grad=True, label="big")
    loss = (small * 2).sum() + big.sum()
    src = draw_graph(loss).source
    assert "float64 (3,)" in src and "[1 2 3]" in src
    assert "float32 (100,)" in src
    assert "min 0  mean 49.5  max 99  norm 573" in src           # norm: sqrt(328350) = 573.0
    assert "..." in src                                           # a preview, not 100 numbers
    assert "grad" not in src.split("<b>big</b>")[1].split("</table>")[0]
    loss.backward()
    src = draw_graph(loss).source
    assert "grad [2 2 2]" in src                       # d(sum(2 s))/ds
    assert "grad min 1  mean 1  max 1  norm 10" in src  # big's gradient summarised


def test_views():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    c.backward()
    forward = draw_graph(c, view="forward").source
    assert "grad" not in forward and "label=-3 " not in forward
    backward = draw_graph(c, view="backward").source
    assert all("dir=back" in e[2] for e in edges(backward))
    cell = backward.split("<b>a</b>")[1]
    assert cell.index("grad -3") < cell.index("data 2")  # gradients first
    assert "rankdir=TB" in backward     # deeper than wide: top to bottom
    assert "bottom to top" in backward and "right to left" not in backward
    assert "right to left" in draw_graph(c, view="backward", rankdir="LR").source
    assert "rankdir=TB" in draw_graph(c, rankdir="TB").source
    no_grad = draw_graph(c, show_grad=False).source
    assert "grad" not in no_grad.replace("edge labels", "")
    with pytest.raises(ValueError, match="view"):
        draw_graph(c, view="sideways")


def test_nan_values_and_gradients_are_red_and_the_first_op_marked():
    n = Value(-1.0, label="n")
    m = n.log() * 2.0 + 1.0
    m.backward()
    src = draw_graph(m).source
    log_op = re.search(r"^\s*(\w+op) \[label=\"log\nfirst nan/inf value\".*fillcolor=\"#d62728\"",
                       src, flags=re.M)
    assert log_op, src
    assert src.count("first nan/inf value") == 1
    assert '<font color="#d62728">data nan</font>' in src
    assert "first nan/inf gradient" not in src  # every gradient here is finite

    x = Value(0.0, label="x")
    r = (x ** 0.5 + 1.0).tanh()   # finite values; d(sqrt x)/dx = inf at 0
    r.backward()
    src = draw_graph(r).source
    assert re.search(r'label="\*\* 0.5\nfirst nan/inf gradient".*fillcolor="#d62728"', src)
    assert src.count("first nan/inf") == 1
    assert '<font color="#d62728">grad inf</font>' in src
    assert '<font color="#d62728">data' not in src

    t = Tensor([1.0, 0.0, 2.0], requires_grad=True, label="t")
    with np.errstate(divide="ignore"):
        r = (1 / t).sum()
    src = draw_graph(r).source
    assert 'label="/\nfirst nan/inf value"' in src
    assert '<font color="#d62728">[1 inf 0.5]</font>' in src


def test_non_finite_leaf_is_named():
    a = Tensor([np.nan, 1.0], requires_grad=True, label="bad")
    src = draw_graph((a * 2).sum()).source
    assert "non-finite input" in src and "first nan/inf value" not in src


def test_rendering_to_svg():
    need_dot()
    p, loss = lecture_tensors()
    loss.backward()
    svg = draw_graph(loss).pipe(format="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "W1" in svg and "sigmoid" in svg and "Loss" in svg
    a = Value(2.0, label="a")
    svg = draw_graph((a * a).tanh(), view="backward").pipe(format="svg", encoding="utf-8")
    assert "tanh" in svg


def test_missing_dot_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot` anywhere
    a = Value(2.0, label="a")
    graph = draw_graph(a * a)
    assert "digraph" in graph.source             # the DOT text needs no program
    for render in (lambda: graph.pipe(format="svg"),
                   lambda: graph.render(tmp_path / "g", format="svg")):
        with pytest.raises(DotNotFoundError) as info:
            render()
        message = str(info.value)
        assert "apt-get install graphviz" in message and "brew install graphviz" in message
        assert isinstance(info.value, __import__("graphviz").ExecutableNotFound)
    bundle = graph._repr_mimebundle_()
    assert "apt-get install graphviz" in bundle["text/plain"]


def test_drawing_changes_nothing():
    p, loss = lecture_tensors()
    for stage in ("before", "after"):
        before = snapshot(loss)
        for view in ("both", "forward", "backward"):
            draw_graph(loss, view=view).source
        str(chain_rule(loss, p["W1"]))
        str(chain_rule(loss, p["a"], factors="ops"))
        for step in backward_steps(loss):
            str(step)
            step.draw().source
        assert_same(before, snapshot(loss))
        if stage == "before":
            loss.backward()  # the buffers were not released by any of the above
    s, loss = lecture_scalars()
    before = snapshot(loss)
    draw_graph(loss).source
    str(chain_rule(loss, s["a"]))
    list(backward_steps(loss))
    assert_same(before, snapshot(loss))
    assert s["a"].grad == 0.0
    loss.backward()


def test_drawing_keeps_the_residuals_of_fused_ops():
    import nn

    net = nn.Sequential(nn.Linear(4, 3))
    loss = nn.CrossEntropyLoss()(net(Tensor(np.ones((2, 4)))), [0, 2])
    (fused,) = [n for n in viz_internals._topo([loss]) if n._prim is not None and n._prim.residuals]
    residuals = [a.copy() for a in fused._saved if a is not None]
    assert residuals  # the forward left something for its backward
    before = snapshot(loss)
    draw_graph(loss).source
    str(chain_rule(loss, net[0].weight))
    list(backward_steps(loss))
    assert_same(before, snapshot(loss))
    for kept, copy in zip([a for a in fused._saved if a is not None], residuals):
        np.testing.assert_array_equal(kept, copy)
    (expected,) = autodiff.grad(loss, net[0].weight, retain_graph=True)
    np.testing.assert_allclose(chain_rule(loss, net[0].weight).total, expected.data, rtol=1e-12)


def test_clusters_from_a_module():
    p, loss = lecture_tensors()
    for k in ("W1", "b1", "W2", "b2"):
        p[k].label = None  # names come from the module

    class Net:  # what an nn.Module provides
        def named_parameters(self):
            return [("0.weight", p["W1"]), ("0.bias", p["b1"]), ("1.h", p["a"]),
                    ("2.weight", p["W2"]), ("2.bias", p["b2"])]

    src = draw_graph(loss, clusters=Net()).source
    blocks = re.findall(r"subgraph cluster_\d+ \{(.*?)\n\t\}", src, flags=re.S)
    assert len(blocks) == 3
    first = blocks[0]
    assert " label=0 " in first and "<b>0.weight</b>" in first and "<b>0.bias</b>" in first
    assert 'label="@"' in first and 'label="+"' in first  # the layer's own ops
    assert "<b>a</b>" in blocks[1] and 'label="*"' in blocks[1]  # a label beats a name
    assert "<b>2.weight</b>" in blocks[2]
    assert "<b>Loss</b>" not in "".join(blocks)
    assert "sigmoid" in blocks[1]  # the activation sits in its layer's box
    # a mapping of names to nodes works too
    src = draw_graph(loss, clusters={"hidden": [p["W1"], p["b1"]]}).source
    assert src.count("subgraph cluster_") == 1 and "label=hidden" in src


def test_large_graph_is_collapsed():
    v = Value(0.1, label="x")
    for _ in range(10_000):
        v = v.tanh()
    src = draw_graph(v, max_nodes=300).source
    data_nodes = re.findall(r"^\s*n\d+ \[label=<", src, flags=re.M)
    assert len(data_nodes) == 300
    assert "9,701 more nodes not drawn" in src  # 10,001 nodes in all
    assert "ops: 9,700 tanh\n1 leaf" in src
    assert re.search(r"^\s*hidden -> n\d+op", src, flags=re.M)


def test_long_edges_collapse_further():
    # shared leaves feeding a long chain make `dot` slow; fewer nodes are kept
    xs = [Value(float(i), label=f"x{i}") for i in range(50)]
    acc = Value(0.0)
    for i in range(2_500):
        acc = acc + (xs[i % 50] * 0.5).tanh()
    src = draw_graph(acc).source
    data_nodes = re.findall(r"^\s*n\d+ \[label=<", src, flags=re.M)
    assert 20 < len(data_nodes) < 500
    assert "more nodes not drawn" in src
    everything = draw_graph(acc, max_nodes=None).source
    assert len(re.findall(r"^\s*n\d+ \[label=<", everything, flags=re.M)) == 7_551


# ---------------------------------------------------------------------------------------
# chain_rule

def test_chain_rule_lecture_tensors():
    p, loss = lecture_tensors()
    expected = lecture_by_hand(p)
    cr = chain_rule(loss, p["W1"])
    assert cr.num_paths == 1 and len(cr.paths) == 1
    (path,) = cr.paths
    assert path.names == ["d(Loss)/d(o)", "d(o)/d(h)", "d(h)/d(y)", "d(y)/d(W1)"]
    assert [f.shape for f in path.factors] == [(2,), (2, 4), (4, 4), (4, 4, 3)]
    assert [f.diagonal for f in path.factors] == [False, False, True, False]
    np.testing.assert_allclose(path.value, expected["W1"], rtol=1e-12)
    np.testing.assert_allclose(cr.total, expected["W1"], rtol=1e-12)
    # the running products are the lecture's intermediate gradients
    d_o = path.factors[0].running
    np.testing.assert_allclose(path.factors[1].running, p["W2"].data.T @ d_o, rtol=1e-12)
    assert cr.grad is None and cr.agrees is None
    text = str(cr)
    assert "d(Loss)/d(o) · d(o)/d(h) · d(h)/d(y) · d(y)/d(W1)" in text
    assert "vector by matrix" in text and "diagonal (4, 4)" in text
    assert "nothing to compare" in text

    for name in ("b1", "a", "W2", "b2"):
        np.testing.assert_allclose(chain_rule(loss, p[name]).total, expected[name], rtol=1e-12)
    assert chain_rule(loss, p["a"]).paths[0].names == [
        "d(Loss)/d(o)", "d(o)/d(h)", "d(h)/d(a)"]
    assert chain_rule(loss, p["W2"]).paths[0].names == ["d(Loss)/d(o)", "d(o)/d(W2)"]

    loss.backward()
    for name in ("W1", "b1", "a", "W2", "b2"):
        cr = chain_rule(loss, p[name])
        assert cr.agrees is True, name
        assert f"{name}.grad agrees with the total" in str(cr)


def test_chain_rule_lecture_scalars():
    s, loss = lecture_scalars()
    o, h, y, a = s["o"].data, [v.data for v in s["h"]], [v.data for v in s["y"]], s["a"].data
    v = [w.data for w in s["W2"]]
    d_o = 2 * (o - 0.25)
    d_h_da = [hj * (1 - hj) * yj for hj, yj in zip(h, y)]

    cr = chain_rule(loss, s["a"])  # a is shared by both hidden units: two paths
    assert cr.num_paths == 2
    assert [p.names for p in cr.paths] == [["d(Loss)/d(o)", "d(o)/d(h1)", "d(h1)/d(a)"],
                                           ["d(Loss)/d(o)", "d(o)/d(h2)", "d(h2)/d(a)"]]
    for j, path in enumerate(cr.paths):
        assert [f.value for f in path.factors] == pytest.approx([d_o, v[j], d_h_da[j]], rel=1e-12)
        assert path.value == pytest.approx(d_o * v[j] * d_h_da[j], rel=1e-12)
    total = d_o * (v[0] * d_h_da[0] + v[1] * d_h_da[1])
    assert cr.total == pytest.approx(total, rel=1e-12)
    assert sum(p.value for p in cr.paths) == pytest.approx(total, rel=1e-12)
    assert cr.agrees is False  # .grad is still 0.0
    assert "a.grad is 0: run backward() first to compare it with the total" in str(cr)

    cr = chain_rule(loss, s["W1"][0][1])  # w12: y1 = w11 x1 + w12 x2 + b11
    (path,) = cr.paths
    assert path.names == ["d(Loss)/d(o)", "d(o)/d(h1)", "d(h1)/d(y1)", "d(y1)/d(w12)"]
    assert path.factors[3].value == pytest.approx(-1.5)            # x2
    assert path.factors[2].value == pytest.approx(h[0] * (1 - h[0]) * a)
    text = str(cr)
    assert "d(Loss)/d(o) · d(o)/d(h1) · d(h1)/d(y1) · d(y1)/d(w12)" in text
    assert f"= {viz_internals._factor_num(d_o, 4)} · " in text

    loss.backward()
    for node in (s["a"], s["W1"][0][1], s["b2"], s["x"][0]):
        cr = chain_rule(loss, node)
        assert cr.agrees is True
        assert cr.total == pytest.approx(node.grad, rel=1e-12)


def test_chain_rule_every_op_level_and_reused_nodes():
    x = Value(3.0, label="x")
    cr = chain_rule(x * x, x)
    assert [p.value for p in cr.paths] == [3.0, 3.0] and cr.total == 6.0
    assert "[input 0]" in cr.paths[0].names[0] and "[input 1]" in cr.paths[1].names[0]
    s, loss = lecture_scalars()
    cr = chain_rule(loss, s["a"], factors="ops")
    assert cr.paths[0].names[:2] == ["d(Loss)/d(add_const)", "d(add_const)/d(o)"]
    assert cr.paths[0].names[-2:] == ["d(h1)/d(mul3)", "d(mul3)/d(a)"]
    assert cr.total == pytest.approx(chain_rule(loss, s["a"]).total, rel=1e-12)


def test_chain_rule_caps_the_number_of_paths():
    x = Value(1.0, label="x")
    v = x
    for _ in range(12):
        v = v * v          # each level doubles the paths: 4096 in all
    cr = chain_rule(v, x, max_paths=5)
    assert cr.num_paths == 4096 and len(cr.paths) == 5
    assert cr.total == 4096.0  # d(x**4096)/dx at 1
    assert "4,091 more paths" in str(cr)


def test_chain_rule_with_broadcasting_matches_autodiff_grad():
    rng = np.random.default_rng(1)
    x = Tensor(rng.normal(size=(3, 4)), label="x")
    b = Tensor(rng.normal(size=4), requires_grad=True, label="b")
    loss = ((x * b).tanh().sum(axis=0) * b).sum()   # b reaches the loss by two paths
    cr = chain_rule(loss, b)
    assert cr.num_paths == 2
    (expected,) = autodiff.grad(loss, b, retain_graph=True)
    np.testing.assert_allclose(cr.total, expected.data, rtol=1e-12)
    np.testing.assert_allclose(sum(p.value for p in cr.paths), expected.data, rtol=1e-12)
    # and with respect to a constant input (d(loss)/dx is still defined)
    cx = chain_rule(loss, x)
    assert cx.total.shape == (3, 4)
    x_var = Tensor(x.data, requires_grad=True)
    (gx,) = autodiff.grad(((x_var * b).tanh().sum(axis=0) * b).sum(), x_var)
    np.testing.assert_allclose(cx.total, gx.data, rtol=1e-12)


def test_chain_rule_non_scalar_output_and_no_path():
    w = Tensor([1.0, 2.0], requires_grad=True, label="w")
    out = w * 3
    with pytest.raises(ValueError, match="grad_output"):
        chain_rule(out, w)
    cr = chain_rule(out, w, grad_output=np.array([1.0, -1.0]))
    np.testing.assert_allclose(cr.total, [3.0, -3.0])
    other = Tensor(1.0, requires_grad=True, label="other")
    cr = chain_rule(out.sum(), other)
    assert cr.num_paths == 0 and cr.paths == [] and cr.total == 0
    assert "does not depend on other" in str(cr)
    with pytest.raises(TypeError):
        chain_rule(out.sum(), Value(1.0))


def test_chain_rule_notebook_display():
    p, loss = lecture_tensors()
    md = chain_rule(loss, p["W1"])._repr_markdown_()
    assert md.startswith("$$\n\\partial_{\\mathrm{W1}} \\mathrm{Loss} = ")   # the lecture's ∂_W1 Loss
    assert "\\partial_{\\mathrm{o}} \\mathrm{Loss}" in md and "Jacobians 2, 2×4, 4×4, 4×4×3" in md
    s, sloss = lecture_scalars()
    cr = chain_rule(sloss, s["a"])
    assert cr._repr_latex_().startswith("$\\displaystyle ")
    md = cr._repr_markdown_()
    assert md.count("\\partial_{\\mathrm{o}} \\mathrm{Loss}") == 2  # two paths
    factors = " \\cdot ".join(viz_internals._factor_num(f.value, 4) for f in cr.paths[0].factors)
    assert f"= {factors} = " in md and f"&= {viz_internals._num(cr.total)}\n" in md


# ---------------------------------------------------------------------------------------
# backward_steps

def test_backward_steps_replays_backward_on_the_side():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b + a
    c.label = "c"
    steps = backward_steps(c)
    assert a.grad == 0.0 and b.grad == 0.0      # nothing touched
    # the engine's order: the heap of pending ops, then the leaves in the order reached
    assert [s.name for s in steps] == ["c", "mul", "a", "b"]
    mul = steps[1]
    assert mul.grad == 1.0
    (to_a, to_b) = mul.sends
    assert (to_a.local, to_a.contribution, to_a.before, to_a.after) == (-3.0, -3.0, 1.0, -2.0)
    assert (to_b.local, to_b.contribution, to_b.before, to_b.after) == (2.0, 2.0, None, 2.0)
    text = str(mul)
    assert text.startswith("step 2: mul sends ∂c/∂a = 1 × (-3) = -3 to a (a had 1, now -2)")
    assert "mul sends ∂c/∂b = 1 × 2 = 2 to b\n" not in text and text.endswith("to b")
    assert str(steps[-1]) == "step 4: b is a leaf: its total ∂c/∂b = 2 is final"
    assert "vjp" not in text and "_const" not in text
    picture = mul.draw().source
    assert "step 2: mul sends its gradient to a, b" in picture
    assert picture.count("bgcolor=\"#ff7f0e\"") == 1   # the node being processed, filled
    assert [s.node for s in steps][2:] == [a, b]
    # the picture of a step shows the gradients known then; the real ones stay 0
    src = steps[0].draw().source
    assert "grad 1</td>" in src and "grad -2" not in src
    src = steps[-1].draw().source
    assert "grad -2" in src and "grad 2" in src
    c.backward()
    assert (a.grad, b.grad) == (steps[-2].grad, steps[-1].grad)


def test_backward_steps_tensors_match_backward():
    p, loss = lecture_tensors()
    final = {}
    for step in backward_steps(loss):
        final[id(step.node)] = step.grad
        assert p["W1"].grad is None
    loss.backward()
    for name in ("W1", "b1", "a", "W2", "b2"):
        np.testing.assert_allclose(final[id(p[name])], p[name].grad, rtol=1e-12)


def test_clusters_from_nn_modules():
    import nn

    net = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(learnable=True), nn.Linear(4, 2))
    x = Tensor(np.ones((1, 3)), label="x")
    loss = net(x).sum()
    src = draw_graph(loss, clusters=net).source
    assert 'label="0: Linear"' in src and 'label="1: Sigmoid"' in src
    assert 'label="2: Linear"' in src
    assert "<b>0.weight</b>" in src and "<b>1.h</b>" in src and "<b>2.bias</b>" in src
    # names from the module also name the factors of the chain rule
    cr = chain_rule(loss, net[0].weight, names=net)
    assert cr.paths[0].names[-1].endswith("/d(0.weight)")

    model = nn.MLP(2, [3, 1])           # the scalar, micrograd-style path
    out = model([1.0, -2.0])
    src = draw_graph(out, clusters=model).source
    assert src.count("subgraph cluster_") == 2   # one box per layer
    assert 'label="layer 0"' in src and "<b>L1.N0.w2</b>" in src and "<b>L0.N0.b</b>" in src
    assert "b + Σ w·x (n=2)" in src


def test_a_bad_cluster_spec_is_named_not_recursed_into():
    x = Value(1.0, label="x")
    y = x * 2.0
    with pytest.raises(TypeError, match="clusters: 'sub' .* is not a node, a module"):
        draw_graph(y, clusters={"rest": [("sub", x)]})


# ---------------------------------------------------------------------------------------
# Labels that DOT would misread: a final backslash, DOT escapes, markup, control characters

_AWKWARD = {"final backslash": ("a\\", "a\\"), "DOT escape": ("w\\l", "w\\l"),
            "newline": ("x\ny", "x\\ny"), "bell": ("\x07", "\\x07"), "NUL": ("\x00z", "\\x00z"),
            "markup": ("<b>", "<b>"), "quote": ('q"', 'q"'), "ampersand": ("&amp;", "&amp;"),
            "lone surrogate": ("s\ud800", "s\\ud800"), "C1 control": ("c\x85", "c\\x85")}


def _svg_texts(svg: str) -> tuple[list, list]:
    """The text of every <text> element, and every tooltip (xlink:title), unescaped."""
    root = ET.fromstring(svg)
    texts = ["".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")]
    titles = [v for e in root.iter() for k, v in e.attrib.items() if k.endswith("}title")]
    return texts, titles


@pytest.mark.parametrize("name", _AWKWARD)
def test_awkward_labels_render_and_show_as_given(name):
    need_dot()
    label, shown = _AWKWARD[name]
    for make in (Value, lambda v, label: Tensor([v, 1.0], requires_grad=True, label=label)):
        a = make(2.0, label=label)
        b = make(3.0, label="b")
        y = (a * b).tanh()
        y.label = label + "!"
        (y if isinstance(y, Value) else y.sum()).backward()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # graphviz warns of a quoted string it expects to break
            source = draw_graph(y, clusters={label: [a]}).source
        run = subprocess.run(["dot", "-Tsvg"], input=source.encode("utf-8"), capture_output=True)
        assert run.returncode == 0 and not run.stderr, run.stderr.decode()
        texts, titles = _svg_texts(run.stdout.decode("utf-8"))
        assert texts.count(shown) == 2 and shown + "!" in texts  # cluster box, node titles
        for tip in (f"∂(mul)/∂({shown})", f"∂({shown}!)/∂(mul)"):  # edge tooltips
            assert any(t.startswith(tip) for t in titles), (tip, titles)


def test_awkward_label_of_a_hidden_node_in_the_summary():
    need_dot()
    v = Value(float("nan"), label="bad\\")
    for _ in range(30):
        v = v.tanh()
    source = draw_graph(v, max_nodes=5).source
    assert "first nan/inf value at hidden node bad\\\\" in source  # escaped for DOT
    run = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True)
    assert run.returncode == 0 and not run.stderr, run.stderr.decode()
    texts, _ = _svg_texts(run.stdout.decode())
    assert "first nan/inf value at hidden node bad\\" in texts


def test_escaping_helpers():
    esc, visible = viz_internals._esc, viz_internals._visible
    assert esc("a<b>&\\") == "a&lt;b&gt;&amp;\\"
    assert visible("x\ny\t\x00\x1f\x7f\ud800\uffff") == "x\\ny\\t\\x00\\x1f\\x7f\\ud800\\uffff"
    assert visible("ü → ∂ 😀") == "ü → ∂ 😀"              # printable text is left alone
    assert viz_internals._lines("a\nb\x07") == "a<br/>b\\x07"


@pytest.mark.parametrize("name", ["<W>", "<1 < 2>", "<b>W</b>"])
def test_an_edge_label_named_like_html_stays_text_and_is_padded(name):
    # The edge x -> W @ x is labelled with the matrix's name; padding the label must keep it
    # plain text (graphviz read '<b>W</b>' as HTML, and '<1 < 2>' failed to parse). Labels
    # are padded because graphviz sizes them for Helvetica and browsers draw them wider.
    W = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True, label=name)
    x = Tensor(np.ones(2), requires_grad=True, label="x")
    g = draw_graph((W @ x).sum())
    tail = node_id(g.source, "<b>x</b>")
    assert [label_of(e[2]) for e in edges(g.source) if e[0] == tail] == [name]
    assert f'label=" {name}  "' in g.source
    need_dot()
    assert name.replace("<", "&lt;").replace(">", "&gt;") in g.pipe(format="svg").decode()


def test_op_captions_leave_out_options_at_their_defaults():
    # A LeNet picture was widened by 'conv(stride=(1, 1), padding=((0, 0), (0, 0)),
    # dilation=(1, 1), groups=1)': options at their default (Op.defaults) go unsaid.
    import nn
    x = Tensor(np.ones((1, 2, 6, 6)), requires_grad=True)

    def caption(module):
        src = draw_graph(module(x).sum()).source
        found = re.findall(r'\[label=("?)((?:conv|max_pool|avg_pool)[^"\]]*)\1 fillcolor', src)
        assert len(found) == 1, src
        return found[0][1]
    assert caption(nn.Conv2d(2, 2, 3)) == "conv"
    assert caption(nn.Conv2d(2, 2, 3, stride=2, padding=1, groups=2)) == \
        "conv(stride=(2, 2), padding=((1, 1), (1, 1)), groups=2)"
    assert caption(nn.MaxPool2d(2)) == "max_pool (2, 2)"
    assert caption(nn.MaxPool2d(3, stride=1, ceil_mode=True)) == \
        "max_pool (3, 3) (stride=(1, 1), ceil_mode=True)"
    assert caption(nn.AvgPool2d(2, padding=1, count_include_pad=False)) == \
        "avg_pool (2, 2) (padding=(1, 1), count_include_pad=False)"
    # reductions say axis and keepdims only where they are not None and False
    from autodiff.viz._common import _op_text
    m = Tensor(np.ones((2, 3)), requires_grad=True)
    assert [_op_text(y) for y in (m.sum(), m.sum(axis=0), m.mean(axis=1, keepdims=True),
                                  m.max())] == ["sum", "sum(axis=0)",
                                                "mean(axis=1, keepdims=True)", "max"]
