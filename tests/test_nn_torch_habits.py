"""PyTorch habits on nn: the layers, nn.init, Module's methods, nn.functional and
nn.data.DataLoader, each against PyTorch with the same weights and inputs (where torch is
installed), plus finite differences and the errors."""

import math
import re
import warnings
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import autodiff
import nn
import nn.functional as F
from autodiff import Tensor, gradcheck
from autodiff.errors import ShapeError
from nn import optim
from nn.data import DataLoader, Dataset, TensorDataset, default_collate


def _torch():
    return pytest.importorskip("torch")


def _grad(t) -> np.ndarray:
    return np.asarray(t.grad)


# -- Flatten, Unflatten, Identity ------------------------------------------------------
FLATTEN_CASES = [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 0, -1), ((2, 3, 4, 5), 1, 2),
                 ((2, 3, 4, 5), -3, -2), ((2, 3, 4, 5), 2, 2), ((6, 0, 4), 1, -1),
                 ((5, 7), 1, -1), ((3,), 0, -1), ((2, 3, 4), -1, -1)]


@pytest.mark.parametrize("shape, start, end", FLATTEN_CASES)
def test_flatten_matches_torch(shape, start, end, rng):
    torch = _torch()
    x = rng.normal(size=shape)
    ours = nn.Flatten(start, end)(Tensor(x))
    theirs = torch.nn.Flatten(start, end)(torch.tensor(x))
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.data, theirs.numpy())
    assert repr(nn.Flatten(start, end)) == repr(torch.nn.Flatten(start, end))


@pytest.mark.parametrize("shape, dim, sizes", [((2, 12), 1, (3, 4)), ((2, 12), -1, [2, -1, 3]),
                                               ((12, 5), 0, (-1, 6)), ((2, 0, 3), 1, (4, 0)),
                                               ((4, 6, 2), 1, (6,))])
def test_unflatten_matches_torch(shape, dim, sizes, rng):
    torch = _torch()
    x = rng.normal(size=shape)
    ours = nn.Unflatten(dim, sizes)(Tensor(x))
    theirs = torch.nn.Unflatten(dim, sizes)(torch.tensor(x))
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.data, theirs.numpy())
    assert repr(nn.Unflatten(dim, sizes)) == repr(torch.nn.Unflatten(dim, sizes))


def test_flatten_and_unflatten_invert_each_other_and_pass_gradients(rng):
    x = Tensor(rng.normal(size=(2, 3, 4)), requires_grad=True)
    round_trip = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 4)))
    np.testing.assert_array_equal(round_trip(x).data, x.data)
    assert gradcheck(lambda t: nn.Flatten(0, 1)(t).tanh(), [x])
    assert gradcheck(lambda t: nn.Unflatten(2, (2, 2))(t) ** 2, [x])


def test_identity_returns_its_input_and_ignores_arguments():
    x = Tensor([1.0, 2.0], requires_grad=True)
    ident = nn.Identity(54, unused_argument1=0.1)
    assert ident(x) is x and list(ident.parameters()) == [] and repr(ident) == "Identity()"


@pytest.mark.parametrize("make, shape, err, match", [
    (lambda: nn.Flatten(3), (2, 3), IndexError, r"Flatten: start_dim=3 is out of range for a "
                                               r"tensor with 2 dimensions \(expected -2 to 1\)"),
    (lambda: nn.Flatten(0, -4), (2, 3, 4), IndexError, "end_dim=-4 is out of range"),
    (lambda: nn.Flatten(), (3,), IndexError, "start_dim=1 is out of range for a tensor with 1 "
                                             "dimension "),
    (lambda: nn.Flatten(2, 1), (2, 3, 4), ValueError, "start_dim=2 comes after end_dim=1"),
    (lambda: nn.Unflatten(1, (3, 5)), (2, 12), ShapeError, r"sizes \(3, 5\) do not multiply to "
                                                          r"12, the size of dim 1"),
    (lambda: nn.Unflatten(1, (-1, 5)), (2, 12), ShapeError, "do not multiply to 12"),
    (lambda: nn.Unflatten(1, (-1, 0)), (2, 0), ShapeError, "do not multiply to 0"),
    (lambda: nn.Unflatten(2, (2, 6)), (2, 12), IndexError, "Unflatten: dim=2 is out of range"),
])
def test_shape_layer_errors(make, shape, err, match):
    with pytest.raises(err, match=match):
        make()(Tensor(np.zeros(shape)))


@pytest.mark.parametrize("make, err, match", [
    (lambda: nn.Flatten(1.0), TypeError, "Flatten: start_dim must be an int, got 1.0"),
    (lambda: nn.Unflatten(1, 12), TypeError, "unflattened_size must be a tuple of ints, got int"),
    (lambda: nn.Unflatten(1, (3, 4.0)), TypeError, "entry 1 is 4.0"),
    (lambda: nn.Unflatten(1, (-1, -1)), ValueError, "only one size may be -1"),
    (lambda: nn.Unflatten(1, (3, -2)), ValueError, "invalid size -2"),
    (lambda: nn.Unflatten("x", (3, 4)), TypeError, "Unflatten: dim must be an int"),
])
def test_shape_layer_constructor_errors(make, err, match):
    with pytest.raises(err, match=match):
        make()


# -- Sequential and ModuleList as PyTorch's containers --------------------------------
def _keys_after(lib_nn, kind: str, edit):
    """Edit a container of Linear(1, 2) .. Linear(4, 5); its keys and layers after."""
    layers = [lib_nn.Linear(i + 1, i + 2) for i in range(4)]
    container = lib_nn.Sequential(*layers) if kind == "Sequential" else lib_nn.ModuleList(layers)
    edit(container, lib_nn)
    return list(container.state_dict()), [m.in_features for m in container]


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
@pytest.mark.parametrize("edit", [
    lambda c, n: c.__delitem__(1),
    lambda c, n: c.__delitem__(slice(0, 3, 2)),
    lambda c, n: c.insert(1, n.Linear(7, 1)),
    lambda c, n: c.insert(-1, n.Linear(7, 1)),
    lambda c, n: c.insert(4, n.Linear(7, 1)),
    lambda c, n: c.pop(-2),
    lambda c, n: c.__setitem__(-1, n.Linear(9, 1)),
    lambda c, n: c.extend([n.Linear(8, 1), n.Linear(6, 1)]),
    lambda c, n: c.append(n.Linear(5, 1)),
], ids=["del", "del-slice", "insert", "insert-negative", "insert-end", "pop", "setitem",
        "extend", "append"])
