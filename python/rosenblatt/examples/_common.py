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
    if threads:
        import rosenblatt
        rosenblatt.set_num_threads(threads)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def positive(kind):
    """An argparse type: a number of `kind` above 0 (a zero step count or window divided by zero,
    and zero minutes read as no deadline at all)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (0 < value < math.inf):  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def apply_quick_defaults(parser, args, quick: dict) -> None:
    """--quick: the options in `quick` take its values, except those given explicitly on the command
    line (an option still at the parser's default counts as not given)."""
    for key, value in quick.items():
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)
