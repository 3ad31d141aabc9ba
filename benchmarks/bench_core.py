"""Core performance benchmarks of autodiff against its peers and a hand-written numpy floor.

    python benchmarks/bench_core.py            # full run (a few minutes)
    python benchmarks/bench_core.py --quick    # smoke run: smaller sizes, fewer repeats
    python benchmarks/bench_core.py --only mlp # one case (mixed, adds, mlp, scalar, moons, profile)

Prints a markdown report on stdout (progress notes go to stderr). Every time is the
MEDIAN of several repeats after a warm-up, the libraries being interleaved round by round;
BLAS is pinned to one thread. Peers that are not installed are skipped.

Cases (targets from the performance issue):
  mixed   1000 mixed ops (matmul by a fixed 32x32 W, * M, + B, tanh) on 32x32 float64,
          forward+backward: µs/op and ratio to the numpy floor (target ≤ 1.2×).
  adds    1000 adds y = y + x on 32x32 float64, forward+backward: µs/op (target ≤ 2.5 µs).
  mlp     one SGD training step of a 1024→1024→1024→10 ReLU MLP, batch 1024, softmax
          cross-entropy, float32 and float64: time ratio to the floor (target ≤ 1.02×) and
          peak extra memory (tracemalloc) ratio to the floor (target ≤ 1.3×).
  scalar  Value chain y = y*1.0001 + 0.001 of 100,000 steps, build+backward: µs/op
          (2 ops per step; target ≤ 2 µs).
  moons   micrograd's moons demo (MLP 2→16→16→1 on Values, SVM loss + L2): per-step time
          against micrograd with identical initial weights (target ≥ 10× faster, losses
          equal to 1e-12), and the share of micrograd's step spent in the cyclic GC.
  profile where ours spends its time per op in `adds` and `scalar` (forward / backward /
          freeing the graph / GC, and cProfile's top functions).
"""

from __future__ import annotations

import os
import sys

# One BLAS thread, before numpy (or torch) is imported anywhere.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from _common import (GCTimer, cpu_time, fmt_bytes, fmt_ratio, fmt_time, load_average, measure,  # noqa: E402
                     peak_extra_bytes, perf_counter, progress, say, table)

import autodiff  # noqa: E402
from autodiff import Tensor, Value  # noqa: E402

OURS = "autodiff (ours)"
FLOOR = "floor (hand-written)"


# ---------------------------------------------------------------------------
# configuration and peers

class Config:
    def __init__(self, quick: bool):
        self.quick = quick
        self.repeats = 3 if quick else 7
        self.min_time = 0.02 if quick else 0.1       # seconds per timed repeat, at least
        self.budget = 4.0 if quick else 25.0         # seconds of timed repeats per library
        self.chain_ops = 200 if quick else 1000      # cases mixed and adds
        self.mlp_sizes = (256, 256, 256, 10) if quick else (1024, 1024, 1024, 10)
        self.mlp_batch = 256 if quick else 1024
        self.scalar_steps = 10_000 if quick else 100_000
        self.moons_steps = 4 if quick else 12        # first 2 are warm-up for timing
        self.moons_nogc_steps = 3 if quick else 7


PEERS = {}        # name -> module, for the peers imported so far
PEER_MODULES = {"torch": "torch", "autograd": "autograd", "mygrad": "mygrad",
                "micrograd": "micrograd"}
_FAILED = {}      # name -> why it could not be imported


def has(peer: str) -> bool:
    """Import a peer on first use (so a case's process holds only what it needs)."""
    if peer in PEERS:
        return True
    if peer in _FAILED:
        return False
    try:
        mod = importlib.import_module(PEER_MODULES[peer])
    except Exception as err:  # not installed, or broken against this numpy
        _FAILED[peer] = f"{type(err).__name__}: {err}"
        progress(f"peer {peer} skipped ({_FAILED[peer]})")
        return False
    if peer == "torch":
        mod.set_num_threads(1)
    PEERS[peer] = mod
    return True


def peer_versions() -> str:
    """Installed peer versions, without importing them."""
    from importlib.metadata import PackageNotFoundError, version
    notes = []
    for name, dist in PEER_MODULES.items():
        try:
            notes.append(f"{name} {version(dist)}")
        except PackageNotFoundError:
            notes.append(f"{name} (not installed: skipped)")
    return ", ".join(notes)


SUMMARY = []   # (case, metric, ours, target, verdict)
SUMMARY_TAG = "@@SUMMARY "


def verdict(ok) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def reps_note(res) -> str:
    return f"{len(res.times)}×{res.number}" if res.ok else "-"


# ---------------------------------------------------------------------------
# case 1: chain of mixed ops on 32x32

