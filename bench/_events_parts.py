"""The two parts of ``bench/events.py`` and their report (its module docstring describes them).

:func:`throughput` is part 1 (commits through runtime A, events handled on
B), :func:`added_latency` part 2 (the same create with and without publish
on B, in ABBA order), and :func:`report` lays out both.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from _common import format_table
from _events_load import closed_loop, open_loop, percentile
from _events_setup import (
    Bench,
    Runtime,
    Tenant,
    calls,
    check,
    handled,
    ms,
    stream_times,
    wait_handled,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

WARMUP = 200  # part 1 creates before the measured ones
WARMUP_PER_ROUTE = 100  # part 2
PUBLISHED = "with publish (outbox)"
UNPUBLISHED = "without publish"


# ---------------------------------------------------------------- part 1


@dataclass
class Throughput:
    """Part 1's result.

    Attributes:
        events: events handled on B (each once: the hash is keyed by event id).
        commit_rate: creates answered by A per second (the load generator's view).
        event_rate: events per second from the first ``occurred_at`` to the
            last handled on B.
        latency / to_stream / to_handler: seconds per event from ``occurred_at``
            to B's handler, to the relay's ``XADD``, and from there to the handler.
        duplicates: ``on_event`` calls beyond one per event.
        cpu_ms_a / cpu_ms_b: CPU milliseconds each runtime used per event,
            from the first create to the last event handled.
        behind: events not yet handled on B when A answered the last create.
        drain: seconds from that answer to the last event handled.
    """

    events: int
    commit_rate: float
    event_rate: float
    latency: list[float]
    to_stream: list[float]
    to_handler: list[float]
    duplicates: int
    cpu_ms_a: float
    cpu_ms_b: float
    behind: int
    drain: float
    raw: dict[str, list[float]] = field(default_factory=dict)
    """Event id -> [occurred_at, added to the stream, handled on B] (``--keep-logs`` writes it)."""


async def throughput(
    bench: Bench,
    session: aiohttp.ClientSession,
    redis: Redis,
    a: Runtime,
    b: Runtime,
    tenants: Sequence[Tenant],
    args: argparse.Namespace,
) -> Throughput:
    """Part 1: commits through A, handled on B (see the module docstring)."""
    warm = bench.creates(a.base_url, "published", tenants, "warm", WARMUP)
    check(await closed_loop(session, warm, args.concurrency), "part 1 warm-up")
    await wait_handled(redis, tenants, "warm", WARMUP, (a, b), timeout=60)

    creates = bench.creates(a.base_url, "published", tenants, "p1", args.events)
    cpu_a, cpu_b = a.cpu(), b.cpu()
    run = await closed_loop(session, creates, args.concurrency)
    check(run, "part 1")
    await wait_handled(redis, tenants, "p1", args.events, (a, b), timeout=120)
    cpu_a, cpu_b = a.cpu() - cpu_a, b.cpu() - cpu_b
    events = await handled(redis, tenants, "p1")
    added = await stream_times(redis, bench.queue, set(events))
    first = min(occurred for occurred, _ in events.values())
    last = max(at for _, at in events.values())
    return Throughput(
        events=len(events),
        commit_rate=args.events / run.seconds,
        event_rate=len(events) / (last - first),
        latency=[at - occurred for occurred, at in events.values()],
        to_stream=[added[e] - occurred for e, (occurred, _) in events.items() if e in added],
        to_handler=[at - added[e] for e, (_, at) in events.items() if e in added],
        duplicates=await calls(redis, tenants, "p1") - len(events),
        cpu_ms_a=ms(cpu_a) / len(events),
        cpu_ms_b=ms(cpu_b) / len(events),
        behind=sum(1 for _, at in events.values() if at > run.last_answered),
        drain=max(0.0, last - run.last_answered),
        raw={e: [occurred, added.get(e, 0.0), at] for e, (occurred, at) in events.items()},
    )


# ---------------------------------------------------------------- part 2


@dataclass
class Side:
    """One route of part 2 over every round.

    Attributes:
        label / route: shown name, and ``published`` or ``unpublished``.
        latencies: seconds per request, every round.
        round_p50: each round's median, seconds.
        cpu_ms: B's CPU milliseconds per create in each round (for the
            published route until its events were handled).
        drain: seconds from each published run's last answer to its last
            event handled.
        event_latency: seconds from ``occurred_at`` to the handler, published runs.
        transactions: seconds per create spent in its transaction on B
            (connection, statements, commit), as the route measured it.
        commits: the part of each spent committing (and returning the connection).
    """

    label: str
    route: str
    latencies: list[float] = field(default_factory=list)
    round_p50: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    event_latency: list[float] = field(default_factory=list)
    transactions: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)


async def added_latency(
    bench: Bench,
    session: aiohttp.ClientSession,
    redis: Redis,
    b: Runtime,
    tenant: Tenant,
    args: argparse.Namespace,
) -> tuple[Side, Side]:
    """Part 2: the same create with and without publish on B, in ABBA order."""
    published = Side(PUBLISHED, "published")
    unpublished = Side(UNPUBLISHED, "unpublished")
    for side in (unpublished, published):  # warm-up, not counted
        warm = bench.creates(b.base_url, side.route, [tenant], "p2-warm", WARMUP_PER_ROUTE)
        check(await open_loop(session, warm, args.rate), "part 2 warm-up")
    await wait_handled(redis, [tenant], "p2-warm", WARMUP_PER_ROUTE, (b,), timeout=60)
    timings_url = f"{b.base_url}/api/tenants/{tenant.id}/eventsbench/items/timings"

    async def transaction_times() -> dict[str, dict[str, list[float]]]:
        async with session.get(timings_url, headers={"X-API-Key": bench.api_key}) as answer:
            answer.raise_for_status()
            return await answer.json()

    await transaction_times()  # forget the warm-up's
    for number in range(args.rounds):
        order = (unpublished, published) if number % 4 in (0, 3) else (published, unpublished)
        for side in order:
            run_name = f"p2-{number}"
            creates = bench.creates(b.base_url, side.route, [tenant], run_name, args.requests)
            cpu = b.cpu()
            run = await open_loop(session, creates, args.rate)
            check(run, f"part 2 {side.label}")
            if side is published:
                # The background work of these creates counts for them: wait for it.
                await wait_handled(redis, [tenant], run_name, args.requests, (b,), timeout=60)
                events = await handled(redis, [tenant], run_name)
                side.drain.append(max(at for _, at in events.values()) - run.last_answered)
                side.event_latency += [at - occurred for occurred, at in events.values()]
            side.cpu_ms.append(ms(b.cpu() - cpu) / args.requests)
            timings = await transaction_times()
            side.transactions += timings["transaction"][side.route]
            side.commits += timings["commit"][side.route]
            side.latencies += run.latencies
            side.round_p50.append(percentile(run.latencies, 50))
            print(
                f"  round {number + 1}/{args.rounds}  {side.label:<22}"
                f" p50 {ms(percentile(run.latencies, 50)):6.2f} ms"
                f"  p99 {ms(percentile(run.latencies, 99)):6.2f} ms"
                f"  B CPU {side.cpu_ms[-1]:5.2f} ms/create",
                flush=True,
            )
    return published, unpublished


# ---------------------------------------------------------------- report


def report(
    args: argparse.Namespace, one: Throughput, published: Side, unpublished: Side
) -> list[str]:
    """The two tables and the ratios."""
    lines = [
        f"part 1: {one.events} events through runtime A (publishes, relays, does not consume) to "
        f"runtime B (consumes), {args.tenants} tenants, {args.concurrency} creates in flight",
        format_table(
            ["", "per s", "p50 ms", "p99 ms", "max ms"],
            [
                ["commits on A (HTTP creates)", one.commit_rate, None, None, None],
                ["events handled on B", one.event_rate, None, None, None],
                *(
                    [label, None, *(ms(percentile(values, q)) for q in (50, 99, 100))]
                    for label, values in (
                        ("commit -> handler on B", one.latency),
                        ("  commit -> stream (relay)", one.to_stream),
                        ("  stream -> handler (consumer)", one.to_handler),
                    )
                ),
            ],
        ),
        f"CPU per event: A {one.cpu_ms_a:.2f} ms (HTTP, insert, outbox, relay), "
        f"B {one.cpu_ms_b:.2f} ms (its relay racing A's, consumers); "
        f"handled twice: {one.duplicates}",
        f"when A answered the last create, B had {one.behind} events left to handle "
        f"({ms(one.drain):.0f} ms until the last)",
        "",
        f"part 2: the same create with and without publish on runtime B (relaying and consuming), "
        f"open loop at {args.rate:g}/s, {args.rounds} rounds x {args.requests} requests per route",
        format_table(
            [
                "route",
                "requests",
                "p50 ms",
                "p99 ms",
                "mean ms",
                "tx p50 ms",
                "tx p99 ms",
                "commit p50",
                "commit p99",
                "B CPU ms/create",
            ],
            [
                [
                    side.label,
                    len(side.latencies),
                    ms(percentile(side.latencies, 50)),
                    ms(percentile(side.latencies, 99)),
                    ms(statistics.fmean(side.latencies)),
                    ms(percentile(side.transactions, 50)),
                    ms(percentile(side.transactions, 99)),
                    ms(percentile(side.commits, 50)),
                    ms(percentile(side.commits, 99)),
                    statistics.median(side.cpu_ms),
                ]
                for side in (unpublished, published)
            ],
        ),
    ]
    p50 = [percentile(s.latencies, 50) for s in (published, unpublished)]
    p99 = [percentile(s.latencies, 99) for s in (published, unpublished)]
    # Each round's two runs are seconds apart: their ratio shrugs off a
    # shared machine's load drifting between rounds.
    paired = [w / wo for w, wo in zip(published.round_p50, unpublished.round_p50, strict=True)]
    lines += [
        f"with / without: p50 {p50[0] / p50[1]:.2f}x (+{ms(p50[0] - p50[1]):.2f} ms), "
        f"p99 {p99[0] / p99[1]:.2f}x (+{ms(p99[0] - p99[1]):.2f} ms)",
        f"p50 per round, with: {', '.join(f'{ms(v):.2f}' for v in published.round_p50)}; "
        f"without: {', '.join(f'{ms(v):.2f}' for v in unpublished.round_p50)}; "
        f"median of the rounds' ratios {statistics.median(paired):.2f}x",
        f"at {args.rate:g}/s, commit -> handler on B: p50 "
        f"{ms(percentile(published.event_latency, 50)):.2f} ms, p99 "
        f"{ms(percentile(published.event_latency, 99)):.2f} ms; last event handled "
        f"{ms(statistics.median(published.drain)):.1f} ms (median) after the last answer",
    ]
    return lines
