"""The random generators used for parameter initialisation and shuffling.

Tensors, `nn` layers and data shuffling draw from one numpy Generator; the scalar
(micrograd-style) modules draw from Python's `random`, as micrograd does, so that
`random.seed(n)` reproduces micrograd's own weights. `manual_seed` seeds both.
"""

from __future__ import annotations

import random

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the library's generator and Python's `random`, so initialisation and
    shuffling repeat exactly."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    random.seed(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The current generator (replaced by every `manual_seed`)."""
    return _generator
