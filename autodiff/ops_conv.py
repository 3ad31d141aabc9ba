"""Convolution: one primitive for any number of spatial dimensions (conv1d, conv2d, ...).

For an input x (N, C, *S), a weight w (O, C/G, *K), groups G, and per dimension a stride s,
padding (lo, hi) and dilation d, with xp the zero-padded input:

    out[n, o, p] = b[o] + sum_{c in o's group} sum_k w[o, c, k] * xp[n, c, p * s + k * d]

It is computed by im2col: each receptive field of xp becomes one column of a matrix, so
the convolution is one matrix product per group, out = W @ cols. The vjp reads that
product backwards, and needs no other machinery:

    d/dw = g @ cols^T          d/db = g summed over batch and positions
    d/dx = col2im(W^T @ g)     each column's gradient added back onto the receptive
                               field it was copied from (a transposed convolution)

One primitive rather than one per dimension: the window view, the products and the
scatter-add are the same code for any number of spatial axes.

The columns are laid out batch-last, (C, *K, *out, N), and so is the padded input they
are copied from: numpy copies and adds in runs along the trailing contiguous axes, and
batch-last makes those runs out_width * N long instead of out_width (8 in LeNet's second
layer). benchmarks/bench_conv.py measures this against the batch-first layout, einsum,
tensordot and a transposed convolution computed as a correlation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .engine import Node
from .ops import primitive, scatter


def output_size(size: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    """Positions of a k-wide kernel (dilated) along a padded axis: the conv's output size."""
    return (size + lo + hi - dilation * (k - 1) - 1) // stride + 1


def _batch_last_padded(x: np.ndarray, padding) -> np.ndarray:
    """x (N, C, *S) as a contiguous (C, *S_padded, N) array, zeros in the padding."""
    n = x.ndim - 2
    xt = x.transpose((1,) + tuple(range(2, n + 2)) + (0,))
    if not any(lo or hi for lo, hi in padding):
        return np.ascontiguousarray(xt)
    shape = (x.shape[1],) + tuple(m + lo + hi for m, (lo, hi) in zip(x.shape[2:], padding))
    xp = np.zeros(shape + (x.shape[0],), dtype=x.dtype)
    inside = tuple(slice(lo, lo + m) for m, (lo, _) in zip(x.shape[2:], padding))
    xp[(slice(None),) + inside] = xt
    return xp


def im2col(x, kernel, stride, padding, dilation, groups) -> np.ndarray:
    """The receptive fields of x (N, C, *S) as columns: (G, C/G * prod(K), prod(out) * N),
    rows ordered (c, *k) as the weight's, columns (*out, n)."""
    n = len(kernel)
    xp = _batch_last_padded(x, padding)
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    windows = sliding_window_view(xp, extent, axis=tuple(range(1, n + 1)))  # (C, *W, N, *E)
    step = ((slice(None),) + tuple(slice(None, None, s) for s in stride) + (slice(None),)
            + tuple(slice(None, None, d) for d in dilation))
    windows = windows[step]                                                # (C, *out, N, *K)
    order = (0,) + tuple(range(n + 2, 2 * n + 2)) + tuple(range(1, n + 2))
    cols = np.ascontiguousarray(windows.transpose(order))                  # (C, *K, *out, N)
    # (sizes spelled out, not -1: a zero-size batch leaves -1 undetermined)
    rows = cols.shape[0] // groups * math.prod(kernel)
    return cols.reshape(groups, rows, math.prod(cols.shape[n + 1:]))


def col2im(gcols, x_shape, kernel, stride, padding, dilation) -> np.ndarray:
    """The adjoint of im2col: column entries (G, C/G * prod(K), prod(out) * N) added back
    onto the input positions they were copied from; returns (N, C, *S) axes over
    batch-last memory."""
    n = len(kernel)
    batch, channels, sizes = x_shape[0], x_shape[1], x_shape[2:]
    out = tuple(output_size(m, k, s, lo, hi, d) for m, k, s, (lo, hi), d
                in zip(sizes, kernel, stride, padding, dilation))
    gc = gcols.reshape((channels,) + tuple(kernel) + out + (batch,))
    padded = tuple(m + lo + hi for m, (lo, hi) in zip(sizes, padding))
    gxp = np.zeros((channels,) + padded + (batch,), dtype=gcols.dtype)
    # One strided add per kernel offset: each adds a whole (C, *out, N) block at once,
    # where a scatter by index (np.add.at) would go element by element.
    for offset in itertools.product(*(range(k) for k in kernel)):
        target = tuple(slice(i * d, i * d + s * (m - 1) + 1, s)
                       for i, d, s, m in zip(offset, dilation, stride, out))
        gxp[(slice(None),) + target] += gc[(slice(None),) + offset]
    inside = tuple(slice(lo, lo + m) for m, (lo, _) in zip(sizes, padding))
    gx = gxp[(slice(None),) + inside]
    return gx.transpose((n + 1, 0) + tuple(range(1, n + 1)))  # batch-last memory, as out


def _batch_last(a: np.ndarray) -> np.ndarray:
    """(N, O, *out) -> contiguous (O, *out, N), the columns' order."""
    return np.ascontiguousarray(a.transpose(tuple(range(1, a.ndim)) + (0,)))


def _grouped_matmul(a, b):
    # (G, m, k) @ (G, k, n); with one group a plain 2-D product, which skips the
    # stacked-matmul loop.
    return (a[0] @ b[0])[None] if a.shape[0] == 1 else a @ b


