"""The explorer's groups: scopes and nn module calls fold into one node per view, open
on demand, and carry their local derivatives (without a browser)."""

import re

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor, Value
from autodiff.viz._common import _topo
from autodiff.viz.explore import view as explore_view
from autodiff.viz.explore import views as explore_views


def lecture():
    """The lecture's network on one unit per layer, each equation in a scope."""
    x, t = Value(0.5, label="x"), 1.0
    W1, b1, a = Value(0.8, label="W1"), Value(0.1, label="b1"), Value(2.0, label="a")
    W2, b2 = Value(-1.2, label="W2"), Value(0.3, label="b2")
    with autodiff.scope("y = W1 x + b1"):
        y = W1 * x + b1; y.label = "y"
    with autodiff.scope("h = σ(y, a)"):
        h = (a * y).sigmoid(); h.label = "h"
    with autodiff.scope("o = W2 h + b2"):
        o = W2 * h + b2; o.label = "o"
    with autodiff.scope("Loss = ½(o − t)²"):
        loss = 0.5 * (o - t) ** 2; loss.label = "Loss"
    return dict(x=x, W1=W1, b1=b1, a=a, W2=W2, b2=b2, y=y, h=h, o=o, Loss=loss)


def drawn(data, v):
    """The labels of the nodes and groups one view draws."""
    ids = re.findall(r'<title>([ng]\d+)</title>', data["views"][v]["svg"])
    return {data["nodes"][int(i[1:])]["label"] if i[0] == "n" else data["groups"][int(i[1:])]["label"]
            for i in ids}


def test_collapsed_the_lecture_network_is_its_four_equations():
    g = lecture()
    data = autodiff.explore(g["Loss"], collapse="scopes").data
    assert data["start"] == 0
    assert drawn(data, 0) == {"x", "W1", "b1", "a", "W2", "b2", "y", "h", "o", "Loss",
                              "y = W1 x + b1", "h = σ(y, a)", "o = W2 h + b2", "Loss = ½(o − t)²"}
    full = data["views"][data["full"]]["svg"]
    assert "<title>g" not in full                                      # no group folded
    assert len(re.findall(r"<title>n\d+</title>", full)) == len(data["nodes"])


def test_each_group_opens_alone_and_its_edges_carry_the_local_derivatives():
    g = lecture()
    data = autodiff.explore(g["Loss"], collapse="scopes").data
    groups = {grp["label"]: grp for grp in data["groups"]}
    h_group = groups["h = σ(y, a)"]
    opened = drawn(data, h_group["view"])
    assert "h = σ(y, a)" not in opened and "y = W1 x + b1" in opened and "Loss = ½(o − t)²" in opened
    label = {k: n["label"] for k, n in enumerate(data["nodes"])}
    for grp_name, out in [("y = W1 x + b1", "y"), ("h = σ(y, a)", "h"), ("o = W2 h + b2", "o"),
                          ("Loss = ½(o − t)²", "Loss")]:
        grp = groups[grp_name]
        assert [label[k] for k in grp["outputs"]] == [out]
        for d in grp["local"]:
            inp = g[label[d["input"]]]
            (engine,) = autodiff.grad(g[out], inp, retain_graph=True)
            assert float(d["text"]) == pytest.approx(engine.data, rel=1e-3), (grp_name, label[d["input"]])


def test_small_graphs_open_with_every_group_open_and_big_ones_folded(monkeypatch):
    g = lecture()
    data = autodiff.explore(g["Loss"]).data
    assert data["start"] == data["full"] and len(drawn(data, data["start"])) == len(data["nodes"])
    monkeypatch.setattr(explore_view, "AUTO_COLLAPSE", 5)
    assert autodiff.explore(g["Loss"]).data["start"] == 0


