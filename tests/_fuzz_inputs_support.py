"""The tenants the hostile-input tests run on: a restaurant, a salon and a marketplace.

Shared by tests/test_fuzz_inputs.py (over HTTP) and
tests/test_fuzz_inputs_webhook.py (over the webhook). Their write limits are
generous, so a refusal is the input's, never the rate limiter's.
"""

from __future__ import annotations

from typing import Any

from booking._booking_support import restaurant, salon
from orders.conftest import ORDERS_SETTINGS

GENEROUS = {"api_writes": "100000/minute", "webapp_writes": "100000/minute"}


async def start_tenants(tenantry: Any, **more: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A restaurant ``filin``, a salon ``glow`` and a marketplace ``market``, running.

    ``more``: further restaurants, tenant id -> overrides of their booking block.
    """
    configs = {
        "filin": tenantry.add_tenant(
            "filin", timezone="Europe/Moscow", features={"booking": restaurant()}, limits=GENEROUS
        ),
        "glow": tenantry.add_tenant(
            "glow", timezone="Europe/Moscow", features={"booking": salon()}, limits=GENEROUS
        ),
        "market": tenantry.add_tenant(
            "market",
            timezone="Europe/Moscow",
            features={"orders": ORDERS_SETTINGS},
            limits=GENEROUS,
        ),
    }
    for tenant_id, overrides in more.items():
        configs[tenant_id] = tenantry.add_tenant(
            tenant_id,
            timezone="Europe/Moscow",
            features={"booking": restaurant(**overrides)},
            limits=GENEROUS,
        )
    await tenantry.start()
    for tenant_id in configs:
        await tenantry.wait_state(tenant_id, "running")
    return configs
