"""Recurrent layers with PyTorch's arguments, gate order, weight layouts and state_dict keys:
the cells `RNNCell`, `LSTMCell`, `GRUCell` (one time step) and the sequence layers `RNN`,
`LSTM`, `GRU` (stacked layers, optionally bidirectional).

Every RNN and GRU step is composed from the engine's primitives (linear, matmul, add,
sigmoid, tanh, slicing, stack), an LSTM step is one fused primitive, so backward is the
ordinary chain rule through the unrolled graph, and the graph can be drawn: each layer's
time step t is recorded inside a scope named like an equation, `h[t] = step t` (`hc[t]`
for the LSTM; ', layer k' and ', reverse' added where there are several), so pictures can
collapse the unrolled graph per step: `draw_graph(loss, collapse=1)` for a layer called on
its own. With G gates per step (RNN 1, LSTM 4, GRU 3) a layer holds
weight_ih (G*hidden, input), weight_hh (G*hidden, hidden), bias_ih and bias_hh (G*hidden,),
all drawn from U(-1/sqrt(hidden), 1/sqrt(hidden)) as PyTorch does.

Step math (x W^T written xW; gate blocks in PyTorch's order):
- RNN:  h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu
- LSTM: [i, f, g, o] = x W_ih^T + b_ih + h W_hh^T + b_hh;
        c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c')
        (one fused `lstm_cell` node per step, faster than its dozen primitives; the state
        passed from step to step is one tensor, hc = [h^T; c^T] of shape (2, hidden, N):
        see autodiff/ops_rnn.py for why transposed)
- GRU:  [r, z] = sigmoid of the first two blocks of x W_ih^T + b_ih + h W_hh^T + b_hh;
        n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn));  h' = (1 - z) n + z h
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from autodiff import OPS, Tensor, concatenate, stack
from autodiff.dtypes import as_dtype, check_device, get_default_dtype
from autodiff.errors import ShapeError
from autodiff.engine import is_grad_enabled
from autodiff.rng import generator
from autodiff.scope import close_scope, open_scope
from autodiff.tensor import _wrap, apply

from .functional import as_tensor, dropout, linear
from .replayed import zeros
from .module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
LSTM_CELL = OPS["lstm_cell"]


# -- one time step, shared by the cells and the layers ----------------------------------
# `xw` is the input's projection x W_ih^T + b_ih, computed by the caller (the layers do it
# for the whole sequence in one matmul, the cells for their one step).
def rnn_step(xw: Tensor, h: Tensor, w_hh, b_hh, relu: bool) -> Tensor:
    """h' = act(xw + h W_hh^T + b_hh)."""
    pre = xw + linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


def lstm_cell(x: Tensor, hc: Tensor, w_ih, w_hh, b_ih, b_hh) -> Tensor:
    """hc' = [h'^T; c'^T] (2, hidden, N) from x (N, H_in) and hc = [h^T; c^T]: one
    `lstm_cell` node (autodiff/ops_rnn.py), with i, f, g, o as in the module docstring."""
    options = {"bias": b_ih is not None}
    if b_ih is None:
        return apply(LSTM_CELL, (x, hc, w_ih, w_hh), options)
    return apply(LSTM_CELL, (x, hc, w_ih, w_hh, b_ih, b_hh), options)


def gru_step(xw: Tensor, h: Tensor, w_hh, b_hh) -> Tensor:
    """h' = n + z (h - n) (= (1 - z) n + z h), with r, z, n as in the module docstring."""
    n_h = h.shape[-1]
    hw = linear(h, w_hh, b_hh)
    rz = (xw[..., :2 * n_h] + hw[..., :2 * n_h]).sigmoid()
    n = (xw[..., 2 * n_h:] + rz[..., :n_h] * hw[..., 2 * n_h:]).tanh()
    return n + rz[..., n_h:] * (h - n)


