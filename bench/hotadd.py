"""A tenant added or changed through one runtime's admin API: how soon every runtime serves it.

Three runtimes (``python -m core.cli run``, A, B and C, each a process of its
own) share PostgreSQL, Redis, the control schema (the tenant store), the job
queue, the secret key and the public URL, as runtimes behind a load balancer
do; each has a tenants folder of its own (A's holds ``--existing`` generated
tenants, B's and C's start empty and fill from the store). A Bot API stand-in
runs in a fourth process; this process is the client. The runtimes follow
the store as shipped: NOTIFY, and a re-read every
``TENANTRY_TENANTS_REREAD_SECONDS`` (5 s) that heals a lost notification.

1. **Add.** ``--tenants`` times, one after another: a new webhook tenant's
   file is posted to A's ``POST /admin/tenants``. From the moment the request
   is sent, A, B and C each get a ``/start`` update from a new user at the
   tenant's webhook every ``--poll-ms`` until one is answered 200 (404 while
   that runtime does not know the tenant, 503 while it starts). The time
   counts up to that answer, so it includes the first update's own work (its
   bot built, its user row, its ``sendMessage``).
2. **Change.** ``--tenants`` times: the ``texts.welcome`` of an existing
   tenant (one of those just added, each bot already built on every runtime)
   is posted to A with a new text; a runtime has the change once a ``/start``
   was answered 200 and the ``sendMessage`` the stand-in recorded for that
   user carries the new text.

Reported per runtime: median and max seconds, and each against the goal of
1 s (docs/benchmarks.md, "hot-add"). A is the receiving runtime, for
reference. Schemas, the control schema and Redis keys are removed at the end.

Usage::

    .venv/bin/python bench/hotadd.py --tenants 10

PostgreSQL and Redis come from ``TENANTRY_BENCH_DATABASE_URL`` and
``TENANTRY_BENCH_REDIS_URL`` (defaults as for ``bench/webhook.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Child,
    delete_redis_keys,
    drop_schemas,
    format_table,
    median,
)
from webhook import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    LOG_PROBLEMS,
    SECRET_HEADER,
    BenchContext,
    BenchTenant,
    clear_bot_api,
    start_bot_api,
    start_runtime,
    wait_all_running,
)

from core.testing.updates import UpdateFactory

GOAL_SECONDS = 1.0
"""Issue "Scale-out": hot-add of a tenant visible on all runtimes under 1 s."""
RUNTIMES = ("A", "B", "C")
GIVE_UP_SECONDS = 30.0
"""A runtime that has not served the tenant this long after the request is reported as missed."""


class Poller:
    """Sends ``/start`` updates from new users to tenants' webhooks on one runtime."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, ctx: BenchContext):
        self.session = session
        self.base_url = base_url
        self.ctx = ctx
        self.factory = UpdateFactory()

    async def start_command(self, tenant: BenchTenant) -> tuple[int, int]:
        """Post one ``/start`` from a new user; return the HTTP status and the user id."""
        self.ctx.next_user_id += 1
        user_id = self.ctx.next_user_id
        update = self.factory.command("start", user_id=user_id, username=f"u{user_id}")
        async with self.session.post(
            f"{self.base_url}/webhook/{tenant.id}",
            data=json.dumps(update).encode(),
            headers={"Content-Type": "application/json", SECRET_HEADER: tenant.secret},
        ) as answer:
            await answer.read()
            return answer.status, user_id

    async def seconds_until(
        self,
        tenant: BenchTenant,
        since: float,
        poll_seconds: float,
        served: Callable[[int], Awaitable[bool]] | None = None,
    ) -> float | None:
        """Seconds from ``since`` (``time.monotonic()``) until a ``/start`` got 200.

        Args:
            served: when given, a 200 counts only if ``served(user_id)`` says
                that update saw the change.

        Returns:
            None when it did not happen within :data:`GIVE_UP_SECONDS`.
        """
        while time.monotonic() - since < GIVE_UP_SECONDS:
            try:
                status, user_id = await self.start_command(tenant)
            except (aiohttp.ClientError, TimeoutError):
                status, user_id = 0, 0
            if status == 200:
                answered = time.monotonic()
                if served is None or await served(user_id):
                    return answered - since
            await asyncio.sleep(poll_seconds)
        return None


