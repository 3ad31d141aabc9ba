"""The table of primitive operations: each op's forward, its vjp and its math, together.

Every primitive is registered with `@primitive(name, math, forward, scalar, **facts)`
right above its vector-Jacobian product. `forward` is the numpy function a `Tensor` runs;
`scalar` (where given) is the plain-float function a `Value` runs; the facts (see `Op`)
say how to draw it and what its vjp reads. The decorated function is the vjp:

    vjp(g, out, *saved, [need=mask,] **options) -> one gradient per input

`saved` are the inputs' arrays (none at all for an op that reads nothing of them, or
None each where such an op has residuals) followed by the residuals its forward returned. The rule is written only with operators
and the few helpers below, which work on raw ndarrays, on Python floats and on graph
nodes alike. The engine calls it on raw arrays for a plain `backward()` (no graph, no
overhead) and on the nodes themselves (no residuals) when `create_graph=True`, so the
same rule yields differentiable gradients to any order.

Gradients may come back with a broadcast shape; the engine reduces them to each
input's shape in one place (`sum_to`), so no rule here handles broadcasting. A rule may
return its incoming `g` itself (the engine copies it before a `.grad` keeps it), a view
of it, or new arrays, but never one new array for two inputs.
"""

from __future__ import annotations

import inspect
import math
import operator

import numpy as np

from .engine import Node


class Op:
    """One primitive and everything the library knows about it.

    name, math    its name and a one-line statement of its forward and derivatives
    forward       the numpy function a Tensor runs; `scalar` the float function a Value runs
    vjp           vjp(g, out, *saved, [need=mask,] **options) -> one gradient per input
    symbol        how pictures name it ('+', '@', 'tanh'); `{c}` fills in option c
    micrograd     the string `Value._op` reports: micrograd's own where micrograd has the
                  op ('+', '*', '**{c}', 'ReLU'), else a short name; defaults to symbol
    elementwise   d(out)/d(input) is diagonal where the shapes agree
    commutative   the inputs can be swapped (pictures then leave edges unlabelled)
    reads         what the vjp reads of the inputs: "values", "shapes" or "nothing"
                  ("nothing": a node saves no input; "shapes": in-place changes of an
                  input do not matter to the gradient)
    reads_output  whether the vjp reads `out` (so an in-place change of it matters)
    residuals     the forward returns (out, residuals): arrays the vjp reads instead of
                  recomputing them, saved on the node after the inputs
    view          the output may share memory with the first input (reshape, x[i]...)
    internal      options that are not shown in pictures
    defaults      options pictures leave out while they hold their default: option -> the
                  value every entry of the default equals (a number, a flag, None), or the
                  name of the option it defaults to (a pool's stride is its kernel size)
    buffers       options kept only for backward: a releasing backward drops their arrays
    scatter_add   for an op whose vjp spreads g into zeros of the input's shape (x[index]):
                  scatter_add(total, g, **options) adds that gradient into `total`, an
                  array of the input's shape, in place. The engine uses it to add each
                  use's gradient where it belongs, so taking x[t] for every t of a loop
                  costs one input-sized array in backward instead of one per t
    masked        (from the vjp's signature) the engine passes need=, which inputs want
                  a gradient, so the rule can skip the others
    code          the scalar forward and the vjp as Python expressions over {x0}, {x1}...
                  (inputs), {out}, {g} and the options ({c}): `compile` writes them into
                  its straight-line replay of a Value step instead of calling `scalar` and
                  `vjp` (tests check they compute the very same floats); a function of the
                  number of inputs where that varies (affine)
    kernel        the forward and the vjps as numpy expressions over arrays (placeholders as
                  in `code`), for ops whose `code` is for floats only or absent (matmul);
                  `compile` lowers these, or `code` where numpy runs it as written, into
                  ufunc calls writing into kept buffers, where on the traced shapes they
                  compute the very same arrays as `forward` and `vjp` (compile_lower.py)
    """

    __slots__ = ("name", "math", "forward", "scalar", "vjp", "symbol", "micrograd",
                 "elementwise", "commutative", "reads", "reads_output", "residuals", "view",
                 "internal", "defaults", "buffers", "scatter_add", "masked", "code", "kernel")

    def __init__(self, name, math, forward, vjp, scalar=None, *, symbol=None, micrograd=None,
                 elementwise=False, commutative=False, reads="values", reads_output=False,
                 residuals=False, view=False, internal=(), defaults=None, buffers=(),
                 scatter_add=None, code=None, kernel=None):
        if reads not in ("values", "shapes", "nothing"):
            raise ValueError(f"Op {name}: reads must be 'values', 'shapes' or 'nothing'")
        self.name = name
        self.math = math
        self.forward = forward
        self.vjp = vjp
        self.scalar = scalar
        self.symbol = symbol or name
        self.micrograd = micrograd or self.symbol
        self.elementwise = elementwise
        self.commutative = commutative
        self.reads = reads
        self.reads_output = reads_output
        self.residuals = residuals
        self.view = view
        self.internal = frozenset(internal)
        self.defaults = dict(defaults or {})
        self.buffers = tuple(buffers)
        self.scatter_add = scatter_add
        self.masked = "need" in inspect.signature(vjp).parameters
        self.code = code
        self.kernel = kernel

    @property
    def backward_name(self) -> str:
        """The name `grad_fn` gives nodes of this op: 'mul' -> 'MulBackward0', as PyTorch
        spells its own (where our op has PyTorch's name)."""
        return "".join(w.capitalize() for w in self.name.split("_")) + "Backward0"

    @property
    def reads_inputs(self) -> bool:
        """Whether a node keeps its inputs' arrays for the vjp."""
        return self.reads != "nothing"

    def __repr__(self) -> str:
        return f"Op({self.name!r}: {self.math})"

    def __reduce__(self):
        # One object per primitive: copies and pickles of a graph refer to it by name.
        return _op_named, (self.name,)


