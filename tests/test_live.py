"""The live training view: what it records, what the widget syncs, the saved page."""

import json
import math

import numpy as np
import pytest

import nn
from autodiff import Tensor
from nn.live import TrainingView, layer_gradient_norms


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return Tensor(X), Tensor(y)


def _net(seed=0):
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    for p in net.parameters():
        p.data[...] = rng.normal(scale=0.5, size=p.shape)
    return net


def test_layer_norms_are_the_norms_of_each_layers_gradients():
    net = _net()
    X, y = _data()
    nn.CrossEntropyLoss()(net(X), y).backward()
    norms = layer_gradient_norms(net)
    expect0 = math.sqrt(np.sum(net[0].weight.grad.data ** 2) + np.sum(net[0].bias.grad.data ** 2))
    expect2 = math.sqrt(np.sum(net[2].weight.grad.data ** 2) + np.sum(net[2].bias.grad.data ** 2))
    assert list(norms) == ["0: Linear", "2: Linear"]
    assert norms["0: Linear"] == pytest.approx(expect0, rel=1e-12)
    assert norms["2: Linear"] == pytest.approx(expect2, rel=1e-12)


def test_layer_norms_count_missing_gradients_as_zero():
    assert layer_gradient_norms(_net()) == {"0: Linear": 0.0, "2: Linear": 0.0}


def test_fit_feeds_the_view_the_history_and_per_epoch_gradient_norms():
    X, y = _data()
    net, twin = _net(), _net()
    view = TrainingView(title="xor")
    history = nn.fit(net, nn.CrossEntropyLoss(), nn.optim.SGD(net.parameters(), lr=0.5), X, y,
                     epochs=4, batch_size=64, shuffle=False, progress=False, live=view,
                     validation=(X, y))
    for name, values in history.as_dict().items():
        assert [p[1] for p in view.curves[name]] == values
        assert [p[0] for p in view.curves[name]] == [0.0, 1.0, 2.0, 3.0]
    # one batch per epoch: the logged norms are that batch's, before the step
    opt = nn.optim.SGD(twin.parameters(), lr=0.5)
    expected = []
    for _ in range(4):
        opt.zero_grad()
        nn.CrossEntropyLoss()(twin(X), y).backward()
        expected.append(layer_gradient_norms(twin))
        opt.step()
    for layer in ("0: Linear", "2: Linear"):
        got = [p[1] for p in view.gradients[layer]]
        assert got == pytest.approx([e[layer] for e in expected], rel=1e-12)


def test_fit_without_live_records_nothing_and_rejects_nonsense():
    X, y = _data()
    net = _net()
    with pytest.raises(TypeError, match="fit: live"):
        nn.fit(net, nn.CrossEntropyLoss(), nn.optim.SGD(net.parameters(), lr=0.1), X, y,
               epochs=1, progress=False, live="yes")


def test_widget_state_follows_the_log():
    pytest.importorskip("anywidget")
    view = TrainingView(min_interval=0.0)
    w = view.widget.children[0]  # (the curves; the explorer comes with a graph)
    assert w.data["curves"] == {}
    view.log(loss=0.5)
    view.log(loss=0.25, accuracy=0.75)
    assert w.data["curves"] == {"loss": [[0.0, 0.5], [1.0, 0.25]], "accuracy": [[1.0, 0.75]]}
    view.log_gradient_norms({"0: Linear": float("nan")}, step=1)
    assert w.data["gradients"] == {"0: Linear": [[1.0, None]]}  # JSON has no NaN
    json.dumps(w.data)


def test_throttled_updates_are_flushed():
    pytest.importorskip("anywidget")
    view = TrainingView(min_interval=3600.0)
    w = view.widget.children[0]  # (the curves; the explorer comes with a graph)
    view.log(loss=1.0)
    view.log(loss=0.5)
    assert len(w.data["curves"].get("loss", [])) < 2
    view.flush()
    assert [p[1] for p in w.data["curves"]["loss"]] == [1.0, 0.5]


