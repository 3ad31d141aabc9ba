"""Batch normalisation layers with PyTorch's names, arguments, parameters, buffers and
state_dict keys: `BatchNorm1d` ((N, C) or (N, C, L)) and `BatchNorm2d` ((N, C, H, W)).

    y = weight * (x - mean) / sqrt(var + eps) + bias, per channel (axis 1)

In training, mean and (biased) var are the batch's, and the buffers running_mean and
running_var move towards the batch's mean and unbiased var by `momentum` (or, with
momentum=None, become the average over all batches so far); num_batches_tracked counts
the batches. In evaluation the running statistics are used instead. Without
track_running_stats there are no buffers and the batch's statistics are always used.
"""

from __future__ import annotations

import numbers

import numpy as np

from autodiff import Tensor, no_grad
from autodiff.dtypes import as_dtype, check_device, get_default_dtype
from autodiff.errors import ShapeError
from autodiff.tensor import _derived_constant

from .functional import as_tensor, batch_norm
from .functional import layer_norm, normalized_dims
from .module import Module, Parameter


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ in the input ranks accepted."""

    _ranks: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        if (not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool)
                or num_features < 1):
            raise ValueError(f"{name}: num_features must be a positive int, got "
                             f"{num_features!r}")
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"{name}: momentum must be a number or None, got {momentum!r}")
        if device is not None:
            check_device(device, name)
        dtype = get_default_dtype() if dtype is None else as_dtype(dtype, name)
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        n = self.num_features
        self.weight = Parameter(np.ones(n, dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(n, dtype)) if self.affine and bias else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(n, dtype))
            self.register_buffer("running_var", np.ones(n, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(buffer, None)

    def reset_running_stats(self) -> None:
        """running_mean to 0, running_var to 1, num_batches_tracked to 0 (in place)."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """The running statistics reset, weight to 1 and bias to 0 (in place)."""
        self.reset_running_stats()
        with no_grad():
            if self.weight is not None:
                self.weight.fill_(1)
            if self.bias is not None:
                self.bias.zero_()

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        if x.ndim not in self._ranks:
            ranks = " or ".join(f"{r}-D" for r in self._ranks)
            raise ShapeError(f"{name}: expected a {ranks} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ShapeError(f"{name}({self.num_features}): input of shape {x.shape} has "
                             f"{x.shape[1]} channels (axis 1), not {self.num_features}")

    def forward(self, input) -> Tensor:
        x = input if type(input) is Tensor else as_tensor(input, type(self).__name__)
        self._check_input(x)
        factor = 0.0 if self.momentum is None else self.momentum
        tracking = self.training and self.track_running_stats
        if tracking and x.size // x.shape[1] <= 1:  # (refused before a batch is counted)
            raise ValueError(f"{type(self).__name__}: expected more than 1 value per "
                             f"channel when training, got input of shape {x.shape}")
        if tracking:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # the cumulative average of every batch so far
                # (a constant of the counter's value, so a compiled step follows it)
                factor = _derived_constant(_cumulative_factor, self.num_batches_tracked)
        # Batch statistics in training, and in evaluation when there are no running ones.
        use_batch = self.training or self.running_mean is None
        stats_given = not self.training or self.track_running_stats
        return batch_norm(x, self.running_mean if stats_given else None,
                          self.running_var if stats_given else None, self.weight, self.bias,
                          use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


def _cumulative_factor(count: np.ndarray) -> np.ndarray:
    """1 / (batches counted so far): the weight of the newest in a cumulative average."""
    return 1.0 / count.astype(np.float64)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: per channel, over the batch (and L).

    >>> bn = BatchNorm1d(3)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: per channel, over the batch and the positions.

    >>> bn = BatchNorm2d(6).eval()
    >>> bn(np.ones((2, 6, 4, 4))).shape
    (2, 6, 4, 4)
    """

    _ranks = (4,)


class LayerNorm(Module):
    """Layer normalisation over the last len(normalized_shape) dims of each sample:

        y = (x - mean) / sqrt(var + eps) * weight + bias

    with mean and biased var over those dims, in training and evaluation alike; weight
    (ones) and bias (zeros) have shape normalized_shape (PyTorch's names and state_dict
    keys). elementwise_affine=False drops both, bias=False only the bias.

    >>> LayerNorm(4)(np.arange(8.0).reshape(2, 4)).shape
    (2, 4)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = normalized_dims(normalized_shape, "LayerNorm")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be a non-negative number, got {eps!r}")
        if device is not None:
            check_device(device, "LayerNorm")
        dtype = get_default_dtype() if dtype is None else as_dtype(dtype, "LayerNorm")
        self.eps = eps
        self.elementwise_affine = bool(elementwise_affine)
        shape = self.normalized_shape
        self.weight = Parameter(np.ones(shape, dtype)) if self.elementwise_affine else None
        self.bias = (Parameter(np.zeros(shape, dtype)) if self.elementwise_affine and bias
                     else None)

    def reset_parameters(self) -> None:
        """weight to 1 and bias to 0 (in place)."""
        with no_grad():
            if self.weight is not None:
                self.weight.fill_(1)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x) -> Tensor:
        try:
            return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        except (ShapeError, TypeError) as err:
            raise type(err)(f"LayerNorm({self.normalized_shape}): {err}") from None

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")
