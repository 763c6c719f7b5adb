"""Hostile input in a real browser: file names with HTML/script or Markdown are shown literally, never run.

A ``dialog`` handler records every ``alert()``; an upload named ``<img src=x onerror=alert('xss')>.fits`` would
open one if its name reached the page as HTML (the broken image fires ``onerror`` at once). Both the success
path (a valid shear cube) and the error path (not a FITS file) are tried, in the message pane and the toast.
"""
from __future__ import annotations

import io
import time

import numpy as np
from playwright.sync_api import Page, expect

from helpers import SHORT_RUN, TIMEOUT_MS, open_app, text_of

XSS_NAME = "<img src=x onerror=alert('xss')>.fits"
MARKDOWN_NAME = "**bold** _it_ [link](http://example.com).fits"


def shear_fits(value: float = 0.0) -> bytes:
    from astropy.io import fits

    buffer = io.BytesIO()
    fits.PrimaryHDU(np.full((2, 16, 16), value, np.float32)).writeto(buffer)
    return buffer.getvalue()


def upload(page: Page, name: str, data: bytes) -> None:
    page.locator(".ks-shear-upload input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": "application/fits", "buffer": data}])


def test_file_names_are_shown_literally_and_never_run(page: Page, server_url: str, artifacts):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_app(page, f"{server_url}?{SHORT_RUN}")

    upload(page, XSS_NAME, b"definitely not FITS")  # error path
    expect(page.locator(".ks-message")).to_contain_text("not a FITS file", timeout=TIMEOUT_MS)
    assert XSS_NAME in text_of(page, "ks-message")
    expect(page.locator(".notyf__message").last).to_contain_text(XSS_NAME, timeout=TIMEOUT_MS)

    upload(page, XSS_NAME, shear_fits())  # success path
    expect(page.locator(".ks-message")).to_contain_text("Loaded shear maps", timeout=TIMEOUT_MS)
    assert XSS_NAME in text_of(page, "ks-message")
    expect(page.locator(".notyf__message").last).to_contain_text(XSS_NAME, timeout=TIMEOUT_MS)

    upload(page, MARKDOWN_NAME, shear_fits(0.01))  # Markdown is not rendered either
    expect(page.locator(".ks-message")).to_contain_text(MARKDOWN_NAME, timeout=TIMEOUT_MS)
    assert page.locator(".ks-message strong, .ks-message em, .ks-message a").count() == 0

    time.sleep(1.5)  # a broken <img> fires onerror within milliseconds; give it ample time
    page.screenshot(path=str(artifacts / "dashboard_xss_names.png"), full_page=True)
    assert dialogs == [], f"script ran in the page: alert({dialogs})"
    assert page.locator("img[src=x]").count() == 0
