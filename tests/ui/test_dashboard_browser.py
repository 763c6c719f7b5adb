"""The dashboard in a real browser (Debian Chromium via Playwright), with the real sampler on small maps.

Screenshots go to ``test-artifacts/`` (git-ignored).
"""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from helpers import (LONG_RUN, SHORT_RUN, TIMEOUT_MS, element_pixels, kappascope_threads, open_app, progress_step,
                     text_of, wait_until)


def test_run_updates_chains_live_then_stop(page: Page, server_url: str, artifacts):
    open_app(page, f"{server_url}?{LONG_RUN}")
    for label in ("Run", "Pause", "Resume", "Stop", "Step"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()
    expect(page.locator(".ks-device")).to_contain_text("Device:")
    expect(page.get_by_text("Data source")).to_be_visible()
    for label in ("Compare priors", "Compare samplers"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()
    expect(page.locator(".ks-maps canvas").first).to_be_visible()  # plot titles are drawn on canvases
    page.screenshot(path=str(artifacts / "dashboard_ready.png"), full_page=True)

    page.get_by_role("button", name="Run", exact=True).click()
    assert wait_until(lambda: "running" in text_of(page, "ks-progress-text") and progress_step(page) > 0)
    chains = page.locator(".ks-chains")
    first_image, first_step = element_pixels(page, chains), progress_step(page)
    later: dict[str, bytes] = {}

    def mosaic_changed() -> bool:  # the canvas repaints a little after the text under CPU load
        later["image"] = element_pixels(page, chains)
        return later["image"] != first_image and progress_step(page) > first_step

    assert wait_until(mosaic_changed, interval_s=0.5), "the chain mosaic did not change while the sampler ran"
    (artifacts / "chains_early.png").write_bytes(first_image)
    (artifacts / "chains_later.png").write_bytes(later["image"])
    page.screenshot(path=str(artifacts / "dashboard_running.png"), full_page=True)

    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator(".ks-status")).to_contain_text("Stopped", timeout=TIMEOUT_MS)
    stopped_at = progress_step(page)
    time.sleep(1.5)
    assert progress_step(page) == stopped_at
    assert 0 < stopped_at < 100_000
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()
    page.screenshot(path=str(artifacts / "dashboard_stopped.png"), full_page=True)


def test_bad_uploads_show_clear_errors(page: Page, server_url: str, artifacts):
    from astropy.io import fits

    open_app(page, f"{server_url}?{SHORT_RUN}")
    page.locator(".ks-shear-upload input[type=file]").set_input_files(
        files=[{"name": "shear.fits", "mimeType": "application/fits", "buffer": b"definitely not FITS"}])
    expect(page.locator(".ks-message")).to_contain_text("not a FITS file", timeout=TIMEOUT_MS)
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros((16, 16), np.float32)).writeto(buffer)
    page.locator(".ks-mask-upload input[type=file]").set_input_files(
        files=[{"name": "mask.fits", "mimeType": "application/fits", "buffer": buffer.getvalue()}])
    expect(page.locator(".ks-message")).to_contain_text("all zero", timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "dashboard_bad_upload.png"), full_page=True)
    # The page still works after the errors.
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator(".ks-status")).to_contain_text("Done", timeout=TIMEOUT_MS)


def test_two_sessions_are_independent_and_closing_stops_work(browser, server_url: str, artifacts):
    context_a, context_b = browser.new_context(), browser.new_context()
    page_a, page_b = context_a.new_page(), context_b.new_page()
    try:
        open_app(page_a, f"{server_url}?{SHORT_RUN}&seed=1")
        open_app(page_b, f"{server_url}?{LONG_RUN}&seed=2")
        page_a.get_by_role("button", name="Run", exact=True).click()
        expect(page_a.locator(".ks-status")).to_contain_text("Done", timeout=TIMEOUT_MS)
        assert "idle" in text_of(page_b, "ks-progress-text")  # B never started
        expect(page_b.locator(".ks-status")).to_contain_text("Data ready")

        page_b.get_by_role("button", name="Run", exact=True).click()
        assert wait_until(lambda: progress_step(page_b) > 0)
        done_text = text_of(page_a, "ks-progress-text")
        time.sleep(1.0)
        assert text_of(page_a, "ks-progress-text") == done_text  # A is unaffected by B's run
        assert kappascope_threads(), "B's worker thread should be running"
    finally:
        context_a.close()
        context_b.close()
    # Closing the sessions cancels B's long run: its worker thread ends at the next chunk boundary.
    assert wait_until(lambda: not kappascope_threads(), timeout_s=30), [t.name for t in kappascope_threads()]
