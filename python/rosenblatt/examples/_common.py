"""Small helpers shared by the example scripts."""
from __future__ import annotations

import argparse
import json
import math
import sys


def print_result(result: dict) -> None:
    """The examples' contract: the last line on stdout is one JSON object of final metrics."""
    print(json.dumps(result), flush=True)


def set_threads(threads: int | None) -> None:
    """--threads (parsed as positive(int)); a count the kernels refuse (above their limit) ends the run
    with their message rather than a traceback."""
    if threads is not None:
        import rosenblatt
        try:
            rosenblatt.set_num_threads(threads)
        except ValueError as error:
            raise SystemExit(f"--threads: {error}") from None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _number(kind, accepts, requirement: str, name: str):
    """An argparse type: a number of `kind` for which accepts(value) holds, else the requirement."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not accepts(value):  # NaN fails every comparison, so every check
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__name__ = name
    return parse


def positive(kind):
    """An argparse type: a number of `kind` above 0 (a zero step count or window divided by zero,
    and zero minutes read as no deadline at all)."""
    return _number(kind, lambda value: 0 < value < math.inf, "positive and finite", f"positive {kind.__name__}")


def non_negative(kind):
    """An argparse type: a finite number of `kind` >= 0 (seeds: NumPy refuses negative ones deep inside;
    radii and loss weights: a negative or NaN one has no meaning, and was silently read as 0 or made NaN)."""
    return _number(kind, lambda value: 0 <= value < math.inf, "non-negative and finite",
                   f"non-negative {kind.__name__}")


def between(kind, low, high):
    """An argparse type: a number of `kind` in [low, high] (fractions, IoU thresholds, bounded factors)."""
    return _number(kind, lambda value: low <= value <= high, f"between {low} and {high}",
                   f"{kind.__name__} in [{low}, {high}]")


def device_option(text: str):
    """An argparse type: a device this build and machine have, "cpu" or "cuda[:N]" (torch's
    spelling). The model, its optimizer state and each batch live there; data are generated and
    augmented on the host, as a torch input pipeline does, and metrics read back from it."""
    import rosenblatt
    try:
        device = rosenblatt.device(text)
        if device.type == "cuda":
            rosenblatt.zeros(1).to(device)  # the first use of a device that is not there raises
    except (ValueError, RuntimeError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return device


def module_device(module):
    """The device of a module's parameters: its inputs are made on the host and moved there."""
    return next(iter(module.parameters())).device


def add_run_options(parser) -> None:
    """--seed, --threads and --device, which every example takes."""
    parser.add_argument("--seed", type=non_negative(int), default=0)
    parser.add_argument("--threads", type=positive(int), default=None)
    parser.add_argument("--device", type=device_option, default="cpu",
                        help="cpu (default) or cuda[:N], where rosenblatt was built with CUDA")


def check_loss(loss: float, example: str, where: str) -> float:
    """A training loss, or SystemExit when it is NaN or infinite: the run diverged, and every metric
    measured on the model after it would be meaningless (a NaN net still "predicts" class 0)."""
    if not math.isfinite(loss):
        raise SystemExit(f"{example}: the training loss is {loss} at {where}: training diverged "
                         "(a smaller --lr may help)")
    return loss


def apply_quick_defaults(parser, args, quick: dict) -> None:
    """--quick: the options in `quick` take its values, except those given explicitly on the command
    line (an option still at the parser's default counts as not given)."""
    for key, value in quick.items():
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)
