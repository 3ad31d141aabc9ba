"""Optimizers and learning-rate schedules with torch.optim's names and update rules."""

from .adam import Adam
from .lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "LRScheduler", "StepLR", "CosineAnnealingLR"]
