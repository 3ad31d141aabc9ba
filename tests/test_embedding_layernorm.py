"""Embedding and LayerNorm: gradients against finite differences (float64), values and
gradients against PyTorch with equal weights (float64 and float32), torch state_dicts
loading strictly, the padding row's gradient, max_norm, and the errors."""

import numpy as np
import pytest

import nn
import nn.functional as F
from autodiff import Tensor, gradcheck
from autodiff.errors import ShapeError

TOLERANCES = [(np.float64, 1e-10, 1e-10), (np.float32, 1e-5, 1e-5)]


# ---------------------------------------------------------------------------
# Embedding

@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
def test_embedding_gradcheck_with_repeated_indices(padding_idx, rng):
    w = Tensor(rng.standard_normal((6, 4)), requires_grad=True)
    idx = np.array([[0, 3, 3], [5, 0, 3]])
    assert gradcheck(lambda a: F.embedding(idx, a), [w])
    if padding_idx is None:
        return
    # with a padding row the gradient is that of weight[idx] with the padding row cut out
    out = F.embedding(idx, w, padding_idx=padding_idx)
    cot = rng.standard_normal(out.shape)
    (out * Tensor(cot)).sum().backward()
    expected = np.zeros((6, 4))
    np.add.at(expected, idx, cot)
    expected[padding_idx] = 0
    np.testing.assert_allclose(np.asarray(w.grad), expected, rtol=0, atol=1e-12)


def test_repeated_indices_add_up_their_gradients():
    w = Tensor(np.zeros((3, 2)), requires_grad=True)
    F.embedding(np.array([2, 2, 2, 0]), w).sum().backward()
    np.testing.assert_array_equal(np.asarray(w.grad), [[1, 1], [0, 0], [3, 3]])


@pytest.mark.parametrize("dtype,rtol,atol", TOLERANCES)
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_matches_torch(dtype, rtol, atol, index_dtype, shape, padding_idx, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Embedding(5, 3, padding_idx=padding_idx).to(getattr(torch, dtype.__name__))
    with torch.no_grad():  # a non-zero padding row: its value passes, its gradient does not
        theirs.weight.copy_(torch.from_numpy(rng.standard_normal((5, 3)).astype(dtype)))
    ours = nn.Embedding(5, 3, padding_idx=padding_idx, dtype=dtype)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    idx = rng.integers(0, 5, shape).astype(index_dtype)
    idx.flat[:1] = 2  # the padding row is always looked up
    out = ours(Tensor(idx))
    tout = theirs(torch.from_numpy(idx))
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
    cot = rng.standard_normal(out.shape).astype(dtype)
    (out * Tensor(cot)).sum().backward()
    tout.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(np.asarray(ours.weight.grad), theirs.weight.grad.numpy(),
                               rtol=rtol, atol=atol)
    if padding_idx is not None:
        assert not np.asarray(ours.weight.grad)[padding_idx].any()


def test_embedding_initialisation_is_standard_normal_with_a_zero_padding_row():
    e = nn.Embedding(4000, 25, padding_idx=-2)
    assert e.padding_idx == 3998 and e.weight.shape == (4000, 25)
    assert not e.weight.data[3998].any()
    w = np.delete(e.weight.data, 3998, axis=0)
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01  # 99,975 draws of N(0, 1)
    e.reset_parameters()
    assert not e.weight.data[3998].any() and e.weight.data[0].any()


def test_embedding_repr_dtype_and_state_dict_key_are_torchs():
    torch = pytest.importorskip("torch")
    for kw in ({}, {"padding_idx": 1}, {"max_norm": 1.5}, {"max_norm": 2.0, "norm_type": 1.0}):
        assert repr(nn.Embedding(10, 3, **kw)) == repr(torch.nn.Embedding(10, 3, **kw))
    e = nn.Embedding(10, 3, dtype=np.float32)
    assert list(e.state_dict()) == ["weight"] and e.weight.dtype == np.float32


def test_from_pretrained_keeps_rows_and_freezes_as_torch():
    torch = pytest.importorskip("torch")
    table = np.arange(12.0).reshape(4, 3)
    for freeze in (True, False):
        ours = nn.Embedding.from_pretrained(Tensor(table), freeze=freeze, padding_idx=1)
        theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze=freeze,
                                                    padding_idx=1)
        assert ours.weight.requires_grad == theirs.weight.requires_grad == (not freeze)
        np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())
        idx = np.array([1, 3, 1])
        np.testing.assert_array_equal(ours(idx).data, theirs(torch.tensor(idx)).detach())
        assert ours.padding_idx == theirs.padding_idx
    table[0, 0] = -1  # a copy, not a view of the caller's array
    assert ours.weight.data[0, 0] == 0


