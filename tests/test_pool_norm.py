"""Pooling, batch normalisation and dropout: gradients against finite differences over
option grids, everything against PyTorch (outputs, gradients, running statistics over
training steps, state_dicts), the conventions at ties, and the errors."""

import itertools

import numpy as np
import pytest

import autodiff
import nn
import nn.functional as F
from autodiff import Tensor, grad, gradcheck
from autodiff.errors import ShapeError


def _distinct(rng, *shape):
    """Values 0.25 apart (shuffled, jittered): no ties, so max pooling is differentiable
    at them and central differences are valid."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n // 2) * 0.25 + rng.uniform(-0.04, 0.04, n)).reshape(shape)


# ---------------------------------------------------------------------------
# option grids: finite differences (float64), and PyTorch (float64 and float32)

MAX_GRID = [dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=c)
            for k, s, p, d, c in itertools.product((2, 3, (3, 2)), (None, 1, 2), (0, 1),
                                                   (1, 2), (False, True))]
AVG_GRID = [dict(kernel_size=k, stride=s, padding=p, ceil_mode=c, count_include_pad=i)
            for k, s, p, c, i in itertools.product((2, 3, (3, 2)), (None, 1, 2), (0, 1),
                                                   (False, True), (True, False))]
SHAPE = (2, 2, 7, 8)


def _kw_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("kw", MAX_GRID, ids=_kw_id)
def test_max_pool2d_gradcheck_grid(kw, rng):
    x = Tensor(_distinct(rng, 1, 1, 7, 8), requires_grad=True)
    assert gradcheck(lambda a: F.max_pool2d(a, **kw), [x])


@pytest.mark.parametrize("kw", AVG_GRID, ids=_kw_id)
def test_avg_pool2d_gradcheck_grid(kw, rng):
    x = Tensor(rng.standard_normal((1, 2, 7, 8)), requires_grad=True)
    assert gradcheck(lambda a: F.avg_pool2d(a, **kw), [x])


ADAPTIVE_SIZES = [1, 2, (3, 5), (5, 3), (7, 8), (4, None), (None, 6), (9, 11), (2, 1)]


@pytest.mark.parametrize("size", ADAPTIVE_SIZES, ids=str)
def test_adaptive_avg_pool2d_gradcheck(size, rng):
    x = Tensor(rng.standard_normal((2, 2, 7, 8)), requires_grad=True)
    assert gradcheck(lambda a: F.adaptive_avg_pool2d(a, size), [x])


def _against_torch(ours, theirs, data, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    x = Tensor(data.astype(dtype), requires_grad=True)
    t = torch.tensor(data.astype(dtype), requires_grad=True)
    out, tout = ours(x), theirs(t)
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
    cot = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    out.backward(cot)
    tout.backward(torch.from_numpy(cot))
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(np.asarray(x.grad), t.grad.numpy(), rtol=rtol, atol=atol)


PRECISIONS = [(np.float64, 1e-10, 1e-12), (np.float32, 1e-5, 1e-6)]
PREC_IDS = ["float64", "float32"]


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS, ids=PREC_IDS)
@pytest.mark.parametrize("kw", MAX_GRID, ids=_kw_id)
def test_max_pool2d_matches_torch(kw, dtype, rtol, atol, rng):
    torch = pytest.importorskip("torch")
    _against_torch(lambda a: F.max_pool2d(a, **kw),
                   lambda t: torch.nn.functional.max_pool2d(t, **kw),
                   rng.standard_normal(SHAPE), dtype, rtol, atol)


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS, ids=PREC_IDS)
@pytest.mark.parametrize("kw", AVG_GRID + [dict(kernel_size=3, stride=2, padding=1,
                                                divisor_override=4)], ids=_kw_id)
def test_avg_pool2d_matches_torch(kw, dtype, rtol, atol, rng):
    torch = pytest.importorskip("torch")
    _against_torch(lambda a: F.avg_pool2d(a, **kw),
                   lambda t: torch.nn.functional.avg_pool2d(t, **kw),
                   rng.standard_normal(SHAPE), dtype, rtol, atol)


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS, ids=PREC_IDS)
@pytest.mark.parametrize("size", ADAPTIVE_SIZES + [(24, 1)], ids=str)
def test_adaptive_avg_pool2d_matches_torch(size, dtype, rtol, atol, rng):
    torch = pytest.importorskip("torch")
    _against_torch(lambda a: F.adaptive_avg_pool2d(a, size),
                   lambda t: torch.nn.functional.adaptive_avg_pool2d(t, size),
                   rng.standard_normal((3, 2, 13, 8)), dtype, rtol, atol)


def test_pooling_accepts_unbatched_inputs_as_torch(rng):
    a = rng.standard_normal((3, 6, 6))
    for fn in (lambda x: F.max_pool2d(x, 2), lambda x: F.avg_pool2d(x, 3, 1, 1),
               lambda x: F.adaptive_avg_pool2d(x, (2, 4))):
        unbatched = fn(Tensor(a))
        batched = fn(Tensor(a[None]))
        np.testing.assert_array_equal(unbatched.data, batched.data[0])
    assert nn.MaxPool2d(2)(a).shape == (3, 3, 3)
    assert nn.AdaptiveAvgPool2d(1)(a).shape == (3, 1, 1)


def test_adaptive_windows_are_pytorchs(rng):
    # (5 -> 3): rows [0, 2), [1, 4), [3, 5): overlapping, of sizes 2, 3, 2
    x = Tensor(np.arange(5.0).reshape(1, 1, 5, 1))
    out = F.adaptive_avg_pool2d(x, (3, 1)).data.ravel()
    np.testing.assert_allclose(out, [0.5, 2.0, 3.5])
    # the identity size is the identity
    a = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(Tensor(a), (4, 5)).data, a, rtol=1e-15)


# ---------------------------------------------------------------------------
# max pooling at ties, NaN and -inf: where the gradient goes, as in PyTorch

def _max_pool_grad(data, **kw):
    x = Tensor(np.asarray(data, dtype=np.float64), requires_grad=True)
    F.max_pool2d(x, **kw).sum().backward()
    return np.asarray(x.grad)


def test_max_pool_tie_sends_the_gradient_to_the_first_maximum():
    g = _max_pool_grad(np.ones((1, 1, 4, 4)), kernel_size=2)
    expect = np.zeros((4, 4))
    expect[::2, ::2] = 1
    np.testing.assert_array_equal(g[0, 0], expect)
    # overlapping windows: each sends 1 to its own first maximum, and they add up
    g = _max_pool_grad([[[[1.0, 2.0, 2.0], [2.0, 2.0, 0.0]]]], kernel_size=2, stride=1)
    np.testing.assert_array_equal(g[0, 0], [[0, 2, 0], [0, 0, 0]])


TIE_INPUTS = {
    "all-equal": np.ones((2, 2, 5, 5)),
    "plateaus": np.repeat(np.repeat(np.arange(9.0).reshape(1, 1, 3, 3), 2, 2), 2, 3),
    "nan": np.array([[[[1.0, np.nan, 3.0], [np.nan, 0.5, 3.0], [2.0, 2.0, np.nan]]]]),
    "minus-inf": np.full((1, 1, 3, 3), -np.inf),
    "small-ints": np.random.default_rng(3).integers(0, 3, (2, 2, 6, 7)).astype(float),
}


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=2, stride=1),
                                dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=2, stride=1, padding=1, ceil_mode=True),
                                dict(kernel_size=2, dilation=2, padding=1)], ids=_kw_id)
@pytest.mark.parametrize("name", list(TIE_INPUTS))
def test_max_pool_ties_nan_and_inf_match_torch(name, kw):
    torch = pytest.importorskip("torch")
    data = TIE_INPUTS[name]
    if min(data.shape[-2:]) < 2 * kw.get("dilation", 1) + 1 - 2 * kw.get("padding", 0):
        pytest.skip("input too small for this window")
    x = Tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    out, idx = F.max_pool2d(x, return_indices=True, **kw)
    tout, tidx = torch.nn.functional.max_pool2d(t, return_indices=True, **kw)
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    np.testing.assert_array_equal(idx.data, tidx.numpy())
    assert idx.dtype == np.int64 and not idx.requires_grad
    cot = np.arange(1.0, out.size + 1).reshape(out.shape)  # distinct: a swap would show
    out.backward(cot)
    tout.backward(torch.tensor(cot))
    np.testing.assert_array_equal(np.asarray(x.grad), t.grad.numpy())


def test_max_pool_create_graph_path_agrees_with_plain_backward(rng):
    # The vjp on graph nodes (a scatter) against the fast loop, ties included.
    data = rng.integers(0, 3, (2, 2, 7, 7)).astype(float)
    for kw in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
               dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True)]:
        for pool in (F.max_pool2d, F.avg_pool2d):
            if pool is F.avg_pool2d:
                kw = {k: v for k, v in kw.items() if k != "dilation"}
            x = Tensor(data, requires_grad=True)
            # a cotangent that requires grad: the vjp then runs on graph nodes
            cot = Tensor(rng.standard_normal(pool(x, **kw).shape), requires_grad=True)
            (g_graph,) = grad((pool(x, **kw) * cot).sum(), x, create_graph=True)
            assert g_graph.requires_grad and g_graph.grad_fn is not None
            (g_plain,) = grad((pool(x, **kw) * cot.detach()).sum(), x)
            np.testing.assert_allclose(g_graph.data, g_plain.data, rtol=1e-14, atol=1e-15)


def test_max_pool_refuses_a_backward_after_its_input_changed_in_place():
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    h = x * 1.0
    y = F.max_pool2d(h, 2)
    with autodiff.no_grad():
        h.mul_(-1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


# ---------------------------------------------------------------------------
# batch norm: functional gradchecks, and modules against PyTorch over training steps

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (3, 3, 2, 4)], ids=str)
@pytest.mark.parametrize("affine", ["wb", "w", "b", ""])
def test_batch_norm_gradcheck(shape, training, affine, rng):
    x = Tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    w = Tensor(rng.standard_normal(3), requires_grad=True) if "w" in affine else None
    b = Tensor(rng.standard_normal(3), requires_grad=True) if "b" in affine else None
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    inputs = [x] + [p for p in (w, b) if p is not None]

    def fn(x, *params):
        it = iter(params)
        weight = next(it) if w is not None else None
        bias = next(it) if b is not None else None
        return F.batch_norm(x, None if training else rm, None if training else rv,
                            weight, bias, training=training, eps=1e-3)

    assert gradcheck(fn, inputs)


def test_batch_norm_is_stable_for_a_large_mean(rng):
    # (x - mean) first: a channel at 1e8 with spread 1 normalises to float64 precision.
    a = rng.standard_normal((64, 2)) + 1e8
    y = F.batch_norm(Tensor(a), None, None, training=True, eps=0.0).data
    c = a - a.mean(axis=0)
    np.testing.assert_allclose(y, c / c.std(axis=0), atol=1e-8)


def _module_pair(kind, kw, dtype):
    torch = pytest.importorskip("torch")
    ours = getattr(nn, kind)(3, dtype=dtype, **kw)
    theirs = getattr(torch.nn, kind)(3, dtype=getattr(torch, np.dtype(dtype).name), **kw)
    if ours.weight is not None:  # not the default ones and zeros: every term matters
        gen = np.random.default_rng(5)
        w, b = gen.uniform(0.5, 1.5, 3).astype(dtype), gen.standard_normal(3).astype(dtype)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(w))
            theirs.bias.copy_(torch.from_numpy(b))
        ours.load_state_dict(theirs.state_dict())
    return ours, theirs


BN_SETUPS = [
    ("BatchNorm1d", (8, 3), {}), ("BatchNorm1d", (4, 3, 5), {}),
    ("BatchNorm2d", (4, 3, 5, 6), {}),
    ("BatchNorm2d", (4, 3, 2, 3), dict(momentum=None)),
    ("BatchNorm1d", (6, 3, 2), dict(momentum=0.3, eps=1e-3)),
    ("BatchNorm2d", (3, 3, 4, 4), dict(affine=False)),
    ("BatchNorm2d", (3, 3, 4, 4), dict(track_running_stats=False)),
    ("BatchNorm1d", (5, 3), dict(track_running_stats=False, affine=False)),
]


@pytest.mark.parametrize("dtype,rtol,atol", PRECISIONS, ids=PREC_IDS)
@pytest.mark.parametrize("kind,shape,kw", BN_SETUPS,
                         ids=[f"{k}{s}{_kw_id(kw)}" for k, s, kw in BN_SETUPS])
def test_batch_norm_modules_match_torch_over_training_steps(kind, shape, kw, dtype, rtol,
                                                            atol, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = _module_pair(kind, kw, dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for step in range(4):
        data = (rng.standard_normal(shape) * (1 + step) + step).astype(dtype)
        x = Tensor(data, requires_grad=True)
        t = torch.tensor(data, requires_grad=True)
        out, tout = ours(x), theirs(t)
        assert out.dtype == dtype
        np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
        cot = rng.standard_normal(shape).astype(dtype)
        (out * Tensor(cot)).sum().backward()
        (tout * torch.from_numpy(cot)).sum().backward()
        np.testing.assert_allclose(np.asarray(x.grad), t.grad.numpy(), rtol=rtol, atol=atol)
        for p, tp in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(np.asarray(p.grad), tp.grad.numpy(), rtol=rtol,
                                       atol=atol)
        for (name, v), (tname, tv) in zip(ours.state_dict().items(),
                                          theirs.state_dict().items()):
            assert name == tname and v.dtype == tv.numpy().dtype
            np.testing.assert_allclose(v, tv.numpy(), rtol=rtol, atol=atol, err_msg=name)
        with autodiff.no_grad(), torch.no_grad():  # plain SGD on both: the next batch differs
            for p, tp in zip(ours.parameters(), theirs.parameters()):
                p -= 0.1 * p.grad
                tp -= 0.1 * tp.grad
                p.grad, tp.grad = None, None
    ours.eval()
    theirs.eval()
    data = rng.standard_normal(shape).astype(dtype)
    x = Tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    out, tout = ours(x), theirs(t)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad), t.grad.numpy(), rtol=rtol, atol=atol)


def test_running_statistics_by_hand(rng):
    bn = nn.BatchNorm1d(2, momentum=0.25)
    batches = [rng.standard_normal((5, 2)) * s + s for s in (1.0, 2.0, 3.0)]
    mean, var = np.zeros(2), np.ones(2)
    for b in batches:
        bn(b)
        mean = 0.75 * mean + 0.25 * b.mean(axis=0)
        var = 0.75 * var + 0.25 * b.var(axis=0, ddof=1)  # unbiased for the running var
    np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-14)
    np.testing.assert_allclose(bn.running_var.data, var, rtol=1e-14)
    assert int(bn.num_batches_tracked) == 3
    # momentum=None: the plain average of the batches' statistics
    cum = nn.BatchNorm1d(2, momentum=None)
    for b in batches:
        cum(b)
    np.testing.assert_allclose(cum.running_mean.data,
                               np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-14)
    np.testing.assert_allclose(cum.running_var.data,
                               np.mean([b.var(axis=0, ddof=1) for b in batches], axis=0),
                               rtol=1e-14)


def test_train_eval_switch_and_buffers(rng):
    bn = nn.BatchNorm2d(3)
    x = rng.standard_normal((4, 3, 2, 2)) + 5
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)  # batch statistics
    version = bn.running_mean._version
    bn.eval()
    before = bn.running_mean.data.copy()
    z = bn(x).data  # running statistics, left unchanged
    np.testing.assert_array_equal(bn.running_mean.data, before)
    assert bn.running_mean._version == version and int(bn.num_batches_tracked) == 1
    np.testing.assert_allclose(z, (x - before[None, :, None, None])
                               / np.sqrt(bn.running_var.data[None, :, None, None] + 1e-5))
    bn.train()
    bn(x)
    assert int(bn.num_batches_tracked) == 2 and bn.running_mean._version > version
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.data, 0)
    np.testing.assert_array_equal(bn.running_var.data, 1)
    assert int(bn.num_batches_tracked) == 0
    # without running statistics, evaluation uses the batch's own
    free = nn.BatchNorm2d(3, track_running_stats=False).eval()
    assert list(free.named_buffers()) == [] and free.running_mean is None
    np.testing.assert_allclose(free(x).data, y, rtol=1e-12)
    plain = nn.BatchNorm2d(3, affine=False)
    assert list(plain.parameters()) == [] and plain.weight is None and plain.bias is None
    assert list(plain.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert nn.BatchNorm1d(3, bias=False).bias is None


def test_batch_norm_module_layouts_reprs_and_dtypes():
    torch = pytest.importorskip("torch")
    for kind, kw in [("BatchNorm1d", {}), ("BatchNorm2d", dict(eps=1e-3, momentum=None)),
                     ("BatchNorm2d", dict(affine=False, track_running_stats=False))]:
        ours, theirs = getattr(nn, kind)(4, **kw), getattr(torch.nn, kind)(4, **kw)
        assert repr(ours) == repr(theirs)
        assert ([(n, tuple(b.shape)) for n, b in ours.named_buffers()]
                == [(n, tuple(b.shape)) for n, b in theirs.named_buffers()])
    bn = nn.BatchNorm2d(2)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    bn.float()
    assert bn.running_mean.dtype == np.float32 and bn.weight.dtype == np.float32
    assert bn.num_batches_tracked.dtype == np.int64
    out = bn(np.ones((2, 2, 3, 3), dtype=np.float32) + np.arange(3, dtype=np.float32))
    assert out.dtype == np.float32 and bn.running_var.dtype == np.float32
    for mod in (nn.MaxPool2d(2), nn.MaxPool2d((2, 3), 1, 1, 2, ceil_mode=True),
                nn.AvgPool2d(3, 2, 1), nn.AdaptiveAvgPool2d((None, 3)), nn.AdaptiveAvgPool2d(1),
                nn.Dropout(), nn.Dropout(0.2, inplace=True)):
        name = type(mod).__name__
        args = {"MaxPool2d": [(2,), ((2, 3), 1, 1, 2)], "AvgPool2d": [(3, 2, 1)],
                "AdaptiveAvgPool2d": [((None, 3),), (1,)], "Dropout": [(), (0.2,)]}[name]
        reprs = []
        for a in args:
            kw = {"ceil_mode": True} if a == ((2, 3), 1, 1, 2) else {}
            kw.update({"inplace": True} if a == (0.2,) else {})
            reprs.append(repr(getattr(torch.nn, name)(*a, **kw)))
        assert repr(mod) in reprs


def test_a_torch_state_dict_loads_strictly_and_gives_the_same_outputs(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = torch.nn.Sequential(
        torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.AvgPool2d(2, 1, 1), torch.nn.AdaptiveAvgPool2d((2, 3)), torch.nn.Flatten(),
        torch.nn.Linear(18, 5), torch.nn.BatchNorm1d(5), torch.nn.Dropout(0.3),
        torch.nn.Linear(5, 2)).double()
    for _ in range(3):  # non-trivial running statistics and a batch count of 3
        theirs(torch.tensor(rng.standard_normal((6, 3, 8, 8)) + 2))
    ours = nn.Sequential(
        nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2, 1, 1),
        nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.Linear(18, 5), nn.BatchNorm1d(5),
        nn.Dropout(0.3), nn.Linear(5, 2))
    state = theirs.state_dict()
    assert "0.num_batches_tracked" in state and "7.num_batches_tracked" in state
    result = ours.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert list(ours.state_dict()) == list(state)
    assert int(ours[0].num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    data = rng.standard_normal((4, 3, 8, 8))
    x = Tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    out, tout = ours(x), theirs(t)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad), t.grad.numpy(), rtol=1e-10, atol=1e-12)
    # and back: ours loads strictly into torch
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})


# ---------------------------------------------------------------------------
# dropout

def test_dropout_statistics_with_a_fixed_seed():
    x = Tensor(np.ones((200, 500)), requires_grad=True)
    for p in (0.1, 0.5, 0.8):
        autodiff.manual_seed(3)
        y = F.dropout(x, p)
        kept = y.data != 0
        # 100,000 Bernoulli draws: the kept fraction is within 5 standard deviations
        assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / kept.size)
        np.testing.assert_array_equal(y.data[kept], 1 / (1 - p))  # inverted scaling
        assert abs(y.data.mean() - 1) < 0.02  # the expectation is kept
        autodiff.manual_seed(3)
        np.testing.assert_array_equal(F.dropout(x, p).data, y.data)  # same seed, same mask


def test_dropout_mask_is_shared_by_forward_and_backward(rng):
    x = Tensor(rng.uniform(1, 2, (50, 40)), requires_grad=True)
    y = F.dropout(x, 0.3)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    mask = y.data / x.data  # 0 or 1 / 0.7 where kept
    np.testing.assert_allclose(np.asarray(x.grad), g * mask, rtol=1e-15)
    assert set(np.round(np.unique(mask), 12)) == {0.0, round(1 / 0.7, 12)}
    # float32 stays float32, with the same scaling
    x32 = Tensor(np.ones(1000, np.float32), requires_grad=True)
    y32 = F.dropout(x32, 0.25)
    assert y32.dtype == np.float32
    y32.sum().backward()
    assert x32.grad.dtype == np.float32


def test_dropout_identity_in_evaluation_and_at_p_zero_and_zeros_at_p_one(rng):
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    layer = nn.Dropout(0.5)
    assert layer.eval()(x) is x
    assert layer.train()(x) is not x
    zero = F.dropout(x, 1.0)
    np.testing.assert_array_equal(zero.data, 0)
    zero.sum().backward()
    np.testing.assert_array_equal(np.asarray(x.grad), 0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.9)).eval()
    np.testing.assert_array_equal(net(x).data, net[0](x).data)


# ---------------------------------------------------------------------------
# errors: named clearly, for what PyTorch refuses too

POOL_ERRORS = [
    ("max_pool2d", dict(kernel_size=0), ValueError, "kernel_size must be positive"),
    ("max_pool2d", dict(kernel_size=2, stride=0), ValueError, "stride must be positive"),
    ("max_pool2d", dict(kernel_size=3, padding=2), ValueError, "at most half"),
    ("max_pool2d", dict(kernel_size=2, padding=(0, 2)), ValueError, "at most half"),
    ("max_pool2d", dict(kernel_size=2, dilation=0), ValueError, "dilation must be positive"),
    ("max_pool2d", dict(kernel_size=6), ShapeError, "too small"),
    ("max_pool2d", dict(kernel_size=2, padding=-1), ValueError, "non-negative"),
    ("max_pool2d", dict(kernel_size=2.0), TypeError, "kernel_size must be an int"),
    ("avg_pool2d", dict(kernel_size=2, padding=2), ValueError, "at most half"),
    ("avg_pool2d", dict(kernel_size=(2, 2, 2)), TypeError, "pair of ints"),
    ("avg_pool2d", dict(kernel_size=2, divisor_override=0), ValueError, "divisor_override"),
    ("adaptive_avg_pool2d", dict(output_size=-1), ValueError, "non-negative ints"),
    ("adaptive_avg_pool2d", dict(output_size=(1, 2, 3)), TypeError, "int or a pair"),
]


@pytest.mark.parametrize("fn,kw,error,message", POOL_ERRORS,
                         ids=[f"{f}-{_kw_id(kw)}" for f, kw, _, _ in POOL_ERRORS])
def test_pooling_errors_name_the_function_and_values(fn, kw, error, message):
    x = Tensor(np.zeros((1, 2, 5, 5)))
    with pytest.raises(error, match=message) as info:
        getattr(F, fn)(x, **kw)
    assert str(info.value).startswith(fn)
    try:
        import torch
    except ImportError:
        return
    with pytest.raises((RuntimeError, ValueError, TypeError)):  # PyTorch refuses it too
        getattr(torch.nn.functional, fn)(torch.zeros(1, 2, 5, 5), **kw)


def test_pooling_refuses_bad_inputs_and_modules_check_their_arguments():
    for bad in (np.zeros((4, 4)), np.zeros((1, 2, 3, 0, 4)), np.zeros((1, 0, 4, 4))):
        with pytest.raises(ShapeError, match=r"max_pool2d: expected .*\(N, C, H, W\)"):
            F.max_pool2d(Tensor(bad), 2)
    with pytest.raises(TypeError, match="floating-point"):
        F.avg_pool2d(Tensor(np.zeros((1, 1, 4, 4), np.int64)), 2)
    with pytest.raises(ValueError, match="MaxPool2d: padding"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="AvgPool2d: stride"):
        nn.AvgPool2d(2, stride=0)
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d: output_size"):
        nn.AdaptiveAvgPool2d((2, -1))
    assert nn.AdaptiveAvgPool2d((0, 2))(np.ones((1, 3, 3))).shape == (1, 0, 2)  # as torch
    with pytest.raises(ValueError, match="Dropout: p"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout: p"):
        F.dropout(Tensor(np.ones(3)), -0.1)


def test_batch_norm_errors(rng):
    x = Tensor(rng.standard_normal((4, 3, 5)))
    with pytest.raises(ShapeError, match=r"running_mean should hold 3 elements.*\(4,\)"):
        F.batch_norm(x, np.zeros(4), np.ones(4))
    with pytest.raises(ShapeError, match="weight should hold 3 elements"):
        F.batch_norm(x, None, None, np.ones(2), training=True)
    with pytest.raises(ValueError, match="running_mean and running_var are needed"):
        F.batch_norm(x, None, None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(Tensor(np.ones((1, 3))), None, None, training=True)
    F.batch_norm(Tensor(rng.standard_normal((1, 3, 2))), None, None, training=True)  # fine
    with pytest.raises(ShapeError, match=r"BatchNorm2d\(3\): input of shape \(2, 4, 2, 2\)"
                                         r" has 4 channels"):
        nn.BatchNorm2d(3)(rng.standard_normal((2, 4, 2, 2)))
    with pytest.raises(ShapeError, match="BatchNorm2d: expected a 4-D input"):
        nn.BatchNorm2d(3)(rng.standard_normal((3, 2, 2)))
    with pytest.raises(ShapeError, match="BatchNorm1d: expected a 2-D or 3-D input"):
        nn.BatchNorm1d(3)(rng.standard_normal((2, 3, 2, 2)))
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(rng.standard_normal((1, 3)))
    assert int(bn.num_batches_tracked) == 0  # a refused batch is not counted
    bn.eval()(rng.standard_normal((1, 3)))  # evaluation takes a single sample
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)
    torch = pytest.importorskip("torch")
    for call in (lambda: torch.nn.functional.batch_norm(torch.zeros(4, 3, 5), torch.zeros(4),
                                                        torch.ones(4)),
                 lambda: torch.nn.BatchNorm1d(3)(torch.zeros(1, 3)),
                 lambda: torch.nn.BatchNorm2d(3)(torch.zeros(2, 4, 2, 2)),
                 lambda: torch.nn.BatchNorm2d(3)(torch.zeros(3, 2, 2))):
        with pytest.raises((RuntimeError, ValueError)):  # PyTorch refuses the same
            call()


def test_max_pool_sends_an_infinite_gradient_only_to_the_maxima():
    torch = pytest.importorskip("torch")
    data = np.arange(16.0).reshape(1, 1, 4, 4)
    cot = np.array([[[[np.inf, 1.0], [np.nan, -np.inf]]]])
    for kw in (dict(kernel_size=2), dict(kernel_size=2, stride=1, padding=1)):
        x = Tensor(data, requires_grad=True)
        t = torch.tensor(data, requires_grad=True)
        out, tout = F.max_pool2d(x, **kw), torch.nn.functional.max_pool2d(t, **kw)
        c = np.resize(cot, out.shape)
        out.backward(c)
        tout.backward(torch.tensor(c))
        np.testing.assert_array_equal(np.asarray(x.grad), t.grad.numpy())
