"""PyTorch's spellings of what a `Tensor` does, so code written for torch runs unchanged.

Each method here only translates PyTorch's arguments (`dim`, `keepdim`, dtypes, devices)
into the Tensor's own operations; no math lives here. Where numpy and PyTorch disagree on
a name, `tensor.py` decides by the spelling (see `Tensor.max`, `Tensor.transpose`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .dtypes import as_dtype, check_device
from .dtypes import device as Device
from .errors import ShapeError


_CPU = Device("cpu")


class Size(tuple):
    """PyTorch's `torch.Size`: a tuple of dimension sizes (what `t.size()` returns), so
    `autodiff.Size([2, 3])` is a shape, as in PyTorch."""

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))

    def __repr__(self) -> str:
        return f"autodiff.Size({list(self)})"


class ElementCount(int):
    """What `t.size` is: numpy's element count (an int in arithmetic and comparisons)
    that is also callable as PyTorch's `size()`: `t.size()` is the shape, `t.size(d)`
    one dimension."""

    def __new__(cls, shape: tuple):
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        self = super().__new__(cls, n)
        self.shape = shape
        return self

    def __reduce__(self):  # (copies and pickles keep the shape)
        return ElementCount, (self.shape,)

    def __call__(self, dim=None):
        if dim is None:
            return Size(self.shape)
        if not self.shape:  # (dim_index lets a 0-d tensor reduce over dim 0; size cannot)
            dim_index(dim, 0, "size")
            raise IndexError(f"size: dim {dim} is out of range for a 0-d tensor, which has "
                             "no dimensions")
        return self.shape[dim_index(dim, len(self.shape), "size")]


class ValuesIndices(NamedTuple):
    """What `max(dim)`/`min(dim)` return, as PyTorch's `torch.return_types`."""
    values: object
    indices: object


def dim_index(dim, ndim: int, where: str) -> int:
    """A dimension as a non-negative int; out of range or not an int raises."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{where}: dim must be an int, got {dim!r}")
    dim = int(dim)
    extent = max(ndim, 1)  # (a 0-d tensor accepts dim 0 and -1, as in PyTorch)
    if not -extent <= dim < extent:
        raise IndexError(f"{where}: dim {dim} is out of range for a tensor with {ndim} "
                         f"dimension{'s' if ndim != 1 else ''} (expected {-extent} to "
                         f"{extent - 1})")
    return dim % extent


def resolve_axis(axis, dim, keepdims, keepdim, where: str):
    """numpy's (axis, keepdims) or PyTorch's (dim, keepdim), never both."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{where}: give axis= or dim=, not both")
        axis = dim
    if keepdim is not None:
        if keepdims:
            raise TypeError(f"{where}: give keepdims= or keepdim=, not both")
        keepdims = keepdim
    return axis, bool(keepdims)


