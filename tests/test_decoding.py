"""rosenblatt.nn.decoding: the searches against brute force on tiny deterministic models, the
sampler's distribution at a fixed seed, beam search's state reordering through real LSTMs, and the
scheduled-sampling schedules at known steps."""
import itertools
import math

import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn
from rosenblatt.nn import decoding

V, END = 4, 3


# ---- a tiny deterministic model: a fixed table of logits -----------------------------------------
class TableModel:
    """logits = table[row, position, previous token]. The state is an ndarray (B, 2) of
    (position, source row), so a row's scores depend on its own source row: beam search must
    carry the state with the beams (the default reorder indexes dim 0 of a 2-D array)."""

    def __init__(self, rows: int, max_length: int, seed: int = 0, scale: float = 2.0):
        self.table = np.random.default_rng(seed).normal(size=(rows, max_length, V, V)) * scale
        self.rows = rows

    def initial_state(self, rows=None):
        rows = np.arange(self.rows) if rows is None else np.asarray(rows)
        return np.stack([np.zeros(len(rows), np.int64), rows], axis=1)

    def step(self, ids, state):
        position, row = state[:, 0], state[:, 1]
        logits = self.table[row, position, ids.numpy()]
        return logits, np.stack([position + 1, row], axis=1)

    def log_probs(self, row, position, previous):
        logits = self.table[row, position, previous]
        return logits - np.log(np.exp(logits).sum())


def all_hypotheses(max_length: int):
    """Every output the searches can return: sequences that stop at their first END, and the
    sequences of max_length tokens without END."""
    for length in range(1, max_length + 1):
        for tokens in itertools.product(range(V), repeat=length):
            if END not in tokens[:-1] and (tokens[-1] == END or length == max_length):
                yield tokens


def brute_force(model, row, start, max_length, length_penalty):
    """The exhaustive optimum of beam search's score: (score, tokens), ties to the first found."""
    best = (-math.inf, None)
    for tokens in all_hypotheses(max_length):
        previous, total = (start,) + tokens[:-1], 0.0
        for position, (prev, token) in enumerate(zip(previous, tokens)):
            total += model.log_probs(row, position, prev)[token]
        score = total / len(tokens) ** length_penalty
        if score > best[0]:
            best = (score, tokens)
    return best


# ---- greedy search -------------------------------------------------------------------------------
def test_greedy_equals_argmax_unrolled_by_hand():
    model = TableModel(rows=3, max_length=4, seed=1)
    starts = np.array([0, 2, 1])
    ids, lengths = decoding.greedy_search(model.step, model.initial_state(), starts, max_length=4)
    assert ids.dtype == np.int64 and ids.shape == (3, 4) and list(lengths) == [4, 4, 4]
    for row, start in enumerate(starts):
        previous = start
        for position in range(4):
            previous = int(np.argmax(model.table[row, position, previous]))
            assert ids[row, position] == previous


def test_greedy_stops_rows_at_end_id_and_pads_with_it():
    table = np.zeros((2, 5, V, V))
    table[0, :, :, 1] = 5.0                  # row 0 always says 1 ...
    table[0, 2, :, END] = 9.0                # ... and ends at its third token
    table[1, :, :, END] = 5.0                # row 1 ends at once
    model = TableModel(rows=2, max_length=5)
    model.table = table
    ids, lengths = decoding.greedy_search(model.step, model.initial_state(), [0, 0], max_length=5, end_id=END)
    assert ids.tolist() == [[1, 1, END], [END, END, END]]  # stopped early: every row ended
    assert lengths.tolist() == [3, 1]
    never = TableModel(rows=1, max_length=3)
    never.table[..., END] = -np.inf          # -inf logits are allowed: END is ruled out
    ids, lengths = decoding.greedy_search(never.step, never.initial_state(), [0], max_length=3, end_id=END)
    assert ids.shape == (1, 3) and END not in ids and lengths.tolist() == [3]


# ---- beam search against brute force -------------------------------------------------------------
@pytest.mark.parametrize("max_length", [3, 4])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 0.6, -0.5])
def test_exhaustive_beam_finds_the_brute_force_optimum(max_length, length_penalty):
    model = TableModel(rows=3, max_length=max_length, seed=max_length)
    starts = np.array([0, 1, 2])
    ids, lengths, scores = decoding.beam_search(model.step, model.initial_state(), starts, END,
                                                beam_size=V ** max_length, max_length=max_length,
                                                length_penalty=length_penalty)
    for row, start in enumerate(starts):
        score, tokens = brute_force(model, row, start, max_length, length_penalty)
        assert scores[row] == pytest.approx(score, abs=1e-12)
        assert lengths[row] == len(tokens)
        assert tuple(ids[row, :lengths[row]]) == tokens
        assert np.all(ids[row, lengths[row]:] == END)  # padded with end_id


