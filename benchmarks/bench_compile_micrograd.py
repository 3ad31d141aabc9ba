"""micrograd's demo step compiled: micrograd, ours eager, ours compiled and a pure-Python floor.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_compile_micrograd.py [--steps 12]

The step is micrograd's demo (bench_micrograd_demo.py: MLP(2, [16, 16, 1]) of
`sum(wi*xi ..., b)` neurons, 100 moons samples, SVM loss + 1e-4·L2, SGD
`p.data -= lr * p.grad` with lr = 1 - 0.9 k / 100, accuracy from the scores). The
compiled step is the same code wrapped in `autodiff.compile`; the float `lr` is a variable
of its replay, so the decaying rate costs two traces, not one per step. The floor is the
same step written by hand in plain Python floats (loops over the layers, the backward
written out), the least an interpreter can do for it. Each variant runs in a fresh
interpreter with the default GC (micrograd's cyclic garbage stays off the others' clocks);
medians of CPU time per step after the first `--warmup` steps (for the compiled step:
after its traces).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import cpu_model, cpu_time, fmt_ratio, fmt_time, pin_blas_threads, say, table  # noqa: E402

pin_blas_threads()

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402

from bench_micrograd_demo import ALPHA, SEED, SIZES, build_model, moons_data  # noqa: E402

VARIANTS = ("micrograd", "ours eager", "ours compiled", "floor (plain Python)")


def demo_step(model, params, Value):
    """The demo's step as a function of (X, y, lr): returns the loss and the scores."""
    def step(X, y, lr):
        inputs = [[Value(a), Value(b)] for a, b in X]
        scores = [model(x) for x in inputs]
        losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = ALPHA * sum(p * p for p in params)
        total = data_loss + reg_loss
        model.zero_grad()
        total.backward()
        for p in params:
            p.data -= lr * p.grad
        return total, scores
    return step


def floor_step(layers, X, y, lr):
    """The demo's step in plain floats. `layers`: [(weights rows, biases, relu?)]."""
    n = len(X)
    grads = [([[0.0] * len(r) for r in W], [0.0] * len(b)) for W, b, _ in layers]
    data_loss, correct = 0.0, 0
    for x, yi in zip(X, y):
        acts, h = [], x
        for W, b, relu in layers:  # forward, keeping each layer's input and output
            out = []
            for row, bias in zip(W, b):
                s = bias
                for w, v in zip(row, h):
                    s += w * v
                out.append(s if not relu or s > 0 else 0.0)
            acts.append((h, out))
            h = out
        score = h[0]
        margin = 1 + -yi * score
        correct += (yi > 0) == (score > 0)
        if margin <= 0:
            continue
        data_loss += margin
        g = [-yi / n]
        for (W, b, relu), (h_in, out), (gW, gb) in zip(reversed(layers), reversed(acts),
                                                       reversed(grads)):
            g_in = [0.0] * len(h_in)
            for j, (row, gj) in enumerate(zip(W, g)):
                if relu and out[j] <= 0:
                    continue
                gb[j] += gj
                grow = gW[j]
                for i, v in enumerate(h_in):
                    grow[i] += gj * v
                    g_in[i] += gj * row[i]
            g = g_in
    reg = 0.0
    for (W, b, _), (gW, gb) in zip(layers, grads):
        for row, grow in zip(W + [b], gW + [gb]):
            for i, p in enumerate(row):
                reg += p * p
                row[i] = p - lr * (grow[i] + 2 * ALPHA * p)
    return data_loss / n + ALPHA * reg, correct / n


def run_child(variant: str, steps: int) -> dict:
    data = json.load(sys.stdin)
    X, y = data["X"], data["y"]
    times, losses, accs = [], [], []
    if variant == "floor (plain Python)":
        import autodiff  # (its model's initial weights: the same draws)
        model = build_model(autodiff.Value)
        layers = [([[w.data for w in n.w] for n in layer.neurons],
                   [n.b.data for n in layer.neurons], layer.neurons[0].nonlin)
                  for layer in model.layers]
        for k in range(steps):
            t0 = cpu_time()
            loss, acc = floor_step(layers, X, y, 1.0 - 0.9 * k / 100)
            times.append(cpu_time() - t0)
            losses.append(loss)
            accs.append(acc)
        return {"times": times, "loss": losses, "acc": accs, "traces": 0}
    if variant == "micrograd":
        from micrograd.engine import Value
    else:
        import autodiff
        from autodiff import Value
    model = build_model(Value)
    params = model.parameters()
    step = demo_step(model, params, Value)
    if variant == "ours compiled":
        step = autodiff.compile(step)
    for k in range(steps):
        t0 = cpu_time()
        total, scores = step(X, y, 1.0 - 0.9 * k / 100)
        acc = sum((yi > 0) == (s.data > 0) for yi, s in zip(y, scores)) / len(y)
        times.append(cpu_time() - t0)
        losses.append(float(total.data))
        accs.append(acc)
        del total, scores
    return {"times": times, "loss": losses, "acc": accs,
            "traces": getattr(step, "traces", 0)}


def spawn(variant: str, steps: int, data: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--steps", str(steps)]
    proc = subprocess.run(cmd, input=json.dumps(data), stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"child {variant} exited with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per variant")
    parser.add_argument("--steps-micrograd", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.steps)), flush=True)
        return 0
    X, y, source = moons_data()
    data = {"X": X, "y": y}
    runs = {}
    for v in VARIANTS:
        runs[v] = spawn(v, args.steps_micrograd if v == "micrograd" else args.steps, data)
    skip = {v: args.warmup for v in VARIANTS}
    skip["ours compiled"] = max(args.warmup, 2)  # (its two traces: lr constant, then variable)
    med = {v: statistics.median(r["times"][skip[v]:]) for v, r in runs.items()}
    say("## micrograd's demo step compiled\n")
    say(f"- machine: {cpu_model()}, {os.cpu_count()} CPUs; {datetime.date.today().isoformat()}; "
        f"data {source}; median CPU time per step after {args.warmup} warm-up step(s), the "
        f"compiled step after its {runs['ours compiled']['traces']} traces")
    comp = med["ours compiled"]
    rows = [[v, fmt_time(med[v]), fmt_ratio(med[v] / comp), fmt_ratio(med[v] / med["floor (plain Python)"])]
            for v in VARIANTS]
    say(table(["variant", "step (median CPU)", "× compiled", "× floor"], rows))
    first = runs["ours compiled"]["times"]
    say(f"\n- tracing: first call {fmt_time(first[0])}, second (lr becomes a variable) "
        f"{fmt_time(first[1])}, later calls {fmt_time(comp)}")
    say(f"- targets: micrograd / compiled {fmt_ratio(med['micrograd'] / comp)} (target ≥ 50×); "
        f"compiled / floor {fmt_ratio(comp / med['floor (plain Python)'])} (target ≤ 3×)")
    n = min(len(r["loss"]) for r in runs.values())
    diffs = {v: max(abs(a - b) for a, b in zip(runs[v]["loss"][:n], runs["ours eager"]["loss"][:n]))
             for v in VARIANTS}
    say("- max |loss − ours eager| over the first "
        f"{n} steps: " + ", ".join(f"{v} {d:.1e}" for v, d in diffs.items()))
    return 0


if __name__ == "__main__":
    random.seed(SEED)
    sys.exit(main())
