"""micrograd habits (API.md Revision 2): code written for micrograd 0.1.0 runs on our
`Value` and `nn.Neuron/Layer/MLP` by changing imports.

- `Value._op` is micrograd's op string and `_prev` its set of children, so micrograd's
  graph-drawing code (trace the graph through `_prev`, name op nodes `uid + n._op`) works;
- `random.seed(n)` before building a scalar model gives micrograd's own initial weights;
- micrograd's demo training program (moons, MLP(2, [16, 16, 1]), max-margin loss with L2
  regularisation, SGD with a decaying rate) gives the same losses and accuracies, step by step.

Comparisons with micrograd itself skip cleanly where it is not installed; the rest runs always.
"""

import collections
import gc
import random
import re
import shutil

import pytest

import autodiff
import nn
from autodiff import Value
from autodiff.ops import Op
from autodiff.value import affine

# ---------------------------------------------------------------------------
# Every op a Value can record, with the `_op` string it reports. micrograd's own
# vocabulary ('+', '*', '**k', 'ReLU') comes first; the rest are ops micrograd lacks.
# Each row: (primitive, how to make it from Values a and b, the expected `_op`).

RECORDERS = [
    ("add", lambda a, b: a + b, "+"),
    ("add_const", lambda a, b: a + 2, "+"),
    ("add_const", lambda a, b: 2 + a, "+"),
    ("add_const", lambda a, b: a - 2, "+"),       # x - c is x + (-c), as in micrograd
    ("add_const", lambda a, b: 1 - a, "+"),       # -x + 1, as micrograd's 1 + (-x)
    ("mul", lambda a, b: a * b, "*"),
    ("mul_const", lambda a, b: a * 3, "*"),
    ("mul_const", lambda a, b: 3 * a, "*"),
    ("pow_const", lambda a, b: a ** 2, "**2"),
    ("pow_const", lambda a, b: a ** 2.0, "**2.0"),  # the exponent as written (f'**{k}')
    ("pow_const", lambda a, b: a ** -1, "**-1"),
    ("pow_const", lambda a, b: a ** 0.5, "**0.5"),
    ("relu", lambda a, b: a.relu(), "ReLU"),
    ("sub", lambda a, b: a - b, "-"),
    ("div", lambda a, b: a / b, "/"),
    ("div", lambda a, b: a / 2, "/"),
    ("div", lambda a, b: 2 / a, "/"),
    ("pow", lambda a, b: a ** b, "**"),
    ("pow", lambda a, b: 2 ** a, "**"),
    ("neg", lambda a, b: -a, "neg"),
    ("exp", lambda a, b: a.exp(), "exp"),
    ("log", lambda a, b: a.log(), "log"),
    ("tanh", lambda a, b: a.tanh(), "tanh"),
    ("sigmoid", lambda a, b: a.sigmoid(), "sigmoid"),
    ("affine", lambda a, b: affine(Value(0.5), [a, b], [1.5, -2.0]), "affine"),
]
OP_STRING = {name: text for name, _, text in RECORDERS if name != "pow_const"}
POINT = (0.7, 1.3)   # a, b: inside every op's domain


def walk(root):
    """Every node reachable from root through `_prev`, micrograd's way."""
    seen, stack = set(), [root]
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack.extend(v._prev)
    return seen


@pytest.mark.parametrize("name, make, text", RECORDERS,
                         ids=[f"{n}:{t}" for n, _, t in RECORDERS])
def test_op_string_of_every_recorded_op(name, make, text):
    a, b = Value(POINT[0]), Value(POINT[1])
    out = make(a, b)
    assert out._prim.name == name
    assert out._op == text and type(out._op) is str
    out.backward()           # the string survives the release of the saved buffers
    assert out._op == text


