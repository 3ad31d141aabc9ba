"""Two moons, end to end: train a tensor MLP with a progress bar, save it, reload it into a
fresh model, draw its decision boundary and loss curve; then train the scalar
(micrograd-style) MLP for a few steps.

    python examples/moons_demo.py            # writes PNGs and the checkpoint to .
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import autodiff  # noqa: E402
import nn  # noqa: E402
from autodiff import gc_paused, no_grad  # noqa: E402
from nn import optim  # noqa: E402


def make_model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                         nn.Linear(32, 2))


def train_tensor_mlp(outdir: str) -> float:
    """Train, save, reload, compare and plot; returns the test accuracy."""
    X, y = nn.data.make_moons(600, noise=0.15, seed=0)
    Xtr, Xte, ytr, yte = nn.data.train_test_split(X, y, test_size=0.25, seed=0)
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    schedule = optim.CosineAnnealingLR(opt, T_max=40)
    history = nn.fit(model, nn.CrossEntropyLoss(), opt, Xtr, ytr, epochs=40, batch_size=32,
                     validation=(Xte, yte), scheduler=schedule, desc="moons MLP")
    accuracy = history.val_accuracy[-1]
    print(f"tensor MLP: final train loss {history.loss[-1]:.4f}, "
          f"test accuracy {accuracy:.3f}")

    path = os.path.join(outdir, "moons_mlp.safetensors")
    nn.save(model, path)
    fresh = make_model()
    nn.load(fresh, path)
    with no_grad():
        same = np.array_equal(model(X).data, fresh(X).data)
    print(f"saved to {path}; reloaded model gives identical predictions: {same}")
    if not same:
        raise RuntimeError("the reloaded model predicts differently")

    nn.plot_decision_boundary(model, X, y, os.path.join(outdir, "moons_boundary.png"),
                              title=f"two moons, test accuracy {accuracy:.3f}")
    nn.plot_history(history, os.path.join(outdir, "moons_loss.png"), title="moons MLP")
    print(f"wrote {outdir}/moons_boundary.png and {outdir}/moons_loss.png")
    return accuracy


def train_scalar_mlp(steps: int = 15) -> float:
    """micrograd's recipe on Values: hinge loss + L2, SGD with a decaying step."""
    X, y = nn.data.make_moons(60, noise=0.1, seed=1)
    signs = (2 * y - 1).tolist()
    model = nn.MLP(2, [8, 8, 1])
    print(model)
    for k in range(steps):
        with gc_paused():  # large scalar graphs: skip the cyclic GC's walks
            scores = [model(x) for x in X.tolist()]
            data_loss = sum((1 - s * yi).relu() for s, yi in zip(scores, signs)) * (1 / len(signs))
            reg = 1e-4 * sum(p * p for p in model.parameters())
            loss = data_loss + reg
            model.zero_grad()
            loss.backward()
            lr = 1.0 - 0.9 * k / steps
            for p in model.parameters():
                p.data -= lr * p.grad
        acc = np.mean([(s.data > 0) == (yi > 0) for s, yi in zip(scores, signs)])
        print(f"scalar MLP step {k}: loss {loss.data:.4f}, accuracy {acc:.2f}")
    return loss.data


def main(outdir: str = ".") -> None:
    os.makedirs(outdir, exist_ok=True)
    autodiff.manual_seed(0)
    train_tensor_mlp(outdir)
    train_scalar_mlp()


if __name__ == "__main__":
    main()
