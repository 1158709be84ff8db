"""Durable domain events: outbox in the publishing transaction, relay to Redis streams, consumer groups.

Everything runs on the real PostgreSQL and Redis: events are published through
``tenant.publish`` (as plugins do) and observed through the sample plugin's
``on_event``, the outbox table and the streams themselves.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from core.events.model import DomainEvent
from core.events.streams import encode_event
from core.testing.plugin import TenantryHarness


async def _start(tenantry, sample, **settings):
    config = tenantry.add_tenant("filin", features={"sample": {}})
    await tenantry.start(watch=False, plugins=[("sample", sample)], **settings)
    return config, tenantry.runtime.registry.get("filin")


async def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _titles(sample):
    return [payload["title"] for _, _, payload in sample.EVENTS]


async def test_an_event_of_a_rolled_back_transaction_is_never_delivered(tenantry, sample):
    _, tenant = await _start(tenantry, sample)
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with tenant.db.transaction() as conn:
            await tenant.publish("sample.created", {"title": "ghost"}, conn=conn)
            raise RuntimeError("changed my mind")
    async with tenant.db.transaction() as conn:
        await tenant.publish("sample.created", {"title": "kept"}, conn=conn)
    assert await tenant.events_delivered()
    assert _titles(sample) == ["kept"]
    outbox = await tenantry.sql(
        f'SELECT count(*) AS n FROM "{tenant.config.schema}".tenantry_outbox'
    )
    assert outbox == [{"n": 0}]


async def test_publishing_outside_a_transaction_is_refused(tenantry, sample):
    _, tenant = await _start(tenantry, sample)
    async with tenant.db.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await tenant.publish("sample.created", {"title": "loose"}, conn=conn)


async def test_an_event_is_delivered_once_with_a_stable_id_in_publication_order(tenantry, sample):
    _, tenant = await _start(tenantry, sample)
    published = []
    for title in ("one", "two", "three"):
        async with tenant.db.transaction() as conn:
            published.append(await tenant.publish("sample.created", {"title": title}, conn=conn))
    assert await tenant.events_delivered()
    assert _titles(sample) == ["one", "two", "three"]
    assert sample.EVENT_IDS == [event.id for event in published]
    entries = await tenantry.runtime.redis.xrange(tenantry.runtime.events.layout.key_for("filin"))
    assert [fields["id"] for _, fields in entries] == [event.id for event in published]


async def test_a_committed_event_left_in_the_outbox_by_a_crash_is_moved_at_start(tenantry, sample):
    """The state a crash between commit and relay leaves: a committed outbox row, no runtime."""
    _, tenant = await _start(tenantry, sample)
    schema = tenant.config.schema
    await tenantry.stop()
    await tenantry.sql(
        f'INSERT INTO "{schema}".tenantry_outbox (event_id, name, payload) '
        """VALUES ('e0000000000000000000000000000001', 'sample.created', '{"title": "orphan"}')"""
    )
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    # Not events_delivered(): it wakes the relay itself, and the start must.
    await _wait_for(lambda: _titles(sample) == ["orphan"], timeout=5)
    assert sample.EVENT_IDS == ["e0000000000000000000000000000001"]


async def test_an_event_the_relay_sends_twice_is_handled_once_per_group(tenantry, sample):
    """A relay that dies between its XADD and its commit sends the rows again at the next start."""
    _, tenant = await _start(tenantry, sample, events_done_ttl_seconds=600)
    async with tenant.db.transaction() as conn:
        first = await tenant.publish("sample.created", {"title": "once"}, conn=conn)
    assert await tenant.events_delivered()
    redis = tenantry.runtime.redis
    layout = tenantry.runtime.events.layout
    stream = layout.key_for("filin")
    # The same entry once more, as the relay's second attempt writes it.
    await redis.xadd(stream, encode_event(first))
    async with tenant.db.transaction() as conn:
        second = await tenant.publish("sample.created", {"title": "twice?"}, conn=conn)
    assert await tenant.events_delivered()
    assert [fields["id"] for _, fields in await redis.xrange(stream)] == [
        first.id,
        first.id,
        second.id,
    ]
    assert sample.EVENT_IDS == [first.id, second.id]
    assert await redis.xpending(stream, "sample") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
    # The handled marker, which skipped the copy, lives TENANTRY_EVENTS_DONE_TTL_SECONDS.
    assert 0 < await redis.ttl(layout.done_key("sample", first.id, stream)) <= 600


async def test_the_streams_keep_about_events_maxlen_entries(tenantry, sample):
    """Retention: each shard stream is trimmed to about TENANTRY_EVENTS_MAXLEN entries."""
    # Nobody consumes, so trimming is all that shortens the stream.
    _, tenant = await _start(tenantry, sample, events_shards=1, events_maxlen=50, run_events=False)
    async with tenant.db.transaction() as conn:
        for n in range(600):
            await tenant.publish("sample.created", {"title": f"t{n}"}, conn=conn)
    outbox = f'SELECT count(*) AS n FROM "{tenant.config.schema}".tenantry_outbox'
    deadline = time.monotonic() + 10
    while (await tenantry.sql(outbox))[0]["n"]:
        assert time.monotonic() < deadline, "the relay did not move the events"
        await asyncio.sleep(0.05)
    stream = tenantry.runtime.events.layout.key_for("filin")
    assert tenantry.runtime.events.layout.keys == (stream,)
    # MAXLEN ~ trims whole stream nodes (stream-node-max-entries, 100 by default):
    # at least 50 are kept, and far fewer than the 600 moved.
    assert 50 <= await tenantry.runtime.redis.xlen(stream) <= 250


async def test_a_missed_notification_is_healed_by_the_sweep(tenantry, sample):
    _, tenant = await _start(tenantry, sample, events_sweep_seconds=0.2)
    # Committed without the NOTIFY a publish sends: as if the listener was down.
    await tenantry.sql(
        f'INSERT INTO "{tenant.config.schema}".tenantry_outbox (event_id, name, payload) '
        """VALUES ('e0000000000000000000000000000002', 'sample.created', '{"title": "quiet"}')"""
    )
    await _wait_for(lambda: _titles(sample) == ["quiet"], timeout=5)


async def test_a_consumer_that_fails_gets_the_event_again(tenantry, sample):
    _, tenant = await _start(tenantry, sample, events_claim_idle_seconds=0.3)
    event = await tenant.publish("sample.created", {"title": "crash-once"})
    await _wait_for(lambda: sample.EVENT_IDS == [event.id])
    assert event.id in sample.FAILED_ONCE
    assert await tenant.events_delivered(timeout=5)
    attempts = await tenantry.runtime.redis.hget(
        tenantry.runtime.events.layout.attempts_key("sample"), event.id
    )
    assert attempts is None, "the attempt counter is cleared once handled"


async def test_an_event_that_keeps_failing_is_dead_lettered_and_does_not_block_others(
    tenantry, sample
):
    _, tenant = await _start(tenantry, sample, events_claim_idle_seconds=0.2, events_max_attempts=3)
    poison = await tenant.publish("sample.created", {"title": "crash-always"})
    await tenant.publish("sample.created", {"title": "after"})
    layout = tenantry.runtime.events.layout
    redis = tenantry.runtime.redis

    async def dead_ids():
        return [fields["id"] for _, fields in await redis.xrange(layout.dead_letters)]

    deadline = time.monotonic() + 10
    while poison.id not in await dead_ids():
        assert time.monotonic() < deadline, "the failing event was not dead-lettered"
        await asyncio.sleep(0.05)
    assert _titles(sample) == ["after"]
    assert await tenant.events_delivered(timeout=5)


async def test_an_event_published_on_one_runtime_is_consumed_on_another(
    tenantry, sample, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api
):
    config = tenantry.add_tenant("filin", features={"sample": {}})
    (tmp_path / "b").mkdir()
    other = TenantryHarness(tmp_path / "b", tenantry_database_url, tenantry_redis_url, bot_api)
    other.write_tenant("filin", yaml.safe_dump(config))
    shared = {"control_schema": tenantry.control_schema, "queue_name": f"q-{tenantry.run_id}"}
    try:
        # A publishes and does not consume; B consumes.
        await tenantry.start(watch=False, plugins=[("sample", sample)], run_events=False, **shared)
        await other.start(watch=False, plugins=[("sample", sample)], **shared)
        on_a = tenantry.runtime.registry.get("filin")
        event = await on_a.publish("sample.created", {"title": "cross"})
        await _wait_for(lambda: sample.EVENT_IDS == [event.id])
        assert other.runtime.events.consumers.handled == 1
        assert tenantry.runtime.events.consumers.handled == 0
    finally:
        await other.stop()


async def test_two_runtimes_share_a_group_and_never_handle_one_event_twice_or_at_once(
    tenantry, sample, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api
):
    config = tenantry.add_tenant("filin", features={"sample": {}})
    (tmp_path / "b").mkdir()
    other = TenantryHarness(tmp_path / "b", tenantry_database_url, tenantry_redis_url, bot_api)
    other.write_tenant("filin", yaml.safe_dump(config))
    shared = {
        "control_schema": tenantry.control_schema,
        "queue_name": f"q-{tenantry.run_id}",
        # Shorter than a "hold" handler: the other runtime tries to claim entries in progress.
        "events_claim_idle_seconds": 0.2,
    }
    try:
        await tenantry.start(watch=False, plugins=[("sample", sample)], **shared)
        await other.start(watch=False, plugins=[("sample", sample)], **shared)
        tenant = tenantry.runtime.registry.get("filin")
        published = []
        for n in range(40):
            title = "hold" if n % 8 == 0 else f"e{n}"
            async with tenant.db.transaction() as conn:
                published.append(
                    await tenant.publish("sample.created", {"title": title}, conn=conn)
                )
        await _wait_for(lambda: len(sample.EVENT_IDS) >= len(published), timeout=20)
        await asyncio.sleep(0.5)  # room for a wrong second delivery to show up
        assert sorted(sample.EVENT_IDS) == sorted(e.id for e in published)
        assert sample.OVERLAPS == []
        handled = tenantry.runtime.events.consumers.handled + other.runtime.events.consumers.handled
        assert handled == len(published)
    finally:
        await other.stop()


async def test_removing_a_tenant_first_delivers_its_committed_events(tenantry, sample):
    _, tenant = await _start(tenantry, sample)
    await tenant.publish("sample.created", {"title": "slow"})
    removed = await tenantry.client.delete("/admin/tenants/filin", headers=tenantry.admin_headers())
    assert removed.status_code == 200
    assert _titles(sample) == ["slow"]


async def test_two_copies_of_an_event_in_one_read_are_handled_once_and_both_acknowledged(
    tenantry, sample
):
    """A relay's re-send can reach a group in the same read as the first copy."""
    _, tenant = await _start(tenantry, sample, events_claim_idle_seconds=30)
    redis = tenantry.runtime.redis
    stream = tenantry.runtime.events.layout.key_for("filin")
    copied = DomainEvent(
        name="sample.created", payload={"title": "pair"}, tenant_id="filin", id="f" * 32
    )
    # Both copies in one MULTI: the group's blocked read gets them in one batch.
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(stream, encode_event(copied))
    pipe.xadd(stream, encode_event(copied))
    await pipe.execute()
    # Well within the 30 s claim delay: the copy is acknowledged without waiting for a claim.
    assert await tenant.events_delivered(timeout=5)
    assert sample.EVENT_IDS == [copied.id]


