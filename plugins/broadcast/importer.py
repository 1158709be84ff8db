"""``tenantry import <tenant> subscribers <file.csv>``: subscribers from the old system's export.

The CSV has a header line naming its columns; ``user_id`` (also accepted:
``telegram_id``, ``chat_id``, ``id``) is required, ``first_name``,
``username`` and ``language_code`` (or ``language``) are optional, other
columns are ignored. A user id already subscribed (or imported by an earlier
run) is skipped, so a re-run adds no duplicates. Each bad line is reported
with its line number (the header is line 1) and the rest are imported.
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

from core.imports import ImportIssue, ImportReport
from plugins.broadcast import repository as repo

__all__ = ["import_subscribers", "import_text"]

_ID_COLUMNS = ("user_id", "telegram_id", "chat_id", "id")
_LANGUAGE = ("language_code", "language")
MAX_USER_ID = 2**63 - 1
"""Bot API: User.id fits in a signed 64-bit integer."""


def _pick(row: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = row.get(name)
        if value is not None:
            return value.strip()
    return ""


async def import_text(conn: Any, text: str) -> ImportReport:
    """Import subscribers from CSV ``text`` on ``conn`` (inside a transaction in the tenant schema).

    Returns:
        What was read, written, skipped as already present, and every bad line.
    """
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if not any(name in header for name in _ID_COLUMNS):
        report.issues.append(
            ImportIssue(1, f"the header must name a user id column ({', '.join(_ID_COLUMNS)})")
        )
        return report
    reader.fieldnames = header
    seen: set[int] = set()
    for row in reader:
        line = reader.line_num
        report.read += 1
        if None in row:
            report.issues.append(ImportIssue(line, "more fields than the header names"))
            continue
        raw_id = _pick(row, _ID_COLUMNS)
        if not (raw_id.isascii() and raw_id.isdigit()) or not 1 <= int(raw_id) <= MAX_USER_ID:
            report.issues.append(ImportIssue(line, f"user id {raw_id!r} is not a Telegram user id"))
            continue
        user_id = int(raw_id)
        if user_id in seen:
            report.issues.append(ImportIssue(line, f"user id {user_id} appears twice in the file"))
            continue
        seen.add(user_id)
        first_name = _pick(row, ("first_name", "name")).replace("\x00", "")
        username = _pick(row, ("username",)).lstrip("@").replace("\x00", "") or None
        language = _pick(row, _LANGUAGE).replace("\x00", "") or None
        if (
            len(first_name) > 256
            or (username and len(username) > 64)
            or (language and len(language) > 35)
        ):
            report.issues.append(ImportIssue(line, "a name, username or language is too long"))
            continue
        if await repo.import_subscriber(conn, user_id, first_name, username, language):
            report.written += 1
        else:
            report.skipped += 1
    return report


async def import_subscribers(conn: Any, path: Path, tenant_config: Any) -> ImportReport:
    """The ``subscribers`` importer of ``tenantry import`` (:class:`core.imports.Importer`).

    Raises:
        OSError: the file cannot be read.
        UnicodeDecodeError: it is not UTF-8.
    """
    text = await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
    return await import_text(conn, text)
