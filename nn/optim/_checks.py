"""The hyperparameter checks the optimizers share.

A comparison alone does not check a number: every comparison with NaN is false, so
`lr < 0` lets NaN through, and a string fails with a bare TypeError. Each value is first
checked to be a real number, then to be finite and inside its range.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_number(where: str, name: str, value, *, low: float = 0.0, high: float = math.inf,
                 high_open: bool = False) -> None:
    """Raise unless `value` is a finite real number (not a bool) in [low, high], or in
    [low, high) with `high_open`; `where` names the optimizer in the message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {value!r} "
                        f"({type(value).__name__})")
    inside = low <= value < high if high_open else low <= value <= high
    if not (inside and math.isfinite(value)):
        if high < math.inf:
            wanted = f"lie in [{low:g}, {high:g}{')' if high_open else ']'}"
        elif low > -math.inf:
            wanted = f"be a finite number >= {low:g}"
        else:
            wanted = "be a finite number"
        raise ValueError(f"{where}: {name} must {wanted}, got {value!r}")


def check_flag(where: str, name: str, value) -> None:
    """Raise unless `value` is a bool (numpy's included): 0 or "no" would pass as falsy."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r} "
                        f"({type(value).__name__})")
