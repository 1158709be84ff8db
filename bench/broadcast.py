"""Campaigns of many bots at once against a Bot API stand-in that enforces Telegram's rate.

Ten tenants (``--tenants``), each with its own bot and ``--subscribers``
subscribers, start a campaign at the same moment. The runtimes are real
processes (``tenantry run``); the Bot API stand-in runs in this process and
enforces ``--limit`` messages per second per bot (a token bucket, answering
429 with ``retry_after`` like Telegram). Each bot is configured at
``rate_per_second = --limit``. Reported per bot: the achieved rate against the
configured one (first to last message), 429 answers after the first second,
duplicates (a chat that got the campaign twice), and the total time against
the ideal (subscribers / rate).

The second run uses two runtimes on the same campaigns and kills one with
SIGKILL when half the messages are out; the other takes over its claims after
``failover_seconds``. Sends in flight at the kill are ``unknown`` (never sent
again); duplicates must stay 0.

Usage::

    TENANTRY_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    TENANTRY_BENCH_REDIS_URL=redis://127.0.0.1:6379/1 \
    .venv/bin/python bench/broadcast.py --tenants 10 --subscribers 2000 --limit 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
from _common import Child, child_env, delete_redis_keys, drop_schemas, format_table, free_port

from core.testing.botapi import BotAPIStandIn

PYTHON = os.environ.get("PYTHON", ".venv/bin/python")
FAILOVER_SECONDS = 5


def tenant_yaml(index: int, run: str, limit: int) -> str:
    return (
        f"id: b{index}\nbot: {{token: '{710000 + index}:BENCH-b{index}', mode: webhook}}\n"
        f"storage: {{schema: bench_bc_{run}_{index}, redis_prefix: 'bench_bc_{run}_{index}:'}}\n"
        f"api: {{keys: ['key-{run}']}}\n"
        f"features:\n  broadcast: {{rate_per_second: {limit}, failover_seconds: {FAILOVER_SECONDS}}}\n"
    )


def start_runtime(name: str, folder: Path, env: dict[str, str]) -> tuple[Child, str]:
    port = free_port()
    child = Child(
        name,
        [
            PYTHON,
            "-m",
            "core.cli",
            "run",
            "--tenants",
            str(folder / "tenants"),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        env,
        folder / f"{name}.log",
    )
    return child, f"http://127.0.0.1:{port}"


async def wait_running(session: aiohttp.ClientSession, url: str, token: str, count: int) -> None:
    deadline = time.monotonic() + 120
    body: object = None
    while time.monotonic() < deadline:
        try:
            async with session.get(
                f"{url}/health", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                body = await r.json()
                if sum(t["state"] == "running" for t in body["tenants"]) == count:
                    return
        except (aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not run {count} tenants within 120 s: {body}")


async def run_campaigns(
    args: argparse.Namespace,
    stand_in: BotAPIStandIn,
    folder: Path,
    env: dict[str, str],
    run: str,
    label: str,
    runtimes: int,
    kill_halfway: bool,
) -> list[list[object]]:
    dsn = env["TENANTRY_DATABASE_URL"]
    children = [start_runtime(f"{label}-{i}", folder, env) for i in range(runtimes)]
    token = env["TENANTRY_ADMIN_TOKEN"]
    rows: list[list[object]] = []
    async with aiohttp.ClientSession() as session:
        try:
            for _, url in children:
                await wait_running(session, url, token, args.tenants)
            url = children[-1][1]  # campaigns are created on the runtime that survives
            text = f"campaign {label}"
            started = time.time()

            async def create(index: int) -> int:
                async with session.post(
                    f"{url}/api/tenants/b{index}/broadcast/campaigns/",
                    json={"content": {"kind": "text", "text": text}},
                    headers={"X-API-Key": f"key-{run}"},
                ) as response:
                    body = await response.json()
                    assert response.status == 201, body
                    return body["id"]

            ids = await asyncio.gather(*(create(i) for i in range(args.tenants)))
            conn = await asyncpg.connect(dsn)
            killed_at = None
            try:
                total = args.tenants * args.subscribers
                while True:
                    done = 0
                    settled = 0
                    for index, campaign_id in enumerate(ids):
                        record = await conn.fetchrow(
                            f"SELECT c.status, count(*) FILTER (WHERE d.status = 'sent') AS sent"
                            f' FROM "bench_bc_{run}_{index}".broadcast_campaigns c'
                            f' JOIN "bench_bc_{run}_{index}".broadcast_deliveries d ON d.campaign_id = c.id'
                            f" WHERE c.id = $1 GROUP BY c.status",
                            campaign_id,
                        )
                        done += record["status"] == "done"
                        settled += record["sent"]
                    if kill_halfway and killed_at is None and settled >= total / 2:
                        os.kill(children[0][0].pid, signal.SIGKILL)
                        killed_at = time.time() - started
                        print(
                            f"  killed {children[0][0].name} (pid {children[0][0].pid}) at {killed_at:.1f} s"
                        )
                    if done == len(ids):
                        break
                    await asyncio.sleep(0.5)
                elapsed = time.time() - started
                for index, campaign_id in enumerate(ids):
                    bot_id = 710000 + index
                    calls = [
                        c
                        for c in stand_in.calls("sendMessage", bot_id=bot_id)
                        if c.params.get("text") == text
                    ]
                    ok = sorted(c.at for c in calls if c.error_code is None)
                    late_429 = sum(1 for c in calls if c.error_code == 429 and c.at - ok[0] > 1.0)
                    duplicates = sum(
                        n - 1
                        for n in Counter(
                            c.params["chat_id"] for c in calls if c.error_code is None
                        ).values()
                    )
                    counts = dict(
                        await conn.fetch(
                            f'SELECT status, count(*) FROM "bench_bc_{run}_{index}".broadcast_deliveries'
                            " WHERE campaign_id = $1 GROUP BY status",
                            campaign_id,
                        )
                    )
                    rate = (len(ok) - 1) / (ok[-1] - ok[0])
                    rows.append(
                        [
                            label,
                            f"b{index}",
                            args.limit,
                            round(rate, 2),
                            f"{(rate - args.limit) / args.limit * 100:+.1f} %",
                            late_429,
                            counts.get("sent", 0),
                            counts.get("unknown", 0),
                            duplicates,
                            round(elapsed, 1),
                            round(args.subscribers / args.limit, 1),
                        ]
                    )
            finally:
                await conn.close()
        finally:
            for child, _ in children:
                await child.stop(timeout=20)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=30, help="messages per second per bot")
    parser.add_argument("--skip-kill", action="store_true", help="only the first run")
    args = parser.parse_args()
    dsn = os.environ.get("TENANTRY_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("TENANTRY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")
    run = secrets.token_hex(3)
    schemas = [f"bench_bc_{run}_{i}" for i in range(args.tenants)] + [f"bench_bc_ctl_{run}"]
    stand_in = BotAPIStandIn()
    await stand_in.start()
    stand_in.set_rate_limit(args.limit, retry_after=1)
    logging_off = __import__("logging").getLogger("tenantry.testing.botapi")
    logging_off.disabled = True
    try:
        with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as tmp:
            folder = Path(tmp)
            (folder / "tenants").mkdir()
            for index in range(args.tenants):
                (folder / "tenants" / f"b{index}.yaml").write_text(
                    tenant_yaml(index, run, args.limit)
                )
            env = child_env(
                TENANTRY_DATABASE_URL=dsn,
                TENANTRY_REDIS_URL=redis_url,
                TENANTRY_BOT_API_URL=stand_in.base_url,
                TENANTRY_CONTROL_SCHEMA=f"bench_bc_ctl_{run}",
                TENANTRY_QUEUE=f"bench-bc-{run}",
                TENANTRY_ADMIN_TOKEN="bench-" + secrets.token_hex(8),
                TENANTRY_SECRET_KEY="bench-" + secrets.token_hex(8),
                TENANTRY_DATA_DIR=str(folder / "data"),
                TENANTRY_WATCH="0",
            )
            # Migrate and fill the subscribers before the clock starts.
            migrate = Child(
                "migrate",
                [PYTHON, "-m", "core.cli", "migrate", "--tenants", str(folder / "tenants")],
                env,
                folder / "migrate.log",
            )
            await asyncio.to_thread(migrate.process.wait)
            conn = await asyncpg.connect(dsn)
            try:
                for schema in schemas[:-1]:
                    await conn.execute(
                        f'INSERT INTO "{schema}".broadcast_subscribers (user_id, source)'
                        " SELECT 1000000 + g, 'import' FROM generate_series(1, $1) AS g",
                        args.subscribers,
                    )
            finally:
                await conn.close()
            print(f"{args.tenants} bots x {args.subscribers} subscribers at {args.limit}/s each")
            rows = await run_campaigns(args, stand_in, folder, env, run, "one runtime", 1, False)
            if not args.skip_kill:
                rows += await run_campaigns(
                    args, stand_in, folder, env, run, "kill -9 halfway", 2, True
                )
            print(
                format_table(
                    [
                        "run",
                        "bot",
                        "limit/s",
                        "achieved/s",
                        "vs limit",
                        "429 after 1 s",
                        "sent",
                        "unknown",
                        "duplicates",
                        "total s",
                        "ideal s",
                    ],
                    rows,
                )
            )
    finally:
        await stand_in.stop()
        await drop_schemas(dsn, schemas)
        await delete_redis_keys(redis_url, [f"bench_bc_{run}_*", f"saq:*bench-bc-{run}*"])


if __name__ == "__main__":
    asyncio.run(main())
