"""Optimizers and schedules: textbook formulas, PyTorch's torch.optim, Value parameters."""

import math
import re

import numpy as np
import pytest

import nn
from autodiff import ShapeError, Tensor, Value
from nn import optim

STEPS = 6


def _grads(rng, shapes, steps=STEPS):
    return [[rng.normal(size=s) for s in shapes] for _ in range(steps)]


def _run_ours(cls, init, grads, flat=None, **kw):
    params = [Tensor(p.copy(), requires_grad=True) for p in init]
    arrays = [p.data for p in params]
    opt = cls(params, **kw)
    for gs in grads:
        opt.zero_grad()
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()
    # updated in place: each parameter keeps its own array, and its version counts steps
    assert all(p.data is a for p, a in zip(params, arrays))
    assert all(p._version == len(grads) for p in params)
    if flat is not None:
        assert (0 in opt._flat) == flat
    return [p.data for p in params]


# -- textbook formulas, written plainly (never skipped) ---------------------------------

def _sgd_reference(p, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    p, buf = p.copy(), None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def _adam_reference(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                    amsgrad=False, decoupled=False):
    p, m, v, v_max = p.copy(), 0 * p, 0 * p, 0 * p
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        m_hat, v_hat = m / (1 - b1 ** t), (v_max if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def _adamw_reference(p, grads, lr, weight_decay=1e-2, **kw):
    return _adam_reference(p, grads, lr, weight_decay=weight_decay, decoupled=True, **kw)


def _rmsprop_reference(p, grads, lr, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0,
                       centered=False):
    p, s, gbar, buf = p.copy(), 0 * p, 0 * p, 0 * p
    for g in grads:
        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            gbar = alpha * gbar + (1 - alpha) * g
            avg = np.sqrt(s - gbar ** 2) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
    return p


CASES = [
    (optim.SGD, _sgd_reference, dict(lr=0.1)),
    (optim.SGD, _sgd_reference, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, _sgd_reference, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.SGD, _sgd_reference, dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.1)),
    (optim.Adam, _adam_reference, dict(lr=1e-2)),
    (optim.Adam, _adam_reference, dict(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    (optim.Adam, _adam_reference, dict(lr=1e-2, betas=(0.5, 0.6), amsgrad=True)),
    (optim.AdamW, _adamw_reference, dict(lr=1e-2)),
    (optim.AdamW, _adamw_reference, dict(lr=3e-2, betas=(0.8, 0.6), weight_decay=0.5,
                                         amsgrad=True)),
    (optim.RMSprop, _rmsprop_reference, dict(lr=1e-2)),
    (optim.RMSprop, _rmsprop_reference, dict(lr=1e-3, alpha=0.9, momentum=0.8,
                                             weight_decay=0.05)),
    (optim.RMSprop, _rmsprop_reference, dict(lr=1e-3, centered=True, momentum=0.5)),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, _, kw in CASES]


@pytest.mark.parametrize("cls, reference, kw", CASES, ids=IDS)
def test_matches_textbook_formulas(rng, cls, reference, kw):
    init = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    grads = _grads(rng, [(3, 4), (5,)])
    got = _run_ours(cls, init, grads, **kw)
    for i, p in enumerate(init):
        expected = reference(p, [gs[i] for gs in grads], **kw)
        np.testing.assert_allclose(got[i], expected, rtol=1e-12, atol=1e-14)


def _one_by_one(cls, init, grads, **kw):
    """The same updates with one optimizer per parameter: never the flat path."""
    params = [Tensor(p.copy(), requires_grad=True) for p in init]
    opts = [cls([p], **kw) for p in params]
    for gs in grads:
        for p, g, opt in zip(params, gs, opts):
            if g is not None:
                p.grad = g.copy()
                opt.step()
    return [p.data for p in params]


@pytest.mark.parametrize("cls, reference, kw", CASES, ids=IDS)
def test_flat_group_update_is_bitwise_the_per_parameter_one(rng, cls, reference, kw):
    shapes = [(3, 4), (5,), (), (2, 1, 3)]
    init = [rng.normal(size=s) for s in shapes]
    grads = _grads(rng, shapes)
    got = _run_ours(cls, init, grads, flat=True, **kw)  # laid end to end in one buffer
    for a, b in zip(got, _one_by_one(cls, init, grads, **kw)):
        assert a.shape == b.shape and np.array_equal(a, b)


def test_flat_group_state_views_and_fallbacks(rng):
    shapes = [(3, 4), (5,), (4,)]
    init = [rng.normal(size=s) for s in shapes]
    grads = _grads(rng, shapes, steps=8)
    grads[3][1] = None  # parameter 1 sits out step 3: skipped, its step count falls behind
    params = [Tensor(p.copy(), requires_grad=True) for p in init]
    opt = optim.Adam(params, lr=0.05, weight_decay=0.01)
    for t, gs in enumerate(grads):
        opt.zero_grad()
        for p, g in zip(params, gs):
            p.grad = None if g is None else g.copy()
        if t == 5:  # a rebound .data is picked up, not silently ignored
            params[2].data = params[2].data + 1.0  # (the reference below does the same)
        opt.step()
        if t == 0:  # the flat path is taken: one buffer behind all three
            assert 0 in opt._flat and opt._flat[0].params == params
        state = opt.state[params[0]]
        assert state["exp_avg"].shape == (3, 4) and state["step"] == t + 1
    ref_params = [Tensor(p.copy(), requires_grad=True) for p in init]
    ref_opts = [optim.Adam([p], lr=0.05, weight_decay=0.01) for p in ref_params]
    for t, gs in enumerate(grads):
        if t == 5:
            ref_params[2].data = ref_params[2].data + 1.0
        for p, g, o in zip(ref_params, gs, ref_opts):
            if g is not None:
                p.grad = g.copy()
                o.step()
    for a, b in zip(params, ref_params):
        assert np.array_equal(a.data, b.data)
    assert opt.state[params[1]]["step"] == 7


def test_a_step_keeps_each_parameters_array_even_when_nothing_else_holds_it(rng):
    # API.md: optimizers never rebind .data. Held only by weak references and ids (which a
    # reference count does not see), each parameter must keep its own array; a flat
    # group must not swap it for a view of its buffer, nor write past a read-only flag.
    import weakref
    params = [Tensor(rng.normal(size=s), requires_grad=True) for s in [(3, 4), (4,), (2,)]]
    ids = [id(p.data) for p in params]
    alive = [weakref.ref(p.data) for p in params]
    opt = optim.Adam(params, lr=0.1)
    for _ in range(3):
        for p in params:
            p.grad = np.ones_like(p.data)
        opt.step()
    assert 0 in opt._flat  # (the flat path is the one tested)
    assert [id(p.data) for p in params] == ids and all(r() is not None for r in alive)
    assert all(p.data.flags.owndata for p in params)
    params[0].data.flags.writeable = False
    before = params[0].data.copy()
    with pytest.raises(ValueError, match="read-only"):
        opt.step()
    assert np.array_equal(params[0].data, before)


def test_large_parameters_update_one_by_one_with_the_same_numbers(rng):
    # Above a mean size per parameter, copying into one buffer costs more than the numpy
    # calls it saves: those groups take the per-parameter path, and state stays per tensor.
    from nn.optim.flat import _FLAT_SIZE
    side = int(np.sqrt(2 * _FLAT_SIZE))  # mean size (2 side² + side) / 3 > _FLAT_SIZE
    shapes = [(side, side), (side,), (side, side)]
    init = [rng.normal(size=s) for s in shapes]
    grads = _grads(rng, shapes, steps=3)
    params = [Tensor(p.copy(), requires_grad=True) for p in init]
    opt = optim.Adam(params, lr=0.05)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = None if g is None else g.copy()
        opt.step()
        assert not opt._flat  # no flat buffer behind them
    for a, b in zip(params, _one_by_one(optim.Adam, init, grads, lr=0.05)):
        assert np.array_equal(a.data, b)
    small = [Tensor(np.ones(4), requires_grad=True), Tensor(np.ones(3), requires_grad=True)]
    opt = optim.Adam(small, lr=0.05)
    for p in small:
        p.grad = np.ones_like(p.data)
    opt.step()
    assert 0 in opt._flat  # small parameters still share one buffer


def test_flat_group_rejects_a_gradient_of_the_wrong_shape(rng):
    params = [Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(2), requires_grad=True)]
    opt = optim.SGD(params, lr=0.1)
    params[0].grad, params[1].grad = np.ones(3), np.ones(2)
    opt.step()
    with pytest.raises(ShapeError, match=r"grad: the assigned gradient has shape \(1,\)"):
        params[1].grad = np.ones(1)  # refused as in PyTorch
    params[1].grad.data = np.ones(1)  # would broadcast silently
    with pytest.raises(ValueError, match=r"SGD.step: parameter 1 of group 0 has shape \(2,\) "
                                         r"but its gradient has shape \(1,\)"):
        opt.step()
    single = optim.SGD([params[1]], lr=0.1)  # the one-by-one path says the same
    with pytest.raises(ValueError, match="parameter 0 of group 0 has shape"):
        single.step()


def test_mixed_dtypes_in_a_group_update_one_by_one(rng):
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.ones(3, dtype=np.float32), np.ones(2)
    opt.step()
    assert a.data.dtype == np.float32 and b.data.dtype == np.float64
    assert np.allclose(a.data, 0.9) and np.allclose(b.data, 0.9)


def test_first_steps_in_closed_form():
    g = np.array([0.5, -2.0])
    # SGD: p - lr g
    np.testing.assert_allclose(_run_ours(optim.SGD, [np.zeros(2)], [[g]], lr=0.1)[0], -0.1 * g)
    # Adam's first step is lr g / (|g| + eps): about lr in the direction of -sign(g)
    np.testing.assert_allclose(_run_ours(optim.Adam, [np.zeros(2)], [[g]], lr=0.1)[0],
                               -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-14)
    # RMSprop's first step: lr g / (sqrt(1 - alpha) |g| + eps)
    np.testing.assert_allclose(_run_ours(optim.RMSprop, [np.zeros(2)], [[g]], lr=0.01)[0],
                               -0.01 * g / (math.sqrt(0.01) * np.abs(g) + 1e-8), rtol=1e-14)
    # momentum: b1 = g, b2 = mu g + g
    np.testing.assert_allclose(
        _run_ours(optim.SGD, [np.zeros(2)], [[g], [g]], lr=1.0, momentum=0.9)[0],
        -(g + 1.9 * g), rtol=1e-14)


@pytest.mark.parametrize("cls, reference, kw", CASES, ids=IDS)
def test_value_parameters_follow_the_same_rule(rng, cls, reference, kw):
    init = rng.normal(size=4)
    grads = _grads(rng, [(4,)])
    values = [Value(float(x)) for x in init]
    opt = cls(values, **kw)
    for (g,) in grads:
        opt.zero_grad()
        assert all(v.grad == 0.0 for v in values)
        for v, gi in zip(values, g):
            v.grad = float(gi)
        opt.step()
    expected = reference(init, [g for (g,) in grads], **kw)
    np.testing.assert_allclose([v.data for v in values], expected, rtol=1e-12, atol=1e-14)
    assert all(type(v.data) is float for v in values)


def test_mixed_value_and_tensor_parameters(rng):
    v, t = Value(1.0), Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([v, t], lr=0.5)
    v.grad, t.grad = 2.0, np.array([1.0, 4.0])
    opt.step()
    assert v.data == 0.0 and np.array_equal(t.data, [0.5, -1.0])


def test_parameters_without_grad_are_skipped():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.ones(2)
    opt.step()
    assert np.array_equal(b.data, np.ones(2)) and not np.array_equal(a.data, np.ones(2))


def test_step_updates_in_place_without_new_buffers(rng):
    p = Tensor(rng.normal(size=(50, 50)), requires_grad=True)
    opt = optim.Adam([p], lr=0.1, weight_decay=0.1)
    data = p.data
    p.grad = rng.normal(size=(50, 50))
    opt.step()
    buffers = {k: id(v) for k, v in opt.state[p].items() if isinstance(v, np.ndarray)}
    for _ in range(3):
        opt.step()
    assert p.data is data
    assert buffers == {k: id(v) for k, v in opt.state[p].items()
                       if isinstance(v, np.ndarray)}


def test_float32_parameters_stay_float32(rng):
    p = Tensor(rng.normal(size=3).astype(np.float32), requires_grad=True)
    for cls in (optim.SGD, optim.Adam, optim.RMSprop):
        opt = cls([p], lr=0.01, **({"momentum": 0.9} if cls is not optim.Adam else {}))
        p.grad = np.ones(3, dtype=np.float32)
        opt.step()
        assert p.data.dtype == np.float32


def test_param_groups_and_errors():
    a, b = Tensor(np.ones(1), requires_grad=True), Tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = b.grad = np.ones(1)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.0])
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="requires grad"):
        optim.SGD([Tensor(np.ones(1))], lr=0.1)
    with pytest.raises(TypeError, match="single"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([a, a], lr=0.1)


def test_optimizer_zero_grad_and_closure():
    t, v = Tensor(np.ones(2), requires_grad=True), Value(2.0)
    opt = optim.SGD([t, v], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (t * t).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 2.0
    np.testing.assert_allclose(t.data, [0.8, 0.8])
    v.grad = 1.0
    opt.zero_grad()
    assert t.grad is None and v.grad == 0.0


def test_schedules_closed_form():
    p = Tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, 3, gamma=0.5)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    opt = optim.SGD([p], lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = []
    for _ in range(5):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    np.testing.assert_allclose(lrs, [1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55,
                                     0.1 + 0.9 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.1])


# -- against PyTorch -------------------------------------------------------------------

TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=1e-3)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.5, 0.6), amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=3e-2, betas=(0.8, 0.6), weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, momentum=0.8, weight_decay=0.05)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.5, eps=1e-6)),
]


