"""Is there an eager regression between two revisions? One same-run A/B comparison.

    python benchmarks/compare_commits.py BASE [NEW]      # NEW defaults to the working tree
    python benchmarks/compare_commits.py HEAD HEAD       # both sides the same: the noise floor
    python benchmarks/compare_commits.py HEAD~3 --rounds 6 --only mlp32,digits

BASE and NEW are git revisions; without NEW the working tree's autodiff/ and nn/ are
compared (copied when the run starts, so later edits do not leak into it). Each side's
autodiff/ and nn/ go to a temporary directory (`git archive`, or a copy for the working
tree). The cases are the README's eager "ours" timings, built by bench_core.py and
bench_digits.py (frozen from this directory at start, the same harness code for both
sides; only the library differs):

  mixed    1000 mixed ops on 32x32 (matmul, mul, add, tanh), forward+backward, µs/op
  adds     1000 adds on 32x32, forward+backward, µs/op
  mlp32    one SGD step of the 1024→1024→1024→10 MLP, batch 1024, float32, ms
  mlp64    same, float64, ms
  digits   one epoch of the digits MLP 64→128→128→10, Adam, batch 64, float32, ms

Every measurement is a fresh interpreter with PYTHONPATH set to one side's copy; it times
the case with bench_core's `measure` (warm-up, then --repeats repeats of ≥ 0.1 s) and
reports the median process CPU time (time.process_time). Each round runs every case,
base then new (ABAB...), so drift in machine speed hits both sides alike.
Reported per case: the median over rounds of each side's per-process medians, their
ratio new/base with a bootstrap 95% interval over rounds, the ratio of the fastest
repeats (the ones other jobs disturbed least), and a verdict against --threshold
(percent): "REGRESSION"/"faster" only when the ratio is beyond it, the interval excludes 1
and the fastest repeats agree on the direction; "same" when the interval lies within the
threshold; otherwise "unclear". Progress goes to stderr, the markdown report
to stdout.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from _common import cpu_model, load_average  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = ("bench_core.py", "bench_digits.py", "_common.py", "compare_commits.py")
RESULT_TAG = "@@RESULT "
MIN_ROUNDS_FOR_INTERVAL = 5

# case -> (description in the table, unit)
CASES = {
    "mixed": ("1000 mixed ops on 32×32 (matmul, mul, add, tanh)", "µs/op"),
    "adds": ("1000 adds on 32×32", "µs/op"),
    "mlp32": ("MLP 1024→1024→1024→10 SGD step, batch 1024, float32", "ms"),
    "mlp64": ("same, float64", "ms"),
    "digits": ("digits MLP 64→128→128→10 epoch, Adam, batch 64, float32", "ms/epoch"),
}


# ---------------------------------------------------------------------------
# child: build one case from bench_core / bench_digits, time ours, print the result

def _capture_ours(bc, case_fn, cfg):
    """bench_core's chain cases build their closures inside one function that also times
    them against the peers; run it with no peers and a `measure` that hands back our
    closure instead of timing it (the smallest adapter that keeps the case's code)."""
    class Captured(Exception):
        pass

    got = {}
    from _common import Result

    real_measure, real_has = bc.measure, bc.has

    def capture(fns, **_):
        if bc.OURS in fns:
            got["fn"] = fns[bc.OURS]
            raise Captured
        return {name: Result(name) for name in fns}   # side timings (numpy kernels): skipped

    bc.measure, bc.has = capture, (lambda peer: False)
    try:
        case_fn(cfg)
    except Captured:
        pass
    finally:
        bc.measure, bc.has = real_measure, real_has
    if "fn" not in got:
        raise RuntimeError(f"{case_fn.__name__} did not reach its timing of {bc.OURS!r}")
    return got["fn"]


def build_case(case: str, data_path: str | None):
    """(function to time, operations per call, min seconds per repeat)."""
    import bench_core as bc

    cfg = bc.Config(quick=False)
    if case in ("mixed", "adds"):
        fn = _capture_ours(bc, bc.case_mixed if case == "mixed" else bc.case_adds, cfg)
        n = cfg.chain_ops - cfg.chain_ops % 4 if case == "mixed" else cfg.chain_ops
        return fn, n, 0.1
    if case in ("mlp32", "mlp64"):
        import numpy as np

        params, x, Y = bc._mlp_data(cfg, np.float32 if case == "mlp32" else np.float64)
        model = bc.OursMLP(params, x, Y)
        return model.step, 1, 0.0          # as bench_core's case_mlp: one step per repeat
    if case == "digits":
        import itertools

        import numpy as np

        import bench_digits as bd

        with np.load(data_path) as f:
            X, y = f["X"], f["y"]
        orders = itertools.cycle(bd.batch_orders(len(y), 22))   # bench_digits' 21 + warm-up
        run = bd.make_ours(X, y)
        return (lambda: run(next(orders))), 1, 0.1
    raise ValueError(f"unknown case {case!r}")


def child_main(case: str, repeats: int, data_path: str | None, expect_root: str) -> int:
    # An editable install of the project must not supply what the side's copy lacks.
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
    fn, n_ops, min_time = build_case(case, data_path)
    import numpy as np

    from _common import measure

    for mod in filter(None, map(sys.modules.get, ("autodiff", "nn"))):   # the side's copies
        if not os.path.abspath(mod.__file__).startswith(os.path.abspath(expect_root) + os.sep):
            raise RuntimeError(f"{mod.__name__} imported from {mod.__file__}, not {expect_root}")
    res = measure({"ours": fn}, repeats=repeats, min_time=min_time, budget=1e9)["ours"]
    if not res.ok:
        raise RuntimeError(res.error or "no timings")
    print(RESULT_TAG + json.dumps({
        "case": case, "cpu": res.cpu, "wall": res.times, "number": res.number, "n_ops": n_ops,
        "numpy": np.__version__, "python": platform.python_version(),
    }), flush=True)
    return 0


# ---------------------------------------------------------------------------
# parent

def progress(text: str) -> None:
    print(f"[compare] {text}", file=sys.stderr, flush=True)


def git(root: str, *args: str, **kw) -> subprocess.CompletedProcess:
    # Read-only commands only; --no-optional-locks keeps git from refreshing the index.
    return subprocess.run(["git", "--no-optional-locks", "-C", root, *args],
                          check=True, **kw)


def git_out(root: str, *args: str) -> str:
    return git(root, *args, stdout=subprocess.PIPE, text=True).stdout.strip()


def export_side(root: str, rev: str | None, dest: str) -> str:
    """autodiff/ and nn/ of `rev` (None: the working tree) into dest; returns a label."""
    os.makedirs(dest)
    if rev is None:
        for pkg in ("autodiff", "nn"):
            shutil.copytree(os.path.join(root, pkg), os.path.join(dest, pkg),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        head = git_out(root, "rev-parse", "--short", "HEAD")
        dirty = git_out(root, "diff", "--shortstat", "HEAD", "--", "autodiff", "nn")
        untracked = git_out(root, "ls-files", "--others", "--exclude-standard", "--", "autodiff", "nn")
        if untracked:
            dirty += f"{', ' if dirty else ''}untracked: {', '.join(untracked.split())}"
        return f"working tree (HEAD {head}{'; ' + dirty if dirty else ', no changes'} in autodiff/ nn/)"
    try:
        sha = git_out(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"compare_commits: {rev!r} is not a commit of {root}") from None
    pkgs = [p for p in ("autodiff", "nn") if git_out(root, "ls-tree", "--name-only", sha, p)]
    archive = subprocess.Popen(["git", "-C", root, "archive", sha, *pkgs], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", dest], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait():
        raise RuntimeError(f"git archive {sha} failed")
    subject = git_out(root, "log", "-1", "--format=%h %ad %s", "--date=short", sha)
    return f"{rev} = {subject}"


def write_digits(path: str) -> None:
    """bench_digits' data (its main(): pixels / 16, float32, the training split's size),
    loaded once here so the timed processes need not import sklearn."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    n = int(0.8 * len(y))
    np.savez(path, X=X[:n], y=y[:n])


def run_child(harness: str, side_dir: str, case: str, repeats: int, data_path: str) -> dict:
    env = os.environ.copy()
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # the copies may cache their bytecode (startup only)
    env["PYTHONPATH"] = side_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, os.path.join(harness, "compare_commits.py"), "--child", case,
           "--repeats", str(repeats), "--data", data_path, "--expect-root", side_dir]
    proc = subprocess.run(cmd, env=env, cwd=side_dir, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit {proc.returncode}"]
    return {"error": tail[0][:160], "stderr": proc.stderr}


def fmt(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def bootstrap_ci(base: list, new: list, level: float = 0.95, n_boot: int = 4000) -> tuple:
    """Percentile bootstrap interval of median(new) / median(base), resampling whole rounds
    (a round's base and new process stay together)."""
    rng = random.Random(0)
    k = len(base)
    ratios = []
    for _ in range(n_boot):
        idx = [rng.randrange(k) for _ in range(k)]
        ratios.append(statistics.median(new[i] for i in idx) / statistics.median(base[i] for i in idx))
    ratios.sort()
    tail = (1 - level) / 2
    return ratios[int(tail * n_boot)], ratios[int((1 - tail) * n_boot) - 1]


def verdict(ratio: float, lo: float, hi: float, fastest: float, thr: float) -> str:
    """REGRESSION / faster: the ratio beyond the threshold, its interval excluding 1 and the
    fastest repeats' ratio on the same side of 1. same: the interval within ±threshold.
    Anything else: the noise is too large to say."""
    pct = (ratio - 1) * 100
    if ratio > 1 + thr and lo > 1 and fastest > 1:
        return f"**REGRESSION** (+{pct:.1f}%)"
    if ratio < 1 - thr and hi < 1 and fastest < 1:
        return f"faster ({pct:.1f}%)"
    if 1 - thr <= lo and hi <= 1 + thr:
        return f"same (within ±{thr * 100:g}%)"
    return f"unclear: noise exceeds ±{thr * 100:g}%"


def parent_main(args) -> int:
    root = git_out(HERE, "rev-parse", "--show-toplevel")
    cases = list(CASES)
    if args.only:
        cases = [c.strip() for item in args.only for c in item.split(",") if c.strip()]
        unknown = [c for c in cases if c not in CASES]
        if unknown:
            raise SystemExit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    thr = args.threshold / 100
    tmp = tempfile.mkdtemp(prefix="compare_commits_")
    start, load0 = time.time(), load_average()
    try:
        harness = os.path.join(tmp, "harness")
        os.makedirs(harness)
        for name in HARNESS:
            shutil.copy2(os.path.join(HERE, name), harness)
        sides = {}
        for side, rev in (("base", args.base), ("new", args.new)):
            sides[side] = (os.path.join(tmp, side), export_side(root, rev, os.path.join(tmp, side)))
        data_path = os.path.join(tmp, "digits.npz")
        if "digits" in cases:
            write_digits(data_path)
        progress(f"base: {sides['base'][1]}")
        progress(f"new:  {sides['new'][1]}")

        per = {c: {"base": [], "new": []} for c in cases}     # per-process median, in the unit
        raw = {c: {"base": [], "new": []} for c in cases}     # every repeat, in the unit
        errors = {c: {} for c in cases}
        info = {}
        for r in range(args.rounds):
            for case in cases:
                line = []
                for side in ("base", "new"):
                    if side in errors[case]:
                        continue                         # failed once: not retried
                    out = run_child(harness, sides[side][0], case, args.repeats, data_path)
                    if "error" in out:
                        errors[case][side] = out["error"]
                        progress(f"{case} {side} FAILED: {out['error']}")
                        if args.verbose:
                            sys.stderr.write(out["stderr"])
                        continue
                    info.setdefault("numpy", out["numpy"])
                    info.setdefault("python", out["python"])
                    scale = (1e6 if CASES[case][1] == "µs/op" else 1e3) / out["n_ops"]
                    per[case][side].append(statistics.median(out["cpu"]) * scale)
                    raw[case][side].append([t * scale for t in out["cpu"]])
                    line.append(f"{side} {fmt(per[case][side][-1])}")
                progress(f"round {r + 1}/{args.rounds} {case}: {', '.join(line)} {CASES[case][1]}"
                         f" ({time.time() - start:.0f} s)")

        rows = []
        for case in cases:
            desc, unit = CASES[case]
            b, n = per[case]["base"], per[case]["new"]
            if errors[case] or not b or not n:
                why = "; ".join(f"{s}: {e}" for s, e in errors[case].items()) or "no timings"
                rows.append([f"{desc}, {unit}", fmt(statistics.median(b)) if b else "failed",
                             fmt(statistics.median(n)) if n else "failed", "n/a", "n/a", "n/a",
                             f"failed ({why})"])
                continue
            bm, nm = statistics.median(b), statistics.median(n)
            ratio = nm / bm
            best = min(min(r) for r in raw[case]["new"]) / min(min(r) for r in raw[case]["base"])
            if len(b) >= MIN_ROUNDS_FOR_INTERVAL:
                lo, hi = bootstrap_ci(b, n)
                interval, word = f"{lo:.3f}–{hi:.3f}", verdict(ratio, lo, hi, best, thr)
            else:   # too few rounds for an interval: the point estimates alone
                interval = f"n/a (< {MIN_ROUNDS_FOR_INTERVAL} rounds)"
                word = verdict(ratio, ratio, ratio, best, thr).replace("unclear: noise exceeds", "beyond") + "?"
            rows.append([f"{desc}, {unit}", fmt(bm), fmt(nm), f"**{ratio:.3f}**",
                         interval, f"{best:.3f}", word])

        if args.json:
            with open(args.json, "w") as f:
                json.dump({"base": sides["base"][1], "new": sides["new"][1], "units":
                           {c: CASES[c][1] for c in cases}, "cpu": raw, "errors": errors}, f)
        print("## compare_commits: eager cases, ours, base vs new\n")
        print(f"- base: {sides['base'][1]}")
        print(f"- new: {sides['new'][1]}")
        print(f"- machine: {cpu_model()}, {os.cpu_count()} CPUs; Python {info.get('python', platform.python_version())}, "
              f"numpy {info.get('numpy', '?')}; BLAS threads OPENBLAS={os.environ['OPENBLAS_NUM_THREADS']}")
        print(f"- {args.rounds} rounds (base, new alternating), each a fresh process per case and side "
              f"timing {args.repeats} repeats; medians of process CPU time; threshold ±{args.threshold:g}%")
        print(f"- load average at start {load0}, at end {load_average()}; total {time.time() - start:.0f} s")
        print("- new/base = median(new) / median(base) over rounds; 95% interval: bootstrap over "
              "rounds; the fastest repeats' ratio (min over all repeats of each side) is a "
              "cross-check that other jobs disturb least\n")
        headers = ["case", "base median", "new median", "new/base", "95% interval",
                   "new/base of fastest repeats", "verdict"]
        print("| " + " | ".join(headers) + " |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        failed = any(errors[c] for c in cases)
        return 1 if failed else 0
    finally:
        if args.keep:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", help="git revision for the base side")
    parser.add_argument("new", nargs="?", default=None,
                        help="git revision for the new side (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=12,
                        help="base/new process pairs per case (default 12: 4-5 minutes)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed repeats inside each process (default 7)")
    parser.add_argument("--threshold", type=float, default=3.0,
                        help="percent change called a regression / speed-up (default 3)")
    parser.add_argument("--only", action="append", metavar="CASES",
                        help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every repeat's CPU time (per side, round, case) here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary exports")
    parser.add_argument("-v", "--verbose", action="store_true", help="show failing children's stderr")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--expect-root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.repeats, args.data, args.expect_root)
    if not args.base:
        parser.error("BASE revision required")
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
