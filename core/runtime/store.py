"""The tenant store: every tenant file, versioned, in the control schema.

One database holds the truth about which tenants exist and what their files
say, so every runtime on it serves the same tenants: a change written by one
runtime (admin API, a file dropped into its folder, ``tenantry tenants
rollback``) is a new version in ``tenant_documents`` and one row in
``tenant_document_versions``, and the writing transaction sends
``NOTIFY "<control schema>_tenants", '<tenant id>'``. PostgreSQL delivers a
notification only when the transaction commits, so a runtime never hears of a
change it cannot read yet. Each runtime listens (:class:`StoreFollower`) and
also re-reads the heads every few seconds, so a notification lost while its
listening connection was down heals by itself.

Only validated files are stored: a writer validates first (the same code on
every runtime, so the same errors), and a refused change leaves the stored
version, and hence every runtime's running tenant, as it was.

The texts are stored as written: ``${VAR}`` references unresolved (each
runtime resolves them from its own environment) and inline demo secrets as
they are. Anything shown to a person goes through
:func:`core.runtime.audit.mask_secrets` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime

import asyncpg
import msgspec
import structlog

from core.errors import STORAGE_UNAVAILABLE

__all__ = [
    "FolderFile",
    "StoreFollower",
    "StoredTenant",
    "TenantStore",
    "TenantVersion",
    "checksum_of",
]

log = structlog.get_logger("tenantry.store")


def checksum_of(text: str) -> str:
    """SHA-256 hex digest of a tenant file's text (UTF-8), as in ``TenantSpec.source_hash``."""
    return hashlib.sha256(text.encode()).hexdigest()


class StoredTenant(msgspec.Struct, frozen=True):
    """The head (or one version) of a tenant in the store, without its text.

    Attributes:
        tenant_id: the tenant id.
        version: 1, 2, ... (each put, removal or rollback adds one).
        checksum: SHA-256 of the text (:func:`checksum_of`).
        deleted: the tenant was removed (its data is kept).
        changed_by: who wrote it: an admin token's name, ``file:<path>``, ``cli``.
        changed_at: when, UTC.
        action: ``put``, ``remove`` or ``rollback`` (heads: the last one).
    """

    tenant_id: str
    version: int
    checksum: str
    deleted: bool
    changed_by: str
    changed_at: datetime
    action: str = "put"


class TenantVersion(msgspec.Struct, frozen=True):
    """One stored version with its text (``""`` for a removal)."""

    head: StoredTenant
    text: str


class FolderFile(msgspec.Struct, frozen=True):
    """What a tenants folder last exchanged with the store for one file.

    Attributes:
        file_name: the file's name in the folder (``filin.yaml``).
        tenant_id: the tenant it holds.
        checksum: SHA-256 of the text last pushed from or written to it.
    """

    file_name: str
    tenant_id: str
    checksum: str


def _head(row: asyncpg.Record, action: str | None = None) -> StoredTenant:
    return StoredTenant(
        tenant_id=row["tenant_id"],
        version=row["version"],
        checksum=row["checksum"],
        deleted=row["deleted"],
        changed_by=row["changed_by"],
        changed_at=row["changed_at"],
        action=action or row.get("action") or "put",
    )


