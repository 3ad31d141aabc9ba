"""The explorer's views of one graph. Its groups (`autodiff.scope` blocks, nn module
calls) nest; the first view folds every outermost group into one node, and each group has
a view of its own in which it and its enclosing groups are open and every other group is
folded. Expanding a group in the page switches to its view, collapsing it to its parent's.

A group's outputs (members used outside it, or the root) stay drawn in every view, with
an edge from the group's node, so the values the lecture names (y, h, o) never hide; so do
leaves made outside the group, except the parameters of a folded module's own call and a
scalar MLP's weights that only folded groups read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..groups import module_paths, neuron_scopes, scope_name
from ...scope import scopes_of

# views made per graph at most (one graphviz layout each), and their nodes in all: deeper
# groups then do not expand (a batch of 100 samples repeats its loss's 600 nodes per view)
MAX_VIEWS = 200
LAYOUT_BUDGET = 40_000


@dataclass
class Fold:
    """One group: its scope, display name, member node indices and, among them, the
    outputs; the indices of the non-members its members read (its inputs)."""

    scope: object
    name: str
    parent: int | None
    members: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    inputs: list = field(default_factory=list)


@dataclass
class View:
    """One layout: the groups open in it (`expanded`); per node index the DOT node
    standing for it ('n3' itself, 'g1' a folded group); `via` output index -> the folded
    group that makes it."""

    expanded: frozenset
    rep: list  # (None: not drawn, a scalar weight read only inside folded groups)
    via: dict
    group: int | None = None  # the group this view opens (None: the first or the full view)
    weights: frozenset = frozenset()  # nodes drawn without edges into folded groups

    @property
    def size(self) -> int:
        return len(set(self.rep) - {None})


# Ungrouped nodes beyond this many (a long chain, a big sum nobody scoped) are cut into
# parts of PART_SIZE in creation order, so the first view folds them and each part opens
# on demand instead of one layout too big for graphviz and the page.
PARTS_ABOVE = 1000
PART_SIZE = 500


class _Part:
    """A group the explorer makes itself: a run of ungrouped nodes in creation order."""

    kind = "scope"
    parent = None
    depth = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def path(self) -> tuple:
        return (self,)


def _add_parts(order, scopes: dict) -> None:
    """Put the ungrouped nodes, when there are more than PARTS_ABOVE, into parts: the
    operations by creation, PART_SIZE each; a leaf joins the part of its first reader."""
    loose = [n for n in order if scopes.get(id(n)) is None]
    if len(loose) <= PARTS_ABOVE:
        return
    ops = sorted((n for n in loose if n._prim is not None), key=lambda n: -n._seq)
    count = -(-len(ops) // PART_SIZE)
    parts = [_Part(f"part {k + 1} of {count}: operations {k * PART_SIZE + 1:,}–"
                   f"{min((k + 1) * PART_SIZE, len(ops)):,}") for k in range(count)]
    for k, n in enumerate(ops):  # (creation order is a topological order, inputs first)
        scopes[id(n)] = parts[k // PART_SIZE]
        for p in n._parents:
            if p._prim is None and scopes.get(id(p)) is None:
                scopes[id(p)] = parts[k // PART_SIZE]


def find_groups(order, root: int, scalar_model=None) -> tuple[list, list]:
    """The groups of `order` (a topological order; `root` the index of its root) and,
    per node index, the chain of group indices that contain it, outermost first. A
    module's call is named by its path in the outermost module called ('0: Linear'); the
    calls of a scalar MLP (`scalar_model`) are found from the weights they read."""
    scopes = scopes_of(order)
    calls = neuron_scopes(order, scalar_model, nested=True, inputs=True)
    by_id = {id(n): n for n in order}
    for k, v in calls.items():
        if by_id[k]._prim is not None:
            scopes[k] = scopes.get(k) or v  # (a user's scope wins)
    kept = {id(s) for s in scopes.values()}
    for k, v in calls.items():  # a sample's input joins its call where that call was kept
        if by_id[k]._prim is None and id(v) in kept:
            scopes[k] = scopes.get(k) or v
    _add_parts(order, scopes)
    folds: list = []
    index: dict = {}
    paths_in: dict = {}

    def name(s) -> str:
        model = next((x.module for x in s.path() if x.kind == "module"), None)
        if model is None:
            return s.name
        if id(model) not in paths_in:
            paths_in[id(model)] = module_paths(model)
        return scope_name(s, paths_in[id(model)])

    def fold_of(s) -> int:
        if id(s) not in index:
            parent = fold_of(s.parent) if s.parent is not None else None
            index[id(s)] = len(folds)
            folds.append(Fold(s, name(s), parent))
        return index[id(s)]

    chains = []
    for n in order:
        s = scopes.get(id(n))
        chains.append([fold_of(x) for x in s.path()] if s is not None else [])
    # a module's parameters fold with its call, the innermost one that owns them, when the
    # calls owning them nest (a module called twice, as an RNN cell is, keeps them drawn)
    owners: dict = {}
    for j, f in enumerate(folds):
        module = f.scope.module if f.scope.kind == "module" else None
        for p in getattr(module, "parameters", lambda: ())():
            owners.setdefault(id(p), set()).add(j)
    for k, n in enumerate(order):
        owner = owners.get(id(n))
        if n._prim is None and not chains[k] and owner:
            path = _path(folds, max(owner, key=lambda j: folds[j].scope.depth))
            if owner <= set(path):
                chains[k] = path
    for k, chain in enumerate(chains):
        for j in chain:
            folds[j].members.append(k)
    position = {id(n): k for k, n in enumerate(order)}
    outputs = [set() for _ in folds]
    inputs = [set() for _ in folds]
    for k, n in enumerate(order):
        for p in n._parents:
            i = position[id(p)]
            if chains[i] != chains[k]:
                for j in set(chains[i]) - set(chains[k]):
                    outputs[j].add(i)       # read outside group j
                for j in set(chains[k]) - set(chains[i]):
                    inputs[j].add(i)        # read by group j from outside
    for j, f in enumerate(folds):
        f.outputs = [k for k in f.members if k in outputs[j] or k == root]
        f.inputs = sorted(inputs[j])
    return folds, chains


def parameter_names(folds) -> dict:
    """id(parameter) -> its name in the outermost module called ('0.weight')."""
    names = {}
    for f in folds:
        if f.parent is None and f.scope.kind == "module" and f.scope.module is not None:
            for name, p in getattr(f.scope.module, "named_parameters", lambda: ())():
                names.setdefault(id(p), name)
    return names


def _path(folds, j) -> list:
    chain = []
    while j is not None:
        chain.append(j)
        j = folds[j].parent
    return chain[::-1]


def foldable(fold, order) -> bool:
    """Whether folding `fold` hides anything: it holds an op that is not its output."""
    outputs = set(fold.outputs)
    return any(order[k]._prim is not None and k not in outputs for k in fold.members)


def make_views(order, folds, chains, *, max_size: int, full: bool = True,
               weights: frozenset = frozenset()) -> list:
    """The first view (outermost groups folded), one per foldable group, each group's
    before its inner groups' (up to MAX_VIEWS, and LAYOUT_BUDGET nodes in all), and (with `full`) the full view (every group open), leaving
    out views of more than `max_size` nodes (graphviz is slow on them and crashes on huge
    ones). `weights` (node indices: a scalar model's hundreds of weights, read by every
    sample) are drawn only by an open reader."""
    ok = [foldable(f, order) for f in folds]
    outputs = [set(f.outputs) for f in folds]
    position = {id(n): k for k, n in enumerate(order)}
    readers: dict = {k: [] for k in weights}  # a weight -> the nodes reading it
    for k, n in enumerate(order):
        for p in n._parents:
            i = position[id(p)]
            if i in weights:
                readers[i].append(k)

    def view(expanded: frozenset, group) -> View:
        rep, via = [], {}
        for k, chain in enumerate(chains):
            j = next((j for j in chain if j not in expanded and ok[j]), None)
            if j is not None and k in outputs[j] and order[k]._prim is not None:
                via[k] = j
            rep.append(f"n{k}" if j is None or k in outputs[j] else f"g{j}")
        for k, reading in readers.items():
            if rep[k] == f"n{k}" and all(rep[i][0] == "g" or i in via for i in reading):
                rep[k] = None  # read only inside folded groups (an output is made there)
        return View(expanded, rep, via, group, weights)

    candidates = [view(frozenset(), None)]
    for j in range(len(folds)):  # (a group before the groups inside it, in graph order)
        if len(candidates) > MAX_VIEWS:
            break
        if ok[j]:
            candidates.append(view(frozenset(_path(folds, j)), j))
    if any(ok) and full:
        candidates.append(view(frozenset(range(len(folds))), None))
    views, seen, spent = [], set(), 0
    for v in candidates:
        key = tuple(v.rep)
        if key not in seen and v.size <= max_size and (not views or spent + v.size <= LAYOUT_BUDGET):
            seen.add(key)
            views.append(v)
            spent += v.size
    return views


def op_summary(fold, order) -> str:
    """'2 mul, 1 add' for the ops inside a group."""
    ops = Counter(order[k]._prim.name for k in fold.members if order[k]._prim is not None)
    return ", ".join(f"{c} {name}" for name, c in ops.most_common())
