"""nn: neural networks on the autodiff engine.

Two paths that port by changing imports:
- scalar, micrograd-compatible: `Neuron`, `Layer`, `MLP` on lists of numbers / `Value`s;
- tensor, torch.nn-compatible: `Module`, `Parameter`, `Linear`, `Conv1d`, `Conv2d`,
  `Flatten`, `Unflatten`, `Identity`, `Sequential`, `ModuleList`, pooling (`MaxPool2d`,
  `AvgPool2d`, `AdaptiveAvgPool2d`), `BatchNorm1d`, `BatchNorm2d`, `Dropout`, activations
  with a gain h (`Sigmoid`, `Tanh`, `ReLU`), `Softmax`, losses, `nn.init`, `nn.functional`,
  `nn.optim`, `nn.data` (`TensorDataset`, `DataLoader`), and `save`/`load` in the
  safetensors format.

>>> import nn
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> net(np.zeros((2, 4))).shape
(2, 3)
"""

import numpy as np  # noqa: F401  (for the doctest above)

from . import data, functional, init, optim, utils
from . import onnx  # (cheap: the onnx package itself is imported only by onnx.export)
from .activations import ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv1d, Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .layers import Flatten, Identity, Linear, ModuleList, Sequential, Unflatten
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d
from .normalization import LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .scalar import MLP, Layer, Neuron
from .serialization import CheckpointError, load, save
from .live import TrainingView, layer_gradient_norms
from .train import History, accuracy, evaluate, fit


def __getattr__(name):
    # matplotlib stays out of the import path until a plot is asked for.
    if name in ("plot_history", "plot_decision_boundary", "plot"):
        import importlib

        plot = importlib.import_module(".plot", __name__)
        return plot if name == "plot" else getattr(plot, name)
    raise AttributeError(f"module 'nn' has no attribute {name!r}")


__all__ = [
    "Neuron", "Layer", "MLP",
    "Module", "Parameter", "Linear", "Flatten", "Unflatten", "Identity", "Sequential",
    "ModuleList", "Conv1d", "Conv2d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout",
    "Embedding", "LayerNorm",
    "Sigmoid", "Tanh", "ReLU", "Softmax",
    "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU",
    "MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
    "optim", "utils", "data", "functional", "init", "save", "load", "CheckpointError",
    "fit", "evaluate", "accuracy", "History", "TrainingView", "layer_gradient_norms", "plot_history", "plot_decision_boundary",
]
