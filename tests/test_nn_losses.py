"""Losses: closed forms, gradients, errors, and agreement with PyTorch."""

import math

import numpy as np
import pytest

import nn
from autodiff import Tensor, gradcheck
from autodiff.errors import ShapeError


def _t(a, grad=True):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# -- closed forms (never skipped) -------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_closed_form(rng, reduction):
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    xt = _t(x)
    loss = nn.MSELoss(reduction=reduction)(xt, y)
    sq = (x - y) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(loss.data, expected, rtol=1e-14)
    loss.sum().backward()
    scale = 1 / x.size if reduction == "mean" else 1.0
    np.testing.assert_allclose(xt.grad, 2 * (x - y) * scale, rtol=1e-14)


def test_mse_half_is_the_lecture_convention(rng):
    x, y = rng.normal(size=5), rng.normal(size=5)
    xt = _t(x)
    loss = nn.MSELoss(half=True)(xt, y)
    np.testing.assert_allclose(loss.item(), np.mean(0.5 * (x - y) ** 2), rtol=1e-14)
    loss.backward()
    np.testing.assert_allclose(xt.grad, (x - y) / 5, rtol=1e-14)


def test_mse_shape_mismatch_is_an_error():
    with pytest.raises(ShapeError, match=r"\(4, 1\).*\(4,\)"):
        nn.MSELoss()(_t(np.zeros((4, 1))), np.zeros(4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_closed_form(rng, reduction):
    p = rng.uniform(0.05, 0.95, size=6)
    y = rng.integers(0, 2, size=6).astype(float)
    pt = _t(p)
    loss = nn.BCELoss(reduction=reduction)(pt, y)
    terms = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = {"mean": terms.mean(), "sum": terms.sum(), "none": terms}[reduction]
    np.testing.assert_allclose(loss.data, expected, rtol=1e-13)
    loss.sum().backward()
    scale = 1 / 6 if reduction == "mean" else 1.0
    np.testing.assert_allclose(pt.grad, (p - y) / (p * (1 - p)) * scale, rtol=1e-12)


def test_bce_clamps_log_at_minus_100():
    p = _t([0.0, 1.0, 0.0, 1.0])
    loss = nn.BCELoss(reduction="none")(p, [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(loss.data, [100, 100, 0, 0], atol=1e-12)
    loss.sum().backward()
    assert np.all(np.isfinite(p.grad))


def test_bce_rejects_values_outside_0_1():
    with pytest.raises(ValueError, match="probabilities"):
        nn.BCELoss()(_t([0.5, 1.5]), [1.0, 0.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_closed_form(rng, reduction):
    x = rng.normal(scale=3, size=7)
    y = rng.uniform(size=7)
    xt = _t(x)
    loss = nn.BCEWithLogitsLoss(reduction=reduction)(xt, y)
    s = 1 / (1 + np.exp(-x))
    terms = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    expected = {"mean": terms.mean(), "sum": terms.sum(), "none": terms}[reduction]
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12)
    loss.sum().backward()
    scale = 1 / 7 if reduction == "mean" else 1.0
    np.testing.assert_allclose(xt.grad, (s - y) * scale, rtol=1e-12)


def test_bce_with_logits_is_stable_and_exact_at_zero():
    x = _t([-1000.0, 0.0, 1000.0])
    loss = nn.BCEWithLogitsLoss(reduction="none")(x, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(loss.data, [1000.0, math.log(2), 1000.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [-1.0, -0.5, 1.0])  # sigmoid(x) - y, also at the kink


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_closed_form(rng, reduction):
    z = rng.normal(size=(5, 4))
    labels = [0, 3, 1, 1, 2]
    zt = _t(z)
    loss = nn.CrossEntropyLoss(reduction=reduction)(zt, labels)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    terms = -logp[np.arange(5), labels]
    expected = {"mean": terms.mean(), "sum": terms.sum(), "none": terms}[reduction]
    np.testing.assert_allclose(loss.data, expected, rtol=1e-13)
    loss.sum().backward()
    p = np.exp(logp)
    p[np.arange(5), labels] -= 1
    np.testing.assert_allclose(zt.grad, p / (5 if reduction == "mean" else 1), atol=1e-15)


@pytest.mark.parametrize("make", [list, np.array, lambda v: np.array(v, dtype=np.int32),
                                  Tensor, lambda v: Tensor(np.array(v))])
def test_cross_entropy_label_containers(make):
    z = _t(np.log([[0.25, 0.75], [0.5, 0.5]]))
    loss = nn.CrossEntropyLoss()(z, make([1, 0]))
    np.testing.assert_allclose(loss.item(), -(np.log(0.75) + np.log(0.5)) / 2, rtol=1e-14)


def test_cross_entropy_is_stable_for_huge_logits():
    z = _t([[1000.0, -1000.0], [-1000.0, 1000.0]])
    loss = nn.CrossEntropyLoss()(z, [0, 0])
    np.testing.assert_allclose(loss.item(), 1000.0)
    loss.backward()
    assert np.all(np.isfinite(z.grad))


def test_cross_entropy_gradcheck_and_float32(rng):
    z = _t(rng.normal(size=(3, 5)))
    assert gradcheck(lambda z: nn.CrossEntropyLoss()(z, [4, 0, 2]), [z])
    assert gradcheck(lambda z: nn.CrossEntropyLoss(reduction="none")(z, [4, 0, 2]), [z])
    z32 = Tensor(rng.normal(size=(3, 5)).astype(np.float32), requires_grad=True)
    loss = nn.CrossEntropyLoss()(z32, [1, 2, 3])
    loss.backward()
    assert loss.dtype == np.float32 and z32.grad.dtype == np.float32


def test_cross_entropy_class_weights_and_probabilities(rng):
    z = rng.normal(size=(4, 3))
    labels = np.array([0, 2, 2, 1])
    w = np.array([1.0, 2.0, 0.5])
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    picked = -logp[np.arange(4), labels] * w[labels]
    got = nn.CrossEntropyLoss(w)(_t(z), labels).item()
    np.testing.assert_allclose(got, picked.sum() / w[labels].sum(), rtol=1e-13)
    probs = rng.dirichlet(np.ones(3), size=4)
    got = nn.CrossEntropyLoss()(_t(z), probs).item()
    np.testing.assert_allclose(got, -(probs * logp).sum(axis=1).mean(), rtol=1e-13)


@pytest.mark.parametrize("bad", [[0, 3], [-1, 0]])
def test_cross_entropy_rejects_labels_outside_range(bad):
    with pytest.raises(IndexError, match=rf"label {bad[0] if bad[0] < 0 else bad[1]}.*C=3"):
        nn.CrossEntropyLoss()(_t(np.zeros((2, 3))), bad)


def test_cross_entropy_shape_errors():
    with pytest.raises(ShapeError, match=r"\(N, C\)"):
        nn.CrossEntropyLoss()(_t(np.zeros(3)), [0])
    with pytest.raises(ShapeError, match=r"shape \(2,\)"):
        nn.CrossEntropyLoss()(_t(np.zeros((2, 3))), [0, 1, 2])
    with pytest.raises(ValueError, match="integers"):
        nn.CrossEntropyLoss()(_t(np.zeros((2, 3))), [0.5, 1.0])


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_fused_cross_entropy_matches_composite(rng):
    z = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    a, b = _t(z), _t(z)
    nn.CrossEntropyLoss()(a, labels).backward()
    logp = b.log_softmax(axis=1)
    (-(logp[np.arange(6), labels]).mean()).backward()
    np.testing.assert_allclose(a.grad, b.grad, atol=1e-15)


# -- against PyTorch -------------------------------------------------------------------

def _torch_pair(torch, x):
    ours = _t(x)
    theirs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    return ours, theirs


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"])
def test_losses_match_torch(rng, name, reduction):
    torch = pytest.importorskip("torch")
    if name == "CrossEntropyLoss":
        x, y = rng.normal(size=(8, 5)), rng.integers(0, 5, size=8)
        ty = torch.tensor(y)
    elif name == "BCELoss":
        x, y = rng.uniform(0.01, 0.99, size=(8, 2)), rng.integers(0, 2, size=(8, 2)) * 1.0
        ty = torch.tensor(y)
    else:
        x, y = rng.normal(scale=4, size=(8, 2)), rng.uniform(size=(8, 2))
        ty = torch.tensor(y)
    ours, theirs = _torch_pair(torch, x)
    a = getattr(nn, name)(reduction=reduction)(ours, y)
    b = getattr(torch.nn, name)(reduction=reduction)(theirs, ty)
    np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-12, atol=1e-14)
    seed = rng.normal(size=a.shape)
    a.backward(seed)
    b.backward(torch.tensor(seed))
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_bce_clamp_matches_torch():
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 1e-60, 0.3])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    a = nn.BCELoss(reduction="none")(_t(p), y)
    b = torch.nn.BCELoss(reduction="none")(torch.tensor(p), torch.tensor(y))
    np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-12)


def test_cross_entropy_weights_match_torch(rng):
    torch = pytest.importorskip("torch")
    z, y, w = rng.normal(size=(7, 3)), rng.integers(0, 3, size=7), np.array([0.2, 1.0, 3.0])
    ours, theirs = _torch_pair(torch, z)
    a = nn.CrossEntropyLoss(w)(ours, y)
    b = torch.nn.CrossEntropyLoss(torch.tensor(w))(theirs, torch.tensor(y))
    a.backward()
    b.backward()
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-13)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_ignores_masked_logits_of_other_classes():
    # -inf logits (masked classes) that are not the label must not make the loss nan.
    x = Tensor([[2.0, -np.inf, 0.5], [0.1, 0.2, -np.inf]], requires_grad=True)
    y = [0, 1]
    log_p0 = 2.0 - np.log(np.exp(2.0) + np.exp(0.5))
    log_p1 = 0.2 - np.log(np.exp(0.1) + np.exp(0.2))
    for reduction, want in [("mean", -(log_p0 + log_p1) / 2), ("sum", -(log_p0 + log_p1))]:
        assert nn.CrossEntropyLoss(reduction=reduction)(x, y).item() == pytest.approx(want)
    none = nn.CrossEntropyLoss(reduction="none")(x, y)
    np.testing.assert_allclose(none.data, [-log_p0, -log_p1])
    nn.CrossEntropyLoss()(x, y).backward()
    assert np.isfinite(x.grad).all() and x.grad[0, 1] == 0.0 and x.grad[1, 2] == 0.0


def test_bce_keeps_a_gradient_at_saturated_probabilities():
    # p = 0 with y = 1 (and p = 1 with y = 0) is the worst prediction: the loss is the
    # clamped 100 and the gradient must push hard (PyTorch: (p - y) / 1e-12), not vanish.
    p = Tensor([0.0, 1.0, 0.25], requires_grad=True)
    loss = nn.BCELoss(reduction="sum")(p, [1.0, 0.0, 1.0])
    assert loss.item() == pytest.approx(200.0 - math.log(0.25))
    loss.backward()
    np.testing.assert_allclose(p.grad, [-1e12, 1e12, -1 / 0.25])


def _smoothed_reference(z, y, w, eps, ignore, reduction):
    """PyTorch's documented formula, written plainly."""
    c = z.shape[1]
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    w = np.ones(c) if w is None else w
    keep = np.asarray(y) != ignore
    yy = np.where(keep, y, 0)
    nll = -w[yy] * logp[np.arange(len(y)), yy] * keep
    smooth = -(logp * w).sum(axis=1) * keep
    loss = (1 - eps) * nll + eps / c * smooth
    if reduction == "none":
        return loss
    return loss.sum() / (w[yy] * keep).sum() if reduction == "mean" else loss.sum()


IGNORE_CASES = [(0.0, -100, None), (0.1, -100, None), (0.2, 2, None),
                (0.0, -100, [0.5, 2.0, 1.0, 0.25]), (0.3, 1, [0.5, 2.0, 1.0, 0.25])]


@pytest.mark.parametrize("eps, ignore, w", IGNORE_CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_ignore_index_and_label_smoothing(rng, eps, ignore, w, reduction):
    z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=6)
    y[[1, 4]] = ignore
    w = None if w is None else np.array(w)
    fn = nn.CrossEntropyLoss(w, reduction=reduction, ignore_index=ignore, label_smoothing=eps)
    got = fn(_t(z), y)
    np.testing.assert_allclose(got.data, _smoothed_reference(z, y, w, eps, ignore, reduction),
                               rtol=1e-12)
    assert gradcheck(lambda x: fn(x, y), [_t(z)])  # never skipped
    torch = pytest.importorskip("torch")
    ours, theirs = _torch_pair(torch, z)
    a = fn(ours, y)
    b = torch.nn.CrossEntropyLoss(None if w is None else torch.tensor(w), reduction=reduction,
                                  ignore_index=ignore, label_smoothing=eps)(theirs,
                                                                           torch.tensor(y))
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_ignore_edges():
    z = _t(np.array([[0.0, -np.inf, 1.0], [2.0, 0.0, 0.0]]))
    none = nn.CrossEntropyLoss(reduction="none", ignore_index=7)(z, [7, 0])
    assert none.data[0] == 0.0 and np.isfinite(none.data).all()  # an ignored masked row
    assert np.isnan(nn.CrossEntropyLoss()(z, [-100, -100]).item())  # as PyTorch: 0 / 0
    with pytest.raises(IndexError, match=r"label 5 .*not ignore_index=-100"):
        nn.CrossEntropyLoss()(z, [5, -100])
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    probs = np.array([[0.2, 0.0, 0.8], [1.0, 0.0, 0.0]])
    torch = pytest.importorskip("torch")
    zz = np.array([[0.1, 0.4, 1.0], [2.0, 0.0, -1.0]])
    a = nn.CrossEntropyLoss(label_smoothing=0.1)(_t(zz), probs).item()
    b = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(torch.tensor(zz), torch.tensor(probs))
    assert a == pytest.approx(b.item(), rel=1e-12)


# -- targets that are not numbers: an error naming the loss, never numpy's float("1")

_STRINGS = {"str": "abc", "strs": [["a", "b", "c"], ["d", "e", "f"]],
            "numeric strs": [["1", "0", "1"], ["0", "1", "0"]], "None": None,
            "objects": [[object()] * 3] * 2, "ragged": [[1.0], [1.0, 0.0, 1.0]]}


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.BCELoss(), nn.BCEWithLogitsLoss(),
                                  nn.CrossEntropyLoss()], ids=lambda f: type(f).__name__)
