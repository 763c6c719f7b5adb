"""Shared helpers of the dashboard browser tests (page queries, polling)."""
from __future__ import annotations

import re
import threading
import time

from playwright.sync_api import Page, expect

# Long enough that Stop lands mid-run; small maps keep each chunk short.
LONG_RUN = "npix=32&num_chains=4&num_levels=2000&steps_per_level=50&teaching=false&chunk_seconds=0.2"
SHORT_RUN = "npix=16&num_chains=2&num_levels=6&steps_per_level=2&teaching=false"
TIMEOUT_MS = 90_000


def open_app(page: Page, url: str) -> None:
    page.goto(url, timeout=TIMEOUT_MS)
    expect(page.locator(".ks-status")).to_contain_text("Data ready", timeout=TIMEOUT_MS)


def text_of(page: Page, css_class: str) -> str:
    """Visible text of a plain-text pane (its paragraphs live in a shadow root under the class's host)."""
    return " ".join(page.locator(f".{css_class}").first.locator("p").all_inner_texts())


def progress_step(page: Page) -> int:
    text = text_of(page, "ks-progress-text")
    match = re.search(r"step (\d+)/(\d+)", text)
    assert match, f"no progress in {text!r}"
    return int(match.group(1))


def wait_until(predicate, timeout_s: float = TIMEOUT_MS / 1000, interval_s: float = 0.2) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def element_pixels(page: Page, locator) -> bytes:
    """The pixels of ``locator``'s box as PNG bytes: a page screenshot clipped to the box, not ``locator.screenshot()``,
    which first waits for the element to be 'stable' over animation frames — a plot redrawn every frame on 2 busy
    cores may not give that within the timeout."""
    box = locator.evaluate("e => { const r = e.getBoundingClientRect(); return {x: r.left + window.scrollX, "
                           "y: r.top + window.scrollY, width: r.width, height: r.height}; }", timeout=TIMEOUT_MS)
    assert box["width"] > 0 and box["height"] > 0, f"the element is not rendered (box {box})"
    return page.screenshot(full_page=True, clip=box, timeout=TIMEOUT_MS)  # clip in page coordinates


def kappascope_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kappascope-") and t.is_alive()]


def click(page: Page, label: str) -> None:
    page.get_by_role("button", name=label, exact=True).click()
