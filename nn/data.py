"""Small in-memory datasets made in code from a seed, a train/test split, a mini-batch
loader, and scikit-learn's 8x8 digits (optional).

Every `make_*` returns (X, y): X of shape (n, 2) float64, y of shape (n,) int64.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from autodiff import Tensor
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


class DataLoader:
    """Mini-batches of equally long arrays, as tuples of Tensors (or one Tensor for one
    array); reshuffled every pass when `shuffle` (with autodiff's seeded generator, or `rng`).

    >>> X, y = np.zeros((10, 2)), np.arange(10)
    >>> [len(xb) for xb, yb in DataLoader(X, y, batch_size=4)]
    [4, 4, 2]
    """

    def __init__(self, *arrays, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, rng: np.random.Generator | None = None):
        if not arrays:
            raise ValueError("DataLoader: give at least one array")
        self.arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise ValueError(f"DataLoader: arrays have different lengths "
                             f"{[len(a) for a in self.arrays]}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.n = lengths.pop()
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = rng

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator:
        if self.shuffle:
            order = (self.rng or generator()).permutation(self.n)
        else:
            order = None
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, self.n), self.batch_size):
            if order is None:
                batch = [Tensor(a[start:start + self.batch_size]) for a in self.arrays]
            else:
                idx = order[start:start + self.batch_size]
                batch = [Tensor(a[idx]) for a in self.arrays]
            yield batch[0] if len(batch) == 1 else tuple(batch)


def batches(*arrays, batch_size: int = 32, shuffle: bool = True, drop_last: bool = False,
            rng: np.random.Generator | None = None) -> Iterator:
    """One pass of mini-batches over the arrays (see DataLoader)."""
    return iter(DataLoader(*arrays, batch_size=batch_size, shuffle=shuffle,
                           drop_last=drop_last, rng=rng))
