"""Timing, memory and formatting helpers shared by the benchmark scripts.

Nothing here imports numpy, so a script can pin the BLAS thread count in its
environment before numpy (or torch) is first imported. See `pin_blas_threads`.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Callable

perf_counter = time.perf_counter
cpu_time = time.process_time   # this process's CPU time: far less sensitive to other jobs


def cpu_model() -> str:
    """The CPU's model name (ratios move between machines: quote it with every table)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pin_blas_threads() -> None:
    """One BLAS/OpenMP thread: must run before numpy/torch are imported."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


# ---------------------------------------------------------------------------
# timing

@dataclass
class Result:
    """Per-call times (seconds) of one timed function, or the error it raised."""

    name: str
    times: list = field(default_factory=list)      # wall-clock seconds per call
    cpu: list = field(default_factory=list)        # process CPU seconds per call
    number: int = 1           # calls per timed repeat (times are already divided by it)
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else math.nan

    @property
    def best(self) -> float:
        return min(self.times) if self.times else math.nan

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats: a quick noise indicator."""
        if len(self.times) < 2:
            return math.nan
        return (max(self.times) - min(self.times)) / self.median


def _describe_error(err: BaseException) -> str:
    msg = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {msg[:80]}" if msg else type(err).__name__


def measure(fns: dict[str, Callable[[], object]], *, repeats: int = 7, min_time: float = 0.05,
            budget: float = 20.0, min_repeats: int = 3) -> dict[str, Result]:
    """Time several functions, interleaved round by round so that slow drifts in machine
    load hit all of them alike.

    Each function gets one warm-up call, one calibration call, then `repeats` timed
    repeats of `number` calls (chosen so that a repeat lasts at least `min_time`). A
    function whose repeats would exceed `budget` seconds gets fewer (never fewer than
    `min_repeats`). A function that raises is reported with its error and not retried.
    """
    results = {name: Result(name) for name in fns}
    plan = {}
    for name, fn in fns.items():
        try:
            t0 = perf_counter()
            fn()                      # warm-up (imports, caches, allocator)
            one = perf_counter() - t0
            gc.collect()
            if one < 1.0:             # slow functions are calibrated by the warm-up alone
                t0 = perf_counter()
                fn()                  # calibration
                one = perf_counter() - t0
        except Exception as err:      # a peer that cannot do the case
            results[name].error = _describe_error(err)
            continue
        number = max(1, min(10_000, math.ceil(min_time / max(one, 1e-9))))
        reps = repeats
        if one * number * repeats > budget:
            reps = max(min_repeats, int(budget / (one * number)))
        results[name].number = number
        plan[name] = reps
    gc.collect()
    for r in range(max(plan.values(), default=0)):
        for name, reps in plan.items():
            if r >= reps:
                continue
            fn, number = fns[name], results[name].number
            c0 = cpu_time()
            t0 = perf_counter()
            for _ in range(number):
                fn()
            t1 = perf_counter()
            c1 = cpu_time()
            results[name].times.append((t1 - t0) / number)
            results[name].cpu.append((c1 - c0) / number)
    return results


class GCTimer:
    """Accumulates the wall time spent inside cyclic-GC collections (via gc.callbacks),
    in total and per generation."""

    def __init__(self):
        self.total = 0.0
        self.count = 0
        self.by_gen = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}   # generation -> [count, seconds]
        self._t0 = None

    def _callback(self, phase, info):
        if phase == "start":
            self._t0 = perf_counter()
        elif self._t0 is not None:
            dt = perf_counter() - self._t0
            self.total += dt
            self.count += 1
            entry = self.by_gen.setdefault(info.get("generation", -1), [0, 0.0])
            entry[0] += 1
            entry[1] += dt
            self._t0 = None

    def __enter__(self):
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self._callback)
        return False


# ---------------------------------------------------------------------------
# memory

def peak_extra_bytes(fn: Callable[[], object], before: Callable[[], object] | None = None) -> int:
    """Peak traced memory during `fn()` minus the traced memory just before it.

    numpy reports its data buffers to tracemalloc, so this sees arrays as well as Python
    objects; torch's allocator does not (its numbers would be meaningless here).
    """
    if before is not None:
        before()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


# ---------------------------------------------------------------------------
# formatting

def fmt_time(seconds: float, unit: str = "auto") -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if unit == "auto":
        unit = "s" if seconds >= 1 else "ms" if seconds >= 1e-3 else "µs"
    scale = {"s": 1.0, "ms": 1e3, "µs": 1e6}[unit]
    v = seconds * scale
    digits = 3 if v < 10 else 2 if v < 100 else 1 if v < 1000 else 0
    return f"{v:.{digits}f} {unit}"


def fmt_ratio(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2f}×" if x < 100 else f"{x:.0f}×"


def fmt_bytes(n: float) -> str:
    if n is None or not math.isfinite(n):
        return "n/a"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    def line(items):
        return "| " + " | ".join(s.ljust(w) for s, w in zip(items, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def say(text: str = "") -> None:
    print(text, flush=True)


def progress(text: str) -> None:
    """Progress notes go to stderr so stdout stays a clean markdown report."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def optional_torch():
    """torch pinned to one thread, or None (said on stderr) when it does not import."""
    try:
        import torch
    except ImportError:
        progress("torch does not import: ours only")
        return None
    torch.set_num_threads(1)
    return torch


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"
