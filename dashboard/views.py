"""The views of the dashboard: small ``pn.viewable.Viewer`` s that lay out widgets and plots for a :class:`RunModel`.

Each view's ``__panel__`` only lays out; ``show_*`` methods put new data into the plots of :mod:`dashboard.plots`
(in place) and new text into plain-text panes. Every text that can hold user input goes through
:class:`PlainAlert` / :func:`dashboard.status.plain_html` (escaped, never parsed as HTML or Markdown).

* :class:`SettingsPanel` — the sidebar: one card per stage, widgets generated from the settings' parameters
  (so from ``core.options`` and the sampler registry); the sampler card shows only the chosen sampler's options.
* :class:`ControlPanel` — Run / Pause / Resume / Stop / Step / Compare, progress, status, messages, downloads.
* :class:`ResultsPanel` — maps, chains, spectrum, traces, diagnostics, comparisons.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
import panel as pn
import param
from panel.io.resources import CDN_DIST

from dashboard import teaching
from dashboard.model import RunModel
from dashboard.plots import ImagePair, MapPlots, MosaicPlot, SchedulePlot, SpectrumPlot, TracePlots
from dashboard.problem import binned_power
from dashboard.runner import RunState
from dashboard.settings import PRIOR_CHOICES, SAMPLER_OPTION_NAMES
from dashboard.status import (DIAGNOSTICS_HELP, Message, diagnostics_lines, escape, lines_html, plain_html,
                              progress_text, table_html)
from dashboard.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_LABEL

__all__ = ["PlainAlert", "SettingsPanel", "ControlPanel", "ResultsPanel", "toast"]

logger = logging.getLogger(__name__)
_ALERT_TYPES = ["primary", "secondary", "success", "danger", "warning", "info", "light", "dark"]


class PlainAlert(pn.pane.HTML):
    """A Bootstrap-style alert box that shows PLAIN text: set it with :meth:`show`, which HTML-escapes.

    Unlike ``pn.pane.Alert`` (a Markdown pane) nothing in the text is interpreted: user-supplied file names
    and values are displayed literally and cannot inject markup or script.
    """

    alert_type = param.Selector(default="info", objects=_ALERT_TYPES)

    _rename = {**pn.pane.HTML._rename, "alert_type": None}
    _stylesheets = [f"{CDN_DIST}css/alerts.css"]

    def __init__(self, text: str = "", **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(plain_html(text) if text else "", **params)

    def show(self, message: Message | str, alert_type: str | None = None) -> None:
        """Show ``message`` (a :class:`~dashboard.status.Message` or plain text) escaped, and make the box visible."""
        if isinstance(message, Message):
            alert_type = alert_type or message.alert_type
            message = message.text
        self.param.update(object=plain_html(message), alert_type=alert_type or self.alert_type, visible=True)

    def show_lines(self, lines: list[str], alert_type: str | None = None) -> None:
        self.param.update(object=lines_html(lines), alert_type=alert_type or self.alert_type, visible=bool(lines))

    def clear(self) -> None:
        self.param.update(object="", visible=False)

    def _process_param_change(self, params: dict[str, Any]) -> dict[str, Any]:
        if "css_classes" in params or "alert_type" in params:
            params["css_classes"] = list(self.css_classes) + ["alert", f"alert-{self.alert_type}"]
        return super()._process_param_change(params)


def toast(message: Message) -> None:
    """A notification toast of ``message`` (escaped); nothing where notifications are off (notebooks)."""
    notifications = getattr(pn.state, "notifications", None)
    if notifications is None:
        return
    try:
        getattr(notifications, message.level)(escape(message.text), duration=8000)
    except Exception:  # noqa: BLE001 - best effort
        logger.debug("notification failed", exc_info=True)


def _bokeh(fig: Any, **kwargs: Any) -> pn.pane.Bokeh:
    return pn.pane.Bokeh(fig, width=fig.width, height=fig.height, **kwargs)


# ------------------------------------------------------------------------------------------- settings
_WIDGETS = {"seed": pn.widgets.IntInput, "num_chains": pn.widgets.IntInput, "npix": pn.widgets.IntInput,
            "num_levels": pn.widgets.IntInput, "steps_per_level": pn.widgets.IntInput,
            "sigma_min": {"type": pn.widgets.FloatInput, "format": "0.00000"}, "sigma_max": pn.widgets.FloatInput,
            "chunk_seconds": pn.widgets.FloatInput}


def _widgets(settings: Any) -> dict[str, Any]:
    """Widget types: number inputs for counts, seeds and the sampler options (which may be unset, ``None``)."""
    widgets: dict[str, Any] = dict(_WIDGETS)
    for name in SAMPLER_OPTION_NAMES:
        parameter = settings.param[name]
        if isinstance(parameter, param.Integer):
            widgets[name] = pn.widgets.IntInput
        elif isinstance(parameter, param.Number):
            widgets[name] = pn.widgets.FloatInput
    return widgets


class SettingsPanel(pn.viewable.Viewer):
    """The sidebar: data, mask, noise, prior, schedule, sampler (+ its own options), teaching."""

    def __init__(self, model: RunModel, on_use_drawn: Callable[[], None], on_clear_drawn: Callable[[], None],
                 **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        settings = model.settings
        # FileDropper sends files in chunks (never over the websocket message limit) and refuses files over the cap
        # in the browser; the content is checked on the server (any type: FITS, .fits.gz, PNG).
        self.shear_upload = pn.widgets.FileDropper(max_file_size=MAX_UPLOAD_LABEL, multiple=False, layout="compact",
                                                   css_classes=["ks-shear-upload"], sizing_mode="stretch_width")
        self.mask_upload = pn.widgets.FileDropper(max_file_size=MAX_UPLOAD_LABEL, multiple=False, layout="compact",
                                                  css_classes=["ks-mask-upload"], sizing_mode="stretch_width")
        self._seen: dict[int, dict[str, int]] = {}
        self.shear_upload.param.watch(lambda e: self._uploaded(e, model.load_shear), "value")
        self.mask_upload.param.watch(lambda e: self._uploaded(e, model.load_mask), "value")
        self.use_drawn = pn.widgets.Button(label="Use drawn mask", width=130)
        self.clear_drawn = pn.widgets.Button(label="Clear shapes", width=110)
        self.use_drawn.on_click(lambda event: on_use_drawn())
        self.clear_drawn.on_click(lambda event: on_clear_drawn())
        self.schedule_plot = SchedulePlot()
        self.schedule_error = PlainAlert("", alert_type="danger", visible=False)
        self.sampler_options = self._params(settings.shown_sampler_options())
        settings.param.watch(self._on_sampler, "sampler")
        settings.param.watch(self._on_schedule, ["schedule", "sigma_max", "sigma_min", "num_levels", "steps_per_level"])
        self._on_schedule()

    def _uploaded(self, event: Any, load: Callable[[bytes, str], bool]) -> None:
        """Load each file that arrived since the last event (the widget keeps earlier files in its value)."""
        seen = self._seen.setdefault(id(event.obj), {})
        files = dict(event.new or {})
        for name, data in files.items():
            if seen.get(name) != id(data):
                load(data if isinstance(data, bytes) else str(data).encode(), str(name))
        self._seen[id(event.obj)] = {name: id(data) for name, data in files.items()}

    def _params(self, names: list[str]) -> pn.Param:
        return pn.Param(self.model.settings, parameters=names, show_name=False, sizing_mode="stretch_width",
                        widgets=_widgets(self.model.settings))

    def _on_sampler(self, event: Any = None) -> None:
        self.sampler_options.parameters = self.model.settings.shown_sampler_options()

    def _on_schedule(self, *events: Any) -> None:
        try:
            schedule = self.model.settings.make_schedule()
        except ValueError as err:
            self.schedule_error.show(str(err), "danger")
            return
        self.schedule_error.clear()
        self.schedule_plot.show(np.asarray(schedule.sigmas), schedule.steps_per_level)

    def _teach(self, stage: str) -> pn.pane.Markdown:
        return pn.pane.Markdown(teaching.stage_text(stage), visible=self.model.settings.param.teaching,
                                css_classes=["ks-teaching"], styles={"font-size": "0.85em", "color": "#444"},
                                sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        card = dict(sizing_mode="stretch_width", collapsed=False, margin=(4, 4))
        upload_note = pn.pane.HTML(plain_html(f"Upload limit {MAX_UPLOAD_BYTES // 2**20} MiB per file."),
                                   styles={"font-size": "0.8em", "color": "#666"})
        return pn.Column(
            pn.Card(self._teach("data"), self._params(["data_source", "npix", "pixel_size_arcmin", "source_redshift"]),
                    pn.pane.HTML(plain_html("Shear FITS (γ₁, γ₂[, σ₁, σ₂]):")), self.shear_upload, upload_note,
                    title="Data", **card),
            pn.Card(self._params(["mask"]), pn.pane.HTML(plain_html("Mask FITS/PNG:")), self.mask_upload,
                    pn.Row(self.use_drawn, self.clear_drawn), title="Mask", **card),
            pn.Card(self._teach("likelihood"), self._params(["noise_model", "sigma_e", "n_gal_arcmin2"]),
                    title="Noise", **card),
            pn.Card(self._teach("prior"), self._params(["prior"]), title="Prior", **card),
            pn.Card(self._teach("annealing"), self._params(["schedule", "sigma_max", "sigma_min", "num_levels",
                                                            "steps_per_level"]),
                    pn.pane.Bokeh(self.schedule_plot.figure, width=300, height=170), self.schedule_error,
                    title="σ schedule", **card),
            pn.Card(self._teach("score"), self._params(["sampler", "num_chains", "init", "final_denoise", "seed",
                                                        "chunk_seconds"]),
                    title="Sampler", **card),
            pn.Card(self.sampler_options, title="Sampler options", collapsed=True, sizing_mode="stretch_width",
                    margin=(4, 4)),
            pn.Card(self._params(["teaching"]), title="Teaching", **card),
            width=340, scroll=False,
        )


# ------------------------------------------------------------------------------------------- controls
class ControlPanel(pn.viewable.Viewer):
    """Buttons, progress, status, messages (escaped) and downloads."""

    def __init__(self, model: RunModel, device: str, fits_callback: Callable, png_callback: Callable,
                 **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.buttons = {}
        for label, action, kwargs in (("Run", model.run, {"color": "primary"}), ("Pause", model.pause, {}),
                                      ("Resume", model.resume, {}), ("Stop", model.stop, {"color": "danger"}),
                                      ("Step", model.step, {}), ("Compare priors", model.compare_priors, {}),
                                      ("Compare samplers", model.compare_samplers, {})):
            button = pn.widgets.Button(label=label, width=max(80, 9 * len(label)), **kwargs)
            button.on_click(lambda event, a=action: a())
            self.buttons[label] = button
        self.progress = pn.indicators.Progress(value=0, max=1000, bar_color="primary", sizing_mode="stretch_width",
                                               css_classes=["ks-progress"])
        self.progress_text = pn.pane.HTML(plain_html("Not started."), css_classes=["ks-progress-text"], margin=(0, 10))
        self.status = PlainAlert("Ready.", alert_type="info", css_classes=["ks-status"], margin=(5, 10))
        self.message = PlainAlert("", alert_type="warning", visible=False, css_classes=["ks-message"], margin=(5, 10))
        self.url_message = PlainAlert("", alert_type="warning", visible=False, css_classes=["ks-url-message"],
                                      margin=(5, 10))
        self.device = pn.pane.HTML(plain_html(f"Device: {device}"), css_classes=["ks-device"])
        self.fits_download = pn.widgets.FileDownload(callback=fits_callback, filename="kappascope_posterior.fits",
                                                     label="Posterior FITS", color="success", width=150)
        self.png_download = pn.widgets.FileDownload(callback=png_callback, filename="kappascope_maps.png",
                                                    label="PNG snapshot", color="success", width=150)
        model.param.watch(self._on_message, "message")
        model.param.watch(self._on_url_problems, "url_problems")
        self._on_url_problems()

    def _on_message(self, event: Any) -> None:
        if event.new is None:
            self.message.clear()
            return
        self.message.show(event.new)
        toast(event.new)

    def _on_url_problems(self, *events: Any) -> None:
        self.url_message.show_lines(self.model.url_problems, "warning")

    def show_status(self, status: Any, snapshot: Any) -> None:
        state = status.state
        self.progress.value = int(round(1000 * status.progress))
        self.progress_text.object = plain_html(progress_text(status, snapshot))
        self.status.show(status.message, {RunState.ERROR: "danger", RunState.DONE: "success",
                                          RunState.STOPPED: "warning"}.get(state, "info"))
        active = state.active
        self.buttons["Run"].disabled = active and state != RunState.PAUSED
        self.buttons["Pause"].disabled = state not in (RunState.RUNNING, RunState.PREPARING)
        self.buttons["Resume"].disabled = state != RunState.PAUSED
        self.buttons["Stop"].disabled = not active or state == RunState.STOPPING
        self.buttons["Step"].disabled = state == RunState.STOPPING
        self.buttons["Compare priors"].disabled = self.buttons["Compare samplers"].disabled = active
        if state == RunState.ERROR:
            self.model.notify(status.message)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.Row(*self.buttons.values()), self.progress, self.progress_text, self.status,
                         self.message, self.url_message, pn.Row(self.device, self.fits_download, self.png_download),
                         sizing_mode="stretch_width")


# ------------------------------------------------------------------------------------------- results
class ResultsPanel(pn.viewable.Viewer):
    """Maps, chain mosaic, power spectrum, traces, diagnostics and comparisons; all plots updated in place."""

    def __init__(self, model: RunModel, **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.maps = MapPlots()
        self.mosaic = MosaicPlot()
        self.spectrum = SpectrumPlot()
        self.traces = TracePlots()
        self.diagnostics = PlainAlert("Diagnostics: available when the run reaches σ_min.", alert_type="light",
                                      css_classes=["ks-diagnostics"])
        self.prior_pairs = {prior: ImagePair(prior, self.maps.x_range, self.maps.y_range) for prior in PRIOR_CHOICES}
        self.compare_table = pn.pane.HTML("", css_classes=["ks-compare-table"], sizing_mode="stretch_width")
        self.compare_note = PlainAlert("Compare priors runs both priors on the same data and seed; Compare samplers "
                                       "runs every sampler on the same problem.", alert_type="light",
                                       css_classes=["ks-compare-note"])
        self._shown_variants = -1

    def show_problem(self, problem: Any) -> None:
        self.maps.show_problem(problem)
        self.spectrum.show(problem.ell_centres, problem.theory_power, problem.truth_power, None)

    def show_snapshot(self, snapshot: Any, problem: Any, slow: bool) -> None:
        chains = np.asarray(snapshot.chains, np.float32)
        self.mosaic.show(chains, self.maps.clim)
        self.maps.show_snapshot(snapshot)
        if slow:
            self.traces.show(getattr(snapshot, "traces", {}) or {})
            if problem is not None and problem.geometry.shape == chains.shape[-2:]:
                self.spectrum.show(problem.ell_centres, problem.theory_power, problem.truth_power,
                                   binned_power(chains, problem.geometry, problem.ell_edges))
        if bool(getattr(snapshot, "done", False)) and problem is not None:
            self.diagnostics.show_lines(diagnostics_lines(problem, snapshot) + [DIAGNOSTICS_HELP], "light")

    def show_variants(self) -> None:
        if self.model.variants_version == self._shown_variants:
            return
        self._shown_variants = self.model.variants_version
        variants = dict(self.model.variants)
        self.compare_table.object = table_html([v.row() for v in variants.values()])
        for prior, pair in self.prior_pairs.items():
            variant = variants.get(prior) if self.model.comparison == "priors" else None
            if variant is not None:
                std = np.asarray(variant.snapshot.std, np.float32)
                pair.show(variant.snapshot.mean, std, variant.problem.kappa_range, (0.0, float(std.max()) or 1.0))

    def __panel__(self) -> pn.viewable.Viewable:
        maps = pn.GridBox(*[_bokeh(f) for f in self.maps.figures], ncols=4, css_classes=["ks-maps"])
        prior_figures = [f for pair in self.prior_pairs.values() for f in pair.figures]
        return pn.Column(
            maps,
            pn.Row(_bokeh(self.mosaic.figure), _bokeh(self.spectrum.figure)),
            pn.pane.Markdown(teaching.stage_text("results"), visible=self.model.settings.param.teaching,
                             css_classes=["ks-teaching"], sizing_mode="stretch_width"),
            pn.Row(*[_bokeh(f) for f in self.traces.figures]),
            self.diagnostics,
            pn.pane.Markdown("### Comparisons"), self.compare_note, self.compare_table,
            pn.GridBox(*[_bokeh(f) for f in prior_figures], ncols=4, css_classes=["ks-compare-priors"]),
            sizing_mode="stretch_width",
        )


def slow_view_due(last: float, period_s: float, done: bool) -> bool:
    """Whether the heavier views (traces, spectrum) are due: at most every ``period_s``, and at the end."""
    return done or time.monotonic() - last >= period_s
