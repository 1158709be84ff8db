"""WebSocket clients of ``bench/realtime.py``, in a process of their own.

``--count`` clients each take a ticket (``POST .../realtime/tickets`` with the
API key), open ``.../realtime/ws`` on ``--url`` and subscribe to ``--topic``
from now on. Once all are subscribed the process creates ``--ready`` (an
empty file). Every ``event`` frame's arrival is recorded with ``time.time()``
(the same clock as the load generator's, one machine) against the frame's
``data.order_id``; ``ping`` frames are answered. When every client has
received ``--expect`` events, or after ``--timeout`` seconds, the process
writes ``--out`` and exits:

``{"arrivals": [[order_id, epoch seconds], ...], "missing": n, "connected": n, "cpu": s}``

(``cpu``: CPU seconds this process used from ``--ready`` to the end.)

Usage (by ``bench/realtime.py``)::

    python bench/_realtime_clients.py --url http://127.0.0.1:8123 --tenant rt_x \
        --key K --topic orders:bakery --count 250 --expect 50 --ready R --out O
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from websockets.asyncio.client import connect

CONNECT_CONCURRENCY = 25


async def _client(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    arrivals: list[list[float]],
    subscribed: asyncio.Event,
    counter: list[int],
    done: asyncio.Event,
    gate: asyncio.Semaphore,
) -> None:
    async with gate:
        async with session.post(
            f"{args.url}/api/tenants/{args.tenant}/realtime/tickets",
            headers={"X-API-Key": args.key},
        ) as answer:
            answer.raise_for_status()
            ticket = (await answer.json())["ticket"]
        ws_url = args.url.replace("http://", "ws://", 1)
        ws = await connect(
            f"{ws_url}/api/tenants/{args.tenant}/realtime/ws?ticket={ticket}",
            ping_interval=None,
            compression=None,
            open_timeout=60,
        )
        await ws.send(json.dumps({"type": "subscribe", "topics": {args.topic: None}}))
        while json.loads(await ws.recv()).get("type") != "subscribed":
            pass
    counter[0] += 1
    if counter[0] == args.count:
        subscribed.set()
    seen = 0
    try:
        async for raw in ws:
            at = time.time()
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "event":
                arrivals.append([frame["data"]["order_id"], at])
                seen += 1
                if seen == args.expect:
                    break
            elif kind == "ping":
                await ws.send('{"type": "pong"}')
    finally:
        counter[1] += 1
        if counter[1] == args.count:
            done.set()
        await ws.close()


async def _run(args: argparse.Namespace) -> dict[str, object]:
    arrivals: list[list[float]] = []
    subscribed, done = asyncio.Event(), asyncio.Event()
    counter = [0, 0]  # subscribed, finished
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONNECT_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [
            asyncio.create_task(_client(session, args, arrivals, subscribed, counter, done, gate))
            for _ in range(args.count)
        ]
        await asyncio.wait_for(subscribed.wait(), args.timeout)
        await asyncio.to_thread(Path(args.ready).touch)
        cpu_at_ready = time.process_time()
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    missing = args.count * args.expect - len(arrivals)
    cpu = time.process_time() - cpu_at_ready
    return {"arrivals": arrivals, "missing": missing, "connected": counter[0], "cpu": cpu}


def main(argv: Sequence[str] | None = None) -> int:
    """Connect, record, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="runtime base URL")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--key", required=True, help="API key for the tickets")
    parser.add_argument("--topic", default="orders:bakery")
    parser.add_argument("--count", type=int, required=True, help="clients in this process")
    parser.add_argument("--expect", type=int, required=True, help="events each client waits for")
    parser.add_argument("--ready", required=True, help="file created once all are subscribed")
    parser.add_argument("--out", required=True, help="results file (JSON)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per stage")
    args = parser.parse_args(argv)
    Path(args.out).write_text(json.dumps(asyncio.run(_run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
