"""torch.nn-style layers. Each family has its own file."""
from .module import Module, Parameter  # noqa: F401
from .linear import *  # noqa: F401,F403  Linear, Identity, Maxout, ...
from .activation import *  # noqa: F401,F403
from .container import *  # noqa: F401,F403  Sequential, ModuleList, ...
from .dropout import *  # noqa: F401,F403
from .flatten import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403  CrossEntropyLoss, MSELoss, ...
from .conv import *  # noqa: F401,F403  (conv family: Conv2d, ConvTranspose2d, LocallyConnected2d)
from .pooling import *  # noqa: F401,F403  (pooling, SPP, RoIPool, Upsample)
from .rnn import *  # noqa: F401,F403  (RNN, LSTM, GRU, cells, Embedding, GridRNN2d)
from .batchnorm import *  # noqa: F401,F403  (BatchNorm1d, BatchNorm2d, Dropout2d)
