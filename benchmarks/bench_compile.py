"""autodiff.compile against eager, the numpy floor and torch eager, in one run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compile.py [--quick]

W4 (bench_core.py cases 1 and 2): 1000 mixed 32x32 ops (matmul W, * M, + B, tanh) and
1000 adds, forward + backward; W5: one SGD step of a 1024-wide MLP (64x1024 batch,
Linear-ReLU-Linear, MSE), compiled vs a numpy floor that overwrites in place. Tracing
cost: the first call of a compiled step (eager run + recording + plan) against later ones.
Medians of CPU time per call (benchmarks/_common.py), one BLAS thread.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (cpu_model, fmt_ratio, measure, optional_torch, pin_blas_threads,  # noqa: E402
                     say, table)

pin_blas_threads()

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import autodiff  # noqa: E402
import nn  # noqa: E402
from autodiff import Tensor  # noqa: E402

torch = optional_torch()


def mixed(n=1000):
    cycles = n // 4
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((32, 32))
    W = rng.standard_normal((32, 32)) / np.sqrt(32)
    M, B = rng.uniform(0.5, 1.5, (32, 32)), 0.1 * rng.standard_normal((32, 32))
    seed = np.ones((32, 32))

    def floor():
        y, tape = X0, []
        for _ in range(cycles):
            y = np.tanh((y @ W) * M + B)
            tape.append(y)
        g = seed
        for out in reversed(tape):
            g = ((g * (1 - out * out)) * M) @ W.T
        return g

    x, Wt, Mt, Bt = Tensor(X0, requires_grad=True), Tensor(W), Tensor(M), Tensor(B)

    def ours():
        x.grad = None
        y = x
        for _ in range(cycles):
            y = ((y @ Wt) * Mt + Bt).tanh()
        y.backward(seed)
        return x.grad
    fns = {"numpy floor": floor, "ours eager": ours, "ours compiled": autodiff.compile(ours)}
    if torch:
        xt, Wq, Mq, Bq = (torch.tensor(a) for a in (X0, W, M, B))
        xt.requires_grad_()
        st = torch.tensor(seed)

        def torch_fn():
            xt.grad = None
            y = xt
            for _ in range(cycles):
                y = torch.tanh((y @ Wq) * Mq + Bq)
            y.backward(st)
            return xt.grad
        fns["torch eager"] = torch_fn
    return fns, lambda f: np.asarray(getattr(f(), "data", f())), n


def adds(n=1000):
    X0 = np.random.default_rng(1).standard_normal((32, 32))
    seed = np.ones((32, 32))

    def floor():
        y = X0
        for _ in range(n):
            y = y + X0
        gx = seed.copy()
        for _ in range(n):
            gx += seed
        return gx
    x = Tensor(X0, requires_grad=True)

    def ours():
        x.grad = None
        y = x
        for _ in range(n):
            y = y + x
        y.backward(seed)
        return x.grad
    fns = {"numpy floor": floor, "ours eager": ours, "ours compiled": autodiff.compile(ours)}
    if torch:
        xt, st = torch.tensor(X0, requires_grad=True), torch.tensor(seed)

        def torch_fn():
            xt.grad = None
            y = xt
            for _ in range(n):
                y = y + xt
            y.backward(st)
            return xt.grad
        fns["torch eager"] = torch_fn
    return fns, None, n


def mlp(width=1024, batch=64, lr=1e-3):
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((batch, width)), rng.standard_normal((batch, width))
    W1 = rng.standard_normal((width, width)) / np.sqrt(width)
    W2 = rng.standard_normal((width, width)) / np.sqrt(width)
    b1, b2 = np.zeros(width), np.zeros(width)
    fw = [a.copy() for a in (W1, b1, W2, b2)]
    buf = {k: np.empty((batch, width)) for k in ("h", "out", "gh")}
    buf.update({k: np.empty((width, width)) for k in ("gW1", "gW2")})

    def floor():  # in place where it can: the step a careful numpy user writes
        W1_, b1_, W2_, b2_ = fw
        h, out, gh, gW1, gW2 = (buf[k] for k in ("h", "out", "gh", "gW1", "gW2"))
        np.matmul(X, W1_.T, out=h)
        h += b1_; np.maximum(h, 0, out=h)
        np.matmul(h, W2_.T, out=out); out += b2_
        out -= Y
        loss = float((out * out).mean())
        out *= 2.0 / out.size                          # d loss / d out
        np.matmul(out.T, h, out=gW2); gb2 = out.sum(0)
        np.matmul(out, W2_, out=gh); gh *= h > 0
        np.matmul(gh.T, X, out=gW1); gb1 = gh.sum(0)
        W1_ -= lr * gW1; b1_ -= lr * gb1; W2_ -= lr * gW2; b2_ -= lr * gb2
        return loss

    lin1, lin2 = nn.Linear(width, width), nn.Linear(width, width)
    for layer, (w, b) in ((lin1, (W1, b1)), (lin2, (W2, b2))):
        layer.weight.data[...] = w
        layer.bias.data[...] = b
    model = nn.Sequential(lin1, nn.ReLU(), lin2)
    opt = nn.optim.SGD(model.parameters(), lr=lr)

    def ours(x, y):
        opt.zero_grad()
        loss = ((model(Tensor(x)) - Tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    compiled = autodiff.compile(ours)
    return {"numpy floor": floor, "ours eager": lambda: ours(X, Y),
            "ours compiled": lambda: compiled(X, Y)}, None, 1


def row_table(title, fns, n, quick):
    res = measure(fns, repeats=3 if quick else 7, min_time=0.02 if quick else 0.05,
                  budget=5 if quick else 20)
    base = res["numpy floor"].cpu_median
    tq = res["torch eager"].cpu_median if "torch eager" in res and res["torch eager"].ok else None
    rows = []
    for name, r in res.items():
        if not r.ok:
            rows.append([name, r.error, "", ""])
            continue
        rows.append([name, f"{r.cpu_median / n * 1e6:.2f}", fmt_ratio(r.cpu_median / base),
                     fmt_ratio(r.cpu_median / tq) if tq else "–"])
    say(f"### {title}\n")
    say(table(["", "µs/op CPU (median)" if n > 1 else "µs/step CPU (median)", "× numpy floor",
               "× torch eager"], rows))
    say()
    return res


def tracing_cost(make):
    fns, _, _ = make()
    step = fns["ours compiled"]
    t0 = time.process_time(); step(); first = time.process_time() - t0
    later = []
    for _ in range(5):
        t0 = time.process_time(); step(); later.append(time.process_time() - t0)
    return first, sorted(later)[2]


def main():
    quick = "--quick" in sys.argv
    say(f"## autodiff.compile on {cpu_model()}, one BLAS thread\n")
    for title, make in (("W4: 1000 mixed 32×32 ops, forward+backward", mixed),
                        ("W4: 1000 adds 32×32, forward+backward", adds),
                        ("W5: 1024-wide MLP step (64 rows, SGD)", mlp)):
        fns, check, n = make()
        if check is not None:
            a, b = check(fns["ours eager"]), check(fns["ours compiled"])
            say(f"(compiled vs eager gradient: max |diff| = {np.max(np.abs(a - b)):.1e})\n")
        row_table(title, fns, n, quick)
    rows = []
    for name, make in (("mixed chain", mixed), ("adds", adds), ("MLP step", mlp)):
        first, later = tracing_cost(make)
        rows.append([name, f"{first * 1e3:.1f} ms", f"{later * 1e3:.2f} ms",
                     fmt_ratio(first / later)])
    say("### Tracing cost (first call: eager + recording + plan; later: replay)\n")
    say(table(["step", "first call", "later (median)", "first / later"], rows))


if __name__ == "__main__":
    main()
