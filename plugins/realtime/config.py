"""Settings of the realtime plugin: the ``features.realtime`` block of a tenant file."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["RealtimeSettings", "WebhookEndpoint"]


class WebhookEndpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partner system that receives matching events as signed HTTP POSTs.

    Attributes:
        url: ``http://`` or ``https://`` address the events are POSTed to.
        secret: the HMAC-SHA256 signing key; write it as ``${ENV_VAR}``
            (at least 16 characters).
        events: ``fnmatch`` patterns of event names (``orders.*``); default all.
        retry_for_seconds: a failing delivery is retried with backoff for this
            long after the event, then given up, 60-604800 (default 3600).
    """

    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=2000)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
    events: list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    retry_for_seconds: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 3600


class RealtimeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a tenant's events are kept for replay and pushed.

    Attributes:
        history_count: events kept per topic for replay after a reconnect,
            10-100000 (default 1000).
        history_seconds: and kept for at most this long, seconds, 60-2592000
            (default 86400, a day). A cursor older than what is kept gets ``reset``.
        ping_seconds: interval of the server's ``ping`` frames, 0.2-300
            (default 30); a client silent for two intervals is disconnected.
        max_message_bytes: largest message accepted from a client, and largest
            event frame sent (a bigger one is replaced by ``reset``), 1024-1048576
            (default 65536).
        queue_size: frames buffered per connection; a client further behind is
            caught up from the stream, 16-10000 (default 256).
        ticket_seconds: lifetime of a connection ticket, 1-300 (default 30).
        webhooks: outgoing webhooks (default none).
    """

    history_count: Annotated[int, msgspec.Meta(ge=10, le=100_000)] = 1000
    history_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 86400
    ping_seconds: Annotated[float, msgspec.Meta(ge=0.2, le=300)] = 30
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 65536
    queue_size: Annotated[int, msgspec.Meta(ge=16, le=10_000)] = 256
    ticket_seconds: Annotated[int, msgspec.Meta(ge=1, le=300)] = 30
    webhooks: list[WebhookEndpoint] = []
