"""`gradcheck`: analytic gradients against central finite differences."""

from __future__ import annotations

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

    fn may return a tensor of any shape: both sides are compared along a random
    direction v of the output, i.e. v . J against (f(x + eps e) - f(x - eps e)) . v / 2eps
    for every element e of every input. Returns True, or raises GradcheckError naming
    the input, the index and both values of the worst mismatch. float32 (or float16)
    inputs are checked through float64 copies.

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
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(np.shape(out.data))
    if isinstance(out, Tensor):
        cotangent = direction.astype(out.dtype)
        analytic = grad(out, [inputs[i] for i in wanted], grad_outputs=cotangent,
                        allow_unused=True)
    else:
        cotangent = float(direction)
        analytic = grad(out, [inputs[i] for i in wanted], grad_outputs=cotangent,
                        allow_unused=True)

    def projected(args) -> float:
        # Recorded like any call (not under no_grad): fn may itself differentiate.
        return float(np.sum(_numbers(fn(*args)) * direction))

    worst = None  # (excess over tolerance, input, index, analytic, numerical)
    for k, i in enumerate(wanted):
        x = inputs[i]
        base = _numbers(x)
        got = np.zeros_like(base) if analytic[k] is None else _numbers(analytic[k])
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
        x = inputs[i]
        name = f"input {i}" + (f" ({x.label!r})" if getattr(x, "label", None) else "")
        shape = f" of shape {x.shape}" if isinstance(x, Tensor) else ""
        raise GradcheckError(f"gradcheck: {name}{shape} at index {index}: analytic gradient "
                             f"{a:.8g} but numerical {numerical:.8g} (atol={atol}, "
                             f"rtol={rtol}, eps={eps})")
    return True
