"""autodiff.compile on Value steps (micrograd's way): the replay gives the eager numbers,
float arguments are variables of the replay, and what cannot be replayed is refused."""

import math
import random

import numpy as np
import pytest

import autodiff
import nn
from autodiff import CompileError, Value
from autodiff.ops import OPS


def micrograd_mlp(Value, nin=2, nouts=(8, 8, 1), seed=3):
    """micrograd's demo MLP written out (runs on micrograd's Value and on ours)."""
    class Neuron:
        def __init__(self, n, nonlin):
            self.w = [Value(random.uniform(-1, 1)) for _ in range(n)]
            self.b = Value(0.0)
            self.nonlin = nonlin

        def __call__(self, x):
            act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
            return act.relu() if self.nonlin else act

        def parameters(self):
            return self.w + [self.b]

    class MLP:
        def __init__(self):
            sizes = [nin] + list(nouts)
            self.layers = [[Neuron(sizes[i], i != len(nouts) - 1) for _ in range(sizes[i + 1])]
                           for i in range(len(nouts))]

        def __call__(self, x):
            for layer in self.layers:
                x = [n(x) for n in layer]
            return x[0] if len(x) == 1 else x

        def parameters(self):
            return [p for layer in self.layers for n in layer for p in n.parameters()]

        def zero_grad(self):
            for p in self.parameters():
                p.grad = 0

    random.seed(seed)
    return MLP()


def moons(n=20, seed=1):
    X, y = nn.data.make_moons(n, noise=0.1, seed=seed)
    return np.asarray(getattr(X, "data", X)), np.asarray(getattr(y, "data", y)) * 2.0 - 1


def demo_step(model, Value=Value):
    def step(X, y, lr):
        scores = [model([Value(a), Value(b)]) for a, b in X]
        losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        return total
    return step


def numbers(model):
    return [(p.data, p.grad) for p in model.parameters()]


def test_the_demo_step_replays_the_eager_numbers_exactly():
    X, y = moons()
    eager, twin = micrograd_mlp(Value), micrograd_mlp(Value)
    run, compiled = demo_step(eager), autodiff.compile(demo_step(twin))
    for k in range(6):
        lr = 1.0 - 0.9 * k / 100
        assert compiled(X, y, lr).data == run(X, y, lr).data
        assert numbers(twin) == numbers(eager)
    # a constant trace first, then one where lr is a variable: no trace per new rate
    assert compiled.traces == 2


