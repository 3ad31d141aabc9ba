"""`Function`: an operation whose derivative the user writes, as PyTorch's
`torch.autograd.Function`.

>>> import numpy as np
>>> from autodiff import Function, Tensor
>>> class Exp(Function):
...     @staticmethod
...     def forward(ctx, x):
...         out = x.exp()
...         ctx.save_for_backward(out)
...         return out
...
...     @staticmethod
...     def backward(ctx, grad_output):
...         (out,) = ctx.saved_tensors
...         return grad_output * out
>>> x = Tensor([0.0, 1.0], requires_grad=True)
>>> y = Exp.apply(x)
>>> y.grad_fn
<ExpBackward>
>>> y.sum().backward(); np.allclose(np.asarray(x.grad), np.exp([0.0, 1.0]))
True

Each subclass is one op record (a `FunctionOp`, made when the class is defined), and a
call records one node of that op whose only option is the call's context `ctx`. So the
one engine runs it as it runs any primitive (order, hooks, `grad`, pictures), and a
releasing backward drops the ctx, and with it the saved tensors, as it drops any
option buffer. The node's vjp is `backward`: on a plain backward it is given Tensors
wrapping the arrays and runs under `no_grad()`; with `create_graph=True` it is given
the graph's own Tensors (`grad_output`, and the output where it was saved) and is
recorded, so a backward written with differentiable Tensor operations can be
differentiated again.

Not supported (each refused with a clear error, never ignored): several outputs (a
tuple from forward), a forward that changes an input that requires grad in place
(PyTorch's `ctx.mark_dirty`), and `Value` arguments (Functions work on Tensors).
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from .engine import (
    ModifiedInPlaceError, Node, SavedState, Version, enable_grad, is_grad_enabled, no_grad)
from .errors import ShapeError
from .ops import Op
from .tensor import Tensor, _node, _share_version, _wrap
from .value import Value


class _Output:
    """Stands in, among a ctx's saved tensors, for the Function's own output: the node
    itself would be a reference cycle (the node holds its ctx)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<output>"

    def __reduce__(self):
        return "_OUTPUT"  # one object, also in copies and pickles


_OUTPUT = _Output()


class FunctionCtx(SavedState):
    """The `ctx` of one Function call: what forward leaves for backward.

    `save_for_backward(*tensors)` keeps tensors (checked against in-place changes),
    `saved_tensors` gives them back in backward, `needs_input_grad` says which forward
    arguments want a gradient, and any other attribute (`ctx.alpha = 0.5`) carries
    what else backward needs.
    """

    def __init__(self, function, inputs: tuple, needs_input_grad: tuple) -> None:
        self._function = function
        # per forward argument: the Tensor, or the type of a value that is not one
        self._inputs = inputs
        self.needs_input_grad = needs_input_grad
        self._to_save = ()            # as forward gives them, until the node is made
        self._saved = None            # ((tensor, None or _OUTPUT), version) pairs
        self._output_version = None   # (Version, count) when the output is saved
        self._output = None           # the output as backward sees it, during backward
        self._non_differentiable = ()
        self.materialize_grads = True

    def save_for_backward(self, *tensors) -> None:
        """Keep these Tensors (or None) for backward; `saved_tensors` gives them back."""
        if self._to_save is None:
            raise RuntimeError(f"{self._function.__name__}: save_for_backward can be called "
                               "only in forward")
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"{self._function.__name__}: save_for_backward takes Tensors (or None), "
                    f"argument {i} is a {type(t).__name__}; keep other values as attributes "
                    "of ctx (ctx.alpha = 0.5)")
        self._to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        """The tensors forward saved, as they were then; raises if one was changed in
        place since. With `create_graph=True` they are the graph's tensors, so
        operations on them are recorded."""
        if self._output is None:
            raise RuntimeError(f"{self._function.__name__}: ctx.saved_tensors can be read "
                               "only in backward")
        out = []
        for k, (t, version) in enumerate(self._saved):
            if t is _OUTPUT:
                vc, count = self._output_version
                if vc.count != count:
                    raise self._modified(k, self._output, vc.count, count, "the output ")
                t = self._output
            elif t is not None and t._version != version:
                raise self._modified(k, t, t._version, version, "")
            out.append(t)
        return tuple(out)

    def _modified(self, k, t, now, then, what) -> ModifiedInPlaceError:
        return ModifiedInPlaceError(
            f"backward: saved tensor {k} ({what}of shape {t.shape}, dtype {t.dtype}) of the "
            f"'{self._function.__name__}' Function was modified by an in-place operation "
            f"after forward saved it (it is now at version {now}, saved at version {then}); "
            "its gradient needs the values it saved. Run the forward again after the "
            "change, or make the change out of place.")

    def __repr__(self) -> str:
        return f"<ctx of {self._function.__name__}>"

    def mark_non_differentiable(self, *outputs) -> None:
        """The output is a constant (indices, a mask): it gets no gradient."""
        self._non_differentiable = outputs

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted for PyTorch's code; with one output backward always gets a gradient."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors) -> None:
        raise NotImplementedError(
            f"{self._function.__name__}: Functions that change their inputs in place "
            "(ctx.mark_dirty) are not supported; compute the result out of place")


