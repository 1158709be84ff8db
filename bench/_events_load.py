"""Load and measurements of ``bench/events.py``: closed- and open-loop creates, percentiles.

The load generator is the benchmark's own process (on uvloop, as the webhook
bench's is), apart from the runtimes under test. Every create is a
``POST`` with a JSON body and the tenant's API key; an answer other than
HTTP 200 is counted as an error by reason, never retried.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

__all__ = ["Create", "LoadRun", "closed_loop", "open_loop", "percentile"]


@dataclass(frozen=True)
class Create:
    """One request: where to post it, its body and headers."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class LoadRun:
    """What one run of creates measured.

    Attributes:
        latencies: seconds per request, in the order they were sent: from the
            moment it was due (open loop) or sent (closed loop) to its answer.
        first_sent / last_answered: ``time.time()`` (epoch seconds) of the
            first request sent and the last answer received, comparable with
            the event times the consumer records.
        errors: failed requests by reason (``HTTP 500``, ``ClientOSError``...).
    """

    latencies: list[float] = field(default_factory=list)
    first_sent: float = 0.0
    last_answered: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Wall time from the first request to the last answer."""
        return self.last_answered - self.first_sent

    def failed(self, reason: str) -> None:
        """Count one failed request."""
        self.errors[reason] = self.errors.get(reason, 0) + 1


async def _post(session: aiohttp.ClientSession, create: Create, run: LoadRun) -> None:
    try:
        async with session.post(create.url, data=create.body, headers=create.headers) as answer:
            await answer.read()
            if answer.status != 200:
                run.failed(f"HTTP {answer.status}")
    except (TimeoutError, aiohttp.ClientError) as exc:
        run.failed(type(exc).__name__)


async def closed_loop(
    session: aiohttp.ClientSession, creates: Sequence[Create], concurrency: int
) -> LoadRun:
    """Post every create with ``concurrency`` workers, each sending its next one after an answer.

    The rate is what the runtime sustains with that many requests in flight;
    latencies count from each request's send.
    """
    run = LoadRun(latencies=[0.0] * len(creates))
    pending = iter(enumerate(creates))

    async def worker() -> None:
        for index, create in pending:
            sent = time.perf_counter()
            await _post(session, create, run)
            run.latencies[index] = time.perf_counter() - sent

    run.first_sent = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.last_answered = time.time()
    return run


async def open_loop(
    session: aiohttp.ClientSession, creates: Sequence[Create], rate: float
) -> LoadRun:
    """Send the creates at ``rate`` per second on a fixed schedule, whatever the answers do.

    Each request starts at its scheduled moment and its latency counts from
    that moment, so a runtime that falls behind shows it in the latencies
    instead of slowing the sender (no coordinated omission).
    """
    run = LoadRun(latencies=[0.0] * len(creates))
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    start = time.perf_counter() + 0.05
    tasks = []

    async def one(index: int, create: Create, due: float) -> None:
        await _post(session, create, run)
        run.latencies[index] = time.perf_counter() - due

    run.first_sent = time.time() + 0.05
    for index, create in enumerate(creates):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, create, due)))
    await asyncio.gather(*tasks)
    run.last_answered = time.time()
    return run


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest-rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
