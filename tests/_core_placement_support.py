"""The second PostgreSQL server of the placement tests, and the queries they check it with.

:func:`second_postgres` starts a PostgreSQL 16 of its own (pgserver) in a
temporary folder and throws it away after; tests/test_core_placement.py and
tests/test_core_placement_moves.py each start one for the module
(``second_server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

SECOND = "second"


@contextlib.contextmanager
def second_postgres() -> Iterator[str]:
    """DSN of a second PostgreSQL server (pgserver), thrown away on exit."""
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    # Under /tmp, not pytest's deeper tmp_path: the server's unix socket path
    # must stay under the 107 bytes of sun_path.
    with tempfile.TemporaryDirectory(prefix="tenantry-pg2-", dir="/tmp") as folder:
        try:
            yield servers.start_postgres(Path(folder))
        finally:
            servers.close()


async def _fetch(dsn: str, query: str, *args: object) -> list[dict[str, object]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


async def _schemas(dsn: str, *names: str) -> set[str]:
    rows = await _fetch(
        dsn, "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", list(names)
    )
    return {str(r["nspname"]) for r in rows}


async def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
