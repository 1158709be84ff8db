"""The audit log: who changed which tenant, when, how it went, and the diff of its file.

Entries live in the control schema's ``audit_log`` table (:mod:`core.runtime.control`)
and come from two places:

* the admin API (:class:`core.http.admin.AdminController`) records every add,
  change, reload, remove and claim release, refused attempts included, with
  the token's name as the actor. It runs the registry call inside
  :func:`admin_action`, so the change the registry makes is recorded once,
  under that actor;
* the registry reports every tenant it starts, fails to start or removes
  (:class:`TenantChange`); outside an admin action that is a change of the
  tenants folder, recorded with the actor ``file:<name>``.

The diff is a unified diff of the tenant file before and after, with any
inline secret at ``bot.token``, ``bot.webhook_secret`` or ``api.keys``
replaced by ``"[masked <fingerprint>]"`` (``${VAR}`` references are kept as
written). ``tenant_files`` keeps the last started file of each tenant,
masked: the base of the next diff, and how a restart, or a second runtime
applying a file another already applied, is told apart from a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import difflib
import hashlib
import hmac
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
import structlog
import yaml

from core.config.model import TENANT_ID_PATTERN
from core.http.admin_tokens import AdminActor

if TYPE_CHECKING:
    from core.config.loader import TenantSpec

__all__ = [
    "AuditEntry",
    "AuditLog",
    "TenantChange",
    "admin_action",
    "declared_tenant_id",
    "mask_secrets",
    "tenant_file_diff",
]

log = structlog.get_logger("tenantry.audit")

SECRET_PATHS: tuple[tuple[str, str], ...] = (
    ("bot", "token"),
    ("bot", "webhook_secret"),
    ("api", "keys"),
)
"""Fields whose inline values are credentials (``core.config.model.BotConfig``, ``ApiConfig``)."""

MAX_DIFF_CHARS = 64 * 1024
"""A longer diff is cut there (tenant files are at most 256 KiB; a diff of a
whole file is rarely needed to see who changed what)."""

_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TenantChange(msgspec.Struct, frozen=True):
    """What the registry reports after starting, failing to start or removing a tenant.

    Attributes:
        tenant_id: the tenant.
        source: its file (``tenants/glow.yaml``).
        spec: the config it started (or failed to start) with; None when removed.
        outcome: ``ok`` or ``failed`` (the start raised; the old config, if
            any, keeps serving).
        detail: the start error, for ``failed``.
    """

    tenant_id: str
    source: str
    spec: TenantSpec | None
    outcome: str = "ok"
    detail: str = ""


class AuditEntry(msgspec.Struct, frozen=True):
    """One audit log entry, as ``GET /admin/audit`` returns it.

    Attributes:
        id: increasing; pass it as ``before`` to read older entries.
        at: when, UTC (RFC 3339).
        actor: ``ops``, a scoped token's name, or ``file:<name>`` for a change
            of the tenants folder.
        action: ``tenant.add``, ``tenant.change``, ``tenant.reload``,
            ``tenant.remove`` or ``claim.release``.
        tenant_id: the tenant acted on ("" when an upload was too broken to name one).
        outcome: ``ok``, ``refused`` (nothing changed) or ``failed`` (valid,
            but the tenant could not start).
        reason: why it was refused or failed, or what it did.
        diff: unified diff of the tenant file, inline secrets masked.
    """

    id: int
    at: datetime
    actor: str
    action: str
    tenant_id: str
    outcome: str
    reason: str
    diff: str


class AdminAction:
    """The admin action in progress in this task (see :func:`admin_action`).

    Attributes:
        actor: the token's audit name.
        action: the action the admin API is performing.
        recorded: set once the registry's report of the change was recorded.
    """

    def __init__(self, actor: str, action: str):
        self.actor = actor
        self.action = action
        self.recorded = False


_ADMIN_ACTION: contextvars.ContextVar[AdminAction | None] = contextvars.ContextVar(
    "tenantry_admin_action", default=None
)


@contextlib.contextmanager
def admin_action(actor: str, action: str) -> Iterator[AdminAction]:
    """Attribute the registry changes made inside the block to ``actor`` and ``action``."""
    current = AdminAction(actor, action)
    token = _ADMIN_ACTION.set(current)
    try:
        yield current
    finally:
        _ADMIN_ACTION.reset(token)


def _values_at(node: yaml.Node | None, key: str) -> list[yaml.Node]:
    """Values of ``key`` in a mapping node: every occurrence, and through ``<<`` merges."""
    if not isinstance(node, yaml.MappingNode):
        return []
    found: list[yaml.Node] = []
    for key_node, value in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found.append(value)
        elif isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<":
            merged = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in merged:
                if source is not node:
                    found.extend(_values_at(source, key))
    return found


def mask_secrets(text: str, key: bytes) -> str | None:
    """``text`` with inline values at :data:`SECRET_PATHS` replaced by ``"[masked <fp>]"``.

    ``<fp>`` is the first 8 hex digits of HMAC-SHA256(``key``, value): a
    rotated secret shows up as a changed line, and without the key the mark
    tells nothing about the value. Empty values and a bare ``${VAR}``
    reference are kept; anything else (``${VAR:-default}`` included) is masked.

    Returns:
        The masked text, or None when ``text`` is not YAML (then it cannot be
        told where its secrets are, and it must not be shown).
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except Exception:  # any parser failure means: do not show this text
        return None
    scalars: dict[int, tuple[int, str]] = {}
    for section, field in SECRET_PATHS:
        for block in _values_at(root, section):
            for value in _values_at(block, field):
                items = value.value if isinstance(value, yaml.SequenceNode) else [value]
                if field == "keys":
                    # A scoped key is a mapping: its secret is its ``key`` (ApiKey).
                    items = [
                        secret
                        for item in items
                        for secret in (
                            _values_at(item, "key")
                            if isinstance(item, yaml.MappingNode)
                            else [item]
                        )
                    ]
                for item in items:
                    if isinstance(item, yaml.ScalarNode):
                        scalars[item.start_mark.index] = (item.end_mark.index, item.value)
                    else:
                        return None  # not a string: nowhere safe to show it
    masked = text
    for start in sorted(scalars, reverse=True):
        end, value = scalars[start]
        if value == "" or _REFERENCE.match(value):
            continue
        mark = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:8]
        # A block scalar's span ends with its line break: keep it.
        span = masked[start:end]
        ending = span[len(span.rstrip()) :]
        masked = f'{masked[:start]}"[masked {mark}]"{ending}{masked[end:]}'
    return masked


