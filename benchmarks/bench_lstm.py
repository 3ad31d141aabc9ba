"""nn.LSTM forward + backward against torch.nn.LSTM, CPU, one thread, same run: input 32,
hidden 64, sequence 50, batch 32, float32 (and a 2-layer and a GRU row for context).

Each call makes a fresh input that requires grad, runs the layer over the whole sequence
and a backward from sum(output * cot) + sum(h_n) (so every output step and the final state
carry gradient), then clears the weights' gradients. Both models hold the same weights
(torch's state_dict loaded into ours), checked to agree before timing. Contestants are
interleaved round by round (benchmarks/_common.measure); the table gives medians of
process CPU time and the ratio to torch. Ours is the unrolled graph (nn/recurrent.py):
for the LSTM one fused `lstm_cell` node per step and layer (autodiff/ops_rnn.py), for the
GRU its dozen primitives per step; torch runs a fused ATen cell. "ours compiled" is the
same step through `autodiff.compile` (traced once, then replayed without graph nodes).

`--before REV` also times "ours" at git revision REV (its autodiff/ and nn/, exported with
`git archive`, run by this same script in a child process), once before and once after
the same-process rounds; its row gives the mean of those two medians and its ratio to
this run's torch median.

    python benchmarks/bench_lstm.py [--quick] [--before REV]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# A child timing another revision is given that revision's tree instead of this one.
sys.path.insert(0, os.environ.get("BENCH_LSTM_LIBRARY")
                or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import (cpu_model, fmt_ratio, fmt_time, load_average, measure,  # noqa: E402
                     optional_torch, pin_blas_threads, progress, say, table)

pin_blas_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402

import autodiff  # noqa: E402
import nn  # noqa: E402
from autodiff import Tensor  # noqa: E402

INPUT, HIDDEN, SEQ, BATCH = 32, 64, 50, 32
CASES = [("LSTM", 1), ("LSTM", 2), ("GRU", 1)]


def contestants(kind: str, layers: int, torch) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    cot = rng.standard_normal((SEQ, BATCH, HIDDEN)).astype(np.float32)
    ours = getattr(nn, kind)(INPUT, HIDDEN, num_layers=layers, dtype=np.float32)

    def final(state):
        return state[0] if kind == "LSTM" else state

    def step(xa):
        xt = Tensor(xa, requires_grad=True)
        out, state = ours(xt)
        assert out.dtype == np.float32  # (the default dtype is float64: compare like with like)
        ((out * cot).sum() + final(state).sum()).backward()
        ours.zero_grad()
        return out, xt

    compiled = autodiff.compile(step)
    fns = {"ours": lambda: step(x), "ours compiled": lambda: compiled(x)}
    if torch is not None:
        torch.manual_seed(0)
        ref = getattr(torch.nn, kind)(INPUT, HIDDEN, num_layers=layers)
        ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
        tcot = torch.from_numpy(cot)

        def run_torch():
            xt = torch.tensor(x, requires_grad=True)
            out, state = ref(xt)
            ((out * tcot).sum() + final(state).sum()).backward()
            ref.zero_grad()
            return out, xt

        # Same weights, same computation: outputs and input gradients agree before timing
        # (the compiled step's second call is its first replay).
        o2, x2 = run_torch()
        for o1, x1 in (step(x), compiled(x), compiled(x)):
            np.testing.assert_allclose(o1.data, o2.detach().numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(np.asarray(x1.grad), x2.grad.numpy(), rtol=1e-3,
                                       atol=1e-5)
        fns["torch"] = run_torch
    return fns


def _before(rev: str, repeats: int, min_time: float, quick: bool):
    """Start timing `ours` at revision `rev` in a child process; `finish()` gives
    {(kind, layers): median CPU seconds}."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.TemporaryDirectory()
    archive = subprocess.run(["git", "-C", root, "archive", rev, "autodiff", "nn"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
    env = dict(os.environ, BENCH_LSTM_LIBRARY=tmp.name)
    cmd = [sys.executable, os.path.abspath(__file__), "--child"] + (["--quick"] if quick else [])

    def run() -> dict:
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        return {tuple(k): v for k, v in json.loads(out.splitlines()[-1])}

    return run, tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, short calls")
    parser.add_argument("--before", metavar="REV", help="also time ours at git revision REV")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch = None if args.child else optional_torch()
    repeats, min_time = (3, 0.05) if args.quick else (9, 0.3)
    if args.child:  # ours only, as JSON on the last line
        found = [[[kind, layers], measure(contestants(kind, layers, None), repeats=repeats,
                                          min_time=min_time)["ours"].cpu_median]
                 for kind, layers in CASES]
        print(json.dumps(found))
        return

    say(f"# Recurrent layers: forward + backward, float32, one thread, input {INPUT}, "
        f"hidden {HIDDEN}, seq {SEQ}, batch {BATCH}\n")
    say(f"CPU: {cpu_model()}; load average {load_average()}; numpy {np.__version__}"
        + (f"; torch {torch.__version__}" if torch is not None else ""))
    say()
    before = []
    if args.before:
        progress(f"ours at {args.before} (child process)")
        run_before, tmp = _before(args.before, repeats, min_time, args.quick)
        before.append(run_before())
    measured = {}
    for kind, layers in CASES:
        progress(f"{kind} num_layers={layers}")
        measured[kind, layers] = measure(contestants(kind, layers, torch), repeats=repeats,
                                         min_time=min_time)
    if args.before:
        progress(f"ours at {args.before} again")
        before.append(run_before())
        tmp.cleanup()
    rows = []
    for (kind, layers), results in measured.items():
        base = results.get("torch")
        base = base.cpu_median if base is not None and base.ok else float("nan")
        for who, r in results.items():
            rows.append([kind, layers, who, fmt_time(r.cpu_median) if r.ok else r.error,
                         fmt_time(r.median), fmt_ratio(r.cpu_median / base)])
        if before:
            old = sum(b[kind, layers] for b in before) / len(before)
            rows.append([kind, layers, f"ours at {args.before}", fmt_time(old), "",
                         fmt_ratio(old / base)])
    say(table(["layer", "num_layers", "who", "median CPU", "median wall", "vs torch"], rows))


if __name__ == "__main__":
    main()
