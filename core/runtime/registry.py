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
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
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
from core.config.model import DEFAULT_DATABASE, ConfigError, ConfigIssue
from core.runtime._loading import load_files, load_guarded
from core.runtime._starting import START_CONCURRENCY, TenantStarting
from core.runtime._store_sync import StoreSync
from core.runtime.assembly import BotLoader, TenantServices
from core.runtime.audit import TenantChange
from core.runtime.contributions import Contributions, contributions_of
from core.runtime.lifecycle import Lifecycle
from core.runtime.schemas import SchemaKeeper
from core.runtime.tenant import Tenant
from core.updates.bots import BotHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.events.bus import EventBus
    from core.runtime.control import ClaimStore
    from core.runtime.placement import TableCount
    from core.runtime.store import TenantStore
    from core.storage.jobs import JobRunner

__all__ = ["START_CONCURRENCY", "TenantRegistry", "TenantStartError"]


class TenantStartError(Exception):
    """A valid tenant file whose tenant could not start (migration, status constraint, hook).

    A replaced tenant keeps running its last good config; a new one is left
    in the ``failed`` state.
    """


log = structlog.get_logger("tenantry.registry")


class TenantRegistry(StoreSync, TenantStarting):
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
        env_secrets_only: bool = False,
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
            env_secrets_only: read the environment only in the credential
                fields (an upload with a scoped admin token).
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
        if env_secrets_only:
            options = {**options, "env_secrets_only": True}
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

    # ------------------------------------------------------------ bots

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
