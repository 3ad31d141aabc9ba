"""`nn.functional`: PyTorch's functional forms, with its names and arguments (`dim=`,
`reduction=`), on the engine's primitives.

    relu, sigmoid, tanh            the Tensor methods (one primitive each)
    softmax, log_softmax           exp(x_i) / sum_j exp(x_j) along dim, and its log
    linear                         x W^T + b (one fused node for a batch of rows)
    dropout                        x * m / (1 - p), m_i ~ Bernoulli(1 - p), in training only
    max_pool2d, avg_pool2d         the max or mean of each window of the last two axes
    adaptive_avg_pool2d            the mean over PyTorch's windows for a given output size
    batch_norm                     w (x - mean) / sqrt(var + eps) + b per channel; running stats
    layer_norm                     the same over the last dims of each sample, no running stats
    embedding                      weight[input]: rows of a table looked up by integer indices
    cross_entropy, nll_loss        -w_y log_softmax(x)_y, and -w_y x_y for log-probabilities x
    mse_loss, binary_cross_entropy, binary_cross_entropy_with_logits   the loss classes'

The losses reuse the classes of nn/losses.py (imported when first called: that module
imports this one). `weighted_nll` is the fused cross-entropy the loss classes use.

>>> import nn.functional as F
>>> F.softmax(Tensor([[0.0, 0.0]]), dim=1).data
array([[0.5, 0.5]])
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from autodiff import OPS, Tensor, no_grad, where
from autodiff.compile import replayable
from autodiff.engine import bump_version
from autodiff.errors import ShapeError
from autodiff.ops_pool import channel_shape, channel_sum, max_pool2d_indices, pool_geometry
from autodiff.tensor import _derived_constant, apply

from .replayed import dropout_mask, row_numbers

LINEAR, WEIGHTED_NLL = OPS["linear"], OPS["weighted_nll"]
MAX_POOL2D, AVG_POOL2D = OPS["max_pool2d"], OPS["avg_pool2d"]
ADAPTIVE_AVG_POOL2D, BATCH_NORM = OPS["adaptive_avg_pool2d"], OPS["batch_norm"]
LAYER_NORM = OPS["layer_norm"]


def as_tensor(x, where: str) -> Tensor:
    """Tensors pass through; arrays and lists become constant Tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, float, int, np.generic)):
        try:
            return Tensor(x)
        except TypeError as err:  # non-numeric data: say which layer or loss it was for
            raise TypeError(f"{where}: {err}") from None
    raise TypeError(f"{where}: expected a Tensor or an array, got {type(x).__name__}")


# -- the fused primitives ------------------------------------------------------------
def linear(input, weight, bias=None) -> Tensor:
    """input W^T + b with W of shape (out, in). One fused node for a batch of rows (input
    of shape (N, in)); composed from matmul and add for any other shape."""
    x = input if type(input) is Tensor else as_tensor(input, "linear")
    w = weight if isinstance(weight, Tensor) else as_tensor(weight, "linear")
    if bias is not None and not isinstance(bias, Tensor):
        bias = as_tensor(bias, "linear")
    x_shape, w_shape = x.data.shape, w.data.shape  # (read once: this runs every layer call)
    if len(w_shape) != 2 or not x_shape or x_shape[-1] != w_shape[1]:
        raise ShapeError(f"linear: input of shape {x_shape} does not fit a weight of shape "
                         f"{w_shape} (out_features, in_features)")
    if bias is not None and bias.data.shape not in ((w_shape[0],), ()):
        raise ShapeError(f"linear: bias of shape {bias.shape} does not fit a weight of "
                         f"shape {w_shape}; it must have shape ({w_shape[0]},)")
    if len(x_shape) != 2:
        y = x @ w.T
        return y if bias is None else y + bias
    return apply(LINEAR, (x, w) if bias is None else (x, w, bias))


def weighted_nll(logits: Tensor, coef: np.ndarray, rowsum=None) -> Tensor:
    """-sum_ic coef_ic log_softmax(logits)_ic, a scalar (one fused node). `rowsum`, the
    row sums of coef (shape (N, 1), or one number for all rows), saves the backward from
    computing them when the caller knows them."""
    kw = {"coef": coef}
    if rowsum is not None:
        kw["rowsum"] = rowsum
    return apply(WEIGHTED_NLL, (logits,), kw)


