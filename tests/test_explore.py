"""The explorer's synced state, without a browser."""

import numpy as np
import pytest

import autodiff
from autodiff import Tensor, Value
from autodiff.viz.steps import backward_steps


def _graph():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    d = (a * b + a).tanh(); d.label = "d"
    return a, b, d


def test_values_and_gradients_match_backward_without_touching_grad():
    a, b, d = _graph()
    data = autodiff.explore(d).data
    assert a.grad == 0 and b.grad == 0
    d.backward()
    byname = {n["label"]: n for n in data["nodes"]}
    assert float(byname["a"]["grad"]) == pytest.approx(a.grad, rel=1e-3)
    assert float(byname["b"]["grad"]) == pytest.approx(b.grad, rel=1e-3)
    assert float(byname["a"]["chain"]["total"]) == pytest.approx(a.grad, rel=1e-3)
    assert float(byname["b"]["value"]) == -3.0


def test_steps_follow_the_engine_order():
    _, _, d = _graph()
    data = autodiff.explore(d).data
    assert [s["label"] for s in data["steps"]] == [s.name for s in backward_steps(d)]


def test_tensor_graph_and_page(tmp_path):
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    loss = (x * x).sum()
    view = autodiff.explore(loss)
    page = view.save(tmp_path / "p.html").read_text()
    assert "\\u003csvg" in page and "data-action" in page  # (the data's < escaped)
    assert "src=\"http" not in page and "import(\"http" not in page  # offline: no CDN


def test_widget_state():
    pytest.importorskip("anywidget")
    _, _, d = _graph()
    view = autodiff.explore(d)
    assert view.widget.data == view.data


def _fake_dot(tmp_path, monkeypatch, script: str) -> None:
    """Put a `dot` that runs `script` first on PATH (nothing else from PATH is needed)."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n" + script + "\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))


def test_without_dot_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    from autodiff.viz import DotNotFoundError
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot`
    with pytest.raises(DotNotFoundError, match="apt-get install graphviz"):
        autodiff.explore(_graph()[2])


def test_a_crashing_dot_is_named_with_the_graph_size(tmp_path, monkeypatch):
    _fake_dot(tmp_path, monkeypatch, "echo 'Error: trouble in init_rank' >&2; kill -SEGV $$")
    with pytest.raises(RuntimeError, match=r"explore: graphviz's dot crashed \(SIGSEGV\) while "
                       r"laying out the graph of 5 nodes: Error: trouble in init_rank"):
        autodiff.explore(_graph()[2])
    _fake_dot_exit = tmp_path / "bin" / "dot"
    _fake_dot_exit.write_text("#!/bin/sh\necho 'syntax error' >&2\nexit 3\n")
    with pytest.raises(RuntimeError, match=r"dot failed \(exit status 3\).*syntax error"):
        autodiff.explore(_graph()[2])


@pytest.mark.parametrize("label", ["ends in \\", 'a "quote"', "bell\x07", "<b>html</b>", "a&amp;"])
def test_labels_reach_the_picture_as_written(label):
    a = Value(2.0, label=label)
    svg = autodiff.explore((a * a).tanh()).data["views"][0]["svg"]
    shown = svg.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') \
               .replace("&#39;", "'").replace("&amp;", "&")
    assert label.replace("\x07", "\\x07") in shown


def test_the_page_shell_lives_in_viz_and_nn_does_not_load_graphviz():
    import subprocess
    import sys
    code = ("import sys, nn; assert 'graphviz' not in sys.modules, 'nn loaded graphviz'; "
            "from autodiff.viz.page import standalone_page; "
            "page = standalone_page('t</script>', ('export default {}', {'x': float('nan'), "
            "'s': '</script><script>alert(1)', 'c': '<!--<script>'})); "
            "assert '\\\\u003c/script>\\\\u003cscript>alert' in page and '\"x\": null' in page, page; "
            "assert '\\\\u003c!--\\\\u003cscript>' in page and page.count('<script') == 1, page")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_texts_call_a_parameter_by_the_name_the_graph_shows():
    import nn
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    loss = net(Tensor(np.ones((4, 2)))).sum()
    data = autodiff.explore(loss).data
    byname = {n["label"]: n for n in data["nodes"]}
    assert byname["2.weight"]["chain"]["text"].startswith("d(sum)/d(2.weight) = ")
    texts = {s["label"]: s["text"] for s in data["steps"]}
    assert "∂sum/∂0.bias" in texts["0.bias"]
    assert "0.weight is a leaf" in texts["0.weight"] and "leaf2" not in texts["0.weight"]


def test_each_nodes_chain_is_what_chain_rule_says():
    """The explorer hands chain_rule its order, names and totals: the same texts."""
    import nn
    from autodiff.viz.chain import chain_rule
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    x = Tensor(np.array([[0.5, -1.0], [2.0, 0.25]]))
    loss = (net(x) ** 2).mean()
    data = autodiff.explore(loss).data
    order = autodiff.viz._common._topo([loss])
    names = dict(zip([p for _, p in net.named_parameters()],
                     [n for n, _ in net.named_parameters()]))
    listed = [(k, n) for k, n in enumerate(data["nodes"]) if "chain" in n]
    assert len(listed) == len(order) - 1  # every node but the root
    for k, n in listed:
        expected = chain_rule(loss, order[k], factors="ops", max_paths=20, names=names)
        assert n["chain"]["text"] == str(expected), n["label"]


def test_what_a_red_team_pass_found_in_the_explorers_data():
    # a generated name never takes a user's label: a leaf labelled 'mul1' and two muls
    a, b = Value(2.0, label="mul1"), Value(3.0, label="b")
    view = autodiff.explore(a * b * b)
    labels = [n["label"] for n in view.data["nodes"]]
    assert len(set(labels)) == len(labels) and "mul1" in labels, labels
    # one root, a positive precision, and a non-scalar root seeded as in backward
    with pytest.raises(ValueError, match="explore: give one root"):
        autodiff.explore([a * b, a + b])
    from autodiff.viz import backward_steps, chain_rule, draw_graph
    for fn, call in (("explore", autodiff.explore), ("draw_graph", draw_graph),
                     ("backward_steps", backward_steps),
                     ("chain_rule", lambda r, precision: chain_rule(r, a, precision=precision))):
        for bad in (-1, 0, 2.5, True):
            with pytest.raises(ValueError, match=f"{fn}: precision must be a positive integer"):
                call(a * b, precision=bad)
    assert autodiff.explore(a * b, precision=np.int64(3)).data["nodes"][0]["value"] == "2"
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    seeded = autodiff.explore(y, grad_output=np.array([1.0, -1.0]))
    x_node = next(n for n in seeded.data["nodes"] if n["op"] == "leaf")
    assert x_node["grad"] == "[3 -3]", x_node
    # a node whose gradient passes through a hook says so, down to the leaves (the page's
    # side backward runs no user code)
    h = x * 3
    h.register_hook(lambda g: g * 0)
    flags = {n["op"]: n["hooked"] for n in autodiff.explore(h.sum() * 2).data["nodes"]}
    assert flags == {"leaf": True, "* 3": True, "sum": False, "* 2": False}, flags


def test_a_label_with_a_lone_surrogate_survives_the_widgets_utf8():
    # Jupyter sends a widget's state as UTF-8, which cannot carry a lone surrogate: the
    # data writes it as its escape, as the pictures show it
    import json
    a, b = Value(2.0, label="w\ud800"), Value(3.0, label="b")
    data = autodiff.explore(a * b).data
    json.dumps(data, ensure_ascii=False).encode("utf-8")
    assert data["nodes"][0]["label"] == "w\\ud800"
