"""English number words to German: an encoder-decoder translator (Sutskever et al. 2014, Cho et al. 2014).

The corpus is generated: every number from 0 to 9999 written in English words ("three hundred
twenty one") and in German words split at their parts ("drei hundert ein und zwanzig"). German
names the units before the tens ("ein und zwanzig": one and twenty), a reordering the model has
to learn, and writes 1 as "eins" alone but "ein" before "und", "hundert" and "tausend".
A fixed random split (independent of --seed) holds out 1,000 test and 500 validation numbers that
training never sees; progress is reported on the validation numbers, the test numbers are
translated once at the end.

The encoder embeds the English words and reads them with a GRU (bidirectional with
--bidirectional); its final state starts a GRU decoder that predicts the German words one at a
time. Training minimises cross entropy with Adam and gradient clipping. The decoder reads the
ground-truth previous word (teacher forcing), or with a scheduled-sampling schedule
(--teacher-forcing linear|exponential|inverse_sigmoid, Bengio et al. 2015) increasingly often its
own previous prediction. Test translations are decoded by greedy search and by beam search
(rosenblatt.nn.decoding), the decoder stepping one word at a time.

    python -m rosenblatt.examples.translate                   # >= 99.7% of test numbers exactly right
    python -m rosenblatt.examples.translate --teacher-forcing inverse_sigmoid --bidirectional
    python -m rosenblatt.examples.translate --device cuda       # model and batches on the GPU

The default run (1,500 steps; 30 s of CPU time on one core) translates 99.7-99.9% of the test
numbers exactly, greedy and beam alike (seeds 0-2). What it gets wrong are numbers written with
one English word that training never saw alone, such as 1 ("one") or 40 ("forty").
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.nn import decoding
from rosenblatt.nn import functional as F
from rosenblatt.random import default_generator
from rosenblatt.tensor import Tensor, no_grad

from ._common import (add_run_options, apply_quick_defaults, between, check_loss, log, positive, print_result,
                      set_threads)

# ---- the two languages ----------------------------------------------------------------------------
NUMBERS = 10_000          # 0 .. 9999
SPLIT_SEED = 0            # the test and validation numbers never change with --seed
TEST_SIZE, VALIDATION_SIZE = 1000, 500

ENGLISH_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
ENGLISH_TENS = [None, None, "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
GERMAN_UNITS = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn", "elf",
                "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"]
GERMAN_TENS = [None, None, "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]


def _check_number(n: int) -> None:
    if not 0 <= n < NUMBERS:
        raise ValueError(f"translate: numbers run from 0 to {NUMBERS - 1}, got {n}")


def english_words(n: int) -> list:
    """3721 -> three thousand seven hundred twenty one (no "and", no hyphens)."""
    _check_number(n)
    if n == 0:
        return ["zero"]
    thousands, hundreds, rest = n // 1000, n // 100 % 10, n % 100
    words = []
    if thousands:
        words += [ENGLISH_UNITS[thousands], "thousand"]
    if hundreds:
        words += [ENGLISH_UNITS[hundreds], "hundred"]
    if rest >= 20:
        words.append(ENGLISH_TENS[rest // 10])
        if rest % 10:
            words.append(ENGLISH_UNITS[rest % 10])
    elif rest:
        words.append(ENGLISH_UNITS[rest])
    return words


def german_words(n: int) -> list:
    """3721 -> drei tausend sieben hundert ein und zwanzig: the compound einundzwanzig split into
    its parts. One is "eins" standing alone at the end (101: ein hundert eins), "ein" as a count
    (ein hundert, ein tausend) and before "und" (ein und zwanzig); hundert and tausend always
    carry their count (ein hundert, not the also correct bare hundert)."""
    _check_number(n)
    if n == 0:
        return ["null"]
    count = lambda k: "ein" if k == 1 else GERMAN_UNITS[k]  # noqa: E731  1 before a noun or "und"
    thousands, hundreds, rest = n // 1000, n // 100 % 10, n % 100
    words = []
    if thousands:
        words += [count(thousands), "tausend"]
    if hundreds:
        words += [count(hundreds), "hundert"]
    if rest >= 20:
        if rest % 10:
            words += [count(rest % 10), "und"]
        words.append(GERMAN_TENS[rest // 10])
    elif rest:
        words.append(GERMAN_UNITS[rest])
    return words


PAD, BOS, EOS = "<pad>", "<s>", "</s>"


class WordVocabulary:
    """Words <-> ids; id 0 is PAD, then BOS and EOS, then the words in the given order."""

    def __init__(self, words):
        self.words = [PAD, BOS, EOS] + sorted(set(words) - {PAD, BOS, EOS})
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words) -> list:
        return [self.index[word] for word in words]

    def decode(self, ids) -> list:
        """Words up to (not including) the first EOS; PAD and BOS are dropped."""
        words = []
        for i in ids:
            if i == self.index[EOS]:
                break
            if i not in (self.index[PAD], self.index[BOS]):
                words.append(self.words[i])
        return words


PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
ENGLISH = WordVocabulary(ENGLISH_UNITS + [w for w in ENGLISH_TENS if w] + ["hundred", "thousand"])
GERMAN = WordVocabulary(GERMAN_UNITS + [w for w in GERMAN_TENS if w] + ["ein", "und", "hundert", "tausend"])


class Corpus:
    """Every number as padded id matrices, rows = numbers:
    source (N, S) English ids (reversed when reverse_source, as Sutskever et al.), source_lengths (N,),
    target (N, T + 1) German ids followed by EOS, target_lengths (N,) counting the EOS."""

    def __init__(self, reverse_source: bool = False):
        english = [ENGLISH.encode(english_words(n)) for n in range(NUMBERS)]
        if reverse_source:
            english = [ids[::-1] for ids in english]
        german = [GERMAN.encode(german_words(n)) + [EOS_ID] for n in range(NUMBERS)]
        self.source, self.source_lengths = _padded(english)
        self.target, self.target_lengths = _padded(german)

    def batch(self, numbers: np.ndarray, device="cpu"):
        """Time-major tensors on `device` for the given numbers: source (S, B), source lengths (B,)
        (an ndarray: the encoder reads them on the host), decoder inputs (T, B) = BOS then the target
        shifted right, decoder targets (T, B) (PAD ignored)."""
        source = self.source[numbers, :self.source_lengths[numbers].max()].T
        target = self.target[numbers, :self.target_lengths[numbers].max()].T
        inputs = np.concatenate([np.full((1, len(numbers)), BOS_ID), target[:-1]], axis=0)
        return (Tensor(np.ascontiguousarray(source)).to(device), self.source_lengths[numbers],
                Tensor(np.ascontiguousarray(inputs)).to(device), Tensor(np.ascontiguousarray(target)).to(device))


def _padded(sequences):
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    out = np.full((len(sequences), lengths.max()), PAD_ID, dtype=np.int64)
    for row, ids in enumerate(sequences):
        out[row, :len(ids)] = ids
    return out, lengths


def split_numbers():
    """(train, validation, test) arrays of numbers, disjoint, from a fixed permutation."""
    order = np.random.default_rng(SPLIT_SEED).permutation(NUMBERS)
    test, validation = order[:TEST_SIZE], order[TEST_SIZE:TEST_SIZE + VALIDATION_SIZE]
    return np.sort(order[TEST_SIZE + VALIDATION_SIZE:]), np.sort(validation), np.sort(test)


# ---- model -----------------------------------------------------------------------------------------
class Translator(nn.Module):
    """Embedding + GRU encoder (optionally bidirectional) -> its final state, through a tanh layer
    when bidirectional (both directions' states concatenated) -> a GRU decoder's initial state;
    decoder: Embedding + GRU + linear scores over the German words. Sequence-first: ids (T, B)."""

    def __init__(self, source_vocab: int, target_vocab: int, embedding: int = 64, hidden: int = 256,
                 bidirectional: bool = False):
        super().__init__()
        self.source_embedding = nn.Embedding(source_vocab, embedding, padding_idx=PAD_ID)
        self.encoder = nn.GRU(embedding, hidden, bidirectional=bidirectional)
        self.bridge = nn.Linear(2 * hidden, hidden) if bidirectional else None
        self.target_embedding = nn.Embedding(target_vocab, embedding, padding_idx=PAD_ID)
        self.decoder = nn.GRU(embedding, hidden)
        self.head = nn.Linear(hidden, target_vocab)

    def encode(self, source, lengths) -> Tensor:
        """source (S, B), lengths (B,) -> the decoder's initial state (1, B, H)."""
        _, final = self.encoder(self.source_embedding(source), lengths=lengths)  # (directions, B, H)
        if self.bridge is None:
            return final
        both = rosenblatt.cat([final[0], final[1]], dim=1)
        return self.bridge(both).tanh().unsqueeze(0)

    def decode(self, inputs, state):
        """inputs (T, B), state (1, B, H) -> scores (T, B, V) and the new state."""
        hidden, state = self.decoder(self.target_embedding(inputs), state)
        return self.head(hidden), state

    def step(self, ids, state):
        """One decoder step, the searches' step function: ids (B,) -> scores (B, V) and the state."""
        scores, state = self.decode(ids.unsqueeze(0), state)
        return scores[0], state


def sequence_loss(scores, targets) -> Tensor:
    """Mean cross entropy per target word: scores (T, B, V), targets (T, B), PAD ignored."""
    return F.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)


