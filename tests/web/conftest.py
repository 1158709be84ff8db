"""Fixtures of the page tests: Debian's Chromium, headless, driven by Playwright against a real runtime.

Chromium is the system one (``apt-get install chromium``, as ``.ci/run`` does);
Playwright's own browser downloads are never used. Each test saves its
screenshots under its ``tmp_path`` (``TENANTRY_SCREENSHOTS_DIR`` copies them
there too, which is how ``docs/img/`` is refreshed).
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

    async def shot(self, page: Any, name: str) -> Path:
        """Screenshot ``page`` as ``name``.png; return the file."""
        path = self.folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.copy_to / path.name)
        return path


@pytest.fixture
def screens(tmp_path: Path) -> Screens:
    """Where this test's screenshots go."""
    return Screens(tmp_path)


@pytest.fixture
def new_page(browser: Any) -> Any:
    """``await new_page()``: a page in its own context, phone-sized (390x844, touch).

    Requests to ``telegram.org`` are aborted, as without network: the
    customer WebApps must work without Telegram's script.
    """

    async def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 390, "height": 844})
        context = await browser.new_context(has_touch=True, is_mobile=True, **options)
        await context.route("https://telegram.org/**", lambda route: route.abort())
        page = await context.new_page()
        page.set_default_timeout(5000)
        # Shown with a failing test's output: what the page's scripts said.
        page.on("console", lambda message: print(f"[console {message.type}] {message.text}"))
        page.on("pageerror", lambda error: print(f"[page error] {error}"))
        return page

    return make
