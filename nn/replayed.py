"""Arrays the layers and losses make with numpy during a step, as calls a compiled step
(`autodiff.compile`) makes again at each replay rather than freezing them into its trace:
zero states and fills, row numbers for picking labels, dropout masks (drawn afresh from
the same generator, so a compiled step draws the masks an eager one would)."""

from __future__ import annotations

import numpy as np

from autodiff.compile import replayable
from autodiff.rng import generator


@replayable
def zeros(shape: tuple, dtype) -> np.ndarray:
    """A new array of zeros."""
    return np.zeros(shape, dtype=dtype)


@replayable
def row_numbers(n: int) -> np.ndarray:
    """0, 1, ..., n - 1: with a label per row, `x[row_numbers(n), y]` picks each row's."""
    return np.arange(n)


@replayable
def dropout_mask(shape: tuple, dtype, p: float) -> np.ndarray:
    """1 / (1 - p) where a uniform draw is >= p, else 0 (all zeros for p = 1)."""
    dtype = np.dtype(dtype)
    if p == 1:
        return np.zeros(shape, dtype)
    mask = (generator().random(shape) >= p) * dtype.type(1 / (1 - p))
    return mask.astype(dtype, copy=False)
