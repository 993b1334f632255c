"""Debian's Chromium driven by Playwright (through executable_path: Playwright's own download fails here)."""

import os
import shutil

from tests.realstack import PROJECT_ROOT

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
WAIT_MS = 15_000  # what every Playwright action and expect waits, on a busy machine


def chromium_path():
    """Return the Chromium to drive (CHROMIUM, else chromium on PATH), or None."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
