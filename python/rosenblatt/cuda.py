"""CUDA device queries. Safe on machines with no GPU, no driver, or a CPU-only build."""
from __future__ import annotations

try:
    from . import _cuda
except ImportError:  # built without CUDA
    _cuda = None


def is_compiled() -> bool:
    return _cuda is not None


def is_available() -> bool:
    return _cuda is not None and _cuda.device_count() > 0


def device_count() -> int:
    return 0 if _cuda is None else _cuda.device_count()


def get_device_name(device: int = 0) -> str:
    if _cuda is None:
        raise RuntimeError("get_device_name: rosenblatt was built without CUDA")
    count = _cuda.device_count()
    if not 0 <= device < count:
        raise RuntimeError(f"get_device_name: no CUDA device {device} (device_count() is {count})")
    return _cuda.get_device_name(device)
