"""The per-tenant database connection cap: a tenant at its cap does not hold up another.

The ``sleeper`` plugin (tests/_security_limits_support.py) holds a tenant's
connections in ``pg_sleep``; a tenant's ``storage.max_connections`` and its
``limits`` are validated as it is read.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import yaml
from _security_limits_support import Sleeper

# ---------------------------------------------------------------- connection cap per tenant


async def _sleeping(tenantry: Any, tenant_id: str) -> int:
    rows = await tenantry.sql(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
        f"%sleeper:{tenant_id} %",
    )
    return rows[0]["n"]


async def test_a_tenant_at_its_connection_cap_does_not_hold_up_another(tenantry):
    slow = tenantry.tenant_config("slow", features={"sleeper": {}})
    slow["storage"]["max_connections"] = 2
    tenantry.write_tenant("slow", yaml.safe_dump(slow, sort_keys=False))
    tenantry.add_tenant("fast", features={"sleeper": {}})
    await tenantry.start(plugins=[("sleeper", Sleeper())])
    client = tenantry.client

    def sleep(tenant_id: str, seconds: float) -> Any:
        return client.post(
            f"/api/tenants/{tenant_id}/sleeper/sleep",
            json={"seconds": seconds},
            headers=tenantry.api_headers(tenant_id),
        )

    slow_requests = [asyncio.create_task(sleep("slow", 1.0)) for _ in range(5)]
    peak = 0
    deadline = time.monotonic() + 10
    while await _sleeping(tenantry, "slow") < 2:
        assert time.monotonic() < deadline, "the slow tenant never started sleeping"
        await asyncio.sleep(0.02)
    fast = await asyncio.gather(*(sleep("fast", 0) for _ in range(4)))
    assert [r.status_code for r in fast] == [200] * 4, [r.text for r in fast]
    # The fast tenant was served while the slow one still had requests waiting.
    assert sum(not t.done() for t in slow_requests) >= 3
    while not all(t.done() for t in slow_requests):
        peak = max(peak, await _sleeping(tenantry, "slow"))
        await asyncio.sleep(0.02)
    assert peak <= 2
    assert [t.result().status_code for t in slow_requests] == [200] * 5

    # Waiting for the tenant's own cap has a timeout: 503 with Retry-After, not a hang.
    tenantry.runtime.registry.get("slow").db.acquire_timeout = 0.2
    answers = await asyncio.gather(*(sleep("slow", 1.0) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 200, 503]
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == "1"


async def test_storage_max_connections_is_validated(tenantry):
    from core.config.model import ConfigError, parse_tenant_text

    config = tenantry.tenant_config("filin")
    config["storage"]["max_connections"] = 0
    with pytest.raises(ConfigError) as error:
        parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    assert "storage.max_connections" in str(error.value)
    config["storage"]["max_connections"] = 3
    parsed, _ = parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    assert parsed.storage.max_connections == 3


async def test_bad_limit_strings_are_yaml_errors_naming_the_field(tenantry):
    from core.config.model import ConfigError, parse_tenant_text

    config = tenantry.tenant_config("filin", limits={"api_writes": "lots"})
    with pytest.raises(ConfigError) as error:
        parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    message = str(error.value)
    assert "limits" in message and "api_writes" in message and "lots" in message
    config = tenantry.tenant_config("filin", limits={"bot_writes": "5/second;100/hour"})
    parsed, _ = parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    assert parsed.limits.bot_writes == "5/second;100/hour"
    assert parsed.limits.api_writes == "60/minute"
