"""The audit log's other actions: reloads (ok, refused, outside the scope), rollbacks, and a
tenant removed from the tenants folder.

``tests/test_security_admin.py`` covers adds, changes, removals and claim
releases through the admin API, a file added to the folder, and restarts.
"""

from __future__ import annotations

import yaml

from core.testing.plugin import TenantryHarness


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def entries(tenantry: TenantryHarness, **params: object) -> list[dict]:
    response = await tenantry.client.get(
        "/admin/audit", params=params, headers=tenantry.admin_headers()
    )
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def summary(log: list[dict]) -> list[tuple[str, str, str, str]]:
    return [(e["actor"], e["action"], e["tenant_id"], e["outcome"]) for e in log]


async def test_reloads_rollbacks_and_folder_removals_are_audited(tenantry):
    tenantry.add_tenant("beta")
    tenantry.add_tenant("gamma")
    token = tenantry.add_admin_token("alpha-integrator", ["alpha"])
    await tenantry.start(watch=False)
    ops, scoped = tenantry.admin_headers(), bearer(token)
    client = tenantry.client

    alpha = tenantry.tenant_config("alpha", texts={"welcome": "v1"})
    assert (await client.post("/admin/tenants", content=dump(alpha), headers=ops)).is_success
    v2 = dict(alpha, texts={"welcome": "v2"})
    assert (await client.post("/admin/tenants", content=dump(v2), headers=scoped)).is_success
    before = len(await entries(tenantry))

    # Reloads: an unchanged file, an invalid one, and a tenant outside the scope.
    assert (await client.post("/admin/tenants/alpha/reload", headers=scoped)).status_code == 200
    tenantry.write_tenant("alpha", dump(dict(v2, locale=12)))
    refused = await client.post("/admin/tenants/alpha/reload", headers=scoped)
    assert refused.status_code == 422, refused.text
    assert (await client.post("/admin/tenants/beta/reload", headers=scoped)).status_code == 404

    # A rollback to version 1 by the integrator, then a file removed from the folder.
    rolled = await client.post("/admin/tenants/alpha/rollback/1", headers=scoped)
    assert rolled.status_code == 200, rolled.text
    (tenantry.tenants_dir / "gamma.yaml").unlink()
    await tenantry.runtime.registry.sync()
    assert tenantry.runtime.registry.get("gamma") is None

    log = (await entries(tenantry))[: len(await entries(tenantry)) - before]
    assert summary(log) == [
        ("file:gamma.yaml", "tenant.remove", "gamma", "ok"),
        ("alpha-integrator", "tenant.rollback", "alpha", "ok"),
        ("alpha-integrator", "tenant.reload", "beta", "refused"),
        ("alpha-integrator", "tenant.reload", "alpha", "refused"),
        ("alpha-integrator", "tenant.reload", "alpha", "ok"),
    ]
    removed, rollback, outside, invalid, unchanged = log
    assert unchanged["reason"] == "unchanged"
    assert "locale" in invalid["reason"] and "+locale: 12" in invalid["diff"]
    assert "outside" in outside["reason"]
    assert "-  welcome: v2" in rollback["diff"] and "+  welcome: v1" in rollback["diff"]
    assert "-id: gamma" in removed["diff"]
    # The integrator reads its own tenant's entries, not the refusal about beta.
    own = await client.get("/admin/audit", params={"tenant": "beta"}, headers=scoped)
    assert own.status_code == 200 and own.json()["entries"] == []


async def test_a_rolled_back_tenant_removed_from_the_folder_is_audited_as_its_file(tenantry):
    await tenantry.start(watch=False)
    alpha = tenantry.tenant_config("alpha")
    added = await tenantry.client.post(
        "/admin/tenants", content=dump(alpha), headers=tenantry.admin_headers()
    )
    assert added.status_code == 201, added.text
    changed = dict(alpha, texts={"welcome": "v2"})
    assert (
        await tenantry.client.post(
            "/admin/tenants", content=dump(changed), headers=tenantry.admin_headers()
        )
    ).status_code == 201
    rolled = await tenantry.client.post(
        "/admin/tenants/alpha/rollback/1", headers=tenantry.admin_headers()
    )
    assert rolled.status_code == 200, rolled.text
    # The folder's file holds the rolled-back text again.
    assert yaml.safe_load((tenantry.tenants_dir / "alpha.yaml").read_text()) == alpha
    (tenantry.tenants_dir / "alpha.yaml").unlink()
    await tenantry.runtime.registry.sync()
    assert tenantry.runtime.registry.get("alpha") is None
    removed = (await entries(tenantry))[0]
    assert (removed["actor"], removed["action"]) == ("file:alpha.yaml", "tenant.remove")
