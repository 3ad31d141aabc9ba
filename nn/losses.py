"""Losses with PyTorch's signatures and `reduction='mean'|'sum'|'none'`.

    MSELoss            (x - y)^2            (with half=True: (x - y)^2 / 2, the lecture's 1/2 MSE)
    BCELoss            -(y log p + (1 - y) log(1 - p)),  each log clamped to >= -100
    BCEWithLogitsLoss  softplus(x) - x y,  softplus(x) = log(1 + e^x) = logsumexp(0, x)
    CrossEntropyLoss   -log_softmax(x)[label]  (or -sum_c t_c log_softmax(x)_c for
                       class probabilities t)

All are composed from engine primitives, so their gradients (to any order) come from the
engine's op table.
"""

from __future__ import annotations

import numbers

import numpy as np

import autodiff
from autodiff import OPS, Tensor
from autodiff.compile import replayable
from autodiff.errors import ShapeError
from autodiff.tensor import _derived_constant, binary

from .functional import weighted_nll
from .layers import as_tensor
from .module import Module
from .replayed import row_numbers, zeros

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction: str, where: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _brief(x, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _numeric(target, where: str, what: str = "target") -> np.ndarray:
    """`target` (or the argument `what`) as an array of numbers; strings, None and ragged
    lists are refused here (numpy would read "1" as 1.0, or fail naming no loss)."""
    try:
        t = np.asarray(target.data if isinstance(target, Tensor) else target)
    except (TypeError, ValueError):
        t = None
    if t is None or t.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {what} must be numeric (a Tensor, an array or a list of "
                        f"numbers), got {_brief(target)}")
    return t


def _target_like(target, x: Tensor, where: str) -> Tensor:
    """The target as a Tensor of x's shape (and, for arrays, x's float dtype)."""
    if isinstance(target, Tensor):
        t = target
    else:
        t = Tensor(_numeric(target, where).astype(x.dtype, copy=False))
    if t.shape != x.shape:
        raise ShapeError(f"{where}: input has shape {x.shape} but target has shape "
                         f"{t.shape}; they must match (reshape one of them)")
    return t


class _Loss(Module):
    def __init__(self, *, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction(reduction, type(self).__name__)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """mean((x - y)^2); with `half=True` each term is halved, (x - y)^2 / 2, so the
    gradient is x - y (the lecture's convention).

    >>> MSELoss()(Tensor([1.0, 3.0]), [0.0, 1.0]).item()
    2.5
    """

    def __init__(self, *, reduction: str = "mean", half: bool = False):
        super().__init__(reduction=reduction)
        self.half = bool(half)

    def forward(self, input, target) -> Tensor:
        x = as_tensor(input, "MSELoss")
        d = x - _target_like(target, x, "MSELoss")
        loss = d ** 2  # one edge (d * d would draw two identical chain-rule paths)
        if self.half:
            loss = loss * 0.5
        return _reduce(loss, self.reduction)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", half=True" if self.half else "")


class BCELoss(_Loss):
    """-(y log p + (1 - y) log(1 - p)) for probabilities p in [0, 1]; each log is clamped
    to >= -100, so p = 0 or 1 gives a finite loss, and the gradient there is PyTorch's,
    (p - y) / max(p (1 - p), 1e-12).

    >>> round(BCELoss()(Tensor([0.5]), [1.0]).item(), 6)
    0.693147
    """

    def forward(self, input, target) -> Tensor:
        p = as_tensor(input, "BCELoss")
        y = _target_like(target, p, "BCELoss")
        if p.size and (np.min(p.data) < 0 or np.max(p.data) > 1 or np.isnan(p.data).any()):
            raise ValueError(f"BCELoss: input must hold probabilities in [0, 1], got values "
                             f"in [{np.nanmin(p.data):g}, {np.nanmax(p.data):g}]"
                             f"{' and NaN' if np.isnan(p.data).any() else ''}; "
                             "use BCEWithLogitsLoss for raw scores")
        # One fused node (autodiff/ops.py): finite at p = 0 or 1 and, unlike a clip,
        # still passing a gradient there.
        return _reduce(binary(OPS["binary_cross_entropy"], p, y), self.reduction)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) = logsumexp(0, x): stable at any magnitude, derivative sigmoid(x)
    (exact at x = 0, where relu(x) + log(1 + e^-|x|) would hit two kinks)."""
    return autodiff.stack([zeros(x.shape, x.dtype), x], axis=-1).logsumexp(axis=-1)


class BCEWithLogitsLoss(_Loss):
    """BCE of sigmoid(x) computed from the logits x: softplus(x) - x y (stable).

    >>> round(BCEWithLogitsLoss()(Tensor([0.0]), [1.0]).item(), 6)
    0.693147
    """

    def forward(self, input, target) -> Tensor:
        x = as_tensor(input, "BCEWithLogitsLoss")
        y = _target_like(target, x, "BCEWithLogitsLoss")
        return _reduce(softplus(x) - x * y, self.reduction)


def _probability_coef(target, *weight, dtype, eps, classes, scale):
    """coef[i, c], the weight of log_softmax(x)[i, c] in sample i's loss, for class
    probabilities: the target, smoothed by eps, times the class weights and `scale`."""
    coef = target.astype(dtype)
    if eps:
        coef = coef * (1 - eps) + eps / classes
    if weight:
        coef = coef * weight[0].astype(dtype)
    if scale != 1.0:
        coef *= scale
    return coef


@replayable  # (compile recomputes a batch's labels and one-hot rows at each replay)
def _labels(target, n: int, c: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer class labels of shape (n,), checked to lie in [0, c) or to equal
    `ignore_index`, and the mask of the rows to keep (None when all are kept). Ignored rows
    get label 0, so the labels can index."""
    y = np.asarray(target.data if isinstance(target, Tensor) else target)
    if y.shape != (n,):
        raise ShapeError(f"CrossEntropyLoss: logits have shape ({n}, {c}) so labels must have "
                         f"shape ({n},), got {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            bad = y[~np.isfinite(y) | (y != np.round(y))][0]
            raise ValueError(f"CrossEntropyLoss: labels must be integers, got {bad!r}")
        y = y.astype(np.int64)
    elif y.dtype.kind == "b":
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise TypeError(f"CrossEntropyLoss: labels must be integers, got dtype {y.dtype}")
    # Seen as unsigned, a negative label is huge: one max() checks both ends of [0, c).
    in_range = y.view(f"u{y.itemsize}").max() < c
    if in_range and not 0 <= ignore_index < c:
        return y, None
    keep = y != ignore_index
    if in_range and keep.all():
        return y, None
    outside = keep & ((y < 0) | (y >= c))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise IndexError(f"CrossEntropyLoss: label {int(y[i])} (sample {i}) is outside "
                         f"[0, {c}) for C={c} classes (and is not ignore_index="
                         f"{ignore_index})")
    return np.where(keep, y, 0), keep


_EYES: dict = {}


@replayable
def _one_hot(y: np.ndarray, c: int, dtype, scale: float = 1.0) -> np.ndarray:
    """Rows of `scale` times the identity picked by the labels (a new array). Picking rows
    of a cached identity is the fastest way for a few classes; for many (an identity of
    over 1 MB) the rows are written directly instead."""
    dtype = np.dtype(dtype)
    if c * c * dtype.itemsize > 2 ** 20:
        out = np.zeros((len(y), c), dtype)
        out[np.arange(len(y)), y] = scale
        return out
    key = (c, dtype, scale)
    eye = _EYES.get(key)
    if eye is None:
        if len(_EYES) >= 64:
            _EYES.clear()
        eye = _EYES[key] = np.eye(c, dtype=dtype) * np.asarray(scale, dtype=dtype)
    return eye[y]


@replayable
def _weighted_one_hot(y: np.ndarray, weight: np.ndarray, dtype, mean: bool) -> np.ndarray:
    """Each label's one-hot row times its class weight; for 'mean' divided by the labels'
    total weight, as PyTorch does."""
    w = weight[y]
    coef = _one_hot(y, len(weight), dtype) * w[:, None].astype(dtype)
    if mean:
        coef *= 1.0 / float(w.sum())
    return coef


@replayable
def _general_coef(y, keep, weight, eps: float, c: int, dtype, reduction: str) -> np.ndarray:
    """coef[i, c], the weight of log_softmax(x)[i, c] in the loss, for labels with ignored
    samples (`keep` False) and/or label smoothing `eps`; for 'mean' divided by the kept
    samples' total label weight (nan if there is none)."""
    w = np.ones(c) if weight is None else weight
    rows = w[y] if keep is None else w[y] * keep
    coef = _one_hot(y, c, np.float64) * ((1 - eps) * rows)[:, None]
    if eps:
        coef += (eps / c) * (w[None, :] if keep is None else keep[:, None] * w[None, :])
    coef = coef.astype(dtype)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):  # all ignored: nan
            coef = coef / coef.dtype.type(rows.sum())
    return coef


