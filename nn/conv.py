"""`Conv1d` and `Conv2d`, and the argument checking that `nn.functional.conv1d/conv2d` share
with them, on the `convolution` primitive (autodiff/ops_conv.py).

PyTorch's arguments and layouts: input (N, C, *S) or unbatched (C, *S), weight
(out_channels, in_channels / groups, *kernel), bias (out_channels,); stride, padding and
dilation an int or one int per spatial dimension; padding also 'valid' (none) or 'same'
(the output keeps the input's size; stride 1 only; an odd total goes one more on the
right, as PyTorch pads).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from autodiff import OPS, Tensor
from autodiff.dtypes import as_dtype, check_device, get_default_dtype
from autodiff.errors import ShapeError
from autodiff.tensor import apply

from . import init
from .functional import as_tensor
from .module import Module, Parameter

CONVOLUTION = OPS["convolution"]
_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # numpy's


def _is_int(v) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)


def int_tuple(value, n: int, name: str, where: str, least: int) -> tuple:
    """An int, or a tuple/list of n ints, as n ints, each >= least."""
    if _is_int(value):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) != n:
            raise ValueError(f"{where}: {name} must be an int or {n} ints (one per spatial "
                             f"dimension), got {tuple(value)}")
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{where}: {name} must be an int or a tuple of {n} ints, got "
                        f"{value!r}")
    if any(v < least for v in values):
        raise ValueError(f"{where}: {name} must be {'positive' if least else '>= 0'}, got "
                         f"{value!r}")
    return values


def padding_pairs(padding, kernel, stride, dilation, where: str) -> tuple:
    """(before, after) zeros per spatial dimension, from an int, a tuple, 'valid' or 'same'."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise ValueError(f"{where}: padding must be an int, a tuple of {n} ints, 'valid' "
                             f"or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{where}: padding='same' needs stride 1 (the output could not "
                             f"keep the input's size otherwise), got stride={stride}")
        totals = (d * (k - 1) for k, d in zip(kernel, dilation))
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in int_tuple(padding, n, "padding", where, 0))


def _check_layout(x: Tensor, w: Tensor, bias, groups, dims: int, where: str) -> None:
    """Input, weight, bias and groups fit together as PyTorch's layouts require."""
    spatial = _SPATIAL[dims]
    if w.ndim != dims + 2:
        raise ShapeError(f"{where}: weight must have {dims + 2} dimensions (out_channels, "
                         f"in_channels / groups, {_KERNEL[dims]}), got shape {w.shape}")
    if x.ndim not in (dims + 1, dims + 2):
        raise ShapeError(f"{where}: input must have shape (N, C, {spatial}) or unbatched "
                         f"(C, {spatial}), got {x.shape}")
    if not _is_int(groups):
        raise TypeError(f"{where}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{where}: groups must be positive, got {groups}")
    if 0 in w.shape:
        raise ShapeError(f"{where}: weight of shape {w.shape} has a zero-size dimension")
    out_channels, channels = w.shape[0], x.shape[x.ndim - dims - 1]
    if out_channels % groups:
        raise ValueError(f"{where}: groups={groups} must divide the weight's out_channels "
                         f"{out_channels} (weight of shape {w.shape})")
    if w.shape[1] * groups != channels:
        raise ShapeError(f"{where}: input of shape {x.shape} has {channels} channels, but "
                         f"weight of shape {w.shape} with groups={groups} expects "
                         f"{w.shape[1] * groups} (weight.shape[1] * groups)")
    if bias is not None and bias.shape != (out_channels,):
        raise ShapeError(f"{where}: bias must have shape ({out_channels},), one per output "
                         f"channel of the weight of shape {w.shape}; got {bias.shape}")
    kinds = {t.dtype.kind for t in (x, w) + ((bias,) if bias is not None else ())}
    if "f" not in kinds:
        raise TypeError(f"{where}: needs floating-point numbers, got input dtype {x.dtype} "
                        f"and weight dtype {w.dtype}")


def convolution(input, weight, bias, stride, padding, dilation, groups, *, dims: int,
                where: str) -> Tensor:
    """Check PyTorch's arguments of conv{dims}d and apply the `convolution` primitive."""
    x = input if type(input) is Tensor else as_tensor(input, where)
    w = weight if isinstance(weight, Tensor) else as_tensor(weight, where)
    if bias is not None and not isinstance(bias, Tensor):
        bias = as_tensor(bias, where)
    _check_layout(x, w, bias, groups, dims, where)
    kernel = w.shape[2:]
    stride = int_tuple(stride, dims, "stride", where, 1)
    dilation = int_tuple(dilation, dims, "dilation", where, 1)
    pairs = padding_pairs(padding, kernel, stride, dilation, where)
    padded = tuple(m + lo + hi for m, (lo, hi) in zip(x.shape[-dims:], pairs))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > m for e, m in zip(extent, padded)):
        dilated = f" (dilated to {extent})" if extent != tuple(kernel) else ""
        raise ShapeError(f"{where}: the kernel {tuple(kernel)}{dilated} is larger than the "
                         f"padded input {padded} (input of shape {x.shape}, padding "
                         f"{padding!r})")
    unbatched = x.ndim == dims + 1
    if unbatched:
        x = x.reshape((1,) + x.shape)
    options = {"stride": stride, "padding": pairs, "dilation": dilation, "groups": int(groups)}
    y = apply(CONVOLUTION, (x, w) if bias is None else (x, w, bias), options)
    return y.reshape(y.shape[1:]) if unbatched else y


