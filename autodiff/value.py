"""`Value`: a scalar that records the operations made on it (micrograd-compatible).

The math and derivatives are the shared primitives of `ops.py` (their `scalar`
forwards); backpropagation is the shared engine. After `backward()` every node of the
graph holds its gradient in `.grad`, as in micrograd.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

from .engine import Node, _mode, creation_counter, run_backward
from .ops import OPS

_new = object.__new__
_next_seq = creation_counter.__next__
ADD, SUB, MUL, DIV, POW, POW_CONST, NEG = (
    OPS[n] for n in ("add", "sub", "mul", "div", "pow", "pow_const", "neg"))
ADD_CONST, MUL_CONST = OPS["add_const"], OPS["mul_const"]
EXP, LOG, TANH, SIGMOID, RELU = (OPS[n] for n in ("exp", "log", "tanh", "sigmoid", "relu"))
AFFINE = OPS["affine"]


def _number(x, where: str) -> float:
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real):
        try:
            return float(x)
        except OverflowError:  # an int beyond float range: IEEE says +-inf
            return math.inf if x > 0 else -math.inf
    if isinstance(x, Node):
        raise TypeError(f"{where}: cannot combine a Value with a {type(x).__name__}")
    raise TypeError(f"{where}: expected a real number or a Value, got {type(x).__name__}")


def _leaf(data: float) -> "Value":
    """A constant operand (a number met in arithmetic) as a leaf Value."""
    return _node(data if type(data) is float else _number(data, "Value"), None, None, None,
                 None)


_OPTIONS: dict = {}


def _options(c: float) -> dict:
    """The options {"c": c} of a constant operand, shared between nodes with the same c.

    add_const and mul_const read no saved operand (their vjps need only c), so with
    these shared dicts (and the input kept bare, see `_parents`) a `y * 1.0001 + 0.001`
    step allocates just its two nodes: a quarter of the objects the cyclic GC used to
    walk while a large scalar graph is built. Zero (its sign matters) and nan (never
    equal to itself) are not shared.
    """
    kw = _OPTIONS.get(c)
    if kw is None:
        kw = {"c": c}
        if c != 0 and c == c:
            if len(_OPTIONS) >= 4096:
                _OPTIONS.clear()
            _OPTIONS[c] = kw
    return kw


def _node(data: float, a, b, op, saved: tuple, kw=None, v=None) -> "Value":
    """A new node (or `v`, being initialised): the one place a Value is made. Its inputs
    are `a` and `b` for a binary op, `a` (b None) for a unary one, a tuple in `a` for
    more, None for a leaf: no tuple of parents is made per node (see `_parents`)."""
    if v is None:
        v = _new(Value)
    v.data = data
    v.grad = 0.0
    v.label = ""
    v._g = v._hooks = None
    v._seq = _next_seq()
    if _mode.enabled:
        v._a = a
        v._b = b
        v._prim = op
        v._saved = saved
        v._kw = kw
    else:
        v._a = v._b = v._prim = v._saved = v._kw = None
    return v


class Value(Node):
    """A scalar node of a computation graph.

    >>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
    >>> c = a * b + a ** 2
    >>> c.backward()
    >>> a.grad, b.grad
    (1.0, 2.0)
    """

    __slots__ = ("data", "grad", "_a", "_b", "_prim", "_saved", "_kw", "label", "_g", "_seq",
                 "_hooks", "__weakref__")
    requires_grad = True  # every Value gets a gradient, as in micrograd
    _retain = True        # ... and keeps it in .grad, intermediates included
    _vc = None            # floats are never changed in place: no version counter

    def __init__(self, data, label: str = ""):
        _node(_number(data, "Value"), None, None, None, None, None, self)
        self.label = label

    def _hook_arg(self, g):
        return g

    def _hook_result(self, result, g):
        if isinstance(g, Node):  # create_graph: the replacement must be a graph node too
            if not isinstance(result, Value):
                raise TypeError(f"hook: with create_graph=True a hook must return a Value "
                                f"or None, got {type(result).__name__}")
            return result
        return _number(result.data if isinstance(result, Value) else result, "hook")

    @property
    def _parents(self) -> tuple:
        """The inputs, in order (the engine's view). A node keeps one or two inputs in
        slots of its own, not in a tuple: a scalar graph then allocates fewer objects
        that the cyclic GC walks while it is built, which is most of the cost of a large
        scalar forward pass (benchmarks/bench_micrograd_demo.py)."""
        a, b = self._a, self._b
        if b is not None:
            return (a, b)
        if a is None:
            return ()
        return a if type(a) is tuple else (a,)

    def __setstate__(self, state) -> None:
        # Older pickles held the inputs as a tuple under `_parents` or `_in`.
        slots = state[1] if isinstance(state, tuple) else state
        if slots and ("_parents" in slots or "_in" in slots):
            slots = dict(slots)
            old = slots.pop("_parents", None) or slots.pop("_in", ())
            old = old if type(old) is tuple else (old,)
            slots["_a"], slots["_b"] = ((None, None) if not old else (old[0], None)
                                        if len(old) == 1 else old if len(old) == 2
                                        else (old, None))
            state = (state[0], slots) if isinstance(state, tuple) else slots
        super().__setstate__(state)

    # -- micrograd compatibility -------------------------------------------------------
    @property
    def _prev(self) -> set:
        """The set of inputs (micrograd's name); `_parents` keeps order and repeats."""
        return set(self._parents)

    @property
    def _op(self) -> str:
        """micrograd's op string: '' for a leaf, '+', '*', '**2' (`**` and the exponent as
        written), 'ReLU', and for ops micrograd lacks a short name ('-', '/', 'exp', 'tanh',
        'neg', ...); the `micrograd` field of the primitive (autodiff/ops.py)."""
        op = self._prim
        if op is None:
            return ""
        text = op.micrograd
        return text.format(**(self._kw or {})) if "{" in text else text

    @property
    def op(self) -> str:
        """The name of the operation that produced this value ('' for a leaf)."""
        return "" if self._prim is None else self._prim.name

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{label})" if isinstance(
            self.grad, float) else f"Value(data={self.data:.6g}{label})"

    # -- graph -------------------------------------------------------------------------
    def _store_grad(self, g) -> None:
        self.grad += g

    def _apply(self, op, *others, **kw) -> "Value":
        inputs = (self,) + others
        data = tuple(v.data for v in inputs)
        a, b = (inputs[0], None) if len(inputs) == 1 else (
            inputs if len(inputs) == 2 else (inputs, None))
        return _node(op.scalar(*data, **kw), a, b, op, data if op.reads_inputs else (),
                     kw or None)

    def backward(self, retain_graph: bool = False) -> None:
        """Add d(self)/d(node) to `.grad` of every node this value was computed from."""
        run_backward((self,), (1.0,), retain_graph=retain_graph)

    # -- arithmetic --------------------------------------------------------------------
    def __add__(self, other):
        if type(other) is Value:
            a, b = self.data, other.data
            return _node(a + b, self, other, ADD, ())
        c = other if type(other) is float else _number(other, "add")
        return _node(self.data + c, self, None, ADD_CONST, (), _OPTIONS.get(c) or _options(c))

    def __mul__(self, other):
        if type(other) is Value:
            a, b = self.data, other.data
            return _node(a * b, self, other, MUL, (a, b))
        c = other if type(other) is float else _number(other, "mul")
        return _node(self.data * c, self, None, MUL_CONST, (), _OPTIONS.get(c) or _options(c))

    def __sub__(self, other):
        if type(other) is Value:
            a, b = self.data, other.data
            return _node(a - b, self, other, SUB, ())
        return self + -_number(other, "sub")

    def __truediv__(self, other):
        if type(other) is not Value:
            other = _leaf(other)
        a, b = self.data, other.data
        return _node(DIV.scalar(a, b), self, other, DIV, (a, b))

    def __pow__(self, other):
        if isinstance(other, Value):
            a, b = self.data, other.data
            return _node(POW.scalar(a, b), self, other, POW, (a, b))
        c = _number(other, "pow")
        if not isinstance(other, float) and c.is_integer():
            c = int(c)  # the exponent as written: '**2' for 2, '**2.0' for 2.0 (as micrograd)
        return _node(POW_CONST.scalar(self.data, c), self, None, POW_CONST, (self.data,),
                     {"c": c})

    def __radd__(self, other): return self + other
    def __rsub__(self, other): return -self + other
    def __rmul__(self, other): return self * other
    def __rtruediv__(self, other): return Value(_number(other, "div")) / self
    def __rpow__(self, other): return Value(_number(other, "pow")) ** self

    def __neg__(self):
        return _node(-self.data, self, None, NEG, ())

    # -- functions ---------------------------------------------------------------------
    def exp(self) -> "Value":
        return _node(EXP.scalar(self.data), self, None, EXP, (self.data,))

    def log(self) -> "Value":
        return _node(LOG.scalar(self.data), self, None, LOG, (self.data,))

    def tanh(self) -> "Value":
        return _node(math.tanh(self.data), self, None, TANH, (self.data,))

    def sigmoid(self) -> "Value":
        return _node(SIGMOID.scalar(self.data), self, None, SIGMOID, (self.data,))

    def relu(self) -> "Value":
        x = self.data
        return _node(x if x > 0 else 0.0, self, None, RELU, (x,))


def affine(bias: Value, weights: Sequence[Value], inputs: Sequence) -> Value:
    """bias + sum_i weights[i] * inputs[i] as one graph node (a neuron's pre-activation).

    The same number as micrograd's `sum((w * x for w, x in zip(weights, inputs)), bias)`,
    with one node instead of 2n; inputs may be numbers or Values.

    >>> w = [Value(2.0), Value(-1.0)]
    >>> y = affine(Value(0.5), w, [3.0, 4.0])
    >>> y.backward(); y.data, w[0].grad
    (2.5, 3.0)
    """
    n = len(weights)
    if len(inputs) != n:
        raise ValueError(f"affine: {n} weights but {len(inputs)} inputs")
    if type(bias) is not Value or any(type(w) is not Value for w in weights):
        raise TypeError("affine: bias and weights must be Values")
    parents = (bias, *weights, *(x if type(x) is Value else _leaf(x) for x in inputs))
    saved = tuple(p.data for p in parents)
    return _node(AFFINE.scalar(*saved, n=n), parents, None, AFFINE, saved, {"n": n})
