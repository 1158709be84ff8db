"""Prometheus counters of the domain events' background work (exported at ``/metrics``).

Per runtime and per consumer group, not per tenant: a runtime holds thousands
of tenants, and a label per tenant would multiply the series by as many.
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["EVENTS_DEAD_LETTERED", "EVENTS_FAILED", "EVENTS_HANDLED", "EVENTS_MOVED"]

EVENTS_MOVED = Counter(
    "tenantry_events_moved_total",
    "Events the outbox relay of this runtime moved from tenants' outboxes to the streams.",
)
EVENTS_HANDLED = Counter(
    "tenantry_events_handled_total",
    "Events a consumer group's plugin handled on this runtime (on_event returned).",
    ["group"],
)
EVENTS_FAILED = Counter(
    "tenantry_events_failed_total",
    "Deliveries whose on_event raised on this runtime (the event is delivered again).",
    ["group"],
)
EVENTS_DEAD_LETTERED = Counter(
    "tenantry_events_dead_lettered_total",
    "Events moved to the dead-letter stream after max_attempts failed deliveries.",
    ["group"],
)
