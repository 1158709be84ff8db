"""TenantDB on the pool of core.storage.db.create_pool: the search_path goes with BEGIN, the
session reset with COMMIT, and a connection back in the pool keeps nothing of its tenant."""

from __future__ import annotations

import secrets

import asyncpg
import pytest
from _round_trips import RoundTrips

from core.storage.db import TenantDB, create_pool

POOL_SIZE = 2


@pytest.fixture
async def schemas(tenantry_database_url):
    """Two tenant schemas, each with a table ``t`` holding its own name; dropped afterwards."""
    names = [f"tdb{secrets.token_hex(3)}_{tenant}" for tenant in ("a", "b")]
    admin = await asyncpg.connect(tenantry_database_url)
    try:
        for name in names:
            await admin.execute(
                f'CREATE SCHEMA "{name}"; CREATE TABLE "{name}".t (v text);'
                f" INSERT INTO \"{name}\".t VALUES ('{name}');"
                f' CREATE TABLE "{name}".d (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)'
            )
        yield names
    finally:
        for name in names:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.close()


@pytest.fixture
async def pool(tenantry_database_url):
    """The runtime's kind of pool, with both its connections open."""
    pool = await create_pool(tenantry_database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        yield pool
    finally:
        await pool.close()


async def pooled_sessions(pool: asyncpg.Pool) -> list[dict[str, object]]:
    """What every connection of ``pool`` holds from its sessions (all of them taken at once)."""
    held = [await pool.acquire() for _ in range(POOL_SIZE)]
    try:
        return [
            dict(
                await conn.fetchrow(
                    "SELECT current_setting('search_path') AS search_path,"
                    " current_setting('statement_timeout') AS statement_timeout,"
                    " (SELECT count(*) FROM pg_listening_channels()) AS listening,"
                    " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    "  AND pid = pg_backend_pid()) AS advisory_locks"
                )
            )
            for conn in held
        ]
    finally:
        for conn in held:
            await pool.release(conn)


CLEAN = {
    "search_path": '"$user", public',
    "statement_timeout": "0",
    "listening": 0,
    "advisory_locks": 0,
}


async def test_a_transaction_costs_two_round_trips_of_its_own(pool, schemas, monkeypatch):
    db = TenantDB(pool, schemas[0])
    async with db.transaction() as conn:  # prepares the statement below
        await conn.fetchval("SELECT v FROM t WHERE v <> $1", "")
    trips = RoundTrips(monkeypatch)

    async with db.transaction() as conn:
        assert await conn.fetchval("SELECT v FROM t WHERE v <> $1", "") == schemas[0]

    sent = [text for _task, _backend, text in trips.calls]
    assert sent == [
        f'BEGIN ISOLATION LEVEL READ COMMITTED;SET LOCAL search_path TO "{schemas[0]}"',
        "SELECT v FROM t WHERE v <> $1",
        "COMMIT;SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
    ]
    assert await pooled_sessions(pool) == [CLEAN, CLEAN]


async def test_what_a_transaction_left_in_its_session_is_reset_with_the_commit(pool, schemas):
    db = TenantDB(pool, schemas[0])
    async with db.transaction() as conn:
        # Session-level, not LOCAL: they would outlive the COMMIT.
        await conn.execute(f'SET search_path TO "{schemas[0]}"')
        await conn.execute("SET statement_timeout = 1234")
        await conn.execute("LISTEN somewhere")
        await conn.execute("SELECT pg_advisory_lock(42)")

    assert await pooled_sessions(pool) == [CLEAN, CLEAN]
    # The next tenant on the same connections sees its own schema only.
    assert await TenantDB(pool, schemas[1]).fetchval("SELECT v FROM t") == schemas[1]
    async with TenantDB(pool, schemas[1]).transaction() as conn:
        assert await conn.fetchval("SELECT v FROM t") == schemas[1]