# -- activations ---------------------------------------------------------------------
def _in_place(x: Tensor, where: str, method, *args) -> Tensor:
    """An inplace=True variant: the Tensor's in-place method, which refuses (clearly) a
    tensor that is part of a graph, since that change could not be differentiated."""
    try:
        return method(x, *args)
    except RuntimeError as err:
        raise RuntimeError(f"{where}(inplace=True): {err}") from None


def relu(input, inplace: bool = False) -> Tensor:
    """max(0, x); d/dx = [x > 0]."""
    x = input if type(input) is Tensor else as_tensor(input, "relu")
    if inplace:
        return _in_place(x, "relu", Tensor.clamp_, 0)
    return x.relu()


def sigmoid(input) -> Tensor:
    """1 / (1 + exp(-x)); d/dx = s (1 - s)."""
    return as_tensor(input, "sigmoid").sigmoid()


def tanh(input) -> Tensor:
    """tanh(x); d/dx = 1 - tanh(x)^2."""
    return as_tensor(input, "tanh").tanh()


def _softmax_input(input, dim, dtype, where: str) -> tuple[Tensor, int]:
    x = as_tensor(input, where)
    if dtype is not None:
        x = x.astype(dtype)  # as PyTorch: cast before the exponentials
    if dim is None:
        # PyTorch's deprecated implicit choice, kept so old code still runs.
        dim = 0 if x.ndim in (0, 1, 3) else 1
        warnings.warn(f"{where}: implicit dimension choice is deprecated; pass dim={dim}",
                      UserWarning, stacklevel=3)
    return x, dim


def softmax(input, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """exp(x_i) / sum_j exp(x_j) along `dim`."""
    x, dim = _softmax_input(input, dim, dtype, "softmax")
    return x.softmax(axis=dim)


def log_softmax(input, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """x_i - logsumexp_j x_j along `dim` (stable; better than log(softmax(x)))."""
    x, dim = _softmax_input(input, dim, dtype, "log_softmax")
    return x.log_softmax(axis=dim)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout: each element zeroed with probability p, the rest scaled by
    1 / (1 - p) so the expectation is unchanged; the mask is drawn from the generator
    `autodiff.manual_seed` seeds. The input itself when not training or p = 0."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p is the probability of zeroing an element and must "
                         f"lie in [0, 1], got {p!r}")
    x = input if type(input) is Tensor else as_tensor(input, "dropout")
    if not training or p == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: needs a floating-point tensor, got dtype {x.dtype}")
    mask = dropout_mask(x.shape, x.dtype, p)
    if inplace:
        return _in_place(x, "dropout", Tensor.mul_, mask)
    return x * mask


# -- pooling -------------------------------------------------------------------------
def _image_input(input, where: str) -> Tensor:
    """(N, C, H, W) or PyTorch's unbatched (C, H, W), floating point, C, H, W > 0."""
    x = input if type(input) is Tensor else as_tensor(input, where)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ShapeError(f"{where}: expected an input of shape (N, C, H, W) or unbatched "
                         f"(C, H, W) with C, H, W > 0, got {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: needs a floating-point input, got dtype {x.dtype}")
    return x


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """The maximum of each kernel_size window (PyTorch's arguments; stride defaults to
    kernel_size, padding counts as -inf). The gradient goes to the first maximum of a
    window in scan order, as PyTorch's; with return_indices, also the maxima's flat
    positions h*W + w (int64), as PyTorch gives them.

    >>> max_pool2d(Tensor(np.arange(16.0).reshape(1, 4, 4)), 2).data
    array([[[ 5.,  7.],
            [13., 15.]]])
    """
    x = _image_input(input, "max_pool2d")
    geo = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode,
                        where="max_pool2d")
    out = apply(MAX_POOL2D, (x,), dict(kernel_size=geo.kernel, stride=geo.stride,
                                       padding=geo.padding, dilation=geo.dilation,
                                       ceil_mode=bool(ceil_mode)))
    if return_indices:
        # (a constant of x's values, so that a compiled step computes it again)
        return out, _derived_constant(lambda data: max_pool2d_indices(data, geo), x)
    return out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """The mean of each kernel_size window (PyTorch's arguments and divisor: padding
    zeros count when count_include_pad, and divisor_override replaces the divisor)."""
    x = _image_input(input, "avg_pool2d")
    geo = pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode,
                        where="avg_pool2d")
    if divisor_override is not None and (
            not isinstance(divisor_override, (int, np.integer))
            or isinstance(divisor_override, bool) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int or None, got "
                         f"{divisor_override!r}")
    return apply(AVG_POOL2D, (x,), dict(
        kernel_size=geo.kernel, stride=geo.stride, padding=geo.padding,
        ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
        divisor_override=None if divisor_override is None else int(divisor_override)))


