"""Checkpoints in the safetensors format: `rosenblatt.save(obj, path)`, `rosenblatt.load(path)`.

`obj` is a tensor or a nested structure of dicts, lists and tuples holding tensors, NumPy
arrays, numbers, strings and None (model and optimizer state_dicts, epoch counters, ...).

Layout of the file:
  * every tensor or array is a safetensors tensor named by its path with dots
    ("model.fc.weight", "optimizer.state.0.exp_avg"), so a plain model state_dict is exactly
    the file PyTorch tooling expects and `safetensors.torch.load_file` reads it as is;
  * the rest of the structure, with a reference in place of each tensor, is JSON in the
    header's metadata ("rosenblatt.structure");
  * two CRC-32s make any damage an error rather than different content: "rosenblatt.crc32" covers
    the tensor names and bytes, "rosenblatt.header_crc32" (format 2) everything else the header
    says: each tensor's dtype, shape and offsets, the structure and the other metadata. Format 1
    files (written before the header checksum existed) still load, checked by the first alone;
  * nothing is ever executed when loading (no pickle).

Writes are atomic: the file is written under a temporary name in the same directory, flushed
to disk, then renamed over the target, so a crash or kill during `save` leaves the previous
file intact. The temporary's name holds the writer's process id, so that the next save to the
same path can delete one left behind by a killed writer. `load` raises CheckpointError (a
ValueError) naming the file for a truncated, corrupt or malformed file.
"""
from __future__ import annotations

import json
import numbers
import os
import re
import tempfile
import zlib

import numpy as np

from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

FORMAT_VERSION = "2"
_HEADER_CRC = "rosenblatt.header_crc32"
_FORMAT_KEYS = {  # the rosenblatt.* metadata keys of each format version `load` reads
    "1": {"rosenblatt.format", "rosenblatt.structure", "rosenblatt.crc32"},
    "2": {"rosenblatt.format", "rosenblatt.structure", "rosenblatt.crc32", _HEADER_CRC},
}
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__")
_MAX_DEPTH = 100  # nesting levels of a saved structure; far beyond any state_dict, well within the stack
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "U64": np.uint64,
           "I32": np.int32, "U32": np.uint32, "I16": np.int16, "U16": np.uint16, "I8": np.int8,
           "U8": np.uint8, "BOOL": np.bool_, "C64": np.complex64}  # safetensors dtype -> NumPy dtype
_DTYPE_NAMES = {np.dtype(dtype): name for name, dtype in _DTYPES.items()}


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupt, malformed, or not a safetensors file."""


# ---- flattening: structure -> (JSON skeleton, {name: array}) --------------------------------------
def _flatten(value, path: list, arrays: dict):
    if len(path) > _MAX_DEPTH:
        raise ValueError(f"rosenblatt.save: the structure is nested more than {_MAX_DEPTH} levels deep "
                         f"(at {'.'.join(path[:5])}...)")
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


def _unflatten(skeleton, arrays: dict, file: str, path: list):
    """The inverse of _flatten; anything _flatten cannot have written raises CheckpointError."""
    if len(path) > _MAX_DEPTH:
        raise _malformed(file, path[:5] + ["..."], f"it is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(skeleton, list):
        return [_unflatten(item, arrays, file, path + [str(i)]) for i, item in enumerate(skeleton)]
    if not isinstance(skeleton, dict):
        return skeleton  # None, bool, int, float or str: JSON holds nothing else
    tags = [key for key in skeleton if key in _TAGS]
    if not tags:
        return {key: _unflatten(item, arrays, file, path + [key]) for key, item in skeleton.items()}
    if len(skeleton) > 1:
        raise _malformed(file, path, f"the tag {tags[0]!r} shares its dict with other keys")
    (tag, content), = skeleton.items()
    if tag in ("__tensor__", "__ndarray__"):
        if not isinstance(content, str):
            raise _malformed(file, path, f"{tag} holds {_short(content)}, not a tensor name")
        if content not in arrays:
            raise CheckpointError(f"rosenblatt.load: {file}: the structure refers to tensor "
                                  f"{content!r}, which the file does not hold")
        return Tensor(arrays[content]) if tag == "__tensor__" else arrays[content]
    if not isinstance(content, list):
        raise _malformed(file, path, f"{tag} holds {_short(content)}, not a list")
    if tag == "__tuple__":
        return tuple(_unflatten(item, arrays, file, path + [str(i)]) for i, item in enumerate(content))
    result = {}  # __dict__: [key, value] pairs
    for pair in content:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                and not isinstance(pair[0], bool)):
            raise _malformed(file, path, f"__dict__ holds {_short(pair)}, not a [key, value] pair "
                                         f"with a str or int key")
        result[pair[0]] = _unflatten(pair[1], arrays, file, path + [str(pair[0])])
    return result


def _malformed(file: str, path: list, what: str) -> CheckpointError:
    return CheckpointError(f"rosenblatt.load: {file} is corrupt: malformed structure at "
                           f"{'.'.join(path) or 'the top level'}: {what}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- checksums -----------------------------------------------------------------------------------
def _crc32(buffers: dict) -> str:
    """Of the tensor names and bytes ({name: array or bytes}); the same in format 1 and 2."""
    crc = 0
    for name in sorted(buffers):
        crc = zlib.crc32(name.encode(), crc)
        crc = zlib.crc32(buffers[name], crc)
    return f"{crc:08x}"


def _header_crc32(header: dict) -> str:
    """Of everything the header says (tensor dtypes, shapes, offsets, all metadata) but this CRC itself.
    Computed over a canonical JSON text, so it does not depend on how the header was written."""
    metadata = {key: value for key, value in header.get("__metadata__", {}).items() if key != _HEADER_CRC}
    text = json.dumps(dict(header, __metadata__=metadata), sort_keys=True, separators=(",", ":"))
    return f"{zlib.crc32(text.encode()):08x}"


# ---- save ----------------------------------------------------------------------------------------
def save(obj, path) -> None:
    """Write obj to path in the safetensors format, atomically."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"rosenblatt.save: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    arrays: dict = {}
    skeleton = _flatten(obj, [], arrays)
    metadata = {"format": "pt",  # what PyTorch tooling (e.g. transformers) looks for
                "rosenblatt.format": FORMAT_VERSION,
                "rosenblatt.structure": json.dumps(skeleton),
                "rosenblatt.crc32": _crc32(arrays)}
    header, order = _encode_header(arrays, metadata)

    directory, basename = os.path.split(os.path.abspath(path))
    _remove_stale_temporaries(directory, basename)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{basename}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(header)
            for name in order:
                file.write(arrays[name])
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