def test_from_pretrained_frozen_gives_no_gradient_but_passes_it_on():
    e = nn.Embedding.from_pretrained(np.ones((3, 2)))
    x = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    (e(np.array([0, 2])) * x).sum().backward()
    assert e.weight.grad is None
    np.testing.assert_array_equal(np.asarray(x.grad), [2, 2])


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (0.5, 1.0), (100.0, 2.0)])
def test_max_norm_renormalises_looked_up_rows_in_place_as_torch(max_norm, norm_type, rng):
    torch = pytest.importorskip("torch")
    table = rng.standard_normal((6, 4)) * 2
    ours = nn.Embedding.from_pretrained(table.copy(), freeze=False, max_norm=max_norm,
                                        norm_type=norm_type)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze=False,
                                                max_norm=max_norm, norm_type=norm_type)
    idx = np.array([[0, 2, 2], [5, 0, 1]])
    out, tout = ours(idx), theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.data, theirs.weight.detach().numpy(),
                               rtol=1e-10, atol=1e-12)  # rows 3 and 4 untouched
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    np.testing.assert_allclose(np.asarray(ours.weight.grad), theirs.weight.grad.numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make,call,error,message", [
    (lambda: nn.Embedding(5, 2), lambda e: e(np.array([1.0, 2.0])), TypeError,
     r"Embedding\(5, 2\): embedding: indices must be an integer tensor .*float64"),
    (lambda: nn.Embedding(5, 2), lambda e: e(np.array([[0, 5]])), IndexError,
     r"Embedding\(5, 2\): embedding: index 5 is out of range for 5 embeddings"),
    (lambda: nn.Embedding(5, 2), lambda e: e(np.array([-1, 2])), IndexError,
     r"Embedding\(5, 2\): embedding: index -1 is out of range"),
    (lambda: nn.Embedding(5, 2), lambda e: e(np.array([True, False])), TypeError,
     r"Embedding\(5, 2\): embedding: indices must be an integer tensor .*bool"),
    (lambda: None, lambda e: nn.Embedding(5, 2, padding_idx=5), ValueError,
     r"Embedding: padding_idx=5 must be within \[-5, 5\)"),
    (lambda: None, lambda e: nn.Embedding(0, 2), ValueError,
     r"Embedding: num_embeddings must be positive, got 0"),
    (lambda: None, lambda e: nn.Embedding(5, 2.0), TypeError,
     r"Embedding: embedding_dim must be an int, got 2.0"),
    (lambda: None, lambda e: nn.Embedding(5, 2, sparse=True), NotImplementedError,
     r"Embedding: sparse=True"),
    (lambda: None, lambda e: nn.Embedding(5, 2, scale_grad_by_freq=True),
     NotImplementedError, r"Embedding: scale_grad_by_freq=True"),
    (lambda: None, lambda e: nn.Embedding(5, 2, _weight=np.zeros((5, 3))), ShapeError,
     r"Embedding: _weight of shape \(5, 3\) does not match .* \(5, 2\)"),
    (lambda: None, lambda e: nn.Embedding.from_pretrained(np.zeros(4)), ShapeError,
     r"Embedding.from_pretrained: embeddings must be 2-D"),
    (lambda: None, lambda e: F.embedding(np.array([0]), Tensor(np.zeros(3))), ShapeError,
     r"embedding: weight must be 2-D"),
])
def test_embedding_errors_name_the_function_and_value(make, call, error, message):
    with pytest.raises(error, match=message):
        call(make())