def test_container_edits_match_torch(kind, edit):
    torch = _torch()
    try:
        theirs = _keys_after(torch.nn, kind, edit)
    except KeyError:  # torch's ModuleList.insert fails on a negative index: ours is a list's
        assert kind == "ModuleList"
        theirs = _keys_after(torch.nn, "Sequential", edit)
    assert _keys_after(nn, kind, edit) == theirs


def test_sequential_slices_keep_names_and_index_errors():
    net = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU()),
                                     ("out", nn.Linear(3, 1))]))
    assert list(net[1:].state_dict()) == ["out.weight", "out.bias"]
    assert net[np.int64(-1)] is net.out
    with pytest.raises(IndexError, match="Sequential: index 3 is out of range for 3 modules"):
        net[3]
    with pytest.raises(TypeError, match="Sequential: indices must be ints or slices, got str"):
        net["fc"]
    with pytest.raises(IndexError, match="Sequential.insert: index 5 is out of range"):
        net.insert(5, nn.ReLU())
    with pytest.raises(TypeError, match="Sequential.insert: expected an nn.Module, got int"):
        net.insert(0, 3)


# -- Module: traversal, apply, train/eval, to, repr -----------------------------------
def _structure(lib_nn):
    """A net with a module shared by two parents and one registered twice in a parent."""
    shared = lib_nn.Linear(2, 2)
    inner = lib_nn.Sequential(shared, lib_nn.ReLU())
    net = lib_nn.Sequential(inner, shared, lib_nn.Flatten(),
                            lib_nn.Sequential(lib_nn.Identity(), lib_nn.Tanh()))
    net.add_module("again", inner)
    return net


def _visits(net, order):
    """Each visited module as (class name, its position in net.modules()): identity kept."""
    position = {id(m): i for i, m in enumerate(net.modules())}
    return [(type(m).__name__, position[id(m)]) for m in order]


def test_traversals_match_torch():
    torch = _torch()
    ours, theirs = _structure(nn), _structure(torch.nn)
    assert ([(n, type(m).__name__) for n, m in ours.named_modules()]
            == [(n, type(m).__name__) for n, m in theirs.named_modules()])
    assert ([(n, type(m).__name__) for n, m in ours.named_modules(remove_duplicate=False)]
            == [(n, type(m).__name__) for n, m in theirs.named_modules(remove_duplicate=False)])
    assert ([n for n, _ in ours.named_modules(prefix="model")]
            == [n for n, _ in theirs.named_modules(prefix="model")])
    assert _visits(ours, ours.modules()) == _visits(theirs, theirs.modules())
    assert ([n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()])
    assert _visits(ours, ours.children()) == _visits(theirs, theirs.children())
    for kw in ({}, {"recurse": False}, {"remove_duplicate": False}, {"prefix": "m"}):
        assert ([n for n, _ in ours.named_parameters(**kw)]
                == [n for n, _ in theirs.named_parameters(**kw)]), kw
    assert len(list(ours.parameters(recurse=False))) == 0


def test_apply_visits_children_first_as_torch():
    torch = _torch()
    ours, theirs = _structure(nn), _structure(torch.nn)
    seen_ours, seen_theirs = [], []
    assert ours.apply(seen_ours.append) is ours
    theirs.apply(seen_theirs.append)
    assert _visits(ours, seen_ours) == _visits(theirs, seen_theirs)
    assert seen_ours[-1] is ours  # self last


def test_apply_initialises_as_d2l_does():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def init_weights(m):
        if type(m) == nn.Linear:
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    autodiff.manual_seed(0)
    net.apply(init_weights)
    w = net[1].weight.data
    assert abs(w.std() - 0.01) < 0.0005 and abs(w.mean()) < 0.0005
    assert np.all(net[1].bias.data == 0)


def test_train_and_eval_reach_every_module_through_its_own_train():
    calls = []

    class Recording(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(Recording(), nn.ReLU()))
    assert net.eval() is net
    assert not any(m.training for m in net.modules()) and calls == [False]
    net.train()
    assert all(m.training for m in net.modules()) and calls == [False, True]
    with pytest.raises(ValueError, match="train: mode must be a bool, got 'no'"):
        net.train("no")


def test_to_dtype_keeps_parameters_and_converts_gradients():
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    params = list(net.parameters())
    net(np.ones((4, 3))).sum().backward()
    before = [p.data.copy() for p in params]
    opt = optim.SGD(net.parameters(), lr=0.1)
    assert net.to(np.float32) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    for p, old in zip(params, before):
        assert p.dtype == np.float32 and np.asarray(p.grad).dtype == np.float32
        np.testing.assert_array_equal(p.data, old.astype(np.float32))
    assert net(np.ones((4, 3), dtype=np.float32)).dtype == np.float32
    opt.step()  # the optimizer built before still updates the same Parameters
    assert not np.array_equal(params[0].data, before[0].astype(np.float32))
    assert net.double() is net and all(p.dtype == np.float64 for p in net.parameters())
    assert net.float() is net and all(p.dtype == np.float32 for p in net.parameters())
    net.to(Tensor(np.zeros(1)))  # a tensor's dtype
    assert all(p.dtype == np.float64 for p in net.parameters())
    net.to("cpu", dtype="float32", non_blocking=True)
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.to("cpu") is net and net.to(device=None) is net


def test_to_dtype_invalidates_a_graph_recorded_before():
    lin = nn.Linear(2, 1)
    out = lin(np.ones((1, 2))).sum()
    lin.double().float()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.backward()


