"""nn.LSTM forward + backward against torch.nn.LSTM, CPU, one thread, same run: input 32,
hidden 64, sequence 50, batch 32, float32 (and a 2-layer and a GRU row for context).

Each call makes a fresh input that requires grad, runs the layer over the whole sequence
and a backward from sum(output * cot) + sum(h_n) (so every output step and the final state
carry gradient), then clears the weights' gradients. Both models hold the same weights
(torch's state_dict loaded into ours), checked to agree before timing. Contestants are
interleaved round by round (benchmarks/_common.measure); the table gives medians of
process CPU time and the ratio to torch. Ours is the unrolled graph of primitives
(nn/recurrent.py): about a dozen nodes per step and layer; torch runs a fused ATen cell.

    python benchmarks/bench_lstm.py [--quick]
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

    def run_ours():
        xt = Tensor(x, requires_grad=True)
        out, state = ours(xt)
        assert out.dtype == np.float32  # (the default dtype is float64: compare like with like)
        ((out * cot).sum() + final(state).sum()).backward()
        ours.zero_grad()
        return out, xt

    fns = {"ours": run_ours}
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

        # Same weights, same computation: outputs and input gradients agree before timing.
        (o1, x1), (o2, x2) = run_ours(), run_torch()
        np.testing.assert_allclose(o1.data, o2.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(x1.grad), x2.grad.numpy(), rtol=1e-3, atol=1e-5)
        fns["torch"] = run_torch
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, short calls")
    args = parser.parse_args()
    torch = optional_torch()
    repeats, min_time = (3, 0.05) if args.quick else (9, 0.3)

    say(f"# Recurrent layers: forward + backward, float32, one thread, input {INPUT}, "
        f"hidden {HIDDEN}, seq {SEQ}, batch {BATCH}\n")
    say(f"CPU: {cpu_model()}; load average {load_average()}; numpy {np.__version__}"
        + (f"; torch {torch.__version__}" if torch is not None else ""))
    say()
    rows = []
    for kind, layers in CASES:
        progress(f"{kind} num_layers={layers}")
        results = measure(contestants(kind, layers, torch), repeats=repeats,
                          min_time=min_time)
        base = results.get("torch")
        for who, r in results.items():
            ratio = (r.cpu_median / base.cpu_median) if base is not None and base.ok \
                else float("nan")
            rows.append([kind, layers, who, fmt_time(r.cpu_median) if r.ok else r.error,
                         fmt_time(r.median), fmt_ratio(ratio)])
    say(table(["layer", "num_layers", "who", "median CPU", "median wall", "vs torch"], rows))


if __name__ == "__main__":
    main()
