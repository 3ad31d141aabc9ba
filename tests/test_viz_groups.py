"""The lecture-level pictures: folded scopes and module calls, sizes that fit a notebook
column, boxes per layer, gradients at every node (checked against PyTorch and finite
differences), merged inputs, and the legend's direction."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor, Value
from autodiff.viz import draw_graph

from test_viz import edges, label_of, lecture_tensors, node_id


def need_dot():
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("graphviz `dot` is required in CI")
        pytest.skip("graphviz `dot` not installed")


def size(graph) -> tuple:
    """(width, height) in points of the laid-out picture."""
    need_dot()
    out = subprocess.run(["dot", "-Tjson"], input=graph.source.encode("utf-8"),
                         capture_output=True, check=True).stdout
    x0, y0, x1, y1 = map(float, json.loads(out)["bb"].split(","))
    return x1 - x0, y1 - y0


def lecture(scoped: bool):
    """Notebook 06's network: y = W1·x + b1, h = σ(a·y), o = W2·h + b2, Loss = ½(o − t)²."""
    x, t = Value(0.5, label="x"), 1.0
    W1, b1, a = Value(0.8, label="W1"), Value(0.1, label="b1"), Value(2.0, label="a")
    W2, b2 = Value(-1.2, label="W2"), Value(0.3, label="b2")

    def block(name):
        return autodiff.scope(name) if scoped else _Nothing()

    with block("y = W1·x + b1"):
        y = W1 * x + b1
    with block("h = σ(a·y)"):
        h = (a * y).sigmoid()
    with block("o = W2·h + b2"):
        o = W2 * h + b2
    with block("Loss = ½(o − t)²"):
        loss = 0.5 * (o - t) ** 2
    y.label, h.label, o.label, loss.label = "y", "h", "o", "Loss"
    return {"x": x, "W1": W1, "b1": b1, "a": a, "W2": W2, "b2": b2, "y": y, "h": h, "o": o,
            "Loss": loss}


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def edge_label(src, tail_text, head_text=None):
    tail = node_id(src, tail_text)
    found = [re.search(r"label=(<.*?>|\S+) ", e[2] + " ").group(1).replace("&nbsp;", "")
             for e in edges(src) if e[0] == tail]  # (without the padding)
    assert len(found) == 1, (tail_text, found)
    return found[0]


def test_the_lecture_network_draws_as_its_four_equations():
    v = lecture(scoped=True)
    v["Loss"].backward()
    src = draw_graph(v["Loss"], collapse="scopes").source
    ops = re.findall(r"\tg\d+ \[label=\"([^\"]*)\"", src)
    assert ops == ["½(o − t)²", "W2·h + b2", "σ(a·y)", "W1·x + b1"]
    assert "add_const" not in src and "pow_const" not in src and "sigmoid" not in src
    hv, yv, ov = v["h"].data, v["y"].data, v["o"].data
    # the outputs take the equations' left sides as names; the edges carry ∂_in out
    assert "<b>y</b>" in src and "<b>h</b>" in src and "<b>o</b>" in src
    for tail, label, value in (("<b>y</b>", "∂<sub>y</sub>h", 2.0 * hv * (1 - hv)),
                               ("<b>a</b>", "∂<sub>a</sub>h", yv * hv * (1 - hv)),
                               ("<b>h</b>", "∂<sub>h</sub>o", -1.2),
                               ("<b>o</b>", "∂<sub>o</sub>Loss", ov - 1.0),
                               ("<b>W1</b>", "∂<sub>W1</sub>y", 0.5)):
        text = edge_label(src, tail)
        assert text.startswith("<" + label + " = "), text
        assert float(text.split(" = ")[1].rstrip(">")) == pytest.approx(value, rel=1e-3)
    # expanded to primitives, the same graph has its ops back
    full = draw_graph(v["Loss"]).source
    assert "sigmoid" in full and "g0" not in full


def test_collapse_options():
    v = lecture(scoped=True)
    only = draw_graph(v["Loss"], collapse={"h = σ(a·y)"}).source
    assert re.findall(r"\tg\d+ \[label=\"([^\"]*)\"", only) == ["σ(a·y)"]
    assert "sigmoid" not in only and "add_const" in only
    with pytest.raises(ValueError, match="collapse must be"):
        draw_graph(v["Loss"], collapse="everything")


