"""Neural-network layers, functional forms and initialisers, as torch.nn."""
from .modules import *  # noqa: F401,F403
from .modules import Module, Parameter  # noqa: F401
from . import functional, init, utils  # noqa: F401
