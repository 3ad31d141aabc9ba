"""The explorer's saved page in a real browser (headless chromium via selenium), opened
from file://: clicks, the stepper, the numbers shown, and no JavaScript errors."""

import re

import pytest

import autodiff
from autodiff import Value
from autodiff.viz.steps import backward_steps

def _errors(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_click_and_step(browser, open_page, tmp_path):
    from selenium.webdriver.common.by import By
    from autodiff.viz.explore import explore
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    d = (a * b + a).tanh(); d.label = "d"
    page = explore(d).save(tmp_path / "g.html")
    open_page(page)
    browser.find_element(By.CSS_SELECTOR, '[data-label="a"]').click()
    details = browser.find_element(By.CSS_SELECTOR, '[data-role="details"]')
    d.backward()
    assert float(details.find_element(By.CSS_SELECTOR, '[data-role="grad"]').text) == \
        pytest.approx(a.grad, rel=1e-3)
    assert float(details.find_element(By.CSS_SELECTOR, '[data-role="total"]').text) == \
        pytest.approx(a.grad, rel=1e-3)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".adx-edge")) >= 3  # paths highlighted
    step = browser.find_element(By.CSS_SELECTOR, '[data-role="step"]')
    names = []
    for _ in backward_steps(d):
        browser.find_element(By.CSS_SELECTOR, '[data-action="next"]').click()
        names.append(step.text.split(": ", 1)[1])
    assert names == [s.name for s in backward_steps(d)]
    browser.find_element(By.CSS_SELECTOR, '[data-action="prev"]').click()
    assert step.text.endswith(backward_steps(d)[-2].name)
    browser.save_screenshot(str(tmp_path / "shot.png"))
    assert not _errors(browser)


def test_groups_fold_open_and_keep_the_numbers(browser, open_page, tmp_path):
    from selenium.webdriver.common.by import By
    from test_explore_groups import lecture
    g = lecture()
    page = autodiff.explore(g["Loss"], collapse="scopes").save(tmp_path / "lecture.html")
    open_page(page)
    css = lambda sel: browser.find_elements(By.CSS_SELECTOR, sel)
    assert len(css("[data-group]")) == 4 and not css('[data-label="mul2"]')
    css('[data-label="W1"]')[0].click()                     # its path runs through two groups
    on = {e.get_attribute("data-label") for e in css(".adx-on")}
    assert {"W1", "y = W1 x + b1", "h = σ(y, a)", "o = W2 h + b2", "Loss = ½(o − t)²"} <= on
    assert len(css(".adx-edge")) >= 7
    g["Loss"].backward()
    total = css('[data-role="details"] [data-role="total"]')[0].text
    assert float(total) == pytest.approx(g["W1"].grad, rel=1e-3)
    css('[data-label="h = σ(y, a)"]')[0].click()
    local = [li.text for li in css('[data-role="local"] li')]
    assert local == ["∂h/∂a = 0.09831", "∂h/∂y = 0.3932"]
    css('[data-action="expand"]')[0].click()                # open σ: its mul appears
    assert css('[data-label="mul2"]') and not css('[data-label="h = σ(y, a)"]')
    assert "h = σ(y, a)" in css('[data-role="crumbs"]')[0].text
    labels = lambda sel: {e.get_attribute("data-label") for e in css(sel)}
    css('[data-action="next"]')[0].click()                  # Loss sends into its folded group
    assert labels(".adx-step") == {"Loss"} and labels(".adx-send") == {"Loss = ½(o − t)²"}
    css('[data-action="next"]')[0].click()                  # whose node processes step 2
    assert labels(".adx-step") == {"Loss = ½(o − t)²"}
    css('[data-action="collapse"]')[0].click()
    assert len(css("[data-group]")) == 4
    css('[data-action="expand-all"]')[0].click()
    assert not css("[data-group]") and css('[data-label="mul2"]')
    css('[data-action="collapse-all"]')[0].click()
    assert len(css("[data-group]")) == 4
    assert not _errors(browser)