OPS: dict[str, Op] = {}


def _op_named(name: str) -> Op:
    return OPS[name]


def primitive(name: str, math: str, forward, scalar=None, **facts):
    """Register the decorated vjp together with its forward and `facts` (see `Op`)."""

    def register(vjp) -> Op:
        op = Op(name, math, forward, vjp, scalar, **facts)
        OPS[name] = op
        return op

    return register


# ---------------------------------------------------------------------------
# Helpers a vjp may use: each works on ndarrays/floats and on graph nodes.

def raw(x):
    """The numbers behind `x`: a node's data, or `x` itself. For masks and counts,
    which are constants of the derivative (their own derivative is zero a.e.)."""
    return x.data if isinstance(x, Node) else x


def exp(x):
    return x.exp() if isinstance(x, Node) else np.exp(x)


def log(x):
    if isinstance(x, Node):
        return x.log()
    if isinstance(x, float):
        return scalar_log(x)
    return np.log(x)


def sin(x):
    if isinstance(x, Node):
        return x.sin()
    return scalar_sin(x) if isinstance(x, float) else np.sin(x)


def cos(x):
    if isinstance(x, Node):
        return x.cos()
    return scalar_cos(x) if isinstance(x, float) else np.cos(x)


def divide(x, y):
    """x / y, with IEEE results (inf, nan) for plain floats instead of ZeroDivisionError."""
    if type(y) is float and type(x) is float:
        return scalar_div(x, y)
    return x / y


def power(x, y):
    if isinstance(x, Node) or isinstance(y, Node):
        return x ** y
    if type(x) is float:
        return scalar_pow(x, y)
    return np.power(x, y)


def broadcast_to(x, shape):
    if isinstance(x, Node):
        return x._apply(BROADCAST_TO, shape=tuple(shape))
    return np.broadcast_to(x, shape)


def sum_to(x, shape):
    if isinstance(x, Node):
        return x._apply(SUM_TO, shape=tuple(shape))
    return reduce_to_shape(x, shape)


def scatter(g, index, shape):
    """A zero array of `shape` with `g` added at `index` (repeated indices add up)."""
    if isinstance(g, Node):
        return g._apply(SCATTER, index=index, shape=shape)
    return _scatter_forward(g, index=index, shape=shape)


def floor_at(x, lo):
    """max(x, lo), elementwise; on nodes, the gradient passes where x >= lo."""
    return x.clip(lo=lo) if isinstance(x, Node) else np.maximum(x, lo)


