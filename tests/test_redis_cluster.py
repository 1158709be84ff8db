"""A runtime on a Redis Cluster: every tenant's keys in its own slot, no CROSSSLOT anywhere.

The test starts a three-master cluster of ``redis-server`` processes on free
loopback ports (data in ``tmp_path``, nothing persisted), runs a runtime with
two tenants on it (saq jobs and Channels on the plain test Redis, as
``TENANTRY_QUEUE_REDIS_URL``), and drives it as Telegram and API callers do:
a booking through the bot (FSM state), a duplicate update, API writes up to
a rate limit, an idempotent retry, and events published and consumed. Then
every key of each tenant must hash to the slot of the tenant's hash tag, and
no node may have answered a CROSSSLOT error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.runtime.rediscluster import is_cluster, slot_of, tagged_prefix
from core.testing.plugin import TenantryHarness

sys.path.insert(0, str(Path(__file__).parent / "booking"))
from _booking_support import (
    BotUser,
    at,
    booking_body,
    buttons,
    future_day,
    restaurant,
)

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli",
)

NODES = 3


def _cluster_ports(count: int) -> list[int]:
    """Free loopback ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-master Redis Cluster on loopback; yields its ``redis+cluster://`` URL.

    One per module: each test's tenants have prefixes of their own.
    """
    ports = _cluster_ports(NODES)
    servers: list[subprocess.Popen[bytes]] = []
    tmp_path = tmp_path_factory.mktemp("redis-cluster")
    try:
        for port in ports:
            folder = tmp_path / f"redis-{port}"
            folder.mkdir()
            servers.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                     "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                     "--daemonize", "no", "--dir", str(folder)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        deadline = time.monotonic() + 10
        for port in ports:
            while True:
                try:
                    if _cli(port, "ping").strip() == "PONG":
                        break
                except subprocess.SubprocessError:
                    pass
                assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                time.sleep(0.05)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not all("cluster_state:ok" in _cli(p, "cluster", "info") for p in ports):
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


async def _all_keys(redis: Redis) -> list[str]:
    """Every key on every primary of the cluster (SCAN runs on each)."""
    return [key async for key in redis.scan_iter(match="*", count=1000)]


def _glob(text: str) -> str:
    """``text`` as a literal SCAN MATCH pattern (the braces of a hash tag are literal anyway)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _crossslot_errors(ports: list[int]) -> int:
    total = 0
    for port in ports:
        for line in _cli(port, "info", "errorstats").splitlines():
            if line.startswith("errorstat_CROSSSLOT:"):
                total += int(line.split("count=")[1].split(",")[0])
    return total


