"""The per-op case table shared by test_ops.py and test_torch_compare.py.

`CASES` maps every name of `autodiff.OPS` to a list of `Case`s. A case builds float64
input arrays (kept away from kinks and domain edges, so central differences are valid)
and calls the op through the public API (`fn`), and the same computation in PyTorch
(`torch_fn`, called only by the torch comparisons). Internal ops (`scatter`,
`broadcast_to`, `sum_to`) are called with `Tensor._apply`; they are also reached by the
second-order checks of `getitem`, `sum` and broadcasting binary ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from autodiff import OPS, Tensor, concatenate, maximum, minimum, stack, where
import nn.functional as F


class _LazyTorch:
    """`T.name` is `torch.name`, imported on first use: write it inside a lambda, so that
    building the cases never imports torch (the tests must run without it)."""

    def __getattr__(self, name):
        if name.startswith("__"):  # doctest's collector probes __wrapped__ and the like
            raise AttributeError(name)
        import torch

        return getattr(torch, name)


T = _LazyTorch()


@dataclass(frozen=True)
class Case:
    op: str
    name: str
    make: Callable[[np.random.Generator], tuple]
    fn: Callable
    torch_fn: Callable
    second_order: bool = True        # include in the Hessian-vector product checks
    gradcheck_kw: dict = field(default_factory=dict)
    out_dtype: Any = None            # when the op itself fixes the output dtype (astype)

    @property
    def id(self) -> str:
        return f"{self.op}[{self.name}]"


# ---------------------------------------------------------------------------
# Input makers: each is rng -> ndarray (float64).

def normal(*shape, scale=1.0):
    return lambda rng: rng.standard_normal(shape) * scale


def positive(*shape, lo=0.5, hi=2.0):
    return lambda rng: rng.uniform(lo, hi, shape)


def away(*shape, lo=0.3, hi=1.5):
    """|x| in [lo, hi] with a random sign: far from the kink of abs/relu at 0."""
    return lambda rng: rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def _grid(rng, n):
    # n distinct values on a 0.25 grid (jittered by < 0.05): no ties, no value near a
    # multiple of 0.25 + 0.125, so thresholds placed there (clip bounds) are far away.
    return (rng.permutation(n) - n // 2) * 0.25 + rng.uniform(-0.04, 0.04, n)


def distinct(*shape):
    return lambda rng: _grid(rng, math.prod(shape)).reshape(shape)


def distinct_pair(shape_a, shape_b):
    """Two arrays whose values are all different from each other (for maximum/minimum)."""
    def make(rng):
        na, nb = math.prod(shape_a), math.prod(shape_b)
        pool = _grid(rng, na + nb)
        return pool[:na].reshape(shape_a), pool[na:].reshape(shape_b)
    return make


def ins(*makers):
    return lambda rng: tuple(m(rng) for m in makers)


def _dims(a, axis):
    return tuple(range(a.ndim)) if axis is None else axis


def t_reduce(name):
    def reduce(a, axis=None, keepdims=False):
        dims = _dims(a, axis)
        if name == "logsumexp":
            return T.logsumexp(a, dim=dims, keepdim=keepdims)
        return getattr(a, name)(dim=dims, keepdim=keepdims)
    return reduce


IDX = np.array([0, 2, 0])                    # repeated index: gradients must accumulate
ROWS, COLS = np.array([[0, 1], [1, 1]]), np.array([0, 2])
MASK = np.array([[True, False, True], [False, True, True]])
COND_COL = np.array([[True], [False], [True]])
COND_ROW = np.array([True, False, False, True])


def _cases() -> dict[str, list[Case]]:
    table: dict[str, list[Case]] = {}

    def add(op, name, make, fn, torch_fn, **kw):
        table.setdefault(op, []).append(Case(op, name, make, fn, torch_fn, **kw))

    # -- elementwise binary, with broadcasting --------------------------------------
    add("add", "(3,1,4)+(2,4)", ins(normal(3, 1, 4), normal(2, 4)), lambda a, b: a + b,
        lambda a, b: a + b)
    add("add", "0-d+(3,)", ins(normal(), normal(3)), lambda a, b: a + b, lambda a, b: a + b)
    add("add", "x+number", ins(normal(2, 3)), lambda a: a + 2.5, lambda a: a + 2.5)
    add("add", "number+x", ins(normal(2, 3)), lambda a: 1.5 + a, lambda a: 1.5 + a)
    add("add", "a+a", ins(normal(3)), lambda a: a + a, lambda a: a + a)

    add("sub", "(4,1)-(1,5)", ins(normal(4, 1), normal(1, 5)), lambda a, b: a - b,
        lambda a, b: a - b)
    add("sub", "(3,)-0-d", ins(normal(3), normal()), lambda a, b: a - b, lambda a, b: a - b)
    add("sub", "number-x", ins(normal(2, 3)), lambda a: 1.0 - a, lambda a: 1.0 - a)

    add("mul", "(3,1,4)*(2,4)", ins(normal(3, 1, 4), normal(2, 4)), lambda a, b: a * b,
        lambda a, b: a * b)
    add("mul", "x*x", ins(normal(2, 3)), lambda a: a * a, lambda a: a * a)
    add("mul", "0-d*(2,3)", ins(normal(), normal(2, 3)), lambda a, b: a * b,
        lambda a, b: a * b)
    add("mul", "number*x", ins(normal(3)), lambda a: 2.0 * a, lambda a: 2.0 * a)

    add("div", "(2,3)/(3,)", ins(normal(2, 3), away(3)), lambda a, b: a / b,
        lambda a, b: a / b)
    add("div", "0-d/(2,3)", ins(normal(), away(2, 3)), lambda a, b: a / b,
        lambda a, b: a / b)
    add("div", "number/x", ins(away(2, 3)), lambda a: 1.0 / a, lambda a: 1.0 / a)
    add("div", "x/number", ins(normal(3)), lambda a: a / 4.0, lambda a: a / 4.0)

    add("pow", "(2,3)**(3,)", ins(positive(2, 3), normal(3)), lambda a, b: a ** b,
        lambda a, b: a ** b)
    add("pow", "number**x", ins(normal(2, 3)), lambda a: 2.0 ** a, lambda a: 2.0 ** a)
    add("pow", "x**const-tensor", ins(positive(4)),
        lambda a: a ** Tensor(1.7, dtype=a.dtype), lambda a: a ** T.tensor(1.7, dtype=a.dtype))

    add("maximum", "(2,3)vs(3,)", distinct_pair((2, 3), (3,)), maximum, lambda a, b: T.maximum(a, b))
    add("maximum", "(3,1)vs(1,4)", distinct_pair((3, 1), (1, 4)), maximum, lambda a, b: T.maximum(a, b))
    add("maximum", "x-vs-number", ins(distinct(2, 3)), lambda a: maximum(a, 0.125),
        lambda a: T.clamp(a, min=0.125))
    add("maximum", "number-vs-x", ins(distinct(5)), lambda a: maximum(-0.125, a),
        lambda a: T.clamp(a, min=-0.125))

    add("minimum", "(2,3)vs(3,)", distinct_pair((2, 3), (3,)), minimum, lambda a, b: T.minimum(a, b))
    add("minimum", "(3,1)vs(1,4)", distinct_pair((3, 1), (1, 4)), minimum, lambda a, b: T.minimum(a, b))
    add("minimum", "x-vs-number", ins(distinct(2, 3)), lambda a: minimum(a, 0.125),
        lambda a: T.clamp(a, max=0.125))

    mm = (lambda a, b: a @ b)
    for name, sa, sb in [("2-D", (3, 4), (4, 2)), ("1-D@1-D", (4,), (4,)),
                         ("1-D@2-D", (4,), (4, 3)), ("2-D@1-D", (3, 4), (4,)),
                         ("batched", (2, 3, 4), (2, 4, 5)),
                         ("batch-broadcast", (2, 1, 3, 4), (5, 4, 2)),
                         ("batched@2-D", (2, 3, 4), (4, 2)),
                         ("1-D@batched", (4,), (2, 4, 3)),
                         ("batched@1-D", (2, 3, 4), (4,))]:
        add("matmul", name, ins(normal(*sa), normal(*sb)), mm, lambda a, b: T.matmul(a, b))

    # -- elementwise unary -----------------------------------------------------------
    add("neg", "(2,3)", ins(normal(2, 3)), lambda a: -a, lambda a: -a)
    add("neg", "0-d", ins(normal()), lambda a: -a, lambda a: -a)
    add("exp", "(2,3)", ins(normal(2, 3)), lambda a: a.exp(), lambda a: a.exp())
    add("exp", "0-d", ins(normal()), lambda a: a.exp(), lambda a: a.exp())
    add("log", "(2,3)", ins(positive(2, 3)), lambda a: a.log(), lambda a: a.log())
    add("log", "0-d", ins(positive()), lambda a: a.log(), lambda a: a.log())
    add("sqrt", "(2,3)", ins(positive(2, 3)), lambda a: a.sqrt(), lambda a: a.sqrt())
    add("abs", "(2,3)", ins(away(2, 3)), lambda a: a.abs(), lambda a: a.abs())
    add("abs", "abs()", ins(away(4)), lambda a: abs(a), lambda a: abs(a))
    add("sin", "(2,3)", ins(normal(2, 3)), lambda a: a.sin(), lambda a: a.sin())
    add("sin", "0-d", ins(normal()), lambda a: a.sin(), lambda a: a.sin())
    add("cos", "(2,3)", ins(normal(2, 3)), lambda a: a.cos(), lambda a: a.cos())
    add("cos", "0-d", ins(normal()), lambda a: a.cos(), lambda a: a.cos())
    add("clone", "(2,3)", ins(normal(2, 3)), lambda a: a.clone(), lambda a: a.clone())
    add("tanh", "(2,3)", ins(normal(2, 3)), lambda a: a.tanh(), lambda a: a.tanh())
    add("tanh", "0-d", ins(normal()), lambda a: a.tanh(), lambda a: a.tanh())
    add("sigmoid", "(2,3)", ins(normal(2, 3, scale=2.0)), lambda a: a.sigmoid(),
        lambda a: a.sigmoid())
    add("relu", "(2,3)", ins(away(2, 3)), lambda a: a.relu(), lambda a: a.relu())
    add("clip", "lo,hi", ins(distinct(3, 4)), lambda a: a.clip(-0.375, 0.625),
        lambda a: a.clamp(-0.375, 0.625))
    add("clip", "lo-only", ins(distinct(3, 4)), lambda a: a.clip(lo=-0.375),
        lambda a: a.clamp(min=-0.375))
    add("clip", "hi-only", ins(distinct(3, 4)), lambda a: a.clip(hi=0.625),
        lambda a: a.clamp(max=0.625))

    for name, make, c in [("x**2", normal(2, 3), 2), ("x**3", normal(2, 3), 3),
                          ("x**1", normal(3), 1), ("x**0.5", positive(2, 3), 0.5),
                          ("x**-1.5", positive(2, 3), -1.5), ("x**-2", away(2, 3), -2)]:
        add("pow_const", name, ins(make), (lambda a, c=c: a ** c), (lambda a, c=c: a ** c))

    for name, fn in [("x+2", lambda a: a + 2), ("2.5+x", lambda a: 2.5 + a),
                     ("x-0.75", lambda a: a - 0.75)]:
        add("add_const", name, ins(normal(2, 3)), fn, fn)
    for name, fn in [("x*3", lambda a: a * 3), ("-0.5*x", lambda a: -0.5 * a),
                     ("x*0", lambda a: a * 0.0)]:
        add("mul_const", name, ins(normal(2, 3)), fn, fn)

    def fused_affine(b, w1, x1, w2, x2):
        return b._apply(OPS["affine"], w1, w2, x1, x2, n=2)

    add("affine", "b+w1*x1+w2*x2 (bcast)", ins(normal(3), normal(2, 3), normal(3),
                                               normal(1), normal(2, 1)),
        fused_affine, lambda b, w1, x1, w2, x2: b + w1 * x1 + w2 * x2)

    def fused_bce(p, y):
        return p._apply(OPS["binary_cross_entropy"], y)

    add("binary_cross_entropy", "p,y (3,4)", ins(positive(3, 4, lo=0.1, hi=0.9),
                                                 positive(3, 4, lo=0.0, hi=1.0)),
        fused_bce, lambda p, y: T.nn.functional.binary_cross_entropy(p, y, reduction="none"))

    def fused_linear(x, w, *b):
        return x._apply(OPS["linear"], w, *b)

    add("linear", "x(4,3)w(2,3)b(2,)", ins(normal(4, 3), normal(2, 3), normal(2)),
        fused_linear, lambda x, w, b: T.nn.functional.linear(x, w, b))
    add("linear", "no-bias", ins(normal(5, 3), normal(4, 3)), fused_linear,
        lambda x, w: T.nn.functional.linear(x, w))
    coef = np.array([[0.0, 0.5, 0.0], [0.25, 0.0, 0.0], [0.0, 0.0, 0.25]])

    def fused_nll(x):
        return x._apply(OPS["weighted_nll"], coef=coef.astype(x.dtype))

    add("weighted_nll", "(3,3)", ins(normal(3, 3)), fused_nll,
        lambda x: -(T.as_tensor(coef, dtype=x.dtype) * T.log_softmax(x, dim=1)).sum())

    add("where", "cond(3,1),a(3,4),b(4,)", ins(normal(3, 4), normal(4)),
        lambda a, b: where(COND_COL, a, b),
        lambda a, b: T.where(T.as_tensor(COND_COL), a, b))
    add("where", "b-number", ins(normal(2, 4)), lambda a: where(COND_ROW, a, 0.5),
        lambda a: T.where(T.as_tensor(COND_ROW), a, T.tensor(0.5, dtype=a.dtype)))
    add("where", "cond(4,),a(2,1),b(2,4)", ins(normal(2, 1), normal(2, 4)),
        lambda a, b: where(Tensor(COND_ROW), a, b),
        lambda a, b: T.where(T.as_tensor(COND_ROW), a, b))

    # -- reductions ------------------------------------------------------------------
    axes = [(None, False), (1, False), (-1, False), ((0, 2), False), ((0, -1), True),
            (None, True)]
    for op, make in [("sum", normal), ("mean", normal), ("max", distinct),
                     ("min", distinct), ("logsumexp", normal)]:
        tr = t_reduce({"max": "amax", "min": "amin"}.get(op, op))
        for axis, keep in axes:
            add(op, f"axis={axis},keepdims={keep}", ins(make(2, 3, 4)),
                (lambda a, op=op, axis=axis, keep=keep:
                 getattr(a, op)(axis=axis, keepdims=keep)),
                (lambda a, axis=axis, keep=keep, tr=tr: tr(a, axis, keep)))
    add("sum", "0-d", ins(normal()), lambda a: a.sum(), lambda a: a.sum())
    add("mean", "default", ins(normal(5)), lambda a: a.mean(), lambda a: a.mean())
    add("max", "default", ins(distinct(5)), lambda a: a.max(), lambda a: a.amax())
    add("min", "default", ins(distinct(5)), lambda a: a.min(), lambda a: a.amin())

    for op in ("softmax", "log_softmax"):
        for name, shape, axis in [("axis=-1", (2, 5), -1), ("axis=0", (3, 4), 0),
                                  ("3-D,axis=1", (2, 3, 4), 1), ("1-D", (5,), -1)]:
            add(op, name, ins(normal(*shape, scale=2.0)),
                (lambda a, op=op, axis=axis: getattr(a, op)(axis=axis)),
                (lambda a, op=op, axis=axis: getattr(T, op)(a, dim=axis)))
    add("softmax", "default-axis", ins(normal(3, 4)), lambda a: a.softmax(),
        lambda a: T.softmax(a, dim=-1))
    add("log_softmax", "default-axis", ins(normal(3, 4)), lambda a: a.log_softmax(),
        lambda a: T.log_softmax(a, dim=-1))

    # -- shape and indexing ----------------------------------------------------------
    add("reshape", "(2,3,4)->(4,-1)", ins(normal(2, 3, 4)), lambda a: a.reshape(4, -1),
        lambda a: a.reshape(4, -1))
    add("reshape", "(6,)->tuple(2,3)", ins(normal(6)), lambda a: a.reshape((2, 3)),
        lambda a: a.reshape(2, 3))
    add("reshape", "0-d->(1,1)", ins(normal()), lambda a: a.reshape(1, 1),
        lambda a: a.reshape(1, 1))
    add("transpose", ".T", ins(normal(2, 3)), lambda a: a.T, lambda a: a.T)
    add("transpose", "(1,0,2)", ins(normal(2, 3, 4)), lambda a: a.transpose(1, 0, 2),
        lambda a: a.permute(1, 0, 2))
    add("transpose", "(-1,0,1)", ins(normal(2, 3, 4)), lambda a: a.transpose((-1, 0, 1)),
        lambda a: a.permute(-1, 0, 1))
    add("transpose", "reverse-3-D", ins(normal(2, 3, 4)), lambda a: a.transpose(),
        lambda a: a.permute(2, 1, 0))

    add("getitem", "repeated[0,2,0]", ins(normal(4)), lambda a: a[[0, 2, 0]],
        lambda a: a[T.as_tensor(IDX)])
    add("getitem", "rows-repeated", ins(normal(3, 2)), lambda a: a[IDX],
        lambda a: a[T.as_tensor(IDX)])
    add("getitem", "slices", ins(normal(3, 5)), lambda a: a[1:, ::2],
        lambda a: a[1:, ::2])
    add("getitem", "int", ins(normal(3, 4)), lambda a: a[1], lambda a: a[1])
    add("getitem", "negative-int", ins(normal(3, 4)), lambda a: a[:, -1],
        lambda a: a[:, -1])
    add("getitem", "bool-mask", ins(normal(2, 3)), lambda a: a[MASK],
        lambda a: a[T.as_tensor(MASK)])
    add("getitem", "ellipsis", ins(normal(2, 3, 4)), lambda a: a[..., 2],
        lambda a: a[..., 2])
    add("getitem", "2-D-fancy-repeats", ins(normal(2, 3)), lambda a: a[ROWS, COLS],
        lambda a: a[T.as_tensor(ROWS), T.as_tensor(COLS)])

    add("scatter", "repeated-rows", ins(normal(3, 3)),
        lambda g: g._apply(OPS["scatter"], index=IDX, shape=(4, 3)),
        lambda g: T.zeros((4, 3), dtype=g.dtype).index_add(0, T.as_tensor(IDX), g))
    add("broadcast_to", "(3,1)->(2,3,4)", ins(normal(3, 1)),
        lambda a: a._apply(OPS["broadcast_to"], shape=(2, 3, 4)),
        lambda a: a.broadcast_to((2, 3, 4)))
    add("sum_to", "(2,3,4)->(3,1)", ins(normal(2, 3, 4)),
        lambda a: a._apply(OPS["sum_to"], shape=(3, 1)),
        lambda a: a.sum(0).sum(-1, keepdim=True))
    add("sum_to", "(2,3)->(3,)", ins(normal(2, 3)),
        lambda a: a._apply(OPS["sum_to"], shape=(3,)), lambda a: a.sum(0))

    add("astype", "to-float64", ins(normal(2, 3)), lambda a: a.astype(np.float64),
        lambda a: a.to(T.float64), out_dtype=np.float64)
    # float32 rounding: a large eps (exact for a linear map) keeps central differences sane.
    add("astype", "to-float32", ins(normal(2, 3)), lambda a: a.astype(np.float32),
        lambda a: a.to(T.float32), out_dtype=np.float32, second_order=False,
        gradcheck_kw={"eps": 1e-2, "atol": 1e-4})

    def ones_like(a, shape):
        return Tensor(np.ones(shape), dtype=a.dtype)

    add("concatenate", "axis=0,three", ins(normal(2, 3), normal(1, 3), normal(3, 3)),
        lambda a, b, c: concatenate([a, b, c], axis=0), lambda a, b, c: T.cat([a, b, c], 0))
    add("concatenate", "axis=-1", ins(normal(2, 1), normal(2, 3)),
        lambda a, b: concatenate((a, b), axis=-1), lambda a, b: T.cat([a, b], -1))
    add("concatenate", "3-D,axis=-2,with-constant", ins(normal(2, 2, 3), normal(2, 1, 3)),
        lambda a, b: concatenate([a, ones_like(a, (2, 3, 3)), b], axis=-2),
        lambda a, b: T.cat([a, T.ones((2, 3, 3), dtype=a.dtype), b], -2))
    add("stack", "axis=0,three", ins(normal(2, 3), normal(2, 3), normal(2, 3)),
        lambda a, b, c: stack([a, b, c]), lambda a, b, c: T.stack([a, b, c]))
    add("stack", "axis=-1", ins(normal(2, 3), normal(2, 3)),
        lambda a, b: stack([a, b], axis=-1), lambda a, b: T.stack([a, b], -1))
    add("stack", "0-d", ins(normal(), normal()), lambda a, b: stack([a, b, a]),
        lambda a, b: T.stack([a, b, a]))

    # -- convolution (one n-d primitive: conv1d and conv2d) ------------------------------
    def conv_case(name, dims, x_shape, w_shape, bias=True, **opts):
        ours, theirs = (F.conv1d, "conv1d") if dims == 1 else (F.conv2d, "conv2d")
        makers = (normal(*x_shape), normal(*w_shape)) + ((normal(w_shape[0]),) if bias else ())
        add("convolution", name, ins(*makers),
            lambda x, w, *b: ours(x, w, *b, **opts),
            lambda x, w, *b: getattr(T.nn.functional, theirs)(x, w, *b, **opts))

    conv_case("2-D", 2, (2, 3, 5, 6), (4, 3, 3, 2))
    conv_case("2-D,stride,pad,dilation", 2, (2, 2, 7, 6), (3, 2, 2, 3), stride=(2, 1),
              padding=(1, 2), dilation=(2, 1))
    conv_case("2-D,groups,no-bias", 2, (1, 4, 5, 5), (6, 2, 3, 3), bias=False, groups=2,
              stride=2, padding=1)
    conv_case("2-D,same,even-kernel", 2, (2, 2, 4, 5), (2, 2, 2, 4), padding="same",
              dilation=(1, 2))
    conv_case("2-D,unbatched", 2, (2, 4, 4), (3, 2, 2, 2))
    conv_case("1-D,stride,pad,dilation", 1, (2, 3, 9), (2, 3, 3), stride=2, padding=2,
              dilation=2)
    conv_case("1-D,groups,valid", 1, (3, 6, 7), (3, 2, 4), groups=3, padding="valid")
    return table


def _pool_norm_cases(table: dict) -> None:
    """Pooling and batch norm (autodiff/ops_pool.py), through nn.functional: option grids
    with overlapping windows, padding, dilation, ceil mode and unbatched inputs."""
    import nn.functional as F

    def add(op, name, make, fn, torch_fn, **kw):
        table.setdefault(op, []).append(Case(op, name, make, fn, torch_fn, **kw))

    def TF():
        return T.nn.functional

    max_grid = [
        ("k2", (2, 3, 6, 6), dict(kernel_size=2)),
        ("k3,s2,p1", (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
        ("k2,s1-overlap", (1, 2, 4, 5), dict(kernel_size=2, stride=1)),
        ("k(2,3),s(2,1),p1,d(2,1),ceil", (1, 2, 7, 8),
         dict(kernel_size=(2, 3), stride=(2, 1), padding=1, dilation=(2, 1), ceil_mode=True)),
        ("k2,ceil", (1, 1, 5, 5), dict(kernel_size=2, ceil_mode=True)),
        ("unbatched,k3,s2", (2, 5, 6), dict(kernel_size=3, stride=2)),
    ]
    for name, shape, kw in max_grid:
        add("max_pool2d", name, ins(distinct(*shape)),
            (lambda a, kw=kw: F.max_pool2d(a, **kw)),
            (lambda a, kw=kw: TF().max_pool2d(a, **kw)))

    avg_grid = [
        ("k2", (2, 3, 6, 6), dict(kernel_size=2)),
        ("k3,s2,p1", (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
        ("k3,s2,p1,exclude-pad", (2, 2, 7, 7),
         dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
        ("k3,s2,p1,ceil", (1, 2, 6, 6), dict(kernel_size=3, stride=2, padding=1,
                                              ceil_mode=True)),
        ("k3,s2,p1,ceil,exclude-pad", (1, 2, 6, 6),
         dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
        ("k(3,2),s(1,2),divisor=5", (1, 2, 5, 6),
         dict(kernel_size=(3, 2), stride=(1, 2), divisor_override=5)),
        ("unbatched,k2,s1", (3, 4, 5), dict(kernel_size=2, stride=1)),
    ]
    for name, shape, kw in avg_grid:
        add("avg_pool2d", name, ins(normal(*shape)),
            (lambda a, kw=kw: F.avg_pool2d(a, **kw)),
            (lambda a, kw=kw: TF().avg_pool2d(a, **kw)))

    for name, shape, size in [("(7,5)->(3,2)", (2, 3, 7, 5), (3, 2)),
                              ("->1", (2, 3, 4, 4), 1),
                              ("(None,4)", (1, 2, 5, 6), (None, 4)),
                              ("upsample(3,5)->(7,9)", (1, 2, 3, 5), (7, 9)),
                              ("unbatched", (3, 6, 4), (4, 3))]:
        add("adaptive_avg_pool2d", name, ins(normal(*shape)),
            (lambda a, size=size: F.adaptive_avg_pool2d(a, size)),
            (lambda a, size=size: TF().adaptive_avg_pool2d(a, size)))

    # Batch statistics (training) and running ones (evaluation); no running buffers are
    # passed in training, so that calling the case again and again changes nothing.
    mean, var = np.array([0.5, -1.0, 0.25]), np.array([0.5, 2.0, 1.5])

    def stats(a):
        return T.as_tensor(mean, dtype=a.dtype), T.as_tensor(var, dtype=a.dtype)

    add("batch_norm", "train,(4,3,5),w,b", ins(normal(4, 3, 5), normal(3), normal(3)),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: TF().batch_norm(x, None, None, w, b, training=True))
    add("batch_norm", "train,(3,3,2,4),w,b,eps=0.1",
        ins(normal(3, 3, 2, 4, scale=2.0), normal(3), normal(3)),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=0.1),
        lambda x, w, b: TF().batch_norm(x, None, None, w, b, training=True, eps=0.1))
    add("batch_norm", "train,(6,3),no-affine", ins(normal(6, 3)),
        lambda x: F.batch_norm(x, None, None, training=True),
        lambda x: TF().batch_norm(x, None, None, training=True))
    add("batch_norm", "train,(5,3,2),bias-only", ins(normal(5, 3, 2), normal(3)),
        lambda x, b: F.batch_norm(x, None, None, None, b, training=True),
        lambda x, b: TF().batch_norm(x, None, None, None, b, training=True))
    add("batch_norm", "eval,(4,3,2,2),weight-only", ins(normal(4, 3, 2, 2), normal(3)),
        lambda x, w: F.batch_norm(x, mean.astype(x.dtype), var.astype(x.dtype), w),
        lambda x, w: TF().batch_norm(x, *stats(x), w))
    add("batch_norm", "eval,(4,3),w,b", ins(normal(4, 3), normal(3), normal(3)),
        lambda x, w, b: F.batch_norm(x, mean.astype(x.dtype), var.astype(x.dtype), w, b),
        lambda x, w, b: TF().batch_norm(x, *stats(x), w, b))


def _layer_norm_cases(table: dict) -> None:
    """Layer norm (autodiff/ops_norm.py), through nn.functional: one to three normalised
    trailing axes, with and without weight and bias, an unbatched input."""
    import nn.functional as F

    def add(name, make, fn, torch_fn):
        table.setdefault("layer_norm", []).append(Case("layer_norm", name, make, fn, torch_fn))

    def TF():
        return T.nn.functional

    add("(4,5),w,b", ins(normal(4, 5), normal(5), normal(5)),
        lambda x, w, b: F.layer_norm(x, (5,), w, b),
        lambda x, w, b: TF().layer_norm(x, (5,), w, b))
    add("(2,3,4),(3,4),w,eps=0.1", ins(normal(2, 3, 4, scale=2.0), normal(3, 4)),
        lambda x, w: F.layer_norm(x, (3, 4), w, eps=0.1),
        lambda x, w: TF().layer_norm(x, (3, 4), w, eps=0.1))
    add("(3,2,2,3),(2,2,3),no-affine", ins(normal(3, 2, 2, 3)),
        lambda x: F.layer_norm(x, (2, 2, 3)),
        lambda x: TF().layer_norm(x, (2, 2, 3)))
    add("(2,4),bias-only", ins(normal(2, 4), normal(4)),
        lambda x, b: F.layer_norm(x, 4, None, b),
        lambda x, b: TF().layer_norm(x, (4,), None, b))
    add("unbatched(6,),w,b", ins(normal(6), normal(6), normal(6)),
        lambda x, w, b: F.layer_norm(x, 6, w, b),
        lambda x, w, b: TF().layer_norm(x, (6,), w, b))


def _torch_lstm_cell(x, hc, w_ih, w_hh, b_ih=None, b_hh=None):
    """PyTorch's LSTMCell step (its gate order i, f, g, o) on the state [h^T; c^T]."""
    bias = None if b_ih is None else b_ih + b_hh
    h, c = hc[0].T, hc[1].T
    gates = x @ w_ih.T + h @ w_hh.T + (0 if bias is None else bias)
    i, f, g, o = gates.chunk(4, dim=1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return T.stack(((o.sigmoid() * c_next.tanh()).T, c_next.T))


def _lstm_cell_cases(table: dict) -> None:
    """The fused LSTM step (autodiff/ops_rnn.py), through nn.recurrent.lstm_cell: with and
    without biases, a batch of one."""
    from nn.recurrent import lstm_cell

    def add(name, make, fn, torch_fn):
        table.setdefault("lstm_cell", []).append(Case("lstm_cell", name, make, fn, torch_fn))

    add("(3,4),H=2,bias", ins(normal(3, 4), normal(2, 2, 3), normal(8, 4), normal(8, 2),
                              normal(8), normal(8)),
        lambda x, hc, wi, wh, bi, bh: lstm_cell(x, hc, wi, wh, bi, bh),
        _torch_lstm_cell)
    add("(2,3),H=3,no-bias", ins(normal(2, 3), normal(2, 3, 2, scale=2.0), normal(12, 3),
                                 normal(12, 3)),
        lambda x, hc, wi, wh: lstm_cell(x, hc, wi, wh, None, None),
        _torch_lstm_cell)
    add("(1,2),H=2,bias", ins(normal(1, 2), normal(2, 2, 1), normal(8, 2), normal(8, 2),
                              normal(8), normal(8)),
        lambda x, hc, wi, wh, bi, bh: lstm_cell(x, hc, wi, wh, bi, bh),
        _torch_lstm_cell)


CASES: dict[str, list[Case]] = _cases()
_pool_norm_cases(CASES)
_layer_norm_cases(CASES)
_lstm_cell_cases(CASES)
ALL_CASES: list[Case] = [case for cases in CASES.values() for case in cases]
