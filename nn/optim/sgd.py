"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

    d = g + wd p
    b = mu b + (1 - dampening) d        (first step: b = d)
    d = d + mu b  (Nesterov)   or   d = b
    p = p - lr d

PyTorch's update rule, step for step.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ._checks import check_flag, check_number
from .optimizer import Optimizer, scratch


class SGD(Optimizer):
    """p <- p - lr d, with d the (momentum-averaged, weight-decayed) gradient.

    >>> from autodiff import Value
    >>> w = Value(1.0); w.grad = 0.5
    >>> SGD([w], lr=0.1).step(); w.data
    0.95
    """

    # (PyTorch stores None for a buffer not made yet; the first step then starts it)
    _nullable_state = frozenset({"momentum_buffer"})

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check(self, group: dict) -> None:
        where = type(self).__name__
        for key in ("lr", "momentum", "weight_decay"):
            check_number(where, key, group[key])
        check_number(where, "dampening", group["dampening"], low=-math.inf)
        check_flag(where, "nesterov", group["nesterov"])
        super()._check(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening 0")

    def _state_keys(self, group: dict) -> tuple[set, set]:
        return set(), {"momentum_buffer"}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict,
                work: dict) -> None:
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        tmp = scratch(work, "tmp", p)
        d = g
        if wd:
            np.multiply(p, wd, out=tmp)
            tmp += g
            d = tmp
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= mu
                damp = group["dampening"]
                if damp:
                    tmp2 = scratch(work, "tmp2", p)
                    np.multiply(d, 1 - damp, out=tmp2)
                    buf += tmp2
                else:
                    buf += d
            if group["nesterov"]:
                tmp2 = scratch(work, "tmp2", p)
                np.multiply(buf, mu, out=tmp2)
                tmp2 += d
                d = tmp2
            else:
                d = buf
        np.multiply(d, lr, out=tmp)
        p -= tmp
