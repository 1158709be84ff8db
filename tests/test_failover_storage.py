"""Redis, then PostgreSQL, stopped under load and started again: 503s while down, full service after.

A runtime process (forked by ``tests/failover_runtime.py``) runs on a Redis
and a PostgreSQL of this test alone, started in a temporary folder on free
loopback ports, so stopping them disturbs nobody else's tests. The client
delivers ``/start`` updates as Telegram does (re-sending each one that got no
200); ``/start`` writes a ``users`` row and sends one welcome message.

While a server is down, every webhook answer is 503 with ``Retry-After`` (no
500, no answer slower than the client's timeout) and ``/health`` is 503
``degraded``. Within :data:`RECOVERY_SECONDS` of the server being back, every
new attempt gets 200 and ``/health`` is ``ok`` again; in the end every update
got its 200 and was handled exactly once (one welcome per user, one users row
never touched again), and the runtime process is the one started at the
beginning.

Redis runs as production should run it: with the append-only file
(``appendonly yes``, ``appendfsync everysec``). The dedupe ledger, the aiogram
FSM state, the job queue and the event streams live in Redis; SIGTERM makes
Redis write its AOF and exit, and the test checks that the done marks of
updates acknowledged before the outage survived (a re-delivery is a
duplicate). The same test without persistence shows what a bare Redis loses:
a re-delivery across the restart is handled a second time, and the event
consumer groups must be made again (they are). PostgreSQL is stopped with
``pg_ctl stop -m fast``: open sessions are ended at once, as a failover or an
operator's restart does.

A probe event written into the tenant's outbox (during a Redis outage, or
just after PostgreSQL is back) must reach its stream and be acknowledged by
every consumer group within :data:`RECOVERY_SECONDS`: the outbox relay, its
LISTEN connection and the stream readers recovered too. For PostgreSQL, the
tenant-store follower and the relay must log that they listen again.

No repeated welcome is expected: an update that met the outage was never
processed (its claim or its INSERT failed; the claim was released, or given
back at the re-send when Redis went away before the claim's reply came:
:func:`test_failover_storage_redis.test_a_claim_whose_reply_was_lost_is_given_back_at_the_resend`),
and the welcome is sent after the INSERT. The one repeat allowed: an update in
flight when PostgreSQL stopped whose INSERT committed but whose commit answer
was lost; its re-send upserts the row again (``last_seen_at`` moves on).

The servers are tests/_failover_storage_servers.py's, the client and the
checks tests/_failover_storage_support.py's.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from _failover_storage_servers import PrivatePostgres, PrivateRedis, needs_servers
from _failover_storage_support import (
    OUTAGE_SECONDS,
    RECOVERY_SECONDS,
    Stack,
    _logged_at,
    _outage_under_load,
    _report,
)
from haproxy_cluster import Forkserver, RuntimeProcess, runtime_env

from core.testing.plugin import TenantryHarness, free_port

pytestmark = needs_servers


@pytest_asyncio.fixture
async def stack(request: Any, tmp_path: Path, bot_api: Any) -> AsyncIterator[Stack]:
    """Private Redis and PostgreSQL, a ``filin`` webhook tenant, one runtime serving it.

    Parametrized indirectly: ``"aof"`` (the default) or ``"none"``, Redis' persistence.
    """
    # Not under tmp_path: pytest's base folder is 0700, and the postgres user must enter it.
    pg_folder = Path(tempfile.mkdtemp(prefix="tenantry-pg-"))
    redis = PrivateRedis(tmp_path, appendonly=getattr(request, "param", "aof") == "aof")
    postgres = PrivatePostgres(pg_folder)
    forkserver = Forkserver(tmp_path / "forkserver.log")
    runtime = None
    try:
        await asyncio.gather(
            asyncio.to_thread(redis.start),
            asyncio.to_thread(lambda: (postgres.init(), postgres.start())),
        )
        harness = TenantryHarness(tmp_path, postgres.url, redis.url, bot_api)
        config = harness.add_tenant("filin")
        port = free_port()
        env = runtime_env(harness, f"http://127.0.0.1:{port}")
        runtime = RuntimeProcess(forkserver, "storage", port, env, tmp_path / "runtime.log")
        await forkserver.start()
        await runtime.start()
        await runtime.wait_serving("filin")
        webhook = bot_api.webhook(int(config["bot"]["token"].split(":")[0]))
        assert webhook is not None and webhook["url"] == f"{runtime.url}/webhook/filin"
        yield Stack(
            redis, postgres, harness, runtime,
            bot_id=int(config["bot"]["token"].split(":")[0]),
            schema=config["storage"]["schema"],
            secret=webhook["secret_token"],
        )  # fmt: skip
    finally:
        if runtime is not None:
            await runtime.close()
        await forkserver.close()
        redis.kill()
        postgres.kill()
        shutil.rmtree(pg_folder, ignore_errors=True)


@pytest.mark.parametrize("stack", ["aof", "none"], indirect=True)
async def test_redis_restart_under_load(stack, updates, bot_api):
    figures = await _outage_under_load(
        stack, updates, bot_api, stack.redis.stop, stack.redis.start, probe_while_down=True
    )
    # An update acknowledged before the outage, delivered again: with the AOF
    # its done mark survived (a duplicate, nothing sent); without persistence
    # the ledger is empty after the restart and it is handled a second time.
    # Telegram re-sends only what got no 200, so that repeat needs a re-send
    # that crossed the restart; the FSM state of every user is gone as well.
    again = sorted(figures["before"])[:5]
    sent_before = len(bot_api.calls("sendMessage", bot_id=stack.bot_id))
    async with httpx.AsyncClient(
        base_url=stack.runtime.url, headers={"X-Telegram-Bot-Api-Secret-Token": stack.secret}
    ) as client:
        for update_id in again:
            user_id = figures["sender"].users[update_id]
            update = {**updates.command("start", user_id=user_id), "update_id": update_id}
            response = await client.post("/webhook/filin", json=update)
            duplicate = stack.redis.appendonly
            assert (response.status_code, response.json()) == (
                200, {"ok": True, "duplicate": duplicate}
            )  # fmt: skip
    repeated = len(bot_api.calls("sendMessage", bot_id=stack.bot_id)) - sent_before
    assert repeated == (0 if stack.redis.appendonly else len(again))
    persistence = "AOF" if stack.redis.appendonly else "no persistence"
    print(f"\nRedis ({persistence}): {_report(figures)}")


async def test_postgres_restart_under_load(stack, updates, bot_api):
    figures = await _outage_under_load(
        stack, updates, bot_api, stack.postgres.stop, stack.postgres.start, probe_while_down=False
    )
    # The LISTEN connections of the tenant-store follower and of the outbox
    # relay were ended by the stop and opened again soon after the start.
    log_path = stack.runtime.log_path
    for event in ("store_listening_again", "outbox_relay_listening_again"):
        at = _logged_at(log_path, event, after=figures["up_wall"] - OUTAGE_SECONDS)
        assert at is not None, f"the runtime never logged {event}"
        assert at - figures["up_wall"] < RECOVERY_SECONDS, (event, at - figures["up_wall"])
        figures[f"{event}_after_up_s"] = round(at - figures["up_wall"], 2)
    print(f"\nPostgreSQL: {_report(figures)}")