def like(mask, x):
    """A boolean or integer mask as numbers of x's dtype, so a float32 rule stays float32."""
    r = raw(x)
    if type(r) is float:
        return float(mask)
    return np.asarray(mask, dtype=r.dtype)


def swap_last(x):
    """Swap the last two axes (the transpose inside a batched matmul)."""
    return x.swapaxes(-1, -2)


def keep_dims(g, shape, axis, keepdims):
    """Give a reduction's gradient back the reduced axes (as size 1) so it broadcasts."""
    if keepdims or axis is None and g.ndim == len(shape):
        return g
    if axis is None:
        return g.reshape((1,) * len(shape))
    axes = normalize_axes(axis, len(shape))
    full = list(g.shape)
    for ax in sorted(axes):
        full.insert(ax, 1)
    return g.reshape(tuple(full))


def normalize_axes(axis, ndim) -> tuple:
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a + ndim if a < 0 else a for a in axes)


def reduce_to_shape(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient down to `shape` (numpy's broadcasting, undone)."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if lead:
        g = g.reshape(shape)
    return g


# ---------------------------------------------------------------------------
# Scalar forwards for `Value`: IEEE results (inf, nan) instead of Python exceptions.

def scalar_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def scalar_log(x: float) -> float:
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def scalar_div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def scalar_pow(a: float, b: float) -> float:
    odd = float(b).is_integer() and b % 2 == 1
    try:
        result = a ** b
    except OverflowError:
        if a < 0 and not float(b).is_integer():
            return math.nan
        return -math.inf if a < 0 and odd else math.inf
    except ZeroDivisionError:  # 0 ** negative: inf, keeping the sign of -0.0 for odd b
        return math.copysign(math.inf, a) if odd else math.inf
    return math.nan if isinstance(result, complex) else result


def scalar_sin(x: float) -> float:
    return math.sin(x) if math.isfinite(x) else math.nan  # (math.sin(inf) raises)


def scalar_cos(x: float) -> float:
    return math.cos(x) if math.isfinite(x) else math.nan


def scalar_sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan


def scalar_tanh(x: float) -> float:
    return math.tanh(x)


def scalar_sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def scalar_relu(x: float) -> float:
    return x if x > 0 else 0.0


def _sigmoid_forward(x):
    # Stable at any magnitude: exp only ever sees -|x|, so it never overflows.
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _power_forward(a, b):
    return np.power(a, b)


# ---------------------------------------------------------------------------
# Elementwise binary ops. `need` (passed by the engine to rules that take it) says which
# inputs want a gradient; a rule may skip the work for the others (and return None there).

# (add and sub read no input: nodes save none, and the vjp accepts and ignores them.)
@primitive("add", "a + b; d/da = 1, d/db = 1", np.add, operator.add,
           symbol="+", elementwise=True, commutative=True, reads="nothing",
           code=("{x0} + {x1}", ("{g}", "{g}")))
def ADD(g, out, *ab):
    return g, g


@primitive("sub", "a - b; d/da = 1, d/db = -1", np.subtract, operator.sub,
           symbol="-", elementwise=True, reads="nothing", code=("{x0} - {x1}", ("{g}", "-{g}")))
def SUB(g, out, *ab, need=(True, True)):
    return g, (-g if need[1] else None)


@primitive("mul", "a * b; d/da = b, d/db = a", np.multiply, operator.mul,
           symbol="*", elementwise=True, commutative=True,
           code=("{x0} * {x1}", ("{g} * {x1}", "{g} * {x0}")))
def MUL(g, out, a, b, need=(True, True)):
    return (g * b if need[0] else None), (g * a if need[1] else None)


@primitive("div", "a / b; d/da = 1/b, d/db = -a/b**2 = -out/b", np.divide, scalar_div,
           symbol="/", elementwise=True, reads_output=True)
def DIV(g, out, a, b, need=(True, True)):
    ga = divide(g, b) if need[0] or need[1] else None
    return (ga if need[0] else None), (-ga * out if need[1] else None)


@primitive("pow", "a ** b; d/da = b * a**(b-1), d/db = out * log(a) (0 where a = 0 <= b)",
           _power_forward, scalar_pow, symbol="**", elementwise=True, reads_output=True)
def POW(g, out, a, b, need=(True, True)):
    ga = None
    if need[0]:
        # At a = 0 with b = 0, b * a**(b-1) is 0 * inf; a**0 is constant, so 0 (as in
        # PyTorch): shifting a to 1 there makes the power finite. The shift is a constant.
        flat = (raw(a) == 0) & (raw(b) == 0)
        ga = g * b * power(a + like(flat, a), b - 1)
    gb = None
    if need[1]:
        # At a = 0 with b >= 0, out * log(a) is 0 * -inf; its limit (and PyTorch's value)
        # is 0, which log(a + 1) = 0 there gives. The added 1 is a constant.
        at_zero = (raw(a) == 0) & (raw(b) >= 0)
        gb = g * out * log(a + like(at_zero, a))
    return ga, gb


@primitive("maximum", "max(a, b); d/da = [a > b] + [a == b]/2, d/db likewise", np.maximum, max,
           elementwise=True, commutative=True)
def MAXIMUM(g, out, a, b):
    ra, rb = raw(a), raw(b)
    wa = like(ra > rb, g) + like(ra == rb, g) * 0.5
    return g * wa, g * (1 - wa)


@primitive("minimum", "min(a, b); d/da = [a < b] + [a == b]/2, d/db likewise", np.minimum, min,
           elementwise=True, commutative=True)
def MINIMUM(g, out, a, b):
    ra, rb = raw(a), raw(b)
    wa = like(ra < rb, g) + like(ra == rb, g) * 0.5
    return g * wa, g * (1 - wa)


@primitive("matmul", "a @ b; d/da = g @ b^T, d/db = a^T @ g (1-D operands as numpy treats them)",
           np.matmul, symbol="@", kernel=(None, ("{g} @ {x1}.T", "{x0}.T @ {g}")))
def MATMUL(g, out, a, b, need=(True, True)):
    if a.ndim == 2 and b.ndim == 2:  # the common case, without the general bookkeeping
        return (g @ b.T if need[0] else None), (a.T @ g if need[1] else None)
    if a.ndim == 1 and b.ndim == 1:
        return (g * b if need[0] else None), (g * a if need[1] else None)
    # Lift 1-D operands to matrices, as numpy's matmul does, then drop the added axis.
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = g2.reshape(g2.shape[:-1] + (1, g2.shape[-1]))
    if b.ndim == 1:
        g2 = g2.reshape(g2.shape + (1,))
    ga = gb = None
    if need[0]:
        ga = g2 @ swap_last(b2)
        if a.ndim == 1:
            ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:])
    if need[1]:
        gb = swap_last(a2) @ g2
        if b.ndim == 1:
            gb = gb.reshape(gb.shape[:-1])
    return ga, gb


