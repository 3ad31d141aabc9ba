"""Time draw_graph (building the DOT text) and rendering it with `dot` on large graphs.

    python benchmarks/bench_viz.py            # 1k, 10k and 100k-node graphs
    python benchmarks/bench_viz.py --quick    # 1k and 10k only

Prints a markdown table. With the default `max_nodes` a large graph is collapsed to the
nodes nearest the output plus one summary node, so rendering stays fast at any size.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from autodiff import Tensor, Value  # noqa: E402
from autodiff.viz import draw_graph  # noqa: E402


def shared_leaves(n: int) -> Value:
    """A long sum of tanh(x_i * 0.5) over 50 shared leaves: long edges, the hard case for dot."""
    xs = [Value(float(i % 7) - 3, label=f"x{i}") for i in range(50)]
    acc = Value(0.0, label="acc")
    for i in range((n - 51) // 3):
        acc = acc + (xs[i % 50] * 0.5).tanh()
    return acc


def tanh_chain(n: int) -> Value:
    """tanh(tanh(...tanh(x))): one long path."""
    v = Value(0.1, label="x")
    for _ in range(n - 1):
        v = v.tanh()
    return v


def tensor_layers(n: int) -> Tensor:
    """Repeated small tensor layers h = tanh(W h + b), about 6 nodes per layer."""
    rng = np.random.default_rng(0)
    h = Tensor(rng.normal(size=8), label="x")
    for i in range(n // 6):
        W = Tensor(rng.normal(0, 0.3, size=(8, 8)), requires_grad=True, label=f"W{i}")
        b = Tensor(np.zeros(8), requires_grad=True, label=f"b{i}")
        h = (W @ h + b).tanh()
    return h.sum()


def count_nodes(root) -> int:
    seen, stack = {id(root)}, [root]
    while stack:
        for p in stack.pop()._parents:
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return len(seen)


def main() -> None:
    sizes = [1_000, 10_000] if "--quick" in sys.argv else [1_000, 10_000, 100_000]
    has_dot = shutil.which("dot") is not None
    print("| graph | nodes | max_nodes | drawn | draw_graph (s) | DOT kB | pipe svg (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    cases = [(make, n, 500) for make in (shared_leaves, tanh_chain, tensor_layers) for n in sizes]
    cases.append((tanh_chain, 1_000, None))  # everything drawn: what `dot` costs per node
    for make, n, max_nodes in cases:
        root = make(n)
        if n >= 10_000:
            root.backward()  # draw the gradients too
        t0 = time.perf_counter()
        dot = draw_graph(root, max_nodes=max_nodes)
        source = dot.source
        t1 = time.perf_counter()
        drawn = source.count("[label=<")
        piped = "no dot"
        if has_dot:
            t2 = time.perf_counter()
            dot.pipe(format="svg")
            piped = f"{time.perf_counter() - t2:.2f}"
        print(f"| {make.__name__} | {count_nodes(root):,} | {max_nodes} | {drawn:,} | "
              f"{t1 - t0:.3f} | {len(source) / 1000:.0f} | {piped} |", flush=True)


if __name__ == "__main__":
    main()
