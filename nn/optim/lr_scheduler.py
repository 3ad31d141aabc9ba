"""Learning-rate schedules, stepped once per epoch as in PyTorch.

    StepLR:             lr_t = lr_0 * gamma^floor(t / step_size)
    CosineAnnealingLR:  lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2

Each step computes the new lr from the current one (PyTorch's recursive forms, written in
its order of operations, which give the formulas above when nothing else touches the lr),
so an lr changed by hand, or by another schedule on the same optimizer, carries on as it
does in PyTorch.

`state_dict()` is PyTorch's: every attribute but the optimizer (`base_lrs`, `last_epoch`,
`_step_count`, `_last_lr` and the schedule's own settings), so states move both ways.
"""

from __future__ import annotations

import math
import numbers

from ._checks import check_number
from .optimizer import Optimizer

# PyTorch's flags for its own warnings and initial step: in its state_dicts, unused here.
_TORCH_BOOKKEEPING = ("_is_initial", "_get_lr_called_within_step", "verbose")


class LRScheduler:
    """Sets every group's "lr" from its current value, its initial value and the epoch
    count `last_epoch`."""

    _settings: tuple[str, ...] = ()  # the schedule's own arguments, as attributes

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an nn.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._step_count = 0
        self.step()

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        """The lr of `epoch` from the lr of the epoch before."""
        raise NotImplementedError

    def _check_settings(self, settings: dict) -> None:
        """Raise unless the schedule's own arguments are valid."""

    def step(self) -> None:
        """Advance one epoch and set the new learning rates."""
        self._step_count += 1
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            if self.last_epoch > 0:
                group["lr"] = self.next_lr(group["lr"], base, self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer, as PyTorch's scheduler state_dict."""
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take over a state_dict (ours or torch's), checked first: a bad one changes
        nothing."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{where}: expected a dict, got {type(state_dict).__name__}")
        ours = [key for key in self.__dict__ if key != "optimizer"]  # (a subclass's too)
        unknown = [k for k in state_dict if k not in ours and k not in _TORCH_BOOKKEEPING]
        missing = [k for k in ours if k not in state_dict]
        if missing:
            raise ValueError(f"{where}: the state_dict lacks {missing}")
        if unknown:
            raise ValueError(f"{where}: the state_dict has {unknown}, which "
                             f"{type(self).__name__} does not keep")
        try:
            self._check_settings({k: state_dict[k] for k in self._settings})
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):
            lrs = state_dict[key]
            if not isinstance(lrs, (list, tuple)) or len(lrs) != n:
                raise ValueError(f"{where}: {key} must be a list of {n} learning rates (one "
                                 f"per parameter group of the optimizer), got {lrs!r}")
            for i, lr in enumerate(lrs):
                check_number(where, f"{key}[{i}]", lr)
        for key in ("last_epoch", "_step_count"):
            count = state_dict[key]
            if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
                raise ValueError(f"{where}: {key} must be a whole number >= 0, got {count!r}")
        for key in ours:
            value = state_dict[key]
            setattr(self, key, list(value) if key in ("base_lrs", "_last_lr") else value)


def _check_count(where: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: {name} must be a whole number >= 1, got {value!r}")


class StepLR(LRScheduler):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    _settings = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self._check_settings(dict(step_size=step_size, gamma=gamma))
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def _check_settings(self, settings: dict) -> None:
        _check_count("StepLR", "step_size", settings["step_size"])
        check_number("StepLR", "gamma", settings["gamma"])

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Anneal from the initial lr to `eta_min` along half a cosine over `T_max` epochs."""

    _settings = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self._check_settings(dict(T_max=T_max, eta_min=eta_min))
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def _check_settings(self, settings: dict) -> None:
        _check_count("CosineAnnealingLR", "T_max", settings["T_max"])
        check_number("CosineAnnealingLR", "eta_min", settings["eta_min"], low=-math.inf)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        t, eta = self.T_max, self.eta_min
        if (epoch - 1 - t) % (2 * t) == 0:  # leaving the bottom: the ratio below is 0/0
            return lr + (base_lr - eta) * (1 - math.cos(math.pi / t)) / 2
        return ((1 + math.cos(math.pi * epoch / t)) / (1 + math.cos(math.pi * (epoch - 1) / t))
                * (lr - eta) + eta)