class FunctionOp(Op):
    """The op record of one Function subclass: its name is the class's, its vjp calls
    the class's `backward`, its one option is the call's ctx (released with it)."""

    __slots__ = ("function", "signature", "takes_ctx", "arity")

    def __init__(self, function) -> None:
        doc = (function.__doc__ or "").strip()  # (its own: a class's is not inherited)
        math = (doc.splitlines()[0] if doc else
                f"custom Function; gradient from {function.__qualname__}.backward")
        super().__init__(function.__name__, math, function.forward, _vjp,
                         symbol=function.__name__, reads="nothing", internal=("ctx",),
                         buffers=("ctx",))
        self.function = function
        # PyTorch's two styles: forward(ctx, *args), or forward(*args) + setup_context
        self.takes_ctx = function.setup_context is Function.setup_context
        self.signature = inspect.signature(function.forward)
        # forward's number of arguments when they are all plain positional ones (a call
        # with exactly that many positional arguments then needs no binding), else -1
        params = list(self.signature.parameters.values())[1 if self.takes_ctx else 0:]
        plain = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        self.arity = len(params) if plain else -1

    @property
    def backward_name(self) -> str:
        return f"{self.name}Backward"  # PyTorch's name for a custom Function's node

    def __reduce__(self):
        return _op_of, (self.function,)

    def input_name(self, i: int) -> str:
        """'input 1 (weight)': forward argument i, with its name where it has one."""
        params = list(self.signature.parameters.values())[1 if self.takes_ctx else 0:]
        k = i
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                return f"input {i} ({p.name}[{k}])"
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                if k == 0:
                    return f"input {i} ({p.name})"
                k -= 1
        return f"input {i}"


def _op_of(function) -> FunctionOp:
    return function._op


class Function:
    """Base class of operations with a hand-written derivative (PyTorch's
    `torch.autograd.Function`): subclass it with

    - `forward(ctx, *args, **kwargs)`, static: computes the output Tensor from the
      arguments (Tensors and anything else) without being recorded; it may call
      `ctx.save_for_backward(*tensors)` and set attributes on ctx;
    - `backward(ctx, grad_output)`, static: returns d(loss)/d(input) for every forward
      argument, given d(loss)/d(output): one per argument (a Tensor, an array, a number
      or None; None for the arguments that are not Tensors), each in its input's shape
      or a shape it broadcasts to (summed back, as PyTorch does; a number fills it).

    Call it as `MyFunction.apply(*args, **kwargs)`. PyTorch's other style, `forward`
    without ctx plus `setup_context(ctx, inputs, output)`, works too.
    """

    _op: FunctionOp

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def setup_context(ctx, inputs: tuple, output) -> None:
        """For a forward without ctx: save what backward needs, from inputs and output."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError(f"{ctx._function.__name__} must define "
                                  "backward(ctx, grad_output) to be differentiated")

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._op = FunctionOp(cls)

    def __call__(self, *args, **kwargs):
        raise TypeError(f"a Function is called through its class: "
                        f"{type(self).__name__}.apply(...), not {type(self).__name__}()(...)")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on the arguments and record the result for backward."""
        if cls is Function:
            raise TypeError("Function.apply: define a subclass with forward and backward, "
                            "and call apply on it")
        return _apply(cls, cls._op, args, kwargs)


