"""The kappascope dashboard: one app per browser session (``panel serve dashboard/app.py``) or notebook cell.

:class:`KappascopeApp` is a ``pn.viewable.Viewer``: it shows by itself in a JupyterLab cell and is wrapped
in a page when served. Each app owns its :class:`~dashboard.settings.DashboardSettings`, its
:class:`~dashboard.runner.RunController` (a worker thread that runs the sampling driver chunk by chunk and
keeps only the latest snapshot) and its views. A periodic callback on the session (every
``REFRESH_MS`` ms) reads the latest frame and pushes it into the views, so the page never waits for the
sampler and the sampler never waits for the page; when the session closes the run is cancelled.

Entry points: :func:`create_app` (a fresh app), :func:`serve` (``pn.serve`` of one app per session,
used by ``python -m dashboard`` and ``kappascope serve``). URL query arguments set initial settings,
e.g. ``?seed=3&npix=32&num_levels=10`` (unknown or bad values are reported in the page).
"""
from __future__ import annotations

import io
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import holoviews as hv
import numpy as np
import panel as pn

from dashboard import teaching
from dashboard.problem import (
    Problem,
    UserInputs,
    binned_power,
    build_problem,
    parse_mask_upload,
    parse_shear_upload,
    sample_snapshots,
)
from dashboard.runner import RunController, RunState
from dashboard.settings import UPLOADED, DashboardSettings
from dashboard.views import ChainMosaic, MapViews, PowerSpectrumView, TraceView, schedule_plot

__all__ = ["KappascopeApp", "create_app", "serve", "device_description", "REFRESH_MS"]

logger = logging.getLogger(__name__)

REFRESH_MS = 250
#: Seconds between updates of the heavier views (traces, power spectrum, R-hat/ESS) while a run is going.
SLOW_VIEW_S = 1.5
APP_PATH = Path(__file__).resolve()
#: Settings that only change the page, not the run.
_DISPLAY_ONLY = ("teaching", "compare_priors", "name")