@pytest.mark.parametrize("view", ["both", "forward", "backward"])
def test_the_lecture_pictures_fit_a_notebook_column(view):
    for scoped in (False, True):
        v = lecture(scoped)
        v["Loss"].backward()
        for collapse in (None, "scopes"):
            w, h = size(draw_graph(v["Loss"], view=view, collapse=collapse))
            assert w <= 1100 and h <= 1400, (scoped, collapse, w, h)
    p, loss = lecture_tensors()
    loss.backward()
    w, h = size(draw_graph(loss, view=view))
    assert w <= 1100 and h <= 1400, (w, h)


def test_gradients_at_every_node_match_torch_and_finite_differences():
    v = lecture(scoped=False)
    v["Loss"].backward()
    src = draw_graph(v["Loss"]).source
    shown = {k: float(re.search(rf"<b>{k}</b></td><td>data [^<]*</td><td>grad ([^<]*)<",
                                src).group(1)) for k in ("y", "h", "o", "Loss")}
    assert shown["Loss"] == 1.0

    def loss_from(y=None, h=None, o=None):  # the rest of the forward pass, in floats
        yv = 0.8 * 0.5 + 0.1 if y is None else y
        hv = 1 / (1 + np.exp(-2.0 * yv)) if h is None else h
        ov = -1.2 * hv + 0.3 if o is None else o
        return 0.5 * (ov - 1.0) ** 2

    eps = 1e-6
    for k in ("y", "h", "o"):
        x0 = v[k].data
        fd = (loss_from(**{k: x0 + eps}) - loss_from(**{k: x0 - eps})) / (2 * eps)
        assert shown[k] == pytest.approx(fd, rel=1e-3)
    assert v["y"].grad is not None  # (the .grad backward left is untouched by drawing)

    torch = pytest.importorskip("torch")
    p, loss = lecture_tensors()
    loss.backward()
    from autodiff.viz._common import _all_grads
    from autodiff.viz._common import _topo
    grads = _all_grads([loss])
    tp = {k: torch.tensor(p[k].data, requires_grad=k not in ("x", "t")) for k in p}
    ty = tp["W1"] @ tp["x"] + tp["b1"]
    th = torch.sigmoid(tp["a"] * ty)
    to = tp["W2"] @ th + tp["b2"]
    for t in (ty, th, to):
        t.retain_grad()
    ((to - tp["t"]) ** 2).mean().backward()
    by_label = {n.label: n for n in _topo([loss]) if n.label}
    for name, t in (("y", ty), ("h", th), ("o", to)):
        np.testing.assert_allclose(grads[id(by_label[name])], t.grad.numpy(), rtol=1e-10)
    assert grads[id(loss)] == 1.0
    src = draw_graph(loss).source
    assert re.search(r"<b>Loss</b>.*?grad 1<", src)


def test_no_gradients_before_backward():
    v = lecture(scoped=False)
    src = draw_graph(v["Loss"]).source
    assert "grad 0.7443" not in src   # y's gradient appears only once a backward ran


def _boxes(src: str) -> dict:
    """Box name -> the DOT statements inside it."""
    return dict((m.group(2), m.group(3)) for m in re.finditer(
        r"subgraph cluster_(\d+) \{\n\t\tcolor=\S+ fontname=\S+ fontsize=\S+ label=\"?([^\"\n]*?)\"? "
        r"style=\S+\n(.*?)\n\t\}", src, flags=re.S))


def test_sequential_boxes_each_layer_and_activation_in_call_order():
    autodiff.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3), nn.Tanh(),
                          nn.Linear(3, 1))
    out = model(Tensor(np.ones((2, 2)))).sum()
    src = draw_graph(out, clusters=model).source
    blocks = _boxes(src)
    assert set(blocks) == {"0: Linear", "1: Tanh", "2: Linear", "3: Tanh", "4: Linear"}
    assert "label=tanh" in blocks["1: Tanh"] and "label=tanh" in blocks["3: Tanh"]
    assert "tanh" not in blocks["0: Linear"] and "tanh" not in blocks["2: Linear"]
    assert "<b>0.weight</b>" in blocks["0: Linear"] and "label=sum" not in "".join(blocks.values())
    folded = draw_graph(out, clusters=model, collapse="modules").source
    assert sorted(re.findall(r"\tg\d+ \[label=\"([^\"]*)\"", folded)) == [
        "0: Linear", "1: Tanh", "2: Linear", "3: Tanh", "4: Linear"]


