"""Learning-rate schedules, stepped once per epoch as in PyTorch.

    StepLR:             lr_t = lr_0 * gamma^floor(t / step_size)
    CosineAnnealingLR:  lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2

Each step computes the new lr from the current one (PyTorch's recursive forms, which give
the formulas above when nothing else touches the lr), so an lr changed by hand, or by
another schedule on the same optimizer, carries on as it does in PyTorch.
"""

from __future__ import annotations

import math

from .optimizer import Optimizer


class LRScheduler:
    """Sets every group's "lr" from its current value, its initial value and the epoch
    count `last_epoch`."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an nn.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        """The lr of `epoch` from the lr of the epoch before."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the new learning rates."""
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            if self.last_epoch > 0:
                group["lr"] = self.next_lr(group["lr"], base, self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)


class StepLR(LRScheduler):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, *, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Anneal from the initial lr to `eta_min` along half a cosine over `T_max` epochs."""

    def __init__(self, optimizer: Optimizer, T_max: int, *, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        t, eta = self.T_max, self.eta_min
        if (epoch - 1 - t) % (2 * t) == 0:  # leaving the bottom: the ratio below is 0/0
            return lr + (base_lr - eta) * (1 - math.cos(math.pi / t)) / 2
        return eta + (lr - eta) * (1 + math.cos(math.pi * epoch / t)) / (
            1 + math.cos(math.pi * (epoch - 1) / t))
