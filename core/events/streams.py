"""Where domain events live in Redis: a fixed number of shard streams shared by all tenants.

A runtime holds thousands of tenants, so the layout must not need one stream,
one blocking read or one task per tenant. Each tenant maps to one of
``shards`` streams (CRC-32 of its id), which keeps one tenant's events in
publication order, and each consumer group reads every shard with one
``XREADGROUP`` call. Keys: ``<namespace>:events:<n>`` for ``n`` in
``0..shards-1``; the namespace is the runtime's queue name, which cooperating
runtimes share (``TENANTRY_QUEUE``).

Entry fields (all strings): ``id`` (the event id), ``tenant``, ``name``,
``payload`` (JSON) and ``at`` (ISO 8601 UTC).

On a Redis Cluster (``cluster=True``) each stream is its own hash tag,
``{<namespace>:events:<n>}``, so the streams spread over the nodes, and the
keys used together with a stream (done markers, their locks, the attempts
hash) carry the stream's tag: ``{<namespace>:events:<n>}:done:<group>:<id>``.
Every multi-key command then stays in one slot; a group reads each stream
with an ``XREADGROUP`` of its own (:class:`core.events.consumers.EventConsumers`).
On a plain Redis the names stay as above, so a running deployment keeps its
groups and pending entries.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

import msgspec

from core.events.model import DomainEvent

__all__ = ["StreamLayout", "decode_entry", "encode_event"]


class StreamLayout:
    """Names the shard streams and picks a tenant's shard.

    Args:
        namespace: key prefix shared by cooperating runtimes (``tenantry``).
        shards: number of streams, 1-1024. Changing it moves tenants to other
            shards; drain the streams first (docs/ops.md, "Events").
        cluster: name keys for a Redis Cluster (a hash tag per stream).

    Attributes:
        keys: the shard streams.
        reads: the stream tuples one ``XREADGROUP`` may read together: all
            streams on a plain Redis, one each on a cluster (one slot per call).
    """

    def __init__(self, namespace: str, shards: int, *, cluster: bool = False):
        if not 1 <= shards <= 1024:
            raise ValueError(f"event shards must be 1-1024, not {shards}")
        self.namespace = namespace
        self.shards = shards
        self.cluster = cluster
        if cluster:
            self.keys = tuple("{" + f"{namespace}:events:{n}" + "}" for n in range(shards))
            self.reads: tuple[tuple[str, ...], ...] = tuple((key,) for key in self.keys)
        else:
            self.keys = tuple(f"{namespace}:events:{n}" for n in range(shards))
            self.reads = (self.keys,)
        self.dead_letters = f"{namespace}:events:dead"

    def key_for(self, tenant_id: str) -> str:
        """The stream holding ``tenant_id``'s events."""
        return self.keys[zlib.crc32(tenant_id.encode()) % self.shards]

    def done_key(self, group: str, event_id: str, stream: str | None = None) -> str:
        """The marker set once ``group`` handled ``event_id`` (skips redeliveries of it).

        Args:
            group: the consumer group (plugin name).
            event_id: the event's id.
            stream: the stream the event came from; on a cluster the marker
                carries its hash tag (required there).
        """
        if self.cluster:
            return f"{stream}:done:{group}:{event_id}"
        return f"{self.namespace}:events:done:{group}:{event_id}"

    def attempts_key(self, group: str, stream: str | None = None) -> str:
        """Hash of failed delivery attempts per event id of ``group`` (on a cluster, per ``stream``)."""
        if self.cluster:
            return f"{stream}:attempts:{group}"
        return f"{self.namespace}:events:attempts:{group}"


def encode_event(event: DomainEvent) -> dict[str, str]:
    """The stream entry fields of ``event``."""
    return {
        "id": event.id,
        "tenant": event.tenant_id,
        "name": event.name,
        "payload": msgspec.json.encode(event.payload).decode(),
        "at": event.occurred_at.isoformat(),
    }


def decode_entry(fields: dict[str, Any]) -> DomainEvent | None:
    """The event of a stream entry, or None when the entry is not one of ours (malformed)."""
    try:
        payload = msgspec.json.decode(fields["payload"])
        if not isinstance(payload, dict):
            return None
        return DomainEvent(
            name=fields["name"],
            payload=payload,
            tenant_id=fields["tenant"],
            id=fields["id"],
            occurred_at=datetime.fromisoformat(fields["at"]),
        )
    except (KeyError, ValueError, TypeError, msgspec.DecodeError):
        return None
