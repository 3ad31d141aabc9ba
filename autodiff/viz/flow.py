"""`gradient_flow(model)`: how large each layer's gradient is, over training steps.

For the vanishing-gradient story: in a deep sigmoid network the gradient's 2-norm
shrinks layer by layer towards the input (each layer multiplies it by σ' ≤ 1/4 times
a weight), so the first layers barely learn. Record after each backward, then plot:

    flow = autodiff.viz.gradient_flow(model)
    for step in range(steps):
        ...; loss.backward()
        flow.record()                # reads each parameter's .grad; changes nothing
        opt.step(); opt.zero_grad()
    flow.plot()                      # norms over steps, and the profile across layers
    flow.histograms()                # the distribution of log10 |gradient| per layer
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def _layers(model) -> list:
    """[(layer name, [parameters])] in the model's order: an nn module's sub-modules that
    hold parameters directly ('0: Linear'), a scalar MLP's layers ('layer 0'), or a
    mapping name -> parameters."""
    if isinstance(model, Mapping):
        return [(str(k), list(v) if isinstance(v, (list, tuple)) else [v])
                for k, v in model.items()]
    if hasattr(model, "named_modules") and hasattr(model, "named_parameters"):
        layers = []
        for name, m in model.named_modules():
            own = [p for _, p in m.named_parameters(recurse=False)]
            if own:
                layers.append((f"{name}: {type(m).__name__}" if name else type(m).__name__,
                               own))
        return layers
    if hasattr(model, "layers"):
        return [(f"layer {i}", list(layer.parameters())) for i, layer in enumerate(model.layers)]
    raise TypeError("gradient_flow: expected an nn module, a scalar MLP or a mapping "
                    f"name -> parameters, got {type(model).__name__}")


def _grad_array(p) -> np.ndarray:
    g = p.grad
    if g is None:
        return np.zeros(np.shape(p.data))
    return np.asarray(getattr(g, "data", g), dtype=np.float64)


class GradientFlow:
    """Per-layer gradient norms (and the last gradients, for histograms) over steps.

    `norms[layer]` is the list of 2-norms of all that layer's parameter gradients, one
    per `record()`; `steps` the matching step numbers."""

    def __init__(self, model) -> None:
        self.layers = _layers(model)
        if not self.layers:
            raise ValueError("gradient_flow: the model has no parameters")
        self.steps: list = []
        self.norms: dict = {name: [] for name, _ in self.layers}
        self.last: dict = {}

    def record(self, step=None) -> dict:
        """Read every layer's gradient now (after backward); returns {layer: norm}."""
        self.steps.append(len(self.steps) if step is None else step)
        now = {}
        for name, params in self.layers:
            flat = np.concatenate([_grad_array(p).reshape(-1) for p in params])
            self.last[name] = flat
            now[name] = float(np.linalg.norm(flat))
            self.norms[name].append(now[name])
        return now

    def plot(self, path=None, *, title: str = "gradient flow"):
        """Left: each layer's gradient norm over the recorded steps (log scale, dark =
        near the input). Right: the norm across layers at the first, middle and last
        step: a slope down towards the input is a vanishing gradient. Returns the Figure
        (saved to `path` if given)."""
        if not self.steps:
            raise ValueError("gradient_flow: nothing recorded yet (call record() after "
                             "backward())")
        from nn.plot import _figure, _finish  # (matplotlib, headless-safe, no pyplot with a path)
        from matplotlib import colormaps

        fig = _figure(path, figsize=(11, 4.2))
        left, right = fig.subplots(1, 2)
        names = [name for name, _ in self.layers]
        colors = colormaps["viridis"](np.linspace(0, 0.9, len(names)))
        for name, color in zip(names, colors):
            left.plot(self.steps, _positive(self.norms[name]), color=color, label=name, lw=2)
        left.set_yscale("log")
        left.set_xlabel("training step")
        left.set_ylabel("‖gradient‖ of the layer's parameters")
        left.set_title(title)
        left.legend(fontsize=8, ncol=1 + len(names) // 8, loc="best")
        picks = sorted({0, len(self.steps) // 2, len(self.steps) - 1})
        for k, shade in zip(picks, ("#9ca3af", "#4b5563", "#111827")):
            right.plot(range(len(names)), _positive([self.norms[n][k] for n in names]),
                       "o-", color=shade, label=f"step {self.steps[k]}", lw=2)
        right.set_yscale("log")
        right.set_xticks(range(len(names)))
        right.set_xticklabels([n.split(":")[0] for n in names], fontsize=8)
        right.set_xlabel("layer (input → output)")
        right.set_title("across layers")
        right.legend(fontsize=8)
        for ax in (left, right):
            ax.grid(True, which="major", alpha=0.3)
        fig.tight_layout()
        return _finish(fig, path)

    def histograms(self, path=None, *, bins: int = 40):
        """The distribution of log10 |gradient entry| per layer at the last step, one row
        per layer (input at the top). Returns the Figure."""
        if not self.last:
            raise ValueError("gradient_flow: nothing recorded yet")
        from nn.plot import _figure, _finish

        names = [name for name, _ in self.layers]
        fig = _figure(path, figsize=(8, 0.9 + 0.75 * len(names)))
        axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True))
        logs = {n: np.log10(np.abs(self.last[n])[np.abs(self.last[n]) > 0]) for n in names}
        finite = np.concatenate([v for v in logs.values() if v.size] or [np.zeros(1)])
        edges = np.linspace(finite.min() - 0.5, finite.max() + 0.5, bins + 1)
        for ax, n in zip(axes, names):
            ax.hist(logs[n], bins=edges, color="#2563eb")
            ax.set_ylabel(n.split(":")[0], rotation=0, ha="right", va="center", fontsize=9)
            ax.set_yticks([])
        axes[-1].set_xlabel(f"log10 |gradient|, step {self.steps[-1]}")
        fig.tight_layout()
        return _finish(fig, path)


def _positive(values) -> list:
    """Zero norms as NaN: a log axis cannot show them (a gap, not a crash)."""
    return [v if v > 0 else float("nan") for v in values]


def gradient_flow(model) -> GradientFlow:
    """A recorder of `model`'s per-layer gradient norms; call `.record()` after each
    backward and `.plot()` / `.histograms()` to see them.

    >>> import numpy as np, nn
    >>> from autodiff import Tensor
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    >>> flow = gradient_flow(net)
    >>> net(Tensor(np.ones((4, 2)))).sum().backward()
    >>> sorted(flow.record())
    ['0: Linear', '2: Linear']
    """
    return GradientFlow(model)