async def welcome_sent(
    ctx: BenchContext, session: aiohttp.ClientSession, user_id: int, text: str
) -> bool:
    """True when the stand-in recorded a ``sendMessage`` to ``user_id`` carrying ``text``."""
    params = {"method": "sendMessage"}
    async with session.get(f"{ctx.bot_api_url}/_calls", params=params) as response:
        calls = await response.json(content_type=None)
    return any(
        str(call["params"].get("chat_id")) == str(user_id)
        and text in str(call["params"].get("text", ""))
        for call in calls
    )


async def post_tenant(
    session: aiohttp.ClientSession, base_url: str, token: str, text: str
) -> tuple[int, float, float]:
    """``POST /admin/tenants`` with ``text``; return the status, when sent and when answered."""
    sent = time.monotonic()
    async with session.post(
        f"{base_url}/admin/tenants",
        data=text.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"},
    ) as answer:
        body = await answer.read()
        if answer.status != 201:
            raise RuntimeError(f"POST /admin/tenants answered {answer.status}: {body[:300]!r}")
        return answer.status, sent, time.monotonic()


def changed_text(tenant: BenchTenant, welcome: str) -> str:
    """``tenant``'s file with ``texts.welcome`` set to ``welcome``."""
    return tenant.yaml() + f'texts:\n  welcome: "{welcome}"\n'


async def measure(
    name: str,
    count: int,
    pollers: dict[str, Poller],
    admin: tuple[str, str],
    session: aiohttp.ClientSession,
    tenants: Sequence[BenchTenant],
    body_of: Callable[[int, BenchTenant], str],
    served_of: Callable[[int, BenchTenant], dict[str, Callable[[int], Awaitable[bool]] | None]],
    poll_seconds: float,
) -> tuple[dict[str, list[float | None]], list[float]]:
    """``count`` rounds of one admin POST to A, each timed on every runtime.

    Returns:
        Seconds per runtime and round (None: missed), and the POST's own seconds per round.
    """
    seconds: dict[str, list[float | None]] = {r: [] for r in pollers}
    posts: list[float] = []
    base_url, token = admin
    for index in range(count):
        tenant = tenants[index]
        served = served_of(index, tenant)
        since = time.monotonic()
        post = asyncio.create_task(post_tenant(session, base_url, token, body_of(index, tenant)))
        waits = [
            poller.seconds_until(tenant, since, poll_seconds, served[runtime])
            for runtime, poller in pollers.items()
        ]
        *results, (_, sent, answered) = await asyncio.gather(*waits, post)
        posts.append(answered - sent)
        for runtime, result in zip(pollers, results, strict=True):
            seconds[runtime].append(result)
        shown = ", ".join(f"{r} {s:.3f}" if s is not None else f"{r} missed"
                          for r, s in zip(pollers, results, strict=True))  # fmt: skip
        print(f"  {name} {index + 1}/{count}: {shown} s (POST {answered - sent:.3f} s)", flush=True)
    return seconds, posts


def report(
    title: str, seconds: dict[str, list[float | None]], posts: list[float], goal: float
) -> list[str]:
    """One table: per runtime median and max seconds and their ratio to ``goal``."""
    rows = []
    for runtime, values in seconds.items():
        reached = [v for v in values if v is not None]
        missed = len(values) - len(reached)
        label = f"{runtime} (received the POST)" if runtime == "A" else runtime
        if not reached:
            rows.append((label, None, None, None, None, missed))
            continue
        mid, top = median(reached), max(reached)
        rows.append((label, f"{mid:.3f}", f"{top:.3f}", f"{mid / goal:.2f}x", f"{top / goal:.2f}x",
                     missed))  # fmt: skip
    others = [v for r, vs in seconds.items() if r != "A" for v in vs]
    worst = None if None in others else max(others, default=None)
    verdict = (
        "missed by some runtime"
        if worst is None
        else f"every runtime within {worst:.3f} s: {'met' if worst < goal else 'not met'}"
    )
    return [
        title,
        format_table(
            ["runtime", "median s", "max s", "median / goal", "max / goal", "missed"], rows
        ),
        f"POST /admin/tenants on A answered in median {median(posts):.3f} s, max {max(posts):.3f} s",
        f"goal: every runtime under {goal:.0f} s (B and C, the worst round): {verdict}",
    ]


