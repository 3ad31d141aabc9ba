"""The live training view: what it records, what the widget syncs, the saved page."""

import json
import math
import os
import shutil

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
    w = view.widget
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
    w = view.widget
    view.log(loss=1.0)
    view.log(loss=0.5)
    assert len(w.data["curves"].get("loss", [])) < 2
    view.flush()
    assert [p[1] for p in w.data["curves"]["loss"]] == [1.0, 0.5]


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


def _browser():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if not (chrome and driver and webdriver):
        if os.environ.get("CI"):
            pytest.fail("CI: the browser tests need chromium, chromium-driver and selenium")
        pytest.skip("no headless chromium + chromedriver + selenium here")
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    options.binary_location = chrome
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_saved_page_draws_every_curve_in_a_browser(tmp_path):
    X, y = _data()
    net = _net()
    view = TrainingView(title="xor")
    nn.fit(net, nn.CrossEntropyLoss(), nn.optim.Adam(net.parameters(), lr=0.05), X, y,
           epochs=5, progress=False, live=view)
    path = view.save(tmp_path / "training.html")
    browser = _browser()
    try:
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
    finally:
        browser.quit()
