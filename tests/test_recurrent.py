"""Recurrent cells and layers: finite differences, PyTorch with its own weights loaded
(outputs and every gradient), shapes, options and error messages."""

import re

import numpy as np
import pytest

import autodiff
import nn
from autodiff import Tensor, gradcheck
from autodiff.errors import ShapeError

rng = np.random.default_rng(0)

LAYERS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
CELLS = {"RNNCell": nn.RNNCell, "LSTMCell": nn.LSTMCell, "GRUCell": nn.GRUCell}


def _flat(out):
    """Every tensor in an (output, state) / (output, (h, c)) / cell result, in order."""
    if isinstance(out, (tuple, list)):
        return [t for part in out for t in _flat(part)]
    return [out]


def _total(out):
    """A scalar that depends on every returned tensor, with a different weight for each."""
    parts = _flat(out)
    total = None
    for k, t in enumerate(parts):
        w = np.cos(np.arange(t.data.size).reshape(t.shape) + k)
        term = (t * w).sum()
        total = term if total is None else total + term
    return total


# -- finite differences ----------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs", [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {}),
    ("LSTM", {"num_layers": 2, "bias": False}), ("GRU", {"bidirectional": True}),
])
def test_layer_gradcheck(name, kwargs):
    model = LAYERS[name](3, 2, dtype=np.float64, **kwargs)
    x = Tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    h0 = Tensor(rng.standard_normal((model.num_layers * (1 + model.bidirectional), 2, 2)),
                requires_grad=True)
    names = [n for n, _ in model.named_parameters()]

    def f(x, h0, *ps):
        # Each weight is swapped for gradcheck's tensor as a plain attribute (the
        # registry keeps the Parameter), so the weights' gradients are checked too.
        for n, v in zip(names, ps):
            object.__setattr__(model, n, v)
        hx = (h0, h0 * 0.5) if name == "LSTM" else h0
        return _total(model(x, hx))

    weights = [Tensor(p.data.copy(), requires_grad=True) for p in model.parameters()]
    assert gradcheck(f, [x, h0] + weights)


def test_gradcheck_through_the_parameters_themselves():
    # The parameters are the module's own leaves: their .grad must match differences.
    model = nn.LSTM(2, 3, dtype=np.float64)
    x = rng.standard_normal((3, 2, 2))
    for p in model.parameters():
        base = p.data.copy()
        model.zero_grad()
        _total(model(x)).backward()
        analytic = np.asarray(p.grad)
        numeric = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            for sign in (1, -1):
                p.data = base.copy()
                p.data[index] += sign * 1e-6
                numeric[index] += sign * _total(model(x)).item() / 2e-6
        p.data = base
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_gradcheck(name):
    cell = CELLS[name](3, 4, dtype=np.float64)
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    h = Tensor(rng.standard_normal((2, 4)), requires_grad=True)
    c = Tensor(rng.standard_normal((2, 4)), requires_grad=True)
    if name == "LSTMCell":
        assert gradcheck(lambda x, h, c: _total(cell(x, (h, c))), [x, h, c])
    else:
        assert gradcheck(lambda x, h: _total(cell(x, h)), [x, h])


# -- against PyTorch, with its weights loaded -----------------------------------------
def _pair(torch, name, kwargs, dtype):
    """A torch module and ours with the same weights (torch's, loaded strictly)."""
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(**kwargs).to(torch.float64 if dtype == np.float64
                                               else torch.float32)
    ours = (LAYERS | CELLS)[name](**kwargs, dtype=dtype)
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert list(state) == list(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    return ref, ours


def _compare(torch, ref, ours, args, dtype, tol):
    t_args = [tuple(torch.tensor(a, requires_grad=True) for a in arg)
              if isinstance(arg, tuple) else torch.tensor(arg, requires_grad=True)
              for arg in args]
    o_args = [tuple(Tensor(a, requires_grad=True) for a in arg) if isinstance(arg, tuple)
              else Tensor(arg, requires_grad=True) for arg in args]
    t_out, o_out = ref(*t_args), ours(*o_args)
    t_flat, o_flat = _flat(t_out), _flat(o_out)
    assert [tuple(t.shape) for t in t_flat] == [t.shape for t in o_flat]
    for t, o in zip(t_flat, o_flat):
        assert o.dtype == dtype
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=tol, atol=tol)
    weights = [np.cos(np.arange(t.numel()).reshape(t.shape) + k) for k, t in enumerate(t_flat)]
    sum(((t * torch.tensor(w, dtype=t.dtype)).sum() for t, w in zip(t_flat, weights))).backward()
    sum(((o * w.astype(dtype)).sum() for o, w in zip(o_flat, weights))).backward()
    for (name, tp), (_, op) in zip(ref.named_parameters(), ours.named_parameters()):
        np.testing.assert_allclose(np.asarray(op.grad), tp.grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=name)
    for t, o in zip(_flat(t_args), _flat(o_args)):
        np.testing.assert_allclose(np.asarray(o.grad), t.grad.numpy(), rtol=tol, atol=tol)


