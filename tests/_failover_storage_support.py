"""The outage under load of tests/test_failover_storage.py: the client, the checks, the figures.

The client delivers ``/start`` updates as Telegram does (re-sending each one
that got no 200) to a runtime process on a Redis and a PostgreSQL of the
test alone (``tests/_failover_storage_servers.py``); ``/start`` writes a
``users`` row and sends one welcome message. :func:`_outage_under_load`
stops one server under this load, starts it again and checks what the
test module's docstring promises: 503 with ``Retry-After`` and ``/health``
503 ``degraded`` while it is down, full service within
:data:`RECOVERY_SECONDS` of it being back, every update handled exactly
once, the one runtime process serving throughout, and a probe event
relayed and consumed by every consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _failover_storage_servers import PrivatePostgres, PrivateRedis
from haproxy_cluster import Attempt, RuntimeProcess, TelegramSender
from redis.asyncio import Redis

from core.testing.plugin import TenantryHarness

OUTAGE_SECONDS = 3.0
"""How long the server stays down, under load."""

RECOVERY_SECONDS = 5.0
"""After the server is back, every new attempt gets 200 within this many seconds."""

CLIENT_TIMEOUT = 5.0
"""The client's timeout per attempt: an answer slower than this counts as a hang."""

RATE = 20.0
"""New updates a second, each a ``/start`` that sends one message: below the 30
messages a second a bot may send (``core.updates.limiter.TELEGRAM_BOT_RATE``),
which paces the welcomes, so the backlog of the outage drains after it."""

RESEND_SECONDS = 1.0
"""The client re-sends an update this long after an attempt without a 200: the
runtime's ``Retry-After: 1``. (Re-sending every 0.1 s kept ~40 requests in
flight against the 503s and, on a busy two-CPU machine, made answers take
seconds: the test then measured the client's own load.)"""


@dataclass(frozen=True)
class Timed:
    """One attempt with when it was sent and answered (``time.monotonic()``) and its ``detail``."""

    sent: float
    answered: float
    attempt: Attempt
    detail: str | None = None


@dataclass
class TimedSender(TelegramSender):
    """A :class:`TelegramSender` that also records when each attempt was sent and answered."""

    timeline: list[Timed] = field(default_factory=list)

    async def _attempt(self, update: dict[str, Any]) -> Attempt:
        assert self._client is not None
        update_id = update["update_id"]
        sent = time.monotonic()
        try:
            response = await self._client.post(self.url, json=update)
        except httpx.TransportError as exc:
            attempt = Attempt(update_id, None, error=type(exc).__name__)
            self.timeline.append(Timed(sent, time.monotonic(), attempt))
            return attempt
        code = detail = None
        if response.status_code != 200:
            with contextlib.suppress(ValueError, AttributeError):
                code, detail = response.json().get("code"), response.json().get("detail")
        attempt = Attempt(
            update_id, response.status_code, retry_after=response.headers.get("retry-after"),
            code=code,
        )  # fmt: skip
        self.timeline.append(Timed(sent, time.monotonic(), attempt, detail))
        return attempt


@dataclass(frozen=True)
class HealthSample:
    """One ``GET /health`` answer (``status`` None: no answer)."""

    sent: float
    answered: float
    status: int | None
    report: dict[str, Any]


async def _watch_health(url: str, samples: list[HealthSample]) -> None:
    """Poll ``/health`` every 100 ms until cancelled, recording each answer."""
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT) as client:
        while True:
            sent = time.monotonic()
            try:
                response = await client.get("/health")
                sample = HealthSample(sent, time.monotonic(), response.status_code, response.json())
            except (httpx.TransportError, ValueError):
                sample = HealthSample(sent, time.monotonic(), None, {})
            samples.append(sample)
            await asyncio.sleep(0.1)


@dataclass
class Stack:
    """The private servers, the harness on them, and one runtime process."""

    redis: PrivateRedis
    postgres: PrivatePostgres
    harness: TenantryHarness
    runtime: RuntimeProcess
    bot_id: int
    schema: str
    secret: str


async def _publish_probe(stack: Stack) -> str:
    """Write a domain event into the tenant's outbox as ``core.events.outbox`` does; its id."""
    event_id = uuid.uuid4().hex
    await stack.harness.sql(
        f'INSERT INTO "{stack.schema}".tenantry_outbox (event_id, name, payload) '
        "SELECT $1, 'test.probe', '{}'::jsonb FROM pg_notify('tenantry_outbox', 'filin')",
        event_id,
    )
    return event_id


def _entry_order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


