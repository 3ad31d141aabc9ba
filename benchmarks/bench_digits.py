"""Digits MLP 64-128-128-10, float32, batch 64, Adam (lr 1e-3), one BLAS thread: median
seconds per epoch of

  (a) ours: nn.Linear / nn.ReLU / nn.CrossEntropyLoss / nn.optim.Adam on autodiff Tensors,
      eager and with the step in autodiff.compile
  (b) floor: forward, backward and Adam written by hand in numpy (in-place updates, Adam
      parameter by parameter as one writes it by hand: the ratios' reference)
  (b') the same floor with Adam on one flat buffer (as our optimizers update a group of
      parameters; see nn/optim/flat.py), for comparison: shows what ours gains there
  (c) torch CPU, torch.set_num_threads(1), torch.optim.Adam with its defaults
  (d) mygrad and HIPS autograd, when installed (their gradients, our numpy Adam)

Every contestant runs the same epochs over the same batches. Prints a markdown table
with medians and the ratio to the floor.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_digits.py [--epochs 21]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SIZES = (64, 128, 128, 10)
BATCH = 64
LR = 1e-3
DTYPE = np.float32


def init_params(seed: int = 0) -> list[np.ndarray]:
    """PyTorch-default initial weights (W (out, in), b (out,)), shared by every contestant."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(DTYPE))
        params.append(rng.uniform(-bound, bound, fan_out).astype(DTYPE))
    return params


def batch_orders(n: int, epochs: int, seed: int = 1) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [np.array_split(rng.permutation(n), range(BATCH, n, BATCH)) for _ in range(epochs)]