@pytest.mark.parametrize("name, kw", TORCH_CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                              for n, kw in TORCH_CASES])
@pytest.mark.parametrize("kind", ["tensor", "value"])
def test_matches_torch_optim(rng, name, kw, kind):
    torch = pytest.importorskip("torch")
    init = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    grads = _grads(rng, [(4, 3), (3,)], steps=10)
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in init]
    topt = getattr(torch.optim, name)(theirs, **kw)
    if kind == "tensor":
        ours = [Tensor(p.copy(), requires_grad=True) for p in init]
    else:
        ours = [Value(float(x)) for x in init[1]]
        init, grads = [init[1]], [[gs[1]] for gs in grads]
        theirs = theirs[1:]
        topt = getattr(torch.optim, name)(theirs, **kw)
    opt = getattr(optim, name)(ours, **kw)
    for gs in grads:
        opt.zero_grad()
        topt.zero_grad()
        for p, t, g in zip(ours, theirs, gs):
            t.grad = torch.tensor(g)
        if kind == "tensor":
            for p, g in zip(ours, gs):
                p.grad = g.copy()
        else:
            for v, gi in zip(ours, gs[0]):
                v.grad = float(gi)
        opt.step()
        topt.step()
    got = [p.data for p in ours] if kind == "tensor" else [np.array([v.data for v in ours])]
    for a, t in zip(got, theirs):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sched, args", [("StepLR", (3, 0.3)), ("CosineAnnealingLR", (5, 0.01)),
                                         ("CosineAnnealingLR", (4, 0.0))])
