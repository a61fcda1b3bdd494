"""Functional forms of the layers (imported as F), as torch.nn.functional."""
from __future__ import annotations

from ._conv_functional import *  # noqa: F401,F403  (conv family)
from ._rnn_functional import *  # noqa: F401,F403  (recurrent family)
