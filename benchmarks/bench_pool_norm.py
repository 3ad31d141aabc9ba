"""Pooling and batch norm, forward + backward, on LeNet-sized float32 inputs, against
torch CPU with one thread in the same run: median time per call of

  max_pool2d 2×2        ours (autodiff/ops_pool.py) vs torch.nn.functional.max_pool2d
  avg_pool2d 2×2        ours vs torch (LeNet-5's original subsampling)
  batch_norm (train)    ours fused (one op), ours composed from primitives (mean, sub,
                        mul, pow...: what the fused op replaces), and torch

on the outputs of LeNet's two convolutions: 64×6×24×24 and 64×16×8×8. Each call makes a
fresh input that requires grad, runs the forward and a backward with a fixed cotangent.
Contestants are interleaved round by round (benchmarks/_common.measure); the table gives
medians of process CPU time and the ratio to torch.

    python benchmarks/bench_pool_norm.py [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import (cpu_model, fmt_ratio, fmt_time, load_average, measure,  # noqa: E402
                     optional_torch, pin_blas_threads, progress, say, table)

pin_blas_threads()

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import nn.functional as F  # noqa: E402
from autodiff import Tensor  # noqa: E402

SHAPES = [(64, 6, 24, 24), (64, 16, 8, 8)]
EPS = 1e-5


def composite_batch_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Training batch norm written with the library's primitives, as a user would."""
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return centred * (var + EPS) ** -0.5 * w.reshape(shape) + b.reshape(shape)


def cases(shape, torch):
    """name -> {contestant: fn} for one input shape."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape).astype(np.float32)
    n, c, h, w = shape
    pooled = rng.standard_normal((n, c, h // 2, w // 2)).astype(np.float32)
    full = rng.standard_normal(shape).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)

    def ours(fn, cot, params=()):
        ps = [Tensor(p, requires_grad=True) for p in params]

        def run():
            x = Tensor(data, requires_grad=True)
            fn(x, *ps).backward(cot)
            for p in ps:
                p.grad = None
        return run

    def theirs(fn, cot, params=()):
        ps = [torch.tensor(p, requires_grad=True) for p in params]
        tcot = torch.from_numpy(cot)

        def run():
            x = torch.tensor(data, requires_grad=True)
            fn(x, *ps).backward(tcot)
            for p in ps:
                p.grad = None
        return run

    table_ = {
        "max_pool2d 2×2": {"ours": ours(lambda x: F.max_pool2d(x, 2), pooled)},
        "avg_pool2d 2×2": {"ours": ours(lambda x: F.avg_pool2d(x, 2), pooled)},
        "batch_norm train": {
            "ours": ours(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         full, (weight, bias)),
            "ours composite": ours(composite_batch_norm, full, (weight, bias)),
        },
    }
    if torch is not None:
        tf = torch.nn.functional
        table_["max_pool2d 2×2"]["torch"] = theirs(lambda x: tf.max_pool2d(x, 2), pooled)
        table_["avg_pool2d 2×2"]["torch"] = theirs(lambda x: tf.avg_pool2d(x, 2), pooled)
        table_["batch_norm train"]["torch"] = theirs(
            lambda x, w, b: tf.batch_norm(x, None, None, w, b, training=True), full,
            (weight, bias))
    return table_


def check_agreement(torch) -> None:
    """The fused and composite batch norms and torch give the same gradients (so the
    timings compare the same computation)."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((8, 3, 5, 5))
    w, b = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    grads = []
    for fn in (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
               composite_batch_norm):
        x, pw, pb = (Tensor(a, requires_grad=True) for a in (data, w, b))
        (fn(x, pw, pb) ** 2).sum().backward()
        grads.append([np.asarray(t.grad) for t in (x, pw, pb)])
    for a, c in zip(*grads):
        np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, short calls")
    args = parser.parse_args()
    torch = optional_torch()
    check_agreement(torch)
    repeats, min_time = (3, 0.02) if args.quick else (9, 0.2)

    say("# Pooling and batch norm: forward + backward, float32, one thread\n")
    say(f"CPU: {cpu_model()}; load average {load_average()}; numpy {np.__version__}"
        + (f"; torch {torch.__version__}" if torch is not None else ""))
    say()
    rows = []
    for shape in SHAPES:
        for name, contestants in cases(shape, torch).items():
            progress(f"{name} {shape}")
            results = measure(contestants, repeats=repeats, min_time=min_time)
            base = results.get("torch")
            for who, r in results.items():
                ratio = (r.cpu_median / base.cpu_median) if base is not None and base.ok \
                    else float("nan")
                rows.append([name, "×".join(map(str, shape)), who,
                             fmt_time(r.cpu_median) if r.ok else r.error,
                             fmt_time(r.median), fmt_ratio(ratio)])
    say(table(["case", "input", "who", "median CPU", "median wall", "vs torch"], rows))


if __name__ == "__main__":
    main()