def _apply(cls, op: FunctionOp, args: tuple, kwargs: dict):
    name = cls.__name__
    if kwargs or len(args) != op.arity:
        try:  # as PyTorch: keywords and defaults become positional inputs of backward
            bound = op.signature.bind(*((None,) if op.takes_ctx else ()), *args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{name}.apply: the arguments do not fit forward{op.signature} "
                            f"({err})") from None
        bound.apply_defaults()
        inputs = bound.args[1:] if op.takes_ctx else bound.args
        keywords = bound.kwargs
    else:
        inputs, keywords = args, {}
    for key, value in keywords.items():
        if isinstance(value, Value) or isinstance(value, Tensor) and value.requires_grad:
            raise TypeError(f"{name}.apply: the keyword-only argument {key!r} is a "
                            f"{type(value).__name__} that requires grad; pass it as a "
                            "positional argument to get its gradient")
    described, wants = [], []  # per argument: the Tensor or the type; requires grad?
    for i, a in enumerate(inputs):
        if isinstance(a, Tensor):
            described.append(a)
            wants.append(a.requires_grad)
        elif isinstance(a, Value):
            raise TypeError(f"{name}.apply: {op.input_name(i)} is a Value; Functions work "
                            "on Tensors")
        else:
            described.append(type(a))
            wants.append(False)
    record = True in wants and is_grad_enabled()
    ctx = FunctionCtx(cls, tuple(described), tuple(wants) if record else (False,) * len(wants))
    versions = [a._version if w else None for a, w in zip(inputs, wants)] if record else None
    with no_grad():  # (as in PyTorch: forward's own operations are not recorded)
        if op.takes_ctx:
            result = cls.forward(ctx, *inputs, **keywords)
        else:
            result = cls.forward(*inputs, **keywords)
            cls.setup_context(ctx, tuple(inputs), result)
    if isinstance(result, (tuple, list)):
        raise NotImplementedError(
            f"{name}.forward returned a {type(result).__name__} of {len(result)} values; "
            "Functions with more than one output are not supported: return one Tensor "
            "(one Function per output, or the outputs stacked into one Tensor)")
    if not isinstance(result, Tensor):
        raise TypeError(f"{name}.forward must return a Tensor, got a {type(result).__name__}")
    for i, a in enumerate(inputs if record else ()):
        if wants[i] and a._version != versions[i]:
            raise RuntimeError(
                f"{name}.forward changed {op.input_name(i)}, which requires grad, in place; "
                "Functions that change their inputs in place (PyTorch's ctx.mark_dirty) "
                "are not supported: compute the result out of place")
    marked = ctx._non_differentiable
    if any(t is not result for t in marked):
        raise ValueError(f"{name}: mark_non_differentiable takes outputs of forward only")
    if not record or marked or result.dtype.kind != "f":  # (integer outputs: constants)
        ctx._to_save = None
        return result.detach() if result.requires_grad else result
    return _record(op, ctx, inputs, result)


def _record(op: FunctionOp, ctx: FunctionCtx, inputs: tuple, result: Tensor) -> Tensor:
    """The output node of a recorded call, with the saved tensors packed into ctx."""
    parents = tuple(a for a in inputs if isinstance(a, Tensor))
    out = _node(object.__new__(Tensor), result.data, parents, op, (), {"ctx": ctx}, True)
    # Memory shared with an input (forward returned it, or a view of it) shares its
    # version, so an in-place change of either is seen by the other's backward.
    if result._vc is not None:
        out._vc = result._vc
    else:
        for p in parents:
            if np.may_share_memory(out.data, p.data):
                _share_version(out, p)
                break
    saved = []
    for t in ctx._to_save:
        if t is result:
            if out._vc is None:
                out._vc = Version()
            ctx._output_version = (out._vc, out._vc.count)
            saved.append((_OUTPUT, 0))
        else:
            saved.append((t, 0 if t is None else t._version))
    ctx._saved = tuple(saved)
    ctx._to_save = None
    return out


