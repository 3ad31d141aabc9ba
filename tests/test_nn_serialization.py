"""nn.save / nn.load: the safetensors layout, bit-exact round trips, and refusal of
damaged, foreign or mismatched files with the model left unchanged."""

import json
import pickle
import struct

import numpy as np
import pytest

import nn
from nn import CheckpointError


def _net(dtype=np.float64, hidden=5):
    return nn.Sequential(nn.Linear(3, hidden, dtype=dtype), nn.Tanh(h=0.5, learnable=True,
                                                                     dtype=dtype),
                         nn.Linear(hidden, 2, dtype=dtype))


def _snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _unchanged(model, snap):
    return all(np.array_equal(v, snap[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_bit_exact(tmp_path, rng, dtype):
    a, b = _net(dtype), _net(dtype)
    path = tmp_path / "model.safetensors"
    nn.save(a, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    nn.load(b, path)
    for k, v in a.state_dict().items():
        w = b.state_dict()[k]
        assert w.dtype == v.dtype and w.tobytes() == v.tobytes()
    x = rng.normal(size=(4, 3)).astype(dtype)
    assert np.array_equal(a(x).data, b(x).data)


def test_writes_exactly_the_given_path(tmp_path):
    path = tmp_path / "weights.bin"
    nn.save(_net(), str(path))
    assert path.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]


def test_layout(tmp_path):
    model = _net()
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    assert (8 + n) % 8 == 0
    header = json.loads(blob[8:8 + n])
    entry = header["0.weight"]
    assert entry["dtype"] == "F64" and entry["shape"] == [5, 3]
    begin, end = entry["data_offsets"]
    raw = np.frombuffer(blob[8 + n + begin:8 + n + end], dtype="<f8").reshape(5, 3)
    assert np.array_equal(raw, model[0].weight.data)
    assert header["1.h"]["shape"] == []


def _write(path, header: dict, data: bytes = b"") -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _damaged_files(good: bytes):
    (n,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + n])
    data = good[8 + n:]
    flipped = bytearray(good)
    flipped[-3] ^= 0xFF
    wrong_shape = json.loads(json.dumps(header))
    wrong_shape["0.weight"]["shape"] = [3, 5]
    bad_offsets = json.loads(json.dumps(header))
    bad_offsets["0.bias"]["data_offsets"][1] += 8
    return {
        "empty": b"",
        "random bytes": np.random.default_rng(1).bytes(300),
        "json file": json.dumps({"0.weight": [[1, 2, 3]]}).encode(),
        "pickle file": pickle.dumps({"0.weight": np.zeros((5, 3))}),
        "truncated data": good[:-10],
        "truncated header": good[:8 + n // 2],
        "flipped data byte": bytes(flipped),
        "huge header length": struct.pack("<Q", 2 ** 62) + good[8:],
        "offsets inconsistent": (bad_offsets, data),
        "shape inconsistent": (wrong_shape, data),
    }


def test_corrupted_truncated_and_foreign_files_are_rejected(tmp_path):
    model = _net()
    good_path = tmp_path / "good.safetensors"
    nn.save(model, good_path)
    good = good_path.read_bytes()
    target = _net()
    snap = _snapshot(target)
    cases = _damaged_files(good)
    for name, content in cases.items():
        path = tmp_path / f"{name}.bin"
        if isinstance(content, tuple):
            _write(path, *content)
        else:
            path.write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            nn.load(target, path)
        assert str(path) in str(info.value) or "nn.load" in str(info.value), name
        assert _unchanged(target, snap), name


@pytest.mark.parametrize("other, match", [
    (lambda: _net(hidden=6), r"shape \(6, 3\) in the file but \(5, 3\)"),
    (lambda: nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)), r"missing \['1.h'\]$"),
    (lambda: nn.Sequential(nn.Linear(3, 5), nn.Tanh(learnable=True), nn.Linear(5, 2),
                           nn.Linear(2, 2)), r"unexpected \['3.bias', '3.weight'\]"),
])
def test_mismatched_checkpoints_are_rejected(tmp_path, other, match):
    path = tmp_path / "other.safetensors"
    nn.save(other(), path)
    target = _net()
    snap = _snapshot(target)
    with pytest.raises(CheckpointError, match=match):
        nn.load(target, path)
    assert _unchanged(target, snap)


def test_scalar_models_are_refused(tmp_path):
    with pytest.raises(TypeError, match="nn.Module"):
        nn.save(nn.MLP(2, [3, 1]), tmp_path / "x")


def test_readable_by_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = _net(np.float32)
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    loaded = st.load_file(str(path))
    assert set(loaded) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v)


def test_reads_files_written_by_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    source = _net()
    path = tmp_path / "theirs.safetensors"
    st.save_file(dict(source.state_dict()), str(path))
    target = _net()
    nn.load(target, path)
    assert _unchanged(target, source.state_dict())


def test_readable_by_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    path = tmp_path / "m.safetensors"
    nn.save(ours, path)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 3)).double()
    theirs.load_state_dict(st_torch.load_file(str(path)))
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(theirs(torch.tensor(x)).detach().numpy(), ours(x).data,
                               rtol=1e-13)


def test_a_float32_checkpoint_loads_into_a_float64_model(tmp_path):
    # PyTorch's default dtype is float32: such checkpoints must load, converted.
    source = _net(np.float32)
    path = tmp_path / "f32.safetensors"
    nn.save(source, path)
    target = _net()
    nn.load(target, path)
    for name, value in target.state_dict().items():
        assert value.dtype == np.float64
        np.testing.assert_array_equal(value, source.state_dict()[name].astype(np.float64))


def test_integer_data_under_a_parameter_name_is_rejected(tmp_path):
    target = _net()
    arrays = {k: v for k, v in target.state_dict().items()}
    header, blobs, offset = {}, [], 0
    for name, value in arrays.items():
        data = (value.astype(np.int64) if name == "0.weight" else value).tobytes()
        code = "I64" if name == "0.weight" else "F64"
        header[name] = {"dtype": code, "shape": list(value.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    path = tmp_path / "ints.safetensors"
    _write(path, header, b"".join(blobs))
    snap = _snapshot(target)
    with pytest.raises(CheckpointError, match="'0.weight' has dtype int64 in the file but float64"):
        nn.load(target, path)
    assert _unchanged(target, snap)
