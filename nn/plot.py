"""Loss curves and decision boundaries with matplotlib (an optional dependency).

With a `path`, figures are drawn on a bare `matplotlib.figure.Figure` and saved: no pyplot,
no global backend, so it works headless and leaves a notebook's backend alone. Without a
path, pyplot is used (for notebooks); if no backend was chosen and there is no display,
Agg is selected for this process only (MPLBACKEND in os.environ is never set).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from autodiff import Tensor, no_grad


def _figure(path, **kwargs):
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    if path is not None:
        from matplotlib.figure import Figure
        return Figure(**kwargs)
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                    or sys.platform in ("darwin", "win32"))
    if ("matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND")
            and headless):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.figure(**kwargs)


def _finish(fig, path):
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100, bbox_inches="tight")
    return fig


def plot_history(history, path=None, *, title: str = "training"):
    """Loss (and accuracy, when recorded) per epoch; saved to `path` if given. Accepts a
    History, a dict of lists, or a plain list of losses. Returns the Figure."""
    curves = history.as_dict() if hasattr(history, "as_dict") else (
        dict(history) if isinstance(history, dict) else {"loss": list(history)})
    accs = {k: v for k, v in curves.items() if "accuracy" in k}
    losses = {k: v for k, v in curves.items() if k not in accs}
    fig = _figure(path, figsize=(10 if accs else 5.5, 4))
    axes = fig.subplots(1, 2 if accs else 1)
    axes = np.atleast_1d(axes)
    for name, values in losses.items():
        axes[0].plot(np.arange(1, len(values) + 1), values, label=name)
    axes[0].set(xlabel="epoch", ylabel="loss", title=f"{title}: loss")
    axes[0].legend()
    if accs:
        for name, values in accs.items():
            axes[1].plot(np.arange(1, len(values) + 1), values, label=name)
        axes[1].set(xlabel="epoch", ylabel="accuracy", title=f"{title}: accuracy")
        axes[1].legend()
    return _finish(fig, path)


def plot_decision_boundary(predict, X, y, path=None, *, resolution: int = 200,
                           threshold: float = 0.0, title: str = "decision boundary",
                           cmap="coolwarm"):
    """Colour the plane by the class `predict` gives each point and scatter (X, y).

    `predict` maps an (n, 2) array to class labels, to scores of shape (n, C) (argmax),
    or to one score per point (class 1 where score > `threshold`: 0 for logits, use 0.5
    for probabilities). A model works as it is. `cmap` (a matplotlib colormap or its
    name) colours both the regions and the points. Returns the Figure."""
    X = np.asarray(X.data if isinstance(X, Tensor) else X)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if X.ndim != 2 or X.shape[1] != 2 or len(X) == 0:
        raise ValueError(f"plot_decision_boundary: X must be a non-empty (n, 2) array of "
                         f"points in the plane, got shape {X.shape}")
    if y.shape != (len(X),):
        raise ValueError(f"plot_decision_boundary: y must hold one label per point, shape "
                         f"({len(X)},), got shape {y.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"plot_decision_boundary: resolution must be an int >= 2, "
                         f"got {resolution!r}")
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, resolution)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    with no_grad():
        out = predict(grid)
    out = np.asarray(out.data if isinstance(out, Tensor) else out)
    if out.ndim == 2 and out.shape[1] > 1:
        labels = out.argmax(axis=1)
    elif out.dtype.kind == "f":
        labels = (out.reshape(-1) > threshold).astype(np.int64)
    else:
        labels = out.reshape(-1)
    fig = _figure(path, figsize=(5.5, 5))
    ax = fig.subplots()
    if labels.shape != (len(grid),):
        raise ValueError(f"plot_decision_boundary: predict gave shape {out.shape} for "
                         f"{len(grid)} points; expected ({len(grid)},), ({len(grid)}, 1) or "
                         f"({len(grid)}, C) class scores")
    # one colour scale for regions and points, so a class has the same colour in both
    low, high = min(labels.min(), y.min()), max(labels.max(), y.max())
    ax.contourf(gx, gy, labels.reshape(gx.shape), alpha=0.35, cmap=cmap, vmin=low, vmax=high)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=low, vmax=high, edgecolors="k", s=18)
    ax.set(title=title, xlabel="x1", ylabel="x2")
    return _finish(fig, path)