def test_a_dashed_copy_of_a_shared_weight_acts_as_the_weight(browser, open_page, tmp_path):
    from selenium.webdriver.common.by import By
    from test_explore_groups import unrolled_rnn
    rnn, loss = unrolled_rnn()
    page = autodiff.explore(loss).save(tmp_path / "rnn.html")
    open_page(page)
    css = lambda sel: browser.find_elements(By.CSS_SELECTOR, sel)
    weight = css('[data-label="weight_hh_l0"]')[0].get_attribute("data-node")
    copies = css(f'[data-copy][data-node="{weight}"]')
    assert len(copies) >= 9
    copies[-1].click()
    assert css('[data-role="details"] h3')[0].text == "weight_hh_l0"
    marked = css(".adx-on")
    assert len([e for e in marked if e.get_attribute("data-node") == weight]) == len(copies) + 1
    loss.backward()
    grad = css('[data-role="details"] [data-role="grad"]')[0].text
    first = float(re.search(r"-?[0-9.]+(e-?[0-9]+)?", grad).group())
    assert first == pytest.approx(rnn.weight_hh_l0.grad.data.flat[0], rel=1e-3, abs=1e-4)
    assert len(css(".adx-edge")) >= 12       # the chain's paths light edges from the copies
    assert not _errors(browser)


def test_a_graph_a_little_wider_than_the_page_is_scaled_to_fit(browser, open_page, tmp_path):
    """Text scaled by no less than 0.7 stays readable; a wider graph scrolls instead."""
    from autodiff.viz.explore import explore

    def chain(n):
        v = Value(0.5, label="x")
        for _ in range(n):
            v = v.tanh()
        return v

    seen = {}
    for n in range(6, 40, 2):
        open_page(explore(chain(n)).save(tmp_path / f"c{n}.html"))
        natural, shown, room = browser.execute_script("""
            const g = document.querySelector('[data-role="graph"]'), s = g.querySelector("svg");
            return [parseFloat(s.getAttribute("width")) * 4 / 3,
                    s.getBoundingClientRect().width, g.clientWidth];""")
        ratio = room / natural
        kind = "fits" if ratio >= 1 else "scaled" if ratio >= 0.7 else "scrolls"
        seen.setdefault(kind, (natural, shown, room))
        if len(seen) == 3:
            break
    assert set(seen) == {"fits", "scaled", "scrolls"}
    natural, shown, room = seen["scaled"]
    assert shown == pytest.approx(room, abs=1)
    natural, shown, room = seen["scrolls"]
    assert shown == pytest.approx(natural, rel=0.01)
    assert _errors(browser) == []