def test_to_matches_torch_for_cpu_and_float():
    torch = _torch()
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ours.to("cpu").to(np.float32)
    theirs.to("cpu").to(torch.float32)
    assert [str(p.dtype) for p in ours.parameters()] == ["float32", "float32"]
    assert all(p.dtype == torch.float32 for p in theirs.parameters())


@pytest.mark.parametrize("args, kwargs, err, match", [
    (("cuda",), {}, RuntimeError, r"Module.to: device 'cuda' is not available; this library "
                                  r"computes on the CPU only"),
    (("mps",), {}, RuntimeError, "Module.to: device 'mps'"),
    ((), {"device": "cuda:0"}, RuntimeError, "device 'cuda:0'"),
    ((np.int64,), {}, TypeError, "Module.to: only floating-point dtypes can be given, got int64"),
    ((object(),), {}, TypeError, "Module.to: .* is neither a device nor a dtype"),
    (("cpu", np.float32, "x"), {}, TypeError, "Module.to: takes at most a device and a dtype"),
    ((), {"memory_format": 1}, TypeError, r"Module.to: unexpected keyword arguments "
                                          r"\['memory_format'\]"),
])
def test_to_errors(args, kwargs, err, match):
    lin = nn.Linear(2, 2)
    before = lin.weight.data
    with pytest.raises(err, match=match):
        lin.to(*args, **kwargs)
    assert lin.weight.data is before  # nothing converted


def test_to_accepts_a_device_object():
    torch = _torch()
    lin = nn.Linear(2, 2)
    assert lin.to(torch.device("cpu")) is lin
    with pytest.raises(RuntimeError, match="device 'meta'"):
        lin.to(torch.device("meta"))


def test_requires_grad_freezes_and_unfreezes():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    assert net[0].requires_grad_(False) is net[0]
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True]
    net(np.ones((3, 2))).sum().backward()
    assert net[0].weight.grad is None and net[1].weight.grad is not None
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())


def test_add_module_registers_and_refuses_bad_names():
    m = nn.Module()
    m.add_module("fc", nn.Linear(2, 2))
    m.register_module("act", nn.ReLU())
    assert [n for n, _ in m.named_children()] == ["fc", "act"]
    with pytest.raises(KeyError, match="without '.'"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match="add_module: int is not an nn.Module"):
        m.add_module("x", 3)
    with pytest.raises(KeyError, match="attribute 'training' already exists"):
        m.add_module("training", nn.ReLU())


class _QuickstartNet:
    """PyTorch's quickstart model, for either library."""

    @staticmethod
    def build(lib_nn):
        class NeuralNetwork(lib_nn.Module):
            def __init__(self):
                super().__init__()
                self.flatten = lib_nn.Flatten()
                self.linear_relu_stack = lib_nn.Sequential(
                    lib_nn.Linear(28 * 28, 512), lib_nn.ReLU(),
                    lib_nn.Linear(512, 512), lib_nn.ReLU(),
                    lib_nn.Linear(512, 10))

            def forward(self, x):
                return self.linear_relu_stack(self.flatten(x))

        return NeuralNetwork()


def test_repr_matches_torch():
    torch = _torch()
    assert repr(_QuickstartNet.build(nn)) == repr(_QuickstartNet.build(torch.nn))

    class Both(nn.Module):  # an extra_repr next to children: each on its own line
        def __init__(self, lib_nn):
            super().__init__()
            self.fc = lib_nn.Linear(2, 2)

        def extra_repr(self):
            return "scale=2\nshift=1"

    class TorchBoth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def extra_repr(self):
            return "scale=2\nshift=1"

    assert repr(Both(nn)).replace("Both", "X") == repr(TorchBoth()).replace("TorchBoth", "X")


# -- nn.init ---------------------------------------------------------------------------
GAINS = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
         ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3),
         ("selu", None), ("conv_transpose3d", None)]


@pytest.mark.parametrize("name, param", GAINS)
def test_calculate_gain_equals_torch(name, param):
    torch = _torch()
    assert nn.init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)


SHAPES = [(5, 3), (7, 4, 3), (8, 4, 3, 3), (2, 6, 1, 2, 3), (1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_equal_torch(shape):
    torch = _torch()
    ours = nn.init._calculate_fan_in_and_fan_out(Tensor(np.zeros(shape)))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))


def _expected(name, shape, kw, torch):
    """PyTorch's bound (uniform) or std (normal) from its own gain and fans."""
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))
    if name.startswith("xavier"):
        std = kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = fan_in if kw.get("mode", "fan_in") == "fan_in" else fan_out
        gain = torch.nn.init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0))
        std = gain / math.sqrt(fan)
    return std


INITS = [("xavier_uniform_", {}), ("xavier_uniform_", {"gain": 2.5}),
         ("xavier_normal_", {"gain": 0.5}), ("kaiming_uniform_", {}),
         ("kaiming_uniform_", {"a": math.sqrt(5)}),
         ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
         ("kaiming_normal_", {"nonlinearity": "tanh"}),
         ("kaiming_normal_", {"a": 0.1, "mode": "fan_out"})]


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
@pytest.mark.parametrize("name, kw", INITS)
def test_init_distributions_match_torch(name, kw, shape):
    torch = _torch()
    std = _expected(name, shape, kw, torch)
    autodiff.manual_seed(1)
    w = nn.Parameter(np.zeros(shape))
    assert getattr(nn.init, name)(w, **kw) is w
    theirs = getattr(torch.nn.init, name)(torch.zeros(shape), **kw).numpy()
    for sample in (w.data, theirs):  # both libraries' samples, by their moments
        assert abs(sample.mean()) < 4 * std / math.sqrt(sample.size)
        assert abs(sample.std() / std - 1) < 0.02
        if name.endswith("uniform_"):
            bound = math.sqrt(3) * std
            assert np.abs(sample).max() <= bound and np.abs(sample).max() > 0.999 * bound


def test_kaiming_uniform_with_sqrt5_is_linears_default_bound():
    w = nn.Parameter(np.zeros((50, 30)))
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = 1 / math.sqrt(30)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound


