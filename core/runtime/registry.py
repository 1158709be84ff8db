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
import time
from collections.abc import Awaitable, Callable, Iterable
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
from core.config.model import ConfigError, ConfigIssue
from core.errors import STORAGE_UNAVAILABLE
from core.runtime.audit import TenantChange
from core.runtime.plugins import resolve
from core.runtime.redaction import forget_secrets, register_secrets
from core.runtime.tenant import CommandSpec, Tenant, TenantState
from core.storage.db import TenantDB
from core.storage.migrations import MigrationError, prepare_tenant_schema
from core.updates.bots import BotHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.events.bus import EventBus
    from core.runtime.control import ClaimStore
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
        pool: the shared asyncpg pool.
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
    ):
        self.pm = pm
        self.pool = pool
        self.redis = redis
        self.bots = bots
        self.jobs = jobs
        self.tenants_dir = tenants_dir
        self.events = events
        # Keyword arguments of every tenant file load (core.config.model.parse_tenant_text).
        self.load_options: dict[str, Any] = {
            "env_allow": tuple(tenant_env_allow),
            "listen_host": listen_host,
        }
        self.tenants: dict[str, Tenant] = {}
        self.rejected: dict[str, list[ConfigIssue]] = {}
        self._sources: dict[str, Path] = {}
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._on_retired = on_retired
        self.claims = claims
        self._on_change = on_change

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
        """Bring the running set in line with the folder: add new, reload changed, stop removed.

        Used at start-up and by the watcher. Files are read and validated in a
        worker thread, so a slow file never holds up serving. Tenants start
        concurrently, eight at a time, so one slow schema does not hold back
        the rest. A file that fails to load, for whatever reason, is recorded
        in :attr:`rejected` and the other files go on; if its tenant was
        running, it keeps its last good config.

        Returns:
            The problems of the rejected files.
        """
        async with self._lock:
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
            kept = [
                t for t in self.tenants.values() if str(self._sources.get(t.id)) in rejected_paths
            ]
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

            await asyncio.gather(*(start_one(s) for s in wanted.values() if self._needs_start(s)))
            return issues

    async def apply_text(
        self, text: str, *, write_to: Path | None = None, env_allow: Iterable[str] | None = None
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
            if write_to is not None:
                write_to.parent.mkdir(parents=True, exist_ok=True)
                temporary = write_to.with_name(f".{write_to.name}.tmp")
                temporary.write_text(text, encoding="utf-8")
                temporary.replace(write_to)
                self.rejected.pop(str(write_to), None)
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

    async def remove(self, tenant_id: str, *, delete_file: bool = True) -> None:
        """Stop ``tenant_id`` (its data is kept) and delete its file.

        Raises:
            KeyError: the tenant is not running.
        """
        async with self._lock:
            if tenant_id not in self.tenants:
                raise KeyError(tenant_id)
            path = self._sources.get(tenant_id)
            await self._stop(tenant_id)
            if delete_file and path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

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
                self.pool, config.schema, max_connections=config.storage.max_connections
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
            routers = [
                r
                for r in await _collect(tenant.hook.register_routers(tenant=tenant))
                if r is not None
            ]
            commands = [
                CommandSpec.of(entry)
                for group in tenant.hook.register_commands(tenant=tenant)
                for entry in (await resolve(group)) or ()
            ]
            tenant.commands = commands
            self.bots.build(tenant, routers)
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
        self.bots.start(tenant, commands)
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

    async def _migrate(self, tenant: Tenant) -> None:
        applied = await prepare_tenant_schema(
            self.pool,
            self.pm,
            tenant.config.schema,
            tenant.features,
            list(tenant.statuses.values()),
        )
        if applied:
            tenant.log.info("migrations_applied", migrations=applied)

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


async def _collect(results: Iterable[Any]) -> list[Any]:
    flat: list[Any] = []
    for result in results:
        value = await resolve(result)
        if isinstance(value, list | tuple):
            flat.extend(value)
        else:
            flat.append(value)
    return flat


def _spec_of(tenant: Tenant) -> TenantSpec:
    return tenant.spec
