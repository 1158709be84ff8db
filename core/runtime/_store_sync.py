"""The registry's half that follows the tenant store and mirrors it into the tenants folder.

With a store, the folder is a two-way mirror of it: a file edited since this
folder last exchanged it with the store is pushed, a deleted one removes its
tenant, and the store's versions this runtime starts are written back.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from core.config.loader import TenantSpec, check_tenant_set
from core.config.model import ConfigError, ConfigIssue
from core.runtime._loading import load_files, load_texts
from core.runtime.lifecycle import TenantState
from core.runtime.store import FolderFile

if TYPE_CHECKING:
    from core.runtime.store import StoredTenant

log = structlog.get_logger("tenantry.registry")


class StoreSync:
    """Mixin of :class:`core.runtime.registry.TenantRegistry`: pushing the folder, following the store.

    Uses the registry's ``store``, ``folder``, ``tenants``, ``rejected``,
    ``load_options`` and its start/stop/claim methods.
    """

    # Set by TenantRegistry.__init__.
    store: Any
    folder: str
    tenants_dir: Path
    tenants: Any
    rejected: dict[str, list[ConfigIssue]]
    load_options: dict[str, Any]
    contributions: Any
    schemas: Any
    _validated: dict[str, TenantSpec]
    _store_rejected: set[str]
    _refused_checksums: dict[str, str]

    async def _push_folder(self) -> list[ConfigIssue]:
        """Push the folder's edited files to the store and remove its deleted ones (store mode)."""
        assert self.store is not None
        files = self.tenant_files()
        issues: list[ConfigIssue] = []
        loaded_files = await asyncio.to_thread(
            load_files, files, self.contributions, self.load_options
        )
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
            load_texts, unparsed, self.contributions, self.load_options
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
        await self._mirror([(tenant_id, None) for tenant_id in stopping], records)
        errors = await self._start_all(
            [
                (spec, file_of.get(spec.config.id, self.tenants_dir / f"{spec.config.id}.yaml"))
                for spec in specs
            ]
        )
        started: list[tuple[str, TenantSpec | None]] = []
        for spec in specs:
            if errors.get(spec.config.id):
                self._refused_checksums[spec.config.id] = spec.source_hash
            else:
                self._refused_checksums.pop(spec.config.id, None)
                started.append((spec.config.id, spec))
        await self._mirror(started, records)
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
        self, changes: list[tuple[str, TenantSpec | None]], records: dict[str, FolderFile]
    ) -> None:
        """Write the stored version of each ``(tenant_id, spec)`` to the folder (None: delete its file).

        Only a file this folder last exchanged with the store and that nobody
        edited since, or a missing one, is written: a hand edit in progress is
        never overwritten. A file whose record already holds the spec's
        checksum is left as it is: the folder has that version (a restart),
        or it was edited or deleted since, which the next scan pushes. The
        files are written in one worker thread and remembered in one query.
        Nothing happens without a folder.
        """
        assert self.store is not None
        if not changes or not self.tenants_dir.is_dir():
            return
        record_of = {r.tenant_id: r for r in records.values()}
        writes: list[tuple[str, TenantSpec | None, Path, str | None]] = []
        for tenant_id, spec in changes:
            record = record_of.get(tenant_id)
            if spec is not None and record is not None and record.checksum == spec.source_hash:
                continue
            path = self.tenants_dir / (record.file_name if record else f"{tenant_id}.yaml")
            writes.append((tenant_id, spec, path, record.checksum if record else None))
        if not writes:
            return
        outcomes = await asyncio.to_thread(
            _mirror_files,
            [
                (path, None if spec is None else spec.text, recorded)
                for _, spec, path, recorded in writes
            ],
        )
        remembered: list[FolderFile] = []
        forgotten: list[str] = []
        for (tenant_id, spec, path, _), outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, OSError):
                log.warning("tenant_file_mirror_failed", file=str(path), error=str(outcome))
            elif not outcome:
                continue
            elif spec is None:
                forgotten.append(path.name)
            else:
                remembered.append(FolderFile(path.name, tenant_id, spec.source_hash))
        await self.store.record_files(self.folder, remembered)
        await self.store.forget_files(self.folder, forgotten)


def _mirror_files(
    writes: list[tuple[Path, str | None, str | None]],
) -> list[bool | OSError]:
    """:func:`_mirror_file` for each ``(path, text, recorded)``: its result, or the OSError it raised."""
    outcomes: list[bool | OSError] = []
    for path, text, recorded in writes:
        try:
            outcomes.append(_mirror_file(path, text, recorded))
        except OSError as exc:
            outcomes.append(exc)
    return outcomes


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
