"""Sequence decoding for any model that predicts one token at a time: sampling, greedy search,
beam search, and the teacher-forcing schedules of scheduled sampling.

A model enters through a step function

    step(ids, state) -> (logits, new_state)

that reads the previous token of every sequence, `ids` (an int64 Tensor of shape (B,)), and the
state it returned last time, and scores the next token: `logits` (B, V), a Tensor or an ndarray.
The state is whatever the model carries (for an RNN decoder: its hidden state); the searches only
pass it back, except beam search, which also selects rows of it (see `reorder_state`).

Scores are handled in float64 NumPy: the searches are bookkeeping on (B, beams, V) arrays, the
model's work stays in `step`. Logits of -inf (tokens a model rules out) are allowed everywhere.
On a CUDA device: `ids` is passed on the device of the first Tensor in the state, the logits come
back to the host at every step (B x V numbers), and beam search selects the state's rows on the
device (only the row indices are sent).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _device
from ..random import default_generator
from ..tensor import Tensor, no_grad

__all__ = ["sample_logits", "greedy_search", "beam_search", "reorder_batch", "teacher_forcing_probability",
           "choose_inputs", "SCHEDULES"]


# ---- helpers -------------------------------------------------------------------------------------
def _logits_array(logits, rows: int | None, op: str) -> np.ndarray:
    """logits as a float64 (B, V) ndarray; NaN and +inf are refused (no distribution has them)."""
    if isinstance(logits, Tensor):
        logits = logits.cpu().data
    try:
        array = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: logits must be a numeric (B, V) Tensor or array, got {type(logits).__name__}") from None
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{op}: logits must have shape (B, V) with V >= 1, got {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{op}: the step function returned logits of shape {array.shape} for {rows} sequences")
    if np.isnan(array).any() or np.isposinf(array).any():
        raise ValueError(f"{op}: logits of shape {array.shape} contain NaN or +inf")
    return array


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """log_softmax over the last axis; a row that is all -inf stays all -inf (no NaN)."""
    row_max = logits.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    shifted = logits - row_max
    with np.errstate(divide="ignore"):  # log(0) of an all -inf row: -inf, kept from its -inf entries below
        log_total = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted - np.where(np.isneginf(log_total), 0.0, log_total)  # not -inf - (-inf) = NaN


def _ids_array(ids, op: str) -> np.ndarray:
    array = np.asarray(ids.cpu().data if isinstance(ids, Tensor) else ids)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu":
        raise ValueError(f"{op}: start_ids must be a non-empty 1-D array of integers, got dtype {array.dtype} "
                         f"and shape {array.shape}")
    return array.astype(np.int64)


def _positive_int(value, name: str, op: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def _real(value, name: str, op: str) -> float:
    """value as a float; anything but a real number (a str, None) is a TypeError naming the argument,
    where a comparison with it raised one naming neither the op nor the value."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _token_id(value, name: str, op: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{op}: {name} must be an integer token id, got {value!r}")
    return int(value)


def _check_token(value, vocab_size: int, name: str, op: str) -> None:
    if not 0 <= value < vocab_size:
        raise ValueError(f"{op}: {name} {value} is outside the vocabulary of {vocab_size} tokens")


def _state_device(state):
    """The device of the first Tensor in a nested tuple/list/dict state, None when it holds none."""
    if isinstance(state, Tensor):
        return state.device
    parts = state.values() if isinstance(state, dict) else state if isinstance(state, (tuple, list)) else ()
    for part in parts:
        found = _state_device(part)
        if found is not None:
            return found
    return None


def _call_step(step, ids: np.ndarray, state, rows: int, vocab: int | None, op: str) -> tuple:
    """One call of the model: its logits as a float64 (rows, V) array and its new state. V must be
    the `vocab` of the earlier steps (None at the first): token ids mean nothing across vocabularies.
    The ids go to the device of the state (a model on a device reads them there)."""
    device = _state_device(state)
    returned = step(Tensor(ids) if device is None else Tensor(ids).to(device), state)
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise TypeError(f"{op}: the step function must return (logits, state), got {type(returned).__name__}"
                        + (f" of length {len(returned)}" if isinstance(returned, (tuple, list)) else ""))
    logits, state = returned
    logits = _logits_array(logits, rows, op)
    if vocab is not None and logits.shape[1] != vocab:
        raise ValueError(f"{op}: the step function returned logits of shape {logits.shape} after logits of {vocab} "
                         "tokens; the vocabulary must stay the same at every step")
    return logits, state


