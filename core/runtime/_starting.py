"""The registry's half that starts, swaps in and stops tenants: claims, migration, bots, hooks.

Mixed into :class:`core.runtime.registry.TenantRegistry`, which decides *what*
runs (the folder, the store, the admin API); this decides *how* one tenant
starts and stops, and records each step in the tenant's :class:`Lifecycle`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from core.config.model import ConfigError, ConfigIssue
from core.errors import STORAGE_UNAVAILABLE
from core.runtime.assembly import assemble_tenant
from core.runtime.audit import TenantChange
from core.runtime.lifecycle import Lifecycle, TenantState
from core.runtime.plugins import resolve
from core.runtime.redaction import forget_secrets
from core.storage.migrations import MigrationError

if TYPE_CHECKING:
    from core.config.loader import TenantSpec
    from core.runtime.tenant import Tenant

__all__ = ["START_CONCURRENCY", "TenantStarting"]

START_CONCURRENCY = 8
"""Tenants of one sync started at once (their migrations, hooks): one slow schema does not
hold back the rest, and a first start does not open every schema's migration at once."""

log = structlog.get_logger("tenantry.registry")


class TenantStarting:
    """Mixin of :class:`core.runtime.registry.TenantRegistry`: one tenant's start, swap and stop.

    Uses the registry's ``tenants``, ``rejected``, ``claims``, ``schemas``,
    ``bots``, ``loader``, ``services``, ``contributions``, ``events`` and its
    bookkeeping of sources, lifecycles and retiring tenants.
    """

    # Set by TenantRegistry.__init__.
    tenants: dict[str, Tenant]
    rejected: dict[str, list[ConfigIssue]]
    claims: Any
    schemas: Any
    bots: Any
    loader: Any
    services: Any
    contributions: Any
    events: Any
    lazy_bots: bool
    _sources: dict[str, Path]
    _lifecycles: Any
    _retiring: set[asyncio.Task[None]]
    _on_change: Any
    _on_retired: Callable[[], None] | None
    assemble: Any

    async def _claim_storage(self, specs: list[TenantSpec]) -> list[ConfigIssue]:
        """Claim the specs' schemas, Redis prefixes and bots (``ClaimStore.claim``).

        Returns:
            The refusals, each naming the tenant id that holds the resource.
        """
        if self.claims is None or not specs:
            return []
        return await self.claims.claim(specs)

    async def _claimed(
        self, specs: list[TenantSpec], issues: list[ConfigIssue]
    ) -> list[TenantSpec]:
        """The specs whose storage is theirs; the others are rejected like invalid files.

        Only specs about to start are claimed (a running, unchanged tenant
        already holds its claims). Done before the running set changes, so a
        running tenant whose new file wants another tenant's storage keeps
        its last good config.
        """
        refused = await self._claim_storage([s for s in specs if self._needs_start(s)])
        for issue in refused:
            log.warning("tenant_file_rejected", file=issue.file, errors=[str(issue)])
            self.rejected.setdefault(issue.file, []).append(issue)
        issues.extend(refused)
        refused_files = {issue.file for issue in refused}
        return [s for s in specs if s.source not in refused_files]

    async def _changed(self, change: TenantChange) -> None:
        """Report a start, failed start or removal to ``on_change``; its failure is only logged."""
        if self._on_change is None:
            return
        try:
            await self._on_change(change)
        except STORAGE_UNAVAILABLE as exc:
            log.warning(
                "tenant_change_report_failed",
                tenant=change.tenant_id,
                error=f"{type(exc).__name__}: {exc}",
            )
        except Exception:
            log.exception("tenant_change_report_failed", tenant=change.tenant_id)

    def _needs_start(self, spec: TenantSpec) -> bool:
        current = self.tenants.get(spec.config.id)
        return (
            current is None
            or current.source_hash != spec.source_hash
            or current.state == TenantState.FAILED
        )

    async def _start_all(self, starts: Sequence[tuple[TenantSpec, Path]]) -> dict[str, str | None]:
        """Start (or swap in) each spec's tenant, :data:`START_CONCURRENCY` at a time.

        Which schemas are up to date is learnt in one query per server
        (:meth:`SchemaKeeper.check`) and which lazy bots are registered in one
        Redis pipeline (:meth:`BotHub.registered_all`), not a round trip per
        tenant; then the tenants start concurrently, so one slow migration
        does not hold back the rest.

        Args:
            starts: ``(spec, source)`` pairs, the source being the file the
                tenant is reported under.

        Returns:
            Tenant id -> the error text of a failed start, or None (started,
            or already running that very file).
        """
        if not starts:
            return {}
        await self.schemas.check([spec for spec, _ in starts])
        assembled = [(spec, source, self._assemble(spec)) for spec, source in starts]
        lazy = [built[0] for _, _, built in assembled if built is not None and self._lazy(built[0])]
        answers = await self.bots.registered_all(lazy)
        current = {id(tenant) for tenant, ok in zip(lazy, answers, strict=True) if ok}
        errors: dict[str, str | None] = {}
        pending = iter(assembled)

        async def start_each() -> None:
            # Workers sharing one iterator: a task per worker, not one per tenant.
            for spec, source, built in pending:
                if built is None:
                    errors[spec.config.id] = None
                    continue
                tenant, lifecycle = built
                errors[spec.config.id] = await self._launch(
                    spec, source, tenant, lifecycle, registered=id(tenant) in current
                )

        workers = min(START_CONCURRENCY, len(assembled))
        await asyncio.gather(*(start_each() for _ in range(workers)))
        return errors

    async def _start(self, spec: TenantSpec, source: Path) -> str | None:
        """Start (or swap in) the tenant of ``spec``; return the error text if it failed."""
        built = self._assemble(spec)
        if built is None:
            return None
        return await self._launch(spec, source, *built)

    def _assemble(self, spec: TenantSpec) -> tuple[Tenant, Lifecycle] | None:
        """The tenant of ``spec`` and its lifecycle, or None when that very file already runs."""
        previous = self.tenants.get(spec.config.id)
        if (
            previous is not None
            and previous.source_hash == spec.source_hash
            and previous.state != TenantState.FAILED
        ):
            return None
        lifecycle = Lifecycle()
        tenant = assemble_tenant(spec, self.contributions, self.services, lifecycle)
        self._lifecycles[tenant] = lifecycle
        return tenant, lifecycle

    def _lazy(self, tenant: Tenant) -> bool:
        """A webhook bot is built at its first update (:meth:`assemble`); polling bots at start (they poll)."""
        return self.lazy_bots and tenant.config.bot.mode == "webhook"

    async def _launch(
        self,
        spec: TenantSpec,
        source: Path,
        tenant: Tenant,
        lifecycle: Lifecycle,
        registered: bool | None = None,
    ) -> str | None:
        """Migrate, register and run ``tenant`` (just assembled); return the error text if it failed.

        Args:
            registered: whether its lazy bot's registration is current, when
                already known (:meth:`_start_all`); None asks Redis.
        """
        config = spec.config
        previous = self.tenants.get(config.id)
        if previous is None:
            # Visible while it migrates; a replacement stays invisible until ready.
            self.tenants[config.id] = tenant
        started = time.monotonic()
        try:
            lifecycle.move(TenantState.MIGRATING)
            await self.schemas.migrate(tenant)
            # A lazy bot whose registration is not current is built, registered
            # and dropped in the background.
            lazy = self._lazy(tenant)
            if lazy and registered is None:
                registered = await self.bots.registered(tenant)
            registered = lazy and bool(registered)
            if not lazy:
                await self.loader.build(tenant)
            for result in tenant.hook.on_tenant_started(tenant=tenant):
                await resolve(result)
        except Exception as exc:
            lifecycle.move(
                TenantState.FAILED,
                str(exc)
                if isinstance(exc, MigrationError | ConfigError)
                else f"{type(exc).__name__}: {exc}",
            )
            tenant.log.exception("tenant_start_failed")
            await self._changed(TenantChange(config.id, str(source), spec, "failed", tenant.detail))
            if previous is not None and previous.state != TenantState.FAILED:
                # The old config keeps serving; report the failed reload.
                self._lifecycles[previous].explain(f"reload failed: {tenant.detail}")
                forget_secrets(tenant)
                return tenant.detail
            self.tenants[config.id] = tenant
            self._sources[config.id] = source
            return tenant.detail
        lifecycle.move(TenantState.RUNNING)
        self.tenants[config.id] = tenant
        self._sources[config.id] = source
        if not lazy:
            self.bots.start(tenant, tenant.commands, lifecycle)
        elif not registered:
            self.bots.register_later(tenant, self.assemble, lifecycle)
        tenant.log.info(
            "tenant_started",
            seconds=round(time.monotonic() - started, 3),
            features=list(spec.features),
        )
        await self._changed(TenantChange(config.id, str(source), spec))
        if self.events is not None:
            # Events committed while it was stopped or served elsewhere.
            self.events.relay.wake(config.id)
        if previous is not None and previous is not tenant:
            retiring = asyncio.create_task(self._retire(previous))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)
        return None

    async def _retire(self, tenant: Tenant) -> None:
        await self.bots.stop(tenant)
        await tenant.drain()
        await self._finish(tenant)

    async def _stop(self, tenant_id: str, *, report: bool = True) -> None:
        """Stop ``tenant_id``; ``report=False`` at shutdown, which changes no tenant."""
        tenant = self.tenants.get(tenant_id)
        if report and tenant is not None and tenant.serving:
            # A removed tenant's committed events reach its plugins first; at
            # shutdown they wait, durable, for the next start.
            await tenant.events_delivered(timeout=10.0)
        tenant = self.tenants.pop(tenant_id, None)
        source = self._sources.pop(tenant_id, None)
        if tenant is None:
            return
        # A removed tenant's bot stops being delivered to us (deleteWebhook); at
        # shutdown the webhook stays, so Telegram queues updates until we are back.
        await self.bots.stop(tenant, delete_webhook=report)
        await tenant.drain()
        await self._finish(tenant)
        if report:
            await self._changed(TenantChange(tenant_id, str(source or tenant_id), None))

    async def _finish(self, tenant: Tenant) -> None:
        if tenant.state != TenantState.FAILED:
            for result in tenant.hook.on_tenant_stopped(tenant=tenant):
                try:
                    await resolve(result)
                except Exception:
                    tenant.log.exception("tenant_stop_hook_failed")
        self._lifecycles[tenant].move(TenantState.STOPPED)
        tenant.log.info("tenant_stopped")
        forget_secrets(tenant)
        if self._on_retired is not None:
            self._on_retired()