def case_mixed(cfg: Config) -> None:
    n = cfg.chain_ops - cfg.chain_ops % 4
    cycles = n // 4
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((32, 32))
    W = rng.standard_normal((32, 32)) / math.sqrt(32)
    M = rng.uniform(0.5, 1.5, (32, 32))
    B = 0.1 * rng.standard_normal((32, 32))
    seed = np.ones((32, 32))
    WT = W.T
    fns, grads = {}, {}

    def floor():
        y, tape = X0, []
        for _ in range(cycles):
            y = y @ W
            y = y * M
            y = y + B
            y = np.tanh(y)
            tape.append(y)
        g = seed
        for out in reversed(tape):
            g = g * (1 - out * out)   # tanh
            g = g * M                 # mul (add passes g through)
            g = g @ WT                # matmul
        return g
    fns[FLOOR] = floor
    grads[FLOOR] = floor

    x = Tensor(X0, requires_grad=True)
    Wt, Mt, Bt = Tensor(W), Tensor(M), Tensor(B)

    def ours():
        x.grad = None
        y = x
        for _ in range(cycles):
            y = ((y @ Wt) * Mt + Bt).tanh()
        y.backward(seed)
        return x.grad
    fns[OURS] = ours
    grads[OURS] = ours

    if has("torch"):
        torch = PEERS["torch"]
        xt = torch.tensor(X0, requires_grad=True)
        Wtt, Mtt, Btt = torch.tensor(W), torch.tensor(M), torch.tensor(B)
        seed_t = torch.tensor(seed)

        def torch_fn():
            xt.grad = None
            y = xt
            for _ in range(cycles):
                y = torch.tanh((y @ Wtt) * Mtt + Btt)
            y.backward(seed_t)
            return xt.grad.numpy()
        fns["torch"] = torch_fn
        grads["torch"] = torch_fn

    if has("autograd"):
        import autograd.numpy as anp
        from autograd import make_vjp

        def chain(x_):
            y = x_
            for _ in range(cycles):
                y = anp.tanh((y @ W) * M + B)
            return y

        def autograd_fn():
            vjp, _ = make_vjp(chain)(X0)
            return vjp(seed)
        fns["autograd"] = autograd_fn
        grads["autograd"] = autograd_fn

    if has("mygrad"):
        mg = PEERS["mygrad"]
        xm = mg.tensor(X0)
        Wm, Mm, Bm = (mg.Tensor(a, constant=True) for a in (W, M, B))

        def mygrad_fn():
            y = xm
            for _ in range(cycles):
                y = mg.tanh((y @ Wm) * Mm + Bm)
            y.backward(seed)
            return xm.grad
        fns["mygrad"] = mygrad_fn
        grads["mygrad"] = mygrad_fn

    ref = floor()
    check = {name: float(np.max(np.abs(np.asarray(fn()) - ref))) for name, fn in grads.items()
             if name != FLOOR and _runs(fn)}
    progress(f"mixed: timing {list(fns)}")
    res = measure(fns, repeats=cfg.repeats, min_time=cfg.min_time, budget=cfg.budget)
    rows = _chain_rows(res, n, check)
    say(f"### 1. Chain of {n} mixed ops (matmul·W, ·M, +B, tanh) on 32×32 float64, forward+backward\n")
    say(table(["library", "µs/op CPU (median)", "µs/op wall (median)", "µs/op wall (best)",
               "total CPU (median)", "× floor", "× ours", "max |grad − floor|", "repeats×calls"], rows))
    say()
    r_ours = res[OURS].cpu_median / res[FLOOR].cpu_median if res[OURS].ok else math.nan
    SUMMARY.append(("1 mixed chain", "ours / floor CPU time", fmt_ratio(r_ours), "≤ 1.2×",
                    verdict(r_ours <= 1.2 if math.isfinite(r_ours) else None)))


def _runs(fn) -> bool:
    try:
        fn()
        return True
    except Exception:
        return False


def _chain_rows(res, n, check):
    floor_t = res[FLOOR].cpu_median
    ours_t = res[OURS].cpu_median if res[OURS].ok else math.nan
    rows = []
    for name, r in res.items():
        if not r.ok:
            rows.append([name, r.error or "failed", "", "", "", "", "", "", ""])
            continue
        rows.append([name, f"{r.cpu_median / n * 1e6:.3f}", f"{r.median / n * 1e6:.3f}",
                     f"{r.best / n * 1e6:.3f}", fmt_time(r.cpu_median),
                     fmt_ratio(r.cpu_median / floor_t), fmt_ratio(r.cpu_median / ours_t),
                     "-" if name == FLOOR else f"{check.get(name, math.nan):.1e}",
                     reps_note(r)])
    return rows


# ---------------------------------------------------------------------------
# case 2: chain of adds on 32x32

