"""Admin tokens scoped to tenants, storage claims that outlive a tenant, and the audit log."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.config.model import ConfigError
from core.testing.plugin import TenantryHarness

RELOAD_DEADLINE = 5.0  # seconds a file change in a watched folder may take to apply


def bot_id(config: dict) -> int:
    return int(config["bot"]["token"].split(":")[0])


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit(tenantry, token: str | None = None, **params) -> list[dict]:
    headers = bearer(token) if token else tenantry.admin_headers()
    response = await tenantry.client.get("/admin/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


async def test_a_scoped_token_cannot_read_replace_reload_or_remove_another_tenant(
    tenantry, updates, bot_api
):
    tenantry.add_tenant("alpha")
    beta = tenantry.add_tenant("beta", texts={"welcome": "beta here"})
    token = tenantry.add_admin_token("alpha-integrator", ["alpha"])
    await tenantry.start(watch=False)
    scoped = bearer(token)

    unknown = await tenantry.client.get("/admin/tenants/nobody", headers=scoped)
    foreign = await tenantry.client.get("/admin/tenants/beta", headers=scoped)
    assert unknown.status_code == foreign.status_code == 404
    # Indistinguishable from a tenant that does not exist.
    assert foreign.json()["detail"] == unknown.json()["detail"].replace("nobody", "beta")

    replaced = await tenantry.client.post(
        "/admin/tenants", content=dump(dict(beta, texts={"welcome": "hijacked"})), headers=scoped
    )
    assert replaced.status_code == 403
    assert "beta" in replaced.json()["detail"]
    assert (
        await tenantry.client.post("/admin/tenants/beta/reload", headers=scoped)
    ).status_code == 404
    assert (await tenantry.client.delete("/admin/tenants/beta", headers=scoped)).status_code == 404

    listed = (await tenantry.client.get("/admin/tenants", headers=scoped)).json()
    assert [t["id"] for t in listed["tenants"]] == ["alpha"]
    everything = (
        await tenantry.client.get("/admin/tenants", headers=tenantry.admin_headers())
    ).json()
    assert sorted(t["id"] for t in everything["tenants"]) == ["alpha", "beta"]

    # beta is untouched: same file, same bot, still answering.
    assert yaml.safe_load((tenantry.tenants_dir / "beta.yaml").read_text()) == beta
    assert tenantry.runtime.registry.get("beta").state == "running"
    await tenantry.post_update("beta", updates.command("start", user_id=3))
    [reply] = await bot_api.wait_for("sendMessage", bot_id=bot_id(beta), chat_id=3)
    assert reply.params["text"] == "beta here"


async def test_a_scoped_token_adds_changes_reloads_and_removes_its_own_tenants(
    tenantry, updates, bot_api
):
    token = tenantry.add_admin_token("acme-integrator", ["glow", "acme_*"])
    await tenantry.start(watch=False)
    scoped = bearer(token)

    shop = tenantry.tenant_config("acme_shop", texts={"welcome": "v1"})
    created = await tenantry.client.post("/admin/tenants", content=dump(shop), headers=scoped)
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "running"
    changed = await tenantry.client.post(
        "/admin/tenants", content=dump(dict(shop, texts={"welcome": "v2"})), headers=scoped
    )
    assert changed.status_code == 201, changed.text
    await tenantry.post_update("acme_shop", updates.command("start", user_id=5))
    [reply] = await bot_api.wait_for("sendMessage", bot_id=bot_id(shop), chat_id=5)
    assert reply.params["text"] == "v2"

    glow = tenantry.tenant_config("glow")
    assert (
        await tenantry.client.post("/admin/tenants", content=dump(glow), headers=scoped)
    ).status_code == 201
    reloaded = await tenantry.client.post("/admin/tenants/glow/reload", headers=scoped)
    assert reloaded.status_code == 200, reloaded.text
    # The pattern is a prefix of tenant ids, not of arbitrary text.
    outsider = tenantry.tenant_config("acmeshop")
    refused = await tenantry.client.post("/admin/tenants", content=dump(outsider), headers=scoped)
    assert refused.status_code == 403

    listed = (await tenantry.client.get("/admin/tenants", headers=scoped)).json()
    assert sorted(t["id"] for t in listed["tenants"]) == ["acme_shop", "glow"]
    removed = await tenantry.client.delete("/admin/tenants/acme_shop", headers=scoped)
    assert removed.status_code == 200
    assert not (tenantry.tenants_dir / "acme_shop.yaml").exists()
    assert tenantry.runtime.registry.get("acme_shop") is None


async def test_a_scoped_token_cannot_take_the_storage_or_bot_of_another_tenant_even_stopped(
    tenantry,
):
    beta = tenantry.add_tenant("beta")
    token = tenantry.add_admin_token("alpha-integrator", ["alpha"])
    await tenantry.start(watch=False)
    scoped = bearer(token)

    def alpha_with(**storage_or_bot) -> str:
        alpha = tenantry.tenant_config("alpha")
        alpha["storage"].update(storage_or_bot.get("storage", {}))
        alpha["bot"].update(storage_or_bot.get("bot", {}))
        return dump(alpha)

    attempts = {
        "storage.schema": alpha_with(storage={"schema": beta["storage"]["schema"]}),
        "storage.redis_prefix": alpha_with(
            storage={"redis_prefix": beta["storage"]["redis_prefix"] + "inner:"}
        ),
        "bot.token": alpha_with(bot={"token": beta["bot"]["token"].split(":")[0] + ":other"}),
    }

    async def refused_field(text: str) -> str:
        response = await tenantry.client.post("/admin/tenants", content=text, headers=scoped)
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        return error

    for field, text in attempts.items():
        assert field in await refused_field(text)
    # Removed (stopped): its file is gone and its bot stopped, but its data stays,
    # so its claims stay too.
    removed = await tenantry.client.delete("/admin/tenants/beta", headers=tenantry.admin_headers())
    assert removed.status_code == 200
    assert tenantry.runtime.registry.get("beta") is None
    for field, text in attempts.items():
        error = await refused_field(text)
        assert field in error and "claimed by tenant 'beta'" in error, error
    assert tenantry.runtime.registry.get("alpha") is None
    assert not (tenantry.tenants_dir / "alpha.yaml").exists()

    # Not even the ops token may take them, and a file dropped in the folder is rejected.
    by_ops = await tenantry.client.post(
        "/admin/tenants", content=attempts["storage.schema"], headers=tenantry.admin_headers()
    )
    assert by_ops.status_code == 422
    tenantry.write_tenant("alpha", attempts["storage.schema"])
    await tenantry.runtime.registry.sync()
    assert tenantry.runtime.registry.get("alpha") is None
    [issue] = tenantry.runtime.registry.rejected[str(tenantry.tenants_dir / "alpha.yaml")]
    assert issue.path == "storage.schema" and "'beta'" in issue.reason


async def test_the_runtime_control_schema_cannot_be_a_tenant_schema(tenantry):
    await tenantry.start(watch=False)
    alpha = tenantry.tenant_config("alpha")
    alpha["storage"]["schema"] = tenantry.control_schema
    response = await tenantry.client.post(
        "/admin/tenants", content=dump(alpha), headers=tenantry.admin_headers()
    )
    assert response.status_code == 422
    assert "control schema" in response.json()["errors"][0]


async def test_only_the_ops_token_releases_a_claim_and_then_the_schema_can_be_reused(tenantry):
    beta = tenantry.add_tenant("beta")
    token = tenantry.add_admin_token("alpha-integrator", ["alpha", "beta"])
    await tenantry.start(watch=False)
    ops = tenantry.admin_headers()

    # While beta runs only the claims its config no longer uses could go: none here.
    running = await tenantry.client.delete("/admin/claims/beta", headers=ops)
    assert running.status_code == 200, running.text
    assert running.json()["released"] == []
    assert {c["resource"] for c in running.json()["kept"]} == {"schema", "redis_prefix", "bot"}

    assert (await tenantry.client.delete("/admin/tenants/beta", headers=ops)).status_code == 200
    by_scoped = await tenantry.client.delete("/admin/claims/beta", headers=bearer(token))
    assert by_scoped.status_code == 403
    alpha = tenantry.tenant_config("alpha")
    alpha["storage"]["schema"] = beta["storage"]["schema"]
    assert (
        await tenantry.client.post("/admin/tenants", content=dump(alpha), headers=ops)
    ).status_code == 422

    released = await tenantry.client.delete("/admin/claims/beta", headers=ops)
    assert released.status_code == 200, released.text
    assert {(c["resource"], c["value"]) for c in released.json()["released"]} == {
        ("schema", beta["storage"]["schema"]),
        ("redis_prefix", beta["storage"]["redis_prefix"]),
        ("bot", str(bot_id(beta))),
    }
    assert (await tenantry.client.delete("/admin/claims/beta", headers=ops)).status_code == 404
    reused = await tenantry.client.post("/admin/tenants", content=dump(alpha), headers=ops)
    assert reused.status_code == 201, reused.text
    claims = await tenantry.sql(
        f'SELECT tenant_id FROM "{tenantry.control_schema}".storage_claims '
        "WHERE resource = 'schema' AND value = $1",
        beta["storage"]["schema"],
    )
    assert claims == [{"tenant_id": "alpha"}]


async def test_two_runtimes_on_one_database_cannot_both_claim_a_schema(
    tenantry, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api
):
    (tmp_path / "other").mkdir()
    other = TenantryHarness(tmp_path / "other", tenantry_database_url, tenantry_redis_url, bot_api)
    try:
        first = tenantry.add_tenant("first")
        second = other.tenant_config("second")
        second["storage"]["schema"] = first["storage"]["schema"]
        other.write_tenant("second", dump(second))
        await asyncio.gather(
            tenantry.start(watch=False),
            other.start(watch=False, control_schema=tenantry.control_schema),
        )
        winners = [
            harness.runtime.registry.get(tenant_id)
            for harness, tenant_id in ((tenantry, "first"), (other, "second"))
        ]
        assert [w is not None and w.state == "running" for w in winners].count(True) == 1
        loser_harness, loser, holder = (
            (other, "second", "first") if winners[0] is not None else (tenantry, "first", "second")
        )
        [issue] = loser_harness.runtime.registry.rejected[
            str(loser_harness.tenants_dir / f"{loser}.yaml")
        ]
        assert issue.path == "storage.schema" and f"'{holder}'" in issue.reason
    finally:
        await other.stop()
        await other.cleanup()


async def test_concurrent_claims_of_one_schema_have_one_winner(tenantry):
    from core.config.loader import load_tenant_text
    from core.runtime.plugins import build_plugin_manager

    await tenantry.start(watch=False)
    claims = tenantry.runtime.claims
    pm = build_plugin_manager()
    shared = f"t{tenantry.run_id}_shared"
    tenantry.track_storage(shared, f"t{tenantry.run_id}:unused:")
    specs = []
    for n in range(8):
        config = tenantry.tenant_config(f"racer{n}")
        config["storage"]["schema"] = shared
        specs.append(load_tenant_text(dump(config), f"racer{n}.yaml", pm))
    results = await asyncio.gather(*(claims.claim([spec]) for spec in specs))
    winners = [spec.config.id for spec, issues in zip(specs, results, strict=True) if not issues]
    assert len(winners) == 1
    for issues in results:
        if issues:
            assert f"claimed by tenant '{winners[0]}'" in issues[0].reason
    rows = await tenantry.sql(
        f'SELECT tenant_id FROM "{tenantry.control_schema}".storage_claims WHERE value = $1',
        shared,
    )
    assert rows == [{"tenant_id": winners[0]}]


async def test_the_audit_log_records_who_did_what_when_with_a_masked_diff(tenantry):
    token = tenantry.add_admin_token("alpha-integrator", ["alpha"])
    await tenantry.start(watch=True)
    ops, scoped = tenantry.admin_headers(), bearer(token)
    started = datetime.now(UTC)

    alpha = tenantry.tenant_config("alpha", texts={"welcome": "v1"})
    alpha["bot"]["webhook_secret"] = "inline-webhook-secret-1"
    inline_token = alpha["bot"]["token"]
    api_key = alpha["api"]["keys"][0]
    assert (
        await tenantry.client.post("/admin/tenants", content=dump(alpha), headers=ops)
    ).status_code == 201
    changed = dict(alpha, texts={"welcome": "v2"})
    assert (
        await tenantry.client.post("/admin/tenants", content=dump(changed), headers=scoped)
    ).status_code == 201
    beta = tenantry.tenant_config("beta")
    assert (
        await tenantry.client.post("/admin/tenants", content=dump(beta), headers=scoped)
    ).status_code == 403
    invalid = dict(changed, locale=12)
    assert (
        await tenantry.client.post("/admin/tenants", content=dump(invalid), headers=scoped)
    ).status_code == 422

    # A file dropped in the folder is recorded with the file as the actor.
    tenantry.add_tenant("gamma")
    await tenantry.wait_state("gamma", "running", timeout=RELOAD_DEADLINE)
    deadline = asyncio.get_running_loop().time() + RELOAD_DEADLINE
    while not [e for e in await audit(tenantry) if e["tenant_id"] == "gamma"]:
        assert asyncio.get_running_loop().time() < deadline, "the file change was not audited"
        await asyncio.sleep(0.05)
    assert (await tenantry.client.delete("/admin/tenants/alpha", headers=scoped)).status_code == 200
    assert (await tenantry.client.delete("/admin/claims/alpha", headers=ops)).status_code == 200

    entries = await audit(tenantry)
    summary = [(e["actor"], e["action"], e["tenant_id"], e["outcome"]) for e in entries]
    assert summary == [
        ("ops", "claim.release", "alpha", "ok"),
        ("alpha-integrator", "tenant.remove", "alpha", "ok"),
        ("file:gamma.yaml", "tenant.add", "gamma", "ok"),
        ("alpha-integrator", "tenant.change", "alpha", "refused"),
        ("alpha-integrator", "tenant.add", "beta", "refused"),
        ("alpha-integrator", "tenant.change", "alpha", "ok"),
        ("ops", "tenant.add", "alpha", "ok"),
    ]
    for entry in entries:
        at = datetime.fromisoformat(entry["at"])
        assert at.utcoffset() == timedelta(0)
        assert started - timedelta(seconds=5) <= at <= datetime.now(UTC) + timedelta(seconds=5)
    by_what = {(e["action"], e["tenant_id"], e["outcome"]): e for e in entries}
    added = by_what[("tenant.add", "alpha", "ok")]["diff"]
    assert "+id: alpha" in added and "+  welcome: v1" in added
    for secret in (inline_token, api_key, "inline-webhook-secret-1"):
        assert all(secret not in e["diff"] for e in entries), secret
    assert "masked" in added
    change = by_what[("tenant.change", "alpha", "ok")]["diff"]
    assert "-  welcome: v1" in change and "+  welcome: v2" in change
    assert "outside" in by_what[("tenant.add", "beta", "refused")]["reason"]
    refused_change = by_what[("tenant.change", "alpha", "refused")]
    assert "locale" in refused_change["reason"] and "+locale: 12" in refused_change["diff"]
    assert "-id: alpha" in by_what[("tenant.remove", "alpha", "ok")]["diff"]

    # Newest first, paged with before=, filtered by tenant.
    first_page = await audit(tenantry, limit=2)
    assert [e["id"] for e in first_page] == [entries[0]["id"], entries[1]["id"]]
    older = await audit(tenantry, limit=2, before=first_page[-1]["id"])
    assert [e["id"] for e in older] == [entries[2]["id"], entries[3]["id"]]
    assert {e["tenant_id"] for e in await audit(tenantry, tenant="gamma")} == {"gamma"}

    # A scoped token reads only its tenants' entries.
    own = await audit(tenantry, token)
    assert {e["tenant_id"] for e in own} == {"alpha"}
    assert await audit(tenantry, token, tenant="gamma") == []
    assert (
        await tenantry.client.get("/admin/audit", params={"limit": 0}, headers=ops)
    ).status_code == 400


async def test_a_restart_is_not_recorded_as_a_change(tenantry):
    tenantry.add_tenant("alpha")
    await tenantry.start(watch=False)
    assert [(e["actor"], e["action"]) for e in await audit(tenantry)] == [
        ("file:alpha.yaml", "tenant.add")
    ]
    await tenantry.stop()
    edited = tenantry.tenant_config("alpha", texts={"welcome": "while down"})
    await tenantry.start(watch=False)
    assert len(await audit(tenantry)) == 1
    await tenantry.stop()
    tenantry.write_tenant("alpha", dump(edited))
    await tenantry.start(watch=False)
    [latest, first] = await audit(tenantry)
    assert (latest["actor"], latest["action"]) == ("file:alpha.yaml", "tenant.change")
    assert first["action"] == "tenant.add"
    assert "+  welcome: while down" in latest["diff"]


def write_tokens_file(folder: Path, text: str) -> Path:
    path = folder / "admin-tokens.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_tokens_come_from_a_file_of_hashes(tenantry, tmp_path, monkeypatch):
    token = "integrator-token-" + tenantry.run_id
    digest = hashlib.sha256(token.encode()).hexdigest()
    path = write_tokens_file(
        tmp_path,
        f"tokens:\n  - name: alpha-integrator\n    sha256: {digest}\n    tenants: [alpha]\n",
    )
    monkeypatch.setenv("TENANTRY_ADMIN_TOKENS_FILE", str(path))
    monkeypatch.setenv("TENANTRY_CONTROL_SCHEMA", tenantry.control_schema)
    from core.runtime.settings import RuntimeSettings

    from_env = RuntimeSettings.from_env()
    assert from_env.admin_tokens_file == path
    assert from_env.control_schema == tenantry.control_schema
    tenantry.add_tenant("beta")
    await tenantry.start(watch=False, admin_tokens_file=path)
    listed = await tenantry.client.get("/admin/tenants", headers=bearer(token))
    assert listed.status_code == 200 and listed.json()["tenants"] == []
    wrong = await tenantry.client.get("/admin/tenants", headers=bearer(digest))
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    ("text", "line", "where"),
    [
        ("tokens:\n  - name: a\n    sha256: abc\n    tenants: [alpha]\n", 3, "tokens[0].sha256"),
        (
            "tokens:\n  - name: a\n    sha256: " + "a" * 64 + "\n    tenants: [alpha]\n"
            "  - name: b\n    sha256: " + "b" * 64 + "\n    tenants: ['*']\n",
            7,
            "tokens[1].tenants[0]",
        ),
        (
            "tokens:\n  - name: ops\n    sha256: " + "c" * 64 + "\n    tenants: [x]\n",
            2,
            "tokens[0].name",
        ),
        (
            "tokens:\n  - name: a\n    sha256: " + "d" * 64 + "\n    scope: [x]\n",
            4,
            "tokens[0].scope",
        ),
        ("tokens: [\n", None, ""),
    ],
)
async def test_a_bad_tokens_file_stops_the_runtime_naming_file_line_and_field(
    tenantry, tmp_path, text, line, where
):
    from core.runtime.runtime import Runtime
    from core.runtime.settings import RuntimeSettings

    path = write_tokens_file(tmp_path, text)
    settings = RuntimeSettings(
        tenants_dir=tenantry.tenants_dir,
        data_dir=tenantry.data_dir,
        database_url=tenantry.database_url,
        redis_url=tenantry.redis_url,
        admin_tokens_file=path,
        control_schema=tenantry.control_schema,
        watch=False,
        run_jobs=False,
    )
    runtime = Runtime(settings)
    with pytest.raises(ConfigError) as raised:
        await runtime.start()
    await runtime.stop()
    [issue] = raised.value.issues
    assert issue.file == str(path)
    if line is not None:
        assert issue.line == line
        assert issue.path == where
    assert str(path) in str(raised.value)
    with pytest.raises(RuntimeError):
        await tenantry.start(watch=False, admin_tokens_file=path)


async def test_ids_that_cannot_be_tenant_ids_are_unknown_not_server_errors(tenantry):
    await tenantry.start(watch=False)
    ops = tenantry.admin_headers()
    client = tenantry.client
    for method, url in [
        ("DELETE", "/admin/claims/a%00b"),
        ("DELETE", "/admin/tenants/a%00b"),
        ("POST", "/admin/tenants/a%00b/reload"),
    ]:
        assert (await client.request(method, url, headers=ops)).status_code == 404, url
    for url, params in [
        ("/admin/audit", {"tenant": "a\x00b"}),
        ("/admin/claims", {"tenant": "a\x00b"}),
        ("/admin/audit", {"before": str(2**64)}),
    ]:
        assert (await client.get(url, params=params, headers=ops)).status_code == 400, params
    assert await audit(tenantry) == []
