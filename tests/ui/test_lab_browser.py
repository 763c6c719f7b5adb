"""The 2-D lab in a real browser (Debian Chromium via Playwright; launch fixtures from tests/ui/conftest.py).

The dashboard's own server (``dashboard.app.serve``, every route of ``dashboard.app.ROUTES``) runs in this process
and the lab is opened at ``/lab``. Screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

import helpers as ui_helpers  # tests/ui/helpers.py
from tests.helpers import serving_dashboard

TIMEOUT_MS = 180_000  # the first frame traces the kernel graph: slow on a shared 2-core machine
SMALL = "num_chains=200&teaching=false&speed=1"


@pytest.fixture(scope="module")
def lab_url():
    from dashboard.app import ROUTES

    assert "/lab" in ROUTES
    with serving_dashboard() as url:  # a server of this module's own
        yield f"{url}lab"


def wait_until(predicate, timeout_s: float = TIMEOUT_MS / 1000, interval_s: float = 0.3) -> bool:
    """``tests/ui/helpers.py``'s ``wait_until`` with this module's longer timeout."""
    return ui_helpers.wait_until(predicate, timeout_s, interval_s)


def text_of(page: Page, css_class: str) -> str:
    """Visible text of a Markdown/Alert pane (its content lives in a shadow root under the class's host)."""
    return " ".join(page.locator(f".{css_class}").first.locator("p, li").all_inner_texts())


def transition(page: Page) -> int:
    match = re.search(r"transition (\d+)", text_of(page, "lab-stats"))
    assert match, text_of(page, "lab-stats")
    return int(match.group(1))


def status(page: Page) -> str:
    return text_of(page, "lab-status")


def open_lab(page: Page, url: str) -> None:
    page.goto(url, timeout=TIMEOUT_MS)
    expect(page.locator(".lab-target canvas").first).to_be_visible(timeout=TIMEOUT_MS)
    assert wait_until(lambda: "Paused" in status(page)), status(page)  # compiled, ready


def test_lab_loads_play_moves_the_points_and_pause_freezes_them(page: Page, lab_url: str, artifacts):
    open_lab(page, f"{lab_url}?{SMALL}")
    for label in ("Step", "Play", "Pause", "Reset", "Train"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()
    plot = page.locator(".lab-target")

    def shot() -> bytes:
        return ui_helpers.element_pixels(page, plot)

    before = shot()
    assert transition(page) == 0
    page.get_by_role("button", name="Play", exact=True).click()
    later: dict[str, bytes] = {}

    def moved() -> bool:
        later["image"] = shot()
        return later["image"] != before and transition(page) > 2

    assert wait_until(moved), "the chains did not move while playing"
    (artifacts / "lab_before.png").write_bytes(before)
    (artifacts / "lab_playing.png").write_bytes(later["image"])
    page.get_by_role("button", name="Pause", exact=True).click()
    assert wait_until(lambda: "Paused" in status(page)), status(page)
    time.sleep(1.0)  # let the last frame's patch land
    frozen, frozen_at = shot(), transition(page)
    time.sleep(2.0)
    assert transition(page) == frozen_at
    assert shot() == frozen, "the chains moved while paused"
    page.screenshot(path=str(artifacts / "lab_paused.png"), full_page=True)


def test_a_url_with_settings_restores_them_and_follows_changes(page: Page, lab_url: str):
    open_lab(page, f"{lab_url}?target=ring&sampler=mala&step_size=0.3&schedule=linear&num_levels=12&{SMALL}")
    selects = page.locator("select")
    expect(selects.nth(0)).to_have_value("ring", timeout=TIMEOUT_MS)
    expect(selects.nth(1)).to_have_value("mala")
    expect(selects.nth(2)).to_have_value("linear")
    expect(page.locator(".lab-url-errors")).to_be_hidden()
    assert "level 1/12" in text_of(page, "lab-stats")
    assert "target=ring" in page.url and "step_size=0.3" in page.url
    selects.nth(1).select_option("hmc")  # a change is written back to the URL
    assert wait_until(lambda: "hmc with" in status(page), timeout_s=90), status(page)
    assert wait_until(lambda: "sampler=hmc" in page.evaluate("window.location.search"), timeout_s=90), page.url


def test_a_bad_setting_shows_a_message_and_the_page_keeps_working(page: Page, lab_url: str, artifacts):
    page.goto(f"{lab_url}?step_size=abc&target=donut&num_levels=-3&{SMALL}", timeout=TIMEOUT_MS)
    message = page.locator(".lab-url-errors")
    expect(message).to_be_visible(timeout=TIMEOUT_MS)
    assert wait_until(lambda: all(key in text_of(page, "lab-url-errors") for key in ("step_size", "target", "num_levels")),
                      timeout_s=30), text_of(page, "lab-url-errors")
    assert wait_until(lambda: "Paused" in status(page)), status(page)
    page.screenshot(path=str(artifacts / "lab_bad_url.png"), full_page=True)
    page.get_by_role("button", name="Step", exact=True).click()
    assert wait_until(lambda: transition(page) >= 1), "Step did nothing after a bad URL"