def case_adds(cfg: Config) -> None:
    n = cfg.chain_ops
    rng = np.random.default_rng(1)
    X0 = rng.standard_normal((32, 32))
    seed = np.ones((32, 32))
    fns = {}

    def floor():
        y = X0
        for _ in range(n):
            y = y + X0
        gx = seed.copy()          # y starts as x
        for _ in range(n):        # each add sends g (= seed) to x: accumulate in place
            gx += seed
        return gx
    fns[FLOOR] = floor

    x = Tensor(X0, requires_grad=True)

    def ours():
        x.grad = None
        y = x
        for _ in range(n):
            y = y + x
        y.backward(seed)
        return x.grad
    fns[OURS] = ours

    if has("torch"):
        torch = PEERS["torch"]
        xt = torch.tensor(X0, requires_grad=True)
        seed_t = torch.tensor(seed)

        def torch_fn():
            xt.grad = None
            y = xt
            for _ in range(n):
                y = y + xt
            y.backward(seed_t)
            return xt.grad.numpy()
        fns["torch"] = torch_fn

    if has("autograd"):
        from autograd import make_vjp

        def chain(x_):
            y = x_
            for _ in range(n):
                y = y + x_
            return y

        def autograd_fn():
            vjp, _ = make_vjp(chain)(X0)
            return vjp(seed)
        fns["autograd"] = autograd_fn

    if has("mygrad"):
        mg = PEERS["mygrad"]
        xm = mg.tensor(X0)

        def mygrad_fn():
            y = xm
            for _ in range(n):
                y = y + xm
            y.backward(seed)
            return xm.grad
        fns["mygrad"] = mygrad_fn

    ref = floor()
    check = {name: float(np.max(np.abs(np.asarray(fn()) - ref))) for name, fn in fns.items()
             if name != FLOOR and _runs(fn)}
    # numpy's own cost of the two kernels per op, for reference
    a, b = X0.copy(), X0.copy()
    kernel = measure({"add": lambda: a + b}, repeats=cfg.repeats, min_time=cfg.min_time)["add"]
    progress(f"adds: timing {list(fns)}")
    res = measure(fns, repeats=cfg.repeats, min_time=cfg.min_time, budget=cfg.budget)
    say(f"### 2. Chain of {n} adds y = y + x on 32×32 float64, forward+backward\n")
    say(table(["library", "µs/op CPU (median)", "µs/op wall (median)", "µs/op wall (best)",
               "total CPU (median)", "× floor", "× ours", "max |grad − floor|", "repeats×calls"], _chain_rows(res, n, check)))
    say(f"\n(one bare numpy 32×32 `a + b`: {kernel.cpu_median * 1e6:.3f} µs CPU median; the floor does "
        "one out-of-place add forward and one in-place add backward per op)\n")
    us = res[OURS].cpu_median / n * 1e6 if res[OURS].ok else math.nan
    SUMMARY.append(("2 add chain", "ours µs/op (CPU)", f"{us:.2f} µs", "≤ 2.5 µs",
                    verdict(us <= 2.5 if math.isfinite(us) else None)))


# ---------------------------------------------------------------------------
# case 3: one SGD step of a 1024-1024-1024-10 MLP

def _mlp_data(cfg: Config, dtype):
    rng = np.random.default_rng(2)
    sizes, batch = cfg.mlp_sizes, cfg.mlp_batch
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((fan_out, fan_in)) * math.sqrt(2 / fan_in)).astype(dtype))
        params.append(np.zeros(fan_out, dtype=dtype))
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], batch)
    Y = np.zeros((batch, sizes[-1]), dtype=dtype)
    Y[np.arange(batch), labels] = 1
    return params, x, Y


LR = 0.01


class FloorMLP:
    """Hand-written numpy forward (keeping only what backward needs) and backward."""

    def __init__(self, params, x, Y):
        self.params = [p.copy() for p in params]
        self.x, self.Y = x, Y

    def zero_grad(self):
        pass

    def step(self):
        W1, b1, W2, b2, W3, b3 = self.params
        x, Y = self.x, self.Y
        n = x.shape[0]
        h1 = x @ W1.T
        h1 += b1
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ W2.T
        h2 += b2
        np.maximum(h2, 0, out=h2)
        z = h2 @ W3.T
        z += b3
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = -float(((z - np.log(s)) * Y).sum()) / n
        d = e / s                 # dloss/dlogits = (softmax - Y) / n
        d -= Y
        d /= n
        dW3, db3 = d.T @ h2, d.sum(axis=0)
        dh = d @ W3
        dh *= h2 > 0
        dW2, db2 = dh.T @ h1, dh.sum(axis=0)
        dh = dh @ W2
        dh *= h1 > 0
        dW1, db1 = dh.T @ x, dh.sum(axis=0)
        for p, g in zip(self.params, (dW1, db1, dW2, db2, dW3, db3)):
            p -= LR * g
        return loss


class OursMLP:
    """The library as a user writes it: nn.Linear / nn.ReLU layers, nn.CrossEntropyLoss."""

    def __init__(self, params, x, Y):
        import nn

        dtype = params[0].dtype
        sizes = [params[0].shape[1]] + [w.shape[0] for w in params[0::2]]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1], dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers)
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        for lin, w, b in zip(linears, params[0::2], params[1::2]):
            lin.weight.data[...] = w
            lin.bias.data[...] = b
        self.params = list(self.model.parameters())
        self.loss_fn = nn.CrossEntropyLoss()
        self.x, self.labels = Tensor(x), Y.argmax(axis=1)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.labels)
        loss.backward()
        for p in self.params:
            p.data -= LR * p.grad
        return loss.item()


class TorchMLP:
    def __init__(self, params, x, Y):
        torch = self.torch = PEERS["torch"]
        self.params = [torch.tensor(p, requires_grad=True) for p in params]
        self.x, self.Y = torch.from_numpy(x), torch.from_numpy(Y)
        self.inv_n = 1.0 / x.shape[0]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        torch = self.torch
        self.zero_grad()
        W1, b1, W2, b2, W3, b3 = self.params
        h1 = torch.relu(self.x @ W1.T + b1)
        h2 = torch.relu(h1 @ W2.T + b2)
        logits = h2 @ W3.T + b3
        loss = -(torch.log_softmax(logits, dim=1) * self.Y).sum() * self.inv_n
        loss.backward()
        with torch.no_grad():
            for p in self.params:
                p -= LR * p.grad
        return loss.item()


