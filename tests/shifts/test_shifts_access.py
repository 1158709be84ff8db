"""Pay per employee, the commission breakdown, filters, scoped keys, invites, the open-shift
constraint and a second tenant, through the HTTP API, the webhook and the database."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from conftest import ANNA, BORIS, SHIFTS_SETTINGS, STRANGER, add_crew, last_text, say

MONDAY = "2026-11-02"


async def record(crew, employee_id: int, day: str, hours: str, bar: int, **headers) -> dict:
    opened, closed = hours.split("-")
    return await crew.ok(
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": employee_id,
            "opened_at": f"{day}T{opened}:00Z",
            "closed_at": f"{day}T{closed}:00Z",
            "sales": {"bar": bar},
        },
        **headers,
    )


async def test_an_employees_own_rate_wins_and_a_change_applies_to_later_shifts(crew):
    anna = await crew.employee("Anna", ANNA, hourly_rate=12345)
    boris = await crew.employee("Boris", BORIS)
    # 1.5 h: 12345 x 1.5 = 18517.5 -> 18518 (half up); Boris has the role's 100.00/h.
    first = await record(crew, anna["id"], MONDAY, "10:00-11:30", 0)
    theirs = await record(crew, boris["id"], MONDAY, "10:00-11:30", 0)
    assert (first["base_pay"], theirs["base_pay"]) == (18518, 15000)

    changed = await crew.ok("PATCH", f"/employees/{anna['id']}", json={"hourly_rate": 20000})
    assert changed["hourly_rate"] == 20000
    later = await record(crew, anna["id"], "2026-11-03", "10:00-11:00", 0)
    assert later["base_pay"] == 20000
    # A manager has no rate in these settings (hourly_rates: {staff: ...}): no base pay.
    await crew.ok("PATCH", f"/employees/{boris['id']}", json={"role": "manager"})
    managed = await record(crew, boris["id"], "2026-11-03", "10:00-11:00", 0)
    assert managed["base_pay"] == 0
    assert first["base_pay"] == (await crew.ok("GET", f"/shifts/{first['id']}"))["base_pay"]


async def test_the_commission_breakdown_of_a_shift(crew):
    anna = await crew.employee("Anna", ANNA)
    await crew.employee("Boris", BORIS)
    shift = await record(crew, anna["id"], MONDAY, "10:00-12:00", 120001)
    breakdown = await crew.ok("GET", f"/shifts/{shift['id']}/commission")
    # 50000 x 3% + 50000 x 5% + 20001 x 7% = 1500 + 2500 + 1400.07 -> 5400.
    assert (breakdown["mode"], breakdown["rates_of"], breakdown["commission"]) == (
        "progressive",
        "commission",
        5400,
    )
    assert [
        (p["from"], p["to"], p["percent"], p["base"], p["exact"]) for p in breakdown["parts"]
    ] == [
        (0, 50000, 3, 50000, "1500"),
        (50000, 100000, 5, 50000, "2500"),
        (100000, None, 7, 20001, "1400.07"),
    ]
    assert breakdown["matches"] is True and breakdown["total"] == shift["total"]
    hidden = await crew.call("GET", f"/shifts/{shift['id']}/commission", headers=crew.webapp(BORIS))
    assert hidden.status_code == 404 and hidden.json()["code"] == "shifts.not_found"


async def test_lists_and_reports_by_employee(crew):
    anna = await crew.employee("Anna", ANNA)
    boris = await crew.employee("Boris", BORIS)
    for person, day in ((anna, "2026-11-02"), (anna, "2026-11-03"), (boris, "2026-11-02")):
        shift = await record(crew, person["id"], day, "10:00-12:00", 10000)
        await crew.ok("POST", f"/shifts/{shift['id']}/status", json={"status": "approved"})
    listed = await crew.ok("GET", "/shifts", params={"employee": boris["id"]})
    assert [s["employee_id"] for s in listed] == [boris["id"]]
    report = await crew.ok("GET", "/reports/2026-11", params={"employee": anna["id"]})
    assert [(r["employee_id"], r["shifts"]) for r in report["employees"]] == [(anna["id"], 2)]
    assert report["totals"]["shifts"] == 2
    csv_text = (
        await crew.call("GET", "/reports/2026-11/csv", params={"employee": boris["id"]})
    ).text
    assert [line.split(",")[1] for line in csv_text.strip().split("\r\n")] == [
        "employee_name",
        "Boris",
        "total",
    ]
    # Staff ask for someone else's row and get their own.
    own = await crew.ok(
        "GET", "/reports/2026-11", params={"employee": anna["id"]}, headers=crew.webapp(BORIS)
    )
    assert [r["employee_id"] for r in own["employees"]] == [boris["id"]]


async def test_scoped_keys(tenantry):
    keys = {
        "manager": "mgr-key-0123456789",
        "reports": "rep-key-0123456789",
        "staff": "stf-key-0123456789",
    }
    team = await add_crew(
        tenantry,
        "keys",
        SHIFTS_SETTINGS,
        start=True,
        api={
            "keys": [
                tenantry.api_key("keys"),
                {"key": keys["manager"], "role": "manager", "name": "manager"},
                {"key": keys["reports"], "role": "manager", "read_only": True, "name": "reports"},
                {"key": keys["staff"], "role": "staff", "name": "till"},
            ]
        },
    )
    as_key = {name: {"X-API-Key": key} for name, key in keys.items()}
    anna = await team.ok(
        "POST", "/employees", 201, json={"name": "Anna"}, headers=as_key["manager"]
    )
    shift = await record(team, anna["id"], MONDAY, "10:00-12:00", 10000, headers=as_key["manager"])
    await team.ok(
        "POST",
        f"/shifts/{shift['id']}/status",
        json={"status": "approved"},
        headers=as_key["manager"],
    )
    report = await team.ok("GET", "/reports/2026-11", headers=as_key["reports"])
    assert report["totals"]["shifts"] == 1
    refused = await team.call("POST", "/employees", json={"name": "X"}, headers=as_key["reports"])
    assert refused.status_code == 403 and refused.json()["code"] == "auth.read_only"
    # A staff key is nobody's employee: no shifts, no report rows, no management.
    assert await team.ok("GET", "/shifts", headers=as_key["staff"]) == []
    staff_report = await team.ok("GET", "/reports/2026-11", headers=as_key["staff"])
    assert staff_report["employees"] == [] and staff_report["totals"]["total"] == 0
    missing = await team.call("GET", f"/shifts/{shift['id']}", headers=as_key["staff"])
    assert missing.status_code == 404
    forbidden = await team.call("POST", "/employees", json={"name": "X"}, headers=as_key["staff"])
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "shifts.managers_only"


async def test_two_clock_ins_at_once_make_one_open_shift(crew):
    anna = await crew.employee("Anna", ANNA)
    body = {"employee_id": anna["id"], "opened_at": "2026-11-02T10:00:00Z"}
    answers = await asyncio.gather(*(crew.call("POST", "/shifts", json=body) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"shifts.already_open"}
    # The constraint itself, below the service's check: a second open row is refused.
    with pytest.raises(asyncpg.UniqueViolationError, match="shifts_one_open_idx"):
        await crew.h.sql(
            f'INSERT INTO "{crew.schema}".shifts (employee_id, status, opened_at, local_date, currency)'
            " VALUES ($1, 'open', now(), current_date, 'RUB')",
            anna["id"],
        )
    assert len(await crew.table("shifts")) == 1


async def test_invites_over_http_expire_and_work_once(crew, updates, bot_api):
    oleg = await crew.employee("Oleg", None, role="manager")
    invite = await crew.ok("POST", f"/employees/{oleg['id']}/invite", 201)
    assert invite["link"].endswith("?start=" + invite["start"])
    assert re.fullmatch(r"inv_[A-Za-z0-9_-]{22}", invite["start"])
    [stored] = await crew.table("invites")
    assert invite["start"][4:] not in str(stored)  # only its SHA-256 is kept
    await crew.h.sql(
        f"UPDATE \"{crew.schema}\".invites SET expires_at = now() - interval '1 second'"
    )
    await say(crew, updates, STRANGER, f"/start {invite['start']}")
    assert "unknown, used or expired" in last_text(bot_api, crew, STRANGER)
    fresh = await crew.ok("POST", f"/employees/{oleg['id']}/invite", 201)
    await say(crew, updates, STRANGER, f"/start {fresh['start']}")
    assert last_text(bot_api, crew, STRANGER).startswith("Welcome to the team, Oleg!")
    again = await crew.call("POST", f"/employees/{oleg['id']}/invite")
    assert again.status_code == 409 and again.json()["code"] == "shifts.already_joined"
    # Oleg joined as a manager: manager commands are his now.
    await say(crew, updates, STRANGER, "/pending")
    assert last_text(bot_api, crew, STRANGER) == "No shifts are waiting for approval."


async def test_a_second_tenant_knows_nothing_of_the_first_tenants_staff(crew, updates, bot_api):
    anna = await crew.employee("Anna", ANNA)
    await record(crew, anna["id"], MONDAY, "10:00-12:00", 10000)
    other = await add_crew(crew.h, "other", {})
    # Anna's WebApp login for the other tenant's bot: she is nobody there.
    refused = await other.call("GET", "/shifts", headers=other.webapp(ANNA))
    assert refused.status_code == 403 and refused.json()["code"] == "shifts.staff_only"
    await say(other, updates, ANNA, "/shift")
    assert last_text(bot_api, other, ANNA).startswith("This command is for staff")
    assert await other.table("shifts") == [] and await other.table("employees") == []
    # And her own bot still knows her.
    await say(crew, updates, ANNA, "/myshifts")
    assert "#1" in last_text(bot_api, crew, ANNA)