def _vjp(g, out, *saved, ctx):
    """The vjp of every Function node: the user's backward, given d(loss)/d(output).

    `saved` (the engine's operands: none, or the inputs with create_graph) is unused:
    the ctx holds what backward reads.
    """
    graph = isinstance(g, Node)  # create_graph: gradients are graph nodes
    if graph:
        grad_output, ctx._output = g, out
    else:
        # read-only: the same array may be another node's gradient too
        view = np.asarray(g).view()
        view.flags.writeable = False
        grad_output, ctx._output = _wrap(view), _wrap(out)
    try:
        with enable_grad() if graph else no_grad():
            grads = ctx._function.backward(ctx, grad_output)
    finally:
        ctx._output = None  # (in create_graph, the node itself: no cycle left behind)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    return _gradients(ctx, tuple(grads), g, grad_output, graph)


def _gradients(ctx, grads: tuple, g, grad_output, graph: bool) -> tuple:
    """backward's results checked against forward's arguments: one gradient per parent."""
    op, inputs = ctx._function._op, ctx._inputs
    name, n = op.name, len(inputs)
    if len(grads) != n and not (len(grads) > n and all(x is None for x in grads[n:])):
        raise RuntimeError(
            f"{name}.backward returned {len(grads)} gradient{'s' * (len(grads) != 1)}, but "
            f"forward has {n} input{'s' * (n != 1)}: return one per input (None for those "
            "that are not Tensors or need none)")
    out = []
    for i, (x, gi) in enumerate(zip(inputs, grads)):
        if not isinstance(x, Tensor):
            if gi is not None:
                raise RuntimeError(
                    f"{name}.backward returned a gradient for {op.input_name(i)}, which is a "
                    f"{x.__name__}, not a Tensor: return None for it")
            continue
        out.append(None if gi is None else _gradient(op, i, x, gi, g, grad_output, graph))
    return tuple(out)


def _gradient(op, i: int, x: Tensor, gi, g, grad_output, graph: bool):
    """One returned gradient, for input `x`, in the form the engine takes."""
    if isinstance(gi, Tensor):
        arr = gi.data
    elif isinstance(gi, (np.ndarray, np.generic, numbers.Real)):
        arr = np.asarray(gi)
    else:
        raise TypeError(f"{op.name}.backward returned a {type(gi).__name__} for "
                        f"{op.input_name(i)}; expected a Tensor, an array, a number or None")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{op.name}.backward returned a gradient of dtype {arr.dtype} for "
                        f"{op.input_name(i)}; it must hold numbers")
    shape = x.data.shape
    if arr.shape != shape:
        if isinstance(gi, numbers.Real) or isinstance(gi, np.generic):
            arr = gi = np.full(shape, arr, dtype=x.data.dtype)  # a number fills the shape
        elif _broadcasts(shape, arr.shape):
            pass  # the engine sums it back to the input's shape
        else:
            raise ShapeError(f"{op.name}.backward returned a gradient of shape {arr.shape} "
                             f"for {op.input_name(i)} of shape {shape}")
    if graph:
        return gi if isinstance(gi, Tensor) else _wrap(arr)
    if isinstance(gi, Tensor) and gi is grad_output:
        return g  # passed through: the engine knows to copy it before a .grad keeps it
    if x._retain and x.requires_grad and arr.base is None and arr.shape == shape and (
            arr.dtype == x.data.dtype):
        # It may become x.grad as it is, and later backwards add into .grad in place:
        # an array held elsewhere too (a saved tensor, an attribute of ctx) must not.
        arr = arr.copy()
    return arr


def _broadcasts(shape: tuple, to: tuple) -> bool:
    """Whether an array of `shape` broadcasts to `to` (so `to` sums back to `shape`)."""
    try:
        return np.broadcast_shapes(shape, to) == tuple(to)
    except ValueError:
        return False


__all__ = ["Function", "FunctionCtx"]
