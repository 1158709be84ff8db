"""The monthly rank job: two runtimes running it at once give one result; ranks change the pay."""

from __future__ import annotations

import asyncio
from datetime import date

from conftest import ANNA, BORIS, add_crew

from core.runtime.plugins import build_plugin_manager
from core.runtime.runtime import Runtime
from core.runtime.settings import RuntimeSettings
from plugins.shifts.service.ranks import compute_ranks


async def approved_shift(crew, employee_id: int, day: str, bar: int) -> dict:
    shift = await crew.ok(
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": employee_id,
            "opened_at": f"{day}T10:00:00Z",
            "closed_at": f"{day}T12:00:00Z",
            "sales": {"bar": bar},
        },
    )
    return await crew.ok("POST", f"/shifts/{shift['id']}/status", json={"status": "approved"})


async def test_two_runtimes_compute_a_month_once(crew, tenantry):
    anna = await crew.employee("Anna", ANNA)
    boris = await crew.employee("Boris", BORIS)
    carl = await crew.employee("Carl", None)
    await approved_shift(crew, anna["id"], "2026-11-03", 200000)
    await approved_shift(crew, anna["id"], "2026-11-04", 180000)
    await approved_shift(crew, boris["id"], "2026-11-03", 150000)
    submitted = await crew.ok(  # not approved: does not count
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": carl["id"],
            "opened_at": "2026-11-05T10:00:00Z",
            "sales": {"bar": 500000},
            "closed_at": "2026-11-05T11:00:00Z",
        },
    )
    assert submitted["status"] == "submitted"

    second = Runtime(
        RuntimeSettings(
            tenants_dir=tenantry.tenants_dir,
            data_dir=tenantry.data_dir,
            database_url=tenantry.database_url,
            redis_url=tenantry.redis_url,
            bot_api_url=tenantry.bot_api.base_url,
            public_url="http://127.0.0.1:1",
            secret_key=tenantry.secret_key,
            queue_name=f"tenantry-test-{tenantry.run_id}",
            control_schema=tenantry.control_schema,
            watch=False,
            pool_min_size=1,
            pool_max_size=4,
        ),
        build_plugin_manager(),
    )
    await second.start()
    try:
        other = second.registry.get("crew")
        assert other is not None and other is not crew.tenant and other.state == "running"
        december = date(2026, 12, 1)
        results = await asyncio.gather(
            compute_ranks(crew.tenant, december), compute_ranks(other, december)
        )
        [done] = [r for r in results if r is not None]
        assert results.count(None) == 1
        assert done["ranks"] == {anna["id"]: "gold", boris["id"]: "silver", carl["id"]: None}
        assert await compute_ranks(other, december) is None
    finally:
        await second.stop()
    ranks = await crew.table("employee_ranks", "employee_id")
    assert [(r["employee_id"], r["rank"], r["achieved"]) for r in ranks] == [
        (anna["id"], "gold", 380000),
        (boris["id"], "silver", 150000),
        (carl["id"], None, 0),
    ]
    assert len(await crew.table("rank_runs")) == 1

    # Silver's 1% bonus on December shifts; Anna's gold has none.
    shift = await approved_shift(crew, boris["id"], "2026-12-01", 100000)
    assert shift["rank"] == "silver"
    assert {b["bonus"]: b["amount"] for b in shift["bonuses"]} == {"rank:silver": 1000}
    gold = await approved_shift(crew, anna["id"], "2026-12-01", 100000)
    assert gold["rank"] == "gold" and gold["bonuses"] == []


BY_SHIFTS = {
    "commission": {"mode": "flat", "rates": [{"from": 0, "percent": 3}]},
    "rank_basis": "shifts",
    "ranks": [
        {
            "id": "regular",
            "name": "Regular",
            "threshold": 2,
            "rates": [{"from": 0, "to": 50000, "percent": 4}, {"from": 50000, "percent": 6}],
        }
    ],
}


async def test_ranks_by_shifts_and_a_ranks_own_rate_table(tenantry):
    team = await add_crew(tenantry, "byshifts", BY_SHIFTS, start=True)
    anna = await team.employee("Anna", ANNA)
    boris = await team.employee("Boris", BORIS)
    # Anna: two small approved shifts; Boris: one big one. The basis is the count.
    for person, day, sales in (
        (anna, "2026-11-03", 100),
        (anna, "2026-11-04", 100),
        (boris, "2026-11-03", 900000),
    ):
        shift = await team.ok(
            "POST",
            "/shifts",
            201,
            json={
                "employee_id": person["id"],
                "opened_at": f"{day}T10:00:00Z",
                "closed_at": f"{day}T12:00:00Z",
                "sales_total": sales,
            },
        )
        await team.ok("POST", f"/shifts/{shift['id']}/status", json={"status": "approved"})
    done = await compute_ranks(team.tenant, date(2026, 12, 1))
    assert done["ranks"] == {anna["id"]: "regular", boris["id"]: None}
    achieved = {r["employee_id"]: r["achieved"] for r in await team.table("employee_ranks")}
    assert achieved == {anna["id"]: 2, boris["id"]: 1}

    # December: Anna's shifts use the rank's table (flat 6 % from 50000), Boris' the tenant's 3 %.
    december = {"opened_at": "2026-12-01T10:00:00Z", "closed_at": "2026-12-01T12:00:00Z"}
    hers = await team.ok(
        "POST", "/shifts", 201, json={"employee_id": anna["id"], "sales_total": 60000, **december}
    )
    his = await team.ok(
        "POST", "/shifts", 201, json={"employee_id": boris["id"], "sales_total": 60000, **december}
    )
    assert (hers["rank"], hers["commission"], hers["rate_percent"]) == ("regular", 3600, 6)
    assert (his["rank"], his["commission"], his["rate_percent"]) == (None, 1800, 3)
    breakdown = await team.ok("GET", f"/shifts/{hers['id']}/commission")
    assert breakdown["rates_of"] == "rank:regular" and breakdown["matches"] is True
    assert [(p["from"], p["base"], p["exact"]) for p in breakdown["parts"]] == [
        (50000, 60000, "3600")
    ]