def device_description() -> str:
    """The device TensorFlow computes on: the first GPU's name, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
        except Exception:  # noqa: BLE001 - details are optional
            name = gpus[0].name
        return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")
    cpus = tf.config.list_physical_devices("CPU")
    return f"CPU ({len(cpus)} device{'s' if len(cpus) != 1 else ''}, no GPU visible)"


def _format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


class KappascopeApp(pn.viewable.Viewer):
    """One dashboard: settings, run controls, live views, downloads (one per session)."""

    def __init__(self, settings: DashboardSettings | None = None, query: Mapping[str, Any] | None = None,
                 autostart_preview: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.settings = settings or DashboardSettings()
        self.controller = RunController()
        #: ``(problem, cancel) -> iterator of Snapshot``; the sampling driver by default.
        self.sample_fn = sample_snapshots
        self.inputs = UserInputs()
        self._inputs_version = 0
        self._prepared: tuple[Any, Problem] | None = None
        self._shown_problem: Problem | None = None
        self._shown_frame = 0
        self._shown_run = 0
        self._last_status: Any = None
        self._callback: Any = None
        self._closed = False
        self.frames_applied = 0
        self._slow_views_at = 0.0
        self.refresh_times: list[float] = []

        # ---------------------------------------------------------------- views
        self.maps = MapViews()
        self.mosaic = ChainMosaic(self.maps)
        self.power = PowerSpectrumView()
        self.traces = TraceView()
        self.schedule_pane = pn.pane.HoloViews(pn.bind(self._schedule_view, *[self.settings.param[p] for p in (
            "schedule_kind", "sigma_max", "sigma_min", "num_levels", "steps_per_level")]), linked_axes=False)
        self.compare_pane = pn.pane.HoloViews(hv.Div("<i>Run once with each prior to compare them.</i>"),
                                              linked_axes=False)

        # -------------------------------------------------------------- widgets
        self.run_button = pn.widgets.Button(label="Run", color="primary", width=80)
        self.pause_button = pn.widgets.Button(label="Pause", width=80, disabled=True)
        self.resume_button = pn.widgets.Button(label="Resume", width=90, disabled=True)
        self.stop_button = pn.widgets.Button(label="Stop", color="danger", width=80, disabled=True)
        self.step_button = pn.widgets.Button(label="Step", width=80)
        for button, handler in ((self.run_button, self.run), (self.pause_button, self.pause),
                                (self.resume_button, self.resume), (self.stop_button, self.stop),
                                (self.step_button, self.step)):
            button.on_click(lambda event, h=handler: h())
        self.progress = pn.indicators.Progress(value=0, max=1000, bar_color="primary",
                                               sizing_mode="stretch_width", css_classes=["ks-progress"])
        self.progress_text = pn.pane.Markdown("Not started.", css_classes=["ks-progress-text"], margin=(0, 10))
        self.status = pn.pane.Alert("Ready.", alert_type="info", css_classes=["ks-status"], margin=(5, 10))
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["ks-message"],
                                     margin=(5, 10))
        self.device = pn.pane.Markdown(f"**Device:** {device_description()}", css_classes=["ks-device"])
        self.diagnostics = pn.pane.Markdown("R-hat / ESS: available when the run reaches σ_min.",
                                            css_classes=["ks-diagnostics"])
        self.shear_upload = pn.widgets.FileInput(accept=".fits,.fit,.fts", label="Shear FITS (γ₁, γ₂[, σ₁, σ₂])", multiple=False,
                                               css_classes=["ks-shear-upload"])
        self.mask_upload = pn.widgets.FileInput(accept=".fits,.fit,.fts,.png", label="Mask FITS/PNG", multiple=False,
                                              css_classes=["ks-mask-upload"])
        self.shear_upload.param.watch(self._on_shear_upload, "value")
        self.mask_upload.param.watch(self._on_mask_upload, "value")
        self.apply_drawn = pn.widgets.Button(label="Use drawn mask", width=130)
        self.clear_drawn = pn.widgets.Button(label="Clear shapes", width=110)
        self.apply_drawn.on_click(lambda event: self._use_drawn_mask())
        self.clear_drawn.on_click(lambda event: self.maps.clear_shapes())
        self.fits_download = pn.widgets.FileDownload(callback=self._fits_bytes, filename="kappascope_posterior.fits",
                                                     label="Posterior FITS", color="success", width=150)
        self.png_download = pn.widgets.FileDownload(callback=self._png_bytes, filename="kappascope_maps.png",
                                                    label="PNG snapshot", color="success", width=150)

        if query:
            try:
                self.settings.update_from_mapping(query)
            except ValueError as err:
                self._notify(f"URL settings ignored: {err}", "warning")
        self._layout = self._build_layout()
        if autostart_preview:
            self.preview()

    # ------------------------------------------------------------------ layout
    def _teach(self, stage: str) -> pn.pane.Markdown:
        return pn.pane.Markdown(teaching.stage_text(stage), visible=self.settings.param.teaching,
                                css_classes=["ks-teaching"], styles={"font-size": "0.85em", "color": "#444"},
                                sizing_mode="stretch_width")

    def _params(self, names: list[str]) -> pn.Param:
        return pn.Param(self.settings, parameters=names, show_name=False, sizing_mode="stretch_width",
                        widgets={"seed": pn.widgets.IntInput, "num_chains": pn.widgets.IntInput,
                                 "npix": pn.widgets.IntInput, "num_levels": pn.widgets.IntInput,
                                 "steps_per_level": pn.widgets.IntInput, "snapshot_every": pn.widgets.IntInput,
                                 "sigma_min": {"type": pn.widgets.FloatInput, "format": "0.0000"},
                                 "sigma_max": pn.widgets.FloatInput})

    def _build_layout(self) -> pn.viewable.Viewable:
        card = dict(sizing_mode="stretch_width", collapsed=False, margin=(4, 4))
        sidebar = pn.Column(
            pn.Card(self._teach("data"), self._params(["data_source", "npix", "pixel_size_arcmin", "source_redshift"]),
                    self.shear_upload, title="Data", **card),
            pn.Card(self._params(["mask"]), self.mask_upload, pn.Row(self.apply_drawn, self.clear_drawn),
                    title="Mask", **card),
            pn.Card(self._teach("likelihood"), self._params(["noise_model", "sigma_e", "n_gal_arcmin2"]),
                    title="Noise", **card),
            pn.Card(self._teach("prior"), self._params(["prior", "compare_priors"]), title="Prior", **card),
            pn.Card(self._teach("annealing"), self._params(["schedule_kind", "sigma_max", "sigma_min", "num_levels",
                                                            "steps_per_level"]), self.schedule_pane,
                    title="σ schedule", **card),
            pn.Card(self._teach("score"), self._params(["sampler", "num_leapfrog_steps", "num_chains", "snapshot_every",
                                                        "final_denoise", "seed"]), title="Sampler", **card),
            pn.Card(self._params(["teaching"]), title="Teaching", **card),
            width=340, scroll=False,
        )
        controls = pn.Column(
            pn.Row(self.run_button, self.pause_button, self.resume_button, self.stop_button, self.step_button),
            self.progress, self.progress_text, self.status, self.message,
            pn.Row(self.device, self.fits_download, self.png_download),
            sizing_mode="stretch_width",
        )
        main = pn.Column(
            pn.pane.Markdown(f"## kappascope — probabilistic mass mapping\n{teaching.INTRO}", sizing_mode="stretch_width"),
            controls,
            self.maps.pane,
            pn.Row(self.mosaic.pane, self.power.pane),
            self._teach("results"),
            self.traces.pane,
            self.diagnostics,
            pn.Column(pn.pane.Markdown("### Compare priors"), self.compare_pane, visible=self.settings.param.compare_priors),
            sizing_mode="stretch_width",
        )
        return pn.Row(sidebar, main, sizing_mode="stretch_width", css_classes=["kappascope-app"])

    def __panel__(self) -> pn.viewable.Viewable:
        self.start_updates()
        return self._layout

    def page(self) -> pn.viewable.Viewable:
        """The served page (a plain layout: it renders the same offline, in notebooks and when served)."""
        self.start_updates()
        return self._layout

    # ------------------------------------------------------------------ session wiring
    def start_updates(self, period_ms: int = REFRESH_MS) -> None:
        """Start the periodic refresh on the current session (idempotent) and stop work when it closes."""
        if self._callback is not None or self._closed:
            return
        self._callback = pn.state.add_periodic_callback(self.refresh, period=period_ms, start=True)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(self._on_session_destroyed)

    def _on_session_destroyed(self, session_context: Any) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the run (without blocking the server) and stop refreshing."""
        self._closed = True
        self.controller.stop(wait=False)
        if self._callback is not None:
            try:
                self._callback.stop()
            except Exception:  # noqa: BLE001 - the session may already be gone
                pass
            self._callback = None

    # ------------------------------------------------------------------ messages
    def _notify(self, text: str, level: str = "error") -> None:
        self.message.object = text
        self.message.alert_type = "danger" if level == "error" else level
        self.message.visible = True
        notifications = getattr(pn.state, "notifications", None)
        if notifications is not None:
            try:
                getattr(notifications, level if level in ("error", "warning", "info", "success") else "info")(
                    text, duration=8000)
            except Exception:  # noqa: BLE001 - notifications are best effort (not enabled in notebooks)
                pass

    def _clear_message(self) -> None:
        self.message.visible = False
        self.message.object = ""

    # ------------------------------------------------------------------ run control
    def _problem_key(self) -> tuple:
        values = {k: v for k, v in self.settings.as_dict().items() if k not in _DISPLAY_ONLY}
        return tuple(sorted(values.items())) + (("inputs", self._inputs_version),)

    def _make_prepare(self) -> Any:
        key = self._problem_key()
        settings = DashboardSettings(**{k: v for k, v in self.settings.as_dict().items()})
        inputs = UserInputs(**vars(self.inputs))
        cached = self._prepared

        def prepare() -> Problem:
            if cached is not None and cached[0] == key:
                return cached[1]
            problem = build_problem(settings, inputs)
            self._prepared = (key, problem)
            return problem

        return prepare

    def _start(self, paused: bool = False, sample: Any = "default") -> bool:
        if self.controller.is_active:
            self._notify("A run is already active in this session; stop it first.", "warning")
            return False
        try:
            self.settings.validate()
        except ValueError as err:
            self._notify(f"Impossible settings: {err}")
            return False
        self._clear_message()
        if sample == "default":
            sample = self.sample_fn
        self.controller.start(self._make_prepare(), sample, paused=paused, label=self.settings.prior,
                              total_steps=self.settings.total_steps)
        self.refresh()
        return True

    def preview(self) -> None:
        """Prepare the data, prior and baselines in the background without sampling."""
        self._start(sample=None)

    def run(self) -> None:
        if self.controller.state == RunState.PAUSED:
            self.resume()
            return
        self._start()

    def pause(self) -> None:
        self.controller.pause()
        self.refresh()

    def resume(self) -> None:
        self.controller.resume()
        self.refresh()

    def stop(self) -> None:
        self.controller.stop(wait=False)
        self.refresh()

    def step(self) -> None:
        """One chunk of ``snapshot_every`` transitions; starts a paused run when none is active."""
        if not self.controller.is_active or self.controller.state == RunState.STOPPING:
            if self.controller.state == RunState.STOPPING or not self._start(paused=True):
                return
        self.controller.step()
        self.refresh()

    # ------------------------------------------------------------------ uploads
    def _on_shear_upload(self, event: Any) -> None:
        if event.new is None:
            return
        try:
            shear, std = parse_shear_upload(event.new, self.shear_upload.filename or "upload")
        except ValueError as err:
            self._notify(str(err))
            return
        self.inputs.shear, self.inputs.shear_std, self.inputs.shear_name = shear, std, self.shear_upload.filename or ""
        self._inputs_version += 1
        self.settings.data_source = UPLOADED
        self.settings.noise_model = "data std maps" if std is not None else "galaxy density"
        self._notify(f"Loaded shear maps {shear.shape[1]}×{shear.shape[2]} from {self.inputs.shear_name}"
                     f"{' with std maps' if std is not None else ''}; press Run.", "success")

    def _on_mask_upload(self, event: Any) -> None:
        if event.new is None:
            return
        try:
            mask = parse_mask_upload(event.new, self.mask_upload.filename or "mask")
        except ValueError as err:
            self._notify(str(err))
            return
        self.inputs.mask, self.inputs.mask_name = mask, self.mask_upload.filename or ""
        self._inputs_version += 1
        self.settings.mask = "uploaded"
        self._notify(f"Loaded mask {mask.shape[0]}×{mask.shape[1]} ({mask.mean():.0%} observed); press Run.", "success")

    def _use_drawn_mask(self) -> None:
        boxes, polygons = self.maps.drawn_shapes()
        self.inputs.boxes, self.inputs.polygons = boxes, polygons
        self._inputs_version += 1
        self.settings.mask = "drawn"
        count = len(boxes.get("x0", [])) + len(polygons.get("xs", []))
        self._notify(f"Mask from {count} drawn shape(s); press Run (or Step) to use it.", "info")

    # ------------------------------------------------------------------ refresh
    def _schedule_view(self, kind: str, sigma_max: float, sigma_min: float, num_levels: int, steps: int) -> hv.Element:
        try:
            schedule = self.settings.schedule()
        except ValueError as err:
            return hv.Div(f"<span style='color:#b00'>{err}</span>")
        return schedule_plot(schedule.sigmas, schedule.steps_per_level)

    def refresh(self) -> None:
        """Apply the newest frame and status to the views (called on the session's event loop)."""
        started = time.perf_counter()
        status = self.controller.status()
        problem = self.controller.context
        if problem is not None and problem is not self._shown_problem:
            self._shown_problem = problem
            self.maps.show_problem(problem)
            self.power.show(problem.ell_centres, problem.theory_power, problem.truth_power, None)
        frame_id, snapshot = self.controller.latest()
        if snapshot is not None and (frame_id != self._shown_frame or status.run_id != self._shown_run):
            self._shown_frame, self._shown_run = frame_id, status.run_id
            self._show_snapshot(snapshot, problem)
        if status != self._last_status:
            self._show_status(status)
            self._last_status = status
        self.refresh_times.append(time.perf_counter() - started)
        del self.refresh_times[:-200]

    def _show_snapshot(self, snapshot: Any, problem: Problem | None) -> None:
        """Chains and moments every frame; traces, spectra and diagnostics at most every ``SLOW_VIEW_S``."""
        chains = np.asarray(snapshot.chains, np.float32)
        self.mosaic.show(chains)
        self.maps.show_snapshot(snapshot)
        done = bool(getattr(snapshot, "done", False))
        now = time.monotonic()
        if done or now - self._slow_views_at >= SLOW_VIEW_S:
            self._slow_views_at = now
            self.traces.show(getattr(snapshot, "traces", {}) or {})
            if problem is not None and problem.geometry.shape == chains.shape[-2:]:
                self.power.show(problem.ell_centres, problem.theory_power, problem.truth_power,
                                binned_power(chains, problem.geometry, problem.ell_edges))
            self.diagnostics.object = self._diagnostics_text(snapshot)
        if done:
            self._update_compare()
        self.frames_applied += 1

    def _diagnostics_text(self, snapshot: Any) -> str:
        from dashboard.problem import convergence_diagnostics

        try:
            rhat, ess, draws = convergence_diagnostics(snapshot)
        except ValueError as err:
            return f"R-hat / ESS: not available yet ({err})."
        return (f"**Convergence at σ = {float(snapshot.sigma):.3g}** ({draws} draws × {snapshot.chains.shape[0]} chains, "
                f"traced pixels): max R-hat = {rhat:.3f} · min ESS = {ess:.1f} (R-hat < 1.1 is the usual threshold).")

    def _show_status(self, status: Any) -> None:
        state = status.state
        self.progress.value = int(round(1000 * status.progress))
        snap = self.controller.latest()[1]
        step, total = status.step, status.total_steps
        parts = [f"**{state.value}**"]
        if snap is not None:
            step, total = int(snap.step), int(snap.total_steps)
            parts += [f"step {step}/{total}", f"level {int(getattr(snap, 'level', 0)) + 1}/{getattr(snap, 'num_levels', '?')}",
                      f"σ = {float(getattr(snap, 'sigma', float('nan'))):.3g}",
                      f"acceptance {float(getattr(snap, 'acceptance', float('nan'))):.2f}"]
        else:
            parts.append(f"step {step}/{total}")
        parts += [f"elapsed {_format_seconds(status.elapsed_s)}", f"ETA {_format_seconds(status.eta_s)}"]
        self.progress_text.object = " · ".join(parts)
        self.status.object = status.message
        self.status.alert_type = {RunState.ERROR: "danger", RunState.DONE: "success",
                                  RunState.STOPPED: "warning"}.get(state, "info")
        active = state.active
        self.run_button.disabled = active and state != RunState.PAUSED
        self.pause_button.disabled = state not in (RunState.RUNNING, RunState.PREPARING)
        self.resume_button.disabled = state != RunState.PAUSED
        self.stop_button.disabled = not active or state == RunState.STOPPING
        self.step_button.disabled = state == RunState.STOPPING
        if state == RunState.ERROR:
            self._notify(status.message)

    def _update_compare(self) -> None:
        results = self.controller.results_by_label
        if not results:
            return
        plots = []
        for label, result in results.items():
            snap = result.snapshot
            clim = tuple(result.context.kappa_range)
            for name, data, cmap, lim in (("mean", snap.mean, "RdBu_r", clim), ("std", snap.std, "viridis", None)):
                arr = np.asarray(data, np.float32)
                img = hv.Image((np.arange(arr.shape[1]), np.arange(arr.shape[0]), arr), ["x", "y"])
                plots.append(img.opts(cmap=cmap, clim=lim or (0, float(arr.max()) or 1.0), colorbar=True,
                                      title=f"{label}: posterior {name}", frame_width=220, frame_height=220,
                                      xaxis=None, yaxis=None))
        self.compare_pane.object = hv.Layout(plots).cols(4)

    # ------------------------------------------------------------------ downloads
    def _result(self) -> tuple[Problem, Any]:
        frame = self.controller.latest()[1]
        problem = self.controller.context
        if frame is not None and problem is not None:
            return problem, frame
        if self.controller.last_result is not None:
            return self.controller.last_result.context, self.controller.last_result.snapshot
        raise ValueError("no samples yet: run the sampler first")

    def _fits_bytes(self) -> io.BytesIO | None:
        try:
            problem, snap = self._result()
            from core.data.fits_io import write_maps_fits

            maps = {"MEAN": np.asarray(snap.mean, np.float32), "STD": np.asarray(snap.std, np.float32),
                    "SAMPLES": np.asarray(snap.chains, np.float32)}
            provenance = {k: v for k, v in problem.settings.items() if k not in _DISPLAY_ONLY}
            provenance.update(step=int(snap.step), sigma=float(snap.sigma), done=bool(snap.done))
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "posterior.fits"
                write_maps_fits(path, maps, problem.wcs, provenance)
                return io.BytesIO(path.read_bytes())
        except Exception as err:  # noqa: BLE001 - reported in the page
            self._notify(f"FITS download failed: {err}")
            return None

    def _png_bytes(self) -> io.BytesIO | None:
        try:
            problem, snap = self._result()
            return render_png(problem, snap)
        except Exception as err:  # noqa: BLE001 - reported in the page
            self._notify(f"PNG snapshot failed: {err}")
            return None


