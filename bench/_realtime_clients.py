"""WebSocket clients of ``bench/realtime.py``, in a process of their own.

``--count`` clients each take a ticket (``POST .../realtime/tickets`` with the
API key), open ``.../realtime/ws`` on ``--url`` and subscribe to ``--topic``
from now on. Once all are subscribed the process freezes its heap and turns
its garbage collector off (its own pauses are not the server's latency), then
creates ``--ready`` (an empty file). Every ``event`` frame's arrival is recorded with ``time.time()``
(the same clock as the load generator's, one machine) against the frame's
``data.order_id``; ``ping`` frames are answered. ``--impl`` picks the
client library (``websockets``, the default here, or ``aiohttp``, bench/realtime.py's), ``--uvloop`` the
event loop: on this machine the clients share two cores with the runtimes,
and the client's own cost per frame shows in the fan-out spread. When every client has
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
import gc
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

CONNECT_CONCURRENCY = 25


class _Data(msgspec.Struct):
    order_id: int | None = None


class _Frame(msgspec.Struct):
    """What the clients read of a frame (the rest is skipped, not decoded)."""

    type: str
    data: _Data | None = None


_decode_frame = msgspec.json.Decoder(_Frame).decode


class _WebsocketsClient:
    """A connection of the ``websockets`` library (the default, as a Python partner's panel would be)."""

    def __init__(self, ws: Any):
        self.ws = ws

    @classmethod
    async def open(cls, url: str, session: aiohttp.ClientSession) -> _WebsocketsClient:
        return cls(await connect(url, ping_interval=None, compression=None, open_timeout=60))

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> str | None:
        try:
            return await self.ws.recv()
        except ConnectionClosed:
            return None

    async def close(self) -> None:
        await self.ws.close()


class _AiohttpClient(_WebsocketsClient):
    """A connection of aiohttp's client (its frame reader is compiled: less client CPU per frame)."""

    @classmethod
    async def open(cls, url: str, session: aiohttp.ClientSession) -> _AiohttpClient:
        ws = await session.ws_connect(url, autoping=False, compress=0, max_msg_size=0,
                                      timeout=aiohttp.ClientWSTimeout(ws_close=5))  # fmt: skip
        return cls(ws)

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self) -> str | None:
        while True:
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                return message.data
            if message.type == aiohttp.WSMsgType.PING:  # uvicorn's protocol-level keep-alive
                await self.ws.pong(message.data)
            elif message.type != aiohttp.WSMsgType.PONG:
                return None


IMPLEMENTATIONS = {"websockets": _WebsocketsClient, "aiohttp": _AiohttpClient}


async def _client(
    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
    args: argparse.Namespace,
    arrivals: list[list[float]],
    subscribed: asyncio.Event,
    counter: list[int],
    done: asyncio.Event,
    gate: asyncio.Semaphore,
) -> None:
    http, sockets = sessions
    async with gate:
        async with http.post(
            f"{args.url}/api/tenants/{args.tenant}/realtime/tickets",
            headers={"X-API-Key": args.key},
        ) as answer:
            answer.raise_for_status()
            ticket = (await answer.json())["ticket"]
        ws_url = args.url.replace("http://", "ws://", 1)
        url = f"{ws_url}/api/tenants/{args.tenant}/realtime/ws?ticket={ticket}"
        ws = await IMPLEMENTATIONS[args.impl].open(url, sockets)
        await ws.send(json.dumps({"type": "subscribe", "topics": {args.topic: None}}))
        while True:
            raw = await ws.recv()
            if raw is None or json.loads(raw).get("type") == "subscribed":
                break
    counter[0] += 1
    if counter[0] == args.count:
        subscribed.set()
    seen = 0
    try:
        while (raw := await ws.recv()) is not None:
            at = time.time()
            frame = _decode_frame(raw)
            kind = frame.type
            if kind == "event" and frame.data is not None:
                arrivals.append([frame.data.order_id, at])
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
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        # An open WebSocket holds its connector slot: no limit for them.
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as sockets,
    ):
        tasks = [
            asyncio.create_task(
                _client((http, sockets), args, arrivals, subscribed, counter, done, gate)
            )
            for _ in range(args.count)
        ]
        await asyncio.wait_for(subscribed.wait(), args.timeout)
        # The load generator's own collections are not the server's latency: the
        # connected clients' heap is frozen and the collector is off while frames
        # are recorded (reference counting still frees what they drop). Left on,
        # a generation-2 collection over 250 connections paused a client process
        # for 40-60 ms during a fan-out.
        gc.collect()
        gc.freeze()
        gc.disable()
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
    parser.add_argument("--impl", choices=sorted(IMPLEMENTATIONS), default="websockets",
                        help="WebSocket client library (default websockets)")  # fmt: skip
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (default asyncio's loop)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.uvloop:
        import uvloop

        results = uvloop.run(_run(args))
    else:
        results = asyncio.run(_run(args))
    Path(args.out).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