# ---------------------------------------------------------------------------
# Elementwise unary ops.

@primitive("neg", "-x; d/dx = -1", np.negative, operator.neg,
           symbol="neg", elementwise=True, reads="nothing", code=("-{x0}", ("-{g}",)))
def NEG(g, out, *x):
    return (-g,)


@primitive("exp", "exp(x); d/dx = exp(x) = out", np.exp, scalar_exp, elementwise=True,
           reads_output=True, code=(None, ("{g} * {out}",)))
def EXP(g, out, x):
    return (g * out,)


@primitive("log", "log(x); d/dx = 1/x", np.log, scalar_log, elementwise=True)
def LOG(g, out, x):
    return (divide(g, x),)


@primitive("sqrt", "sqrt(x); d/dx = 1 / (2 sqrt(x)) = 1 / (2 out)", np.sqrt, scalar_sqrt,
           elementwise=True, reads_output=True)
def SQRT(g, out, x):
    return (divide(g, 2 * out),)


@primitive("sin", "sin(x); d/dx = cos(x)", np.sin, scalar_sin, elementwise=True)
def SIN(g, out, x):
    return (g * cos(x),)


@primitive("cos", "cos(x); d/dx = -sin(x)", np.cos, scalar_cos, elementwise=True)
def COS(g, out, x):
    return (-(g * sin(x)),)


@primitive("clone", "a copy of x; d/dx = 1", np.copy, elementwise=True, reads="nothing")
def CLONE(g, out, *x):
    return (g,)


