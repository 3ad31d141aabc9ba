"""`gradcheck`: analytic gradients against central finite differences."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .differentiate import grad
from .errors import GradcheckError
from .tensor import Tensor
from .value import Value


def _numbers(x) -> np.ndarray:
    return np.asarray(x.data, dtype=np.float64)


def gradcheck(fn: Callable, inputs: Sequence, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check d fn(*inputs) / d input for every input that requires grad.

    A single-element output (a Value, a loss) is checked as it is: for every element e
    of every input, the gradient backward() gives against the central difference
    (f(x + eps e) - f(x - eps e)) / 2eps; a second backward, seeded with a number other
    than 1, must scale every gradient by that number. An output of any other shape is
    checked along a random direction v of its shape (from `seed`): v . J against the
    central difference of sum(v * f). Returns True, or raises GradcheckError naming the
    input, the index, what was compared and both values of the worst mismatch. float32
    (or float16) inputs are checked through float64 copies.

    >>> gradcheck(lambda x: (x * x).tanh(), [Tensor([0.3, -1.2], requires_grad=True)])
    True
    """
    inputs = list(inputs)
    if not inputs or not all(isinstance(x, (Tensor, Value)) for x in inputs):
        raise TypeError("gradcheck: inputs must be a non-empty sequence of Tensors or Values")
    # Central differences with a small eps need float64: lower-precision inputs are
    # checked through float64 copies (the same math, without float32's rounding noise).
    inputs = [Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad, label=x.label)
              if isinstance(x, Tensor) and x.dtype.kind == "f" and x.dtype.itemsize < 8
              else x for x in inputs]
    wanted = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not wanted:
        raise ValueError("gradcheck: no input requires grad")

    out = fn(*inputs)
    if not isinstance(out, (Tensor, Value)):
        raise TypeError(f"gradcheck: fn must return a Tensor or a Value, got {type(out).__name__}")
    shape = np.shape(out.data)
    single = math.prod(shape) == 1
    rng = np.random.default_rng(seed)
    # One element: seeded with 1, so a failure reports the user's own gradient entries.
    direction = np.ones(shape) if single else rng.standard_normal(shape)
    if single:
        compared = "d(output)/d(input[index])"
    else:
        compared = (f"d(sum(v * output))/d(input[index]), with v a random array of the "
                    f"output's shape {shape} (seed={seed})")

    def gradients(cotangent, retain: bool) -> list:
        g = cotangent.astype(out.dtype) if isinstance(out, Tensor) else float(cotangent)
        got = grad(out, [inputs[i] for i in wanted], grad_outputs=g, retain_graph=retain,
                   allow_unused=True)
        return [None if a is None else _numbers(a) for a in got]

    analytic = gradients(direction, single)  # the graph is kept for a second seed

    def projected(args) -> float:
        # Recorded like any call (not under no_grad): fn may itself differentiate.
        return float(np.sum(_numbers(fn(*args)) * direction))

    worst = None  # (excess over tolerance, input, index, analytic, numerical)
    for k, i in enumerate(wanted):
        x = inputs[i]
        base = _numbers(x)
        got = np.zeros_like(base) if analytic[k] is None else analytic[k]
        for index in np.ndindex(base.shape):
            def shifted(delta):
                moved = base.copy()
                moved[index] += delta
                if isinstance(x, Value):
                    replacement = Value(float(moved))
                else:
                    replacement = Tensor(moved.astype(x.dtype), requires_grad=True)
                args = list(inputs)
                args[i] = replacement
                return projected(args)

            numerical = (shifted(eps) - shifted(-eps)) / (2 * eps)
            a = float(got[index])
            excess = abs(a - numerical) - (atol + rtol * abs(numerical))
            if not np.isfinite(a) or not np.isfinite(numerical):
                excess = np.inf if not (np.isnan(a) and np.isnan(numerical)) else -np.inf
            if excess > 0 and (worst is None or excess > worst[0]):
                worst = (excess, i, index, a, numerical)
    if worst is not None:
        _, i, index, a, numerical = worst
        raise GradcheckError(f"gradcheck: {_where(inputs, i, index)}: analytic gradient "
                             f"{a:.8g} but numerical {numerical:.8g} for {compared} "
                             f"(atol={atol}, rtol={rtol}, eps={eps})")
    if single:
        # Seeded with 1 only, a vjp that ignores its incoming gradient would pass.
        scale = 1.0 + float(rng.random())
        _check_linear(inputs, wanted, analytic, gradients(direction * scale, False), scale,
                      atol, rtol)
    return True


def _where(inputs, i: int, index) -> str:
    x = inputs[i]
    name = f"input {i}" + (f" ({x.label!r})" if getattr(x, "label", None) else "")
    shape = f" of shape {x.shape}" if isinstance(x, Tensor) else ""
    return f"{name}{shape} at index {index}"


def _check_linear(inputs, wanted, ones, scaled, scale: float, atol: float,
                  rtol: float) -> None:
    """Seeding the output with `scale` instead of 1 must scale every gradient by it."""
    for k, i in enumerate(wanted):
        if ones[k] is None or scaled[k] is None:
            continue
        expected = ones[k] * scale
        bad = ~np.isclose(scaled[k], expected, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            index = tuple(int(j) for j in np.argwhere(bad)[0])
            raise GradcheckError(
                f"gradcheck: {_where(inputs, i, index)}: with the output's gradient seeded "
                f"with {scale:.8g} instead of 1, backward gives {scaled[k][index]:.8g}, not "
                f"{scale:.8g} * {ones[k][index]:.8g} = {expected[index]:.8g}: a vjp "
                "ignores (or is not linear in) its incoming gradient")