def test_n_best_lists_the_best_hypotheses_in_order():
    max_length = 3
    model = TableModel(rows=2, max_length=max_length, seed=5)
    ids, lengths, scores = decoding.beam_search(model.step, model.initial_state(), [0, 1], END,
                                                beam_size=V ** max_length, max_length=max_length, n_best=5)
    assert ids.shape[:2] == (2, 5) and lengths.shape == scores.shape == (2, 5)
    for row, start in enumerate([0, 1]):
        ranked = sorted((sum(model.log_probs(row, p, prev)[t] for p, (prev, t) in
                             enumerate(zip((start,) + h[:-1], h))) / len(h), h) for h in all_hypotheses(max_length))
        expected = ranked[::-1][:5]
        assert scores[row] == pytest.approx([s for s, _ in expected], abs=1e-12)
        assert [tuple(ids[row, n, :lengths[row, n]]) for n in range(5)] == [h for _, h in expected]


def test_beam_of_one_is_greedy():
    model = TableModel(rows=4, max_length=6, seed=3, scale=1.0)
    starts = np.array([0, 1, 2, 3])
    greedy_ids, greedy_lengths = decoding.greedy_search(model.step, model.initial_state(), starts, 6, end_id=END)
    beam_ids, beam_lengths, _ = decoding.beam_search(model.step, model.initial_state(), starts, END, beam_size=1,
                                                     max_length=6, length_penalty=0.0)
    assert np.array_equal(beam_lengths, greedy_lengths)
    assert np.array_equal(beam_ids, greedy_ids[:, :beam_ids.shape[1]])


def test_beam_rows_are_independent_of_their_batch():
    model = TableModel(rows=5, max_length=5, seed=7, scale=1.5)
    starts = np.array([2, 0, 1, 1, 3])
    batched = decoding.beam_search(model.step, model.initial_state(), starts, END, beam_size=3, max_length=5)
    for row, start in enumerate(starts):
        alone = decoding.beam_search(model.step, model.initial_state([row]), [start], END, beam_size=3,
                                     max_length=5)
        length = alone[1][0]
        assert batched[1][row] == length and batched[2][row] == alone[2][0]
        assert np.array_equal(batched[0][row, :length], alone[0][0, :length])


def test_beam_search_stops_early_without_changing_the_answer():
    """Every row ends at once: the bound stops the search after a step or two, and the answer is
    the exhaustive one."""
    model = TableModel(rows=2, max_length=6, seed=2)
    model.table[:, :, :, END] += 8.0
    calls = []

    def counting_step(ids, state):
        calls.append(len(ids))
        return model.step(ids, state)

    ids, lengths, scores = decoding.beam_search(counting_step, model.initial_state(), [0, 1], END, beam_size=4,
                                                max_length=6, length_penalty=0.0)
    assert len(calls) < 6 and calls[0] == 2 * 4  # B * beam_size rows from the first step
    assert lengths.tolist() == [1, 1] and ids.tolist() == [[END], [END]]
    for row in range(2):
        assert scores[row] == pytest.approx(brute_force(model, row, row, 6, 0.0)[0])


# ---- beam search through real LSTMs: the state tuple is reordered with the beams ----------------
def _lstm_decoder(cell: bool, hidden: int = 6, embedding: int = 5):
    rosenblatt.manual_seed(11)
    embed = nn.Embedding(V, embedding)
    recurrent = nn.LSTMCell(embedding, hidden) if cell else nn.LSTM(embedding, hidden)
    head = nn.Linear(hidden, V)
    with rosenblatt.no_grad():
        head.weight.mul_(4.0)  # peaked distributions: the beams differ, and so do their states
    return embed, recurrent, head


