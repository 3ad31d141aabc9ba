"""Module, Parameter, Linear and Sequential: registration, state dicts, shapes, init."""

import re

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor, Value, gradcheck
from autodiff.errors import ShapeError
from nn.functional import linear


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Sigmoid(h=2.0, learnable=True)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_registration_order_and_names():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "act.h", "fc2.weight", "fc2.bias"]
    assert len(list(m.parameters())) == 5
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())


def test_reassignment_and_deletion_update_the_registry():
    m = TwoLayer()
    m.fc2 = None
    assert "fc2.weight" not in dict(m.named_parameters())
    del m.act
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias"]


def test_subclass_without_super_init_still_registers():
    class Lazy(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

        def forward(self, x):
            return x * self.w

    assert list(Lazy().state_dict()) == ["w"]


def test_shared_parameter_is_listed_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, shared)
    assert len(list(net.parameters())) == 2


def test_forward_backward_and_zero_grad():
    m = TwoLayer()
    m(np.ones((5, 3))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_zero_grad_resets_values_to_zero():
    class Scalars(nn.Module):
        def __init__(self):
            super().__init__()
            self.v = Value(1.0)

        def parameters(self):
            return [self.v]

    s = Scalars()
    (s.v * 3).backward()
    assert s.v.grad == 3.0
    s.zero_grad()
    assert s.v.grad == 0.0


def test_train_eval_flags():
    m = TwoLayer()
    assert m.eval() is m and not m.training and not m.fc1.training
    m.train()
    assert m.training and m.fc2.training


def test_state_dict_is_a_copy_and_round_trips():
    a, b = TwoLayer(), TwoLayer()
    sd = a.state_dict()
    sd["fc1.weight"][...] = 0
    assert not np.all(a.fc1.weight.data == 0)
    b.load_state_dict(a.state_dict())
    for (n1, p1), (n2, p2) in zip(a.named_parameters(), b.named_parameters()):
        assert n1 == n2 and np.array_equal(p1.data, p2.data)


def test_load_state_dict_non_strict_reports_skipped_keys():
    m = TwoLayer()
    sd = TwoLayer().state_dict()
    sd.pop("act.h")
    sd["other"] = np.zeros(2)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["act.h"] and result.unexpected_keys == ["other"]
    assert np.array_equal(m.fc1.weight.data, sd["fc1.weight"])


def test_load_state_dict_keeps_the_parameter_arrays():
    m = TwoLayer()
    before = m.fc1.weight.data
    m.load_state_dict(TwoLayer().state_dict())
    assert m.fc1.weight.data is before  # in place: optimizers keep pointing at it


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.pop("fc2.bias"), "missing keys.*fc2.bias"),
    (lambda sd: sd.__setitem__("extra", np.zeros(1)), "unexpected keys.*extra"),
    (lambda sd: sd.__setitem__("fc2.weight", np.zeros((3, 4))), r"fc2.weight.*\(3, 4\).*\(2, 4\)"),
])
def test_load_state_dict_errors_leave_the_model_unchanged(edit, match):
    m = TwoLayer()
    before = m.state_dict()
    sd = {k: np.full_like(v, 7.0) for k, v in before.items()}
    edit(sd)
    with pytest.raises((KeyError, ShapeError), match=match):
        m.load_state_dict(sd)
    for k, v in m.state_dict().items():
        assert np.array_equal(v, before[k])


def test_repr_is_readable():
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Tanh(h=0.5), nn.Linear(128, 10))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=64, out_features=128, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Tanh(h=0.5)\n"
        "  (3): Linear(in_features=128, out_features=10, bias=True)\n"
        ")")


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float32
    assert "Parameter" in repr(p)


def test_linear_shapes_init_and_dtype():
    autodiff.manual_seed(3)
    lin = nn.Linear(50, 7)
    assert lin.weight.shape == (7, 50) and lin.bias.shape == (7,)
    bound = 1 / np.sqrt(50)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert np.abs(lin.weight.data).max() > 0.8 * bound  # spread over the whole range
    lin32 = nn.Linear(4, 2, bias=False, dtype=np.float32)
    assert lin32.bias is None and lin32.weight.dtype == np.float32
    out = lin32(np.ones((3, 4), dtype=np.float32))
    assert out.dtype == np.float32 and out.shape == (3, 2)


def test_linear_init_follows_manual_seed():
    autodiff.manual_seed(5)
    a = nn.Linear(3, 3).weight.data
    autodiff.manual_seed(5)
    assert np.array_equal(a, nn.Linear(3, 3).weight.data)


