"""`TrainingView`: loss and metric curves and per-layer gradient norms, live while training.

In Jupyter the view is a widget (through `anywidget`) that redraws as numbers arrive;
`save(path)` writes the same view as one self-contained HTML page (no network, no
server). `nn.fit(..., live=True)` makes one and feeds it every epoch; a hand-written
loop calls `log(...)` and `log_gradients(model)` itself:

    view = nn.TrainingView(title="moons")
    display(view)                      # in a notebook
    for epoch in range(20):
        ...; loss.backward()
        view.log_gradients(model)      # after backward, before the next zero_grad
        opt.step()
        view.log(epoch, loss=loss.item())
    view.save("training.html")

`log_graph(loss)`, called before `loss.backward()` (which releases what it needs), shows
the explorer of that step's graph under the curves: every node's value and gradient, its
chain-rule paths, the backward stepper (`autodiff.explore`). `fit` does so for the last
batch of the first and the final epoch and in between every `explore_interval` seconds,
and never spends more than a fifth of the training time on it.

Gradient norms are per layer: the 2-norm of all gradients of the parameters a module
holds directly ("0: Linear", "fc1: Linear"...; a parameter of the model itself under
the model's class name), the number that shows vanishing or exploding
gradients through depth.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import numpy as np

_ESM = Path(__file__).with_name("live.js")


def layer_gradient_norms(model) -> dict:
    """{layer name: 2-norm of its parameters' gradients} for the modules of `model` that
    hold parameters directly, in the model's order; parameters without a gradient
    count as zero.

    >>> import numpy as np, nn
    >>> from autodiff import Tensor
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    >>> net(Tensor(np.ones((4, 2)))).sum().backward()
    >>> list(layer_gradient_norms(net))
    ['0: Linear', '2: Linear']
    """
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    sums: dict = {}
    for name, p in model.named_parameters():
        prefix = name.rpartition(".")[0]
        layer = f"{prefix}: {kinds[prefix]}" if prefix else kinds[""]
        g = p.grad
        total = 0.0 if g is None else float(np.sum(np.square(np.asarray(g.data, np.float64))))
        sums[layer] = sums.get(layer, 0.0) + total
    return {layer: math.sqrt(s) for layer, s in sums.items()}


class TrainingView:
    """Curves of named numbers against a step (epoch or batch), and per-layer gradient
    norms, shown live in Jupyter and saved as one HTML page."""

    def __init__(self, *, title: str = "training", xlabel: str = "epoch",
                 min_interval: float = 0.2, explore: bool = True,
                 explore_interval: float = 2.0) -> None:
        if not isinstance(title, str) or not isinstance(xlabel, str):
            raise TypeError("TrainingView: title and xlabel must be str")
        if not isinstance(explore, bool):
            raise TypeError(f"TrainingView: explore must be True or False, got {explore!r}")
        for name, v in (("min_interval", min_interval), ("explore_interval", explore_interval)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0):
                raise ValueError(f"TrainingView: {name} must be a number >= 0, got {v!r}")
        self.title, self.xlabel = title, xlabel
        self.curves: dict = {}
        self.gradients: dict = {}
        self.min_interval = min_interval
        self.explore, self.explore_interval = explore, explore_interval
        # the last graph shown: {"step", "nodes", "data" (the explorer's)}, or why none is
        self.graph: dict | None = None
        self.graph_error: str | None = None
        self._graph_next = 0.0  # (time.monotonic) fit's next graph is due from then
        self._steps = 0
        self._widget = self._curves_widget = self._graph_widget = None
        self._sent = -math.inf  # (the first update is never held back)

    # -- recording ---------------------------------------------------------------------
    def log(self, step=None, **values) -> None:
        """Add one point per named value at `step` (default: one after the last)."""
        self._record(step, values)
        self._push()

    def log_gradients(self, model, step=None) -> dict:
        """Record the per-layer gradient norms of `model` now (after backward); returns
        them."""
        norms = layer_gradient_norms(model)
        self.log_gradient_norms(norms, step)
        return norms

    def log_gradient_norms(self, norms: dict, step=None) -> None:
        """Record given per-layer gradient norms ({layer: norm}) at `step`."""
        self._record_norms(norms, step)
        self._push()

    def _record(self, step, values: dict) -> None:
        if not values:
            raise TypeError("TrainingView.log: give at least one value, e.g. log(loss=0.3)")
        x = self._step(step)
        for name, v in values.items():
            self.curves.setdefault(name, []).append([x, self._number(name, v)])

    def _record_norms(self, norms: dict, step) -> None:
        x = self._step(step, advance=False)
        for layer, v in norms.items():
            self.gradients.setdefault(str(layer), []).append([x, self._number(layer, v)])

    def log_graph(self, root, step=None, *, errors: str = "raise") -> None:
        """Show the explorer of the graph below `root` (a step's loss) under the curves.
        Call it before backward: a backward releases what the explorer needs (the
        explorer computes its gradients on the side and never touches .grad).
        `errors="show"` puts a graph that cannot be explored (too big, no graphviz) in
        the view's caption and stops showing graphs, instead of raising."""
        if errors not in ("raise", "show"):
            raise ValueError(f"TrainingView.log_graph: errors must be 'raise' or 'show', "
                             f"got {errors!r}")
        x = self._step(step, advance=False)
        start = time.monotonic()
        try:
            from autodiff.viz.explore import Explorer
            data = Explorer(root).data
        except (ValueError, RuntimeError, ImportError) as err:
            if errors == "raise":
                raise
            self.graph_error = f"{type(err).__name__}: {err}"
            self._push(force=True)
            return
        now = time.monotonic()
        # the next graph waits explore_interval, and four times this one's cost so that
        # graphs take at most a fifth of the time
        self._graph_next = now + max(self.explore_interval, 4 * (now - start))
        self.graph = {"step": x, "nodes": len(data["nodes"]), "data": data}
        if self._widget is not None:
            self._show_graph()
        self._push(force=True)

    def graph_due(self, *, final: bool = False) -> bool:
        """Whether `fit` shows this step's graph: `explore` is on, no graph failed, and it
        is the first or the `final` one, or the next one is due (see log_graph)."""
        return self.explore and self.graph_error is None and (
            final or time.monotonic() >= self._graph_next)

    def _step(self, step, *, advance: bool = True) -> float:
        if step is None:
            step = self._steps
        if isinstance(step, bool) or not isinstance(step, (int, float, np.integer, np.floating)) \
                or not math.isfinite(step):
            raise TypeError(f"TrainingView.log: step must be a finite number, got {step!r}")
        if advance:
            self._steps = max(self._steps, step + 1)
        return float(step)

    @staticmethod
    def _number(name, v) -> float:
        if hasattr(v, "item") and getattr(v, "size", 1) == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"TrainingView.log: {name} must be a number, got "
                            f"{type(v).__name__}")
        return float(v)

    # -- showing -----------------------------------------------------------------------
    @property
    def data(self) -> dict:
        """What the page draws (JSON-ready)."""
        graph = None
        if self.graph_error is not None:
            graph = {"error": self.graph_error}
        elif self.graph is not None:
            graph = {"step": self.graph["step"], "nodes": self.graph["nodes"]}
        return {"title": self.title, "xlabel": self.xlabel,
                "curves": {k: list(v) for k, v in self.curves.items()},
                "gradients": {k: list(v) for k, v in self.gradients.items()},
                "graph": graph}

    @property
    def widget(self):
        """The Jupyter widget: the curves, and under them the explorer of the last graph
        once there is one (made on first use; needs the `anywidget` package)."""
        if self._widget is None:
            import ipywidgets  # (anywidget depends on it)
            self._curves_widget = _make_widget(self.data)
            self._widget = ipywidgets.VBox([self._curves_widget])
            if self.graph is not None:
                self._show_graph()
        return self._widget

    def _show_graph(self) -> None:
        """Send the last graph to the explorer under the curves (made on the first one)."""
        data = self.graph["data"]
        if self._graph_widget is None:
            from autodiff.viz.explore import explorer_widget
            self._graph_widget = explorer_widget(data)
            self._widget.children = (self._curves_widget, self._graph_widget)
        else:
            self._graph_widget.data = data

    def _push(self, force: bool = False) -> None:
        if self._widget is None:
            return
        now = time.monotonic()
        if force or now - self._sent >= self.min_interval:
            from autodiff.viz.page import json_safe  # (not at import: it loads graphviz)
            self._curves_widget.data = json_safe(self.data)
            self._sent = now

    def flush(self) -> None:
        """Send everything recorded to the widget now (logging throttles updates)."""
        self._push(force=True)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def save(self, path) -> Path:
        """Write the view (the curves, and the explorer of the last graph) as one
        self-contained HTML page; returns its path."""
        from autodiff.viz.page import standalone_page
        parts = [(_ESM.read_text(encoding="utf-8"), self.data)]
        if self.graph is not None:
            from autodiff.viz.explore import page_part
            parts.append(page_part(self.graph["data"]))
        path = Path(path)
        path.write_text(standalone_page(self.title, *parts), encoding="utf-8")
        return path


def _make_widget(data: dict):
    from autodiff.viz.page import json_safe
    return _widget_class()(data=json_safe(data))


@functools.cache
def _widget_class():
    try:
        import anywidget
        import traitlets
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("TrainingView: the live view in Jupyter needs the anywidget "
                          "package (pip install anywidget); save(path) works without it") \
            from None

    class TrainingWidget(anywidget.AnyWidget):
        _esm = _ESM
        data = traitlets.Dict().tag(sync=True)

    return TrainingWidget
