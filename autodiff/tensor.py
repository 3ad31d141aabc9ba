"""`Tensor`: a numpy array that records the operations made on it.

Every method here only converts its arguments and calls a primitive from `ops.OPS`;
the math and the derivatives live in `ops.py`, backpropagation in `engine.py`.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from . import ops
from .engine import (
    Node, Version, _changes, _mode, bump_version, creation_counter, run_backward)
from .dtypes import as_dtype, check_device, get_default_dtype
from .errors import ShapeError
from .ops import OPS
from .torch_methods import (
    ElementCount, TorchMethods, ValuesIndices, dim_index, resolve_axis)

_ndarray = np.ndarray
_new = object.__new__
_next_seq = creation_counter.__next__

ADD, SUB, MUL, DIV, POW, MATMUL = (OPS[n] for n in ("add", "sub", "mul", "div", "pow", "matmul"))
POW_CONST, NEG = OPS["pow_const"], OPS["neg"]
ADD_CONST, MUL_CONST = OPS["add_const"], OPS["mul_const"]
_python_number = (float, int)
_comparable = (numbers.Number, np.ndarray, np.generic, list, tuple)


def _weak(c):
    """A Python number as numpy will meet it (weakly typed); an int too large for a
    float64 becomes +-inf, as IEEE arithmetic would give."""
    if type(c) is int and not -2 ** 63 <= c < 2 ** 63:
        try:
            return float(c)
        except OverflowError:
            return np.inf if c > 0 else -np.inf
    return c


def _as_data(data, dtype, where: str) -> np.ndarray:
    """Convert user data to an ndarray: Python numbers and lists become float64, a float
    ndarray keeps its dtype, and anything non-numeric is refused."""
    if isinstance(data, Tensor):
        data = data.data
    from_python = not isinstance(data, (np.ndarray, np.generic))
    try:
        arr = np.array(data, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{where}: cannot make a numeric array from {type(data).__name__} "
                        f"data ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: data must be numeric, got dtype {arr.dtype} "
                        f"from {type(data).__name__}")
    if dtype is None and from_python:
        arr = arr.astype(get_default_dtype())
    return arr


def _wrap(arr) -> "Tensor":
    """A constant (no grad) Tensor around an existing array, without copying."""
    return _node(_new(Tensor), arr, (), None, None, None, False)


def _node(t, data, parents, op, saved, kw, requires_grad: bool, label=None) -> "Tensor":
    """Fill in the fields of a new Tensor: the one place a Tensor node is made (leaves,
    constants and every operation's result). Skips __init__'s checks."""
    t.data = data if type(data) is _ndarray else np.asarray(data)
    t._grad = t._g = t._hooks = t._vc = None
    t.requires_grad = requires_grad
    t._parents = parents
    t._prim = op
    t._saved = saved
    t._kw = kw
    t._retain = op is None  # a leaf keeps .grad; an intermediate, on request
    t.label = label
    t._seq = _next_seq()
    return t


_constant_recorder = None  # autodiff.compile's, while it traces a step


def _derived_constant(fn, *operands, **options) -> "Tensor":
    """fn(operands' values, **options) as a constant Tensor (no gradient): comparisons,
    argmax, any/all, nonzero. The one place such a constant is made from tensors, so a
    compiled step's trace can record it and a replay compute it again."""
    out = _wrap(np.asarray(fn(*[x.data if isinstance(x, Tensor) else x for x in operands],
                              **options)))
    if _constant_recorder is not None:
        _constant_recorder(fn, operands, options, out)
    return out


def _share_version(t: "Tensor", source: "Tensor") -> None:
    """`t` shares memory with `source`: in-place changes of either count for both."""
    vc = source._vc
    if vc is None:
        vc = source._vc = Version()
    t._vc = vc


def _constant(x, like: "Tensor | None", op_name: str) -> "Tensor":
    """A number or array operand as a constant Tensor. A Python number takes the dtype of
    the tensor it meets (so `x * 2` keeps float32), as numpy's weak scalars do."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (numbers.Number, np.bool_)):
        if like is not None and like.data.dtype.kind == "f":
            return _wrap(np.asarray(x, dtype=like.data.dtype))
        return _wrap(np.asarray(x, dtype=np.float64))
    if isinstance(x, (np.ndarray, list, tuple)):
        return _wrap(_as_data(x, None, op_name) if not isinstance(x, np.ndarray) else x)
    if isinstance(x, Node):
        raise TypeError(f"{op_name}: cannot combine a Tensor with a {type(x).__name__}; "
                        "convert it with Tensor(value.data)")
    raise TypeError(f"{op_name}: unsupported operand of type {type(x).__name__}")


def _describe(inputs, kw) -> str:
    parts = [f"shapes {', '.join(str(t.data.shape) for t in inputs)}"]
    dtypes = {str(t.data.dtype) for t in inputs}
    parts.append(f"dtype{'s' if len(dtypes) > 1 else ''} {', '.join(sorted(dtypes))}")
    opts = {k: v for k, v in (kw or {}).items() if k not in ("need", "cond", "index")}
    if opts:
        parts.append(", ".join(f"{k}={v!r}" for k, v in opts.items()))
    return "; ".join(parts)


def _op_error(op, inputs, kw, err) -> Exception:
    cls = IndexError if isinstance(err, IndexError) else ShapeError
    if isinstance(err, TypeError):
        cls = TypeError
    if op is MATMUL and len(inputs) == 2:
        a, b = (t.data.shape for t in inputs)
        if len(a) and len(b):
            k_a = a[-1]
            k_b = b[0] if len(b) == 1 else b[-2]
            if k_a != k_b:
                return ShapeError(f"matmul: cannot multiply shapes {a} and {b}: the inner "
                                  f"dimensions {k_a} and {k_b} differ")
        return ShapeError(f"matmul: cannot multiply shapes {a} and {b} ({err})")
    return cls(f"{op.name}: {err} ({_describe(inputs, kw)})")


def apply(op, inputs: tuple, kw: dict | None = None) -> "Tensor":
    """Run primitive `op` on Tensors and record it for backward where needed."""
    arrays = tuple([t.data for t in inputs])  # (a list comprehension is the fastest)
    try:
        out = op.forward(*arrays, **kw) if kw else op.forward(*arrays)
    except (ValueError, IndexError, TypeError) as err:
        raise _op_error(op, inputs, kw, err) from None
    saved = arrays if op.reads_inputs else ()
    if op.residuals:
        out, residuals = out
        saved = (saved or (None,) * len(inputs)) + residuals
    t = None
    if _mode.enabled:
        for x in inputs:
            if x.requires_grad:
                t = _node(_new(Tensor), out, inputs, op, saved, kw or None, True)
                break
    if t is None:
        t = _wrap(out)
    if op.view and t.data.base is not None and np.may_share_memory(t.data, arrays[0]):
        _share_version(t, inputs[0])
    return t


def binary(op, a: "Tensor", b) -> "Tensor":
    """The fast path of every arithmetic operator: this is the innermost loop of most
    programs, so it checks only what it must."""
    if type(b) is not Tensor:
        b = _constant(b, a, op.name)
    ad, bd = a.data, b.data
    try:
        out = op.forward(ad, bd)
    except (ValueError, TypeError) as err:
        raise _op_error(op, (a, b), None, err) from None
    if not (a.requires_grad or b.requires_grad) or not _mode.enabled:
        return _wrap(out)
    return _node(_new(Tensor), out, (a, b), op, (ad, bd) if op.reads_inputs else (), None,
                 True)


def _reflected(op, a: "Tensor", b) -> "Tensor":
    return binary(op, _constant(b, a, op.name), a)


def _unary(op, x: "Tensor") -> "Tensor":
    out = op.forward(x.data)
    if x.requires_grad and _mode.enabled:
        return _node(_new(Tensor), out, (x,), op, (x.data,) if op.reads_inputs else (), None,
                     True)
    return _wrap(out)


def _axis(axis, where: str):
    if axis is None:
        return None
    several = isinstance(axis, (tuple, list))
    for a in axis if several else (axis,):  # (True is an int to Python, not a dim)
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{where}: axis must be None, an int or a tuple of ints, "
                            f"got {axis!r}")
    return tuple(int(a) for a in axis) if several else int(axis)


def _zero_d_axis(x: "Tensor", axis, where: str):
    """A 0-d tensor's one element is reduced by dim 0 or -1, as in PyTorch (numpy has
    no axis there): those become None; any other dim raises."""
    if x.ndim or axis is None:
        return axis
    for a in axis if isinstance(axis, tuple) else (axis,):
        dim_index(a, 0, where)
    return None


def _check_axes(x: "Tensor", axis, where: str) -> None:
    if axis is None:
        return
    for a in axis if isinstance(axis, tuple) else (axis,):
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"{where}: axis {a} is out of range for a tensor of shape "
                             f"{x.shape}")


def _kept_copy(array, dtype=None) -> np.ndarray:
    """A copy of an index or condition array, kept with its node so that changing the
    original later cannot move the gradient. (A compiled step's trace notes what each
    copy holds.)"""
    return np.array(array, dtype=dtype)


def _arg_extreme(x, find, dim, keepdim):
    """argmax/argmin as int64, over the flattened array when dim is None."""
    if dim is None:
        return np.asarray(find(x), dtype=np.int64).reshape((1,) * x.ndim if keepdim else ())
    return find(x, axis=dim, keepdims=keepdim).astype(np.int64, copy=False)


def _axis_positions(a, axis):
    """0, 1, ... along `axis` of an array shaped to broadcast against `a` (np.ogrid's)."""
    shape = [1] * a.ndim
    shape[axis] = a.shape[axis]
    return np.arange(a.shape[axis]).reshape(shape)


def _index(index):
    """Tensor indices become arrays (integer, or boolean masks), kept with the node."""
    if isinstance(index, (Tensor, np.ndarray)):
        return _kept_copy(index.data if isinstance(index, Tensor) else index)
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    return index


class Tensor(TorchMethods, Node):
    """An n-dimensional array of numbers that records operations for reverse-mode autodiff.

    >>> x = Tensor([[1.0, 2.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    Tensor([[2., 4.]])
    """

    __slots__ = ("data", "_grad", "requires_grad", "_parents", "_prim", "_saved", "_kw",
                 "_retain", "label", "_g", "_seq", "_hooks", "_vc", "__weakref__")
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """numpy meeting a Tensor. An operator with an ndarray or numpy number on the
        left (`arr + t`, `arr < t`) is Tensor's reflected operator, recorded as usual;
        any other numpy function (`np.isfinite(t.grad)`) works on the values and gives
        an ndarray, so it is refused for a tensor that requires grad: its result would
        silently have no gradient."""
        names = _UFUNC_OPERATORS.get(ufunc) if method == "__call__" and not kwargs else None
        if names is not None and len(inputs) == 2:
            a, b = inputs
            return getattr(a, names[0])(b) if isinstance(a, Tensor) else getattr(b, names[1])(a)
        if any(isinstance(x, Tensor) and x.requires_grad for x in inputs):
            raise TypeError(f"numpy.{ufunc.__name__}: a tensor that requires grad cannot go "
                            "through a numpy function (the result would have no gradient); "
                            "use the Tensor method, or .detach() first")
        if any(isinstance(x, Tensor) for x in kwargs.get("out", ())):
            raise TypeError(f"numpy.{ufunc.__name__}: out= cannot be a Tensor; use the "
                            "Tensor's in-place methods")
        arrays = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __init__(self, data, requires_grad: bool = False, dtype=None, label: str | None = None,
                 *, device=None):
        if device is not None:
            check_device(device, "Tensor")
        data = _as_data(data, None if dtype is None else as_dtype(dtype, "Tensor"), "Tensor")
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, "
                            f"got dtype {data.dtype}")
        _node(self, data, (), None, None, None, bool(requires_grad), label)

    # -- attributes ------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> ElementCount:
        """The number of elements (numpy's), also callable as PyTorch's `size(dim=None)`."""
        return ElementCount(self.data.shape)

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item: only a single-element tensor converts to a number, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.size != 1 or self.data.dtype.kind not in "iub":
            raise TypeError(f"only a one-element integer tensor can be used as an index, "
                            f"not one of shape {self.shape} and dtype {self.dtype}")
        return int(self.data.item())

    def __format__(self, spec: str) -> str:
        # f"{loss:.4f}" formats the number itself (and f"{loss}" too for a 0-d tensor,
        # as in PyTorch); other tensors format their str().
        if self.data.ndim == 0 or (self.data.size == 1 and spec):
            return format(self.data.item(), spec)
        try:
            return format(str(self), spec)
        except ValueError:
            raise TypeError(f"format: the format {spec!r} needs a one-element tensor, "
                            f"this one has shape {self.shape}") from None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is "
                             "ambiguous; use .any() or .all() on .data")
        return bool(self.data)

    __hash__ = Node.__hash__  # identity, as comparisons below are elementwise

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20,
                               prefix="Tensor(")
        extra = "" if self.data.dtype == np.float64 else f", dtype={self.data.dtype}"
        if self._prim is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.label:
            extra += f", label={self.label!r}"
        return f"Tensor({body}{extra})"

    # -- graph -----------------------------------------------------------------------
    @property
    def grad(self) -> "Tensor | None":
        """d(root)/d(self) summed over the backward passes since it was reset: a Tensor of
        self's shape and dtype (with no gradient of its own), or None."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                value = _wrap(_as_data(value, self.data.dtype, "grad"))
            if value.shape != self.shape or value.dtype != self.dtype:
                raise ShapeError(f"grad: the assigned gradient has shape {value.shape} and "
                                 f"dtype {value.dtype}, but the tensor has shape "
                                 f"{self.shape} and dtype {self.dtype}")
        self._grad = value

    def _store_grad(self, g) -> None:
        grad = self._grad
        if isinstance(g, Tensor):  # create_graph: the gradient is a graph node
            self._grad = g if grad is None else grad + g
        elif grad is None:
            # The engine hands over arrays nobody else holds (it copies passed-through
            # gradients); a view or a read-only broadcast is copied here.
            owned = type(g) is _ndarray and g.base is None and g.flags.writeable
            self._grad = _wrap(g if owned else np.array(g, dtype=self.data.dtype))
        elif grad.requires_grad:  # (left by a create_graph backward: not changed in place)
            self._grad = grad + _wrap(g)
        else:
            grad.data += g

    def _apply(self, op, *others, **kw) -> "Tensor":
        return apply(op, (self,) + others, kw)

    def retain_grad(self) -> None:
        """Keep this intermediate's gradient in `.grad` after backward (leaves always do)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retain = True

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory, and so the version counter:
        an in-place change of either is seen by the other's backward)."""
        t = _wrap(self.data)
        _share_version(t, self)
        return t

    def _hook_arg(self, g):
        return g if isinstance(g, Node) else _wrap(g.copy())

    def _hook_result(self, result, g):
        if isinstance(g, Node):  # create_graph: the replacement must be a graph node too
            if not isinstance(result, Tensor):
                raise TypeError(f"hook: with create_graph=True a hook must return a Tensor "
                                f"or None, got {type(result).__name__}")
            new = result.data
        else:
            new = np.asarray(result.data if isinstance(result, Tensor) else result)
        if new.shape != g.shape:
            raise ShapeError(f"hook: the gradient returned by a hook has shape {new.shape}, "
                             f"but the tensor's gradient has shape {g.shape}")
        if isinstance(g, Node):
            return result
        return np.array(new, dtype=g.dtype)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, "
                            f"got dtype {self.data.dtype}")
        if self._prim is not None:
            raise RuntimeError("requires_grad_: only a leaf tensor's flag can be changed; "
                               "use detach() first")
        if requires_grad and not self.requires_grad:
            # Nodes recorded before now did not count it as an input that wants a
            # gradient, and backward keeps it that way (as PyTorch does): it is given a
            # new creation number, so it is "newer" than them.
            self._seq = _changes.grad_on = _next_seq()
        self.requires_grad = bool(requires_grad)
        self._retain = True
        return self

    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None, *, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into the `.grad` of every leaf that requires grad
        (of `inputs` only, when given).

        `gradient` (the upstream gradient, shaped like self; `grad=` is our older name)
        may be omitted only for a single-element tensor. Without `retain_graph` (which
        defaults to `create_graph`), the buffers saved for backward are released and a
        second backward through the same graph raises. With `create_graph` the stored
        gradients are graph nodes, to differentiate again.
        """
        if grad is not None:
            if gradient is not None:
                raise TypeError("backward: give the upstream gradient once, as gradient=")
            gradient = grad
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad; no leaf it was "
                               "computed from had requires_grad=True (or it was computed "
                               "under no_grad())")
        if retain_graph is None:
            retain_graph = create_graph
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: a gradient can be omitted only for a "
                                   f"single-element output, but this tensor has shape "
                                   f"{self.shape}; pass gradient= an array of that shape")
            data = self.data  # (np.array(1) is 5x faster than ones_like for 0-d)
            seed = np.array(1, data.dtype) if data.ndim == 0 else np.ones(data.shape, data.dtype)
        else:
            seed = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient)
            if seed.dtype.kind not in "biuf":
                raise TypeError(f"backward: gradient must be numeric, got dtype {seed.dtype}")
            if seed.shape != self.shape:
                raise ShapeError(f"backward: gradient has shape {seed.shape} but the tensor "
                                 f"has shape {self.shape}")
            # ours (.grad may keep it); a compiled step's trace notes what it copies
            seed = _kept_copy(seed, self.data.dtype)
        if inputs is None and not create_graph:
            run_backward((self,), (seed,), retain_graph=retain_graph, sum_to=fit_array)
            return
        from .differentiate import grad as gradients  # (imports this module)
        targets = _leaf_list(inputs, self) if inputs is not None else _leaves_of(self)
        results = gradients(self, targets, grad_outputs=_wrap(seed),
                            retain_graph=retain_graph, create_graph=create_graph,
                            allow_unused=True)
        for t, g in zip(targets, results):
            if g is not None:
                t._store_grad(g if create_graph else g.data)

    # -- arithmetic ------------------------------------------------------------------
    # A Python number operand is an option of the node (add_const, mul_const), not a
    # constant leaf: one node per operation, as for Value.
    def __add__(self, other):
        if type(other) is Tensor:
            return binary(ADD, self, other)
        if type(other) in _python_number:
            return self._apply(ADD_CONST, c=_weak(other))
        return binary(ADD, self, other)

    def __radd__(self, other): return self.__add__(other)

    def __sub__(self, other):
        if type(other) is Tensor:
            return binary(SUB, self, other)
        if type(other) in _python_number:
            return self._apply(ADD_CONST, c=_weak(-other))
        return binary(SUB, self, other)

    def __rsub__(self, other): return _reflected(SUB, self, other)

    def __mul__(self, other):
        if type(other) is Tensor:
            return binary(MUL, self, other)
        if type(other) in _python_number:
            return self._apply(MUL_CONST, c=_weak(other))
        return binary(MUL, self, other)

    def __rmul__(self, other): return self.__mul__(other)
    def __truediv__(self, other): return binary(DIV, self, other)
    def __rtruediv__(self, other): return _reflected(DIV, self, other)
    def __matmul__(self, other): return binary(MATMUL, self, other)
    def __rmatmul__(self, other): return _reflected(MATMUL, self, other)
    def __neg__(self): return _unary(NEG, self)
    def __pos__(self): return self

    def __pow__(self, other):
        if isinstance(other, numbers.Real) and not isinstance(other, Node):
            c = int(other) if float(other).is_integer() else float(other)
            return self._apply(POW_CONST, c=c)
        return binary(POW, self, other)

    def __rpow__(self, other):
        return _reflected(POW, self, other)

    # -- in place ----------------------------------------------------------------------
    # Each changes self.data itself (views and detach()ed copies see it) and bumps the
    # version, so a backward that saved the old values raises instead of using the new.
    def _may_modify(self, name: str, *others) -> None:
        if not _mode.enabled:
            return
        if self.requires_grad and self._prim is None:
            raise RuntimeError(
                f"{name}: a leaf tensor that requires grad cannot be changed in place while "
                "operations are recorded (its gradient would be wrong); do it inside "
                "`with autodiff.no_grad():`, as an optimizer step does")
        if self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others):
            raise RuntimeError(
                f"{name}: in-place operations on tensors that are part of a graph are not "
                "recorded; write it out of place (y = y + x), or inside no_grad()")

    def _in_place(self, name: str, ufunc, other) -> "Tensor":
        self._may_modify(name, other)
        operand = other.data if isinstance(other, Tensor) else other
        if isinstance(operand, Node):
            raise TypeError(f"{name}: cannot combine a Tensor with a {type(operand).__name__}")
        try:
            ufunc(self.data, operand, out=self.data, casting="same_kind")
        except TypeError as err:
            raise TypeError(f"{name}: cannot write the result into a tensor of dtype "
                            f"{self.dtype} ({err})") from None
        except ValueError as err:
            raise ShapeError(f"{name}: the result must keep the tensor's shape {self.shape}, "
                             f"but the operand has shape {np.shape(operand)} ({err})") from None
        bump_version(self)
        return self

    @staticmethod
    def _scaled(other, alpha):
        if alpha == 1:
            return other
        if isinstance(other, Tensor):
            other = other.data
        return np.multiply(other, alpha)

    def add_(self, other, *, alpha=1) -> "Tensor":
        """self += alpha * other, in place."""
        return self._in_place("add_", np.add, self._scaled(other, alpha))

    def sub_(self, other, *, alpha=1) -> "Tensor":
        """self -= alpha * other, in place."""
        return self._in_place("sub_", np.subtract, self._scaled(other, alpha))

    def mul_(self, other) -> "Tensor":
        """self *= other, in place."""
        return self._in_place("mul_", np.multiply, other)

    def div_(self, other) -> "Tensor":
        """self /= other, in place."""
        return self._in_place("div_", np.true_divide, other)

    def copy_(self, src) -> "Tensor":
        """Copy src's values into self (broadcast to self's shape, cast to its dtype)."""
        self._may_modify("copy_", src)
        values = src.data if isinstance(src, Tensor) else _as_data(src, None, "copy_")
        try:
            np.copyto(self.data, values, casting="unsafe")
        except ValueError as err:
            raise ShapeError(f"copy_: cannot copy shape {np.shape(values)} into a tensor of "
                             f"shape {self.shape} ({err})") from None
        bump_version(self)
        return self

    def fill_(self, value) -> "Tensor":
        """Set every element to `value`."""
        if isinstance(value, Tensor):
            if value.size != 1:
                raise ShapeError(f"fill_: the value must be a number or a one-element tensor, "
                                 f"got shape {value.shape}")
            value = value.item()
        if not isinstance(value, (numbers.Number, np.generic)):
            raise TypeError(f"fill_: expected a number, got {type(value).__name__}")
        self._may_modify("fill_")
        self.data[...] = value
        bump_version(self)
        return self

    def zero_(self) -> "Tensor":
        """Set every element to 0."""
        return self.fill_(0)

    def clamp_(self, min=None, max=None) -> "Tensor":
        """Limit the values to [min, max], in place."""
        if min is None and max is None:
            raise ValueError("clamp_: give at least one of min and max")
        self._may_modify("clamp_", min, max)
        lo = min.data if isinstance(min, Tensor) else min
        hi = max.data if isinstance(max, Tensor) else max
        try:
            np.clip(self.data, lo, hi, out=self.data, casting="same_kind")
        except (TypeError, ValueError) as err:
            raise TypeError(f"clamp_: cannot clamp a tensor of shape {self.shape} and dtype "
                            f"{self.dtype} to [{min!r}, {max!r}] ({err})") from None
        bump_version(self)
        return self

    def _fill_random(self, name: str, draw) -> "Tensor":
        if self.dtype.kind != "f":
            raise TypeError(f"{name}: needs a floating-point tensor, got dtype {self.dtype}")
        self._may_modify(name)
        self.data[...] = draw(self.shape)
        bump_version(self)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        """Fill with samples of N(mean, std**2) from the generator `manual_seed` seeds."""
        if not std >= 0:
            raise ValueError(f"normal_: std must be >= 0, got {std}")
        from .rng import generator
        return self._fill_random("normal_", lambda shape: generator().normal(mean, std, shape))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        """Fill with samples of U(a, b) from the generator `manual_seed` seeds."""
        if not a <= b:
            raise ValueError(f"uniform_: needs a <= b, got a={a}, b={b}")
        from .rng import generator
        return self._fill_random("uniform_", lambda shape: generator().uniform(a, b, shape))

    # `y += x` changes y itself. On a tensor that is part of a graph it cannot be
    # recorded in place, so it is computed out of place and the name rebound (the same
    # gradient, as long as nothing else holds the old y).
    def _augmented(self, other, method, operator_):
        if _mode.enabled and (self._prim is not None or not self.requires_grad and (
                isinstance(other, Tensor) and other.requires_grad)):
            return operator_(self, other)
        return method(self, other)

    def __iadd__(self, other): return self._augmented(other, Tensor.add_, Tensor.__add__)
    def __isub__(self, other): return self._augmented(other, Tensor.sub_, Tensor.__sub__)
    def __imul__(self, other): return self._augmented(other, Tensor.mul_, Tensor.__mul__)
    def __itruediv__(self, other): return self._augmented(other, Tensor.div_, Tensor.__truediv__)

    # Comparisons give boolean constants (no gradient), as in numpy and PyTorch.
    def _compare(self, other, fn):
        if not isinstance(other, (Tensor, _comparable)):
            return NotImplemented  # (lets the other object answer, e.g. pytest.approx)
        return _derived_constant(fn, self, other)

    def __lt__(self, other): return self._compare(other, np.less)
    def __le__(self, other): return self._compare(other, np.less_equal)
    def __gt__(self, other): return self._compare(other, np.greater)
    def __ge__(self, other): return self._compare(other, np.greater_equal)
    def __eq__(self, other): return self._compare(other, np.equal)
    def __ne__(self, other): return self._compare(other, np.not_equal)

    # -- elementwise -----------------------------------------------------------------
    def exp(self) -> "Tensor": return _unary(OPS["exp"], self)
    def log(self) -> "Tensor": return _unary(OPS["log"], self)
    def sqrt(self) -> "Tensor": return _unary(OPS["sqrt"], self)
    def abs(self) -> "Tensor": return _unary(OPS["abs"], self)
    __abs__ = abs
    def tanh(self) -> "Tensor": return _unary(OPS["tanh"], self)
    def sigmoid(self) -> "Tensor": return _unary(OPS["sigmoid"], self)
    def relu(self) -> "Tensor": return _unary(OPS["relu"], self)
    def sin(self) -> "Tensor": return _unary(OPS["sin"], self)
    def cos(self) -> "Tensor": return _unary(OPS["cos"], self)

    def clone(self) -> "Tensor":
        """A copy with its own memory; the gradient flows back to self."""
        return _unary(OPS["clone"], self)

    def clip(self, lo=None, hi=None) -> "Tensor":
        """Limit values to [lo, hi]; the gradient passes where lo <= x <= hi."""
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of lo and hi")
        for name, bound in (("lo", lo), ("hi", hi)):
            if bound is None:
                continue
            try:  # a ragged list or an object numpy cannot hold is as wrong as a string
                kind = "" if isinstance(bound, Tensor) else np.asarray(bound).dtype.kind
            except (TypeError, ValueError):
                kind = ""
            if kind not in ("i", "u", "f"):
                raise TypeError(f"clip: {name} must be a number or an array of numbers, "
                                f"got {bound!r}")
        if lo is not None and hi is not None:
            try:
                crossed = np.any(np.asarray(lo) > np.asarray(hi))
            except ValueError:
                raise ShapeError(f"clip: lo of shape {np.shape(lo)} and hi of shape "
                                 f"{np.shape(hi)} do not broadcast together") from None
            if crossed:
                raise ValueError(f"clip: lo={lo} is greater than hi={hi}")
        return self._apply(OPS["clip"], lo=lo, hi=hi)

    def astype(self, dtype) -> "Tensor":
        """The same values as another dtype; the gradient is converted back."""
        dtype = np.dtype(dtype)
        if self.requires_grad and dtype.kind != "f":
            raise TypeError(f"astype: a tensor that requires grad can only become another "
                            f"float dtype, not {dtype}")
        return self._apply(OPS["astype"], dtype=dtype)

    # -- reductions ------------------------------------------------------------------
    def _reduce(self, name, axis, keepdims, dim=None, keepdim=None, out=None):
        if out is not None:  # (numpy's np.sum(t) passes out=None)
            raise TypeError(f"{name}: out= is not supported for a Tensor")
        axis, keepdims = resolve_axis(axis, dim, keepdims, keepdim, name)
        axis = _axis(axis, name)
        axis = _zero_d_axis(self, axis, name)
        _check_axes(self, axis, name)
        if name in ("max", "min") and self.data.size == 0:
            reduced = self.shape if axis is None else [
                self.shape[a] for a in (axis if isinstance(axis, tuple) else (axis,))]
            if 0 in reduced:
                over = "all its dims" if axis is None else f"dim {axis}"
                raise ShapeError(f"{name}: cannot reduce an empty tensor of shape "
                                 f"{self.shape} over {over}")
        return self._apply(OPS[name], axis=axis, keepdims=keepdims)

    # `axis=`/`keepdims=` (numpy) and `dim=`/`keepdim=` (PyTorch) both work.
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None,
            dtype=None, out=None) -> "Tensor":
        x = self if dtype is None else self.to(dtype)
        return x._reduce("sum", axis, keepdims, dim, keepdim, out)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None,
             dtype=None, out=None) -> "Tensor":
        x = self if dtype is None else self.to(dtype)
        return x._reduce("mean", axis, keepdims, dim, keepdim, out)

    def max(self, *args, axis=None, keepdims: bool = False, dim=None, keepdim=None,
            out=None):
        """numpy's `max(axis=...)` gives the values; PyTorch's `max(d)` or `max(dim=d)`
        gives (values, indices); `max(other)` is `maximum(self, other)`."""
        return self._extreme("max", args, axis, keepdims, dim, keepdim, out)

    def min(self, *args, axis=None, keepdims: bool = False, dim=None, keepdim=None,
            out=None):
        """As `max`, for the minimum."""
        return self._extreme("min", args, axis, keepdims, dim, keepdim, out)

    def _extreme(self, name, args, axis, keepdims, dim, keepdim, out=None):
        if args and isinstance(args[0], Tensor):
            if len(args) > 1 or axis is not None or dim is not None:
                raise TypeError(f"{name}(other) takes no other arguments")
            return (maximum if name == "max" else minimum)(self, args[0])
        if len(args) > 2:
            raise TypeError(f"{name}: at most dim and keepdim positionally, got {args!r}")
        if args:
            if dim is not None or axis is not None:
                raise TypeError(f"{name}: dim given twice")
            dim = args[0]
            if len(args) == 2:
                keepdim = args[1]
        if dim is None:
            return self._reduce(name, axis, keepdims, None, keepdim, out)
        if out is not None:
            raise TypeError(f"{name}: out= is not supported for a Tensor")
        d = dim_index(dim, self.ndim, name)
        keep = bool(keepdim)
        if self.ndim and self.shape[d] == 0:
            raise ShapeError(f"{name}: cannot reduce dim {d} of size 0 (shape {self.shape})")
        indices = self._arg(name, d, keep)
        if self.ndim == 0:
            return ValuesIndices(self.reshape(()), indices)
        # The values are gathered at the indices, so the gradient goes to that one
        # element (the first among ties), as PyTorch's max(dim) does; max() and
        # max(axis=...) share it among ties instead.
        at = indices if keep else _derived_constant(np.expand_dims, indices, axis=d)
        grid = [at if k == d else _derived_constant(_axis_positions, at, axis=k)
                for k in range(at.ndim)]
        values = self[tuple(grid)]
        return ValuesIndices(values if keep else values.reshape(indices.shape), indices)

    def _arg(self, name, dim, keepdim) -> "Tensor":
        if self.data.size == 0 and (dim is None or self.shape[dim] == 0):
            over = "all its dims" if dim is None else f"dim {dim}"
            raise ShapeError(f"arg{name}: cannot reduce an empty tensor of shape "
                             f"{self.shape} over {over}")
        if self.ndim == 0:
            return _wrap(np.zeros((), np.int64))
        return _derived_constant(_arg_extreme, self, find=np.argmax if name == "max"
                                 else np.argmin, dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim: bool = False, *, axis=None) -> "Tensor":
        """The index of the largest value (of the flattened tensor when dim is None), an
        int64 Tensor without gradient; the first one among ties."""
        dim, keepdim = resolve_axis(axis, dim, keepdim, None, "argmax")
        return self._arg("max", None if dim is None else dim_index(dim, self.ndim, "argmax"),
                         keepdim)

    def argmin(self, dim=None, keepdim: bool = False, *, axis=None) -> "Tensor":
        """As `argmax`, for the smallest value."""
        dim, keepdim = resolve_axis(axis, dim, keepdim, None, "argmin")
        return self._arg("min", None if dim is None else dim_index(dim, self.ndim, "argmin"),
                         keepdim)

    def logsumexp(self, axis=None, keepdims: bool = False, *, dim=None,
                  keepdim=None) -> "Tensor":
        return self._reduce("logsumexp", axis, keepdims, dim, keepdim)

    def softmax(self, axis: int = -1, *, dim=None, dtype=None) -> "Tensor":
        return self._along("softmax", axis, dim, dtype)

    def log_softmax(self, axis: int = -1, *, dim=None, dtype=None) -> "Tensor":
        return self._along("log_softmax", axis, dim, dtype)

    def _along(self, name, axis, dim, dtype) -> "Tensor":
        """An op along one axis (numpy's axis= or PyTorch's dim=), optionally in dtype."""
        axis, _ = resolve_axis(None if dim is not None and axis == -1 else axis, dim,
                               False, None, name)
        x = self if dtype is None else self.to(dtype)
        axis = _zero_d_axis(x, _axis(axis, name), name)
        _check_axes(x, axis, name)
        return x._apply(OPS[name], axis=axis)

    # -- shape -----------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        for n in shape:  # as PyTorch: int() would truncate 2.5 and parse "6" silently
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
                raise TypeError(f"reshape: sizes must be ints, got {n!r} in {tuple(shape)!r}")
            if n < -1:  # numpy would take any negative size as the unknown one
                raise ShapeError(f"reshape: invalid size {n} in {tuple(shape)!r} (-1 stands "
                                 "for the one unknown size)")
        return self._apply(OPS["reshape"], shape=tuple(int(n) for n in shape))

    def transpose(self, *axes, dim0=None, dim1=None) -> "Tensor":
        """numpy's `transpose(*axes)` (a full permutation; none reverses the axes), and
        PyTorch's `transpose(dim0, dim1)`, which swaps two axes: two axes (of a tensor of
        any rank), or the keywords dim0/dim1."""
        if dim0 is not None or dim1 is not None:
            if axes or dim0 is None or dim1 is None:
                raise TypeError("transpose: give both dim0 and dim1, and no other axes")
            return self.swapaxes(dim0, dim1, "transpose")
        as_permutation = len(axes) == 1  # transpose((1, 0)): numpy's spelling, not torch's
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        n = self.ndim
        if axes and len(axes) == 2 and n != 2:
            return self.swapaxes(*axes, "transpose")
        if not axes:
            axes = tuple(range(n - 1, -1, -1))
        for a in axes:
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
                raise TypeError(f"transpose: axes must be ints, got {a!r} in {tuple(axes)!r}")
        axes = tuple(int(a) for a in axes)
        for a in axes:  # checked before `a % n`, which would wrap 2 round to 0
            if not -n <= a < n:
                raise ShapeError(f"transpose: axis {a} of axes {axes} is out of range for a "
                                 f"tensor of shape {self.shape}")
        if len(axes) == 2 and not as_permutation:
            # Two axes swap, also on a matrix: numpy would read (0, 1) there as the
            # identity permutation, which no numpy code asks for and PyTorch code means
            # as the transpose.
            return self.swapaxes(*axes, "transpose")
        if sorted(a % n for a in axes) != list(range(n)):
            raise ShapeError(f"transpose: axes {axes} are not a permutation of the "
                             f"{n} axes of a tensor of shape {self.shape}")
        return self._apply(OPS["transpose"], axes=tuple(a % n for a in axes))

    def swapaxes(self, axis1: int, axis2: int, where: str = "swapaxes") -> "Tensor":
        for a in (axis1, axis2):
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
                raise TypeError(f"{where}: axes must be ints, got {a!r}")
        if self.ndim == 0:  # (dims 0 and -1 name a 0-d tensor's one element)
            _zero_d_axis(self, (axis1, axis2), where)
            return self.reshape(())
        _check_axes(self, (axis1, axis2), where)
        perm = list(range(self.ndim))
        perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
        return self._apply(OPS["transpose"], axes=tuple(perm))

    def __getitem__(self, index) -> "Tensor":
        return self._apply(OPS["getitem"], index=_index(index))

    def __setitem__(self, index, value) -> None:
        """`t[index] = value`, in place (see `_may_modify` for when that is allowed)."""
        self._may_modify("setitem", value)
        values = value.data if isinstance(value, Tensor) else value
        try:
            self.data[_index(index)] = values
        except (ValueError, TypeError, IndexError) as err:
            raise type(err)(f"setitem: cannot set index {index!r} of a tensor of shape "
                            f"{self.shape} to a value of shape {np.shape(values)} "
                            f"({err})") from None
        bump_version(self)


def _leaf_list(inputs, root) -> list:
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if not inputs:
        raise ValueError("backward: inputs is empty; give the tensors whose .grad to fill, "
                         "or leave inputs=None for every leaf")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise TypeError(f"backward: inputs[{i}] must be a Tensor that requires grad, "
                            f"got {t!r}")
    return inputs


def _leaves_of(root) -> list:
    """The nodes whose .grad a backward from `root` fills: leaves and retain_grad()
    intermediates that require grad, each once."""
    seen, order, stack = {id(root)}, [], [root]
    while stack:
        node = stack.pop()
        if node._retain and node.requires_grad:
            order.append(node)
        for p in node._parents:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return order


# numpy ufuncs that are Tensor operators: (method if the Tensor is on the left, if on the right)
_UFUNC_OPERATORS = {
    np.add: ("__add__", "__radd__"), np.subtract: ("__sub__", "__rsub__"),
    np.multiply: ("__mul__", "__rmul__"), np.true_divide: ("__truediv__", "__rtruediv__"),
    np.power: ("__pow__", "__rpow__"), np.matmul: ("__matmul__", "__rmatmul__"),
    np.less: ("__lt__", "__gt__"), np.less_equal: ("__le__", "__ge__"),
    np.greater: ("__gt__", "__lt__"), np.greater_equal: ("__ge__", "__le__"),
    np.equal: ("__eq__", "__eq__"), np.not_equal: ("__ne__", "__ne__"),
}


def fit_array(g, node):
    """Reduce a broadcast gradient to its input's shape and dtype (plain backward)."""
    data = node.data
    if g.shape != data.shape:
        g = ops.reduce_to_shape(g, data.shape)
    if g.dtype != data.dtype:
        g = g.astype(data.dtype)
    return g