@pytest.mark.parametrize("target", _STRINGS.values(), ids=_STRINGS.keys())
def test_non_numeric_targets_name_the_loss(loss, target):
    x = _t(np.full((2, 3), 0.5))
    with pytest.raises(TypeError, match=rf"^{type(loss).__name__}: target must be numeric"):
        loss(x, target)


def test_cross_entropy_string_labels_and_options():
    logits = _t(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"^CrossEntropyLoss: target must be numeric.*'a'"):
        nn.CrossEntropyLoss()(logits, ["a", "b"])
    with pytest.raises(TypeError, match=r"^CrossEntropyLoss: weight must be numeric"):
        nn.CrossEntropyLoss(weight=["a", "b", "c"])
    with pytest.raises(TypeError, match=r"^CrossEntropyLoss: ignore_index must be an int"):
        nn.CrossEntropyLoss(ignore_index="x")
    with pytest.raises(ValueError, match=r"^CrossEntropyLoss: label_smoothing must lie in"):
        nn.CrossEntropyLoss(label_smoothing="0.1")
    assert nn.CrossEntropyLoss()(logits, np.array([True, False])).item() > 0  # bools: 1, 0


def test_non_numeric_inputs_name_the_loss():
    with pytest.raises(TypeError, match=r"^MSELoss: .*numeric"):
        nn.MSELoss()([["a"]], [[1.0]])