def adaptive_output_size(output_size, shape: tuple, where: str) -> tuple[int, int]:
    """PyTorch's output_size: an int, or a pair whose None entries keep the input's size."""
    pair = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(pair) != 2:
        raise TypeError(f"{where}: output_size must be an int or a pair, got {output_size!r}")
    sizes = []
    for n, o in zip(shape[-2:], pair):
        if o is None:
            o = n
        if not isinstance(o, (int, np.integer)) or isinstance(o, bool) or o < 0:
            raise ValueError(f"{where}: output_size must hold non-negative ints (or None), "
                             f"got {output_size!r}")
        sizes.append(int(o))
    return sizes[0], sizes[1]


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Means over windows chosen to give `output_size`: output row o averages the input
    rows floor(o H / Oh) to ceil((o + 1) H / Oh) - 1 (likewise columns), PyTorch's
    windows, which overlap when Oh does not divide H."""
    x = _image_input(input, "adaptive_avg_pool2d")
    size = adaptive_output_size(output_size, x.shape, "adaptive_avg_pool2d")
    return apply(ADAPTIVE_AVG_POOL2D, (x,), {"output_size": size})


# -- normalisation -------------------------------------------------------------------
def _per_channel(t, name: str, c: int, x: Tensor, where: str):
    if t is None:
        return None
    if not isinstance(t, (Tensor, np.ndarray)):
        t = as_tensor(t, where)
    if tuple(t.shape) != (c,):
        raise ShapeError(f"{where}: {name} should hold {c} elements, one per channel of the "
                         f"input of shape {x.shape} (axis 1), but has shape {tuple(t.shape)}")
    return t


def _update_running(stat, batch_value: Tensor, momentum: float) -> None:
    """stat <- (1 - momentum) stat + momentum batch_value, in place: a Tensor through its
    in-place methods (its version moves on, and a compiled step replays the update), an
    ndarray directly."""
    if isinstance(stat, Tensor):
        stat.mul_(1 - momentum)
        if isinstance(momentum, Tensor):  # (a factor that changes from batch to batch)
            stat.add_(batch_value * momentum)
        else:
            stat.add_(batch_value, alpha=momentum)
    else:
        momentum = momentum.item() if isinstance(momentum, Tensor) else momentum
        stat *= 1 - momentum
        stat += momentum * batch_value.data.astype(stat.dtype, copy=False)


def _channel_mean(x: np.ndarray) -> np.ndarray:
    """The mean over every axis but 1, shape (C,)."""
    return channel_sum(x) / (x.size // x.shape[1])


def _channel_var(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The biased variance over every axis but 1, shape (C,): centred first, so a channel
    whose mean is large against its spread keeps its digits."""
    centred = x - mean.reshape(channel_shape(x.ndim, x.shape[1]))
    centred *= centred
    return channel_sum(centred) / (x.size // x.shape[1])


def _copy_as(stat, dtype) -> np.ndarray:
    return np.array(stat, dtype=dtype)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Normalise each channel (axis 1) of an (N, C, ...) input: w (x - mean) / sqrt(var +
    eps) + b. Training: mean and biased var of the batch (over every axis but 1), and
    running_mean / running_var (if given) move in place towards the batch's mean and
    unbiased var by `momentum`, as PyTorch's; otherwise the running statistics are used.

    >>> x = Tensor([[1.0], [3.0]])
    >>> batch_norm(x, None, None, training=True, eps=0.0).data
    array([[-1.],
           [ 1.]])
    """
    where = "batch_norm"
    x = input if type(input) is Tensor else as_tensor(input, where)
    if x.ndim < 2:
        raise ShapeError(f"{where}: expected an input of shape (N, C, ...), got {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: needs a floating-point input, got dtype {x.dtype}")
    if isinstance(momentum, bool) or not isinstance(momentum, (numbers.Real, Tensor)):
        raise TypeError(f"{where}: momentum must be a number, got {momentum!r}")
    c = x.shape[1]
    running_mean = _per_channel(running_mean, "running_mean", c, x, where)
    running_var = _per_channel(running_var, "running_var", c, x, where)
    params = [_per_channel(p, name, c, x, where)
              for p, name in ((weight, "weight"), (bias, "bias"))]
    params = [p if p is None or isinstance(p, Tensor) else Tensor(p) for p in params]
    # The statistics are constants made from tensors' values (_derived_constant), so a
    # compiled step computes them again at every replay.
    if training:
        count = x.data.size // c if c else 0
        if count <= 1:
            raise ValueError(f"{where}: expected more than 1 value per channel when "
                             f"training, got input of shape {x.shape}")
        mean = _derived_constant(_channel_mean, x)
        var = _derived_constant(_channel_var, x, mean)
        with no_grad():
            if running_mean is not None:
                _update_running(running_mean, mean, momentum)
            if running_var is not None:
                _update_running(running_var, var * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{where}: running_mean and running_var are needed when not "
                             "training (training=False)")
        # copies: a later training step changes the running statistics in place
        mean = _derived_constant(_copy_as, running_mean, dtype=x.dtype)
        var = _derived_constant(_copy_as, running_var, dtype=x.dtype)
    inputs = (x,) + tuple(p for p in params if p is not None)
    return apply(BATCH_NORM, inputs, dict(
        mean=mean.data, var=var.data, eps=float(eps),
        affine=(params[0] is not None, params[1] is not None), training=bool(training)))


# -- losses --------------------------------------------------------------------------
def _class_rows(x: Tensor, target, where: str):
    """PyTorch's class layouts as rows: logits (C,) with a label () (unbatched), (N, C)
    with labels (N,), or (N, C, d1, ...) with labels (N, d1, ...) (class probabilities:
    the logits' shape). Returns (logits (M, C), target rows, shape of a 'none' result)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    probabilities = t.shape == x.shape and t.dtype.kind == "f"
    if x.ndim == 1:
        return x.reshape(1, -1), t.reshape((1,) + t.shape), ()
    if x.ndim <= 2:
        return x, t, None
    n, c = x.shape[:2]
    last = (0,) + tuple(range(2, x.ndim)) + (1,)  # the class axis moved last
    rows = x.transpose(last).reshape(-1, c)
    if probabilities:
        return rows, t.transpose(last).reshape(-1, c), x.shape[:1] + x.shape[2:]
    if t.shape != x.shape[:1] + x.shape[2:]:
        raise ShapeError(f"{where}: input of shape {x.shape} needs labels of shape "
                         f"{x.shape[:1] + x.shape[2:]}, got {t.shape}")
    return rows, t.reshape(-1), t.shape


def _shaped(loss: Tensor, reduction: str, shape) -> Tensor:
    """A 'none' result of rows back in the input's layout (other reductions are scalars)."""
    if reduction != "none" or shape is None:
        return loss
    return loss.reshape(shape)


def cross_entropy(input, target, weight=None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """-w_y log_softmax(x)_y from logits and integer labels (or class probabilities);
    `weight`, `ignore_index`, `label_smoothing` and 'mean' as CrossEntropyLoss."""
    from .losses import CrossEntropyLoss

    loss_fn = CrossEntropyLoss(weight, reduction=reduction, ignore_index=ignore_index,
                               label_smoothing=label_smoothing)
    x = as_tensor(input, "cross_entropy")
    rows, t, shape = _class_rows(x, target, "cross_entropy")
    return _shaped(loss_fn(rows, t), reduction, shape)


@replayable  # (compile checks a batch's labels afresh at each replay)
def _labels(t: np.ndarray, n: int, c: int, ignore_index: int, where: str):
    """Integer labels of shape (n,) in [0, c) or equal to ignore_index, and the mask of
    the rows that count (ignored rows get label 0, so they can still index)."""
    if t.shape != (n,):
        raise ShapeError(f"{where}: input of shape ({n}, {c}) needs labels of shape ({n},), "
                         f"got {t.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{where}: labels must be integers (class indices), got dtype "
                        f"{t.dtype}")
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= c))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise IndexError(f"{where}: label {int(t[i])} (sample {i}) is outside [0, {c}) "
                         f"and is not ignore_index={ignore_index}")
    return np.where(keep, t, 0).astype(np.intp), keep


def nll_loss(input, target, weight=None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """-w_y x_y for log-probabilities x (e.g. log_softmax's output) and integer labels y;
    'mean' divides by the total weight of the labels that are not ignored (nan if all are),
    as PyTorch does."""
    from .losses import _check_reduction

    _check_reduction(reduction, "nll_loss")
    x = as_tensor(input, "nll_loss")
    rows, t, shape = _class_rows(x, target, "nll_loss")
    if rows.ndim != 2:
        raise ShapeError(f"nll_loss: input must have shape (C,), (N, C) or (N, C, d1, ...), "
                         f"got {x.shape}")
    n, c = rows.shape
    y, keep = _labels(t, n, c, int(ignore_index), "nll_loss")
    w = None if weight is None else np.asarray(
        weight.data if isinstance(weight, Tensor) else weight, dtype=np.float64)
    if w is not None and w.shape != (c,):
        raise ShapeError(f"nll_loss: weight has shape {w.shape} but there are C={c} classes")
    minus_weight, total = _row_weights(y, keep, w, rows.dtype)
    picked = rows[row_numbers(n), y]
    if not keep.all():
        # An ignored row counts for nothing even where its input is -inf (0 * inf is nan).
        picked = where(keep, picked, 0.0)
    picked = picked * minus_weight
    if reduction == "none":
        return _shaped(picked, reduction, shape)
    if reduction == "sum":
        return picked.sum()
    with np.errstate(divide="ignore", invalid="ignore"):  # every label ignored: nan
        return picked.sum() / total


@replayable
def _row_weights(y: np.ndarray, keep: np.ndarray, weight, dtype) -> tuple:
    """Minus each row's class weight (0 where ignored), and the weights' total as a 0-d
    array."""
    row_weight = (keep if weight is None else weight[y] * keep).astype(dtype)
    return -row_weight, np.asarray(row_weight.sum(), dtype=dtype)


def _weighted(loss: Tensor, weight, reduction: str, where: str) -> Tensor:
    """loss * weight (broadcast to the loss's shape), then the reduction."""
    from .losses import _reduce

    if weight is not None:
        w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
        try:
            np.broadcast_shapes(w.shape, loss.shape)
        except ValueError:
            raise ShapeError(f"{where}: weight of shape {w.shape} does not broadcast to the "
                             f"input's shape {loss.shape}") from None
        loss = loss * w.astype(loss.dtype, copy=False)
    return _reduce(loss, reduction)


def mse_loss(input, target, *, reduction: str = "mean") -> Tensor:
    """(x - y)^2, reduced; x and y must have the same shape (PyTorch would broadcast, with
    a warning that the result is likely wrong)."""
    from .losses import MSELoss

    return MSELoss(reduction=reduction)(input, target)


def binary_cross_entropy(input, target, weight=None, *, reduction: str = "mean") -> Tensor:
    """-w (y log p + (1 - y) log(1 - p)) for probabilities p, each log clamped to >= -100."""
    from .losses import BCELoss, _check_reduction

    _check_reduction(reduction, "binary_cross_entropy")
    loss = BCELoss(reduction="none" if weight is not None else reduction)(input, target)
    return loss if weight is None else _weighted(loss, weight, reduction,
                                                 "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, *, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """BCE of sigmoid(x) from logits x, stable: softplus(x) - x y; with pos_weight q (one
    per class, the last dimension) the positive term is weighted,
    (1 - y) x + (1 + (q - 1) y) softplus(-x)."""
    from .losses import BCEWithLogitsLoss, _check_reduction, _target_like, softplus

    where = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, where)
    if pos_weight is None:
        inner = "none" if weight is not None else reduction
        loss = BCEWithLogitsLoss(reduction=inner)(input, target)
        return loss if weight is None else _weighted(loss, weight, reduction, where)
    x = as_tensor(input, where)
    y = _target_like(target, x, where)
    q = np.asarray(pos_weight.data if isinstance(pos_weight, Tensor) else pos_weight)
    try:
        np.broadcast_shapes(q.shape, x.shape)
    except ValueError:
        raise ShapeError(f"{where}: pos_weight of shape {q.shape} does not broadcast to the "
                         f"input's shape {x.shape} (one weight per class, the last "
                         "dimension)") from None
    q = q.astype(x.dtype, copy=False)
    loss = (1 - y) * x + (1 + (q - 1) * y) * softplus(-x)
    return _weighted(loss, weight, reduction, where)


# -- convolutions (the `convolution` primitive; arguments checked in nn/conv.py) ----------
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """out[n, o, l] = b[o] + sum_{c, k} w[o, c, k] x_pad[n, c, l * stride + k * dilation]
    for input (N, C, L) or (C, L) and weight (O, C / groups, k); padding an int, a
    1-tuple, 'valid' or 'same'."""
    from .conv import convolution

    return convolution(input, weight, bias, stride, padding, dilation, groups, dims=1,
                       where="conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """out[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] x_pad[n, c, i*s + p*d, j*s + q*d]
    (s, d: stride and dilation per axis) for input (N, C, H, W) or (C, H, W) and weight
    (O, C / groups, kH, kW); padding an int, a pair, 'valid' or 'same'."""
    from .conv import convolution

    return convolution(input, weight, bias, stride, padding, dilation, groups, dims=2,
                       where="conv2d")


# -- embedding (composed from getitem) and layer normalisation (one fused node) ---------
@replayable  # (compile checks and copies a batch's indices again at each replay)
def _indices(input, num_embeddings: int, where: str) -> np.ndarray:
    """`input` as an integer index array, every entry in [0, num_embeddings)."""
    idx = np.asarray(input.data if isinstance(input, Tensor) else input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must be an integer tensor (int64 or int32), got "
                        f"dtype {idx.dtype}")
    if idx.size:
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            raise IndexError(f"{where}: index {bad} is out of range for {num_embeddings} "
                             f"embeddings (expected 0 to {num_embeddings - 1})")
    return idx.astype(np.intp, copy=True)  # a copy: later changes cannot move the gradient


def padding_index(padding_idx, num_embeddings: int, where: str):
    """padding_idx as a row in [0, num_embeddings) (negative counts from the end), or None."""
    if padding_idx is None:
        return None
    if not isinstance(padding_idx, (int, np.integer)) or isinstance(padding_idx, bool):
        raise TypeError(f"{where}: padding_idx must be an int or None, got {padding_idx!r}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{where}: padding_idx={padding_idx} must be within "
                         f"[{-num_embeddings}, {num_embeddings}) for {num_embeddings} "
                         "embeddings")
    return int(padding_idx) % num_embeddings


def _renorm_rows(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """PyTorch's max_norm: each looked-up row whose norm exceeds max_norm is scaled, in
    place and outside the graph, to norm max_norm (by max_norm / (norm + 1e-7)). The rows
    and factors are constants made from the weight's values and the scaling an item
    assignment, so that a compiled step does it again."""
    with no_grad():
        rows = _derived_constant(_rows_above, weight, idx, max_norm=max_norm,
                                 norm_type=norm_type)
        scale = _derived_constant(_row_scales, weight, rows, max_norm=max_norm,
                                  norm_type=norm_type)
        weight[rows] = weight[rows] * scale


def _rows_above(weight: np.ndarray, idx: np.ndarray, max_norm: float, norm_type: float):
    """The distinct rows of idx whose norm exceeds max_norm."""
    rows = np.unique(idx)
    return rows[np.linalg.norm(weight[rows], ord=norm_type, axis=1) > max_norm]


def _row_scales(weight: np.ndarray, rows: np.ndarray, max_norm: float, norm_type: float):
    norms = np.linalg.norm(weight[rows], ord=norm_type, axis=1)
    return (max_norm / (norms + 1e-7)).astype(weight.dtype)[:, None]


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """out[..., :] = weight[input[...], :] for an integer `input` of any shape; the
    gradient of a row is the sum over every place it was looked up, and the padding_idx
    row gets none. With max_norm, looked-up rows longer than max_norm are first shrunk to
    it in place (PyTorch's renorm).

    >>> embedding(np.array([2, 0]), Tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])).data
    array([[3., 3.],
           [1., 1.]])
    """
    fn = "embedding"
    w = weight if isinstance(weight, Tensor) else as_tensor(weight, fn)
    if w.ndim != 2:
        raise ShapeError(f"{fn}: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {w.shape}")
    if sparse:
        raise NotImplementedError(f"{fn}: sparse=True (sparse gradients) is not "
                                  "supported; gradients are always dense")
    if scale_grad_by_freq:
        raise NotImplementedError(f"{fn}: scale_grad_by_freq=True is not supported")
    n = w.shape[0]
    idx = _indices(input, n, fn)
    pad = padding_index(padding_idx, n, fn)
    if max_norm is not None:
        if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
            raise TypeError(f"{fn}: max_norm must be a number or None, got {max_norm!r}")
        _renorm_rows(w, idx, float(max_norm), float(norm_type))
    out = w[idx]  # getitem scatters the gradient back with np.add.at: repeats add up
    if pad is not None and w.requires_grad:
        at_pad = _padding_rows(idx, pad, w.shape[1])
        if at_pad is not None:  # the padding row's value, cut from the graph
            out = where(at_pad, w.detach()[idx], out)
    return out


@replayable
def _padding_rows(idx: np.ndarray, pad: int, width: int):
    """Where the lookup idx hits the padding row, broadcast over the embedding's width;
    None if it does not."""
    at_pad = idx == pad
    return np.broadcast_to(at_pad[..., None], at_pad.shape + (width,)) if at_pad.any() else None


def normalized_dims(normalized_shape, where: str) -> tuple[int, ...]:
    """normalized_shape (an int or a sequence of ints) as a tuple of positive ints."""
    shape = ((normalized_shape,) if isinstance(normalized_shape, (int, np.integer))
             else tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list))
             else None)
    if (shape is None or not shape
            or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                   for s in shape)):
        raise TypeError(f"{where}: normalized_shape must be a positive int or a non-empty "
                        f"sequence of positive ints, got {normalized_shape!r}")
    return tuple(int(s) for s in shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dims: (x - mean) / sqrt(var + eps) *
    weight + bias, with mean and the biased var over those dims of each sample.

    >>> layer_norm(Tensor([[1.0, 3.0]]), (2,), eps=0.0).data
    array([[-1.,  1.]])
    """
    where = "layer_norm"
    x = input if type(input) is Tensor else as_tensor(input, where)
    shape = normalized_dims(normalized_shape, where)
    k = len(shape)
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: needs a floating-point input, got dtype {x.dtype}")
    if x.shape[x.ndim - k:] != shape or x.ndim < k:
        raise ShapeError(f"{where}: input of shape {x.shape} does not end in the "
                         f"normalized_shape {shape}")
    params = []
    for t, name in ((weight, "weight"), (bias, "bias")):
        if t is not None:
            t = t if isinstance(t, Tensor) else as_tensor(t, where)
            if t.shape != shape:
                raise ShapeError(f"{where}: {name} of shape {t.shape} should have the "
                                 f"normalized_shape {shape}")
            if t.dtype != x.dtype:  # as torch: no silent promotion or rounding
                raise TypeError(f"{where}: {name} has dtype {t.dtype} but the input has "
                                f"dtype {x.dtype}; convert one of them")
        params.append(t)
    inputs = (x,) + tuple(p for p in params if p is not None)
    return apply(LAYER_NORM, inputs, dict(ndim=k, eps=float(eps),
                                          affine=(params[0] is not None,
                                                  params[1] is not None)))
