"""Problem reports of tenant files, CLI start-up, the offline OpenAPI page, removal and outages.

* Every problem of a tenant file is reported at once, each at its own line,
  and none that only follows from another one.
* ``tenantry --help``, ``--version``, ``check``, ``schema`` and ``plugins``
  answer without importing the bot and HTTP stacks.
* ``/schema`` loads its scripts and styles from the runtime itself.
* Removing a tenant calls deleteWebhook for its bot; a swap does not.
* A Bot API outage logs one line per retry or failed call, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.config.loader import load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager
from core.testing.plugin import free_port

REPO = Path(__file__).resolve().parent.parent

# Line numbers matter in this file: the comments name them.
RESTAURANT = """\
id: filin
bot:
  token: "123:abc"
features:
  booking:
    kind: tables
    tables:
      - {id: t1, seats: 2}
      - {id: t2, seats: 0}
      - {id: t3, seats: 4, combinable_with: [t4]}
      - {id: t4, seats: 4}
    opening_hours:
      mon: "12:00-23:00"
      tue: "25:00-23:00"
      sunday: "10:00-12:00"
    slot_step_minutes: 3
statuses:
  booking:
    initial: pending
    transitions:
      pending: [confirmed, cancelled]
      confirmed: [completed, cancelled]
"""
# line 9: t2 seats 0 / 14: tue hours / 15: sunday / 16: slot step


@pytest.fixture
def pm():
    return build_plugin_manager(entry_points=False)


def problems(text: str, pm, filename: str = "tenants/filin.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(textwrap.dedent(text), filename, pm, {})
    return [str(issue) for issue in caught.value.issues]


def test_every_problem_of_a_feature_block_is_reported_at_its_own_line(pm):
    assert sorted(problems(RESTAURANT, pm)) == sorted(
        [
            "tenants/filin.yaml:9: features.booking.tables[1].seats: expected int >= 1, got 0",
            "tenants/filin.yaml:14: features.booking.opening_hours.tue: "
            "opening hours must look like '10:00-22:00', got '25:00-23:00'",
            "tenants/filin.yaml:15: features.booking.opening_hours.sunday: "
            "unknown weekday 'sunday' (use mon, tue, wed, thu, fri, sat, sun)",
            "tenants/filin.yaml:16: features.booking.slot_step_minutes: expected int >= 5, got 3",
        ]
    )


def test_a_cross_reference_to_a_bad_entry_is_not_reported_again(pm):
    # t4 is invalid; t3's reference to it is a consequence, not a second problem.
    text = RESTAURANT.replace("{id: t4, seats: 4}", "{id: t4, seats: -4}").replace(
        "{id: t2, seats: 0}", "{id: t2, seats: 2}"
    )
    text = text.replace('tue: "25:00-23:00"', 'tue: "12:00-23:00"').replace(
        '      sunday: "10:00-12:00"\n', ""
    )
    assert problems(text, pm) == [
        "tenants/filin.yaml:11: features.booking.tables[3].seats: expected int >= 1, got -4",
        "tenants/filin.yaml:15: features.booking.slot_step_minutes: expected int >= 5, got 3",
    ]
    unknown_partner = text.replace("seats: -4", "seats: 4").replace("[t4]", "[t9]")
    assert problems(unknown_partner, pm) == [
        "tenants/filin.yaml:10: features.booking.tables[2].combinable_with[0]: "
        "'t3' is combinable with unknown table 't9'",
        "tenants/filin.yaml:15: features.booking.slot_step_minutes: expected int >= 5, got 3",
    ]


def test_nested_list_items_are_each_reported(pm):
    text = """\
        id: market
        bot: {token: "124:abc"}
        features:
          orders:
            stores:
              - {id: bakery, name: Bakery}
            categories:
              - {id: bread, store: bakery, name: Bread}
            items:
              - {sku: rye, store: bakery, category: bread, name: Rye, price: 100}
              - {sku: bun, store: bakery, category: bread, name: Bun, price: -1}
              - {sku: loaf, store: bakery, category: breadd, name: Loaf, price: 100}
              - {sku: roll, store: bakery, category: bread, name: Roll, price: "x"}
        """
    assert problems(text, pm, "tenants/market.yaml") == [
        "tenants/market.yaml:11: features.orders.items[1].price: expected int >= 0, got -1",
        "tenants/market.yaml:12: features.orders.items[2].category: "
        "item 'loaf': category 'breadd' is not a category of store 'bakery'",
        'tenants/market.yaml:13: features.orders.items[3].price: expected int, got "x"',
    ]


def test_failed_settings_add_no_follow_on_status_error(pm):
    text = RESTAURANT.replace("slot_step_minutes: 3", "slot_step_minutes: 30")
    text = text.replace("{id: t2, seats: 0}", "{id: t2, seats: 2}")
    text = text.replace('tue: "25:00-23:00"', 'tue: "12:00-23:00"')
    # The booking feature failed validation (one bad weekday): its status
    # machine override is still checked, not reported as "no entity".
    assert problems(text, pm) == [
        "tenants/filin.yaml:15: features.booking.opening_hours.sunday: "
        "unknown weekday 'sunday' (use mon, tue, wed, thu, fri, sat, sun)"
    ]
    with_bad_machine = text.replace("pending: [confirmed, cancelled]", "pending: [cancelled]")
    reported = problems(with_bad_machine, pm)
    assert len(reported) == 2
    assert "no entity" not in " ".join(reported)
    assert reported[1] == (
        "tenants/filin.yaml:22: statuses.booking.transitions.confirmed: "
        "state 'confirmed' is unreachable from 'pending' (and so is 'completed')"
    )


def test_statuses_of_a_misspelt_feature_are_not_reported_again(pm):
    text = RESTAURANT.replace("  booking:\n    kind", "  bookng:\n    kind", 1)
    [only] = problems(text, pm)
    assert only.startswith("tenants/filin.yaml:5: features.bookng: unknown plugin 'bookng'")


def test_misspelt_transition_target_is_named_unknown_not_unreachable(pm):
    valid = (
        RESTAURANT.split("features:")[0]
        + "features:\n  booking:\n    tables: [{id: t1, seats: 2}]\n"
    )
    machine = """\
