"""Open a report in headless Chromium (Selenium): the browser test and the docs screenshots use it.

Chromium runs offline with software WebGL (SwiftShader), so the viewer draws on machines
without a GPU; the flags also stop it reaching for the network (updates, sync, first run).
Needs the `chromium` and `chromium-driver` system packages (Debian) and the `selenium`
Python package (`pip install mslesion[test]`).
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "chromium-driver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-dev-shm-usage",
)


def find_browser() -> tuple[str, str] | str:
    """(browser, driver) executables, or why they cannot be used (a reason to skip on)."""
    try:
        import selenium  # noqa: F401  # imported only to see that it is installed
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[test]')"
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None)
    if browser is None or driver is None:
        return "no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
    return browser, driver


@contextmanager
def chromium(width: int = 1280, height: int = 1800) -> Iterator[Any]:
    """A headless Chromium WebDriver, quit on exit; raises RuntimeError when none is installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if isinstance(found, str):
        raise RuntimeError(found)
    options = Options()
    options.binary_location = found[0]
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(found[1]))
    try:
        yield driver
    finally:
        driver.quit()


def open_report(driver: Any, path: Path, timeout_s: float = 60.0) -> dict[str, Any]:
    """Load report.html from file:// and wait until its viewer has drawn; returns {"ready", "error"}."""
    driver.get(Path(path).resolve().as_uri())
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = driver.execute_script("var s = window.mslesionViewer; return s ? {ready: s.ready, error: s.error} : null")
        if state and (state["ready"] or state["error"]):
            time.sleep(0.5)  # the first frame after the last volume
            return state
        time.sleep(0.25)
    return state or {"ready": False, "error": "no viewer on the page"}


def crosshair_mm(driver: Any, viewer: int = 0) -> np.ndarray:
    """The crosshair of viewer `viewer` in world mm (RAS), read from NiiVue."""
    return np.asarray(driver.execute_script("return window.mslesionViewer.crosshairMM(arguments[0])", viewer), dtype=float)


def canvas_pixels(driver: Any, viewer: int = 0) -> np.ndarray:
    """A screenshot of viewer `viewer`'s canvas as an (H, W, 3) uint8 array."""
    from matplotlib.image import imread
    from selenium.webdriver.common.by import By

    png = driver.find_element(By.ID, f"viewer-canvas-{viewer}").screenshot_as_png
    image = imread(io.BytesIO(png), format="png")
    return (np.asarray(image)[..., :3] * 255).astype(np.uint8)


def network_requests(driver: Any) -> list[str]:
    """Every resource the page fetched other than itself and data:/blob: URLs (an offline page has none)."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(function(e){ return e.name; })")
    return [n for n in names if not n.startswith(("data:", "blob:"))]