class AutogradMLP:
    def __init__(self, params, x, Y):
        import autograd.numpy as anp
        from autograd import value_and_grad
        from autograd.scipy.special import logsumexp
        self.params = [p.copy() for p in params]
        self.x, self.Y = x, Y
        inv_n = 1.0 / x.shape[0]

        def loss_fn(ps, x_, Y_):
            W1, b1, W2, b2, W3, b3 = ps
            h1 = anp.maximum(x_ @ W1.T + b1, 0)
            h2 = anp.maximum(h1 @ W2.T + b2, 0)
            logits = h2 @ W3.T + b3
            logp = logits - logsumexp(logits, axis=1, keepdims=True)
            return -anp.sum(logp * Y_) * inv_n
        self.vg = value_and_grad(loss_fn)

    def zero_grad(self):
        pass

    def step(self):
        loss, grads = self.vg(self.params, self.x, self.Y)
        for p, g in zip(self.params, grads):
            p -= LR * g
        return float(loss)


class MygradMLP:
    def __init__(self, params, x, Y):
        mg = self.mg = PEERS["mygrad"]
        self.params = [mg.tensor(p.copy()) for p in params]
        self.x = mg.Tensor(x, constant=True)
        self.Y = mg.Tensor(Y, constant=True)
        self.inv_n = 1.0 / x.shape[0]

    def zero_grad(self):
        for p in self.params:
            p.null_grad()

    def step(self):
        mg = self.mg
        act = mg.nnet.activations
        self.zero_grad()
        W1, b1, W2, b2, W3, b3 = self.params
        h1 = act.relu(self.x @ W1.T + b1)
        h2 = act.relu(h1 @ W2.T + b2)
        logits = h2 @ W3.T + b3
        loss = -(act.logsoftmax(logits, axis=1) * self.Y).sum() * self.inv_n
        loss.backward()
        for p in self.params:
            p.data -= LR * p.grad
        return loss.item()


def case_mlp(cfg: Config) -> None:
    sizes = "→".join(map(str, cfg.mlp_sizes))
    say(f"### 3. One SGD step of a {sizes} ReLU MLP, batch {cfg.mlp_batch}, softmax "
        "cross-entropy (forward, loss, backward, update)\n")
    rows = []
    for dtype in (np.float32, np.float64):
        dname = np.dtype(dtype).name
        params, x, Y = _mlp_data(cfg, dtype)
        impls = {FLOOR: FloorMLP, OURS: OursMLP}
        for peer, cls in (("torch", TorchMLP), ("autograd", AutogradMLP), ("mygrad", MygradMLP)):
            if has(peer):
                impls[peer] = cls
        models, first_loss = {}, {}
        for name, cls in impls.items():
            try:
                models[name] = cls(params, x, Y)
                first_loss[name] = models[name].step()   # also a warm-up
                models[name] = cls(params, x, Y)         # fresh weights for the loss check
                first_loss[name] = models[name].step()
            except Exception as err:
                models.pop(name, None)
                rows.append([dname, name, f"{type(err).__name__}: {err}"[:80]] + [""] * 7)
        # peak extra memory (numpy-backed libraries only)
        mem = {}
        for name, m in models.items():
            if name == "torch":
                continue
            try:
                mem[name] = peak_extra_bytes(m.step, before=m.zero_grad)
            except Exception as err:
                mem[name] = math.nan
                progress(f"mlp memory {name}: {err}")
        progress(f"mlp {dname}: timing {list(models)}")
        res = measure({name: m.step for name, m in models.items()}, repeats=cfg.repeats,
                      min_time=0, budget=cfg.budget)
        floor_t = res[FLOOR].cpu_median
        ours_t = res[OURS].cpu_median if res[OURS].ok else math.nan
        for name, r in res.items():
            if not r.ok:
                rows.append([dname, name, r.error] + [""] * 7)
                continue
            paired = math.nan
            if name != FLOOR and len(r.cpu) == len(res[FLOOR].cpu):
                paired = statistics.median(a / b for a, b in zip(r.cpu, res[FLOOR].cpu))
            m = mem.get(name, math.nan)
            rows.append([dname, name, fmt_time(r.cpu_median), fmt_time(r.median),
                         fmt_ratio(r.cpu_median / floor_t),
                         "-" if name == FLOOR else fmt_ratio(paired),
                         fmt_ratio(r.cpu_median / ours_t),
                         fmt_bytes(m) if name != "torch" else "n/a (not traced)",
                         fmt_ratio(m / mem[FLOOR]) if name != "torch" else "n/a",
                         f"{abs(first_loss[name] - first_loss[FLOOR]):.1e}"])
        t_ratio = ours_t / floor_t
        m_ratio = mem.get(OURS, math.nan) / mem[FLOOR]
        SUMMARY.append((f"3 MLP step {dname}", "ours / floor CPU time", fmt_ratio(t_ratio), "≤ 1.02×",
                        verdict(t_ratio <= 1.02 if math.isfinite(t_ratio) else None)))
        SUMMARY.append((f"3 MLP step {dname}", "ours / floor peak extra memory",
                        fmt_ratio(m_ratio), "≤ 1.3×",
                        verdict(m_ratio <= 1.3 if math.isfinite(m_ratio) else None)))
    say(table(["dtype", "library", "step CPU (median)", "step wall (median)", "× floor",
               "× floor (paired)", "× ours",
               "peak extra mem", "mem × floor", "|loss − floor| (step 1)"], rows))
    say("\n(ratios use CPU time; paired = median over rounds of this library's CPU time / the "
        "floor's in the same "
        "round; memory = tracemalloc peak during one step minus the traced memory before it, "
        "gradients cleared first; torch's allocator is invisible to tracemalloc)\n")