def test_linear_input_shapes(rng):
    lin = nn.Linear(3, 2)
    w, b = lin.weight.data, lin.bias.data
    x1 = rng.normal(size=3)
    np.testing.assert_allclose(lin(x1).data, w @ x1 + b)
    x3 = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(lin(x3).data, x3 @ w.T + b)
    with pytest.raises(ShapeError, match=r"in_features=3.*\(5, 4\)"):
        lin(np.ones((5, 4)))


def test_fused_linear_gradients(rng):
    x = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    w = Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    b = Tensor(rng.normal(size=2), requires_grad=True)
    assert gradcheck(linear, [x, w, b])
    assert gradcheck(linear, [x, w])
    # second order through the fused rule
    def grad_norm(x, w, b):
        (gw,) = autodiff.grad((linear(x, w, b).tanh() ** 2).sum(), w, create_graph=True)
        return (gw * gw).sum()
    assert gradcheck(grad_norm, [x, w, b])


def test_fused_linear_matches_composite_and_skips_frozen_inputs(rng):
    x = rng.normal(size=(6, 3))
    lin = nn.Linear(3, 2)
    lin.bias.requires_grad_(False)
    lin(x).sum().backward()
    w = Tensor(lin.weight.data.copy(), requires_grad=True)
    (Tensor(x) @ w.T + lin.bias.data).sum().backward()
    np.testing.assert_allclose(lin.weight.grad, w.grad, rtol=1e-14)
    assert lin.bias.grad is None
    assert lin.weight.grad.data.flags["C_CONTIGUOUS"]


def test_sequential_container():
    a, b = nn.Linear(2, 3), nn.ReLU()
    net = nn.Sequential(a, b)
    assert len(net) == 2 and net[0] is a and list(net) == [a, b]
    net.append(nn.Linear(3, 1))
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert net(np.ones((4, 2))).shape == (4, 1)
    with pytest.raises(TypeError, match="nn.Module"):
        nn.Sequential(a, lambda x: x)


def test_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    theirs = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                 torch.nn.Linear(128, 10))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, v), (k2, v2) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert v.shape == tuple(v2.shape)


def test_linear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ours = nn.Linear(5, 3)
    theirs = torch.nn.Linear(5, 3).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.normal(size=(4, 5))
    xt = Tensor(x, requires_grad=True)
    xt_t = torch.tensor(x, requires_grad=True)
    a, b = ours(xt), theirs(xt_t)
    np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-13)
    seed = rng.normal(size=(4, 3))
    a.backward(seed)
    b.backward(torch.tensor(seed))
    np.testing.assert_allclose(xt.grad, xt_t.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-13)


def test_torch_default_init_bounds_match():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Linear(30, 5)
    bound = 1 / np.sqrt(30)
    assert float(theirs.weight.detach().abs().max()) <= bound
    assert float(theirs.bias.detach().abs().max()) <= bound


