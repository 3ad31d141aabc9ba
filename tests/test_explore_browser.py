"""The explorer's saved page in a real browser (headless chromium via selenium), opened
from file://: clicks, the stepper, the numbers shown, and no JavaScript errors."""

import os
import shutil

import pytest

from autodiff import Value
from autodiff.viz.steps import backward_steps

def _driver():
    missing = []
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing.append("chromium and chromium-driver (scripts/install-chromium.sh)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail("CI: the browser tests need " + ", ".join(missing))
        pytest.skip("no browser: " + ", ".join(missing))
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=opts, service=service)


@pytest.fixture(scope="module")
def browser():
    d = _driver()
    yield d
    d.quit()


def _errors(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_click_and_step(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from autodiff.viz.explore import explore
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    d = (a * b + a).tanh(); d.label = "d"
    page = explore(d).save(tmp_path / "g.html")
    browser.get(page.resolve().as_uri())
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