def scheduled_scores(model: Translator, state, inputs, p_truth: float):
    """The decoder run one step at a time, each step reading the ground-truth previous word with
    probability p_truth and else its own previous prediction (the argmax), per word (Bengio et
    al. 2015). inputs (T, B): the teacher-forced inputs -> scores (T, B, V)."""
    steps = []
    ids = inputs[0]  # BOS
    for t in range(inputs.shape[0]):
        scores, state = model.step(ids, state)
        steps.append(scores)
        if t + 1 < inputs.shape[0]:  # on a device, chosen there: only the coin flips come from the host
            ids = Tensor(decoding.choose_inputs(inputs[t + 1], scores.detach().argmax(dim=1), p_truth))
    return rosenblatt.stack(steps)


def schedule_parameters(schedule: str, steps: int, floor: float) -> dict:
    """The paper's k, c, epsilon for a run of `steps` steps: linear and exponential fall from 1 to
    `floor` at the last step; inverse sigmoid passes 1/2 half way (k ln k = steps / 2)."""
    if schedule == "constant":
        return {"k": 1.0}
    if schedule == "linear":
        return {"k": 1.0, "c": (1.0 - floor) / steps, "epsilon": floor}
    if schedule == "exponential":
        return {"k": max(floor, 1e-3) ** (1.0 / steps)}
    middle, k = steps / 2, max(steps / 2 / math.log(max(steps / 2, math.e)), 1.0)
    for _ in range(50):  # Newton's method on k ln k = middle (convex, increasing for k >= 1)
        k = max(1.0, k - (k * math.log(k) - middle) / (math.log(k) + 1))
    return {"k": k}


