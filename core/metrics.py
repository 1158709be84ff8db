"""Prometheus metrics of the runtime, labelled by tenant (exported at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["TENANT_STATE", "UPDATES", "UPDATE_SECONDS"]

UPDATES = Counter(
    "tenantry_updates_total",
    "Telegram updates received, by tenant and outcome "
    "(processed, duplicate, handler_error, unauthorized, malformed, in_progress).",
    ["tenant", "outcome"],
)
UPDATE_SECONDS = Histogram(
    "tenantry_update_seconds",
    "Time from receiving a webhook update to answering it, in seconds.",
    ["tenant"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TENANT_STATE = Gauge(
    "tenantry_tenant_state",
    "1 for the state each tenant is in (loading, migrating, running, retrying, failed, stopped).",
    ["tenant", "state"],
)