@primitive("abs", "|x|; d/dx = sign(x), with 0 at x = 0", np.abs, abs, elementwise=True)
def ABS(g, out, x):
    return (g * like(np.sign(raw(x)), g),)


@primitive("tanh", "tanh(x); d/dx = 1 - tanh(x)**2 = 1 - out**2", np.tanh, scalar_tanh,
           elementwise=True, reads_output=True,
           code=("math.tanh({x0})", ("{g} * (1 - {out} * {out})",)))
def TANH(g, out, x):
    return (g * (1 - out * out),)


@primitive("sigmoid", "1 / (1 + exp(-x)); d/dx = out * (1 - out)", _sigmoid_forward,
           scalar_sigmoid, elementwise=True, reads_output=True,
           code=(None, ("{g} * {out} * (1 - {out})",)))
def SIGMOID(g, out, x):
    return (g * out * (1 - out),)


@primitive("relu", "max(0, x); d/dx = [x > 0] (0 at the kink)", lambda x: np.maximum(x, 0),
           scalar_relu, micrograd="ReLU", elementwise=True,
           code=("({x0} if {x0} > 0 else 0.0)", ("{g} * ({x0} > 0)",)),
           kernel=("np.maximum({x0}, 0)", ("{g} * ({x0} > 0)",)))
def RELU(g, out, x):
    return (g * (raw(x) > 0),)  # a boolean mask keeps g's dtype


@primitive("clip", "clip(x, lo, hi); d/dx = [lo <= x <= hi]",
           lambda x, lo, hi: np.clip(x, lo, hi), elementwise=True)
def CLIP(g, out, x, lo, hi):
    rx = raw(x)
    inside = np.ones(rx.shape, dtype=bool)
    if lo is not None:
        inside &= rx >= lo
    if hi is not None:
        inside &= rx <= hi
    return (g * inside,)


# A number operand (x + 2, 0.5 * x) is kept on the node as an option, not wrapped in a
# leaf node: the graph gets one node per operation instead of two, and backward has
# no constant leaves to visit. (x - c is x + (-c), exact in IEEE arithmetic.)

# Their vjps read no input (a Value saves none; x is accepted but unused).
@primitive("add_const", "x + c for a constant c; d/dx = 1", lambda x, c: x + c, operator.add,
           symbol="+ {c}", micrograd="+", elementwise=True, reads="nothing",
           code=("{x0} + {c}", ("{g}",)))
def ADD_CONST(g, out, *x, c):
    return (g,)


@primitive("mul_const", "x * c for a constant c; d/dx = c", lambda x, c: x * c, operator.mul,
           symbol="* {c}", micrograd="*", elementwise=True, reads="nothing",
           code=("{x0} * {c}", ("{g} * {c}",)))
def MUL_CONST(g, out, *x, c):
    return (g * c,)


def _affine_forward(b, *wx, n):
    s = b
    for i in range(n):
        s = s + wx[i] * wx[n + i]
    return s


# A neuron's pre-activation as one node instead of 2n (n products, n sums): fused
# because it is measurably faster on scalar graphs (benchmarks/bench_core.py, moons).
# Summed left to right from b, the order of micrograd's sum(..., b).
def _affine_code(inputs: int):
    n = (inputs - 1) // 2  # (b, w_1..w_n, x_1..x_n)
    w, x = range(1, n + 1), range(n + 1, 2 * n + 1)
    forward = "{x0}" + "".join(f" + {{x{i}}} * {{x{j}}}" for i, j in zip(w, x))
    return forward, ("{g}",) + tuple(f"{{g}} * {{x{j}}}" for j in x) + tuple(
        f"{{g}} * {{x{i}}}" for i in w)


@primitive("affine", "b + sum_i w_i * x_i (inputs b, w_1..w_n, x_1..x_n); d/db = 1, "
           "d/dw_i = x_i, d/dx_i = w_i", _affine_forward, _affine_forward,
           symbol="b + Σ w·x (n={n})", micrograd="affine", code=_affine_code)
def AFFINE(g, out, b, *wx, n):
    return (g,) + tuple(g * x for x in wx[n:]) + tuple(g * w for w in wx[:n])