def _generator(generator, op: str) -> np.random.Generator:
    """The given NumPy generator, or rosenblatt's stream (looked up now: manual_seed replaces it)."""
    if generator is None:
        return default_generator()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{op}: generator must be a numpy.random.Generator or None, got {type(generator).__name__}")
    return generator


# ---- sampling ------------------------------------------------------------------------------------
def sample_logits(logits, temperature: float = 1.0, top_k: int | None = None, generator=None) -> np.ndarray:
    """One token per row drawn from softmax(logits / temperature), restricted to the top_k largest
    logits when top_k is given. logits (B, V) Tensor or ndarray -> int64 ndarray (B,).

    Ties at the k-th largest logit are all kept (a row may keep more than top_k tokens: which of
    equal logits to drop would be arbitrary); top_k >= V keeps every token. A row whose logits are
    all -inf has no distribution and raises ValueError. One uniform draw per row from `generator`
    (default: rosenblatt's stream, so rosenblatt.manual_seed makes draws reproducible), inverted
    through the row's cumulative distribution."""
    op = "sample_logits"
    temperature = _real(temperature, "temperature", op)
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"{op}: temperature must be positive and finite, got {temperature}")
    if top_k is not None:
        top_k = _positive_int(top_k, "top_k", op)
    generator = _generator(generator, op)
    logits = _logits_array(logits, None, op)
    if np.isneginf(logits).all(axis=1).any():
        raise ValueError(f"{op}: a row of logits (shape {logits.shape}) is all -inf; there is nothing to sample")
    # Shifted so that each row's largest is 0 before dividing: with a tiny temperature the others go to
    # -inf (their limit), never above 0.
    with np.errstate(over="ignore"):
        scaled = (logits - logits.max(axis=1, keepdims=True)) / temperature
    if top_k is not None and top_k < scaled.shape[1]:  # chosen on the logits: scaling can round distinct ones equal
        kth_largest = -np.partition(-logits, top_k - 1, axis=1)[:, top_k - 1:top_k]
        scaled = np.where(logits >= kth_largest, scaled, -np.inf)
    weights = np.exp(scaled)  # the largest is exp(0) = 1
    cumulative = np.cumsum(weights, axis=1)
    # The first token whose cumulative weight exceeds u * total: never a zero-weight token, since
    # its cumulative weight equals its predecessor's.
    threshold = generator.random(len(weights))[:, None] * cumulative[:, -1:]
    return np.argmax(cumulative > threshold, axis=1).astype(np.int64)


# ---- greedy search -------------------------------------------------------------------------------
def greedy_search(step, state, start_ids, max_length: int, end_id: int | None = None):
    """Feed back the most likely token (argmax, the first of ties) for up to max_length steps.

    Returns (ids, lengths): ids int64 (B, L) holds the generated tokens after the start token,
    L <= max_length; lengths (B,) counts each row's tokens up to and including its first end_id
    (max_length for a row that never emits it). A row stops at end_id, which stays in the output,
    and is padded after it with end_id. Decoding ends early once every row has stopped. A row still
    decoding whose logits are all -inf (no token allowed) raises ValueError."""
    op = "greedy_search"
    max_length = _positive_int(max_length, "max_length", op)
    end_id = None if end_id is None else _token_id(end_id, "end_id", op)
    ids = _ids_array(start_ids, op)
    batch = len(ids)
    finished = np.zeros(batch, dtype=bool)
    lengths = np.full(batch, max_length, dtype=np.int64)
    generated = []
    vocab = None
    with no_grad():
        for position in range(max_length):
            logits, state = _call_step(step, ids, state, batch, vocab, op)
            vocab = logits.shape[1]
            if end_id is not None and position == 0:
                _check_token(end_id, vocab, "end_id", op)
            ruled_out = np.isneginf(logits).all(axis=1) & ~finished
            if ruled_out.any():  # argmax would pick token 0, which the model ruled out
                raise ValueError(f"{op}: the logits (shape {logits.shape}) of row {int(np.argmax(ruled_out))} are all "
                                 f"-inf at step {position}; there is no token to choose")
            ids = np.argmax(logits, axis=1).astype(np.int64)
            if end_id is None:
                generated.append(ids)
                continue
            ids[finished] = end_id  # rows that already stopped are padded
            generated.append(ids)
            stops_now = ~finished & (ids == end_id)
            lengths[stops_now] = position + 1
            finished |= stops_now
            if finished.all():
                break
    return np.stack(generated, axis=1), lengths


