"""In-place operations and version counters: a change made through the library after a
node saved the old values makes backward raise, never compute with the new values."""

import copy

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor, no_grad
from autodiff.engine import ModifiedInPlaceError
from autodiff.errors import ShapeError
from nn import optim


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# -- the methods -----------------------------------------------------------------------

@pytest.mark.parametrize("method, args, expected", [
    ("add_", (2.0,), [3.0, 4.0]),
    ("sub_", (np.array([1.0, 1.0]),), [0.0, 1.0]),
    ("mul_", (Tensor([2.0, 3.0]),), [2.0, 6.0]),
    ("div_", (2.0,), [0.5, 1.0]),
    ("zero_", (), [0.0, 0.0]),
    ("fill_", (7,), [7.0, 7.0]),
    ("copy_", (Tensor([5.0, 6.0]),), [5.0, 6.0]),
    ("clamp_", (1.5, None), [1.5, 2.0]),
])
def test_in_place_methods_change_the_tensor_itself(method, args, expected):
    t = Tensor([1.0, 2.0])
    data = t.data
    view = t.detach()
    assert getattr(t, method)(*args) is t
    assert t.data is data                      # the same memory ...
    np.testing.assert_array_equal(t.data, expected)
    np.testing.assert_array_equal(view.data, expected)  # ... so views see it
    assert t._version == 1 and view._version == 1   # and they share the counter


def test_add_and_sub_take_alpha_as_pytorch():
    t = Tensor([1.0, 2.0])
    t.add_(Tensor([1.0, 1.0]), alpha=-0.5).sub_(1.0, alpha=2)
    np.testing.assert_array_equal(t.data, [-1.5, -0.5])


def test_operators_update_in_place_under_no_grad():
    # the habit of hand-written training loops: p -= lr * p.grad
    p = leaf([1.0, 2.0])
    (p * p).sum().backward()
    data = p.data
    with no_grad():
        p -= 0.1 * Tensor(p.grad)
        p *= 2
        p += 1
        p /= 2
    assert p.data is data and p.requires_grad and p.is_leaf
    np.testing.assert_allclose(p.data, ((np.array([1.0, 2.0]) * 0.8) * 2 + 1) / 2)
    assert p._version == 4


def test_a_micrograd_style_loop_trains_a_tensor_model():
    # `for p in params: p -= lr * p.grad` must update the parameters (it once rebound
    # the loop variable and silently trained nothing)
    autodiff.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    x = Tensor(np.random.default_rng(0).normal(size=(32, 2)))
    y = Tensor((x.data[:, :1] * x.data[:, 1:]) > 0).astype(np.float64)
    losses = []
    for _ in range(60):
        loss = ((net(x) - y) ** 2).mean()
        losses.append(loss.item())
        net.zero_grad()
        loss.backward()
        with no_grad():
            for p in net.parameters():
                p -= 0.5 * Tensor(p.grad)
    assert losses[-1] < 0.6 * losses[0]


def test_random_fills_use_the_seeded_generator():
    autodiff.manual_seed(3)
    a = Tensor(np.zeros((2, 3))).normal_(1.0, 0.5)
    b = Tensor(np.zeros(4)).uniform_(-1, 1)
    autodiff.manual_seed(3)
    a2 = Tensor(np.zeros((2, 3))).normal_(1.0, 0.5)
    np.testing.assert_array_equal(a.data, a2.data)
    assert np.all((-1 <= b.data) & (b.data <= 1)) and len(set(b.data)) == 4
    f32 = Tensor(np.zeros(3, dtype=np.float32)).normal_()
    assert f32.dtype == np.float32