async def _wait_relayed_and_consumed(
    stack: Stack, event_id: str, timeout: float
) -> tuple[float, float]:
    """Wait until the relay moved ``event_id`` to its stream and every consumer group acked it.

    The event names no plugin of the tenant, so each group's consumer drops
    and acknowledges it at once: once its ``last-delivered-id`` passed the
    entry and nothing is pending, the group's reader is reading again.

    Returns:
        When (monotonic) it was in the stream, and when every group had acknowledged it.

    Raises:
        AssertionError: either did not happen within ``timeout`` seconds.
    """
    redis = Redis.from_url(stack.redis.url, decode_responses=True)
    deadline = time.monotonic() + timeout
    stream = entry_id = None
    try:
        while stream is None:
            async for key in redis.scan_iter(match="*:events:*", _type="stream"):
                for found_id, fields in await redis.xrange(key):
                    if fields.get("id") == event_id:
                        stream, entry_id = key, found_id
            assert time.monotonic() < deadline, f"event {event_id} not relayed in {timeout} s"
            if stream is None:
                await asyncio.sleep(0.05)
        relayed = time.monotonic()
        assert stream is not None and entry_id is not None
        while True:
            groups = await redis.xinfo_groups(stream)
            lagging = [] if groups else ["(no group yet)"]
            lagging += [
                g["name"]
                for g in groups
                if _entry_order(g["last-delivered-id"]) < _entry_order(entry_id)
                or await redis.xpending_range(
                    stream, g["name"], min=entry_id, max=entry_id, count=1
                )
            ]
            if not lagging:
                return relayed, time.monotonic()
            assert time.monotonic() < deadline, f"groups {lagging} did not consume {entry_id}"
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _logged_at(log_path: Path, event: str, after: float) -> float | None:
    """Wall-clock time of the first ``event`` the runtime logged after ``after`` (epoch s)."""
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("event") == event:
                at = datetime.fromisoformat(record["timestamp"]).timestamp()
                if at > after:
                    return at
    return None


