"""The HTTP API against the database: pay, approval, corrections with history, reports and exports."""

from __future__ import annotations

import io
import random
from datetime import date

from conftest import ANNA, BORIS

NOV_2_OPEN = "2026-11-02T10:00:00Z"  # a Monday
NOV_2_CLOSE = "2026-11-02T18:30:00Z"
NOV_7_OPEN = "2026-11-07T10:00:00Z"  # a Saturday
NOV_7_CLOSE = "2026-11-07T14:00:00Z"


async def two_shifts(crew) -> tuple[dict, dict, dict]:
    anna = await crew.employee("Anna", ANNA)
    first = await crew.ok(
        "POST", "/shifts", 201, json={"employee_id": anna["id"], "opened_at": NOV_2_OPEN}
    )
    first = await crew.ok(
        "POST",
        f"/shifts/{first['id']}/close",
        json={"sales": {"bar": 120000, "tips": 30000}, "closed_at": NOV_2_CLOSE},
    )
    second = await crew.ok(
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": anna["id"],
            "opened_at": NOV_7_OPEN,
            "closed_at": NOV_7_CLOSE,
            "sales": {"bar": 250000},
        },
    )
    return anna, first, second


async def test_close_computes_the_pay_by_hand(crew):
    anna, first, second = await two_shifts(crew)
    # 8.5 h x 100.00 = 850.00; base 120000 (tips earn none):
    # 50000 x 3% + 50000 x 5% + 20000 x 7% = 1500 + 2500 + 1400.
    assert (first["status"], first["worked_seconds"], first["sales_total"]) == (
        "submitted",
        30600,
        150000,
    )
    assert (first["commission_base"], first["commission"], first["base_pay"]) == (
        120000,
        5400,
        85000,
    )
    assert first["bonuses"] == [] and first["total"] == 90400
    # Saturday, 250000: 1500 + 2500 + 150000 x 7% = 14500; weekend 5000 and 2% of 250000.
    assert second["commission"] == 14500 and second["base_pay"] == 40000
    assert sorted((b["bonus"], b["name"], b["amount"]) for b in second["bonuses"]) == [
        ("big", "Big night", 5000),
        ("weekend", "Weekend", 5000),
    ]
    assert second["total"] == 40000 + 14500 + 10000
    rows = await crew.table("shift_bonuses", "bonus")
    assert {(r["bonus"], r["amount"]) for r in rows} == {("weekend", 5000), ("big", 5000)}
    again = await crew.call("POST", "/shifts", json={"employee_id": anna["id"]})
    opened = await crew.call("POST", "/shifts", json={"employee_id": anna["id"]})
    assert again.status_code == 201 and opened.status_code == 409, opened.text
    assert (
        opened.json()["code"] == "shifts.already_open"
        and opened.json()["shift_id"] == again.json()["id"]
    )


