"""``Idempotency-Key`` for create endpoints, shared by plugins.

The first request with a key runs; its status and JSON body are kept in the
tenant's Redis for 24 hours and a retry with the same key gets them back
without running again. A retry while the first is still running gets 409; the
same key with a different body gets 422 (as the IETF draft
"The Idempotency-Key HTTP Header Field" recommends). A request that fails
with an exception releases the key, so nothing half-done is remembered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import ClientException, HTTPException

from core.tenant import Tenant

__all__ = ["IDEMPOTENCY_TTL_SECONDS", "idempotent", "idempotent_response"]

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
_PENDING = b"pending"


class _Conflict(HTTPException):
    status_code = 409


async def idempotent(
    tenant: Tenant,
    scope: str,
    key: str | None,
    body: bytes,
    run: Callable[[], Awaitable[tuple[int, Any]]],
) -> tuple[int, Any, bool]:
    """Run ``run`` once per ``(scope, key)``.

    Args:
        tenant: the tenant (keys live under its Redis prefix).
        scope: the operation, e.g. ``booking.create``; keys are per scope.
        key: the ``Idempotency-Key`` header, None or empty to always run.
        body: the raw request body, to refuse a reused key with another body.
        run: returns ``(status_code, json-ready body)``.

    Returns:
        ``(status_code, body, replayed)``; replayed is True for a stored answer.

    Raises:
        ClientException: 400 for a key over 255 characters; 422 for a key reused
            with a different body.
        HTTPException: 409 while the first request with the key is in flight.
    """
    if not key:
        status, result = await run()
        return status, result, False
    if len(key) > 255:
        raise ClientException(detail="Idempotency-Key must be at most 255 characters")
    fingerprint = hashlib.sha256(body).hexdigest()
    redis_key = tenant.key("idempotency", scope, hashlib.sha256(key.encode()).hexdigest())
    claimed = await tenant.redis.set(redis_key, _PENDING, nx=True, ex=IDEMPOTENCY_TTL_SECONDS)
    if not claimed:
        stored = await tenant.redis.get(redis_key)
        if stored is None or stored in (_PENDING, _PENDING.decode()):
            raise _Conflict(detail="a request with this Idempotency-Key is still being processed")
        record = msgspec.json.decode(stored)
        if record["fingerprint"] != fingerprint:
            raise ClientException(
                status_code=422, detail="Idempotency-Key was already used with a different body"
            )
        return record["status"], record["body"], True
    try:
        status, result = await run()
    except BaseException:
        await tenant.redis.delete(redis_key)
        raise
    if status >= 500 or status in (401, 403, 409, 429):
        # Not a final answer for this key: let the client retry it.
        await tenant.redis.delete(redis_key)
    else:
        record = {"status": status, "body": msgspec.to_builtins(result), "fingerprint": fingerprint}
        await tenant.redis.set(redis_key, msgspec.json.encode(record), ex=IDEMPOTENCY_TTL_SECONDS)
    return status, result, False


async def idempotent_response(
    request: Request[Any, Any, Any],
    tenant: Tenant,
    scope: str,
    run: Callable[[], Awaitable[tuple[int, Any]]],
) -> Response[Any]:
    """:func:`idempotent` for a route handler: reads ``Idempotency-Key`` and the body.

    Args:
        request: the current request (its ``Idempotency-Key`` header and raw body).
        tenant: the tenant.
        scope: the operation and caller, e.g. ``orders.create:<customer id>``.
        run: returns ``(status_code, json-ready body)``.

    Returns:
        The response; a replayed one carries ``Idempotent-Replayed: true``.

    Raises:
        ClientException, HTTPException: see :func:`idempotent`.
    """
    status, result, replayed = await idempotent(
        tenant, scope, request.headers.get("Idempotency-Key"), await request.body(), run
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(result, status_code=status, headers=headers)