def test_a_scalar_mlp_fed_floats_draws_each_input_once_and_boxes_layers():
    import random
    random.seed(0)
    m = nn.MLP(2, [4, 1], activation="tanh")
    src = draw_graph(m([0.5, -1.0]), clusters=m).source
    assert src.count("<i>leaf") == 2              # not one leaf per neuron
    labels = re.findall(r"subgraph cluster_\d+ \{\n\t\t[^\n]*label=\"([^\"]*)\"", src)
    assert labels == ["layer 0", "layer 1"]
    layer0 = src.split('label="layer 0"')[1].split("\n\t}")[0]
    assert layer0.count("label=tanh") == 4        # the activations sit in their layer
    # two samples with equal inputs stay two inputs
    loss = m([0.5, -1.0]) + m([0.5, -1.0])
    assert draw_graph(loss, clusters=m).source.count("<i>leaf") == 4


def test_the_legend_follows_the_layout():
    v = lecture(scoped=False)
    for rankdir, words in (("TB", "bottom to top"), ("LR", "right to left"),
                           ("BT", "top to bottom")):
        src = draw_graph(v["Loss"], view="backward", rankdir=rankdir).source
        assert words in src
        assert all(w not in src for _, w in (("", "right to left"), ("", "bottom to top"))
                   if w != words)


def test_short_names_are_apart_from_the_dtype_and_pool_labels_have_a_separator():
    h = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True, label="h")
    y = nn.functional.max_pool2d(h, 2, stride=1)
    src = draw_graph(h.sum()).source
    assert "<b>h</b>&#160;&#160;" in src
    assert 'label="max_pool (2, 2) (stride=' in draw_graph(y.sum()).source


def test_a_big_graph_collapses_its_modules_before_the_node_cap():
    autodiff.manual_seed(0)
    layers = []
    for _ in range(12):
        layers += [nn.Linear(3, 3), nn.Tanh()]
    model = nn.Sequential(*layers)
    out = model(Tensor(np.ones((2, 3)))).sum()
    src = draw_graph(out, clusters=model, max_nodes=40).source
    folded = re.findall(r"\tg\d+ \[label=\"([^\"]*)\"", src)
    assert len(folded) == 24 and "0: Linear" in folded and "23: Tanh" in folded
    assert "more nodes not drawn" not in src      # it fits once folded
    assert "more nodes not drawn" in draw_graph(out, clusters=model, collapse=False,
                                                max_nodes=40).source


def test_a_scalar_mlp_folds_into_one_node_per_neuron_call():
    import math
    import random
    random.seed(0)
    m = nn.MLP(2, [3, 1], activation="tanh")
    out = m([0.5, -1.0])
    src = draw_graph(out, clusters=m, collapse="modules").source
    assert sorted(re.findall(r"\tg\d+ \[label=\"([^\"]*)\"", src)) == [
        "L0.N0", "L0.N1", "L0.N2", "L1.N0"]
    assert src.count("<i>leaf") == 2 and "L0.N0.w0" not in src  # weights fold in
    n = m.layers[0].neurons[1]
    pre = n.b.data + n.w[0].data * 0.5 - n.w[1].data
    local = (1 - math.tanh(pre) ** 2) * n.w[0].data          # ∂_x0 of tanh(w·x + b)
    labels = [e[2] for e in edges(src) if e[1].startswith("g")]
    assert any(f"= {viz_num(local)}&nbsp;" in a for a in labels), labels


