"""nn.onnx.export: the file passes onnx.checker and, run in onnxruntime (CPU), gives our
model's outputs (float32 file against our float64 forward, within 1e-5) at any batch
size; layers without a translation are refused naming their class and position."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import nn
import nn.onnx
from nn.onnx import ExportError


def _require(name: str):
    # In CI a missing package must fail the run, not skip the file silently.
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


onnx = _require("onnx")
ort = _require("onnxruntime")


def _run(path, x: np.ndarray) -> np.ndarray:
    feed = x.astype(np.int64) if x.dtype.kind in "iu" else x.astype(np.float32)
    return _session(path).run(None, {"input": feed})[0]


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _check_same(net, x_example, xs, path, atol=1e-5):
    nn.onnx.export(net, x_example, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    # onnx's own shape inference must agree with the shapes the file declares.
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    was_training = net.training
    net.eval()
    for x in xs:
        want = np.asarray(net(x).data)
        got = _run(path, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)
    net.train(was_training)


def _randomise_batch_norms(net, rng):
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.data[...] = rng.standard_normal(n)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, n)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, n)
                m.bias.data[...] = rng.standard_normal(n)


def test_mlp_with_gains_matches_at_batch_1_and_7(tmp_path):
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(h=1.7), nn.Linear(16, 16),
                        nn.ReLU(h=0.5, learnable=True), nn.Linear(16, 8),
                        nn.Sigmoid(h=2.0, learnable=True), nn.Linear(8, 3), nn.Softmax())
    net[3].h.data[...] = 0.8  # a learned value, not the initial one, must be exported
    x = rng.standard_normal((7, 4))
    path = tmp_path / "mlp.onnx"
    _check_same(net, x[:2], [x[:1], x], path)
    names = {init.name for init in onnx.load(str(path)).graph.initializer}
    assert {"0.weight", "0.bias", "3.h", "5.h", "6.weight"} <= names
    assert not any(node.op_type == "Mul" for node in onnx.load(str(path)).graph.node
                   if node.name.startswith("7."))  # Softmax has no gain


def test_lenet_with_batch_norm_pooling_dropout_in_eval(tmp_path):
    rng = np.random.default_rng(1)
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
                      nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.Tanh(), nn.AvgPool2d(2)),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(400, 120), nn.BatchNorm1d(120),
        nn.ReLU(), nn.Identity(), nn.Linear(120, 10))
    _randomise_batch_norms(net, rng)
    net.train()  # export must evaluate, and leave the flags as they were
    x = rng.standard_normal((7, 1, 28, 28))
    path = tmp_path / "lenet.onnx"
    nn.onnx.export(net, x[:3], path)
    assert net.training and net[3].training
    _check_same(net, x[:3], [x[:1], x], path)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(4, 6, 3, stride=2, padding=(1, 2), dilation=(2, 1), groups=2), (3, 4, 11, 9)),
    (nn.Conv2d(3, 3, (3, 2), padding="same", dilation=(2, 1), groups=3, bias=False),
     (2, 3, 8, 7)),  # "same" pads (2, 2) rows but (0, 1) columns: uneven
    (nn.Conv1d(2, 4, 3, stride=2, padding=1), (3, 2, 10)),
    (nn.MaxPool2d(3, stride=2, padding=1, dilation=1), (2, 3, 9, 8)),
    (nn.MaxPool2d(2, stride=2, dilation=2), (2, 3, 9, 8)),
    (nn.MaxPool2d(3, stride=2, ceil_mode=True), (2, 3, 10, 8)),
    # PyTorch drops a last window that would start in the right padding: 3 -> 2, not 3.
    (nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True), (2, 3, 3, 5)),
    (nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True), (2, 3, 3, 5)),
    (nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 9, 8)),
    (nn.AvgPool2d(2, ceil_mode=True), (2, 3, 9, 7)),
    (nn.AdaptiveAvgPool2d(1), (2, 3, 5, 7)),
    (nn.AdaptiveAvgPool2d((2, None)), (2, 3, 6, 5)),
    (nn.BatchNorm1d(3), (4, 3)),
    (nn.BatchNorm1d(3, affine=False), (4, 3, 5)),
    (nn.Flatten(0, 1), (4, 3, 5)),
    (nn.Flatten(2, 3), (2, 3, 4, 5)),
    (nn.Softmax(dim=1), (2, 5, 3)),
    (nn.Linear(5, 2), (2, 3, 5)),  # a 3-D input goes through MatMul, not Gemm
])
def test_each_layer_matches(tmp_path, layer, shape):
    rng = np.random.default_rng(2)
    net = nn.Sequential(layer)
    _randomise_batch_norms(net, rng)
    for p in net.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((5,) + shape[1:])
    _check_same(net, x[:shape[0]], [x[:1], x] if layer_keeps_batch(layer) else
                [x[:shape[0]]], tmp_path / "layer.onnx")


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_flatten_linear_takes_int64_indices(tmp_path, padding_idx):
    rng = np.random.default_rng(4)
    net = nn.Sequential(nn.Embedding(10, 4, padding_idx=padding_idx), nn.Flatten(),
                        nn.Linear(12, 5), nn.Tanh())
    x = rng.integers(0, 10, (7, 3))
    x[0, 1] = 2  # the padding row, where there is one, is looked up too
    path = tmp_path / "emb.onnx"
    _check_same(net, x[:2].astype(np.int32), [x[:1], x], path)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [n.op_type for n in model.graph.node][0] == "Gather"
    with pytest.raises(Exception, match="(?i)indices"):  # out of range: the runtime refuses
        _run(path, np.full((1, 3), 10))


def test_embedding_of_a_1d_index_batch(tmp_path):
    net = nn.Sequential(nn.Embedding(6, 3), nn.Linear(3, 2))
    x = np.array([5, 0, 3, 3])
    _check_same(net, x[:2], [x[:1], x], tmp_path / "emb1d.onnx")


@pytest.mark.parametrize("norm", [
    nn.LayerNorm(6), nn.LayerNorm(6, eps=1e-2, bias=False),
    nn.LayerNorm(6, elementwise_affine=False)])
def test_linear_layer_norm_relu_matches(tmp_path, norm):
    rng = np.random.default_rng(5)
    net = nn.Sequential(nn.Linear(4, 6), norm, nn.ReLU())
    for p in norm.parameters():  # learned values, not the ones and zeros of the start
        p.data[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((7, 4))
    path = tmp_path / "ln.onnx"
    _check_same(net, x[:3], [x[:1], x], path)
    node = next(n for n in onnx.load(str(path)).graph.node
                if n.op_type == "LayerNormalization")
    assert len(node.input) == (3 if norm.bias is not None else 2)
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attributes["axis"] == -1
    assert attributes["epsilon"] == pytest.approx(norm.eps)


def test_layer_norm_over_the_last_two_axes(tmp_path):
    rng = np.random.default_rng(6)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten(2, 3),
                        nn.LayerNorm((3, 16)))
    for p in net[2].parameters():
        p.data[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((7, 2, 4, 4))
    _check_same(net, x[:2], [x[:1], x], tmp_path / "ln2.onnx")


def layer_keeps_batch(layer) -> bool:
    return not (type(layer) is nn.Flatten and layer.start_dim == 0)


def test_float64_file(tmp_path):
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    x = np.random.default_rng(3).standard_normal((4, 3))
    path = tmp_path / "f64.onnx"
    nn.onnx.export(net, x, path, dtype=np.float64)
    got = _session(path).run(None, {"input": x})[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, net(x).data, rtol=1e-12, atol=1e-12)


def test_float64_file_of_embedding_then_layer_norm(tmp_path):
    rng = np.random.default_rng(7)
    net = nn.Sequential(nn.Embedding(9, 6), nn.LayerNorm(6), nn.Flatten(), nn.Linear(24, 2))
    net[1].weight.data[...] = rng.standard_normal(6)
    x = rng.integers(0, 9, (5, 4))
    path = tmp_path / "emb_ln64.onnx"
    nn.onnx.export(net, x[:2], path, dtype=np.float64)
    got = _session(path).run(None, {"input": x})[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, net(x).data, rtol=1e-12, atol=1e-12)


def test_writes_exactly_the_path_given(tmp_path):
    path = tmp_path / "no_suffix_here"
    assert nn.onnx.export(nn.Sequential(nn.Linear(2, 2)), np.ones((1, 2)), path) == path
    assert os.listdir(tmp_path) == ["no_suffix_here"]


class Custom(nn.Module):
    def forward(self, x):
        return x * 2


class MyReLU(nn.ReLU):
    def forward(self, x):  # a subclass may compute something else: never exported as ReLU
        return super().forward(x) + 1


@pytest.mark.parametrize("net, message", [
    (nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), Custom())),
     r"layer 1\.1 \(Custom\) has no ONNX translation"),
    (nn.Sequential(nn.Linear(2, 2), MyReLU()), r"layer 1 \(MyReLU\)"),
    (nn.Sequential(nn.Linear(2, 2), nn.Unflatten(1, (1, 2))), r"layer 1 \(Unflatten\)"),
])
def test_unsupported_layer_is_named_with_its_position(tmp_path, net, message):
    with pytest.raises(ExportError, match=message):
        nn.onnx.export(net, np.ones((1, 2)), tmp_path / "x.onnx")
    assert not os.listdir(tmp_path)


def test_non_sequential_model_is_refused(tmp_path):
    with pytest.raises(ExportError, match="model is a Custom, not an nn.Sequential"):
        nn.onnx.export(Custom(), np.ones((1, 2)), tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="model is a Linear"):
        nn.onnx.export(nn.Linear(2, 2), np.ones((1, 2)), tmp_path / "x.onnx")


@pytest.mark.parametrize("net, shape, message", [
    (nn.Sequential(nn.AdaptiveAvgPool2d((2, 3))), (1, 1, 5, 7),
     r"layer 0 \(AdaptiveAvgPool2d\) turns \(5, 7\) into \(2, 3\)"),
    (nn.Sequential(nn.BatchNorm2d(2, track_running_stats=False)), (2, 2, 3, 3),
     r"layer 0 \(BatchNorm2d\) has no running statistics"),
    (nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), (1, 1, 4, 4), "divisor_override=3"),
    (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (1, 1, 4, 4), "return_indices"),
    (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), (1, 1, 4, 4),
     "padding_mode='reflect'"),
    (nn.Sequential(nn.Flatten(), nn.Conv2d(1, 1, 1)), (1, 1, 4, 4),
     r"layer 1 \(Conv2d\) gets an input of shape \(1, 16\)"),
    (nn.Sequential(nn.Linear(2, 2)), (0, 2), "batch axis 0 of size at least 1"),
    (nn.Sequential(nn.Linear(2, 2)), (2,), r"at least 2-D .* got shape \(2,\)"),
    (nn.Sequential(nn.LayerNorm((1, 2))), (1, 2),
     r"layer 0 \(LayerNorm\) normalises over the last 2 axes of an input of shape \(1, 2\)"),
    (nn.Sequential(nn.Embedding(3, 2)), (1, 2), "integer indices, got dtype float64"),
    (nn.Sequential(nn.Linear(2, 2), nn.Embedding(3, 2)), (1, 2),
     r"layer 1 \(Embedding\) is not the first layer"),
])
def test_layers_it_cannot_express_are_refused(tmp_path, net, shape, message):
    with pytest.raises(ExportError, match=message):
        nn.onnx.export(net, np.ones(shape), tmp_path / "x.onnx")


def test_embedding_with_max_norm_is_refused_and_left_unchanged(tmp_path):
    net = nn.Sequential(nn.Embedding(4, 3, max_norm=0.5), nn.Flatten())
    before = np.array(net[0].weight.data)
    with pytest.raises(ExportError, match=r"layer 0 \(Embedding\) has max_norm=0.5; .*in "
                                          "place"):
        nn.onnx.export(net, np.array([[0, 1], [2, 3]]), tmp_path / "x.onnx")
    np.testing.assert_array_equal(net[0].weight.data, before)  # no renorm ran
    assert not os.listdir(tmp_path)


def test_bad_dtype_is_refused(tmp_path):
    with pytest.raises(ExportError, match="dtype must be float32 or float64, got int32"):
        nn.onnx.export(nn.Sequential(nn.Linear(2, 2)), np.ones((1, 2)), tmp_path / "x",
                       dtype=np.int32)


def test_importing_nn_does_not_import_onnx():
    code = "import sys, nn, nn.onnx; assert nn.onnx.export; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             sys.path)})
    assert out.stdout.strip() == "False"