def fit_node(g, node):
    """As `fit_array`, for gradients that are graph nodes (create_graph)."""
    if not isinstance(g, Tensor):
        g = _wrap(np.asarray(g))
    if g.shape != node.data.shape:
        g = ops.sum_to(g, node.data.shape)
    if g.dtype != node.data.dtype:
        g = g._apply(OPS["astype"], dtype=node.data.dtype)
    return g


# -- functions of several tensors ------------------------------------------------------

def _pair(a, b, name):
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return _constant(a, like, name), _constant(b, like, name)


def maximum(a, b) -> Tensor:
    """Elementwise max(a, b); ties send half the gradient to each side."""
    a, b = _pair(a, b, "maximum")
    return apply(OPS["maximum"], (a, b))


def minimum(a, b) -> Tensor:
    """Elementwise min(a, b); ties send half the gradient to each side."""
    a, b = _pair(a, b, "minimum")
    return apply(OPS["minimum"], (a, b))


def where(cond, a, b) -> Tensor:
    """`a` where `cond` is true, else `b`; the gradient follows the same choice."""
    cond = _kept_copy(cond.data if isinstance(cond, Tensor) else cond)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: cond must be boolean, got dtype {cond.dtype}")
    a, b = _pair(a, b, "where")
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"where: shapes cond {cond.shape}, a {a.shape} and b {b.shape} do not "
                         "broadcast together") from None
    return apply(OPS["where"], (a, b), {"cond": cond})


