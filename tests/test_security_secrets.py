"""Secrets: what a tenant file may read from the environment, and what is never shown.

A tenant file reads only its own ``<ID>_*`` variables and those ops allow; no
error, log line, ``/health`` or admin answer shows a value read from the
environment or a known secret; demo secrets work only on loopback; no tenant
uses a reserved schema or sees ``public``.
"""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from core import Tenant, hookimpl
from core.config.loader import load_tenant_file, load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager
from core.runtime.redaction import forget_secrets, redact, register_secrets
from core.runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
id: filin
bot:
  token: "123:abc"
"""


@pytest.fixture
def pm(sample):
    return build_plugin_manager(entry_points=False, extra=[("sample", sample)])


def load(text, pm, env, **options):
    return load_tenant_text(textwrap.dedent(text), "tenants/filin.yaml", pm, env, **options)


def errors(text, pm, env, **options):
    with pytest.raises(ConfigError) as caught:
        load(text, pm, env, **options)
    return [str(issue) for issue in caught.value.issues]


def bot_id(config):
    return int(config["bot"]["token"].split(":")[0])


def referencing(tenantry, tenant_id, **fields):
    """A tenant file whose token and API key are ``${<ID>_BOT_TOKEN}`` / ``${<ID>_API_KEY}``,
    with the values returned for the environment."""
    config = tenantry.tenant_config(tenant_id, **fields)
    prefix = tenant_id.upper()
    env = {
        f"{prefix}_BOT_TOKEN": config["bot"]["token"],
        f"{prefix}_API_KEY": config["api"]["keys"][0],
    }
    config["bot"]["token"] = f"${{{prefix}_BOT_TOKEN}}"
    config["api"]["keys"] = [f"${{{prefix}_API_KEY}}"]
    return config, env


# ------------------------------------------------------------ exfiltration


async def test_an_uploaded_file_reading_runtime_and_other_tenants_variables_is_refused(
    tenantry, updates, bot_api, monkeypatch
):
    filin, filin_env = referencing(tenantry, "filin")
    for name, value in {**filin_env, "TENANTRY_ADMIN_TOKEN": tenantry.admin_token}.items():
        monkeypatch.setenv(name, value)
    tenantry.write_tenant("filin", yaml.safe_dump(filin, sort_keys=False))
    await tenantry.start()
    secrets = [tenantry.admin_token, *filin_env.values()]

    evil = tenantry.tenant_config(
        "evil", texts={"welcome": "${TENANTRY_ADMIN_TOKEN} ${FILIN_BOT_TOKEN} ${FILIN_API_KEY}"}
    )
    refused = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(evil), headers=tenantry.admin_headers()
    )
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert any(
        "texts.welcome: ${TENANTRY_ADMIN_TOKEN} is outside this tenant's namespace (EVIL_*)" in e
        for e in errors
    ), errors
    assert any("${FILIN_BOT_TOKEN} is outside" in e for e in errors)
    assert any("${FILIN_API_KEY} is outside" in e for e in errors)
    assert not any(secret in refused.text for secret in secrets)
    assert tenantry.runtime.registry.get("evil") is None
    assert not (tenantry.tenants_dir / "evil.yaml").exists()

    # The same tenant reading its own namespace is accepted, and its bot
    # never says anything of another tenant or of the runtime.
    monkeypatch.setenv("EVIL_GREETING", "Welcome to Evil")
    evil["texts"] = {"welcome": "${EVIL_GREETING}"}
    accepted = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(evil), headers=tenantry.admin_headers()
    )
    assert accepted.status_code == 201, accepted.text
    assert (
        await tenantry.post_update("evil", updates.command("start", user_id=5))
    ).status_code == 200
    sent = bot_api.calls("sendMessage", bot_id=bot_id(evil), chat_id=5)
    assert [call.params["text"] for call in sent] == ["Welcome to Evil"]
    everything_sent = json.dumps([c.params for c in bot_api.calls(bot_id=bot_id(evil))])
    assert not any(secret in everything_sent for secret in secrets)


async def test_a_tenant_name_read_from_the_database_url_never_reaches_health(tenantry, monkeypatch):
    password = "pg-password-7f3a9c"
    monkeypatch.setenv("TENANTRY_DATABASE_URL", f"postgresql://app:{password}@db.internal/prod")
    tenantry.add_tenant("leaky", name="${TENANTRY_DATABASE_URL}")
    tenantry.add_tenant("fine")
    await tenantry.start()

    public = await tenantry.client.get("/health")
    assert password not in public.text
    assert public.json()["rejected"] == 1
    assert [t["id"] for t in public.json()["tenants"]] == ["fine"]

    full = await tenantry.client.get("/health", headers=tenantry.admin_headers())
    assert password not in full.text
    [issues] = [v for k, v in full.json()["rejected"].items() if k.endswith("leaky.yaml")]
    assert (
        "name: ${TENANTRY_DATABASE_URL} is outside this tenant's namespace (LEAKY_*)" in issues[0]
    )
    listed = await tenantry.client.get("/admin/tenants", headers=tenantry.admin_headers())
    assert password not in listed.text


async def test_a_name_read_from_the_tenants_own_token_is_redacted_in_health(tenantry, monkeypatch):
    # The file may read its own namespace, so an integrator can point `name`
    # at the bot token ops provisioned for it; /health must not show it.
    filin, env = referencing(tenantry, "filin", name="${FILIN_BOT_TOKEN}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tenantry.write_tenant("filin", yaml.safe_dump(filin, sort_keys=False))
    await tenantry.start()
    token = env["FILIN_BOT_TOKEN"]
    full = await tenantry.client.get("/health", headers=tenantry.admin_headers())
    assert token not in full.text and token.split(":")[1] not in full.text
    [described] = full.json()["tenants"]
    assert described["name"] == "[redacted]" and described["state"] == "running"


def test_validation_errors_name_the_reference_never_the_value(pm):
    dsn = "postgresql://user:s3cret-pw@db/x"
    allowed = {"SHARED_LOCALE": dsn}
    assert errors(BASE + "locale: ${SHARED_LOCALE}\n", pm, allowed, env_allow=["SHARED_*"]) == [
        "tenants/filin.yaml:4: locale: expected str matching regex "
        "'^[a-z]{2}(-[A-Za-z]{2})?$', got the value of ${SHARED_LOCALE}"
    ]
    own = {"FILIN_TZ": dsn, "FILIN_LIMIT": dsn, "FILIN_NAME": "x" * 80}
    assert errors(BASE + "timezone: ${FILIN_TZ}\n", pm, own) == [
        "tenants/filin.yaml:4: timezone: unknown time zone the value of ${FILIN_TZ}"
    ]
    assert errors(BASE + "features:\n  sample: {limit: '${FILIN_LIMIT}'}\n", pm, own) == [
        "tenants/filin.yaml:5: features.sample.limit: expected int, got the value of ${FILIN_LIMIT}"
    ]
    # Part of a string: the string as written is shown, with the reference.
    assert errors(BASE + "locale: 'x-${FILIN_TZ}'\n", pm, own)[0].endswith(
        'got the value of "x-${FILIN_TZ}"'
    )
    # A plugin's own check that quotes the value gets the reference instead.
    renamed = BASE + (
        "features: {sample: {}}\n"
        "statuses:\n"
        "  tickets:\n"
        "    initial: open\n"
        "    transitions: {open: [closed]}\n"
        "    renamed: {old: '${FILIN_STATE}'}\n"
    )
    [issue] = errors(renamed, pm, {"FILIN_STATE": "s3cret_state_value"})
    assert "s3cret_state_value" not in issue
    assert "${FILIN_STATE}" in issue
    # A value written in the file is shown, cut to about 60 characters.
    [long_value] = errors(BASE + f"locale: {'y' * 100}\n", pm, {})
    assert long_value.endswith('got "' + "y" * 39 + '…" (100 characters)')


def test_the_namespace_the_allow_list_and_what_is_always_refused(pm, monkeypatch):
    env = {
        "FILIN_GREETING": "hi",
        "SHARED_SMTP_HOST": "smtp.example.com",
        "PAYMENTS_PUBLIC_KEY": "pk-1",
        "TENANTRY_SECRET_KEY": "runtime-secret",
        "GLOW_BOT_TOKEN": "2:glow",
    }
    texts = (
        "texts:\n  welcome: '${FILIN_GREETING}'\n"
        "  smtp: '${SHARED_SMTP_HOST}'\n  pay: '${PAYMENTS_PUBLIC_KEY}'\n"
    )
    spec = load(BASE + texts, pm, env, env_allow=["SHARED_SMTP_HOST", "PAYMENTS_*"])
    assert spec.config.texts == {"welcome": "hi", "smtp": "smtp.example.com", "pay": "pk-1"}
    # Read from TENANTRY_TENANT_ENV_ALLOW in the environment when not given.
    from_env = {**env, "TENANTRY_TENANT_ENV_ALLOW": "SHARED_SMTP_HOST, PAYMENTS_*"}
    assert load(BASE + texts, pm, from_env).config.texts["smtp"] == "smtp.example.com"
    assert errors(BASE + texts, pm, env) == [
        "tenants/filin.yaml:6: texts.smtp: ${SHARED_SMTP_HOST} is outside this tenant's "
        "namespace (FILIN_*); name it FILIN_..., or have ops allow it in TENANTRY_TENANT_ENV_ALLOW",
        "tenants/filin.yaml:7: texts.pay: ${PAYMENTS_PUBLIC_KEY} is outside this tenant's "
        "namespace (FILIN_*); name it FILIN_..., or have ops allow it in TENANTRY_TENANT_ENV_ALLOW",
    ]
    # TENANTRY_* never, even when allowed; another tenant's never, even with a default.
    [runtime] = errors(
        BASE + "name: '${TENANTRY_SECRET_KEY}'\n", pm, env, env_allow=["TENANTRY_*", "*"]
    )
    assert runtime.startswith(
        "tenants/filin.yaml:4: name: ${TENANTRY_SECRET_KEY} is outside this tenant's namespace"
    )
    assert "runtime-secret" not in runtime
    [other] = errors(BASE.replace('"123:abc"', "${GLOW_BOT_TOKEN:-1:x}"), pm, env)
    assert other.startswith("tenants/filin.yaml:3: bot.token: ${GLOW_BOT_TOKEN} is outside")
    # The id names the namespace, so it is never a reference.
    assert errors("id: ${FILIN_ID}\nbot: {token: '1:x'}\n", pm, {"FILIN_ID": "filin"}) == [
        "tenants/filin.yaml:1: id: must be written out: the id names the tenant's namespace "
        "of environment variables, so it cannot be read from one"
    ]

    monkeypatch.setenv("TENANTRY_TENANT_ENV_ALLOW", "SHARED_SMTP_HOST,PAYMENTS_*")
    assert RuntimeSettings.from_env().tenant_env_allow == ("SHARED_SMTP_HOST", "PAYMENTS_*")


async def test_the_runtime_lets_tenants_read_the_variables_ops_allow(
    tenantry, updates, bot_api, monkeypatch
):
    monkeypatch.setenv("SHARED_GREETING", "Hello from the group")
    tenantry.add_tenant("filin", texts={"welcome": "${SHARED_GREETING}"})
    await tenantry.start(tenant_env_allow=("SHARED_GREETING",))
    assert (
        await tenantry.post_update("filin", updates.command("start", user_id=3))
    ).status_code == 200
    [reply] = bot_api.calls("sendMessage", chat_id=3)
    assert reply.params["text"] == "Hello from the group"
    # The admin API applies the same allow list.
    glow = tenantry.tenant_config("glow", texts={"welcome": "${SHARED_GREETING}"})
    response = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(glow), headers=tenantry.admin_headers()
    )
    assert response.status_code == 201, response.text


# ------------------------------------------------------------ /health


async def test_health_without_the_admin_token_shows_only_states(tenantry):
    tenantry.add_tenant("filin")
    tenantry.add_tenant("broken", bot={"mode": "smoke-signals"})
    await tenantry.start()
    response = await tenantry.client.get("/health")
    assert response.status_code == 200
    body = response.json()
    # Whether its bot is built yet (its first update builds it) is a count, not a detail.
    assert body.pop("loaded") + body.pop("idle") == 1
    assert body == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
        "tenants": [{"id": "filin", "state": "running"}],
        "rejected": 1,
    }
    wrong = await tenantry.client.get("/health", headers={"Authorization": "Bearer nope"})
    assert wrong.json()["rejected"] == 1


async def test_health_with_the_admin_token_shows_the_details(tenantry):
    tenantry.add_tenant("filin")
    tenantry.add_tenant("broken", bot={"mode": "smoke-signals"})
    await tenantry.start()
    body = (await tenantry.client.get("/health", headers=tenantry.admin_headers())).json()
    [filin] = body["tenants"]
    assert filin["name"] == "Filin" and filin["mode"] == "webhook" and "detail" in filin
    [issues] = body["rejected"].values()
    assert "bot.mode: expected str matching regex" in issues[0]


# ------------------------------------------------------------ redaction


def test_known_secrets_and_bot_api_tokens_are_redacted():
    owner = object()
    register_secrets(owner, ["sk-live-0a1b2c3d", "short", ""])
    try:
        assert redact("key sk-live-0a1b2c3d!") == "key [redacted]!"
        assert redact("short stays") == "short stays"
        assert redact("GET https://api.telegram.org/bot123456:AAE-x_y/getMe") == (
            "GET https://api.telegram.org/bot123456:[redacted]/getMe"
        )
    finally:
        forget_secrets(owner)
    assert redact("key sk-live-0a1b2c3d!") == "key sk-live-0a1b2c3d!"


def test_secrets_sharing_their_first_characters_are_each_redacted_whole():
    # Consecutive bot ids: thousands of tokens may share the indexed prefix.
    owners = [object() for _ in range(300)]
    tokens = [f"7239388{n:03d}:tok{'x' * (n % 7)}" for n in range(300)]
    shared = "7239388001:tokx-and-more"  # extends another owner's token
    try:
        for owner, token in zip(owners, tokens, strict=True):
            register_secrets(owner, [token, shared])
        assert redact(f"a {tokens[5]} b") == "a [redacted] b"
        assert redact(f"a {shared} b") == "a [redacted] b"
        assert redact(f"{tokens[299]}{tokens[0]}") == "[redacted][redacted]"
        for owner in owners[:299]:
            forget_secrets(owner)
        # The shared secret stays while one of its owners holds it.
        assert redact(f"a {shared} {tokens[5]}") == f"a [redacted] {tokens[5]}"
        assert redact(tokens[299]) == "[redacted]"
    finally:
        for owner in owners:
            forget_secrets(owner)
    assert redact(f"{shared} {tokens[299]}") == f"{shared} {tokens[299]}"


class LeakyPlugin:
    """``/leak`` logs every secret it is given, through structlog and stdlib logging, then
    raises with a Bot API URL and the DSN in the message."""

    def __init__(self, secrets: dict[str, str], bot_api_url: str):
        self.secrets = secrets
        self.bot_api_url = bot_api_url

    @hookimpl
    def register_routers(self, tenant: Tenant) -> Router:
        router = Router(name=f"leaky:{tenant.id}")
        secrets, base = self.secrets, self.bot_api_url

        @router.message(Command("leak"))
        async def leak(message: Message, tenant: Tenant) -> None:
            token = tenant.config.bot.token
            tenant.log.info("leak_test", token=token, **secrets, all=" ".join(secrets.values()))
            tenant.log.warning(f"leak_in_message {' '.join(secrets.values())}")
            logging.getLogger("aiohttp.client").warning("GET %s/bot%s/getMe failed", base, token)
            logging.getLogger("aiohttp.client").warning(
                "unknown bot: https://api.telegram.org/bot999999:UNKNOWNsecretXYZ/getMe"
            )
            failed_url = f"{base}/bot{token}/sendMessage"
            raise RuntimeError(f"Bot API call {failed_url} failed; dsn {secrets['dsn']}")

        return router


class CrashyPlugin:
    """Fails every start with the Bot API URL (and so the token) in the error."""

    @hookimpl
    def on_tenant_started(self, tenant: Tenant) -> None:
        token = tenant.config.bot.token
        raise RuntimeError(f"getMe failed: http://127.0.0.1:1/bot{token}/getMe")


async def test_logs_never_show_a_known_secret(tenantry, updates, capsys, monkeypatch):
    password = "db-pass-51d0e2"
    tenantry.database_url = f"postgresql://postgres:{password}@127.0.0.1:5432/test"
    partner = "partner-secret-93ab71"
    filin, env = referencing(
        tenantry,
        "filin",
        webapp={"url": "https://partner.example/${FILIN_PARTNER_SECRET}"},
        features={"leaky": None},
    )
    for name, value in {**env, "FILIN_PARTNER_SECRET": partner}.items():
        monkeypatch.setenv(name, value)
    tenantry.write_tenant("filin", yaml.safe_dump(filin, sort_keys=False))
    token = env["FILIN_BOT_TOKEN"]
    given = {
        "api_key": env["FILIN_API_KEY"],
        "partner": partner,
        "admin": tenantry.admin_token,
        "secret_key": tenantry.secret_key,
        "dsn": tenantry.database_url,
    }
    plugin = LeakyPlugin(given, tenantry.bot_api.base_url)
    await tenantry.start(plugins=[("leaky", plugin)])
    given["webhook_secret"] = tenantry.secret("filin")
    response = await tenantry.post_update("filin", updates.command("leak", user_id=8))
    assert response.status_code == 200

    captured = capsys.readouterr().err
    assert "leak_test" in captured and "leak_in_message" in captured
    assert "RuntimeError" in captured  # the traceback was rendered, and redacted
    for secret in [token, token.split(":")[1], password, *given.values()]:
        assert secret not in captured, secret
    assert f"bot{token.split(':')[0]}:[redacted]" in captured
    assert "bot999999:[redacted]" in captured and "UNKNOWNsecretXYZ" not in captured


async def test_a_tenant_detail_never_shows_its_token(tenantry):
    broken = tenantry.add_tenant("broken", features={"crashy": None})
    await tenantry.start(plugins=[("crashy", CrashyPlugin())])
    token = broken["bot"]["token"]
    await tenantry.wait_state("broken", "failed")
    for path in ("/health", "/admin/tenants"):
        body = (await tenantry.client.get(path, headers=tenantry.admin_headers())).json()
        [detail] = [t["detail"] for t in body["tenants"] if t["id"] == "broken"]
        assert f"bot{bot_id(broken)}:[redacted]/getMe" in detail
        assert token.split(":")[1] not in detail


# ------------------------------------------------------------ demo secrets


def test_demo_secrets_are_refused_unless_the_runtime_listens_on_loopback():
    pm = build_plugin_manager()
    filin = ROOT / "tenants" / "filin.yaml"
    with pytest.raises(ConfigError) as caught:
        load_tenant_file(filin, pm, {}, listen_host="0.0.0.0")
    reasons = [str(issue) for issue in caught.value.issues]
    suffix = "or listen on a loopback address (this runtime listens on 0.0.0.0)"
    assert reasons == [
        f"{filin}:7: bot.token: demo secret; set FILIN_BOT_TOKEN, {suffix}",
        f"{filin}:9: bot.webhook_secret: demo secret; set FILIN_WEBHOOK_SECRET, {suffix}",
        f"{filin}:15: api.keys[0]: demo secret; set FILIN_API_KEY, {suffix}",
    ]
    real = {
        "FILIN_BOT_TOKEN": "7:real",
        "FILIN_WEBHOOK_SECRET": "w" * 32,
        "FILIN_API_KEY": "k" * 32,
    }
    assert load_tenant_file(filin, pm, real, listen_host="0.0.0.0").config.bot.token == "7:real"
    for host in ("127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"):
        assert load_tenant_file(filin, pm, {}, listen_host=host).config.id == "filin"

    assert RuntimeSettings.from_env().listen_host == "127.0.0.1"
    assert RuntimeSettings.from_env(listen_host="0.0.0.0").listen_host == "0.0.0.0"


async def test_a_runtime_listening_on_all_addresses_refuses_a_demo_secret(tenantry):
    tenantry.add_tenant("filin", bot={"webhook_secret": "filin-demo-secret"})
    tenantry.add_tenant("glow")
    await tenantry.start(listen_host="0.0.0.0")
    body = (await tenantry.client.get("/health", headers=tenantry.admin_headers())).json()
    assert [t["id"] for t in body["tenants"]] == ["glow"]
    [issues] = [v for k, v in body["rejected"].items() if k.endswith("filin.yaml")]
    assert "bot.webhook_secret: demo secret" in issues[0]


def test_every_example_tenant_loads():
    pm = build_plugin_manager()
    files = sorted((ROOT / "tenants").glob("*.yaml"))
    assert files
    for path in files:
        assert load_tenant_file(path, pm, {}).config.id == path.stem


# ------------------------------------------------------------ schemas


@pytest.mark.parametrize("schema", ["public", "information_schema", "pg_catalog", "pg_mine"])
def test_reserved_schemas_are_refused_at_their_line(pm, schema):
    text = BASE + f"storage:\n  redis_prefix: 'filin:'\n  schema: {schema}\n"
    assert errors(text, pm, {}) == [
        f"tenants/filin.yaml:6: storage.schema: schema {schema!r} is reserved (public, "
        "information_schema and pg_* belong to PostgreSQL and every database user); "
        "choose a schema of this tenant's own"
    ]


async def test_a_tenant_cannot_see_a_table_in_public_by_its_bare_name(tenantry):
    table = f"leak_{tenantry.run_id}"
    tenantry.add_tenant("filin")
    await tenantry.start()
    await tenantry.sql(f"CREATE TABLE public.{table} (secret text)")
    try:
        await tenantry.sql(f"INSERT INTO public.{table} VALUES ('other data')")
        db = tenantry.runtime.registry.get("filin").db
        with pytest.raises(asyncpg.UndefinedTableError):
            await db.fetch(f"SELECT * FROM {table}")
        with pytest.raises(asyncpg.UndefinedTableError):
            async with db.transaction() as conn:
                await conn.fetch(f"SELECT * FROM {table}")
        assert await db.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await tenantry.sql(f"DROP TABLE IF EXISTS public.{table}")