# ---- evaluation ------------------------------------------------------------------------------------
@no_grad()
def validation_loss(model: Translator, corpus: Corpus, numbers) -> float:
    was_training = model.training
    model.eval()
    source, lengths, inputs, targets = corpus.batch(numbers, model.head.weight.device)
    scores, _ = model.decode(inputs, model.encode(source, lengths))
    model.train(was_training)
    return sequence_loss(scores, targets).item()


@no_grad()
def translate(model: Translator, corpus: Corpus, numbers, beam_size: int = 1, length_penalty: float = 1.0):
    """Decoded German ids (B, L) and lengths (counting EOS) for the numbers: greedy search when
    beam_size is 1, else beam search."""
    was_training = model.training
    model.eval()
    source, lengths, _, _ = corpus.batch(numbers, model.head.weight.device)
    state = model.encode(source, lengths)  # on the model's device: the searches send it the ids there
    start = np.full(len(numbers), BOS_ID, dtype=np.int64)
    max_length = corpus.target.shape[1] + 2  # room for a model that runs on
    if beam_size == 1:
        ids, out_lengths = decoding.greedy_search(model.step, state, start, max_length, end_id=EOS_ID)
    else:
        ids, out_lengths, _ = decoding.beam_search(model.step, state, start, EOS_ID, beam_size, max_length,
                                                   length_penalty)
    model.train(was_training)
    return ids, out_lengths