class TenantStore:
    """Versioned tenant files in the control schema (``core/runtime/control_sql/0002_tenant_store.sql``).

    Args:
        pool: the runtime's pool.
        schema: the control schema (``TENANTRY_CONTROL_SCHEMA``), already
            checked to be a plain identifier by :func:`core.runtime.control.prepare_control_schema`.

    Every method raises what :data:`core.errors.STORAGE_UNAVAILABLE` lists
    when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.schema = schema
        # NOTIFY channels are database-wide: several control schemas on one
        # database (test runs, staging next to production) must not hear
        # each other. An identifier is at most 63 bytes.
        self.channel = f"{schema}_tenants"[:63]

    # ------------------------------------------------------------ reading

    async def heads(self, tenant_ids: Iterable[str] | None = None) -> dict[str, StoredTenant]:
        """The current version of every tenant (or of ``tenant_ids``), removed ones included."""
        query = (
            f"SELECT tenant_id, version, checksum, deleted, changed_by, changed_at "
            f"FROM {self.schema}.tenant_documents"
        )
        async with self.pool.acquire() as conn:
            if tenant_ids is None:
                rows = await conn.fetch(query)
            else:
                rows = await conn.fetch(
                    query + " WHERE tenant_id = ANY($1::text[])", list(tenant_ids)
                )
        return {row["tenant_id"]: _head(row) for row in rows}

    async def texts(self, tenant_ids: Iterable[str]) -> dict[str, TenantVersion]:
        """The current text of each of ``tenant_ids`` that is stored and not removed."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT tenant_id, version, checksum, deleted, changed_by, changed_at, text "
                f"FROM {self.schema}.tenant_documents "
                f"WHERE tenant_id = ANY($1::text[]) AND NOT deleted",
                list(tenant_ids),
            )
        return {row["tenant_id"]: TenantVersion(_head(row), row["text"]) for row in rows}

    async def history(self, tenant_id: str) -> list[StoredTenant]:
        """Every version of ``tenant_id``, newest first (empty when it was never stored)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT tenant_id, version, checksum, action = 'remove' AS deleted, "
                f"changed_by, changed_at, action "
                f"FROM {self.schema}.tenant_document_versions "
                f"WHERE tenant_id = $1 ORDER BY version DESC",
                tenant_id,
            )
        return [_head(row) for row in rows]

    async def version(self, tenant_id: str, version: int) -> TenantVersion | None:
        """Version ``version`` of ``tenant_id`` with its text, or None when there is none."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT tenant_id, version, checksum, action = 'remove' AS deleted, "
                f"changed_by, changed_at, action, text "
                f"FROM {self.schema}.tenant_document_versions "
                f"WHERE tenant_id = $1 AND version = $2",
                tenant_id,
                version,
            )
        return None if row is None else TenantVersion(_head(row), row["text"])

    # ------------------------------------------------------------ writing

    async def put(
        self, tenant_id: str, text: str, *, changed_by: str, action: str = "put"
    ) -> StoredTenant | None:
        """Store ``text`` as the next version of ``tenant_id`` and notify every runtime.

        The caller has validated ``text`` (only valid files are stored).

        Args:
            tenant_id: the id the text declares.
            text: the tenant file, as written.
            changed_by: who (an admin token's name, ``file:<path>``).
            action: ``put`` or ``rollback``.

        Returns:
            The new head, or None when the current version already has this
            text (nothing written, nobody notified).
        """
        checksum = checksum_of(text)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, tenant_id)
            current = await conn.fetchrow(
                f"SELECT version, checksum, deleted FROM {self.schema}.tenant_documents "
                f"WHERE tenant_id = $1 FOR UPDATE",
                tenant_id,
            )
            if current is not None and current["checksum"] == checksum and not current["deleted"]:
                return None
            version = 1 if current is None else current["version"] + 1
            row = await conn.fetchrow(
                f"INSERT INTO {self.schema}.tenant_documents "
                f"(tenant_id, version, text, checksum, deleted, changed_by) "
                f"VALUES ($1, $2, $3, $4, false, $5) "
                f"ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version, "
                f"text = EXCLUDED.text, checksum = EXCLUDED.checksum, deleted = false, "
                f"changed_by = EXCLUDED.changed_by, changed_at = now() "
                f"RETURNING tenant_id, version, checksum, deleted, changed_by, changed_at",
                tenant_id,
                version,
                text,
                checksum,
                changed_by,
            )
            await self._record(conn, row, action, text)
        return _head(row, action)

    async def remove(self, tenant_id: str, *, changed_by: str) -> StoredTenant | None:
        """Mark ``tenant_id`` removed (a new version) and notify every runtime.

        Returns:
            The new head, or None when it is not stored or already removed.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, tenant_id)
            row = await conn.fetchrow(
                f"UPDATE {self.schema}.tenant_documents "
                f"SET version = version + 1, deleted = true, changed_by = $2, changed_at = now() "
                f"WHERE tenant_id = $1 AND NOT deleted "
                f"RETURNING tenant_id, version, checksum, deleted, changed_by, changed_at",
                tenant_id,
                changed_by,
            )
            if row is None:
                return None
            await self._record(conn, row, "remove", "")
        return _head(row, "remove")

    async def _lock(self, conn: asyncpg.Connection, tenant_id: str) -> None:
        # Writers of one tenant id take turns (a transaction-scoped advisory
        # lock): FOR UPDATE cannot lock the row of a tenant's first version.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{self.channel}:{tenant_id}"
        )

    async def _record(
        self, conn: asyncpg.Connection, row: asyncpg.Record, action: str, text: str
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.tenant_document_versions "
            f"(tenant_id, version, action, text, checksum, changed_by, changed_at) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7)",
            row["tenant_id"],
            row["version"],
            action,
            text,
            row["checksum"],
            row["changed_by"],
            row["changed_at"],
        )
        # Delivered at commit, never for a rolled-back change.
        await conn.execute("SELECT pg_notify($1, $2)", self.channel, row["tenant_id"])

    # ------------------------------------------------------------ folders

    async def folder_files(self, folder: str) -> dict[str, FolderFile]:
        """What ``folder`` last exchanged with the store, by file name."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT file_name, tenant_id, checksum FROM {self.schema}.tenant_folder_files "
                f"WHERE folder = $1",
                folder,
            )
        return {
            r["file_name"]: FolderFile(r["file_name"], r["tenant_id"], r["checksum"]) for r in rows
        }

    async def record_file(self, folder: str, file: FolderFile) -> None:
        """Remember that ``folder``'s ``file.file_name`` now holds ``file.checksum``."""
        await self.record_files(folder, [file])

    async def record_files(self, folder: str, files: Iterable[FolderFile]) -> None:
        """:meth:`record_file` for each of ``files``, in one statement (none: no query).

        Of several files of one name, the last is remembered.
        """
        files = list({f.file_name: f for f in files}.values())
        if not files:
            return
        async with self.pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self.schema}.tenant_folder_files "
                f"(folder, file_name, tenant_id, checksum) "
                f"SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[]) "
                f"ON CONFLICT (folder, file_name) DO UPDATE "
                f"SET tenant_id = EXCLUDED.tenant_id, checksum = EXCLUDED.checksum",
                folder,
                [f.file_name for f in files],
                [f.tenant_id for f in files],
                [f.checksum for f in files],
            )

    async def forget_file(self, folder: str, file_name: str) -> None:
        """Forget ``folder``'s ``file_name`` (it was deleted)."""
        await self.forget_files(folder, [file_name])

    async def forget_files(self, folder: str, file_names: Iterable[str]) -> None:
        """:meth:`forget_file` for each of ``file_names``, in one statement (none: no query)."""
        file_names = list(file_names)
        if not file_names:
            return
        async with self.pool.acquire() as conn:
            await conn.execute(
                f"DELETE FROM {self.schema}.tenant_folder_files "
                f"WHERE folder = $1 AND file_name = ANY($2::text[])",
                folder,
                file_names,
            )


