"""autodiff: reverse-mode automatic differentiation on scalars (`Value`) and numpy arrays
(`Tensor`), with one graph engine for both and pictures of the chain rule at work."""

import importlib

from .checking import gradcheck
from .differentiate import grad
from .engine import enable_grad, gc_paused, is_grad_enabled, no_grad
from .errors import GradcheckError, ShapeError
from .ops import OPS
from .rng import manual_seed
from .saving import CheckpointError, load, save
from .tensor import Tensor, concatenate, maximum, minimum, stack, where
from .value import Value

__version__ = "0.1.0"

__all__ = [
    "Value", "Tensor", "no_grad", "enable_grad", "is_grad_enabled", "gc_paused", "grad", "gradcheck",
    "manual_seed", "maximum", "minimum", "where", "concatenate", "stack", "OPS",
    "ShapeError", "GradcheckError", "draw_graph", "chain_rule", "save", "load", "CheckpointError",
]


def __getattr__(name):
    # The renderer imports graphviz; keep it out of the engine's import path.
    # (import_module, not `from . import viz`, which would call back into this hook.)
    if name in ("draw_graph", "chain_rule", "backward_steps", "viz"):
        viz = importlib.import_module(".viz", __name__)
        return viz if name == "viz" else getattr(viz, name)
    raise AttributeError(f"module 'autodiff' has no attribute {name!r}")
