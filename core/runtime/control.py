"""The control schema: the runtime's own tables, shared by every runtime on the database.

It holds the storage claims (:class:`ClaimStore`) and the audit log
(:mod:`core.runtime.audit`). Its migrations are the numbered files of
``core/runtime/control_sql``, applied at runtime start the way tenant migrations are
(:func:`core.storage.migrations.apply_migrations`: one transaction under a PostgreSQL
advisory lock on the schema name, checksums recorded).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from core.config.model import DEFAULT_DATABASE, SCHEMA_PATTERN, ConfigIssue, TenantConfig
from core.storage.migrations import apply_migrations, load_migrations

if TYPE_CHECKING:
    from core.config.loader import TenantSpec

__all__ = [
    "CONTROL_MIGRATIONS",
    "ClaimStore",
    "StorageClaim",
    "claims_of",
    "prepare_control_schema",
    "schema_claim",
]

CONTROL_MIGRATIONS = Path(__file__).resolve().parent / "control_sql"
"""Numbered ``.sql`` migrations of the control schema."""

_RESOURCE_FIELDS = {
    "schema": "storage.schema",
    "redis_prefix": "storage.redis_prefix",
    "bot": "bot.token",
}


def _checked_schema(schema: str) -> str:
    if not re.match(SCHEMA_PATTERN, schema):
        raise ValueError(
            f"control schema {schema!r} is not a plain lowercase identifier ({SCHEMA_PATTERN})"
        )
    return schema


async def prepare_control_schema(pool: asyncpg.Pool, schema: str) -> list[str]:
    """Create the control schema if needed and apply its pending migrations.

    Several runtimes may start at once: the advisory lock of
    :func:`core.storage.migrations.apply_migrations` lets one of them migrate.

    Returns:
        Names (``control/NNNN_name.sql``) of the migrations applied now.

    Raises:
        ValueError: ``schema`` is not a plain identifier (``TENANTRY_CONTROL_SCHEMA``).
        core.storage.migrations.MigrationError: a released migration changed, or one failed.
    """
    migrations = load_migrations("control", CONTROL_MIGRATIONS)
    async with pool.acquire() as conn:
        return await apply_migrations(conn, _checked_schema(schema), migrations)


class StorageClaim(msgspec.Struct, frozen=True):
    """One claim: a tenant id holds a schema, a Redis prefix or a bot.

    Attributes:
        resource: ``schema``, ``redis_prefix`` or ``bot``.
        value: the schema (:func:`schema_claim`: ``<schema>`` on the default
            server, ``<server>/<schema>`` on another), the prefix, or the bot
            id (digits).
        tenant_id: the holder.
    """

    resource: str
    value: str
    tenant_id: str


def schema_claim(database: str, schema: str) -> str:
    """The claim value of ``schema`` on server ``database`` (``storage.database``).

    A schema name is one tenant's on each server. The default server's claims
    are the bare schema name, as before there were several servers; a schema
    name never holds ``/`` (:data:`core.config.model.SCHEMA_PATTERN`).
    """
    return schema if database == DEFAULT_DATABASE else f"{database}/{schema}"


def claims_of(config: TenantConfig) -> list[tuple[str, str]]:
    """The ``(resource, value)`` pairs a tenant's config needs to hold."""
    return [
        ("schema", schema_claim(config.storage.database, config.schema)),
        ("redis_prefix", config.redis_prefix),
        ("bot", str(config.bot.bot_id)),
    ]


class _Holders:
    """Claims read under the lock, plus those granted so far in the same batch."""

    def __init__(self, rows: Iterable[asyncpg.Record]):
        self.exact: dict[tuple[str, str], str] = {}
        self.prefixes: dict[str, str] = {}
        for row in rows:
            if row["resource"] == "redis_prefix":
                self.prefixes[row["value"]] = row["tenant_id"]
            else:
                self.exact[(row["resource"], row["value"])] = row["tenant_id"]
        self.sorted_prefixes = sorted(self.prefixes)

    def add(self, resource: str, value: str, tenant_id: str) -> None:
        if resource == "redis_prefix":
            if value not in self.prefixes:
                bisect.insort(self.sorted_prefixes, value)
            self.prefixes[value] = tenant_id
        else:
            self.exact[(resource, value)] = tenant_id

    def overlapping(self, prefix: str, tenant_id: str) -> tuple[str, str] | None:
        """A prefix of another tenant that overlaps ``prefix``, as ``(prefix, holder)``.

        Two prefixes overlap when one starts with the other (the rule of
        :func:`core.config.loader.check_tenant_set`): longer claimed prefixes sit in
        one sorted run after ``prefix``; shorter ones are its own prefixes.
        """
        start = bisect.bisect_left(self.sorted_prefixes, prefix)
        for claimed in self.sorted_prefixes[start:]:
            if not claimed.startswith(prefix):
                break
            if self.prefixes[claimed] != tenant_id:
                return claimed, self.prefixes[claimed]
        for length in range(1, len(prefix)):
            holder = self.prefixes.get(prefix[:length])
            if holder is not None and holder != tenant_id:
                return prefix[:length], holder
        return None


def _release_hint(holder: str) -> str:
    return (
        f"claimed by tenant {holder!r} (its data is kept after removal; only the ops token "
        f"can release it: DELETE /admin/claims/{holder})"
    )