def test_an_epoch_reaches_the_widget_in_one_update():
    """The loss and the gradient norms of an epoch go together: a throttled second update
    would leave one curve an epoch behind the other while training runs."""
    pytest.importorskip("anywidget")
    from nn.train import History, _log_epoch
    view = TrainingView(min_interval=3600.0)
    curves = view.widget.children[0]
    history = History()
    history.loss.append(0.5)
    _log_epoch(view, history, {"0: Linear": 2.0})
    assert curves.data["curves"] == {"loss": [[0.0, 0.5]]}
    assert curves.data["gradients"] == {"0: Linear": [[0.0, 2.0]]}


@pytest.mark.parametrize("call, match", [
    (lambda v: v.log(), "at least one value"),
    (lambda v: v.log(loss="low"), "loss must be a number"),
    (lambda v: v.log(loss=np.ones(3)), "loss must be a number"),
    (lambda v: v.log(float("nan"), loss=1.0), "step must be a finite number"),
    (lambda v: v.log("3", loss=1.0), "step must be a finite number"),
])
def test_bad_input_names_the_call(call, match):
    with pytest.raises(TypeError, match=match):
        call(TrainingView())


def test_bad_construction():
    with pytest.raises(ValueError, match="min_interval"):
        TrainingView(min_interval=float("nan"))
    with pytest.raises(TypeError, match="title"):
        TrainingView(title=3)


def test_saved_page_is_self_contained(tmp_path):
    view = TrainingView(title="a </script> title")
    view.log(loss=1.0)
    page = view.save(tmp_path / "v.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    assert page.count("</script>") == 1  # nothing in the data closes the script early
    assert "a &lt;/script&gt; title" in page


def test_saved_page_draws_every_curve_in_a_browser(browser, tmp_path):
    X, y = _data()
    net = _net()
    view = TrainingView(title="xor", explore=False)
    nn.fit(net, nn.CrossEntropyLoss(), nn.optim.Adam(net.parameters(), lr=0.05), X, y,
           epochs=5, progress=False, live=view)
    path = view.save(tmp_path / "training.html")
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(path.as_uri())
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements("css selector", "[data-role=gradient-chart] polyline"))
    lines = {e.get_attribute("data-series"): e.get_attribute("points")
             for e in browser.find_elements("css selector", "polyline")}
    assert set(lines) == {"loss", "accuracy", "0: Linear", "2: Linear"}
    assert all(len(points.split()) == 5 for points in lines.values())
    latest = browser.find_element("css selector", "[data-role=loss-chart] [data-latest=loss]")
    name, _, shown = latest.text.partition(": ")
    assert name == "loss"
    assert float(shown) == pytest.approx(view.curves["loss"][-1][1], rel=1e-3)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


# -- the explorer of a step's graph ------------------------------------------------------

def _fit(view, epochs=3, seed=0):
    X, y = _data()
    net = _net(seed)
    history = nn.fit(net, nn.CrossEntropyLoss(), nn.optim.SGD(net.parameters(), lr=0.5), X, y,
                     epochs=epochs, batch_size=32, shuffle=False, progress=False, live=view)
    return net, history


class _Recording(TrainingView):
    def log_graph(self, root, step=None, **kw):
        self.shown = getattr(self, "shown", []) + [step]
        super().log_graph(root, step, **kw)


def test_fit_explores_the_last_batch_of_the_final_epoch_without_changing_training():
    view = _Recording(explore_interval=0.0)
    net, history = _fit(view)
    _, plain = _fit(False)
    assert history.as_dict() == plain.as_dict()  # the explorer never touches .grad
    assert view.shown[0] == 0 and view.shown[-1] == 2  # (1 too unless it took > 1/5)
    assert view.graph["step"] == 2.0 and view.data["graph"] == {"step": 2.0,
                                                                "nodes": view.graph["nodes"]}
    # the graph is the final epoch's last batch, with the weights before its step
    twin = _net()
    opt = nn.optim.SGD(twin.parameters(), lr=0.5)
    X, y = _data()
    for epoch in range(3):
        for start in (0, 32):
            opt.zero_grad()
            nn.CrossEntropyLoss()(twin(X[start:start + 32]), y[start:start + 32]).backward()
            if (epoch, start) == (2, 32):
                expected = twin[0].weight.grad.data.copy()
            opt.step()
    from autodiff.viz._common import _array_text
    nodes = {n["label"]: n for n in view.graph["data"]["nodes"]}
    assert nodes["0.weight"]["grad"] == _array_text(expected, 4)