def test_a_model_call_alone_in_the_first_view_opens_to_its_layers():
    autodiff.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    out = net(Tensor(np.random.default_rng(0).standard_normal((5, 3)))).sum()
    data = autodiff.explore(out, collapse="scopes").data
    names = [grp["label"] for grp in data["groups"]]
    assert names == ["Sequential", "0: Linear", "1: Tanh", "2: Linear"]
    start = data["views"][data["start"]]
    assert start["group"] == names.index("Sequential")
    # the layers' weights, named by the model, are drawn once it is open; folded, it hides them
    weights = {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert weights <= drawn(data, data["start"])
    assert not weights & drawn(data, 0) and "Sequential" in drawn(data, 0)
    tanh = data["groups"][names.index("1: Tanh")]
    assert tanh["local"][0]["text"] == "diag"


def test_a_module_called_twice_keeps_its_parameters_drawn():
    cell = nn.Linear(2, 2)
    x = Tensor(np.ones((1, 2)))
    out = cell(cell(x).tanh()).sum()
    order = _topo([out])
    folds, chains = explore_views.find_groups(order, next(k for k, n in enumerate(order) if n is out))
    weight = next(k for k, n in enumerate(order) if n is cell.weight)
    assert chains[weight] == [] and len(folds) == 2


def test_a_graph_too_big_for_one_view_says_so(monkeypatch):
    monkeypatch.setattr(explore_view, "MAX_LAYOUT", 5)
    x = Value(1.0)
    y = x
    for _ in range(5):
        y = (y * 2).tanh()
    with pytest.raises(ValueError, match=r"explore: the graph has 11 nodes, too many to lay out"):
        autodiff.explore(y)


def test_a_bad_collapse_is_named():
    with pytest.raises(ValueError, match="explore: collapse must be None .* or 'scopes', got 'all'"):
        autodiff.explore(Value(1.0) * 2, collapse="all")


def unrolled_rnn(steps=12):
    autodiff.manual_seed(0)
    rnn = nn.RNN(3, 4)
    out, _ = rnn(Tensor(np.random.default_rng(0).standard_normal((steps, 2, 3))))
    return rnn, out.sum()


def test_shared_weights_and_long_edges_are_drawn_from_dashed_copies():
    """An unrolled loop's weights feed every step: each far step gets its own dashed copy
    of the weight, so no edge spans the picture (dot took minutes on those)."""
    rnn, loss = unrolled_rnn()
    data = autodiff.explore(loss).data
    svg = data["views"][data["full"]]["svg"]
    weight = next(n["id"] for n in data["nodes"] if n["label"] == "weight_hh_l0")
    edges = re.findall(r"<title>(n[0-9~]+)&#45;&gt;(n[0-9~]+)</title>", svg)
    from_weight = [b for a, b in edges if a == f"n{weight}"]
    copies = {a for a, b in edges if a.startswith(f"n{weight}~")}
    assert 1 <= len(from_weight) <= 3 and len(copies) == 12 - len(from_weight)
    assert all(f"<title>{c}</title>" in svg for c in copies)
    # every step still has its edge from the weight, drawn from the weight or a copy
    consumers = {b for a, b in edges if a.split("~")[0] == f"n{weight}"}
    order = _topo([loss])
    w = order[weight]
    assert len(consumers) == sum(1 for n in order if any(p is w for p in n._parents)) == 12


def test_a_small_model_starts_with_its_groups_open():
    """Under AUTO_COLLAPSE nodes the page opens with every group open, also when the
    all-open view is the one that opens the model's own call."""
    autodiff.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    data = autodiff.explore(net(Tensor(np.ones((5, 3)))).sum()).data
    shown = set(re.findall(r"<title>([ng][0-9]+)</title>", data["views"][data["start"]]["svg"]))
    assert shown == {f"n{k}" for k in range(len(data["nodes"]))}
    assert data["start"] != 0 and "g0" in data["views"][0]["svg"]  # "fold all" still folds


def _scalar_batch_loss(n=3):
    import random
    random.seed(1)
    model = nn.MLP(2, [4, 4, 1])
    X = [(random.uniform(-2, 2), random.uniform(-1, 1)) for _ in range(n)]
    scores = [model([Value(a), Value(b)]) for a, b in X]
    return model, sum((1 + -s).relu() for s in scores) * (1.0 / n)


def test_a_scalar_mlps_calls_fold_per_sample_and_layer():
    model, loss = _scalar_batch_loss(3)
    data = autodiff.explore(loss, collapse="scopes").data
    names = [g["label"] for g in data["groups"]]
    assert names == ["MLP call 1", "L0", "L1", "L2"] * 1 + [
        "MLP call 2", "L0", "L1", "L2", "MLP call 3", "L0", "L1", "L2"]
    # the first view: three samples folded, none of the 4 * 3 + 4 * 5 + 5 weights drawn
    first = drawn(data, 0)
    assert {"MLP call 1", "MLP call 2", "MLP call 3"} <= first
    weights = {n["label"] for n in data["nodes"] if n["op"] == "leaf" and n["label"][0] == "L"}
    assert len(model.parameters()) == 37 and len(weights) == 37 and not first & weights
    # the first sample's layer 0 open: its neurons' ops and their 12 weights, the other
    # samples still folded and their weights not drawn by them
    g = data["groups"].index(next(x for x in data["groups"] if x["label"] == "L0"))
    v = data["groups"][g]["view"]
    shown = drawn(data, v)
    assert {"MLP call 2", "MLP call 3", "L1", "L2"} <= shown
    assert sum(label.startswith("L0.") for label in shown) == 12
    assert data["full"] is None or len(data["nodes"]) <= explore_view.AUTO_COLLAPSE
    # the weights go by draw_graph's names, with the gradients backward gives
    loss.backward()
    grads = {n["label"]: float(n["grad"]) for n in data["nodes"] if n["label"][0] == "L"}
    expected = {f"L{i}.N{j}.w{k}": w.grad for i, layer in enumerate(model.layers)
                for j, neuron in enumerate(layer.neurons) for k, w in enumerate(neuron.w)}
    assert any(expected.values())
    assert {k: grads[k] for k in expected} == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_a_scalar_mlp_nested_in_a_users_scope_and_a_tensor_graph_are_left_alone():
    model, _ = _scalar_batch_loss(1)
    with autodiff.scope("forward"):
        out = model([Value(0.5), Value(-0.5)])
    data = autodiff.explore(out, collapse="scopes").data
    assert [g["label"] for g in data["groups"]] == ["forward"]  # (a user's scope wins)
    m = nn.Linear(2, 1)
    data = autodiff.explore(m(Tensor([[1.0, 2.0]])).sum()).data
    assert all(not g["label"].startswith("MLP call") for g in data["groups"])


def test_a_layout_budget_keeps_the_first_samples_views(monkeypatch):
    _, loss = _scalar_batch_loss(3)
    first = autodiff.explore(loss, collapse="scopes").data
    size = len(re.findall(r"<title>[ng]\d+</title>", first["views"][0]["svg"]))
    monkeypatch.setattr(explore_views, "LAYOUT_BUDGET", 3 * size)  # room for about 2 more
    data = autodiff.explore(loss, collapse="scopes").data
    opened = [g["label"] for g in data["groups"] if g["view"] is not None]
    assert opened[0] == "MLP call 1" and "MLP call 3" not in opened  # a group before its own
    assert sum(len(re.findall(r"<title>[ng]\d+</title>", v["svg"])) for v in data["views"]) \
        <= 3 * size