def test_leaves_have_the_empty_op_string():
    a = Value(1.0)
    assert a._op == "" and a._prev == set()
    with autodiff.no_grad():  # nothing recorded: a leaf, as micrograd would never make it
        c = a * 2
    assert c._op == "" and c._prev == set()
    with pytest.raises(AttributeError):
        a._op = "+"        # derived from the recorded primitive, not a field to overwrite


def test_the_table_lists_every_op_a_value_can_record():
    # Every primitive value.py builds nodes with ...
    used = {v.name for v in vars(autodiff.value).values() if isinstance(v, Op)}
    assert used == {name for name, _, _ in RECORDERS}
    # ... and every primitive a differentiable gradient (create_graph) records, which
    # the vjps build from operators on Values: each is in the table, with its string.
    a, b = Value(POINT[0]), Value(POINT[1])
    seen = set()
    for name, make, _ in RECORDERS:
        out = make(a, b)
        grads = autodiff.grad(out, [a, b], create_graph=True, allow_unused=True)
        for g in grads:
            if g is None:
                continue
            second = autodiff.grad(g, [a, b], create_graph=True, allow_unused=True)
            for node in set().union(*(walk(r) for r in (g, *second) if r is not None)):
                if node._prim is None:
                    continue
                seen.add(node._prim.name)
                if node._prim.name != "pow_const":
                    assert node._op == OP_STRING[node._prim.name], node._prim.name
                else:
                    assert node._op == f"**{node._kw['c']}"
    assert seen <= used, seen - used


def test_prev_is_the_set_of_child_values():
    a, b = Value(2.0), Value(3.0)
    c = a * b
    assert type(c._prev) is set and c._prev == {a, b}
    assert all(type(v) is Value for v in c._prev)
    assert (a * a)._prev == {a}            # a set: the repeated child once, as in micrograd
    assert any(v is a for v in (a + 1)._prev)
    n = nn.Neuron(2)
    out = n([1.0, Value(2.0)])            # number inputs become leaf Values
    (pre,) = out._prev
    assert pre._op == "affine" and len(pre._prev) == 5
    assert all(type(v) is Value for v in pre._prev) and set(n.parameters()) <= pre._prev


@pytest.mark.parametrize("make", [
    lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a + 2, lambda a, b: 2 + a,
    lambda a, b: a * 3, lambda a, b: 3 * a, lambda a, b: a - 2, lambda a, b: 1 - a,
    lambda a, b: a ** 2, lambda a, b: a ** 3, lambda a, b: a ** 2.0, lambda a, b: a ** -1,
    lambda a, b: a ** 0.5, lambda a, b: a.relu(), lambda a, b: (a * -1).relu(),
    lambda a, b: a,
])
def test_op_strings_equal_micrograds(make):
    engine = pytest.importorskip("micrograd.engine")
    ours = make(Value(POINT[0]), Value(POINT[1]))
    theirs = make(engine.Value(POINT[0]), engine.Value(POINT[1]))
    assert ours._op == theirs._op
    assert ours.data == pytest.approx(theirs.data, rel=1e-15)


# ---------------------------------------------------------------------------
# micrograd's graph-drawing code from its notebooks, ported: it reads n._op, n._prev,
# n.data and n.grad, and names an op node by string concatenation uid + n._op.

def trace(root):
    nodes, edges, stack = set(), set(), [root]
    while stack:
        v = stack.pop()
        if v in nodes:
            continue
        nodes.add(v)
        for child in v._prev:
            edges.add((child, v))
            stack.append(child)
    return nodes, edges


def draw_dot(root):
    graphviz = pytest.importorskip("graphviz")
    dot = graphviz.Digraph(format="svg", graph_attr={"rankdir": "LR"})
    nodes, edges = trace(root)
    for n in nodes:
        uid = str(id(n))
        dot.node(name=uid, label="{ data %.4f | grad %.4f }" % (n.data, n.grad), shape="record")
        if n._op:
            dot.node(name=uid + n._op, label=n._op)
            dot.edge(uid + n._op, uid)
    for child, parent in edges:
        dot.edge(str(id(child)), str(id(parent)) + parent._op)
    return dot


