"""RMSprop (Hinton) with PyTorch's arithmetic.

    g = g + wd p
    s = alpha s + (1 - alpha) g^2
    a = sqrt(s) + eps               (centered: sqrt(s - gbar^2) + eps, gbar = mean of g)
    b = mu b + g / a;  p = p - lr b     (momentum > 0)
    p = p - lr g / a                    (otherwise)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ._checks import check_flag, check_number
from .optimizer import Optimizer, scratch


class RMSprop(Optimizer):
    """Divide the gradient by a running root-mean-square of its recent values.

    >>> from autodiff import Value
    >>> w = Value(1.0); w.grad = 0.5
    >>> RMSprop([w], lr=0.01).step(); round(w.data, 4)   # 1 - 0.01 * 0.5 / sqrt(0.01 * 0.25)
    0.9
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay))

    def _check(self, group: dict) -> None:
        where = type(self).__name__
        for key in ("lr", "eps", "momentum", "weight_decay"):
            check_number(where, key, group[key])
        check_number(where, "alpha", group["alpha"], high=1.0)
        check_flag(where, "centered", group["centered"])
        super()._check(group)

    def _state_keys(self, group: dict) -> tuple[set, set]:
        required = {"step", "square_avg"}
        if group["momentum"] > 0:
            required.add("momentum_buffer")
        if group["centered"]:
            required.add("grad_avg")
        return required, {"momentum_buffer", "grad_avg"}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict,
                work: dict) -> None:
        alpha, mu, wd = group["alpha"], group["momentum"], group["weight_decay"]
        if "square_avg" not in state:  # (PyTorch's buffers, made in PyTorch's order)
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if mu > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p)
        # (the step count is PyTorch's bookkeeping: the rule has no bias correction)
        state["step"] = state.get("step", 0) + 1
        s, tmp = state["square_avg"], scratch(work, "tmp", p)
        if wd:
            gw = scratch(work, "grad_wd", p)
            np.multiply(p, wd, out=gw)
            gw += g
            g = gw
        s *= alpha
        np.multiply(g, g, out=tmp)
        tmp *= 1 - alpha
        s += tmp
        if group["centered"]:
            gbar = state.get("grad_avg")
            if gbar is None:  # (centered switched on after the first step)
                gbar = state["grad_avg"] = np.zeros_like(p)
            np.subtract(g, gbar, out=tmp)
            tmp *= 1 - alpha
            gbar += tmp
            np.multiply(gbar, gbar, out=tmp)
            np.subtract(s, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(s, out=tmp)
        tmp += group["eps"]
        np.divide(g, tmp, out=tmp)
        if mu > 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # (momentum switched on after the first step)
                buf = state["momentum_buffer"] = np.zeros_like(p)
            buf *= mu
            buf += tmp
            np.multiply(buf, group["lr"], out=tmp)
        else:
            tmp *= group["lr"]
        p -= tmp
