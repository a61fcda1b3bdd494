"""_rnn_functional."""
__all__ = []
