"""Three runtimes behind haproxy: kill -9 one under load and restart it, then roll all three.

The client delivers updates as Telegram does (re-sending each one that got
no 200). Every update must end with a 200 and be handled once: one welcome
message per user at the Bot API stand-in and one ``users`` row, never
updated after it was written. The only error answers allowed are 503 with
``Retry-After`` (from a runtime, or from haproxy when no runtime is up);
connection errors and timeouts are allowed too (Telegram re-sends on them),
and no 500, 502 or 504.

A runtime killed while it held an update's claim (``core.updates.dedupe``)
leaves it ``processing`` until the claim's lease lapses
(``IN_PROGRESS_TTL_SECONDS``, 10 s: nobody renews it); its re-sends are
answered 503 until then and handled once it lapsed. For those updates alone
the test accepts a second welcome message: the killed process may have sent
it before it died (at least once across a crash; docs/ops.md, "Behind a
load balancer").
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from haproxy_cluster import (
    HAPROXY,
    Forkserver,
    LoadBalancer,
    RuntimeProcess,
    TelegramSender,
    haproxy_config,
    runtime_env,
)
from redis.asyncio import Redis

from core.testing.plugin import free_port
from core.updates.dedupe import IN_PROGRESS_TTL_SECONDS

pytestmark = pytest.mark.skipif(
    not HAPROXY.exists(), reason=f"haproxy is not installed ({HAPROXY}; apt-get install haproxy)"
)


async def _claims_of_killed_runtime(
    redis: Redis,
    sender: TelegramSender,
    held: set[int],
    key_of,
    timeout: float = 3 * IN_PROGRESS_TTL_SECONDS,
) -> set[int]:
    """The updates whose claim the killed runtime held, once every update of ``held`` got its 200.

    ``held`` are the update ids without a 200 when the runtime was killed. One
    still unacknowledged while no request of it is in flight, and whose key
    still says ``processing``, was claimed by the dead process: a live
    runtime's claim ends with its answer, and every re-send since was
    refused by the claim. Nothing ends those claims but their lease: the
    re-sends get 200 only once it lapsed, within ``timeout`` seconds.
    """
    dead: set[int] = set()
    async with asyncio.timeout(timeout):
        while waiting := held - sender.acknowledged:
            for update_id in waiting - sender.outstanding - dead:
                if await redis.get(key_of(update_id)) == "processing":
                    dead.add(update_id)
            await asyncio.sleep(0.05)
    return dead


async def test_three_runtimes_behind_haproxy_survive_kill_9_and_a_rolling_restart(
    tenantry, bot_api, updates, tmp_path
):
    config = tenantry.add_tenant("filin")
    bot_id = int(config["bot"]["token"].split(":")[0])
    schema, prefix = config["storage"]["schema"], config["storage"]["redis_prefix"]
    lb_port, stats_port = free_port(), free_port()
    env = runtime_env(tenantry, f"http://127.0.0.1:{lb_port}")
    forkserver = Forkserver(tmp_path / "forkserver.log")
    runtimes = [
        RuntimeProcess(
            forkserver, f"r{n}-{tenantry.run_id}", free_port(), env, tmp_path / f"runtime-{n}.log"
        )
        for n in (1, 2, 3)
    ]
    config_path = tmp_path / "haproxy.cfg"
    config_path.write_text(haproxy_config(lb_port, stats_port, runtimes, tmp_path))
    lb = LoadBalancer(config_path, lb_port, stats_port, tmp_path / "haproxy.log")
    redis = Redis.from_url(tenantry.redis_url, decode_responses=True)
    sender = None
    victim = runtimes[0]
    started = time.monotonic()
    try:
        await forkserver.start()
        await asyncio.gather(*(runtime.start() for runtime in runtimes))
        await asyncio.gather(*(runtime.wait_serving("filin") for runtime in runtimes))
        await lb.start()
        for runtime in runtimes:
            await lb.wait_state(runtime.name, "UP")
        webhook = bot_api.webhook(bot_id)
        assert webhook is not None and webhook["url"] == f"{lb.url}/webhook/filin"
        sender = TelegramSender(
            f"{lb.url}/webhook/filin",
            webhook["secret_token"],
            lambda user_id: updates.command("start", user_id=user_id),
            rate=20,
        )
        await sender.start()
        await asyncio.sleep(1)

        # Phase 1: kill -9 under load, keep the load on, restart it.
        # A burst, and the kill once its first answers come back: the victim
        # then has some of it in its hands (claimed, a message perhaps sent).
        answered = len(sender.acknowledged)
        await sender.burst(30)
        await sender.wait_acknowledged(answered + 3)
        held = set(sender.users) - sender.acknowledged  # no await since: all it can hold
        await victim.kill()
        await lb.wait_state(victim.name, "DOWN")
        await asyncio.sleep(2)
        ended = await _claims_of_killed_runtime(
            redis, sender, held, lambda update_id: f"{prefix}updates:{bot_id}:{update_id}"
        )
        await victim.start()
        await victim.wait_serving("filin")
        await lb.wait_state(victim.name, "UP")
        await asyncio.sleep(1)

        # Phase 2: roll all three, one by one (SIGTERM, uvicorn's graceful shutdown).
        for runtime in runtimes:
            await sender.burst(10)  # requests in progress while it shuts down
            await runtime.terminate()
            await lb.wait_state(runtime.name, "DOWN")
            await runtime.start()
            await runtime.wait_serving("filin")
            await lb.wait_state(runtime.name, "UP")
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        await sender.finish(timeout=15)

        # Every update got its 200; the only error answers are 503 with Retry-After.
        users = sender.users
        assert sender.acknowledged == set(users)
        answers = Counter(a.status if a.status else a.error for a in sender.attempts)
        assert set(answers) <= {200, 503, "ConnectError", "ReadError", "RemoteProtocolError",
                                "ReadTimeout", "ConnectTimeout"}, answers  # fmt: skip
        assert [a for a in sender.attempts if a.status == 503 and not a.retry_after] == []
        # haproxy's retries hid the rest: only a claim the killed runtime held was ever refused.
        assert {a.update_id for a in sender.attempts if a.status != 200} <= ended

        # Handled once: one welcome per user, one users row never touched again.
        welcomes = Counter(
            int(call.params["chat_id"]) for call in bot_api.calls("sendMessage", bot_id=bot_id)
        )
        crashed_users = {users[update_id] for update_id in ended}
        assert set(welcomes) == set(users.values())
        assert {u: n for u, n in welcomes.items() if n != 1 and u not in crashed_users} == {}
        assert all(welcomes[u] in (1, 2) for u in crashed_users)
        rows = await tenantry.sql(
            f'SELECT telegram_id, started_at = last_seen_at AS once FROM "{schema}".users'
        )
        assert sorted(r["telegram_id"] for r in rows) == sorted(users.values())
        assert [r for r in rows if not r["once"] and r["telegram_id"] not in crashed_users] == []

        # No runtime left: haproxy's own answer is a 503 with Retry-After too.
        await asyncio.gather(*(runtime.terminate() for runtime in runtimes))
        for runtime in runtimes:
            await lb.wait_state(runtime.name, "DOWN")
        async with httpx.AsyncClient(base_url=lb.url) as client:
            refused = await client.post(
                "/webhook/filin",
                json=updates.command("start", user_id=1),
                headers={"X-Telegram-Bot-Api-Secret-Token": webhook["secret_token"]},
            )
        assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1")
        assert refused.json()["code"] == "lb.no_runtime"
        print(
            f"\n{time.monotonic() - started:.1f} s, {len(users)} updates, "
            f"{len(sender.attempts)} attempts {dict(answers)}; "
            f"without a 200 at kill -9: {len(held)}, claims of the killed runtime (lapsed): "
            f"{len(ended)}, handled twice: {sum(welcomes[u] == 2 for u in crashed_users)}; "
            f"503 codes {dict(Counter(a.code for a in sender.attempts if a.status == 503))}"
        )
    finally:
        if sender is not None:
            await sender.close()
        await lb.close()
        for runtime in runtimes:
            await runtime.close()
        await forkserver.close()
        await redis.aclose()