class StoreFollower:
    """Calls ``on_change(tenant_ids)`` when the store changes: on NOTIFY, and every ``reread_seconds``.

    ``tenant_ids`` is the set of ids named by the notifications that arrived
    (gathered for ``debounce_seconds``), or None for a periodic re-read of
    every head (which also heals notifications lost while the listening
    connection was down). The listening connection is its own (not one of
    the pool's) and is reopened after a loss; while PostgreSQL is down the
    follower logs one ``store_listen_failed`` warning per attempt and retries.

    Args:
        dsn: the database URL.
        channel: :attr:`TenantStore.channel`.
        on_change: awaited with the changed ids or None; its exceptions are
            logged and the following continues.
        reread_seconds: the period of the full re-read.
        debounce_seconds: how long notifications are gathered into one call.
    """

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_change: Callable[[set[str] | None], object],
        *,
        reread_seconds: float = 5.0,
        debounce_seconds: float = 0.05,
    ):
        self.dsn = dsn
        self.channel = channel
        self.on_change = on_change
        self.reread_seconds = reread_seconds
        self.debounce_seconds = debounce_seconds
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self.listening = False

    def start(self) -> None:
        """Start listening and re-reading in the background."""
        self._listen_task = asyncio.create_task(self._listen(), name="tenantry-store-listen")
        self._task = asyncio.create_task(self._follow(), name="tenantry-store-follow")

    async def stop(self) -> None:
        """Stop both background tasks (idempotent)."""
        for task in (self._task, self._listen_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._listen_task = None

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._pending.add(payload)
        self._wake.set()

    async def _listen(self) -> None:
        attempt = 0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "tenantry-store"}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._notified)
                self.listening = True
                if attempt:
                    # Whatever changed while we were deaf.
                    self._wake.set()
                    log.info("store_listening_again", attempts=attempt)
                attempt = 0
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=self.reread_seconds)
                    if not conn.is_closed():
                        # A dead peer is noticed by a query, not by waiting.
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except (*STORAGE_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("store_listen_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self.listening = False
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)
            attempt += 1
            # At most 2 s apart: the follower listens again within 2 s of
            # PostgreSQL being back (tests/test_failover_storage.py).
            await asyncio.sleep(min(0.25 * 2**attempt, 2.0))

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.reread_seconds)
            if self._wake.is_set():
                await asyncio.sleep(self.debounce_seconds)
                self._wake.clear()
                # No ids: woken by a reconnect, so re-read everything.
                ids: set[str] | None = self._pending or None
                self._pending = set()
            else:
                ids = None
            try:
                result = self.on_change(ids)
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except STORAGE_UNAVAILABLE as exc:
                log.warning("store_reread_failed", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("store_reread_failed")