async def test_two_tenants_on_a_redis_cluster_keep_their_keys_in_their_slots(
    tmp_path, redis_cluster, tenantry_database_url, tenantry_redis_url, bot_api, updates, sample,
    caplog,
):  # fmt: skip
    caplog.set_level(logging.WARNING)
    harness = TenantryHarness(tmp_path, tenantry_database_url, redis_cluster, bot_api)
    try:
        # A restaurant (booking, FSM dialogues) that also records its events.
        filin = harness.add_tenant(
            "filin",
            timezone="Europe/Moscow",
            locale="en",
            features={"booking": restaurant(), "sample": {}},
            limits={"api_writes": "2/minute"},
        )
        glow = harness.add_tenant("glow", features={"sample": {}})
        await harness.start(
            watch=False, plugins=[("sample", sample)], queue_redis_url=tenantry_redis_url
        )
        runtime = harness.runtime
        assert is_cluster(runtime.redis)
        tenant = runtime.registry.get("filin")
        assert tenant.redis_prefix == tagged_prefix(filin["storage"]["redis_prefix"])
        assert tenant.redis_prefix.startswith("{")

        # An FSM flow through the webhook: the booking dialogue (state + data per step).
        guest = BotUser(harness, updates, bot_api, "filin", filin, user_id=4242)
        day = future_day(2)
        calendar = await guest.command("book")
        if str(day.day) not in [b["text"] for b in buttons(calendar)]:
            calendar = await guest.tap(calendar, "›")
        times = await guest.tap(calendar, str(day.day))
        party = await guest.tap(times, "19:00")
        ask_name = await guest.tap(party, "2")
        assert ask_name.params["text"] == "What name should we book under?"
        # Mid-dialogue the FSM state and data are stored, in the tenant's slot.
        fsm_prefix = tenant.redis_prefix + "fsm:"
        fsm_keys = [k async for k in runtime.redis.scan_iter(match=f"{_glob(fsm_prefix)}*")]
        assert {k.rsplit(":", 1)[1] for k in fsm_keys} == {"state", "data"}, fsm_keys
        assert {slot_of(k) for k in fsm_keys} == {slot_of(tenant.redis_prefix)}
        await guest.say("Anna")
        summary = await guest.share_contact("79990001122")
        done = await guest.tap(summary, "Confirm")
        assert done.params["text"].startswith("Booked! #")

        # The other tenant's bot answers at the same time; a re-delivery is a duplicate.
        ping = updates.command("ping", user_id=77)
        first, second = [await harness.post_update("glow", ping) for _ in range(2)]
        assert first.json() == {"ok": True, "duplicate": False}
        assert second.json() == {"ok": True, "duplicate": True}
        # Concurrent updates of both tenants: done marks of both wait to ride along with
        # claims, and a claim may only carry those of its own slot.
        batch = [("glow" if n % 2 else "filin", updates.command("ping", user_id=78 + n))
                 for n in range(20)]  # fmt: skip
        answers = await asyncio.gather(*(harness.post_update(t, u) for t, u in batch))
        assert all(a.json() == {"ok": True, "duplicate": False} for a in answers)

        # API writes: an idempotent retry gets the first answer; the third write
        # within the minute is refused (limits' moving window, 2/minute).
        headers = harness.api_headers("filin")
        retry = {**headers, "Idempotency-Key": "k-1"}
        bookings = "/api/tenants/filin/booking/bookings"
        body = booking_body(at(day, "12:00"))
        first_write = await harness.client.post(bookings, json=body, headers=retry)
        replayed = await harness.client.post(bookings, json=body, headers=retry)
        refused = await harness.client.post(
            bookings, json=booking_body(at(day, "14:00")), headers=headers
        )
        assert [first_write.status_code, replayed.status_code, refused.status_code] == [
            201, 201, 429,
        ], [first_write.text, replayed.text, refused.text]  # fmt: skip
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json()["id"] == first_write.json()["id"]

        # An event of the other tenant: published in the transaction, relayed, consumed.
        tickets = "/api/tenants/glow/sample/tickets"
        created = await harness.client.post(
            tickets, json={"title": "hello"}, headers=harness.api_headers("glow")
        )
        assert created.status_code == 201, created.text
        assert await runtime.registry.get("glow").events_delivered()
        assert await tenant.events_delivered()
        assert ("glow", "sample.created", {"id": created.json()["id"], "title": "hello"}) in (
            sample.EVENTS
        )
        assert any(t == "filin" and name.startswith("booking.") for t, name, _ in sample.EVENTS)
        assert runtime.events.consumers.handled >= 2

        # The polling lock (redis-py's Lock scripts) on the tenant's slot.
        async with runtime.redis.lock(tenant.key("polling-lock"), timeout=5) as lock:
            assert await lock.owned()
        await runtime.ledger.stop()  # the last done marks, written per slot
        keys = await _all_keys(runtime.redis)
        kinds = {}
        for config in (filin, glow):
            prefix = tagged_prefix(config["storage"]["redis_prefix"])
            mine = [k for k in keys if k.startswith(prefix)]
            kinds[config["id"]] = {k[len(prefix) :].split(":")[0].split("/")[0] for k in mine}
            slot = await runtime.redis.cluster_keyslot(prefix)
            for key in mine:
                assert await runtime.redis.cluster_keyslot(key) == slot, key
            # Nothing of the tenant was written under its untagged prefix.
            assert not [k for k in keys if k.startswith(config["storage"]["redis_prefix"])]
        assert {"updates", "ratelimit", "idempotency", "bot-rate"} <= kinds["filin"], kinds
        assert {"updates", "bot-registration"} <= kinds["glow"], kinds
        # A restart reads every lazy bot's registration in one pipeline, across slots.
        both = [runtime.registry.get("filin"), runtime.registry.get("glow")]
        one_by_one = [await runtime.bots.registered(t) for t in both]
        assert await runtime.bots.registered_all(both) == one_by_one
        assert one_by_one[1], "glow's registration is remembered"
        done = [k for k in keys if ":updates:" in k]
        assert all([await runtime.redis.get(k) == "done" for k in done])
        # The shard streams are tags of their own, and their markers share them.
        layout = runtime.events.layout
        assert all(k.startswith("{") for k in layout.keys)
        markers = [k for k in keys if ":events:" in k and ":done:" in k]
        assert markers
        for marker in markers:
            stream = marker.split(":done:")[0]
            assert stream in layout.keys and slot_of(marker) == slot_of(stream)
        # Tenants spread: the two prefixes and the shards are not all in one slot.
        assert len({slot_of(k) for k in layout.keys}) == len(layout.keys)

        ports = [int(node.split(":")[1]) for node in redis_cluster.split("//")[1].split(",")]
        assert _crossslot_errors(ports) == 0
        complaints = [
            f"{r.name}: {r.msg}" for r in caplog.records
            if "slot" in str(r.msg).lower() or "Cluster" in str(r.msg)
        ]  # fmt: skip
        assert complaints == []
    finally:
        await harness.stop()
        # The cluster goes with the fixture; the schemas and the saq keys on the plain Redis stay.
        harness.redis_url = tenantry_redis_url
        await harness.cleanup()


