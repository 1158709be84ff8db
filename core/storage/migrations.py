"""Per-tenant SQL migrations with checksums and an advisory lock.

Each plugin ships numbered ``.sql`` files (``0001_init.sql``...). For a tenant,
the core applies the enabled plugins' migrations (the core's own first) inside
the tenant's schema, all in one transaction that holds
``pg_advisory_xact_lock`` on the schema name, so two runtimes never migrate one
schema at once and a failed migration leaves nothing half-applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import msgspec

if TYPE_CHECKING:
    import pluggy

    from core.storage.statuses import StatusMachine

__all__ = [
    "Migration",
    "MigrationError",
    "apply_migrations",
    "load_migrations",
    "prepare_tenant_schema",
]

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_LEDGER = """
CREATE TABLE IF NOT EXISTS tenantry_migrations (
    plugin      text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plugin, version)
)
"""


class Migration(msgspec.Struct, frozen=True):
    """One SQL migration of one plugin.

    Attributes:
        plugin: the plugin name.
        version: the file's number (``0002_x.sql`` -> 2), applied in order.
        name: the file name.
        sql: the statements; they run with search_path set to the tenant schema,
            so write unqualified table names.
    """

    plugin: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 hex of the SQL text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    """A migration cannot be applied: changed after release, bad file name, or failing SQL."""


def load_migrations(plugin: str, source: Path | Sequence[Migration]) -> list[Migration]:
    """Read a plugin's migrations from a folder of ``NNNN_name.sql`` files (or pass a list through).

    Raises:
        MigrationError: a ``.sql`` file whose name is not ``NNNN_name.sql``, or
            two files with one number.
    """
    if not isinstance(source, Path):
        return sorted(source, key=lambda m: m.version)
    migrations: dict[int, Migration] = {}
    for path in sorted(source.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path}: migration number {version} is used twice")
        migrations[version] = Migration(
            plugin, version, path.name, path.read_text(encoding="utf-8")
        )
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(
    conn: asyncpg.Connection, schema: str, migrations: Sequence[Migration]
) -> list[str]:
    """Create ``schema`` if needed and apply the migrations not yet recorded there.

    Takes ``pg_advisory_xact_lock(hashtext('tenantry:migrate:' || schema))`` and
    runs everything in one transaction with ``SET LOCAL search_path``.

    Args:
        conn: a connection not inside a transaction.
        schema: the tenant schema (validated identifier).
        migrations: ordered per plugin; plugins in the order given.

    Returns:
        Names (``plugin/NNNN_name.sql``) of the migrations applied now.

    Raises:
        MigrationError: an applied migration's checksum changed, or a migration's
            SQL failed (the message names it and PostgreSQL's error).
    """
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"tenantry:migrate:{schema}"
        )
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(_LEDGER)
        rows = await conn.fetch("SELECT plugin, version, name, checksum FROM tenantry_migrations")
        recorded = {(r["plugin"], r["version"]): r for r in rows}
        for migration in migrations:
            previous = recorded.get((migration.plugin, migration.version))
            if previous is not None:
                if previous["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{migration.plugin}/{migration.name} changed after it was applied to schema "
                        f"{schema!r} (checksum {previous['checksum'][:12]} -> {migration.checksum[:12]}); "
                        "add a new migration instead of editing a released one"
                    )
                continue
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"{migration.plugin}/{migration.name} failed in schema {schema!r}: {exc}"
                ) from exc
            await conn.execute(
                "INSERT INTO tenantry_migrations (plugin, version, name, checksum) VALUES ($1, $2, $3, $4)",
                migration.plugin,
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(f"{migration.plugin}/{migration.name}")
    return applied_now


async def prepare_tenant_schema(
    pool: asyncpg.Pool,
    pm: pluggy.PluginManager,
    schema: str,
    features: Sequence[str],
    machines: Sequence[StatusMachine],
) -> list[str]:
    """Bring a tenant's schema up to date: the enabled plugins' migrations, then status CHECKs.

    Used by the runtime when a tenant starts and by ``tenantry migrate``.

    Args:
        pool: the asyncpg pool.
        pm: the plugin manager.
        schema: the tenant schema.
        features: enabled plugins in order (``core`` first).
        machines: the tenant's status machines (constraints and renames).

    Returns:
        Names of the migrations applied now.

    Raises:
        MigrationError: see :func:`apply_migrations`.
        asyncpg.CheckViolationError: rows hold states the machines no longer have.
    """
    from core.runtime.contributions import contributions_of
    from core.storage.db import TenantDB
    from core.storage.statuses import sync_status_constraints

    migrations: list[Migration] = []
    table = contributions_of(pm)
    for feature in features:
        source = table.migrations.get(feature)
        if source is not None:
            migrations.extend(load_migrations(feature, source))
    async with pool.acquire() as conn:
        applied = await apply_migrations(conn, schema, migrations)
    if machines:
        async with TenantDB(pool, schema).transaction() as tx:
            await sync_status_constraints(tx, list(machines))
    return applied
