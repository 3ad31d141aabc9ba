"""nn.save / nn.load: the safetensors layout, bit-exact round trips, and refusal of
damaged, foreign or mismatched files with the model left unchanged."""

import json
import math
import os
import pickle
import re
import stat
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


# -- hostile headers and files that change while they are read

def _linear_file(tmp_path, name, header_bytes: bytes, data: bytes = b""):
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes + data)
    return path


def _entry(shape, offsets=None, dtype="F64", size=None):
    """A header for nn.Linear(2, 1) whose weight has this (hostile) shape, offsets or dtype,
    and data of the length it describes, so that only the hostile field is wrong."""
    itemsize = 2 if dtype == "BF16" else 8
    if offsets is None:
        offsets = [0, math.prod(shape) * itemsize]
    end = offsets[1] if type(offsets[1]) is int and offsets[1] < 10 ** 6 else 16
    header = json.dumps({"weight": {"dtype": dtype, "shape": shape, "data_offsets": offsets},
                         "bias": {"dtype": "F64", "shape": [1], "data_offsets": [end, end + 8]}}
                        ).encode()
    return header, bytes(end + 8 if size is None else size)


_HOSTILE = {
    "nested lists": ((b"[" * 100_000 + b"]" * 100_000, bytes(24)), "not a valid safetensors"),
    "nested objects": ((b'{"a":' * 100_000 + b"1" + b"}" * 100_000, bytes(24)),
                       "not a valid safetensors"),
    "integer of 5000 digits": ((b'{"weight": {"dtype": "F64", "shape": [1, 2], "data_offsets": '
                                b'[0, ' + b"9" * 5000 + b"]}}", bytes(24)),
                               "not a valid safetensors"),
    "offsets 10**400": (_entry([1, 2], [0, 10 ** 400]), "not a valid safetensors"),
    "shape 10**30": (_entry([10 ** 30, 0]), "not a valid safetensors"),
    "shape 2**62 x 2**62 x 0": (_entry([2 ** 62, 2 ** 62, 0]), "not a valid safetensors"),
    # safetensors accepts an empty tensor of any shape; numpy cannot make this one
    "shape 2**62 x 0": (_entry([2 ** 62, 0]), "too large for any array"),
    "shape 2**64-1 x 0": (_entry([2 ** 64 - 1, 0]), "too large for any array"),
    "65 dimensions": (_entry([1] * 63 + [2, 1]), "65 dimensions; numpy allows at most 64"),
    "65 empty dimensions": (_entry([0] * 65), "65 dimensions"),
    "dtype a list": (_entry([1, 2], dtype=["F64"]), "not a valid safetensors"),
    "dtype bfloat16": (_entry([1, 2], dtype="BF16"), "dtype BF16, which numpy cannot hold"),
    "a gap between tensors": (_entry([1, 2], [8, 24]), "not a valid safetensors"),
    "data cut short": (_entry([1, 2], size=20), "is truncated: its header describes 24 "
                                                "bytes of tensor data but the file holds 20"),
    "bytes after the data": (_entry([1, 2], size=30), "6 bytes after the last tensor"),
    "a name given twice": ((b'{"weight": {"dtype": "F64", "shape": [1, 2], "data_offsets": '
                            b'[0, 16]}, "bias": {"dtype": "F64", "shape": [1], "data_offsets": '
                            b'[16, 24]}, "weight": {"dtype": "F64", "shape": [1, 2], '
                            b'"data_offsets": [0, 16]}}', bytes(24)), "repeated key 'weight'"),
    "header not an object": ((b"[]", b""), "not a valid safetensors"),
    "header of a single space": ((b" ", b""), "not a valid safetensors"),
}


@pytest.mark.parametrize("name", _HOSTILE)
def test_hostile_headers_are_checkpoint_errors(tmp_path, name):
    (header, data), match = _HOSTILE[name]
    path = _linear_file(tmp_path, "hostile.safetensors", header, data)
    target = nn.Linear(2, 1)
    snap = _snapshot(target)
    with pytest.raises(CheckpointError, match=re.escape(repr(str(path))) + ".*" + match):
        nn.load(target, path)
    assert _unchanged(target, snap)


@pytest.mark.parametrize("keep", ["half the data", "half the header", "the length field"])
def test_a_file_that_shrinks_while_it_is_read(tmp_path, monkeypatch, keep):
    # the reader takes the size first (fstat), then reads: a file truncated in between
    path = tmp_path / "m.safetensors"
    nn.save(_net(), path)
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    size = {"half the data": 8 + n + (len(blob) - 8 - n) // 2, "half the header": 8 + n // 2,
            "the length field": 4}[keep]
    real_fstat = os.fstat

    def fstat_then_truncate(fd):
        result = real_fstat(fd)
        os.truncate(path, size)
        return result

    monkeypatch.setattr(os, "fstat", fstat_then_truncate)
    target = _net()
    snap = _snapshot(target)
    with pytest.raises(CheckpointError, match=re.escape(repr(str(path))) + " is truncated"):
        nn.load(target, path)
    assert _unchanged(target, snap)