def test_the_compiled_demo_matches_micrograd_itself():
    engine = pytest.importorskip("micrograd.engine")
    X, y = moons()
    theirs, ours = micrograd_mlp(engine.Value), micrograd_mlp(Value)
    run, compiled = demo_step(theirs, engine.Value), autodiff.compile(demo_step(ours))
    for k in range(4):
        lr = 1.0 - 0.9 * k / 100
        a, b = run(X.tolist(), y.tolist(), lr).data, compiled(X.tolist(), y.tolist(), lr).data
        assert b == pytest.approx(a, rel=1e-12, abs=1e-15)
    for p, q in zip(theirs.parameters(), ours.parameters()):
        assert q.data == pytest.approx(p.data, rel=1e-12, abs=1e-15)
        assert q.grad == pytest.approx(p.grad, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("make_opt", [
    lambda ps: nn.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: nn.optim.Adam(ps, lr=0.01),
])
def test_nn_mlp_with_an_optimizer(make_opt):
    X, y = moons(12)
    X, y = X.tolist(), y.tolist()

    def make():
        autodiff.manual_seed(0)
        model = nn.MLP(2, [6, 1], activation="tanh")
        return model, make_opt(model.parameters())

    def step_for(model, opt):
        def step(X, y):
            opt.zero_grad()
            losses = [(model(x) - t) ** 2 for x, t in zip(X, y)]
            loss = sum(losses) / len(losses)
            loss.backward()
            opt.step()
            return loss
        return step

    (m1, o1), (m2, o2) = make(), make()
    run, compiled = step_for(m1, o1), autodiff.compile(step_for(m2, o2))
    for _ in range(4):
        assert compiled(X, y).data == run(X, y).data
        assert numbers(m2) == numbers(m1)
    assert compiled.traces == 1


def test_a_float_made_plain_keys_the_trace_to_its_value():
    def update(w, lr):
        w.data -= math.exp(lr) * w.grad  # math.exp sees a plain number: frozen

    compiled = _twins(_one_weight(update), [(2.0, -k / 10) for k in range(5)])
    assert compiled.traces == 5  # one per learning rate: still right, never stale


def test_new_array_contents_are_a_new_trace():
    X, y = moons()
    eager, twin = micrograd_mlp(Value), micrograd_mlp(Value)
    run, compiled = demo_step(eager), autodiff.compile(demo_step(twin))
    for seed in (1, 2, 1):
        X, y = moons(seed=seed)
        assert compiled(X, y, 0.5).data == run(X, y, 0.5).data
        assert numbers(twin) == numbers(eager)


def test_two_updates_in_one_step_and_a_forward_under_no_grad():
    def step_for(p, q):
        def step(x, lr):
            for _ in range(2):  # the second forward reads the first update's weights
                p.grad, q.grad = 0.0, 0.0
                loss = (p * x + q).tanh() * 2.0
                loss.backward()
                p.data -= lr * p.grad
                q.data = q.data - lr * q.grad
            with autodiff.no_grad():
                prediction = (p * x + q).sigmoid()
            return loss, [prediction, p.data]
        return step

    (a, b), (c, d) = (Value(0.3), Value(-0.2)), (Value(0.3), Value(-0.2))
    run, compiled = step_for(a, b), autodiff.compile(step_for(c, d))
    for k in range(4):
        (l1, (p1, w1)), (l2, (p2, w2)) = run(1.5, 0.1 * k), compiled(1.5, 0.1 * k)
        assert (l2.data, p2.data, w2) == (l1.data, p1.data, w1)
        assert (c.data, c.grad, d.data, d.grad) == (a.data, a.grad, b.data, b.grad)
    assert isinstance(p2, Value) and type(w2) is float


def _evaluate(template, names):
    return eval(template.format_map(names), {"math": math})


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.code is not None))
def test_each_ops_replay_code_computes_the_very_same_floats(name):
    op = OPS[name]
    grid = [-2.5, -1.0, -0.0, 0.0, 1e-300, 0.75, 3.0, math.inf, -math.inf, math.nan]
    rng = random.Random(0)
    for _ in range(200):
        inputs = 5 if name == "affine" else (2 if name in ("add", "sub", "mul") else 1)
        xs = [rng.choice(grid) for _ in range(inputs)]
        options = {"c": rng.choice(grid)} if name.endswith("_const") else (
            {"n": 2} if name == "affine" else {})
        forward, vjps = op.code(inputs) if callable(op.code) else op.code
        out = op.scalar(*xs, *options.values()) if name.endswith("_const") else \
            op.scalar(*xs, **options)
        names = {f"x{k}": repr(x) if math.isfinite(x) else f"float('{x}')" for k, x in
                 enumerate(xs)}
        names.update({k: repr(v) if not isinstance(v, float) or math.isfinite(v)
                      else f"float('{v}')" for k, v in options.items()})
        g = rng.choice([-1.5, 0.5, 2.0])
        names.update(g=repr(g), out=repr(out) if math.isfinite(out) else f"float('{out}')")
        if forward is not None:
            assert repr(_evaluate(forward, names)) == repr(out), (xs, options)
        saved = xs if op.reads_inputs else []
        expected = op.vjp(g, out, *saved, **options)
        for template, want in zip(vjps, expected):
            assert repr(float(_evaluate(template, names))) == repr(float(want)), (xs, options)


def test_what_cannot_be_replayed_is_refused():
    p = Value(0.5)

    def tanh_by_hand(x):
        loss = p * x
        loss.backward()
        p.data = math.tanh(p.data)
        return loss

    with pytest.raises(CompileError, match="decides or computes something from a Value"):
        autodiff.compile(tanh_by_hand)(2.0)

    def read_inner_grad(x):
        h = p * x
        loss = h * h
        loss.backward()
        p.data -= 0.1 * h.grad
        return loss

    with pytest.raises(CompileError, match="reads .grad of a Value made inside"):
        autodiff.compile(read_inner_grad)(2.0)

    def write_inner(x):
        h = p * x
        h.data = 3.0
        return h

    with pytest.raises(CompileError, match="assigns .data of a Value made inside"):
        autodiff.compile(write_inner)(2.0)

    def accuracy(x):
        s = p * x
        return (s.data > 0) / 1.0

    with pytest.raises(CompileError, match="returned a float"):
        autodiff.compile(accuracy)(2.0)

    def mixed(x):
        t = autodiff.Tensor(np.ones(2), requires_grad=True)
        (t * 2.0).sum().backward()
        return p * x

    with pytest.raises(CompileError, match="mixes Tensor and Value"):
        autodiff.compile(mixed)(2.0)

    with pytest.raises(CompileError, match="a Value as an argument"):
        autodiff.compile(lambda v: v * p)(Value(1.0))


