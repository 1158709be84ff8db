"""``statuses.shift`` of the tenant's own: renamed states end to end, and settings that do not fit."""

from __future__ import annotations

import asyncpg
import pytest
import yaml
from conftest import ANNA, add_crew

from core.config.loader import load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager

MACHINE = {
    "initial": "on_shift",
    "transitions": {
        "on_shift": [{"to": "handed_in"}],
        "handed_in": [
            {"to": "ok", "roles": ["manager", "admin"]},
            {"to": "bounced", "roles": ["manager", "admin"]},
        ],
        "bounced": [{"to": "handed_in"}],
        "ok": [{"to": "settled", "roles": ["manager", "admin"]}],
    },
}
FITTING = {
    "closed_status": "handed_in",
    "approved_status": "ok",
    "rejected_status": "bounced",
    "counted_statuses": ["ok", "settled"],
    "correctable_statuses": ["handed_in", "ok"],
}


async def test_renamed_states_end_to_end(tenantry):
    team = await add_crew(tenantry, "renamed", FITTING, start=True, statuses={"shift": MACHINE})
    anna = await team.employee("Anna", ANNA)
    shift = await team.ok(
        "POST",
        "/shifts",
        201,
        json={"employee_id": anna["id"], "opened_at": "2026-11-02T10:00:00Z"},
    )
    assert shift["status"] == "on_shift"
    shift = await team.ok(
        "POST",
        f"/shifts/{shift['id']}/close",
        json={"sales_total": 1000, "closed_at": "2026-11-02T12:00:00Z"},
    )
    assert shift["status"] == "handed_in"
    unknown = await team.call("POST", f"/shifts/{shift['id']}/status", json={"status": "approved"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "status.unknown"
    refused = await team.call("POST", f"/shifts/{shift['id']}/status", json={"status": "settled"})
    assert refused.status_code == 409 and refused.json()["allowed"] == ["ok", "bounced"]
    await team.ok("POST", f"/shifts/{shift['id']}/status", json={"status": "ok"})
    corrected = await team.ok(
        "POST", f"/shifts/{shift['id']}/correct", json={"sales_total": 2000, "reason": "till"}
    )
    assert corrected["status"] == "ok" and corrected["sales_total"] == 2000
    report = await team.ok("GET", "/reports/2026-11")
    assert report["counted_statuses"] == ["ok", "settled"] and report["totals"]["shifts"] == 1
    history = await team.ok("GET", f"/shifts/{shift['id']}/history")
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "on_shift"),
        ("on_shift", "handed_in"),
        ("handed_in", "ok"),
        ("ok", "ok"),
    ]
    # The core's CHECK follows the tenant's machine: a default state name is refused.
    with pytest.raises(asyncpg.CheckViolationError):
        await team.h.sql(f"UPDATE \"{team.schema}\".shifts SET status = 'approved'")


def test_state_settings_that_do_not_fit_the_machine_are_yaml_errors(tenantry):
    pm = build_plugin_manager()

    def refused(settings: dict) -> list[str]:
        config = tenantry.tenant_config(
            "misfit", features={"shifts": settings}, statuses={"shift": MACHINE}
        )
        text = yaml.safe_dump(config, sort_keys=False)
        with pytest.raises(ConfigError) as caught:
            load_tenant_text(text, "tenants/misfit.yaml", pm, env={})
        return [str(issue) for issue in caught.value.issues]

    [problem] = refused({**FITTING, "closed_status": "submitted"})
    assert (
        problem.startswith("tenants/misfit.yaml:")
        and ": features.shifts.closed_status: 'submitted' is not a state of statuses.shift"
        in problem
    )
    line = int(problem.split(":")[1])
    config_text = yaml.safe_dump(
        tenantry.tenant_config(
            "misfit",
            features={"shifts": {**FITTING, "closed_status": "submitted"}},
            statuses={"shift": MACHINE},
        ),
        sort_keys=False,
    )
    assert config_text.splitlines()[line - 1].strip().startswith("closed_status:")
    [problem] = refused({**FITTING, "approved_status": "settled"})
    assert "statuses.shift has no transition 'handed_in' -> 'settled'" in problem
    # A fitting set loads.
    config = tenantry.tenant_config(
        "fits", features={"shifts": FITTING}, statuses={"shift": MACHINE}
    )
    load_tenant_text(yaml.safe_dump(config, sort_keys=False), "tenants/fits.yaml", pm, env={})
