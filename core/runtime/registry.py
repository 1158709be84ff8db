"""The set of running tenants: start, hot swap, stop, and the tenants-folder watcher.

Starting a tenant: validate -> assemble it (:mod:`core.runtime.assembly`) ->
migrate its schema (advisory lock) and sync status CHECK constraints
(:mod:`core.runtime.schemas`) -> build its bot now (polling) or at its first
update (webhook) -> ``on_tenant_started`` -> put it
in the registry (one dict assignment, so a swap is atomic) -> register the
webhook or start polling in the background. The replaced tenant object keeps
serving what it already accepted; it is stopped once drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pluggy
import structlog

from core.config.loader import (
    TENANT_FILE_SUFFIXES,
    TenantSpec,
    check_tenant_set,
    load_tenant_text,
)
from core.config.model import DEFAULT_DATABASE, ConfigError, ConfigIssue, TenantConfig
from core.errors import STORAGE_UNAVAILABLE
from core.runtime._loading import load_files, load_guarded
from core.runtime._store_sync import StoreSync
from core.runtime.assembly import BotLoader, TenantServices, assemble_tenant
from core.runtime.audit import TenantChange
from core.runtime.contributions import Contributions, contributions_of
from core.runtime.lifecycle import Lifecycle, TenantState
from core.runtime.plugins import resolve
from core.runtime.redaction import forget_secrets
from core.runtime.schemas import SchemaKeeper
from core.runtime.tenant import Tenant
from core.storage.migrations import MigrationError
from core.updates.bots import BotHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.events.bus import EventBus
    from core.runtime.control import ClaimStore
    from core.runtime.placement import TableCount
    from core.runtime.store import TenantStore
    from core.storage.jobs import JobRunner

__all__ = ["START_CONCURRENCY", "TenantRegistry", "TenantStartError"]

START_CONCURRENCY = 8
"""Tenants of one sync started at once (their migrations, hooks): one slow schema does not
hold back the rest, and a first start does not open every schema's migration at once."""


class TenantStartError(Exception):
    """A valid tenant file whose tenant could not start (migration, status constraint, hook).

    A replaced tenant keeps running its last good config; a new one is left
    in the ``failed`` state.
    """


log = structlog.get_logger("tenantry.registry")


