"""The set of running tenants: start, hot swap, stop, and the tenants-folder watcher.

Starting a tenant: validate -> migrate its schema (advisory lock) -> sync status
CHECK constraints -> build Bot and Dispatcher -> ``on_tenant_started`` -> put it
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
    load_tenant_file,
    load_tenant_text,
)
from core.config.model import DEFAULT_DATABASE, ConfigError, ConfigIssue, TenantConfig
from core.errors import STORAGE_UNAVAILABLE
from core.runtime.audit import TenantChange
from core.runtime.control import claims_of
from core.runtime.plugins import resolve
from core.runtime.redaction import forget_secrets, register_secrets
from core.runtime.store import FolderFile
from core.runtime.tenant import CommandSpec, Tenant, TenantState
from core.storage.db import TenantDB
from core.storage.migrations import (
    MigrationError,
    fresh_schemas,
    prepare_tenant_schema,
    record_schema_state,
    schema_digest,
    tenant_migrations,
)
from core.updates.bots import BotHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.events.bus import EventBus
    from core.runtime.control import ClaimStore
    from core.runtime.placement import TableCount
    from core.runtime.store import StoredTenant, TenantStore
    from core.storage.jobs import JobRunner

__all__ = ["TenantRegistry", "TenantStartError"]


class TenantStartError(Exception):
    """A valid tenant file whose tenant could not start (migration, status constraint, hook).

    A replaced tenant keeps running its last good config; a new one is left
    in the ``failed`` state.
    """


log = structlog.get_logger("tenantry.registry")


class TenantRegistry:
    """Running tenants of this runtime, by id.

    Args:
        pm: the plugin manager.
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
        pm: pluggy.PluginManager,
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
        self.pm = pm
        self.control_schema = control_schema
        self.lazy_bots = lazy_bots
        self.transaction_pooling = transaction_pooling
        # Schemas known to be up to date: _fresh_key(server, schema) -> schema_digest.
        self._fresh: dict[str, str] = {}
        # Tenants whose bot is being assembled (id(tenant) -> the task).
        self._assembling: dict[int, asyncio.Future[None]] = {}
        self.pool = pool
        # Server name -> pool; the default server's is ``pool``.
        self.pools: dict[str, asyncpg.Pool] = {DEFAULT_DATABASE: pool, **(pools or {})}
        self.redis = redis
        self.bots = bots
        self.jobs = jobs
        self.tenants_dir = tenants_dir
        self.events = events
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
        database = config.storage.database
        return self.pool if database == DEFAULT_DATABASE else self.pools[database]

    def get(self, tenant_id: str) -> Tenant | None:
        """The running (or failed/retrying) tenant with ``tenant_id``, or None."""
        return self.tenants.get(tenant_id)

    # ------------------------------------------------------------ loading

    def tenant_files(self) -> list[Path]:
        """Tenant files in the folder, sorted (hidden and editor temp files skipped)."""
        if not self.tenants_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.tenants_dir.iterdir()
            if p.suffix in TENANT_FILE_SUFFIXES and not p.name.startswith((".", "#", "~"))
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
        loaded_files = await asyncio.to_thread(_load_files, files, self.pm, self.load_options)
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
        semaphore = asyncio.Semaphore(8)

        async def start_one(spec: TenantSpec) -> None:
            async with semaphore:
                await self._start(spec, Path(spec.source))

        starting = [s for s in wanted.values() if self._needs_start(s)]
        await self._check_schemas(starting)
        await asyncio.gather(*(start_one(s) for s in starting))
        return issues

    async def _push_folder(self) -> list[ConfigIssue]:
        """Push the folder's edited files to the store and remove its deleted ones (store mode)."""
        assert self.store is not None
        files = self.tenant_files()
        issues: list[ConfigIssue] = []
        loaded_files = await asyncio.to_thread(_load_files, files, self.pm, self.load_options)
        records = await self.store.folder_files(self.folder)
        heads = await self.store.heads()
        pushes: list[TenantSpec] = []
        present_ids: set[str] = set()
        for path, loaded in loaded_files:
            if isinstance(loaded, ConfigError):
                self.rejected[str(path)] = loaded.issues
                issues.extend(loaded.issues)
                continue
            self.rejected.pop(str(path), None)
            present_ids.add(loaded.config.id)
            self._validated[loaded.source_hash] = loaded
            record = records.get(path.name)
            if record == FolderFile(path.name, loaded.config.id, loaded.source_hash):
                continue  # unchanged since it was last pushed or written here
            head = heads.get(loaded.config.id)
            if head is not None and not head.deleted and head.checksum == loaded.source_hash:
                await self._remember_file(path, loaded.config.id, loaded.source_hash)
                continue
            pushes.append(loaded)
        seen = {str(p) for p in files}
        for stale in [f for f in self.rejected if f not in seen and f not in self._store_rejected]:
            del self.rejected[stale]
        # Running tenants first, so a clash is blamed on the newcomer.
        pushes.sort(key=lambda spec: (spec.config.id not in self.tenants, spec.source))
        pushed_ids = {spec.config.id for spec in pushes}
        running = [
            t.spec for t in self.tenants.values() if t.spec is not None and t.id not in pushed_ids
        ]
        clashes = [
            c for c in check_tenant_set([*running, *pushes]) if c.file in {p.source for p in pushes}
        ]
        for clash in clashes:
            log.warning("tenant_file_rejected", file=clash.file, errors=[str(clash)])
            self.rejected.setdefault(clash.file, []).append(clash)
        issues.extend(clashes)
        clashing = {c.file for c in clashes}
        pushes = await self._claimed([p for p in pushes if p.source not in clashing], issues)
        for spec in pushes:
            await self.store.put(spec.config.id, spec.text, changed_by=f"file:{spec.source}")
            await self._remember_file(Path(spec.source), spec.config.id, spec.source_hash)
        if self.tenants_dir.is_dir():
            present = {p.name for p in files}
            for name, record in records.items():
                if name in present:
                    continue
                head = heads.get(record.tenant_id)
                if head is not None and not head.deleted and record.tenant_id not in present_ids:
                    await self.store.remove(
                        record.tenant_id, changed_by=f"file:{self.tenants_dir / name}"
                    )
                await self.store.forget_file(self.folder, name)
        return issues

    async def _apply_store(self, tenant_ids: set[str] | None, *, retry: bool) -> list[ConfigIssue]:
        """Start, swap or stop tenants to match the store's heads (all, or ``tenant_ids``)."""
        assert self.store is not None
        heads = await self.store.heads(tenant_ids)
        issues: list[ConfigIssue] = []
        stopping = [t for t, head in heads.items() if head.deleted and t in self.tenants]
        if tenant_ids is None:
            stopping += [t for t in self.tenants if t not in heads]
        wanted = [h for h in heads.values() if not h.deleted and self._stored_needs_start(h, retry)]
        documents = await self.store.texts([h.tenant_id for h in wanted]) if wanted else {}
        records = await self.store.folder_files(self.folder) if documents or stopping else {}
        file_of = {r.tenant_id: self.tenants_dir / r.file_name for r in records.values()}
        specs: list[TenantSpec] = []
        unparsed: list[tuple[str, str]] = []
        label_ids: dict[str, str] = {}
        for tenant_id, document in documents.items():
            spec = self._validated.pop(document.head.checksum, None)
            if spec is not None and spec.config.id == tenant_id:
                specs.append(spec)
            else:
                label = str(file_of.get(tenant_id, self.tenants_dir / f"{tenant_id}.yaml"))
                label_ids[label] = tenant_id
                unparsed.append((label, document.text))
        self._validated.clear()
        for label, loaded in await asyncio.to_thread(
            _load_texts, unparsed, self.pm, self.load_options
        ):
            if isinstance(loaded, ConfigError):
                self._store_rejected.add(label)
                self.rejected[label] = loaded.issues
                issues.extend(loaded.issues)
                tenant_id = label_ids[label]
                self._refused_checksums[tenant_id] = documents[tenant_id].head.checksum
            else:
                self._store_rejected.discard(label)
                specs.append(loaded)
        specs = await self._claimed(specs, issues)
        for tenant_id in stopping:
            await self._stop(tenant_id)
            await self._mirror(tenant_id, None, records)
        semaphore = asyncio.Semaphore(8)

        async def start_one(spec: TenantSpec) -> None:
            async with semaphore:
                source = file_of.get(spec.config.id, self.tenants_dir / f"{spec.config.id}.yaml")
                error = await self._start(spec, source)
                if error:
                    self._refused_checksums[spec.config.id] = spec.source_hash
                else:
                    self._refused_checksums.pop(spec.config.id, None)
                    await self._mirror(spec.config.id, spec, records)

        await self._check_schemas(specs)
        await asyncio.gather(*(start_one(s) for s in specs))
        return issues

    def _stored_needs_start(self, head: StoredTenant, retry: bool) -> bool:
        if not retry and self._refused_checksums.get(head.tenant_id) == head.checksum:
            return False
        current = self.tenants.get(head.tenant_id)
        return (
            current is None
            or current.source_hash != head.checksum
            or (retry and current.state == TenantState.FAILED)
        )

    async def _remember_file(self, path: Path, tenant_id: str, checksum: str) -> None:
        assert self.store is not None
        await self.store.record_file(self.folder, FolderFile(path.name, tenant_id, checksum))

    async def _mirror(
        self, tenant_id: str, spec: TenantSpec | None, records: dict[str, FolderFile]
    ) -> None:
        """Write the stored version of ``tenant_id`` to the folder (None: delete its file).

        Only a file this folder last exchanged with the store and that nobody
        edited since, or a missing one, is written: a hand edit in progress is
        never overwritten. Nothing happens without a folder.
        """
        assert self.store is not None
        if not self.tenants_dir.is_dir():
            return
        record = next((r for r in records.values() if r.tenant_id == tenant_id), None)
        path = self.tenants_dir / (record.file_name if record else f"{tenant_id}.yaml")
        text = None if spec is None else spec.text
        try:
            written = await asyncio.to_thread(
                _mirror_file, path, text, record.checksum if record else None
            )
        except OSError as exc:
            log.warning("tenant_file_mirror_failed", file=str(path), error=str(exc))
            return
        if not written:
            return
        if spec is None:
            await self.store.forget_file(self.folder, path.name)
        else:
            await self._remember_file(path, tenant_id, spec.source_hash)

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
                _load_guarded,
                filename,
                functools.partial(load_tenant_text, **options),
                text,
                filename,
                self.pm,
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

        tenant = self.tenants.get(tenant_id)
        if tenant is None or tenant.spec is None or not tenant.serving:
            raise KeyError(tenant_id)
        spec = tenant.spec
        source = self._sources.get(tenant_id) or Path(spec.source)
        old = spec.config.storage.database
        label = str(source)
        if database == old or database not in self.pools:
            reason = (
                f"the tenant is on {database!r} already"
                if database == old
                else f"unknown PostgreSQL server {database!r} "
                f"(known: {', '.join(sorted(self.pools))})"
            )
            raise ConfigError([ConfigIssue(label, None, "storage.database", reason)])
        try:
            text = with_database(spec.text, database)
        except MoveError as exc:
            raise ConfigError([ConfigIssue(label, None, "storage", str(exc))]) from None
        moved = await asyncio.to_thread(
            _load_guarded,
            label,
            functools.partial(load_tenant_text, **self.load_options),
            text,
            label,
            self.pm,
        )
        refused = await self._claim_storage([moved])
        if refused:
            raise ConfigError(refused)
        schema = spec.config.schema
        machines = list(spec.machines.values())
        write_to = source if source.exists() else None
        tenant.log.info("tenant_move_started", source=old, target=database)
        if self.store is not None:
            await self.remove(tenant_id, delete_file=False, changed_by=changed_by)
        else:
            async with self._lock:
                await self._stop(tenant_id)
        await asyncio.sleep(settle_seconds)
        try:
            counts = await copy_schema(
                self.pools[old],
                self.pools[database],
                schema,
                lambda pool: prepare_tenant_schema(pool, self.pm, schema, spec.features, machines),
            )
        except BaseException:
            tenant.log.exception("tenant_move_failed", source=old, target=database)
            # Serve from the old server again, as before the move.
            await self.apply_text(spec.text, write_to=write_to, changed_by=changed_by)
            raise
        await self.apply_text(text, write_to=write_to, changed_by=changed_by)
        tenant.log.info(
            "tenant_moved",
            source=old,
            target=database,
            tables=len(counts),
            rows=sum(c.target for c in counts),
            checksum=checksum_of(text),
        )
        if drop_old:
            await self.pools[old].execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            self._fresh.pop(_fresh_key(old, schema), None)
            if self.claims is not None:
                await self.claims.release(tenant_id, keep=claims_of(moved.config))
            tenant.log.info("tenant_old_copy_dropped", source=old, schema=schema)
        return counts

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

    async def _start(self, spec: TenantSpec, source: Path) -> str | None:
        """Start (or swap in) the tenant of ``spec``; return the error text if it failed."""
        config = spec.config
        previous = self.tenants.get(config.id)
        if (
            previous is not None
            and previous.source_hash == spec.source_hash
            and previous.state != TenantState.FAILED
        ):
            return None
        tenant = Tenant(
            config=config,
            features=spec.features,
            settings=spec.settings,
            statuses=spec.machines,
            texts=spec.texts,
            pm=self.pm,
            db=TenantDB(
                self.pool_of(config),
                config.schema,
                max_connections=config.storage.max_connections,
                transaction_pooling=self.transaction_pooling,
            ),
            redis=self.redis,
            jobs=self.jobs,
            source_hash=spec.source_hash,
            events=self.events,
        )
        tenant.spec = spec
        # From here on its secrets never reach a log line or a shown text.
        register_secrets(tenant, [*spec.secrets, self.bots.secret_for(tenant)])
        if previous is None:
            # Visible while it migrates; a replacement stays invisible until ready.
            self.tenants[config.id] = tenant
        started = time.monotonic()
        try:
            tenant.state = TenantState.MIGRATING
            await self._migrate(tenant)
            self.bots.prepare(tenant)
            # A webhook bot is built at its first update (assemble); one whose
            # registration is not current is also built, registered and dropped
            # in the background. Polling bots are built now (they poll).
            lazy = self.lazy_bots and config.bot.mode == "webhook"
            registered = lazy and await self.bots.registered(tenant)
            if not lazy:
                await self._assemble(tenant)
            for result in tenant.hook.on_tenant_started(tenant=tenant):
                await resolve(result)
        except Exception as exc:
            tenant.state = TenantState.FAILED
            tenant.detail = (
                str(exc)
                if isinstance(exc, MigrationError | ConfigError)
                else f"{type(exc).__name__}: {exc}"
            )
            tenant.log.exception("tenant_start_failed")
            await self._changed(TenantChange(config.id, str(source), spec, "failed", tenant.detail))
            if previous is not None and previous.state != TenantState.FAILED:
                # The old config keeps serving; report the failed reload.
                previous.detail = f"reload failed: {tenant.detail}"
                forget_secrets(tenant)
                return tenant.detail
            self.tenants[config.id] = tenant
            self._sources[config.id] = source
            return tenant.detail
        tenant.state = TenantState.RUNNING
        tenant.started_at = time.monotonic()
        self.tenants[config.id] = tenant
        self._sources[config.id] = source
        if not lazy:
            self.bots.start(tenant, tenant.commands)
        elif not registered:
            self.bots.register_later(tenant, self.assemble)
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
        """Build ``tenant``'s routers, commands and Dispatcher if it has none.

        Called for the first update after a lazy start or an idle drop
        (:meth:`unload_idle`); concurrent callers wait for one build.

        Raises:
            Exception: what a plugin's ``register_routers`` or
                ``register_commands`` raised (the caller answers 503).
        """
        if tenant.dispatcher is not None:
            return
        key = id(tenant)
        task = self._assembling.get(key)
        if task is None:
            task = asyncio.ensure_future(self._assemble(tenant))
            self._assembling[key] = task
            task.add_done_callback(lambda _done: self._assembling.pop(key, None))
        await asyncio.shield(task)

    async def _assemble(self, tenant: Tenant) -> None:
        routers = [
            r for r in await _collect(tenant.hook.register_routers(tenant=tenant)) if r is not None
        ]
        tenant.commands = [
            CommandSpec.of(entry)
            for group in tenant.hook.register_commands(tenant=tenant)
            for entry in (await resolve(group)) or ()
        ]
        self.bots.build(tenant, routers)
        tenant.last_used = time.monotonic()

    def unload_idle(self, idle_seconds: float, loaded_max: int) -> int:
        """Drop the Dispatcher and routers of idle webhook tenants; return how many.

        A webhook tenant with nothing in flight is dropped when its last
        update is more than ``idle_seconds`` ago, and beyond ``loaded_max``
        loaded tenants the least recently used go first. Polling tenants
        keep theirs (they poll). The next update builds it again
        (:meth:`assemble`), so routers must keep no state in memory.
        """
        now = time.monotonic()
        loaded = [
            t
            for t in self.tenants.values()
            if t.dispatcher is not None and t.config.bot.mode == "webhook" and not t.busy
        ]
        loaded.sort(key=lambda t: t.last_used)
        total = sum(1 for t in self.tenants.values() if t.dispatcher is not None)
        dropped = 0
        for tenant in loaded:
            if now - tenant.last_used <= idle_seconds and total - dropped <= loaded_max:
                break
            self.bots.unload(tenant)
            dropped += 1
        if dropped:
            log.info("tenants_unloaded", count=dropped, loaded=total - dropped)
        return dropped

    async def run_unloader(self, idle_seconds: float, loaded_max: int) -> None:
        """Call :meth:`unload_idle` every ``idle_seconds / 4`` (at most every 60 s), until cancelled."""
        while True:
            await asyncio.sleep(min(max(idle_seconds / 4, 0.05), 60.0))
            self.unload_idle(idle_seconds, loaded_max)

    async def _check_schemas(self, specs: list[TenantSpec]) -> None:
        """Learn in one query per server which of the specs' schemas are up to date (see :meth:`_migrate`)."""
        if self.control_schema is None or not specs:
            return
        by_database: dict[str, dict[str, str]] = {}
        for s in specs:
            digest = schema_digest(
                tenant_migrations(self.pm, s.features), list(s.machines.values())
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
                    self._fresh[_fresh_key(database, schema)] = digest
                else:
                    self._fresh.pop(_fresh_key(database, schema), None)

    async def _migrate(self, tenant: Tenant) -> None:
        """Bring the tenant's schema up to date on its server, unless a start's check found it so."""
        schema = tenant.config.schema
        database = tenant.config.storage.database
        key = _fresh_key(database, schema)
        machines = list(tenant.statuses.values())
        digest = schema_digest(tenant_migrations(self.pm, tenant.features), machines)
        if self._fresh.get(key) == digest:
            return
        pool = tenant.db.pool
        applied = await prepare_tenant_schema(pool, self.pm, schema, tenant.features, machines)
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
            self._fresh[key] = digest

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
        tenant.state = TenantState.STOPPED
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


def _load_guarded(filename: str, load: Callable[..., TenantSpec], *args: Any) -> TenantSpec:
    """Run ``load(*args)`` (a tenant file's validation) and log its refusal once.

    Any exception, not only a ConfigError, refuses that one file: a plugin's
    settings check with a bug must not stop the watcher or the other tenants.

    Raises:
        ConfigError: the file's problems (logged at warning, no traceback), or
            one issue ``could not be loaded: <exception>`` for any other
            exception (logged at error with its traceback).
    """
    try:
        return load(*args)
    except ConfigError as exc:
        log.warning("tenant_file_rejected", file=filename, errors=[str(i) for i in exc.issues])
        raise
    except Exception as exc:
        issue = ConfigIssue(filename, None, "", f"could not be loaded: {type(exc).__name__}: {exc}")
        log.error("tenant_file_rejected", file=filename, errors=[str(issue)], exc_info=True)
        raise ConfigError([issue]) from None


def _load_files(
    paths: Iterable[Path], pm: pluggy.PluginManager, load_options: dict[str, Any]
) -> list[tuple[Path, TenantSpec | ConfigError]]:
    """Read and validate each tenant file (in a worker thread): its spec, or why it was refused."""
    loaded: list[tuple[Path, TenantSpec | ConfigError]] = []
    for path in paths:
        try:
            load = functools.partial(load_tenant_file, **load_options)
            loaded.append((path, _load_guarded(str(path), load, path, pm)))
        except ConfigError as exc:
            loaded.append((path, exc))
    return loaded


def _load_texts(
    documents: Iterable[tuple[str, str]], pm: pluggy.PluginManager, load_options: dict[str, Any]
) -> list[tuple[str, TenantSpec | ConfigError]]:
    """Validate stored texts ``(label, text)`` (in a worker thread): each spec, or why it was refused."""
    loaded: list[tuple[str, TenantSpec | ConfigError]] = []
    load = functools.partial(load_tenant_text, **load_options)
    for label, text in documents:
        try:
            loaded.append((label, _load_guarded(label, load, text, label, pm)))
        except ConfigError as exc:
            loaded.append((label, exc))
    return loaded


def _mirror_file(path: Path, text: str | None, recorded: str | None) -> bool:
    """Write ``text`` to ``path`` atomically (None: delete it), unless it was edited by hand.

    ``recorded`` is the checksum this folder last exchanged for the file. A
    file whose text differs from it (or, with nothing recorded, from ``text``)
    is left alone.

    Returns:
        Whether the file now mirrors the store (written, deleted, or already equal).
    """
    from core.runtime.store import checksum_of

    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError):
        return False
    if current is not None:
        if text is not None and current == text:
            return True
        if checksum_of(current) != recorded:
            return False
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return True


async def _collect(results: Iterable[Any]) -> list[Any]:
    flat: list[Any] = []
    for result in results:
        value = await resolve(result)
        if isinstance(value, list | tuple):
            flat.extend(value)
        else:
            flat.append(value)
    return flat


def _fresh_key(database: str, schema: str) -> str:
    """The key of :attr:`TenantRegistry._fresh`: the schema, ``<server>/<schema>`` off the default."""
    return schema if database == DEFAULT_DATABASE else f"{database}/{schema}"


def _spec_of(tenant: Tenant) -> TenantSpec:
    return tenant.spec