async def test_realtime_frames_reach_a_websocket_on_a_cluster_runtime(
    tmp_path, redis_cluster, tenantry_database_url, tenantry_redis_url, bot_api
):
    """Topic history on the cluster (tenant slot), live frames through Channels on the plain Redis."""
    import websockets
    from orders.conftest import ORDERS_SETTINGS, Market

    harness = TenantryHarness(tmp_path, tenantry_database_url, redis_cluster, bot_api)
    try:
        config = harness.add_tenant(
            "market",
            features={"orders": ORDERS_SETTINGS, "realtime": {"ping_seconds": 5}},
            limits={"api_writes": "1000/minute", "webapp_writes": "1000/minute"},
        )
        await harness.start(watch=False, queue_redis_url=tenantry_redis_url)
        market = Market(harness, config)
        base = "/api/tenants/market/realtime"
        ticket = await harness.client.post(f"{base}/tickets", headers=market.api())
        assert ticket.status_code == 201, ticket.text
        url = harness.url.replace("http", "ws") + f"{base}/ws?ticket={ticket.json()['ticket']}"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": {"orders:bakery": None}}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            order = await market.pickup_order()
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert frame["event"] == "orders.created" and frame["data"]["order_id"] == order["id"]
        runtime = harness.runtime
        prefix = runtime.registry.get("market").redis_prefix
        topics = [k async for k in runtime.redis.scan_iter(match=f"{_glob(prefix)}realtime:*")]
        assert topics and {slot_of(k) for k in topics} == {slot_of(prefix)}
    finally:
        await harness.stop()
        harness.redis_url = tenantry_redis_url
        await harness.cleanup()


async def test_a_cluster_without_a_plain_queue_redis_is_refused_at_start(
    tmp_path, tenantry_database_url, tenantry_redis_url, bot_api, caplog
):
    """saq and Channels cannot use the cluster: the runtime says so and does not start."""

    def refusals() -> list[str]:
        return [
            r.msg["error"] for r in caplog.records
            if isinstance(r.msg, dict) and r.msg.get("event") == "redis_misconfigured"
        ]  # fmt: skip

    # Port 1: nothing listens, and nothing is connected to before the check.
    harness = TenantryHarness(
        tmp_path, tenantry_database_url, "redis+cluster://127.0.0.1:1", bot_api
    )
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            await harness.start(watch=False)
        assert "set TENANTRY_QUEUE_REDIS_URL" in refusals()[-1]
        with pytest.raises(RuntimeError, match="did not start"):
            await harness.start(watch=False, queue_redis_url="redis+cluster://127.0.0.1:2")
        assert "must be a plain Redis" in refusals()[-1]
    finally:
        await harness.stop()
        harness.redis_url = tenantry_redis_url
        await harness.cleanup()


def test_prefixes_become_hash_tags_and_cluster_urls_are_parsed():
    from core.runtime.rediscluster import connect_cluster, is_cluster_url

    assert tagged_prefix("filin:") == "{filin}:"
    assert tagged_prefix("t7") == "{t7}"
    assert tagged_prefix("{filin}:") == "{filin}:"  # already a tag: kept
    assert tagged_prefix("a{}b:") == "{a{}b}:"  # an empty tag is no tag
    assert slot_of("{filin}:fsm:1:2:2:state") == slot_of("{filin}:updates:1:5") == slot_of("filin")
    assert is_cluster_url("redis+cluster://h:1") and is_cluster_url("rediss+cluster://h:1")
    assert not is_cluster_url("redis://h:1") and not is_cluster_url(None)
    client = connect_cluster("redis+cluster://user:p%40ss@10.0.0.1:7000,10.0.0.2:7001/0")
    assert [(n.host, n.port) for n in client.startup_nodes] == [
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7001),
    ]
    assert client.connection_kwargs["password"] == "p@ss"
    assert client.connection_kwargs["username"] == "user"
    with pytest.raises(ValueError, match="host:port"):
        connect_cluster("redis+cluster://10.0.0.1")
