"""Optimizers and learning-rate schedules with torch.optim's names and update rules."""

from .adam import Adam
from .adamw import AdamW
from .lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop",
           "LRScheduler", "StepLR", "CosineAnnealingLR"]
