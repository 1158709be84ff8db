"""``Idempotency-Key`` for create endpoints, shared by plugins.

The first request with a key runs; its status and JSON body are kept in the
tenant's Redis for :data:`IDEMPOTENCY_TTL_SECONDS` (24 hours) and a retry with
the same key gets them back without running again. A retry while the first is
still running gets 409; the same key with a different body gets 422 (as the
IETF draft "The Idempotency-Key HTTP Header Field" recommends). A request that
fails with an exception, or ends in an answer worth retrying (5xx, 401, 403,
409, 429), releases the key, so nothing half-done is remembered.

While a request runs, its key holds a *pending* mark that expires after
:data:`PENDING_TTL_SECONDS` (60 s): a process that crashes mid-request does
not lock the key for a day, and the client's retry runs once the mark is gone.
Each mark carries a random token, and a request stores its answer (or releases
the key) only while its own mark is still there, so a request that outlived
its mark never overwrites the answer of the retry that replaced it.

Keys are per operation *and caller*: ``<prefix>idempotency:<scope>:<caller>:
<sha256 of the key>``, where the caller is the WebApp user or the API key
(:func:`core.http.ratelimit.caller_identity`), so one customer's key never replays
another's answer.
"""

from __future__ import annotations

import hashlib
import secrets
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response

from core.errors import BadRequest, Conflict, Unprocessable
from core.http.ratelimit import caller_identity
from core.runtime.tenant import Tenant

__all__ = [
    "IDEMPOTENCY_TTL_SECONDS",
    "PENDING_TTL_SECONDS",
    "idempotent",
    "idempotent_response",
]

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
"""How long a final answer is replayed for its key, in seconds."""

PENDING_TTL_SECONDS = 60
"""How long a running request's mark holds its key, in seconds: longer than any
request takes (the database's command timeout is 60 s), short enough that a
crash leaves the key locked for a minute, not a day."""

MAX_KEY_LENGTH = 255
_PENDING = "pending:"

# KEYS[1] the idempotency key; ARGV[1] the request's pending mark. Each acts
# only while the mark is still the request's own.
_FINISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_scripts: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def _scripts_of(redis: Any) -> tuple[Any, Any]:
    """``(finish, release)`` scripts registered on ``redis`` (EVALSHA, loaded on first use)."""
    scripts = _scripts.get(redis)
    if scripts is None:
        scripts = (redis.register_script(_FINISH), redis.register_script(_RELEASE))
        _scripts[redis] = scripts
    return scripts


async def idempotent(
    tenant: Tenant,
    scope: str,
    key: str | None,
    body: bytes,
    run: Callable[[], Awaitable[tuple[int, Any]]],
    *,
    caller: str = "",
    pending_ttl: int = PENDING_TTL_SECONDS,
) -> tuple[int, Any, bool]:
    """Run ``run`` once per ``(scope, caller, key)``.

    Args:
        tenant: the tenant (keys live under its Redis prefix).
        scope: the operation, e.g. ``booking.create``; keys are per scope.
        key: the ``Idempotency-Key`` header, None or empty to always run.
        body: the raw request body, to refuse a reused key with another body.
        run: returns ``(status_code, json-ready body)``.
        caller: who calls (``webapp:7001``, ``api_key:<digest>``); keys are per caller.
        pending_ttl: seconds the running request's mark holds the key
            (default :data:`PENDING_TTL_SECONDS`).

    Returns:
        ``(status_code, body, replayed)``; replayed is True for a stored answer.

    Raises:
        BadRequest: 400 ``idempotency.key_too_long``, a key over 255 characters.
        Unprocessable: 422 ``idempotency.key_reused``, the key was used with
            a different body.
        Conflict: 409 ``idempotency.in_progress``, a request with the key is
            still running (or crashed less than ``pending_ttl`` seconds ago).
    """
    if not key:
        status, result = await run()
        return status, result, False
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            "idempotency.key_too_long",
            f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters",
        )
    fingerprint = hashlib.sha256(body).hexdigest()
    redis = tenant.redis
    redis_key = tenant.key("idempotency", scope, caller, hashlib.sha256(key.encode()).hexdigest())
    mark = _PENDING + secrets.token_hex(8)
    while not await redis.set(redis_key, mark, nx=True, ex=pending_ttl):
        stored = await redis.get(redis_key)
        if stored is None:
            continue  # the other mark expired between SET and GET: claim again
        if isinstance(stored, bytes):
            stored = stored.decode()
        if stored.startswith(_PENDING):
            raise Conflict(
                "idempotency.in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
        record = msgspec.json.decode(stored)
        if record["fingerprint"] != fingerprint:
            raise Unprocessable(
                "idempotency.key_reused", "Idempotency-Key was already used with a different body"
            )
        return record["status"], record["body"], True
    finish, release = _scripts_of(redis)
    try:
        status, result = await run()
    except BaseException:
        await release(keys=[redis_key], args=[mark])
        raise
    if status >= 500 or status in (401, 403, 409, 429):
        # Not a final answer for this key: let the client retry it.
        await release(keys=[redis_key], args=[mark])
    else:
        record = {"status": status, "body": msgspec.to_builtins(result), "fingerprint": fingerprint}
        await finish(
            keys=[redis_key], args=[mark, msgspec.json.encode(record), IDEMPOTENCY_TTL_SECONDS]
        )
    return status, result, False


async def idempotent_response(
    request: Request[Any, Any, Any],
    tenant: Tenant,
    scope: str,
    run: Callable[[], Awaitable[tuple[int, Any]]],
    *,
    pending_ttl: int = PENDING_TTL_SECONDS,
) -> Response[Any]:
    """:func:`idempotent` for a route handler: reads ``Idempotency-Key``, the body and the caller.

    Args:
        request: the current request (its ``Idempotency-Key`` header, raw body
            and the caller its auth guard resolved).
        tenant: the tenant.
        scope: the operation, e.g. ``orders.create``; the caller is added here.
        run: returns ``(status_code, json-ready body)``.
        pending_ttl: see :func:`idempotent`.

    Returns:
        The response; a replayed one carries ``Idempotent-Replayed: true``.

    Raises:
        BadRequest, Unprocessable, Conflict: see :func:`idempotent`.
    """
    caller = caller_identity(request) if getattr(request.state, "actor", None) else "anonymous"
    status, result, replayed = await idempotent(
        tenant,
        scope,
        request.headers.get("Idempotency-Key"),
        await request.body(),
        run,
        caller=caller,
        pending_ttl=pending_ttl,
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(result, status_code=status, headers=headers)