async def bench(args: argparse.Namespace) -> int:
    """Start the three runtimes, run both parts, print the report; return the exit status."""
    ctx = BenchContext(
        database_url=os.environ.get("TENANTRY_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("TENANTRY_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        work_dir=Path(tempfile.mkdtemp(prefix="tenantry-bench-hotadd-")),
    )
    token = "bench-admin-" + secrets.token_hex(8)
    queue = f"tenantry-bench-{ctx.tag}"
    ctx.redis_patterns.add(f"saq:*{queue}*")
    shared = {"TENANTRY_ADMIN_TOKEN": token, "TENANTRY_QUEUE": queue}
    started = time.monotonic()
    children: dict[str, Child] = {}
    lines: list[str] = []
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=timeout
        ) as session:
            await start_bot_api(ctx, session)
            print(f"cores: {os.cpu_count()}, tag: {ctx.tag}, logs: {ctx.work_dir}", flush=True)
            folders = {r: ctx.work_dir / f"tenants-{r}" for r in RUNTIMES}
            ctx.write_tenants(folders["A"], args.existing, "e")
            for runtime in RUNTIMES[1:]:
                folders[runtime].mkdir()
            urls: dict[str, str] = {}
            # A first: it creates the schemas and loads its folder into the store.
            for group in (RUNTIMES[:1], RUNTIMES[1:]):
                for runtime in group:
                    children[runtime], urls[runtime] = start_runtime(
                        ctx, folders[runtime], f"runtime-{runtime}", shared
                    )
                for runtime in group:
                    up, _ = await wait_all_running(
                        session, urls[runtime], children[runtime], args.existing, args.start_timeout
                    )
                    print(f"runtime {runtime}: {args.existing} tenants running after {up:.1f} s",
                          flush=True)  # fmt: skip
            pollers = {r: Poller(session, urls[r], ctx) for r in RUNTIMES}
            new = ctx.write_tenants(ctx.work_dir / "new", args.tenants, "n")
            poll_seconds = args.poll_ms / 1000
            print(f"part 1: {args.tenants} tenants added through A", flush=True)
            added, add_posts = await measure(
                "add", args.tenants, pollers, (urls["A"], token), session, new,
                body_of=lambda _i, tenant: tenant.yaml(),
                served_of=lambda _i, _t: dict.fromkeys(RUNTIMES),
                poll_seconds=poll_seconds,
            )  # fmt: skip
            if any(None in values for values in added.values()):
                raise RuntimeError("a runtime never served an added tenant; see the logs")
            await clear_bot_api(ctx, session)
            welcomes = [f"Welcome v2 {ctx.tag} {i}" for i in range(args.tenants)]

            def served_of(index: int, _tenant: BenchTenant) -> dict[str, Any]:
                async def served(user_id: int) -> bool:
                    return await welcome_sent(ctx, session, user_id, welcomes[index])

                return dict.fromkeys(RUNTIMES, served)

            print(f"part 2: {args.tenants} changes of texts.welcome through A", flush=True)
            changed, change_posts = await measure(
                "change", args.tenants, pollers, (urls["A"], token), session, new,
                body_of=lambda i, tenant: changed_text(tenant, welcomes[i]),
                served_of=served_of,
                poll_seconds=poll_seconds,
            )  # fmt: skip
            settings = (
                f"3 runtimes with {args.existing} tenant(s) each before, "
                f"{args.tenants} rounds, each runtime polled every {args.poll_ms:g} ms"
            )
            lines += report(f"add ({settings})", added, add_posts, GOAL_SECONDS)
            lines.append("")
            lines += report(f"change of texts.welcome ({settings})", changed, change_posts,
                            GOAL_SECONDS)  # fmt: skip
            for runtime, child in children.items():
                await child.stop(60, session, probe_url=f"{urls[runtime]}/health")
    finally:
        for child in children.values():
            await child.stop(10)
        if ctx.bot_api is not None:
            await ctx.bot_api.stop(5)
        await drop_schemas(ctx.database_url, ctx.schemas)
        await delete_redis_keys(ctx.redis_url, ctx.redis_patterns)
    problems = [f"{name}: {line[:200]}" for name, child in children.items()
                for line in child.log_lines(*LOG_PROBLEMS)]  # fmt: skip
    print("\n" + "\n".join(lines))
    if problems:
        print(f"\nlog lines at warning or above: {len(problems)}; the first ones:")
        print("\n".join(problems[:8]))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.keep_logs:
        print(f"logs kept in {ctx.work_dir}")
    else:
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tenants", type=int, default=10, help="tenants added, then changed (default 10)"
    )
    parser.add_argument(
        "--existing",
        type=int,
        default=1,
        help="tenants every runtime serves before the first add (default 1)",
    )
    parser.add_argument(
        "--poll-ms",
        type=float,
        default=20,
        help="pause between a runtime's answer and its next /start (default 20 ms)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=300,
        help="seconds a runtime may take to start its tenants (default 300)",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the runtimes' logs and tenant files"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    import uvloop

    return uvloop.run(bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
