"""Round trips of the events' background work: the outbox relay's move and the consumer groups.

The relay and every group's reader run in tasks of their own
(``outbox-relay-<n>`` moving, ``outbox-relay-sweep`` sweeping, ``events:<group>``), so what they send is told apart
from the requests by the task's name.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from _round_trips import RoundTrips
from conftest import ORDERS_SETTINGS


async def test_the_relay_moves_in_three_statements_and_skipping_groups_ack_per_batch(
    tenantry, monkeypatch
):
    config = tenantry.add_tenant(
        "shop", features={"orders": ORDERS_SETTINGS}, limits={"api_writes": "1000/minute"}
    )
    await tenantry.start()
    schema = config["storage"]["schema"]
    ids = {r["sku"]: r["id"] for r in await tenantry.sql(f'SELECT sku, id FROM "{schema}".items')}

    async def create(n: int) -> None:
        body = {
            "store_id": "bakery",
            "type": "pickup",
            "phone": "+79990001122",
            "customer_id": 500 + n,
            "customer_name": "Anna",
            "items": [{"item_id": ids["baguette"], "quantity": 2}],
        }
        response = await tenantry.client.post(
            "/api/tenants/shop/orders/orders", json=body, headers=tenantry.api_headers("shop")
        )
        assert response.status_code == 201, response.text

    await create(0)  # statements prepared once
    await tenantry.events_delivered("shop")
    before = await _event_metrics(tenantry)
    trips = RoundTrips(monkeypatch)
    await asyncio.gather(*(create(n) for n in range(1, 9)))
    await tenantry.events_delivered("shop")

    by_task: dict[str, list[tuple[str, str]]] = {}
    for task, backend, text in trips.calls:
        by_task.setdefault(task.get_name() if task else "", []).append((backend, text))

    relay = [text for name, calls in by_task.items() if name.removeprefix("outbox-relay-").isdigit()
             for backend, text in calls if backend == "postgres"]  # fmt: skip
    kinds = Counter(text.split(";")[0].split()[0] for text in relay)
    # BEGIN (search_path and the schema's advisory lock), DELETE ... RETURNING, COMMIT.
    assert set(kinds) == {"BEGIN", "DELETE", "COMMIT"}, relay
    assert kinds["BEGIN"] == kinds["DELETE"] == kinds["COMMIT"] >= 1, relay
    assert all("pg_advisory_xact_lock" in text for text in relay if text.startswith("BEGIN"))
    moved = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema}".tenantry_outbox')
    assert moved == [{"n": 0}]

    # The tenant enables orders only: the other groups skip all 8 events, with at
    # most one pipelined XACK per read that returned entries, never one per event
    # (a batch's tenants run in tasks of their own: count XACKs from any task).
    assert not [text for _task, _backend, text in trips.calls if text.startswith("XACK")]
    for group in ("booking", "shifts", "realtime"):
        calls = [text for backend, text in by_task.get(f"events:{group}", [])]
        reads = sum(text.startswith("XREADGROUP") for text in calls)
        assert reads >= 1, (group, calls)
        assert calls.count("pipeline") <= max(reads - 1, 1), (group, calls)

    # /metrics counts what the relay moved and what the orders group handled.
    after = await _event_metrics(tenantry)
    assert after["moved"] - before["moved"] == 8
    assert after["orders"] - before["orders"] == 8
    assert after["booking"] == before["booking"]  # skipped entries are not handled


async def _event_metrics(tenantry) -> dict[str, float]:
    text = (await tenantry.client.get("/metrics")).text
    found = {"moved": 0.0, "orders": 0.0, "booking": 0.0}
    for line in text.splitlines():
        if line.startswith("tenantry_events_moved_total "):
            found["moved"] = float(line.split()[-1])
        for group in ("orders", "booking"):
            if line.startswith(f'tenantry_events_handled_total{{group="{group}"}} '):
                found[group] = float(line.split()[-1])
    return found