def test_schedules_match_torch_step_by_step(sched, args):
    torch = pytest.importorskip("torch")
    ours = [Tensor(np.ones(1), requires_grad=True) for _ in range(2)]
    theirs = [torch.ones(1, requires_grad=True) for _ in range(2)]
    opt = optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.2}], lr=0.5)
    topt = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.2}], lr=0.5)
    s = getattr(optim, sched)(opt, *args)  # (PyTorch's positional order)
    ts = getattr(torch.optim.lr_scheduler, sched)(topt, *args)
    seen = set()
    for epoch in range(25):
        # the same floats, bit for bit: PyTorch's recursion in PyTorch's order of operations
        assert s.get_last_lr() == ts.get_last_lr()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
        seen.add(s.get_last_lr()[1])
        if epoch == 9:  # an lr set by hand carries on, as in PyTorch
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.01
        topt.step()
        s.step()
        ts.step()
    assert len(seen) > 3  # the schedule did move
    assert s.last_epoch == ts.last_epoch == 25 and s._step_count == ts._step_count


def test_schedule_settings_are_checked():
    opt = optim.SGD(_ones(1), lr=0.1)
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"^StepLR: step_size must be a whole number >= 1"):
            optim.StepLR(opt, bad)
        with pytest.raises(ValueError, match=r"^CosineAnnealingLR: T_max must be a whole"):
            optim.CosineAnnealingLR(opt, bad)
    with pytest.raises(ValueError, match=r"^StepLR: gamma must be a finite number >= 0"):
        optim.StepLR(opt, 2, gamma=math.nan)
    with pytest.raises(TypeError, match=r"^CosineAnnealingLR: eta_min must be a number"):
        optim.CosineAnnealingLR(opt, 3, eta_min="0")
    assert optim.lr_scheduler.StepLR is optim.StepLR  # torch.optim.lr_scheduler's path