def test_simple_inits_and_moments():
    autodiff.manual_seed(2)
    w = nn.Parameter(np.zeros((400, 500)))
    nn.init.normal_(w, mean=1.5, std=0.3)
    assert abs(w.data.mean() - 1.5) < 0.002 and abs(w.data.std() - 0.3) < 0.002
    nn.init.uniform_(w, -2.0, 4.0)
    assert w.data.min() >= -2 and w.data.max() < 4 and abs(w.data.mean() - 1) < 0.01
    assert abs(w.data.var() - 36 / 12) < 0.02
    for fn, value in ((nn.init.zeros_, 0.0), (nn.init.ones_, 1.0),
                      (lambda t: nn.init.constant_(t, -0.25), -0.25)):
        assert fn(w) is w and np.all(w.data == value)


def test_inits_follow_manual_seed_and_generator():
    w = nn.Parameter(np.zeros((4, 5), dtype=np.float32))
    autodiff.manual_seed(7)
    a = nn.init.xavier_normal_(w).data.copy()
    autodiff.manual_seed(7)
    assert np.array_equal(a, nn.init.xavier_normal_(w).data) and w.dtype == np.float32
    b = nn.init.kaiming_uniform_(w, generator=np.random.default_rng(3)).data.copy()
    c = nn.init.kaiming_uniform_(w, generator=np.random.default_rng(3)).data
    assert np.array_equal(b, c)


def test_inits_bump_the_version_so_a_saved_graph_refuses_to_backward():
    for init in (nn.init.normal_, nn.init.zeros_, nn.init.xavier_uniform_,
                 lambda t: nn.init.normal_(t, generator=np.random.default_rng(0))):
        w = nn.Parameter(np.ones((2, 2)))
        loss = (w * w).sum()
        init(w)
        with pytest.raises(RuntimeError, match="modified by an in-place operation"):
            loss.backward()


def test_init_on_a_zero_element_tensor_warns_and_returns_it():
    w = nn.Parameter(np.zeros((0, 3)))
    with pytest.warns(UserWarning, match="zero-element tensor is a no-op"):
        assert nn.init.kaiming_normal_(w) is w


@pytest.mark.parametrize("call, err, match", [
    (lambda: nn.init.calculate_gain("softplus"), ValueError, "unsupported nonlinearity 'softplus'"),
    (lambda: nn.init.calculate_gain("leaky_relu", True), ValueError, "negative_slope True"),
    (lambda: nn.init.xavier_uniform_(Tensor(np.zeros(4))), ValueError,
     r"fewer than 2 dimensions \(shape \(4,\)\)"),
    (lambda: nn.init.kaiming_normal_(Tensor(np.zeros((2, 2))), mode="fan"), ValueError,
     "mode 'fan' is not supported"),
    (lambda: nn.init.normal_(np.zeros(3)), TypeError, "nn.init.normal_: expected a Tensor, got "
                                                      "ndarray"),
    (lambda: nn.init.normal_(Tensor(np.zeros(3)), std=-1), ValueError, "std must be >= 0"),
    (lambda: nn.init.uniform_(Tensor(np.zeros(3)), 1, 0), ValueError, "needs a <= b"),
    (lambda: nn.init.uniform_(Tensor(np.zeros(3, dtype=np.int64))), TypeError,
     "floating-point tensor, got dtype int64"),
    (lambda: nn.init.normal_(Tensor(np.zeros(3)), generator=0), TypeError,
     "generator must be a numpy Generator"),
])
def test_init_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


