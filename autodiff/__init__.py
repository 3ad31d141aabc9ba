"""autodiff: reverse-mode automatic differentiation on scalars (`Value`) and numpy arrays
(`Tensor`), with one graph engine for both and pictures of the chain rule at work."""

import importlib

from .checking import gradcheck
from .differentiate import grad
from .engine import enable_grad, gc_paused, is_grad_enabled, no_grad
from .errors import GradcheckError, ShapeError
from .function import Function, FunctionCtx
from .ops import OPS
from .rng import manual_seed
from .saving import CheckpointError, load, save
from .scope import Scope, scope
from .tensor import Tensor, concatenate, maximum, minimum, where
from .value import Value
from .compile import CompileError, compile  # noqa: A001 (shadows the builtin here only)

# PyTorch's names (code written for torch runs with `import autodiff as torch`).
# (These shadow builtins such as sum, max and float inside this file only.)
from . import autograd, factories, functions
from .dtypes import (
    bool_ as bool, device, double, float16, float32, float64, get_default_dtype, half,
    int8, int16, int32, int64, long, set_default_dtype, short, uint8)
from .dtypes import float32 as float  # torch.float is float32
from .dtypes import int32 as int  # torch.int is int32
from .factories import *  # noqa: F401,F403  (tensor, zeros, randn, ... see factories.py)
from .functions import *  # noqa: F401,F403  (sum, cat, argmax, ... see functions.py)
from .torch_methods import Size
from .accelerators import accelerator, backends, cuda

__version__ = "0.1.0"

__all__ = [
    "Value", "Tensor", "no_grad", "enable_grad", "is_grad_enabled", "gc_paused", "grad", "gradcheck",
    "Function", "FunctionCtx", "manual_seed", "maximum", "minimum", "where", "concatenate",
    "stack", "OPS", "scope", "Scope", "save", "load", "CheckpointError",
    "ShapeError", "GradcheckError", "draw_graph", "chain_rule",
    "autograd", "Size", "device", "cuda", "backends", "accelerator", "get_default_dtype",
    "set_default_dtype", "float16", "half", "float32", "float", "float64", "double", "int8",
    "uint8", "int16", "short", "int32", "int", "int64", "long", "bool",
] + factories.__all__ + functions.__all__


def __getattr__(name):
    # The renderer imports graphviz; keep it out of the engine's import path.
    # (import_module, not `from . import viz`, which would call back into this hook.)
    if name in ("draw_graph", "chain_rule", "backward_steps", "viz"):
        viz = importlib.import_module(".viz", __name__)
        return viz if name == "viz" else getattr(viz, name)
    if name == "explore":
        return importlib.import_module(".viz.explore", __name__).explore
    # With `import autodiff as torch`, torch.nn, torch.optim and torch.utils.data are
    # the `nn` package's (imported on first use: nn itself imports autodiff).
    if name == "nn":
        return importlib.import_module("nn")
    if name == "optim":
        return importlib.import_module("nn.optim")
    if name == "utils":
        return _Utils()
    raise AttributeError(f"module 'autodiff' has no attribute {name!r}")


class _Utils:
    """`torch.utils.data` is `nn.data`."""

    @property
    def data(self):
        return importlib.import_module("nn.data")
