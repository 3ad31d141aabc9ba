"""`save(obj, path)` / `load(path)`: `torch.save` / `torch.load` for state_dicts, as one
safetensors file that is never unpickled.

Every array and Tensor becomes a tensor of the file, named by its key path
("model.0.weight", "optimizer.state.0.exp_avg"). Everything else, and the shape of the
whole object, is one JSON document in the header's metadata under "autodiff.object",
`{"version": 1, "root": node}`, where a node is

    null, true, false, a string, an int or a finite float -> that value
    [node, ...]                                            -> list
    {"type": "tuple", "items": [node, ...]}                -> tuple
    {"type": "dict" | "OrderedDict", "items": [[key, node], ...]}  (key: str or int)
    {"type": "tensor", "name": str, "requires_grad": bool} -> Tensor
    {"type": "numpy", "name": str}                         -> numpy scalar (a 0-d tensor)
    {"type": "float", "bits": "7ff0000000000000"}          -> inf, -inf or nan, bit for bit

so int vs float, tuple vs list and int vs str keys come back as they went in. The file's
checksum covers this document too, so a changed value is caught, not loaded.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import OrderedDict

import numpy as np

from ._safetensors_io import CheckpointError, brief, dtype_code, read, strict_json, write
from .dtypes import check_device
from .tensor import Tensor

__all__ = ["save", "load"]

_OBJECT_KEY = "autodiff.object"
_VERSION = 1
_MAX_DEPTH = 100  # levels of nesting; a state_dict has about five
_FIELDS = {"tuple": {"type", "items"}, "dict": {"type", "items"},
           "OrderedDict": {"type", "items"}, "tensor": {"type", "name", "requires_grad"},
           "numpy": {"type", "name"}, "float": {"type", "bits"}}
_SAVABLE = ("arrays, Tensors, numpy scalars, dict, OrderedDict, list, tuple, str, int, "
            "float, bool and None")


def _at(path: tuple) -> str:
    """A key path as the indexing that reaches it: obj['optimizer']['state'][0]."""
    return "obj" + "".join(f"[{k!r}]" for k in path)


def save(obj, path: str | os.PathLike) -> None:
    """Write `obj` (a state_dict, or a dict of state_dicts and plain values such as
    `{"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}`) to exactly
    `path` as one safetensors file. Raises TypeError naming the key path of anything it
    cannot represent (an object, a set, a function, a key that is not str or int).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.safetensors")
    >>> save({"w": np.arange(3.0), "betas": (0.9, 0.999), "state": {0: {"step": 3}}}, path)
    >>> load(path)
    {'w': Tensor([0., 1., 2.]), 'betas': (0.9, 0.999), 'state': {0: {'step': 3}}}
    """
    encoder = _Encoder()
    document = {"version": _VERSION, "root": encoder.node(obj, ())}
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    write(path, encoder.arrays, {"format": "np", _OBJECT_KEY: text}, "autodiff.save")


class _Encoder:
    """One walk over the object: arrays go to `arrays` under fresh names, the rest becomes
    the JSON node that `node` returns."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._open: set[int] = set()  # the containers on the current path, to catch a cycle

    def node(self, x, path: tuple):
        kind = type(x)
        if x is None or kind is bool or kind is str:
            return x
        if kind is int:
            return self._int(x, path)
        if kind is float:
            return x if math.isfinite(x) else {"type": "float",
                                               "bits": struct.pack(">d", x).hex()}
        if isinstance(x, Tensor):
            return {"type": "tensor", "name": self._array(x.data, path),
                    "requires_grad": bool(x.requires_grad)}
        if kind is np.ndarray:
            return {"type": "tensor", "name": self._array(x, path), "requires_grad": False}
        if isinstance(x, np.generic):
            return {"type": "numpy", "name": self._array(np.asarray(x), path)}
        if kind in (list, tuple, dict, OrderedDict):
            return self._container(x, path)
        raise TypeError(f"autodiff.save: cannot save {_at(path)} of type {kind.__name__}; "
                        f"it saves {_SAVABLE}")

    def _container(self, x, path: tuple):
        if len(path) >= _MAX_DEPTH:
            raise TypeError(f"autodiff.save: {_at(path)[:200]} is nested more than "
                            f"{_MAX_DEPTH} levels deep")
        if id(x) in self._open:
            raise TypeError(f"autodiff.save: {_at(path)} contains itself")
        self._open.add(id(x))
        try:
            if type(x) is list:
                return [self.node(v, path + (i,)) for i, v in enumerate(x)]
            if type(x) is tuple:
                return {"type": "tuple",
                        "items": [self.node(v, path + (i,)) for i, v in enumerate(x)]}
            return {"type": type(x).__name__,
                    "items": [[self._key(k, path), self.node(v, path + (k,))]
                              for k, v in x.items()]}
        finally:
            self._open.discard(id(x))

    @staticmethod
    def _int(x: int, path: tuple) -> int:
        try:
            str(x)  # what json.dumps does; past sys.get_int_max_str_digits() it cannot
        except ValueError:
            raise TypeError(f"autodiff.save: {_at(path)} is an int of too many digits to "
                            "write") from None
        return x

    def _key(self, k, path: tuple):
        if type(k) is str:
            return k
        if type(k) is int:
            return self._int(k, path + (k,))
        raise TypeError(f"autodiff.save: {_at(path)} has the key {brief(k)} of type "
                        f"{type(k).__name__}; only str and int keys can be saved")

    def _array(self, arr: np.ndarray, path: tuple) -> str:
        if arr.dtype.kind not in "biuf" or dtype_code(arr.dtype) is None:
            raise TypeError(f"autodiff.save: {_at(path)} has dtype {arr.dtype}; it saves "
                            "bool, int, uint and float16/32/64 arrays")
        # torch's naming ("optimizer.state.0.exp_avg"), made unique; the JSON node keeps
        # the real path, so the name only has to be readable and valid UTF-8.
        base = ".".join(str(k) for k in path) or "tensor"
        base = base.encode("utf-8", "backslashreplace").decode("utf-8")
        name, n = base, 1
        while name in self.arrays or name == "__metadata__":
            name, n = f"{base}~{n}", n + 1
        self.arrays[name] = arr
        return name