def _two_layer_step(model, opt, x):
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_and_optimizer_keep_training(rng, how):
    import copy
    import pickle
    x = Tensor(rng.normal(size=(4, 2)))
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    opt = optim.Adam(model.parameters(), lr=0.1)
    _two_layer_step(model, opt, x)
    pair = (copy.deepcopy((model, opt)) if how == "deepcopy"
            else pickle.loads(pickle.dumps((model, opt))))
    for _ in range(3):
        _two_layer_step(model, opt, x)
        _two_layer_step(*pair, x)
    for a, b in zip(model.parameters(), pair[0].parameters()):
        assert np.array_equal(a.data, b.data)  # the copy moved exactly as the original


def test_changes_to_optimizer_state_are_honoured(rng):
    params = [Tensor(rng.normal(size=3), requires_grad=True) for _ in range(2)]
    opt = optim.Adam(params, lr=0.1)
    for _ in range(3):
        for p in params:
            p.grad = np.ones(3)
        opt.step()
    opt.state.clear()  # a restart: fresh moments and step count
    start = [p.data.copy() for p in params]
    fresh = [Tensor(s.copy(), requires_grad=True) for s in start]
    ref = optim.Adam(fresh, lr=0.1)
    for _ in range(2):
        for p in params + fresh:
            p.grad = np.ones(3)
        opt.step()
        ref.step()
    for a, b in zip(params, fresh):
        assert np.array_equal(a.data, b.data)
    assert opt.state[params[0]]["step"] == 2
    opt.state[params[1]]["step"] = 0  # one parameter's count changed by hand
    for p in params:
        p.grad = np.ones(3)
    opt.step()
    assert opt.state[params[0]]["step"] == 3 and opt.state[params[1]]["step"] == 1


