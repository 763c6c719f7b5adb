"""The kappascope dashboard: one :class:`KappascopeApp` per browser session or notebook cell.

The app joins a :class:`~dashboard.model.RunModel` (state, no widgets) and its views (:mod:`dashboard.views`); a
periodic callback (every ``REFRESH_MS``) copies the newest frame of the run into the views, so the page never
waits for the sampler and the sampler never waits for the page. Serve it with :func:`serve` (``python -m
dashboard``: localhost unless an address is given) or ``panel serve dashboard/app.py``; URL queries set settings,
e.g. ``?seed=3&npix=32&prior=hybrid`` (bad ones are named on the page). Routes: :data:`ROUTES`.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import panel as pn

from dashboard.exports import fits_bytes, png_bytes
from dashboard.model import RunModel
from dashboard.server import configure_panel, device_description, serve_routes
from dashboard.settings import DashboardSettings
from dashboard.views import ControlPanel, ResultsPanel, SettingsPanel, slow_view_due

__all__ = ["KappascopeApp", "create_app", "serve", "ROUTES", "REFRESH_MS"]

REFRESH_MS = 250
MAX_IN_FLIGHT = 2  # frames sent to the browser and not yet drawn
SLOW_VIEW_S = 1.5  # traces and spectra refresh at most this often while a run goes


class KappascopeApp(pn.viewable.Viewer):
    """One dashboard: a run model and its views (one per session)."""

    def __init__(self, settings: DashboardSettings | None = None, query: Mapping[str, Any] | None = None,
                 autostart_preview: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.model = RunModel(settings=settings, query=query)
        self.results = ResultsPanel(self.model)
        self.sidebar = SettingsPanel(self.model, on_use_drawn=lambda: self.model.use_drawn_mask(
            *self.results.maps.drawn_shapes()), on_clear_drawn=self.results.maps.clear_shapes)
        self.controls = ControlPanel(self.model, device_description(), self._download(fits_bytes, "FITS download"),
                                     self._download(png_bytes, "PNG snapshot"))
        self._shown = (None, 0, 0, None)  # problem, run id, frame id, status
        self._slow_at, self._callback, self.frames_applied, self._served = 0.0, None, 0, False
        # Back-pressure: the browser echoes each frame number it has drawn; at most MAX_IN_FLIGHT frames wait.
        self._sent, self._drawn = pn.widgets.IntInput(value=0, visible=False), pn.widgets.IntInput(value=0, visible=False)
        self._sent.jscallback(args={"drawn": self._drawn}, value="drawn.value = cb_obj.value")
        self._layout = pn.Row(self.sidebar, pn.Column(pn.pane.Markdown(_intro()), self.controls, self.results,
                                                      self._sent, self._drawn, sizing_mode="stretch_width"),
                              sizing_mode="stretch_width", css_classes=["kappascope-app"])
        if autostart_preview:
            self.model.preview()

    def _download(self, export: Callable, what: str) -> Callable:
        def callback() -> Any:
            try:
                return export(*self.model.result())
            except Exception as err:  # noqa: BLE001 - reported on the page
                self.model.notify(f"{what} failed: {err}")
        return callback

    def __panel__(self) -> pn.viewable.Viewable:
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS, start=True)
            self._served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
            if self._served:
                pn.state.on_session_destroyed(lambda context: self.close())
        return self._layout

    def refresh(self) -> None:
        """Copy the newest problem, frame and status of the run into the views (on the session's event loop)."""
        with pn.io.unlocked():  # raw Bokeh model changes from a periodic callback: dispatched at the end, batched
            self._refresh()

    def _refresh(self) -> None:
        controller = self.model.controller
        status, (frame_id, snapshot), problem = controller.status(), controller.latest(), controller.context
        shown_problem, shown_run, shown_frame, shown_status = self._shown
        if problem is not None and problem is not shown_problem:
            self.results.show_problem(problem)
        busy = self._served and self._sent.value - self._drawn.value >= MAX_IN_FLIGHT
        newest = snapshot
        if busy and status.state.active:  # the browser is behind: keep the old frame (the status still updates)
            frame_id, snapshot = shown_frame, None
        if snapshot is not None and (frame_id, status.run_id) != (shown_frame, shown_run):
            done = bool(getattr(snapshot, "done", False))
            slow = slow_view_due(self._slow_at, SLOW_VIEW_S, done)
            self._slow_at = time.monotonic() if slow else self._slow_at
            self.results.show_snapshot(snapshot, problem, slow)
            self.frames_applied += 1
            self._sent.value += 1
        if status != shown_status:
            self.controls.show_status(status, newest)
        self.results.show_variants()
        self._shown = (problem or shown_problem, status.run_id, frame_id, status)

    def close(self) -> None:
        """Cancel the run (without blocking the server) and stop refreshing."""
        self.model.close()
        if self._callback is not None:
            self._callback.stop()
            self._callback = None


def _intro() -> str:
    from dashboard.teaching import INTRO

    return f"## kappascope — probabilistic mass mapping\n{INTRO}\n\n[Open the 2-D teaching lab →](./lab)"


def create_app(settings: DashboardSettings | None = None, query: Mapping[str, Any] | None = None,
               autostart_preview: bool = True) -> KappascopeApp:
    """A fresh app (its own model and views); reads the URL query when served."""
    if query is None and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        query = dict(pn.state.session_args or {})
    return KappascopeApp(settings=settings, query=query, autostart_preview=autostart_preview)


def _lab_page() -> Any:
    from dashboard.lab import lab_page  # the 2-D teaching lab (dashboard/lab)

    return lab_page()


#: URL path → function building one session's page. (The 2-D lab adds its route here.)
ROUTES: dict[str, Callable[[], Any]] = {"/": create_app, "/lab": _lab_page}


def serve(port: int = 5006, show: bool = True, address: str | None = None, **kwargs: Any) -> Any:
    """Serve :data:`ROUTES` on ``address`` (default: localhost only) and ``port``; see :mod:`dashboard.server`."""
    return serve_routes(ROUTES, port=port, show=show, address=address, **kwargs)


if pn.state.served or __name__.startswith("bokeh"):  # ``panel serve dashboard/app.py``
    configure_panel()
    create_app().servable(title="kappascope", location=False)
