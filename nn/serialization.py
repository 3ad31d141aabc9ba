"""`save` and `load`: a module's parameters in the safetensors format, written and read
with numpy and json only (nothing is ever unpickled or executed).

Layout: an 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON mapping
each name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data
that follows), plus an optional "__metadata__" of strings; then the raw little-endian
bytes of every tensor, back to back. The header is padded with spaces to a multiple of 8.
Our files also record a SHA-256 of the data in the metadata, so flipped bytes are caught.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import stat
import struct
import sys

import numpy as np

from .module import Module, match_names

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024
_MAX_DIMS = 64  # numpy's limit
_CHECKSUM = "nn.sha256"


class CheckpointError(ValueError):
    """A file that is not a valid checkpoint for this module."""


def _check_module(module, where: str) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{where}: expected an nn.Module, got {type(module).__name__} "
                        "(scalar Value models have no named parameters to save)")


def save(module: Module, path: str | os.PathLike) -> None:
    """Write the module's state_dict to exactly `path` in the safetensors format."""
    _check_module(module, "nn.save")
    state = module.state_dict()
    header, chunks, offset = {}, [], 0
    for name, arr in state.items():
        code = _CODES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
        if code is None:
            raise TypeError(f"nn.save: parameter {name!r} has unsupported dtype {arr.dtype}")
        raw = np.ascontiguousarray(arr, dtype=np.dtype(_DTYPES[code])).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    data = b"".join(chunks)
    header["__metadata__"] = {"format": "np", _CHECKSUM: hashlib.sha256(data).hexdigest()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path = os.fspath(path)
    # Write beside the target and rename, so a failed save never leaves half a file.
    tmp = f"{path}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: the umask's permissions, as open() gives
    try:
        with open(tmp, "xb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            f.write(data)
        if mode is not None:  # replacing a file keeps its permissions
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _brief(x, limit: int = 60) -> str:
    """repr(x), cut short: a damaged header can hold anything, of any size."""
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read(f, n: int, where: str) -> bytes:
    """Exactly n bytes, or CheckpointError: the file can shrink after its size was read."""
    start = f.tell()
    data = f.read(n)
    if len(data) != n:
        raise CheckpointError(f"{where} is truncated: expected {n} bytes at byte {start} "
                              f"but the file ends after {len(data)} (did it change while "
                              "being read?)")
    return data


def _header(f, size: int, where: str) -> tuple[dict, dict, int]:
    """Read and parse the length field and the JSON header; returns (entries, metadata,
    offset of the data)."""
    if size < 8:
        raise CheckpointError(f"{where} is not a safetensors file: only {size} bytes")
    (n,) = struct.unpack("<Q", _read(f, 8, where))
    if n < 2 or n > _MAX_HEADER:
        raise CheckpointError(f"{where} is not a safetensors file: implausible header "
                              f"length {n}")
    if 8 + n > size:
        raise CheckpointError(f"{where} is truncated: header of {n} bytes but the file has "
                              f"{size - 8} after the length field")
    text = _read(f, n, where)
    try:
        header = json.loads(text.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{where} is not a safetensors file: its JSON header is "
                              "nested too deeply") from None
    except ValueError as err:  # bad UTF-8 or JSON, or an integer of too many digits
        raise CheckpointError(f"{where} is not a safetensors file: bad JSON header "
                              f"({err})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is not a safetensors file: header is not an object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: __metadata__ must be an object")
    return header, meta, 8 + n


def _entry(name: str, info, where: str) -> tuple[np.dtype, list, int, int]:
    """Validate one header entry; returns (dtype, shape, begin, end)."""
    name = _brief(name)
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{where}: entry {name} must have exactly dtype, shape "
                              "and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise CheckpointError(f"{where}: entry {name} has unsupported dtype {_brief(dtype)}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(f"{where}: entry {name} has invalid shape {_brief(shape)}")
    if len(shape) > _MAX_DIMS:
        raise CheckpointError(f"{where}: entry {name} has {len(shape)} dimensions; numpy "
                              f"allows at most {_MAX_DIMS}")
    np_dtype = np.dtype(_DTYPES[dtype])
    # numpy needs the bytes of the nonzero dimensions to fit in a ssize_t (sys.maxsize),
    # even for an empty array; no file is that large anyway.
    if (any(d > sys.maxsize for d in shape)
            or math.prod(d for d in shape if d) * np_dtype.itemsize > sys.maxsize):
        raise CheckpointError(f"{where}: entry {name} has shape {_brief(shape)}, too "
                              "large for any array")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int for o in offsets) or not 0 <= offsets[0] <= offsets[1]
            or offsets[1] > sys.maxsize):
        raise CheckpointError(f"{where}: entry {name} has invalid data_offsets "
                              f"{_brief(offsets)}")
    need = math.prod(shape) * np_dtype.itemsize
    if offsets[1] - offsets[0] != need:
        raise CheckpointError(f"{where}: entry {name} spans {offsets[1] - offsets[0]} bytes "
                              f"but shape {_brief(shape)} of {dtype} needs {need}")
    return np_dtype, shape, offsets[0], offsets[1]


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parse a safetensors file into name -> ndarray, validating every field before the
    data is read; raises CheckpointError naming the problem."""
    path = os.fspath(path)
    where = f"nn.load: {path!r}"
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header, meta, start = _header(f, size, where)
        entries = {name: _entry(name, info, where) for name, info in header.items()}
        end = 0
        for _, _, begin, stop in sorted(entries.values(), key=lambda e: (e[2], e[3])):
            if begin != end:
                raise CheckpointError(f"{where}: tensor data overlaps or leaves a gap at "
                                      f"byte {end}")
            end = stop
        have = size - start
        if have < end:
            raise CheckpointError(f"{where} is truncated: the header describes {end} bytes "
                                  f"of tensor data but the file holds {have}")
        if have > end:
            raise CheckpointError(f"{where}: {have - end} bytes after the last tensor "
                                  "(corrupted or not a safetensors file)")
        data = _read(f, end, where)
    checksum = meta.get(_CHECKSUM)
    if checksum is not None and hashlib.sha256(data).hexdigest() != checksum:
        raise CheckpointError(f"{where} is corrupted: the data does not match its checksum")
    return {name: np.frombuffer(data, dtype=dt, count=math.prod(shape), offset=begin)
            .reshape(shape) for name, (dt, shape, begin, _) in entries.items()}


def load(module: Module, path: str | os.PathLike) -> Module:
    """Fill the module's parameters from a safetensors file written by `save` (or any
    safetensors file with the same names and shapes; floats of another width are converted
    to the model's dtype). On any mismatch or damage it
    raises, naming the problem, and leaves the module unchanged."""
    _check_module(module, "nn.load")
    arrays = read_safetensors(path)
    where = f"nn.load: {os.fspath(path)!r}"
    entries = module._all_named_parameters()
    missing, unexpected = (sorted(names) for names in match_names(entries, arrays))
    own = {name: p for name, p in entries if name in arrays}
    if missing or unexpected:
        parts = ([f"missing {missing}"] if missing else []) + (
            [f"unexpected {unexpected}"] if unexpected else [])
        raise CheckpointError(f"{where} does not match "
                              f"{type(module).__name__}: {'; '.join(parts)}")
    for name, p in own.items():
        arr = arrays[name]
        if arr.shape != p.shape:
            raise CheckpointError(f"{where}: {name!r} has shape {arr.shape} in the file but "
                                  f"{p.shape} in the model")
        # A float of another width (a float32 checkpoint from PyTorch into a float64
        # model, or little- vs big-endian) is converted, as load_state_dict does.
        if arr.dtype.kind != p.dtype.kind:
            raise CheckpointError(f"{where}: {name!r} has dtype {arr.dtype} in the file but "
                                  f"{p.dtype} in the model")
    module.load_state_dict(arrays)
    return module
