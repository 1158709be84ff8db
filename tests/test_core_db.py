"""TenantDB on the pool of core.storage.db.create_pool: the search_path goes with BEGIN, the
session reset with COMMIT, and a connection back in the pool keeps nothing of its tenant."""

from __future__ import annotations

import asyncio
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


async def test_a_lock_goes_with_begin_and_serialises_transactions_of_its_key(
    pool, schemas, monkeypatch
):
    # Two TenantDBs, so neither waits for the other's connection cap (1 of 2).
    db, other_db = TenantDB(pool, schemas[0]), TenantDB(pool, schemas[0])
    key = f"tenantry:test-cap:{schemas[0]}:7001"
    trips = RoundTrips(monkeypatch)
    first_holds, first_may_commit = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.transaction(lock=key) as conn:
            await conn.execute("INSERT INTO t VALUES ('first')")
            first_holds.set()
            await first_may_commit.wait()

    async def second() -> int:
        await first_holds.wait()
        async with other_db.transaction(lock=key) as conn:
            # A later statement than the lock: it sees what committed while it waited.
            return await conn.fetchval("SELECT count(*) FROM t WHERE v = 'first'")

    first_task = asyncio.create_task(first())
    second_task = asyncio.create_task(second())
    try:
        await first_holds.wait()
        await asyncio.sleep(0.2)
        assert not second_task.done()  # waiting for the key
    finally:
        first_may_commit.set()
    await first_task
    assert await second_task == 1

    begins = [text for _task, _backend, text in trips.calls if text.startswith("BEGIN")]
    assert (
        begins
        == [
            f'BEGIN ISOLATION LEVEL READ COMMITTED;SET LOCAL search_path TO "{schemas[0]}"'
            f";SELECT pg_advisory_xact_lock(hashtextextended('{key}', 0))"
        ]
        * 2
    )
    assert await pooled_sessions(pool) == [CLEAN, CLEAN]


async def test_a_lock_on_a_pool_of_plain_connections_is_a_statement_of_its_own(
    tenantry_database_url, schemas
):
    pool = await asyncpg.create_pool(tenantry_database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        db = TenantDB(pool, schemas[1])
        async with db.transaction(lock="tenantry:test-cap:plain") as conn:
            locks = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            assert locks == 1
            assert await conn.fetchval("SELECT v FROM t") == schemas[1]
    finally:
        await pool.close()


@pytest.mark.parametrize("key", ["", "it's", "a b", "x" * 201, "tenant;DROP"])
async def test_a_lock_key_is_refused_unless_plain(pool, schemas, key):
    with pytest.raises(ValueError, match="advisory lock key"):
        async with TenantDB(pool, schemas[0]).transaction(lock=key):
            pass
