"""``POST /webhook/{tenant_id}``: the ASGI mount that reads an update and answers what
:mod:`core.updates.protocol` decides, and its entry in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Litestar, asgi
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Schema,
)
from litestar.types import Receive, Scope, Send

from core.errors import (
    Problem,
)
from core.http.plugin import runtime_of
from core.updates.protocol import SECRET_HEADER, WebhookAnswer, admit_update, handle_update, problem

__all__ = ["MAX_UPDATE_BYTES", "document_webhook", "webhook"]

log = structlog.get_logger("tenantry.webhook")

_SECRET_HEADER_RAW = SECRET_HEADER.lower().encode()  # ASGI header names are lowercase bytes


MAX_UPDATE_BYTES = 1024 * 1024
"""Largest webhook body accepted (413 beyond). Updates are JSON objects of a few
kilobytes: message texts are at most 4096 characters (Bot API, sendMessage)."""


def _webhook_headers(scope: Scope) -> tuple[str, int]:
    """The secret token header ("" if absent) and the declared Content-Length (0 if
    absent or not a number), read straight from the ASGI scope in one pass."""
    secret, length = "", 0
    for name, value in scope["headers"]:
        if name == _SECRET_HEADER_RAW:
            secret = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return secret, length


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it exceeds :data:`MAX_UPDATE_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_UPDATE_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@asgi("/webhook", is_mount=True, copy_scope=False)
async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /webhook/{tenant_id}``: Telegram delivers one update of a tenant's bot.

    A Litestar ASGI mount rather than a ``@post`` route: it runs for every
    update, and skipping Litestar's request, parameter and response objects
    saves about a third of the HTTP layer's CPU (``docs/benchmarks.md#webhook``).
    Litestar still routes it, runs the app middleware and turns an unexpected
    exception into a logged 500. See :func:`core.updates.protocol.process_update` for the answers;
    also 404 for a path without a single tenant id, 405 for another method and
    413 for a body over :data:`MAX_UPDATE_BYTES`.

    The tenant, its secret token and the declared Content-Length are checked
    before the body is read: an unknown tenant (404), a wrong secret (401), a
    tenant not serving (503) or a declared body over the limit (413) is
    answered at once with ``Connection: close``, so a caller without the
    secret never makes the server read (or wait for) a body.
    """
    tenant_id = scope["path"].strip("/")
    headers = [(b"content-type", b"application/json")]
    if not tenant_id or "/" in tenant_id:
        status, body = problem(404, "not found; webhooks are POST /webhook/{tenant_id}")
    elif scope["method"] != "POST":
        status, body = problem(405, "webhooks accept POST only")
        headers.append((b"allow", b"POST"))
    else:
        runtime = runtime_of(scope["app"])
        secret_token, declared_length = _webhook_headers(scope)
        admitted = admit_update(runtime, tenant_id, secret_token)
        if type(admitted) is tuple:
            status, body = admitted
            headers.append((b"connection", b"close"))  # the body stays unread
        elif declared_length > MAX_UPDATE_BYTES:
            status, body = problem(413, f"an update is at most {MAX_UPDATE_BYTES} bytes")
            headers.append((b"connection", b"close"))
        else:
            update_body = await _read_body(receive)
            if update_body is None:
                status, body = problem(413, f"an update is at most {MAX_UPDATE_BYTES} bytes")
                headers.append((b"connection", b"close"))
            else:
                status, body = await handle_update(runtime, admitted, update_body)
    if status == 503:  # as every 503 of the runtime: a retry in a second may succeed
        headers.append((b"retry-after", b"1"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def document_webhook(app: Litestar) -> None:
    """Add ``POST /webhook/{tenant_id}`` to the app's OpenAPI document.

    Litestar leaves ASGI mounts out of the schema it generates; the document
    is generated once and cached, so the operation is added to it here. The
    body schemas come from the msgspec Structs (``msgspec.json.schema_components``).
    """
    document = app.openapi_schema
    (answer, problem_ref), schemas = msgspec.json.schema_components(
        [WebhookAnswer, Problem], ref_template="#/components/schemas/{name}"
    )
    if document.components.schemas is None:
        document.components.schemas = {}
    document.components.schemas.update(schemas)

    def response(description: str, schema: dict[str, Any] = problem_ref) -> OpenAPIResponse:
        return OpenAPIResponse(
            description=description,
            content={"application/json": OpenAPIMediaType(schema=schema)},  # type: ignore[arg-type]
        )

    document.paths["/webhook/{tenant_id}"] = PathItem(
        post=Operation(
            tags=["telegram"],
            summary="Telegram webhook of one tenant",
            description=(
                "Receives a Bot API Update (the JSON object Telegram POSTs to a webhook). "
                "The X-Telegram-Bot-Api-Secret-Token header must equal the tenant's webhook "
                "secret. The update is processed before 200 is returned; an update_id already "
                "processed for this bot is acknowledged and skipped."
            ),
            operation_id="TelegramWebhook",
            parameters=[
                Parameter(
                    name="tenant_id",
                    param_in=ParamType.PATH,
                    required=True,
                    schema=Schema(type=OpenAPIType.STRING),
                ),
                Parameter(
                    name=SECRET_HEADER,
                    param_in=ParamType.HEADER,
                    required=True,
                    schema=Schema(type=OpenAPIType.STRING),
                ),
            ],
            request_body=RequestBody(
                content={
                    "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))
                },
                description="A Bot API Update (https://core.telegram.org/bots/api#update).",
                required=True,
            ),
            responses={
                "200": response("processed, or seen before (duplicate: true)", answer),
                "400": response("malformed JSON, or not a Telegram Update"),
                "401": response("wrong or missing X-Telegram-Bot-Api-Secret-Token"),
                "404": response("unknown tenant"),
                "405": response("not a POST"),
                "413": response(f"body over {MAX_UPDATE_BYTES} bytes"),
                "503": response(
                    "tenant not serving, update being processed by another delivery, or "
                    "storage unavailable: Telegram re-sends it"
                ),
            },
        )
    )