def test_save_over_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    nn.save(_net(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    os.chmod(path, 0o604)
    nn.save(_net(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o604
    nn.load(_net(), path)


def test_save_to_a_new_file_uses_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        nn.save(_net(), tmp_path / "new.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.safetensors").st_mode) == 0o640


def test_a_file_that_grows_while_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    nn.save(_net(), path)
    real_fstat = os.fstat

    def fstat_then_append(fd):
        result = real_fstat(fd)
        with open(path, "ab") as f:
            f.write(b"more")
        return result

    monkeypatch.setattr(os, "fstat", fstat_then_append)
    with pytest.raises(CheckpointError, match=re.escape(repr(str(path))) + " grew while"):
        nn.load(_net(), path)


def test_a_failed_save_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    nn.save(_net(hidden=4), path)
    before = path.read_bytes()

    def no_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        nn.save(_net(), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_a_dtype_safetensors_cannot_store_is_refused(tmp_path):
    model = nn.Linear(2, 1)
    model.weight = nn.Parameter(np.zeros((1, 2), dtype=np.longdouble))
    with pytest.raises(TypeError, match=r"nn.save: 'weight' has dtype float128, which "
                                        "safetensors cannot store"):
        nn.save(model, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_every_truncation_and_every_header_bit_flip_is_refused(tmp_path):
    # the whole of a small file: cut at every byte, and every bit of its header flipped.
    # A flip in the checksum's own key leaves a file without one (as PyTorch writes them):
    # its intact data may load, but never anything else.
    model = nn.Linear(2, 1)
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    good = path.read_bytes()
    (n,) = struct.unpack("<Q", good[:8])
    damaged = []
    for k in list(range(len(good))) + [len(good) + 1]:
        damaged.append(tmp_path / f"cut{k}")
        damaged[-1].write_bytes((good + b"\0")[:k])
    for i in range(8 + n):
        for bit in range(8):
            flipped = bytearray(good)
            flipped[i] ^= 1 << bit
            damaged.append(bytes(flipped))
    target = nn.Linear(2, 1)
    target.load_state_dict(model.state_dict())  # so that loading the intact data is no change
    snap = _snapshot(target)
    loaded = []
    for case in damaged:
        if isinstance(case, bytes):
            with open(path, "r+b") as f:  # in place: truncating a file is slow on some disks
                f.write(case)
        try:
            nn.load(target, path if isinstance(case, bytes) else case)
            loaded.append(case)
        except CheckpointError as err:
            assert "nn.load: " in str(err)
        assert _unchanged(target, snap)
    assert all(isinstance(case, bytes) and b'"autodiff.sha256"' not in case for case in loaded)
    assert len(loaded) <= 8 * len("autodiff.sha256")


def test_the_first_nn_save_checksum_is_still_checked(tmp_path):
    # files of the first nn.save carry "nn.sha256", the SHA-256 of the data section
    st = pytest.importorskip("safetensors.numpy")
    import hashlib
    model = nn.Linear(2, 1)
    path = tmp_path / "old.safetensors"
    for checksum, ok in [(hashlib.sha256(b"").hexdigest(), False), (None, True)]:
        st.save_file(dict(model.state_dict()), str(path))
        blob = path.read_bytes()
        (n,) = struct.unpack("<Q", blob[:8])
        checksum = checksum or hashlib.sha256(blob[8 + n:]).hexdigest()
        st.save_file(dict(model.state_dict()), str(path),
                     metadata={"format": "np", "nn.sha256": checksum})
        if ok:
            nn.load(nn.Linear(2, 1), path)
        else:
            with pytest.raises(CheckpointError, match="does not match its checksum"):
                nn.load(nn.Linear(2, 1), path)


class _Trap:
    """Unpickling this creates a file: proof that a loader unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_and_torch_save_files_are_refused_unopened(tmp_path):
    marker = tmp_path / "unpickled"
    trap = tmp_path / "trap.pt"
    trap.write_bytes(pickle.dumps({"0.weight": _Trap(str(marker))}))
    with pytest.raises(CheckpointError, match="never unpickled"):
        nn.load(_net(), trap)
    torch = pytest.importorskip("torch")
    zipped = tmp_path / "model.pt"
    torch.save({"0.weight": _Trap(str(marker))}, zipped)
    with pytest.raises(CheckpointError, match="torch.save zip or a pickle"):
        nn.load(_net(), zipped)
    assert not marker.exists()


def test_reads_files_written_by_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    path = tmp_path / "theirs.safetensors"
    st_torch.save_file(theirs.state_dict(), str(path))
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    nn.load(ours, path)  # float32 from torch into our float64 model
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], value.numpy().astype(np.float64))
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x, dtype=torch.float32))
                               .detach().numpy(), rtol=1e-5, atol=1e-6)


def test_safe_open_sees_our_checksum_and_tensors(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    model = _net()
    path = tmp_path / "m.safetensors"
    nn.save(model, path)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert set(f.metadata()) == {"format", "autodiff.sha256"}
        for name, value in model.state_dict().items():
            assert f.get_tensor(name).tobytes() == value.tobytes()


def test_save_and_load_keep_buffers_such_as_running_statistics(tmp_path):
    import autodiff
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    net(autodiff.randn(8, 3))  # one training step moves the running statistics
    nn.save(net, tmp_path / "bn.safetensors")
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    nn.load(other, tmp_path / "bn.safetensors")
    for (k, a), (k2, b) in zip(net.state_dict().items(), other.state_dict().items()):
        assert k == k2 and np.array_equal(np.asarray(a), np.asarray(b)), k
    assert int(np.asarray(other.state_dict()["1.num_batches_tracked"])) == 1
