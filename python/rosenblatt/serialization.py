"""Checkpoints in the safetensors format: `rosenblatt.save(obj, path)`, `rosenblatt.load(path)`.

`obj` is a tensor or a nested structure of dicts, lists and tuples holding tensors, NumPy
arrays, numbers, strings and None (model and optimizer state_dicts, epoch counters, ...).

Layout of the file:
  * every tensor or array is a safetensors tensor named by its path with dots
    ("model.fc.weight", "optimizer.state.0.exp_avg"), so a plain model state_dict is exactly
    the file PyTorch tooling expects and `safetensors.torch.load_file` reads it as is;
  * the rest of the structure, with a reference in place of each tensor, is JSON in the
    header's metadata ("rosenblatt.structure"), next to a CRC-32 of the tensor bytes;
  * nothing is ever executed when loading (no pickle).

Writes are atomic: the file is written under a temporary name in the same directory, flushed
to disk, then renamed over the target, so a crash or kill during `save` leaves the previous
file intact. `load` raises CheckpointError (a ValueError) for a truncated or corrupt file.
"""
from __future__ import annotations

import json
import numbers
import os
import tempfile
import zlib

import numpy as np

from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

FORMAT_VERSION = "1"
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__")


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupt, or not a safetensors file."""


# ---- flattening: structure -> (JSON skeleton, {name: array}) --------------------------------------
def _flatten(value, path: list, arrays: dict):
    if isinstance(value, (Tensor, np.ndarray)):
        array = value.cpu().data if isinstance(value, Tensor) else value  # CUDA tensors are saved from the host
        name = ".".join(path) if path else "tensor"
        if name in arrays:
            raise ValueError(f"rosenblatt.save: two entries flatten to the same tensor name {name!r}")
        little_endian = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        arrays[name] = np.asarray(array, dtype=little_endian, order="C")  # (keeps 0-d arrays 0-d)
        return {"__tensor__" if isinstance(value, Tensor) else "__ndarray__": name}
    if isinstance(value, (np.generic,)) and not isinstance(value, np.ndarray):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"rosenblatt.save: dict keys must be str or int, got {key!r} at "
                                f"{'.'.join(path) or 'the top level'}")
        items = [(key, _flatten(item, path + [str(key)], arrays)) for key, item in value.items()]
        if all(isinstance(key, str) and key not in _TAGS for key in value):
            return dict(items)
        return {"__dict__": [list(item) for item in items]}  # int keys survive the round trip
    if isinstance(value, (list, tuple)):
        items = [_flatten(item, path + [str(i)], arrays) for i, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if hasattr(value, "state_dict"):
        raise TypeError(f"rosenblatt.save: got a {type(value).__name__}; save its .state_dict() instead")
    raise TypeError(f"rosenblatt.save: cannot save a value of type {type(value).__name__} at "
                    f"{'.'.join(path) or 'the top level'} (tensors, arrays, numbers, strings, None "
                    f"and dicts/lists/tuples of them can be saved)")


def _unflatten(skeleton, arrays: dict, path: str):
    if isinstance(skeleton, list):
        return [_unflatten(item, arrays, path) for item in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if len(skeleton) == 1:
        (tag, content), = skeleton.items()
        if tag in ("__tensor__", "__ndarray__"):
            if content not in arrays:
                raise CheckpointError(f"rosenblatt.load: {path}: the structure refers to tensor "
                                      f"{content!r}, which the file does not hold")
            return Tensor(arrays[content]) if tag == "__tensor__" else arrays[content]
        if tag == "__tuple__":
            return tuple(_unflatten(item, arrays, path) for item in content)
        if tag == "__dict__":
            return {key: _unflatten(item, arrays, path) for key, item in content}
    return {key: _unflatten(item, arrays, path) for key, item in skeleton.items()}


def _crc32(arrays: dict) -> str:
    crc = 0
    for name in sorted(arrays):
        crc = zlib.crc32(name.encode(), crc)
        if arrays[name].size:
            crc = zlib.crc32(memoryview(arrays[name]).cast("B"), crc)
    return f"{crc:08x}"


# ---- save ----------------------------------------------------------------------------------------
def save(obj, path) -> None:
    """Write obj to path in the safetensors format, atomically."""
    from safetensors.numpy import save as serialize  # imported here: `import rosenblatt` stays light

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"rosenblatt.save: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    arrays: dict = {}
    skeleton = _flatten(obj, [], arrays)
    metadata = {"format": "pt",  # what PyTorch tooling (e.g. transformers) looks for
                "rosenblatt.format": FORMAT_VERSION,
                "rosenblatt.structure": json.dumps(skeleton),
                "rosenblatt.crc32": _crc32(arrays)}
    try:
        content = serialize(arrays, metadata=metadata)
    except Exception as error:  # e.g. a dtype safetensors cannot store
        raise TypeError(f"rosenblatt.save: {error}") from error

    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(directory)  # make the rename itself durable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---- load ----------------------------------------------------------------------------------------
def load(path):
    """Read a checkpoint written by `save` (or any safetensors file, as a flat dict of Tensors)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_bytes

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"rosenblatt.load: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    with open(path, "rb") as file:
        content = file.read()
    header = _read_header(content, path)
    try:
        arrays = load_bytes(content)
    except SafetensorError as error:
        raise CheckpointError(f"rosenblatt.load: {path} is not a valid safetensors file "
                              f"(truncated or corrupt): {error}") from None
    metadata = header.get("__metadata__") or {}
    if "rosenblatt.structure" not in metadata:  # written by another tool: a flat state dict
        return {name: Tensor(array) for name, array in arrays.items()}
    if metadata.get("rosenblatt.crc32") != _crc32(arrays):
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt: the tensor data does not match "
                              f"its checksum")
    try:
        skeleton = json.loads(metadata["rosenblatt.structure"])
    except ValueError as error:
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt: unreadable structure ({error})") from None
    return _unflatten(skeleton, arrays, path)


def _read_header(content: bytes, path: str) -> dict:
    """The JSON header, with a clear error when the file is cut short or not safetensors."""
    if len(content) < 8:
        raise CheckpointError(f"rosenblatt.load: {path} is truncated ({len(content)} bytes) or not a checkpoint")
    size = int.from_bytes(content[:8], "little")
    if 8 + size > len(content):
        raise CheckpointError(f"rosenblatt.load: {path} is truncated or not a safetensors file: its header "
                              f"claims {size} bytes but the file has {len(content)}")
    try:
        header = json.loads(content[8:8 + size])
    except ValueError:
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt or not a safetensors file "
                              f"(unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt (the header is not a JSON object)")
    return header


