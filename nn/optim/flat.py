"""One contiguous buffer for a parameter group's Tensors, their gradients and their state.

Every optimizer here updates elementwise, so the rule applied once to the concatenation
of a group's parameters gives exactly the numbers it gives parameter by parameter, with
a dozen numpy calls per step instead of a dozen per parameter (PyTorch's "foreach"
optimizers do the same). For a small model, where each call costs more than its
arithmetic, that is most of the optimizer's time (benchmarks/bench_digits.py).

The optimizer owns the flat buffers; the parameters keep their own arrays. A step
copies the parameters and their gradients in, updates, and copies the new values back
into each `.data` in place (bumping its version), so `.data` is never rebound and
`p.detach()` always follows `p`. The parameters' state entries in `opt.state` are
views of the flat state. A changed group (another set of parameters with gradients, an
edited, cleared or loaded `opt.state`, a `.data` of another shape or dtype, a copied optimizer)
builds a new flat group from the current values; where one cannot hold (mixed dtypes,
parameters sharing memory, state of other shapes) the step goes parameter by parameter.
"""

from __future__ import annotations

from operator import is_

import numpy as np

from autodiff.engine import bump_version


try:  # numpy >= 2
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy 1.26 (pyproject allows it)
    byte_bounds = np.byte_bounds


class ParamState(dict):
    """One parameter's optimizer state: a dict that records being edited, so a flat group
    can tell at a glance whether the state it holds is still the one the user sees."""

    __slots__ = ("edited",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.edited = False

    # Every way of changing a dict marks it edited.
    def __setitem__(self, key, value):
        self.edited = True
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.edited = True
        super().__delitem__(key)

    def __ior__(self, other):
        self.edited = True
        return super().__ior__(other)

    def pop(self, *args):
        self.edited = True
        return super().pop(*args)

    def popitem(self):
        self.edited = True
        return super().popitem()

    def clear(self):
        self.edited = True
        super().clear()

    def update(self, *args, **kwargs):
        self.edited = True
        super().update(*args, **kwargs)

    def setdefault(self, key, default=None):
        self.edited = True
        return super().setdefault(key, default)


# The flat path copies every element three times a step (parameters and gradients in,
# parameters out); the per-parameter path pays a dozen numpy calls per parameter. A call
# costs about as much as copying a few thousand floats three times, so above this mean
# size per parameter the copies cost more than the calls they save.
_FLAT_SIZE = 16384


class FlatGroup:
    """The Tensor parameters of a group, laid end to end."""

    __slots__ = ("params", "data", "views", "grad", "grad_views", "state", "param_states",
                 "synced", "work")

    def __init__(self, params: list, states: list[ParamState]):
        dtype = params[0].data.dtype
        sizes = [p.data.size for p in params]
        self.data = data = np.empty(sum(sizes), dtype)
        self.grad = np.empty_like(data)
        self.params = params
        self.views, self.grad_views = [], []
        self.work = {}  # the update rule's scratch arrays
        offset = 0
        for p, n in zip(params, sizes):
            self.views.append(data[offset:offset + n].reshape(p.data.shape))
            self.grad_views.append(self.grad[offset:offset + n].reshape(p.data.shape))
            offset += n
        # The state so far (all parameters have the same keys and step, see `build`).
        for state in states:
            state.edited = False
        self.state = {}
        for key, value in states[0].items():
            if isinstance(value, np.ndarray):
                self.state[key] = np.concatenate([s[key].reshape(-1) for s in states])
            else:
                self.state[key] = value
        self.param_states = states  # ParamStates, in opt.state
        self.synced = None
        self.sync_state()

    @classmethod
    def build(cls, params: list, states: list[dict]) -> "FlatGroup | None":
        """A flat group for `params` with their current `states`, or None where the
        per-parameter path must stay or is faster: one parameter, parameters larger than
        `_FLAT_SIZE` elements on average, mixed dtypes, parameters sharing
        memory (laid apart they would be untied), or state that does not split into
        per-parameter arrays of the parameters' shapes plus equal numbers."""
        if len(params) < 2 or sum(p.data.size for p in params) > _FLAT_SIZE * len(params):
            return None
        dtype = params[0].data.dtype
        if any(p.data.dtype != dtype for p in params) or _overlapping(params):
            return None
        keys = states[0].keys()
        for p, s in zip(params, states):
            if s.keys() != keys:
                return None
            for key, value in s.items():
                first = states[0][key]
                if isinstance(value, np.ndarray):
                    if (value.dtype != dtype or value.shape != p.data.shape
                            or not isinstance(first, np.ndarray)):
                        return None
                elif isinstance(first, np.ndarray) or type(value) is not type(first) or (
                        value != first):
                    return None  # e.g. different step counts
        return cls(params, states)

    def matches(self, params: list, states: dict) -> bool:
        """Whether this step's parameters (those with a gradient) are still exactly ours:
        each `.data` of the shape and dtype we laid out, and its entry of the optimizer's
        `states` still the dict we filled, unchanged (a copied optimizer's are not)."""
        if len(params) != len(self.params) or not all(map(is_, params, self.params)):
            return False
        dtype = self.data.dtype
        for p, view, mine in zip(params, self.views, self.param_states):
            data = p.data
            if (data.shape != view.shape or data.dtype is not dtype or mine.edited
                    or states.get(p) is not mine):
                return False
        return True

    def gather(self) -> None:
        """Copy the parameters and their gradients (checked by the caller) in."""
        for p, view, grad_view in zip(self.params, self.views, self.grad_views):
            view[...] = p.data
            grad_view[...] = p._grad.data

    def scatter(self) -> None:
        """Copy the updated values back into each parameter's own array, in place."""
        for p, view in zip(self.params, self.views):
            p.data[...] = view
            bump_version(p)

    def sync_state(self) -> None:
        """Give the per-parameter state dicts views of (and the numbers in) the flat state.
        (Written with dict.__setitem__: these are not the user's edits.)"""
        put = dict.__setitem__
        arrays = tuple((key, id(value)) for key, value in self.state.items()
                       if isinstance(value, np.ndarray))
        if self.synced != arrays:  # a buffer was created (or replaced) by the update
            bounds = np.cumsum([0] + [v.size for v in self.views])
            for key, value in self.state.items():
                if isinstance(value, np.ndarray):
                    for s, view, a, b in zip(self.param_states, self.views, bounds, bounds[1:]):
                        put(s, key, value[a:b].reshape(view.shape))
            self.synced = arrays
        for key, value in self.state.items():
            if not isinstance(value, np.ndarray):
                for s in self.param_states:
                    put(s, key, value)


def _overlapping(params: list) -> bool:
    """Whether any two parameters' arrays share memory (by their address ranges)."""
    spans = sorted(byte_bounds(p.data) for p in params)
    return any(b_lo < a_hi for (_, a_hi), (b_lo, _) in zip(spans, spans[1:]))
