"""autodiff.compile: a replayed step gives the eager step's numbers, or a clear error."""

import numpy as np
import pytest

import autodiff
import nn
from autodiff import CompileError, Tensor
from autodiff.engine import ModifiedInPlaceError


def _model(dtype, opt_name):
    autodiff.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    if dtype == np.float32:
        m = m.float()
    opt = {"sgd": lambda p: nn.optim.SGD(p, lr=0.1, momentum=0.9),
           "adam": lambda p: nn.optim.Adam(p, lr=0.01)}[opt_name](m.parameters())
    return m, opt


def _mse_step(m, opt):
    def step(x, y):
        opt.zero_grad()
        loss = ((m(Tensor(x)) - Tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step


def _ce_step(m, opt):
    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss
    return step


def _batches(dtype, labels=False, n=3):
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((n, 16, 5)).astype(dtype)
    ys = rng.integers(0, 3, (n, 16)) if labels else rng.standard_normal((n, 16, 3)).astype(dtype)
    return xs, ys


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)


def _same_run(make_step, dtype, opt_name, labels, epochs=3):
    """Eager and compiled copies of a model trained on the same batches, compared after
    every step (losses, .grad, parameters)."""
    m1, o1 = _model(dtype, opt_name)
    m2, o2 = _model(dtype, opt_name)
    eager, compiled = make_step(m1, o1), autodiff.compile(make_step(m2, o2))
    xs, ys = _batches(dtype, labels)
    for _ in range(epochs):
        for x, y in zip(xs, ys):
            a, b = eager(x, y), compiled(x, y)
            np.testing.assert_allclose(b.data, a.data, **_tol(dtype))
            for p, q in zip(m1.parameters(), m2.parameters()):
                np.testing.assert_allclose(q.grad.data, p.grad.data, **_tol(dtype))
                np.testing.assert_allclose(q.data, p.data, **_tol(dtype))
                assert q.data.dtype == dtype
    return compiled


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_mse_step_matches_eager(dtype, opt_name):
    compiled = _same_run(_mse_step, dtype, opt_name, labels=False)
    assert compiled.traces == 1  # one signature, one trace, replayed 8 times


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_cross_entropy_step_matches_eager(opt_name):
    # the labels' checks and one-hot rows are replayable calls: made again for each new
    # batch, so one trace serves every batch
    compiled = _same_run(_ce_step, np.float64, opt_name, labels=True)
    assert compiled.traces == 1


def test_hand_written_update_and_new_values_are_used():
    autodiff.manual_seed(0)
    w = Tensor(np.random.default_rng(0).standard_normal((4, 2)), requires_grad=True)
    w2 = Tensor(w.data.copy(), requires_grad=True)

    def make(p):
        def step(x):
            p.grad = None
            loss = (Tensor(x) @ p).tanh().sum()
            loss.backward()
            with autodiff.no_grad():
                p.sub_(p.grad, alpha=0.1)
            return loss
        return step

    eager, compiled = make(w), autodiff.compile(make(w2))
    rng = np.random.default_rng(3)
    for _ in range(4):  # new values every call, same shape: replayed, never stale
        x = rng.standard_normal((3, 4))
        a, b = eager(x), compiled(x)
        np.testing.assert_allclose(b.data, a.data, rtol=1e-12)
        np.testing.assert_allclose(w2.data, w.data, rtol=1e-12)
        np.testing.assert_allclose(w2.grad.data, w.grad.data, rtol=1e-12)
    assert compiled.traces == 1


def test_retrace_on_new_shape_and_dtype():
    m, opt = _model(np.float64, "sgd")
    step = autodiff.compile(_mse_step(m, opt))
    rng = np.random.default_rng(0)
    step(rng.standard_normal((4, 5)), rng.standard_normal((4, 3)))
    step(rng.standard_normal((4, 5)), rng.standard_normal((4, 3)))
    assert step.traces == 1
    step(rng.standard_normal((7, 5)), rng.standard_normal((7, 3)))
    assert step.traces == 2
    step(rng.standard_normal((7, 5)).astype(np.float32), rng.standard_normal((7, 3)))
    assert step.traces == 3


def test_returning_a_python_number_is_refused():
    m, opt = _model(np.float64, "sgd")
    inner = _mse_step(m, opt)
    step = autodiff.compile(lambda x, y: inner(x, y).item())
    with pytest.raises(CompileError, match="item"):
        step(np.ones((2, 5)), np.ones((2, 3)))


def test_gradients_accumulate_across_calls_as_eagerly():
    # (no reset inside the step: gradient accumulation over micro-batches)
    runs = [_model(np.float64, "sgd")[0] for _ in range(2)]

    def make(m):
        def step(x):
            loss = m(Tensor(x)).sum()
            loss.backward()
            return loss
        return step
    eager, compiled = make(runs[0]), autodiff.compile(make(runs[1]))
    for k in range(3):
        x = np.ones((2, 5)) * (k + 1)
        eager(x), compiled(x)
    for p, q in zip(runs[0].parameters(), runs[1].parameters()):
        np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=1e-12)
    assert compiled.traces == 1


def test_gradient_reset_outside_what_a_trace_records_is_caught():
    # a reset the trace cannot see (the private slot) would leave a replay adding to the
    # gradient the parameter has at the next call
    m, _ = _model(np.float64, "sgd")
    for p in m.parameters():
        p.grad = Tensor(np.zeros(p.shape))

    def step(x):
        loss = m(Tensor(x)).sum()
        for p in m.parameters():
            p._grad = None
        loss.backward()
        return loss

    compiled = autodiff.compile(step)
    compiled(np.ones((2, 5)))
    with pytest.raises(CompileError, match="does not record"):
        compiled(np.ones((2, 5)))


def test_replaced_parameter_is_caught():
    m, opt = _model(np.float64, "sgd")
    step = autodiff.compile(lambda x, y: _mse_step(m, opt)(x, y))
    step(np.ones((2, 5)), np.ones((2, 3)))
    m[0].weight = nn.Parameter(np.zeros((8, 5)))
    with pytest.raises(CompileError, match="replaced"):
        step(np.ones((2, 5)), np.ones((2, 3)))


def test_rebinding_data_inside_the_step_is_refused():
    w = Tensor(np.ones(3), requires_grad=True)

    def step(x):
        w.grad = None
        loss = (w * Tensor(x)).sum()
        loss.backward()
        w.data = w.data - 0.1 * w.grad.data
        return loss

    with pytest.raises(CompileError, match="rebinds"):
        autodiff.compile(step)(np.ones(3))


def test_value_graphs_are_refused_clearly():
    a = autodiff.Value(2.0)
    with pytest.raises(CompileError, match="Value"):
        autodiff.compile(lambda v: v * a)(autodiff.Value(1.0))


