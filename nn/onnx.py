"""`export(model, example_input, path)`: a Sequential model of this library's layers as
an ONNX file (opset 17) that onnxruntime and other ONNX tools run.

The model is exported as in evaluation (dropout is the identity, batch norm uses its
running statistics); its train/eval flags are restored afterwards. Axis 0 of the input
is a dynamic batch dimension, the other sizes are the example's. Each layer becomes the
ONNX operators computing the same function:

    Linear            Gemm (2-D input) or MatMul + Add, W and b as initializers
    ReLU/Tanh/Sigmoid Mul by the gain h (skipped when h = 1 and fixed), then the activation
    Softmax           Softmax over the same axis
    Conv1d/Conv2d     Conv with the strides, pads, dilations and groups ('same' made explicit)
    MaxPool2d         MaxPool;  AvgPool2d: AveragePool (count_include_pad kept)
    AdaptiveAvgPool2d GlobalAveragePool for output 1x1; AveragePool when the output size
                      divides the input's (equal windows); anything else is refused
    BatchNorm1d/2d    BatchNormalization with the running mean and variance
    LayerNorm         LayerNormalization over the last len(normalized_shape) axes (weight
                      ones when elementwise_affine=False; no bias input without a bias)
    Embedding         Gather of the weight rows; only as the first layer, and then the
                      file's input is int64 indices (an integer example_input); ONNX
                      reads a negative index from the end, where our forward refuses it
    Flatten           Reshape (0 keeps a dimension, -1 is the merged one)
    Dropout/Identity  Identity

Embedding with max_norm is refused: its forward shrinks the weight in place, state a
file cannot carry (and the export's own forward would change the model). A LayerNorm
normalising over axis 0 is refused too: the batch axis is dynamic in the file.
A layer of any other class, a subclass of one of these (its forward may differ), or a
Sequential holding one is refused with an ExportError naming the class and its position.
The `onnx` package is imported only when export is called.
"""

from __future__ import annotations

import os

import numpy as np

from autodiff import Tensor, no_grad
from autodiff.ops_pool import pool_arguments, pool_geometry

from .activations import ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv1d, Conv2d, padding_pairs
from .dropout import Dropout
from .embedding import Embedding
from .layers import Flatten, Identity, Linear, Sequential
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

OPSET = 17
_DTYPES = {np.dtype(np.float32): "FLOAT", np.dtype(np.float64): "DOUBLE"}


class ExportError(ValueError):
    """A model (or one of its layers) that has no ONNX translation here."""


def _import_onnx():
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("nn.onnx.export needs the 'onnx' package: pip install onnx "
                          "(onnxruntime as well to run the exported file)") from error
    return onnx


class _Graph:
    """The nodes and initializers collected while walking the model."""

    def __init__(self, helper, numpy_helper, dtype: np.dtype):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()

    def name(self, wanted: str) -> str:
        """`wanted`, or `wanted` with a suffix if it is taken (names must be unique)."""
        name, k = wanted, 1
        while name in self._names:
            name, k = f"{wanted}_{k}", k + 1
        self._names.add(name)
        return name

    def constant(self, wanted: str, array, dtype=None) -> str:
        array = np.asarray(array, self.dtype if dtype is None else dtype)
        name = self.name(wanted)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list, where: str, **attributes) -> str:
        out = self.name(f"{where}.{op}" if where else op)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attributes))
        return out


def _data(t) -> np.ndarray:
    return np.asarray(t.data if isinstance(t, Tensor) else t)


def _image_rank(module: Module, x: np.ndarray, rank: int, where: str) -> None:
    if x.ndim != rank:
        raise ExportError(f"nn.onnx.export: layer {where} ({type(module).__name__}) gets an "
                          f"input of shape {x.shape}; ONNX needs it batched ({rank}-D), so "
                          "give a batched example_input")


def _linear(m: Linear, x, name: str, g: _Graph, where: str) -> str:
    weight = g.constant(f"{where}.weight", _data(m.weight))
    bias = None if m.bias is None else g.constant(f"{where}.bias", _data(m.bias))
    if x.ndim == 2:  # Gemm computes x W^T + b directly, W in our (out, in) layout
        return g.node("Gemm", [name, weight] + ([bias] if bias else []), where, transB=1)
    w_t = g.node("Transpose", [weight], where, perm=[1, 0])
    y = g.node("MatMul", [name, w_t], where)
    return y if bias is None else g.node("Add", [y, bias], where)


