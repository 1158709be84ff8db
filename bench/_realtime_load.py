"""Load generator of ``bench/realtime.py``, in a process of its own: orders created through the API.

Sends ``--orders`` ``POST /api/tenants/{tenant}/orders/orders`` (a bakery
pickup order of one item, with the admin API key) open-loop at ``--rate`` per
second: request ``n`` is sent at ``start + n / rate`` whether or not the ones
before it were answered. ``time.time()`` just before each request is sent
(the same clock as the clients', one machine) is the start of that order's
latency. Writes ``--out``:

``{"orders": [[order_id, sent_at, answered_at], ...], "errors": {"HTTP 500": n, ...}}``

Usage (by ``bench/realtime.py``)::

    python bench/_realtime_load.py --url http://127.0.0.1:8123 --tenant rt_x --key K \
        --item 1 --orders 50 --rate 10 --out O
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp


async def _run(args: argparse.Namespace) -> dict[str, object]:
    url = f"{args.url}/api/tenants/{args.tenant}/orders/orders"
    headers = {"X-API-Key": args.key, "Content-Type": "application/json"}
    orders: list[list[float]] = []
    errors: dict[str, int] = {}

    async def one(session: aiohttp.ClientSession, n: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        body = json.dumps({
            "store_id": "bakery", "type": "pickup", "phone": "+79990001122",
            "items": [{"item_id": args.item, "quantity": 1}],
            "customer_id": 5000 + n, "customer_name": f"Bench {n}",
        })  # fmt: skip
        sent = time.time()
        try:
            async with session.post(url, data=body, headers=headers) as answer:
                payload = await answer.read()
                if answer.status != 201:
                    errors[f"HTTP {answer.status}"] = errors.get(f"HTTP {answer.status}", 0) + 1
                    return
                orders.append([json.loads(payload)["id"], sent, time.time()])
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # One request first, outside the schedule: the connection is open before timing starts.
        async with session.get(f"{args.url}/health") as answer:
            await answer.read()
        start = time.monotonic() + 0.05
        await asyncio.gather(*(one(session, n, start + n / args.rate) for n in range(args.orders)))
    return {"orders": orders, "errors": errors}


def main(argv: Sequence[str] | None = None) -> int:
    """Send the orders, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="runtime base URL")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--key", required=True, help="admin API key")
    parser.add_argument("--item", type=int, required=True, help="item id to order")
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="orders per second")
    parser.add_argument("--out", required=True, help="results file (JSON)")
    args = parser.parse_args(argv)
    Path(args.out).write_text(json.dumps(asyncio.run(_run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
