"""How fast can any per-node Python engine run the `adds` case (1000 adds y = y + x on 32×32
float64, forward + backward)? A lower bound, measured next to ours.

The "skeleton" below is the least such an engine does: one object per node, its two
parents, one numpy add forward, a heap ordered by creation, one numpy add per extra
gradient contribution. No grad mode (thread-local or not), no op table or vjp call, no
broadcasting or dtype checks, no protection of `.grad` arrays from aliasing, no
released-graph error, no `requires_grad`. Whatever it costs beyond numpy's two adds per
op is the interpreter's share that no feature-complete engine written in Python avoids.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bound_adds.py
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import itertools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from heapq import heappop, heappush  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from autodiff import Tensor  # noqa: E402

N_OPS, REPEATS = 1000, 21
_order = itertools.count(0, -1)


class Skeleton:
    __slots__ = ("data", "parents", "g", "seq", "grad", "leaf")

    @classmethod
    def leaf_of(cls, data):
        node = cls.__new__(cls)
        node.data, node.parents, node.g, node.seq = data, (), None, next(_order)
        node.grad, node.leaf = None, True
        return node

    def __add__(self, other):
        node = Skeleton.__new__(Skeleton)
        node.data = self.data + other.data
        node.parents, node.g, node.seq = (self, other), None, next(_order)
        node.grad, node.leaf = None, False
        return node


def skeleton_backward(root, seed) -> None:
    root.g, heap, leaves = seed, [(root.seq, root)], []
    while heap:
        node = heappop(heap)[1]
        g, node.g = node.g, None
        for parent in node.parents:
            if parent.g is None:
                parent.g = g
                if parent.leaf:
                    leaves.append(parent)
                else:
                    heappush(heap, (parent.seq, parent))
            else:
                parent.g = parent.g + g
    for leaf in leaves:
        leaf.grad, leaf.g = leaf.g, None


def phases(build, backward) -> tuple[float, float]:
    """Median CPU µs per op of building the chain and of its backward."""
    fwd, bwd = [], []
    build()  # warm-up
    for _ in range(REPEATS):
        t0 = time.process_time()
        y = build()
        t1 = time.process_time()
        backward(y)
        t2 = time.process_time()
        del y
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    return statistics.median(fwd) * 1e6 / N_OPS, statistics.median(bwd) * 1e6 / N_OPS


def main() -> None:
    rng = np.random.default_rng(0)
    data, seed = rng.standard_normal((32, 32)), np.ones((32, 32))

    x_skel = Skeleton.leaf_of(data)

    def build_skeleton():
        y = x_skel
        for _ in range(N_OPS):
            y = y + x_skel
        return y

    x = Tensor(data, requires_grad=True)

    def build_ours():
        x.grad = None
        y = x
        for _ in range(N_OPS):
            y = y + x
        return y

    a, b = data.copy(), data.copy()
    numpy_t = min(timeit.repeat(lambda: a + b, number=20000, repeat=5)) / 20000 * 1e6
    rows = [("skeleton (the bound)", *phases(build_skeleton,
                                             lambda y: skeleton_backward(y, seed))),
            ("autodiff (ours)", *phases(build_ours, lambda y: y.backward(seed)))]
    print(f"1000 adds on 32x32 float64, median CPU µs per op ({REPEATS} repeats); one numpy "
          f"32x32 add: {numpy_t:.2f} µs\n")
    print("| engine | forward | backward | total |")
    print("|---|---:|---:|---:|")
    for name, f, bw in rows:
        print(f"| {name} | {f:.2f} | {bw:.2f} | {f + bw:.2f} |")


if __name__ == "__main__":
    main()