def test_a_big_scalar_mlp_loss_folds_per_sample_by_default_and_draws_its_weights_once():
    import random
    random.seed(0)
    m = nn.MLP(2, [16, 16, 1])
    xs = [[2.0, 3.0], [3.0, -1.0], [0.5, 1.0], [1.0, 1.0]]
    loss = sum((m(x) - y) ** 2 for x, y in zip(xs, [1.0, -1.0, -1.0, 1.0]))
    loss.backward()
    src = draw_graph(loss).source                 # 737 nodes: above max_nodes=500
    calls = dict(re.findall(r"^\t(g\d+) \[label=\"(MLP call \d)\"", src, flags=re.M))
    assert sorted(calls.values()) == ["MLP call 1", "MLP call 2", "MLP call 3", "MLP call 4"]
    assert src.count("<i>leaf") == 8              # each sample's two numbers, once
    assert "MLP: its 337 parameters" in src and "more nodes not drawn" not in src
    into = re.findall(r"^\tshared0 -> (g\d+) \[.*label=\"337 inputs\"", src, flags=re.M)
    assert sorted(into) == sorted(calls)          # the weights feed every call
    assert len(re.findall(r"^\t\w+ \[", src, flags=re.M)) < 60
    assert 'label="MLP call' not in draw_graph(loss, max_nodes=None).source  # asked: all


def viz_num(x):
    from autodiff.viz._common import _num
    return _num(x)


def test_an_unrolled_lstm_folds_into_one_node_per_time_step():
    autodiff.manual_seed(0)
    lstm = nn.LSTM(2, 3)
    out, (h, c) = lstm(Tensor(np.random.default_rng(0).normal(size=(4, 1, 2))))
    loss = (h ** 2).sum()
    loss.label = "L"
    loss.backward()
    src = draw_graph(loss, collapse=1, clusters=lstm).source
    # depth 1: the time steps fold (the LSTM's call around them, depth 0, does not)
    assert sorted(re.findall(r"\tg\d+ \[label=\"([^\"]*)\"", src)) == [
        f"step {t}" for t in range(4)]
    box = _boxes(src)["LSTM"]
    for name in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "initial hc", "hc[3]",
                 "x[0]", "x[3]"]:
        assert f"<b>{name}</b>" in box, name
    assert "label=lstm_cell" not in src               # every cell is inside its step
    assert "label=sum" in src and "label=sum" not in box  # the loss is not in the LSTM
    # step t reads the state step t - 1 made: the chain of states is drawn
    tail, head = node_id(src, "<b>hc[1]</b>"), "g2"
    assert (tail, head) in {(a, b) for a, b, _ in edges(src)}


def test_a_depth_folds_only_scopes_that_deep():
    a = Tensor([1.0, 2.0], requires_grad=True)
    with autodiff.scope("outer"):
        b = a * 2.0
        with autodiff.scope("y = inner"):
            c = b.exp()
        d = c + b
    src = draw_graph(d.sum(), collapse=1).source
    folded = re.findall(r"^\tg\d+ \[(.*)\]$", src, flags=re.M)
    assert [label_of(attrs) for attrs in folded] == ["inner"]
    assert 'label="* 2"' in src and 'label="+"' in src   # depth 0 ops: drawn as they are
    assert "<b>y</b>" in src and "1 node folded" in src   # the inner scope's output, named
    assert not re.search(r"^\tg\d+ \[", draw_graph(d.sum(), collapse=2).source, flags=re.M)
    outer = re.findall(r"^\tg\d+ \[(.*)\]$", draw_graph(d.sum(), collapse=0).source,
                       flags=re.M)   # (depth 0 is not False: the outermost scope folds)
    assert [label_of(attrs) for attrs in outer] == ["outer"]


def test_a_module_called_twice_folds_twice_and_its_weights_feed_both_calls():
    autodiff.manual_seed(0)
    layer = nn.Linear(2, 2)
    x = Tensor([[1.0, -2.0]])
    loss = (layer(layer(x))).sum()
    src = draw_graph(loss, collapse="modules").source
    folded = re.findall(r"^\t(g\d+) \[", src, flags=re.M)
    assert len(folded) == 2
    feeds = {}   # the weight and the bias: drawn once, outside both calls, into each
    for node, group in re.findall(r"^\t(n\d+) -> (g\d+)", src, flags=re.M):
        feeds.setdefault(node, set()).add(group)
    assert sorted(len(groups) for groups in feeds.values()) == [1, 1, 2, 2]
