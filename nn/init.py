"""`nn.init`: PyTorch's weight initialisations, each changing a Tensor in place.

With fan_in = W.shape[1] * r and fan_out = W.shape[0] * r, r = prod(W.shape[2:]) (1 for a
Linear weight (out, in), kh*kw for a Conv2d weight (out, in, kh, kw)):

    xavier_uniform_  U(-a, a),   a = gain * sqrt(6 / (fan_in + fan_out))
    xavier_normal_   N(0, s^2),  s = gain * sqrt(2 / (fan_in + fan_out))
    kaiming_uniform_ U(-b, b),   b = gain * sqrt(3 / fan),  gain = calculate_gain(nonlinearity, a)
    kaiming_normal_  N(0, s^2),  s = gain / sqrt(fan),      fan = fan_in or fan_out (mode)

Every function writes through the Tensor's own in-place methods under `no_grad()` (so the
version counter bumps and a graph recorded with the old values refuses to backward),
draws from the generator `autodiff.manual_seed` seeds (or `generator=`, a numpy
Generator), and returns the tensor.

>>> import autodiff, nn
>>> w = nn.Parameter(np.zeros((256, 128)))
>>> _ = autodiff.manual_seed(0)
>>> nn.init.kaiming_uniform_(w, nonlinearity="relu") is w
True
>>> bool(np.abs(w.data).max() <= np.sqrt(2) * np.sqrt(3 / 128))
True
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from autodiff import Tensor, no_grad

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "ones_", "zeros_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]

_UNIT_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The factor that keeps activations' variance steady through `nonlinearity`:
    1 for linear, conv and sigmoid; 5/3 for tanh; sqrt(2) for relu;
    sqrt(2 / (1 + slope^2)) for leaky_relu (param = negative slope, default 0.01); 3/4 for selu.

    >>> calculate_gain("tanh")
    1.6666666666666667
    """
    if nonlinearity in _UNIT_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4  # PyTorch's value, chosen for self-normalising networks
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _check(tensor, where: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"nn.init.{where}: expected a Tensor, got {type(tensor).__name__}")
    return tensor


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    """(fan_in, fan_out) = (shape[1] * r, shape[0] * r) with r = prod(shape[2:])."""
    shape = _check(tensor, "fan").shape
    if len(shape) < 2:
        raise ValueError(f"nn.init: fan in and fan out cannot be computed for a tensor with "
                         f"fewer than 2 dimensions (shape {shape})")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init: mode {mode!r} is not supported; use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _rng(tensor: Tensor, generator, where: str):
    """The Generator to draw from (None: the library's), checked with the tensor."""
    if tensor.dtype.kind != "f":
        raise TypeError(f"nn.init.{where}: needs a floating-point tensor, got dtype "
                        f"{tensor.dtype}")
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"nn.init.{where}: generator must be a numpy Generator, got "
                        f"{type(generator).__name__}")
    return generator


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with samples of U(a, b)."""
    _check(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"nn.init.uniform_: needs a <= b, got a={a}, b={b}")
    with no_grad():
        if _rng(tensor, generator, "uniform_") is None:
            return tensor.uniform_(a, b)  # draws from the library's generator
        return tensor.copy_(generator.uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with samples of N(mean, std^2)."""
    _check(tensor, "normal_")
    if not std >= 0:
        raise ValueError(f"nn.init.normal_: std must be >= 0, got {std}")
    with no_grad():
        if _rng(tensor, generator, "normal_") is None:
            return tensor.normal_(mean, std)
        return tensor.copy_(generator.normal(mean, std, tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with the number `val`."""
    _check(tensor, "constant_")
    with no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    _check(tensor, "ones_")
    with no_grad():
        return tensor.fill_(1)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    _check(tensor, "zeros_")
    with no_grad():
        return tensor.fill_(0)


def _empty(tensor: Tensor, where: str) -> bool:
    if tensor.size == 0:
        warnings.warn(f"nn.init.{where}: initialising a zero-element tensor is a no-op",
                      stacklevel=3)
        return True
    return False


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_uniform_"))
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot: N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_normal_"))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He: U(-b, b) with b = calculate_gain(nonlinearity, a) * sqrt(3 / fan). (PyTorch's
    Linear default is a = sqrt(5), which gives b = 1 / sqrt(fan_in).)"""
    if _empty(_check(tensor, "kaiming_uniform_"), "kaiming_uniform_"):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He: N(0, s^2) with s = calculate_gain(nonlinearity, a) / sqrt(fan)."""
    if _empty(_check(tensor, "kaiming_normal_"), "kaiming_normal_"):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)