# -- construction ---------------------------------------------------------------------
def _positive_int(value, name: str, where: str) -> int:
    if not isinstance(value, (numbers.Integral, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{where}: {name} must be positive, got {value}")
    return int(value)


def _mode(kind: str, nonlinearity: str, where: str) -> str:
    if kind != "RNN":
        return kind
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{where}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _uniform(shape, bound: float, dtype) -> Parameter:
    return Parameter(generator().uniform(-bound, bound, shape).astype(dtype))


def _dtype(device, dtype, where: str):
    if device is not None:
        check_device(device, where)
    return get_default_dtype() if dtype is None else as_dtype(dtype, where)


def _input(x, input_size: int, ndims: tuple, where: str, shape_text: str) -> Tensor:
    x = x if type(x) is Tensor else as_tensor(x, where)
    if x.ndim not in ndims or x.shape[-1] != input_size:
        raise ShapeError(f"{where}: input must have shape {shape_text} with H_in = "
                         f"input_size = {input_size}, got {x.shape}")
    return x


def _state(state, expected: tuple, name: str, where: str) -> Tensor:
    state = state if type(state) is Tensor else as_tensor(state, where)
    if state.shape != expected:
        raise ShapeError(f"{where}: {name} must have shape {expected}, got {state.shape}")
    return state


# -- cells ----------------------------------------------------------------------------
class _CellBase(Module):
    def __init__(self, kind, input_size, hidden_size, bias, nonlinearity, device, dtype):
        super().__init__()
        self.input_size = _positive_int(input_size, "input_size", kind + "Cell")
        self.hidden_size = _positive_int(hidden_size, "hidden_size", kind + "Cell")
        self.bias = bool(bias)
        self._mode = _mode(kind, nonlinearity, kind + "Cell")
        dtype = _dtype(device, dtype, kind + "Cell")
        rows, bound = _GATES[self._mode] * self.hidden_size, 1.0 / math.sqrt(self.hidden_size)
        self.weight_ih = _uniform((rows, self.input_size), bound, dtype)
        self.weight_hh = _uniform((rows, self.hidden_size), bound, dtype)
        self.bias_ih = _uniform(rows, bound, dtype) if bias else None
        self.bias_hh = _uniform(rows, bound, dtype) if bias else None

    def _prepare(self, input, states, names):
        """The input as (N, H_in) and each state as (N, hidden); `unbatched` to undo it."""
        where = type(self).__name__
        x = _input(input, self.input_size, (1, 2), where, "(N, H_in) or unbatched (H_in,)")
        unbatched = x.ndim == 1
        if unbatched:
            x = x.reshape(1, self.input_size)
        expected = (x.shape[0], self.hidden_size)
        shown = (self.hidden_size,) if unbatched else expected
        out = []
        for state, name in zip(states, names):
            if state is None:
                out.append(_wrap(zeros(expected, x.dtype)))
            else:
                out.append(_state(state, shown, name, where).reshape(expected))
        return x, out, unbatched

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self._mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        return text


class RNNCell(_CellBase):
    """One Elman step, h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).

    >>> RNNCell(3, 5)(np.ones((2, 3))).shape
    (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, device=None, dtype=None):
        super().__init__("RNN", input_size, hidden_size, bias, nonlinearity, device, dtype)

    @property
    def nonlinearity(self) -> str:
        return "relu" if self._mode == "RNN_RELU" else "tanh"

    def forward(self, input, hx=None) -> Tensor:
        x, (h,), unbatched = self._prepare(input, (hx,), ("hx",))
        h = rnn_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                     self.bias_hh, self._mode == "RNN_RELU")
        return h.reshape(self.hidden_size) if unbatched else h


class LSTMCell(_CellBase):
    """One LSTM step: (h', c') from input (N, H_in) and hx = (h, c), each (N, hidden).

    >>> [t.shape for t in LSTMCell(3, 5)(np.ones((2, 3)))]
    [(2, 5), (2, 5)]
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, None, device, dtype)

    def forward(self, input, hx=None) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a pair (h_0, c_0), got {type(hx).__name__}")
        x, (h, c), unbatched = self._prepare(input, hx or (None, None), ("h_0", "c_0"))
        hc = lstm_cell(x, stack((h.T, c.T), 0), self.weight_ih, self.weight_hh,
                       self.bias_ih, self.bias_hh)
        h, c = hc[0].T, hc[1].T
        if unbatched:
            return h.reshape(self.hidden_size), c.reshape(self.hidden_size)
        return h, c


class GRUCell(_CellBase):
    """One GRU step, h' = (1 - z) n + z h (gates r, z, n in PyTorch's order).

    >>> GRUCell(3, 5)(np.ones(3)).shape
    (5,)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, None, device, dtype)

    def forward(self, input, hx=None) -> Tensor:
        x, (h,), unbatched = self._prepare(input, (hx,), ("hx",))
        h = gru_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h.reshape(self.hidden_size) if unbatched else h


# -- sequence layers --------------------------------------------------------------------
class _RNNBase(Module):
    def __init__(self, kind, input_size, hidden_size, num_layers, nonlinearity, bias,
                 batch_first, dropout, bidirectional, device, dtype):
        super().__init__()
        self._mode = _mode(kind, nonlinearity, kind)
        self._kind = kind
        self.input_size = _positive_int(input_size, "input_size", kind)
        self.hidden_size = _positive_int(hidden_size, "hidden_size", kind)
        self.num_layers = _positive_int(num_layers, "num_layers", kind)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0 <= dropout <= 1:
            raise ValueError(f"{kind}: dropout is the probability of zeroing an element "
                             f"between layers and must lie in [0, 1], got {dropout!r}")
        if dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{kind}: dropout={dropout} acts between layers only, and "
                          f"num_layers=1 has none, so it does nothing", UserWarning,
                          stacklevel=3)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        dtype = _dtype(device, dtype, kind)
        rows, bound = _GATES[self._mode] * self.hidden_size, 1.0 / math.sqrt(self.hidden_size)
        directions = 2 if self.bidirectional else 1
        # Registered in PyTorch's order, so parameters() and state_dict() line up with it.
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                name = f"l{layer}{suffix}"
                setattr(self, "weight_ih_" + name, _uniform((rows, width), bound, dtype))
                setattr(self, "weight_hh_" + name,
                        _uniform((rows, self.hidden_size), bound, dtype))
                if bias:
                    setattr(self, "bias_ih_" + name, _uniform(rows, bound, dtype))
                    setattr(self, "bias_hh_" + name, _uniform(rows, bound, dtype))

    def _weights(self, layer: int, reverse: bool):
        name = f"l{layer}{'_reverse' if reverse else ''}"
        get = lambda kind: getattr(self, f"{kind}_{name}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _prepare(self, input, states, names):
        """The input as (L, N, H_in), each state as (layers * directions, N, hidden)."""
        where = self._kind
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        x = _input(input, self.input_size, (2, 3), where, f"{layout} or unbatched (L, H_in)")
        if x.shape[1 if self.batch_first and x.ndim == 3 else 0] == 0:
            raise ValueError(f"{where}: the sequence is empty (length 0) in an input of "
                             f"shape {x.shape}; there is no step to run")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, self.input_size)
        elif self.batch_first:
            x = x.swapaxes(0, 1)
        stacked = self.num_layers * (2 if self.bidirectional else 1)
        expected = (stacked, x.shape[1], self.hidden_size)
        shown = (stacked, self.hidden_size) if unbatched else expected
        out = []
        for state, name in zip(states, names):
            if state is None:
                out.append(None)
            else:
                out.append(_state(state, shown, name, where).reshape(expected))
        return x, out, unbatched

    def _run(self, x: Tensor, states: list):
        """Run every layer and direction over x (L, N, H_in); states[k] is None (zeros)
        or the (layers * directions, N, hidden) initial state. Returns the last layer's
        output (L, N, directions * hidden) and the final states, stacked like the input's."""
        steps, batch, _ = x.shape
        directions = 2 if self.bidirectional else 1
        lstm, n = self._mode == "LSTM", self.hidden_size
        # A one-directional LSTM's output is sliced once from the last layer's stacked
        # [h^T; c^T] steps: one scatter in backward instead of one per step.
        hc_output = lstm and directions == 1
        finals = [[] for _ in states]
        # Each layer reads its input one step at a time: x[t] for the first, the previous
        # layer's per-step outputs (before stacking) for the others. Slicing one step out
        # of a whole-sequence tensor inside the loop would make backward scatter a
        # sequence-sized gradient per step (quadratic in L); x[t] is the one such slice,
        # and it costs nothing when the input needs no gradient.
        inputs = [x[t] for t in range(steps)]
        recording = is_grad_enabled()
        if recording:  # names for the pictures, where the slices are new nodes
            for t, step_input in enumerate(inputs):
                step_input.label = f"x[{t}]"
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                inputs = [dropout(s, self.dropout, True) for s in inputs]
            outputs = []
            whole_hc = hc_output and layer == self.num_layers - 1
            for reverse in (False, True)[:directions]:
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, reverse)
                k = layer * directions + reverse
                if lstm and states[0] is None and states[1] is None:
                    carry = [_wrap(zeros((2, n, batch), x.dtype))]  # [h^T; c^T]
                    carry[0].label = "initial hc"
                else:
                    carry = [_wrap(zeros((batch, n), x.dtype)) if s is None else s[k]
                             for s in states]
                    if lstm:  # the cell carries [h^T; c^T] as one tensor
                        carry = [stack([s.T for s in carry], 0)]
                    if states[0] is None and not lstm:
                        carry[0].label = "initial h"
                seq = [None] * steps
                for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
                    # One scope per step, so pictures can collapse the unrolled graph.
                    opened = open_scope(self._step_name(t, layer, reverse)) \
                        if recording else None
                    try:
                        carry, seq[t] = self._step(inputs[t], carry, w_ih, w_hh, b_ih, b_hh)
                    finally:
                        if opened is not None:
                            close_scope(opened)
                if lstm:  # seq holds [h^T; c^T] per step: the output is h
                    carry = [carry[0][0].T, carry[0][1].T]
                    if not whole_hc:
                        seq = [s[0].T for s in seq]
                outputs.append(seq)
                for final, state in zip(finals, carry):
                    final.append(state)
            inputs = outputs[0] if directions == 1 else [
                concatenate(pair, axis=-1) for pair in zip(*outputs)]
        output = stack(inputs, 0)
        if whole_hc:  # (L, 2, hidden, N) -> h as (L, N, hidden)
            output = output[:, 0].swapaxes(1, 2)
        return output, [stack(f, 0) for f in finals]

    def _step_name(self, t: int, layer: int, reverse: bool) -> str:
        """'h[3] = step 3' (its output, then where it is): the name of step t's scope."""
        where = f"step {t}" + (f", layer {layer}" if self.num_layers > 1 else "") \
            + (", reverse" if reverse else "")
        return f"{'hc' if self._mode == 'LSTM' else 'h'}[{t}] = {where}"

    def _step(self, x, carry, w_ih, w_hh, b_ih, b_hh) -> tuple[list, Tensor]:
        """One step: the next carry and the step's output (h; [h^T; c^T] for the LSTM)."""
        if self._mode == "LSTM":
            hc = lstm_cell(x, carry[0], w_ih, w_hh, b_ih, b_hh)
            return [hc], hc
        xw = linear(x, w_ih, b_ih)
        if self._mode == "GRU":
            h = gru_step(xw, carry[0], w_hh, b_hh)
        else:
            h = rnn_step(xw, carry[0], w_hh, b_hh, self._mode == "RNN_RELU")
        return [h], h

    def _finish(self, output: Tensor, finals: list, unbatched: bool):
        if unbatched:
            output = output.reshape(output.shape[0], output.shape[2])
            finals = [f.reshape(f.shape[0], f.shape[2]) for f in finals]
        elif self.batch_first:
            output = output.swapaxes(0, 1)
        return output, finals

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self._mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


