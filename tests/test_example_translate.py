"""The translation case study: its number words in both languages, its data split, its model's
step function, and a quick run through `python -m rosenblatt.examples.translate`."""
import math

import numpy as np
import pytest

import rosenblatt
from rosenblatt.examples import translate
from rosenblatt.nn import decoding
from test_examples import run_example

# Checked by hand against German orthography: compounds split at their parts, "eins" alone at
# the end, "ein" as a count and before "und", hundert and tausend always with their count.
GERMAN = {
    0: "null", 1: "eins", 2: "zwei", 7: "sieben", 10: "zehn", 11: "elf", 12: "zwölf", 13: "dreizehn",
    16: "sechzehn", 17: "siebzehn", 19: "neunzehn", 20: "zwanzig", 21: "ein und zwanzig",
    30: "dreißig", 31: "ein und dreißig", 45: "fünf und vierzig", 60: "sechzig", 66: "sechs und sechzig",
    70: "siebzig", 77: "sieben und siebzig", 99: "neun und neunzig", 100: "ein hundert", 101: "ein hundert eins",
    111: "ein hundert elf", 116: "ein hundert sechzehn", 200: "zwei hundert", 321: "drei hundert ein und zwanzig",
    1000: "ein tausend", 1001: "ein tausend eins", 1100: "ein tausend ein hundert",
    2021: "zwei tausend ein und zwanzig", 5017: "fünf tausend siebzehn", 7300: "sieben tausend drei hundert",
    9999: "neun tausend neun hundert neun und neunzig",
}
ENGLISH = {
    0: "zero", 1: "one", 13: "thirteen", 21: "twenty one", 40: "forty", 101: "one hundred one",
    321: "three hundred twenty one", 1000: "one thousand", 2021: "two thousand twenty one",
    9999: "nine thousand nine hundred ninety nine",
}


@pytest.mark.parametrize("number", sorted(GERMAN))
def test_german_number_words(number):
    assert " ".join(translate.german_words(number)) == GERMAN[number]


@pytest.mark.parametrize("number", sorted(ENGLISH))
def test_english_number_words(number):
    assert " ".join(translate.english_words(number)) == ENGLISH[number]


def test_every_number_has_a_distinct_translation_in_the_vocabularies():
    german = {" ".join(translate.german_words(n)) for n in range(translate.NUMBERS)}
    english = {" ".join(translate.english_words(n)) for n in range(translate.NUMBERS)}
    assert len(german) == len(english) == translate.NUMBERS
    assert set(" ".join(german).split()) == set(translate.GERMAN.words[3:])
    assert set(" ".join(english).split()) == set(translate.ENGLISH.words[3:])
    with pytest.raises(ValueError, match="0 to 9999"):
        translate.german_words(10_000)


def test_split_is_disjoint_fixed_and_complete():
    train, validation, test = translate.split_numbers()
    assert len(test) == translate.TEST_SIZE and len(validation) == translate.VALIDATION_SIZE
    assert not (set(train) & set(test)) and not (set(train) & set(validation)) and not (set(validation) & set(test))
    assert len(train) + len(validation) + len(test) == translate.NUMBERS
    assert np.array_equal(translate.split_numbers()[2], test)  # the same whatever rosenblatt's seed


def test_batches_shift_the_target_and_end_it_with_eos():
    corpus = translate.Corpus(reverse_source=True)
    source, lengths, inputs, targets = corpus.batch(np.array([21, 1000]))
    ids = translate.GERMAN.encode
    assert targets.numpy()[:, 0].tolist() == ids(["ein", "und", "zwanzig"]) + [translate.EOS_ID]
    assert targets.numpy()[:, 1].tolist() == ids(["ein", "tausend"]) + [translate.EOS_ID, translate.PAD_ID]
    assert inputs.numpy()[0].tolist() == [translate.BOS_ID] * 2
    assert np.array_equal(inputs.numpy()[1:], targets.numpy()[:-1])
    assert lengths.tolist() == [2, 2] and source.numpy()[:, 0].tolist() == translate.ENGLISH.encode(["one", "twenty"])


def test_accuracy_counts_whole_sentences_and_words():
    corpus = translate.Corpus()
    numbers = np.array([21, 5])
    right = corpus.target[numbers]
    lengths = corpus.target_lengths[numbers]
    assert translate.accuracy(corpus, numbers, right, lengths) == {"exact": 1.0, "token": 1.0}
    wrong = right.copy()
    wrong[0, 0] = translate.GERMAN.encode(["zwei"])[0]  # zwei und zwanzig: 3 of 4 words right
    result = translate.accuracy(corpus, numbers, wrong, lengths)
    assert result["exact"] == 0.5 and result["token"] == pytest.approx(5 / 6)
    longer = np.concatenate([right, np.full((2, 1), translate.EOS_ID)], axis=1)
    longer[1, 1] = translate.GERMAN.encode(["und"])[0]  # "fünf und": right start, no EOS where it should be
    assert translate.accuracy(corpus, numbers, longer, np.array([4, 3]))["exact"] == 0.5