# -- nn.functional against torch (float64, values and gradients) -----------------------
def _compare(ours_fn, torch_fn, arrays, *, grad_of=None, atol=1e-10):
    """ours_fn(*Tensors) and torch_fn(*torch tensors): values, then the gradients of
    sum(v * out) for a fixed v, w.r.t. the inputs listed in grad_of (indices)."""
    torch = _torch()
    grad_of = range(len(arrays)) if grad_of is None else grad_of
    ours = [Tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    out, expected = ours_fn(*ours), torch_fn(*theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=0, atol=atol)
    v = np.random.default_rng(5).normal(size=out.shape)
    (out * v).sum().backward()
    (expected * torch.tensor(v)).sum().backward()
    for i in grad_of:
        np.testing.assert_allclose(_grad(ours[i]), theirs[i].grad.numpy(), rtol=0, atol=atol)


def test_activations_match_torch(rng):
    torch = _torch()
    tF = torch.nn.functional
    x = rng.normal(size=(4, 5)) * 3
    for ours, theirs in ((F.relu, tF.relu), (F.sigmoid, tF.sigmoid), (F.tanh, tF.tanh)):
        _compare(ours, theirs, [x])
    for dim in (0, 1, -1):
        _compare(lambda t: F.softmax(t, dim=dim), lambda t: tF.softmax(t, dim=dim), [x])
        _compare(lambda t: F.log_softmax(t, dim), lambda t: tF.log_softmax(t, dim), [x])
    _compare(lambda t: F.softmax(t, dim=1, dtype=np.float64),
             lambda t: tF.softmax(t, dim=1, dtype=torch.float64), [x])


def test_softmax_without_dim_warns_and_picks_torchs_dim(rng):
    torch = _torch()
    for shape in ((4,), (3, 4), (2, 3, 4), (2, 3, 4, 5)):
        x = rng.normal(size=shape)
        with pytest.warns(UserWarning, match="implicit dimension choice"):
            ours = F.softmax(Tensor(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = torch.nn.functional.softmax(torch.tensor(x), dim=None)
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-14)


def test_linear_matches_torch(rng):
    torch = _torch()
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    for shape in ((5, 4), (4,), (2, 5, 4)):
        x = rng.normal(size=shape)
        _compare(F.linear, torch.nn.functional.linear, [x, w, b])
        _compare(F.linear, torch.nn.functional.linear, [x, w])


CE_CASES = [
    ({}, "labels"), ({"reduction": "sum"}, "labels"), ({"reduction": "none"}, "labels"),
    ({"weight": [0.2, 1.0, 3.0]}, "labels"), ({"ignore_index": 1}, "labels"),
    ({"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5]}, "labels"),
    ({"reduction": "none", "ignore_index": 2}, "labels"),
    ({}, "probabilities"), ({"reduction": "none", "label_smoothing": 0.2}, "probabilities"),
]


@pytest.mark.parametrize("shape", [(6, 3), (3,), (4, 3, 2, 2)])
@pytest.mark.parametrize("kw, kind", CE_CASES)
def test_cross_entropy_matches_torch(kw, kind, shape, rng):
    torch = _torch()
    x = rng.normal(size=shape)
    c = shape[0] if len(shape) == 1 else shape[1]
    if kind == "labels":
        label_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
        target = rng.integers(0, c, size=label_shape)
        target.flat[0] = 0  # (some labels are kept when one class is ignored)
    else:
        rows = rng.dirichlet(np.ones(c), size=int(np.prod(shape)) // c)  # (rows, c)
        target = rows.reshape(shape) if len(shape) <= 2 else np.moveaxis(
            rows.reshape((shape[0],) + shape[2:] + (c,)), -1, 1)
    tkw = dict(kw)
    if "weight" in kw:
        tkw["weight"] = torch.tensor(kw["weight"], dtype=torch.float64)
    _compare(lambda t: F.cross_entropy(t, target, **kw),
             lambda t: torch.nn.functional.cross_entropy(t, torch.tensor(target), **tkw), [x])


@pytest.mark.parametrize("shape", [(6, 4), (4,), (3, 4, 5)])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                {"weight": [0.5, 1.0, 2.0, 4.0]}, {"ignore_index": 3},
                                {"weight": [0.5, 1.0, 2.0, 4.0], "ignore_index": 0,
                                 "reduction": "none"}])
def test_nll_loss_matches_torch(kw, shape, rng):
    torch = _torch()
    rows = np.log(rng.dirichlet(np.ones(4), size=int(np.prod(shape)) // 4))  # (rows, 4)
    x = rows.reshape(shape) if len(shape) <= 2 else np.moveaxis(
        rows.reshape((shape[0],) + shape[2:] + (4,)), -1, 1)
    target = rng.integers(0, 4, size=() if len(shape) == 1 else shape[:1] + shape[2:])
    target.flat[0] = 1
    tkw = dict(kw)
    if "weight" in kw:
        tkw["weight"] = torch.tensor(kw["weight"], dtype=torch.float64)
    _compare(lambda t: F.nll_loss(t, target, **kw),
             lambda t: torch.nn.functional.nll_loss(t, torch.tensor(target), **tkw), [x])


def test_nll_loss_ignores_rows_even_at_minus_infinity():
    torch = _torch()
    x = np.array([[-np.inf, 0.0], [np.log(0.3), np.log(0.7)], [np.log(0.5), np.log(0.5)]])
    y = np.array([0, 1, 0])
    for reduction in ("mean", "sum", "none"):
        ours = Tensor(x, requires_grad=True)
        theirs = torch.tensor(x, requires_grad=True)
        a = F.nll_loss(ours, y, ignore_index=0, reduction=reduction)
        b = torch.nn.functional.nll_loss(theirs, torch.tensor(y), ignore_index=0,
                                         reduction=reduction)
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-14)
        a.sum().backward()
        b.sum().backward()
        np.testing.assert_array_equal(_grad(ours), theirs.grad.numpy())
    all_ignored = F.nll_loss(Tensor(x), np.array([0, 0, 0]), ignore_index=0)
    assert np.isnan(all_ignored.item())  # torch: nan too
    assert np.isnan(torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor([0, 0, 0]),
                                                 ignore_index=0).item())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_and_binary_losses_match_torch(reduction, rng):
    torch = _torch()
    tF = torch.nn.functional
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    _compare(lambda a: F.mse_loss(a, t, reduction=reduction),
             lambda a: tF.mse_loss(a, torch.tensor(t), reduction=reduction), [x])
    p, y = rng.uniform(0.05, 0.95, size=(5, 3)), rng.uniform(size=(5, 3))
    w = rng.uniform(0.5, 2, size=(3,))
    _compare(lambda a: F.binary_cross_entropy(a, y, reduction=reduction),
             lambda a: tF.binary_cross_entropy(a, torch.tensor(y), reduction=reduction), [p])
    _compare(lambda a: F.binary_cross_entropy(a, y, w, reduction=reduction),
             lambda a: tF.binary_cross_entropy(a, torch.tensor(y), torch.tensor(w),
                                               reduction=reduction), [p])
    logits = rng.normal(size=(5, 3)) * 4
    for kw in ({}, {"weight": w}, {"pos_weight": w * 3}, {"weight": w[None, :] * np.ones((5, 1)),
                                                          "pos_weight": w}):
        tkw = {k: torch.tensor(v) for k, v in kw.items()}
        _compare(lambda a: F.binary_cross_entropy_with_logits(a, y, reduction=reduction, **kw),
                 lambda a: tF.binary_cross_entropy_with_logits(a, torch.tensor(y),
                                                               reduction=reduction, **tkw),
                 [logits])


FUNCTIONAL_GRADCHECKS = [
    ("relu", lambda x: F.relu(x)), ("sigmoid", F.sigmoid), ("tanh", F.tanh),
    ("softmax", lambda x: F.softmax(x, dim=0)), ("log_softmax", lambda x: F.log_softmax(x, 1)),
    ("cross_entropy", lambda x: F.cross_entropy(x, [0, 2, 1, 1], label_smoothing=0.1)),
    ("cross_entropy_none", lambda x: F.cross_entropy(x, [0, 2, 1, 1], reduction="none")),
    ("nll_loss", lambda x: F.nll_loss(x, [0, 2, 1, 1], [1.0, 2.0, 0.5], ignore_index=2)),
    ("mse_loss", lambda x: F.mse_loss(x, np.ones((4, 3)))),
    ("bce", lambda x: F.binary_cross_entropy(x.sigmoid(), np.full((4, 3), 0.3), [1.0, 2.0, 3.0])),
    ("bce_logits", lambda x: F.binary_cross_entropy_with_logits(
        x, np.full((4, 3), 0.3), pos_weight=[1.0, 2.0, 3.0], reduction="sum")),
    ("linear", lambda x: F.linear(x, Tensor(np.arange(6.0).reshape(2, 3) / 5), [0.5, -1.0])),
    ("dropout", lambda x: F.dropout(x, 0.4, training=False) * F.dropout(x, 0.0)),
]


@pytest.mark.parametrize("name, fn", FUNCTIONAL_GRADCHECKS,
                         ids=[n for n, _ in FUNCTIONAL_GRADCHECKS])
def test_functional_gradcheck(name, fn, rng):
    x = Tensor(rng.normal(size=(4, 3)) + 0.05, requires_grad=True)  # (away from relu's kink)
    assert gradcheck(fn, [x])


def test_dropout_training_statistics_and_gradient():
    autodiff.manual_seed(3)
    x = Tensor(np.full((200, 300), 2.0), requires_grad=True)
    out = F.dropout(x, p=0.3)
    kept = out.data != 0
    assert set(np.unique(out.data)) == {0.0, 2.0 / 0.7}
    assert abs(kept.mean() - 0.7) < 0.01 and abs(out.data.mean() - 2.0) < 0.03
    out.sum().backward()
    np.testing.assert_array_equal(_grad(x), kept / 0.7)  # the same mask, scaled
    autodiff.manual_seed(3)
    assert np.array_equal(F.dropout(x, p=0.3).data, out.data)  # from the seeded generator


def test_dropout_edge_cases_match_torch():
    torch = _torch()
    x = np.random.default_rng(0).normal(size=(3, 4))
    t = Tensor(x)
    assert F.dropout(t, 0.5, training=False) is t and F.dropout(t, 0.0) is t
    assert torch.nn.functional.dropout(torch.tensor(x), 0.0) is not None
    np.testing.assert_array_equal(F.dropout(t, 1.0).data,
                                  torch.nn.functional.dropout(torch.tensor(x), 1.0).numpy())
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="dropout: p is the probability"):
            F.dropout(t, bad)
    with pytest.raises(ValueError):
        torch.nn.functional.dropout(torch.tensor(x), 1.5)
    with pytest.raises(TypeError, match="dropout: needs a floating-point tensor"):
        F.dropout(Tensor(np.ones(3, dtype=np.int64)), 0.5)


def test_inplace_variants_change_the_tensor_and_refuse_a_graph():
    x = Tensor(np.array([-1.0, 2.0]))
    assert F.relu(x, inplace=True) is x and np.array_equal(x.data, [0.0, 2.0])
    y = Tensor(np.ones(4))
    autodiff.manual_seed(0)
    assert F.dropout(y, 0.5, inplace=True) is y and set(np.unique(y.data)) <= {0.0, 2.0}
    leaf = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"relu\(inplace=True\): .*leaf tensor"):
        F.relu(leaf, inplace=True)


@pytest.mark.parametrize("call, err, match", [
    (lambda: F.cross_entropy(Tensor(np.zeros((2, 3))), [0, 3]), IndexError, "label 3"),
    (lambda: F.cross_entropy(Tensor(np.zeros((2, 3, 4))), np.zeros((2, 3), dtype=int)),
     ShapeError, r"cross_entropy: input of shape \(2, 3, 4\) needs labels of shape \(2, 4\)"),
    (lambda: F.cross_entropy(Tensor(np.zeros((2, 3))), [0, 1], reduction="avg"), ValueError,
     "reduction must be one of"),
    (lambda: F.nll_loss(Tensor(np.zeros((2, 3))), [0, 3]), IndexError,
     r"nll_loss: label 3 \(sample 1\) is outside \[0, 3\)"),
    (lambda: F.nll_loss(Tensor(np.zeros((2, 3))), np.array([0.0, 1.0])), TypeError,
     "nll_loss: labels must be integers"),
    (lambda: F.nll_loss(Tensor(np.zeros((2, 3))), [0, 1, 2]), ShapeError,
     r"nll_loss: input of shape \(2, 3\) needs labels of shape \(2,\)"),
    (lambda: F.nll_loss(Tensor(np.zeros((2, 3))), [0, 1], [1.0, 2.0]), ShapeError,
     "nll_loss: weight has shape"),
    (lambda: F.nll_loss(Tensor(np.zeros((2, 3))), [0, 1], reduction="mean "), ValueError,
     "nll_loss: reduction must be one of"),
    (lambda: F.mse_loss(Tensor(np.zeros((2, 3))), np.zeros((3, 2))), ShapeError,
     "MSELoss: input has shape"),
    (lambda: F.binary_cross_entropy(Tensor(np.full(3, 0.5)), np.ones(3), np.ones(2)),
     ShapeError, r"binary_cross_entropy: weight of shape \(2,\) does not broadcast"),
    (lambda: F.binary_cross_entropy_with_logits(Tensor(np.zeros((2, 3))), np.ones((2, 3)),
                                                pos_weight=np.ones(2)), ShapeError,
     "pos_weight of shape"),
    (lambda: F.linear(Tensor(np.zeros((2, 3))), Tensor(np.zeros((4, 2)))), ShapeError,
     r"linear: input of shape \(2, 3\) does not fit a weight of shape \(4, 2\)"),
    (lambda: F.linear(Tensor(np.zeros((2, 3))), Tensor(np.zeros((4, 3))), np.zeros(3)),
     ShapeError, r"linear: bias of shape \(3,\)"),
    (lambda: F.softmax(Tensor(np.zeros((2, 3))), dim=2), ShapeError, "softmax"),
    (lambda: F.relu("x"), TypeError, "relu: expected a Tensor or an array, got str"),
])
def test_functional_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


# -- nn.data: TensorDataset and DataLoader against torch ------------------------------
def _torch_batches(torch, dataset, **kw):
    return [[np.asarray(f) for f in b] if isinstance(b, list) else np.asarray(b)
            for b in torch.utils.data.DataLoader(dataset, **kw)]


def _our_batches(dataset, **kw):
    return [[f.data for f in b] if isinstance(b, list) else b.data
            for b in DataLoader(dataset, **kw)]


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        if isinstance(x, list):
            assert len(x) == len(y)
            for f, g in zip(x, y):
                assert f.dtype == g.dtype and f.shape == g.shape
                np.testing.assert_array_equal(f, g)
        else:
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 1, False), (10, 3, False),
                                                      (10, 3, True), (10, 10, True),
                                                      (10, 4, True), (3, 5, False),
                                                      (3, 5, True), (0, 2, False)])
