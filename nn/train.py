"""`fit`: the mini-batch training loop with a progress bar and a per-epoch history.

Each epoch: for every batch, zero_grad, loss = loss_fn(model(xb), yb), backward, step.
The history records the mean training loss (weighted by batch size) and, for
classification losses, the accuracy on the batches as they were seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from autodiff import Tensor, no_grad

from .data import DataLoader, TensorDataset
from .live import TrainingView, layer_gradient_norms
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss


@dataclass
class History:
    """Per-epoch training curves (lists with one entry per epoch)."""

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items() if v}


def accuracy(output, labels, *, threshold: float = 0.0) -> float:
    """Fraction of correct predictions: argmax over classes for outputs of shape (N, C),
    else `output > threshold` (0 for logits, 0.5 for probabilities) against 0/1 labels."""
    out = np.asarray(output.data if isinstance(output, Tensor) else output)
    y = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if out.ndim == 2 and out.shape[1] > 1:
        pred = out.argmax(axis=1)
        if y.shape == out.shape:  # class probabilities (one-hot or soft) as targets
            y = y.argmax(axis=1)
    else:
        pred = (out.reshape(len(out)) > threshold).astype(np.int64)
    return float(np.mean(pred == y.reshape(len(y))))


def _batch_total(loss: Tensor, loss_fn, k: int) -> float:
    """The summed loss of a batch of k samples, whatever the loss function's reduction."""
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction == "sum":
        return float(loss.item())
    if reduction == "none":
        return float(np.sum(loss.data))
    return float(loss.item()) * k


def _threshold(loss_fn) -> float | None:
    """The decision threshold of a classification loss; None for other losses."""
    if isinstance(loss_fn, BCELoss):
        return 0.5
    if isinstance(loss_fn, (BCEWithLogitsLoss, CrossEntropyLoss)):
        return 0.0
    return None


def _progress(total: int, *, desc: str, enabled: bool | None):
    from tqdm import tqdm

    if enabled is None:
        enabled = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    mininterval = float(os.environ.get("TQDM_MININTERVAL", 0.1))
    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled,
                mininterval=mininterval)


def evaluate(model, loss_fn, X, y, *, batch_size: int = 1024) -> tuple[float, float | None]:
    """Mean loss and (for classification losses) accuracy over a dataset, without grad."""
    threshold = _threshold(loss_fn)
    total, correct, n = 0.0, 0.0, len(y)
    with no_grad():
        for xb, yb in DataLoader(TensorDataset(X, y), batch_size=batch_size):
            out = model(xb)
            total += _batch_total(loss_fn(out, yb), loss_fn, len(yb))
            if threshold is not None:
                correct += accuracy(out, yb, threshold=threshold) * len(yb)
    return total / n, (None if threshold is None else correct / n)


def fit(model, loss_fn, optimizer, X, y, *, epochs: int = 10, batch_size: int = 32,
        shuffle: bool = True, drop_last: bool = False, validation: tuple | None = None,
        scheduler=None, progress: bool | None = None, desc: str = "train",
        live=False) -> History:
    """Train `model` on (X, y) for `epochs` passes of mini-batches; returns a History.

    `validation=(X_val, y_val)` adds val_loss/val_accuracy; `scheduler.step()` runs after
    each epoch. The progress bar honours TQDM_MININTERVAL and TQDM_DISABLE in the
    environment; `progress=False` turns it off. `live=True` shows a `TrainingView`
    (curves and per-layer gradient norms, updated every epoch, and the explorer of an
    epoch's last batch, see `TrainingView.log_graph`) in Jupyter; pass your own
    `TrainingView` to keep it (e.g. to `save` it afterwards).
    """
    view = _live_view(live, desc)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle,
                        drop_last=drop_last)
    if len(loader) == 0:
        raise ValueError(f"fit: no batch to train on: {len(y)} samples with batch_size="
                         f"{batch_size} and drop_last={drop_last}")
    threshold = _threshold(loss_fn)
    history = History()
    model.train()
    with _progress(epochs, desc=desc, enabled=progress) as bar:
        for epoch in range(epochs):
            total, correct, seen = 0.0, 0.0, 0
            norms: dict = {}
            for batch, (xb, yb) in enumerate(loader):
                optimizer.zero_grad()
                out = model(xb)
                loss = loss_fn(out, yb)
                if view is not None and batch == len(loader) - 1 and \
                        view.graph_due(final=epoch == epochs - 1):
                    view.log_graph(loss, epoch, errors="show")  # (before backward releases it)
                loss.backward()
                if view is not None:  # summed here, averaged over the epoch's batches
                    for layer, v in layer_gradient_norms(model).items():
                        norms[layer] = norms.get(layer, 0.0) + v
                optimizer.step()
                k = len(yb)
                total += _batch_total(loss, loss_fn, k)
                seen += k
                if threshold is not None:
                    correct += accuracy(out, yb, threshold=threshold) * k
            history.loss.append(total / max(seen, 1))
            if threshold is not None:
                history.accuracy.append(correct / max(seen, 1))
            if validation is not None:
                model.eval()
                val_loss, val_acc = evaluate(model, loss_fn, *validation)
                model.train()
                history.val_loss.append(val_loss)
                if val_acc is not None:
                    history.val_accuracy.append(val_acc)
            if scheduler is not None:
                scheduler.step()
            if view is not None:
                _log_epoch(view, history, {k: v / len(loader) for k, v in norms.items()})
            shown = {"loss": f"{history.loss[-1]:.4f}"}
            if history.accuracy:
                shown["acc"] = f"{history.accuracy[-1]:.3f}"
            if history.val_accuracy:
                shown["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
            bar.set_postfix(shown, refresh=False)
            bar.update(1)
    if view is not None:
        view.flush()
    return history


def _live_view(live, desc: str):
    """The TrainingView `fit(live=...)` feeds: None, the one given, or a new one shown
    in the notebook (when there is one)."""
    if live is False or live is None:
        return None
    if isinstance(live, TrainingView):
        return live
    if live is not True:
        raise TypeError(f"fit: live must be True, False or a TrainingView, got {live!r}")
    view = TrainingView(title=desc)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return view
    if get_ipython() is not None:
        display(view)
    return view


def _log_epoch(view, history: History, norms: dict) -> None:
    epoch = len(history.loss) - 1
    values = {name: curve[-1] for name, curve in history.as_dict().items()}
    # (recorded together and sent once: two sends in a row, the second throttled, would
    # leave the gradient curve an epoch behind the loss while training runs)
    view._record(epoch, values)
    view._record_norms(norms, epoch)
    view._push()
