"""Pooling layers with PyTorch's names, arguments and printing: `MaxPool2d`, `AvgPool2d`,
`AdaptiveAvgPool2d`. They hold no parameters; each calls its `nn.functional` form, on
(N, C, H, W) or unbatched (C, H, W) inputs."""

from __future__ import annotations

from autodiff import Tensor
from autodiff.ops_pool import pool_arguments

from .functional import adaptive_avg_pool2d, adaptive_output_size, avg_pool2d, max_pool2d
from .module import Module


class MaxPool2d(Module):
    """The maximum of each kernel_size window; stride defaults to kernel_size.

    >>> import numpy as np
    >>> MaxPool2d(2)(np.zeros((8, 6, 24, 24))).shape
    (8, 6, 12, 12)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        pool_arguments(kernel_size, stride, padding, dilation, where="MaxPool2d")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, input) -> Tensor:
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean of each kernel_size window (PyTorch's divisor: padding zeros count when
    count_include_pad; divisor_override replaces the divisor).

    >>> import numpy as np
    >>> AvgPool2d(2, stride=1)(np.ones((3, 4, 4))).shape
    (3, 3, 3)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        pool_arguments(kernel_size, stride, padding, where="AvgPool2d")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input) -> Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Means over the windows that give `output_size` (an int, or a pair whose None
    entries keep the input's size), whatever the input's size.

    >>> import numpy as np
    >>> AdaptiveAvgPool2d((1, None))(np.ones((2, 3, 7, 5))).shape
    (2, 3, 1, 5)
    """

    def __init__(self, output_size):
        super().__init__()
        adaptive_output_size(output_size, (1, 1), "AdaptiveAvgPool2d")
        self.output_size = output_size

    def forward(self, input) -> Tensor:
        return adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
