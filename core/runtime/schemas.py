"""Which tenant schemas are up to date, learnt in one query per server, and migrating the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import asyncpg
import structlog

from core.config.model import DEFAULT_DATABASE
from core.errors import STORAGE_UNAVAILABLE
from core.storage.migrations import (
    fresh_schemas,
    prepare_tenant_schema,
    record_schema_state,
    schema_digest,
    tenant_migrations,
)

if TYPE_CHECKING:
    from core.config.loader import TenantSpec
    from core.runtime.contributions import Contributions
    from core.runtime.tenant import Tenant

__all__ = ["SchemaKeeper", "fresh_key"]

log = structlog.get_logger("tenantry.registry")


class SchemaKeeper:
    """Brings tenant schemas up to date, skipping those a start's single check found current.

    Args:
        contributions: the plugins' migrations (:class:`~core.runtime.contributions.Contributions`).
        pool: the default server's pool (the control schema's).
        pools: every server's pool by name, the default's included.
        control_schema: the control schema whose ``tenant_schema_states``
            records each schema's digest; None migrates every schema at each start.
    """

    def __init__(
        self,
        contributions: Contributions,
        pool: asyncpg.Pool,
        pools: Mapping[str, asyncpg.Pool],
        control_schema: str | None,
    ):
        self.contributions = contributions
        self.pool = pool
        self.pools = pools
        self.control_schema = control_schema
        # Schemas known to be up to date: fresh_key(server, schema) -> schema_digest.
        self.fresh: dict[str, str] = {}

    async def check(self, specs: list[TenantSpec]) -> None:
        """Learn in one query per server which of the specs' schemas are up to date (see :meth:`migrate`)."""
        if self.control_schema is None or not specs:
            return
        by_database: dict[str, dict[str, str]] = {}
        for s in specs:
            digest = schema_digest(
                tenant_migrations(self.contributions, s.features), list(s.machines.values())
            )
            by_database.setdefault(s.config.storage.database, {})[s.config.schema] = digest
        for database, wanted in by_database.items():
            try:
                fresh = await fresh_schemas(
                    self.pool,
                    self.control_schema,
                    wanted,
                    database=database,
                    tenant_pool=self.pools.get(database, self.pool),
                )
            except (*STORAGE_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning(
                    "schema_states_unreadable",
                    database=database,
                    error=f"{type(exc).__name__}: {exc}",
                )
                fresh = set()
            for schema, digest in wanted.items():
                if schema in fresh:
                    self.fresh[fresh_key(database, schema)] = digest
                else:
                    self.fresh.pop(fresh_key(database, schema), None)

    async def migrate(self, tenant: Tenant) -> None:
        """Bring the tenant's schema up to date on its server, unless a start's check found it so."""
        schema = tenant.config.schema
        database = tenant.config.storage.database
        key = fresh_key(database, schema)
        machines = list(tenant.statuses.values())
        digest = schema_digest(tenant_migrations(self.contributions, tenant.features), machines)
        if self.fresh.get(key) == digest:
            return
        pool = tenant.db.pool
        applied = await prepare_tenant_schema(
            pool, self.contributions, schema, tenant.features, machines
        )
        if applied:
            tenant.log.info("migrations_applied", migrations=applied, database=database)
        if self.control_schema is not None:
            await record_schema_state(
                self.pool,
                self.control_schema,
                schema,
                digest,
                database=database,
                tenant_pool=pool,
            )
            self.fresh[key] = digest


def fresh_key(database: str, schema: str) -> str:
    """The key of :attr:`SchemaKeeper.fresh`: the schema, ``<server>/<schema>`` off the default."""
    return schema if database == DEFAULT_DATABASE else f"{database}/{schema}"