LAYER_CASES = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu", "num_layers": 2}),
    ("LSTM", {}), ("LSTM", {"num_layers": 2}), ("LSTM", {"bias": False}),
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("GRU", {}), ("GRU", {"num_layers": 2}), ("GRU", {"bidirectional": True}),
]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("name,kwargs", LAYER_CASES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_layers_match_torch(name, kwargs, batch_first, dtype, tol):
    torch = pytest.importorskip("torch")
    kwargs = dict(input_size=3, hidden_size=5, batch_first=batch_first, **kwargs)
    ref, ours = _pair(torch, name, kwargs, dtype)
    d = 2 if kwargs.get("bidirectional") else 1
    x = rng.standard_normal((4, 6, 3) if batch_first else (6, 4, 3)).astype(dtype)
    h0 = rng.standard_normal((kwargs.get("num_layers", 1) * d, 4, 5)).astype(dtype)
    _compare(torch, ref, ours, [x], dtype, tol)  # zero initial state
    hx = (h0, (0.5 * h0).astype(dtype)) if name == "LSTM" else h0
    _compare(torch, ref, ours, [x, hx], dtype, tol)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_unbatched_layers_match_torch(name):
    torch = pytest.importorskip("torch")
    ref, ours = _pair(torch, name, dict(input_size=3, hidden_size=4, num_layers=2),
                      np.float64)
    x = rng.standard_normal((5, 3))
    h0 = rng.standard_normal((2, 4))
    _compare(torch, ref, ours, [x, (h0, h0 * 0.3) if name == "LSTM" else h0], np.float64,
             1e-10)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("name,kwargs", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
                                         ("LSTMCell", {}), ("GRUCell", {}),
                                         ("GRUCell", {"bias": False})])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(name, kwargs, dtype, tol, batched):
    torch = pytest.importorskip("torch")
    ref, ours = _pair(torch, name, dict(input_size=3, hidden_size=5, **kwargs), dtype)
    lead = (4,) if batched else ()
    x = rng.standard_normal(lead + (3,)).astype(dtype)
    h = rng.standard_normal(lead + (5,)).astype(dtype)
    _compare(torch, ref, ours, [x], dtype, tol)
    _compare(torch, ref, ours, [x, (h, (h * 0.7).astype(dtype)) if name == "LSTMCell" else h],
             dtype, tol)


def test_dropout_between_layers_matches_torch_in_eval_and_acts_in_training():
    torch = pytest.importorskip("torch")
    ref, ours = _pair(torch, "LSTM", dict(input_size=3, hidden_size=4, num_layers=2,
                                          dropout=0.5), np.float64)
    ref.eval(), ours.eval()
    x = rng.standard_normal((5, 2, 3))
    _compare(torch, ref, ours, [x], np.float64, 1e-10)
    ours.train()
    trained = [ours(x)[0].data for _ in range(2)]
    assert not np.allclose(trained[0], trained[1])  # a fresh mask each call
    assert not np.allclose(trained[0], ours.eval()(x)[0].data)
    # The first layer sees no dropout: a one-layer model's outputs do not change.
    single = nn.GRU(3, 4)
    single.train()
    np.testing.assert_array_equal(single(x)[0].data, single(x)[0].data)


