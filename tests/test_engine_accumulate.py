"""How the backward loop sums a node's contributions: slices' gradients are added into one
array at their index (autodiff/ops.py `scatter_add`), and sums the loop made itself are
added to in place. Each test compares against the same gradient computed with no sharing
at all (one backward per term, added up) and checks that nothing the user or another
gradient holds was changed by an addition in place."""

import numpy as np
import pytest

import autodiff
from autodiff import Tensor


def _grads_term_by_term(make_terms, *leaves):
    """The gradient of sum(terms) as a sum of separate backwards, one per term."""
    total = [np.zeros_like(x.data) for x in leaves]
    for k in range(len(make_terms(*leaves))):
        for x in leaves:
            x.grad = None
        make_terms(*leaves)[k].backward()
        for t, x in zip(total, leaves):
            if x.grad is not None:
                t += x.grad.data
    return total


def _check(make_terms, *leaves):
    expected = _grads_term_by_term(make_terms, *leaves)
    for x in leaves:
        x.grad = None
    terms = make_terms(*leaves)
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    loss.backward()
    for x, e in zip(leaves, expected):
        np.testing.assert_allclose(x.grad.data, e, rtol=1e-12, atol=1e-12)


def _rand(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_every_step_of_a_loop_over_slices():
    x, w = _rand(6, 3, 4), _rand(4, 2, seed=1)
    _check(lambda x, w: [(x[t] @ w).tanh().sum() for t in range(6)], x, w)


@pytest.mark.parametrize("index", [
    (slice(None), 1), (Ellipsis, slice(1, 3)), (np.array([0, 2, 2, 0]),),
    (np.array([True, False, True, False, True, True]),), (2, 1, 3), (None, 1)])
def test_slices_of_every_kind_mixed_with_dense_uses(index):
    # A dense use first, then the slice, then dense again: the slice must not write into
    # the first (possibly passed-through) contribution, and the later ones add to it.
    x = _rand(6, 3, 4)
    _check(lambda x: [(x * 2.0).sum(), (x[index] ** 2).sum(), x.sum(), x[index].exp().sum()],
           x)


def test_slice_after_a_broadcast_read_only_contribution():
    # x.sum()'s gradient is a read-only broadcast of the seed: the slice's gradient must go
    # into a copy, not fail on it or write through it.
    x = _rand(5, 4)
    x.sum().backward(retain_graph=True)
    x.grad = None
    _check(lambda x: [x.sum(), (x[1:3] * x[1:3]).sum()], x)


def test_a_passed_through_gradient_is_never_added_into():
    # a + b passes its incoming gradient to both inputs as the same array: b then gets more
    # contributions. Neither a's .grad nor the incoming array may change.
    a, b = _rand(3, 4), _rand(3, 4, seed=1)
    seen = []
    s = a + b
    s.register_hook(lambda g: seen.append(g.data.copy()) or None)
    loss = (s * 3.0).sum() + (b * b).sum() + b[0].sum() + (b ** 3).sum()
    loss.backward()
    np.testing.assert_allclose(a.grad.data, np.full((3, 4), 3.0))
    expected_b = 3.0 + 2 * b.data + 3 * b.data ** 2
    expected_b[0] += 1
    np.testing.assert_allclose(b.grad.data, expected_b, rtol=1e-12)
    np.testing.assert_allclose(seen[0], np.full((3, 4), 3.0))


def test_a_hooks_array_is_not_changed_by_later_contributions():
    # The hook sees the total of y; y's vjp (reshape) passes views of it on to x, which
    # gets more contributions after.
    x = _rand(2, 6)
    kept = []
    y = x.reshape(3, 4)
    y.register_hook(lambda g: kept.append(g) or None)
    loss = (y * y).sum() + x[0].sum() + (x * 5.0).sum()
    loss.backward()
    np.testing.assert_allclose(kept[0].data, 2 * x.data.reshape(3, 4), rtol=1e-12)
    expected = 2 * x.data + 5.0
    expected[0] += 1
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


def test_grad_accumulates_across_backwards_and_retain_graph():
    x = _rand(4, 3)
    loss = sum((x[t] * x[t]).sum() for t in range(4)) + x.sum()
    loss.backward(retain_graph=True)
    first = x.grad.data.copy()
    loss.backward()
    np.testing.assert_allclose(first, 2 * x.data + 1, rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-12)


def test_autodiff_grad_and_create_graph_still_see_slices():
    x = _rand(4, 3)
    f = lambda x: sum((x[t] ** 3).sum() for t in range(4)) + x[1:].sum()  # noqa: E731
    (g,) = autodiff.grad(f(x), (x,))
    expected = 3 * x.data ** 2
    expected[1:] += 1
    np.testing.assert_allclose(g.data, expected, rtol=1e-12)
    (g,) = autodiff.grad(f(x), (x,), create_graph=True)
    (h,) = autodiff.grad(g.sum(), (x,))  # the second derivative, through the slices
    np.testing.assert_allclose(h.data, 6 * x.data, rtol=1e-12)


def test_dtype_of_the_sums_follows_the_leaf():
    x = Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    loss = (x[0] * 2).sum() + (x[1:] * x[1:]).sum() + x.sum() + (x * x).sum()
    loss.backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [[5, 5], [5, 5], [5, 5]])


def test_gradcheck_through_overlapping_slices():
    x = _rand(5, 3)
    assert autodiff.gradcheck(
        lambda x: (x[1:4] * x[0:3]).sum() + (x[np.array([0, 0, 4])] ** 2).sum(), (x,))


@pytest.mark.parametrize("later", ["dense", "slice"])
def test_an_input_given_a_passed_through_gradient_first(later):
    # b's other uses are made before s = a + b, so they are visited after it: b's first
    # contribution is the very array add passes on to a too, and s's own total is a sum
    # of two. Adding b's later contributions into that array would change a's gradient.
    a, b = _rand(3, 4), _rand(3, 4, seed=1)
    other = (b * b).sum() if later == "dense" else (b[0] * b[0]).sum()
    s = a + b
    loss = (s * 2.0).sum() + (s * 3.0).sum() + other
    loss.backward()
    np.testing.assert_allclose(a.grad.data, np.full((3, 4), 5.0))
    expected_b = np.full((3, 4), 5.0)
    if later == "dense":
        expected_b += 2 * b.data
    else:
        expected_b[0] += 2 * b.data[0]
    np.testing.assert_allclose(b.grad.data, expected_b, rtol=1e-12)