def test_number_gradients_and_checks_before_any_update():
    a, b = Tensor(1.0, requires_grad=True), Tensor(2.0, requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = b.grad = 0.5  # plain numbers on 0-d parameters
    opt.step()
    assert a.data == 0.75 and b.data == 1.75
    c = Tensor(np.zeros(2), requires_grad=True)
    opt = optim.SGD([a, c, b], lr=0.5)
    a.grad, c.grad = 1.0, None
    b.grad.data = np.ones(3)  # wrong (assigning b.grad = np.ones(3) is refused at once)
    with pytest.raises(ValueError, match=r"parameter 2 of group 0 has shape \(\) but its "
                                         r"gradient has shape \(3,\)"):
        opt.step()
    assert a.data == 0.75  # nothing was updated


def _ones(*shapes):
    return [Tensor(np.ones(s), requires_grad=True) for s in shapes]


def test_a_reset_buffer_is_refilled_where_the_state_shows_it():
    a, b = _ones(2, 2)
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    for reset in (False, True):
        a.grad = b.grad = np.ones(2)
        if reset:
            for p in (a, b):
                opt.state[p]["momentum_buffer"] = None
        opt.step()
    np.testing.assert_array_equal(opt.state[a]["momentum_buffer"], [1.0, 1.0])
    a.grad, b.grad = np.ones(2), None  # a one-by-one step must see that buffer
    opt.step()
    np.testing.assert_allclose(a.data, 1 - 0.1 * (1 + 1 + 1.9))


def test_state_in_pytorchs_shape_and_odd_state_fall_back_to_one_by_one():
    a, b = _ones(2, 3)
    opt = optim.Adam([a, b], lr=0.1)
    for p in (a, b):  # what a torch user would set: no scratch buffers, a 0-d step
        opt.state[p] = {"step": np.array(0.0), "exp_avg": np.zeros(p.shape),
                        "exp_avg_sq": np.zeros(p.shape)}
    ref = _ones(2, 3)
    ref_opts = [optim.Adam([p], lr=0.1) for p in ref]
    for _ in range(2):
        for p in (a, b, *ref):
            p.grad = np.full(p.shape, 0.5)
        opt.step()
        for o in ref_opts:
            o.step()
    for p, q in zip((a, b), ref):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-15)


def test_rebound_data_of_other_sizes_is_not_mixed_into_other_state():
    a, b = _ones(2, 3)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.ones(2), np.ones(3)
    opt.step()
    a.data, b.data = np.zeros(3), np.zeros(2)  # sizes swapped: the moments no longer fit
    a.grad, b.grad = np.ones(3), np.ones(2)
    with pytest.raises(ValueError):
        opt.step()  # as PyTorch and one optimizer per parameter: an error, not a mix


def test_parameters_sharing_memory_stay_tied():
    base = np.ones(2)
    a, b = Tensor(base, requires_grad=True), Tensor(np.zeros(1), requires_grad=True)
    b.data = a.data  # the same array behind two parameters
    opt = optim.SGD([a, b], lr=0.1)
    for _ in range(2):
        a.grad, b.grad = np.ones(2), np.ones(2)
        opt.step()
    np.testing.assert_allclose(a.data, 0.6)  # each step moved the array twice
    assert a.data is b.data


def test_a_bad_gradient_in_any_group_stops_the_whole_step():
    a, b, c = _ones(2, 2, 2)
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1)
    a.grad, b.grad, c.grad = np.ones(2), np.ones(2), np.ones(2)
    c.grad.data = np.ones(3)
    with pytest.raises(ValueError, match=r"parameter 0 of group 1 has shape \(2,\)"):
        opt.step()
    c.grad.data = np.array(["x", "y"])
    with pytest.raises(ValueError, match="non-numeric dtype"):
        opt.step()
    assert all(np.array_equal(p.data, np.ones(2)) for p in (a, b, c))


def test_value_groups_must_keep_their_members():
    a, b = Value(1.0), Value(2.0)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = b.grad = 1.0
    opt.step()
    opt.param_groups[0]["params"].append(Value(3.0))
    with pytest.raises(ValueError, match="Value parameters of group 0 are not the ones"):
        opt.step()
    opt.param_groups[0]["params"].pop()
    b.grad = None
    before = a.data
    with pytest.raises(ValueError, match=r"Value parameter 1 of group 0 has grad None"):
        opt.step()
    assert a.data == before  # nothing moved
    b.grad = 1.0
    opt.step()  # the original members carry on
    assert a.data < before


@pytest.mark.parametrize("edit", ["setitem", "del", "pop", "update", "clear", "ior",
                                  "setdefault", "popitem", "replace"])
def test_every_kind_of_state_edit_is_noticed(edit):
    a, b = _ones(2, 2)
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = b.grad = np.ones(2)
    opt.step()
    state = opt.state[a]
    if edit == "setitem":
        state["momentum_buffer"] = np.zeros(2)
    elif edit == "del":
        del state["momentum_buffer"]
    elif edit == "pop":
        state.pop("momentum_buffer")
    elif edit == "update":
        state.update(momentum_buffer=np.zeros(2))
    elif edit == "clear":
        state.clear()
    elif edit == "ior":
        state |= {"momentum_buffer": np.zeros(2)}
    elif edit == "setdefault":
        state.setdefault("extra", 1.0)
    elif edit == "popitem":
        state.popitem()
    else:
        opt.state[a] = {"momentum_buffer": np.zeros(2)}
    ref = Tensor(a.data.copy(), requires_grad=True)
    ref_opt = optim.SGD([ref], lr=0.1, momentum=0.9)
    if "momentum_buffer" in opt.state[a]:
        ref_opt.state[ref] = {"momentum_buffer": opt.state[a]["momentum_buffer"].copy()}
    a.grad = b.grad = ref.grad = np.ones(2)
    opt.step()
    ref_opt.step()
    np.testing.assert_array_equal(a.data, ref.data)  # stepped from the edited state