def pad_by_mode(x: Tensor, pairs, mode: str, where: str) -> Tensor:
    """x (N, C, *S) padded along its spatial axes by 'reflect', 'replicate' or 'circular', as
    a gather (getitem), so the gradient adds back onto the positions that were copied."""
    for axis, (m, (lo, hi)) in enumerate(zip(x.shape[2:], pairs), start=2):
        if not lo and not hi:
            continue
        # PyTorch's limits: a reflection cannot reach past the far edge, nor a wrap
        # around further than once.
        if mode == "reflect" and max(lo, hi) >= m or mode == "circular" and max(lo, hi) > m:
            raise ValueError(f"{where}: padding_mode={mode!r} with padding ({lo}, {hi}) needs "
                             f"an input of size more than {max(lo, hi)}"
                             f"{'' if mode == 'reflect' else ' - 1'} along dimension "
                             f"{axis}, got input of shape {x.shape}")
        index = np.pad(np.arange(m), (lo, hi), mode=_PAD_MODES[mode])
        x = x[(slice(None),) * axis + (index,)]
    return x


class _ConvNd(Module):
    """The shared body of Conv1d and Conv2d (`dims` spatial dimensions)."""

    dims = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        where = type(self).__name__
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if not _is_int(n):
                raise TypeError(f"{where}: {name} must be an int, got {n!r}")
            if n < 1:
                raise ValueError(f"{where}: {name} must be positive, got {n}")
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if n % groups:
                raise ValueError(f"{where}: {name}={n} must be divisible by groups={groups}")
        if padding_mode not in ("zeros",) + tuple(_PAD_MODES):
            raise ValueError(f"{where}: padding_mode must be 'zeros', 'reflect', 'replicate' "
                             f"or 'circular', got {padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = int_tuple(kernel_size, self.dims, "kernel_size", where, 1)
        self.stride = int_tuple(stride, self.dims, "stride", where, 1)
        self.dilation = int_tuple(dilation, self.dims, "dilation", where, 1)
        # Checked now, as PyTorch does; kept as given ('same', or a tuple).
        padding_pairs(padding, self.kernel_size, self.stride, self.dilation, where)
        self.padding = padding if isinstance(padding, str) else int_tuple(
            padding, self.dims, "padding", where, 0)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        if device is not None:
            check_device(device, where)
        dtype = get_default_dtype() if dtype is None else as_dtype(dtype, where)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.zeros(shape, dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight ~ kaiming_uniform(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)),
        and bias ~ U(+-1/sqrt(fan_in)), fan_in = in_channels / groups * prod(kernel_size)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input) -> Tensor:
        where = type(self).__name__
        padding = self.padding
        if self.padding_mode != "zeros":
            x = input if type(input) is Tensor else as_tensor(input, where)
            batched = x.ndim == self.dims + 2
            if batched or x.ndim == self.dims + 1:  # (any other shape: `convolution` says)
                pairs = padding_pairs(padding, self.kernel_size, self.stride, self.dilation,
                                      where)
                x = pad_by_mode(x if batched else x.reshape((1,) + x.shape), pairs,
                                self.padding_mode, where)
                input, padding = (x if batched else x.reshape(x.shape[1:])), 0
        return convolution(input, self.weight, self.bias, self.stride, padding,
                           self.dilation, self.groups, dims=self.dims, where=where)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self.dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """A 1-D convolution over (N, C_in, L) or (C_in, L): weight (C_out, C_in / groups, k).

    >>> Conv1d(2, 4, 3, padding=1)(np.zeros((5, 2, 10))).shape
    (5, 4, 10)
    """

    dims = 1


class Conv2d(_ConvNd):
    """A 2-D convolution over (N, C_in, H, W) or (C_in, H, W): weight
    (C_out, C_in / groups, kH, kW), PyTorch's layout, so its state_dict loads strictly.

    >>> Conv2d(1, 6, 5)(np.zeros((2, 1, 28, 28))).shape
    (2, 6, 24, 24)
    """

    dims = 2


__all__ = ["Conv1d", "Conv2d", "convolution"]
