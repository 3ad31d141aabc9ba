"""Optimizer and scheduler state_dicts: PyTorch's layout, loading both ways, exact resumes,
and every bad state_dict refused without changing anything."""

import copy
import math
import re

import numpy as np
import pytest

import nn
from autodiff import Tensor, Value
from nn import optim

SHAPES = [(3, 4), (4,), (2,)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.6), amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CONFIGS]


def _grads(rng, steps, shapes=SHAPES):
    return [[rng.normal(size=s) for s in shapes] for _ in range(steps)]


def _build(name, kw, init, lib=optim, make=None):
    """Parameters from `init` in two groups (the second with its own lr) and an optimizer."""
    make = make or (lambda x: Tensor(x.copy(), requires_grad=True))
    params = [make(x) for x in init]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.05}]
    return params, getattr(lib, name)(groups, **kw)


def _step(params, opt, grads, torch=None):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g) if torch else g.copy()
        opt.step()


def _to_numpy(obj, torch):
    """A torch state_dict as it arrives here: every tensor through `.numpy()`."""
    if isinstance(obj, torch.Tensor):
        return obj.numpy().copy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v, torch) for v in obj)
    return obj


def _to_torch(obj, torch):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: _to_torch(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(v, torch) for v in obj)
    return obj


def _as_loaded(obj):
    """The state_dict as `autodiff.load` gives it back: arrays as autodiff Tensors."""
    if isinstance(obj, np.ndarray):
        return Tensor(obj.copy())
    if isinstance(obj, dict):
        return {k: _as_loaded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_as_loaded(v) for v in obj)
    return obj


