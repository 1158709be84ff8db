"""Count the PostgreSQL and Redis round trips one HTTP request makes (the booking and orders tests).

Every asyncpg statement (simple or extended query, ``executemany``, the
pool's ``BEGIN``/``COMMIT`` and the reset on release) and every Redis command
or pipeline is recorded with the asyncio task that sent it. uvicorn serves
each request in a task of its own and the runtime's background work (relay,
consumers, job worker) runs in other tasks, so the calls of one request are
the calls of the task that sent its marker statement. asyncpg resets a
connection on its release in a task of its own (``asyncio.shield``), which
inherits the releasing task's context: what the reset sends (nothing when the
``COMMIT`` carried it, :class:`core.storage.db.TenantConnection`) is recorded
as the releasing task's. A statement whose prepared form is not cached yet
costs one more round trip than recorded: warm the path up with one request
before counting.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import asyncpg.connection
import asyncpg.pool
import pytest
from redis.asyncio.client import Pipeline, Redis

__all__ = ["RoundTrips"]

_releasing: contextvars.ContextVar[Any] = contextvars.ContextVar("releasing", default=None)
"""The task releasing a connection, seen by the task asyncpg resets it in (a copy of its context)."""


class RoundTrips:
    """Records ``(task, "postgres" | "redis", text)`` of every call while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[tuple[Any, str, str]] = []
        connection = asyncpg.connection.Connection
        execute, extended, many = connection.execute, connection._execute, connection._executemany
        release = asyncpg.pool.Pool.release
        command, pipeline = Redis.execute_command, Pipeline.execute

        async def simple_query(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if not args:  # with arguments execute() goes through _execute, counted there
                self._record("postgres", query)
            return await execute(conn, query, *args, **kwargs)

        async def extended_query(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            self._record("postgres", query)
            return await extended(conn, query, *args, **kwargs)

        async def pipelined(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            self._record("postgres", query)  # one Sync for all the rows: one round trip
            return await many(conn, query, *args, **kwargs)

        async def released(pool: Any, conn: Any, *args: Any, **kwargs: Any) -> Any:
            token = _releasing.set(asyncio.current_task())
            try:
                return await release(pool, conn, *args, **kwargs)
            finally:
                _releasing.reset(token)

        async def redis_command(client: Any, *args: Any, **kwargs: Any) -> Any:
            self._record("redis", " ".join(str(a) for a in args[:2]))
            return await command(client, *args, **kwargs)

        async def redis_pipeline(client: Any, *args: Any, **kwargs: Any) -> Any:
            self._record("redis", "pipeline")
            return await pipeline(client, *args, **kwargs)

        monkeypatch.setattr(connection, "execute", simple_query)
        monkeypatch.setattr(connection, "_execute", extended_query)
        monkeypatch.setattr(connection, "_executemany", pipelined)
        monkeypatch.setattr(asyncpg.pool.Pool, "release", released)
        monkeypatch.setattr(Redis, "execute_command", redis_command)
        monkeypatch.setattr(Pipeline, "execute", redis_pipeline)

    def _record(self, backend: str, text: str) -> None:
        task = _releasing.get() or asyncio.current_task()
        self.calls.append((task, backend, " ".join(text.split())))

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.calls.clear()

    def of_request(self, marker: str) -> dict[str, list[str]]:
        """The calls of the one request whose task sent a statement containing ``marker``.

        Returns:
            ``{"postgres": [statement, ...], "redis": [command, ...]}`` in the order sent.

        Raises:
            AssertionError: no task, or more than one, sent ``marker``.
        """
        tasks = {id(task) for task, backend, text in self.calls if marker in text}
        assert len(tasks) == 1, f"{len(tasks)} tasks sent {marker!r}"
        [task_id] = tasks
        calls: dict[str, list[str]] = {"postgres": [], "redis": []}
        for task, backend, text in self.calls:
            if id(task) == task_id:
                calls[backend].append(text)
        return calls