def render_png(problem: Problem, snapshot: Any, dpi: int = 110) -> io.BytesIO:
    """A matplotlib rendering (no pyplot state) of the truth, data, baselines and posterior maps."""
    from matplotlib.figure import Figure

    mask = np.asarray(problem.mask)
    panels = [("Truth κ", problem.truth, "RdBu_r", problem.kappa_range),
              ("Observed γ₁", np.where(mask > 0, problem.observation.shear[0], np.nan), "RdBu_r", None),
              ("Kaiser–Squires", problem.kaiser_squires, "RdBu_r", problem.kappa_range),
              ("Wiener filter", problem.wiener, "RdBu_r", problem.kappa_range),
              ("Posterior mean", snapshot.mean, "RdBu_r", problem.kappa_range),
              ("Posterior std", snapshot.std, "viridis", None)]
    panels = [p for p in panels if p[1] is not None]
    fig = Figure(figsize=(3.2 * len(panels), 3.4), dpi=dpi)
    for i, (title, data, cmap, clim) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        kwargs = {"vmin": clim[0], "vmax": clim[1]} if clim else {}
        im = ax.imshow(np.asarray(data, np.float32), origin="lower", cmap=cmap, **kwargs)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"kappascope · {problem.label} · step {snapshot.step}/{snapshot.total_steps} · σ={float(snapshot.sigma):.3g}",
                 fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    return buffer


