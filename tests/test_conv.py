"""Convolutions: nn.functional.conv1d/conv2d and nn.Conv1d/Conv2d over a grid of strides,
paddings, dilations, groups and kernel sizes, against finite differences and PyTorch;
torch state_dicts, PyTorch's init and repr, the need-mask, double backward, errors."""

import itertools
import math
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import autodiff
import nn
import nn.functional as F
from autodiff import Tensor, grad, gradcheck, no_grad
from autodiff.engine import ModifiedInPlaceError, local_vjp
from autodiff.errors import ShapeError


def _grid():
    """(dims, input shape, weight shape, options, bias) over the arguments' interplay:
    odd sizes, kernels 1-3, strides 1-3, int/tuple/'same'/'valid' padding, dilation,
    groups; only the combinations that make a valid convolution."""
    cases = []
    for stride, padding, dilation in itertools.product((1, 2, 3), (0, 1, "same", "valid"),
                                                       (1, 2)):
        if padding == "same" and stride != 1:
            continue
        cases.append((2, (2, 2, 7, 6), (3, 2, 3, 2),
                      dict(stride=stride, padding=padding, dilation=dilation), True))
    cases += [
        (2, (1, 4, 5, 7), (6, 2, 1, 3), dict(stride=(2, 1), padding=(0, 2), groups=2), False),
        (2, (2, 6, 5, 5), (3, 2, 2, 2), dict(padding="same", groups=3, dilation=(2, 1)), True),
        (2, (1, 4, 6, 5), (4, 1, 3, 3), dict(stride=2, padding=1, groups=4), True),  # depthwise
        (2, (3, 5, 4), (2, 3, 2, 2), dict(stride=(1, 2)), True),                     # unbatched
        (2, (2, 1, 3, 3), (2, 1, 3, 3), {}, True),                                    # 1x1 output
        (1, (2, 3, 11), (4, 3, 3), dict(stride=2, padding=1, dilation=3), True),
        (1, (1, 4, 8), (2, 2, 4), dict(padding="same", groups=2), False),
        (1, (2, 2, 5), (3, 2, 1), dict(stride=3), True),
        (1, (3, 9), (2, 3, 5), dict(padding=(2,)), True),                              # unbatched
    ]
    return cases


GRID = _grid()
GRID_IDS = [f"{d}d-{x}-{w}-{o}{'' if b else '-nobias'}".replace(" ", "")
            for d, x, w, o, b in GRID]


def conv(dims):
    return F.conv1d if dims == 1 else F.conv2d


def _inputs(rng, x_shape, w_shape, bias, dtype=np.float64):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if bias:
        arrays.append(rng.standard_normal(w_shape[0]))
    return [a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("dims,x_shape,w_shape,opts,bias", GRID, ids=GRID_IDS)
def test_gradcheck_over_the_grid(dims, x_shape, w_shape, opts, bias, rng):
    xs = [Tensor(a, requires_grad=True) for a in _inputs(rng, x_shape, w_shape, bias)]
    assert gradcheck(lambda x, w, *b: conv(dims)(x, w, *b, **opts), xs)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("dims,x_shape,w_shape,opts,bias", GRID, ids=GRID_IDS)
def test_against_torch_over_the_grid(dims, x_shape, w_shape, opts, bias, dtype, tol, rng):
    torch = pytest.importorskip("torch")
    arrays = _inputs(rng, x_shape, w_shape, bias, dtype)
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = conv(dims)(*ours, **opts)
    t_fn = torch.nn.functional.conv1d if dims == 1 else torch.nn.functional.conv2d
    with _quiet():
        tout = t_fn(*theirs, **opts)
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=tol, atol=tol)
    cot = rng.standard_normal(out.shape).astype(dtype)
    out.backward(cot)
    tout.backward(torch.from_numpy(cot))
    for a, t in zip(ours, theirs):
        assert a.grad.dtype == dtype
        np.testing.assert_allclose(np.asarray(a.grad), t.grad.numpy(), rtol=tol,
                                   atol=tol * max(1.0, float(t.grad.abs().max())))


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on 'same' with even kernels
        yield


# ---------------------------------------------------------------------------
# which gradients are computed (the need-mask) and when