# -- hyperparameters: NaN passes every `x < 0` check, a string fails it with a bare error

_HYPER = [(optim.SGD, k) for k in ("lr", "momentum", "weight_decay", "dampening")] + [
    (cls, k) for cls in (optim.Adam, optim.AdamW) for k in ("lr", "eps", "weight_decay")] + [
    (optim.RMSprop, k) for k in ("lr", "alpha", "eps", "momentum", "weight_decay")]


@pytest.mark.parametrize("cls,key", _HYPER)
@pytest.mark.parametrize("bad", [math.nan, math.inf, np.float32("nan")])
def test_non_finite_hyperparameters_are_refused(cls, key, bad):
    kw = {"lr": 0.1, key: bad}
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {key} must .*got "
                                         rf"{re.escape(repr(bad))}$"):
        cls(_ones(2), **kw)
    # a parameter group's own value is checked too
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {key} must"):
        cls([{"params": _ones(2), key: bad}], lr=0.1)


@pytest.mark.parametrize("cls,key", _HYPER)
@pytest.mark.parametrize("bad", ["0.1", None, [0.1], True])
def test_hyperparameters_that_are_not_numbers_are_refused(cls, key, bad):
    kw = {"lr": 0.1, key: bad}
    with pytest.raises(TypeError, match=rf"^{cls.__name__}: {key} must be a number, got "
                                        rf"{re.escape(repr(bad))}"):
        cls(_ones(2), **kw)


@pytest.mark.parametrize("betas,error,match", [
    ((math.nan, 0.999), ValueError, r"betas\[0\] must lie in \[0, 1\), got nan"),
    ((0.9, math.nan), ValueError, r"betas\[1\] must lie in \[0, 1\), got nan"),
    ((0.9, 1.0), ValueError, r"betas\[1\] must lie in \[0, 1\)"),
    (("0.9", 0.999), TypeError, r"betas\[0\] must be a number, got '0.9'"),
    (0.9, TypeError, r"betas must be a pair of numbers, got 0.9"),
    ((0.9,), TypeError, r"betas must be a pair of numbers, got \(0.9,\)"),
])
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_adam_betas_are_checked(cls, betas, error, match):
    with pytest.raises(error, match=rf"^{cls.__name__}: {match}"):
        cls(_ones(2), betas=betas)


@pytest.mark.parametrize("cls, flag", [(optim.SGD, "nesterov"), (optim.Adam, "amsgrad"),
                                       (optim.AdamW, "amsgrad"), (optim.RMSprop, "centered")])
@pytest.mark.parametrize("bad", [1, "yes", None])
def test_flags_must_be_bools(cls, flag, bad):
    with pytest.raises(TypeError, match=rf"^{cls.__name__}: {flag} must be True or False, "
                                        rf"got {re.escape(repr(bad))}"):
        cls(_ones(2), lr=0.1, **{flag: bad})


def test_valid_hyperparameters_of_every_numeric_type_are_kept():
    opt = optim.SGD(_ones(2), lr=np.float32(0.1), momentum=1, dampening=-0.5)
    assert opt.param_groups[0]["lr"] == np.float32(0.1)
    optim.Adam(_ones(2), lr=0, betas=[0, np.float64(0.5)], eps=0)
    optim.RMSprop(_ones(2), lr=1e-3, alpha=1, momentum=np.int64(0))


# -- AdamW, lr edits, added groups, zero_grad: against PyTorch --------------------------

def _set_grad(p, g, kind):
    """`.grad` as an ndarray or as a Tensor (the engine gives either, depending on its
    version); the optimizers and clipping must take both."""
    p.grad = g.copy() if kind == "ndarray" else Tensor(g.copy())


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-15),
                                               (np.float32, 2e-5, 1e-6)])
