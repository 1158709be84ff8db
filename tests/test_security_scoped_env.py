"""What a file uploaded with a scoped admin token may read of the runtime's environment."""

from __future__ import annotations

import yaml


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_scoped_upload_reads_only_its_own_environment_variables(tenantry, monkeypatch):
    monkeypatch.setenv("SHARED_GREETING", "shared hello")
    token = tenantry.add_admin_token("alpha-integrator", ["alpha"])
    await tenantry.start(watch=False, tenant_env_allow=["SHARED_GREETING"])
    alpha = tenantry.tenant_config("alpha", texts={"welcome": "${SHARED_GREETING}"})
    scoped = await tenantry.client.post(
        "/admin/tenants", content=dump(alpha), headers=bearer(token)
    )
    assert scoped.status_code == 422
    assert "${SHARED_GREETING}" in scoped.json()["errors"][0]
    by_ops = await tenantry.client.post(
        "/admin/tenants", content=dump(alpha), headers=tenantry.admin_headers()
    )
    assert by_ops.status_code == 201, by_ops.text


async def test_a_scoped_upload_reads_its_own_variables_only_in_credential_fields(
    tenantry, monkeypatch, bot_api
):
    # Ops provisioned ALPHA_BOT_TOKEN for the integrator's tenant; the
    # integrator may use it as the bot's token but never get its value back.
    token_value = f"{tenantry.tenant_config('alpha')['bot']['token']}"
    monkeypatch.setenv("ALPHA_BOT_TOKEN", token_value)
    monkeypatch.setenv("ALPHA_API_KEY", f"alpha-key-{tenantry.run_id}")
    token = tenantry.add_admin_token("alpha-integrator", ["alpha"])
    await tenantry.start(watch=False)
    leaky = tenantry.tenant_config(
        "alpha",
        name="${ALPHA_BOT_TOKEN}",
        texts={"welcome": "token: ${ALPHA_BOT_TOKEN}"},
    )
    refused = await tenantry.client.post(
        "/admin/tenants", content=dump(leaky), headers=bearer(token)
    )
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert len(errors) == 2 and all("${ALPHA_BOT_TOKEN}" in e for e in errors), errors
    assert any(": name: " in e for e in errors) and any("texts.welcome" in e for e in errors)
    assert token_value not in refused.text
    assert tenantry.runtime.registry.get("alpha") is None

    fine = tenantry.tenant_config("alpha", api={"keys": ["${ALPHA_API_KEY}"]})
    fine["bot"]["token"] = "${ALPHA_BOT_TOKEN}"
    added = await tenantry.client.post("/admin/tenants", content=dump(fine), headers=bearer(token))
    assert added.status_code == 201, added.text
    assert token_value not in added.text
    alpha = tenantry.runtime.registry.get("alpha")
    assert alpha.config.bot.token == token_value
    assert [getattr(k, "key", k) for k in alpha.config.api.keys] == [f"alpha-key-{tenantry.run_id}"]
    # Ops may still point any field at the tenant's namespace.
    by_ops = await tenantry.client.post(
        "/admin/tenants", content=dump(leaky), headers=tenantry.admin_headers()
    )
    assert by_ops.status_code == 201, by_ops.text