# -- shapes, parameters and options ------------------------------------------------------
def test_parameter_names_shapes_and_init():
    model = nn.LSTM(3, 8, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes["weight_ih_l0"] == (32, 3) and shapes["weight_hh_l0"] == (32, 8)
    assert shapes["weight_ih_l1"] == (32, 16) and shapes["bias_hh_l1_reverse"] == (32,)
    assert len(shapes) == 16
    values = np.concatenate([p.data.ravel() for p in model.parameters()])
    bound = 1 / np.sqrt(8)
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound  # uniform, not tiny
    assert {k for k in nn.GRU(3, 4, bias=False).state_dict()} == {"weight_ih_l0",
                                                                   "weight_hh_l0"}
    assert nn.GRUCell(3, 4).weight_ih.shape == (12, 3)
    assert nn.RNN(2, 3, dtype=np.float64).weight_hh_l0.dtype == np.float64


def test_repr_and_nonlinearity():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert nn.RNN(3, 4, nonlinearity="relu").nonlinearity == "relu"
    assert repr(nn.GRUCell(3, 4, bias=False)) == "GRUCell(3, 4, bias=False)"


def test_gradients_reach_the_initial_state_and_every_step():
    model = nn.GRU(2, 3, dtype=np.float64)
    x = Tensor(rng.standard_normal((6, 1, 2)), requires_grad=True)
    h0 = Tensor(rng.standard_normal((1, 1, 3)), requires_grad=True)
    out, h = model(x, h0)
    h.sum().backward()
    assert np.all(np.abs(np.asarray(x.grad)) > 0)  # the last state depends on every step
    assert np.any(np.asarray(h0.grad) != 0)


def test_the_unrolled_graph_is_made_of_primitives_and_can_be_drawn():
    pytest.importorskip("graphviz")
    from autodiff import draw_graph

    _, (h, _) = nn.LSTM(2, 3)(np.ones((2, 1, 2)))
    source = draw_graph(h.sum()).source
    # Two steps, each one fused lstm_cell node; the GRU's steps are its primitives.
    assert source.count("lstm_cell") >= 2 and "getitem" in source
    source = draw_graph(nn.GRU(2, 3)(np.ones((2, 1, 2)))[1].sum()).source
    assert source.count("sigmoid") >= 2 and source.count("tanh") >= 2 and "linear" in source


def _cell_nodes(root):
    found, todo, seen = [], [root], set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node._prim is not None and node._prim.name == "lstm_cell":
            found.append(node)
        todo.extend(node._parents)
    return found


@pytest.mark.parametrize("kwargs", [{}, {"num_layers": 2}, {"bidirectional": True}])
def test_an_lstm_is_one_fused_node_per_step_and_layer(kwargs):
    model = nn.LSTM(2, 3, **kwargs)
    out, (h, c) = model(rng.standard_normal((5, 2, 2)))
    layers = model.num_layers * (2 if model.bidirectional else 1)
    assert len(_cell_nodes(out.sum() + h.sum() + c.sum())) == 5 * layers


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_each_time_step_is_one_scope(name):
    from autodiff.scope import scopes_of

    model = getattr(nn, name)(2, 3, num_layers=2, bidirectional=True)
    out, _ = model(rng.standard_normal((4, 1, 2)))
    nodes, todo, seen = [], [out], set()
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen.add(id(node))
            nodes.append(node)
            todo.extend(node._parents)
    found = scopes_of(nodes)
    steps = [s for s in found.values() if s is not None and s.kind == "scope"]
    state = "hc" if name == "LSTM" else "h"
    assert {s.name for s in steps} == {f"{state}[{t}] = step {t}, layer {k}{side}"
                                       for t in range(4) for k in (0, 1)
                                       for side in ("", ", reverse")}
    # per layer and direction, every step's scope sits inside the module's scope
    assert len({id(s) for s in steps}) == 4 * 2 * 2
    assert all(s.parent is not None and s.parent.kind == "module" for s in steps)
    if name == "LSTM":  # the fused cells, each in its own step's scope
        cells = [n for n in nodes if n._prim is not None and n._prim.name == "lstm_cell"]
        assert sorted(found[id(n)].name.partition(",")[0] for n in cells) == sorted(
            f"hc[{t}] = step {t}" for t in range(4) for _ in range(4))


def test_no_step_scopes_without_recording():
    import sys

    from autodiff import no_grad

    scopes = sys.modules["autodiff.scope"]  # (autodiff.scope is the function)

    model = nn.LSTM(2, 3)
    marker = scopes.open_scope("marker")
    scopes.close_scope(marker)
    with no_grad():
        model(np.ones((6, 1, 2)))
    assert scopes._log[-1] is marker  # no scope was opened since


def test_the_fused_cell_matches_the_composite_of_primitives_to_the_last_digits():
    # The same step from the engine's primitives (the pre-fusion formula), forward and
    # every gradient, float64.
    from nn.recurrent import lstm_cell

    n = 3
    arrays = [rng.standard_normal(s) for s in ((4, 2), (2, n, 4), (4 * n, 2), (4 * n, n),
                                                (4 * n,), (4 * n,))]
    fused = [Tensor(a, requires_grad=True) for a in arrays]
    plain = [Tensor(a, requires_grad=True) for a in arrays]
    x, hc, wi, wh, bi, bh = plain  # the state is [h^T; c^T]
    gates = x @ wi.T + bi + hc[0].T @ wh.T + bh
    s = gates.sigmoid()
    c = s[:, n:2 * n] * hc[1].T + s[:, :n] * gates[:, 2 * n:3 * n].tanh()
    h = s[:, 3 * n:] * c.tanh()
    cot = rng.standard_normal((2, n, 4))
    out = lstm_cell(*fused)
    np.testing.assert_allclose(out.data, np.stack([h.data.T, c.data.T]), rtol=1e-12)
    (out * cot).sum().backward()
    ((h * cot[0].T).sum() + (c * cot[1].T).sum()).backward()
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(np.asarray(a.grad), np.asarray(b.grad), rtol=1e-10,
                                   atol=1e-12)


# -- errors -----------------------------------------------------------------------------
def test_wrong_input_size_names_the_shapes():
    with pytest.raises(ShapeError, match=r"LSTM: input must have shape \(L, N, H_in\).*"
                                          r"input_size = 3, got \(5, 2, 4\)"):
        nn.LSTM(3, 4)(np.zeros((5, 2, 4)))
    with pytest.raises(ShapeError, match=r"\(N, L, H_in\).*got \(5,\)"):
        nn.GRU(3, 4, batch_first=True)(np.zeros(5))
    with pytest.raises(ShapeError, match=r"GRUCell: input must have shape \(N, H_in\).*"
                                          r"got \(2, 2, 3\)"):
        nn.GRUCell(3, 4)(np.zeros((2, 2, 3)))


def test_an_empty_sequence_is_refused():
    with pytest.raises(ValueError, match=r"LSTM: the sequence is empty .* \(0, 2, 3\)"):
        nn.LSTM(3, 4)(np.zeros((0, 2, 3)))
    with pytest.raises(ValueError, match=r"GRU: the sequence is empty .* \(2, 0, 3\)"):
        nn.GRU(3, 4, batch_first=True)(np.zeros((2, 0, 3)))


def test_bad_hidden_shapes_are_named():
    x = np.zeros((5, 2, 3))
    with pytest.raises(ShapeError,
                       match=r"RNN: hx must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        nn.RNN(3, 4, num_layers=2)(x, np.zeros((1, 2, 4)))
    with pytest.raises(ShapeError, match=r"LSTM: c_0 must have shape \(1, 2, 4\), got \(1, 3, 4\)"):
        nn.LSTM(3, 4)(x, (np.zeros((1, 2, 4)), np.zeros((1, 3, 4))))
    with pytest.raises(TypeError, match="LSTM: hx must be a pair"):
        nn.LSTM(3, 4)(x, np.zeros((1, 2, 4)))
    with pytest.raises(ShapeError, match=r"GRU: hx must have shape \(2, 4\), got \(2, 1, 4\)"):
        nn.GRU(3, 4, bidirectional=True)(np.zeros((5, 3)), np.zeros((2, 1, 4)))
    with pytest.raises(ShapeError, match=r"LSTMCell: h_0 must have shape \(2, 4\)"):
        nn.LSTMCell(3, 4)(np.zeros((2, 3)), (np.zeros((3, 4)), np.zeros((2, 4))))
    with pytest.raises(ShapeError, match=r"RNNCell: hx must have shape \(4,\), got \(1, 4\)"):
        nn.RNNCell(3, 4)(np.zeros(3), np.zeros((1, 4)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="RNNCell: nonlinearity"):
        nn.RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="LSTM: hidden_size must be positive, got 0"):
        nn.LSTM(3, 0)
    with pytest.raises(TypeError, match="GRU: num_layers must be an int"):
        nn.GRU(3, 4, num_layers=1.5)
    with pytest.raises(ValueError, match=r"dropout .* \[0, 1\], got 1.5"):
        nn.LSTM(3, 4, num_layers=2, dropout=1.5)
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.GRU(3, 4, dropout=0.2)
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)


def test_pictures_after_backward_read_the_released_cells():
    # backward() releases each cell's saved activations; the pictures' gradients on the
    # side recompute them (the rule written for graph nodes cannot run on arrays).
    from autodiff.viz import draw_graph
    from autodiff.viz._common import _all_grads
    from autodiff.viz.explore import explore

    autodiff.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x = Tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    loss = (lstm(x)[0] ** 2).sum()
    loss.backward()
    side = _all_grads([loss])
    assert np.allclose(side[id(x)], x.grad, rtol=1e-12, atol=0)
    assert np.allclose(side[id(lstm.weight_hh_l0)], lstm.weight_hh_l0.grad, rtol=1e-12, atol=0)
    src = draw_graph(loss, collapse=1, clusters=lstm).source
    assert re.search(r"<b>hc\[4\]</b>.*grad", src)   # a state's gradient, not only leaves'
    assert explore(loss).data  # the explorer builds its views