def test_first_layer_skips_the_input_gradient(rng, monkeypatch):
    # The input needs no gradient: the transposed convolution (col2im) must not run.
    import autodiff.ops_conv as ops_conv

    def refuse(*args, **kwargs):
        raise AssertionError("col2im ran for an input that needs no gradient")

    monkeypatch.setattr(ops_conv, "col2im", refuse)
    x = Tensor(rng.standard_normal((2, 1, 6, 6)))
    layer = nn.Conv2d(1, 3, 3)
    layer(x).sum().backward()
    assert x.grad is None
    assert layer.weight.grad.shape == (3, 1, 3, 3) and layer.bias.grad.shape == (3,)


def test_frozen_weight_gets_no_gradient_and_the_input_does(rng):
    x = Tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 2, 2)))
    F.conv2d(x, w).sum().backward()
    assert w.grad is None and x.grad.shape == x.shape
    # d/dx of sum(conv(x, w)): each input position gets the sum of the weights that touch it
    ones = Tensor(np.ones((2, 2, 5, 5)), requires_grad=True)
    F.conv2d(ones, w).sum().backward()
    np.testing.assert_allclose(np.asarray(ones.grad)[0, :, 2, 2], w.data.sum(axis=(0, 2, 3)))


def test_gradient_after_release_recomputes_the_columns(rng):
    # Pictures ask a node for its local vjp after a releasing backward: the columns are
    # gone, and are recomputed from the inputs.
    x = Tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 1, 2, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    y = F.conv2d(x, w, b, stride=(1, 2), padding=1, groups=2)
    g = rng.standard_normal(y.shape)
    before = local_vjp(y, g)
    y.backward(g)
    assert y._saved is None
    after = local_vjp(y, g)
    for a, c, leaf in zip(before, after, (x, w, b)):
        np.testing.assert_allclose(a, c, rtol=1e-12)
        np.testing.assert_allclose(a, np.asarray(leaf.grad), rtol=1e-12)


def test_backward_refuses_a_weight_changed_in_place(rng):
    layer = nn.Conv2d(2, 3, 3)
    y = layer(rng.standard_normal((1, 2, 5, 5)))
    with no_grad():
        layer.weight -= 0.1
    with pytest.raises(ModifiedInPlaceError, match="convolution"):
        y.sum().backward()


def test_grad_fn_is_named_as_pytorch_names_it():
    y = nn.Conv2d(1, 2, 3)(np.zeros((1, 1, 4, 4)))
    assert y.grad_fn.name() == "ConvolutionBackward0"


# ---------------------------------------------------------------------------
# double backward: the vjp on graph nodes is itself differentiable

DOUBLE = [
    (2, (2, 2, 6, 5), (3, 2, 3, 2), dict(stride=2, padding=1, dilation=(1, 2)), True),
    (2, (1, 4, 5, 5), (4, 2, 2, 3), dict(padding="same", groups=2), False),
    (1, (2, 3, 9), (2, 3, 3), dict(stride=2, padding=2, dilation=2), True),
]


@pytest.mark.parametrize("dims,x_shape,w_shape,opts,bias", DOUBLE,
                         ids=["2d-stride-pad-dilation", "2d-same-groups", "1d"])
def test_double_backward_matches_torch(dims, x_shape, w_shape, opts, bias, rng):
    torch = pytest.importorskip("torch")
    arrays = _inputs(rng, x_shape, w_shape, bias)
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_fn = torch.nn.functional.conv1d if dims == 1 else torch.nn.functional.conv2d
    weights = rng.standard_normal(conv(dims)(*ours, **opts).shape)

    # a gradient penalty: |d loss / d inputs|^2, differentiated again
    loss = (conv(dims)(*ours, **opts).tanh() * Tensor(weights)).sum()
    first = grad(loss, ours, create_graph=True)
    penalty = sum(((g * g).sum() for g in first), Tensor(0.0))
    second = grad(penalty, ours, allow_unused=True)

    with _quiet():
        tloss = (t_fn(*theirs, **opts).tanh() * torch.tensor(weights)).sum()
    tfirst = torch.autograd.grad(tloss, theirs, create_graph=True)
    tsecond = torch.autograd.grad(sum((g * g).sum() for g in tfirst), theirs,
                                  allow_unused=True)
    for a, t in zip(first, tfirst):
        np.testing.assert_allclose(a.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(second, tsecond):
        expected = np.zeros(1) if t is None else t.numpy()
        got = np.zeros(1) if a is None else np.asarray(a.data)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)