def load(path: str | os.PathLike, map_location=None, *, weights_only: bool = True):
    """Read a file written by `save`: the same structure, with every array as a Tensor (as
    torch.load returns tensors), so `model.load_state_dict(autodiff.load(path))` works.
    A damaged, altered or foreign file raises CheckpointError naming it. (`map_location`
    may only name the CPU; `weights_only` is accepted as in torch.load: nothing but
    tensors and plain values is ever read, whatever it says.)"""
    if map_location is not None:
        check_device(map_location, "autodiff.load")
    where = f"autodiff.load: {os.fspath(path)!r}"
    arrays, metadata = read(path, where, require_digest=True)
    if _OBJECT_KEY not in metadata:
        raise CheckpointError(f"{where} was not written by autodiff.save (its metadata has "
                              f"no {_OBJECT_KEY!r}); read a plain safetensors file of "
                              "arrays with nn.load or safetensors.numpy.load_file")
    try:
        document = strict_json(metadata[_OBJECT_KEY])
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{where}: its {_OBJECT_KEY!r} metadata is not valid JSON "
                              f"({brief(str(err), 120)})") from None
    if type(document) is not dict or set(document) != {"version", "root"}:
        raise CheckpointError(f"{where}: its {_OBJECT_KEY!r} metadata is not an "
                              "autodiff.save document")
    if type(document["version"]) is not int or document["version"] != _VERSION:
        raise CheckpointError(f"{where} has format version {brief(document['version'])}; "
                              f"this autodiff reads version {_VERSION}")
    decoder = _Decoder(arrays, where)
    obj = decoder.value(document["root"], ())
    unused = sorted(set(arrays) - decoder.used)
    if unused:
        raise CheckpointError(f"{where} holds tensors its metadata never mentions: "
                              f"{brief(unused, 200)} (altered, or not written by "
                              "autodiff.save)")
    return obj


