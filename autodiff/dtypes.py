"""dtype and device names as PyTorch spells them, and the default float dtype.

The dtypes are numpy's (`autodiff.float32 is np.dtype("float32")`), so they compare
equal to `t.dtype` and to numpy's names. The default float dtype is float64 (PyTorch's
is float32; `set_default_dtype` switches): Python floats become it.
"""

from __future__ import annotations

import numpy as np

float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_default = [float64]


def get_default_dtype() -> np.dtype:
    return _default[0]


def set_default_dtype(dtype) -> None:
    """The dtype that Python floats (and the float factories) give: float32 or float64."""
    dtype = as_dtype(dtype, "set_default_dtype")
    if dtype not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 or float64, got {dtype}")
    _default[0] = dtype


def as_dtype(dtype, where: str) -> np.dtype:
    """A dtype from any of numpy's spellings or ours; anything else raises."""
    if dtype is float:
        return get_default_dtype()
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {dtype!r} is not a dtype (use e.g. autodiff.float32 "
                        "or autodiff.int64)") from None
    if result.kind not in "biuf":
        raise TypeError(f"{where}: only numeric dtypes are supported, got {result}")
    return result


def check_device(device, where: str) -> None:
    """Accept the CPU ("cpu", "cpu:0" or a device object naming it); refuse the rest."""
    name = str(getattr(device, "type", device))
    if name in ("cpu", "cpu:0"):
        return
    raise RuntimeError(f"{where}: device {str(device)!r} is not available; this library "
                       "runs on the CPU only (use 'cpu')")


class device:
    """`autodiff.device("cpu")`, for code that builds a device object."""

    __slots__ = ("type",)

    def __init__(self, type: str = "cpu") -> None:
        check_device(type, "device")
        self.type = "cpu"

    def __eq__(self, other) -> bool:
        return str(getattr(other, "type", other)) in ("cpu", "cpu:0")

    __hash__ = object.__hash__

    def __str__(self) -> str:
        return "cpu"

    def __repr__(self) -> str:
        return "device(type='cpu')"

