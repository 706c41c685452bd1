"""Headless Chromium for tests that must see a page as a user does (Debian's chromium + chromedriver, selenium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_COMMAND = (
    "sudo apt-get update && sudo apt-get install -y chromium chromium-driver fonts-liberation "
    "(tools/setup_env.sh runs this when it runs as root)"
)
# No GPU, no sandbox (containers run as root), and nothing that reaches out to the network on start.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def require_chromium() -> None:
    """Fail (not skip) with the install command when the browser or its driver is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file() and shutil.which(Path(p).name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: this test needs a real browser. Install it with: {INSTALL_COMMAND}")


@contextmanager
def headless_chromium(user_data_dir: Path, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A selenium WebDriver on a fresh Chromium profile in ``user_data_dir``."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    # An explicit driver path: selenium then never runs its "selenium manager" download step.
    driver = webdriver.Chrome(
        service=Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def page_report(driver: Any, url: str) -> dict[str, Any]:
    """Open ``url`` and return its title, every link's resolved href, and every image's load state."""
    driver.get(url)
    return driver.execute_script("""
        return {
          title: document.title,
          links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
          images: Array.from(document.images).map(i => ({src: i.src, complete: i.complete,
                                                         naturalWidth: i.naturalWidth})),
        };""")
