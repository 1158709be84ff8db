"""Fixtures of the page tests: Debian's Chromium, headless, driven by Playwright against a real runtime.

Chromium is the system one (``apt-get install chromium``, as ``.ci/run`` does);
Playwright's own browser downloads are never used. Each test saves its
screenshots under its ``tmp_path`` (``TENANTRY_SCREENSHOTS_DIR`` copies them
there too, which is how ``docs/img/`` is refreshed, and where ``.ci/run`` can keep them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

CHROMIUM = Path(os.environ.get("TENANTRY_CHROMIUM", "/usr/bin/chromium"))

if not CHROMIUM.exists():  # pragma: no cover - CI installs it (.ci/run)
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (the system one) for one test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield instance
        finally:
            await instance.close()


class Screens:
    """Saves screenshots of a test: ``<tmp_path>/screens/<name>.png`` (and the docs folder if asked)."""

    def __init__(self, tmp_path: Path):
        self.folder = tmp_path / "screens"
        self.folder.mkdir()
        copy_to = os.environ.get("TENANTRY_SCREENSHOTS_DIR")
        self.copy_to = Path(copy_to) if copy_to else None

    async def shot(self, page: Any, name: str, *, copy: bool = True) -> Path:
        """Screenshot ``page`` as ``name``.png; return the file.

        Args:
            page: the page.
            name: the file's name, without ``.png``; unique across the tests
                when ``copy`` (the copies share one folder).
            copy: copy it to ``TENANTRY_SCREENSHOTS_DIR`` too, when set.
        """
        path = self.folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        if copy and self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.copy_to / path.name)
        return path


@pytest.fixture
def screens(tmp_path: Path) -> Screens:
    """Where this test's screenshots go."""
    return Screens(tmp_path)


TELEGRAM_STUB = (Path(__file__).parent / "telegram_web_app_stub.js").read_text()


@pytest_asyncio.fixture
async def new_page(browser: Any, screens: Screens) -> AsyncIterator[Any]:
    """``await new_page()``: a page in its own context, phone-sized (390x844, touch).

    At the end of the test, passed or failed, every page still open is
    screenshot as ``end-<n>.png`` (so each browser test leaves its pictures,
    a failing one the state it failed in).

    Requests to ``telegram.org`` are aborted, as without network: the
    customer WebApps must work without Telegram's script. With
    ``new_page(telegram=True)`` Telegram's script is answered by the tests'
    stand-in (``telegram_web_app_stub.js``), as inside Telegram. Every URL the
    page requests is kept in ``page.requested`` (the offline test reads it).
    """

    async def make(*, telegram: bool = False, **options: Any) -> Any:
        options.setdefault("viewport", {"width": 390, "height": 844})
        context = await browser.new_context(has_touch=True, is_mobile=True, **options)

        async def telegram_org(route: Any) -> None:
            if telegram and route.request.url.endswith("/js/telegram-web-app.js"):
                await route.fulfill(body=TELEGRAM_STUB, content_type="text/javascript")
            else:
                await route.abort()

        await context.route("https://telegram.org/**", telegram_org)
        page = await context.new_page()
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.set_default_timeout(5000)
        # Shown with a failing test's output: what the page's scripts said.
        page.on("console", lambda message: print(f"[console {message.type}] {message.text}"))
        page.on("pageerror", lambda error: print(f"[page error] {error}"))
        opened.append(page)
        return page

    opened: list[Any] = []
    yield make
    for number, page in enumerate(opened, 1):
        if not page.is_closed():
            try:
                await screens.shot(page, f"end-{number}", copy=False)
            except Exception as error:  # a page gone with its runtime still ends the test
                print(f"[screenshot end-{number}] {error}")
