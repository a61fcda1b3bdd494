"""linear layers."""
__all__ = []
