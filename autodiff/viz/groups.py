"""Groups of nodes for the pictures: which scope (`autodiff.scope`, or an nn module's
call) each node belongs to, which of them a picture collapses into one node, the boxes
of a model's layers, and duplicate constant inputs merged into one."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

from ..scope import scopes_of
from ..value import Value


@dataclass
class Group:
    """A collapsed scope: its member nodes (hidden), its outputs (drawn, members used
    outside it or roots), its inputs (non-members its members read), and its caption."""

    scope: object
    name: str
    members: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    inputs: list = field(default_factory=list)

    @property
    def caption(self) -> str:
        return caption(self.name)

    @property
    def output_name(self) -> str | None:
        """The left side of an equation name ('h'), for an output without a label."""
        left, eq, _ = self.name.partition("=")
        return left.strip() if eq and left.strip() else None


def caption(name: str) -> str:
    """The right side of an equation's name ('σ(y, a)' for 'h = σ(y, a)'), else the name."""
    left, eq, right = name.partition("=")
    return right.strip() if eq and right.strip() else name


def module_paths(model) -> dict:
    """id(module) -> 'path: Type' ('0: Linear', 'encoder.fc: Linear') for the sub-modules
    of an nn module (the model itself is left out); {} for anything else."""
    if model is None or not hasattr(model, "named_modules"):
        return {}
    return {id(m): f"{name}: {type(m).__name__}" for name, m in model.named_modules() if name}


def scope_name(s, paths: dict) -> str:
    module = s.module if s.kind == "module" else None
    if module is not None and id(module) in paths:
        return paths[id(module)]
    return s.name


def _chain(s) -> list:
    return list(s.path()) if s is not None else []


def _pick(chain: list, collapse, paths: dict):
    """The scope of `chain` (outermost first) that `collapse` folds, or None.

    collapse: "scopes" (or True) the outermost scope of any kind; "modules" the outermost
    module call below the model itself (a model given by `clusters=`, else any module);
    an int d the scope at nesting depth d (a node in no scope that deep is drawn as it is,
    so `collapse=1` folds an RNN's time steps and not the RNN's call around them); a set or
    list of names the outermost scope with one of those names (module paths too)."""
    if not chain:
        return None
    if collapse is True or collapse == "scopes":
        return chain[0]
    if collapse == "modules":
        for s in chain:
            if s.kind == "module" and (not paths or id(s.module) in paths):
                return s
        return None
    if isinstance(collapse, int):
        return chain[collapse] if collapse < len(chain) else None
    names = set(collapse)
    for s in chain:
        if s.name in names or scope_name(s, paths) in names \
                or scope_name(s, paths).split(":")[0] in names:
            return s
    return None


def check_collapse(collapse) -> None:
    ok = (collapse in (None, False, True, "scopes", "modules")
          or (isinstance(collapse, int) and not isinstance(collapse, bool) and collapse >= 0)
          or (isinstance(collapse, (set, frozenset, list, tuple))
              and all(isinstance(n, str) for n in collapse)))
    if not ok:
        raise ValueError("draw_graph: collapse must be None, 'scopes', 'modules', a depth "
                         f"(int >= 0) or a set of scope names, got {collapse!r}")


# A module called more than once keeps its parameters outside its folded calls; with more
# than this many they are drawn as one node that feeds every call (a scalar MLP has
# hundreds, which would bury the few nodes of the folded picture).
SHARED_DRAWN = 4


def shared_parameters(folded: list) -> dict:
    """id(parameter) -> (module name, its parameter count) for the parameters of a module
    folded in several calls and holding more than SHARED_DRAWN of them."""
    calls: dict = {}
    for g in folded:
        module = g.scope.module if g.scope.kind == "module" else None
        if module is not None and hasattr(module, "parameters"):
            calls.setdefault(id(module), (module, []))[1].append(g)
    out = {}
    for module, groups in calls.values():
        params = list(module.parameters())
        if len(groups) > 1 and len(params) > SHARED_DRAWN:
            for p in params:
                out[id(p)] = (groups[0].name.rsplit(" call ", 1)[0], len(params))
    return out


