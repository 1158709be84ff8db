"""Moving a tenant's schema to another PostgreSQL server (``tenantry tenants move``).

The copy is logical, through asyncpg: the target schema is built by the
tenant's own migrations (so it has exactly the structure the code expects,
whatever the two servers' major versions), emptied, then every table is
streamed with binary ``COPY`` from one consistent snapshot of the source, in
foreign-key order, and the sequences are set to the source's values. The row
count of every table is compared before the target transaction commits: a
mismatch rolls the whole copy back. The source is left as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import yaml

__all__ = ["MoveError", "TableCount", "copy_schema", "with_database"]

_CHUNKS_IN_FLIGHT = 16
"""COPY chunks buffered between the source and the target connection (about 64 KiB each)."""


class MoveError(Exception):
    """The copy could not be made or did not match (the target is rolled back)."""


class TableCount(msgspec.Struct, frozen=True):
    """Rows of one table on each side of a copy.

    Attributes:
        table: the table name (in the tenant's schema).
        source: rows in the source snapshot.
        target: rows in the target after the copy, before its commit.
    """

    table: str
    source: int
    target: int


def with_database(text: str, database: str) -> str:
    """``text`` (a tenant file) with ``storage.database`` set to ``database``.

    An edit of the text, not a re-dump, so comments, ``${VAR}`` references
    and layout stay: the value is replaced where it is written, or a
    ``database:`` key is added as the first key of ``storage`` (a
    ``storage:`` block is appended when there is none).

    Raises:
        MoveError: the file is not a mapping at the top.
    """
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise MoveError("the tenant file is not a mapping")
    storage = next((v for k, v in root.value if getattr(k, "value", None) == "storage"), None)
    if storage is None:
        body = text if text.endswith("\n") or not text else text + "\n"
        return body + f"storage:\n  database: {database}\n"
    if isinstance(storage, yaml.ScalarNode) and storage.value in ("", "~", "null"):
        start, end = storage.start_mark.index, storage.end_mark.index
        return text[:start] + f" {{database: {database}}}" + text[end:]
    if not isinstance(storage, yaml.MappingNode):
        raise MoveError("storage is not a mapping")
    for key, value in storage.value:
        if getattr(key, "value", None) == "database":
            start, end = value.start_mark.index, value.end_mark.index
            return text[:start] + database + text[end:]
    if storage.flow_style or not storage.value:
        brace = storage.start_mark.index
        if not storage.value:  # storage: {}
            return text[:brace] + f"{{database: {database}}}" + text[storage.end_mark.index :]
        return text[: brace + 1] + f"database: {database}, " + text[brace + 1 :]
    first_key = storage.value[0][0]
    line_start = text.rfind("\n", 0, first_key.start_mark.index) + 1
    indent = " " * first_key.start_mark.column
    return text[:line_start] + f"{indent}database: {database}\n" + text[line_start:]


async def copy_schema(
    source: asyncpg.Pool,
    target: asyncpg.Pool,
    schema: str,
    prepare: Callable[[asyncpg.Pool], Awaitable[object]],
) -> list[TableCount]:
    """Copy every table and sequence of ``schema`` from ``source`` to ``target``.

    Args:
        source: the pool of the server the tenant is on.
        target: the pool of the server it moves to.
        schema: the tenant's schema (a validated identifier).
        prepare: brings ``schema`` up to date on a pool (the tenant's
            migrations and status constraints); awaited on ``target`` first.

    Returns:
        The row counts of every table, source and target (equal).

    Raises:
        MoveError: the target lacks a table of the source, or a count differs.
        asyncpg.PostgresError, OSError: a server refused or is unavailable.
    """
    async with target.acquire() as dst:
        await unfence(dst, schema)  # a copy left there by an earlier move away
    await prepare(target)
    async with source.acquire() as src, target.acquire() as dst:
        src_transaction = src.transaction(isolation="repeatable_read")
        await src_transaction.start()
        try:
            counts = await _copy_locked(src, dst, schema)
            # The old copy refuses writes from the moment the new one holds the
            # data: a runtime that missed the move gets 25006 (a 503, retried)
            # instead of writing where nobody reads.
            await fence(src, schema)
        except BaseException:
            await src_transaction.rollback()
            raise
        await src_transaction.commit()
    return counts


async def _copy_locked(
    src: asyncpg.Connection, dst: asyncpg.Connection, schema: str
) -> list[TableCount]:
    """:func:`copy_schema`'s copy, in ``src``'s open transaction; ``dst``'s commits on success."""
    async with dst.transaction():
        tables = await _tables_in_order(src, schema)
        missing = set(tables) - set(await _tables_in_order(dst, schema))
        if missing:
            raise MoveError(
                f"the target schema lacks {', '.join(sorted(missing))} "
                "(the tenant's migrations differ between the servers)"
            )
        quoted = ", ".join(f'"{schema}"."{t}"' for t in tables)
        if tables:
            # Writers that still reach the old copy wait until the copy is
            # done; readers go on.
            await src.execute(f"LOCK TABLE {quoted} IN EXCLUSIVE MODE")
            await dst.execute(f"TRUNCATE {quoted}")
        counts: list[TableCount] = []
        for table in tables:
            columns = await _copied_columns(src, schema, table)
            await _stream(src, dst, schema, table, columns)
            source_rows = await src.fetchval(f'SELECT count(*) FROM "{schema}"."{table}"')
            target_rows = await dst.fetchval(f'SELECT count(*) FROM "{schema}"."{table}"')
            counts.append(TableCount(table, source_rows, target_rows))
        await _copy_sequences(src, dst, schema)
        wrong = [c for c in counts if c.source != c.target]
        if wrong:
            raise MoveError(
                "row counts differ: "
                + ", ".join(f"{c.table} {c.source} != {c.target}" for c in wrong)
            )
    return counts


_FENCE = "tenantry_moved"


async def fence(conn: asyncpg.Connection, schema: str) -> None:
    """Make every table of ``schema`` refuse writes (the copy a tenant moved away from).

    A statement trigger on each table raises SQLSTATE 25006
    (``read_only_sql_transaction``) for INSERT, UPDATE, DELETE and TRUNCATE;
    reads go on. Runs in the caller's transaction; :func:`unfence` undoes it.
    """
    await conn.execute(
        f'CREATE OR REPLACE FUNCTION "{schema}".{_FENCE}() RETURNS trigger LANGUAGE plpgsql AS $f$'
        " BEGIN RAISE EXCEPTION 'tenant schema % moved to another server: this copy is kept"
        " read-only', TG_TABLE_SCHEMA USING ERRCODE = '25006'; END $f$"
    )
    # Partitioned parents too ('p'): a statement on the parent fires the parent's triggers.
    tables = await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')""",
        schema,
    )
    for (table,) in tables:
        await conn.execute(
            f"CREATE OR REPLACE TRIGGER {_FENCE} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f' ON "{schema}"."{table}" FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".{_FENCE}()'
        )