def test_traced_graph_can_be_drawn():
    m, _ = _model(np.float64, "sgd")

    def forward(x):
        m.zero_grad()
        loss = m(Tensor(x)).tanh().sum()
        loss.backward(retain_graph=True)
        return loss

    step = autodiff.compile(forward)
    step(np.ones((2, 5)))
    assert step.graph is not None and step.graph.grad_fn is not None
    from autodiff.viz import backward_steps
    assert len(backward_steps(step.graph)) > 3


def test_arrays_computed_from_arguments_are_not_replayed_stale():
    # the seed and a numpy-made mask come from the argument's values: a replay for other
    # values would reuse them, so such a trace replays only for identical contents
    w = Tensor(np.ones(4), requires_grad=True)

    def step(x):
        w.grad = None
        y = w * Tensor(np.where(x > 0, 1.0, -1.0)) * Tensor(x)
        y.backward(x * 2)
        return y

    compiled = autodiff.compile(step)
    for x in (np.array([1.0, -2.0, 3.0, 4.0]), np.array([-1.0, 2.0, 3.0, -5.0]),
              np.array([1.0, -2.0, 3.0, 4.0])):
        out = compiled(x)
        np.testing.assert_allclose(out.data, np.abs(x))
        np.testing.assert_allclose(w.grad.data, np.abs(x) * x * 2)
    assert compiled.traces == 2


@pytest.mark.parametrize("twice", [False, True])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_training_step_matches_eager(kind, twice):
    """An unrolled recurrent layer (fused lstm_cell nodes, or the GRU's primitives) with
    Adam: the replayed step trains exactly as the eager one, also on a batch seen again
    after the weights moved (the LSTM's transposed-weight copies once went stale there).
    `twice`: two updates in one call, so the replay must make the LSTM's transposed
    weights again after the first; the input requires grad (its per-step slices' gradients
    are summed in the replay) and the gradients are reset after the last backward."""
    rng = np.random.default_rng(0)
    models = []
    for _ in range(2):
        autodiff.manual_seed(0)
        rnn, head = getattr(nn, kind)(3, 5, num_layers=2), nn.Linear(5, 1)
        params = list(rnn.parameters()) + list(head.parameters())
        models.append((rnn, head, params, nn.optim.Adam(params, lr=0.05)))

    def make_step(rnn, head, params, opt):
        def step(x, y):
            for _ in range(2 if twice else 1):
                opt.zero_grad()
                xt = Tensor(x, requires_grad=twice)
                out, _ = rnn(xt)
                loss = ((head(out[-1]) - Tensor(y)) ** 2).mean() + (xt * xt).mean() * twice
                loss.backward()
                opt.step()
            if twice:
                grads = [p.grad.detach() * 1.0 for p in params]  # (kept: zero_grad drops them)
                opt.zero_grad()
                return loss, xt, grads
            return loss
        return step

    eager, compiled = make_step(*models[0]), autodiff.compile(make_step(*models[1]))
    batches = [(rng.standard_normal((7, 4, 3)), rng.standard_normal((4, 1))) for _ in range(2)]
    close = dict(rtol=1e-12, atol=1e-12)
    for x, y in batches * 3:  # a batch seen again after the weights moved
        a, b = eager(x, y), compiled(x, y)
        if twice:
            (a, xa, ga), (b, xb, gb) = a, b
            np.testing.assert_allclose(xb.grad.data, xa.grad.data, **close)
            for p, q, g, h in zip(models[0][2], models[1][2], ga, gb):
                np.testing.assert_allclose(h.data, g.data, **close)
                assert p.grad is None and q.grad is None
        np.testing.assert_allclose(b.data, a.data, **close)
        for p, q in zip(models[0][2], models[1][2]):
            if not twice:
                np.testing.assert_allclose(q.grad.data, p.grad.data, **close)
            np.testing.assert_allclose(q.data, p.data, **close)
    assert compiled.traces == 1  # the zero initial state is a replayable call, made again
    # at each replay: one trace serves every batch
    again = eager(x, y)
    assert float(a.data) != float((again[0] if twice else again).data)  # the weights moved


# -- replayable calls: numpy work on the arguments, made again at each replay -----------

def _ce_loss_step(m, opt, loss_fn):
    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(m(Tensor(x)), Tensor(y))
        loss.backward()
        opt.step()
        return loss
    return step


def _compare(eager, compiled, m1, m2, x, y):
    a, b = eager(x, y), compiled(x, y)
    np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-12)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12, atol=1e-12)


def test_labels_with_an_ignored_sample_where_the_trace_had_none_trace_again():
    (m1, o1), (m2, o2) = _model(np.float64, "sgd"), _model(np.float64, "sgd")
    loss_fn = nn.CrossEntropyLoss(ignore_index=2)
    eager, compiled = _ce_loss_step(m1, o1, loss_fn), autodiff.compile(_ce_loss_step(m2, o2, loss_fn))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5))
    for y in ([0, 1, 0, 1, 1, 0], [1, 0, 0, 1, 0, 1], [0, 2, 1, 2, 0, 1], [1, 1, 0, 0, 1, 0]):
        _compare(eager, compiled, m1, m2, x, np.array(y))
    # the third batch's mask of kept samples is a different structure: traced afresh;
    # batches without an ignored label still replay
    assert compiled.traces == 2


def test_a_bad_label_at_a_replay_raises_as_eagerly_and_changes_nothing():
    m, opt = _model(np.float64, "sgd")
    step = autodiff.compile(_ce_loss_step(m, opt, nn.CrossEntropyLoss()))
    x = np.random.default_rng(0).standard_normal((4, 5))
    step(x, np.array([0, 1, 2, 1]))
    before = [p.data.copy() for p in m.parameters()]
    with pytest.raises(IndexError, match="label 7"):
        step(x, np.array([0, 7, 2, 1]))
    assert all((p.data == b).all() for p, b in zip(m.parameters(), before))
    assert step.traces == 1


def test_a_replayable_call_after_an_update_is_checked_before_the_replay_changes_anything():
    from autodiff.compile import replayable

    @replayable
    def positives(x):
        return None if (x > 0).all() else (x > 0).astype(float)

    def make_step(w):
        def step(x):
            w.grad = None
            (w * Tensor(x)).sum().backward()
            with autodiff.no_grad():
                w.sub_(w.grad, alpha=0.1)
            mask = positives(x)  # after the update: its structure is checked at the top
            return w * 2.0 if mask is None else w * Tensor(mask)
        return step

    w_eager, w_compiled = (Tensor(np.ones(3), requires_grad=True) for _ in range(2))
    eager, compiled = make_step(w_eager), autodiff.compile(make_step(w_compiled))
    for x in ([1.0, 2.0, 3.0], [2.0, 2.0, 1.0], [1.0, -2.0, 3.0], [3.0, 1.0, 1.0]):
        x = np.array(x)
        np.testing.assert_array_equal(compiled(x).data, eager(x).data)
        np.testing.assert_array_equal(w_compiled.data, w_eager.data)
    assert compiled.traces == 2


