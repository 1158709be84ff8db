"""The tenant store: one runtime's change reaches another within a second; history and rollback."""

from __future__ import annotations

import asyncio
import time

import msgspec
import yaml
from test_core_scaling import runtime_for


async def wait_for(check, timeout: float = 5.0) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_change_through_one_runtime_reaches_another_and_rolls_back(
    tenantry, sample, tmp_path
):
    tenantry.add_tenant("glow")
    await tenantry.start(watch=False)
    # A second runtime with a folder of its own (another machine): it knows
    # the tenants only through the store.
    other = runtime_for(tenantry, sample)
    other.settings = msgspec.structs.replace(other.settings, tenants_dir=tmp_path / "elsewhere")
    await other.start()
    try:
        assert other.registry.get("glow").state == "running"
        admin = tenantry.admin_headers()
        filin = tenantry.tenant_config("filin", texts={"welcome": "one"})
        created = await tenantry.client.post(
            "/admin/tenants", content=yaml.safe_dump(filin), headers=admin
        )
        assert created.status_code == 201, created.text
        seconds = await wait_for(
            lambda: (
                other.registry.get("filin") is not None
                and other.registry.get("filin").state == "running"
            )
        )
        assert seconds < 1.5

        changed = dict(filin, texts={"welcome": "two"})
        assert (
            await tenantry.client.post(
                "/admin/tenants", content=yaml.safe_dump(changed), headers=admin
            )
        ).status_code == 201
        await wait_for(lambda: "welcome: two" in other.registry.get("filin").spec.text)

        # A bad change is refused and changes nothing anywhere.
        bad = await tenantry.client.post(
            "/admin/tenants", content=yaml.safe_dump(dict(filin, locale=12)), headers=admin
        )
        assert bad.status_code == 422

        history = (await tenantry.client.get("/admin/tenants/filin/history", headers=admin)).json()
        assert [v["version"] for v in history["versions"]] == [2, 1]
        version = (
            await tenantry.client.get("/admin/tenants/filin/versions/2", headers=admin)
        ).json()
        assert "welcome: two" in version["text"]
        assert "-  welcome: one" in version["diff"] and "+  welcome: two" in version["diff"]

        rolled = await tenantry.client.post("/admin/tenants/filin/rollback/1", headers=admin)
        assert rolled.status_code == 200, rolled.text
        await wait_for(lambda: "welcome: one" in other.registry.get("filin").spec.text)
        history = (await tenantry.client.get("/admin/tenants/filin/history", headers=admin)).json()
        assert [(v["version"], v["action"]) for v in history["versions"]] == [
            (3, "rollback"),
            (2, "put"),
            (1, "put"),
        ]
        missing = await tenantry.client.post("/admin/tenants/filin/rollback/9", headers=admin)
        assert missing.status_code == 404

        # Removed through the first runtime: the other one stops it too.
        assert (
            await tenantry.client.delete("/admin/tenants/filin", headers=admin)
        ).status_code == 200
        await wait_for(lambda: other.registry.get("filin") is None)
        assert other.registry.get("glow").state == "running"
    finally:
        await other.stop()
