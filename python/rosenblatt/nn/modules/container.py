"""container layers."""
__all__ = []