def test_a_replayable_call_on_arrays_the_trace_cannot_explain_stays_baked():
    from autodiff.compile import replayable

    @replayable
    def double(a):
        return a * 2

    w = Tensor(np.ones(3), requires_grad=True)

    def step(x):
        w.grad = None
        made = np.sqrt(np.abs(x))  # numpy on the argument: the trace cannot follow it
        loss = (w * Tensor(double(made))).sum()
        loss.backward()
        return loss

    compiled = autodiff.compile(step)
    for x in (np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 4.0]), np.array([1.0, 4.0, 9.0])):
        np.testing.assert_allclose(compiled(x).data, 2 * np.sqrt(np.abs(x)).sum())
        np.testing.assert_allclose(w.grad.data, 2 * np.sqrt(np.abs(x)))
    assert compiled.traces == 2  # keyed to the contents, as any array made in the step


def test_class_weights_and_a_replayable_result_changed_in_place():
    (m1, o1), (m2, o2) = _model(np.float64, "sgd"), _model(np.float64, "sgd")
    loss_fn = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 0.5]))
    eager, compiled = _ce_loss_step(m1, o1, loss_fn), autodiff.compile(_ce_loss_step(m2, o2, loss_fn))
    rng = np.random.default_rng(2)
    for _ in range(4):  # (the weights made the one-hot rows change in place: stale rows)
        _compare(eager, compiled, m1, m2, rng.standard_normal((6, 5)), rng.integers(0, 3, 6))

    from autodiff.compile import replayable

    @replayable
    def halves(x):
        return x * 0.5

    w = Tensor(np.ones(3), requires_grad=True)

    def step(x):
        h = halves(x)
        h += 1.0  # in place: a replay would not
        return (w * Tensor(h)).sum()

    with pytest.raises(CompileError, match="changed the result of a replayable call"):
        autodiff.compile(step)(np.arange(3.0))


# -- arguments: what a trace keys on ---------------------------------------------------

def _weighted_error_step(w):
    def step(x, t):
        w.grad = None
        loss = ((w * Tensor(x) - Tensor(t)) ** 2).sum()
        loss.backward()
        with autodiff.no_grad():
            w.sub_(w.grad, alpha=0.01)
        return loss
    return step


def test_one_array_passed_twice_is_its_own_trace():
    w1, w2 = (Tensor(np.ones(3), requires_grad=True) for _ in range(2))
    eager, compiled = _weighted_error_step(w1), autodiff.compile(_weighted_error_step(w2))
    a, b = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    for x, t in ((a, a), (a, b), (b, a), (a, a)):  # the trace of (a, a) read one array
        np.testing.assert_array_equal(compiled(x, t).data, eager(x, t).data)
        np.testing.assert_array_equal(w2.data, w1.data)
    assert compiled.traces == 2


class _Batch:
    def __init__(self, x, t, scale=2.0):
        self.x, self.t, self.scale = x, t, scale


def test_a_plain_objects_arrays_are_arguments():
    w1, w2 = (Tensor(np.ones(3), requires_grad=True) for _ in range(2))

    def make(w):
        inner = _weighted_error_step(w)
        return lambda batch: inner(batch.x * batch.scale, batch.t)  # numpy work on its fields

    eager, compiled = make(w1), autodiff.compile(make(w2))
    batch = _Batch(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    for x, scale in (([1.0, 2.0, 3.0], 2.0), ([10.0, 0.0, 0.0], 2.0), ([10.0, 0.0, 0.0], 3.0)):
        batch.x, batch.scale = np.array(x), scale  # the same object, rebound fields
        np.testing.assert_array_equal(compiled(batch).data, eager(batch).data)
        np.testing.assert_array_equal(w2.data, w1.data)


def test_an_object_a_trace_cannot_see_into_is_refused_when_the_trace_bakes_arrays():
    w = Tensor(np.ones(3), requires_grad=True)

    def step(x, rng):
        return (w * Tensor(x + rng.standard_normal(3))).sum()

    with pytest.raises(CompileError, match="Generator argument"):
        autodiff.compile(step)(np.zeros(3), np.random.default_rng(0))
    # a module as an argument is fine: its parameters are guarded at every call
    m = nn.Linear(3, 1)
    compiled = autodiff.compile(lambda model, x: model(Tensor(x)).sum())
    x = np.ones((2, 3))
    np.testing.assert_array_equal(compiled(m, x).data, m(Tensor(x)).sum().data)


@pytest.mark.parametrize("statistic", [
    lambda x: x.std(),                     # a numpy scalar
    lambda x: Tensor(x.max()),             # a tensor of one
    lambda x: np.asarray(x.max()),         # a 0-d array
])
def test_a_numpy_number_from_the_arguments_keys_the_trace_to_their_contents(statistic):
    w = Tensor(np.ones(3), requires_grad=True)

    def step(x):
        return (w * Tensor(x)).sum() * statistic(x)

    compiled = autodiff.compile(step)
    for x in ([1.0, 2.0, 3.0], [1.0, 5.0, 9.0]):
        x = np.array(x)
        np.testing.assert_allclose(compiled(x).data, step(x).data, rtol=1e-15)


# -- the losses and layers' own numpy work is replayed: one trace for every batch ------

def _loss_steps():
    F = nn.functional
    weights = np.array([1.0, 2.0, 0.5])
    return {
        "nll_loss": lambda z, y: F.nll_loss(z.log_softmax(axis=1), y, ignore_index=1),
        "cross_entropy none": lambda z, y: nn.CrossEntropyLoss(reduction="none")(z, y).sum(),
        "cross_entropy none ignored": lambda z, y: nn.CrossEntropyLoss(
            reduction="none", ignore_index=1, label_smoothing=0.1)(z, y).sum(),
        "class weights": lambda z, y: nn.CrossEntropyLoss(weight=weights)(z, y),
        "bce with logits": lambda z, t: F.binary_cross_entropy_with_logits(z, t)
        + nn.BCELoss()(z.sigmoid(), t),
        "dropout": lambda z, y: F.cross_entropy(F.dropout(z, 0.5, training=True), y),
    }


@pytest.mark.parametrize("name", list(_loss_steps()))
def test_a_losss_numpy_work_is_replayed_for_each_batch(name):
    loss_of = _loss_steps()[name]

    def make(m, opt):
        def step(x, y):
            opt.zero_grad()
            loss = loss_of(m(Tensor(x)), y)
            loss.backward()
            opt.step()
            return loss
        return step

    (m1, o1), (m2, o2) = _model(np.float64, "sgd"), _model(np.float64, "sgd")
    eager, compiled = make(m1, o1), autodiff.compile(make(m2, o2))
    rng = np.random.default_rng(3)
    for k in range(5):
        x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
        if "ignored" in name or name == "nll_loss":
            y[0] = 1  # (the same structure in every batch: some ignored)
        if name.startswith("bce"):
            y = np.eye(3)[y]  # (targets as probabilities)
        autodiff.manual_seed(k)
        a = eager(x, y)
        autodiff.manual_seed(k)  # (dropout: the same draws for both)
        b = compiled(x, y)
        _compare_models(a, b, m1, m2)
    assert compiled.traces == 1


def _compare_models(a, b, m1, m2):
    np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-12)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12, atol=1e-12)