async def test_a_commit_that_fails_writes_nothing_and_the_release_resets(pool, schemas):
    db = TenantDB(pool, schemas[0])
    with pytest.raises(asyncpg.UniqueViolationError):
        async with db.transaction() as conn:
            await conn.execute("SET statement_timeout = 1234")
            await conn.execute("INSERT INTO t VALUES ('half')")
            await conn.execute("INSERT INTO d VALUES (1), (1)")  # refused at COMMIT

    assert await db.fetchval("SELECT count(*) FROM t WHERE v = 'half'") == 0
    assert await pooled_sessions(pool) == [CLEAN, CLEAN]
    async with db.transaction() as conn:  # the connection is fit for the next transaction
        await conn.execute("INSERT INTO t VALUES ('whole')")
    assert await db.fetchval("SELECT count(*) FROM t WHERE v = 'whole'") == 1


async def test_an_error_in_the_block_rolls_back_and_the_release_resets(pool, schemas):
    db = TenantDB(pool, schemas[0])
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute(f'SET search_path TO "{schemas[0]}"')
            await conn.execute("INSERT INTO t VALUES ('half')")
            raise RuntimeError("the handler failed")

    assert await db.fetchval("SELECT count(*) FROM t WHERE v = 'half'") == 0
    assert await pooled_sessions(pool) == [CLEAN, CLEAN]


async def test_nested_blocks_are_savepoints(pool, schemas):
    db = TenantDB(pool, schemas[0], max_connections=1)
    async with db.transaction(isolation="serializable") as conn:
        assert await conn.fetchval("SHOW transaction_isolation") == "serializable"
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await conn.execute("CREATE UNIQUE INDEX ON t (v)")
                await conn.execute("INSERT INTO t VALUES ($1)", schemas[0])
        async with conn.transaction():
            await conn.execute("INSERT INTO t VALUES ('kept')")

    assert sorted(r["v"] for r in await db.fetch("SELECT v FROM t")) == ["kept", schemas[0]]
    assert await pooled_sessions(pool) == [CLEAN, CLEAN]


async def test_a_session_acquire_is_reset_on_release(pool, schemas):
    db = TenantDB(pool, schemas[0])
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT v FROM t") == schemas[0]
        await conn.execute("SET statement_timeout = 1234")

    assert await pooled_sessions(pool) == [CLEAN, CLEAN]


async def test_a_pool_of_plain_connections_gets_the_statements_one_by_one(
    tenantry_database_url, schemas, monkeypatch
):
    pool = await asyncpg.create_pool(tenantry_database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        db = TenantDB(pool, schemas[1])
        trips = RoundTrips(monkeypatch)
        async with db.transaction() as conn:
            assert await conn.fetchval("SELECT v FROM t") == schemas[1]
        sent = [text for _task, _backend, text in trips.calls]
        assert sent == [
            "BEGIN ISOLATION LEVEL READ COMMITTED;",
            f'SET LOCAL search_path TO "{schemas[1]}"',
            "SELECT v FROM t",
            "COMMIT;",
            "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
        ]
        assert await pooled_sessions(pool) == [CLEAN, CLEAN]
    finally:
        pool.terminate()


async def test_transaction_pooling_sends_the_search_path_with_begin_and_no_reset(
    tenantry_database_url, schemas, monkeypatch
):
    pool = await create_pool(
        tenantry_database_url, min_size=POOL_SIZE, max_size=POOL_SIZE, transaction_pooling=True
    )
    try:
        db = TenantDB(pool, schemas[0], transaction_pooling=True)
        trips = RoundTrips(monkeypatch)
        async with db.acquire() as conn:
            assert await conn.fetchval("SELECT v FROM t") == schemas[0]
        sent = [text for _task, _backend, text in trips.calls]
        assert sent == [
            f'BEGIN ISOLATION LEVEL READ COMMITTED;SET LOCAL search_path TO "{schemas[0]}"',
            "SELECT v FROM t",
            "COMMIT;",
        ]
        # SET LOCAL ended with the transaction, on whichever server connection it ran.
        assert [s["search_path"] for s in await pooled_sessions(pool)] == [
            CLEAN["search_path"]
        ] * POOL_SIZE
    finally:
        await pool.close()
