"""The example tenants' pages, opened the way the README's walkthrough opens them, in Chromium.

The runtime is started on the files of ``tenants/`` (their storage moved to
this test's schema and prefix), as ``tenantry run`` serves them. The update,
the sign-in URLs and keys, and the WebApp command are read from the README's
walkthrough ("The pages: staff panels and customer WebApps"), so the walkthrough cannot drift from what works. Every
page is checked for what the issue asks of all of them: it answers in the
tenant's locale, fits a phone screen (390 px) and fetches nothing but the
runtime's own files.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from _web_support import link_in, no_overflow

from core.web.texts import WEB_TEXTS
from plugins.booking.texts import TEXTS as BOOKING_TEXTS
from plugins.booking.web.texts import WEB_TEXTS as BOOKING_WEB
from plugins.orders.texts import TEXTS as ORDERS_TEXTS
from plugins.orders.web.texts import WEB_TEXTS as ORDERS_WEB

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
WALKTHROUGH = README[
    README.index("**The pages: staff panels") : README.index("Ops on the running system:")
]
"""The README walkthrough's part about the pages."""
LOCAL = "http://127.0.0.1:8000"


def _load_examples(tenantry) -> None:
    """Write every ``tenants/*.yaml`` into the harness's folder, storage renamed for this test."""
    for path in sorted((ROOT / "tenants").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        schema, prefix = f"t{tenantry.run_id}_ex_{path.stem}", f"t{tenantry.run_id}:ex:{path.stem}:"
        storage = f'storage:\n  schema: {schema}\n  redis_prefix: "{prefix}"\n'
        if re.search(r"^storage:$", text, re.M):
            text = re.sub(r"^storage:\n(  .*\n)+", storage, text, flags=re.M)
        else:
            text += storage
        tenantry.track_storage(schema, prefix)
        tenantry.write_tenant(path.stem, text)


def _here(tenantry, url: str) -> str:
    return url.replace(LOCAL, tenantry.url)


async def _check(page, tenantry, screens, name: str, lang: str) -> None:
    """The common checks: locale, phone width, nothing from outside, a screenshot."""
    assert await page.get_attribute("html", "lang") == lang
    await no_overflow(page)
    outside = [url for url in page.requested if not url.startswith(tenantry.url)]
    assert outside == [], outside
    await screens.shot(page, name)


async def test_the_readme_walkthrough_opens_the_example_tenants_pages(
    tenantry, bot_api, new_page, screens
):
    _load_examples(tenantry)
    await tenantry.start()

    # Filin's admin sends /panel (the README's update, as is); the bot answers with a link.
    update = json.loads(re.search(r"-d '(\{.*?\})'\n", WALKTHROUGH, re.S).group(1))
    secret = re.search(r"X-Telegram-Bot-Api-Secret-Token: ([\w-]+)", WALKTHROUGH).group(1)
    answer = await tenantry.post_update("filin", update, secret=secret)
    assert answer.status_code == 200, answer.text
    [reply] = bot_api.calls("sendMessage", chat_id=update["message"]["chat"]["id"])[-1:]
    admin = await new_page()
    await admin.goto(link_in(reply.params["text"]))
    await admin.wait_for_url("**/web/filin/booking/admin?date=*")
    await admin.wait_for_selector("#live-state[data-state=live]")
    assert await admin.inner_text("h1") == "Брони"
    assert await admin.inner_text("#live-state") == "онлайн"
    assert await admin.locator("#map .zone h3").all_inner_texts() == ["Зал", "Веранда", "VIP"]
    await _check(admin, tenantry, screens, "example-filin-admin", "ru")
    await admin.goto(f"{tenantry.url}/web/filin/")
    assert await admin.locator(".links a").all_inner_texts() == ["Брони"]

    # The API-key sign-ins the README lists.
    signins = re.findall(
        r"(http://127\.0\.0\.1:8000/web/(\w+)/signin) with `([\w-]+)`", WALKTHROUGH
    )
    assert [tenant for _, tenant, _ in signins] == ["filin", "market", "glow"]
    opened = {}
    for url, tenant, key in signins:
        page = await new_page()
        await page.goto(_here(tenantry, url))
        lang = "en" if tenant == "glow" else "ru"
        await _check(page, tenantry, screens, f"example-{tenant}-signin", lang)
        await page.fill("input[name=key]", key)
        await page.click("button[type=submit]")
        # Signed in, the tenant's index lists the pages of the key's role: one each here.
        await page.wait_for_url(f"{tenantry.url}/web/{tenant}/")
        [link] = await page.locator(".links a").all()
        await _check(page, tenantry, screens, f"example-{tenant}-index", lang)
        await link.click()
        await page.wait_for_selector("#live-state")
        opened[tenant] = page
    market = opened["market"]
    assert market.url == f"{tenantry.url}/web/market/orders/partner/bakery"
    await market.wait_for_selector("#live-state[data-state=live]")
    assert (await market.inner_text("h1")).startswith("Заказы")
    await _check(market, tenantry, screens, "example-market-partner", "ru")
    other = await market.goto(f"{tenantry.url}/web/market/orders/partner/flowers")
    assert other.status == 403
    glow = opened["glow"]
    assert await glow.inner_text("#map-title") == "Staff"
    assert await glow.locator("#map [data-resource] b").all_inner_texts() == [
        "Anna",
        "Olga",
        "Maria",
    ]
    # Glow enables realtime too: its staff panel is live.
    await glow.wait_for_selector("#live-state[data-state=live]")
    await _check(glow, tenantry, screens, "example-glow-admin", "en")

    # The WebApps, opened in a plain browser with the README's signed URL.
    command = re.search(r'python -c "(.+)"\n', WALKTHROUGH).group(1)
    others = re.findall(r"(/web/\w+/\w+/app) and (\d+:[\w-]+)", WALKTHROUGH)
    assert [path for path, _ in others] == ["/web/market/orders/app", "/web/glow/booking/app"]
    webapps = {"/web/filin/booking/app": command}
    for path, token in others:
        webapps[path] = command.replace("/web/filin/booking/app", path).replace(
            "110001:filin-demo-token", token
        )
    expected = {
        "/web/filin/booking/app": ("Бронь стола", "ru", "#date option"),
        "/web/market/orders/app": ("Заказ", "ru", "#stores button"),
        "/web/glow/booking/app": ("Book a visit", "en", "#service option"),
    }
    for path, code in webapps.items():
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        assert process.returncode == 0, code
        printed = out.decode().strip()
        page = await new_page()
        await page.goto(_here(tenantry, printed))
        title, lang, filled = expected[path]
        assert await page.inner_text("h1") == title
        await page.wait_for_selector(filled, state="attached")
        assert await page.is_hidden("#no-init")
        await _check(page, tenantry, screens, "example" + path.replace("/", "-"), lang)


def _literal_keys(pattern: str, files: list[Path]) -> set[str]:
    return {key for path in files for key in re.findall(pattern, path.read_text())}


def test_every_page_text_ships_in_ru_and_en():
    for name, table in (("core", WEB_TEXTS), ("booking", BOOKING_WEB), ("orders", ORDERS_WEB)):
        assert set(table["ru"]) == set(table["en"]), name
        assert all(table["ru"].values()), name
    english = {**WEB_TEXTS["en"], **BOOKING_WEB["en"], **ORDERS_WEB["en"]}
    english.update(BOOKING_TEXTS["en"])
    english.update(ORDERS_TEXTS["en"])
    templates = sorted(ROOT.glob("core/web/templates/*.html")) + sorted(
        ROOT.glob("plugins/*/web/templates/*.html")
    )
    scripts = sorted(ROOT.glob("core/web/static/*.js")) + sorted(
        ROOT.glob("plugins/*/web/static/*.js")
    )
    used = _literal_keys(r"t\('([a-z_]+\.[a-z_.]+)'", templates)
    used |= _literal_keys(r'\bt\("([a-z_]+\.[a-z_.]+)"', scripts)
    assert len(used) > 50
    assert sorted(used - set(english)) == []