def collapse_groups(order, roots, collapse, model=None, scopes=None) -> tuple[list, dict]:
    """The groups `collapse` folds and id(node) -> its Group for their members (a
    module's parameters included)."""
    if collapse is None or collapse is False:  # (not `in`: depth 0 == False)
        return [], {}
    paths = module_paths(model)
    scopes = scopes_of(order) if scopes is None else scopes
    groups: dict = {}
    member = {}
    for node in order:
        s = _pick(_chain(scopes.get(id(node))), collapse, paths)
        if s is None:
            continue
        g = groups.get(id(s))
        if g is None:
            g = groups[id(s)] = Group(s, scope_name(s, paths))
        g.members.append(node)
        member[id(node)] = g
    # a folded module's own parameters fold with it (they are made outside its call),
    # unless it is called more than once: then they feed every call, from outside
    calls = Counter(id(g.scope.module) for g in groups.values() if g.scope.kind == "module")
    owned = {}
    for g in groups.values():
        module = g.scope.module if g.scope.kind == "module" else None
        if module is not None and hasattr(module, "parameters") and calls[id(module)] == 1:
            for p in module.parameters():
                owned.setdefault(id(p), g)
    for node in order:
        g = owned.get(id(node))
        if g is not None and node._prim is None and id(node) not in member:
            g.members.append(node)
            member[id(node)] = g
    root_ids = {id(r) for r in roots}
    used_outside = set()
    for node in order:
        for p in node._parents:
            if member.get(id(p)) is not member.get(id(node)):
                used_outside.add(id(p))
    for g in groups.values():
        inside = {id(n) for n in g.members}
        g.outputs = [n for n in g.members if id(n) in used_outside or id(n) in root_ids]
        seen = set()
        for n in g.members:
            for p in n._parents:
                if id(p) not in inside and id(p) not in seen:
                    seen.add(id(p))
                    g.inputs.append(p)
        # a group that is only leaves (constants made inside) is not worth folding
        if all(n._prim is None for n in g.members):
            for n in g.members:
                del member[id(n)]
    kept = [g for g in groups.values() if any(member.get(id(n)) is g for n in g.members)]
    return kept, member


def module_clusters(order, model, scopes=None) -> dict:
    """id(node) -> box name for the ops made inside a call of one of `model`'s
    sub-modules: the outermost one below the model (so a layer's activation module sits
    in its own box, in call order, and a parameter-free module gets a box too). A model
    without sub-modules is one box, its call: what is computed after it stays outside."""
    paths = module_paths(model)
    if not paths and hasattr(model, "named_modules"):
        paths = {id(model): type(model).__name__}
    if not paths:
        return {}
    scopes = scopes_of(order) if scopes is None else scopes
    found = {}
    for node in order:
        for s in _chain(scopes.get(id(node))):
            if s.kind == "module" and id(s.module) in paths:
                found[id(node)] = paths[id(s.module)]
                break
    return found


def merge_constants(order, params: dict) -> dict:
    """id(leaf) -> the leaf drawn in its place. A scalar MLP fed plain numbers turns each
    number into a constant leaf once per neuron; those leaves (unlabeled constants of
    equal value read at the same input position of the same kind of op, by neurons with
    different weights, made one after another) are one Python input, drawn once. A
    neuron met again starts a new run: that is the next sample. `params` (id -> name)
    tells parameters from inputs; without it only leaves that need no gradient merge."""
    consumers: dict = {}
    for node in order:
        for i, p in enumerate(node._parents):
            consumers.setdefault(id(p), []).append((node, i))
    runs: dict = {}  # key -> (the leaf drawn, ids of the weights its consumers read)
    replace = {}
    for node in sorted(order, key=lambda n: -n._seq):  # in creation order
        if (node._prim is not None or node.label or id(node) in params
                or (node.requires_grad and not params)
                or not isinstance(node, Value) or id(node) not in consumers):
            continue
        uses = consumers[id(node)]
        key = (node.data, tuple(sorted({(n._prim.name, i) for n, i in uses})))
        weights = {id(p) for n, _ in uses for p in n._parents
                   if p._prim is None and (id(p) in params if params else p.requires_grad)}
        run = runs.get(key)
        if run is not None and weights and not (weights & run[1]):
            replace[id(node)] = run[0]
            run[1].update(weights)
        else:
            runs[key] = (node, set(weights))
    return replace


class _CallScope:
    """A scope for one call of a scalar module (scalar modules open none themselves): a
    neuron's affine node and the activation applied to it, a layer's neurons on one
    input, a model's layers on one sample."""

    kind = "module"

    def __init__(self, name: str, module, parent=None) -> None:
        self.name, self.module, self.parent = name, module, parent
        self.depth = 0 if parent is None else parent.depth + 1

    def path(self) -> tuple:
        return (self,) if self.parent is None else self.parent.path() + (self,)


def scalar_model(order):
    """The scalar MLP (`nn.MLP`, if nn is loaded) whose weights the graph reads, if one
    is alive: scalar modules open no scopes, so this is how a graph of Values finds its
    neurons' calls."""
    scalar = sys.modules.get("nn.scalar")
    if scalar is None:
        return None
    leaves = {id(n) for n in order if n._prim is None and n.requires_grad}
    for model in scalar.live_models():
        if any(id(w) in leaves for layer in model.layers for n in layer.neurons for w in n.w):
            return model
    return None


def neuron_scopes(order, model, *, nested: bool = False, inputs: bool = False) -> dict:
    """id(node) -> a scope per call of each neuron of a scalar MLP (`model.layers`, each
    with `.neurons` holding `.w`): the op reading the neuron's weights and the
    activation that follows it. With `nested`, a scope per call of each layer instead (its
    neurons' ops), inside one per call of the model (a sample): a neuron met again after
    the ones that follow it starts the layer's next call, layer 0 met again the model's
    next call; a constant leaf read only inside one layer call joins it, and with `inputs`
    any leaf but a weight (a float fed to a neuron is a leaf Value wanting a gradient)."""
    if not hasattr(model, "layers") or hasattr(model, "named_modules"):
        return {}
    owner = {}
    for i, layer in enumerate(model.layers):
        for j, neuron in enumerate(getattr(layer, "neurons", ())):
            for w in getattr(neuron, "w", ()):
                owner[id(w)] = (i, j, layer, neuron)
    found, calls = {}, {}
    model_call, layer_calls, last = None, {}, {}  # (nested) the calls under way
    samples = 0
    for node in sorted(order, key=lambda n: -n._seq):  # in creation order
        if node._prim is None:
            continue
        o = next((owner[id(p)] for p in node._parents if id(p) in owner), None)
        if o is not None:  # each call gets its own scope object (the same name)
            i, j, layer, neuron = o
            parent = None
            if nested:
                if i == 0 and (model_call is None or 0 in last and j <= last[0]):
                    samples += 1
                    model_call = _CallScope(f"{type(model).__name__} call {samples}", model)
                    layer_calls, last = {}, {}
                if i not in layer_calls or j <= last.get(i, -1):
                    layer_calls[i] = _CallScope(f"L{i}", layer, model_call)
                last[i] = j
                parent = layer_calls[i]
            # (nested: the layer's call is the finest group; one per neuron would cost
            # the explorer a layout per neuron and call)
            call = calls[id(node)] = parent or _CallScope(f"L{i}.N{j}", neuron)
            found[id(node)] = call
        elif len(node._parents) == 1 and id(node._parents[0]) in calls and not node._kw:
            found[id(node)] = calls[id(node._parents[0])]
    if nested:  # a leaf read by one layer call only (a number of the sample)
        readers: dict = {}
        for node in order:
            call = found.get(id(node))
            for p in node._parents:
                readers.setdefault(id(p), {})[id(call)] = call
        for node in order:
            calls_reading = readers.get(id(node), {})
            joins = (id(node) not in owner) if inputs else not node.requires_grad
            if (node._prim is None and joins and not node.label
                    and len(calls_reading) == 1):
                call = next(iter(calls_reading.values()))
                if call is not None:
                    found[id(node)] = call
    return found
