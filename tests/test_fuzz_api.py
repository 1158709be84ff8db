"""Schemathesis over the runtime's whole OpenAPI document: no input answers a 5xx.

The runtime serves a restaurant (booking, tables), a salon (booking, services)
and a marketplace (orders). Every operation of ``/schema/openapi.json`` is
called with generated inputs, valid ones and ones that break the schema, once
with the credentials it needs (the ops token for ``/admin``, the tenant's API
key for tenant routes, the webhook secret for ``/webhook``) and once with none.
Plugin routes go to a tenant that has the plugin, so the code behind the
guards runs. Every answer must be below 500 (a deliberate 503 aside), and an
answer with a documented status must match its documented schema. Generation
is derandomized with a bounded number of examples per operation and mode, so
a CI run is repeatable; ``TENANTRY_FUZZ_EXAMPLES`` raises the number for a
longer local run.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from booking._booking_support import restaurant, salon
from orders.conftest import ORDERS_SETTINGS

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

EXAMPLES = int(os.environ.get("TENANTRY_FUZZ_EXAMPLES", "30"))
GENEROUS = {"api_writes": "100000/minute", "webapp_writes": "100000/minute"}
TENANTS = ("filin", "glow", "market")
PLUGIN_TENANTS = {"booking": ("filin", "glow"), "orders": ("market",)}
"""Tenants that run each plugin: its routes are sent to one of them."""


def _tenant_for(path: str, generated: str) -> str:
    """The real tenant a generated ``tenant_id`` is replaced with (chosen by its hash, stably)."""
    parts = path.split("/")
    plugin = parts[4] if len(parts) > 4 and path.startswith("/api/tenants/") else ""
    choices = PLUGIN_TENANTS.get(plugin, TENANTS)
    return choices[sum(map(ord, generated)) % len(choices)]


def _credentials(
    tenantry: Any, secrets: dict[str, str], path: str, tenant_id: str
) -> dict[str, str]:
    if path.startswith("/admin") or path == "/health":
        return {"Authorization": f"Bearer {tenantry.admin_token}"}
    if path.startswith("/webhook/"):
        return {"X-Telegram-Bot-Api-Secret-Token": secrets[tenant_id]}
    return {"X-API-Key": tenantry.api_key(tenant_id)}


_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-telegram-bot-api-secret-token")


def _fuzz(
    document: dict[str, Any], base_url: str, tenantry: Any, secrets: dict[str, str]
) -> list[str]:
    """Run every operation against ``base_url``; return a line per 5xx or nonconforming answer."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode)

                @settings(
                    max_examples=EXAMPLES,
                    derandomize=True,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def run(case: Any) -> None:
                    path = case.operation.path
                    params = case.path_parameters or {}
                    tenant_id = _tenant_for(path, str(params.get("tenant_id", "")))
                    if "tenant_id" in params and not path.startswith("/admin"):
                        # Real tenants, so the plugin code behind the guards runs;
                        # the admin routes keep generated ids (they stop and delete).
                        case.path_parameters = {**params, "tenant_id": tenant_id}
                    kwargs = case.as_transport_kwargs(base_url=base_url)
                    url = kwargs["url"]
                    for with_credentials in (True, False):
                        headers = {
                            k: v
                            for k, v in (kwargs.get("headers") or {}).items()
                            if k.lower() not in _CREDENTIAL_HEADERS
                        }
                        if with_credentials:
                            headers.update(_credentials(tenantry, secrets, path, tenant_id))
                        try:
                            response = client.request(
                                case.method,
                                url,
                                params=kwargs.get("params"),
                                headers=headers,
                                content=kwargs.get("data") or kwargs.get("content"),
                                json=kwargs.get("json"),
                            )
                        except httpx.TransportError as exc:  # the server dropped us: a crash
                            failures.append(f"{case.method} {url}: {type(exc).__name__}")
                            continue
                        if response.status_code >= 500 and response.status_code != 503:
                            failures.append(
                                f"{case.method} {url} -> {response.status_code}: {response.text[:200]}"
                            )
                            continue
                        try:
                            # Only answers whose status the document lists are checked.
                            case.validate_response(response, checks=[response_schema_conformance])
                        except FailureGroup as exc:
                            failures.append(
                                f"{case.method} {url} -> {response.status_code} does not match "
                                f"its documented schema: {str(exc)[:300]}"
                            )

                try:
                    run()
                except Unsatisfiable:
                    # Nothing to break: the operation takes no input (GET /health).
                    assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


async def test_no_generated_request_gets_a_server_error(tenantry):
    tenantry.add_tenant("filin", features={"booking": restaurant()}, limits=GENEROUS)
    tenantry.add_tenant("glow", features={"booking": salon()}, limits=GENEROUS)
    tenantry.add_tenant(
        "market",
        timezone="Europe/Moscow",
        features={"orders": ORDERS_SETTINGS},
        limits=GENEROUS,
    )
    await tenantry.start(watch=False)
    for tenant_id in TENANTS:
        await tenantry.wait_state(tenant_id, "running")
    document = (await tenantry.client.get("/schema/openapi.json")).json()
    operations = sum(len(item) for item in document["paths"].values())
    assert operations >= 20, "the OpenAPI document lost its operations"
    secrets = {tenant_id: tenantry.secret(tenant_id) for tenant_id in TENANTS}
    # Schemathesis is synchronous; the runtime serves on this test's event loop.
    failures = await asyncio.to_thread(_fuzz, document, tenantry.url, tenantry, secrets)
    assert not failures, "\n".join(failures[:20])