def test_fit_spaces_graphs_out_but_always_shows_the_first_and_final():
    view = _Recording(explore_interval=3600.0)
    _fit(view, epochs=5)
    assert view.shown == [0, 4]
    off = _Recording(explore=False)
    _fit(off, epochs=2)
    assert not hasattr(off, "shown") and off.graph is None and off.data["graph"] is None


def test_the_next_graph_waits_the_interval_and_four_times_the_last_ones_cost(monkeypatch):
    import types
    import nn.live
    clock = iter([0.0, 100.0, 105.0])  # graph_due; log_graph start, end: the graph took 5 s
    now = {"t": 0.0}
    monkeypatch.setattr(nn.live, "time", types.SimpleNamespace(
        monotonic=lambda: next(clock, now["t"])))
    view = TrainingView(explore_interval=10.0)
    assert view.graph_due()  # the first one
    view.log_graph(_loss())
    for t, due in [(120.0, False), (124.9, False), (125.0, True)]:  # 105 + max(10, 4 * 5)
        now["t"] = t
        assert view.graph_due() is due
    now["t"] = 106.0
    assert view.graph_due(final=True)


def test_a_graph_that_cannot_be_explored_is_named_in_the_view_and_training_goes_on(monkeypatch):
    import autodiff.viz.explore.view as explorer
    monkeypatch.setattr(explorer, "MAX_LAYOUT", 2)
    view = _Recording(explore_interval=0.0)
    _, history = _fit(view)
    _, plain = _fit(False)
    assert history.as_dict() == plain.as_dict()
    assert view.shown == [0]  # then no more tries
    assert view.graph is None and "too many to lay out" in view.data["graph"]["error"]
    with pytest.raises(ValueError, match="too many to lay out"):
        TrainingView().log_graph(_loss())


def _loss(seed=0):
    X, y = _data(16, seed)
    return nn.CrossEntropyLoss()(_net(seed)(X), y)


def test_log_graph_rejects_what_it_cannot_show():
    view = TrainingView()
    loss = _loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="released"):
        view.log_graph(loss)
    with pytest.raises(ValueError, match="errors must be"):
        view.log_graph(_loss(), errors="ignore")
    with pytest.raises(TypeError, match="explore must be"):
        TrainingView(explore=1)
    with pytest.raises(ValueError, match="explore_interval"):
        TrainingView(explore_interval=-1)


def test_widget_gains_the_explorer_with_the_first_graph_and_redraws_it_in_place():
    pytest.importorskip("anywidget")
    from autodiff import explore
    view = TrainingView()
    box = view.widget
    assert len(box.children) == 1
    first, second = _loss(0), _loss(1)
    view.log_graph(first, 0)
    curves, graph = box.children
    assert graph.data == explore(first).data
    assert curves.data["graph"]["step"] == 0.0
    view.log_graph(second, 1)
    assert box.children[1] is graph and graph.data == explore(second).data
    assert curves.data["graph"]["step"] == 1.0


