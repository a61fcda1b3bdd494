"""Sequence decoding (rosenblatt.nn.decoding) with a model on a CUDA device, run on the NumPy
stand-in for the CUDA backend (tests/fake_cuda.py): the searches send the ids to the state's device,
beam search selects the state's rows there, and scheduled sampling's choice is made there."""
import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.nn import decoding
from rosenblatt.tensor import Tensor


class Decoder(nn.Module):
    """Embedding -> GRU -> linear: a step function with an (L, B, H) state, as the examples' decoders."""

    def __init__(self, vocab=7, hidden=5):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 4)
        self.gru = nn.GRU(4, hidden, num_layers=2)
        self.head = nn.Linear(hidden, vocab)

    def step(self, ids, state):
        assert ids.device == self.head.weight.device, "the search passed the ids on another device"
        hidden, state = self.gru(self.embedding(ids.reshape(1, -1)), state)
        return self.head(hidden)[0], state


def decoder_pair():
    rb.manual_seed(0)
    cpu = Decoder()
    rb.manual_seed(0)
    return cpu, Decoder().to("cuda")


def initial_state(batch, device="cpu"):
    return Tensor(np.random.default_rng(1).standard_normal((2, batch, 5)).astype(np.float32)).to(device)


def test_greedy_search_sends_the_ids_to_the_states_device(fake):
    cpu, cuda = decoder_pair()
    start = np.array([1, 3, 0], dtype=np.int64)
    expected = decoding.greedy_search(cpu.step, initial_state(3), start, 6, end_id=2)
    fake.calls.clear()
    ids, lengths = decoding.greedy_search(cuda.step, initial_state(3, "cuda"), start, 6, end_id=2)
    assert fake.calls  # the model ran on the device
    assert np.array_equal(ids, expected[0]) and np.array_equal(lengths, expected[1])


def test_beam_search_reorders_a_device_state_on_the_device(fake, monkeypatch):
    cpu, cuda = decoder_pair()
    start = np.array([1, 3, 0, 4], dtype=np.int64)
    expected = decoding.beam_search(cpu.step, initial_state(4), start, 2, 3, 6, n_best=2)
    read_back = []
    original = fake.DeviceArray.to_numpy
    monkeypatch.setattr(fake.DeviceArray, "to_numpy", lambda self: read_back.append(self.shape) or original(self))
    fake.calls.clear()
    ids, lengths, scores = decoding.beam_search(cuda.step, initial_state(4, "cuda"), start, 2, 3, 6, n_best=2)
    assert np.array_equal(ids, expected[0]) and np.array_equal(lengths, expected[1])
    assert np.allclose(scores, expected[2], atol=1e-5)
    assert "embedding_forward" in fake.calls  # the rows are picked by the backend's row gather
    # the logits (and the embedding's index check) come to the host, the (2, 12, 5) state never does
    assert (12, 7) in read_back and not any(len(shape) == 3 for shape in read_back)


@pytest.mark.parametrize("shape", [(2, 6, 3), (6, 3), (2, 2, 6, 3)])
def test_reorder_batch_of_device_tensors_matches_the_host(fake, shape):
    data = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    index = np.array([5, 0, 0, -1, 2], dtype=np.int64)
    rows = (slice(None),) * (len(shape) - 2) + (index,)
    state = {"h": Tensor(data).to("cuda"), "pair": (Tensor(data).to("cuda"), None)}
    picked = decoding.reorder_batch(state, index)
    for part in (picked["h"], picked["pair"][0]):
        assert part.device.type == "cuda" and part.shape == data[rows].shape
        assert np.array_equal(part.cpu().numpy(), data[rows])
    assert picked["pair"][1] is None


def test_reorder_batch_uses_the_backends_row_gather(fake):
    """Rows gathered by embedding_forward on the device: no one-hot matrix, no copy through the host."""
    data = np.random.default_rng(6).standard_normal((2, 6, 3)).astype(np.float32)
    index = np.array([5, 0, 0, -1, 2], dtype=np.int64)
    for dtype in (np.float32, np.float64):
        fake.calls.clear()
        picked = decoding.reorder_batch((Tensor(data.astype(dtype)).to("cuda"),), index)[0]
        assert "embedding_forward" in fake.calls and "matmul" not in fake.calls
        assert picked.device.type == "cuda" and picked.dtype == dtype
        assert np.array_equal(picked.cpu().numpy(), data.astype(dtype)[:, index])


def test_reorder_batch_of_other_device_dtypes_and_bad_indices(fake):
    data = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
    picked = decoding.reorder_batch(Tensor(data).to("cuda"), np.array([3, 1]))
    assert picked.device.type == "cuda" and np.array_equal(picked.cpu().numpy(), data[:, [3, 1]])
    with pytest.raises(IndexError, match="out of range"):
        decoding.reorder_batch(Tensor(data.astype(np.float32)).to("cuda"), np.array([4]))


def test_choose_inputs_on_a_device_draws_as_on_the_host(fake):
    truth = np.array([[1, 2, 3, 4], [5, 6, 0, 1]], dtype=np.int64)
    predicted = np.array([[0, 0, 0, 0], [2, 2, 2, 2]], dtype=np.int64)
    expected = decoding.choose_inputs(truth, predicted, 0.5, np.random.default_rng(3))
    fake.calls.clear()
    chosen = decoding.choose_inputs(Tensor(truth).to("cuda"), Tensor(predicted).to("cuda"), 0.5,
                                    np.random.default_rng(3))
    assert isinstance(chosen, Tensor) and chosen.device.type == "cuda" and chosen.dtype == np.int64
    assert np.array_equal(chosen.cpu().numpy(), expected) and "where" in fake.calls
    mixed = decoding.choose_inputs(truth, Tensor(predicted).to("cuda"), 0.5, np.random.default_rng(3))
    assert np.array_equal(mixed.cpu().numpy(), expected)
    with pytest.raises(ValueError, match="one shape"):
        decoding.choose_inputs(Tensor(truth).to("cuda"), Tensor(predicted[0]).to("cuda"), 0.5)


def test_sample_logits_reads_device_logits(fake):
    logits = np.random.default_rng(4).standard_normal((3, 9)).astype(np.float32)
    expected = decoding.sample_logits(logits, 0.7, 4, np.random.default_rng(5))
    drawn = decoding.sample_logits(Tensor(logits).to("cuda"), 0.7, 4, np.random.default_rng(5))
    assert np.array_equal(drawn, expected)