# ---------------------------------------------------------------------------
# LayerNorm

@pytest.mark.parametrize("normalized_shape,shape", [
    (4, (4,)), (4, (3, 4)), ((3, 4), (2, 3, 4)), ([2, 3, 4], (2, 2, 3, 4))])
@pytest.mark.parametrize("affine", [(False, False), (True, False), (True, True)])
def test_layer_norm_gradcheck(normalized_shape, shape, affine, rng):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    params = [Tensor(rng.standard_normal(ns), requires_grad=True) for on in affine if on]
    assert gradcheck(lambda a, *p: F.layer_norm(a, normalized_shape, *p, eps=1e-3),
                     [x] + params)


def test_layer_norm_second_order_gradcheck(rng):
    from autodiff import grad
    x = Tensor(rng.standard_normal((2, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal(5), requires_grad=True)

    def first(a, b):
        y = F.layer_norm(a, 5, b)
        return grad((y * y * y).sum(), [a], create_graph=True)[0]

    assert gradcheck(first, [x, w])


@pytest.mark.parametrize("dtype,rtol,atol", TOLERANCES)
@pytest.mark.parametrize("normalized_shape,shape", [(6, (4, 6)), ((3, 6), (2, 5, 3, 6))])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_matches_torch(dtype, rtol, atol, normalized_shape, shape, affine, bias,
                                  rng):
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype.__name__)
    theirs = torch.nn.LayerNorm(normalized_shape, eps=1e-4, elementwise_affine=affine,
                                bias=bias, dtype=tdtype)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(dtype)))
    ours = nn.LayerNorm(normalized_shape, eps=1e-4, elementwise_affine=affine, bias=bias,
                        dtype=dtype)
    result = ours.load_state_dict(theirs.state_dict(), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    data = (rng.standard_normal(shape) * 3 + 5).astype(dtype)  # an offset: no cancellation
    x, t = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    out, tout = ours(x), theirs(t)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=rtol, atol=atol)
    cot = rng.standard_normal(shape).astype(dtype)
    (out * Tensor(cot)).sum().backward()
    tout.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(np.asarray(x.grad), t.grad.numpy(), rtol=rtol, atol=atol)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(np.asarray(p.grad), tp.grad.numpy(), rtol=rtol,
                                   atol=atol * 10)  # sums over 24-180 float32 terms


def test_layer_norm_defaults_and_constant_rows():
    ln = nn.LayerNorm([2, 3])
    assert ln.normalized_shape == (2, 3) and ln.eps == 1e-5
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(ln.weight.data, np.ones((2, 3)))
    np.testing.assert_array_equal(ln.bias.data, np.zeros((2, 3)))
    # a constant sample normalises to 0 (var 0, eps keeps it finite), as in torch
    np.testing.assert_array_equal(ln(np.full((1, 2, 3), 7.0)).data, np.zeros((1, 2, 3)))
    assert nn.LayerNorm(3, elementwise_affine=False).state_dict() == {}
    assert list(nn.LayerNorm(3, bias=False).state_dict()) == ["weight"]


def test_layer_norm_normalises_each_sample_with_the_biased_variance(rng):
    x = rng.standard_normal((3, 4, 5)) * 2 + 1
    y = nn.LayerNorm((4, 5), eps=0.0)(x).data
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, atol=1e-12)  # ddof=0


