"""The library's one random stream: initialisation, dropout, shuffling and sampling draw
from it, so `rosenblatt.manual_seed(n)` makes a whole run reproducible."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    return _generator