class NumpyAdam:
    """In-place Adam on a list of arrays (PyTorch's arithmetic)."""

    def __init__(self, params, lr=LR, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, b1, b2, eps, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.tmp = [np.empty_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        step_size = self.lr / (1 - self.b1 ** self.t)
        bc2 = math.sqrt(1 - self.b2 ** self.t)  # a Python float keeps float32 math
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self.tmp):
            np.subtract(g, m, out=tmp)
            tmp *= 1 - self.b1
            m += tmp
            v *= self.b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - self.b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= bc2
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp


# -- contestants: each returns a function running one epoch over the given batches -----

def make_floor(X, y, flat=False):
    params = init_params()
    if flat:  # parameters as views of one buffer; the gradients copied into another
        buffer = np.concatenate([p.ravel() for p in params])
        grad_buffer = np.empty_like(buffer)
        bounds = np.cumsum([0] + [p.size for p in params])
        params = [buffer[a:b].reshape(p.shape) for p, a, b in zip(params, bounds, bounds[1:])]
        grad_views = [grad_buffer[a:b].reshape(p.shape)
                      for p, a, b in zip(params, bounds, bounds[1:])]
        flat_opt = NumpyAdam([buffer])

        class Opt:
            @staticmethod
            def step(grads):
                for view, g in zip(grad_views, grads):
                    view[...] = g
                flat_opt.step([grad_buffer])
        opt = Opt()
    else:
        opt = NumpyAdam(params)
    W1, b1, W2, b2, W3, b3 = params

    def epoch(order):
        total = 0.0
        for idx in order:
            x, t = X[idx], y[idx]
            n = len(idx)
            z1 = x @ W1.T
            z1 += b1
            h1 = np.maximum(z1, 0)
            z2 = h1 @ W2.T
            z2 += b2
            h2 = np.maximum(z2, 0)
            z3 = h2 @ W3.T
            z3 += b3
            z3 -= z3.max(axis=1, keepdims=True)
            e = np.exp(z3)
            s = e.sum(axis=1, keepdims=True)
            rows = np.arange(n)
            total += float(np.mean(np.log(s[:, 0]) - z3[rows, t]))
            d3 = e / s
            d3[rows, t] -= 1
            d3 /= n
            d2 = (d3 @ W3) * (z2 > 0)
            d1 = (d2 @ W2) * (z1 > 0)
            opt.step([d1.T @ x, d1.sum(axis=0), d2.T @ h1, d2.sum(axis=0),
                      d3.T @ h2, d3.sum(axis=0)])
        return total
    return epoch


def make_ours(X, y, compiled=False):
    import autodiff
    import nn
    from autodiff import Tensor

    net = nn.Sequential(nn.Linear(64, 128, dtype=DTYPE), nn.ReLU(),
                        nn.Linear(128, 128, dtype=DTYPE), nn.ReLU(),
                        nn.Linear(128, 10, dtype=DTYPE))
    for p, value in zip(net.parameters(), init_params()):
        p.data[...] = value
    loss_fn = nn.CrossEntropyLoss()
    opt = nn.optim.Adam(net.parameters(), lr=LR)

    def step(xb, yb):
        opt.zero_grad()
        loss = loss_fn(net(Tensor(xb)), yb)
        loss.backward()
        opt.step()
        return loss

    if compiled:  # traced on the warm-up epoch (two batch sizes: two traces)
        step = autodiff.compile(step)

    def epoch(order):
        total = 0.0
        for idx in order:
            total += step(X[idx], y[idx]).item()
        return total
    return epoch


def make_torch(X, y):
    import torch

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    with torch.no_grad():
        for p, value in zip(net.parameters(), init_params()):
            p.copy_(torch.from_numpy(value))
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def epoch(order):
        total = 0.0
        for idx in order:
            idx = torch.from_numpy(idx)
            opt.zero_grad()
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        return total
    return epoch


def make_mygrad(X, y):
    import mygrad as mg
    from mygrad.nnet import relu, softmax_crossentropy

    params = [mg.tensor(p) for p in init_params()]
    opt = NumpyAdam([p.data for p in params])

    def epoch(order):
        total = 0.0
        W1, b1, W2, b2, W3, b3 = params
        for idx in order:
            h = relu(mg.matmul(X[idx], W1.T) + b1)
            h = relu(mg.matmul(h, W2.T) + b2)
            loss = softmax_crossentropy(mg.matmul(h, W3.T) + b3, y[idx])
            loss.backward()
            opt.step([p.grad for p in params])
            total += loss.item()
        return total
    return epoch


def make_autograd(X, y):
    import autograd.numpy as anp
    from autograd import value_and_grad

    params = init_params()
    opt = NumpyAdam(params)

    def loss_of(ps, x, t):
        W1, b1, W2, b2, W3, b3 = ps
        h = anp.maximum(anp.dot(x, W1.T) + b1, 0)
        h = anp.maximum(anp.dot(h, W2.T) + b2, 0)
        z = anp.dot(h, W3.T) + b3
        z = z - anp.max(z, axis=1, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.mean(logp[anp.arange(len(t)), t])

    vg = value_and_grad(loss_of)

    def epoch(order):
        total = 0.0
        for idx in order:
            loss, grads = vg(params, X[idx], y[idx])
            opt.step([np.asarray(g, dtype=DTYPE) for g in grads])
            total += float(loss)
        return total
    return epoch


CONTESTANTS = {
    "ours (nn + autodiff)": make_ours,
    "ours, compiled step": lambda X, y: make_ours(X, y, compiled=True),
    "numpy floor (hand-written)": make_floor,
    "numpy floor, flat Adam": lambda X, y: make_floor(X, y, flat=True),
    "torch (1 thread)": make_torch,
    "mygrad": make_mygrad,
    "autograd (HIPS)": make_autograd,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=21, help="timed epochs per contestant")
    args = parser.parse_args()

    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(DTYPE)
    y = digits.target.astype(np.int64)
    X, y = X[: int(0.8 * len(y))], y[: int(0.8 * len(y))]  # the training split's size
    orders = batch_orders(len(y), args.epochs + 1)

    runners, times, skipped = {}, {}, {}
    for name, make in CONTESTANTS.items():
        try:
            runners[name] = make(X, y)
        except ImportError as err:
            skipped[name] = f"not installed ({err.name})"
            continue
        runners[name](orders[0])  # warm-up epoch (imports, caches, allocator)
        times[name] = []
    # Interleave contestants epoch by epoch so drifts in machine speed hit all alike.
    for order in orders[1:]:
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(order)
            times[name].append(time.perf_counter() - t0)

    floor = statistics.median(times["numpy floor (hand-written)"])
    print(f"digits MLP {'-'.join(map(str, SIZES))}, float32, batch {BATCH}, Adam, "
          f"{len(orders[1])} batches/epoch, median of {args.epochs} epochs, 1 BLAS thread\n")
    best_floor = min(times["numpy floor (hand-written)"])
    print("| implementation | median s/epoch | ms/batch | ratio to floor | best-epoch ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.4f} | {1000 * med / len(orders[1]):.3f} | {med / floor:.2f}x "
              f"| {min(ts) / best_floor:.2f}x |")
    for name, why in skipped.items():
        print(f"| {name} | skipped: {why} | | | |")


if __name__ == "__main__":
    main()