@pytest.mark.parametrize("grad_kind", ["ndarray", "tensor"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_matches_torch_over_many_steps(rng, dtype, rtol, atol, grad_kind, amsgrad):
    torch = pytest.importorskip("torch")
    shapes = [(5, 4), (4,), (3,)]
    init = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = [[rng.normal(size=s).astype(dtype) for s in shapes] for _ in range(25)]
    kw = dict(lr=3e-2, betas=(0.8, 0.7), weight_decay=0.2, amsgrad=amsgrad)
    ours = [Tensor(x.copy(), requires_grad=True) for x in init]
    theirs = [torch.tensor(x.copy(), requires_grad=True) for x in init]
    opt = optim.AdamW(ours, **kw)
    topt = torch.optim.AdamW(theirs, **kw)
    for gs in grads:
        for p, t, g in zip(ours, theirs, gs):
            _set_grad(p, g, grad_kind)
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, t in zip(ours, theirs):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=atol)
    assert 0 in opt._flat  # the flat path was the one compared
    # the decoupled decay and amsgrad both matter here: neither comparison is vacuous
    plain = _run_ours(optim.Adam, init, grads, **kw)
    other = _run_ours(optim.AdamW, init, grads, **{**kw, "amsgrad": not amsgrad})
    for a, b, c in zip(ours, plain, other):
        assert not np.allclose(a.data, b, rtol=1e-3) and not np.allclose(a.data, c, rtol=1e-3)


def test_adamw_signature_and_defaults_are_pytorchs():
    opt = optim.AdamW(_ones(2))
    group = opt.param_groups[0]
    assert {k: group[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")} == dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)
    opt = optim.AdamW(_ones(2), 0.1, (0.5, 0.6), 1e-6, 0.3, True)  # positional, as in torch
    assert opt.param_groups[0]["betas"] == (0.5, 0.6) and opt.param_groups[0]["amsgrad"]
    assert optim.SGD(_ones(2)).param_groups[0]["lr"] == 1e-3  # torch's SGD default too


@pytest.mark.parametrize("name, kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                      ("Adam", dict(lr=0.05)),
                                      ("AdamW", dict(lr=0.05, weight_decay=0.1)),
                                      ("RMSprop", dict(lr=0.01, momentum=0.5))])
@pytest.mark.parametrize("grad_kind", ["ndarray", "tensor"])
def test_lr_edits_and_added_groups_match_torch(rng, name, kw, grad_kind):
    torch = pytest.importorskip("torch")
    init = [rng.normal(size=(3, 2)), rng.normal(size=4), rng.normal(size=2)]
    grads = [[rng.normal(size=x.shape) for x in init] for _ in range(8)]

    def run(lr_edit):
        ours = [Tensor(x.copy(), requires_grad=True) for x in init]
        theirs = [torch.tensor(x.copy(), requires_grad=True) for x in init]
        opt = getattr(optim, name)(ours[:2], **kw)
        topt = getattr(torch.optim, name)(theirs[:2], **kw)
        for t, gs in enumerate(grads):
            if t == 2 and lr_edit:
                opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = kw["lr"] * 3
            if t == 4:  # a new group mid-run, with its own lr and the defaults otherwise
                opt.add_param_group({"params": [ours[2]], "lr": 0.02})
                topt.add_param_group({"params": [theirs[2]], "lr": 0.02})
            n = 2 if t < 4 else 3
            for p, q, g in zip(ours[:n], theirs[:n], gs):
                _set_grad(p, g, grad_kind)
                q.grad = torch.tensor(g)
            opt.step()
            topt.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)
        mine, torchs = opt.param_groups[1], topt.param_groups[1]
        assert all(mine[k] == torchs[k] for k in mine if k != "params")
        assert opt.state_dict()["param_groups"][1]["params"] == [2] == \
            topt.state_dict()["param_groups"][1]["params"]
        return [p.data for p in ours]

    edited, plain = run(True), run(False)
    assert not np.allclose(edited[0], plain[0])  # the lr edit did change the steps
    opt = getattr(optim, name)(_ones(2), **kw)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": opt.param_groups[0]["params"]})


@pytest.mark.parametrize("grad_kind", ["ndarray", "tensor"])
def test_zero_grad_sets_none_by_default_or_zeroes_in_place(grad_kind):
    import inspect
    assert inspect.signature(optim.Optimizer.zero_grad).parameters["set_to_none"].default
    t, u, v = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(2), requires_grad=True), \
        Value(1.0)
    opt = optim.SGD([t, u, v], lr=0.1)
    _set_grad(t, np.full(3, 2.0), grad_kind)
    v.grad = 3.0
    held = t.grad.data
    opt.zero_grad(set_to_none=False)  # as torch: the same gradient array, now zeros
    assert t.grad.data is held and np.array_equal(held, np.zeros(3))
    assert u.grad is None and v.grad == 0.0
    opt.zero_grad()
    assert t.grad is None and v.grad == 0.0


# -- gradient clipping (nn.utils): against PyTorch --------------------------------------

def _clip_setup(rng, torch, grad_kind, dtype=np.float64, scale=1.0):
    shapes = [(3, 4), (5,), ()]
    grads = [np.array(scale * rng.normal(size=s), dtype=dtype) for s in shapes]
    ours = [Tensor(np.zeros(s, dtype), requires_grad=True) for s in shapes + [(2,)]]
    theirs = [torch.zeros(s, dtype=torch.float64 if dtype == np.float64 else torch.float32,
                          requires_grad=True) for s in shapes + [(2,)]]
    for p, q, g in zip(ours, theirs, grads):  # (the last parameter has no gradient)
        _set_grad(p, g, grad_kind)
        q.grad = torch.tensor(g)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("grad_kind", ["ndarray", "tensor"])
