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

from core.config.model import DEFAULT_DATABASE

if TYPE_CHECKING:
    import pluggy

    from core.runtime.contributions import Contributions
    from core.storage.statuses import StatusMachine

__all__ = [
    "Migration",
    "MigrationError",
    "apply_migrations",
    "fresh_schemas",
    "load_migrations",
    "prepare_tenant_schema",
    "record_schema_state",
    "schema_digest",
    "tenant_migrations",
]

# Migration folders read once per process: plugin name, folder -> its migrations.
_FOLDERS: dict[tuple[str, Path], list[Migration]] = {}

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
    pm: pluggy.PluginManager | Contributions,
    schema: str,
    features: Sequence[str],
    machines: Sequence[StatusMachine],
) -> list[str]:
    """Bring a tenant's schema up to date: the enabled plugins' migrations, then status CHECKs.

    Used by the runtime when a tenant starts and by ``tenantry migrate``.

    Args:
        pool: the asyncpg pool.
        pm: the contributions table (or a plugin manager, whose table is used).
        schema: the tenant schema.
        features: enabled plugins in order (``core`` first).
        machines: the tenant's status machines (constraints and renames).

    Returns:
        Names of the migrations applied now.

    Raises:
        MigrationError: see :func:`apply_migrations`.
        asyncpg.CheckViolationError: rows hold states the machines no longer have.
    """
    from core.storage.db import TenantDB
    from core.storage.statuses import sync_status_constraints

    migrations = tenant_migrations(pm, features)
    async with pool.acquire() as conn:
        applied = await apply_migrations(conn, schema, migrations)
    if machines:
        async with TenantDB(pool, schema).transaction() as tx:
            await sync_status_constraints(tx, list(machines))
    return applied


def tenant_migrations(
    pm: pluggy.PluginManager | Contributions, features: Sequence[str]
) -> list[Migration]:
    """The migrations of ``features`` in order (``core`` first); each folder is read once.

    ``pm`` is the contributions table, or a plugin manager whose table is used.

    Raises:
        MigrationError: see :func:`load_migrations`.
    """
    from core.runtime.contributions import contributions_of

    table = contributions_of(pm)
    migrations: list[Migration] = []
    for feature in features:
        source = table.migrations.get(feature)
        if source is None:
            continue
        if isinstance(source, Path):
            key = (feature, source)
            if key not in _FOLDERS:
                _FOLDERS[key] = load_migrations(feature, source)
            migrations.extend(_FOLDERS[key])
        else:
            migrations.extend(load_migrations(feature, source))
    return migrations


def schema_digest(migrations: Sequence[Migration], machines: Sequence[StatusMachine]) -> str:
    """SHA-256 hex of what :func:`prepare_tenant_schema` brings a schema to.

    Covers every migration (plugin, version, checksum) and the status
    machines' states and renames, so any change of either changes it.
    """
    digest = hashlib.sha256()
    for m in migrations:
        digest.update(f"{m.plugin}/{m.version}/{m.checksum};".encode())
    for machine in sorted(machines, key=lambda x: x.entity.name):
        digest.update(msgspec.json.encode(_machine_shape(machine)))
    return digest.hexdigest()


def _machine_shape(machine: StatusMachine) -> object:
    """The parts of a status machine its CHECK constraint and renames depend on."""
    entity = machine.entity
    return [
        entity.name,
        entity.table,
        entity.column,
        [list(pair) for pair in entity.rename_columns],
        machine.states,
        sorted(machine.renamed.items()),
    ]


async def fresh_schemas(
    pool: asyncpg.Pool,
    control_schema: str,
    wanted: dict[str, str],
    *,
    database: str = DEFAULT_DATABASE,
    tenant_pool: asyncpg.Pool | None = None,
) -> set[str]:
    """The schemas of ``wanted`` (schema -> :func:`schema_digest`) already up to date.

    One query for any number of schemas of one server: a schema is fresh when
    :func:`record_schema_state` recorded that digest for it and the schema
    still exists with the oid it had then.

    Args:
        pool: the control schema's pool (the default server).
        control_schema: the control schema.
        wanted: schema -> digest, all on ``database``.
        database: the server name of the schemas (``storage.database``). The
            default server's states are in ``tenant_schema_states``, the
            others' in ``server_schema_states`` (control migration 0005).
        tenant_pool: that server's pool when it is not the default one; its
            ``pg_namespace`` holds the oids (a second query).
    """
    if not wanted:
        return set()
    if database == DEFAULT_DATABASE:
        rows = await pool.fetch(
            f"""SELECT s.schema_name, s.digest FROM "{control_schema}".tenant_schema_states s
                JOIN pg_namespace n ON n.oid = s.schema_oid AND n.nspname = s.schema_name
                WHERE s.schema_name = ANY($1::text[])""",
            list(wanted),
        )
        return {r["schema_name"] for r in rows if wanted.get(r["schema_name"]) == r["digest"]}
    assert tenant_pool is not None, "a schema on another server needs that server's pool"
    recorded = await pool.fetch(
        f"""SELECT schema_name, schema_oid, digest FROM "{control_schema}".server_schema_states
            WHERE database_name = $2 AND schema_name = ANY($1::text[])""",
        list(wanted),
        database,
    )
    current = {
        r["nspname"]: r["oid"]
        for r in await tenant_pool.fetch(
            "SELECT nspname, oid FROM pg_namespace WHERE nspname = ANY($1::text[])", list(wanted)
        )
    }
    return {
        r["schema_name"]
        for r in recorded
        if wanted.get(r["schema_name"]) == r["digest"]
        and current.get(r["schema_name"]) == r["schema_oid"]
    }


async def record_schema_state(
    pool: asyncpg.Pool,
    control_schema: str,
    schema: str,
    digest: str,
    *,
    database: str = DEFAULT_DATABASE,
    tenant_pool: asyncpg.Pool | None = None,
) -> None:
    """Record that ``schema`` was brought up to ``digest`` (after :func:`prepare_tenant_schema`).

    ``database`` and ``tenant_pool`` as in :func:`fresh_schemas`.
    """
    if database == DEFAULT_DATABASE:
        await pool.execute(
            f"""INSERT INTO "{control_schema}".tenant_schema_states (schema_name, schema_oid, digest)
                SELECT $1::text, oid, $2::text FROM pg_namespace WHERE nspname = $1::text
                ON CONFLICT (schema_name) DO UPDATE
                SET schema_oid = excluded.schema_oid, digest = excluded.digest, checked_at = now()""",
            schema,
            digest,
        )
        return
    assert tenant_pool is not None, "a schema on another server needs that server's pool"
    oid = await tenant_pool.fetchval("SELECT oid FROM pg_namespace WHERE nspname = $1", schema)
    if oid is None:
        return
    await pool.execute(
        f"""INSERT INTO "{control_schema}".server_schema_states
            (database_name, schema_name, schema_oid, digest) VALUES ($1, $2, $3, $4)
            ON CONFLICT (database_name, schema_name) DO UPDATE
            SET schema_oid = excluded.schema_oid, digest = excluded.digest, checked_at = now()""",
        database,
        schema,
        oid,
        digest,
    )
