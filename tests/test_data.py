"""Dataset, TensorDataset and DataLoader: batching, shuffling, drop_last, seeding, collation."""
import numpy as np
import pytest

import rosenblatt
from rosenblatt.data import DataLoader, Dataset, TensorDataset, default_collate
from rosenblatt.tensor import Tensor


def _dataset(n=10):
    inputs = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return TensorDataset(Tensor(inputs), Tensor(np.arange(n)))


def test_tensor_dataset_indexing_and_length():
    dataset = _dataset()
    assert len(dataset) == 10
    x, y = dataset[4]
    assert np.array_equal(x.data, [12, 13, 14]) and y.item() == 4
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(Tensor(np.zeros((3, 2))), Tensor(np.zeros(4)))
    with pytest.raises(ValueError):
        TensorDataset()


@pytest.mark.parametrize("batch_size, drop_last, sizes", [
    (4, False, [4, 4, 2]), (4, True, [4, 4]), (5, False, [5, 5]), (20, False, [10]), (20, True, []),
])
def test_batches_in_order(batch_size, drop_last, sizes):
    loader = DataLoader(_dataset(), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert [len(y) for _, y in batches] == sizes and len(loader) == len(sizes)
    if batches:
        labels = np.concatenate([y.data for _, y in batches])
        assert np.array_equal(labels, np.arange(len(labels)))
        assert all(x.shape[1:] == (3,) and x.dtype == np.float32 for x, _ in batches)


def test_shuffle_visits_every_example_once_in_a_new_order_each_epoch():
    loader = DataLoader(_dataset(50), batch_size=8, shuffle=True, generator=np.random.default_rng(0))
    first = np.concatenate([y.data for _, y in loader])
    second = np.concatenate([y.data for _, y in loader])
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert not np.array_equal(first, second) and not np.array_equal(first, np.arange(50))
    x, y = next(iter(loader))
    assert np.array_equal(x.data[:, 0], 3 * y.data)  # inputs stay paired with their labels


def test_shuffle_is_reproducible_with_a_seed():
    def order(**kwargs):
        return np.concatenate([y.data for _, y in DataLoader(_dataset(30), batch_size=7, shuffle=True, **kwargs)])
    assert np.array_equal(order(generator=5), order(generator=5))
    assert not np.array_equal(order(generator=5), order(generator=6))
    rosenblatt.manual_seed(3)
    a = order()
    rosenblatt.manual_seed(3)
    assert np.array_equal(a, order())


class Squares(Dataset):
    """A dataset computed on the fly, with examples of mixed structure."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float32), "pair": (i, float(i) / 2), "name": f"#{i}"}


def test_default_collate_keeps_structure():
    batch = next(iter(DataLoader(Squares(), batch_size=3)))
    assert batch["x"].shape == (3, 2) and batch["x"].dtype == np.float32
    index, half = batch["pair"]
    assert index.dtype == np.int64 and np.array_equal(index.data, [0, 1, 2])
    assert half.dtype == np.float32 and np.allclose(half.data, [0, 0.5, 1])
    assert batch["name"] == ["#0", "#1", "#2"]
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="cannot batch"):
        default_collate([object(), object()])


def test_custom_collate_fn_receives_examples():
    seen = []

    def collate(examples):
        seen.append(len(examples))
        return default_collate(examples)

    batches = list(DataLoader(_dataset(5), batch_size=2, collate_fn=collate))
    assert seen == [2, 2, 1] and batches[0][0].shape == (2, 3)


def test_batch_size_none_yields_examples():
    items = list(DataLoader(_dataset(3), batch_size=None))
    assert len(items) == 3 and items[1][0].shape == (3,)


@pytest.mark.parametrize("kwargs, error", [
    (dict(batch_size=0), ValueError), (dict(batch_size=2.5), ValueError),
    (dict(num_workers=2), ValueError), (dict(generator="seed"), TypeError),
    (dict(shuffle=True, sampler=[0, 1]), ValueError),
])
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error, match="DataLoader"):
        DataLoader(_dataset(), **kwargs)


def test_sampler_gives_the_order():
    loader = DataLoader(_dataset(), batch_size=2, sampler=[9, 0, 5])
    assert [list(y.data) for _, y in loader] == [[9, 0], [5]] and len(loader) == 2


def test_default_collate_of_mixed_numbers_is_float():
    # The first example decided: [1, 2.5] became int64 [1, 2].
    np.testing.assert_array_equal(default_collate([1, 2.5]).numpy(), np.array([1.0, 2.5], np.float32))
    assert default_collate([1, 2]).dtype == np.int64


def test_sampler_indices_must_be_integers():
    loader = DataLoader(TensorDataset(rosenblatt.arange(4.0)), batch_size=2, sampler=[0, 1.7])
    with pytest.raises(TypeError, match=r"DataLoader: the sampler must give integer indices, got 1.7"):
        list(loader)
    assert [b[0].tolist() for b in DataLoader(TensorDataset(rosenblatt.arange(4.0)), batch_size=2,
                                               sampler=np.array([3, 0]))] == [[3.0, 0.0]]
