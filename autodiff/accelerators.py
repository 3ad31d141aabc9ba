"""The device queries PyTorch programs make before choosing "cpu": `cuda.is_available()`,
`backends.mps.is_available()`, `accelerator.is_available()`. This library runs on the CPU
only, so each answers no (and `cuda.manual_seed` has no generator to seed)."""

from __future__ import annotations

from types import SimpleNamespace


def _no() -> bool:
    return False


def _no_accelerator():
    return None


def _nothing_to_seed(seed: int) -> None:
    """There is no CUDA generator; `autodiff.manual_seed` seeds the only one."""


cuda = SimpleNamespace(is_available=_no, device_count=lambda: 0, manual_seed=_nothing_to_seed,
                       manual_seed_all=_nothing_to_seed)
backends = SimpleNamespace(mps=SimpleNamespace(is_available=_no, is_built=_no),
                           cuda=SimpleNamespace(is_built=_no))
accelerator = SimpleNamespace(is_available=_no, current_accelerator=_no_accelerator,
                              device_count=lambda: 0)
