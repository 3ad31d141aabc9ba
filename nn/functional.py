"""nn's two fused operations, each a forward and its vjp side by side, as in the engine's
op table (they are engine `Op` records, kept out of the engine's registry).

Fused because it is measurably faster (benchmarks/bench_digits.py): a Linear layer is one
graph node instead of three (transpose, matmul, add) and its weight gradient comes out
as (out, in) directly instead of as a transposed copy; the cross-entropy is one node
instead of three (log_softmax, product, sum). Composite versions of both remain the
reference the tests compare against. Like the engine's rules, each vjp is written with
operators that work on raw arrays and on graph nodes, so create_graph still works.
"""

from __future__ import annotations

import numpy as np

from autodiff import Tensor
from autodiff.engine import Node
from autodiff.ops import Op
from autodiff.tensor import apply


def _linear_forward(x, w, *b, need):
    out = x @ w.T
    if b:
        if out.dtype == np.result_type(out, b[0]):
            out += b[0]
        else:
            out = out + b[0]
    return out


def _linear_vjp(g, out, x, w, *b, need):
    gx = g @ w if need[0] else None
    gw = g.T @ x if need[1] else None
    return (gx, gw) + ((g.sum(axis=0) if need[2] else None,) if b else ())


LINEAR = Op("linear", "x @ w.T + b for x of shape (N, in); d/dx = g @ w, d/dw = g.T @ x, "
            "d/db = sum_n g", _linear_forward, _linear_vjp)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x W^T + b. One fused node for a batch of rows (x of shape (N, in)); composed from
    matmul and add for any other shape."""
    if x.data.ndim != 2:
        y = x @ weight.T
        return y if bias is None else y + bias
    if bias is None:
        return apply(LINEAR, (x, weight), {"need": (x.requires_grad, weight.requires_grad)})
    return apply(LINEAR, (x, weight, bias),
                 {"need": (x.requires_grad, weight.requires_grad, bias.requires_grad)})


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


def _softmax(x):
    if isinstance(x, Node):
        return x.softmax(axis=1)
    z = np.exp(x - x.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return z


def _weighted_nll_forward(x, coef, cache):
    log_p = _log_softmax(x)
    cache["log_p"] = log_p  # the vjp's softmax is exp(log_p): no second pass over x
    return np.asarray(-np.vdot(log_p, coef), dtype=x.dtype)


def _weighted_nll_vjp(g, out, x, coef, cache):
    # d/dx_ic of -sum_jk coef_jk log_softmax(x)_jk = softmax(x)_ic sum_k coef_ik - coef_ic
    log_p = None if isinstance(x, Node) else cache.pop("log_p", None)
    if log_p is None:
        return ((_softmax(x) * coef.sum(axis=1, keepdims=True) - coef) * g,)
    p = np.exp(log_p, out=log_p)  # plain backward: finish in place, no new arrays
    p *= coef.sum(axis=1, keepdims=True)
    p -= coef
    p *= g
    return (p,)


WEIGHTED_NLL = Op("weighted_nll", "-sum(coef * log_softmax(x, axis=1)); d/dx = "
                  "softmax(x) * rowsum(coef) - coef", _weighted_nll_forward, _weighted_nll_vjp)


def weighted_nll(logits: Tensor, coef: np.ndarray) -> Tensor:
    """-sum_ic coef_ic log_softmax(logits)_ic, a scalar (one fused node)."""
    return apply(WEIGHTED_NLL, (logits,), {"coef": coef, "cache": {}})