# ---- beam search ---------------------------------------------------------------------------------
def reorder_batch(state, index):
    """The default `reorder_state` of beam_search: rows `index` (int64) of the batch dimension of
    every Tensor or ndarray in a nested tuple/list (None passes through). The batch dimension is
    ndim - 2: dim 1 of torch's RNN states (layers * directions, B, H) — nn.GRU's h, nn.LSTM's (h, c)
    — and dim 0 of the cells' (B, H). Dicts (of any of these) are reordered value by value. A float32
    device tensor's rows are picked on its device (other dtypes go through the host)."""
    return _reorder_rows(state, index, None)


def _reorder_rows(state, index, batch: int | None):
    """reorder_batch, checking (when batch is given) that every part's batch dim has `batch` rows: a
    part laid out otherwise, batch first (B, T, H), would have another of its dims indexed silently."""
    if state is None:
        return None
    if isinstance(state, dict):
        return type(state)((key, _reorder_rows(part, index, batch)) for key, part in state.items())
    if isinstance(state, (tuple, list)):
        parts = [_reorder_rows(part, index, batch) for part in state]
        return type(state)(*parts) if hasattr(state, "_fields") else type(state)(parts)  # a namedtuple too
    if isinstance(state, (Tensor, np.ndarray)) and state.ndim >= 2:
        if batch is not None and state.shape[-2] != batch:
            raise ValueError(f"beam_search: a state part of shape {tuple(state.shape)} has {state.shape[-2]} rows in "
                             f"dim {state.ndim - 2}, the batch dim of reorder_batch (ndim - 2), where the search has "
                             f"{batch}; pass reorder_state=(state, index) -> state for another layout")
        rows = (slice(None),) * (state.ndim - 2) + (index,)
        if isinstance(state, Tensor) and not isinstance(state.data, np.ndarray):
            return Tensor(_device_rows(state.data, np.asarray(index, dtype=np.int64)))
        return state[rows]
    raise TypeError(f"beam_search: cannot reorder a state part of type {type(state).__name__} "
                    f"(shape {getattr(state, 'shape', None)}); pass reorder_state=(state, index) -> state")


def _device_rows(data, index: np.ndarray):
    """Rows `index` of dim ndim - 2 of a device array, laid out (N, rest) on the device and picked there
    by the backend's row gather (embedding_forward, float32 and float64): only the n indices are
    sent. Other dtypes go through the host."""
    if data.dtype not in (np.float32, np.float64):
        rows = (slice(None),) * (data.ndim - 2) + (index,)
        return _device.to_device(_device.to_host(data)[rows], _device.device_of(data))
    axis, count = data.ndim - 2, data.shape[data.ndim - 2]
    if index.size and (index.min() < -count or index.max() >= count):  # as NumPy's indexing would
        raise IndexError(f"reorder_batch: an index is out of range [-{count}, {count}) for dim {axis} of a state "
                         f"part of shape {tuple(data.shape)}")
    index = _device.on_device_of(np.where(index < 0, index + count, index), data)
    moved = np.moveaxis(data, axis, 0)  # (N, ..., H), a view
    flat = _device.ascontiguousarray(moved).reshape(count, -1)
    picked = _device.backend("reorder_batch").embedding_forward(flat, index)
    picked = picked.reshape((len(index),) + moved.shape[1:])
    return _device.ascontiguousarray(np.moveaxis(picked, 0, axis))


