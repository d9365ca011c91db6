"""A real headless browser for tests: Debian's Chromium driven by Playwright, with no browser download.

``chromium_page()`` gives a Playwright page, or skips the test (with the reason) where Chromium or the
playwright package is missing. .ci/run installs Chromium with apt-get. Set LIVECAM_CHROMIUM to use
another Chromium binary.

    with chromium_page() as page:
        page.goto(url, wait_until="domcontentloaded")
        wait_until(page, "document.querySelector('video').readyState >= 2")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

# Chromium in a container: no sandbox (no user namespaces), no GPU, no calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The Chromium binary to drive: $LIVECAM_CHROMIUM, /usr/bin/chromium, or chromium on the PATH."""
    for candidate in (os.environ.get("LIVECAM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextlib.contextmanager
def chromium_page(**context_options: Any) -> Iterator[Any]:
    """A fresh page in a headless Chromium (``context_options`` go to ``browser.new_context``)."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium, or set LIVECAM_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**context_options)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> Any:
    """Evaluate ``expression`` in the page until it is truthy, and return it.

    Unlike ``page.wait_for_function``, whose polling evaluates strings in the page and is refused by a
    Content-Security-Policy without 'unsafe-eval', this works on pages with a strict policy.
    """
    end = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"the page never made this true: {expression}")
        time.sleep(0.05)
