"""`grad`: gradients of outputs with respect to chosen inputs, optionally as a graph."""

from __future__ import annotations

import numpy as np

from .engine import Node, enable_grad, run_backward
from .errors import ShapeError
from .tensor import Tensor, _wrap, fit_array, fit_node
from .value import Value


def _as_tuple(x, what: str) -> tuple:
    items = tuple(x) if isinstance(x, (list, tuple)) else (x,)
    if not items:
        raise ValueError(f"grad: {what} is empty")
    for i, item in enumerate(items):
        if not isinstance(item, Node):
            raise TypeError(f"grad: {what}[{i}] is a {type(item).__name__}, "
                            "expected a Tensor or a Value")
    return items


def _numbers(given, i: int) -> np.ndarray:
    """`grad_outputs[i]` as an array, refused unless it holds (int or float) numbers."""
    try:
        g = np.asarray(given)
    except (TypeError, ValueError):  # a ragged list
        g = None
    if g is None or g.dtype.kind not in "iuf":
        raise TypeError(f"grad: grad_outputs[{i}] must be a number or an array of numbers, "
                        f"got {given!r}")
    return g


def _seed(out, given, i: int, create_graph: bool):
    """The upstream gradient for output i: ones for a single element, else `given`."""
    if isinstance(out, Value):
        if given is None:
            g = 1.0
        elif isinstance(given, Value):
            g = float(given.data)
        else:
            g = _numbers(given, i)
            if g.size != 1:
                raise ShapeError(f"grad: grad_outputs[{i}] has shape {g.shape} but "
                                 f"outputs[{i}] is a Value (one number)")
            g = float(g.reshape(()))
        return Value(g) if create_graph else g
    if given is None:
        if out.size != 1:
            raise RuntimeError(f"grad: outputs[{i}] has shape {out.shape}; grad_outputs "
                               "can be omitted only for single-element outputs")
        g = np.ones_like(out.data)
    elif isinstance(given, Tensor):
        if given.shape != out.shape:
            raise ShapeError(f"grad: grad_outputs[{i}] has shape {given.shape} but "
                             f"outputs[{i}] has shape {out.shape}")
        return given if create_graph else given.data
    else:
        g = _numbers(given, i).astype(out.dtype, copy=False)
        if g.shape != out.shape:
            raise ShapeError(f"grad: grad_outputs[{i}] has shape {g.shape} but "
                             f"outputs[{i}] has shape {out.shape}")
    return _wrap(g) if create_graph else g


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """The gradients of `outputs` with respect to `inputs`, as a tuple; `.grad` is untouched.

    With `create_graph=True` the returned gradients are graph nodes themselves, so they
    can be differentiated again (to any order). `retain_graph` defaults to `create_graph`.

    >>> x = Tensor(3.0, requires_grad=True)
    >>> (dx,) = grad(x ** 3, x, create_graph=True)   # 3 x^2 = 27
    >>> (dxx,) = grad(dx, x)                          # 6 x = 18
    >>> float(dx), float(dxx)
    (27.0, 18.0)
    """
    outs = _as_tuple(outputs, "outputs")
    ins = _as_tuple(inputs, "inputs")
    if retain_graph is None:
        retain_graph = create_graph
    scalar = isinstance(outs[0], Value)
    if any(isinstance(n, Value) != scalar for n in outs + ins):
        raise TypeError("grad: outputs and inputs must all be Tensors or all be Values")
    for i, out in enumerate(outs):
        if not out.requires_grad:
            raise RuntimeError(f"grad: outputs[{i}] does not require grad (no input it was "
                               "computed from requires grad)")
    for i, inp in enumerate(ins):
        if not inp.requires_grad:
            raise RuntimeError(f"grad: inputs[{i}] does not require grad")
    if grad_outputs is None:
        given = (None,) * len(outs)
    else:
        given = tuple(grad_outputs) if isinstance(grad_outputs, (list, tuple)) else (grad_outputs,)
        if len(given) != len(outs):
            raise ValueError(f"grad: {len(given)} grad_outputs for {len(outs)} outputs")
    seeds = tuple(_seed(o, g, i, create_graph) for i, (o, g) in enumerate(zip(outs, given)))

    capture = dict.fromkeys(ins)
    fit = None if scalar else (fit_node if create_graph else fit_array)
    if create_graph:
        with enable_grad():
            run_backward(outs, seeds, retain_graph=retain_graph, create_graph=True,
                         capture=capture, sum_to=fit)
    else:
        run_backward(outs, seeds, retain_graph=retain_graph, capture=capture, sum_to=fit)

    results = []
    for i, inp in enumerate(ins):
        g = capture[inp]
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: inputs[{i}] is not used to compute the outputs; "
                                   "pass allow_unused=True to get None for it")
            results.append(None)
        elif create_graph:
            results.append(g)
        elif scalar:
            results.append(Value(g))
        else:
            results.append(_wrap(np.array(g, dtype=inp.data.dtype)))
    return tuple(results)
