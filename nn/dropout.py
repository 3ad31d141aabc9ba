"""`Dropout`: PyTorch's layer around `nn.functional.dropout` (inverted dropout: in
training each element is zeroed with probability p and the rest scaled by 1 / (1 - p);
in evaluation the input passes unchanged)."""

from __future__ import annotations

import numbers

from autodiff import Tensor

from .functional import dropout
from .module import Module


class Dropout(Module):
    """Zero each element with probability p in training, scale the rest by 1 / (1 - p).

    >>> import numpy as np
    >>> Dropout(0.5).eval()(np.ones(3)).data
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p is the probability of zeroing an element and must "
                             f"lie in [0, 1], got {p!r}")
        self.p = p
        self.inplace = bool(inplace)

    def forward(self, input) -> Tensor:
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