def declared_tenant_id(text: str) -> str:
    """The ``id`` a tenant file declares, read without validating the rest; "" when none.

    For the audit entry of an upload refused before its id was validated.
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except Exception:  # not YAML: it declares nothing
        return ""
    for node in _values_at(root, "id"):
        if isinstance(node, yaml.ScalarNode) and re.match(TENANT_ID_PATTERN, node.value):
            return node.value
    return ""


def tenant_file_diff(tenant_id: str, before: str, after: str) -> str:
    """Unified diff of two (masked) tenant files, at most :data:`MAX_DIFF_CHARS`."""
    lines = difflib.unified_diff(
        [line if line.endswith("\n") else line + "\n" for line in before.splitlines()],
        [line if line.endswith("\n") else line + "\n" for line in after.splitlines()],
        fromfile=f"{tenant_id}.yaml (before)" if before else "/dev/null",
        tofile=f"{tenant_id}.yaml (after)" if after else "/dev/null",
    )
    diff = "".join(lines)
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + "\n[diff cut]\n"
    return diff


class AuditLog:
    """The audit log and the last started tenant files, in the control schema.

    Args:
        pool: the shared asyncpg pool.
        schema: the control schema (already migrated).
        secret_key: the runtime's secret key; keys the fingerprints of masked
            secrets, so runtimes sharing it mask alike.
    """

    def __init__(self, pool: asyncpg.Pool, schema: str, secret_key: str):
        self.pool = pool
        self._entries = f'"{schema}".audit_log'
        self._files = f'"{schema}".tenant_files'
        self._lock_prefix = f"tenantry:tenant-file:{schema}:"
        self._key = hashlib.sha256(b"audit-mask:" + secret_key.encode()).digest()
        # Failed starts are retried on every folder sync: record each failing
        # file once per runtime, not once per retry.
        self._failed: dict[str, str] = {}
        # tenant id -> source_hash of its recorded file, read at start by :meth:`prime`:
        # a restart of thousands of tenants then records none with a round trip each.
        self._recorded: dict[str, str] = {}

    async def prime(self) -> None:
        """Read which file of each tenant is recorded already, in one query (before a start)."""
        rows = await self.pool.fetch(f"SELECT tenant_id, source_hash FROM {self._files}")
        self._recorded = {r["tenant_id"]: r["source_hash"] for r in rows}

    async def _masked(self, text: str) -> str | None:
        # A tenant file is up to 256 KiB of YAML: parse it off the event loop.
        return await asyncio.to_thread(mask_secrets, text, self._key)

    async def _insert(
        self,
        conn: Any,
        actor: str,
        action: str,
        tenant_id: str,
        outcome: str,
        reason: str,
        diff: str,
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self._entries} (actor, action, tenant_id, outcome, reason, diff) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            actor,
            action,
            tenant_id,
            outcome,
            reason,
            diff,
        )

    async def record(
        self,
        *,
        actor: str,
        action: str,
        tenant_id: str,
        outcome: str,
        reason: str = "",
        before: str = "",
        after: str = "",
    ) -> None:
        """Write one entry; ``before``/``after`` are raw tenant file texts, masked here.

        A write that fails is logged at error level with the entry's fields and
        not raised: the action it describes already happened.
        """
        masked_before = await self._masked(before) if before else ""
        masked_after = await self._masked(after) if after else ""
        if masked_before is None or masked_after is None:
            diff = ""
            reason = f"{reason} (no diff: the text is not YAML)".lstrip()
        else:
            diff = tenant_file_diff(tenant_id or "upload", masked_before, masked_after)
        try:
            async with self.pool.acquire() as conn:
                await self._insert(conn, actor, action, tenant_id, outcome, reason, diff)
        except Exception as exc:
            log.error(
                "audit_write_failed",
                actor=actor,
                action=action,
                tenant=tenant_id,
                outcome=outcome,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def tenant_changed(self, change: TenantChange) -> None:
        """Record a change the registry made (its ``on_change`` callback).

        Inside :func:`admin_action` the entry carries that actor and action;
        otherwise the actor is ``file:<name>``, and a file already recorded
        (a restart, or another runtime that applied it first) is skipped.
        """
        current = _ADMIN_ACTION.get()
        tenant_id = change.tenant_id
        if (
            current is None
            and change.spec is not None
            and change.outcome == "ok"
            and self._recorded.get(tenant_id) == change.spec.source_hash
        ):
            return  # this very file is recorded (a restart): nothing to add
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_prefix + tenant_id
            )
            row = await conn.fetchrow(
                f"SELECT source_hash, masked_text FROM {self._files} WHERE tenant_id = $1",
                tenant_id,
            )
            before = row["masked_text"] if row is not None else ""
            spec = change.spec
            if spec is None:
                if row is None and current is None:
                    return
                await conn.execute(f"DELETE FROM {self._files} WHERE tenant_id = $1", tenant_id)
                self._recorded.pop(tenant_id, None)
                action, after, reason = "tenant.remove", "", "stopped; its data is kept"
            else:
                if current is None and (
                    (row is not None and row["source_hash"] == spec.source_hash)
                    or (
                        change.outcome == "failed"
                        and self._failed.get(tenant_id) == spec.source_hash
                    )
                ):
                    return
                after = await self._masked(spec.text) or ""
                action = "tenant.change" if row is not None else "tenant.add"
                if change.outcome == "ok":
                    self._failed.pop(tenant_id, None)
                    await conn.execute(
                        f"INSERT INTO {self._files} (tenant_id, source_hash, masked_text) "
                        "VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET "
                        "source_hash = EXCLUDED.source_hash, masked_text = EXCLUDED.masked_text, "
                        "applied_at = now()",
                        tenant_id,
                        spec.source_hash,
                        after,
                    )
                    self._recorded[tenant_id] = spec.source_hash
                    reason = "started"
                else:
                    self._failed[tenant_id] = spec.source_hash
                    reason = f"could not start: {change.detail}"
            await self._insert(
                conn,
                current.actor if current else f"file:{Path(change.source).name}",
                current.action if current else action,
                tenant_id,
                change.outcome,
                reason,
                tenant_file_diff(tenant_id, before, after),
            )
        if current is not None:
            current.recorded = True

    async def entries(
        self,
        actor: AdminActor,
        *,
        tenant: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first: ``tenant``'s only if given, older than the id ``before``.

        A scoped actor reads only entries of tenants in its scope.
        """
        conditions: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            args.append(tenant)
            conditions.append(f"tenant_id = ${len(args)}")
        if before is not None:
            args.append(before)
            conditions.append(f"id < ${len(args)}")
        if actor.tenants is not None:
            exact = [p for p in actor.tenants if not p.endswith("*")]
            prefixes = [p[:-1] for p in actor.tenants if p.endswith("*")]
            args.extend([exact, prefixes])
            conditions.append(
                f"(tenant_id = ANY(${len(args) - 1}::text[]) OR EXISTS "
                f"(SELECT 1 FROM unnest(${len(args)}::text[]) AS p WHERE starts_with(tenant_id, p)))"
            )
        args.append(limit)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT id, at, actor, action, tenant_id, outcome, reason, diff "
                f"FROM {self._entries} {where} ORDER BY id DESC LIMIT ${len(args)}",
                *args,
            )
        return [AuditEntry(**dict(row)) for row in rows]