class _Tied(nn.Module):
    """An encoder and decoder sharing one weight (as tied embeddings do)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(3, 3)
        self.dec = nn.Linear(3, 3)
        self.dec.weight = self.enc.weight


def test_tied_parameters_are_listed_under_every_name_as_pytorch_does():
    m = _Tied()
    assert list(m.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert [n for n, _ in m.named_parameters()] == ["enc.weight", "enc.bias", "dec.bias"]
    torch = None
    try:
        import torch
    except ImportError:
        pass
    if torch is not None:  # the same key list as the PyTorch module
        t = torch.nn.Module()
        t.enc, t.dec = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
        t.dec.weight = t.enc.weight
        assert list(t.state_dict()) == list(m.state_dict())


def test_tied_parameters_load_from_one_or_both_names(tmp_path):
    src, dst = _Tied(), _Tied()
    state = src.state_dict()
    dst.load_state_dict(state)  # both names, equal values
    assert np.array_equal(dst.dec.weight.data, src.enc.weight.data)
    one = {k: v for k, v in state.items() if k != "dec.weight"}  # deduplicated files
    assert _Tied().load_state_dict(one) == ([], [])
    bad = dict(state, **{"dec.weight": state["enc.weight"] + 1})
    before = dst.enc.bias.data.copy()
    with pytest.raises(ValueError, match="'enc.weight' and 'dec.weight' name the same"):
        dst.load_state_dict(bad)
    assert np.array_equal(dst.enc.bias.data, before)  # unchanged
    with pytest.raises(KeyError, match=r"missing keys \['enc.weight', 'dec.weight'\]"):
        dst.load_state_dict({k: v for k, v in one.items() if k != "enc.weight"})
    nn.save(src, tmp_path / "tied.safetensors")  # round trip through a file
    nn.load(dst, tmp_path / "tied.safetensors")
    assert dst.dec.weight is dst.enc.weight
    assert np.array_equal(dst.enc.weight.data, src.enc.weight.data)


def test_tied_parameters_holding_nan_reload():
    m = _Tied()
    m.enc.weight.data[0, 0] = np.nan
    m.load_state_dict(m.state_dict())
    assert np.isnan(m.dec.weight.data[0, 0])


class _Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])
        self.head = nn.Linear(3, 1)

    def forward(self, x):
        for block in self.blocks:
            x = block(x).tanh()
        return self.head(x)


def test_module_list_registers_indexes_and_trains(rng):
    m = _Blocks()
    names = list(m.state_dict())
    assert names[:2] == ["blocks.0.weight", "blocks.0.bias"] and len(names) == 8
    assert len(m.blocks) == 3 and m.blocks[-1] is m.blocks[2]
    assert [type(b) for b in m.blocks[1:]] == [nn.Linear, nn.Linear]
    assert list(m.blocks[1:].state_dict())[:1] == ["0.weight"]  # a slice is renumbered
    replacement = nn.Linear(3, 3)
    m.blocks[1] = replacement
    assert m.blocks[1] is replacement and list(m.state_dict()) == names  # same place
    m.blocks.append(nn.Linear(3, 3)).extend([nn.Linear(3, 3)])
    assert len(m.blocks) == 5 and len(list(m.parameters())) == 12
    x = Tensor(rng.normal(size=(4, 3)))
    opt = nn.optim.SGD(m.parameters(), lr=0.1)
    before = m.blocks[4].weight.data.copy()
    m(x).sum().backward()
    opt.step()
    assert not np.array_equal(before, m.blocks[4].weight.data)  # trained through the list
    with pytest.raises(IndexError, match="ModuleList: index 5 is out of range for 5 modules"):
        m.blocks[5]
    with pytest.raises(TypeError, match="expected an nn.Module, got int"):
        m.blocks.append(3)
    with pytest.raises(TypeError, match="single Linear"):
        nn.ModuleList(nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="ModuleList must define forward"):
        m.blocks(x)


def test_module_list_keys_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _Blocks(), torch.nn.Module()
    theirs.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 3) for _ in range(3)])
    theirs.head = torch.nn.Linear(3, 1)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.ones((2, 3))
    with torch.no_grad():
        t = torch.from_numpy(x).float()
        for block in theirs.blocks:
            t = torch.tanh(block(t))
        expected = theirs.head(t).numpy()
    np.testing.assert_allclose(ours(Tensor(x)).data, expected, rtol=1e-6)


@pytest.mark.parametrize("args,name,bad", [(("3", 2), "in_features", "'3'"),
                                           ((3.0, 2), "in_features", "3.0"),
                                           ((3, 2.5), "out_features", "2.5"),
                                           ((None, 2), "in_features", "None"),
                                           ((True, 2), "in_features", "True")])
def test_linear_features_must_be_ints(args, name, bad):
    with pytest.raises(TypeError, match=rf"^Linear: {name} must be an int, got {re.escape(bad)}"):
        nn.Linear(*args)


@pytest.mark.parametrize("args", [(0, 2), (3, 0), (-1, 2), (3, -4)])
def test_linear_features_must_be_positive(args):
    with pytest.raises(ValueError, match=r"^Linear: in_features and out_features must be "
                                         rf"positive, got {args[0]} and {args[1]}"):
        nn.Linear(*args)
    assert nn.Linear(np.int64(3), np.int32(2)).weight.shape == (2, 3)


def test_linear_non_numeric_input_names_linear():
    with pytest.raises(TypeError, match=r"^Linear: .*numeric"):
        nn.Linear(2, 1)([["a", "b"]])


# ---------------------------------------------------------------------------
# buffers: state that is not trained (PyTorch's register_buffer)

class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.register_buffer("steps", np.zeros((), np.int64))
        self.register_buffer("scale", np.ones(2))
        self.register_buffer("cache", np.zeros(3), persistent=False)
        self.register_buffer("unset", None)


def test_register_buffer_lists_buffers_and_keeps_them_out_of_parameters():
    m = WithBuffers()
    assert [n for n, _ in m.named_parameters()] == ["fc.weight", "fc.bias"]
    assert [n for n, _ in m.named_buffers()] == ["steps", "scale", "cache"]  # None left out
    assert all(isinstance(b, Tensor) and not b.requires_grad for b in m.buffers())
    assert m.steps.dtype == np.int64 and m.unset is None
    # state_dict: each module's parameters, then its persistent buffers, then children
    outer = nn.Sequential(m, nn.Linear(2, 1))
    assert list(outer.state_dict()) == ["0.steps", "0.scale", "0.fc.weight", "0.fc.bias",
                                        "1.weight", "1.bias"]
    assert [n for n, _ in outer.named_buffers()] == ["0.steps", "0.scale", "0.cache"]
    assert list(outer.buffers(recurse=False)) == []
    t = Tensor(np.arange(2.0))
    m.register_buffer("given", t)
    assert m.given is t  # a Tensor is kept as it is


def test_assigning_to_a_buffer_keeps_it_a_buffer():
    m = WithBuffers()
    m.scale = Tensor(np.full(2, 3.0))
    assert "scale" in dict(m.named_buffers()) and m.state_dict()["scale"].tolist() == [3, 3]
    m.scale = np.full(2, 4.0)  # an array becomes a Tensor
    assert isinstance(m.scale, Tensor)
    m.unset = Tensor(np.ones(1))
    assert "unset" in m.state_dict()
    m.scale = None
    assert "scale" not in m.state_dict() and "scale" not in dict(m.named_buffers())
    with pytest.raises(TypeError, match="buffer 'steps' needs a Tensor, an array or None"):
        m.steps = 3
    m.steps = nn.Parameter(np.ones(2))  # a Parameter takes the name over, as in PyTorch
    assert "steps" in dict(m.named_parameters()) and "steps" not in dict(m.named_buffers())
    del m.cache
    assert "cache" not in dict(m.named_buffers()) and not hasattr(m, "cache")


@pytest.mark.parametrize("name,value,error,match", [
    (3, np.ones(1), TypeError, "the name must be a str"),
    ("a.b", np.ones(1), KeyError, "without '.'"),
    ("", np.ones(1), KeyError, "without '.'"),
    ("fc", np.ones(1), KeyError, "attribute 'fc' already exists"),
    ("x", [1.0, 2.0], TypeError, "needs a Tensor, an array or None, got list"),
    ("x", nn.Parameter(np.ones(1)), TypeError, "Parameter"),
])
def test_register_buffer_errors(name, value, error, match):
    with pytest.raises(error, match=match):
        WithBuffers().register_buffer(name, value)


def test_buffers_load_in_place_strictly_and_follow_dtype_conversion():
    m = WithBuffers()
    before = m.scale
    version = m.scale._version
    state = m.state_dict()
    state["scale"] = np.array([5.0, 6.0])
    state["steps"] = np.array(7)
    m.load_state_dict(state)
    assert m.scale is before and m.scale.tolist() == [5.0, 6.0] and int(m.steps) == 7
    assert m.scale._version == version + 1
    with pytest.raises(KeyError, match=r"missing keys \['steps'\]"):
        m.load_state_dict({k: v for k, v in state.items() if k != "steps"})
    with pytest.raises(KeyError, match=r"unexpected keys \['cache'\]"):  # not persistent
        m.load_state_dict(dict(state, cache=np.zeros(3)))
    bad = dict(state, scale=np.zeros(3))
    with pytest.raises(ShapeError, match="'scale' has shape"):
        m.load_state_dict(bad)
    assert m.scale.tolist() == [5.0, 6.0]  # unchanged by the refused load
    assert m.load_state_dict({"steps": np.array(1)}, strict=False).missing_keys == [
        "scale", "fc.weight", "fc.bias"]
    m.float()
    assert m.scale.dtype == np.float32 and m.cache.dtype == np.float32
    assert m.steps.dtype == np.int64  # an integer buffer keeps its dtype
    m.to(autodiff.float64)
    assert m.scale.dtype == np.float64


def test_buffers_match_torch_names_and_order():
    torch = pytest.importorskip("torch")

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))
            self.register_buffer("scale", torch.ones(2))
            self.register_buffer("cache", torch.zeros(3), persistent=False)
            self.register_buffer("unset", None)

    ours, theirs = nn.Sequential(WithBuffers()), torch.nn.Sequential(Theirs())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    ours.load_state_dict(theirs.state_dict())
