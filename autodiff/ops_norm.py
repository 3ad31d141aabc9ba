"""Layer normalisation as one primitive: y = (x - mean) / sqrt(var + eps) * w + b over the
last `ndim` axes of each sample (mean and biased var over those axes).

Fused because the composite (mean, sub, mul, mean, add, sqrt, div, mul, add) writes an
input-sized array at every step in the forward and again in the backward: forward and
backward on (32, 50, 256) float32, one thread, took ~5 ms composed, ~2 ms fused (torch ~1 ms).
"""

from __future__ import annotations

import math

import numpy as np

from .engine import Node
from .ops import primitive, raw
from .ops_pool import _params  # (the optional weight and bias, as batch norm takes them)


def _axes(x, ndim: int) -> tuple:
    n = raw(x).ndim
    return tuple(range(n - ndim, n))


def _lead_sum(a, ndim: int):
    """The sum over every axis but the last `ndim` (for the weight's and bias's gradients)."""
    lead = tuple(range(raw(a).ndim - ndim))
    if not lead:
        return a
    if isinstance(a, Node):
        return a.sum(axis=lead)
    return a.reshape((-1,) + a.shape[len(lead):]).sum(axis=0)


def _layer_norm_forward(x, *params, ndim, eps, affine):
    axes = _axes(x, ndim)
    mean = x.mean(axis=axes, keepdims=True)
    out = x - mean  # centred first: a sample whose mean is large against its spread
    var = np.mean(np.square(out), axis=axes, keepdims=True)  # keeps its digits
    rstd = 1 / np.sqrt(var + eps)
    out *= rstd
    w, b = _params(params, affine)
    if w is not None:
        out *= w
    if b is not None:
        out += b
    return out, (mean, rstd)


@primitive("layer_norm", "w * (x - mean) / sqrt(var + eps) + b over the last ndim axes of "
           "each sample, mean and biased var over those axes; with xhat the normalised x "
           "and gw = g * w: d/dx = (gw - mean(gw) - xhat * mean(gw * xhat)) / sigma, "
           "d/dw = sum(g * xhat), d/db = sum(g) over the leading axes",
           _layer_norm_forward, symbol="layer_norm", residuals=True, internal=("affine",))
def LAYER_NORM(g, out, x, *rest, ndim, eps, affine, need=(True,) * 3):
    n_params = sum(affine)
    params, residuals = rest[:n_params], rest[n_params:]
    w, _ = _params(params, affine)
    axes = _axes(x, ndim)
    if isinstance(g, Node) or isinstance(x, Node) or any(isinstance(p, Node) for p in params) \
            or not residuals:
        return _layer_norm_vjp_graph(g, x, w, eps, affine, ndim, axes)
    mean, rstd = residuals
    xhat = x - mean
    xhat *= rstd
    gw = g if w is None else g * w
    if need[0]:
        count = math.prod(x.shape[a] for a in axes)
        gw_mean = gw.sum(axis=axes, keepdims=True) / count
        proj = np.multiply(gw, xhat).sum(axis=axes, keepdims=True) / count
        gx = gw - gw_mean
        gx -= xhat * proj
        gx *= rstd
    else:
        gx = None
    grads = (gx,)
    if affine[0]:
        grads += (_lead_sum(g * xhat, ndim) if need[1] else None,)
    if affine[1]:
        grads += (_lead_sum(g, ndim) if need[1 + affine[0]] else None,)
    return grads


def _layer_norm_vjp_graph(g, x, w, eps, affine, ndim, axes):
    # The same rule written with operators, for graph nodes (create_graph): the statistics
    # are recomputed from x, so their dependence on x is differentiated too.
    centred = x - x.mean(axis=axes, keepdims=True)
    rstd = ((centred * centred).mean(axis=axes, keepdims=True) + eps) ** -0.5
    xhat = centred * rstd
    gw = g if w is None else g * w
    gx = rstd * (gw - gw.mean(axis=axes, keepdims=True)
                 - xhat * (gw * xhat).mean(axis=axes, keepdims=True))
    grads = (gx,)
    if affine[0]:
        grads += (_lead_sum(g * xhat, ndim),)
    if affine[1]:
        grads += (_lead_sum(g, ndim),)
    return grads


__all__: list = []
