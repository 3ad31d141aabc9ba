"""Shared test set-up: one BLAS thread, every random generator seeded, a headless plot
backend for the test process (never exported into notebook kernels)."""

import os
import random

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
