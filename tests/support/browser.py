"""Debian's Chromium driven by Playwright, for the tests of pages.

Each browser test module calls :func:`playwright_or_skip` at import: the module
is skipped, saying why, where Playwright or Chromium is absent (`.ci/run`
installs Chromium so that CI never skips them).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def playwright_or_skip() -> ModuleType:
    """Return ``playwright.sync_api``, or skip the calling module saying what is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent")
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True
        )
    return sync_api


@contextmanager
def chromium(sync_api: ModuleType) -> Iterator[Any]:
    """Launch headless Chromium for the block."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()
