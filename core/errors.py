"""Exception groups the runtime treats alike."""

from __future__ import annotations

import asyncpg
import redis.exceptions

__all__ = ["STORAGE_UNAVAILABLE"]

STORAGE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
"""PostgreSQL or Redis could not be reached, refused a connection, or timed out.

HTTP routes answer these with 503 and ``Retry-After``; a webhook update that
hits one is not acknowledged (503), so Telegram delivers it again.
"""
