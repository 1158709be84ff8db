"""Moving a tenant's schema to another PostgreSQL server (``tenantry tenants move``)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from core.config.loader import load_tenant_text
from core.config.model import ConfigError, ConfigIssue
from core.runtime._loading import load_guarded
from core.runtime.control import claims_of
from core.runtime.schemas import fresh_key
from core.storage.migrations import prepare_tenant_schema

if TYPE_CHECKING:
    from core.runtime.placement import TableCount
    from core.runtime.registry import TenantRegistry


async def move_tenant(
    registry: TenantRegistry,
    tenant_id: str,
    database: str,
    *,
    drop_old: bool = False,
    changed_by: str = "api",
    settle_seconds: float = 1.0,
) -> list[TableCount]:
    """Move ``tenant_id``'s schema to server ``database`` and serve it from there
    (:meth:`core.runtime.registry.TenantRegistry.move`).

    The tenant stops on every runtime (a removal in the store, or here
    without one), its schema is copied and checked table by table
    (:func:`core.runtime.placement.copy_schema`), then its file with
    ``storage.database: <database>`` becomes its next version and it
    starts from the new server. It serves nothing in between (Telegram
    keeps the updates of a webhook bot until it is registered again).
    When the copy fails, the old version is put back and the tenant
    serves from the old server again. The old copy is kept unless
    ``drop_old``; then it is dropped and its schema claim released.

    Args:
        tenant_id: a running tenant.
        database: the server to move to (``default`` or a configured name).
        drop_old: drop the schema on the old server after the switch.
        changed_by: who, for the store's versions.
        settle_seconds: time the other runtimes get to stop the tenant
            after the removal (they follow the store's NOTIFY within
            milliseconds; a runtime that missed it writes to the old
            copy until its re-read, ``TENANTRY_TENANTS_REREAD_SECONDS``).

    Returns:
        The row counts of every table on both servers.

    Raises:
        KeyError: the tenant is not running.
        ConfigError: ``database`` is unknown or where it already is, or
            the moved file is refused (a claim, validation); nothing changed.
        MoveError, asyncpg.PostgresError, OSError: the copy failed; the
            tenant serves from the old server again.
        TenantStartError: the tenant did not start on the new server (its
            data is on both servers; the new version is stored).
    """
    from core.runtime.placement import MoveError, copy_schema, with_database
    from core.runtime.store import checksum_of

    tenant = registry.tenants.get(tenant_id)
    if tenant is None or tenant.spec is None or not tenant.serving:
        raise KeyError(tenant_id)
    spec = tenant.spec
    source = registry._sources.get(tenant_id) or Path(spec.source)
    old = spec.config.storage.database
    label = str(source)
    if database == old or database not in registry.pools:
        reason = (
            f"the tenant is on {database!r} already"
            if database == old
            else f"unknown PostgreSQL server {database!r} "
            f"(known: {', '.join(sorted(registry.pools))})"
        )
        raise ConfigError([ConfigIssue(label, None, "storage.database", reason)])
    try:
        text = with_database(spec.text, database)
    except MoveError as exc:
        raise ConfigError([ConfigIssue(label, None, "storage", str(exc))]) from None
    moved = await asyncio.to_thread(
        load_guarded,
        label,
        functools.partial(load_tenant_text, **registry.load_options),
        text,
        label,
        registry.contributions,
    )
    refused = await registry._claim_storage([moved])
    if refused:
        raise ConfigError(refused)
    schema = spec.config.schema
    machines = list(spec.machines.values())
    write_to = source if source.exists() else None
    tenant.log.info("tenant_move_started", source=old, target=database)
    if registry.store is not None:
        await registry.remove(tenant_id, delete_file=False, changed_by=changed_by)
    else:
        async with registry._lock:
            await registry._stop(tenant_id)
    await asyncio.sleep(settle_seconds)
    try:
        counts = await copy_schema(
            registry.pools[old],
            registry.pools[database],
            schema,
            lambda pool: prepare_tenant_schema(
                pool, registry.contributions, schema, spec.features, machines
            ),
        )
    except BaseException:
        tenant.log.exception("tenant_move_failed", source=old, target=database)
        # Serve from the old server again, as before the move.
        await registry.apply_text(spec.text, write_to=write_to, changed_by=changed_by)
        raise
    await registry.apply_text(text, write_to=write_to, changed_by=changed_by)
    tenant.log.info(
        "tenant_moved",
        source=old,
        target=database,
        tables=len(counts),
        rows=sum(c.target for c in counts),
        checksum=checksum_of(text),
    )
    if drop_old:
        await registry.pools[old].execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        registry.schemas.fresh.pop(fresh_key(old, schema), None)
        if registry.claims is not None:
            await registry.claims.release(tenant_id, keep=claims_of(moved.config))
        tenant.log.info("tenant_old_copy_dropped", source=old, schema=schema)
    return counts