async def unfence(conn: asyncpg.Connection, schema: str) -> None:
    """Let ``schema``'s tables be written again (a tenant moves back onto this copy)."""
    await conn.execute(f'DROP FUNCTION IF EXISTS "{schema}".{_FENCE}() CASCADE')


async def _tables_in_order(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Ordinary tables and partitions of ``schema``, each after the tables it references."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname""",
        schema,
    )
    names = [r["relname"] for r in rows]
    edges = await conn.fetch(
        """SELECT child.relname AS child, parent.relname AS parent
           FROM pg_constraint k
           JOIN pg_class child ON child.oid = k.conrelid
           JOIN pg_class parent ON parent.oid = k.confrelid
           JOIN pg_namespace n ON n.oid = child.relnamespace
           WHERE k.contype = 'f' AND n.nspname = $1 AND parent.relnamespace = n.oid
             AND child.oid <> parent.oid""",
        schema,
    )
    parents: dict[str, set[str]] = {name: set() for name in names}
    for edge in edges:
        if edge["child"] in parents and edge["parent"] in parents:
            parents[edge["child"]].add(edge["parent"])
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(names):
        ready = [n for n in names if n not in placed and parents[n] <= placed]
        if not ready:  # a cycle of foreign keys: the rest in name order
            ready = [n for n in names if n not in placed]
        for name in ready:
            ordered.append(name)
            placed.add(name)
    return ordered


async def _copied_columns(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    """The columns COPY can write: not dropped, not generated."""
    rows = await conn.fetch(
        """SELECT a.attname FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0
             AND NOT a.attisdropped AND a.attgenerated = ''
           ORDER BY a.attnum""",
        schema,
        table,
    )
    return [r["attname"] for r in rows]


async def _stream(
    src: asyncpg.Connection,
    dst: asyncpg.Connection,
    schema: str,
    table: str,
    columns: list[str],
) -> None:
    """Binary ``COPY`` of one table, chunk by chunk, without holding it in memory."""
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_CHUNKS_IN_FLIGHT)

    async def produce() -> None:
        try:
            await src.copy_from_table(
                table, schema_name=schema, columns=columns, format="binary", output=chunks.put
            )
        finally:
            await chunks.put(None)

    async def consume():  # type: ignore[no-untyped-def]
        while (chunk := await chunks.get()) is not None:
            yield chunk

    async with asyncio.TaskGroup() as group:
        group.create_task(produce())
        group.create_task(
            dst.copy_to_table(
                table, schema_name=schema, columns=columns, format="binary", source=consume()
            )
        )


async def _copy_sequences(src: asyncpg.Connection, dst: asyncpg.Connection, schema: str) -> None:
    """Set every sequence of ``schema`` on the target to the source's position."""
    rows = await src.fetch(
        "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = $1", schema
    )
    for row in rows:
        name = f'"{schema}"."{row["sequencename"]}"'
        if row["last_value"] is None:  # never used: start from the beginning on the target
            await dst.execute(f"ALTER SEQUENCE {name} RESTART")
        else:
            await dst.execute("SELECT setval($1::regclass, $2, true)", name, row["last_value"])
