"""Page load times measured in Chromium (Navigation Timing), and the JavaScript the pages ship.

Run with ``-s`` to see the table recorded in docs/benchmarks.md (``## web``)::

    pytest -q -s tests/web/test_web_speed.py
"""

from __future__ import annotations

import gzip
import statistics
from pathlib import Path

from _web_support import (
    ADMIN,
    PARTNER,
    add_market,
    add_restaurant,
    future_day,
    panel_link,
    webapp_url,
)

ROOT = Path(__file__).resolve().parents[2]
STATIC = [ROOT / "core/web/static", *sorted(ROOT.glob("plugins/*/web/static"))]
LOADS = 7
BUDGET_MS = 300

TIMING = """() => {
  const [nav] = performance.getEntriesByType("navigation");
  return {load: nav.loadEventEnd - nav.startTime, dom: nav.domContentLoadedEventEnd - nav.startTime};
}"""


def test_the_shipped_javascript_is_small():
    files = sorted(p for folder in STATIC for p in folder.glob("*.js"))
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes())) for p in files)
    print(
        f"\njavascript: {len(files)} files, {raw / 1024:.1f} KiB, {packed / 1024:.1f} KiB gzipped"
    )
    for path in files:
        print(f"  {path.relative_to(ROOT)}: {path.stat().st_size / 1024:.1f} KiB")
    assert raw < 64 * 1024


async def test_each_page_loads_within_the_budget(tenantry, updates, bot_api, new_page, screens):
    filin = add_restaurant(tenantry)
    market = add_market(tenantry)
    await tenantry.start()
    admin = await new_page(viewport={"width": 1280, "height": 900})
    await admin.goto(await panel_link(tenantry, updates, bot_api, filin, "panel", ADMIN))
    await admin.wait_for_url("**/booking/admin*")
    partner = await new_page()
    await partner.goto(await panel_link(tenantry, updates, bot_api, market, "storepanel", PARTNER))
    await partner.wait_for_url("**/partner/bakery")
    customer = await new_page()
    pages = {
        "sign-in": (customer, f"{tenantry.url}/web/filin/signin"),
        "booking admin panel": (
            admin,
            f"{tenantry.url}/web/filin/booking/admin?date={future_day(1)}",
        ),
        "booking WebApp": (customer, webapp_url(tenantry, filin, "booking/app", 5001, "Anna")),
        "partner order panel": (partner, f"{tenantry.url}/web/market/orders/partner/bakery"),
        "ordering WebApp": (customer, webapp_url(tenantry, market, "orders/app", 5001, "Anna")),
    }
    print(f"\n| page | first load, ms | median of {LOADS - 1} more, ms | DOM ready (median), ms |")
    print("|---|---|---|---|")
    for name, (page, url) in pages.items():
        timings = []
        for _ in range(LOADS):
            await page.goto("about:blank")
            await page.goto(url, wait_until="load")
            timings.append(await page.evaluate(TIMING))
        loads = [t["load"] for t in timings[1:]]
        doms = [t["dom"] for t in timings[1:]]
        median = statistics.median(loads)
        print(
            f"| {name} | {timings[0]['load']:.0f} | {median:.0f} | {statistics.median(doms):.0f} |"
        )
        await screens.shot(page, "speed-" + name.replace(" ", "-"))
        assert median < BUDGET_MS, (name, loads)