def _conv_forward(x, w, *b, stride, padding, dilation, groups):
    dtype = np.result_type(x, w, *b)  # numpy's promotion, as `linear` does
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    cols = im2col(x, w.shape[2:], stride, padding, dilation, groups)
    out = _grouped_matmul(w.reshape(groups, w.shape[0] // groups, cols.shape[1]), cols)
    out = out.reshape(w.shape[0], cols.shape[2])                           # (O, *out * N)
    if b:
        out += b[0].reshape(-1, 1)
    n = x.ndim - 2
    sizes = tuple(output_size(m, k, s, lo, hi, d) for m, k, s, (lo, hi), d
                  in zip(x.shape[2:], w.shape[2:], stride, padding, dilation))
    out = out.reshape((w.shape[0],) + sizes + (x.shape[0],))
    # Returned as (N, O, *out) axes over the batch-last memory, not copied to batch-first:
    # elementwise ops keep that layout, and the next convolution's im2col then reads it
    # in order (a consumer that needs another layout copies, as it would anyway).
    return out.transpose((n + 1, 0) + tuple(range(1, n + 1))), (cols,)


@primitive("convolution", "out[n,o,p] = b[o] + sum_{c,k} w[o,c,k] x_pad[n,c,p*s + k*d] "
           "(c in o's group); d/dw = g @ cols^T, d/db = sum of g over n and p, "
           "d/dx = col2im(w^T @ g), a transposed convolution", _conv_forward,
           symbol="conv", residuals=True,
           defaults={"stride": 1, "padding": 0, "dilation": 1, "groups": 1})
def CONVOLUTION(g, out, x, w, *rest, stride, padding, dilation, groups,
                need=(True, True, True)):
    if isinstance(g, Node):
        return _vjp_on_graph(g, x, w, *rest, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, need=need)
    # rest: the bias (1-D) if there is one, then the columns (3-D), which are absent
    # when the vjp is run for a picture after a releasing backward.
    cols = rest[-1] if rest and rest[-1].ndim == 3 else None
    has_bias = len(rest) - (cols is not None) == 1
    kernel = w.shape[2:]
    o = w.shape[0]
    g_cols = _batch_last(g).reshape(groups, o // groups, g.size // o)    # (G, O/G, *out * N)
    gx = gw = gb = None
    if need[1]:
        if cols is None:
            cols = im2col(x.astype(g.dtype, copy=False), kernel, stride, padding, dilation,
                          groups)
        gw = _grouped_matmul(g_cols, cols.transpose(0, 2, 1)).reshape(w.shape)
    if need[0]:
        wg = w.reshape(groups, o // groups, w.size // o)
        gx = col2im(_grouped_matmul(wg.transpose(0, 2, 1), g_cols), x.shape, kernel,
                    stride, padding, dilation)
    if has_bias and need[2]:
        gb = g_cols.reshape(o, g.size // o).sum(axis=1)
    return (gx, gw) + ((gb,) if has_bias else ())


# ---------------------------------------------------------------------------
# The vjp on graph nodes (create_graph=True), so that gradients of gradients work. It is
# the same algebra with im2col as a gather (getitem) from the flattened input, whose
# gradient, col2im, is the scatter op: every step is a primitive with its own vjp. It
# gathers element by element, so it is slower than the fused path above; that is the price
# of differentiating a second time.

def _gather_index(sizes, kernel, stride, padding, dilation):
    """For each (kernel offset, output position) the flat index into the unpadded input
    (prod(K), prod(out)), and a mask of the pairs that fall inside it (not in padding)."""
    positions, inside = [], []
    for m, k, s, (lo, hi), d in zip(sizes, kernel, stride, padding, dilation):
        p = (np.arange(k)[:, None] * d + np.arange(output_size(m, k, s, lo, hi, d)) * s
             - lo)                                                          # (k, out)
        positions.append(p)
        inside.append((p >= 0) & (p < m))
    n = len(sizes)
    # Broadcast to (*K, *out): axis i is dimension i's kernel offset, n + i its position.
    full_p, full_in = [], []
    for i, (p, ok) in enumerate(zip(positions, inside)):
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = p.shape
        full_p.append(p.reshape(shape))
        full_in.append(ok.reshape(shape))
    mask = np.logical_and.reduce(np.broadcast_arrays(*full_in))
    flat = np.ravel_multi_index(tuple(np.where(mask, p, 0) for p in
                                      np.broadcast_arrays(*full_p)), sizes)
    taps = math.prod(kernel)
    return flat.reshape(taps, -1), mask.reshape(taps, -1)


def _vjp_on_graph(g, x, w, *b, stride, padding, dilation, groups, need):
    batch, channels, sizes = x.shape[0], x.shape[1], x.shape[2:]
    o, kernel = w.shape[0], w.shape[2:]
    flat, mask = _gather_index(sizes, kernel, stride, padding, dilation)
    mask = mask.astype(x.dtype)
    positions = flat.shape[1]
    index = (slice(None), slice(None), flat)
    g4 = g.reshape(batch, groups, o // groups, positions)
    wg = w.reshape(groups, o // groups, w.size // o)
    gx = gw = gb = None
    if need[1]:
        cols = x.reshape(batch, channels, math.prod(sizes))[index] * mask   # (N, C, K, P)
        cols = cols.reshape(batch, groups, w.size // o, positions)
        gw = (g4 @ cols.swapaxes(-1, -2)).sum(axis=0).reshape(w.shape)
    if need[0]:
        gcols = (wg.swapaxes(-1, -2) @ g4).reshape(batch, channels, flat.shape[0],
                                                   positions) * mask
        gx = scatter(gcols, index, (batch, channels, math.prod(sizes))).reshape(x.shape)
    if b and need[2]:
        gb = g.sum(axis=(0,) + tuple(range(2, g.ndim)))
    return (gx, gw) + ((gb,) if b else ())


__all__ = ["CONVOLUTION", "im2col", "col2im", "output_size"]
