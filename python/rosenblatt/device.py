"""rosenblatt.device: where a tensor's storage lives, as torch.device ("cpu", "cuda", "cuda:1")."""
from __future__ import annotations

_TYPES = ("cpu", "cuda")


class device:  # noqa: N801 - torch's name
    """device("cuda:1"), device("cuda", 1), device("cpu"); `.type` and `.index` (None when not given)."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int | None = None):  # noqa: A002 - torch's argument name
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, int) and not isinstance(type, bool):  # torch.device(0) is cuda:0
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type!r}")
        name, _, number = type.partition(":")
        if number:
            if index is not None:
                raise ValueError(f"device: index given twice in device({type!r}, {index!r})")
            try:
                index = int(number)
            except ValueError:
                raise ValueError(f"device: invalid device string {type!r}") from None
        if name not in _TYPES:
            raise ValueError(f"device: expected one of cpu, cuda device type at start of device string, got {type!r}")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise ValueError(f"device: the index must be a non-negative int, got {index!r}")
        if name == "cpu" and index not in (None, 0):
            raise ValueError(f"device: the cpu device has no index {index}")
        object.__setattr__(self, "type", name)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device is immutable")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type={self.type!r})" if self.index is None else f"device(type={self.type!r}, index={self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except (TypeError, ValueError):
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):
        return device, (self.type, self.index)


CPU = device("cpu")
