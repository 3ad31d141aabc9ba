"""One LSTM time step as one primitive, `lstm_cell`, so an unrolled LSTM is one node per
step and layer (drawn and collapsed at the cell level) instead of about a dozen.

Inputs x (N, in), the state hc (2, H, N), w_ih (4H, in), w_hh (4H, H) and optionally
b_ih, b_hh (4H,); the output is the next state hc'. The state holds h and c transposed,
hc = [h^T; c^T], so that the pre-activations come out as (4H, N) with each gate's block
a contiguous (H, N) array: every elementwise step works on contiguous arrays (on the
(N, 4H) layout a block is 32-64-float pieces of rows, and numpy's per-row overhead made
the cell about a fifth slower), the matmuls need no transposed copy of the weights, and
one state tensor goes from step to step with no slicing node between two cells.
With the gate blocks in PyTorch's order,

    [i, f, g, o] = act(w_ih x^T + b_ih + w_hh h^T + b_hh),  act = sigmoid, sigmoid, tanh, sigmoid
    c' = f c + i g,   h' = o tanh(c')

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
    g = np.tanh(gates[2 * n:3 * n])
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: stable at any magnitude, and one tanh is much
    # cheaper than the exp and np.where of the general sigmoid.
    gates *= 0.5
    np.tanh(gates, out=gates)
    gates *= 0.5
    gates += 0.5
    gates[2 * n:3 * n] = g
    return gates


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == np.result_type(a, b):
        a += b  # in place: the gates are the only new array
        return a
    return a + b


def _lstm_cell_forward(x, hc, w_ih, w_hh, *biases, bias):
    n = w_hh.shape[1]
    gates = _add(w_ih @ x.T, w_hh @ hc[0])
    if bias:
        gates = _add(gates, (biases[0] + biases[1])[:, None])
    act = _gate_activations(gates, n)
    out = np.empty((2,) + act[:n].shape, dtype=act.dtype)
    np.multiply(act[n:2 * n], hc[1], out=out[1])
    out[1] += act[:n] * act[2 * n:3 * n]
    tanh_c = np.tanh(out[1])
    np.multiply(act[3 * n:], tanh_c, out=out[0])
    return out, (act, tanh_c)


@primitive("lstm_cell", "hc' = [h'^T; c'^T] with c' = f c + i g, h' = o tanh(c'), [i, f, g, o] "
           "= act(w_ih x^T + w_hh h^T + b_ih + b_hh), act = sigmoid except tanh for g; with "
           "dc = g_c + g_h o (1 - tanh(c')^2): d gates = [dc g i(1-i), dc c f(1-f), "
           "dc i (1-g^2), g_h tanh(c') o(1-o)] = D (4H, N), d/dx = D^T w_ih, "
           "d/dh^T = w_hh^T D, d/dc = dc f, d/dw_ih = D x, d/dw_hh = D h, d/db = row sums of D",
           _lstm_cell_forward, symbol="lstm_cell", residuals=True, internal=("bias",))
def LSTM_CELL(g, out, x, hc, w_ih, w_hh, *rest, bias, need=(True,) * 6):
    n = w_hh.shape[1]
    biases, residuals = rest[:2 * bias], rest[2 * bias:]
    if isinstance(g, Node) or isinstance(hc, Node):
        return _lstm_cell_vjp_graph(g, x, hc, w_ih, w_hh, biases)
    if not residuals:  # released by backward(): a picture's gradients on the side recompute
        residuals = _lstm_cell_forward(x, hc, w_ih, w_hh, *biases, bias=bias)[1]
    act, tanh_c = residuals  # the gate activations and tanh(c') the forward saved
    g_h = g[0]
    # dc = g_c + g_h o (1 - tanh(c')^2), in place on one new array
    dc = tanh_c * tanh_c
    np.subtract(1, dc, out=dc)
    dc *= act[3 * n:]
    dc *= g_h
    dc += g[1]
    # d gates = (d out / d act) * (d act / d pre-activation), over all four blocks at once
    d = np.subtract(1, act)
    d *= act  # s (1 - s), the sigmoid's derivative; the g block's is 1 - g^2
    gg = act[2 * n:3 * n]
    np.multiply(gg, gg, out=d[2 * n:3 * n])
    np.subtract(1, d[2 * n:3 * n], out=d[2 * n:3 * n])
    d[:n] *= gg
    d[n:2 * n] *= hc[1]
    d[2 * n:3 * n] *= act[:n]
    d[:3 * n].reshape((3,) + dc.shape)[...] *= dc  # (one call for the three blocks)
    d[3 * n:] *= g_h
    d[3 * n:] *= tanh_c
    gx = d.T @ w_ih if need[0] else None
    if need[1]:
        ghc = np.empty((2,) + dc.shape, dtype=d.dtype)
        np.matmul(w_hh.T, d, out=ghc[0])
        np.multiply(dc, act[n:2 * n], out=ghc[1])
    else:
        ghc = None
    gw_ih = d @ x if need[2] else None
    gw_hh = d @ hc[0].T if need[3] else None
    grads = (gx, ghc, gw_ih, gw_hh)
    if bias:
        gb = d.sum(axis=1)  # (a fresh array for each bias: either may become a .grad)
        grads += (gb if need[4] else None, gb.copy() if need[5] else None)
    return grads


def _lstm_cell_vjp_graph(g, x, hc, w_ih, w_hh, biases):
    # The same rule written with operators, for graph nodes (create_graph): the
    # activations are recomputed from the inputs, so their dependence on them is
    # differentiated too.
    from .tensor import concatenate, stack

    n = w_hh.shape[1]
    h_t, c = hc[0], hc[1]
    gates = w_ih @ x.T + w_hh @ h_t
    for b in biases:
        gates = gates + b.reshape(-1, 1)
    s = gates.sigmoid()
    i, f, o = s[:n], s[n:2 * n], s[3 * n:]
    gg = gates[2 * n:3 * n].tanh()
    tanh_c = (f * c + i * gg).tanh()
    g_h = g[0]
    dc = g[1] + g_h * o * (1 - tanh_c * tanh_c)
    d = concatenate((dc * gg * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - gg * gg),
                     g_h * tanh_c * o * (1 - o)), axis=0)
    return (d.T @ w_ih, stack((w_hh.T @ d, dc * f), 0), d @ x, d @ h_t.T) + tuple(
        d.sum(axis=1) for _ in biases)


__all__: list = []