def beam_search(step, state, start_ids, end_id: int, beam_size: int, max_length: int, length_penalty: float = 1.0,
                reorder_state=None, n_best: int | None = None):
    """The highest-scoring continuations of every start token, searched beam_size at a time.

    Each of the B rows keeps beam_size live hypotheses. A step extends every one by every token,
    adding the token's log-probability (log_softmax of step's logits); of the beam_size best
    extensions, those ending in end_id become finished hypotheses, and the best beam_size
    extensions that do not end stay live (so a beam never shrinks). A hypothesis of n tokens
    (end_id included) with summed log-probability s scores

        score = s / n ** length_penalty

    (length_penalty 0: the raw sum, which favours short outputs; 1: the mean log-probability).
    Hypotheses still live after max_length tokens compete as they are, with n = max_length.
    A row stops searching when its n_best finished hypotheses score at least as high as any live
    one could still reach (log-probabilities are <= 0, so the bound is exact: stopping then never
    changes the answer); the search ends when every row has stopped or after max_length steps.
    With beam_size >= V ** max_length nothing is ever pruned and the result is the exhaustive optimum.

    The state is expanded from B to B * beam_size rows (row b * beam_size + k is beam k of row b)
    and after each step reordered with reorder_state(state, index), index an int64 ndarray of the
    rows to keep, in order; the default, `reorder_batch`, indexes the batch dimension of every
    Tensor in nested tuples/lists/dicts (torch's RNN state layout), and refuses a part whose batch
    dimension does not hold the search's current number of rows. Runs under no_grad.

    Returns (ids, lengths, scores): with n_best None, the best hypothesis of every row, ids int64
    (B, L) padded after end_id with end_id, lengths (B,) and scores float64 (B,); with n_best an
    int <= beam_size, the n_best best, best first: (B, n_best, L), (B, n_best), (B, n_best), where
    missing hypotheses (fewer exist) have score -inf and length 0."""
    op = "beam_search"
    beam_size = _positive_int(beam_size, "beam_size", op)
    max_length = _positive_int(max_length, "max_length", op)
    kept = 1 if n_best is None else _positive_int(n_best, "n_best", op)
    if kept > beam_size:
        raise ValueError(f"{op}: n_best ({n_best}) cannot exceed beam_size ({beam_size})")
    length_penalty = _real(length_penalty, "length_penalty", op)
    if not math.isfinite(length_penalty):
        raise ValueError(f"{op}: length_penalty must be finite, got {length_penalty}")
    if abs(length_penalty) * math.log(max_length) > 300:  # n ** length_penalty must stay well inside float64
        raise ValueError(f"{op}: length_penalty {length_penalty} is too large for max_length {max_length}: "
                         f"{max_length} ** {length_penalty} leaves the range of float64 scores")
    end_id = _token_id(end_id, "end_id", op)
    start_ids = _ids_array(start_ids, op)
    batch, beams = len(start_ids), beam_size
    rows = np.arange(batch)[:, None]

    def reorder(state, index, current_rows: int):
        """The state's rows `index`, of the `current_rows` it has; the default also checks that count."""
        if reorder_state is None:
            return _reorder_rows(state, index, current_rows)
        return reorder_state(state, index)

    # Live hypotheses: summed log-probabilities (B, beams) and tokens (B, beams, length). Only beam 0
    # starts alive; the others are -inf, or the first step would fill the beams with copies of it.
    live_sum = np.full((batch, beams), -np.inf)
    live_sum[:, 0] = 0.0
    live_tokens = np.zeros((batch, beams, 0), dtype=np.int64)
    # Finished hypotheses, best first: scores (B, kept), tokens (B, kept, max_length), lengths.
    done_score = np.full((batch, kept), -np.inf)
    done_tokens = np.full((batch, kept, max_length), end_id, dtype=np.int64)
    done_length = np.zeros((batch, kept), dtype=np.int64)

    def keep_best(scores, tokens, lengths):
        """Merge candidates into the finished hypotheses, keeping the best `kept` (earlier first at ties)."""
        nonlocal done_score, done_tokens, done_length
        impossible = np.isneginf(scores)  # dead beams and ruled-out tokens: not hypotheses at all
        lengths = np.where(impossible, 0, lengths)
        tokens = np.where(impossible[:, :, None], end_id, tokens)
        order = np.argsort(-np.concatenate([done_score, scores], axis=1), axis=1, kind="stable")[:, :kept]
        done_score = np.take_along_axis(np.concatenate([done_score, scores], axis=1), order, axis=1)
        done_length = np.take_along_axis(np.concatenate([done_length, lengths], axis=1), order, axis=1)
        done_tokens = np.concatenate([done_tokens, tokens], axis=1)[rows, order]

    def padded(tokens):
        """(B, n, length) token arrays padded with end_id to max_length."""
        fill = np.full(tokens.shape[:2] + (max_length - tokens.shape[2],), end_id, dtype=np.int64)
        return np.concatenate([tokens, fill], axis=2)

    ids = np.repeat(start_ids, beams)
    vocab = None
    with no_grad():
        state = reorder(state, np.repeat(np.arange(batch), beams), batch)
        for position in range(max_length):
            length = position + 1  # tokens in every hypothesis made at this step
            logits, state = _call_step(step, ids, state, batch * beams, vocab, op)
            log_probs = _log_softmax(logits)
            vocab = log_probs.shape[1]
            if position == 0:
                _check_token(end_id, vocab, "end_id", op)
            # Every extension of every beam, (B, beams * V), and the best 2 * beams of them: at most
            # `beams` end in end_id (one per beam), so at least `beams` live ones remain among them.
            extended = (live_sum[:, :, None] + log_probs.reshape(batch, beams, vocab)).reshape(batch, -1)
            candidates = np.argsort(-extended, axis=1, kind="stable")[:, :min(2 * beams, beams * vocab)]
            candidate_sum = np.take_along_axis(extended, candidates, axis=1)
            origin, token = candidates // vocab, candidates % vocab
            candidate_tokens = np.concatenate([live_tokens[rows, origin], token[:, :, None]], axis=2)
            ends = token == end_id

            # An ending candidate finishes only if it ranks among the best `beams` (as fairseq and
            # Hugging Face do): with beam_size 1 and length_penalty 0 this is greedy search.
            finishes = ends & (np.arange(candidates.shape[1]) < beams)
            finished_score = np.where(finishes, candidate_sum / length ** length_penalty, -np.inf)
            keep_best(finished_score, padded(candidate_tokens), np.where(finishes, length, 0))

            # The best `beams` candidates that do not end (stable: in score order); any ending one
            # picked when too few remain is dead (-inf).
            live = np.argsort(ends, axis=1, kind="stable")[:, :beams]
            live_sum = np.where(np.take_along_axis(ends, live, axis=1), -np.inf,
                                np.take_along_axis(candidate_sum, live, axis=1))
            live_tokens = candidate_tokens[rows, live]
            ids = np.take_along_axis(token, live, axis=1).ravel()
            if position == max_length - 1:
                keep_best(live_sum / length ** length_penalty, live_tokens, np.full_like(live, length))
                break
            # The best score a live hypothesis could still reach: its sum can only fall, so the best
            # case divides it by the length that makes it least negative.
            best_length = max_length if length_penalty > 0 else length + 1
            reachable = live_sum.max(axis=1) / best_length ** length_penalty
            if np.all(done_score[:, -1] >= reachable):
                break
            state = reorder(state, (rows * beams + np.take_along_axis(origin, live, axis=1)).ravel(), batch * beams)

    width = max(int(done_length.max()), 1)
    tokens = done_tokens[:, :, :width]
    if n_best is None:
        return tokens[:, 0], done_length[:, 0], done_score[:, 0]
    return tokens, done_length, done_score


