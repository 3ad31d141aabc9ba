"""An optimizer's state in PyTorch's layout, and back.

    {"state": {index: {"step": t, "exp_avg": array, ...}},
     "param_groups": [{"lr": ..., <hyperparameters>, "params": [index, ...]}, ...]}

Parameters are numbered 0, 1, 2, ... across the groups in order, as PyTorch numbers
them, so the state of one optimizer loads into any other (ours or torch's) built over
parameters of the same shapes in the same order. A parameter that has not been stepped
has no entry. Arrays are copies; a Value parameter's buffers are 0-d float64 arrays.

Loading checks everything before it changes anything, and installs the state as new
per-parameter dicts: the optimizer's flat buffers are rebuilt from them at the next step,
exactly as after any edit of `opt.state`, so the step that follows is the one the saved
optimizer would have taken.
"""

from __future__ import annotations

import copy
import math
import operator

import numpy as np

from autodiff import Tensor, Value
from autodiff.errors import ShapeError

from .flat import ParamState

# PyTorch's switches that pick an implementation (a kernel, a CUDA graph), not the
# arithmetic: accepted with any value and dropped.
KERNEL_CHOICES = ("foreach", "fused", "capturable")
# PyTorch's switches that change the update; ours keeps them at these values.
FIXED_FLAGS = {"maximize": False, "differentiable": False}


def export_state(opt) -> dict:
    """`opt.state_dict()`: see the module docstring."""
    state, groups, start = {}, [], 0
    for k, group in enumerate(opt.param_groups):
        params = group["params"]
        index = list(range(start, start + len(params)))
        start += len(params)
        hyper = copy.deepcopy({key: v for key, v in group.items() if key != "params"})
        groups.append({**hyper, "params": index})
        for i, p in zip(index, params):
            own = opt.state.get(p) if isinstance(p, Tensor) else None
            if own:
                state[i] = {key: _copy(value) for key, value in own.items()}
        state.update(_split_values(opt, k, index, params))
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def import_state(opt, state_dict) -> None:
    """`opt.load_state_dict(state_dict)`: see the module docstring."""
    name = type(opt).__name__
    where = f"{name}.load_state_dict"
    if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
        got = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else \
            type(state_dict).__name__
        raise ValueError(f"{where}: expected a dict with exactly the keys 'state' and "
                         f"'param_groups' (an optimizer's state_dict()), got {got}")
    saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
    if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, dict):
        raise TypeError(f"{where}: 'param_groups' must be a list and 'state' a dict, got "
                        f"{type(saved_groups).__name__} and {type(saved_state).__name__}")
    if len(saved_groups) != len(opt.param_groups):
        raise ValueError(f"{where}: the state_dict has {len(saved_groups)} parameter "
                         f"groups but the {name} has {len(opt.param_groups)}")

    owner, indices, groups = {}, [], []  # saved index -> (parameter, group number)
    for k, (group, saved) in enumerate(zip(opt.param_groups, saved_groups)):
        params = group["params"]
        ids = saved.get("params") if isinstance(saved, dict) else None
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"{where}: parameter group {k} of the state_dict must be a dict "
                            "with a 'params' list of indices")
        if len(ids) != len(params):
            raise ValueError(f"{where}: parameter group {k} has {len(params)} parameters "
                             f"in the {name} but {len(ids)} in the state_dict")
        ids = [_index(where, f"parameter group {k} lists", i) for i in ids]
        for i, p in zip(ids, params):
            if i in owner:
                raise ValueError(f"{where}: the state_dict lists parameter index {i} twice")
            owner[i] = (p, k)
        indices.append(ids)
        groups.append(_load_group(opt, where, k, saved, params))

    loaded = {}  # id(parameter) -> its checked state
    for i, entry in saved_state.items():
        i = _index(where, "'state' has a key", i)
        if i not in owner:
            raise ValueError(f"{where}: the state_dict has state for parameter {i}, which "
                             "no parameter group lists")
        if not isinstance(entry, dict):
            raise TypeError(f"{where}: the state of parameter {i} must be a dict, got "
                            f"{type(entry).__name__}")
        p, k = owner[i]
        if entry:  # (an empty dict is a parameter not stepped yet)
            loaded[id(p)] = _load_param_state(opt, where, i, p, entry, groups[k])

    state = {}
    for k, (ids, group) in enumerate(zip(indices, groups)):
        for p in group["params"]:
            if isinstance(p, Tensor) and id(p) in loaded:
                state[p] = ParamState(loaded[id(p)])
        packed = _pack_values(where, k, ids, group["params"], loaded)
        if packed:
            state[("values", k)] = packed

    # Nothing raised: commit. Group dicts keep their identity (a scheduler may hold them).
    for group, new in zip(opt.param_groups, groups):
        group.clear()
        group.update(new)
    opt.state.clear()
    opt.state.update(state)
    opt._flat.clear()  # (rebuilt from the new state at the next step)