class TorchMethods:
    """The PyTorch-named methods of `Tensor` (mixed in; they call its own methods)."""

    __slots__ = ()

    # -- attributes and conversions ----------------------------------------------------
    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    ndimension = dim

    def nelement(self) -> int:
        return int(self.data.size)

    @property
    def device(self) -> Device:
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def tolist(self):
        return self.data.tolist()

    def cpu(self):
        return self

    def cuda(self, *args, **kwargs):
        check_device("cuda", "cuda")

    def to(self, *args, dtype=None, device=None, copy: bool = False, non_blocking=False):
        """`to(dtype)`, `to(device)`, `to(device, dtype)` or `to(other_tensor)`; the only
        device is the CPU. Returns self when nothing changes (as PyTorch does)."""
        for arg in args:
            if isinstance(arg, TorchMethods):  # to(other): its dtype
                dtype = arg.dtype
            elif isinstance(arg, (str, Device)):
                device = arg
            else:
                dtype = arg
        if device is not None:
            check_device(device, "to")
        if dtype is None:
            return self.clone() if copy else self
        dtype = as_dtype(dtype, "to")
        if dtype == self.data.dtype:
            return self.clone() if copy else self
        if dtype.kind != "f" and self.requires_grad:
            # As PyTorch: an integer or bool copy is a constant (no gradient flows
            # through rounding), not an error.
            return self.detach().astype(dtype)
        return self.astype(dtype)

    def type(self, dtype=None):
        """The dtype's name without an argument; otherwise `to(dtype)`."""
        if dtype is None:
            return str(self.data.dtype)
        return self.to(dtype)

    def float(self): return self.to(np.float32)
    def double(self): return self.to(np.float64)
    def half(self): return self.to(np.float16)
    def long(self): return self.to(np.int64)
    def int(self): return self.to(np.int32)
    def bool(self): return self.to(np.bool_)

    # -- elementwise ------------------------------------------------------------------
    def pow(self, exponent):
        return self ** exponent

    def clamp(self, min=None, max=None):
        """Limit the values to [min, max] (numbers, arrays or constant Tensors)."""
        if min is None and max is None:
            raise ValueError("clamp: give at least one of min and max")
        bounds = []
        for name, bound in (("min", min), ("max", max)):
            if isinstance(bound, TorchMethods):
                if bound.requires_grad:
                    raise TypeError(f"clamp: a {name} that requires grad is not supported "
                                    "(its gradient would be lost); use maximum/minimum")
                bound = bound.data
            bounds.append(bound)
        return self.clip(*bounds)

    def maximum(self, other):
        from .tensor import maximum
        return maximum(self, other)

    def minimum(self, other):
        from .tensor import minimum
        return minimum(self, other)

    def matmul(self, other):
        return self @ other

    def mm(self, other):
        other_shape = getattr(other, "shape", np.shape(other))
        if self.ndim != 2 or len(other_shape) != 2:
            raise ShapeError(f"mm: both operands must be matrices, got shapes {self.shape} "
                             f"and {tuple(other_shape)}")
        return self @ other

    def square(self):
        return self * self

    def neg(self):
        return -self

    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    # -- shape ------------------------------------------------------------------------
    def view(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
            raise TypeError(f"view: expected sizes as ints, got {shape[0]!r} (views as "
                            "another dtype are not supported)")
        return self.reshape(*shape)

    def view_as(self, other):
        return self.reshape(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge dimensions start_dim..end_dim into one."""
        shape = self.shape
        if not shape:
            return self.reshape(1)
        start = dim_index(start_dim, len(shape), "flatten")
        end = dim_index(end_dim, len(shape), "flatten")
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for a tensor of shape {shape}")
        merged = int(np.prod(shape[start:end + 1], dtype=np.int64))
        return self.reshape(shape[:start] + (merged,) + shape[end + 1:])

    def unsqueeze(self, dim: int):
        """A new dimension of size 1 at `dim` (-1 appends one)."""
        ndim = self.ndim
        dim = dim_index(dim, ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        """Drop dimensions of size 1 (only `dim`, or those listed, when given; a named
        dimension of another size is left as it is, as in PyTorch)."""
        shape = self.shape
        if dim is None:
            drop = {i for i, n in enumerate(shape) if n == 1}
        else:
            dims = dim if isinstance(dim, (tuple, list)) else (dim,)
            drop = {d for d in (dim_index(d, len(shape), "squeeze") for d in dims)
                    if shape and shape[d] == 1}
        return self.reshape(tuple(n for i, n in enumerate(shape) if i not in drop))

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        n = self.ndim
        if len(dims) != n or len({dim_index(d, n, "permute") for d in dims}) != n:
            raise ShapeError(f"permute: dims {dims} for a tensor of shape {self.shape}; give "
                             f"each of its {n} dimensions once")
        return self.transpose(tuple(dim_index(d, n, "permute") for d in dims))

    def t(self):
        """The transpose of a matrix (a 0-d or 1-D tensor is returned as it is)."""
        if self.ndim > 2:
            raise ShapeError(f"t: expects a tensor with at most 2 dimensions, got shape "
                             f"{self.shape}; use transpose(dim0, dim1) or permute")
        return self.transpose() if self.ndim == 2 else self

    def expand(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        shape = self.shape
        lead = len(sizes) - len(shape)
        if lead < 0:
            raise ShapeError(f"expand: {len(sizes)} sizes {sizes} for a tensor of shape "
                             f"{shape}; give at least {len(shape)}")
        target = tuple(shape[i - lead] if n == -1 and i >= lead else n
                       for i, n in enumerate(sizes))
        try:
            if np.broadcast_shapes(shape, target) != target:
                raise ValueError
        except ValueError:
            raise ShapeError(f"expand: cannot expand shape {shape} to {sizes}") from None
        from .ops import OPS  # a read-only broadcast view; the gradient sums back
        return self._apply(OPS["broadcast_to"], shape=target)

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        from .tensor import concatenate
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) < self.ndim:
            raise ShapeError(f"repeat: {len(sizes)} repeat counts for a tensor of shape "
                             f"{self.shape}; give at least {self.ndim}")
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        for axis, n in enumerate(sizes):
            if not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"repeat: counts must be ints >= 0, got {sizes}")
            if n != 1:
                x = concatenate([x] * n, axis=axis) if n else x[(slice(None),) * axis
                                                                 + (slice(0, 0),)]
        return x

    # -- comparisons and tests ----------------------------------------------------------
    def all(self, dim=None, keepdim: bool = False):
        """Whether every element (along `dim`, when given) is nonzero: a bool Tensor."""
        return self._truth("all", np.all, dim, keepdim)

    def any(self, dim=None, keepdim: bool = False):
        """Whether some element (along `dim`, when given) is nonzero: a bool Tensor."""
        return self._truth("any", np.any, dim, keepdim)

    def _truth(self, name, reduce, dim, keepdim):
        from .tensor import _derived_constant
        ndim = self.data.ndim
        if dim is not None:
            dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
            dim = tuple(dim_index(d, ndim, name) for d in dims) if ndim else None
        return _derived_constant(reduce, self, axis=dim, keepdims=bool(keepdim))

    def eq(self, other): return self == other
    def ne(self, other): return self != other
    def lt(self, other): return self < other
    def le(self, other): return self <= other
    def gt(self, other): return self > other
    def ge(self, other): return self >= other

    def equal(self, other) -> bool:
        other = other.data if isinstance(other, TorchMethods) else np.asarray(other)
        return self.data.shape == other.shape and bool(np.all(self.data == other))

    def allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
        other = other.data if isinstance(other, TorchMethods) else other
        return bool(np.allclose(self.data, other, rtol=rtol, atol=atol, equal_nan=equal_nan))