def test_in_place_errors_name_the_operation():
    t = Tensor([1.0, 2.0])
    with pytest.raises(ShapeError, match=r"add_: the result must keep the tensor's shape \(2,\)"):
        t.add_(np.ones((3, 2)))
    i = Tensor(np.array([1, 2]))
    with pytest.raises(TypeError, match="add_: cannot write the result into a tensor of dtype int64"):
        i.add_(0.5)
    with pytest.raises(ShapeError, match="copy_: cannot copy shape"):
        t.copy_([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="fill_: expected a number"):
        t.fill_("a")
    with pytest.raises(ValueError, match="clamp_: give at least one"):
        t.clamp_()
    with pytest.raises(ValueError, match="normal_: std must be >= 0"):
        t.normal_(0, float("nan"))
    with pytest.raises(TypeError, match="normal_: needs a floating-point tensor"):
        i.normal_()
    assert t._version == 0 and i._version == 0   # nothing changed on a refused call


def test_a_leaf_that_requires_grad_is_changed_in_place_only_under_no_grad():
    p = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="add_: a leaf tensor that requires grad"):
        p.add_(1.0)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad"):
        p += 1.0
    np.testing.assert_array_equal(p.data, [1.0, 2.0])
    with no_grad():
        p.add_(1.0)
    np.testing.assert_array_equal(p.data, [2.0, 3.0])


def test_graph_tensors_refuse_in_place_methods_and_operators_go_out_of_place():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    with pytest.raises(RuntimeError, match="mul_: in-place operations on tensors that are part"):
        h.mul_(2.0)
    c = Tensor([0.0, 0.0])
    with pytest.raises(RuntimeError, match="add_: in-place operations"):
        c.add_(x)
    old = h
    h += x          # recorded out of place: the name now holds a new node
    assert h is not old and h._prim.name == "add"
    h.sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0])


# -- version counters --------------------------------------------------------------------

def test_backward_after_an_in_place_change_of_a_saved_input_raises():
    x = leaf([1.0, 2.0])
    w = Tensor([3.0, 4.0])
    y = (x * w).sum()
    w.mul_(10)
    with pytest.raises(ModifiedInPlaceError, match=r"input 1 of the 'mul' node \(shape \(2,\), "
                       r"dtype float64\) was modified by an in-place operation"):
        y.backward()


def test_a_change_the_gradient_does_not_depend_on_is_allowed():
    # add saves no inputs, reshape reads only shapes: as in PyTorch, no error
    x = leaf([1.0, 2.0])
    b = Tensor([3.0, 4.0])
    y = (x + b).reshape(2, 1).sum()
    b.add_(1.0)
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_a_change_of_a_saved_output_raises():
    x = leaf([0.5, 1.0])
    y = x.exp()          # exp's vjp reads its output
    loss = y.sum()
    with no_grad():
        y.mul_(2)
    with pytest.raises(ModifiedInPlaceError, match="the output of the 'exp' node"):
        loss.backward()


def test_a_change_through_a_view_or_a_detached_copy_is_seen():
    x = leaf([1.0, 2.0, 3.0])
    w = Tensor([1.0, 2.0, 3.0])
    y = (x * w[0:3]).sum()        # w[0:3] is a view of w
    w.detach()[1:].fill_(0.0)     # ... changed through another view
    with pytest.raises(ModifiedInPlaceError):
        y.backward()


def test_changes_before_the_forward_are_fine():
    x = leaf([1.0, 2.0])
    w = Tensor([3.0, 4.0])
    w.mul_(2)
    y = (x * w).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [6.0, 8.0])


def _model_and_loss():
    autodiff.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = Tensor(np.random.default_rng(1).normal(size=(5, 3)))
    return net, nn.CrossEntropyLoss()(net(x), [0, 1, 1, 0, 1])


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.1), lambda p: optim.Adam(p, lr=0.1),
    lambda p: optim.RMSprop(p, lr=0.1, momentum=0.5)])
def test_an_optimizer_step_between_forward_and_backward_raises(make):
    net, loss = _model_and_loss()
    net2, loss2 = _model_and_loss()
    loss2.backward()
    opt = make(net.parameters())
    for p, q in zip(net.parameters(), net2.parameters()):
        p.grad = q.grad.clone()
    opt.step()
    with pytest.raises(ModifiedInPlaceError, match="modified by an in-place operation"):
        loss.backward()


def test_load_state_dict_between_forward_and_backward_raises():
    net, loss = _model_and_loss()
    net.load_state_dict({k: v + 1 for k, v in net.state_dict().items()})
    with pytest.raises(ModifiedInPlaceError, match="'linear' node"):
        loss.backward()