NODE_LINE = re.compile(r'^\t("?)(?P<name>[^"\s]+)\1 \[label=(?P<q>"?)(?P<label>.*?)(?P=q)'
                       r'(?P<record> shape=record)?\]$')
EDGE_LINE = re.compile(r'^\t("?)(?P<tail>[^"\s]+)\1 -> ("?)(?P<head>[^"\s]+)\3$')


def parse_dot(source):
    """(nodes, edges) of a DOT text, with every id replaced by what the node shows, so
    two drawings of equal graphs compare equal: record nodes by their label, op nodes by
    their record's label and the op."""
    nodes, edges = {}, []
    for line in source.splitlines():
        if m := NODE_LINE.match(line):
            nodes[m["name"]] = (m["label"], bool(m["record"]))
        elif m := EDGE_LINE.match(line):
            edges.append((m["tail"], m["head"]))
        else:
            assert line in ("digraph {", "\tgraph [rankdir=LR]", "}"), line
    records = {name: label for name, (label, rec) in nodes.items() if rec}

    def show(name):
        if name in records:
            return records[name]
        uid = re.match(r"\d+", name)[0]          # an op node: uid + n._op
        assert nodes[name][0] == name[len(uid):]  # labelled with that same op string
        return records[uid] + " op " + nodes[name][0]

    assert all(t in nodes and h in nodes for t, h in edges)  # no edge to an undrawn node
    return (collections.Counter(show(n) for n in nodes),
            collections.Counter((show(t), show(h)) for t, h in edges))


def op_counts(nodes):
    """How many op nodes of each op string a parsed drawing has."""
    counts = collections.Counter()
    for shown, n in nodes.items():
        if " op " in shown:
            counts[shown.split(" op ")[1]] += n
    return counts


def lecture_neuron(V):
    """micrograd's vocabulary only, every operand a Value (micrograd wraps numbers in
    leaves of their own, we keep them on the node: see test_prev_is_the_set_...)."""
    x1, x2, w1, w2, b = V(2.0), V(0.0), V(-3.0), V(1.0), V(6.8813735870195432)
    o = (x1 * w1 + x2 * w2 + b).relu()
    return (o * (x1 * x1)) ** 2


def test_micrograds_draw_dot_runs_on_ours_and_draws_the_same_graph():
    ours = lecture_neuron(Value)
    ours.backward()
    nodes, edges = parse_dot(draw_dot(ours).source)
    # 5 leaves and 8 results (x1*w1, x2*w2, their sum, + b, ReLU, x1*x1, the product,
    # **2), each result with its op node; an edge from each op node to its result and
    # one from each child (x1*x1 has one: _prev is a set) to the op node
    graph = walk(ours)
    results = [v for v in graph if v._op]
    assert (len(graph), len(results)) == (13, 8)
    assert sum(nodes.values()) == 13 + 8
    assert sum(edges.values()) == 8 + sum(len(v._prev) for v in graph) == 8 + 13
    assert op_counts(nodes) == {"*": 4, "+": 2, "ReLU": 1, "**2": 1}
    assert "{ data %.4f | grad %.4f }" % (ours.data, 1.0) in nodes
    engine = pytest.importorskip("micrograd.engine")
    theirs = lecture_neuron(engine.Value)
    theirs.backward()
    assert parse_dot(draw_dot(theirs).source) == (nodes, edges)


def test_draw_dot_names_our_other_ops():
    a, b = Value(0.7), Value(1.3)
    out = (a / b - a.exp()).tanh() + (-b).sigmoid() * a.log() + a ** b
    out.backward()
    dot = draw_dot(out)
    nodes, edges = parse_dot(dot.source)
    assert op_counts(nodes) == {"/": 1, "-": 1, "exp": 1, "tanh": 1, "neg": 1, "sigmoid": 1, "log": 1,
                   "*": 1, "+": 2, "**": 1}
    if shutil.which("dot"):               # and graphviz accepts the text
        assert b"<svg" in dot.pipe(format="svg")


