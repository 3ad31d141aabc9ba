"""One LSTM time step as one primitive, `lstm_cell`, so an unrolled LSTM is one node per
step and layer (drawn and collapsed at the cell level) instead of about a dozen.

Inputs x (N, in), hc = [h | c] (N, 2H), w_ih (4H, in), w_hh (4H, H) and optionally b_ih,
b_hh (4H,); the output is hc' = [h' | c'] (N, 2H), so the state is one tensor from step to
step and no slicing node sits between two cells. With the gate blocks in PyTorch's order,

    [i, f, g, o] = act(x w_ih^T + b_ih + h w_hh^T + b_hh),  act = sigmoid, sigmoid, tanh, sigmoid
    c' = f c + i g,   h' = o tanh(c')

`weights_t` (optional, not differentiated) is `transposed_weights(w_ih, w_hh)`, made once
by a layer for all its steps; the weights themselves stay the inputs. Only the forward
reads it (so it is no backward buffer: all of a layer's steps share it).

Fused because the composite spent its time in per-node overhead, slicing (each slice's
backward scatters into a zero array) and the stable sigmoid's np.where: forward and
backward of input 32, hidden 64, sequence 50, batch 32, float32, one thread, took 5.3x
torch's time composed and 3.0x fused, in the same run (benchmarks/bench_lstm.py).
"""

from __future__ import annotations

import numpy as np

from .engine import Node
from .ops import primitive


def _gate_activations(gates: np.ndarray, n: int) -> np.ndarray:
    """sigmoid over the i, f, o blocks, tanh over g, written over `gates` in place."""
    g = np.tanh(gates[:, 2 * n:3 * n])
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: stable at any magnitude, and one tanh is much
    # cheaper than the exp and np.where of the general sigmoid.
    gates *= 0.5
    np.tanh(gates, out=gates)
    gates *= 0.5
    gates += 0.5
    gates[:, 2 * n:3 * n] = g
    return gates


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == np.result_type(a, b):
        a += b  # in place: the gates are the only new array
        return a
    return a + b


def transposed_weights(w_ih, w_hh) -> tuple:
    """C-ordered copies of w_ih^T and w_hh^T for the `weights_t` option: with numpy's BLAS
    here, x @ w.T on a transposed view runs about twice as long as on a C-ordered copy,
    so a layer makes the copies once per sequence instead of paying that at every step."""
    return np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)


def _lstm_cell_forward(x, hc, w_ih, w_hh, *biases, bias, weights_t=None):
    n = w_hh.shape[1]
    w_ih_t, w_hh_t = weights_t if weights_t is not None else (w_ih.T, w_hh.T)
    gates = x @ w_ih_t
    gates = _add(gates, hc[:, :n] @ w_hh_t)
    for b in biases:
        gates = _add(gates, b)
    act = _gate_activations(gates, n)
    out = np.empty((act.shape[0], 2 * n), dtype=act.dtype)
    c_next = out[:, n:]
    np.multiply(act[:, n:2 * n], hc[:, n:], out=c_next)
    c_next += act[:, :n] * act[:, 2 * n:3 * n]
    tanh_c = np.tanh(c_next)
    np.multiply(act[:, 3 * n:], tanh_c, out=out[:, :n])
    return out, (act, tanh_c)


@primitive("lstm_cell", "hc' = [o tanh(c') | c'] with c' = f c + i g, [i, f, g, o] = "
           "act(x w_ih^T + h w_hh^T + b_ih + b_hh), act = sigmoid except tanh for g; with "
           "dc = g_c + g_h o (1 - tanh(c')^2): d gates = [dc g i(1-i), dc c f(1-f), "
           "dc i (1-g^2), g_h tanh(c') o(1-o)] = D, d/dx = D w_ih, d/dh = D w_hh, "
           "d/dc = dc f, d/dw_ih = D^T x, d/dw_hh = D^T h, d/db = sum of D over rows",
           _lstm_cell_forward, symbol="lstm_cell", residuals=True, internal=("bias", "weights_t"),
           caches={"weights_t": (transposed_weights, (2, 3))})
def LSTM_CELL(g, out, x, hc, w_ih, w_hh, *rest, bias, weights_t=None, need=(True,) * 6):
    n = w_hh.shape[1]
    biases, residuals = rest[:2 * bias], rest[2 * bias:]
    if isinstance(g, Node) or isinstance(hc, Node) or not residuals:
        return _lstm_cell_vjp_graph(g, x, hc, w_ih, w_hh, biases)
    act, tanh_c = residuals  # the gate activations and tanh(c') the forward saved
    g_h, c = g[:, :n], hc[:, n:]
    # dc = g_c + g_h o (1 - tanh(c')^2), in place on one new array
    dc = tanh_c * tanh_c
    np.subtract(1, dc, out=dc)
    dc *= act[:, 3 * n:]
    dc *= g_h
    dc += g[:, n:]
    # d gates = (d out / d act) * (d act / d pre-activation), over all four blocks at once
    d = np.subtract(1, act)
    d *= act  # s (1 - s), the sigmoid's derivative; the g block's is 1 - g^2
    gg = act[:, 2 * n:3 * n]
    np.multiply(gg, gg, out=d[:, 2 * n:3 * n])
    np.subtract(1, d[:, 2 * n:3 * n], out=d[:, 2 * n:3 * n])
    d[:, :n] *= gg
    d[:, n:2 * n] *= c
    d[:, 2 * n:3 * n] *= act[:, :n]
    for k in range(3):
        d[:, k * n:(k + 1) * n] *= dc
    d[:, 3 * n:] *= g_h
    d[:, 3 * n:] *= tanh_c
    gx = d @ w_ih if need[0] else None
    if need[1]:
        ghc = np.empty_like(hc, dtype=d.dtype)
        ghc[:, :n] = d @ w_hh
        np.multiply(dc, act[:, n:2 * n], out=ghc[:, n:])
    else:
        ghc = None
    gw_ih = d.T @ x if need[2] else None
    gw_hh = d.T @ hc[:, :n] if need[3] else None
    grads = (gx, ghc, gw_ih, gw_hh)
    if bias:
        gb = d.sum(axis=0)  # (a fresh array for each bias: either may become a .grad)
        grads += (gb if need[4] else None, gb.copy() if need[5] else None)
    return grads


def _lstm_cell_vjp_graph(g, x, hc, w_ih, w_hh, biases):
    # The same rule written with operators, for graph nodes (create_graph): the
    # activations are recomputed from the inputs, so their dependence on them is
    # differentiated too.
    from .tensor import concatenate

    n = w_hh.shape[1]
    h, c = hc[:, :n], hc[:, n:]
    gates = x @ w_ih.T + h @ w_hh.T
    for b in biases:
        gates = gates + b
    s = gates.sigmoid()
    i, f, o = s[:, :n], s[:, n:2 * n], s[:, 3 * n:]
    gg = gates[:, 2 * n:3 * n].tanh()
    tanh_c = (f * c + i * gg).tanh()
    g_h = g[:, :n]
    dc = g[:, n:] + g_h * o * (1 - tanh_c * tanh_c)
    d = concatenate((dc * gg * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - gg * gg),
                     g_h * tanh_c * o * (1 - o)), axis=1)
    return (d @ w_ih, concatenate((d @ w_hh, dc * f), axis=1), d.T @ x, d.T @ h) + tuple(
        d.sum(axis=0) for _ in biases)


__all__: list = []
