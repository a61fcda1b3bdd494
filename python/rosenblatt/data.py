"""Datasets and mini-batch loading, as torch.utils.data.

A TensorDataset is sliced a whole batch at a time (one fancy-indexing call per tensor);
other datasets are read example by example and the examples stacked by `default_collate`.
"""
from __future__ import annotations

import numbers

import numpy as np

from .random import default_generator
from .tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate"]


class Dataset:
    """A map-style dataset: `dataset[i]` is the i-th example and `len(dataset)` their number."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} does not implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not implement __len__")


class TensorDataset(Dataset):
    """Examples are rows (first-dimension slices) of the given tensors, which must agree in length."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        lengths = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in lengths or len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors, shapes "
                             f"{[t.shape for t in self.tensors]}")

    def __getitem__(self, index):
        return tuple(Tensor(t.data[index]) for t in self.tensors)

    def __getitems__(self, indices):
        """A whole batch at once: each tensor indexed by the array of example indices."""
        indices = np.asarray(indices, dtype=np.int64)
        return tuple(Tensor(t.data[indices]) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


def default_collate(examples: list):
    """Stack a list of examples into a batch, keeping their structure: Tensors and arrays are
    stacked along a new first dimension, numbers become a 1-d Tensor (int64 when all are integers, else float32),
    tuples, lists and dicts are collated field by field, and strings stay a list."""
    first = examples[0]
    if isinstance(first, (Tensor, np.ndarray)):
        shapes = {np.shape(e.data if isinstance(e, Tensor) else e) for e in examples}
        if len(shapes) != 1:
            raise ValueError(f"default_collate: examples of different shapes {sorted(shapes)} cannot be stacked")
        return Tensor(np.stack([e.data if isinstance(e, Tensor) else e for e in examples]))
    if isinstance(first, (bool, np.bool_)):
        return Tensor(np.array(examples, dtype=np.bool_))
    if all(isinstance(e, numbers.Integral) for e in examples):
        return Tensor(np.array(examples, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.array(examples, dtype=np.float32))
    if isinstance(first, (str, bytes)):
        return list(examples)
    if isinstance(first, dict):
        return {key: default_collate([e[key] for e in examples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(e) != len(first) for e in examples):
            raise ValueError("default_collate: examples have different numbers of fields")
        fields = [default_collate(list(column)) for column in zip(*examples)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(f"default_collate: cannot batch examples of type {type(first).__name__}")


class DataLoader:
    """Iterate over a dataset in mini-batches.

    shuffle draws a fresh order every epoch from `generator` (a numpy Generator, an int seed,
    or None for rosenblatt's default generator, which `rosenblatt.manual_seed` seeds);
    drop_last drops a final incomplete batch; collate_fn turns a list of examples into a batch.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool = False, sampler=None,
                 num_workers: int = 0, collate_fn=None, drop_last: bool = False, generator=None):
        if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size should be a positive integer, got {batch_size!r}")
        if num_workers != 0:
            raise ValueError(f"DataLoader: only num_workers=0 is supported, got {num_workers}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if generator is not None and not isinstance(generator, (np.random.Generator, numbers.Integral)):
            raise TypeError(f"DataLoader: generator must be a numpy Generator or an int seed, "
                            f"got {type(generator).__name__}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = bool(drop_last)
        self.generator = np.random.default_rng(generator) if isinstance(generator, numbers.Integral) else generator

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            indices = list(self.sampler)
            for i in indices:  # np.fromiter truncated 1.7 to 1
                if not isinstance(i, numbers.Integral):
                    raise TypeError(f"DataLoader: the sampler must give integer indices, got {i!r} "
                                    f"({type(i).__name__})")
            return np.array(indices, dtype=np.int64)
        if self.shuffle:
            return (self.generator or default_generator()).permutation(len(self.dataset))
        return np.arange(len(self.dataset))

    def _fetch(self, indices: np.ndarray):
        if self.collate_fn is None and hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(indices)
        examples = [self.dataset[int(i)] for i in indices]
        return (self.collate_fn or default_collate)(examples)

    def __iter__(self):
        order = self._order()
        if self.batch_size is None:  # no batching: examples one by one, as torch
            for i in order:
                yield self.dataset[int(i)]
            return
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield self._fetch(order[start:start + self.batch_size])

    def __len__(self) -> int:
        count = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return count
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)