def test_optimizers_never_rebind_data():
    net, loss = _model_and_loss()
    loss.backward()
    params = list(net.parameters())
    arrays = [p.data for p in params]
    detached = [p.detach() for p in params]
    opt = optim.Adam(params, lr=0.1)
    for _ in range(3):
        opt.step()
    assert all(p.data is a for p, a in zip(params, arrays))
    for p, d in zip(params, detached):
        assert np.shares_memory(p.data, d.data) and p._version == d._version == 3
    # scratch arrays are the optimizer's own, not part of its state
    for state in opt.state.values():
        assert set(state) == {"step", "exp_avg", "exp_avg_sq"}


def test_a_copied_optimizer_updates_its_own_parameters():
    net, loss = _model_and_loss()
    loss.backward()
    opt = optim.Adam(net.parameters(), lr=0.1)
    opt.step()
    net2, opt2 = copy.deepcopy((net, opt))
    before = [p.data.copy() for p in net.parameters()]
    opt2.step()
    for p, b in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.data, b)   # the original is untouched
    assert not all(np.array_equal(p.data, b) for p, b in zip(net2.parameters(), before))


# -- against PyTorch ---------------------------------------------------------------------

def test_version_counts_and_errors_match_pytorch():
    torch = pytest.importorskip("torch")
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    tw = torch.tensor([3.0, 4.0], dtype=torch.float64)
    ty = (tx * tw).sum()
    tw.mul_(10).add_(1)
    x, w = leaf([1.0, 2.0]), Tensor([3.0, 4.0])
    y = (x * w).sum()
    w.mul_(10).add_(1)
    assert w._version == tw._version == 2
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.backward()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()
    # and where PyTorch computes (add saves nothing), so do we, with its numbers
    tx.grad = None
    tb = torch.tensor([1.0, 1.0], dtype=torch.float64)
    tz = ((tx + tb) * 2.0).sum()
    tb.add_(5)
    tz.backward()
    b = Tensor([1.0, 1.0])
    z = ((x + b) * 2.0).sum()
    b.add_(5)
    z.backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


def test_in_place_arithmetic_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    b = rng.normal(size=(4,))
    t, tt = Tensor(a.copy()), torch.tensor(a.copy())
    t.add_(Tensor(b), alpha=0.5).mul_(Tensor(b)).sub_(1.5).div_(Tensor(b + 3)).clamp_(-0.2, 0.3)
    tt.add_(torch.tensor(b), alpha=0.5).mul_(torch.tensor(b)).sub_(1.5).div_(
        torch.tensor(b + 3)).clamp_(-0.2, 0.3)
    np.testing.assert_allclose(t.data, tt.numpy(), rtol=1e-15)
    assert t._version == tt._version == 5


def test_changing_a_condition_or_an_index_later_does_not_move_the_gradient():
    a = leaf([1.0, 2.0, 3.0])
    c = Tensor(np.array([True, False, True]))
    y = autodiff.where(c, a * 2.0, a * 0.0)
    c.fill_(False)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [2.0, 0.0, 2.0])
    b = leaf([1.0, 2.0, 3.0])
    i = Tensor(np.array([0, 1]))
    z = (b * 1.0)[i]
    i.fill_(2)
    z.sum().backward()
    np.testing.assert_array_equal(b.grad, [1.0, 1.0, 0.0])


def test_in_place_through_an_integer_index_writes_through():
    w = Tensor([1.0, 1.0, 1.0])
    w[0].zero_()
    m = Tensor(np.ones((2, 2)))
    m[0, 1].fill_(7)
    np.testing.assert_array_equal(w.data, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(m.data, [[1.0, 7.0], [1.0, 1.0]])
    assert w._version == 1


def test_pictures_after_a_releasing_backward_refuse_changed_inputs():
    from autodiff.viz import chain_rule
    w = leaf([1.0, 2.0])
    c = Tensor([3.0, 4.0])
    y = (w * c).sum()
    y.backward()
    c.mul_(100)
    with pytest.raises(ModifiedInPlaceError):
        chain_rule(y, w)