def test_decoder_step_matches_the_whole_sequence_decoder():
    """The searches decode one word at a time; training reads the whole target at once."""
    rosenblatt.manual_seed(0)
    model = translate.Translator(len(translate.ENGLISH), len(translate.GERMAN), 8, 12, bidirectional=True)
    corpus = translate.Corpus()
    source, lengths, inputs, _ = corpus.batch(np.array([3, 321, 9999]))
    with rosenblatt.no_grad():
        state = model.encode(source, lengths)
        whole, _ = model.decode(inputs, state)
        for t in range(inputs.shape[0]):
            scores, state = model.step(inputs[t], state)
            np.testing.assert_allclose(scores.numpy(), whole.numpy()[t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", ["linear", "exponential", "inverse_sigmoid"])
def test_schedule_parameters_span_the_run(schedule):
    steps = 1000
    parameters = translate.schedule_parameters(schedule, steps, floor=0.25)
    p = lambda i: decoding.teacher_forcing_probability(i, schedule, **parameters)  # noqa: E731
    assert p(0) > 0.9
    if schedule == "inverse_sigmoid":
        assert p(steps // 2) == pytest.approx(0.5, abs=0.01)
    else:
        assert p(steps) == pytest.approx(0.25)


def test_quick_run_learns_and_reports():
    result = run_example("translate", "--quick", "--threads", "1")
    assert {"test_exact_greedy", "test_exact_beam", "test_token_accuracy_greedy", "test_token_accuracy_beam",
            "initial_loss", "final_loss", "train_time_s", "examples_per_s"} <= set(result)
    assert result["initial_loss"] == pytest.approx(math.log(len(translate.GERMAN)), rel=0.1)  # near uniform
    assert result["final_loss"] < 0.6 * result["initial_loss"]
    assert result["train_loss_last"] < result["train_loss_first"]
    assert result["test_token_accuracy_greedy"] > 0.3  # well above chance (1 / 35)


def test_quick_run_with_scheduled_sampling_and_a_bidirectional_encoder():
    result = run_example("translate", "--quick", "--threads", "1", "--steps", "60", "--teacher-forcing",
                         "inverse_sigmoid", "--bidirectional", "--reverse-source", "--beam-size", "2")
    assert result["teacher_forcing"] == "inverse_sigmoid" and result["bidirectional"] and result["steps"] == 60
    assert result["final_loss"] < result["initial_loss"]


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "0", "positive"),            # trained nothing, exit 0
    ("--clip", "-1", "positive"),         # a negative clip scale turned descent into ascent
    ("--clip", "nan", "positive"),        # NaN weights, then greedy_search refused the logits
    ("--teacher-forcing-floor", "2", "between 0.0 and 1.0"),  # teacher_forcing_probability's traceback
    ("--length-penalty", "1e6", "between -100.0 and 100.0"),  # beam_search's, after the whole training
    ("--length-penalty", "nan", "between -100.0 and 100.0")])
def test_translate_refuses_options_the_library_would_fail_on_later(option, value, message, capsys):
    with pytest.raises(SystemExit):
        translate.main(["--quick", "--teacher-forcing", "linear", option, value])
    assert f"argument {option}: must be {message}" in capsys.readouterr().err


def test_runs_on_a_cuda_device_as_on_the_cpu(fake, capsys):
    """Training (with scheduled sampling and a bidirectional encoder), greedy and beam search on the
    stand-in device reproduce the CPU run: the random draws come from the host stream either way, so
    only kernel rounding differs (about 1e-7 relative in the losses here; 1e-4 allowed)."""
    options = ["--quick", "--steps", "30", "--batch-size", "16", "--eval-every", "1000", "--teacher-forcing",
               "inverse_sigmoid", "--bidirectional", "--beam-size", "2"]
    cpu = translate.main(options)
    fake.calls.clear()
    cuda = translate.main(options + ["--device", "cuda"])
    assert fake.calls and cuda["device"] == "cuda" and cpu["device"] == "cpu"
    for key in ("initial_loss", "final_loss", "train_loss_first", "train_loss_last"):
        assert cuda[key] == pytest.approx(cpu[key], rel=1e-4), key
    for key in ("test_exact_greedy", "test_exact_beam", "test_token_accuracy_greedy", "test_token_accuracy_beam",
                "validation_exact_greedy"):
        assert cuda[key] == pytest.approx(cpu[key], abs=0.01), key