@pytest.mark.parametrize("cell", [False, True], ids=["LSTM", "LSTMCell"])
def test_beam_search_reorders_lstm_state(cell):
    """The LSTM's (h, c), carried by the step and reordered by the default reorder_batch, must
    follow its beam: every hypothesis' score is recomputed by running the LSTM over it from its
    row's initial state, and the exhaustive search must find the brute-force optimum."""
    embed, recurrent, head = _lstm_decoder(cell)
    batch, hidden = 3, 6
    rng = np.random.default_rng(0)
    h0, c0 = (rng.normal(size=(batch, hidden)).astype(np.float32) for _ in range(2))
    starts = np.array([0, 1, 2])

    def run(ids, h, c):
        """ids (T, rows), states (rows, H) Tensors -> logits of every step (T, rows, V) and (h, c)."""
        if cell:
            logits = []
            for t in range(ids.shape[0]):
                h, c = recurrent(embed(rosenblatt.tensor(ids[t])), (h, c))
                logits.append(head(h))
            return rosenblatt.stack(logits), (h, c)
        out, (h, c) = recurrent(embed(rosenblatt.tensor(ids)), (h[None], c[None]))
        return head(out), (h[0], c[0])

    def step(ids, state):
        """nn.LSTMCell's state is (h, c), each (B, H); nn.LSTM's each (1, B, H)."""
        logits, state = run(ids.numpy()[None], *(state if cell else (s[0] for s in state)))
        return logits[0], (state if cell else tuple(s[None] for s in state))

    def score(row, tokens, length_penalty):
        inputs = np.array([starts[row], *tokens[:-1]])[:, None]
        logits, _ = run(inputs, rosenblatt.tensor(h0[row:row + 1]), rosenblatt.tensor(c0[row:row + 1]))
        log_probs = decoding._log_softmax(logits.numpy()[:, 0].astype(np.float64))
        return log_probs[np.arange(len(tokens)), list(tokens)].sum() / len(tokens) ** length_penalty

    start_state = ((rosenblatt.tensor(h0), rosenblatt.tensor(c0)) if cell else
                   (rosenblatt.tensor(h0[None]), rosenblatt.tensor(c0[None])))  # (B, H) or (1, B, H)
    ids, lengths, scores = decoding.beam_search(step, start_state, starts, END, beam_size=3, max_length=6,
                                                n_best=3)
    for row in range(batch):
        for n in range(3):
            tokens = tuple(ids[row, n, :lengths[row, n]])
            assert scores[row, n] == pytest.approx(score(row, tokens, 1.0), rel=1e-5, abs=1e-6)

    max_length = 3
    ids, lengths, scores = decoding.beam_search(step, start_state, starts, END, beam_size=V ** max_length,
                                                max_length=max_length)
    for row in range(batch):
        best = max(all_hypotheses(max_length), key=lambda tokens: score(row, tokens, 1.0))
        assert tuple(ids[row, :lengths[row]]) == best
        assert scores[row] == pytest.approx(score(row, best, 1.0), rel=1e-5, abs=1e-6)


def test_beam_search_records_no_graph_and_checks_its_arguments():
    embed, recurrent, head = _lstm_decoder(cell=True)
    seen = []

    def step(ids, state):
        h, c = recurrent(embed(ids), state)
        logits = head(h)
        seen.append(logits.requires_grad)
        return logits, (h, c)

    decoding.beam_search(step, None, [0, 1], END, beam_size=2, max_length=3)
    assert seen and not any(seen)
    model = TableModel(rows=1, max_length=3)
    state = model.initial_state()
    for kwargs, message in [(dict(beam_size=0), "beam_size"), (dict(max_length=0), "max_length"),
                            (dict(n_best=3), "n_best"), (dict(end_id=V), "end_id"),
                            (dict(length_penalty=math.nan), "length_penalty")]:
        arguments = {**dict(end_id=END, beam_size=2, max_length=3), **kwargs}
        with pytest.raises(ValueError, match=f"beam_search: .*{message}"):
            decoding.beam_search(model.step, state, [0], **arguments)
    with pytest.raises(ValueError, match="start_ids"):
        decoding.beam_search(model.step, state, [[0]], END, 2, 3)
    with pytest.raises(TypeError, match="reorder_state"):
        decoding.beam_search(model.step, {"not": "reorderable"}, [0], END, 2, 3)
    with pytest.raises(ValueError, match="greedy_search: max_length"):
        decoding.greedy_search(model.step, state, [0], max_length=0)
    with pytest.raises(ValueError, match="greedy_search: .*shape"):
        decoding.greedy_search(lambda ids, s: (np.zeros((5, V)), s), state, [0], max_length=2)


# ---- sampling ------------------------------------------------------------------------------------
def chi_square(counts, probabilities):
    expected = probabilities * counts.sum()
    nonzero = expected > 0
    assert counts[~nonzero].sum() == 0  # nothing drawn where the probability is zero
    return float((((counts - expected) ** 2)[nonzero] / expected[nonzero]).sum()), int(nonzero.sum()) - 1