def test_second_order_gradcheck_with_padding_and_groups(rng):
    xs = [Tensor(a, requires_grad=True) for a in _inputs(rng, (1, 2, 4, 5), (2, 1, 2, 3), True)]
    vs = [Tensor(rng.standard_normal(x.shape)) for x in xs]

    def directional(*args):
        out = F.conv2d(*args, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
        gs = grad((out * out).sum(), args, create_graph=True)
        return sum(((g * v).sum() for g, v in zip(gs, vs)), Tensor(0.0))

    assert gradcheck(directional, xs)


# ---------------------------------------------------------------------------
# modules: PyTorch's layout, init, state_dict and repr

def _from_torch(tm, ours):
    ours.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()},
                         strict=True)
    return ours


@pytest.mark.parametrize("kw", [
    dict(), dict(stride=2, padding=1), dict(padding="same", dilation=2, bias=False),
    dict(groups=2, padding=(1, 0)), dict(padding=1, padding_mode="reflect"),
    dict(padding=2, padding_mode="replicate"), dict(padding="same", padding_mode="circular"),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_torch_conv2d_state_dict_loads_strictly_and_agrees(kw, rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Conv2d(4, 6, (3, 2), **kw).double()
    ours = _from_torch(tm, nn.Conv2d(4, 6, (3, 2), **kw))
    assert list(ours.state_dict()) == list(tm.state_dict())
    x = rng.standard_normal((2, 4, 7, 6))
    X, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = ours(X)
    with _quiet():
        ty = tm(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    cot = rng.standard_normal(y.shape)
    y.backward(cot)
    ty.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(np.asarray(X.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(np.asarray(p.grad), getattr(tm, name).grad.numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_torch_conv1d_state_dict_loads_and_unbatched_input_agrees(rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Conv1d(3, 5, 4, stride=2, padding=3, dilation=2).double()
    ours = _from_torch(tm, nn.Conv1d(3, 5, 4, stride=2, padding=3, dilation=2))
    for shape in [(2, 3, 12), (3, 12)]:
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(ours(x).data, tm(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_a_small_convnet_matches_torch(rng):
    # Two convolutions with an activation between: the second reads the first's output
    # in whatever memory layout it has, and the gradients flow back through both.
    torch = pytest.importorskip("torch")
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3, stride=2),
        torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(6 * 3 * 3, 5)).float()
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype=np.float32), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, dtype=np.float32), nn.Tanh(), nn.Flatten(),
        nn.Linear(6 * 3 * 3, 5, dtype=np.float32))
    _from_torch(tnet, net)
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    labels = np.array([0, 3, 4])
    loss = nn.CrossEntropyLoss()(net(x), labels)
    tloss = torch.nn.CrossEntropyLoss()(tnet(torch.tensor(x)), torch.tensor(labels))
    loss.backward()
    tloss.backward()
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.data, tloss.item(), rtol=1e-5)
    tparams = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(np.asarray(p.grad), tparams[name].grad.numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_default_init_is_pytorchs():
    # kaiming_uniform(a=sqrt(5)) gives U(+-1/sqrt(fan_in)); the bias has the same bound.
    autodiff.manual_seed(0)
    layer = nn.Conv2d(6, 16, 5)
    bound = 1 / math.sqrt(6 * 25)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.95 * bound       # fills the whole interval
    assert abs(layer.weight.data.std() - bound / math.sqrt(3)) < 0.05 * bound
    grouped = nn.Conv1d(4, 8, 3, groups=4)                       # fan_in = 4/4 * 3
    assert np.abs(grouped.weight.data).max() <= 1 / math.sqrt(3)
    assert grouped.weight.shape == (8, 1, 3)
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None


def test_dtype_device_and_default_dtype():
    assert nn.Conv2d(1, 2, 3, dtype=np.float32).weight.dtype == np.float32
    assert nn.Conv1d(1, 2, 3, device="cpu").bias.dtype == np.float64
    autodiff.set_default_dtype(autodiff.float32)
    try:
        layer = nn.Conv2d(1, 2, 3)
    finally:
        autodiff.set_default_dtype(autodiff.float64)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    y = layer(np.zeros((1, 1, 4, 4), np.float32))
    assert y.dtype == np.float32
    with pytest.raises(RuntimeError, match="cuda"):
        nn.Conv2d(1, 2, 3, device="cuda")


def test_mixed_dtypes_promote_as_numpy_does(rng):
    # (as `linear` does; PyTorch would refuse) and each gradient keeps its input's dtype
    x = Tensor(rng.standard_normal((1, 1, 4, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64


@pytest.mark.parametrize("cls,args,kw", [
    ("Conv2d", (1, 6, 5), {}),
    ("Conv2d", (6, 16, (3, 5)), dict(stride=2, padding=(1, 2), dilation=(2, 1), groups=2,
                                     bias=False)),
    ("Conv2d", (2, 4, 3), dict(padding="same", padding_mode="reflect")),
    ("Conv2d", (2, 4, 3), dict(padding="valid")),
    ("Conv1d", (3, 5, 4), dict(stride=2, padding=1)),
], ids=["lenet", "everything", "same-reflect", "valid", "1d"])
def test_repr_is_pytorchs(cls, args, kw):
    torch = pytest.importorskip("torch")
    assert repr(getattr(nn, cls)(*args, **kw)) == repr(getattr(torch.nn, cls)(*args, **kw))


def test_attributes_are_pytorchs():
    layer = nn.Conv2d(2, 4, 3, stride=(2, 1), padding=1)
    assert layer.kernel_size == (3, 3) and layer.stride == (2, 1) and layer.padding == (1, 1)
    assert layer.dilation == (1, 1) and layer.groups == 1 and layer.padding_mode == "zeros"
    assert (layer.in_channels, layer.out_channels) == (2, 4)
    assert nn.Conv1d(1, 1, 2, padding="same").padding == "same"


def test_zero_size_batch(rng):
    x = Tensor(np.zeros((0, 2, 5, 5)), requires_grad=True)
    layer = nn.Conv2d(2, 3, 3)
    y = layer(x)
    assert y.shape == (0, 3, 3, 3)
    y.sum().backward()
    np.testing.assert_array_equal(np.asarray(layer.weight.grad), 0)
    assert x.grad.shape == (0, 2, 5, 5)


# ---------------------------------------------------------------------------
# errors: clear, naming the function and the offending shapes or values

X4, W4 = np.zeros((2, 3, 8, 8)), np.zeros((6, 3, 3, 3))


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: F.conv2d(X4, np.zeros((6, 1, 3, 3))), ShapeError,
     r"conv2d: input of shape \(2, 3, 8, 8\) has 3 channels, but weight of shape "
     r"\(6, 1, 3, 3\) with groups=1 expects 1"),
    (lambda: F.conv2d(X4, np.zeros((6, 1, 3, 3)), groups=4), ValueError,
     r"groups=4 must divide the weight's out_channels 6"),
    (lambda: F.conv2d(X4, np.zeros((4, 2, 3, 3)), groups=2), ShapeError,
     r"has 3 channels, but weight of shape \(4, 2, 3, 3\) with groups=2 expects 4"),
    (lambda: F.conv2d(X4, np.zeros((6, 3, 9, 3))), ShapeError,
     r"conv2d: the kernel \(9, 3\) is larger than the padded input \(8, 8\)"),
    (lambda: F.conv2d(X4, W4, dilation=4), ShapeError,
     r"the kernel \(3, 3\) \(dilated to \(9, 9\)\) is larger than the padded input"),
    (lambda: F.conv2d(X4, np.zeros((6, 3, 3, 9)), padding=(1, 0)), ShapeError,
     r"padded input \(10, 8\)"),
    (lambda: F.conv2d(X4, W4, stride=1.5), TypeError, r"conv2d: stride must be an int"),
    (lambda: F.conv2d(X4, W4, stride=0), ValueError, r"conv2d: stride must be positive"),
    (lambda: F.conv2d(X4, W4, stride=(1, 2, 1)), ValueError, r"stride must be an int or 2 ints"),
    (lambda: F.conv2d(X4, W4, padding=-1), ValueError, r"conv2d: padding must be >= 0"),
    (lambda: F.conv2d(X4, W4, padding=(1, -2)), ValueError, r"padding must be >= 0"),
    (lambda: F.conv2d(X4, W4, padding="full"), ValueError,
     r"padding must be an int, a tuple of 2 ints, 'valid' or 'same', got 'full'"),
    (lambda: F.conv2d(X4, W4, padding=1.0), TypeError, r"padding must be an int"),
    (lambda: F.conv2d(X4, W4, padding="same", stride=2), ValueError,
     r"padding='same' needs stride 1"),
    (lambda: F.conv2d(X4, W4, dilation=(0, 1)), ValueError, r"dilation must be positive"),
    (lambda: F.conv2d(X4, W4, groups=0), ValueError, r"groups must be positive"),
    (lambda: F.conv2d(X4, W4, groups=1.0), TypeError, r"groups must be an int"),
    (lambda: F.conv2d(X4, np.zeros((6, 3, 3))), ShapeError,
     r"weight must have 4 dimensions \(out_channels, in_channels / groups, kH, kW\)"),
    (lambda: F.conv2d(np.zeros((8, 8)), W4), ShapeError,
     r"input must have shape \(N, C, H, W\) or unbatched \(C, H, W\), got \(8, 8\)"),
    (lambda: F.conv1d(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 3))), ShapeError,
     r"conv1d: input must have shape \(N, C, L\)"),
    (lambda: F.conv2d(X4, W4, np.zeros(5)), ShapeError,
     r"bias must have shape \(6,\).*got \(5,\)"),
    (lambda: F.conv2d(X4, np.zeros((0, 3, 3, 3))), ShapeError, r"zero-size dimension"),
    (lambda: F.conv2d(X4, np.zeros((6, 3, 0, 3))), ShapeError, r"zero-size dimension"),
    (lambda: F.conv2d(X4.astype(int), W4.astype(int)), TypeError, r"floating-point"),
    (lambda: F.conv2d(X4, "w"), TypeError, r"conv2d"),
])
def test_functional_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize("make,error,pattern", [
    (lambda: nn.Conv2d(3, 6, 3, groups=2), ValueError,
     r"Conv2d: in_channels=3 must be divisible by groups=2"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     r"out_channels=6 must be divisible by groups=4"),
    (lambda: nn.Conv2d(0, 6, 3), ValueError, r"in_channels must be positive"),
    (lambda: nn.Conv2d(1.5, 6, 3), TypeError, r"in_channels must be an int"),
    (lambda: nn.Conv2d(1, 6, 0), ValueError, r"kernel_size must be positive"),
    (lambda: nn.Conv2d(1, 6, (3, 3, 3)), ValueError, r"kernel_size must be an int or 2 ints"),
    (lambda: nn.Conv2d(1, 6, 3, stride=2, padding="same"), ValueError,
     r"Conv2d: padding='same' needs stride 1"),
    (lambda: nn.Conv2d(1, 6, 3, padding="half"), ValueError, r"'valid' or 'same'"),
    (lambda: nn.Conv2d(1, 6, 3, padding_mode="mirror"), ValueError,
     r"padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got 'mirror'"),
    (lambda: nn.Conv1d(1, 6, 3, dilation=-1), ValueError, r"Conv1d: dilation must be positive"),
])
def test_module_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_module_forward_errors_name_the_layer():
    with pytest.raises(ShapeError, match=r"Conv2d: input of shape \(1, 2, 5, 5\) has 2 "
                                         r"channels, but weight of shape \(4, 3, 3, 3\)"):
        nn.Conv2d(3, 4, 3)(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"Conv2d: padding_mode='reflect' with padding "
                                         r"\(3, 3\) needs an input of size more than 3"):
        nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(np.zeros((1, 1, 3, 5)))
    with pytest.raises(ShapeError, match=r"Conv1d: input must have shape"):
        nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")(np.zeros(5))
