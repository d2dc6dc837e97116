"""Browser test fixtures: the platform in-process (once per session) and Debian's Chromium driven by Playwright,
each browser with its own fresh profile directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_stack import CHROMIUM, CHROMIUM_ARGS, Platform, start_platform
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str,
             s3_settings: dict[str, str]) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("e2e-platform"), s3_settings)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browsers`); never `playwright install`")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def new_browser(playwright_driver: Playwright, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Callable[..., BrowserContext]]:
    """Opens a browser with a fresh user-data-dir (a person on their own device); closed after the test."""
    opened: list[BrowserContext] = []

    def open_browser(**options: Any) -> BrowserContext:
        context = playwright_driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh",
            viewport={"width": 1280, "height": 900}, **options)
        context.set_default_timeout(15_000)
        opened.append(context)
        return context

    yield open_browser
    for context in opened:
        context.close()