def test_draw_dot_of_our_neuron_shows_the_fused_affine_node():
    n = nn.Neuron(3)
    out = n([1.0, -2.0, 0.5])
    out.backward()
    nodes, edges = parse_dot(draw_dot(out).source)
    assert op_counts(nodes) == {"affine": 1, "ReLU": 1}
    assert sum(edges.values()) == 2 + 1 + 7   # op -> result twice, affine -> ReLU, 7 inputs


# ---------------------------------------------------------------------------
# Seeded initial weights: micrograd draws random.uniform(-1, 1) per weight, layer by
# layer and neuron by neuron, and sets every bias to 0.

def weights_and_biases(model):
    neurons = ([model] if isinstance(model, nn.Neuron) else
               model.neurons if isinstance(model, nn.Layer) else
               [n for layer in model.layers for n in layer.neurons])
    return [w.data for n in neurons for w in n.w], [n.b.data for n in neurons]


@pytest.mark.parametrize("build, n_weights", [
    (lambda: nn.Neuron(5), 5), (lambda: nn.Layer(3, 4), 12),
    (lambda: nn.MLP(3, [4, 4, 1]), 12 + 16 + 4),
    (lambda: nn.MLP(2, [3, 1], activation="tanh"), 6 + 3),
])
def test_seeded_weights_are_pythons_uniform_draws_in_order(build, n_weights):
    random.seed(11)
    expected = [random.uniform(-1, 1) for _ in range(n_weights)]
    after = random.random()
    random.seed(11)
    model = build()
    weights, biases = weights_and_biases(model)
    assert weights == expected and set(biases) == {0.0}
    assert random.random() == after        # nothing else drawn from `random`


@pytest.mark.parametrize("seed", [0, 1337])
@pytest.mark.parametrize("build", [
    lambda m: m.Neuron(5), lambda m: m.Neuron(2, nonlin=False), lambda m: m.Layer(3, 4),
    lambda m: m.MLP(3, [4, 4, 1]), lambda m: m.MLP(2, [16, 16, 1]),
])
def test_random_seed_gives_micrograds_own_weights(seed, build):
    mg = pytest.importorskip("micrograd.nn")
    random.seed(seed)
    ours = build(nn)
    random.seed(seed)
    theirs = build(mg)
    assert [p.data for p in ours.parameters()] == [q.data for q in theirs.parameters()]
    assert repr(ours) == repr(theirs)


def test_mlp_3_4_4_1_after_random_seed_equals_micrograds_exactly():
    mg = pytest.importorskip("micrograd.nn")
    random.seed(1337)
    ours = nn.MLP(3, [4, 4, 1])
    random.seed(1337)
    theirs = mg.MLP(3, [4, 4, 1])
    assert len(ours.parameters()) == len(theirs.parameters()) == 41
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert p.data == q.data
    x = [2.0, 3.0, -1.0]
    out, ref = ours(x), theirs(x)
    assert out.data == pytest.approx(ref.data, rel=1e-14)
    out.backward()
    ref.backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert p.grad == pytest.approx(q.grad, rel=1e-13, abs=1e-15)


def test_manual_seed_seeds_python_random_and_keeps_seeding_numpy():
    autodiff.manual_seed(5)
    weights = weights_and_biases(nn.MLP(2, [3, 1]))
    autodiff.manual_seed(5)
    draws = [random.random() for _ in range(3)]
    tensor = nn.Linear(3, 2).weight.data.tolist()
    random.seed(5)
    assert [random.random() for _ in range(3)] == draws
    autodiff.manual_seed(5)
    assert [random.random() for _ in range(3)] == draws
    assert nn.Linear(3, 2).weight.data.tolist() == tensor    # the numpy generator too
    autodiff.manual_seed(5)
    assert weights_and_biases(nn.MLP(2, [3, 1])) == weights
    random.seed(5)
    assert weights_and_biases(nn.MLP(2, [3, 1])) == weights  # the same as random.seed alone
    with pytest.raises(ValueError, match="manual_seed"):
        autodiff.manual_seed(-1)
    mg = pytest.importorskip("micrograd.nn")
    autodiff.manual_seed(5)
    ours = nn.MLP(2, [3, 1])
    random.seed(5)
    assert [p.data for p in ours.parameters()] == [q.data for q in mg.MLP(2, [3, 1]).parameters()]


