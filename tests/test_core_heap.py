"""The runtime's garbage-collector policy: frozen heap, retired tenants still reclaimed."""

from __future__ import annotations

import gc
import weakref

import yaml


async def test_frozen_heap_still_reclaims_swapped_and_removed_tenants(tenantry, updates, bot_api):
    defaults = gc.get_threshold()
    tenantry.add_tenant("filin")
    tenantry.add_tenant("glow")
    await tenantry.start(watch=False, gc_freeze=True, gc_gen0_threshold=12_345)
    runtime = tenantry.runtime
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (12_345, *defaults[1:])
    admin = tenantry.admin_headers()

    # A swap (reload with a changed file) retires the old Tenant object.
    swapped_out = weakref.ref(runtime.registry.get("filin"))
    tenantry.write_tenant(
        "filin", yaml.safe_dump(tenantry.tenant_config("filin", texts={"welcome": "v2"}))
    )
    assert (await tenantry.client.post("/admin/tenants/filin/reload", headers=admin)).is_success
    removed = weakref.ref(runtime.registry.get("glow"))
    assert (await tenantry.client.delete("/admin/tenants/glow", headers=admin)).is_success
    await tenantry.wait_state("glow", None)

    # A retired tenant may still be held by reference cycles (its Dispatcher's
    # routers and middleware point back at it) that a frozen heap never
    # collects on its own: the policy unfreezes, collects and freezes again.
    await runtime.heap.settled()
    assert swapped_out() is None and removed() is None
    assert gc.get_freeze_count() > 0

    response = await tenantry.post_update("filin", updates.command("start", user_id=5))
    assert response.status_code == 200
    assert (await bot_api.wait_for("sendMessage", count=1))[-1].params["text"] == "v2"

    await tenantry.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == defaults


async def test_runtimes_built_directly_leave_the_collector_alone(tenantry):
    defaults = gc.get_threshold()
    tenantry.add_tenant("filin")
    await tenantry.start(watch=False)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == defaults