class TenantRegistry(StoreSync):
    """Running tenants of this runtime, by id: starts, swaps, stops and watches them.

    A tenant is built by :func:`core.runtime.assembly.assemble_tenant`, its
    bot by :class:`core.runtime.assembly.BotLoader`, its schema migrated by
    :class:`core.runtime.schemas.SchemaKeeper`; following the tenant store and
    mirroring the folder is :class:`core.runtime._store_sync.StoreSync`. The
    registry keeps each tenant's :class:`~core.runtime.lifecycle.Lifecycle`.

    Args:
        plugins: the contributions table (or the plugin manager whose table is used).
        pool: the shared asyncpg pool of the default PostgreSQL server (the
            control schema's, ``TENANTRY_DATABASE_URL``).
        redis: the shared Redis client.
        bots: the BotHub.
        jobs: the job runner, or None.
        tenants_dir: folder of tenant files.
        on_retired: called after a swapped-out or removed tenant has stopped
            (the runtime's :meth:`core.runtime.heap.HeapPolicy.tenant_retired`).
        claims: the storage claims of the control schema; a file whose schema,
            Redis prefix or bot another tenant id holds is rejected. None
            checks only against the tenants of this registry.
        on_change: awaited after a tenant started, failed to start or was
            removed (not at shutdown), with a :class:`core.runtime.audit.TenantChange`
            (the runtime's :meth:`core.runtime.audit.AuditLog.tenant_changed`).
        tenant_env_allow: variables every tenant file may read besides its own
            namespace (:attr:`core.runtime.settings.RuntimeSettings.tenant_env_allow`).
        listen_host: the runtime's listen address; demo secrets are refused
            unless it is loopback.
        events: the event bus, woken for a tenant that (re)starts.
        store: the tenant store of the control schema (:mod:`core.runtime.store`):
            the running set follows it, and the folder is a two-way mirror of it
            (see :meth:`sync`). None: the folder alone is the truth.
        control_schema: the control schema, whose ``tenant_schema_states``
            lets a start skip the schemas already up to date (one query for
            all tenants); None checks every schema.
        transaction_pooling: the pool is a pooler in transaction mode
            (:class:`~core.storage.db.TenantDB`).
        lazy_bots: build a webhook tenant's routers and Dispatcher at its
            first update instead of at start, when its Bot API registration
            is known to be current (:meth:`assemble`).
        pools: the pools of the other PostgreSQL servers, by the name a
            tenant gives in ``storage.database``; a file naming a server not
            here (nor ``default``) is refused.
    """

    def __init__(
        self,
        plugins: pluggy.PluginManager | Contributions,
        pool: asyncpg.Pool,
        redis: Redis,
        bots: BotHub,
        jobs: JobRunner | None,
        tenants_dir: Path,
        on_retired: Callable[[], None] | None = None,
        claims: ClaimStore | None = None,
        on_change: Callable[[TenantChange], Awaitable[None]] | None = None,
        tenant_env_allow: Iterable[str] = (),
        listen_host: str = "127.0.0.1",
        events: EventBus | None = None,
        store: TenantStore | None = None,
        control_schema: str | None = None,
        lazy_bots: bool = True,
        transaction_pooling: bool = False,
        pools: Mapping[str, asyncpg.Pool] | None = None,
    ):
        self.contributions = contributions_of(plugins)
        self.control_schema = control_schema
        self.lazy_bots = lazy_bots
        self.pool = pool
        # Server name -> pool; the default server's is ``pool``.
        self.pools: dict[str, asyncpg.Pool] = {DEFAULT_DATABASE: pool, **(pools or {})}
        self.bots = bots
        self.tenants_dir = tenants_dir
        self.events = events
        self.services = TenantServices(
            pools=self.pools,
            redis=redis,
            bots=bots,
            jobs=jobs,
            events=events,
            transaction_pooling=transaction_pooling,
        )
        self.schemas = SchemaKeeper(self.contributions, pool, self.pools, control_schema)
        self.loader = BotLoader(bots)
        # Each tenant object's lifecycle; the tenant reads it, only the registry
        # (and the bot registration it starts) moves it.
        self._lifecycles: weakref.WeakKeyDictionary[Tenant, Lifecycle] = weakref.WeakKeyDictionary()
        # Keyword arguments of every tenant file load (core.config.model.parse_tenant_text).
        self.load_options: dict[str, Any] = {
            "env_allow": tuple(tenant_env_allow),
            "listen_host": listen_host,
            "databases": tuple(self.pools),
        }
        self.tenants: dict[str, Tenant] = {}
        self.rejected: dict[str, list[ConfigIssue]] = {}
        self._sources: dict[str, Path] = {}
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._on_retired = on_retired
        self.claims = claims
        self._on_change = on_change
        self.store = store
        # Which folder this is, for the store's memory of what each folder holds.
        self.folder = f"{socket.gethostname()}:{tenants_dir.resolve()}"
        # Versions refused or failed on this runtime (tenant id -> checksum):
        # the periodic re-read does not retry them; a change or a sync does.
        self._refused_checksums: dict[str, str] = {}
        # Specs validated by the folder push, by checksum, so the store's
        # copy of the same text is not validated twice.
        self._validated: dict[str, TenantSpec] = {}
        # Labels in :attr:`rejected` of stored versions this runtime refused
        # (not files of its folder, so a folder scan does not clear them).
        self._store_rejected: set[str] = set()

    def pool_of(self, config: TenantConfig) -> asyncpg.Pool:
        """The pool of the PostgreSQL server ``config`` names (``storage.database``).

        Raises:
            KeyError: a server this runtime has no URL for (validation refuses
                such a file first).
        """
        return self.pools[config.storage.database]

    def lifecycle(self, tenant: Tenant) -> Lifecycle:
        """The lifecycle of ``tenant`` (an object this registry built), which only the registry moves."""
        return self._lifecycles[tenant]

    def get(self, tenant_id: str) -> Tenant | None:
        """The running (or failed/retrying) tenant with ``tenant_id``, or None."""
        return self.tenants.get(tenant_id)

    # ------------------------------------------------------------ loading

    def tenant_files(self) -> list[Path]:
        """Tenant files in the folder, sorted (hidden and editor temp files skipped)."""
        if not self.tenants_dir.is_dir():
            return []
        return sorted(
            (
                p
                for p in self.tenants_dir.iterdir()
                if p.suffix in TENANT_FILE_SUFFIXES and not p.name.startswith((".", "#", "~"))
            ),
            key=lambda p: p.name,  # one folder: the names' order, without comparing Paths
        )

    async def sync(self) -> list[ConfigIssue]:
        """Bring the running set in line with the folder and the store: add new, reload changed, stop removed.

        Used at start-up and by the watcher. Files are read and validated in a
        worker thread, so a slow file never holds up serving. Tenants start
        concurrently, eight at a time, so one slow schema does not hold back
        the rest. A file that fails to load, for whatever reason, is recorded
        in :attr:`rejected` and the other files go on; if its tenant was
        running, it keeps its last good config.

        With a :attr:`store`, the folder is a two-way mirror of it: a file
        edited since this folder last exchanged it with the store is pushed
        (validated first: a refused file never reaches the store), a file
        deleted since then removes its tenant from the store, and the store's
        versions this runtime starts are written back to the folder. Then the
        running set follows the store (:meth:`apply_store`), and failed
        versions are retried.

        Returns:
            The problems of the rejected files.
        """
        async with self._lock:
            if self.store is None:
                return await self._sync_folder()
            issues = await self._push_folder()
            issues.extend(await self._apply_store(None, retry=True))
            return issues

    async def apply_store(self, tenant_ids: set[str] | None = None) -> list[ConfigIssue]:
        """Follow the store: start, swap or stop the tenants whose stored version changed.

        Called by :class:`core.runtime.store.StoreFollower` on NOTIFY (with
        the ids named) and periodically (None: every head). A version this
        runtime already refused or failed to start is not retried here (a new
        version or :meth:`sync` retries it). No-op without a store.

        Returns:
            The problems of stored versions this runtime could not accept
            (for example a ``${VAR}`` its environment lacks).
        """
        if self.store is None:
            return []
        async with self._lock:
            return await self._apply_store(tenant_ids, retry=False)

    async def _sync_folder(self) -> list[ConfigIssue]:
        """:meth:`sync` without a store: the folder alone is the truth."""
        files = self.tenant_files()
        specs: list[TenantSpec] = []
        issues: list[ConfigIssue] = []
        loaded_files = await asyncio.to_thread(
            load_files, files, self.contributions, self.load_options
        )
        for path, loaded in loaded_files:
            if isinstance(loaded, ConfigError):
                self.rejected[str(path)] = loaded.issues
                issues.extend(loaded.issues)
            else:
                specs.append(loaded)
                self.rejected.pop(str(path), None)
        specs = await self._claimed(specs, issues)
        seen = {str(p) for p in files}
        for stale in [f for f in self.rejected if f not in seen]:
            del self.rejected[stale]
        rejected_paths = set(self.rejected)
        # Keep the running config of tenants whose new file was rejected.
        kept = [t for t in self.tenants.values() if str(self._sources.get(t.id)) in rejected_paths]
        # Running tenants come first, so a clash is blamed on the newcomer
        # and never stops a tenant that was serving.
        specs.sort(key=lambda spec: (spec.config.id not in self.tenants, spec.source))
        clashes = check_tenant_set([*[_spec_of(t) for t in kept], *specs])
        clashing = {c.file for c in clashes}
        for clash in clashes:
            log.warning("tenant_file_rejected", file=clash.file, errors=[str(clash)])
            self.rejected.setdefault(clash.file, []).append(clash)
        issues.extend(clashes)
        wanted = {s.config.id: s for s in specs if s.source not in clashing}
        for tenant_id in [t for t in self.tenants if t not in wanted]:
            source = self._sources.get(tenant_id)
            if source is not None and str(source) in rejected_paths and source.exists():
                continue
            await self._stop(tenant_id)
        starting = [s for s in wanted.values() if self._needs_start(s)]
        await self._start_all([(s, Path(s.source)) for s in starting])
        return issues

    async def apply_text(
        self,
        text: str,
        *,
        write_to: Path | None = None,
        env_allow: Iterable[str] | None = None,
        changed_by: str = "api",
        action: str = "put",
    ) -> Tenant:
        """Validate YAML ``text`` and start or replace its tenant (admin API).

        The text is validated in a worker thread, so a slow file never holds
        up serving.

        Args:
            text: a tenant file.
            write_to: when given, the text is written there (atomically) after it
                validated, so the folder stays the source of truth.
            env_allow: variables the file may read besides its own namespace;
                None for the runtime's ``tenant_env_allow`` (an upload with a
                scoped admin token passes none).
            changed_by: who, for the store's version (an admin token's name).
            action: the store's action: ``put``, or ``rollback``.

        With a :attr:`store`, the valid text becomes the tenant's next stored
        version (every runtime follows it) before it starts here.

        Raises:
            ConfigError: validation or clash problems, or any exception raised
                while validating (logged with its traceback); nothing changed.
        """
        options = self.load_options
        if env_allow is not None:
            options = {**options, "env_allow": tuple(env_allow)}
        async with self._lock:
            filename = str(write_to) if write_to else "<admin upload>"
            spec = await asyncio.to_thread(
                load_guarded,
                filename,
                functools.partial(load_tenant_text, **options),
                text,
                filename,
                self.contributions,
            )
            others = [_spec_of(t) for t in self.tenants.values() if t.id != spec.config.id]
            clashes = check_tenant_set([*others, spec]) or await self._claim_storage([spec])
            if clashes:
                log.warning("tenant_file_rejected", file=filename, errors=[str(c) for c in clashes])
                raise ConfigError(clashes)
            if self.store is not None:
                await self.store.put(spec.config.id, text, changed_by=changed_by, action=action)
                self._refused_checksums.pop(spec.config.id, None)
            if write_to is not None:
                write_to.parent.mkdir(parents=True, exist_ok=True)
                temporary = write_to.with_name(f".{write_to.name}.tmp")
                temporary.write_text(text, encoding="utf-8")
                temporary.replace(write_to)
                self.rejected.pop(str(write_to), None)
                if self.store is not None:
                    await self._remember_file(write_to, spec.config.id, spec.source_hash)
            error = await self._start(spec, write_to or Path(spec.source))
            if error:
                raise TenantStartError(error)
            return self.tenants[spec.config.id]

    async def reload(self, tenant_id: str) -> Tenant:
        """Re-read a tenant's file and swap it in if it changed.

        A file that cannot be read or fails validation is recorded in
        :attr:`rejected`, as the watcher would record it.

        Raises:
            KeyError: no such tenant file.
            ConfigError: the file cannot be read or is invalid; the running
                tenant is untouched.
        """
        path = self._sources.get(tenant_id) or self.tenants_dir / f"{tenant_id}.yaml"
        if not path.exists():
            raise KeyError(tenant_id)
        try:
            try:
                text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                issue = ConfigIssue(str(path), None, "", f"cannot read file: {exc}")
                log.warning("tenant_file_rejected", file=str(path), errors=[str(issue)])
                raise ConfigError([issue]) from None
            return await self.apply_text(text, write_to=path)
        except ConfigError as exc:
            self.rejected[str(path)] = exc.issues
            raise

    async def remove(
        self, tenant_id: str, *, delete_file: bool = True, changed_by: str = "api"
    ) -> None:
        """Stop ``tenant_id`` (its data is kept) and delete its file.

        With a :attr:`store`, the removal is the tenant's next stored version,
        so every runtime stops it.

        Raises:
            KeyError: the tenant is not running.
        """
        async with self._lock:
            if tenant_id not in self.tenants:
                raise KeyError(tenant_id)
            path = self._sources.get(tenant_id)
            if self.store is not None:
                await self.store.remove(tenant_id, changed_by=changed_by)
            await self._stop(tenant_id)
            if delete_file and path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                if self.store is not None:
                    await self.store.forget_file(self.folder, path.name)

    async def move(
        self,
        tenant_id: str,
        database: str,
        *,
        drop_old: bool = False,
        changed_by: str = "api",
        settle_seconds: float = 1.0,
    ) -> list[TableCount]:
        """Move ``tenant_id``'s schema to server ``database`` and serve it from there.

        See :func:`core.runtime._moving.move_tenant` for the steps, arguments and errors.
        """
        from core.runtime._moving import move_tenant

        return await move_tenant(
            self,
            tenant_id,
            database,
            drop_old=drop_old,
            changed_by=changed_by,
            settle_seconds=settle_seconds,
        )

    async def stop_all(self) -> None:
        """Stop every tenant (shutdown)."""
        async with self._lock:
            await asyncio.gather(*(self._stop(t, report=False) for t in list(self.tenants)))

    # ------------------------------------------------------------ lifecycle

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

    async def assemble(self, tenant: Tenant) -> None:
        """Build ``tenant``'s bot if it has none (:meth:`core.runtime.assembly.BotLoader.assemble`)."""
        await self.loader.assemble(tenant)

    def unload_idle(self, idle_seconds: float, loaded_max: int) -> int:
        """Drop idle webhook tenants' bots; return how many (:meth:`core.runtime.assembly.BotLoader.unload_idle`)."""
        return self.loader.unload_idle(self.tenants.values(), idle_seconds, loaded_max)

    async def run_unloader(self, idle_seconds: float, loaded_max: int) -> None:
        """Call :meth:`unload_idle` every ``idle_seconds / 4`` (at most every 60 s), until cancelled."""
        while True:
            await asyncio.sleep(min(max(idle_seconds / 4, 0.05), 60.0))
            self.unload_idle(idle_seconds, loaded_max)

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

    # ------------------------------------------------------------ watching

    async def watch(self, debounce_ms: int = 300) -> None:
        """Apply changes of the tenants folder as they happen (watchfiles), until cancelled."""
        from watchfiles import awatch

        self.tenants_dir.mkdir(parents=True, exist_ok=True)
        async for _changes in awatch(
            self.tenants_dir, debounce=debounce_ms, step=50, recursive=False
        ):
            try:
                await self.sync()
            except Exception:
                log.exception("tenant_sync_failed")


def _spec_of(tenant: Tenant) -> TenantSpec:
    return tenant.spec