async def _outage_under_load(
    stack: Stack, updates: Any, bot_api: Any, stop, start, *, probe_while_down: bool
) -> dict:
    """Load, ``stop()`` the server, load for :data:`OUTAGE_SECONDS`, ``start()`` it, load again.

    A probe event is written into the tenant's outbox while the server is down
    (``probe_while_down``: Redis; the relay cannot move it yet) or as soon as
    it is back (PostgreSQL); it must reach its event stream within
    :data:`RECOVERY_SECONDS` of the server being back.

    Checks everything the module docstring promises and returns figures for the report.
    """
    runtime = stack.runtime
    first_pid = runtime.pid
    sender = TimedSender(
        f"{runtime.url}/webhook/filin", stack.secret,
        lambda user_id: updates.command("start", user_id=user_id),
        rate=RATE, timeout=CLIENT_TIMEOUT, resend_delay=RESEND_SECONDS,
    )  # fmt: skip
    health: list[HealthSample] = []
    watcher = asyncio.create_task(_watch_health(runtime.url, health))
    try:
        await sender.start()
        await asyncio.sleep(0.5)
        loaded, cpu_loaded = time.monotonic(), _cpu_seconds(runtime.pid)
        await asyncio.sleep(1.0)
        before = set(sender.acknowledged)
        assert len(before) > 10, f"only {len(before)} updates acknowledged before the outage"

        stopping = time.monotonic()
        cpu_per_second_up = (_cpu_seconds(runtime.pid) - cpu_loaded) / (stopping - loaded)
        await asyncio.to_thread(stop)
        down, cpu_down = time.monotonic(), _cpu_seconds(runtime.pid)
        probe = await _publish_probe(stack) if probe_while_down else None
        await asyncio.sleep(OUTAGE_SECONDS)
        starting, cpu_starting = time.monotonic(), _cpu_seconds(runtime.pid)
        await asyncio.to_thread(start)
        up, up_wall = time.monotonic(), time.time()
        probe = probe or await _publish_probe(stack)
        relayed, consumed = await _wait_relayed_and_consumed(stack, probe, RECOVERY_SECONDS)
        await asyncio.sleep(max(0.0, up + RECOVERY_SECONDS + 2 - time.monotonic()))
        await sender.finish(timeout=15)
        await asyncio.sleep(0.3)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await sender.close()

    # The one runtime process served throughout: never exited, never restarted.
    assert runtime.pid == first_pid and await runtime.exit_status() is None, "runtime exited"

    # Only 200 or 503 + Retry-After; never a 500, a connection error or a hang.
    answers = Counter(t.attempt.status or t.attempt.error for t in sender.timeline)
    assert set(answers) <= {200, 503}, answers
    assert [
        t for t in sender.timeline if t.attempt.status == 503 and not t.attempt.retry_after
    ] == []
    slowest = max(t.answered - t.sent for t in sender.timeline)
    slowest_health = max(h.answered - h.sent for h in health)
    slow = sorted(sender.timeline, key=lambda t: t.sent - t.answered)[:5]
    assert slowest < CLIENT_TIMEOUT, [
        (round(t.sent - stopping, 2), round(t.answered - t.sent, 2), t.attempt.status, t.detail)
        for t in sender.timeline
        if t.answered - t.sent > 1
    ]

    # While down (sent after the stop returned, answered before the start began): 503 only.
    while_down = [t for t in sender.timeline if t.sent >= down and t.answered <= starting]
    assert while_down and {t.attempt.status for t in while_down} == {503}, Counter(
        t.attempt.status for t in while_down
    )
    assert {t.attempt.code for t in while_down} == {"webhook.retry_later"}
    # Back: every attempt sent RECOVERY_SECONDS after the server was up got 200.
    recovered = [t for t in sender.timeline if t.sent >= up + RECOVERY_SECONDS]
    assert recovered and {t.attempt.status for t in recovered} == {200}
    last_refusal = max(t.answered for t in sender.timeline if t.attempt.status != 200)
    refused_after_up = Counter(
        (t.detail or "")[:40] for t in sender.timeline if t.sent > up and t.attempt.status != 200
    )

    # /health: 503 degraded while down, 200 ok once back.
    health_down = [h for h in health if h.sent >= down and h.answered <= starting]
    assert health_down and {(h.status, h.report.get("status")) for h in health_down} == {
        (503, "degraded")
    }
    health_back = [h for h in health if h.sent >= up + RECOVERY_SECONDS]
    assert health_back and {(h.status, h.report.get("status")) for h in health_back} == {
        (200, "ok")
    }
    last_degraded = max(h.answered for h in health if h.status != 200)

    # Nothing lost, nothing repeated: one welcome and one untouched users row per update.
    users = sender.users
    assert sender.acknowledged == set(users)
    welcomes = Counter(
        int(call.params["chat_id"]) for call in bot_api.calls("sendMessage", bot_id=stack.bot_id)
    )
    assert set(welcomes) == set(users.values())
    assert {user: n for user, n in welcomes.items() if n != 1} == {}
    # The one repeat that can be justified: an update in flight when the server
    # went away whose INSERT committed but whose commit answer was lost. It got
    # 503 and its re-send upserted the row again (last_seen_at moved on); its
    # welcome was never sent the first time (it comes after the INSERT).
    in_flight_at_stop = {
        users[t.attempt.update_id]
        for t in sender.timeline
        if t.sent < down and t.answered > stopping and t.attempt.status != 200
    }
    rows = await stack.harness.sql(
        f'SELECT telegram_id, started_at = last_seen_at AS once FROM "{stack.schema}".users'
    )
    assert sorted(r["telegram_id"] for r in rows) == sorted(users.values())
    upserted_twice = {r["telegram_id"] for r in rows if not r["once"]}
    assert upserted_twice <= in_flight_at_stop

    # /metrics counted the deferred updates.
    async with httpx.AsyncClient(base_url=runtime.url) as client:
        metrics = (await client.get("/metrics")).text
    assert 'outcome="storage_unavailable"' in metrics

    return {
        "relayed_after_up_s": round(relayed - up, 2),
        "consumed_after_up_s": round(consumed - up, 2),
        "runtime_cpu_per_s_up": round(cpu_per_second_up, 2),
        "runtime_cpu_per_s_down": round((cpu_starting - cpu_down) / (starting - down), 2),
        "upserted_twice": len(upserted_twice),
        "up_wall": up_wall,
        "stop_s": round(down - stopping, 2),
        "start_s": round(up - starting, 2),
        "updates": len(users),
        "attempts": dict(answers),
        "last_refusal_after_up_s": round(last_refusal - up, 2),
        "refused_after_up": dict(refused_after_up),
        "last_degraded_health_after_up_s": round(last_degraded - up, 2),
        # (seconds taken, sent how long after the stop began, status)
        "slowest_answers_s": [
            (round(t.answered - t.sent, 2), round(t.sent - stopping, 2), t.attempt.status)
            for t in slow
        ],
        "slowest_health_s": round(slowest_health, 2),
        "down_s": round(down - stopping, 2),
        "up_s": round(up - stopping, 2),
        "before": before,
        "sender": sender,
    }


def _report(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if k not in ("before", "sender", "up_wall")}
