"""The scalar path, micrograd-compatible: neurons, layers and MLPs of `Value`s.

    Neuron:  y = f(sum_i w_i x_i + b),  w_i ~ U(-1, 1), b = 0
    Layer:   nout neurons reading the same inputs
    MLP:     layers of sizes nouts; hidden layers use `activation`, the last is linear

Weights are drawn one at a time with Python's `random.uniform(-1, 1)`, layer by layer,
neuron by neuron, as micrograd draws them: after `random.seed(n)` (or
`autodiff.manual_seed(n)`, which seeds `random` too) a model starts from exactly the
weights micrograd's would.
"""

from __future__ import annotations

import numbers
import random
import weakref
from typing import Sequence

from autodiff import Value
from autodiff.value import affine

from .module import zero_grads

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


class ScalarModule:
    """micrograd's Module: `parameters()` (a list of Values) and `zero_grad()`."""

    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        zero_grads(self.parameters())


def _activation(nonlin: bool, activation: str | None) -> str:
    if activation is None:
        return "relu" if nonlin else "linear"
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation if nonlin else "linear"


class Neuron(ScalarModule):
    """f(w . x + b) on a list of numbers or Values.

    >>> n = Neuron(2, nonlin=False)
    >>> n([1.0, 0.0]).data == n.w[0].data
    True
    """

    def __init__(self, nin: int, nonlin: bool = True, *, activation: str | None = None):
        if nin < 1:
            raise ValueError(f"Neuron: nin must be >= 1, got {nin}")
        self.activation = _activation(nonlin, activation)  # (checked before any draw)
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.nonlin = self.activation != "linear"

    def __call__(self, x: Sequence) -> Value:
        if isinstance(x, (Value, numbers.Number)):
            x = [x]
        if len(x) != len(self.w):
            raise ValueError(f"Neuron: expected {len(self.w)} inputs, got {len(x)}")
        act = affine(self.b, self.w, x)  # one node for b + w . x (see autodiff.value.affine)
        return act if self.activation == "linear" else getattr(act, self.activation)()

    def parameters(self) -> list[Value]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        name = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "linear": "Linear"}
        return f"{name[self.activation]}Neuron({len(self.w)})"


class Layer(ScalarModule):
    """nout neurons on the same inputs; a single-output layer returns one Value."""

    def __init__(self, nin: int, nout: int, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(ScalarModule):
    """Multi-layer perceptron: hidden layers use `activation` (ReLU by default), the last
    layer is linear.

    >>> MLP(3, [4, 4, 1])
    MLP of [Layer of [ReLUNeuron(3), ReLUNeuron(3), ReLUNeuron(3), ReLUNeuron(3)], Layer of [ReLUNeuron(4), ReLUNeuron(4), ReLUNeuron(4), ReLUNeuron(4)], Layer of [LinearNeuron(4)]]
    """

    def __init__(self, nin: int, nouts: Sequence[int], *, activation: str = "relu"):
        _activation(True, activation)
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1,
                             activation=activation) for i in range(len(nouts))]
        _MODELS.add(self)  # (the explorer groups a graph's nodes by the calls of these)

    def __call__(self, x: Sequence) -> Value | list[Value]:
        for layer in self.layers:
            x = layer([x] if isinstance(x, Value) else x)
        return x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


_MODELS: "weakref.WeakSet[MLP]" = weakref.WeakSet()


def live_models() -> list:
    """The scalar MLPs still alive (a picture finds the one whose weights a graph reads)."""
    return list(_MODELS)
