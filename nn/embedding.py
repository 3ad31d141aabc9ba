"""`Embedding`: a lookup table of num_embeddings vectors of size embedding_dim, with
PyTorch's arguments, initialisation (N(0, 1), the padding_idx row zero) and state_dict key
(`weight`, shape (num_embeddings, embedding_dim)).

    out[..., :] = weight[input[...], :]

The gradient of a row is the sum over every position that looked it up; the padding_idx
row is never updated (its gradient is zero).
"""

from __future__ import annotations

import numbers

import numpy as np

from autodiff import Tensor, no_grad
from autodiff.dtypes import as_dtype, check_device, get_default_dtype
from autodiff.errors import ShapeError

from . import init
from .functional import embedding, padding_index
from .module import Module, Parameter


def _positive(n, what: str) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"Embedding: {what} must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"Embedding: {what} must be positive, got {n}")
    return int(n)


class Embedding(Module):
    """A table of num_embeddings vectors of size embedding_dim, looked up by integer
    index tensors of any shape: (*) -> (*, embedding_dim).

    >>> Embedding(10, 3)(np.array([[1, 2], [4, 9]])).shape
    (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None,
                 dtype=None):
        super().__init__()
        self.num_embeddings = _positive(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive(embedding_dim, "embedding_dim")
        self.padding_idx = padding_index(padding_idx, self.num_embeddings, "Embedding")
        if max_norm is not None and (isinstance(max_norm, bool)
                                     or not isinstance(max_norm, numbers.Real)):
            raise TypeError(f"Embedding: max_norm must be a number or None, got {max_norm!r}")
        if sparse:
            raise NotImplementedError("Embedding: sparse=True (sparse gradients) is not "
                                      "supported; gradients are always dense")
        if scale_grad_by_freq:
            raise NotImplementedError("Embedding: scale_grad_by_freq=True is not supported")
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = False
        self.sparse = False
        if device is not None:
            check_device(device, "Embedding")
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            dtype = get_default_dtype() if dtype is None else as_dtype(dtype, "Embedding")
            self.weight = Parameter(np.empty(shape, dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            data = np.asarray(_weight.data if isinstance(_weight, Tensor) else _weight)
            if data.shape != shape:
                raise ShapeError(f"Embedding: _weight of shape {data.shape} does not match "
                                 f"(num_embeddings, embedding_dim) = {shape}")
            if dtype is not None:
                data = data.astype(as_dtype(dtype, "Embedding"))
            elif data.dtype.kind != "f":
                raise TypeError(f"Embedding: _weight must be floating-point, got dtype "
                                f"{data.dtype}")
            self.weight = Parameter(np.array(data), requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """weight ~ N(0, 1), then the padding_idx row to zero (in place)."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, input) -> Tensor:
        try:
            return embedding(input, self.weight, self.padding_idx, self.max_norm,
                             self.norm_type, self.scale_grad_by_freq, self.sparse)
        except (TypeError, IndexError, ShapeError) as err:  # say which layer it was
            raise type(err)(f"Embedding({self.extra_repr()}): {err}") from None

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None,
                        max_norm=None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is a copy of the 2-D `embeddings` (rows kept as they
        are, the padding row too); with freeze, weight does not require grad."""
        data = np.asarray(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if data.ndim != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-D "
                             f"(num_embeddings, embedding_dim), got shape {data.shape}")
        rows, dim = data.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=data, _freeze=bool(freeze))

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            text += f", norm_type={self.norm_type}"
        return text
