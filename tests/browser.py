"""Headless Chromium (Debian's chromium + chromedriver) driven by selenium, for rendering the report."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@contextmanager
def headless_chromium(profile: Path) -> Iterator:
    """A selenium driver for headless Chromium with a fresh profile and no background networking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # explicit driver: no download
    try:
        yield driver
    finally:
        driver.quit()


# JavaScript run in the page: how many <img> there are and how many did not decode.
BROKEN_IMAGES = "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length"
IMAGE_COUNT = "return document.images.length"
TEXT_LENGTH = "return document.body.innerText.length"


def render(page: Path, screenshot: Path, profile: Path, width: int = 1280, height: int = 6000) -> dict:
    """Open `page` (a file), save a screenshot PNG, return image and text counts."""
    with headless_chromium(profile) as driver:
        driver.set_window_size(width, height)
        driver.get(page.resolve().as_uri())
        counts = {"images": driver.execute_script(IMAGE_COUNT), "broken": driver.execute_script(BROKEN_IMAGES),
                  "text": driver.execute_script(TEXT_LENGTH), "title": driver.title}
        driver.save_screenshot(str(screenshot))
    return counts
