"""AdamW (Loshchilov & Hutter): Adam with the weight decay taken out of the gradient.

    p = p (1 - lr wd)                       (decoupled: the moments never see the decay)
    then Adam's step with g as it is

PyTorch's order: the parameter shrinks first, then the moments and the step as in Adam.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .adam import Adam


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2, as PyTorch's).

    >>> from autodiff import Value
    >>> w = Value(1.0); w.grad = 0.0
    >>> AdamW([w], lr=0.1, weight_decay=0.5).step(); round(w.data, 6)   # 1 * (1 - 0.1 * 0.5)
    0.95
    """

    _torch_flags = {"decoupled_weight_decay": True}

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)

    def _decay(self, p: np.ndarray, g: np.ndarray, group: dict, work: dict) -> np.ndarray:
        """Shrink p by (1 - lr wd) in place; the gradient is left as it is."""
        wd = group["weight_decay"]
        if wd:
            p *= 1 - group["lr"] * wd
        return g