def test_tensor_dataset_batches_equal_torchs(n, batch_size, drop_last, rng):
    torch = _torch()
    X = rng.normal(size=(n, 2, 3)).astype(np.float32)
    y = rng.integers(0, 5, size=n)
    ours = TensorDataset(Tensor(X), Tensor(y))
    theirs = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
    kw = {"batch_size": batch_size, "drop_last": drop_last}
    assert len(DataLoader(ours, **kw)) == len(torch.utils.data.DataLoader(theirs, **kw))
    _same_batches(_our_batches(ours, **kw), _torch_batches(torch, theirs, **kw))
    assert len(ours) == len(theirs) == n
    if n:
        assert isinstance(ours[0], tuple) and len(ours[0]) == 2
        np.testing.assert_array_equal(ours[-1][0].data, theirs[-1][0].numpy())


class _Pairs(Dataset):
    """A map-style dataset of (features array, int label) samples, as tutorials write."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], int(self.y[i])


@pytest.mark.parametrize("make", [
    lambda X, y: _Pairs(X, y),
    lambda X, y: [(float(a[0]), int(b)) for a, b in zip(X, y)],
    lambda X, y: [{"x": a, "label": np.int32(b)} for a, b in zip(X, y)],
    lambda X, y: [[a.astype(np.float32), bool(b % 2)] for a, b in zip(X, y)],
    lambda X, y: X,
    lambda X, y: y,
], ids=["dataset-subclass", "python-numbers", "dicts", "lists", "array-2d", "array-1d"])
def test_default_collate_batches_equal_torchs(make, rng):
    torch = _torch()
    X, y = rng.normal(size=(7, 3)), rng.integers(0, 4, size=7)
    data = make(X, y)
    theirs = list(torch.utils.data.DataLoader(data, batch_size=3))
    ours = list(DataLoader(data, batch_size=3))
    assert len(ours) == len(theirs) == 3

    def numpy(b):
        if isinstance(b, dict):
            return {k: numpy(v) for k, v in b.items()}
        if isinstance(b, list):
            return [numpy(v) for v in b]
        return np.asarray(b.data if isinstance(b, Tensor) else b)

    for a, b in zip(ours, theirs):
        assert type(a) is type(b) or (isinstance(a, Tensor) and isinstance(b, torch.Tensor))
        a, b = numpy(a), numpy(b)
        flat_a = list(a.values()) if isinstance(a, dict) else a if isinstance(a, list) else [a]
        flat_b = list(b.values()) if isinstance(b, dict) else b if isinstance(b, list) else [b]
        for f, g in zip(flat_a, flat_b):
            assert f.dtype == g.dtype and f.shape == g.shape
            np.testing.assert_array_equal(f, g)


def test_default_collate_keeps_namedtuples_strings_and_graphs():
    Sample = namedtuple("Sample", "x name")
    batch = default_collate([Sample(1.5, "a"), Sample(2.5, "b")])
    assert type(batch) is Sample and batch.name == ["a", "b"]
    assert batch.x.dtype == np.float64 and batch.x.data.tolist() == [1.5, 2.5]
    w = Tensor(np.ones(2), requires_grad=True)
    stacked = default_collate([w * 2, w * 3])
    stacked.sum().backward()
    np.testing.assert_array_equal(_grad(w), [5.0, 5.0])


@pytest.mark.parametrize("batch, err, match", [
    ([np.zeros(2), np.zeros(3)], RuntimeError, r"cannot stack samples of different shapes "
                                               r"\[\(2,\), \(3,\)\]"),
    ([Tensor(np.zeros(2)), Tensor(np.zeros(3))], RuntimeError, "different shapes"),
    ([(1, 2), (3,)], RuntimeError, "different numbers of fields"),
    ([None, None], TypeError, "found NoneType"),
    ([np.array(["a"]), np.array(["b"])], TypeError, "arrays must be numeric"),
])
def test_default_collate_errors(batch, err, match):
    with pytest.raises(err, match="default_collate: .*" + match):
        default_collate(batch)


def test_shuffle_gives_each_epoch_a_new_permutation_of_the_same_samples(rng):
    torch = _torch()
    X = rng.normal(size=(23, 2))
    y = np.arange(23)
    ours = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True)
    theirs = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y)), batch_size=5,
        shuffle=True)
    assert ours.dataset.tensors[0].shape == (23, 2) and ours.batch_size == 5
    epochs = []
    for _ in range(3):
        ob, tb = list(ours), list(theirs)
        assert [len(b[1]) for b in ob] == [len(b[1]) for b in tb] == [5, 5, 5, 5, 3]
        mine = {(tuple(xr), int(yr)) for xb, yb in ob for xr, yr in zip(xb.data, yb.data)}
        torch_set = {(tuple(xr), int(yr)) for xb, yb in tb
                     for xr, yr in zip(xb.numpy(), yb.numpy())}
        assert mine == torch_set and len(mine) == 23
        order = np.concatenate([yb.data for _, yb in ob])
        for xb, yb in ob:  # features travel with their labels
            np.testing.assert_array_equal(xb.data, X[yb.data])
        epochs.append(order.tolist())
    assert len({tuple(e) for e in epochs}) == 3  # reshuffled every pass


def test_fast_and_general_paths_give_the_same_batches(rng):
    X, y = rng.normal(size=(11, 3)).astype(np.float32), rng.integers(0, 3, size=11)

    class Rows(Dataset):  # the same samples, fetched one by one
        def __len__(self):
            return 11

        def __getitem__(self, i):
            return Tensor(X[i]), Tensor(np.asarray(y[i]))

    for shuffle in (False, True):
        autodiff.manual_seed(9)
        fast = list(DataLoader(TensorDataset(X, y), batch_size=4, shuffle=shuffle))
        autodiff.manual_seed(9)
        general = list(DataLoader(Rows(), batch_size=4, shuffle=shuffle))
        _same_batches([[f.data for f in b] for b in fast], [[f.data for f in b] for b in general])


def test_dataloader_collate_fn_and_num_workers():
    loader = DataLoader(list(range(7)), batch_size=3, collate_fn=lambda b: sum(b),
                        num_workers=2)
    assert list(loader) == [3, 12, 6] and len(loader) == 3


def test_loader_batch_is_a_copy_not_a_view_of_the_dataset():
    X = np.zeros((4, 2))
    xb, _ = next(iter(DataLoader(TensorDataset(X, np.arange(4)), batch_size=2)))
    xb.data[...] = 5
    assert np.all(X == 0)


@pytest.mark.parametrize("kwargs, err, match", [
    ({"batch_size": 0}, ValueError, "DataLoader: batch_size must be a positive int, got 0"),
    ({"batch_size": 2.0}, ValueError, "DataLoader: batch_size must be a positive int, got 2.0"),
    ({"batch_size": True}, ValueError, "batch_size must be a positive int, got True"),
    ({"batch_size": None}, ValueError, "batch_size=None"),
    ({"num_workers": -1}, ValueError, "DataLoader: num_workers"),
    ({"collate_fn": 3}, TypeError, "DataLoader: collate_fn must be callable"),
    ({"generator": 3}, TypeError, "DataLoader: generator must be a numpy Generator"),
])
def test_dataloader_argument_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        DataLoader(TensorDataset(np.zeros(4)), **kwargs)


def test_dataloader_and_dataset_errors():
    with pytest.raises(TypeError, match="DataLoader: the dataset must be map-style, with "
                                        "__len__ and __getitem__; got generator"):
        DataLoader(x for x in range(3))
    with pytest.raises(ValueError, match=re.escape("TensorDataset: the tensors' first "
                                                   "dimensions differ: shapes [(3,), (4, 2)]")):
        TensorDataset(np.zeros(3), Tensor(np.zeros((4, 2))))
    with pytest.raises(ValueError, match="TensorDataset: tensor 0 is 0-d"):
        TensorDataset(np.float64(1.0))
    with pytest.raises(TypeError, match="TensorDataset: tensor 1 must be numeric"):
        TensorDataset(np.zeros(2), np.array(["a", "b"]))
    with pytest.raises(NotImplementedError, match="_Empty must define __getitem__"):
        type("_Empty", (Dataset,), {})()[0]


# -- the tutorials' loops, ported by changing imports ---------------------------------
def _softmax_regression(lib_nn, lib_optim, loader, init_state, epochs=3):
    """d2l's concise softmax regression (its train_epoch_ch3 loop) for either library."""
    net = lib_nn.Sequential(lib_nn.Flatten(), lib_nn.Linear(16, 3)).double()
    net.load_state_dict(init_state)
    loss = lib_nn.CrossEntropyLoss(reduction="none")
    trainer = lib_optim.SGD(net.parameters(), lr=0.1)
    history = []
    for _ in range(epochs):
        net.train()
        total = 0.0
        for X, y in loader:
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741  (d2l's name)
            trainer.zero_grad()
            l.mean().backward()
            trainer.step()
            total += float(l.sum())
        history.append(total)
    net.eval()
    return history, net


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # torch's, on d2l
def test_d2l_softmax_regression_runs_and_equals_torch(rng):
    torch = _torch()
    X = rng.normal(size=(60, 1, 4, 4))
    y = (X.reshape(60, 16)[:, :3].argmax(axis=1)).astype(np.int64)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

    def init_weights(m):
        if type(m) == nn.Linear:
            nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    state = net.state_dict()
    ours, our_net = _softmax_regression(
        nn, optim, DataLoader(TensorDataset(X, y), batch_size=16), state)
    theirs, their_net = _softmax_regression(
        torch.nn, torch.optim,
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
            torch.tensor(X), torch.tensor(y)), batch_size=16),
        {k: torch.tensor(v) for k, v in state.items()})
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[-1] < ours[0]
    for (name, p), (name2, q) in zip(our_net.state_dict().items(),
                                     their_net.state_dict().items()):
        assert name == name2
        np.testing.assert_allclose(p, q.numpy(), rtol=1e-11, atol=1e-13)


