"""micrograd's demo training step, written the micrograd way: micrograd's Value vs ours.

The same model code runs on `micrograd.engine.Value` and on `autodiff.Value`.

The model is micrograd's demo, written once here and parameterised by the Value class:
Neuron / Layer / MLP(2, [16, 16, 1]) whose neuron is
`sum((wi * xi for wi, xi in zip(self.w, x)), self.b)` then relu (the last layer linear),
weights from `random.uniform(-1, 1)` after `random.seed(SEED)` (so both libraries start
from the very same weights), 100 make_moons samples, the SVM max-margin loss
`sum((1 + -yi * scorei).relu()) * (1 / n) + 1e-4 * sum(p * p)`, the accuracy, backward and
SGD `p.data -= lr * p.grad` with micrograd's lr = 1 - 0.9 k / 100. Nothing is fused: ours
builds the same graph micrograd does (one node per + and *), so this measures the engines.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_micrograd_demo.py [--steps-ours 31]
        [--steps-micrograd 8] [--warmup 1] [--rounds 1]

Each (library, GC mode) runs in a fresh interpreter holding only that library (ours needs
numpy), so micrograd's cyclic garbage (its `_backward` closures and nodes refer to each
other) is never collected on our clock, nor ours on its. The data (sklearn's make_moons,
or nn.data.make_moons if sklearn is missing) are made here and handed to the children as
plain Python floats.

- default GC: CPython's default settings (gc enabled, default thresholds), untouched.
- gc off: `gc.disable()` in the child before the first step; a `gc.collect()` after each
  step, timed separately (off the step's clock: it is what freeing that step's garbage
  costs). default − off is the cyclic GC's share of a step.

Per step the child times, in CPU time (time.process_time) and wall time: forward (inputs,
scores, loss, accuracy), `zero_grad()`, backward (`loss.backward()` alone), update (the
SGD loop), free (dropping the step's graph: reference counting frees ours here, micrograd's
cycles wait for the collector) and the full step (all of these). Medians over the steps
after the warm-up. To time another copy of the engine, put it first on PYTHONPATH (the
report shows which `autodiff` was imported).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (GCTimer, cpu_model, cpu_time, fmt_ratio, fmt_time, load_average,  # noqa: E402
                     perf_counter, pin_blas_threads, progress, say, table)

pin_blas_threads()   # before numpy is imported (here or in a child)

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402

SEED = 1337            # random.seed before building each model (micrograd's demo uses 1337)
DATA_SEED = 1          # make_moons random_state
N_SAMPLES, NOISE = 100, 0.1
SIZES = (2, [16, 16, 1])
ALPHA = 1e-4
PHASES = ("forward", "zero_grad", "backward", "update", "free", "step")
PHASE_NAMES = {
    "forward": "forward (inputs, scores, loss, accuracy)",
    "zero_grad": "`model.zero_grad()`",
    "backward": "backward (`loss.backward()`)",
    "update": "update (SGD `p.data -= lr * p.grad`)",
    "free": "free the step's graph (`del`)",
    "step": "**full step**",
}
LIBS = ("micrograd", "ours")
LABEL = {"micrograd": "micrograd", "ours": "autodiff (ours)"}


# ---------------------------------------------------------------------------
# the demo's model, written once for any micrograd-compatible Value class

def build_model(Value):
    """micrograd's MLP(2, [16, 16, 1]) on `Value`, weights drawn from `random` after
    seeding it with SEED (the same draws, in the same order, as micrograd.nn.MLP)."""

    class Module:
        def zero_grad(self):
            for p in self.parameters():
                p.grad = 0.0

        def parameters(self):
            return []

    class Neuron(Module):
        def __init__(self, nin, nonlin=True):
            self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
            self.b = Value(0.0)
            self.nonlin = nonlin

        def __call__(self, x):
            act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
            return act.relu() if self.nonlin else act

        def parameters(self):
            return self.w + [self.b]

    class Layer(Module):
        def __init__(self, nin, nout, **kwargs):
            self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

        def __call__(self, x):
            out = [n(x) for n in self.neurons]
            return out[0] if len(out) == 1 else out

        def parameters(self):
            return [p for n in self.neurons for p in n.parameters()]

    class MLP(Module):
        def __init__(self, nin, nouts):
            sz = [nin] + nouts
            self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1)
                           for i in range(len(nouts))]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

        def parameters(self):
            return [p for layer in self.layers for p in layer.parameters()]

    random.seed(SEED)
    return MLP(*SIZES)


def train_step(model, params, Value, X, y, k, gct, marks):
    """One step of the demo; appends (phase boundary CPU, wall, GC seconds) to `marks`.
    Returns (loss, accuracy)."""
    marks.append((cpu_time(), perf_counter(), gct.total))
    inputs = [[Value(a), Value(b)] for a, b in X]
    scores = [model(x) for x in inputs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = ALPHA * sum(p * p for p in params)
    total = data_loss + reg_loss
    accuracy = sum((yi > 0) == (si.data > 0) for yi, si in zip(y, scores)) / len(y)
    marks.append((cpu_time(), perf_counter(), gct.total))
    model.zero_grad()
    marks.append((cpu_time(), perf_counter(), gct.total))
    total.backward()
    marks.append((cpu_time(), perf_counter(), gct.total))
    lr = 1.0 - 0.9 * k / 100
    for p in params:
        p.data -= lr * p.grad
    loss = float(total.data)
    marks.append((cpu_time(), perf_counter(), gct.total))
    del inputs, scores, losses, data_loss, reg_loss, total
    marks.append((cpu_time(), perf_counter(), gct.total))
    return loss, accuracy


# ---------------------------------------------------------------------------
# child: one library, one GC mode, in a fresh interpreter

def run_child(lib: str, gc_mode: str, steps: int) -> dict:
    data = json.load(sys.stdin)
    X, y = data["X"], data["y"]
    if lib == "micrograd":
        from micrograd.engine import Value
        import micrograd
        where = os.path.dirname(micrograd.__file__)
    else:
        import autodiff
        from autodiff import Value
        where = os.path.dirname(autodiff.__file__)
    model = build_model(Value)
    params = model.parameters()
    init = [float(p.data) for p in params]
    thresholds = gc.get_threshold()
    gc.collect()
    if gc_mode == "off":
        gc.disable()
    out = {"lib": lib, "gc": gc_mode, "where": where, "thresholds": thresholds,
           "gc_enabled": gc.isenabled(), "init": init, "loss": [], "acc": [],
           "cpu": {p: [] for p in PHASES}, "wall": {p: [] for p in PHASES},
           "gc_time": {p: [] for p in PHASES}, "collections": [], "gen2": [], "collect": []}
    with GCTimer() as gct:
        for k in range(steps):
            marks = []
            n_before = gct.count
            gen2_before = gct.by_gen[2][0]
            loss, acc = train_step(model, params, Value, X, y, k, gct, marks)
            out["loss"].append(loss)
            out["acc"].append(acc)
            out["collections"].append(gct.count - n_before)
            out["gen2"].append(gct.by_gen[2][0] - gen2_before)
            bounds = list(zip(PHASES[:-1], marks[:-1], marks[1:])) + [("step", marks[0], marks[-1])]
            for phase, (c0, w0, g0), (c1, w1, g1) in bounds:
                out["cpu"][phase].append(c1 - c0)
                out["wall"][phase].append(w1 - w0)
                out["gc_time"][phase].append(g1 - g0)
            if gc_mode == "off":
                t0 = perf_counter()
                gc.collect()
                out["collect"].append(perf_counter() - t0)
    out["final"] = [float(p.data) for p in params]
    return out


# ---------------------------------------------------------------------------
# parent: data, children, report

def moons_data():
    """100 make_moons samples (labels -1/+1) as plain Python floats."""
    try:
        from sklearn.datasets import make_moons
        X, y = make_moons(n_samples=N_SAMPLES, noise=NOISE, random_state=DATA_SEED)
        source = f"sklearn.datasets.make_moons(n_samples={N_SAMPLES}, noise={NOISE}, random_state={DATA_SEED})"
    except ImportError:
        import nn
        X, y = nn.data.make_moons(N_SAMPLES, noise=NOISE, seed=DATA_SEED)
        source = f"nn.data.make_moons({N_SAMPLES}, noise={NOISE}, seed={DATA_SEED})"
    return [[float(a), float(b)] for a, b in X], [float(2 * v - 1) for v in y], source


def spawn(lib: str, gc_mode: str, steps: int, data: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, "--gc", gc_mode,
           "--steps", str(steps)]
    proc = subprocess.run(cmd, input=json.dumps(data), stdout=subprocess.PIPE, text=True,
                          env=os.environ.copy())
    if proc.returncode:
        raise RuntimeError(f"child {lib}/{gc_mode} exited with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version
    notes = []
    for dist in ("numpy", "micrograd", "autodiff", "scikit-learn"):
        try:
            notes.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            notes.append(f"{dist} (not installed)")
    return ", ".join(notes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-ours", type=int, default=31, help="steps per run of ours")
    parser.add_argument("--steps-micrograd", type=int, default=8, help="steps per run of micrograd")
    parser.add_argument("--warmup", type=int, default=1, help="steps left out of the medians")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the four processes this many times, alternating (medians pool "
                             "the steps of every round: steadier on a shared machine)")
    parser.add_argument("--child", choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--gc", choices=("default", "off"), default="default", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.gc, args.steps)), flush=True)
        return 0
    if min(args.steps_ours, args.steps_micrograd) < args.warmup + 5:
        parser.error("need at least warm-up + 5 steps per library (medians of ≥ 5 steps)")

    X, y, source = moons_data()
    data = {"X": X, "y": y}
    steps = {"micrograd": args.steps_micrograd, "ours": args.steps_ours}
    first, timed = {}, {}   # (lib, gc mode) -> the first run; its timed steps, all rounds
    for r in range(args.rounds):
        for gc_mode in ("default", "off"):
            for lib in LIBS:
                progress(f"round {r + 1}/{args.rounds}: {lib}, gc {gc_mode}: {steps[lib]} steps "
                         "in a fresh process")
                run = spawn(lib, gc_mode, steps[lib], data)
                first.setdefault((lib, gc_mode), run)
                pooled = timed.setdefault((lib, gc_mode), {})
                for key, series in run.items():  # per-step series, warm-up left out
                    if isinstance(series, dict):
                        for phase, xs in series.items():
                            pooled.setdefault(key, {}).setdefault(phase, []).extend(xs[args.warmup:])
                    elif key in ("collections", "gen2", "collect"):
                        pooled.setdefault(key, []).extend(series[args.warmup:])
    runs = first
    skip = args.warmup

    def med(lib, gc_mode, phase, key="cpu"):
        return statistics.median(timed[lib, gc_mode][key][phase])

    say("## micrograd's demo step, the micrograd way: micrograd vs ours\n")
    say(f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, load average {load_average()}; "
        f"Python {platform.python_version()} ({platform.python_implementation()}); {versions()}; "
        f"{datetime.date.today().isoformat()}")
    say(f"- BLAS threads: OPENBLAS={os.environ.get('OPENBLAS_NUM_THREADS')}; autodiff imported "
        f"from `{runs['ours', 'default']['where']}`")
    say(f"- MLP(2, [16, 16, 1]) of `sum(wi*xi ..., b)` neurons ({len(runs['ours', 'default']['init'])} "
        f"parameters), {N_SAMPLES} samples from {source}, SVM loss + {ALPHA:g}·L2, SGD; "
        "every step builds and differentiates the same graph in both libraries")
    say(f"- each (library, GC mode) in a fresh process, {args.rounds} round(s) of the four; medians "
        f"of CPU time over steps {skip}..{steps['ours'] - 1} (ours) and {skip}..{steps['micrograd'] - 1} "
        f"(micrograd) of every round; "
        f"default GC = gc enabled, thresholds {tuple(runs['ours', 'default']['thresholds'])}; "
        "gc off = gc.disable(), garbage collected after each step off the clock\n")

    rows = []
    for phase in PHASES:
        row = [PHASE_NAMES[phase]]
        for gc_mode in ("default", "off"):
            m, o = med("micrograd", gc_mode, phase), med("ours", gc_mode, phase)
            row += [fmt_time(m), fmt_time(o), fmt_ratio(m / o) if o > 0 else "n/a"]
        rows.append(row)
    say(table(["phase (median CPU time per step)", "micrograd, default GC", "ours, default GC",
               "micrograd / ours", "micrograd, gc off", "ours, gc off", "micrograd / ours (gc off)"],
              rows))

    say()
    rows = []
    for lib in LIBS:
        d, o = timed[lib, "default"], timed[lib, "off"]
        step_d, step_o = med(lib, "default", "step"), med(lib, "off", "step")
        gc_in = {p: statistics.median(d["gc_time"][p]) for p in PHASES}
        rows.append([LABEL[lib], fmt_time(step_d), fmt_time(med(lib, "default", "step", "wall")),
                     fmt_time(min(d["wall"]["step"])), fmt_time(step_o),
                     f"{1 - step_o / step_d:.0%}",
                     fmt_time(gc_in["step"]) + f" ({gc_in['forward'] / max(gc_in['step'], 1e-12):.0%} in forward)",
                     f"{statistics.mean(d['collections']):.1f} / {statistics.mean(d['gen2']):.2f}",
                     fmt_time(statistics.median(o["collect"]))])
    say(table(["library", "step CPU, default GC", "step wall (median)", "step wall (best)",
               "step CPU, gc off", "GC share (1 − off/default)", "inside collections / step (wall)",
               "collections / full ones per step", "gc.collect() after a step (gc off)"], rows))

    n_common = min(steps.values())
    loss_diff = max(abs(a - b) for a, b in zip(runs["ours", "default"]["loss"][:n_common],
                                               runs["micrograd", "default"]["loss"][:n_common]))
    off_diff = max(abs(a - b) for a, b in zip(runs["ours", "off"]["loss"][:n_common],
                                              runs["micrograd", "off"]["loss"][:n_common]))
    init_diff = max(abs(a - b) for a, b in zip(runs["ours", "default"]["init"],
                                               runs["micrograd", "default"]["init"]))
    acc_same = (runs["ours", "default"]["acc"][:n_common] == runs["micrograd", "default"]["acc"][:n_common])
    say(f"\nInitial weights max |Δ| = {init_diff:.1e}; losses over the first {n_common} steps "
        f"max |ours − micrograd| = {loss_diff:.3e} (gc off runs: {off_diff:.3e}); accuracies "
        f"{'identical' if acc_same else 'DIFFERENT'}.")
    say("Loss per step (ours): " + ", ".join(f"{v:.12g}" for v in runs["ours", "default"]["loss"][:n_common]))
    say("Loss per step (micrograd): " + ", ".join(f"{v:.12g}" for v in runs["micrograd", "default"]["loss"][:n_common]))

    full = med("micrograd", "default", "step") / med("ours", "default", "step")
    bw_m, bw_o = med("micrograd", "off", "backward"), med("ours", "off", "backward")
    say("\n| target | value | verdict |\n|---|---:|---|")
    say(f"| full step, default GC: micrograd / ours ≥ 5× | {fmt_ratio(full)} | "
        f"{'met' if full >= 5 else 'NOT met'} |")
    say(f"| backward, gc off: ours ≤ micrograd | {fmt_time(bw_o)} vs {fmt_time(bw_m)} "
        f"({fmt_ratio(bw_m / bw_o)}) | {'met' if bw_o <= bw_m else 'NOT met'} |")
    say(f"| losses agree (≤ 1e-12) | {loss_diff:.1e} | {'met' if loss_diff <= 1e-12 else 'NOT met'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
