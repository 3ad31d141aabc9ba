"""Ported beginner programs (tests/ported_programs.py) run on PyTorch and on this library
with the same data and initial weights: what each prints per epoch must agree (float64,
1e-6 relative). Without torch, the programs still run on ours (and must learn)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest

import ported_programs as programs


def ours():
    import autodiff
    import nn

    return SimpleNamespace(torch=autodiff, nn=nn, F=nn.functional, optim=nn.optim, data=nn.data)


@pytest.fixture
def theirs():
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # ours is float64; compare like with like
    yield SimpleNamespace(torch=torch, nn=torch.nn, F=torch.nn.functional, optim=torch.optim,
                          data=importlib.import_module("torch.utils.data"))
    torch.set_default_dtype(before)


def agree(a, b, rtol=1e-6):
    if hasattr(a, "item") and not isinstance(a, (list, tuple)):  # (float32 programs)
        a, b = float(a), float(b)
    assert type(a) is type(b) or isinstance(a, (int, float)) and isinstance(b, (int, float)), (a, b)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            agree(x, y, rtol)
    elif isinstance(a, str):
        assert a == b
    else:
        assert a == pytest.approx(b, rel=rtol, abs=1e-12), (a, b)


POLY_INIT = [0.1, -0.2, 0.05, 0.01]
POLYNOMIALS = [programs.polynomial_autograd, programs.polynomial_function, programs.polynomial_nn, programs.polynomial_optim,
               programs.polynomial_module, programs.polynomial_dynamic]


@pytest.mark.parametrize("program", POLYNOMIALS, ids=lambda p: p.__name__)
def test_polynomial_fits_learn_on_ours(program):
    printed = program(ours(), list(POLY_INIT))
    losses = [x for x in printed if isinstance(x, float)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("program", POLYNOMIALS, ids=lambda p: p.__name__)
def test_polynomial_fits_match_pytorch(program, theirs):
    agree(program(ours(), list(POLY_INIT)), program(theirs, list(POLY_INIT)))


def _regression_data():
    rng = np.random.default_rng(0)
    true_w, true_b = np.array([2.0, -3.4]), 4.2
    X = rng.standard_normal((1000, 2))
    y = (X @ true_w + true_b + 0.01 * rng.standard_normal(1000)).reshape(-1, 1)
    return X, y, 0.01 * rng.standard_normal((2, 1))


def test_d2l_linear_regression_scratch_recovers_w_and_b():
    X, y, w0 = _regression_data()
    printed = programs.d2l_linear_regression_scratch(ours(), X, y, w0)
    assert printed[5] < 1e-3  # the third epoch's loss
    np.testing.assert_allclose(np.ravel(printed[-2]), [2.0, -3.4], atol=0.02)
    assert printed[-1][0] == pytest.approx(4.2, abs=0.02)


def test_d2l_linear_regression_scratch_matches_pytorch(theirs):
    X, y, w0 = _regression_data()
    agree(programs.d2l_linear_regression_scratch(ours(), X, y, w0),
          programs.d2l_linear_regression_scratch(theirs, X, y, w0))


def _digits():
    sklearn = pytest.importorskip("sklearn.datasets")
    digits = sklearn.load_digits()
    X = (digits.images / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return (X[:1400], y[:1400]), (X[1400:], y[1400:])


def test_d2l_softmax_scratch_learns_and_matches_pytorch(request):
    train, test = _digits()
    W = np.random.default_rng(1).normal(0, 0.01, (64, 10))
    printed = programs.d2l_softmax_scratch(ours(), train, test, W)
    assert printed[-1][2] > 0.8  # test accuracy after three epochs
    if importlib.util.find_spec("torch"):
        theirs_ = request.getfixturevalue("theirs")
        agree(printed, programs.d2l_softmax_scratch(theirs_, train, test, W))


def test_d2l_mlp_scratch_learns_and_matches_pytorch(request):
    train, _ = _digits()
    rng = np.random.default_rng(2)
    weights = {"W1": 0.01 * rng.standard_normal((64, 32)), "W2": 0.01 * rng.standard_normal((32, 10))}
    printed = programs.d2l_mlp_scratch(ours(), train, weights, num_epochs=4, lr=0.5)
    assert printed[-1] < printed[0]
    if importlib.util.find_spec("torch"):
        theirs_ = request.getfixturevalue("theirs")
        agree(printed, programs.d2l_mlp_scratch(theirs_, train, weights, num_epochs=4, lr=0.5))


def _run_both(request, program, *args, **kwargs):
    """Run on ours; where torch is installed, on PyTorch too, and compare."""
    printed = program(ours(), *args, **kwargs)
    if importlib.util.find_spec("torch"):
        agree(printed, program(request.getfixturevalue("theirs"), *args, **kwargs))
    return printed


def _flat(split):
    X, y = split
    return X.reshape(len(X), -1), y


def test_nn_really_from_scratch(request):
    train, _ = _digits()
    W = np.random.default_rng(4).standard_normal((64, 10)) / 8.0
    printed = _run_both(request, programs.nn_really_from_scratch, _flat(train), W)
    assert printed[-1][1] > 0.9  # training accuracy


def test_nn_really_refactored(request):
    train, valid = _digits()
    W = np.random.default_rng(5).standard_normal((64, 10)) / 8.0
    printed = _run_both(request, programs.nn_really_refactored, _flat(train), _flat(valid), W)
    assert printed[-1] == 1400 and printed[-3][1] < printed[0][1]


def test_quickstart(request, tmp_path):
    train, test = _digits()
    rng = np.random.default_rng(6)
    state = {"linear_relu_stack.0.weight": rng.standard_normal((32, 64)) / 8,
             "linear_relu_stack.0.bias": np.zeros(32),
             "linear_relu_stack.2.weight": rng.standard_normal((32, 32)) / 6,
             "linear_relu_stack.2.bias": np.zeros(32),
             "linear_relu_stack.4.weight": rng.standard_normal((10, 32)) / 6,
             "linear_relu_stack.4.bias": np.zeros(10)}
    printed = programs.quickstart(ours(), train, test, state, str(tmp_path / "ours.pth"))
    test_losses = [x for x in printed if isinstance(x, float)]
    assert test_losses[-1] < 0.8 * test_losses[0]
    if importlib.util.find_spec("torch"):
        theirs_ = request.getfixturevalue("theirs")
        agree(printed, programs.quickstart(theirs_, train, test, state,
                                           str(tmp_path / "theirs.pth")))


def test_d2l_softmax_concise(request):
    train, test = _digits()
    printed = _run_both(request, programs.d2l_softmax_concise, train, test)
    assert printed[0] == 1.0 and printed[-1][1] > 0.8


def test_d2l_mlp_concise(request):
    train, _ = _digits()
    printed = _run_both(request, programs.d2l_mlp_concise, train, num_epochs=4, lr=0.5)
    assert printed[-1] < printed[0]
