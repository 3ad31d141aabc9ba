"""nn's fused operations: thin wrappers over the engine's `linear` and `weighted_nll`
primitives (see autodiff/ops.py for their forward and vjp, and why they are fused).
Composite versions remain the reference the tests compare against."""

from __future__ import annotations

import numpy as np

from autodiff import OPS, Tensor
from autodiff.tensor import apply

LINEAR, WEIGHTED_NLL = OPS["linear"], OPS["weighted_nll"]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x W^T + b. One fused node for a batch of rows (x of shape (N, in)); composed from
    matmul and add for any other shape."""
    if x.data.ndim != 2:
        y = x @ weight.T
        return y if bias is None else y + bias
    return apply(LINEAR, (x, weight) if bias is None else (x, weight, bias))


def weighted_nll(logits: Tensor, coef: np.ndarray, rowsum=None) -> Tensor:
    """-sum_ic coef_ic log_softmax(logits)_ic, a scalar (one fused node). `rowsum`, the
    row sums of coef (shape (N, 1), or one number for all rows), saves the backward from
    computing them when the caller knows them."""
    kw = {"coef": coef}
    if rowsum is not None:
        kw["rowsum"] = rowsum
    return apply(WEIGHTED_NLL, (logits,), kw)
