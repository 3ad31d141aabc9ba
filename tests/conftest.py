"""Shared test set-up: one BLAS thread, every random generator seeded, a headless plot
backend for the test process (never exported into notebook kernels), and the headless
browser of the browser tests."""

import os
from pathlib import Path
import random
import shutil

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the thread pinning above)
import pytest  # noqa: E402

import autodiff  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    autodiff.manual_seed(0)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _driver():
    """Headless chromium through selenium; skips without them, fails under CI."""
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
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,900"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=opts, service=service)


@pytest.fixture
def open_page(browser):
    """Load a saved page in the browser and wait until its modules have drawn it (they
    are imported after the load event that `browser.get` waits for)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def open_(path):
        browser.get(Path(path).resolve().as_uri())
        WebDriverWait(browser, 10).until(
            lambda b: b.execute_script("return document.body.dataset.rendered === 'true'"))
    return open_


@pytest.fixture(scope="module")
def browser():
    d = _driver()
    yield d
    d.quit()