async def test_approve_correct_and_history(crew):
    _, first, second = await two_shifts(crew)
    refused = await crew.call("POST", f"/shifts/{first['id']}/status", json={"status": "paid"})
    assert refused.status_code == 409 and refused.json()["code"] == "status.not_allowed"
    assert refused.json()["allowed"] == ["approved", "rejected"]
    for shift in (first, second):
        await crew.ok("POST", f"/shifts/{shift['id']}/status", json={"status": "approved"})
    corrected = await crew.ok(
        "POST",
        f"/shifts/{first['id']}/correct",
        json={"sales": {"bar": 100000, "tips": 30000}, "reason": "bar till miscounted"},
    )
    assert corrected["status"] == "approved"
    assert (corrected["commission"], corrected["total"]) == (4000, 89000)
    history = await crew.ok("GET", f"/shifts/{first['id']}/history")
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "open"),
        ("open", "submitted"),
        ("submitted", "approved"),
        ("approved", "approved"),
    ]
    correction = history[-1]
    assert correction["reason"] == "bar till miscounted" and correction["role"] == "admin"
    assert correction["changes"]["commission"] == {"from": 5400, "to": 4000}
    assert correction["changes"]["sales"]["to"] == {"bar": 100000, "tips": 30000}
    assert set(correction["changes"]) == {"sales", "sales_total", "commission", "total"}
    no_reason = await crew.call(
        "POST", f"/shifts/{first['id']}/correct", json={"sales_total": 1, "reason": " "}
    )
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "shifts.bad_reason"

    report = await crew.ok("GET", "/reports/2026-11")
    [row] = report["employees"]
    assert (row["shifts"], row["worked_seconds"], row["sales"]) == (2, 45000, 380000)
    assert (row["commission"], row["bonuses"], row["base_pay"], row["total"]) == (
        18500,
        10000,
        125000,
        153500,
    )
    shifts = await crew.ok(
        "GET", "/shifts", params={"from": "2026-11-01", "to": "2026-12-01", "status": "approved"}
    )
    assert row["total"] == sum(s["total"] for s in shifts) and len(shifts) == 2
    assert report["totals"]["total"] == 153500

    csv_text = (await crew.call("GET", "/reports/2026-11/csv")).text
    lines = csv_text.strip().split("\r\n")
    assert lines[0].startswith("employee_id,employee_name,shifts,worked_seconds,sales")
    assert lines[1].split(",")[1:9] == [
        "Anna",
        "2",
        "45000",
        "380000",
        "125000",
        "18500",
        "10000",
        "153500",
    ]

    from openpyxl import load_workbook

    response = await crew.call("GET", "/reports/2026-11/xlsx")
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][:3] == ["Employee id", "Employee", "Shifts"]
    assert values[1][1:9] == ["Anna", 2, 12.5, 3800.0, 1250.0, 185.0, 100.0, 1535.0]
    assert values[-1][1] == "Total" and values[-1][8] == 1535.0


async def test_staff_in_the_webapp_see_their_own_only(crew):
    anna, first, _ = await two_shifts(crew)
    boris = await crew.employee("Boris", BORIS)
    theirs = await crew.ok(
        "POST", "/shifts", 201, json={"employee_id": boris["id"], "opened_at": NOV_2_OPEN}
    )
    as_anna = crew.webapp(ANNA)
    mine = await crew.call("GET", "/shifts", headers=as_anna)
    assert mine.status_code == 200 and {s["employee_id"] for s in mine.json()} == {anna["id"]}
    hidden = await crew.call("GET", f"/shifts/{theirs['id']}", headers=as_anna)
    assert hidden.status_code == 404 and hidden.json()["code"] == "shifts.not_found"
    correct = await crew.call(
        "POST",
        f"/shifts/{first['id']}/correct",
        headers=as_anna,
        json={"sales_total": 1, "reason": "x"},
    )
    assert correct.status_code == 403 and correct.json()["code"] == "shifts.managers_only"
    staff_list = await crew.call("GET", "/employees", headers=as_anna)
    assert staff_list.status_code == 403
    opened = await crew.call("POST", "/shifts", headers=as_anna, json={"employee_id": boris["id"]})
    assert opened.status_code == 403 and opened.json()["code"] == "shifts.not_yours"
    stranger = await crew.call("GET", "/shifts", headers=crew.webapp(4242))
    assert stranger.status_code == 403


async def test_a_second_tenant_cannot_see_the_first_tenants_staff(crew, tenantry):
    await two_shifts(crew)
    tenantry.add_tenant("other", features={"shifts": {}})
    await tenantry.wait_state("other", "running", timeout=20)
    other = "/api/tenants/other/shifts"
    own = await tenantry.client.get(f"{other}/employees", headers=tenantry.api_headers("other"))
    assert own.status_code == 200 and own.json() == []
    crossed = await tenantry.client.get(
        f"{crew.base}/employees", headers=tenantry.api_headers("other")
    )
    assert crossed.status_code == 401
    shift_id = (await crew.table("shifts"))[0]["id"]
    missing = await tenantry.client.get(
        f"{other}/shifts/{shift_id}", headers=tenantry.api_headers("other")
    )
    assert missing.status_code == 404
    report = await tenantry.client.get(
        f"{other}/reports/2026-11", headers=tenantry.api_headers("other")
    )
    assert report.json()["employees"] == []


