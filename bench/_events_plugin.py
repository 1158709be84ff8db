"""The ``eventsbench`` plugin: an API create with and without a domain event, and its consumer.

Registered only in the runtimes of ``bench/events.py`` (through
``build_plugin_manager(extra=[("eventsbench", this module)])`` in
``bench/_events_runner.py``), never installed. Its two routes
(``bench/_events_api.py``) insert one ``bench_items`` row in a transaction;
one of them also publishes ``eventsbench.created`` in it.

``on_event`` records, for each ``eventsbench.created`` it receives, when the
event occurred and when it was handled (``time.time()``, seconds since the
epoch) in the Redis hash ``<tenant prefix>eventsbench:handled:<run>`` (field:
the event id, so a redelivery adds no field) and counts its calls in
``<tenant prefix>eventsbench:calls:<run>`` (more calls than fields: an event
was handled twice).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import hookimpl

if TYPE_CHECKING:
    from core import DomainEvent, Tenant

EVENT_NAME = "eventsbench.created"


def handled_key(prefix: str, run: str) -> str:
    """The hash of event id -> ``"<occurred_at> <handled_at>"`` (epoch seconds) of ``run``.

    Args:
        prefix: the tenant's Redis prefix (``storage.redis_prefix``).
        run: the run name the creates carried.
    """
    return f"{prefix}eventsbench:handled:{run}"


def calls_key(prefix: str, run: str) -> str:
    """The counter of ``on_event`` calls for ``run``'s events, redeliveries included."""
    return f"{prefix}eventsbench:calls:{run}"


@hookimpl
def register_migrations() -> Path:
    """``bench/_events_migrations``: the ``bench_items`` table."""
    return Path(__file__).parent / "_events_migrations"


@hookimpl
def register_route_handlers() -> list[Any]:
    """The items controller (``bench/_events_api.py``)."""
    from _events_api import ItemController

    return [ItemController]


@hookimpl
async def on_event(tenant: Tenant, event: DomainEvent) -> None:
    """Record when an ``eventsbench.created`` occurred and when it was handled (one round trip)."""
    if event.name != EVENT_NAME:
        return
    handled_at = time.time()
    run = str(event.payload.get("run", "none"))
    prefix = tenant.config.redis_prefix
    pipe = tenant.redis.pipeline(transaction=False)
    pipe.hsetnx(
        handled_key(prefix, run),
        event.id,
        f"{event.occurred_at.timestamp():.6f} {handled_at:.6f}",
    )
    pipe.incr(calls_key(prefix, run))
    await pipe.execute()