@primitive("pow_const", "x ** c for a constant c; d/dx = c * x**(c-1)",
           lambda x, c: np.power(x, c), scalar_pow, symbol="** {c}", micrograd="**{c}",
           elementwise=True)
def POW_CONST(g, out, x, c):
    if c == 2:  # the common square: skip a power
        return (g * 2 * x,)
    if c == 0:  # constant 1: zero gradient, even at x = 0 where 0 * 0**-1 would be nan
        return (g * 0,)
    return (g * c * power(x, c - 1),)


def _where_forward(a, b, cond):
    return np.where(cond, a, b)


@primitive("where", "cond ? a : b; d/da = [cond], d/db = [not cond]", _where_forward,
           elementwise=True, reads="nothing", internal=("cond",), buffers=("cond",))
def WHERE(g, out, *ab, cond):
    return g * cond, g * ~cond


# ---------------------------------------------------------------------------
# Reductions. Options: axis (None, int or tuple; negatives allowed) and keepdims.
_REDUCED = {"axis": None, "keepdims": False}  # (pictures say neither while at these)

@primitive("sum", "sum(x, axis); d/dx = 1 for every summed element",
           lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims), reads="shapes",
           defaults=_REDUCED)
def SUM(g, out, x, axis, keepdims):
    return (broadcast_to(keep_dims(g, x.shape, axis, keepdims), x.shape),)


def _count(shape, axis) -> int:
    if axis is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in normalize_axes(axis, len(shape)))


@primitive("mean", "mean(x, axis); d/dx = 1/n for each of the n averaged elements",
           lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), reads="shapes",
           defaults=_REDUCED)
def MEAN(g, out, x, axis, keepdims):
    n = _count(x.shape, axis)
    return (broadcast_to(keep_dims(g, x.shape, axis, keepdims) / n, x.shape),)


def _extreme_vjp(g, out, x, axis, keepdims):
    # The gradient goes to the elements equal to the extreme, split evenly among ties.
    rx, rout = raw(x), raw(out)
    hit = rx == keep_dims(rout, rx.shape, axis, keepdims)
    share = like(hit, g) / like(hit.sum(axis=axis, keepdims=True), g)
    return (keep_dims(g, rx.shape, axis, keepdims) * share,)


@primitive("max", "max(x, axis); d/dx = 1/k at each of the k maxima, 0 elsewhere",
           lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
           reads_output=True, defaults=_REDUCED)
def MAX(g, out, x, axis, keepdims):
    return _extreme_vjp(g, out, x, axis, keepdims)


@primitive("min", "min(x, axis); d/dx = 1/k at each of the k minima, 0 elsewhere",
           lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
           reads_output=True, defaults=_REDUCED)
def MIN(g, out, x, axis, keepdims):
    return _extreme_vjp(g, out, x, axis, keepdims)


def _logsumexp_forward(x, axis, keepdims):
    # Shift by the max so exp never overflows; an all -inf slice stays -inf.
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


# Fused rather than composed from exp/sum/log: the max shift keeps it finite at
# +-1000, and its vjp reuses `out` (softmax = exp(x - out)) instead of recomputing.
@primitive("logsumexp", "log(sum(exp(x), axis)); d/dx = softmax(x) = exp(x - out)",
           _logsumexp_forward, reads_output=True, defaults=_REDUCED)
def LOGSUMEXP(g, out, x, axis, keepdims):
    shape = raw(x).shape
    return (keep_dims(g, shape, axis, keepdims) * exp(x - keep_dims(out, shape, axis, keepdims)),)


def _softmax_forward(x, axis):
    z = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return z / np.sum(z, axis=axis, keepdims=True)


@primitive("softmax", "exp(x) / sum(exp(x), axis); vjp = out * (g - sum(g * out, axis))",
           _softmax_forward, reads="nothing", reads_output=True)
def SOFTMAX(g, out, *x, axis):
    return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)


def _log_softmax_forward(x, axis):
    return x - _logsumexp_forward(x, axis, True)


@primitive("log_softmax", "x - logsumexp(x, axis); vjp = g - exp(out) * sum(g, axis)",
           _log_softmax_forward, reads="nothing", reads_output=True)
def LOG_SOFTMAX(g, out, *x, axis):
    return (g - exp(out) * g.sum(axis=axis, keepdims=True),)


