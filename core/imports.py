"""Importers: what ``tenantry import`` runs to load a tenant's data from a file.

A plugin returns :class:`Importer` objects from the ``register_importers``
hook (``core/hookspecs.py``). ``tenantry import <tenant> <importer> <file>``
runs one inside a transaction in the tenant's schema (migrated first); with
``--dry-run`` the transaction is rolled back, so the report says what would
be written and nothing is. An importer that keeps a log of its runs gives
``Importer.record``, which the command calls after that transaction ended
(committed or rolled back), so dry runs and refused runs are logged too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["ImportIssue", "ImportReport", "Importer"]


class ImportIssue(msgspec.Struct, frozen=True):
    """A line of the input that was not imported.

    Attributes:
        line: 1-based line number in the file (the header is line 1).
        reason: why, in plain English.
        file: the file, for importers of several files (``Importer.many_files``);
            empty: the one file given.
    """

    line: int
    reason: str
    file: str = ""


class ImportReport(msgspec.Struct):
    """What an import wrote (or, in a dry run, would write).

    Attributes:
        read: data lines read (the header not counted).
        written: rows inserted.
        skipped: valid lines already present (a re-run adds no duplicates).
        issues: bad lines, each with its line number.
        details: more report lines printed after the summary (counts per
            kind of row, notes); empty by default.
        counts: per kind of row, ``{"new": n, "existing": n}`` (for
            ``Importer.record``); empty by default.
    """

    read: int = 0
    written: int = 0
    skipped: int = 0
    issues: list[ImportIssue] = []
    details: list[str] = []
    counts: dict[str, dict[str, int]] = {}


class Importer(msgspec.Struct, frozen=True):
    """An importer a plugin offers to ``tenantry import``.

    Attributes:
        name: what operators type (``subscribers``); unique among the enabled plugins.
        feature: the plugin's feature key; the tenant must enable it.
        description: one line for ``tenantry import --help``.
        run: ``async run(conn, path, tenant_config) -> ImportReport``; ``conn``
            is inside a transaction whose search_path is the tenant's schema.
        many_files: the importer reads a set of files at once (``tenantry
            import <tenant> <importer> <file>...``): ``run`` gets the list of
            paths in place of one path. Default False (exactly one file).
        record: ``async record(conn, report, paths, dry_run) -> None``, or None:
            log the run (a sync log). Called once ``run``'s transaction was
            committed, or rolled back for ``--dry-run``, in a transaction of its
            own in the tenant's schema, with the report ``run`` returned and
            the list of paths; not called when ``run`` raised.
    """

    name: str
    feature: str
    description: str
    run: Callable[[Any, Path | list[Path], Any], Awaitable[ImportReport]]
    many_files: bool = False
    record: Callable[[Any, ImportReport, list[Path], bool], Awaitable[None]] | None = None