def test_hooks_on_a_value_are_refused():
    p = Value(0.5)

    def step(x):
        h = p * x
        h.register_hook(lambda g: g * 2)
        h.backward()
        return h

    with pytest.raises(CompileError, match="hooks"):
        autodiff.compile(step)(2.0)


# -- found by trying to break it: each compiled twin must match eager or refuse ----------

def _twins(make, calls):
    """Run eager and compiled copies of a step (make() -> (step, params)) on the same
    calls; every result and parameter must be equal."""
    (run, ps), (step, qs) = make(), make()
    compiled = autodiff.compile(step)
    for args in calls:
        a, b = run(*args), compiled(*args)
        a, b = (getattr(a, "data", a), getattr(b, "data", b))
        assert repr(b) == repr(a), args
        assert [(q.data, q.grad) for q in qs] == [(p.data, p.grad) for p in ps], args
    return compiled


def _one_weight(update):
    def make():
        w = Value(0.5)

        def step(x, *args):
            w.grad = 0.0
            loss = (w * x - 1.0) ** 2
            loss.backward()
            update(w, *args)
            return loss
        return step, [w]
    return make


def test_a_branch_on_a_parameters_number_is_refused():
    def clip(w):
        g = w.grad
        if g > 1.0:  # a clip the replay could not decide again
            g = 1.0
        w.data -= 0.1 * g

    with pytest.raises(CompileError, match="`if p.grad > 1`"):
        _twins(_one_weight(clip), [(2.0,)])


def test_branches_and_lookups_on_float_arguments_key_the_trace_to_them():
    def decayed(w, wd):
        w.data -= 0.1 * w.grad + (wd * w.data if wd else 0.0)

    _twins(_one_weight(decayed), [(2.0, 0.5), (2.0, 0.0), (2.0, 0.5), (2.0, 0.5)])
    scale = {0.05: 2.0}
    _twins(_one_weight(lambda w, lr: w.__setattr__("data", w.data - scale.get(lr, 0.0) * w.grad)),
           [(2.0, 0.1), (2.0, 0.05), (2.0, 0.02), (2.0, 0.05)])
    _twins(_one_weight(lambda w, e: w.__setattr__("data", w.data - 0.1 * w.grad)),
           [(2.0, 1.5), (2.0, 2.5)])  # (a float argument that does nothing)


def test_a_float_exponent_and_an_optimizer_setting_from_an_argument():
    def make_pow():
        w = Value(1.2)

        def step(e):
            w.grad = 0.0
            loss = w ** e
            loss.backward()
            w.data -= 0.01 * w.grad
            return loss
        return step, [w]

    _twins(make_pow, [(1.5,), (2.5,), (2.0,), (3.5,)])

    def make_opt():
        w = Value(0.5)
        opt = nn.optim.SGD([w], lr=0.1)

        def step(x, lr):
            opt.param_groups[0]["lr"] = lr
            opt.zero_grad()
            loss = (w * x - 1.0) ** 2
            loss.backward()
            opt.step()
            return loss
        return step, [w]

    _twins(make_opt, [(2.0, 0.05), (2.0, 0.02), (2.0, 0.05)])


def test_a_scheduler_stepped_inside_the_step_is_replayed():
    def make():
        w = Value(0.5)
        opt = nn.optim.SGD([w], lr=0.1)
        sched = nn.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

        def step(x):
            opt.zero_grad()
            loss = (w * x - 1.0) ** 2
            loss.backward()
            opt.step()
            sched.step()
            return loss
        return step, [w]

    _twins(make, [(2.0,)] * 5)


def test_negative_zero_is_its_own_trace():
    def make():
        w = Value(0.5)

        def step(x):
            return 1.0 / (w * x)
        return step, [w]

    _twins(make, [(0.0,), (-0.0,), (0.0,)])