statuses:
  booking:
    initial: pending
    transitions:
      pending: [confrimed, cancelled]
      confirmed: [seated, cancelled]
      seated: [completed]
"""
    # Without `states:` every written name is a state, so the typo used to
    # make confirmed and seated "unreachable" instead.
    assert problems(valid + machine, pm) == [
        "tenants/filin.yaml:11: statuses.booking.transitions.pending[0]: "
        "transition to unknown state 'confrimed' (did you mean 'confirmed'?)"
    ]
    declared = machine.replace(
        "    initial: pending\n",
        "    initial: pending\n    states: [pending, confirmed, seated, completed, cancelled]\n",
    )
    assert problems(valid + declared, pm) == [
        "tenants/filin.yaml:12: statuses.booking.transitions.pending[0]: "
        "transition to unknown state 'confrimed' (did you mean 'confirmed'?)"
    ]
    misspelt_source = machine.replace("pending: [confrimed", "pending: [confirmed").replace(
        "      confirmed: [seated", "      confimred: [seated"
    )
    assert problems(valid + misspelt_source, pm) == [
        "tenants/filin.yaml:12: statuses.booking.transitions.confimred: "
        "unknown state 'confimred' (did you mean 'confirmed'?)"
    ]


def test_tenantry_check_prints_each_problem_as_file_line_field_reason(tmp_path):
    (tmp_path / "filin.yaml").write_text(RESTAURANT)
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "check", str(tmp_path / "filin.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    location = re.escape(str(tmp_path / "filin.yaml"))
    assert len(lines) == 4
    for line in lines:
        assert re.fullmatch(rf"{location}:\d+: features\.booking\.[a-z_.\[\]0-9]+: .+", line), line
    assert [int(line[len(str(tmp_path / "filin.yaml")) + 1 :].split(":")[0]) for line in lines] == [
        9,
        14,
        15,
        16,
    ]
    assert "Traceback" not in result.stderr


async def test_admin_upload_answers_every_problem_at_once(tenantry):
    await tenantry.start()
    response = await tenantry.client.post(
        "/admin/tenants", content=RESTAURANT, headers=tenantry.admin_headers()
    )
    assert response.status_code == 422, response.text
    reported = [
        re.search(r":(\d+): (\S+): ", error).groups() for error in response.json()["errors"]
    ]
    assert reported == [
        ("9", "features.booking.tables[1].seats"),
        ("14", "features.booking.opening_hours.tue"),
        ("15", "features.booking.opening_hours.sunday"),
        ("16", "features.booking.slot_step_minutes"),
    ]
    assert not (tenantry.tenants_dir / "filin.yaml").exists()


# ---------------------------------------------------------------- CLI start-up


@pytest.mark.parametrize(
    "arguments",
    [["--help"], ["--version"], ["check", "--tenants", "tenants"], ["schema"], ["plugins"]],
)
def test_config_commands_answer(arguments):
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", *arguments], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    if arguments == ["--version"]:
        assert re.fullmatch(r"tenantry \S+\n", result.stdout)


def test_config_phase_imports_no_bot_or_http_stack():
    # What `tenantry check` does: build the plugin manager, load every example tenant.
    script = textwrap.dedent("""\
        import sys
        from pathlib import Path
        from core.config.loader import load_tenant_file
        from core.runtime.plugins import build_plugin_manager

        pm = build_plugin_manager()
        specs = [load_tenant_file(path, pm) for path in sorted(Path("tenants").glob("*.yaml"))]
        assert len(specs) >= 4, specs
        heavy = {"aiogram", "litestar", "aiohttp", "saq", "uvicorn"}
        print(sorted({name.split(".")[0] for name in sys.modules} & heavy))
        """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- /schema offline


class _AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.urls.append(values["src"])
        if tag == "link" and values.get("href"):
            self.urls.append(values["href"])


async def test_schema_page_loads_its_assets_from_the_runtime(tenantry):
    await tenantry.start()
    for page in ("/schema", "/schema/swagger"):
        response = await tenantry.client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        links = _AssetLinks()
        links.feed(response.text)
        assert len(links.urls) >= 3, links.urls  # the bundle, the preset, the stylesheet
        for url in links.urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = await tenantry.client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0
    css = await tenantry.client.get("/schema/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    assert (await tenantry.client.get("/schema/openapi.json")).status_code == 200
    assert (await tenantry.client.get("/schema/assets/missing.js")).status_code == 404


# ---------------------------------------------------------------- removal


def bot_id(config: dict) -> int:
    return int(config["bot"]["token"].split(":")[0])


async def test_removing_a_tenant_deletes_its_webhook_and_a_swap_does_not(
    tenantry, updates, bot_api, sample
):
    filin = tenantry.add_tenant("filin", features={"sample": {}})
    glow = tenantry.add_tenant("glow")
    await tenantry.start(plugins=[("sample", sample)])
    await bot_api.wait_for("setWebhook", bot_id=bot_id(filin))
    await bot_api.wait_for("setWebhook", bot_id=bot_id(glow))

    # A swap: the old config is stopped once drained, and nothing deletes the
    # webhook. The registration is the same, so it is not sent again.
    tenantry.add_tenant("filin", features={"sample": {"greeting": "hello"}}, bot=filin["bot"])
    for _ in range(200):
        if sample.STOPPED.count("filin") == 1:
            break
        await asyncio.sleep(0.05)
    assert sample.STOPPED == ["filin"], "the swapped-out tenant has stopped"
    await asyncio.sleep(0.3)
    assert len(bot_api.calls("setWebhook", bot_id=bot_id(filin))) == 1
    assert bot_api.calls("deleteWebhook", bot_id=bot_id(filin)) == []
    assert bot_api.webhook(bot_id(filin)) is not None
    # A swap that changes the registration (a new secret_token) sends it.
    new_bot = {**filin["bot"], "webhook_secret": "rotated-secret-0123456789"}
    tenantry.add_tenant("filin", features={"sample": {"greeting": "hello"}}, bot=new_bot)
    calls = await bot_api.wait_for("setWebhook", bot_id=bot_id(filin), count=2, timeout=10)
    assert calls[-1].params["secret_token"] == "rotated-secret-0123456789"

    # Removal through the admin API.
    response = await tenantry.client.delete(
        "/admin/tenants/filin", headers=tenantry.admin_headers()
    )
    assert response.status_code in (200, 204), response.text
    await bot_api.wait_for("deleteWebhook", bot_id=bot_id(filin))
    assert bot_api.webhook(bot_id(filin)) is None
    assert not (tenantry.tenants_dir / "filin.yaml").exists()

    # Removal by deleting the file.
    (tenantry.tenants_dir / "glow.yaml").unlink()
    await bot_api.wait_for("deleteWebhook", bot_id=bot_id(glow), timeout=10)
    await tenantry.wait_state("glow", None)
    assert bot_api.webhook(bot_id(glow)) is None


# ---------------------------------------------------------------- outages


def _traceback_count(text: str) -> int:
    return text.count("Traceback (most recent call last)")


async def test_bot_api_outage_logs_one_line_per_retry_and_no_tracebacks(tenantry, updates, capsys):
    tenantry.add_tenant("filin")
    tenantry.add_tenant("glow", bot={"mode": "polling"})
    closed_port = free_port()
    await tenantry.start(bot_api_url=f"http://127.0.0.1:{closed_port}")
    await tenantry.wait_state("filin", "retrying")
    await tenantry.wait_state("glow", "retrying")
    sent = [updates.command("start", user_id=8) for _ in range(3)]
    for update in sent:
        assert (await tenantry.post_update("filin", update)).status_code == 200
    log = ""
    for _ in range(200):  # until the polling tenant has failed to start polling twice
        log += capsys.readouterr().err
        if log.count('"polling_failed"') >= 2:
            break
        await asyncio.sleep(0.05)
    await tenantry.stop()
    log += capsys.readouterr().err
    assert _traceback_count(log) == 0, log[-4000:]

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]

    def events(name: str, tenant: str) -> list[dict]:
        return [
            line for line in lines if line.get("event") == name and line.get("tenant") == tenant
        ]

    for tenant in ("filin", "glow"):
        retries = events("bot_registration_failed", tenant)
        assert [line["attempt"] for line in retries] == list(range(1, len(retries) + 1))
    polling = events("polling_failed", "glow")
    assert [line["attempt"] for line in polling][:2] == [1, 2]
    assert [line["retry_in"] for line in polling][:2] == [1.0, 2.0]
    # Polling is the core's own getUpdates loop (core.updates.polling): aiogram's
    # polling loop, which logged a traceback-free line of its own, does not run.
    assert not [line for line in lines if line.get("logger") == "aiogram.dispatcher"]
    # One line per update whose answer could not be sent, naming the update.
    unreachable = events("bot_api_unavailable", "filin")
    assert sorted(line["update_id"] for line in unreachable) == sorted(
        update["update_id"] for update in sent
    )
    assert all(line["level"] == "warning" for line in unreachable)
    assert all(line["method"] == "sendMessage" for line in unreachable)
    assert not [line for line in lines if line.get("event") == "update_failed"]
