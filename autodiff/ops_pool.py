"""Pooling and batch normalisation primitives, registered in the one op table (`OPS`).

Pooling works on the last two axes (H, W) of an input of any rank, so (N, C, H, W) and
PyTorch's unbatched (C, H, W) are the same op. Window k of output position o along an
axis covers the input positions o*stride - padding + k*dilation (PyTorch's layout);
`PoolGeometry` holds that arithmetic, the output sizes and the checks, for both axes.

Each vjp has two paths: on raw arrays (a plain backward) a loop over the kernel's
offsets adds strided slices (kh*kw vectorised passes, no index arrays); on graph nodes
(create_graph) the same gradient is written as a `scatter` of g into the input's
positions, a primitive whose own vjp is a gather, so pooling is differentiable to any
order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .engine import Node
from .errors import ShapeError
from .ops import broadcast_to, primitive, raw, scatter


def _pair(value, what: str, where: str) -> tuple[int, int]:
    """An int or a pair of ints, as PyTorch's pooling arguments."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise TypeError(f"{where}: {what} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    # PyTorch's rule: in ceil mode the last window must start inside the input or its
    # left padding, never only in the padding on the right.
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


class PoolGeometry(NamedTuple):
    """Sizes and offsets of a 2-D pooling: everything per axis as (h, w) pairs."""

    size: tuple          # input (H, W)
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    out: tuple           # output (Oh, Ow)
    pad_after: tuple     # padding on the bottom/right (more than `padding` in ceil mode)

    @property
    def padded(self) -> tuple:
        return tuple(n + p + q for n, p, q in zip(self.size, self.padding, self.pad_after))

    @property
    def overlapping(self) -> bool:
        """Whether some input position lies in two windows."""
        return any(s < d * (k - 1) + 1 for k, s, d in zip(self.kernel, self.stride, self.dilation))

    def offsets(self):
        """(k, index) for each kernel offset k = i*kw + j in PyTorch's scan order (rows,
        then columns): index picks, of the padded input, the (Oh, Ow) positions that
        offset covers."""
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = self.kernel, self.stride, self.dilation, self.out
        for i in range(kh):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            for j in range(kw):
                yield i * kw + j, (Ellipsis, rows, slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))

    def pad(self, x: np.ndarray, value: float) -> np.ndarray:
        """x with `value` around its last two axes (x itself when nothing is added)."""
        (ph, pw), (qh, qw) = self.padding, self.pad_after
        if not (ph or pw or qh or qw):
            return x
        out = np.full(x.shape[:-2] + self.padded, value, dtype=x.dtype)
        out[..., ph:ph + self.size[0], pw:pw + self.size[1]] = x
        return out

    def crop(self, gp: np.ndarray) -> np.ndarray:
        """The input's part of a padded array (undoes `pad`)."""
        (ph, pw), (qh, qw) = self.padding, self.pad_after
        if not (ph or pw or qh or qw):
            return gp
        return np.ascontiguousarray(gp[..., ph:ph + self.size[0], pw:pw + self.size[1]])

    def positions(self, axis: int, k) -> np.ndarray:
        """Padded positions o*stride + k*dilation along `axis` (0: rows, 1: columns) for
        every output position o (the last axis) and kernel offset(s) k (broadcast)."""
        o = np.arange(self.out[axis])
        return o * self.stride[axis] + np.asarray(k)[..., None] * self.dilation[axis]