async def test_a_group_no_tenant_enables_still_acknowledges_every_event(tenantry, sample):
    """Its reader pauses ``idle_read_seconds`` (0.1 s) after each short read, and still catches
    up: the group's last delivered id reaches the stream's newest entry, with nothing pending."""
    _, tenant = await _start(tenantry, sample)
    consumers = tenantry.runtime.events.consumers
    idle = next(group for group in consumers.groups if group not in tenant.features)
    redis = tenantry.runtime.redis
    stream = tenantry.runtime.events.layout.key_for("filin")
    for title in ("a", "b", "c", "d"):
        async with tenant.db.transaction() as conn:
            await tenant.publish("sample.created", {"title": title}, conn=conn)
    assert await tenant.events_delivered()
    [(last_id, _fields)] = await redis.xrevrange(stream, count=1)

    async def idle_group() -> dict:
        return next(g for g in await redis.xinfo_groups(stream) if g["name"] == idle)

    deadline = time.monotonic() + 5
    while (group := await idle_group())["last-delivered-id"] != last_id or group["pending"]:
        assert time.monotonic() < deadline, group
        await asyncio.sleep(0.02)
    assert _titles(sample) == ["a", "b", "c", "d"]


async def test_the_outbox_row_goes_with_commit_and_is_there_for_every_later_statement(
    tenantry, sample
):
    """The row waits for the COMMIT's query, but any statement after the publish sees it
    (it is sent first), a savepoint rolled back takes its row with it, and a payload that
    holds dollar signs and quotes arrives as it was published."""
    _, tenant = await _start(tenantry, sample)
    tricky = {"title": "it's $o$ a $$ test $o", "note": "\\' -- ;COMMIT; $tag$"}
    async with tenant.db.transaction() as conn:
        await tenant.publish("sample.created", tricky, conn=conn)
        assert await conn.fetchval("SELECT count(*) FROM tenantry_outbox") == 1
        async with conn.transaction():  # a savepoint released: its row stays
            await tenant.publish("sample.created", {"title": "inner"}, conn=conn)
        with pytest.raises(RuntimeError, match="undo"):
            async with conn.transaction():
                await tenant.publish("sample.created", {"title": "undone"}, conn=conn)
                raise RuntimeError("undo")
        await tenant.publish("sample.created", {"title": "last"}, conn=conn)
    assert await tenant.events_delivered()
    assert [payload for _, _, payload in sample.EVENTS] == [
        tricky,
        {"title": "inner"},
        {"title": "last"},
    ]
    outbox = await tenantry.sql(
        f'SELECT count(*) AS n FROM "{tenant.config.schema}".tenantry_outbox'
    )
    assert outbox == [{"n": 0}]
    # The connection went back to the pool with nothing kept: the next block sends only its own.
    async with tenant.db.transaction() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tenantry_outbox") == 0


async def test_an_outbox_row_postgresql_refuses_fails_the_commit_and_leaves_nothing(
    tenantry, sample
):
    """jsonb refuses ``\\u0000``: sent with the COMMIT, the row fails it, the whole block
    rolls back (the change it described too), and the pooled connection serves again."""
    import asyncpg

    _, tenant = await _start(tenantry, sample)
    schema = tenant.config.schema
    with pytest.raises(asyncpg.PostgresError):
        async with tenant.db.transaction() as conn:
            await conn.execute("CREATE TABLE probe_commit (n int)")
            await tenant.publish("sample.created", {"title": "nul \x00 inside"}, conn=conn)
    tables = await tenantry.sql(
        f"SELECT count(*) AS n FROM pg_tables WHERE schemaname = '{schema}' "
        "AND tablename = 'probe_commit'"
    )
    assert tables == [{"n": 0}]
    for _ in range(3):  # every connection of the small pool is usable again
        async with tenant.db.transaction() as conn:
            assert await conn.fetchval("SELECT count(*) FROM tenantry_outbox") == 0
    await tenant.publish("sample.created", {"title": "after"})
    assert await tenant.events_delivered()
    assert [payload for _, _, payload in sample.EVENTS] == [{"title": "after"}]
