"""The 2-D teaching lab: kappascope's own kernels on targets you can see (served at ``/lab``, or in a notebook cell).

:class:`LabApp` is a ``pn.viewable.Viewer`` (it shows by itself in JupyterLab). It owns its
:class:`~dashboard.lab.settings.LabSettings` (synced with the URL when served), a
:class:`~dashboard.lab.views.LabStore` and the small views that watch it, and one
:class:`core.lab.sampling.LabRun`. One periodic callback on the session (every :data:`PERIOD_MS` ms) does the
work: while playing it advances the run by ``speed`` transitions (a small compiled batch, so the page stays
fluid) and pushes the frame into the store; it also polls a running score training. Step runs one frame
by hand. Tracing a new kernel graph (a new target, sampler, chain count or schedule) runs on a worker
thread first, so the page does not freeze while TensorFlow compiles.

The "Train" button fits a small MLP score by denoising score matching on exact samples of the target
(:func:`core.lab.learned.train_score_model`, on a worker thread with a progress bar), then samples with it;
the score field then shows the learned arrows (orange) over the exact ones (white) and the relative error.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Mapping
from urllib.parse import urlencode

import numpy as np
import panel as pn
import tensorflow as tf

from core.inference.schedules import from_name
from core.lab.learned import TrainingResult, score_error, train_score_model
from core.lab.metrics import energy_distance
from core.lab.sampling import LabFrame, LabRun
from core.lab.targets import make_target
from dashboard.lab import teaching
from dashboard.lab.settings import LIVE_KEYS, RESTART_KEYS, URL_KEYS, LabSettings, validate_query
from dashboard.lab.views import LabStore, MarginalView, ScheduleView, TargetView, TraceView, arrow_columns

__all__ = ["LabApp", "create_lab", "lab_page", "PERIOD_MS"]

logger = logging.getLogger(__name__)

#: Period of the session's callback (ms): at most 1000/PERIOD_MS frames per second.
PERIOD_MS = 60
#: Seconds between updates of the status/statistics texts while playing.
TEXT_EVERY_S = 0.3
#: Frames between energy-distance updates.
ENERGY_EVERY = 4
#: Frames at one σ whose samples fill the histograms.
HISTOGRAM_FRAMES = 12
DENSITY_GRID = 90
FIELD_GRID = 15
NUM_REFERENCE = 600
_REPLACE_STATE_JS = ("if (source.value) { window.history.replaceState(window.history.state, '', "
                     "window.location.pathname + '?' + source.value); }")
#: Evaluate exact targets through XLA-compiled scores (≈5× faster frames; compiled on the warm-up thread).
COMPILED_TARGET = True
#: Adam steps of the "Train" button (≈ 5–15 s on two CPU cores).
TRAIN_STEPS = 1200


class LabApp(pn.viewable.Viewer):
    """The lab page (see the module docstring)."""

    def __init__(self, query: Mapping[str, Any] | None = None, settings: LabSettings | None = None,
                 sync_url: bool = False, **params: Any) -> None:
        super().__init__(**params)
        self.settings = settings or LabSettings()
        self.url_errors: list[str] = []
        if query:
            good, self.url_errors = validate_query(query)
            self.settings.param.update(**good)
        self.store = LabStore()
        self.target_view = TargetView(self.store)
        self.marginal_views = [MarginalView(self.store, 0), MarginalView(self.store, 1)]
        self.trace_view = TraceView(self.store)
        self.schedule_view = ScheduleView(self.store)
        self.run: LabRun | None = None
        self.playing = False
        self.learned: TrainingResult | None = None
        self.score_source = "exact"
        self._busy = False
        self._warm_thread: threading.Thread | None = None
        self._train_thread: threading.Thread | None = None
        self._train_state: dict[str, Any] = {}
        self._cancel = threading.Event()
        self._history: deque[np.ndarray] = deque(maxlen=HISTOGRAM_FRAMES)
        self._drawn_sigma: float | None = None
        self._frames = 0
        self._level_cache: OrderedDict[tuple, Any] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._callback: Any = None
        self._fps_times: deque[float] = deque(maxlen=20)
        self.train_steps = TRAIN_STEPS
        self._text_at = 0.0
        self._last_energy: float | None = None
        self._build_widgets()
        self._layout = self._build_layout()
        # The URL is written by the page itself (history.replaceState from a hidden widget's JS callback) rather than
        # by Panel's Location, which the dashboard's server turns off (it fails on hostile query values); the query
        # is read from the raw request arguments and checked key by key (validate_query).
        self.sync_url = bool(sync_url)
        self._url_written = False
        self.settings.param.watch(self._write_url, list(URL_KEYS))  # first, so the URL follows before a slow reset
        self.settings.param.watch(self._on_setting, list(URL_KEYS))
        self.reset()

    # ------------------------------------------------------------------ layout
    def _build_widgets(self) -> None:
        s = self.settings
        self.controls = pn.Param(
            s, parameters=["target", "sampler", "step_size", "leapfrog_steps", "num_chains", "schedule", "sigma_max",
                           "sigma_min", "num_levels", "steps_per_level", "speed", "seed", "highlight", "show_field",
                           "teaching"],
            widgets={
                "step_size": {"type": pn.widgets.FloatInput, "step": 0.05},
                "sigma_max": {"type": pn.widgets.FloatInput, "step": 0.1},
                "sigma_min": {"type": pn.widgets.FloatInput, "step": 0.01},
                "num_chains": {"type": pn.widgets.IntInput, "step": 50},
                "num_levels": pn.widgets.IntInput, "steps_per_level": pn.widgets.IntInput, "seed": pn.widgets.IntInput,
                "highlight": pn.widgets.IntInput, "leapfrog_steps": pn.widgets.IntInput,
            },
            show_name=False, width=270,
        )
        self.step_button = pn.widgets.Button(label="Step", color="default", width=60)
        self.play_button = pn.widgets.Button(label="Play", color="success", width=60)
        self.pause_button = pn.widgets.Button(label="Pause", color="warning", width=60)
        self.reset_button = pn.widgets.Button(label="Reset", color="default", width=60)
        self.train_button = pn.widgets.Button(label="Train", color="primary", width=90)
        self.score_select = pn.widgets.RadioButtonGroup(label="score", options=["exact", "learned"], value="exact",
                                                         disabled=True, width=160)
        self.progress = pn.indicators.Progress(value=0, max=100, visible=False, width=250, css_classes=["lab-progress"])
        self.step_button.on_click(lambda event: self.step())
        self.play_button.on_click(lambda event: self.play())
        self.pause_button.on_click(lambda event: self.pause())
        self.reset_button.on_click(lambda event: self.reset())
        self.train_button.on_click(lambda event: self.train())
        self.score_select.param.watch(self._on_score_choice, "value")
        self.status = pn.pane.Markdown("", css_classes=["lab-status"], width=560)
        self.stats = pn.pane.Markdown("", css_classes=["lab-stats"], width=330)
        self.learned_text = pn.pane.Markdown("", css_classes=["lab-learned"], width=260)
        self._url_writer = pn.widgets.TextInput(value="", visible=False, css_classes=["lab-url-writer"])
        self._url_writer.jscallback(value=_REPLACE_STATE_JS)
        self.messages = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["lab-url-errors"], width=560)
        self._show_url_errors()

    def _teach(self, key: str, width: int = 330) -> pn.pane.Markdown:
        pane = pn.pane.Markdown(teaching.TEXTS[key], css_classes=["lab-teaching"], width=width,
                                styles={"font-size": "0.9em", "color": "#444"})
        pane.visible = self.settings.teaching
        self._teaching_panes.append(pane)
        return pane

    def _build_layout(self) -> pn.viewable.Viewable:
        self._teaching_panes: list[pn.pane.Markdown] = []
        player = pn.Row(self.step_button, self.play_button, self.pause_button, self.reset_button)
        left = pn.Column(
            pn.pane.Markdown("### 2-D lab", margin=(0, 10)), player, self.controls, self._teach("samplers", 270),
            pn.pane.Markdown("**Learned score**", margin=(0, 10)), pn.Row(self.train_button, self.score_select),
            self.progress, self.learned_text, self._teach("learned", 270), width=320,
        )
        centre = pn.Column(self.messages, self.status, pn.Column(pn.pane.Bokeh(self.target_view.figure), css_classes=["lab-target"]),
                           self._teach("target", 560), self._teach("trajectory", 560))
        right = pn.Column(
            self.stats,
            pn.pane.Bokeh(self.marginal_views[0].figure, css_classes=["lab-marginal"]),
            pn.pane.Bokeh(self.marginal_views[1].figure, css_classes=["lab-marginal"]), self._teach("marginals"),
            pn.pane.Bokeh(self.trace_view.acceptance_figure), pn.pane.Bokeh(self.trace_view.energy_figure),
            self._teach("diagnostics"),
            pn.pane.Bokeh(self.schedule_view.figure), self._teach("schedule"),
        )
        return pn.Row(left, centre, right, self._url_writer, css_classes=["kappascope-lab"])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ------------------------------------------------------------------ session lifecycle
    def start(self, period_ms: int = PERIOD_MS) -> None:
        """Start the session's periodic callback (call once the app is in a document)."""
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.tick, period=period_ms)
            try:
                pn.state.on_session_destroyed(lambda context: self.close())
            except Exception:  # pragma: no cover - not in a server session (notebook)
                pass

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the page's work: training and precomputation see the cancel flag and return. ``wait_s`` > 0 also
        waits (at most that long each) for the worker threads, e.g. before the process exits: a TensorFlow thread
        killed mid-compile at interpreter exit aborts the process. The server's session-end callback does not wait."""
        self._cancel.set()
        self.playing = False
        if wait_s > 0:
            for thread in (self._warm_thread, self._train_thread):
                if thread is not None:
                    thread.join(wait_s)
        if self._callback is not None:
            try:
                self._callback.stop()
            except Exception:  # pragma: no cover
                pass
            self._callback = None

    # ------------------------------------------------------------------ messages
    def _show_url_errors(self) -> None:
        if self.url_errors:
            items = "\n".join(f"- {e}" for e in self.url_errors)
            self.messages.object = f"**Some settings in the link were not applied:**\n{items}"
            self.messages.visible = True
        else:
            self.messages.visible = False

    def url_query(self) -> str:
        """The settings as a URL query string (every key of :data:`URL_KEYS`)."""
        values = {}
        for key in URL_KEYS:
            value = getattr(self.settings, key)
            values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return urlencode(values)

    def _write_url(self, *events: Any) -> None:
        if self.sync_url:
            self._url_writer.value = self.url_query()

    def _set_status(self, text: str) -> None:
        self.status.object = text

    # ------------------------------------------------------------------ settings
    def _on_setting(self, *events: Any) -> None:
        names = {e.name for e in events}
        if "teaching" in names:
            for pane in self._teaching_panes:
                pane.visible = self.settings.teaching
        if "show_field" in names:
            self._drawn_sigma = None
            self._update_level_views(self._current_sigma())
        if "step_size" in names and self.run is not None and not names & set(RESTART_KEYS):
            try:
                self.run.set_step_size(self.settings.step_size)
            except ValueError:  # a diffusion or adapting run: start again with the new step size
                self.reset()
        if "target" in names:
            self.learned = None
            self.score_source = "exact"
            self.score_select.param.update(value="exact", disabled=True)
            self.learned_text.object = ""
        if names & set(RESTART_KEYS):
            self.reset()

    def _on_score_choice(self, event: Any) -> None:
        if event.new == self.score_source:
            return
        if event.new == "learned" and self.learned is None:
            self.score_select.value = "exact"
            return
        self.score_source = event.new
        self.reset()

    def _schedule(self) -> Any:
        s = self.settings
        return from_name(s.schedule, sigma_max=s.sigma_max, sigma_min=s.sigma_min, num_levels=s.num_levels,
                         steps_per_level=s.steps_per_level)

    def _current_sigma(self) -> float:
        return self.run.current_frame().sigma if self.run is not None else self.settings.sigma_max

    # ------------------------------------------------------------------ the run
    def reset(self) -> None:
        """A new run from the current settings (chains back to σ_max noise)."""
        s = self.settings
        try:
            s.check()
            schedule = self._schedule()
            target = make_target(s.target)
            model = self.learned.model if (self.score_source == "learned" and self.learned is not None) else None
            self.run = LabRun(target, s.sampler, schedule, num_chains=s.num_chains, step_size=s.step_size,
                              num_leapfrog_steps=s.leapfrog_steps, seed=s.seed, score_model=model,
                              highlight=s.highlight, compiled_target=COMPILED_TARGET)
        except ValueError as err:
            self.playing = False
            self._set_status(f"⚠ Not started: {err}")
            return
        self._history.clear()
        self._frames = 0
        self._last_energy = None
        self._drawn_sigma = None
        self.store.extent = (target.extent.x_min, target.extent.x_max, target.extent.y_min, target.extent.y_max)
        self.store.schedule = (schedule.sigmas, schedule.steps_per_level)
        self.store.traces = {"reset": True}
        frame = self.run.current_frame()
        self._update_level_views(frame.sigma)
        self.store.frame = frame
        self._update_marginals(frame)
        self._update_stats(frame)
        self._warm(self.run)

    def _warm(self, run: LabRun) -> None:
        """On a worker thread: trace/compile the run's kernel (then the run is ready), then precompute the
        density, score field, exact marginals and reference samples of every level of the schedule."""
        ready = threading.Event()
        name, sigmas = self.settings.target, [float(v) for v in run.schedule.sigmas]

        def work() -> None:
            try:
                run.warm()
            except Exception as err:  # noqa: BLE001 - shown in the page
                logger.exception("lab warm-up failed")
                self._train_state.setdefault("warm_error", str(err))
            finally:
                ready.set()
            try:
                for level, sigma in enumerate(sigmas):
                    if self._cancel.is_set() or self.run is not run:
                        return
                    self._level_data(name, sigma)
                    self._reference(name, level, sigma)
            except Exception:  # noqa: BLE001 - only a cache; the event loop computes what is missing
                logger.exception("lab precomputation failed")

        self._set_status("Compiling the sampler (TensorFlow traces the kernel once)…")
        self._ready = ready
        self._warm_thread = threading.Thread(target=work, name="kappascope-lab-warm", daemon=True)
        self._warm_thread.start()

    _ready: threading.Event | None = None

    @property
    def ready(self) -> bool:
        return self.run is not None and (self._ready is None or self._ready.is_set())

    def play(self) -> None:
        self.playing = True
        self.start()

    def pause(self) -> None:
        self.playing = False
        if self.run is not None:
            self._update_stats(self.run.current_frame(), self._last_energy)
        self._update_status()

    def step(self) -> None:
        """One frame (``speed`` transitions) by hand."""
        if self.run is None:
            return
        if self._ready is not None:
            self._ready.wait()
        try:
            self.advance(self.settings.speed)
        except Exception as err:  # noqa: BLE001 - shown in the page
            logger.exception("lab step failed")
            self._set_status(f"⚠ The sampler stopped: {type(err).__name__}: {err}")

    def tick(self) -> None:
        """The session callback: poll training; while playing, advance one frame."""
        self._poll_training()
        if not self._url_written:  # the first write after the page is in the browser (fires the JS callback)
            self._url_written = True
            self._write_url()
        if self._ready is not None and self._ready.is_set():
            self._ready = None
            error = self._train_state.pop("warm_error", None)
            if error:
                self._set_status(f"⚠ The sampler could not be compiled: {error}")
            else:
                self._update_status()
        if not self.playing or self._busy:
            return
        if not self.ready:
            self._set_status("Compiling the sampler (TensorFlow traces the kernel once)…")
            return
        try:
            self.advance(self.settings.speed)
        except Exception as err:  # noqa: BLE001 - never let the callback die silently
            logger.exception("lab frame failed")
            self.playing = False
            self._set_status(f"⚠ The sampler stopped: {type(err).__name__}: {err}")

    def advance(self, num_transitions: int) -> LabFrame:
        """Compute one frame and update every view (the path the benchmark times)."""
        assert self.run is not None
        self._busy = True
        try:
            frame = self.run.advance(num_transitions)
            if not np.all(np.isfinite(frame.positions)):
                raise FloatingPointError(f"non-finite chains at σ = {frame.sigma:.3g}; lower the step size and reset")
            self._frames += 1
            self._fps_times.append(time.perf_counter())
            if self._drawn_sigma is None or abs(frame.sigma - self._drawn_sigma) > 1e-9 * max(frame.sigma, 1e-9):
                self._history.clear()
                self._update_level_views(frame.sigma)
            self._history.append(frame.positions)
            self.store.frame = frame
            self._update_marginals(frame)
            traces: dict[str, Any] = {"step": frame.step, "acceptance": frame.acceptance}
            if self._frames % ENERGY_EVERY == 1 or frame.step <= num_transitions:
                traces["energy"] = self._energy(frame)
            self.store.traces = traces
            if "energy" in traces:
                self._last_energy = traces["energy"]
            now = time.monotonic()
            if not self.playing or now - self._text_at >= TEXT_EVERY_S:  # Markdown panes are costly: ~3 per second
                self._text_at = now
                self._update_stats(frame, self._last_energy)
                self._update_status()
            return frame
        finally:
            self._busy = False

    # ------------------------------------------------------------------ derived views
    def _cached(self, key: tuple, compute: Any) -> Any:
        """``compute()`` memoised by ``key`` (used from the event loop and the warm-up thread)."""
        with self._cache_lock:
            if key in self._level_cache:
                return self._level_cache[key]
        value = compute()
        with self._cache_lock:
            self._level_cache[key] = value
            while len(self._level_cache) > 400:
                self._level_cache.popitem(last=False)
        return value

    def _update_level_views(self, sigma: float) -> None:
        """Density image, score field and exact marginals of π_σ (recomputed only when σ changes)."""
        target = make_target(self.settings.target)
        name = self.settings.target
        density, pts, exact, marginals = self._level_data(name, sigma)
        self.store.density = density
        if self.settings.show_field:
            e = target.extent
            length = 0.8 * (e.x_max - e.x_min) / FIELD_GRID
            field = {"exact": arrow_columns(pts, exact, length)}
            if self.score_source == "learned" and self.learned is not None:
                learned = self.learned.model(pts, tf.constant(sigma, tf.float32)).numpy()
                field["learned"] = arrow_columns(pts, learned, length)
                level = self.run.current_frame().level if self.run is not None else 0
                err = self._cached(("learned_error", name, sigma, id(self.learned.model)), lambda: score_error(
                    target, self.learned.model, sigma, samples=self._reference(name, level, sigma)))
                self.learned_text.object = (f"Learned vs exact score at σ = {sigma:.3g}: relative squared error "
                                            f"**{err:.3f}** (orange arrows: learned, white: exact)")
            self.store.field = field
        else:
            self.store.field = {}
        self._marginal_exact = marginals
        self._drawn_sigma = sigma

    def _level_data(self, name: str, sigma: float) -> tuple[Any, np.ndarray, np.ndarray, dict[int, Any]]:
        """``(density grid, field points, exact score there, exact marginals)`` of π_σ, cached (thread-safe enough:
        a value is computed at most twice and stored whole)."""
        def compute() -> tuple[Any, np.ndarray, np.ndarray, dict[int, Any]]:
            target = make_target(name)
            e = target.extent
            gx, gy = np.meshgrid(np.linspace(e.x_min, e.x_max, FIELD_GRID + 2)[1:-1],
                                 np.linspace(e.y_min, e.y_max, FIELD_GRID + 2)[1:-1])
            pts = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
            return (target.density_grid(sigma, DENSITY_GRID), pts, target.graph_score(pts, sigma).numpy(),
                    {axis: self._exact_marginal(target, axis, sigma) for axis in (0, 1)})

        return self._cached(("level", name, sigma), compute)

    def _reference(self, name: str, level: int, sigma: float) -> np.ndarray:
        """Exact samples of π_σ for the energy distance (fixed seed per level)."""
        return self._cached(("reference", name, sigma),
                            lambda: make_target(name).graph_sample(NUM_REFERENCE, [12345, level], sigma).numpy())

    @staticmethod
    def _exact_marginal(target: Any, axis: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        e = target.extent
        lo, hi = (e.x_min, e.x_max) if axis == 0 else (e.y_min, e.y_max)
        grid = np.linspace(lo, hi, 200)
        return grid, target.marginal_pdf(grid, axis, sigma)

    def _update_marginals(self, frame: LabFrame) -> None:
        samples = np.concatenate(list(self._history) or [frame.positions])
        target = make_target(self.settings.target)
        out = {}
        for axis in (0, 1):
            grid, pdf = self._marginal_exact[axis]
            edges = np.linspace(grid[0], grid[-1], 41)
            counts, _ = np.histogram(samples[:, axis], edges)
            heights = counts / max(len(samples), 1) / np.diff(edges)
            out[axis] = (edges, heights, grid, pdf)
        del target
        self.store.marginals = out

    def _energy(self, frame: LabFrame) -> float:
        reference = self._reference(self.settings.target, frame.level, frame.sigma)
        chains = frame.positions[:NUM_REFERENCE]
        return energy_distance(chains, reference)

    def _update_stats(self, frame: LabFrame, energy: float | None = None) -> None:
        acc = "–" if not np.isfinite(frame.acceptance) else f"{frame.acceptance:.2f}"
        line = (f"**transition {frame.step}** · level {frame.level + 1}/{frame.num_levels} · σ = {frame.sigma:.3g} · "
                f"acceptance {acc}")
        if energy is not None:
            line += f" · energy distance {energy:.3f}"
        self.stats.object = line

    def _update_status(self) -> None:
        run = self.run
        if run is None:
            return
        frame = run.current_frame()
        state = "playing" if self.playing else "paused"
        phase = "annealing" if frame.step < frame.total_steps else f"sampling at σ_min (annealing done after {frame.total_steps})"
        fps = ""
        if self.playing and len(self._fps_times) > 2:
            span = self._fps_times[-1] - self._fps_times[0]
            if span > 0:
                fps = f" · {(len(self._fps_times) - 1) / span:.0f} frames/s"
        score = "learned score" if run.score_model is not None else "exact score"
        self._set_status(f"{state.capitalize()} · {run.sampler} with the {score} · {phase}{fps}")

    # ------------------------------------------------------------------ learned score
    def train(self) -> None:
        """Fit the MLP score on the current target (worker thread); sample with it when done."""
        if self._train_thread is not None and self._train_thread.is_alive():
            return
        target = make_target(self.settings.target)
        state: dict[str, Any] = {"fraction": 0.0, "loss": float("nan"), "result": None, "error": None,
                                 "target": self.settings.target, "started": time.perf_counter()}
        self._train_state = state
        sigma_min = max(self.settings.sigma_min, 0.02)
        sigma_max = max(self.settings.sigma_max, sigma_min * 2)

        def work() -> None:
            try:
                state["result"] = train_score_model(
                    target, sigma_min=sigma_min, sigma_max=sigma_max, num_steps=self.train_steps, seed=self.settings.seed,
                    progress=lambda f, loss: state.update(fraction=f, loss=loss), cancel=self._cancel.is_set)
            except Exception as err:  # noqa: BLE001 - shown in the page
                logger.exception("lab training failed")
                state["error"] = f"{type(err).__name__}: {err}"

        self.progress.param.update(value=0, visible=True)
        self.train_button.disabled = True
        self.learned_text.object = "Training the MLP score by denoising score matching…"
        self._train_thread = threading.Thread(target=work, name="kappascope-lab-train", daemon=True)
        self._train_thread.start()
        self.start()

    def _poll_training(self) -> None:
        state = self._train_state
        if not state or state.get("polled"):
            return
        self.progress.value = int(100 * state["fraction"])
        if np.isfinite(state["loss"]):
            self.learned_text.object = f"Training… {100 * state['fraction']:.0f} % · DSM loss {state['loss']:.3f}"
        if self._train_thread is not None and self._train_thread.is_alive():
            return
        state["polled"] = True
        self.train_button.disabled = False
        self.progress.visible = False
        if state["error"]:
            self.learned_text.object = f"⚠ Training failed: {state['error']}"
            return
        result = state["result"]
        if result is None or state["target"] != self.settings.target:
            self.learned_text.object = "Training was cancelled (the target changed)."
            return
        self.learned = result
        self.learned_text.object = f"Trained in {result.seconds:.1f} s ({result.steps} steps). Sampling with it."
        self.score_source = "learned"
        self.score_select.param.update(disabled=False, value="learned")
        self.reset()
        self.playing = True


def create_lab(query: Mapping[str, Any] | None = None) -> LabApp:
    """A fresh lab; when served, the URL query sets (and then follows) the settings."""
    served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
    if query is None and served:
        query = {k: v for k, v in (pn.state.session_args or {}).items()}
    return LabApp(query=query, sync_url=served)


def lab_page() -> pn.viewable.Viewable:
    """The served lab page (one app per session, its callback started)."""
    app = create_lab()
    app.start()
    return pn.Column(app, sizing_mode="stretch_width")