def _gained(m, x, name: str, g: _Graph, where: str) -> str:
    if m.learnable or m.h != 1.0:
        h = g.constant(f"{where}.h", _data(m.h) if m.learnable else m.h)
        name = g.node("Mul", [name, h], where)
    return g.node({ReLU: "Relu", Tanh: "Tanh", Sigmoid: "Sigmoid"}[type(m)], [name], where)


def _softmax(m: Softmax, x, name: str, g: _Graph, where: str) -> str:
    return g.node("Softmax", [name], where, axis=m.axis)


def _conv(m, x, name: str, g: _Graph, where: str) -> str:
    _image_rank(m, x, m.dims + 2, where)
    if m.padding_mode != "zeros":
        raise ExportError(f"nn.onnx.export: layer {where} ({type(m).__name__}) has "
                          f"padding_mode={m.padding_mode!r}; only 'zeros' is exported")
    pairs = padding_pairs(m.padding, m.kernel_size, m.stride, m.dilation, type(m).__name__)
    inputs = [name, g.constant(f"{where}.weight", _data(m.weight))]
    if m.bias is not None:
        inputs.append(g.constant(f"{where}.bias", _data(m.bias)))
    return g.node("Conv", inputs, where, kernel_shape=list(m.kernel_size),
                  strides=list(m.stride), dilations=list(m.dilation), group=m.groups,
                  pads=[p[0] for p in pairs] + [p[1] for p in pairs])


def _pool_attributes(kernel, stride, padding) -> dict:
    return dict(kernel_shape=list(kernel), strides=list(stride), pads=list(padding) * 2)


def _ceil_mode(m, x, dilation) -> int:
    """ONNX's ceil_mode only where it changes the output size. (When PyTorch's rule drops
    a last window that would start in the right padding, ceil and floor agree, and onnx's
    shape inference, which lacks that rule, would otherwise disagree with the runtime.)"""
    if not m.ceil_mode:
        return 0
    sizes = [pool_geometry(x.shape, m.kernel_size, m.stride, m.padding, dilation, ceil,
                           where=type(m).__name__).out for ceil in (False, True)]
    return int(sizes[0] != sizes[1])


def _max_pool(m: MaxPool2d, x, name: str, g: _Graph, where: str) -> str:
    _image_rank(m, x, 4, where)
    if m.return_indices:
        raise ExportError(f"nn.onnx.export: layer {where} (MaxPool2d) has "
                          "return_indices=True; a Sequential cannot pass a pair on")
    kernel, stride, padding, dilation = pool_arguments(m.kernel_size, m.stride, m.padding,
                                                       m.dilation, where="MaxPool2d")
    return g.node("MaxPool", [name], where, dilations=list(dilation),
                  ceil_mode=_ceil_mode(m, x, dilation),
                  **_pool_attributes(kernel, stride, padding))


def _avg_pool(m: AvgPool2d, x, name: str, g: _Graph, where: str) -> str:
    _image_rank(m, x, 4, where)
    if m.divisor_override is not None:
        raise ExportError(f"nn.onnx.export: layer {where} (AvgPool2d) has divisor_override="
                          f"{m.divisor_override}, which ONNX's AveragePool has no form of")
    kernel, stride, padding, _ = pool_arguments(m.kernel_size, m.stride, m.padding,
                                                where="AvgPool2d")
    return g.node("AveragePool", [name], where, ceil_mode=_ceil_mode(m, x, 1),
                  count_include_pad=int(m.count_include_pad),
                  **_pool_attributes(kernel, stride, padding))