def _plain(obj):
    """Only what a safetensors file can carry: dicts with str/int keys, lists, tuples,
    numbers, bools, None, strings and ndarrays."""
    if isinstance(obj, dict):
        return all(type(k) in (str, int) and _plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(map(_plain, obj))
    return obj is None or type(obj) in (bool, int, float, str, np.ndarray)


def _same(a, b) -> bool:
    """Deep equality of state_dicts, arrays bit for bit."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


# -- the layout ------------------------------------------------------------------------

@pytest.mark.parametrize("name, kw", CONFIGS, ids=IDS)
def test_layout_is_pytorchs(rng, name, kw):
    torch = pytest.importorskip("torch")
    init = [rng.normal(size=s) for s in SHAPES]
    grads = _grads(rng, 3)
    params, opt = _build(name, kw, init)
    tparams, topt = _build(name, kw, init, torch.optim,
                           lambda x: torch.tensor(x.copy(), requires_grad=True))
    params[1].grad = np.ones(4)  # one step for parameter 1 alone: the others have no state
    tparams[1].grad = torch.ones(4, dtype=torch.float64)
    for o in (opt, topt):
        o.step()
    ours, theirs = opt.state_dict(), _to_numpy(topt.state_dict(), torch)
    assert list(ours) == ["state", "param_groups"]
    assert list(ours["state"]) == list(theirs["state"]) == ([] if kw == dict(lr=0.1) else [1])
    _step(params, opt, grads)
    _step(tparams, topt, grads, torch)
    ours, theirs = opt.state_dict(), _to_numpy(topt.state_dict(), torch)
    assert _plain(ours)
    assert [g["params"] for g in ours["param_groups"]] == [[0, 1], [2]] == \
        [g["params"] for g in theirs["param_groups"]]
    for mine, torchs in zip(ours["param_groups"], theirs["param_groups"]):
        assert set(mine) <= set(torchs)  # ours: the hyperparameters we compute with
        assert all(mine[k] == torchs[k] for k in mine)
    assert list(ours["state"]) == sorted(theirs["state"])  # (ours in index order)
    for i, entry in ours["state"].items():
        assert list(entry) == list(theirs["state"][i])  # PyTorch's keys, in its order
        for key, value in entry.items():
            if key == "step":
                assert type(value) is int and value == theirs["state"][i][key]
            else:
                assert value.shape == SHAPES[i] and value.dtype == np.float64
                np.testing.assert_allclose(value, theirs["state"][i][key], rtol=1e-12,
                                           atol=1e-15)


@pytest.mark.parametrize("name, kw", CONFIGS, ids=IDS)
def test_state_dict_is_a_copy_and_loading_copies(rng, name, kw):
    init = [rng.normal(size=s) for s in SHAPES]
    params, opt = _build(name, kw, init)
    _step(params, opt, _grads(rng, 2))
    sd = opt.state_dict()
    kept = copy.deepcopy(sd)
    _step(params, opt, _grads(rng, 1))
    assert _same(sd, kept)  # later steps do not reach into a state_dict taken before
    for entry in sd["state"].values():
        for value in entry.values():
            if isinstance(value, np.ndarray):
                value += 1.0  # nor does editing it reach into the optimizer
    sd["param_groups"][0]["lr"] = 123.0
    assert opt.param_groups[0]["lr"] != 123.0
    opt.load_state_dict(kept)
    loaded = opt.state_dict()
    for entry in kept["state"].values():
        for value in entry.values():
            if isinstance(value, np.ndarray):
                value *= 0.0
    assert _same(opt.state_dict(), loaded)
    assert _same(loaded, kept) == (not loaded["state"] or name == "SGD" and "momentum" not in kw)


# -- PyTorch's into ours and ours into PyTorch -----------------------------------------

@pytest.mark.parametrize("name, kw", CONFIGS, ids=IDS)
@pytest.mark.parametrize("as_tensors", [False, True])
def test_torch_state_loads_into_ours_and_continues(rng, name, kw, as_tensors):
    torch = pytest.importorskip("torch")
    init = [rng.normal(size=s) for s in SHAPES]
    grads = _grads(rng, 10)
    tparams, topt = _build(name, kw, init, torch.optim,
                           lambda x: torch.tensor(x.copy(), requires_grad=True))
    _step(tparams, topt, grads[:5], torch)
    sd = _to_numpy(topt.state_dict(), torch)  # "step" a 0-d float32 array here
    if as_tensors:
        sd = _as_loaded(sd)
    start = [t.detach().numpy().copy() for t in tparams]
    params, opt = _build(name, {**kw, "lr": 0.7}, start)  # (the lr comes from the state)
    opt.load_state_dict(sd)
    assert opt.param_groups[1]["lr"] == 0.05
    assert all(type(s["step"]) is int for s in opt.state.values() if "step" in s)
    _step(params, opt, grads[5:])
    _step(tparams, topt, grads[5:], torch)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, kw", CONFIGS, ids=IDS)
def test_our_state_loads_into_torch_and_continues(rng, name, kw):
    torch = pytest.importorskip("torch")
    init = [rng.normal(size=s) for s in SHAPES]
    grads = _grads(rng, 10)
    params, opt = _build(name, kw, init)
    _step(params, opt, grads[:5])
    tparams, topt = _build(name, {**kw, "lr": 0.7}, [p.data for p in params], torch.optim,
                           lambda x: torch.tensor(x.copy(), requires_grad=True))
    topt.load_state_dict(_to_torch(opt.state_dict(), torch))
    _step(params, opt, grads[5:])
    _step(tparams, topt, grads[5:], torch)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sched, args", [("StepLR", (2, 0.5)), ("CosineAnnealingLR", (6, 0.01))])
def test_scheduler_states_move_both_ways(sched, args):
    torch = pytest.importorskip("torch")
    import warnings
    p, tp = Tensor(np.ones(1), requires_grad=True), torch.ones(1, requires_grad=True)

    def pair(lib, param):
        opt = lib.SGD([param], lr=0.5)
        module = lib if lib is optim else lib.lr_scheduler
        return opt, getattr(module, sched)(opt, *args)

    opt, s = pair(optim, p)
    topt, ts = pair(torch.optim, tp)
    with warnings.catch_warnings():  # (torch's "step the optimizer first" reminder)
        warnings.simplefilter("ignore")
        for _ in range(4):
            s.step()
            ts.step()
        ours, theirs = s.state_dict(), ts.state_dict()
        assert _plain(ours) and set(ours) <= set(theirs)
        assert all(ours[k] == theirs[k] for k in ours)
        # torch's into ours, ours into torch: each continues as the other
        opt2, s2 = pair(optim, Tensor(np.ones(1), requires_grad=True))
        topt2, ts2 = pair(torch.optim, torch.ones(1, requires_grad=True))
        opt2.load_state_dict(opt.state_dict())
        s2.load_state_dict(theirs)
        topt2.load_state_dict(topt.state_dict())
        ts2.load_state_dict(ours)
        for _ in range(8):
            for x in (s, ts, s2, ts2):
                x.step()
            assert s.get_last_lr() == ts.get_last_lr() == s2.get_last_lr() == \
                ts2.get_last_lr()


# -- resuming ----------------------------------------------------------------------------

def _model(seed):
    import autodiff
    autodiff.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


RESUMES = [("SGD", dict(lr=0.1, momentum=0.9), "StepLR", (2,)),
           ("Adam", dict(lr=0.02, amsgrad=True), "CosineAnnealingLR", (5,)),
           ("AdamW", dict(lr=0.02), "StepLR", (3, 0.5)),
           ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True), "CosineAnnealingLR", (4,))]


@pytest.mark.parametrize("name, kw, sched, args", RESUMES,
                         ids=[r[0] + "-" + r[2] for r in RESUMES])
def test_resume_continues_bit_for_bit(rng, name, kw, sched, args):
    x, y = Tensor(rng.normal(size=(8, 3))), Tensor(rng.normal(size=(8, 2)))

    def build(seed):
        model = _model(seed)
        opt = getattr(optim, name)(model.parameters(), **kw)
        return model, opt, getattr(optim, sched)(opt, *args)

    def epochs(model, opt, s, n):
        for _ in range(n):
            for _ in range(2):
                opt.zero_grad()
                ((model(x) - y) ** 2).mean().backward()
                opt.step()
            s.step()

    straight = build(0)
    epochs(*straight, 7)
    first = build(0)
    epochs(*first, 3)
    saved = {"model": first[0].state_dict(), "optimizer": first[1].state_dict(),
             "scheduler": first[2].state_dict(), "epoch": 3}
    assert _plain({k: dict(v) if k == "model" else v for k, v in saved.items()})
    saved = _as_loaded(copy.deepcopy(saved))  # as autodiff.load would give it back
    resumed = build(1)  # other initial weights: everything must come from the file
    resumed[0].load_state_dict(saved["model"])
    resumed[1].load_state_dict(saved["optimizer"])
    resumed[2].load_state_dict(saved["scheduler"])
    epochs(*resumed, 4)
    for a, b in zip(straight[0].parameters(), resumed[0].parameters()):
        assert np.array_equal(a.data, b.data)
    assert _same(straight[1].state_dict(), resumed[1].state_dict())
    assert straight[2].get_last_lr() == resumed[2].get_last_lr()
    assert straight[2].state_dict() == resumed[2].state_dict()


@pytest.mark.parametrize("name, kw", CONFIGS, ids=IDS)
def test_loading_into_a_stepped_optimizer_replaces_its_flat_state(rng, name, kw):
    init = [rng.normal(size=s) for s in SHAPES]
    grads = _grads(rng, 9)
    src_params, src = _build(name, kw, init)
    _step(src_params, src, grads[:5])
    params, opt = _build(name, kw, init)
    _step(params, opt, grads[5:7])  # its own flat buffers and state, soon stale
    arrays, versions = [p.data for p in params], [p._version for p in params]
    for p, q in zip(params, src_params):
        p.data[...] = q.data
    opt.load_state_dict(src.state_dict())
    # (the parameters themselves are not touched by loading an optimizer's state)
    assert all(p.data is a for p, a in zip(params, arrays))
    assert [p._version for p in params] == versions
    _step(src_params, src, grads[7:])
    _step(params, opt, grads[7:])
    for p, q, a in zip(params, src_params, arrays):
        assert p.data is a and np.array_equal(p.data, q.data)
    assert _same(opt.state_dict(), src.state_dict())
    flat = opt._flat[0]  # the next step laid the loaded state out in a new flat group
    for p in params[:2]:
        for key, value in opt.state[p].items():
            if isinstance(value, np.ndarray):
                assert np.shares_memory(value, flat.state[key])


def test_value_parameters_state_dict(rng):
    values = [Value(float(x)) for x in rng.normal(size=3)]
    t = Tensor(rng.normal(size=2), requires_grad=True)
    opt = optim.Adam([values[0], t, *values[1:]], lr=0.1)  # Values and a Tensor, mixed
    for _ in range(3):
        for v in values:
            v.grad = float(rng.normal())
        t.grad = rng.normal(size=2)
        opt.step()
    sd = opt.state_dict()
    assert _plain(sd) and list(sd["state"]) == [0, 1, 2, 3]
    for i in (0, 2, 3):
        assert sd["state"][i]["step"] == 3
        assert sd["state"][i]["exp_avg"].shape == () and sd["state"][i]["exp_avg"].dtype == \
            np.float64
    assert sd["state"][1]["exp_avg"].shape == (2,)
    copies = [Value(v.data) for v in values]
    t2 = Tensor(t.data.copy(), requires_grad=True)
    opt2 = optim.Adam([copies[0], t2, *copies[1:]], lr=0.5)
    opt2.load_state_dict(_as_loaded(sd))
    for _ in range(2):
        gs = rng.normal(size=3)
        g = rng.normal(size=2)
        for vs, tt, o in ((values, t, opt), (copies, t2, opt2)):
            for v, gi in zip(vs, gs):
                v.grad = float(gi)
            tt.grad = g.copy()
            o.step()
    assert [v.data for v in values] == [v.data for v in copies]
    assert np.array_equal(t.data, t2.data)
    broken = copy.deepcopy(sd)
    broken["state"][2]["step"] = 2  # the Values of a group share one step count
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: the Value parameters of "
                                         r"group 0 share one state"):
        opt2.load_state_dict(broken)
    del broken["state"][2]
    with pytest.raises(ValueError, match="parameter 2 has none"):
        opt2.load_state_dict(broken)


@pytest.mark.parametrize("step", [4, 4.0, np.float32(4), np.array(4.0, np.float32),
                                  np.int64(4), Tensor(np.array(4.0))])
def test_step_counts_in_every_form_load_as_ints(step):
    p = Tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    opt.load_state_dict({"state": {0: {"step": step, "exp_avg": np.ones(2),
                                       "exp_avg_sq": np.ones(2)}},
                         "param_groups": [{**opt.state_dict()["param_groups"][0]}]})
    assert opt.state[p]["step"] == 4 and type(opt.state[p]["step"]) is int


def test_float_state_of_another_width_is_cast_as_pytorch_does():
    p = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    sd = {"state": {0: {"momentum_buffer": np.array([0.5, 1.0])}},
          "param_groups": opt.state_dict()["param_groups"]}
    opt.load_state_dict(sd)
    assert opt.state[p]["momentum_buffer"].dtype == np.float32
    opt.load_state_dict({**sd, "state": {0: {"momentum_buffer": None}}})  # torch's "not yet"
    p.grad = np.ones(2, dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], [1.0, 1.0])


# -- bad state_dicts: a clear error naming the optimizer, and nothing changed ------------

def _good(opt):
    return opt.state_dict()


def _edit(fn):
    def make(sd):
        sd = copy.deepcopy(sd)
        fn(sd)
        return sd
    return make


BAD = [
    ("not a dict", lambda sd: [sd], ValueError, r"exactly the keys 'state' and 'param_groups'"),
    ("extra key", _edit(lambda sd: sd.update(epoch=3)), ValueError, r"exactly the keys"),
    ("one group", _edit(lambda sd: sd["param_groups"].pop()), ValueError,
     r"the state_dict has 1 parameter groups but the Adam has 2"),
    ("group size", _edit(lambda sd: sd["param_groups"][0]["params"].pop()), ValueError,
     r"parameter group 0 has 2 parameters in the Adam but 1 in the state_dict"),
    ("index twice", _edit(lambda sd: sd["param_groups"][1]["params"].__setitem__(0, 1)),
     ValueError, r"lists parameter index 1 twice"),
    ("index not int", _edit(lambda sd: sd["param_groups"][1]["params"].__setitem__(0, "2")),
     TypeError, r"parameter group 1 lists '2' \(str\), not an integer"),
    ("stray state", _edit(lambda sd: sd["state"].__setitem__(7, {})), ValueError,
     r"state for parameter 7, which no parameter group lists"),
    ("state key str", _edit(lambda sd: sd["state"].__setitem__("0", sd["state"].pop(0))),
     TypeError, r"'state' has a key '0' \(str\)"),
    ("shape", _edit(lambda sd: sd["state"][1].__setitem__("exp_avg", np.zeros(5))), ValueError,
     r"state 'exp_avg' of parameter 1 has shape \(5,\) but the parameter has shape \(4,\)"),
    ("dtype", _edit(lambda sd: sd["state"][0].__setitem__("exp_avg_sq", np.zeros((3, 4), int))),
     TypeError, r"state 'exp_avg_sq' of parameter 0 has dtype int64; it must be floating"),
    ("None buffer", _edit(lambda sd: sd["state"][0].__setitem__("exp_avg", None)), TypeError,
     r"state 'exp_avg' of parameter 0 has dtype object"),
    ("unknown key", _edit(lambda sd: sd["state"][0].__setitem__("momentum_buffer", np.zeros(
        (3, 4)))), ValueError, r"parameter 0 has \['momentum_buffer'\], which Adam does not "
                               r"keep \(its keys: \['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq',"),
    ("missing key", _edit(lambda sd: sd["state"][2].pop("exp_avg_sq")), ValueError,
     r"the state of parameter 2 lacks \['exp_avg_sq'\]"),
    ("amsgrad on", _edit(lambda sd: sd["param_groups"][0].__setitem__("amsgrad", True)),
     ValueError, r"parameter 0 lacks \['max_exp_avg_sq'\]"),
    ("negative step", _edit(lambda sd: sd["state"][0].__setitem__("step", -1)), ValueError,
     r"the step of parameter 0 must be a whole number >= 0, got -1"),
    ("fractional step", _edit(lambda sd: sd["state"][0].__setitem__("step", 2.5)), ValueError,
     r"got 2.5"),
    ("nan step", _edit(lambda sd: sd["state"][0].__setitem__("step", math.nan)), ValueError,
     r"got nan"),
    ("inf step", _edit(lambda sd: sd["state"][0].__setitem__("step", math.inf)), ValueError,
     r"got inf"),
    ("state not dict", _edit(lambda sd: sd["state"].__setitem__(0, [1])), TypeError,
     r"the state of parameter 0 must be a dict"),
    ("missing hyper", _edit(lambda sd: sd["param_groups"][1].pop("betas")), ValueError,
     r"parameter group 1 of the state_dict lacks the hyperparameters \['betas'\] of Adam"),
    ("bad hyper", _edit(lambda sd: sd["param_groups"][1].__setitem__("lr", math.nan)),
     ValueError, r"parameter group 1: Adam: lr must be a finite number >= 0, got nan"),
    ("bad betas", _edit(lambda sd: sd["param_groups"][0].__setitem__("betas", (0.9, 1.5))),
     ValueError, r"parameter group 0: Adam: betas\[1\] must lie in \[0, 1\)"),
    ("maximize", _edit(lambda sd: sd["param_groups"][0].__setitem__("maximize", True)),
     ValueError, r"parameter group 0 has maximize=True; Adam computes only the update of "
                 r"maximize=False"),
    ("AdamW's", _edit(lambda sd: sd["param_groups"][0].__setitem__("decoupled_weight_decay",
                                                                    True)),
     ValueError, r"decoupled_weight_decay=True; Adam computes only the update of "
                 r"decoupled_weight_decay=False"),
]


@pytest.mark.parametrize("what, make, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_state_dicts_are_refused_and_change_nothing(rng, what, make, error, match):
    init = [rng.normal(size=s) for s in SHAPES]
    grads = _grads(rng, 6)
    params, opt = _build("Adam", dict(lr=0.01), init)
    _step(params, opt, grads[:2])
    bad = make(_good(opt))
    ref_params, ref = _build("Adam", dict(lr=0.01), init)
    _step(ref_params, ref, grads[:2])
    _step(params, opt, grads[2:3])  # (the optimizer moved on: its flat group is live)
    _step(ref_params, ref, grads[2:3])
    before = opt.state_dict()
    groups = [dict(g) for g in opt.param_groups]
    with pytest.raises(error, match=rf"^Adam\.load_state_dict: .*{match}"):
        opt.load_state_dict(bad)
    assert _same(opt.state_dict(), before) and [dict(g) for g in opt.param_groups] == groups
    _step(params, opt, grads[3:])
    _step(ref_params, ref, grads[3:])
    for p, q in zip(params, ref_params):  # and it steps on as if never asked
        assert np.array_equal(p.data, q.data)


def test_another_optimizers_state_is_refused():
    params = [Tensor(np.ones(2), requires_grad=True)]
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    params[0].grad = np.ones(2)
    sgd.step()
    with pytest.raises(ValueError, match=r"^Adam.load_state_dict: parameter group 0 of the "
                                         r"state_dict lacks the hyperparameters \['betas', "
                                         r"'eps', 'amsgrad'\]"):
        optim.Adam(params).load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match=r"^RMSprop.load_state_dict: parameter group 0 of the "
                                         r"state_dict lacks the hyperparameters \['alpha'"):
        optim.RMSprop(params).load_state_dict(sgd.state_dict())
    adam = optim.Adam(params, lr=0.1)
    adam.step()
    sd = adam.state_dict()
    # (with AdamW's hyperparameters it is still Adam's rule, and says so)
    with pytest.raises(ValueError, match=r"^AdamW.load_state_dict: parameter group 0 has "
                                         r"decoupled_weight_decay=False"):
        optim.AdamW(params).load_state_dict({**sd, "param_groups": [
            {**sd["param_groups"][0], "decoupled_weight_decay": False}]})
    with pytest.raises(ValueError, match=r"^SGD.load_state_dict: the state of parameter 0 "
                                         r"has \['step', 'exp_avg', 'exp_avg_sq'\], which SGD"):
        optim.SGD(params, lr=0.1).load_state_dict({**sd, "param_groups": [
            {**sgd.state_dict()["param_groups"][0], "params": [0]}]})


def test_torch_kernel_choices_are_accepted_and_dropped():
    p = Tensor(np.ones(2), requires_grad=True)
    opt = optim.AdamW([p])
    sd = opt.state_dict()
    sd["param_groups"][0].update(foreach=True, fused=None, capturable=False, maximize=False,
                                 differentiable=False, decoupled_weight_decay=True,
                                 initial_lr=0.1, name="head")
    opt.load_state_dict(sd)
    group = opt.param_groups[0]
    assert not {"foreach", "fused", "capturable", "maximize", "differentiable",
                "decoupled_weight_decay"} & set(group)
    assert group["initial_lr"] == 0.1 and group["name"] == "head"  # kept, as torch keeps them
    assert group["params"][0] is p


SCHED_BAD = [
    ("missing", lambda sd: sd.pop("last_epoch"), ValueError, r"the state_dict lacks "
                                                             r"\['last_epoch'\]"),
    ("unknown", lambda sd: sd.update(warmup=3), ValueError,
     r"the state_dict has \['warmup'\], which StepLR does not keep"),
    ("lengths", lambda sd: sd.update(base_lrs=[0.1, 0.2]), ValueError,
     r"base_lrs must be a list of 1 learning rates"),
    ("bad lr", lambda sd: sd.update(_last_lr=[math.nan]), ValueError,
     r"_last_lr\[0\] must be a finite number"),
    ("bad epoch", lambda sd: sd.update(last_epoch=1.5), ValueError,
     r"last_epoch must be a whole number >= 0, got 1.5"),
    ("bad step_size", lambda sd: sd.update(step_size=0), ValueError,
     r"StepLR: step_size must be a whole number >= 1, got 0"),
]


@pytest.mark.parametrize("what, edit, error, match", SCHED_BAD, ids=[b[0] for b in SCHED_BAD])
def test_bad_scheduler_states_are_refused_and_change_nothing(what, edit, error, match):
    opt = optim.SGD([Tensor(np.ones(1), requires_grad=True)], lr=0.1)
    s = optim.StepLR(opt, 2, 0.5)
    s.step()
    before = s.state_dict()
    bad = copy.deepcopy(before)
    edit(bad)
    with pytest.raises(error, match=rf"^StepLR.load_state_dict: {match}"):
        s.load_state_dict(bad)
    assert s.state_dict() == before
    with pytest.raises(TypeError, match=re.escape("StepLR.load_state_dict: expected a dict")):
        s.load_state_dict([before])