class RNN(_RNNBase):
    """Elman RNN over a sequence: returns (output, h_n), output (L, N, D*hidden) (or
    batch_first (N, L, D*hidden)), h_n (num_layers*D, N, hidden), D = 2 if bidirectional.

    >>> out, h = RNN(3, 5, num_layers=2)(np.ones((7, 2, 3)))
    >>> out.shape, h.shape
    ((7, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *, device=None,
                 dtype=None):
        super().__init__("RNN", input_size, hidden_size, num_layers, nonlinearity, bias,
                         batch_first, dropout, bidirectional, device, dtype)

    @property
    def nonlinearity(self) -> str:
        return "relu" if self._mode == "RNN_RELU" else "tanh"

    def forward(self, input, hx=None) -> tuple[Tensor, Tensor]:
        x, states, unbatched = self._prepare(input, (hx,), ("hx",))
        output, finals = self._finish(*self._run(x, states), unbatched)
        return output, finals[0]


class LSTM(_RNNBase):
    """LSTM over a sequence: returns (output, (h_n, c_n)); shapes as for `RNN`.

    >>> out, (h, c) = LSTM(3, 5, batch_first=True)(np.ones((2, 7, 3)))
    >>> out.shape, h.shape, c.shape
    ((2, 7, 5), (1, 2, 5), (1, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, *, device=None,
                 dtype=None):
        if proj_size:
            raise NotImplementedError("LSTM: proj_size (projected hidden states) is not "
                                      "supported; use proj_size=0")
        super().__init__("LSTM", input_size, hidden_size, num_layers, None, bias,
                         batch_first, dropout, bidirectional, device, dtype)

    def forward(self, input, hx=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a pair (h_0, c_0), got {type(hx).__name__}")
        x, states, unbatched = self._prepare(input, hx or (None, None), ("h_0", "c_0"))
        output, (h, c) = self._finish(*self._run(x, states), unbatched)
        return output, (h, c)


class GRU(_RNNBase):
    """GRU over a sequence: returns (output, h_n); shapes as for `RNN`.

    >>> out, h = GRU(3, 5, bidirectional=True)(np.ones((7, 3)))
    >>> out.shape, h.shape
    ((7, 10), (2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, None, bias,
                         batch_first, dropout, bidirectional, device, dtype)

    def forward(self, input, hx=None) -> tuple[Tensor, Tensor]:
        x, states, unbatched = self._prepare(input, (hx,), ("hx",))
        output, finals = self._finish(*self._run(x, states), unbatched)
        return output, finals[0]