# ---- teacher forcing and scheduled sampling ----------------------------------------------------
SCHEDULES = ("constant", "linear", "exponential", "inverse_sigmoid")


def teacher_forcing_probability(step: int, schedule: str = "linear", *, k: float | None = None, c: float = 0.0,
                                epsilon: float = 0.0) -> float:
    """epsilon_i, the probability of feeding the ground-truth previous token at training step i
    (Bengio et al. 2015, "Scheduled Sampling for Sequence Prediction with Recurrent Neural
    Networks", section 2.4), in the paper's notation:

        constant         epsilon_i = k                      0 <= k <= 1 (default 1: pure teacher forcing)
        linear           epsilon_i = max(epsilon, k - c i)  0 <= k <= 1 (default 1), slope c >= 0,
                                                            floor 0 <= epsilon <= 1
        exponential      epsilon_i = k ** i                 0 < k <= 1 (required)
        inverse_sigmoid  epsilon_i = k / (k + exp(i / k))   k >= 1 (required); 1/2 at i = k ln k
    """
    op = "teacher_forcing_probability"
    if not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"{op}: step must be an integer >= 0, got {step!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"{op}: unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    k = None if k is None else _real(k, "k", op)
    c, epsilon = _real(c, "c", op), _real(epsilon, "epsilon", op)
    if schedule in ("constant", "linear"):
        k = 1.0 if k is None else k
        if not 0 <= k <= 1:
            raise ValueError(f"{op}: the {schedule} schedule needs 0 <= k <= 1, got k={k}")
        if schedule == "constant":
            return float(k)
        if not (c >= 0 and math.isfinite(c)) or not 0 <= epsilon <= 1:
            raise ValueError(f"{op}: the linear schedule needs a slope c >= 0 and a floor 0 <= epsilon <= 1, "
                             f"got c={c}, epsilon={epsilon}")
        return float(max(epsilon, k - c * step))
    if k is None:
        raise ValueError(f"{op}: the {schedule} schedule needs k")
    if schedule == "exponential":
        if not 0 < k <= 1:
            raise ValueError(f"{op}: the exponential schedule needs 0 < k <= 1, got k={k}")
        return float(k ** step)
    if not (k >= 1 and math.isfinite(k)):
        raise ValueError(f"{op}: the inverse_sigmoid schedule needs k >= 1, got k={k}")
    exponent = step / k
    return 0.0 if exponent > 700 else float(k / (k + math.exp(exponent)))  # exp overflows past ~709


