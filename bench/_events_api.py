"""HTTP API of the ``eventsbench`` plugin: one create, with and without its domain event.

Both routes sit under ``/api/tenants/{tenant_id}/eventsbench/items``, behind the
same guards (an API key, the write limit), decode the same body and insert one
``bench_items`` row in a transaction; they differ only in the
``tenant.publish(..., conn=conn)`` call, so their latencies differ by what the
outbox costs the request (the INSERT into ``tenantry_outbox`` and the
``pg_notify``) plus whatever the relay and consumers take from the same
process meanwhile. Each records how long its transaction took in this
process, so the benchmark can tell time spent in PostgreSQL (and waiting for
a connection) from the rest of the request.
"""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from _events_plugin import EVENT_NAME
from litestar import Controller, get, post
from litestar.params import JSONBody

from core.http.auth import TenantDep, require_api_key
from core.http.ratelimit import limit_writes

_INSERT = "INSERT INTO bench_items (title) VALUES ($1) RETURNING id"

TRANSACTION_SECONDS: dict[str, list[float]] = {"published": [], "unpublished": []}
"""Seconds each create's transaction took in this process (taking the connection
through the commit), by route, since the last ``GET .../items/timings``."""
COMMIT_SECONDS: dict[str, list[float]] = {"published": [], "unpublished": []}
"""The part of each of those spent from the last statement until the
connection was back in the pool (the ``COMMIT``: with a ``NOTIFY`` pending,
PostgreSQL serializes it against every other notifying commit)."""


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new item.

    Attributes:
        title: 1-200 characters.
        run: the benchmark run it belongs to (``p1``, ``warm``...), 1-32
            characters of a-z, 0-9 and ``-``; it names the Redis hash the
            consumer records the event in.
    """

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    run: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,32}$")]


class ItemCreated(msgspec.Struct):
    """The created item's id."""

    id: int


class Timings(msgspec.Struct):
    """Seconds per create transaction and per commit, by route.

    Attributes:
        transaction: :data:`TRANSACTION_SECONDS`.
        commit: :data:`COMMIT_SECONDS`.
    """

    transaction: dict[str, list[float]]
    commit: dict[str, list[float]]


class ItemController(Controller):
    """``/api/tenants/{tenant_id}/eventsbench/items``."""

    path = "/items"

    @post("/published", guards=[require_api_key, limit_writes], status_code=200)
    async def create_published(self, data: JSONBody[ItemIn], tenant: TenantDep) -> ItemCreated:
        """Insert the row and publish ``eventsbench.created`` in the same transaction."""
        started = time.perf_counter()
        async with tenant.db.transaction() as conn:
            item_id = await conn.fetchval(_INSERT, data.title)
            await tenant.publish(EVENT_NAME, {"id": item_id, "run": data.run}, conn=conn)
            committing = time.perf_counter()
        _record("published", started, committing)
        return ItemCreated(id=item_id)

    @post("/unpublished", guards=[require_api_key, limit_writes], status_code=200)
    async def create_unpublished(self, data: JSONBody[ItemIn], tenant: TenantDep) -> ItemCreated:
        """Insert the row in a transaction and publish nothing (the baseline)."""
        started = time.perf_counter()
        async with tenant.db.transaction() as conn:
            item_id = await conn.fetchval(_INSERT, data.title)
            committing = time.perf_counter()
        _record("unpublished", started, committing)
        return ItemCreated(id=item_id)

    @get("/timings", guards=[require_api_key])
    async def timings(self) -> Timings:
        """The transaction times recorded since the previous call, then forget them."""
        taken = Timings(
            transaction={route: list(v) for route, v in TRANSACTION_SECONDS.items()},
            commit={route: list(v) for route, v in COMMIT_SECONDS.items()},
        )
        for values in (*TRANSACTION_SECONDS.values(), *COMMIT_SECONDS.values()):
            values.clear()
        return taken


def _record(route: str, started: float, committing: float) -> None:
    done = time.perf_counter()
    TRANSACTION_SECONDS[route].append(done - started)
    COMMIT_SECONDS[route].append(done - committing)
