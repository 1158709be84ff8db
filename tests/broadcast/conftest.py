"""Fixtures of the broadcast tests (the helpers live in _broadcast_support)."""

from _broadcast_support import shop

__all__ = ["shop"]