def _copy(value):
    """A state entry as it goes into a state_dict: arrays copied, numpy scalars as numbers."""
    if isinstance(value, Tensor):
        return value.data.copy()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _split_values(opt, k: int, index: list, params: list) -> dict:
    """Group k's packed Value state as one entry per Value, each buffer a 0-d array."""
    values = [(i, p) for i, p in zip(index, params) if isinstance(p, Value)]
    packed = opt.state.get(("values", k))
    if not values or not packed:
        return {}
    if packed.get("values") != tuple(p for _, p in values):
        raise ValueError(
            f"{type(opt).__name__}.state_dict: the Value parameters of group {k} are not "
            "the ones its state was kept for (a Value added or removed since the last "
            "step); their state cannot be told apart")
    return {i: {key: (np.array(v[j]) if isinstance(v, np.ndarray) else _copy(v))
                for key, v in packed.items() if key != "values"}
            for j, (i, _) in enumerate(values)}


def _index(where: str, what: str, i) -> int:
    if isinstance(i, (bool, np.bool_)):
        raise TypeError(f"{where}: {what} {i!r}, not a parameter index")
    try:
        return operator.index(i)
    except TypeError:
        raise TypeError(f"{where}: {what} {i!r} ({type(i).__name__}), not an integer "
                        "parameter index") from None


def _load_group(opt, where: str, k: int, saved: dict, params: list) -> dict:
    """The group's new dict: the saved hyperparameters (checked) with our parameters."""
    flags = {**FIXED_FLAGS, **opt._torch_flags}
    hyper = {}
    for key, value in saved.items():
        if key == "params" or key in KERNEL_CHOICES:
            continue
        if key in flags:
            if value != flags[key]:
                raise ValueError(f"{where}: parameter group {k} has {key}={value!r}; "
                                 f"{type(opt).__name__} computes only the update of "
                                 f"{key}={flags[key]!r}")
            continue
        hyper[key] = copy.deepcopy(value)
    missing = [key for key in opt.defaults if key not in hyper]
    if missing:
        raise ValueError(f"{where}: parameter group {k} of the state_dict lacks the "
                         f"hyperparameters {missing} of {type(opt).__name__}")
    if isinstance(hyper.get("betas"), list):
        hyper["betas"] = tuple(hyper["betas"])
    group = {**hyper, "params": params}
    try:
        opt._check(group)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: parameter group {k}: {e}") from None
    return group


def _load_param_state(opt, where: str, i: int, p, entry: dict, group: dict) -> dict:
    """Parameter i's saved state, checked against the rule and p; arrays copied into p's
    dtype (as PyTorch casts), the step count as an int."""
    required, optional = opt._state_keys(group)
    unknown = [key for key in entry if key not in required | optional]
    if unknown:
        raise ValueError(f"{where}: the state of parameter {i} has {unknown!r}, which "
                         f"{type(opt).__name__} does not keep (its keys: "
                         f"{sorted(required | optional)})")
    missing = sorted(required - set(entry))
    if missing:
        raise ValueError(f"{where}: the state of parameter {i} lacks {missing} (needed by "
                         f"{type(opt).__name__} with this group's hyperparameters)")
    shape, dtype = (p.data.shape, p.data.dtype) if isinstance(p, Tensor) else \
        ((), np.dtype(np.float64))
    state = {}
    for key, value in entry.items():
        if key == "step":
            state[key] = _step(where, i, value)
        elif value is None and key in opt._nullable_state:
            state[key] = None
        else:
            arr = np.asarray(value.data if isinstance(value, Tensor) else value)
            if arr.dtype.kind != "f":
                raise TypeError(f"{where}: state {key!r} of parameter {i} has dtype "
                                f"{arr.dtype}; it must be floating point like the "
                                f"parameter ({dtype})")
            if arr.shape != shape:
                raise ShapeError(f"{where}: state {key!r} of parameter {i} has shape "
                                 f"{arr.shape} but the parameter has shape {shape}")
            state[key] = np.array(arr, dtype=dtype)  # (a copy the optimizer owns)
    return state


def _step(where: str, i: int, value) -> int:
    """A step count: an int, or a whole float / 0-d array as PyTorch keeps it."""
    arr = np.asarray(value.data if isinstance(value, Tensor) else value)
    if arr.shape == () and arr.dtype.kind in "iuf":
        t = float(arr)
        if math.isfinite(t) and t >= 0 and t == int(t):
            return int(t)
    raise ValueError(f"{where}: the step of parameter {i} must be a whole number >= 0, "
                     f"got {value!r}")


def _pack_values(where: str, k: int, ids: list, params: list, loaded: dict) -> dict | None:
    """Group k's Values' states packed as the optimizer keeps them: one array per buffer,
    one step count. They step together, so all or none have state, with equal steps."""
    values = [(i, p) for i, p in zip(ids, params) if isinstance(p, Value)]
    states = [loaded.get(id(p)) for _, p in values]
    if not any(states):
        return None
    first = states[0]
    for (i, _), s in zip(values, states):
        if s is None or s.keys() != first.keys() or s.get("step") != first.get("step") or \
                any((s[key] is None) != (first[key] is None) for key in s):
            raise ValueError(
                f"{where}: the Value parameters of group {k} share one state, so each "
                f"needs the same keys and step; parameter {i} has "
                f"{'none' if s is None else sorted(s)} (step {s and s.get('step')}) where "
                f"parameter {values[0][0]} has {sorted(first)} (step {first.get('step')})")
    packed = {"values": tuple(p for _, p in values)}
    for key, v in first.items():
        if isinstance(v, np.ndarray):
            packed[key] = np.array([s[key] for s in states], dtype=np.float64)
        else:
            packed[key] = v
    return packed