def test_saved_page_has_the_curves_and_an_explorer_that_answers_clicks(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    view = TrainingView(title="xor", explore_interval=0.0)
    net, _ = _fit(view, epochs=2)
    path = view.save(tmp_path / "training.html")
    browser.get(path.as_uri())
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "g.node"))
    caption = browser.find_element(By.CSS_SELECTOR, "[data-role=graph-caption]").text
    assert caption.startswith(f"Below: the graph of epoch 1 ({view.graph['nodes']} nodes)")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-role=loss-chart] polyline")
    browser.find_element(By.CSS_SELECTOR, '[data-label="2.bias"]').click()
    grad = browser.find_element(By.CSS_SELECTOR, '[data-role="details"] [data-role="grad"]')
    nodes = {n["label"]: n for n in view.graph["data"]["nodes"]}
    assert grad.text == nodes["2.bias"]["grad"]
    browser.find_element(By.CSS_SELECTOR, '[data-action="next"]').click()
    assert browser.find_element(By.CSS_SELECTOR, '[data-role="step"]').text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def _model_page(tmp_path, first, later):
    """A page whose fake model sends the explorer `later` when `window.sendNew()` runs:
    what the live view does in Jupyter with each new graph."""
    from autodiff.viz.explore import page_part
    esm, _ = page_part(first)
    page = tmp_path / "redraw.html"
    page.write_text(f"""<!doctype html><html><body><div id="v"></div><script type="module">
const state = {{ data: {json.dumps(first)} }}, handlers = [];
const model = {{ get: (k) => state[k], on: (e, f) => handlers.push(f),
                 off: () => {{}}, set: () => {{}}, save_changes: () => {{}} }};
const url = URL.createObjectURL(new Blob([{json.dumps(esm)}], {{ type: "text/javascript" }}));
(await import(url)).default.render({{ model, el: document.getElementById("v") }});
window.sendNew = () => {{ state.data = {json.dumps(later)}; handlers.forEach((f) => f()); }};
</script></body></html>""")
    return page


def test_explorer_redraws_on_new_data_and_answers_clicks_and_keys(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from autodiff import Value, explore
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    one = explore((a * b).tanh()).data
    c = Value(0.5, label="c")
    two = explore((c * c + c).relu()).data
    browser.get(_model_page(tmp_path, one, two).as_uri())
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "g.node"))
    assert browser.find_elements(By.CSS_SELECTOR, '[data-label="a"]')
    browser.execute_script("window.sendNew()")
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-label="a"]')
    browser.find_element(By.CSS_SELECTOR, '[data-label="c"]').click()
    grad = browser.find_element(By.CSS_SELECTOR, '[data-role="details"] [data-role="grad"]')
    assert grad.text == next(n["grad"] for n in two["nodes"] if n["label"] == "c")
    stepper = browser.find_element(By.CSS_SELECTOR, '[data-role="slider"]')
    browser.find_element(By.CSS_SELECTOR, ".adx").find_element(By.XPATH, "..").send_keys(
        Keys.ARROW_RIGHT)
    assert stepper.get_attribute("value") == "1"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_a_new_graph_keeps_the_readers_selection_and_step(browser, tmp_path):
    """Training sends a graph every few seconds: a node being read stays selected."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    (X1, y1), (X2, y2), net = _data(16, 0), _data(16, 1), _net(0)  # (kept: it names weights)
    one = autodiff_explore(nn.CrossEntropyLoss()(net(X1), y1))
    two = autodiff_explore(nn.CrossEntropyLoss()(net(X2), y2))
    browser.get(_model_page(tmp_path, one, two).as_uri())
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "g.node"))
    browser.find_element(By.CSS_SELECTOR, '[data-label="2.weight"]').click()
    browser.execute_script("window.sendNew()")
    details = browser.find_element(By.CSS_SELECTOR, '[data-role="details"]')
    assert details.find_element(By.TAG_NAME, "h3").text == "2.weight"
    new_grad = next(n["grad"] for n in two["nodes"] if n["label"] == "2.weight")
    shown = details.find_element(By.CSS_SELECTOR, '[data-role="grad"]').text
    assert shown.split() == new_grad.split()
    assert new_grad != next(n["grad"] for n in one["nodes"] if n["label"] == "2.weight")
    for _ in range(3):
        browser.find_element(By.CSS_SELECTOR, '[data-action="next"]').click()
    browser.execute_script("window.sendNew()")
    assert browser.find_element(By.CSS_SELECTOR, '[data-role="slider"]').get_attribute(
        "value") == "3"
    assert browser.find_element(By.CSS_SELECTOR, '[data-role="step"]').text.startswith(
        "step 3/")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def autodiff_explore(root):
    from autodiff import explore
    return explore(root).data
