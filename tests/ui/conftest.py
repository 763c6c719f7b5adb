"""Browser-test fixtures: Debian's Chromium driven by Playwright, and the dashboard served on a free port.

The server runs in this process (``dashboard.app.serve(..., threaded=True)``, :func:`tests.helpers.serving_dashboard`)
so the tests can also check server-side state (no worker thread left after a session closes). Unused sessions are
reaped after about a second instead of Bokeh's default 15–30 s.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import serving_dashboard

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def pytest_collection_modifyitems(config, items):
    with_xdist = config.pluginmanager.hasplugin("xdist")  # the marker exists only with the plugin (-p no:xdist)
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)
            if with_xdist:
                item.add_marker(pytest.mark.xdist_group("browser"))  # one worker runs them all, in order


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (make chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": LAUNCH_FLAGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1600, "height": 1300}}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def server_url():
    with serving_dashboard() as url:
        yield url