def test_what_a_replay_returns_a_parameter_itself_and_new_values_with_their_gradients():
    w, twin = Value(0.5), Value(0.5)

    def make(p):
        def step(x, lr):
            p.grad = 0.0
            h = p * x
            loss = (h - 1.0) ** 2
            loss.backward()
            p.data -= lr * p.grad
            return loss, h, p
        return step

    run, compiled = make(w), autodiff.compile(make(twin))
    for lr in (0.1, 0.05, 0.02):
        (l1, h1, p1), (l2, h2, p2) = run(2.0, lr), compiled(2.0, lr)
        assert (l2.data, l2.grad, h2.data, h2.grad) == (l1.data, l1.grad, h1.data, h1.grad)
        assert p1 is w and p2 is twin


def test_numbers_kept_from_an_earlier_call_are_refused():
    w = Value(0.5)
    kept = {}

    def step(x):
        w.grad = 0.0
        h = w * x
        loss = (h - 1.0) ** 2 + kept.get("h", 0.0)
        kept["h"] = h.data  # read in this call, used in the next
        loss.backward()
        w.data -= 0.1 * w.grad
        return loss

    with pytest.raises(CompileError, match="keeps a number read from a Value"):
        autodiff.compile(step)(2.0)  # (a replay would not update what it keeps)


def test_a_model_made_inside_the_step_and_a_replaced_parameter_are_refused():
    state = {}

    def lazy(x):
        if "m" not in state:
            state["m"] = nn.MLP(2, [3, 1])
            state["o"] = nn.optim.SGD(state["m"].parameters(), lr=0.1)
        state["o"].zero_grad()
        loss = (state["m"](x) - 1.0) ** 2
        loss.backward()
        state["o"].step()
        return loss

    with pytest.raises(CompileError, match="parameters made inside the step"):
        autodiff.compile(lazy)([0.5, -1.0])

    model = nn.MLP(2, [3, 1])

    def step(x):
        model.zero_grad()
        loss = (model(x) - 1.0) ** 2
        loss.backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad
        return loss

    compiled = autodiff.compile(step)
    compiled([0.5, -1.0])
    model.layers[0].neurons[0].b = Value(0.0)
    with pytest.raises(CompileError, match="parameters or buffers of MLP changed"):
        compiled([0.5, -1.0])


def test_a_compiled_step_inside_another_is_recorded_inline():
    w, twin = Value(0.5), Value(0.5)

    def inner_for(p):
        def inner(x, lr):
            p.grad = 0.0
            loss = (p * x - 1.0) ** 2
            loss.backward()
            p.data -= lr * p.grad
            return loss
        return inner

    run = inner_for(w)
    inner = autodiff.compile(inner_for(twin))
    outer = autodiff.compile(lambda x, lr: inner(x, lr) * 1.0)
    for lr in (0.1, 0.05, 0.02, 0.03):
        assert outer(2.0, lr).data == (run(2.0, lr) * 1.0).data
        assert (twin.data, twin.grad) == (w.data, w.grad)
    assert inner.traces == 0


def test_other_threads_run_eagerly_while_a_step_is_traced():
    import threading
    started, results = threading.Event(), []

    def other():
        v = Value(0.25)
        for _ in range(2000):
            loss = v * v
            loss.backward()
            v.data -= 0.01 * v.grad
            v.grad = 0.0
        results.append(v.data)

    w = Value(0.5)

    def step(x):
        if not started.is_set():
            started.set()
            thread.start()
        w.grad = 0.0
        loss = sum((w * x - 1.0) ** 2 for _ in range(300))
        loss.backward()
        w.data -= 0.001 * w.grad
        return loss

    thread = threading.Thread(target=other)
    autodiff.compile(step)(2.0)
    thread.join()
    v = 0.25
    for _ in range(2000):
        v -= 0.01 * (2 * v)
    assert results == [pytest.approx(v, rel=1e-12)]


def test_a_model_of_ones_own_class_as_an_argument():
    def make():
        model = micrograd_mlp(Value, nouts=(4, 1))

        def step(model, X, y, lr):
            return demo_step(model)(X, y, lr)
        return (lambda *a: step(model, *a)), model.parameters(), step, model

    X, y = moons(8)
    (run, ps, _, _), (_, qs, step, model) = make(), make()
    compiled = autodiff.compile(step)  # the model passed in: its Values keyed by identity
    for lr in (0.1, 0.05, 0.1):
        a, b = run(X, y, lr), compiled(model, X, y, lr)
        assert b.data == a.data
        assert [(q.data, q.grad) for q in qs] == [(p.data, p.grad) for p in ps]