def _input_gradient_step(m, opt, double=False):
    """An adversarial-example step: the input's gradient, read inside the step, makes a
    perturbed batch that is trained on; the perturbed input is returned with its own
    gradient."""
    def step(x, y):
        opt.zero_grad()
        xt = Tensor(x, requires_grad=True)
        ((m(xt) - Tensor(y)) ** 2).mean().backward()
        if double:  # a second backward adds to xt.grad, after a reset and a first one
            xt.grad = None
            ((m(xt) - Tensor(y)) ** 2).sum().backward()
            (m(xt) ** 2).mean().backward()
        adv = (xt + xt.grad * 0.1).detach().requires_grad_()  # (tensor ops: replayed)
        opt.zero_grad()
        loss = ((m(adv) - Tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        return loss, adv
    return step


@pytest.mark.parametrize("double", [False, True])
def test_a_leaf_made_in_the_step_has_a_new_gradient_at_every_call(double):
    # The traced leaves are not the replay's: their .grad must neither accumulate from
    # call to call nor be reported stale, and what the step reads of it is this call's.
    m1, o1 = _model(np.float64, "sgd")
    m2, o2 = _model(np.float64, "sgd")
    eager = _input_gradient_step(m1, o1, double)
    compiled = autodiff.compile(_input_gradient_step(m2, o2, double))
    xs, ys = _batches(np.float64, n=4)
    for _ in range(2):
        for x, y in zip(xs, ys):
            (l1, a1), (l2, a2) = eager(x, y), compiled(x, y)
            np.testing.assert_allclose(l2.data, l1.data, **_tol(np.float64))
            np.testing.assert_allclose(a2.data, a1.data, **_tol(np.float64))
            assert a2.requires_grad and a2.grad is not a1.grad
            np.testing.assert_allclose(a2.grad.data, a1.grad.data, **_tol(np.float64))
            for p, q in zip(m1.parameters(), m2.parameters()):
                np.testing.assert_allclose(q.data, p.data, **_tol(np.float64))
    assert compiled.traces == 1


def _detached_target_step(m, opt, how):
    """A step whose target is the model's own output cut from the graph, and whose
    penalty reads a parameter's values as a constant: both must follow the model."""
    first = m[0].weight

    def step(x, y):
        opt.zero_grad()
        # (before the parameter's first use in the step)
        frozen = first.detach() if how == "detach" else Tensor(first.data)
        out = m(Tensor(x))
        target = {"detach": lambda: (out * 0.5).detach(),
                  "copy": lambda: Tensor((out * 0.5).data)}[how]()
        loss = ((out - target - Tensor(y)) ** 2).mean() + (first * frozen).sum() * 1e-3
        loss.backward()
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("how", ["detach", "copy"])
def test_a_detached_or_copied_tensor_follows_its_source_at_every_replay(how):
    compiled = _same_run(lambda m, opt: _detached_target_step(m, opt, how), np.float64,
                         "sgd", labels=False)
    assert compiled.traces == 1


@pytest.mark.parametrize("change", ["clamp_", "setitem", "normal_", "uniform_"])
def test_every_in_place_method_is_replayed(change):
    # Weight clipping, a pinned entry, a re-drawn row: each changes a parameter in place
    # under no_grad, after the update; a replay must do it again (the random fills draw
    # from the seeded generator, as the eager step does).
    def run():
        autodiff.manual_seed(3)
        w = Tensor(np.array([0.5, -0.5, 0.2, 0.1]), requires_grad=True)
        opt = nn.optim.SGD([w], lr=0.5)

        def step(x):
            opt.zero_grad()
            loss = (w * Tensor(x)).sum()
            loss.backward()
            opt.step()
            with autodiff.no_grad():
                if change == "clamp_":
                    w.clamp_(-0.6, 0.6)
                elif change == "setitem":
                    w[0] = 0.0
                else:
                    w[2:].__getattribute__(change)()  # (a view: changes w)
            return loss
        return w, step
    (w1, eager), (w2, step) = run(), run()
    compiled = autodiff.compile(step)
    for k in range(4):
        x = np.array([1.0, -1.0, 2.0, 0.5]) * (k + 1)
        autodiff.manual_seed(k)  # (one generator for both: the same draws for each)
        expected = eager(x).data
        autodiff.manual_seed(k)
        np.testing.assert_allclose(compiled(x).data, expected, rtol=1e-12)
        np.testing.assert_allclose(w2.data, w1.data, rtol=1e-12)
    assert compiled.traces == 1


def test_a_one_element_index_array_is_an_argument():
    w = Tensor(np.arange(5.0), requires_grad=True)

    def step(idx):
        w.grad = None
        loss = (w[idx] * 10.0).sum()
        loss.backward()
        return loss
    compiled = autodiff.compile(step)
    for idx in (np.array([0]), np.array([3]), np.array([4])):
        assert float(compiled(idx).data) == 10.0 * idx[0]
        np.testing.assert_array_equal(w.grad.data, 10.0 * (np.arange(5) == idx[0]))
    assert compiled.traces == 1


def test_a_detached_gradient_of_a_leaf_made_in_the_step_follows_a_second_backward():
    def step(xb):
        xt = Tensor(xb, requires_grad=True)
        (xt * xt).sum().backward()
        d = xt.grad.detach()
        first = (d * 1.0).sum()
        (xt * 3.0).sum().backward()  # adds into xt.grad in place: d sees it
        return first, (d * 1.0).sum()
    compiled = autodiff.compile(step)
    for k in range(3):
        xb = np.arange(3.0) + k
        expected = [float(t.data) for t in step(xb)]
        assert [float(t.data) for t in compiled(xb)] == expected
    assert compiled.traces == 1


@pytest.mark.parametrize("how", ["detach", "copy"])
def test_a_seed_computed_in_the_step_is_the_replays_own(how):
    # Backprop in two stages: the second backward's seed is the first's gradient of a
    # cut-off copy of h. A repeated batch must not replay the first call's seed.
    def make():
        w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)

        def step(x):
            w.grad = None
            h = w * Tensor(x)
            z = h.detach().requires_grad_() if how == "detach" else Tensor(
                h.data, requires_grad=True)
            loss = (z ** 2).sum()
            loss.backward()
            h.backward(z.grad)  # d loss / d w = 2 h x
            with autodiff.no_grad():
                w.sub_(w.grad, alpha=0.1)
            return loss
        return w, step
    (w1, eager), (w2, step) = make(), make()
    compiled = autodiff.compile(step)
    x = np.ones(3)
    for _ in range(3):
        np.testing.assert_allclose(compiled(x).data, eager(x).data, rtol=1e-12)
        np.testing.assert_allclose(w2.data, w1.data, rtol=1e-12)
    assert compiled.traces == 1


def test_a_tensor_argument_that_requires_grad_gets_its_own_gradient():
    def step(x):
        x.grad = None
        loss = (x * x).sum()
        loss.backward()
        return loss
    compiled = autodiff.compile(step)
    xs = [Tensor(np.arange(3.0) + k, requires_grad=True) for k in range(3)]
    for x in xs:
        compiled(x)
    for x in xs:
        np.testing.assert_array_equal(x.grad.data, 2 * x.data)
    # without the reset inside the step, each call adds to the argument's .grad, as eagerly
    accumulate = autodiff.compile(lambda x: (x * x).sum().backward())
    y = Tensor(np.ones(2), requires_grad=True)
    for _ in range(3):
        accumulate(y)
    np.testing.assert_array_equal(y.grad.data, [6.0, 6.0])
    assert compiled.traces == 1 and accumulate.traces == 1


@pytest.mark.parametrize("root", ["reshape", "sum"])
def test_a_leaf_gradient_changed_in_place_changes_nothing_else(root):
    # The gradient of a leaf made in the step is a view of the seed (reshape) or a
    # read-only broadcast (sum) when it arrives: halving it in place must neither fail
    # nor halve the seed of later replays.
    def step(xb):
        xt = Tensor(xb, requires_grad=True)
        if root == "reshape":
            xt.reshape(-1).backward(np.ones(6))
        else:
            xt.sum().backward()
        xt.grad.mul_(0.5)
        return xt.grad * 1.0
    compiled = autodiff.compile(step)
    for k in range(4):
        np.testing.assert_array_equal(compiled(np.full((2, 3), float(k))).data,
                                      np.full((2, 3), 0.5))


def _masked_step(w, opt, late=False):
    def step(x):
        opt.zero_grad()
        if late:  # an update first, then a mask of the moved weights
            (w * Tensor(x)).sum().backward()
            opt.step()
            opt.zero_grad()
        h = w * Tensor(x)
        picked = h[h > 0]
        # (picked.shape[0] is a Python int of the trace: right only for the trace's count)
        loss = (picked ** 2).sum() / picked.shape[0] - h.sum()
        loss.backward()
        opt.step()
        return loss
    return step


def test_a_mask_computed_in_the_step_follows_the_weights():
    runs = []
    for _ in range(2):
        w = Tensor(np.array([1.0, -0.2, 0.3, -0.05, 0.4]), requires_grad=True)
        runs.append((w, _masked_step(w, nn.optim.SGD([w], lr=0.5))))
    (w1, eager), (w2, step) = runs
    compiled = autodiff.compile(step)
    for _ in range(5):
        np.testing.assert_allclose(compiled(np.ones(5)).data, eager(np.ones(5)).data,
                                   rtol=1e-12)
        np.testing.assert_allclose(w2.data, w1.data, rtol=1e-12)
    assert compiled.traces == 2  # one per number of weights above zero (2, then 5)


def test_a_mask_argument_with_another_count_traces_again():
    w = Tensor(np.arange(1.0, 7.0), requires_grad=True)

    def step(mask):
        w.grad = None
        picked = w[mask]
        loss = picked[None].expand(2, -1).mean() * picked.shape[0]
        loss.backward()
        return loss
    compiled = autodiff.compile(step)
    masks = [np.arange(6) % 2 == 0, np.arange(6) < 2, np.arange(6) % 2 == 1]
    for mask in masks + masks:
        assert float(compiled(mask).data) == float(step(mask).data)
    assert compiled.traces == 2  # counts 3, 2, 3


def test_a_mask_whose_count_changes_after_an_update_is_refused():
    w = Tensor(np.array([1.0, -0.2, 0.3, -0.05, 0.4]), requires_grad=True)
    compiled = autodiff.compile(_masked_step(w, nn.optim.SGD([w], lr=0.5), late=True))
    compiled(np.ones(5))
    with pytest.raises(CompileError, match="boolean mask computed in the step selects"):
        for _ in range(4):
            compiled(np.ones(5))


@pytest.mark.parametrize("index", ["max_dim", "argmax_accuracy", "where_rows", "any"])
def test_indices_and_flags_computed_in_the_step_follow_the_weights(index):
    X = np.random.default_rng(1).normal(size=(6, 4))
    labels = np.array([0, 1, 2, 0, 1, 2])

    def run(compiled):
        w = Tensor(np.random.default_rng(5).normal(size=(4, 3)), requires_grad=True)

        def step(x):
            w.grad = None
            h = Tensor(x) @ w
            if index == "max_dim":
                loss = h.max(1)[0].sum()
            elif index == "argmax_accuracy":
                right = (h.argmax(1) == Tensor(labels)).float()
                loss = (h.sum(1) * right).sum()
            elif index == "where_rows":
                rows, cols = autodiff.where(h > 0)
                loss = h[rows, cols].sum()
            else:
                loss = h.sum() * (h > 1).any().float()
            loss.backward()
            with autodiff.no_grad():
                w.sub_(w.grad, alpha=0.1)
            return loss
        f = autodiff.compile(step) if compiled else step
        return [float(f(X).data) for _ in range(5)]
    np.testing.assert_allclose(run(True), run(False), rtol=1e-12)


def test_the_callers_array_is_not_changed_by_an_in_place_change_of_its_copy():
    def step(x):
        t = Tensor(x)
        t.mul_(2.0)
        t[t > 3] = 0.0
        return (t * 1.0).sum()
    compiled = autodiff.compile(step)
    x = np.array([[1.0, 2.0, 3.0], [0.5, 1.0, 1.5]])
    for _ in range(3):
        assert float(compiled(x).data) == 2.0 + 1.0 + 2.0 + 3.0
    np.testing.assert_array_equal(x, [[1.0, 2.0, 3.0], [0.5, 1.0, 1.5]])


def test_a_second_backward_that_misses_a_leaf_of_the_first():
    # (a GAN's two losses: the second reaches only one of the two parameters)
    a, b = (Tensor(np.ones(3), requires_grad=True) for _ in range(2))

    def step(x):
        a.grad = b.grad = None
        (a * b * Tensor(x)).sum().backward()
        (a * Tensor(x)).sum().backward()
        with autodiff.no_grad():
            a.sub_(a.grad, alpha=0.1)
            b.sub_(b.grad, alpha=0.1)
        return a * 1.0
    compiled = autodiff.compile(step)
    expected = []
    a0, b0 = np.ones(3), np.ones(3)
    x = np.arange(3.0)
    for _ in range(3):
        ga, gb = b0 * x + x, a0 * x
        a0, b0 = a0 - 0.1 * ga, b0 - 0.1 * gb
        expected.append(a0)
        np.testing.assert_allclose(compiled(x).data, a0, rtol=1e-12)


def test_a_new_trace_after_dropout_leaves_the_random_stream_as_eagerly():
    # The replay draws its dropout masks first; when a mask of another count sends it to
    # a new trace, the draws are given back.
    def run(compiled):
        autodiff.manual_seed(0)
        w = Tensor(np.ones(6), requires_grad=True)

        def step(x, mask):
            w.grad = None
            h = nn.functional.dropout(w * Tensor(x), 0.5, True)
            loss = h[mask].sum() + h[h > 4].sum()  # (the second count is known late)
            loss.backward()
            return loss
        f = autodiff.compile(step) if compiled else step
        masks = [np.arange(6) < 3, np.arange(6) < 3, np.arange(6) < 5, np.arange(6) < 3]
        return [float(f(np.arange(6.0), m).data) for m in masks]
    assert run(True) == run(False)


def test_a_buffer_made_in_the_step_and_changed_in_place_starts_afresh_at_every_call():
    w = Tensor(np.ones(3), requires_grad=True)

    def step(x):
        w.grad = None
        buf = Tensor(np.zeros(3))
        buf.add_(Tensor(x))
        buf.mul_(2.0)
        loss = (w * buf).sum()
        loss.backward()
        return loss
    compiled = autodiff.compile(step)
    for k in range(3):
        x = np.arange(3.0) + k
        assert float(compiled(x).data) == float(step(x).data)
        assert float(compiled(x).data) == float(step(x).data)  # (a replay: same contents)


def test_batch_norm_trains_as_eagerly_with_its_running_statistics():
    # The batch's statistics come from the replay's own input (repeated batches: the
    # trace's were once replayed), the running ones move at every replay, and a compiled
    # eval step reads them as they are now.
    def run(compiled):
        autodiff.manual_seed(0)
        m = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
        opt = nn.optim.Adam(m.parameters(), lr=0.05)
        step = _mse_step(m, opt)

        def evaluate(x):
            return m(Tensor(x)).sum()
        train = autodiff.compile(step) if compiled else step
        test = autodiff.compile(evaluate) if compiled else evaluate
        r = np.random.default_rng(2)
        batches = [(r.normal(size=(8, 4)), r.normal(size=(8, 1))) for _ in range(2)]
        out = []
        for _ in range(3):
            m.train()
            out += [float(train(x, y).data) for x, y in batches]
            m.eval()
            out.append(float(test(batches[0][0]).data))
        return out, m[1].running_mean.data.copy(), m[1].running_var.data.copy(), getattr(
            train, "traces", 1)
    (eager, mean1, var1, _), (compiled, mean2, var2, traces) = run(False), run(True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-12)
    np.testing.assert_allclose(mean2, mean1, rtol=1e-12)
    np.testing.assert_allclose(var2, var1, rtol=1e-12)
    assert traces == 1


def test_a_seed_of_another_dtype_taken_from_the_step_follows_it():
    X = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)

    def run(compiled):
        w = Tensor(np.random.default_rng(5).normal(size=(4, 3)).astype(np.float32),
                   requires_grad=True)

        def step(x):
            w.grad = None
            h = Tensor(x) @ w
            z = h.detach().astype(np.float64).detach().requires_grad_()
            loss = (z ** 3).sum()
            loss.backward()
            h.backward(z.grad)  # (float64 into float32: cast by backward)
            with autodiff.no_grad():
                w.sub_(w.grad, alpha=0.01)
            return loss
        f = autodiff.compile(step) if compiled else step
        return [float(f(X).data) for _ in range(4)]
    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_gradient_clipping_inside_the_step_is_replayed(clip):
    def run(compiled):
        m, opt = _model(np.float64, "sgd")

        def step(x, y):
            opt.zero_grad()
            loss = ((m(Tensor(x)) - Tensor(y)) ** 2).sum() * 50.0
            loss.backward()
            if clip == "norm":
                norm = nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            else:
                nn.utils.clip_grad_value_(m.parameters(), 0.01)
                norm = loss * 0.0
            opt.step()
            return loss, norm
        f = autodiff.compile(step) if compiled else step
        xs, ys = _batches(np.float64)
        out = [float(t.data) for _ in range(2) for x, y in zip(xs, ys) for t in f(x, y)]
        return out, [p.data.copy() for p in m.parameters()]
    (a, pa), (b, pb) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    for p, q in zip(pa, pb):
        np.testing.assert_allclose(q, p, rtol=1e-12)


