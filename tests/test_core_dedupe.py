"""The update ledger against real Redis: claims, done marks carried by claims, flushes, TTLs."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.updates.dedupe import DEDUPE_TTL_SECONDS, IN_PROGRESS_TTL_SECONDS, Claim, UpdateLedger


@pytest.fixture
async def redis(tenantry_redis_url):
    client = Redis.from_url(tenantry_redis_url, decode_responses=True)
    prefix = f"ledgertest{secrets.token_hex(4)}:"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_claim_reads_the_fsm_state_in_the_same_call(redis):
    client, prefix = redis
    ledger = UpdateLedger(client)
    await client.set(f"{prefix}fsm:state", "Booking:party_size")

    claim, state = await ledger.claim(f"{prefix}u:1", prefetch=f"{prefix}fsm:state")
    assert (claim, state) == (Claim.CLAIMED, "Booking:party_size")
    assert await client.get(f"{prefix}u:1") == "processing"
    assert 0 < await client.ttl(f"{prefix}u:1") <= IN_PROGRESS_TTL_SECONDS

    assert await ledger.claim(f"{prefix}u:2", prefetch=f"{prefix}fsm:none") == (
        Claim.CLAIMED,
        None,
    )
    assert await ledger.claim(f"{prefix}u:3") == (Claim.CLAIMED, None)


async def test_second_delivery_while_processing_is_in_progress_then_done(redis):
    client, prefix = redis
    runtime_a, runtime_b = UpdateLedger(client, flush_interval=60), UpdateLedger(client)
    key = f"{prefix}u:7"

    assert (await runtime_a.claim(key))[0] is Claim.CLAIMED
    assert (await runtime_b.claim(key))[0] is Claim.IN_PROGRESS
    runtime_a.done(key)
    # The mark waits in runtime A (long flush interval): B cannot know yet...
    assert (await runtime_b.claim(key))[0] is Claim.IN_PROGRESS
    # ...A's next call writes it, and both see the update as done.
    assert (await runtime_a.claim(key))[0] is Claim.DONE
    assert (await runtime_b.claim(key))[0] is Claim.DONE


async def test_done_marks_ride_along_with_the_next_claim(redis):
    client, prefix = redis
    ledger = UpdateLedger(client, flush_interval=60)  # the background writer never runs
    finished = [f"{prefix}u:{n}" for n in range(5)]
    for key in finished:
        assert (await ledger.claim(key))[0] is Claim.CLAIMED
        ledger.done(key)
    assert await client.get(finished[-1]) == "processing"

    await ledger.claim(f"{prefix}u:next")

    assert [await client.get(key) for key in finished] == ["done"] * 5
    ttl = await client.ttl(finished[0])
    assert IN_PROGRESS_TTL_SECONDS < ttl <= DEDUPE_TTL_SECONDS
    assert (await UpdateLedger(client).claim(finished[0]))[0] is Claim.DONE


async def test_a_quiet_runtime_flushes_its_marks_in_the_background(redis):
    client, prefix = redis
    ledger = UpdateLedger(client, flush_interval=0.01)
    ledger.start()
    try:
        key = f"{prefix}u:quiet"
        await ledger.claim(key)
        ledger.done(key)
        for _ in range(100):
            if await client.get(key) == "done":
                break
            await asyncio.sleep(0.01)
        assert await client.get(key) == "done"
    finally:
        await ledger.stop()


async def test_stop_writes_every_pending_mark(redis):
    client, prefix = redis
    ledger = UpdateLedger(client, flush_interval=60)
    ledger.start()
    keys = [f"{prefix}u:{n}" for n in range(600)]  # more than one call carries
    for key in keys:
        ledger.done(key)
    await ledger.stop()
    assert await client.mget(keys) == ["done"] * len(keys)


async def test_released_claim_can_be_claimed_again(redis):
    client, prefix = redis
    ledger = UpdateLedger(client)
    key = f"{prefix}u:released"
    await ledger.claim(key)
    await ledger.release(key)
    assert (await UpdateLedger(client).claim(key))[0] is Claim.CLAIMED


async def test_marks_survive_a_failed_claim(redis):
    _, prefix = redis
    dead = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    ledger = UpdateLedger(dead, flush_interval=60)
    ledger.done(f"{prefix}u:kept")
    with pytest.raises(RedisConnectionError):
        await ledger.claim(f"{prefix}u:new")
    assert ledger.pending == 1
    await dead.aclose()


async def _gone(client: Redis, key: str, timeout: float) -> bool:
    """Poll until ``key`` no longer exists (its lease lapsed), for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        # Redis' own state is watched: there is no event in this process to wait on.
        while await client.exists(key):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return True


async def test_a_claim_in_hand_outlives_its_lease_and_a_dead_holders_lapses(redis):
    client, prefix = redis
    holder = UpdateLedger(client, lease_seconds=1)
    holder.start()
    try:
        slow, finished = f"{prefix}u:slow", f"{prefix}u:finished"
        assert (await holder.claim(slow))[0] is Claim.CLAIMED
        assert (await holder.claim(finished))[0] is Claim.CLAIMED
        holder.done(finished)
        # Three leases later the update still in hand is still claimed: renewed.
        await asyncio.sleep(3)
        assert await client.get(slow) == "processing"
        assert 0 < await client.ttl(slow) <= 1
        # The done mark was written and never shortened by a renewal.
        assert await client.get(finished) == "done"
        assert await client.ttl(finished) > 1

        # The holder dies (kill -9: nothing renews, nothing releases): the claim
        # lapses within a lease and another runtime's delivery takes the update.
        assert holder._renewer is not None
        holder._renewer.cancel()
        assert await _gone(client, slow, timeout=3)
        other = UpdateLedger(client, lease_seconds=1)
        assert (await other.claim(slow))[0] is Claim.CLAIMED
    finally:
        await holder.stop()