def test_a_bad_activation_draws_nothing():
    random.seed(3)
    state = random.getstate()
    with pytest.raises(ValueError, match="activation"):
        nn.Neuron(3, activation="swish")
    assert random.getstate() == state


# ---------------------------------------------------------------------------
# micrograd's demo notebook, as a program written for micrograd: it is handed the
# library's Value and nn modules and never looks at which library they come from.

def demo_loss(model, X, y, Value, alpha=1e-4):
    """SVM max-margin loss averaged over the data, plus alpha * sum(p**2); and accuracy."""
    scores = [model([Value(u), Value(v)]) for u, v in X]
    margins = [(1 + -yi * s).relu() for yi, s in zip(y, scores)]
    data_loss = sum(margins) * (1.0 / len(margins))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    right = sum((yi > 0) == (s.data > 0) for yi, s in zip(y, scores))
    return data_loss + reg_loss, right / len(y)


def train_demo(Value, mlp_module, X, y, steps):
    random.seed(1337)
    model = mlp_module.MLP(2, [16, 16, 1])
    history = []
    with autodiff.gc_paused():
        for k in range(steps):
            total, accuracy = demo_loss(model, X, y, Value)
            model.zero_grad()
            total.backward()
            learning_rate = 1.0 - 0.9 * k / 100
            for p in model.parameters():
                p.data -= learning_rate * p.grad
            history.append((total.data, accuracy))
            del total
            # micrograd's graphs hold reference cycles (each result and its _backward
            # closure; backward's recursive helper and its topo list), so they wait for
            # the collector; collect each step's here (the collector paused otherwise:
            # its automatic passes would walk every earlier step's graph again and again).
            gc.collect(0)
    return history, [p.data for p in model.parameters()]


# micrograd's demo trains on 100 moons; 40 keep this file to a few seconds (micrograd's
# cyclic garbage makes its every step cost a collection) and still train in 20 steps.
N_SAMPLES, STEPS = 40, 20


@pytest.fixture(scope="module")
def moons():
    X, labels = nn.data.make_moons(N_SAMPLES, noise=0.1, seed=1)
    return X.tolist(), (2 * labels - 1).tolist()   # labels in {-1, 1}, plain Python numbers


@pytest.fixture(scope="module")
def ours_trained(moons):
    return train_demo(Value, nn, *moons, STEPS)


def test_micrograd_demo_program_trains_on_ours(ours_trained):
    history, _ = ours_trained
    losses = [loss for loss, _ in history]
    assert len(history) == STEPS and all(type(loss) is float for loss in losses)
    assert losses[-1] < 0.5 * losses[0] and history[-1][1] >= 0.85  # well above chance


def test_micrograd_demo_trains_the_same_step_by_step(moons, ours_trained):
    engine = pytest.importorskip("micrograd.engine")
    mg = pytest.importorskip("micrograd.nn")
    ours, ours_params = ours_trained
    theirs, their_params = train_demo(engine.Value, mg, *moons, STEPS)
    for k, ((loss, acc), (ref_loss, ref_acc)) in enumerate(zip(ours, theirs)):
        assert loss == pytest.approx(ref_loss, rel=0, abs=1e-9), k
        assert acc == pytest.approx(ref_acc, rel=0, abs=1e-9), k
    assert len(ours) == len(theirs) == STEPS
    assert max(abs(p - q) for p, q in zip(ours_params, their_params)) < 1e-9