class ClaimStore:
    """Storage claims in the control schema's ``storage_claims`` table.

    Args:
        pool: the shared asyncpg pool.
        schema: the control schema (already migrated).
    """

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.schema = _checked_schema(schema)
        self._table = f'"{schema}".storage_claims'
        self._lock_name = f"tenantry:claims:{schema}"

    async def claim(self, specs: Sequence[TenantSpec]) -> list[ConfigIssue]:
        """Claim each spec's schema, Redis prefix and bot for its tenant id, or say who holds them.

        Runs in one transaction under ``pg_advisory_xact_lock`` on the
        control schema's claims, so runtimes claiming at once take turns and
        a resource is never granted to two tenant ids. A spec's claims are
        granted all together or not at all; claims a tenant id already holds
        are kept (it keeps an old schema after moving to a new one, since its
        data is still there). Specs earlier in ``specs`` win over later ones.

        Returns:
            One issue per refused resource, located at the field
            (``storage.schema``, ``storage.redis_prefix``, ``bot.token``) of the
            spec's file and naming the holder; empty when everything was granted.

        Raises:
            asyncpg.PostgresError, OSError: the database is unavailable.
        """
        issues: list[ConfigIssue] = []
        if not specs:
            return issues
        exact_values = [
            value
            for spec in specs
            for resource, value in claims_of(spec.config)
            if resource != "redis_prefix"
        ]
        granted: list[tuple[str, str, str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_name)
            rows = await conn.fetch(
                f"SELECT resource, value, tenant_id FROM {self._table} "
                "WHERE resource = 'redis_prefix' OR value = ANY($1::text[])",
                exact_values,
            )
            holders = _Holders(rows)
            for spec in specs:
                refused = self._refusals(spec, holders)
                if refused:
                    issues.extend(refused)
                    continue
                tenant_id = spec.config.id
                for resource, value in claims_of(spec.config):
                    if resource == "redis_prefix":
                        held = holders.prefixes.get(value) == tenant_id
                    else:
                        held = holders.exact.get((resource, value)) == tenant_id
                    if not held:
                        granted.append((resource, value, tenant_id))
                        holders.add(resource, value, tenant_id)
            if granted:
                resources, values, tenant_ids = (
                    list(column) for column in zip(*granted, strict=True)
                )
                await conn.execute(
                    f"INSERT INTO {self._table} (resource, value, tenant_id) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) "
                    "ON CONFLICT (resource, value) DO NOTHING",
                    resources,
                    values,
                    tenant_ids,
                )
        return issues

    def _refusals(self, spec: TenantSpec, holders: _Holders) -> list[ConfigIssue]:
        config = spec.config
        refused: list[ConfigIssue] = []
        if config.schema == self.schema and config.storage.database == DEFAULT_DATABASE:
            refused.append(
                ConfigIssue(
                    spec.source,
                    None,
                    "storage.schema",
                    f"schema {config.schema!r} is the runtime's control schema "
                    "(TENANTRY_CONTROL_SCHEMA)",
                )
            )
        for resource, value in claims_of(config):
            if resource == "redis_prefix":
                overlap = holders.overlapping(value, config.id)
                if overlap is not None:
                    other, holder = overlap
                    refused.append(
                        ConfigIssue(
                            spec.source,
                            None,
                            _RESOURCE_FIELDS[resource],
                            f"Redis prefix {value!r} overlaps {other!r}, {_release_hint(holder)}",
                        )
                    )
                continue
            holder = holders.exact.get((resource, value))
            if holder is not None and holder != config.id:
                if resource == "schema":
                    server = config.storage.database
                    what = f"schema {config.schema!r}" + (
                        f" on server {server!r}" if server != DEFAULT_DATABASE else ""
                    )
                else:
                    what = f"bot {value}"
                refused.append(
                    ConfigIssue(
                        spec.source,
                        None,
                        _RESOURCE_FIELDS[resource],
                        f"{what} is {_release_hint(holder)}",
                    )
                )
        return refused

    async def held_by(self, tenant_ids: Sequence[str] | None = None) -> list[StorageClaim]:
        """Claims of ``tenant_ids`` (every claim when None), ordered by tenant, resource, value."""
        query = f"SELECT resource, value, tenant_id FROM {self._table}"
        args: list[object] = []
        if tenant_ids is not None:
            query += " WHERE tenant_id = ANY($1::text[])"
            args.append(list(tenant_ids))
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query + " ORDER BY tenant_id, resource, value", *args)
        return [StorageClaim(r["resource"], r["value"], r["tenant_id"]) for r in rows]

    async def release(
        self, tenant_id: str, keep: Iterable[tuple[str, str]] = ()
    ) -> tuple[list[StorageClaim], list[StorageClaim]]:
        """Delete ``tenant_id``'s claims except the ``(resource, value)`` pairs in ``keep``.

        Returns:
            ``(released, kept)``.

        Raises:
            asyncpg.PostgresError, OSError: the database is unavailable.
        """
        keep = set(keep)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_name)
            rows = await conn.fetch(
                f"SELECT resource, value FROM {self._table} WHERE tenant_id = $1 "
                "ORDER BY resource, value",
                tenant_id,
            )
            held = [StorageClaim(r["resource"], r["value"], tenant_id) for r in rows]
            released = [c for c in held if (c.resource, c.value) not in keep]
            kept = [c for c in held if (c.resource, c.value) in keep]
            if released:
                await conn.execute(
                    f"DELETE FROM {self._table} WHERE tenant_id = $1 AND (resource, value) IN "
                    "(SELECT * FROM unnest($2::text[], $3::text[]))",
                    tenant_id,
                    [c.resource for c in released],
                    [c.value for c in released],
                )
        return released, kept