# ---------------------------------------------------------------------------
# Fused ops for the nn layer, kept here so the op-table tests cover them. Fused
# because it is measurably faster (benchmarks/bench_digits.py): a Linear layer is one
# node instead of three (transpose, matmul, add) and writes one array instead of two;
# the cross-entropy is one node instead of three (log_softmax, product, sum).

def _linear_forward(x, w, *b):
    out = x @ w.T
    if b:
        if b[0].dtype is out.dtype or out.dtype == np.result_type(out, b[0]):
            out += b[0]  # in place: the layer's output is the only new array
        else:
            out = out + b[0]
    return out


def _linear_kernel(inputs: int):
    bias = inputs == 3
    return ("{x0} @ {x1}.T" + (" + {x2}" if bias else ""),
            ("{g} @ {x1}", "{g}.T @ {x0}") + (("{g}.sum(axis=0)",) if bias else ()))


@primitive("linear", "x @ w.T + b for rows x of shape (N, in); d/dx = g @ w, "
           "d/dw = g.T @ x, d/db = sum over rows of g", _linear_forward, symbol="linear",
           kernel=_linear_kernel)
def LINEAR(g, out, x, w, *b, need=(True, True, True)):
    gx = g @ w if need[0] else None
    gw = g.T @ x if need[1] else None
    return (gx, gw) + ((g.sum(axis=0) if need[2] else None,) if b else ())


def _log_softmax_rows(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


def _weighted_nll_forward(x, coef, rowsum=None):
    log_p = _log_softmax_rows(x)
    total = np.vdot(log_p, coef)
    if not math.isfinite(total):
        # Classes with zero weight take no part, even at log p = -inf (a masked logit),
        # where -inf * 0 would make the whole loss nan.
        total = np.vdot(np.where(coef != 0, log_p, 0), coef)
    # log_p is the residual: the vjp's softmax is exp(log_p), no second pass over x
    return np.asarray(-total, dtype=x.dtype), (log_p,)


@primitive("weighted_nll", "-sum(coef * log_softmax(x, axis=1)) over coef != 0, coef constant; "
           "d/dx = softmax(x) * rowsum(coef) - coef (rowsum: given by the caller who knows "
           "it, else computed)", _weighted_nll_forward, reads="nothing", residuals=True,
           symbol="cross-entropy", internal=("coef", "rowsum"), buffers=("coef", "rowsum"))
def WEIGHTED_NLL(g, out, x, log_p=None, *, coef, rowsum=None):
    # x is None in a plain backward (log_p is saved instead); with create_graph, or
    # computed on the side after release, x is there and log_p is not.
    if rowsum is None:
        rowsum = coef.sum(axis=1, keepdims=True)
    if log_p is None:
        p = x.softmax(axis=1) if isinstance(x, Node) else _softmax_forward(x, 1)
        return ((p * rowsum - coef) * g,)
    p = np.exp(log_p)  # the residual stays as it is: a retained graph reads it again
    p *= rowsum
    p -= coef
    p *= g
    return (p,)


def _bce_forward(p, y):
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), -100)
        log_q = np.maximum(np.log1p(-p), -100)
    return -(y * log_p + (1 - y) * log_q)


# Fused because composing it from clip and log loses the gradient: at p = 0 or 1 (a
# saturated sigmoid) the clip that keeps the loss finite would pass no gradient at
# all, exactly where the prediction is worst. PyTorch's rule instead bounds the
# denominator, as here.
@primitive("binary_cross_entropy", "-(y log p + (1-y) log(1-p)), each log clamped at -100; "
           "d/dp = (p - y) / max(p (1 - p), 1e-12), d/dy = log(1-p) - log(p)", _bce_forward,
           symbol="BCE")
def BINARY_CROSS_ENTROPY(g, out, p, y, need=(True, True)):
    gp = g * (p - y) / floor_at(p * (1 - p), 1e-12) if need[0] else None
    gy = None
    if need[1]:
        with np.errstate(divide="ignore"):
            gy = g * (floor_at(log(1 - p), -100) - floor_at(log(p), -100))
    return gp, gy


# ---------------------------------------------------------------------------
# Shape and indexing.