def softmax(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, None), (2.0, 3), (1.0, 1)])
def test_draws_follow_the_tempered_top_k_softmax(temperature, top_k):
    logits = np.array([0.3, -1.2, 1.5, 0.0, -np.inf, 0.9])
    draws = 20000
    samples = decoding.sample_logits(np.tile(logits, (draws, 1)), temperature, top_k,
                                     generator=np.random.default_rng(42))
    assert samples.dtype == np.int64 and samples.shape == (draws,)
    scaled = logits / temperature
    if top_k is not None:
        scaled = np.where(logits >= np.sort(logits)[::-1][top_k - 1], scaled, -np.inf)
    statistic, degrees = chi_square(np.bincount(samples, minlength=len(logits)), softmax(scaled))
    assert degrees == 0 or statistic < 25.0  # p < 1e-4 for up to 5 degrees of freedom; fixed seed


def test_top_one_is_argmax_ties_are_kept_and_low_temperature_is_argmax():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 7))
    assert np.array_equal(decoding.sample_logits(logits, top_k=1, generator=rng), logits.argmax(axis=1))
    for cold in (1e-6, 1e-300):  # the limit, without overflow
        assert np.array_equal(decoding.sample_logits(logits, temperature=cold, generator=rng), logits.argmax(axis=1))
    tied = np.tile([1.0, 2.0, 2.0, 0.0], (4000, 1))  # the rule: every logit equal to the k-th largest stays
    counts = np.bincount(decoding.sample_logits(tied, top_k=1, generator=rng), minlength=4)
    assert counts[0] == counts[3] == 0 and min(counts[1], counts[2]) > 1800
    hot = np.bincount(decoding.sample_logits(np.tile([0.0, 3.0, -2.0], (6000, 1)), temperature=1e4, generator=rng))
    assert chi_square(hot, np.full(3, 1 / 3))[0] < 20  # very hot: uniform


def test_sampler_uses_rosenblatts_stream_and_takes_tensors():
    logits = rosenblatt.tensor(np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32))
    rosenblatt.manual_seed(9)
    first = decoding.sample_logits(logits)
    rosenblatt.manual_seed(9)
    assert np.array_equal(decoding.sample_logits(logits), first)


@pytest.mark.parametrize("kwargs, message", [(dict(temperature=0.0), "temperature"),
                                             (dict(temperature=-1.0), "temperature"),
                                             (dict(temperature=math.inf), "temperature"),
                                             (dict(top_k=0), "top_k"), (dict(top_k=1.5), "top_k")])
def test_sampler_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"sample_logits: {message}"):
        decoding.sample_logits(np.zeros((2, 3)), **kwargs)


def test_sampler_refuses_logits_without_a_distribution():
    with pytest.raises(ValueError, match="sample_logits: .*all -inf"):
        decoding.sample_logits(np.array([[0.0, 1.0], [-np.inf, -np.inf]]))
    with pytest.raises(ValueError, match="sample_logits: .*NaN"):
        decoding.sample_logits(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match=r"sample_logits: .*\(B, V\)"):
        decoding.sample_logits(np.zeros(3))


