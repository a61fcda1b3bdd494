"""Small helpers shared by the example scripts."""
from __future__ import annotations

import json
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