@primitive("reshape", "reshape(x, shape); the gradient is reshaped back",
           lambda x, shape: np.reshape(x, shape), reads="shapes", view=True)
def RESHAPE(g, out, x, shape):
    return (g.reshape(x.shape),)


@primitive("transpose", "transpose(x, axes); the gradient is transposed by the inverse permutation",
           lambda x, axes: np.transpose(x, axes), reads="nothing", view=True)
def TRANSPOSE(g, out, *x, axes):
    return (g.transpose(tuple(int(i) for i in np.argsort(axes))),)


def _getitem_forward(x, index):
    out = x[index]
    if not isinstance(out, np.ndarray):
        # An all-integer index gives a numpy scalar, a copy; with `...` appended it gives
        # the same element as a 0-d view, so x[0].zero_() changes x, as in PyTorch.
        out = x[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
    return out


def _selects_each_once(index) -> bool:
    """Whether `index` can pick no element twice: basic indexing (ints, slices, None,
    Ellipsis) or one boolean mask. Then assignment scatters; np.add.at, which repeated
    integer indices need, is many times slower."""
    if isinstance(index, np.ndarray):
        return index.dtype == np.bool_
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
               for i in items)


def _add_at(total, g, index):
    """total[index] += g, repeated indices adding up."""
    if _selects_each_once(index):
        total[index] += g
    else:
        np.add.at(total, index, g)


@primitive("getitem", "x[index]; the gradient is scattered back (repeated indices add up)",
           _getitem_forward, reads="shapes", view=True, buffers=("index",),
           scatter_add=_add_at)
def GETITEM(g, out, x, index):
    return (scatter(g, index, raw(x).shape),)


def _scatter_forward(g, index, shape):
    z = np.zeros(shape, dtype=g.dtype)
    _add_at(z, g, index)
    return z


@primitive("scatter", "zeros(shape) with g added at index; vjp = g[index]", _scatter_forward,
           reads="nothing", buffers=("index",))
def SCATTER(g, out, *x, index, shape):
    return (g[index],)


@primitive("broadcast_to", "broadcast x to shape; vjp sums over the broadcast axes",
           lambda x, shape: np.broadcast_to(x, shape), reads="shapes", view=True)
def BROADCAST_TO(g, out, x, shape):
    return (sum_to(g, raw(x).shape),)


@primitive("sum_to", "sum x down to shape (undoes broadcasting); vjp broadcasts back",
           lambda x, shape: reduce_to_shape(x, shape), reads="shapes")
def SUM_TO(g, out, x, shape):
    return (broadcast_to(g, raw(x).shape),)


@primitive("astype", "x converted to another float dtype; the gradient converts back",
           lambda x, dtype: x.astype(dtype), elementwise=True, reads="shapes")
def ASTYPE(g, out, x, dtype):
    return (g._apply(ASTYPE, dtype=raw(x).dtype) if isinstance(g, Node)
            else g.astype(raw(x).dtype),)


def _concatenate_forward(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _slice_along(axis, ndim, start, stop):
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


@primitive("concatenate", "concatenate(xs, axis); each input gets its slice of the gradient",
           _concatenate_forward, reads="shapes")
def CONCATENATE(g, out, *xs, axis):
    ax = axis + g.ndim if axis < 0 else axis
    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[ax]
        grads.append(g[_slice_along(ax, g.ndim, start, stop)])
        start = stop
    return tuple(grads)


def _stack_forward(*xs, axis):
    return np.stack(xs, axis=axis)


@primitive("stack", "stack(xs, axis); input i gets the gradient's i-th entry along axis",
           _stack_forward, reads="shapes")
def STACK(g, out, *xs, axis):
    ax = axis + g.ndim if axis < 0 else axis
    prefix = (slice(None),) * ax
    return tuple(g[prefix + (i,)] for i in range(len(xs)))


__all__ = ["OPS", "Op", "primitive"]

# Op families in files of their own register into OPS with the same decorator.
from . import ops_conv  # noqa: E402,F401
from . import ops_pool  # noqa: E402,F401  (pooling and batch norm)
from . import ops_norm  # noqa: E402,F401  (layer norm)
from . import ops_rnn  # noqa: E402,F401  (the LSTM cell)
