"""Prometheus metrics of the runtime, labelled by tenant (exported at ``/metrics``)."""

from __future__ import annotations

import functools
import weakref
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

__all__ = [
    "UPDATES",
    "UPDATE_SECONDS",
    "export_tenant_states",
    "update_counter",
    "update_seconds",
]

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


@functools.cache
def update_counter(tenant_id: str, outcome: str) -> Any:
    """The ``tenantry_updates_total`` child of ``tenant_id`` and ``outcome`` (looked up once)."""
    return UPDATES.labels(tenant_id, outcome)


@functools.cache
def update_seconds(tenant_id: str) -> Any:
    """The ``tenantry_update_seconds`` child of ``tenant_id`` (looked up once)."""
    return UPDATE_SECONDS.labels(tenant_id)


_STATES = ("loading", "migrating", "running", "retrying", "failed", "stopped")
_REGISTRIES: weakref.WeakSet[Any] = weakref.WeakSet()


class _TenantStateCollector:
    """``tenantry_tenant_state{tenant, state}``, read from the live registries at scrape time."""

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> list[GaugeMetricFamily]:
        family = self._family()
        for registry in list(_REGISTRIES):
            for tenant_id, tenant in list(registry.tenants.items()):
                for state in _STATES:
                    family.add_metric([tenant_id, state], 1.0 if tenant.state == state else 0.0)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tenantry_tenant_state",
            "1 for the state each tenant is in (loading, migrating, running, retrying, failed, stopped).",
            labels=["tenant", "state"],
        )


REGISTRY.register(_TenantStateCollector())


def export_tenant_states(registry: Any) -> None:
    """Report the tenants of ``registry`` (a :class:`core.runtime.registry.TenantRegistry`) in
    ``tenantry_tenant_state`` for as long as it lives."""
    _REGISTRIES.add(registry)