def test_switching_train_and_eval_between_calls_of_one_step():
    # Dropout and batch norm act differently in eval mode: each mode gets its own trace.
    def run(compiled):
        autodiff.manual_seed(0)
        m = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 1))

        def forward(x):
            return m(Tensor(x)).sum()
        f = autodiff.compile(forward) if compiled else forward
        x = np.random.default_rng(3).normal(size=(4, 5))
        out = []
        for mode in (True, False, True, False):
            m.train(mode)
            autodiff.manual_seed(1)
            out.append(float(f(x).data))
        return out, m[1].running_mean.data.copy(), getattr(f, "traces", 2)
    (a, ma, _), (b, mb, traces) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    np.testing.assert_allclose(mb, ma, rtol=1e-12)
    assert traces == 2


def test_a_soft_target_computed_in_the_step_follows_the_teacher():
    def run(compiled):
        autodiff.manual_seed(0)
        student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
        opt = nn.optim.SGD(list(student.parameters()) + list(teacher.parameters()), lr=0.5)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)

        def step(x):
            opt.zero_grad()
            target = teacher(Tensor(x)).softmax(axis=1).detach()
            loss = loss_fn(student(Tensor(x)), target) + (teacher(Tensor(x)) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        f = autodiff.compile(step) if compiled else step
        x = np.random.default_rng(4).normal(size=(5, 4))
        return [float(f(x).data) for _ in range(4)]
    np.testing.assert_allclose(run(True), run(False), rtol=1e-12)


def test_labels_computed_in_the_step_are_refused():
    m = nn.Linear(4, 3)

    def step(x):
        logits = m(Tensor(x))
        loss = nn.functional.cross_entropy(logits, logits.argmax(1))  # (pseudo-labels)
        loss.backward()
        return loss
    with pytest.raises(CompileError, match="that the step computed"):
        autodiff.compile(step)(np.ones((5, 4)))


def test_an_embedding_step_traces_once_for_every_batch_of_indices():
    # The indices are checked and copied again at each replay (so a bad one raises as
    # eagerly); whether a batch hits the padding row is part of the plan's structure.
    def run(compiled):
        autodiff.manual_seed(0)
        emb, head = nn.Embedding(7, 3, padding_idx=0), nn.Linear(3, 1)
        opt = nn.optim.SGD(list(emb.parameters()) + list(head.parameters()), lr=0.3)

        def step(idx):
            opt.zero_grad()
            loss = (head(emb(idx)) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        f = autodiff.compile(step) if compiled else step
        batches = [np.array([1, 2, 3]), np.array([4, 0, 6]), np.array([5, 5, 1]),
                   np.array([0, 2, 2])]
        out = [float(f(b).data) for _ in range(2) for b in batches]
        with pytest.raises(IndexError, match="out of range"):
            f(np.array([1, 9, 2]))
        return out, emb.weight.data.copy(), getattr(f, "traces", 2)
    (a, wa, _), (b, wb, traces) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    np.testing.assert_allclose(wb, wa, rtol=1e-12)
    assert traces == 2  # with and without a padding index in the batch


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_batch_norm_with_a_cumulative_average_replays_its_factor(momentum):
    def run(compiled):
        bn = nn.BatchNorm1d(2, momentum=momentum)
        f = autodiff.compile(lambda x: bn(Tensor(x)).sum()) if compiled else (
            lambda x: bn(Tensor(x)).sum())
        for k in range(4):
            f(np.arange(8.0).reshape(4, 2) * (k + 1))
        return bn.running_mean.data.copy(), bn.running_var.data.copy()
    for a, b in zip(run(False), run(True)):
        np.testing.assert_allclose(b, a, rtol=1e-12)


def test_an_embedding_with_max_norm_renormalises_at_every_replay():
    def run(compiled):
        autodiff.manual_seed(0)
        emb = nn.Embedding(4, 2, max_norm=1.0)
        opt = nn.optim.SGD(emb.parameters(), lr=1.0)

        def step(idx):
            opt.zero_grad()
            loss = -emb(idx).sum()
            loss.backward()
            opt.step()
            return loss
        f = autodiff.compile(step) if compiled else step
        out = [float(f(np.array([0, 1])).data) for _ in range(3)]
        out += [float(f(np.array([2, 2])).data) for _ in range(2)]
        return out, emb.weight.data.copy()
    (a, wa), (b, wb) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    np.testing.assert_allclose(wb, wa, rtol=1e-12)


def test_freezing_a_layer_between_calls_picks_another_plan():
    def run(compiled):
        m, opt = _model(np.float64, "sgd")
        step = _mse_step(m, opt)
        f = autodiff.compile(step) if compiled else step
        xs, ys = _batches(np.float64)
        out = []
        for k in range(6):
            for p in m[0].parameters():
                p.requires_grad_(k % 3 != 1)  # (frozen at calls 1 and 4)
            out.append(float(f(xs[k % 3], ys[k % 3]).data))
        return out, [p.data.copy() for p in m.parameters()], getattr(f, "traces", 2)
    (a, pa, _), (b, pb, traces) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    for p, q in zip(pa, pb):
        np.testing.assert_allclose(q, p, rtol=1e-12)
    assert traces == 2


def test_a_trainer_objects_model_is_guarded_and_its_mode_followed():
    class Trainer:
        def __init__(self):
            autodiff.manual_seed(0)
            self.model = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), nn.Linear(6, 1))
            self.opt = nn.optim.SGD(self.model.parameters(), lr=0.1)

        def step(self, x):
            self.opt.zero_grad()
            loss = (self.model(Tensor(x)) ** 2).mean()
            loss.backward()
            self.opt.step()
            return loss
    a, b = Trainer(), Trainer()
    compiled = autodiff.compile(b.step)
    x = np.random.default_rng(0).normal(size=(4, 5))
    for mode in (True, False, True, False):
        a.model.train(mode)
        b.model.train(mode)
        autodiff.manual_seed(7)
        expected = float(a.step(x).data)
        autodiff.manual_seed(7)
        assert float(compiled(x).data) == expected
    b.model[2] = nn.Linear(6, 1)  # (a replaced layer: the plans would update the old one)
    with pytest.raises(CompileError, match="parameters or buffers of Sequential changed"):
        compiled(x)