# ---------------------------------------------------------------------------
# case 4: scalar chain with Value

def case_scalar(cfg: Config) -> None:
    N = cfg.scalar_steps
    ops = 2 * N

    def floor():
        y = 1.0
        for _ in range(N):
            y = y * 1.0001 + 0.001
        g = 1.0
        for _ in range(N):      # d(y*a + c)/dy = a
            g = g * 1.0001
        return g

    def ours():
        x = Value(1.0)
        y = x
        for _ in range(N):
            y = y * 1.0001 + 0.001
        y.backward()
        return x.grad

    # Part 1, in this process holding only numpy, autodiff (and micrograd): the cyclic GC's
    # full collections walk every tracked object, so their cost depends on what else is
    # imported. Ours is measured here first, then again next to the peers.
    ours_clean = f"{OURS}, clean process"
    fns = {FLOOR: floor, ours_clean: ours}
    micro_rows = []
    if has("micrograd"):
        from micrograd.engine import Value as MValue

        def micro(steps):
            def run():
                x = MValue(1.0)
                y = x
                for _ in range(steps):
                    y = y * 1.0001 + 0.001
                y.backward()
                return x.grad
            return run
        try:
            micro(1000)()
            fns["micrograd"] = micro(N)
        except RecursionError:
            micro_rows.append(["micrograd", "RecursionError at 1000 steps", "", "", "", "", "", ""])
            shallow = 300   # a chain its recursive topological sort survives, for a per-op figure
            r = measure({"m": micro(shallow)}, repeats=cfg.repeats, min_time=cfg.min_time)["m"]
            gc.collect()    # micrograd's graphs are reference cycles
            if r.ok:
                micro_rows.append([f"micrograd @ {shallow} steps",
                                   f"{r.cpu_median / (2 * shallow) * 1e6:.3f}",
                                   f"{r.median / (2 * shallow) * 1e6:.3f}",
                                   f"{r.best / (2 * shallow) * 1e6:.3f}", fmt_time(r.cpu_median),
                                   "", "", reps_note(r)])
    progress(f"scalar: timing {list(fns)}")
    res = measure(fns, repeats=cfg.repeats, min_time=cfg.min_time, budget=cfg.budget)
    gc.collect()

    # Part 2: the peers, with ours again alongside them.
    imported = [p for p in ("torch", "autograd", "mygrad") if has(p)]
    ours_loaded = f"{OURS}, {'+'.join(imported)} imported" if imported else None
    fns2 = {}
    if ours_loaded:
        fns2[ours_loaded] = ours
    if has("torch"):
        torch = PEERS["torch"]

        def torch_fn():
            x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
            y = x
            for _ in range(N):
                y = y * 1.0001 + 0.001
            y.backward()
            return x.grad.item()
        fns2["torch (0-d float64)"] = torch_fn
    if has("autograd"):
        from autograd import grad as ag_grad

        def chain(x_):
            y = x_
            for _ in range(N):
                y = y * 1.0001 + 0.001
            return y
        d_chain = ag_grad(chain)
        fns2["autograd (float)"] = lambda: d_chain(1.0)
    if has("mygrad"):
        mg = PEERS["mygrad"]

        def mygrad_fn():
            x = mg.tensor(1.0)
            y = x
            for _ in range(N):
                y = y * 1.0001 + 0.001
            y.backward()
            return float(x.grad)
        fns2["mygrad (0-d)"] = mygrad_fn
    if fns2:
        progress(f"scalar: timing {list(fns2)}")
        res.update(measure(fns2, repeats=cfg.repeats, min_time=cfg.min_time, budget=cfg.budget))

    floor_t = res[FLOOR].cpu_median
    ours_t = res[ours_clean].cpu_median if res[ours_clean].ok else math.nan
    rows = []
    for name, r in res.items():
        if not r.ok:
            rows.append([name, r.error, "", "", "", "", "", ""])
            continue
        rows.append([name, f"{r.cpu_median / ops * 1e6:.3f}", f"{r.median / ops * 1e6:.3f}",
                     f"{r.best / ops * 1e6:.3f}", fmt_time(r.cpu_median),
                     fmt_ratio(r.cpu_median / floor_t), fmt_ratio(r.cpu_median / ours_t),
                     reps_note(r)])
    for row in micro_rows:
        if row[2]:
            row[6] = fmt_ratio(float(row[1]) / (ours_t / ops * 1e6))
    rows.extend(micro_rows)
    expected = 1.0001 ** N
    try:
        got = ours()
        grad_note = f"ours dy/dx = {got:.12g}, exact 1.0001^{N} = {expected:.12g}"
    except Exception as err:
        grad_note = f"ours failed: {err}"
    say(f"### 4. Scalar chain y = y·1.0001 + 0.001, {N:,} steps ({ops:,} ops), build+backward\n")
    say(table(["library", "µs/op CPU (median)", "µs/op wall (median)", "µs/op wall (best)",
               "total CPU (median)", "× floor", "× ours (clean)", "repeats×calls"], rows))
    say(f"\n(floor = the same loop on Python floats plus a hand-written backward loop; 'clean "
        f"process' = only numpy, autodiff and micrograd imported, timed before the other peers "
        f"are imported; {grad_note})\n")
    us = ours_t / ops * 1e6
    SUMMARY.append(("4 scalar chain", "ours µs/op CPU (clean process)", f"{us:.2f} µs", "≤ 2 µs",
                    verdict(us <= 2 if math.isfinite(us) else None)))
    if ours_loaded and res[ours_loaded].ok:
        us2 = res[ours_loaded].cpu_median / ops * 1e6
        SUMMARY.append(("4 scalar chain", "ours µs/op CPU (torch etc. imported)", f"{us2:.2f} µs",
                        "≤ 2 µs", verdict(us2 <= 2)))