def _sequence(seq, name) -> tuple:
    if isinstance(seq, Tensor) or not isinstance(seq, Sequence) or not len(seq):
        raise TypeError(f"{name}: expected a non-empty list or tuple of tensors")
    like = next((t for t in seq if isinstance(t, Tensor)), None)
    return tuple(_constant(t, like, name) for t in seq)


def concatenate(seq, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    xs = _sequence(seq, "concatenate")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"concatenate: axis must be an int, got {axis!r}")
    n = xs[0].ndim
    if n == 0:
        raise ShapeError("concatenate: 0-d tensors have no axis to join along (use stack)")
    if not -n <= axis < n:
        raise ShapeError(f"concatenate: axis {axis} is out of range for tensors of shape "
                         f"{xs[0].shape} (axes {-n} to {n - 1})")
    return apply(OPS["concatenate"], xs, {"axis": int(axis)})


def stack(seq, axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    xs = _sequence(seq, "stack")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"stack: axis must be an int, got {axis!r}")
    n = xs[0].ndim + 1  # the result's
    if not -n <= axis < n:
        raise ShapeError(f"stack: axis {axis} is out of range for stacking tensors of shape "
                         f"{xs[0].shape} (axes {-n} to {n - 1})")
    return apply(OPS["stack"], xs, {"axis": int(axis)})
