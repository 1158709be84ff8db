"""The docs' walkthrough, replayed on ``tenants/crew.yaml``'s settings (Moscow time, Russian):
the shift card, the approval, ``/report 2026-11`` and its JSON are what the docs print."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from pathlib import Path

import yaml
from conftest import ADMIN, ANNA, add_crew, last_text, press, say

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "plugins" / "shifts.md").read_text(encoding="utf-8")


def crew_settings() -> dict:
    """``features.shifts`` of ``tenants/crew.yaml`` as written."""
    return yaml.safe_load((ROOT / "tenants" / "crew.yaml").read_text(encoding="utf-8"))["features"][
        "shifts"
    ]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, dedented text)`` of every fenced block of a Markdown ``text``."""
    blocks, inside, language, lines = [], False, "", []
    for line in text.split("\n"):
        fence = line.strip()
        if not inside and fence.startswith("```"):
            inside, language, lines = True, fence[3:], []
        elif inside and fence == "```":
            blocks.append((language, textwrap.dedent("\n".join(lines)).strip()))
            inside = False
        elif inside:
            lines.append(line)
    return blocks


def doc_block(starts: str, language: str = "") -> str:
    """The docs' fenced block (``language``) whose text starts with ``starts``."""
    for kind, text in fenced_blocks(DOC):
        if kind == language and text.startswith(starts):
            return text
    raise AssertionError(f"no block starting with {starts!r} in the docs")


def plain(text: str) -> str:
    """``text`` with CLDR's no-break spaces (U+00A0, U+202F) as the docs print them: spaces."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def sales(bar: int, kitchen: int, tips: int) -> dict:
    return {"bar": bar, "kitchen": kitchen, "tips": tips}


async def test_the_walkthrough_of_a_shift_and_a_month_report(tenantry, updates, bot_api):
    team = await add_crew(
        tenantry,
        "crewdoc",
        crew_settings(),
        start=True,
        timezone="Europe/Moscow",
        locale="ru",
    )
    anna = await team.employee("Анна Петрова", ANNA)

    # Friday 27 November, 18:00-02:00 Moscow time (15:00-23:00 UTC): a Friday shift.
    friday = await team.ok(
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": anna["id"],
            "opened_at": "2026-11-27T15:00:00Z",
            "closed_at": "2026-11-27T23:00:00Z",
            "sales": sales(4500000, 2300000, 500000),
        },
    )
    assert friday["local_date"] == "2026-11-27"
    card = bot_api.calls("sendMessage", bot_id=team.bot_id, chat_id=ADMIN)[-1].params["text"]
    shown = doc_block("Смена №1 закрыта и отправлена на утверждение.").split("\n")
    assert plain(card).split("\n") == ["Смена ждёт утверждения:", *shown[1:]]

    breakdown = await team.ok("GET", f"/shifts/{friday['id']}/commission")
    assert breakdown["parts"] == json.loads(doc_block('[{"from": 0', "json"))
    assert (breakdown["commission"], breakdown["total"]) == (296000, 546000)

    await press(team, updates, ADMIN, "sm:1:submitted:a")
    assert last_text(bot_api, team, ANNA) == "Ваша смена №1: Утверждена"

    # Tuesday 24 November, 10:00-18:00 Moscow time.
    tuesday = await team.ok(
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": anna["id"],
            "opened_at": "2026-11-24T07:00:00Z",
            "closed_at": "2026-11-24T15:00:00Z",
            "sales": sales(2000000, 500000, 100000),
        },
    )
    await team.ok("POST", f"/shifts/{tuesday['id']}/status", json={"status": "approved"})
    # 30 November 21:30 UTC is 1 December 00:30 in Moscow: December's, not November's.
    december = await team.ok(
        "POST",
        "/shifts",
        201,
        json={
            "employee_id": anna["id"],
            "opened_at": "2026-11-30T21:30:00Z",
            "closed_at": "2026-11-30T23:30:00Z",
            "sales": sales(100000, 0, 0),
        },
    )
    assert december["local_date"] == "2026-12-01"
    await team.ok("POST", f"/shifts/{december['id']}/status", json={"status": "approved"})

    await say(team, updates, ADMIN, "/report 2026-11")
    assert plain(last_text(bot_api, team, ADMIN)) == doc_block("Отчёт за 2026-11")
    report = await team.ok("GET", "/reports/2026-11")
    assert report == json.loads(doc_block('{"month": "2026-11"', "json"))
    assert (await team.ok("GET", "/reports/2026-12"))["totals"]["shifts"] == 1
    listed = await team.ok("GET", "/shifts", params={"from": "2026-11-01", "to": "2026-12-01"})
    assert {s["id"] for s in listed} == {friday["id"], tuesday["id"]}
    assert date.fromisoformat(friday["local_date"]).weekday() == 4