# ---------------------------------------------------------------------------
# case 5: micrograd's moons demo

def make_moons(n: int, noise: float, seed: int):
    """Two interleaving half circles (as in the micrograd demo), labels -1/+1."""
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5])])
    X += noise * rng.standard_normal(X.shape)
    y = np.hstack([-np.ones(n_out), np.ones(n_in)])
    perm = rng.permutation(n)
    return X[perm], y[perm]


def ours_mlp_like(micro_mlp):
    """Our nn.MLP with the same architecture and the very same initial weights as a
    micrograd MLP (the library's own scalar path, fused neurons included)."""
    import nn

    sizes = [len(micro_mlp.layers[0].neurons[0].w)] + [len(layer.neurons)
                                                       for layer in micro_mlp.layers]
    model = nn.MLP(sizes[0], sizes[1:])
    for ours, theirs in zip(model.parameters(), micro_mlp.parameters()):
        ours.data = theirs.data
    return model


def moons_step(model, ValueCls, X, y, k):
    """One step of micrograd's demo: SVM max-margin loss + 1e-4 L2, SGD lr 1 - 0.9 k/100."""
    inputs = [[ValueCls(a), ValueCls(b)] for a, b in X]
    scores = [model(xi) for xi in inputs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    total = data_loss + reg_loss
    model.zero_grad()
    total.backward()
    lr = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= lr * p.grad
    return float(total.data)


def _run_steps(model, ValueCls, X, y, steps, *, collect_between=False):
    """Run `steps` training steps; per step: time, GC time, full (gen-2) collections, loss,
    and (with collect_between) the time of a gc.collect() after it, off the step's clock."""
    out = {"t": [], "cpu": [], "gc": [], "gen2": [], "loss": [], "collect": []}
    for k in range(steps):
        with GCTimer() as gct:
            c0 = cpu_time()
            t0 = perf_counter()
            out["loss"].append(moons_step(model, ValueCls, X, y, k))
            out["t"].append(perf_counter() - t0)
            out["cpu"].append(cpu_time() - c0)
        out["gc"].append(gct.total)
        out["gen2"].append(gct.by_gen[2][0])
        if collect_between:
            t0 = perf_counter()
            gc.collect()
            out["collect"].append(perf_counter() - t0)
    return out


def case_moons(cfg: Config) -> None:
    say("### 5. micrograd moons demo: MLP 2→16→16→1 on Values, 100 samples, one training step\n")
    if not has("micrograd"):
        say("micrograd is not installed: case skipped.\n")
        return
    from micrograd.engine import Value as MValue
    from micrograd.nn import MLP as MMLP
    Xa, ya = make_moons(100, 0.1, seed=1337)
    X, y = Xa.tolist(), ya.tolist()     # plain Python floats for both libraries

    def fresh_pair():
        random.seed(1337)
        micro = MMLP(2, [16, 16, 1])
        return ours_mlp_like(micro), micro

    steps, skip = cfg.moons_steps, 2
    ours_m, micro_m = fresh_pair()
    n_params = len(ours_m.parameters())
    assert n_params == len(micro_m.parameters())
    assert all(a.data == b.data for a, b in zip(ours_m.parameters(), micro_m.parameters()))
    progress("moons: default-GC runs")
    # Default GC settings; the libraries run one after the other, never interleaved, so that
    # micrograd's cyclic garbage is not collected on our clock.
    gc.collect()
    o = _run_steps(ours_m, Value, X, y, steps)
    gc.collect()
    m = _run_steps(micro_m, MValue, X, y, steps)
    gc.collect()
    loss_diff = max(abs(a - b) for a, b in zip(o["loss"], m["loss"]))
    param_diff = max(abs(a.data - b.data) for a, b in zip(ours_m.parameters(), micro_m.parameters()))

    # The same steps with the cyclic GC off (garbage collected after each step, off the clock).
    progress("moons: gc.disable() runs")
    ns, skip2 = cfg.moons_nogc_steps, 1
    ours_m2, micro_m2 = fresh_pair()
    was = gc.isenabled()
    gc.disable()
    try:
        o2 = _run_steps(ours_m2, Value, X, y, ns, collect_between=True)
        m2 = _run_steps(micro_m2, MValue, X, y, ns, collect_between=True)
    finally:
        if was:
            gc.enable()
    nogc_diff = max(abs(a - b) for a, b in zip(o2["loss"], m2["loss"]))

    def med(xs, k=skip):
        return statistics.median(xs[k:])

    rows = []
    for name, d, d2 in ((OURS, o, o2), ("micrograd", m, m2)):
        t = med(d["cpu"])
        gc_share = sum(d["gc"][skip:]) / sum(d["t"][skip:])
        t2 = med(d2["cpu"], skip2)
        rows.append([name, fmt_time(t), fmt_time(med(d["t"])), fmt_time(min(d["t"][skip:])),
                     fmt_ratio(t / med(o["cpu"])), f"{gc_share:.0%}",
                     f"{statistics.mean(d['gen2'][skip:]):.1f}", fmt_time(t2),
                     f"{1 - t2 / t:.0%}", fmt_time(med(d2["collect"], skip2))])
    say(table(["library", "step CPU (median)", "step wall (median)", "step wall (best)", "× ours",
               "GC share of step (wall)", "full collections / step", "step CPU with gc.disable()",
               "1 − disabled/default",
               "gc.collect() after a step"], rows))
    say(f"\n({n_params} parameters; default-GC columns: medians over steps {skip}..{steps - 1} "
        f"of one training run per library, GC thresholds {gc.get_threshold()}, GC share = time "
        f"inside collections (gc.callbacks) / step time; gc.disable() columns: a fresh run of "
        f"{ns} steps, median over steps {skip2}..{ns - 1}, with a gc.collect() after each step "
        "timed separately: that is the cost of freeing the step's garbage)")
    say(f"\nLosses over {steps} steps, max |ours − micrograd| = {loss_diff:.3e} "
        f"({'match' if loss_diff <= 1e-12 else 'MISMATCH'} at 1e-12); parameters after "
        f"{steps} steps, max |Δ| = {param_diff:.3e}; gc.disable() run: max |Δloss| = {nogc_diff:.3e}")
    say("Loss per step (ours): " + ", ".join(f"{v:.15g}" for v in o["loss"]))
    say("Loss per step (micrograd): " + ", ".join(f"{v:.15g}" for v in m["loss"]) + "\n")
    speedup = med(m["cpu"]) / med(o["cpu"])
    SUMMARY.append(("5 moons step", "micrograd / ours CPU time (default GC)", fmt_ratio(speedup),
                    "≥ 10×", verdict(speedup >= 10)))
    SUMMARY.append(("5 moons step", "max |loss − micrograd|", f"{loss_diff:.1e}", "≤ 1e-12",
                    verdict(loss_diff <= 1e-12)))


# ---------------------------------------------------------------------------
# diagnosis: where ours spends its time per op

def _phase_split(build, runs, n_ops, backward_args=()):
    """Median per-op µs of: building the graph (and GC inside it), backward, freeing."""
    b_t, gc_t, bw_t, free_t, gen2 = [], [], [], [], []
    build()  # warm-up
    for _ in range(runs):
        gc.collect()
        with GCTimer() as gct:
            t0 = cpu_time()
            root, leaf = build()
            t1 = cpu_time()
        gc_in_build = gct.total
        gen2.append(gct.by_gen[2][0])
        with GCTimer() as gct2:
            t2 = cpu_time()
            root.backward(*backward_args)
            t3 = cpu_time()
            del root, leaf
            t4 = cpu_time()
        b_t.append(t1 - t0)
        gc_t.append(gc_in_build + gct2.total)
        bw_t.append(t3 - t2)
        free_t.append(t4 - t3)
    f = 1e6 / n_ops
    return {"forward (build graph)": statistics.median(b_t) * f,
            "  of which inside cyclic-GC collections": statistics.median(gc_t) * f,
            "backward (engine pauses the GC)": statistics.median(bw_t) * f,
            "free the graph (del)": statistics.median(free_t) * f}, statistics.median(gen2)


def _profile_top(fn, calls, n_ops, top=12):
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    entries = []
    for (file, line, func), (cc, nc, tt, ct, _) in stats.stats.items():
        where = f"{os.path.basename(file)}:{line}({func})" if line else func
        entries.append((tt, ct, nc, where))
    entries.sort(reverse=True)
    total = sum(e[0] for e in entries)
    rows = []
    for tt, ct, nc, where in entries[:top]:
        rows.append([where.replace("|", "\\|"), f"{nc / (calls * n_ops):.2f}",
                     f"{tt / (calls * n_ops) * 1e6:.3f}", f"{ct / (calls * n_ops) * 1e6:.3f}",
                     f"{tt / total:.0%}"])
    return rows, total / (calls * n_ops) * 1e6


def case_profile(cfg: Config) -> None:
    say("### Diagnosis: where ours spends its time per op (cases 2 and 4)\n")
    n = cfg.chain_ops
    X0 = np.random.default_rng(1).standard_normal((32, 32))
    seed = np.ones((32, 32))
    x = Tensor(X0, requires_grad=True)

    def build_adds():
        y = x
        for _ in range(n):
            y = y + x
        return y, x

    N = cfg.scalar_steps

    def build_scalar():
        v = Value(1.0)
        y = v
        for _ in range(N):
            y = y * 1.0001 + 0.001
        return y, v

    progress("profile: phase split")
    adds, adds_gen2 = _phase_split(build_adds, 5 if cfg.quick else 30, n, (seed,))
    scal, scal_gen2 = _phase_split(build_scalar, 3 if cfg.quick else 7, 2 * N)
    a, b, c = X0.copy(), X0.copy(), X0.copy()
    ref = measure({"a+b": lambda: a + b, "c += a": lambda: c.__iadd__(a)},
                  repeats=cfg.repeats, min_time=cfg.min_time)
    rows = [[k, f"{adds[k]:.3f}", f"{scal[k]:.3f}"] for k in adds]
    rows.append(["total", f"{sum(v for k, v in adds.items() if 'of which' not in k):.3f}",
                 f"{sum(v for k, v in scal.items() if 'of which' not in k):.3f}"])
    say(table(["phase (median CPU µs per op)", f"adds ({n} on 32×32)", f"scalar ({2 * N:,} ops)"], rows))
    say(f"\n(process holding only numpy and autodiff; full (generation-2) collections during one "
        f"build: adds {adds_gen2:.0f}, scalar {scal_gen2:.0f}; numpy kernels for reference: 32×32 "
        f"`a + b` {ref['a+b'].median * 1e6:.3f} µs, "
        f"in-place `c += a` {ref['c += a'].median * 1e6:.3f} µs; the adds case needs one of each "
        "per op at the very least)\n")

    progress("profile: cProfile")

    def run_adds():
        x.grad = None
        y, _ = build_adds()
        y.backward(seed)

    def run_scalar():
        y, _ = build_scalar()
        y.backward()

    for title, fn, calls, n_ops in (("adds", run_adds, 5 if cfg.quick else 20, n),
                                    ("scalar", run_scalar, 1, 2 * N)):
        rows, total = _profile_top(fn, calls, n_ops)
        say(f"cProfile of ours, case {title} (per op; profiler overhead inflates small "
            f"functions; total profiled {total:.2f} µs/op):\n")
        say(table(["function", "calls/op", "tottime µs/op", "cumtime µs/op", "share of tottime"], rows))
        say()


# ---------------------------------------------------------------------------

CASES = {"mixed": case_mixed, "adds": case_adds, "mlp": case_mlp, "scalar": case_scalar,
         "moons": case_moons, "profile": case_profile}


def run_case_here(name: str, cfg: Config) -> None:
    progress(f"case {name} ...")
    t0 = time.time()
    try:
        CASES[name](cfg)
    except Exception as err:  # keep the other cases going
        import traceback
        traceback.print_exc()
        say(f"**case {name} failed: {type(err).__name__}: {err}**\n")
    progress(f"case {name} done in {time.time() - t0:.0f} s")
    gc.collect()


def run_case_isolated(name: str, cfg: Config) -> None:
    """Run one case in a fresh interpreter: what one case imports or leaves on the heap
    (torch's ~150k objects, the MLP's arrays) must not change the next one's GC costs."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name] + (["--quick"] if cfg.quick else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    for line in proc.stdout.splitlines():
        if line.startswith(SUMMARY_TAG):
            SUMMARY.append(tuple(json.loads(line[len(SUMMARY_TAG):])))
        else:
            say(line)
    if proc.returncode:
        say(f"**case {name}: child process exited with status {proc.returncode}**\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help=f"run only these cases (repeatable or comma-separated): {', '.join(CASES)}")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run every case in this process (default: one fresh process per case)")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = Config(args.quick)
    if args.child:                       # one case, in a process of its own
        run_case_here(args.child, cfg)
        for row in SUMMARY:
            print(SUMMARY_TAG + json.dumps(row), flush=True)
        return 0
    selected = list(CASES)
    if args.only:
        selected = [s.strip() for item in args.only for s in item.split(",") if s.strip()]
        unknown = [s for s in selected if s not in CASES]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    start = time.time()
    say(f"## autodiff core benchmarks{' (--quick)' if cfg.quick else ''}\n")
    say(f"- python {platform.python_version()}, numpy {np.__version__}, autodiff "
        f"{autodiff.__version__}; peers: {peer_versions()}")
    say(f"- {os.cpu_count()} CPUs, load average at start {load_average()}; BLAS threads: "
        f"OPENBLAS={os.environ['OPENBLAS_NUM_THREADS']} OMP={os.environ['OMP_NUM_THREADS']} "
        f"MKL={os.environ['MKL_NUM_THREADS']}, torch.set_num_threads(1)")
    say(f"- times are MEDIANS of up to {cfg.repeats} repeats after a warm-up (libraries "
        "interleaved per round unless said otherwise); each case runs in a fresh process. The "
        "machine is shared (2 cores, other jobs running): ratios and verdicts use this process's "
        "CPU time (time.process_time), which other jobs disturb far less than wall time; wall "
        "medians and bests are shown next to them\n")
    for name in selected:
        if args.no_isolate:
            run_case_here(name, cfg)
        else:
            run_case_isolated(name, cfg)
    if SUMMARY:
        say("### Targets\n")
        say(table(["case", "metric", "ours", "target", "verdict"], [list(r) for r in SUMMARY]))
        say()
    say(f"(total {time.time() - start:.0f} s; load average at end {load_average()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