def accuracy(corpus: Corpus, numbers, ids, lengths) -> dict:
    """exact: the share of numbers translated exactly (every word and the EOS, nothing more);
    token: the share of reference words (EOS included) matched at their position."""
    reference, reference_lengths = corpus.target[numbers], corpus.target_lengths[numbers]
    width = reference.shape[1]
    predicted = np.full((len(numbers), width), EOS_ID, dtype=np.int64)  # outputs are padded with EOS
    predicted[:, :min(width, ids.shape[1])] = ids[:, :width]
    in_reference = np.arange(width) < reference_lengths[:, None]
    matches = (predicted == reference) & in_reference
    exact = (matches.sum(axis=1) == reference_lengths) & (lengths == reference_lengths)
    return {"exact": float(exact.mean()), "token": float(matches.sum() / in_reference.sum())}


def german_text(ids) -> str:
    return " ".join(GERMAN.decode(ids))


# ---- training --------------------------------------------------------------------------------------
QUICK = dict(embedding=16, hidden=48, steps=150, batch_size=32, eval_every=75, beam_size=3)


def train(args) -> dict:
    corpus = Corpus(args.reverse_source)
    train_numbers, validation_numbers, test_numbers = split_numbers()
    if args.quick:
        test_numbers = test_numbers[:200]
    log(f"translate: {len(train_numbers)} training, {len(validation_numbers)} validation, {len(test_numbers)} "
        f"test numbers; vocabularies {len(ENGLISH)} English, {len(GERMAN)} German words")
    model = Translator(len(ENGLISH), len(GERMAN), args.embedding, args.hidden, args.bidirectional).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=args.lr / 20)
    schedule = schedule_parameters(args.teacher_forcing, args.steps, args.teacher_forcing_floor)
    parameters = list(model.parameters())

    initial_loss = validation_loss(model, corpus, validation_numbers)
    log(f"translate: validation loss {initial_loss:.3f} before training (uniform: {math.log(len(GERMAN)):.3f}); "
        f"teacher forcing {args.teacher_forcing} {schedule}")
    generator = default_generator()
    order, position = generator.permutation(train_numbers), 0
    losses = []
    start = time.perf_counter()
    for step in range(args.steps):
        if position + args.batch_size > len(order):  # a new epoch: reshuffle
            order, position = generator.permutation(train_numbers), 0
        numbers = order[position:position + args.batch_size]
        position += args.batch_size
        source, lengths, inputs, targets = corpus.batch(numbers, args.device)
        state = model.encode(source, lengths)
        p_truth = decoding.teacher_forcing_probability(step, args.teacher_forcing, **schedule)
        if p_truth == 1.0:  # pure teacher forcing: the whole target sequence in one decoder call
            scores, _ = model.decode(inputs, state)
        else:
            scores = scheduled_scores(model, state, inputs, p_truth)
        loss = sequence_loss(scores, targets)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, args.clip)
        optimizer.step()
        scheduler.step()
        losses.append(check_loss(loss.item(), "translate", f"step {step + 1}"))
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            ids, out_lengths = translate(model, corpus, validation_numbers)
            valid = accuracy(corpus, validation_numbers, ids, out_lengths)
            log(f"step {step + 1}: train loss {np.mean(losses[-args.eval_every:]):.4f}, validation exact "
                f"{valid['exact']:.3f}, words {valid['token']:.3f}, teacher forcing p={p_truth:.2f}, "
                f"{time.perf_counter() - start:.0f} s")
    train_time = time.perf_counter() - start
    final_loss = validation_loss(model, corpus, validation_numbers)

    start = time.perf_counter()
    greedy_ids, greedy_lengths = translate(model, corpus, test_numbers)
    greedy_time = time.perf_counter() - start
    start = time.perf_counter()
    beam_ids, beam_lengths = translate(model, corpus, test_numbers, args.beam_size, args.length_penalty)
    beam_time = time.perf_counter() - start
    greedy, beam = (accuracy(corpus, test_numbers, greedy_ids, greedy_lengths),
                    accuracy(corpus, test_numbers, beam_ids, beam_lengths))
    for row in np.linspace(0, len(test_numbers) - 1, 6).astype(int):  # small to large numbers
        n = int(test_numbers[row])
        log(f"  {n:>4}  {' '.join(english_words(n))}  ->  {german_text(beam_ids[row])}"
            f"{'' if german_words(n) == GERMAN.decode(beam_ids[row]) else '   (expected ' + ' '.join(german_words(n)) + ')'}")
    wrong = [int(n) for row, n in enumerate(test_numbers) if GERMAN.decode(beam_ids[row]) != german_words(n)]
    if wrong:
        log(f"translate: beam search got {len(wrong)} test numbers wrong, e.g. {wrong[:8]}")
    return {"test_exact_greedy": greedy["exact"], "test_exact_beam": beam["exact"],
            "test_token_accuracy_greedy": greedy["token"], "test_token_accuracy_beam": beam["token"],
            "validation_exact_greedy": valid["exact"], "initial_loss": initial_loss, "final_loss": final_loss,
            "train_loss_first": float(np.mean(losses[:10])), "train_loss_last": float(np.mean(losses[-10:])),
            "steps": args.steps, "train_time_s": round(train_time, 2),
            "examples_per_s": round(args.steps * args.batch_size / train_time, 1),
            "greedy_time_s": round(greedy_time, 3), "beam_time_s": round(beam_time, 3), "beam_size": args.beam_size,
            "length_penalty": args.length_penalty, "teacher_forcing": args.teacher_forcing,
            "embedding": args.embedding, "hidden": args.hidden, "bidirectional": args.bidirectional,
            "reverse_source": args.reverse_source, "batch_size": args.batch_size, "lr": args.lr,
            "train_size": len(train_numbers), "validation_size": len(validation_numbers),
            "test_size": len(test_numbers), "seed": args.seed, "threads": rosenblatt.get_num_threads(),
            "device": str(args.device)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.translate",
                                     description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedding", type=positive(int), default=64)
    parser.add_argument("--hidden", type=positive(int), default=256)
    parser.add_argument("--bidirectional", action="store_true", help="a bidirectional encoder")
    parser.add_argument("--reverse-source", action="store_true", help="read the English words backwards")
    parser.add_argument("--steps", type=positive(int), default=1500)
    parser.add_argument("--batch-size", type=positive(int), default=64)
    parser.add_argument("--lr", type=positive(float), default=3e-3, help="Adam's learning rate, annealed to lr/20")
    parser.add_argument("--clip", type=positive(float), default=1.0, help="maximal global gradient norm")
    parser.add_argument("--teacher-forcing", choices=decoding.SCHEDULES, default="constant",
                        help="how often the decoder reads the true previous word: always (constant) or a "
                             "scheduled-sampling decay")
    parser.add_argument("--teacher-forcing-floor", type=between(float, 0.0, 1.0), default=0.25,
                        help="where the linear and exponential decays end")
    parser.add_argument("--beam-size", type=positive(int), default=5)
    parser.add_argument("--length-penalty", type=between(float, -100.0, 100.0), default=1.0,
                        help="beam scores: log-probability / length ** this (|this| <= 100: length ** this stays "
                             "within float64)")
    parser.add_argument("--eval-every", type=positive(int), default=500)
    add_run_options(parser)
    parser.add_argument("--quick", action="store_true", help="a tiny model for a few steps (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick_defaults(parser, args, QUICK)
    set_threads(args.threads)
    rosenblatt.manual_seed(args.seed)
    result = train(args)
    print_result(result)
    return result


if __name__ == "__main__":
    main()