# ---- teacher forcing schedules -------------------------------------------------------------------
def test_schedules_follow_the_papers_formulas():
    p = decoding.teacher_forcing_probability
    assert p(0, "constant") == 1.0 and p(500, "constant", k=0.75) == 0.75
    assert p(0, "linear", c=0.001) == 1.0
    assert p(250, "linear", c=0.002) == pytest.approx(0.5)
    assert p(10_000, "linear", c=0.002, epsilon=0.1) == 0.1  # the floor
    assert p(0, "exponential", k=0.99) == 1.0 and p(100, "exponential", k=0.99) == pytest.approx(0.99 ** 100)
    k = 100.0
    assert p(0, "inverse_sigmoid", k=k) == pytest.approx(k / (k + 1))
    assert p(int(round(k * math.log(k))), "inverse_sigmoid", k=k) == pytest.approx(0.5, abs=2e-3)
    assert p(10 ** 9, "inverse_sigmoid", k=k) == 0.0  # no overflow
    values = [p(i, "inverse_sigmoid", k=k) for i in range(0, 3000, 100)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("step, schedule, kwargs, message", [
    (0, "cosine", {}, "unknown schedule"), (-1, "linear", {}, "step"), (0, "exponential", {}, "needs k"),
    (0, "exponential", dict(k=1.5), "0 < k <= 1"), (0, "inverse_sigmoid", dict(k=0.5), "k >= 1"),
    (0, "linear", dict(c=-1.0), "slope"), (0, "constant", dict(k=2.0), "0 <= k <= 1")])
def test_schedules_refuse_bad_arguments(step, schedule, kwargs, message):
    with pytest.raises(ValueError, match=f"teacher_forcing_probability: .*{message}"):
        decoding.teacher_forcing_probability(step, schedule, **kwargs)


def test_choose_inputs_mixes_truth_and_predictions_per_token():
    truth, predicted = np.zeros((200, 50), np.int64), np.ones((200, 50), np.int64)
    assert np.array_equal(decoding.choose_inputs(truth, predicted, 1.0), truth)
    assert np.array_equal(decoding.choose_inputs(truth, predicted, 0.0), predicted)
    mixed = decoding.choose_inputs(rosenblatt.tensor(truth), predicted, 0.3, generator=np.random.default_rng(1))
    assert mixed.dtype == np.int64 and abs((mixed == 0).mean() - 0.3) < 0.01
    assert 0 < (mixed == 0).sum(axis=1).min() and (mixed == 0).sum(axis=1).max() < 50  # per token, not per row
    with pytest.raises(ValueError, match="choose_inputs: p_truth"):
        decoding.choose_inputs(truth, predicted, 1.5)
    with pytest.raises(ValueError, match="choose_inputs: .*one shape"):
        decoding.choose_inputs(truth, predicted[:, :3], 0.5)


def test_beam_search_reorders_device_states():
    """On a device (the NumPy stand-in for the CUDA backend) the search gives what it gives on the CPU."""
    import fake_cuda

    rosenblatt.manual_seed(0)
    emb, cell, head = nn.Embedding(7, 5), nn.GRU(5, 8), nn.Linear(8, 7)

    def step_on(device):
        def step(ids, h):
            y, h = cell(emb(ids.to(device)[None]), h)
            return head(y[0]) * 4.0, h
        return step

    h0 = rosenblatt.zeros(1, 2, 8)
    expected = decoding.beam_search(step_on("cpu"), h0, np.array([0, 1]), 6, 3, 5, n_best=3)
    with fake_cuda.installed():
        for module in (emb, cell, head):
            module.to("cuda")
        found = decoding.beam_search(step_on("cuda"), h0.to("cuda"), np.array([0, 1]), 6, 3, 5, n_best=3)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])
    np.testing.assert_allclose(found[2], expected[2], rtol=1e-5)


# ---- adversarial step functions and states (found by fuzzing) -------------------------------------
def _constant(logits):
    return lambda ids, state: (np.tile(np.asarray(logits, dtype=float), (len(ids), 1)), state)


def test_log_softmax_keeps_an_all_minus_inf_row_minus_inf():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was -inf - (-inf): NaN, with a RuntimeWarning
        out = decoding._log_softmax(np.array([[-np.inf, -np.inf], [0.0, 0.0]]))
    assert np.isneginf(out[0]).all() and out[1] == pytest.approx([-math.log(2)] * 2)


def test_greedy_refuses_a_row_with_no_allowed_token():
    with pytest.raises(ValueError, match=r"greedy_search: the logits \(shape \(2, 4\)\) of row 0 are all -inf"):
        decoding.greedy_search(_constant([-np.inf] * V), None, [0, 1], 3, end_id=END)  # argmax gave token 0
    table = TableModel(rows=2, max_length=3)
    table.table[:, :, :, END] = 9.0
    table.table[1, 0, :, END] = -9.0  # row 1 ends a step after row 0 ...
    table.table[0, 1:] = -np.inf      # ... while row 0, stopped, may say anything
    ids, lengths = decoding.greedy_search(table.step, table.initial_state(), [0, 1], 3, end_id=END)
    assert lengths.tolist() == [1, 2] and ids[0].tolist() == [END, END]
    with pytest.raises(ValueError, match="greedy_search: end_id must be an integer token id, got 1.5"):
        decoding.greedy_search(_constant([0.0] * V), None, [0], 3, end_id=1.5)  # never matched: never stopped