class _Decoder:
    """Rebuilds the object from its JSON node, checking every node against the layout in
    the module docstring: the checksum catches accidents, this catches anything else."""

    def __init__(self, arrays: dict[str, np.ndarray], where: str) -> None:
        self.arrays, self.where, self.used = arrays, where, set()

    def bad(self, path: tuple, why: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: malformed metadata at {_at(path)[:200]}: "
                               f"{why} (altered, or not written by autodiff.save)")

    def value(self, node, path: tuple):
        kind = type(node)
        if node is None or kind in (bool, str, int):
            return node
        if kind is float:
            if not math.isfinite(node):  # save writes these as {"type": "float"}
                raise self.bad(path, f"a bare non-finite float {node}")
            return node
        tag = "list" if kind is list else node.get("type") if kind is dict else None
        if tag != "list" and (type(tag) is not str or tag not in _FIELDS
                              or set(node) != _FIELDS[tag]):
            raise self.bad(path, f"unknown entry {brief(node)}")
        if tag in ("list", "tuple", "dict", "OrderedDict") and len(path) >= _MAX_DEPTH:
            raise self.bad(path, f"nested more than {_MAX_DEPTH} levels deep")
        if tag == "list":
            return [self.value(v, path + (i,)) for i, v in enumerate(node)]
        if tag == "tuple":
            items = self._list(node, path)
            return tuple([self.value(v, path + (i,)) for i, v in enumerate(items)])
        if tag in ("dict", "OrderedDict"):
            return self._mapping(node, path, dict if tag == "dict" else OrderedDict)
        if tag == "float":
            return self._float(node["bits"], path)
        arr = self._take(node["name"], path)
        if tag == "numpy":
            if arr.ndim != 0:
                raise self.bad(path, f"a numpy scalar stored with shape {arr.shape}")
            return arr[()]
        requires_grad = node["requires_grad"]
        if type(requires_grad) is not bool or (requires_grad and arr.dtype.kind != "f"):
            raise self.bad(path, f"requires_grad {brief(requires_grad)} for a {arr.dtype} "
                                 "tensor")
        return Tensor(arr, requires_grad=requires_grad)

    def _list(self, node: dict, path: tuple) -> list:
        if type(node["items"]) is not list:
            raise self.bad(path, f"items must be a list, not {brief(node['items'])}")
        return node["items"]

    def _mapping(self, node: dict, path: tuple, cls):
        out = cls()
        for pair in self._list(node, path):
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) not in (str, int):
                raise self.bad(path, f"a dict item must be [str or int key, value], not "
                                     f"{brief(pair)}")
            key, value = pair
            if key in out:
                raise self.bad(path, f"the key {brief(key)} appears twice")
            out[key] = self.value(value, path + (key,))
        return out

    def _float(self, bits, path: tuple) -> float:
        try:
            (x,) = struct.unpack(">d", bytes.fromhex(bits))
        except (TypeError, ValueError, struct.error):
            x = None
        if x is None or math.isfinite(x) or len(bits) != 16:
            raise self.bad(path, f"bits {brief(bits)} are not those of inf or nan")
        return x

    def _take(self, name, path: tuple) -> np.ndarray:
        if type(name) is not str or name not in self.arrays:
            raise self.bad(path, f"no tensor named {brief(name)} in the file")
        if name in self.used:
            raise self.bad(path, f"the tensor {brief(name)} is used twice")
        self.used.add(name)
        arr = self.arrays[name]
        if arr.dtype.kind not in "biuf":  # save never writes one (a complex tensor, say)
            raise self.bad(path, f"the tensor {brief(name)} has dtype {arr.dtype}")
        return arr