def test_clip_grad_norm_matches_torch(rng, norm_type, max_norm, grad_kind):
    torch = pytest.importorskip("torch")
    ours, theirs = _clip_setup(rng, torch, grad_kind)
    held = [p.grad.data for p in ours[:3]]
    before = [h.copy() for h in held]
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, Tensor) and total.shape == () and total.dtype == np.float64
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-14)
    for p, q, h, b in zip(ours, theirs, held, before):
        assert p.grad.data is h  # scaled in place
        np.testing.assert_allclose(h, q.grad.numpy(), rtol=1e-14)
        if max_norm > total.item():
            assert np.array_equal(h, b)  # (a factor of 1: untouched)
    assert ours[3].grad is None
    if max_norm < total.item():  # the clipped gradients have the norm asked for
        flat = np.concatenate([h.reshape(-1) for h in held])
        p = math.inf if norm_type == "inf" else norm_type
        assert np.linalg.norm(flat, ord=p) == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_float32_single_tensor_and_no_grads(rng):
    torch = pytest.importorskip("torch")
    ours, theirs = _clip_setup(rng, torch, "ndarray", dtype=np.float32)
    total = nn.utils.clip_grad_norm_(ours, 0.1)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 0.1)
    assert total.dtype == np.float32
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    for p, q in zip(ours[:3], theirs):
        assert np.asarray(p.grad).dtype == np.float32
        np.testing.assert_allclose(np.asarray(p.grad), q.grad.numpy(), rtol=1e-6)
    one = Tensor(np.zeros(2), requires_grad=True)
    one.grad = np.array([3.0, 4.0])
    assert nn.utils.clip_grad_norm_(one, 1.0).item() == 5.0  # a single Tensor, as torch
    none = nn.utils.clip_grad_norm_([Tensor(np.zeros(2), requires_grad=True)], 1.0)
    assert isinstance(none, Tensor) and none.item() == 0.0


@pytest.mark.parametrize("grad_kind", ["ndarray", "tensor"])
def test_clip_grad_norm_non_finite(rng, grad_kind):
    torch = pytest.importorskip("torch")
    ours, theirs = _clip_setup(rng, torch, grad_kind)
    ours[1].grad.data[2] = math.inf
    theirs[1].grad[2] = math.inf
    before = [np.asarray(p.grad).copy() for p in ours[:3]]
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: the total norm of order 2.0 .* "
                                           r"is inf"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    for p, b in zip(ours, before):
        assert np.array_equal(np.asarray(p.grad), b)  # nothing scaled
    total = nn.utils.clip_grad_norm_(ours, 1.0)  # as torch: scaled by the infinite norm
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert total.item() == expected.item() == math.inf
    for p, q in zip(ours[:3], theirs):
        np.testing.assert_array_equal(np.asarray(p.grad), q.grad.numpy())


@pytest.mark.parametrize("grad_kind", ["ndarray", "tensor"])
def test_clip_grad_value_matches_torch(rng, grad_kind):
    torch = pytest.importorskip("torch")
    ours, theirs = _clip_setup(rng, torch, grad_kind)
    held = [p.grad.data for p in ours[:3]]
    assert nn.utils.clip_grad_value_(ours, 0.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, q, h in zip(ours, theirs, held):
        assert p.grad.data is h
        np.testing.assert_array_equal(h, q.grad.numpy())
    assert max(np.abs(h).max() for h in held) == 0.5


def test_clipping_refuses_bad_arguments():
    p = Tensor(np.zeros(2), requires_grad=True)
    p.grad = np.ones(2)
    clip, value = nn.utils.clip_grad_norm_, nn.utils.clip_grad_value_
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match=r"^clip_grad_norm_: max_norm must be >= 0"):
            clip([p], bad)
        with pytest.raises(ValueError, match=r"^clip_grad_value_: clip_value must be >= 0"):
            value([p], bad)
    for bad in (0, -2.0, math.nan):
        with pytest.raises(ValueError, match=r"^clip_grad_norm_: norm_type must be a number"):
            clip([p], 1.0, norm_type=bad)
    with pytest.raises(TypeError, match=r"^clip_grad_norm_: norm_type must be a number"):
        clip([p], 1.0, norm_type="two")
    with pytest.raises(TypeError, match=r"^clip_grad_norm_: parameter 1 is a ndarray"):
        clip([p, np.ones(2)], 1.0)
    q = Tensor(1.0, requires_grad=True)
    q.grad = 0.5  # (assigned numbers become a Tensor of q's dtype, which can be scaled)
    assert clip([p, q], 1.0).item() == pytest.approx(1.5)
    assert q.grad.dtype == np.float64 and q.grad.item() == pytest.approx(0.5 / 1.5, rel=1e-5)
    p.grad = np.ones(2)
    assert np.array_equal(p.grad, np.ones(2))  # none of the above touched it