def _session_query() -> dict[str, Any]:
    args = getattr(pn.state, "session_args", None) or {}
    return {k: v for k, v in args.items() if k not in ("bokeh-autoload-element", "bokeh-app-path", "bokeh-absolute-url")}


def create_app(settings: DashboardSettings | None = None, query: Mapping[str, Any] | None = None,
               autostart_preview: bool = True) -> KappascopeApp:
    """A fresh app (its own settings, run controller and views); reads URL query settings when served."""
    if query is None and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        query = _session_query()
    return KappascopeApp(settings=settings, query=query, autostart_preview=autostart_preview)


def _served_page() -> pn.viewable.Viewable:
    return create_app().page()


def serve(port: int = 5006, show: bool = True, address: str | None = None, threaded: bool = False,
          websocket_origin: list[str] | str | None = None, num_threads: int | None = None, **kwargs: Any) -> Any:
    """Serve one app per session at ``http://address:port/`` (blocking unless ``threaded``)."""
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    pn.extension(notifications=True)
    if num_threads is not None:
        pn.config.nthreads = num_threads
    return pn.serve(_served_page, port=port, show=show, address=address, threaded=threaded,
                    websocket_origin=websocket_origin, title="kappascope", **kwargs)


if pn.state.served or __name__.startswith("bokeh"):
    pn.extension(notifications=True)
    _served_page().servable(title="kappascope")