def choose_inputs(truth_ids, predicted_ids, p_truth: float, generator=None) -> np.ndarray:
    """Scheduled sampling's coin flips: each element of the result is the ground-truth token with
    probability p_truth, else the model's prediction, independently per element. Called once per
    time step with (B,) arrays this is the paper's per-token choice for every sequence.

    truth_ids and predicted_ids: integer Tensors or ndarrays of one shape -> int64 ndarray; when
    either is a Tensor on a CUDA device, an int64 Tensor on that device, chosen there (the draws
    are made on the host as always, and only they are sent: no wait for the device). Draws one
    uniform number per element from `generator` (default: rosenblatt's stream), even when p_truth
    is 0 or 1, so the stream advances the same way whatever the schedule's value."""
    op = "choose_inputs"
    device = next((t.device for t in (truth_ids, predicted_ids) if isinstance(t, Tensor) and t.device.type != "cpu"),
                  None)
    if device is None:
        truth = np.asarray(truth_ids.cpu().data if isinstance(truth_ids, Tensor) else truth_ids)
        predicted = np.asarray(predicted_ids.cpu().data if isinstance(predicted_ids, Tensor) else predicted_ids)
    else:
        truth, predicted = (_device.to_device(t.data if isinstance(t, Tensor) else np.asarray(t), device, op)
                            for t in (truth_ids, predicted_ids))
    if truth.shape != predicted.shape or truth.dtype.kind not in "iu" or predicted.dtype.kind not in "iu":
        raise ValueError(f"{op}: truth_ids and predicted_ids must be integer arrays of one shape, got "
                         f"{truth.dtype} {truth.shape} and {predicted.dtype} {predicted.shape}")
    p_truth = _real(p_truth, "p_truth", op)
    if not 0 <= p_truth <= 1:
        raise ValueError(f"{op}: p_truth must lie in [0, 1], got {p_truth}")
    use_truth = _generator(generator, op).random(truth.shape) < p_truth
    if device is not None:
        return Tensor(np.where(_device.to_device(use_truth, device, op), truth, predicted).astype(np.int64))
    return np.where(use_truth, truth, predicted).astype(np.int64)