def test_a_gan_step_that_toggles_requires_grad_inside_replays_it():
    def run(compiled):
        autodiff.manual_seed(0)
        G, D = nn.Linear(2, 2), nn.Linear(2, 1)
        opt_g, opt_d = nn.optim.SGD(G.parameters(), lr=0.1), nn.optim.SGD(D.parameters(), lr=0.1)

        def g_step(z):
            G.requires_grad_(True)
            D.requires_grad_(False)
            opt_g.zero_grad()
            loss = -D(G(Tensor(z))).mean()
            loss.backward()
            opt_g.step()
            return loss

        def d_step(z, real):
            G.requires_grad_(False)
            D.requires_grad_(True)
            opt_d.zero_grad()
            loss = D(G(Tensor(z))).mean() - D(Tensor(real)).mean()
            loss.backward()
            opt_d.step()
            return loss
        gs, ds = (autodiff.compile(g_step), autodiff.compile(d_step)) if compiled else (
            g_step, d_step)
        rng = np.random.default_rng(1)
        out = []
        for _ in range(4):
            z, real = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
            out += [float(ds(z, real).data), float(gs(z).data)]
        flags = [p.requires_grad for p in list(G.parameters()) + list(D.parameters())]
        return out, flags, getattr(gs, "traces", 1) + getattr(ds, "traces", 1)
    (a, fa, _), (b, fb, traces) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    # (d_step's first trace met D trainable as made; later calls meet it frozen by g_step)
    assert fa == fb and traces == 3


