"""Adam (Kingma & Ba) with PyTorch's arithmetic.

    g = g + wd p
    m = m + (1 - beta1) (g - m)             (= beta1 m + (1 - beta1) g)
    v = beta2 v + (1 - beta2) g^2
    vmax = max(vmax, v); v = vmax           (amsgrad only)
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ._checks import check_flag, check_number
from .optimizer import Optimizer, scratch


class Adam(Optimizer):
    """Adaptive moments with bias correction; eps is added after the square root.

    >>> from autodiff import Value
    >>> w = Value(1.0); w.grad = 0.5
    >>> Adam([w], lr=0.1).step(); round(w.data, 6)   # the first step moves by about lr
    0.9
    """

    _torch_flags = {"decoupled_weight_decay": False}

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        betas = tuple(betas) if isinstance(betas, (list, tuple)) else betas  # _check names it
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check(self, group: dict) -> None:
        where, betas = type(self).__name__, group["betas"]
        for key in ("lr", "eps", "weight_decay"):
            check_number(where, key, group[key])
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise TypeError(f"{where}: betas must be a pair of numbers, got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(where, f"betas[{i}]", beta, high=1.0, high_open=True)
        check_flag(where, "amsgrad", group["amsgrad"])
        super()._check(group)

    def _state_keys(self, group: dict) -> tuple[set, set]:
        required = {"step", "exp_avg", "exp_avg_sq"}
        if group["amsgrad"]:
            required.add("max_exp_avg_sq")
        return required, {"max_exp_avg_sq"}

    def _decay(self, p: np.ndarray, g: np.ndarray, group: dict, work: dict) -> np.ndarray:
        """The gradient with L2 weight decay folded in: g + wd p."""
        wd = group["weight_decay"]
        if not wd:
            return g
        gw = scratch(work, "grad_wd", p)
        np.multiply(p, wd, out=gw)
        gw += g
        return gw

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict,
                work: dict) -> None:
        b1, b2 = group["betas"]
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        m, v, tmp = state["exp_avg"], state["exp_avg_sq"], scratch(work, "tmp", p)
        state["step"] = t = state["step"] + 1
        g = self._decay(p, g, group, work)
        np.subtract(g, m, out=tmp)
        tmp *= 1 - b1
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        if group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:  # (amsgrad switched on after some steps: PyTorch's zeros)
                vmax = state["max_exp_avg_sq"] = np.zeros_like(p)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        step_size = group["lr"] / (1 - b1 ** t)
        np.sqrt(v, out=tmp)
        tmp /= (1 - b2 ** t) ** 0.5  # (PyTorch's power, not math.sqrt: the same rounding)
        tmp += group["eps"]
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp
