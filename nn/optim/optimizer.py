"""`Optimizer`: parameter groups, per-parameter state and one update rule for Tensors and
Values alike.

A subclass writes `_update(p, g, state, group, work)`, which changes the ndarray `p` in
place from the gradient `g`, elementwise (`state`: the buffers that carry over between
steps, as PyTorch names them; `work`: scratch arrays, kept apart from the state). The
Tensor parameters of a group are updated all at once on one flat buffer (see flat.py),
or one by one where that cannot be, always in place: `.data` is never rebound, and each
update bumps the parameter's version. The Value parameters of a group are packed into
one float64 array, updated by the same rule, and written back. All follow exactly the
same arithmetic. `state_dict()` / `load_state_dict()` (state_dict.py) use PyTorch's layout.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from autodiff import Tensor, Value, enable_grad
from autodiff.engine import bump_version

from ..module import zero_grads
from .flat import FlatGroup, ParamState
from .state_dict import export_state, import_state


class Optimizer:
    """Base class: `step()` applies `_update` to every parameter that has a gradient."""

    # State keys whose value may be None (a buffer not started yet), and PyTorch group
    # flags whose value is fixed for this rule: both for load_state_dict.
    _nullable_state: frozenset = frozenset()
    _torch_flags: dict = {}

    def __init__(self, params: Iterable, defaults: dict):
        if isinstance(params, (Tensor, Value)):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors "
                            f"or Values (e.g. model.parameters()), got a single "
                            f"{type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        # parameter -> dict of its buffers (keyed as in PyTorch, so copies of a model and
        # its optimizer made together stay paired); ("values", k) for group k's Values
        self.state: dict = {}
        self._flat: dict = {}  # group index -> FlatGroup of its Tensor parameters
        self._work: dict = {}  # parameter (or group key) -> scratch arrays of its update
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a dict with "params" and optional per-group hyperparameters."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict with "
                            "a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, (Tensor, Value)) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if isinstance(p, Tensor):
                if not p.requires_grad or not p.is_leaf:
                    raise ValueError(f"{type(self).__name__}: parameter {i} must be a leaf "
                                     "Tensor that requires grad")
            elif not isinstance(p, Value):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a "
                                f"{type(p).__name__}, expected a Tensor or a Value")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} appears more than "
                                 "once")
            seen.add(id(p))
        full = {**self.defaults, **group, "params": params}
        self._check(full)
        self.param_groups.append(full)

    def _check(self, group: dict) -> None:
        """Validate a group's hyperparameters (subclasses add their own)."""
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {group['lr']}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Tensor grads to None (with set_to_none=False: zeroed in place, as PyTorch
        does); Value grads to 0.0."""
        for group in self.param_groups:
            if set_to_none:
                zero_grads(group["params"])
                continue
            for p in group["params"]:
                if isinstance(p, Value):
                    p.grad = 0.0
                elif p.grad is not None:
                    if p.grad.data.flags.writeable:
                        p.grad.zero_()  # in place, as PyTorch's set_to_none=False
                    else:  # (a read-only array a user assigned): a fresh one
                        p.grad = np.zeros_like(p.data)

    # -- saving and loading (state_dict.py) ------------------------------------------
    def state_dict(self) -> dict:
        """The state in PyTorch's layout, `{"state": {index: {...}}, "param_groups":
        [{..., "params": [index, ...]}]}`, with copies of the arrays."""
        return export_state(self)

    def load_state_dict(self, state_dict: dict) -> None:
        """Take over a state_dict (ours, or torch's with its tensors as arrays): checked
        against these parameters and rule first, so a bad one changes nothing."""
        import_state(self, state_dict)

    def _state_keys(self, group: dict) -> tuple[set, set]:
        """(required, optional) keys of a parameter's state under `group`'s settings."""
        raise NotImplementedError(f"{type(self).__name__}._state_keys")

    def step(self, closure: Callable | None = None):
        """Update every parameter from its gradient; `closure` (optional) recomputes and
        returns the loss first, as in PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        plan = []
        for k, group in enumerate(self.param_groups):
            values, tensors = [], []
            for p in group["params"]:
                if isinstance(p, Value):
                    values.append(p)
                elif p._grad is not None:  # (the slot behind .grad: this runs every step)
                    tensors.append(p)
            self._check_grads(tensors, values, k, group)  # all, before anything changes
            plan.append((k, group, values, tensors))
        for k, group, values, tensors in plan:
            if tensors:
                self._step_tensors(tensors, k, group)
            if values:
                self._step_values(values, ("values", k), group)
        return loss

    def _check_grads(self, params: list, values: list, k: int, group: dict) -> None:
        for v in values:
            if not isinstance(v.grad, (float, int, np.floating, np.integer)):
                i = next(i for i, q in enumerate(group["params"]) if q is v)
                raise ValueError(f"{type(self).__name__}.step: Value parameter {i} of group "
                                 f"{k} has grad {v.grad!r}, not a number (zero_grad() sets "
                                 "Value grads to 0.0)")
        for p in params:
            g = p._grad.data
            if type(g) is np.ndarray:
                if g.dtype is p.data.dtype and g.shape == p.data.shape:
                    continue  # (the common case, decided without the general checks)
                shape, kind = g.shape, g.dtype.kind
            else:
                shape, kind = np.shape(g), np.asarray(g).dtype.kind
            if shape != p.data.shape or kind not in "biuf":
                i = next(i for i, q in enumerate(group["params"]) if q is p)
                what = (f"shape {shape}" if shape != p.data.shape
                        else f"non-numeric dtype {np.asarray(g).dtype}")
                raise ValueError(f"{type(self).__name__}.step: parameter {i} of group {k} "
                                 f"has shape {p.data.shape} but its gradient has {what}")

    def _step_tensors(self, params: list, k: int, group: dict) -> None:
        flat = self._flat.get(k)
        if flat is None or not flat.matches(params, self.state):
            states = []
            for p in params:
                state = self.state.get(p)
                if type(state) is not ParamState:  # (the flat group notices its edits)
                    state = self.state[p] = ParamState(state or {})
                states.append(state)
            every = len(params) == sum(not isinstance(p, Value) for p in group["params"])
            flat = FlatGroup.build(params, states) if every else None
            if flat is None:  # one by one (on views of the old flat buffers, if any)
                self._flat.pop(k, None)
                # (in the parameter's dtype, as the flat buffer holds it)
                grads = [np.asarray(p.grad, dtype=p.data.dtype) for p in params]
                for p, g, state in zip(params, grads, states):
                    self._update(p.data, g, state, group, self._work.setdefault(p, {}))
                    bump_version(p)
                return
            self._flat[k] = flat
        flat.gather()
        self._update(flat.data, flat.grad, flat.state, group, flat.work)
        flat.scatter()
        flat.sync_state()

    def __getstate__(self) -> dict:
        # A copy (copy.deepcopy, pickle) rebuilds its flat buffers from the copied
        # parameters and state at its first step.
        return dict(self.__dict__, _flat={}, _work={})

    def _step_values(self, values: list, key, group: dict) -> None:
        state = self.state.setdefault(key, {})
        members = tuple(values)
        if state.setdefault("values", members) != members:  # (Values compare by identity)
            raise ValueError(
                f"{type(self).__name__}.step: the Value parameters of group {key[1]} are not "
                "the ones of earlier steps (a Value added or removed, or a group removed); "
                "their optimizer state is kept for the group as a whole and cannot follow. "
                "Create a new optimizer.")
        n = len(values)
        data = np.fromiter((v.data for v in values), dtype=np.float64, count=n)
        grad = np.fromiter((v.grad for v in values), dtype=np.float64, count=n)
        self._update(data, grad, state, group, self._work.setdefault(key, {}))
        for v, x in zip(values, data.tolist()):
            v.data = x

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict,
                work: dict) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def scratch(work: dict, name: str, like: np.ndarray) -> np.ndarray:
    """A work buffer shaped like `like`, kept in `work` so steps do not allocate."""
    buf = work.get(name)
    if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
        buf = work[name] = np.empty_like(like)
    return buf
