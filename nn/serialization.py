"""`save` and `load`: a module's parameters as one safetensors file, written and parsed by
the `safetensors` package (nothing is ever unpickled or executed).

The file holds the state_dict under its PyTorch names ("0.weight"), so PyTorch reads it
with `safetensors.torch.load_file` and we read PyTorch's. The file layer (atomic write,
checksum, exact read, errors naming the file) is shared with `autodiff.save` in
`autodiff._safetensors_io`.
"""

from __future__ import annotations

import os

from autodiff._safetensors_io import CheckpointError, read, write

from .module import Module, match_names

__all__ = ["save", "load", "CheckpointError"]


def _check_module(module, where: str) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{where}: expected an nn.Module, got {type(module).__name__} "
                        "(scalar Value models have no named parameters to save)")


def save(module: Module, path: str | os.PathLike) -> None:
    """Write the module's state_dict to exactly `path` in the safetensors format."""
    _check_module(module, "nn.save")
    write(path, module.state_dict(), {"format": "np"}, "nn.save")


def load(module: Module, path: str | os.PathLike) -> Module:
    """Fill the module's parameters from a safetensors file written by `save` (or any
    safetensors file with the same names and shapes; floats of another width are converted
    to the model's dtype). On any mismatch or damage it raises, naming the problem, and
    leaves the module unchanged."""
    _check_module(module, "nn.load")
    where = f"nn.load: {os.fspath(path)!r}"
    arrays, _ = read(path, where)
    entries = module._all_named_parameters(buffers=True)  # (batch norm keeps running statistics)
    missing, unexpected = (sorted(names) for names in match_names(entries, arrays))
    if missing or unexpected:
        parts = ([f"missing {missing}"] if missing else []) + (
            [f"unexpected {unexpected}"] if unexpected else [])
        raise CheckpointError(f"{where} does not match "
                              f"{type(module).__name__}: {'; '.join(parts)}")
    for name, p in entries:
        if name not in arrays:  # a tied parameter, given under another of its names
            continue
        arr = arrays[name]
        if arr.shape != p.shape:
            raise CheckpointError(f"{where}: {name!r} has shape {arr.shape} in the file but "
                                  f"{p.shape} in the model")
        # A float of another width (a float32 checkpoint from PyTorch into a float64
        # model) is converted, as load_state_dict does; another kind is refused.
        if arr.dtype.kind != p.dtype.kind:
            raise CheckpointError(f"{where}: {name!r} has dtype {arr.dtype} in the file but "
                                  f"{p.dtype} in the model")
    module.load_state_dict(arrays)
    return module