def test_quickstart_loop_runs(rng):
    autodiff.manual_seed(0)
    y = rng.integers(0, 2, size=64)
    X = rng.uniform(size=(64, 28, 28))
    X[:, :14] += 0.5 * y[:, None, None]  # class 1: a brighter top half
    train_dataloader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)
    device = "cpu"
    model = _QuickstartNet.build(nn).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=1e-1)
    size = len(train_dataloader.dataset)
    losses = []
    for _ in range(4):
        model.train()
        for batch, (xb, yb) in enumerate(train_dataloader):
            pred = model(xb)
            loss = loss_fn(pred, yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            assert batch * 16 + len(xb) <= size
    model.eval()
    with autodiff.no_grad():
        correct = sum(float((model(xb).data.argmax(1) == yb.data).sum())
                      for xb, yb in DataLoader(TensorDataset(X, y), batch_size=64))
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) and correct / size > 0.6


def test_layers_follow_the_default_dtype_as_in_pytorch():
    import autodiff
    autodiff.set_default_dtype(autodiff.float32)
    try:
        lin, act = nn.Linear(3, 2), nn.Tanh(learnable=True)
        assert lin.weight.dtype == lin.bias.dtype == act.h.dtype == np.float32
        assert lin(autodiff.ones(4, 3)).dtype == np.float32
        assert nn.Linear(3, 2, dtype=autodiff.float64).weight.dtype == np.float64
    finally:
        autodiff.set_default_dtype(autodiff.float64)
    assert nn.Linear(3, 2).weight.dtype == np.float64
    with pytest.raises(RuntimeError, match="Linear: device 'cuda' is not available"):
        nn.Linear(3, 2, device="cuda")