def test_a_10000_node_graph_without_groups_opens_folded_in_parts(browser, open_page, tmp_path):
    """Nobody scoped it: the explorer cuts it into parts, folded in the first view."""
    from selenium.webdriver.common.by import By
    from autodiff.viz.explore import explore
    x = v = Value(0.5, label="x")
    for i in range(5000):
        v = (v * 1.0001 + 0.001).tanh() if i % 2 else v * 0.999 + 0.0001
    v.label = "y"
    open_page(explore(v).save(tmp_path / "big.html"))
    css = lambda sel: browser.find_elements(By.CSS_SELECTOR, sel)
    parts = css("[data-group]")
    assert len(parts) == 25 and len(css("g.node")) < 80
    data = explore(v).data
    j = next(j for j, g in enumerate(data["groups"]) if g["label"].startswith("part 14 of"))
    in_part = {n["label"] for n in data["nodes"] if j in n["groups"]}
    middle = [p for p in parts if p.get_attribute("data-label").startswith("part 14 of 25")]
    middle[0].click()                                   # (selenium scrolls to it first)
    browser.execute_script("document.querySelector('[data-role=\"graph\"]').scrollLeft = 0")
    css('[data-action="expand"]')[0].click()  # a part far to the right: its nodes in sight
    in_sight = browser.execute_script("""
        const box = document.querySelector('[data-role="graph"]').getBoundingClientRect();
        return [...document.querySelectorAll('g.node')].filter((g) => {
          const r = g.getBoundingClientRect();
          return r.right > box.left && r.left < box.right; })
          .map((g) => g.getAttribute('data-label'));""")
    assert len(set(in_sight) & in_part) >= 3
    css('[data-action="collapse"]')[0].click()
    first = [p for p in css("[data-group]") if p.get_attribute("data-label").startswith("part 1 of 25")]
    first[0].click()                                    # the part holding x
    css('[data-action="expand"]')[0].click()
    assert len(css("g.node")) > 500 and len(css("[data-group]")) == 24
    css('[data-label="x"]')[0].click()
    v.backward()
    grad = css('[data-role="details"] [data-role="grad"]')[0].text
    assert float(grad) == pytest.approx(x.grad, rel=1e-3)
    css('[data-action="next"]')[0].click()
    assert css('[data-role="step"]')[0].text
    assert browser.execute_script("""
        const box = document.querySelector('[data-role="graph"]').getBoundingClientRect(),
              r = document.querySelector('.adx-step').getBoundingClientRect();
        return r.right > box.left && r.left < box.right;""")  # (y, at the far end: in sight)
    assert not _errors(browser)


def test_a_quote_in_a_label_stays_text_and_one_key_is_one_step(browser, open_page, tmp_path):
    # A red-team pass: a matrix's label with a quote ended the title attribute of a folded
    # group's local derivative, so the rest of the label ran as an event handler; and an
    # arrow key on the focused slider moved two steps (the page's handler and the slider's).
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from autodiff import Tensor
    W = Tensor(np.array([[1., 2.], [3., 4.]]), requires_grad=True)
    W.label = 'W" onmouseover="document.title=\'PWNED\'" data-x="1'
    y = Tensor(np.array([1., -2.]), requires_grad=True)
    y.label = "y"
    with autodiff.scope("z = W y"):
        z = W @ y + Tensor(np.zeros(2))
    z.label = "z"
    loss = (z * z).sum()
    open_page(autodiff.explore(loss, collapse="scopes").save(tmp_path / "quote.html"))
    css = lambda sel: browser.find_elements(By.CSS_SELECTOR, sel)
    step = css('[data-role="step"]')[0]
    assert step.text == "before backward"  # (it was empty until the stepper was used)
    css('[data-action="collapse-all"]')[0].click()
    css("[data-group]")[0].click()
    items = css('[data-role="local"] li')
    assert any(li.get_attribute("title").endswith("equal to " + W.label) for li in items)
    assert not css("[onmouseover]") and not css("[data-x]")
    slider = css('[data-role="slider"]')[0]
    slider.click()
    browser.execute_script("arguments[0].value = 0; arguments[0].dispatchEvent(new Event('input'))",
                           slider)
    slider.send_keys(Keys.ARROW_RIGHT)
    assert step.text.startswith("step 1/") and slider.get_attribute("value") == "1"
    slider.send_keys(Keys.ARROW_LEFT)
    assert step.text == "before backward"
    assert browser.title != "PWNED" and not _errors(browser)


def test_a_constant_leaf_says_why_it_has_no_gradient(browser, open_page, tmp_path):
    import numpy as np
    from selenium.webdriver.common.by import By
    from autodiff import Tensor
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, label="x")
    c = Tensor(np.array([3.0, 4.0]), label="c")
    open_page(autodiff.explore((x * c).sum()).save(tmp_path / "const.html"))
    browser.find_element(By.CSS_SELECTOR, '[data-label="c"]').click()
    details = browser.find_element(By.CSS_SELECTOR, '[data-role="details"]').text
    assert "none (it does not require grad" in details and "chain rule" in details
    assert not _errors(browser)