def test_searches_refuse_a_vocabulary_that_changes_and_a_step_that_returns_no_pair():
    def growing(ids, calls):
        calls = (calls or 0) + 1
        return np.zeros((len(ids), V + calls)), calls

    with pytest.raises(ValueError, match=r"greedy_search: .*shape \(1, 6\) after logits of 5 tokens"):
        decoding.greedy_search(growing, None, [0], 3)
    with pytest.raises(ValueError, match=r"beam_search: .*shape \(2, 6\) after logits of 5 tokens"):
        decoding.beam_search(growing, None, [0], END, 2, 3, reorder_state=lambda state, index: state)
    with pytest.raises(TypeError, match="greedy_search: the step function must return \\(logits, state\\)"):
        decoding.greedy_search(lambda ids, state: np.zeros((1, V)), None, [0], 3)
    with pytest.raises(TypeError, match="greedy_search: logits must be a numeric"):
        decoding.greedy_search(lambda ids, state: ("logits", state), None, [0], 3)


def test_default_reorder_refuses_a_batch_first_state_and_keeps_namedtuples_and_dicts():
    import collections
    with pytest.raises(ValueError, match=r"beam_search: a state part of shape \(2, 7, 3\) has 7 rows in dim 1"):
        decoding.beam_search(_constant([0.0] * V), rosenblatt.zeros(2, 7, 3), [0, 1], END, 2, 3)  # indexed T
    State = collections.namedtuple("State", "h c")
    seen = []

    def step(ids, state):
        seen.append((type(state["rnn"]).__name__, state["rnn"].h.shape, state["length"]))
        return np.tile([0.0, 1.0, 0.0, 0.5], (len(ids), 1)), state

    state = {"rnn": State(rosenblatt.zeros(1, 2, 5), np.zeros((2, 5))), "length": None}
    decoding.beam_search(step, state, [0, 1], END, 3, 2)
    assert seen == [("State", (1, 6, 5), None)] * 2


@pytest.mark.parametrize("length_penalty, error, message", [
    (1e308, ValueError, "length_penalty 1e\\+308 is too large for max_length 3"),  # was OverflowError
    (800, ValueError, ".*too large"), (-1e308, ValueError, ".*too large"),  # was a divide-by-zero warning
    (None, TypeError, "length_penalty must be a number, got NoneType")])
def test_beam_search_refuses_length_penalties_that_overflow(length_penalty, error, message):
    with pytest.raises(error, match=f"beam_search: {message}"):
        decoding.beam_search(_constant([0.0, 1.0, 0.0, 0.0]), None, [0], END, 2, 3, length_penalty=length_penalty)


def test_top_k_is_chosen_on_the_logits_and_extreme_temperatures_do_not_warn():
    import warnings
    rng = np.random.default_rng(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a denormal temperature overflowed the division
        tiny = decoding.sample_logits(np.array([[0.0, 1.0, -3.0]] * 50), temperature=5e-324, generator=rng)
        assert (tiny == 1).all()
    # Divided by a huge temperature the three logits round to one value; top_k=1 must still keep one.
    draws = decoding.sample_logits(np.tile([0.0, -1e-20, -2e-20], (500, 1)), temperature=1.7e308, top_k=1,
                                   generator=rng)
    assert (draws == 0).all()


@pytest.mark.parametrize("call, message", [
    (lambda: decoding.sample_logits(np.zeros((1, 3)), temperature=None), "sample_logits: temperature must be a number, "
                                                                          "got NoneType None"),
    (lambda: decoding.sample_logits(np.zeros((1, 3)), temperature="0.7"), "sample_logits: temperature .* got str"),
    (lambda: decoding.choose_inputs(np.array([1]), np.array([2]), "0.5"), "choose_inputs: p_truth .* got str '0.5'"),
    (lambda: decoding.teacher_forcing_probability(3, "linear", c="1"), "teacher_forcing_probability: c must be"),
    (lambda: decoding.teacher_forcing_probability(3, "linear", epsilon=None), "teacher_forcing_probability: epsilon"),
    (lambda: decoding.teacher_forcing_probability(3, "exponential", k="0.5"), "teacher_forcing_probability: k must"),
    (lambda: decoding.beam_search(_constant([0.0] * V), None, [0], END, 2, 3, length_penalty="2"),
     "beam_search: length_penalty must be a number, got str '2'")])  # was silently float("2")
def test_non_numeric_arguments_are_type_errors_that_name_them(call, message):
    # A comparison with None or a str raised a bare "'>' not supported between instances ..." naming neither.
    with pytest.raises(TypeError, match=message):
        call()
    assert decoding.teacher_forcing_probability(np.int64(2), "exponential", k=np.float32(0.5)) == 0.25
    drawn = decoding.sample_logits(np.array([[0.0, 1.0, 0.0]] * 2), temperature=np.float32(0.5), top_k=1)
    assert drawn.tolist() == [1, 1]
