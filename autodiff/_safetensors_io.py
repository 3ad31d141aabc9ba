"""One safetensors file out, one in: the file layer under `nn.save`/`nn.load` and
`autodiff.save`/`autodiff.load`.

The format is parsed and written by the `safetensors` package (its reference
implementation, fuzzed by its maintainers); this module adds what a checkpoint needs on top:
an atomic write that keeps an existing file's permissions, a checksum, one exact read of a
file that may change underneath, numpy's limits, and `CheckpointError`s naming the file.
Nothing read from a file is ever unpickled or executed.

Layout: an 8-byte little-endian header length N, N bytes of JSON header
`{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}`, then the raw
little-endian bytes of every tensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import struct

import numpy as np
import safetensors
import safetensors.numpy

# The safetensors dtypes numpy can hold (bfloat16 and the float8s it cannot).
NUMPY_DTYPES = {code: np.dtype(spec) for code, spec in {
    "BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4",
    "I32": "<i4", "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8",
    "C64": "<c8"}.items()}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in NUMPY_DTYPES.items()}
MAX_DIMS = 64  # numpy's limit
DIGEST_KEY = "autodiff.sha256"
_LEGACY_DIGEST_KEY = "nn.sha256"  # sha256 of the data section, in files of the first nn.save


class CheckpointError(ValueError):
    """A file that is not a valid checkpoint (damaged, foreign, or not matching the model)."""


def dtype_code(dtype: np.dtype) -> str | None:
    """The safetensors name of a numpy dtype in either byte order ("F64"), or None."""
    dtype = np.dtype(dtype)
    return _CODES.get((dtype.kind, dtype.itemsize))


def brief(x, limit: int = 60) -> str:
    """repr(x), cut short: a damaged header can hold anything, of any size."""
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _unique(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"repeated key {brief(next(k for k in keys if keys.count(k) > 1))}")
    return dict(pairs)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str | bytes):
    """json.loads refusing repeated keys (two readers could disagree on which one counts)
    and NaN/Infinity; raises ValueError or RecursionError."""
    return json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)


def digest(tensors: dict[str, tuple[str, list, object]], metadata: dict[str, str]) -> str:
    """SHA-256 over the metadata (all but this digest), every tensor's name, dtype and shape,
    then every tensor's bytes, in name order: a changed bit in anything that decides what
    is loaded is caught. `tensors` maps name -> (dtype code, shape, little-endian buffer)."""
    described = json.dumps([sorted((k, v) for k, v in metadata.items() if k != DIGEST_KEY),
                            [[name, code, list(shape)]
                             for name, (code, shape, _) in sorted(tensors.items())]])
    h = hashlib.sha256(len(described).to_bytes(8, "little") + described.encode())
    for name in sorted(tensors):
        h.update(tensors[name][2])
    return h.hexdigest()


def write(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, str],
          where: str) -> None:
    """Write arrays (name -> ndarray) and string metadata, plus their digest, as one
    safetensors file at exactly `path`; `where` ("nn.save") starts every error."""
    tensors, specs = {}, {}
    for name, arr in arrays.items():
        code = dtype_code(arr.dtype)
        if code is None:
            raise TypeError(f"{where}: {name!r} has dtype {arr.dtype}, which safetensors "
                            "cannot store")
        if name == "__metadata__":  # the header's own key
            raise ValueError(f"{where}: a tensor cannot be named '__metadata__'")
        # contiguous and little-endian, as the format stores it (and safetensors.numpy
        # reads the buffer behind the pointer as is, strides or not)
        tensors[name] = arr.astype(NUMPY_DTYPES[code], order="C", copy=False)
        specs[name] = (code, arr.shape, tensors[name])
    metadata = {**metadata, DIGEST_KEY: digest(specs, metadata)}
    try:
        blob = safetensors.numpy.save(tensors, metadata=metadata)
    except safetensors.SafetensorError as err:
        raise ValueError(f"{where}: safetensors cannot write this: {err}") from None
    _replace(os.fspath(path), blob)


def _replace(path: str, blob: bytes) -> None:
    """Write beside the target, flush to disk and rename, so a failed or interrupted save
    never leaves half a file; replacing a file keeps its permissions."""
    tmp = f"{path}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: the umask's permissions, as open() gives
    try:
        with open(tmp, "xb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _read_all(path: str, where: str) -> bytes:
    """The whole file in one read, checked against its size: the file can shrink or grow
    while it is read. (Not mmap, which safe_open uses: a file that shrinks under a mapping
    kills the process with SIGBUS instead of raising.)"""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        blob = f.read(size)
        if len(blob) != size:
            raise CheckpointError(f"{where} is truncated: expected {size} bytes but the file "
                                  f"ends after {len(blob)} (did it change while being read?)")
        if f.read(1):
            raise CheckpointError(f"{where} grew while being read; read it again once it "
                                  "is written")
    return blob


def _looks_pickled(blob: bytes) -> str:
    if blob.startswith(b"PK\x03\x04") or blob[:1] == b"\x80":
        return (" (it looks like a torch.save zip or a pickle, which is never unpickled "
                "here: convert it with torch.load and safetensors.torch.save_file)")
    return ""


def _diagnosis(blob: bytes, n: int, reason: str) -> str:
    """Why safetensors refused the file: plainer words for data that is short or long, when
    the header is readable JSON; else safetensors' own reason."""
    have = len(blob) - 8 - n
    try:
        header = json.loads(blob[8:8 + n])
        end = max((e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"),
                  default=0)
    except Exception:  # a hostile header can fail in any way; the reason below still holds
        end = None
    if type(end) is not int or end > 2 ** 64:  # not an offset safetensors would accept
        end = None
    if end is not None and end > have:
        return (f"is truncated: its header describes {end} bytes of tensor data but the "
                f"file holds {have}")
    if end is not None and end < have:
        return f"has {have - end} bytes after the last tensor (corrupted or not safetensors)"
    reason = reason.removeprefix("Error while deserializing: ")
    return f"is not a valid safetensors file: {reason}"


def read(path: str | os.PathLike, where: str, *, require_digest: bool = False
         ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse a safetensors file into (name -> ndarray, metadata), checking the digest when
    the file has one (or always, with require_digest); raises CheckpointError naming the
    file and the problem. `where` is e.g. "nn.load: 'model.safetensors'"."""
    blob = _read_all(os.fspath(path), where)
    if len(blob) < 8:
        raise CheckpointError(f"{where} is not a safetensors file: only {len(blob)} bytes"
                              f"{_looks_pickled(blob)}")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise CheckpointError(f"{where} is truncated or not a safetensors file: its first 8 "
                              f"bytes announce a header of {n} bytes but {len(blob) - 8} "
                              f"follow{_looks_pickled(blob)}")
    try:
        entries = safetensors.deserialize(blob)
    except safetensors.SafetensorError as err:
        raise CheckpointError(f"{where} {_diagnosis(blob, n, str(err))}") from None
    # safetensors has no bytes -> metadata call (safe_open would reopen the path, which may
    # have changed since); read it from the header safetensors has just validated.
    try:
        metadata = strict_json(blob[8:8 + n]).get("__metadata__") or {}
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{where} has a header only safetensors accepts: {err}") from None
    tensors = {name: (e["dtype"], e["shape"], e["data"]) for name, e in entries}
    if metadata.get(DIGEST_KEY) is None and require_digest:
        raise CheckpointError(f"{where} has no {DIGEST_KEY!r} checksum in its metadata: it "
                              "was not written by autodiff, or was altered")
    if DIGEST_KEY in metadata and metadata[DIGEST_KEY] != digest(tensors, metadata):
        raise CheckpointError(f"{where} is corrupted or was altered: its contents do not "
                              "match their checksum")
    if (_LEGACY_DIGEST_KEY in metadata and metadata[_LEGACY_DIGEST_KEY]
            != hashlib.sha256(blob[8 + n:]).hexdigest()):
        raise CheckpointError(f"{where} is corrupted: the data does not match its checksum")
    return {name: _array(name, *tensor, where) for name, tensor in tensors.items()}, metadata


def _array(name: str, code: str, shape: list, data, where: str) -> np.ndarray:
    """The ndarray over one tensor's bytes (whose length safetensors has checked)."""
    dtype = NUMPY_DTYPES.get(code)
    if dtype is None:
        raise CheckpointError(f"{where}: tensor {brief(name)} has dtype {code}, which numpy "
                              "cannot hold")
    if len(shape) > MAX_DIMS:
        raise CheckpointError(f"{where}: tensor {brief(name)} has {len(shape)} dimensions; "
                              f"numpy allows at most {MAX_DIMS}")
    try:
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    except (ValueError, OverflowError):  # e.g. (2**62, 0): empty, yet too big for numpy
        raise CheckpointError(f"{where}: tensor {brief(name)} has shape {brief(shape)}, too "
                              "large for any array") from None