def test_a_torch_model_with_both_loads_strictly_and_gives_the_same_outputs(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    theirs = torch.nn.Sequential(torch.nn.Embedding(11, 6, padding_idx=0),
                                 torch.nn.LayerNorm(6), torch.nn.Linear(6, 2)).double()
    ours = nn.Sequential(nn.Embedding(11, 6, padding_idx=0), nn.LayerNorm(6),
                         nn.Linear(6, 2))
    state = theirs.state_dict()
    ours.load_state_dict(state, strict=True)
    assert list(ours.state_dict()) == list(state)
    idx = rng.integers(0, 11, (4, 7))
    out, tout = ours(idx), theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(np.asarray(p.grad), tp.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("call,error,message", [
    (lambda: nn.LayerNorm(4)(np.zeros((2, 3))), ShapeError,
     r"LayerNorm\(\(4,\)\): layer_norm: input of shape \(2, 3\) does not end in .*\(4,\)"),
    (lambda: nn.LayerNorm((2, 3))(np.zeros(3)), ShapeError,
     r"input of shape \(3,\) does not end in the normalized_shape \(2, 3\)"),
    (lambda: nn.LayerNorm(3)(np.zeros((2, 3), np.int64)), TypeError,
     r"layer_norm: needs a floating-point input, got dtype int64"),
    (lambda: nn.LayerNorm(0), TypeError, r"LayerNorm: normalized_shape must be .*got 0"),
    (lambda: nn.LayerNorm(()), TypeError, r"LayerNorm: normalized_shape must be"),
    (lambda: nn.LayerNorm(3, eps=-1.0), ValueError, r"LayerNorm: eps must be a non-negative number, got -1.0"),
    (lambda: F.layer_norm(Tensor(np.zeros((2, 3))), 3, weight=Tensor(np.ones(2))), ShapeError,
     r"layer_norm: weight of shape \(2,\) should have the normalized_shape \(3,\)"),
    (lambda: nn.LayerNorm(3)(np.zeros((2, 3), np.float32)), TypeError,
     r"layer_norm: weight has dtype float64 but the input has dtype float32"),
    (lambda: F.layer_norm(Tensor(np.zeros(3)), 3, None, Tensor(np.zeros(3, np.float32))),
     TypeError, r"layer_norm: bias has dtype float32 but the input has dtype float64"),
])
def test_layer_norm_errors_name_the_function_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("wanted", ["x", "weight", "bias", "weight,bias"])
def test_layer_norm_gradients_of_only_some_inputs_match_torch(wanted, rng):
    torch = pytest.importorskip("torch")
    data = [rng.standard_normal(s) for s in ((3, 2, 5), (2, 5), (2, 5))]
    ours = [Tensor(d, requires_grad=n in wanted.split(","))
            for d, n in zip(data, ("x", "weight", "bias"))]
    theirs = [torch.tensor(d, requires_grad=t.requires_grad) for d, t in zip(data, ours)]
    cot = rng.standard_normal((3, 2, 5))
    (F.layer_norm(ours[0], (2, 5), ours[1], ours[2]) * Tensor(cot)).sum().backward()
    torch.nn.functional.layer_norm(theirs[0], (2, 5), theirs[1], theirs[2]).backward(
        torch.tensor(cot))
    for a, t in zip(ours, theirs):
        if t.requires_grad:
            np.testing.assert_allclose(np.asarray(a.grad), t.grad.numpy(), rtol=1e-10,
                                       atol=1e-12)
        else:
            assert a.grad is None


def test_layer_norm_is_one_node_and_keeps_digits_of_a_large_mean(rng):
    x = Tensor(rng.standard_normal((4, 8)) * 1e-3 + 1e4, requires_grad=True)
    y = F.layer_norm(x, 8, eps=0.0)
    assert y._prim.name == "layer_norm" and set(y._parents) == {x}
    centred = x.data - x.data.mean(axis=1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(axis=1, keepdims=True))
    np.testing.assert_allclose(y.data, expected, rtol=1e-9, atol=1e-9)