@replayable
def _counts_and_minus(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where coef is nonzero, and -coef."""
    return coef != 0, -coef


class CrossEntropyLoss(_Loss):
    """-log softmax(x)[label] from logits x of shape (N, C) and integer labels of shape (N,)
    (a list, an int array or a Tensor), or class probabilities of shape (N, C).
    As in PyTorch: `weight` (C,) rescales each class, and 'mean' then divides by the total
    weight of the labels; samples labelled `ignore_index` count for nothing, not even in
    the mean's divisor; `label_smoothing` e mixes the target with the uniform
    distribution, (1 - e) target + e / C.

    >>> round(CrossEntropyLoss()(Tensor([[0.0, 0.0]]), [1]).item(), 6)
    0.693147
    """

    def __init__(self, weight=None, *, reduction: str = "mean", ignore_index: int = -100,
                 label_smoothing: float = 0.0):
        super().__init__(reduction=reduction)
        self.weight = None if weight is None else _numeric(
            weight, "CrossEntropyLoss", "weight").astype(np.float64)
        if self.weight is not None:  # (read-only: a compiled step may use it as a constant)
            self.weight.setflags(write=False)
        if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int, got "
                            f"{ignore_index!r}")
        self.ignore_index = int(ignore_index)
        if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real)
                or not 0.0 <= label_smoothing <= 1.0):
            raise ValueError(f"CrossEntropyLoss: label_smoothing must lie in [0, 1], got "
                             f"{label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target) -> Tensor:
        x = as_tensor(input, "CrossEntropyLoss")
        if x.ndim != 2:
            raise ShapeError(f"CrossEntropyLoss: logits must have shape (N, C), got {x.shape}")
        n, c = x.shape
        if n == 0 or c == 0:
            raise ShapeError(f"CrossEntropyLoss: logits of shape {x.shape} are empty")
        if self.weight is not None and self.weight.shape != (c,):
            raise ShapeError(f"CrossEntropyLoss: weight has shape {self.weight.shape} but "
                             f"there are C={c} classes")
        t = _numeric(target, "CrossEntropyLoss")
        mean, eps = self.reduction == "mean", self.label_smoothing
        # coef[i, c] is the weight of log_softmax(x)[i, c] in sample i's loss.
        if t.shape == x.shape and t.dtype.kind == "f":
            # (a constant made from the target's values: a target the step computes, such
            # as a teacher's softmax, is computed again when a compiled step replays)
            weight = () if self.weight is None else (self.weight,)
            coef = _derived_constant(_probability_coef, target if isinstance(target, Tensor)
                                     else t, *weight, dtype=x.dtype, eps=eps, classes=c,
                                     scale=1.0 / n if mean else 1.0)
            if self.reduction == "none":
                return (x.log_softmax(axis=1) * -coef).sum(axis=1)
            return weighted_nll(x, coef.data)  # one fused node (see functional.py)
        y, keep = _labels(t, n, c, self.ignore_index)
        if keep is not None or eps:
            return self._general(x, y, keep, eps)
        if self.reduction == "none":
            # Pick each row's label rather than weigh every class: a masked logit (-inf)
            # elsewhere in the row would otherwise turn 0 * -inf into nan.
            picked = x.log_softmax(axis=1)[row_numbers(n), y]
            if self.weight is None:
                return -picked
            return picked * -self.weight[y].astype(x.dtype)
        if self.weight is None:
            # The mean's divisor folds into the one-hot rows, each of which sums to it.
            scale = 1.0 / n if mean else 1.0
            return weighted_nll(x, _one_hot(y, c, x.dtype, scale), rowsum=scale)
        return weighted_nll(x, _weighted_one_hot(y, self.weight, x.dtype, mean))

    def _general(self, x: Tensor, y: np.ndarray, keep, eps: float) -> Tensor:
        """Labels with ignored samples and/or label smoothing: PyTorch's
        (1 - e) nll + e/C sum_c (-w_c log p_c) per kept sample, the mean divided by the
        kept samples' total label weight."""
        coef = _general_coef(y, keep, self.weight, eps, x.shape[1], x.dtype, self.reduction)
        if self.reduction == "none":
            # Rows and classes that count for nothing are left out, not multiplied by 0:
            # a masked logit (-inf) there would otherwise make the loss nan.
            counts, minus_coef = _counts_and_minus(coef)
            log_p = autodiff.where(counts, x.log_softmax(axis=1), 0.0)
            return (log_p * minus_coef).sum(axis=1)
        return weighted_nll(x, coef)

    def extra_repr(self) -> str:
        extra = "" if self.weight is None else ", weight=..."
        if self.ignore_index != -100:
            extra += f", ignore_index={self.ignore_index}"
        if self.label_smoothing:
            extra += f", label_smoothing={self.label_smoothing:g}"
        return super().extra_repr() + extra
