"""conv2d forward + backward, ours against torch CPU (one thread) in the same run, and the
numpy formulations the `convolution` primitive was chosen from.

Cases (float32 by default, batch 64, 5x5 kernels, stride 1, no padding, with bias):

  lenet1   1x28x28 -> 6 channels; the input needs no gradient (a network's first layer)
  lenet2   6x12x12 -> 16 channels (LeNet's second layer); the input needs its gradient
  lenet1+dx  lenet1 with the input's gradient too (for comparison; torch is slow there)

Table 1: one step (forward, then backward of a fixed random cotangent; gradients reset to
None each time) for torch and ours (`nn.functional.conv2d` on Tensors), the ratio
ours / torch (the issue's target is <= 1.5x), and the primitive's forward and vjp called
on raw arrays (no graph), which shows the engine's share.

Table 2: each part of the step by formulation, on raw arrays:
  forward       batch-last im2col + one matmul (ours) | batch-first im2col + stacked
                matmul | einsum over the window view | tensordot over the window view
  weight grad   matmul with the saved batch-last columns (ours) | einsum over the window view
  input grad    batch-last col2im, one strided add per kernel offset (ours) | the same,
                batch-first | a transposed convolution as a correlation of the zero-padded
                gradient with the flipped kernel (im2col + matmul) | scatter by index
                (np.add.at)
Every formulation is checked against ours before it is timed.

Timing: `_common.measure` (warm-up, repeats of >= 0.05 s, contestants interleaved round by
round), medians of process CPU time; wall-time medians alongside.

    python benchmarks/bench_conv.py [--dtype float64] [--repeats 7] [--only lenet2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import (cpu_model, fmt_ratio, fmt_time, load_average, measure,  # noqa: E402
                     pin_blas_threads, progress, say, table)

pin_blas_threads()

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

from autodiff import OPS, Tensor  # noqa: E402
from autodiff.ops_conv import col2im, im2col  # noqa: E402
import nn.functional as F  # noqa: E402

CASES = {  # name: (N, C, H=W, O, k, input needs a gradient)
    "lenet1": (64, 1, 28, 6, 5, False),
    "lenet2": (64, 6, 12, 16, 5, True),
    "lenet1+dx": (64, 1, 28, 6, 5, True),
}
OPTS = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}
CONV = OPS["convolution"]


def arrays(case, dtype):
    n, c, h, o, k, _ = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    g = rng.standard_normal((n, o, h - k + 1, h - k + 1)).astype(dtype)
    return x, w, b, g


# -- table 1: whole steps ---------------------------------------------------------------
def step_torch(x, w, b, g, dx):
    import torch

    torch.set_num_threads(1)
    tx = torch.tensor(x, requires_grad=dx)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    tg = torch.tensor(g)
    params = (tx, tw, tb) if dx else (tw, tb)

    def run():
        for p in params:
            p.grad = None
        torch.nn.functional.conv2d(tx, tw, tb).backward(tg)
    return run, lambda: [p.grad.numpy() for p in params]


def step_ours(x, w, b, g, dx):
    X = Tensor(x, requires_grad=dx)
    W, B = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    G = Tensor(g)
    params = (X, W, B) if dx else (W, B)

    def run():
        for p in params:
            p.grad = None
        F.conv2d(X, W, B).backward(G)
    return run, lambda: [np.asarray(p.grad) for p in params]


def step_raw(x, w, b, g, dx):
    need = (dx, True, True)

    def run():
        out, (cols,) = CONV.forward(x, w, b, **OPTS)
        return CONV.vjp(g, out, x, w, b, cols, need=need, **OPTS)
    return run, lambda: [r for r in run() if r is not None]


# -- table 2: formulations of each part ---------------------------------------------------
def windows(x, k):
    return sliding_window_view(x, (k, k), axis=(2, 3))            # (N, C, OH, OW, k, k)


def forward_batch_last(x, w):
    return CONV.forward(x, w, **OPTS)[0]


def forward_batch_first(x, w):
    n, c, h, _ = x.shape
    o, k = w.shape[0], w.shape[2]
    oh = h - k + 1
    cols = np.ascontiguousarray(windows(x, k).transpose(0, 1, 4, 5, 2, 3))
    return (w.reshape(o, -1) @ cols.reshape(n, c * k * k, oh * oh)).reshape(n, o, oh, oh)


def forward_einsum(x, w):
    return np.einsum("nchwij,ocij->nohw", windows(x, w.shape[2]), w, optimize=True)


def forward_tensordot(x, w):
    out = np.tensordot(windows(x, w.shape[2]), w, axes=((1, 4, 5), (1, 2, 3)))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def weight_grad_matmul(x, w, g, cols):
    o = w.shape[0]
    g_cols = np.ascontiguousarray(g.transpose(1, 2, 3, 0)).reshape(o, -1)
    return (g_cols @ cols[0].T).reshape(w.shape)


def weight_grad_einsum(x, w, g, cols):
    return np.einsum("nohw,nchwij->ocij", g, windows(x, w.shape[2]), optimize=True)


def input_grad_batch_last(x, w, g):
    o = w.shape[0]
    g_cols = np.ascontiguousarray(g.transpose(1, 2, 3, 0)).reshape(1, o, -1)
    return col2im(w.reshape(1, o, -1).transpose(0, 2, 1) @ g_cols, x.shape, w.shape[2:],
                  (1, 1), ((0, 0), (0, 0)), (1, 1))


def input_grad_batch_first(x, w, g):
    n, c, h, _ = x.shape
    o, k = w.shape[0], w.shape[2]
    oh = h - k + 1
    gc = (w.reshape(o, -1).T @ g.reshape(n, o, oh * oh)).reshape(n, c, k, k, oh, oh)
    gx = np.zeros(x.shape, dtype=g.dtype)
    for i, j in itertools.product(range(k), range(k)):
        gx[:, :, i:i + oh, j:j + oh] += gc[:, :, i, j]
    return gx


def input_grad_transposed_conv(x, w, g):
    k = w.shape[2]
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, O, k, k)
    pad = ((k - 1, k - 1), (k - 1, k - 1))
    return CONV.forward(g, flipped, stride=(1, 1), padding=pad, dilation=(1, 1),
                        groups=1)[0]


def input_grad_add_at(x, w, g):
    n, c, h, _ = x.shape
    o, k = w.shape[0], w.shape[2]
    oh = h - k + 1
    gc = (w.reshape(o, -1).T @ g.reshape(n, o, oh * oh)).reshape(n, c, k, k, oh, oh)
    i = np.arange(k)[:, None, None, None] + np.arange(oh)[None, None, :, None]
    j = np.arange(k)[None, :, None, None] + np.arange(oh)[None, None, None, :]
    flat = np.broadcast_to(i * h + j, (k, k, oh, oh))
    gx = np.zeros((n, c, h * h), dtype=g.dtype)
    np.add.at(gx, (slice(None), slice(None), flat), gc)
    return gx.reshape(x.shape)


FORMULATIONS = {
    "forward": {"batch-last im2col + matmul (ours)": forward_batch_last,
                "batch-first im2col + stacked matmul": forward_batch_first,
                "einsum over windows": forward_einsum,
                "tensordot over windows": forward_tensordot},
    "weight grad": {"matmul with saved columns (ours)": weight_grad_matmul,
                    "einsum over windows": weight_grad_einsum},
    "input grad": {"batch-last col2im, add per offset (ours)": input_grad_batch_last,
                   "batch-first col2im, add per offset": input_grad_batch_first,
                   "transposed conv as correlation": input_grad_transposed_conv,
                   "scatter by index (np.add.at)": input_grad_add_at},
}


def check_close(name, got, want, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(got, want):
        scale = max(1.0, float(np.abs(b).max()))
        if not np.allclose(a, b, rtol=tol, atol=tol * scale):
            raise AssertionError(f"{name}: differs from ours by {np.abs(a - b).max():.3g}")


def run_case(case, dtype, repeats, torch_ok):
    x, w, b, g = arrays(case, dtype)
    dx = CASES[case][5]
    fns, parts = {}, {}
    builders = {"ours": step_ours, "raw primitive": step_raw}
    if torch_ok:
        builders = {"torch": step_torch, **builders}
    grads = {}
    for name, build in builders.items():
        fns[name], grads[name] = build(x, w, b, g, dx)
    fns["ours"]()
    reference = grads["ours"]()
    for name in fns:  # every contestant computes the same gradients
        fns[name]()
        check_close(name, grads[name](), reference, dtype)
    progress(f"{case}: steps")
    steps = measure(fns, repeats=repeats)

    cols = im2col(x, w.shape[2:], (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    part_args = {"forward": (x, w), "weight grad": (x, w, g, cols), "input grad": (x, w, g)}
    for part, options in FORMULATIONS.items():
        if part == "input grad" and not dx:
            continue
        args = part_args[part]
        first = next(iter(options.values()))(*args)
        part_fns = {}
        for name, fn in options.items():
            check_close(f"{part}: {name}", [fn(*args)], [first], dtype)
            part_fns[name] = (lambda fn=fn: fn(*args))
        progress(f"{case}: {part}")
        parts[part] = measure(part_fns, repeats=repeats)
    return steps, parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", action="append", choices=list(CASES))
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    try:
        import torch  # noqa: F401
        torch_ok = True
    except ImportError:
        torch_ok = False
    say(f"# conv2d forward + backward, {dtype}, one thread")
    say(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores; load average {load_average()}; "
        f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch_ok else
                                     ", torch not installed"))
    for case in args.only or list(CASES):
        n, c, h, o, k, dx = CASES[case]
        steps, parts = run_case(case, dtype, args.repeats, torch_ok)
        say(f"\n## {case}: ({n}, {c}, {h}, {h}) -> {o} channels, {k}x{k}"
            f"{', input gradient too' if dx else ', no input gradient'}\n")
        base = steps["torch"].cpu_median if torch_ok else float("nan")
        rows = [[name, fmt_time(r.cpu_median), fmt_time(r.median),
                 fmt_ratio(r.cpu_median / base)] for name, r in steps.items()]
        say(table(["step (forward + backward)", "CPU median", "wall median", "/ torch"],
                  rows))
        for part, res in parts.items():
            best = min(r.cpu_median for r in res.values())
            rows = [[name, fmt_time(r.cpu_median), fmt_time(r.median),
                     fmt_ratio(r.cpu_median / best)] for name, r in res.items()]
            say("\n" + table([part, "CPU median", "wall median", "/ fastest"], rows))


if __name__ == "__main__":
    main()