def test_a_parameter_returned_from_the_step_is_the_parameter_itself():
    m, opt = _model(np.float64, "sgd")

    def step(x, y):
        _mse_step(m, opt)(x, y)
        return m[0].weight
    compiled = autodiff.compile(step)
    xs, ys = _batches(np.float64)
    for x, y in zip(xs, ys):
        w = compiled(x, y)
        assert w is m[0].weight and w.grad is not None


def test_a_model_replaced_on_the_trainer_is_traced_again():
    class Trainer:
        def __init__(self, model):
            self.model = model
            self.opt = nn.optim.SGD(model.parameters(), lr=0.1)

        def step(self, x, y):
            return _mse_step(self.model, self.opt)(x, y)

    def run(compiled):
        autodiff.manual_seed(0)
        trainer = Trainer(nn.Linear(5, 3))
        f = autodiff.compile(trainer.step) if compiled else trainer.step
        xs, ys = _batches(np.float64)
        out = [float(f(xs[0], ys[0]).data), float(f(xs[1], ys[1]).data)]
        trainer.__init__(nn.Linear(5, 3))  # a new model and optimizer on the same trainer
        out += [float(f(x, y).data) for x, y in zip(xs, ys)]
        return out, trainer.model.weight.data.copy()
    (a, wa), (b, wb) = run(False), run(True)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    np.testing.assert_allclose(wb, wa, rtol=1e-12)