async def test_bad_input_is_a_4xx_with_a_code(crew):
    anna = await crew.employee("Anna", ANNA)
    shift = await crew.ok(
        "POST", "/shifts", 201, json={"employee_id": anna["id"], "opened_at": NOV_2_OPEN}
    )
    cases = [
        ("POST", f"/shifts/{shift['id']}/close", {"sales_total": 5}, "shifts.bad_sales"),
        ("POST", f"/shifts/{shift['id']}/close", {"sales": {"wine": 5}}, "shifts.bad_sales"),
        (
            "POST",
            f"/shifts/{shift['id']}/close",
            {"sales": {"bar": 5}, "closed_at": "2026-11-01T00:00:00Z"},
            "shifts.bad_times",
        ),
        (
            "POST",
            f"/shifts/{shift['id']}/status",
            {"status": "approved"},
            "shifts.close_with_sales",
        ),
        ("POST", "/employees", {"name": "X", "role": "owner"}, "shifts.bad_role"),
        ("POST", "/employees", {"name": "Twin", "user_id": ANNA}, "shifts.user_taken"),
    ]
    for method, path, body, code in cases:
        response = await crew.call(method, path, json=body)
        assert 400 <= response.status_code < 500 and response.json()["code"] == code, (
            path,
            response.text,
        )
    assert (await crew.call("GET", "/reports/2026-13")).json()["code"] == "shifts.bad_month"
    boris = await crew.employee("Boris", BORIS)
    whole = await crew.call(
        "POST",
        "/shifts",
        json={
            "employee_id": boris["id"],
            "opened_at": NOV_2_OPEN,
            "closed_at": "2026-11-04T10:00:00Z",  # 48 h: over max_shift_hours
            "sales": {"bar": 1},
        },
    )
    assert whole.status_code == 400 and whole.json()["code"] == "shifts.too_long"
    assert len(await crew.table("shifts")) == 1  # the recorded shift was not half-written
    unchanged = await crew.table("shifts")
    assert unchanged[0]["closed_at"] is None and unchanged[0]["local_date"] == date(2026, 11, 2)


async def test_the_month_report_is_the_sum_of_its_counted_shifts(crew):
    rng = random.Random(14)
    people = [await crew.employee(name, None) for name in ("Ann", "Bob", "Cid")]
    made = []
    for day in range(1, 13):
        person = rng.choice(people)
        body = {
            "employee_id": person["id"],
            "opened_at": f"2026-11-{day:02d}T09:00:00Z",
            "closed_at": f"2026-11-{day:02d}T{rng.randint(10, 20)}:{rng.choice(['00', '15', '45'])}:00Z",
            "sales": {"bar": rng.randint(0, 400000), "tips": rng.randint(0, 20000)},
        }
        shift = await crew.ok("POST", "/shifts", 201, json=body)
        target = rng.choice(["submitted", "approved", "rejected", "paid"])
        if target != "submitted":
            for status in {
                "approved": ["approved"],
                "rejected": ["rejected"],
                "paid": ["approved", "paid"],
            }[target]:
                shift = await crew.ok(
                    "POST", f"/shifts/{shift['id']}/status", json={"status": status}
                )
        made.append(shift)
    outside = await crew.ok(  # October: another month
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": people[0]["id"],
            "opened_at": "2026-10-31T09:00:00Z",
            "closed_at": "2026-10-31T10:00:00Z",
            "sales_total": None,
            "sales": {"bar": 1},
        },
    )
    await crew.ok("POST", f"/shifts/{outside['id']}/status", json={"status": "approved"})
    report = await crew.ok("GET", "/reports/2026-11")
    counted = [s for s in made if s["status"] in ("approved", "paid")]
    assert counted, "the seed gives some counted shifts"
    for row in report["employees"]:
        mine = [s for s in counted if s["employee_id"] == row["employee_id"]]
        assert row["shifts"] == len(mine)
        for column, field in (
            ("sales", "sales_total"),
            ("commission", "commission"),
            ("bonuses", "bonus_total"),
            ("base_pay", "base_pay"),
            ("total", "total"),
            ("worked_seconds", "worked_seconds"),
        ):
            assert row[column] == sum(s[field] for s in mine), column
    assert report["totals"]["total"] == sum(s["total"] for s in counted)
    assert report["totals"]["shifts"] == len(counted)
