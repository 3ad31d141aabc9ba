"""The main demo (`make demo`).

1. The lecture's two-layer network, backpropagated and checked:

       y = W1 x + b1,   h = sigmoid(a * y),   o = W2 h + b2,   Loss = mean((o - t)**2)

   every gradient the engine computes is printed next to a central finite difference.
2. The chain rule made visible: the graph drawn with values and gradients (SVG), and
   dLoss/da written out as the product of local derivatives along its path.
3. Two moons: a tensor MLP trained with a progress bar, saved, reloaded and plotted,
   then micrograd's scalar MLP for a few steps (examples/moons_demo.py).

Everything it writes goes to demo_output/.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import autodiff  # noqa: E402
from autodiff import Tensor, no_grad  # noqa: E402

OUTDIR = "demo_output"


def lecture_network(rng: np.random.Generator) -> dict:
    """Parameters and data of the lecture's network: 3 inputs, 4 hidden units, 2 outputs."""
    def param(shape, label):
        return Tensor(rng.normal(0, 0.8, size=shape), requires_grad=True, label=label)

    return {
        "x": Tensor(rng.normal(size=3), label="x"),
        "t": Tensor([0.5, -0.25], label="t"),
        "W1": param((4, 3), "W1"), "b1": param(4, "b1"), "a": param((), "a"),
        "W2": param((2, 4), "W2"), "b2": param(2, "b2"),
    }


def forward(p: dict) -> Tensor:
    y = p["W1"] @ p["x"] + p["b1"]
    y.label = "y"
    h = (p["a"] * y).sigmoid()
    h.label = "h"
    o = p["W2"] @ h + p["b2"]
    o.label = "o"
    loss = ((o - p["t"]) ** 2).mean()
    loss.label = "Loss"
    return loss


def finite_difference(p: dict, name: str, eps: float = 1e-6) -> np.ndarray:
    """dLoss/dp[name] by central differences, one element at a time."""
    param = p[name]
    numeric = np.zeros_like(param.data)
    with no_grad():
        for index in np.ndindex(param.shape):
            original = param.data[index]
            param.data[index] = original + eps
            up = forward(p).item()
            param.data[index] = original - eps
            down = forward(p).item()
            param.data[index] = original
            numeric[index] = (up - down) / (2 * eps)
    return numeric


def check_lecture_network() -> float:
    print("== The lecture's network: y = W1 x + b1, h = sigmoid(a*y), o = W2 h + b2 ==")
    p = lecture_network(np.random.default_rng(0))
    loss = forward(p)
    loss.backward()
    print(f"Loss = {loss.item():.6f}\n")
    worst = 0.0
    for name in ("W1", "b1", "a", "W2", "b2"):
        analytic, numeric = p[name].grad, finite_difference(p, name)
        diff = float(np.max(np.abs(analytic - numeric)))
        worst = max(worst, diff)
        print(f"dLoss/d{name}  shape {p[name].shape}   max |backprop - finite difference| = {diff:.2e}")
        for a_row, n_row in zip(np.atleast_2d(analytic), np.atleast_2d(numeric)):
            print("   backprop " + " ".join(f"{v:+.6f}" for v in a_row))
            print("   numeric  " + " ".join(f"{v:+.6f}" for v in n_row))
    verdict = "agree" if worst < 1e-6 else "DISAGREE"
    print(f"\nAll gradients {verdict} with finite differences (worst difference {worst:.1e}).\n")
    return worst


def show_chain_rule() -> None:
    print("== The chain rule, drawn and written out ==")
    from autodiff.viz import chain_rule, draw_graph

    # The lecture's network with one unit per layer: every factor is a number.
    s = {name: autodiff.Value(v, label=name) for name, v in
         [("x", 1.5), ("W1", 0.8), ("b1", -0.3), ("a", 1.2), ("W2", -1.1), ("b2", 0.4)]}
    y = s["W1"] * s["x"] + s["b1"]
    y.label = "y"
    h = (s["a"] * y).sigmoid()
    h.label = "h"
    o = s["W2"] * h + s["b2"]
    o.label = "o"
    scalar_loss = (o - 0.5) ** 2
    scalar_loss.label = "Loss"
    scalar_loss.backward()
    print(chain_rule(scalar_loss, s["W1"]))
    print()

    p = lecture_network(np.random.default_rng(0))
    loss = forward(p)
    loss.backward()
    print(chain_rule(loss, p["a"]))
    graph = draw_graph(loss)
    try:
        path = graph.render(os.path.join(OUTDIR, "lecture_graph"), format="svg", cleanup=True)
        print(f"\nwrote {path}: values and gradients of every node of the network\n")
    except Exception as err:  # no `dot` program: keep the DOT text instead
        path = os.path.join(OUTDIR, "lecture_graph.dot")
        with open(path, "w") as f:
            f.write(graph.source)
        print(f"\ncould not render ({err}); wrote the DOT text to {path}\n")


def train_moons() -> None:
    print("== Two moons: a tensor MLP and a scalar (micrograd-style) MLP ==")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples"))
    import moons_demo

    moons_demo.main(OUTDIR)


def main() -> None:
    autodiff.manual_seed(0)
    os.makedirs(OUTDIR, exist_ok=True)
    worst = check_lecture_network()
    if worst >= 1e-6:
        raise SystemExit("gradient check failed")
    show_chain_rule()
    train_moons()


if __name__ == "__main__":
    main()
