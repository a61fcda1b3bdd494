"""_conv_functional."""
__all__ = []