def _adaptive_avg_pool(m: AdaptiveAvgPool2d, x, name: str, g: _Graph, where: str) -> str:
    from .functional import adaptive_output_size

    _image_rank(m, x, 4, where)
    size = adaptive_output_size(m.output_size, x.shape, "AdaptiveAvgPool2d")
    if size == (1, 1):
        return g.node("GlobalAveragePool", [name], where)
    if any(o == 0 or n % o for n, o in zip(x.shape[2:], size)):
        raise ExportError(f"nn.onnx.export: layer {where} (AdaptiveAvgPool2d) turns "
                          f"{x.shape[2:]} into {size}: the windows are unequal, which one "
                          "ONNX AveragePool cannot express (output 1, or a size dividing "
                          "the input's, can be exported)")
    kernel = [n // o for n, o in zip(x.shape[2:], size)]
    return g.node("AveragePool", [name], where, **_pool_attributes(kernel, kernel, (0, 0)))


def _batch_norm(m, x, name: str, g: _Graph, where: str) -> str:
    if m.running_mean is None:
        raise ExportError(f"nn.onnx.export: layer {where} ({type(m).__name__}) has no running "
                          "statistics (track_running_stats=False), so it normalises with "
                          "each batch's own; only running statistics are exported")
    n = m.num_features
    scale = _data(m.weight) if m.weight is not None else np.ones(n)
    shift = _data(m.bias) if m.bias is not None else np.zeros(n)
    inputs = [name, g.constant(f"{where}.weight", scale),
              g.constant(f"{where}.bias", shift),
              g.constant(f"{where}.running_mean", _data(m.running_mean)),
              g.constant(f"{where}.running_var", _data(m.running_var))]
    return g.node("BatchNormalization", inputs, where, epsilon=float(m.eps))


def _layer_norm(m: LayerNorm, x, name: str, g: _Graph, where: str) -> str:
    k = len(m.normalized_shape)
    if x.ndim <= k:
        raise ExportError(f"nn.onnx.export: layer {where} (LayerNorm) normalises over the "
                          f"last {k} axes of an input of shape {x.shape}, the batch axis "
                          "included; the file's batch axis is dynamic, so it is not exported")
    # Scale is a required input of LayerNormalization: ones stand for "no weight".
    scale = _data(m.weight) if m.weight is not None else np.ones(m.normalized_shape)
    inputs = [name, g.constant(f"{where}.weight", scale)]
    if m.bias is not None:
        inputs.append(g.constant(f"{where}.bias", _data(m.bias)))
    return g.node("LayerNormalization", inputs, where, axis=-k, epsilon=float(m.eps))


def _embedding(m: Embedding, x, name: str, g: _Graph, where: str) -> str:
    # The padding_idx row is an ordinary (zero, unless overwritten) row in the forward.
    return g.node("Gather", [g.constant(f"{where}.weight", _data(m.weight)), name], where,
                  axis=0)


def _flatten(m: Flatten, x, name: str, g: _Graph, where: str) -> str:
    start, end = m.start_dim % x.ndim, m.end_dim % x.ndim
    shape = [0] * start + [-1] + list(x.shape[end + 1:])
    target = g.constant(f"{where}.shape", shape, np.int64)
    return g.node("Reshape", [name, target], where)


def _identity(m, x, name: str, g: _Graph, where: str) -> str:
    return g.node("Identity", [name], where)


_TRANSLATIONS = {
    Linear: _linear, ReLU: _gained, Tanh: _gained, Sigmoid: _gained, Softmax: _softmax,
    Conv1d: _conv, Conv2d: _conv, MaxPool2d: _max_pool, AvgPool2d: _avg_pool,
    AdaptiveAvgPool2d: _adaptive_avg_pool, BatchNorm1d: _batch_norm,
    BatchNorm2d: _batch_norm, LayerNorm: _layer_norm, Embedding: _embedding,
    Flatten: _flatten, Dropout: _identity, Identity: _identity,
}


def _layers(model: Sequential, prefix: str = ""):
    """(position, layer) for each layer, nested Sequentials opened ("2.0" is the first
    layer of the Sequential at position 2)."""
    for name, module in model._registries()[1].items():
        where = f"{prefix}{name}"
        if type(module) is Sequential:
            yield from _layers(module, where + ".")
        else:
            yield where, module


def _supported() -> str:
    return ", ".join(sorted({cls.__name__ for cls in _TRANSLATIONS}))


def _check_embedding(where: str, layer, first: bool) -> None:
    if type(layer) is not Embedding:
        return
    if not first:
        raise ExportError(f"nn.onnx.export: layer {where} (Embedding) is not the first layer; "
                          "its indices would be another layer's floating-point output")
    if layer.max_norm is not None:
        raise ExportError(f"nn.onnx.export: layer {where} (Embedding) has max_norm="
                          f"{layer.max_norm}; its forward renormalises the weight rows in "
                          "place, state an ONNX file cannot carry")


def _example(example_input, dtype: np.dtype, indexed: bool) -> np.ndarray:
    """The example as the file's input: int64 indices for an Embedding, else `dtype`."""
    x = np.asarray(_data(example_input))
    if indexed:
        if x.dtype.kind not in "iu":
            raise ExportError(f"nn.onnx.export: the first layer is an Embedding, so "
                              f"example_input must hold integer indices, got dtype {x.dtype}")
        x = x.astype(np.int64)
        least = 1  # (batch,) indices are batched already: each gives a row
    else:
        x = x.astype(dtype)
        least = 2  # a 1-D input would make the features the batch
    if x.ndim < least or x.shape[0] < 1:
        raise ExportError(f"nn.onnx.export: example_input must be batched, at least "
                          f"{least}-D with a batch axis 0 of size at least 1, got shape "
                          f"{x.shape}")
    return x


def export(model: Module, example_input, path, *, dtype=np.float32,
           input_name: str = "input", output_name: str = "output") -> str:
    """Write `model` (an nn.Sequential, Sequentials nested allowed) to `path` as ONNX.

    `example_input` fixes every size but axis 0 (the batch, dynamic in the file) and
    is run through the model to follow the shapes; dtype (float32 by default, or float64)
    is the file's (its input is int64 when the first layer is an Embedding). Returns
    `path`.
    """
    onnx = _import_onnx()
    if type(model) is not Sequential:
        raise ExportError(f"nn.onnx.export: model is a {type(model).__name__}, not an "
                          "nn.Sequential; only Sequential models of these layers are "
                          f"exported: {_supported()}")
    dtype = np.dtype(dtype)
    if dtype not in _DTYPES:
        raise ExportError(f"nn.onnx.export: dtype must be float32 or float64, got {dtype}")
    layers = list(_layers(model))
    for where, layer in layers:  # every layer checked before any work is done
        if type(layer) not in _TRANSLATIONS:
            raise ExportError(f"nn.onnx.export: layer {where} ({type(layer).__name__}) has "
                              f"no ONNX translation; supported layers: {_supported()}")
        _check_embedding(where, layer, first=where == layers[0][0])
    indexed = bool(layers) and type(layers[0][1]) is Embedding
    x = _example(example_input, dtype, indexed)

    from onnx import helper, numpy_helper

    g = _Graph(helper, numpy_helper, dtype)
    current = g.name(input_name)
    g.name(output_name)
    batch_kept = True  # axis 0 of the output is the batch unless a Flatten merged it
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            for where, layer in layers:
                current = _TRANSLATIONS[type(layer)](layer, x, current, g, where)
                if type(layer) is Flatten and layer.start_dim % x.ndim == 0:
                    batch_kept = False
                x = _data(layer(Tensor(x)))
    finally:
        for m, training in flags:
            m.training = training
    elem = getattr(onnx.TensorProto, _DTYPES[dtype])
    in_elem = onnx.TensorProto.INT64 if indexed else elem
    in_shape = ["batch"] + list(np.asarray(_data(example_input)).shape[1:])
    out_shape = (["batch"] if batch_kept else [None]) + list(x.shape[1:])
    g.nodes.append(helper.make_node("Identity", [current], [output_name], name=output_name))
    graph = helper.make_graph(
        g.nodes, "autodiff_nn_model",
        [helper.make_tensor_value_info(input_name, in_elem, in_shape)],
        [helper.make_tensor_value_info(output_name, elem, out_shape)],
        initializer=g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="autodiff.nn")
    onnx_model.ir_version = min(onnx_model.ir_version, 8)  # what opset 17 runtimes read
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, os.fspath(path))
    return path


__all__ = ["export", "ExportError", "OPSET"]