def pool_arguments(kernel_size, stride=None, padding=0, dilation=1, *,
                   where: str = "max_pool2d") -> tuple:
    """PyTorch's pooling arguments checked and as (h, w) pairs: (kernel, stride, padding,
    dilation), stride defaulting to the kernel; raise naming `where` and the values."""
    kernel = _pair(kernel_size, "kernel_size", where)
    stride = kernel if stride is None or stride == () or stride == [] else _pair(
        stride, "stride", where)
    padding = _pair(padding, "padding", where)
    dilation = _pair(dilation, "dilation", where)
    if min(kernel) < 1:
        raise ValueError(f"{where}: kernel_size must be positive, got {kernel}")
    if min(stride) < 1:
        raise ValueError(f"{where}: stride must be positive, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"{where}: dilation must be positive, got {dilation}")
    if min(padding) < 0:
        raise ValueError(f"{where}: padding must be non-negative, got {padding}")
    for k, p, d in zip(kernel, padding, dilation):
        # PyTorch's limit: a window must always hold at least one input element.
        if p > (d * (k - 1) + 1) // 2:
            limit = "kernel_size" if d == 1 else "the dilated kernel size"
            raise ValueError(f"{where}: padding {padding} must be at most half of {limit} "
                             f"(kernel_size={kernel}, dilation={dilation}), as in PyTorch")
    return kernel, stride, padding, dilation


def pool_geometry(shape: tuple, kernel_size, stride=None, padding=0, dilation=1,
                  ceil_mode: bool = False, *, where: str = "max_pool2d") -> PoolGeometry:
    """Check PyTorch's pooling arguments against an input shape (..., H, W) and work out
    the geometry; raise naming `where` and the offending values."""
    kernel, stride, padding, dilation = pool_arguments(kernel_size, stride, padding,
                                                       dilation, where=where)
    if len(shape) < 2:
        raise ShapeError(f"{where}: input of shape {shape} has no (H, W) axes")
    size = tuple(shape[-2:])
    out = tuple(_out_size(n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    if min(out) < 1:
        raise ShapeError(f"{where}: input of spatial size {size} is too small for "
                         f"kernel_size={kernel}, dilation={dilation}, padding={padding}: "
                         f"the output would be {out}")
    pad_after = tuple(max(0, (o - 1) * s + d * (k - 1) + 1 - n - p)
                      for n, k, s, p, d, o in zip(size, kernel, stride, padding, dilation, out))
    return PoolGeometry(size, kernel, stride, padding, dilation, out, pad_after)


def _geometry(x, kernel_size, stride, padding, dilation=1, ceil_mode=False) -> PoolGeometry:
    return pool_geometry(raw(x).shape, kernel_size, stride, padding, dilation, ceil_mode)


def _index_into(lead: tuple, rows, cols) -> tuple:
    """An index tuple for `scatter` into an array of shape lead + padded (H, W): the
    leading axes as aranges, then the row and column positions, all broadcasting from
    the right against the scattered gradient (which may have more axes in front)."""
    index = tuple(np.arange(n).reshape((n,) + (1,) * (len(lead) - a + 1))
                  for a, n in enumerate(lead))
    return index + (rows, cols)


def _crop_node(gp, geo: PoolGeometry):
    (ph, pw) = geo.padding
    if gp.shape[-2:] == geo.size:
        return gp
    return gp[..., ph:ph + geo.size[0], pw:pw + geo.size[1]]


# ---------------------------------------------------------------------------
# max_pool2d

def _argmax_offsets(x: np.ndarray, geo: PoolGeometry):
    """(max, k): each window's maximum and the kernel offset it was found at, the first
    in scan order among ties and the last NaN if any (PyTorch's CPU rule, so gradients
    go where PyTorch sends them). Padding never wins: it is -inf, and a window of -inf
    starts at its first element inside the input, as PyTorch's does."""
    xp = geo.pad(x, -np.inf)
    dtype = np.uint8 if math.prod(geo.kernel) <= 256 else np.int32
    best, idx = _scan(xp, geo, dtype, xp is not x, nan_aware=False)
    if np.isnan(best).any():  # (NaN propagates to the max: no NaN there, none anywhere)
        best, idx = _scan(xp, geo, dtype, xp is not x, nan_aware=True)
    return best, idx


def _scan(xp, geo, dtype, padded: bool, nan_aware: bool):
    # Branch-free updates (np.maximum and arithmetic rather than masked copies, which are
    # several times slower on random masks). The offsets come in increasing order and a
    # window's offset only moves forward, so the new offset is max(offset, take * k).
    best = idx = None
    for k, index in geo.offsets():
        v = xp[index]
        if best is None:
            if padded:  # windows whose first offsets lie in the padding start further in
                best = np.full(v.shape, -np.inf, dtype=xp.dtype)
                idx = np.empty(v.shape, dtype=dtype)
                idx[...] = _first_inside(geo).astype(dtype)
            else:
                best, idx = v.copy(), np.zeros(v.shape, dtype=dtype)
                continue
        take = v > best
        if nan_aware:
            take |= np.isnan(v)
            np.copyto(best, v, where=take)
        else:
            np.maximum(best, v, out=best)
        np.maximum(idx, np.multiply(take, dtype(k), dtype=dtype), out=idx)
    return best, idx


def _first_inside(geo: PoolGeometry) -> np.ndarray:
    """For each output position (Oh, Ow), the first kernel offset inside the input."""
    firsts = []
    for axis in (0, 1):
        start = np.arange(geo.out[axis]) * geo.stride[axis] - geo.padding[axis]
        firsts.append(np.maximum(0, -(start // geo.dilation[axis])))  # ceil(-start / d)
    return firsts[0][:, None] * geo.kernel[1] + firsts[1][None, :]


def _max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    geo = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    out, idx = _argmax_offsets(x, geo)
    return out, (idx,)  # the offsets of the maxima: the vjp needs no second search


def max_pool2d_indices(x: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    """PyTorch's return_indices: each maximum's flat position h*W + w in its input plane."""
    idx = _argmax_offsets(x, geo)[1]
    rows = (np.arange(geo.out[0])[:, None] * geo.stride[0]
            + (idx // geo.kernel[1]) * geo.dilation[0] - geo.padding[0])
    cols = (np.arange(geo.out[1])[None, :] * geo.stride[1]
            + (idx % geo.kernel[1]) * geo.dilation[1] - geo.padding[1])
    return (rows * geo.size[1] + cols).astype(np.int64)


@primitive("max_pool2d", "max over each window of the last two axes; d/dx = 1 at the "
           "window's first maximum (PyTorch's choice among ties), 0 elsewhere; windows "
           "that overlap add up", _max_pool2d_forward, symbol="max_pool {kernel_size}",
           residuals=True, defaults={"stride": "kernel_size", "padding": 0, "dilation": 1,
                                     "ceil_mode": False})
def MAX_POOL2D(g, out, x, idx=None, *, kernel_size, stride, padding, dilation, ceil_mode):
    geo = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    if idx is None:  # create_graph, or pictures after a release: find the maxima again
        idx = _argmax_offsets(raw(x), geo)[1]
    shape = raw(x).shape
    if isinstance(g, Node):
        kw = geo.kernel[1]
        rows = (np.arange(geo.out[0])[:, None] * geo.stride[0] + (idx // kw) * geo.dilation[0])
        cols = (np.arange(geo.out[1])[None, :] * geo.stride[1] + (idx % kw) * geo.dilation[1])
        gp = scatter(g, _index_into(shape[:-2], rows, cols), shape[:-2] + geo.padded)
        return (_crop_node(gp, geo),)
    gp = np.zeros(shape[:-2] + geo.padded, dtype=g.dtype)
    overlapping = geo.overlapping
    # g * [idx == k] is branch-free and fast, but inf * 0 would put a NaN where no
    # maximum is: a g with infinities or NaNs takes masked copies instead.
    finite = np.isfinite(g).all()
    for k, index in geo.offsets():
        if not finite:
            with np.errstate(invalid="ignore"):  # inf - inf in two windows: NaN, as torch
                gp[index] += np.where(idx == k, g, 0)
        elif overlapping:
            gp[index] += g * (idx == k)
        else:  # each position lies in one window: written once, straight into place
            np.multiply(g, idx == k, out=gp[index])
    return (geo.crop(gp),)


# ---------------------------------------------------------------------------
# avg_pool2d

def _divisors(geo: PoolGeometry, count_include_pad: bool, divisor_override):
    """What each window's sum is divided by (PyTorch's rule): the window's size, clipped
    at the end of the padding, and with count_include_pad=False clipped at the input;
    a number where every window has the same divisor, else an (Oh, Ow) array."""
    if divisor_override is not None:
        return divisor_override
    sizes = []
    for axis in (0, 1):
        n, k, s, p = geo.size[axis], geo.kernel[axis], geo.stride[axis], geo.padding[axis]
        start = np.arange(geo.out[axis]) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        sizes.append(end - start)
    div = sizes[0][:, None] * sizes[1][None, :]
    return int(div.flat[0]) if (div == div.flat[0]).all() else div


def _avg_options(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                 divisor_override):
    geo = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    return geo, _divisors(geo, count_include_pad, divisor_override)


def _avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    geo, div = _avg_options(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)
    xp = geo.pad(x, 0)
    total = None
    for _, index in geo.offsets():
        if total is None:
            total = xp[index].copy()
        else:
            total += xp[index]
    total /= np.asarray(div, dtype=x.dtype) if isinstance(div, np.ndarray) else x.dtype.type(div)
    return total


@primitive("avg_pool2d", "mean over each window of the last two axes (sum / divisor, "
           "PyTorch's divisor); d/dx = 1/divisor for each element of a window; windows "
           "that overlap add up", _avg_pool2d_forward, symbol="avg_pool {kernel_size}",
           reads="shapes", defaults={"stride": "kernel_size", "padding": 0,
                                     "ceil_mode": False, "count_include_pad": True,
                                     "divisor_override": None})
def AVG_POOL2D(g, out, x, *, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override):
    geo, div = _avg_options(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)
    shape = raw(x).shape
    dtype = raw(g).dtype
    share = g / (np.asarray(div, dtype=dtype) if isinstance(div, np.ndarray) else dtype.type(div))
    if isinstance(g, Node):
        # every kernel offset k gets the whole share, at its own positions: scatter a
        # (K, ..., Oh, Ow) stack of copies of it
        (kh, kw), lead = geo.kernel, shape[:-2]
        i, j = np.divmod(np.arange(kh * kw), kw)
        ones = (1,) * len(lead)
        rows = geo.positions(0, i).reshape((kh * kw,) + ones + (geo.out[0], 1))
        cols = geo.positions(1, j).reshape((kh * kw,) + ones + (1, geo.out[1]))
        spread = broadcast_to(share.reshape((1,) + share.shape), (kh * kw,) + share.shape)
        gp = scatter(spread, _index_into(lead, rows, cols), lead + geo.padded)
        return (_crop_node(gp, geo),)
    (kh, kw), (sh, sw), (oh, ow) = geo.kernel, geo.stride, geo.out
    gp = np.zeros(shape[:-2] + geo.padded, dtype=dtype)
    if (sh, sw) == (kh, kw):
        # Windows that tile: every covered position gets its window's share at once.
        # (Splitting axes never copies, so `tiles` is a view into gp.)
        tiles = gp[..., :oh * kh, :ow * kw].reshape(shape[:-2] + (oh, kh, ow, kw))
        tiles[...] = share[..., :, None, :, None]
    else:
        for _, index in geo.offsets():
            gp[index] += share
    return (geo.crop(gp),)


# ---------------------------------------------------------------------------
# adaptive_avg_pool2d

def _averaging_matrix(n: int, m: int, dtype) -> np.ndarray:
    """(m, n): row o averages the inputs floor(o n / m) .. ceil((o + 1) n / m) - 1
    (PyTorch's windows, which overlap when m does not divide n)."""
    o = np.arange(m)
    start = (o * n) // m
    end = -((-(o + 1) * n) // m)
    cols = np.arange(n)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def _adaptive_matrices(shape, output_size, dtype):
    (h, w), (oh, ow) = shape[-2:], output_size
    return _averaging_matrix(h, oh, dtype), _averaging_matrix(w, ow, dtype)


# A window's mean is separable (a mean over rows of means over columns), so the whole
# pooling is two products with small constant matrices: A_h @ x @ A_w^T. Its vjp is the
# transpose, A_h^T @ g @ A_w, which is linear in g and so works on graph nodes as it is.
@primitive("adaptive_avg_pool2d", "A_h @ x @ A_w^T, A averaging PyTorch's adaptive windows "
           "(start floor(o n / m), end ceil((o+1) n / m)); vjp = A_h^T @ g @ A_w",
           lambda x, output_size: _adaptive_pool(x, output_size), reads="shapes",
           symbol="adaptive_avg_pool {output_size}")
def ADAPTIVE_AVG_POOL2D(g, out, x, *, output_size):
    a_h, a_w = _adaptive_matrices(raw(x).shape, output_size, raw(g).dtype)
    return ((a_h.T @ g) @ a_w,)


def _adaptive_pool(x, output_size):
    a_h, a_w = _adaptive_matrices(x.shape, output_size, x.dtype)
    return (a_h @ x) @ a_w.T


# ---------------------------------------------------------------------------
# batch_norm

def channel_shape(ndim: int, c: int) -> tuple:
    """(1, C, 1, ...): a per-channel vector broadcast against an (N, C, ...) input."""
    return (1, c) + (1,) * (ndim - 2)


def channel_sum(a: np.ndarray) -> np.ndarray:
    """The sum over every axis but 1 of an (N, C, ...) array, shape (C,). Over the batch
    first, then along the rows of a contiguous (C, L) array: several times faster than
    numpy's reduction over the axes (0, 2, 3) at once."""
    n, c = a.shape[:2]
    return a.reshape(n, c, -1).sum(axis=0).sum(axis=1)


def _batch_norm_forward(x, *params, mean, var, eps, affine, training):
    shape = channel_shape(x.ndim, x.shape[1])
    invstd = 1 / np.sqrt(var + eps)
    w, b = _params(params, affine)
    scale = invstd if w is None else invstd * w
    # (x - mean) * scale + b rather than x * scale + (b - mean * scale): the centring
    # comes first, so a channel whose mean is large against its spread loses no digits.
    out = x - mean.reshape(shape)
    out *= scale.reshape(shape)
    if b is not None:
        out += b.reshape(shape)
    return out, (invstd,)


def _params(params, affine):
    it = iter(params)
    w = next(it) if affine[0] else None
    b = next(it) if affine[1] else None
    return w, b


# Fused: one node instead of the composite's ten (mean, subtract, square, mean, add,
# power, multiply, multiply, add...), each writing an input-sized array in the forward
# and again in the backward; benchmarks/bench_pool_norm.py measures both. The batch
# statistics come in as options: nn.functional.batch_norm computes them once, for the
# normalisation and for the running averages.
@primitive("batch_norm", "w * (x - mean) / sqrt(var + eps) + b per channel (axis 1), with "
           "the batch's own mean and biased var over the other axes when training (else "
           "constants); training: d/dx = w/sigma * (g - mean(g) - xhat * mean(g * xhat)), "
           "else d/dx = w/sigma * g; d/dw = sum(g * xhat), d/db = sum(g)",
           _batch_norm_forward, symbol="batch_norm", residuals=True,
           internal=("mean", "var", "affine"))
def BATCH_NORM(g, out, x, *rest, mean, var, eps, affine, training, need=(True,) * 3):
    n_params = sum(affine)
    params, residuals = rest[:n_params], rest[n_params:]
    w, _ = _params(params, affine)
    axes = (0,) + tuple(range(2, raw(x).ndim))
    shape = channel_shape(raw(x).ndim, raw(x).shape[1])
    if isinstance(g, Node) or isinstance(x, Node) or not residuals:
        return _batch_norm_vjp_graph(g, x, w, mean, var, eps, affine, training, axes, shape)
    (invstd,) = residuals
    count = x.size // x.shape[1]
    want_w = affine[0] and need[1]
    gsum = channel_sum(g)
    gxhat = xhat = None
    if want_w or (need[0] and training):
        xhat = x - mean.reshape(shape)
        xhat *= invstd.reshape(shape)
        gx = g * xhat
        gxhat = channel_sum(gx)
    if need[0]:
        scale = invstd if w is None else invstd * w
        if training:
            # scale * (g - gsum/M - xhat * gxhat/M), per-channel factors folded: into
            # xhat (no longer needed) and into the product's buffer
            xhat *= (-scale * gxhat / count).reshape(shape)
            xhat -= (scale * gsum / count).reshape(shape)
            np.multiply(g, scale.reshape(shape), out=gx)
            gx += xhat
        else:
            gx = g * scale.reshape(shape)
    else:
        gx = None
    return (gx,) + _param_grads(gxhat, gsum, affine, need)


def _param_grads(gxhat, gsum, affine, need) -> tuple:
    grads = ()
    if affine[0]:
        grads += (gxhat if need[1] else None,)
    if affine[1]:
        grads += (gsum if need[1 + affine[0]] else None,)
    return grads


def _batch_norm_vjp_graph(g, x, w, mean, var, eps, affine, training, axes, shape):
    # The same rule written with operators, for graph nodes (create_graph): in training
    # the statistics are recomputed from x, so their dependence on x is differentiated too.
    if training:
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        invstd = ((centred * centred).mean(axis=axes, keepdims=True) + eps) ** -0.5
    else:
        invstd = (var.reshape(shape) + eps) ** -0.5
        centred = x - mean.reshape(shape)
    xhat = centred * invstd
    scale = invstd if w is None else invstd * w.reshape(shape)
    gsum = g.sum(axis=axes, keepdims=True)
    gxhat = (g * xhat).sum(axis=axes, keepdims=True)
    if training:
        gx = scale * (g - gsum / _count(x, axes) - xhat * (gxhat / _count(x, axes)))
    else:
        gx = g * scale
    c = raw(x).shape[1]
    return (gx,) + _param_grads(gxhat.reshape(c), gsum.reshape(c), affine, (True,) * 3)


def _count(x, axes) -> int:
    shape = raw(x).shape
    return math.prod(shape[a] for a in axes)


__all__ = ["PoolGeometry", "pool_arguments", "pool_geometry", "max_pool2d_indices",
           "channel_shape", "channel_sum"]