def _encode_header(arrays: dict, metadata: dict) -> tuple[bytes, list]:
    """The safetensors header (size, JSON) and the order the tensors' bytes follow it in.
    Written here rather than by safetensors.serialize because the header checksum covers the
    offsets, which are only known once the layout is chosen."""
    if "__metadata__" in arrays:
        raise ValueError("rosenblatt.save: '__metadata__' is reserved by safetensors and cannot name a tensor")
    # Widest dtype first and the header padded to 8 bytes: every tensor starts aligned, as in safetensors.
    order = sorted(arrays, key=lambda name: (-arrays[name].dtype.itemsize, name))
    header, offset = {"__metadata__": metadata}, 0
    for name in order:
        array = arrays[name]
        if array.dtype not in _DTYPE_NAMES:
            raise TypeError(f"rosenblatt.save: {name!r} has dtype {array.dtype}, which safetensors cannot "
                            f"store (it stores {', '.join(str(np.dtype(d)) for d in _DTYPES.values())})")
        header[name] = {"dtype": _DTYPE_NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    metadata[_HEADER_CRC] = _header_crc32(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, order


def _remove_stale_temporaries(directory: str, basename: str) -> None:
    """Delete the temporaries of earlier saves to this path whose process is gone (killed mid-save).
    Only names this module makes are touched; a live writer's temporary is left alone."""
    if os.name != "posix":
        return  # os.kill(pid, 0) probes a process only on POSIX (on Windows it would end it)
    pattern = re.compile(rf"\.{re.escape(basename)}\.(\d+)\.[a-z0-9_]+\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and _process_is_gone(int(match[1])):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # removed meanwhile by another save, or not ours to remove


def _process_is_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False  # another thread of this process may be saving
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # alive under another user, or not a pid we can ask about
    return False


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
    """Read a checkpoint written by `save` (or any safetensors file, as a flat dict of Tensors).

    bfloat16 tensors (as PyTorch saves them) load as float32, which holds every bfloat16 value
    exactly: NumPy has no bfloat16."""
    from safetensors import SafetensorError, deserialize

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"rosenblatt.load: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    with open(path, "rb") as file:
        content = file.read()
    header = _read_header(content, path)
    try:
        tensors = deserialize(content)  # checks that the offsets tile the data exactly
    except SafetensorError as error:
        raise CheckpointError(f"rosenblatt.load: {path} is not a valid safetensors file "
                              f"(truncated or corrupt): {error}") from None
    arrays = {name: _to_array(name, info, path) for name, info in tensors}
    metadata = header.get("__metadata__") or {}
    if not any(key.startswith("rosenblatt.") for key in metadata):  # written by another tool: a flat state dict
        return {name: Tensor(array) for name, array in arrays.items()}
    _verify(header, metadata, {name: info["data"] for name, info in tensors}, path)
    try:
        skeleton = json.loads(metadata["rosenblatt.structure"])
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt: unreadable structure "
                              f"({type(error).__name__}: {error})") from None
    return _unflatten(skeleton, arrays, path, [])


def _to_array(name: str, info: dict, path: str) -> np.ndarray:
    """A tensor of deserialize's output as a NumPy array; bfloat16 widens to float32."""
    dtype, shape, data = info["dtype"], info["shape"], info["data"]
    if dtype == "BF16":  # the upper half of a float32
        return (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype not in _DTYPES:
        raise CheckpointError(f"rosenblatt.load: {path}: tensor {name!r} has dtype {dtype}, which NumPy "
                              f"cannot hold (readable: {', '.join(_DTYPES)}, BF16)")
    return np.frombuffer(data, np.dtype(_DTYPES[dtype]).newbyteorder("<")).reshape(shape)


def _verify(header: dict, metadata: dict, data: dict, path: str) -> None:
    """Raise CheckpointError unless a rosenblatt checkpoint's metadata and checksums are consistent."""
    version = metadata.get("rosenblatt.format")
    if version not in _FORMAT_KEYS:
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt or from a newer rosenblatt: unknown "
                              f"checkpoint format {version!r} (this version reads {', '.join(_FORMAT_KEYS)})")
    keys = {key for key in metadata if key.startswith("rosenblatt.")}
    if keys != _FORMAT_KEYS[version]:
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt: format {version} has the metadata keys "
                              f"{sorted(_FORMAT_KEYS[version])}, the file has {sorted(keys)}")
    if _HEADER_CRC in keys and metadata[_HEADER_CRC] != _header_crc32(header):
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt: the header (tensor dtypes, shapes, "
                              f"offsets or the structure) does not match its checksum")
    if metadata["rosenblatt.crc32"] != _crc32(data):
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt: the tensor data does not match "
                              f"its checksum")


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
    except (ValueError, RecursionError):
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt or not a safetensors file "
                              f"(unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"rosenblatt.load: {path} is corrupt (the header is not a JSON object)")
    return header