def test_a_replays_result_that_required_grad_says_it_has_no_graph():
    w = Tensor(np.ones(3), requires_grad=True)
    scaled = autodiff.compile(lambda x: w * Tensor(x) * 2.0)
    first = scaled(np.arange(3.0))
    first.sum().backward()  # the trace's result: the eager graph
    np.testing.assert_array_equal(w.grad.data, [0.0, 2.0, 4.0])
    again = scaled(np.arange(3.0))
    assert again.requires_grad
    np.testing.assert_array_equal(again.data, first.data)
    with pytest.raises(CompileError, match="a replay keeps no graph"):
        again.sum().backward()


def test_an_item_assignment_at_an_argument_index_is_replayed():
    w = Tensor(np.arange(5.0), requires_grad=True)

    def step(idx):
        w.grad = None
        (w * w).sum().backward()
        with autodiff.no_grad():
            w[idx] = 0.0
        return w * 1.0
    compiled = autodiff.compile(step)
    for idx, expected in ((np.array([0, 1]), [0, 0, 2, 3, 4]),
                          (np.array([2, 3]), [0, 0, 0, 0, 4])):
        np.testing.assert_array_equal(compiled(idx).data, expected)


def test_a_replaced_nested_parameter_or_buffer_and_a_model_held_by_an_optimizer_are_seen():
    autodiff.manual_seed(0)
    inner = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model = nn.Sequential(inner, nn.Linear(4, 1))
    opt = nn.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = (model(Tensor(x)) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    x = np.random.default_rng(0).normal(size=(5, 3))
    f = autodiff.compile(step)
    f(x), f(x)
    inner[0].weight = nn.Parameter(np.ones((4, 3)))  # two levels down
    with pytest.raises(CompileError, match="parameters or buffers of Sequential changed"):
        f(x)
    f = autodiff.compile(step)
    f(x), f(x)
    inner[1].running_mean = Tensor(np.zeros(4))  # a buffer rebound
    with pytest.raises(CompileError, match="parameters or buffers of Sequential changed"):
        f(x)

    # A model reachable only through a custom attribute of an optimizer is still found:
    # its train/eval mode decides the plan.
    drop = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    holder = nn.optim.SGD(drop.parameters(), lr=0.1)
    holder.model = drop

    def run(x):
        return holder.model(Tensor(x)).sum()
    g = autodiff.compile(run)
    autodiff.manual_seed(1)
    g(x)
    drop.eval()
    assert float(g(x).data) == float(drop(Tensor(x)).sum().data)


def test_a_returned_tensor_argument_keeps_its_gradient_as_eagerly():
    w = Tensor(np.full((2, 2), 0.5), requires_grad=True)

    def step(xt):
        (xt @ w).tanh().sum().backward()
        return xt

    f = autodiff.compile(step)
    for v in (1.0, 2.0, 3.0):
        xt = Tensor(np.full((1, 2), v), requires_grad=True)
        r = f(xt)
    assert xt.grad is not None
    assert r.grad is not None          # eagerly r is xt, so r.grad is xt.grad
    np.testing.assert_array_equal(r.grad.data, xt.grad.data)


def test_an_in_place_methods_keyword_array_follows_the_call():
    # (a keyword's array is the call's, as a positional one is: not the trace's x)
    def run(compiled):
        p = Tensor(np.full(3, -5.0))

        def step(x):
            with autodiff.no_grad():
                p.clamp_(min=x)
            return (Tensor(x) * 2.0).sum()

        f = autodiff.compile(step) if compiled else step
        for v in (0.1, 0.2, 0.3):
            f(np.full(3, v))
        return p.data.copy()

    np.testing.assert_array_equal(run(True), run(False))  # eager: 0.3 everywhere


def test_fill_with_a_one_element_tensor_replays():
    # (the replay hands an in-place method the tensors the call gave it, not bare arrays)
    def step(x, s):
        y = x * 2.0
        y.fill_(s)
        return y.sum()

    f = autodiff.compile(step)
    for v in (0.0, 1.0, 2.0):
        assert f(Tensor(np.ones(3)), Tensor(np.array(v))).item() == 3 * v


def test_an_in_place_change_through_detach_reaches_the_argument():
    def step(x):
        x.detach().add_(1.0)
        return (x * 1.0).sum()

    def run(compiled):
        f = autodiff.compile(step) if compiled else step
        out = []
        for _ in range(3):
            x = Tensor(np.zeros(3))
            out.append((f(x).item(), x.data.copy()))
        return out

    eager, replayed = run(False), run(True)
    for (a, xa), (b, xb) in zip(eager, replayed):
        assert a == b == 3.0
        np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("through", ["argument", "detach", "view", "parameter view"])
def test_a_replayed_in_place_change_counts_in_the_version_of_what_it_changed(through):
    # eagerly a later backward through the older values raises; a replay must too
    w = Tensor(np.ones((2, 3)), requires_grad=True)

    def step(x):
        with autodiff.no_grad():
            if through == "argument":
                x.add_(1.0)
            elif through == "detach":
                x.detach().mul_(2.0)
            elif through == "view":
                x[0].zero_()
            else:
                w[0].mul_(0.5)
        return (x * 1.0).sum()

    f = autodiff.compile(step)
    for call in range(3):
        a = Tensor(np.ones((2, 3)), requires_grad=True)
        b = a * w                   # saves w
        x = b.detach()
        c = (b * x).sum()           # saves x (sharing b's counter)
        d = (b * b).sum()
        f(x)
        with pytest.raises(ModifiedInPlaceError):
            (c if through != "parameter view" else d).backward()
