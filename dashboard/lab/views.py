"""The lab's views: small Bokeh figures whose ``ColumnDataSource`` s are updated in place, never rebuilt.

Panel's data-store + views pattern: :class:`LabStore` (a ``param.Parameterized``) holds what the run produced —
the latest :class:`~core.lab.sampling.LabFrame`, the σ-smoothed density on a grid, the score field, the sample
histogram buffer and the running traces — and each view watches the store parameters it draws and writes new
columns into its sources. Bokeh then sends only those columns to the browser.

* :class:`TargetView` — density image of ``π_σ`` under the chains (points, a colour per chain), the highlighted
  chain's last leapfrog trajectory (green accepted / red rejected), the score field as arrows (exact in white,
  learned in orange when a learned score is in use);
* :class:`MarginalView` — histograms of the recent samples of one coordinate against the exact marginal;
* :class:`TraceView` — acceptance rate and the energy distance of the chains to ``π_σ``;
* :class:`ScheduleView` — the σ schedule with the current level marked.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import param
from bokeh.models import ColumnDataSource, LinearColorMapper, Range1d
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

__all__ = ["LabStore", "TargetView", "MarginalView", "TraceView", "ScheduleView", "arrow_columns"]

ACCEPT_COLOUR, REJECT_COLOUR = "#2ca02c", "#d62728"


class LabStore(param.Parameterized):
    """What the views draw (set by the app; each view watches the parameters it needs)."""

    frame = param.Parameter(default=None, doc="the latest LabFrame")
    density = param.Parameter(default=None, doc="(xs, ys, density) of π_σ on a grid")
    field = param.Parameter(default=None, doc="dict of arrow columns: exact and (optionally) learned score")
    marginals = param.Parameter(default=None, doc="dict axis -> (edges, counts density, grid, exact pdf)")
    traces = param.Parameter(default=None, doc="dict of new trace points: step, acceptance, energy")
    schedule = param.Parameter(default=None, doc="(sigmas, steps_per_level)")
    extent = param.Parameter(default=None, doc="(x_min, x_max, y_min, y_max)")


def arrow_columns(points: np.ndarray, vectors: np.ndarray, length: float) -> dict[str, np.ndarray]:
    """Arrow columns for ``segment`` + triangle ``scatter`` glyphs: from each point along its vector's direction,
    with a display length ``length · clip(log(1+|v|) / log(1+q₉₀), 0.15, 1)`` (``q₉₀`` the 90th percentile of
    ``|v|``, so a few huge scores near a narrow mode do not flatten the rest) and the tip angle of the marker."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit = np.divide(vectors, norm, out=np.zeros_like(vectors), where=norm > 0)
    scale = np.log1p(norm[:, 0]) / np.log1p(max(float(np.quantile(norm, 0.9)), 1e-9))
    scale = np.clip(scale, 0.15, 1.0)[:, None]
    tips = points + unit * length * scale
    return {
        "x0": points[:, 0], "y0": points[:, 1], "x1": tips[:, 0], "y1": tips[:, 1],
        "angle": np.arctan2(unit[:, 1], unit[:, 0]) - np.pi / 2,
    }


class TargetView:
    """Density image, chains, trajectory and score arrows in one figure."""

    def __init__(self, store: LabStore, size: int = 560) -> None:
        self.store = store
        self.figure = figure(width=size, height=size, match_aspect=True, tools="pan,wheel_zoom,reset,save",
                             toolbar_location="above", title="σ-smoothed target π_σ and the chains", name="lab-target")
        self.figure.x_range = Range1d(-4, 4)
        self.figure.y_range = Range1d(-4, 4)
        self.mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0)
        self.image = ColumnDataSource({"image": [np.zeros((2, 2), np.float32)], "x": [-4.0], "y": [-4.0], "dw": [8.0], "dh": [8.0]})
        self.figure.image("image", source=self.image, x="x", y="y", dw="dw", dh="dh", color_mapper=self.mapper)
        self.exact_field = ColumnDataSource({k: [] for k in ("x0", "y0", "x1", "y1", "angle")})
        self.learned_field = ColumnDataSource({k: [] for k in ("x0", "y0", "x1", "y1", "angle")})
        for source, colour, alpha in ((self.exact_field, "white", 0.55), (self.learned_field, "#ff7f0e", 0.9)):
            self.figure.segment("x0", "y0", "x1", "y1", source=source, line_color=colour, line_alpha=alpha, line_width=1.5)
            self.figure.scatter("x1", "y1", angle="angle", source=source, marker="triangle", size=5,
                                fill_color=colour, line_color=colour, alpha=alpha)
        self.chains = ColumnDataSource({"x": [], "y": [], "colour": []})
        self.figure.scatter("x", "y", source=self.chains, size=4, fill_color="colour", line_color=None, alpha=0.8)
        self.trajectory = ColumnDataSource({"x": [], "y": []})
        self.trajectory_colour = ColumnDataSource({"x": [], "y": [], "colour": []})
        self.trajectory_line = self.figure.line("x", "y", source=self.trajectory, line_width=2.5, line_color=ACCEPT_COLOUR)
        self.figure.scatter("x", "y", source=self.trajectory_colour, size=6, fill_color="colour", line_color="black")
        self.highlight = ColumnDataSource({"x": [], "y": []})
        self.figure.scatter("x", "y", source=self.highlight, size=11, fill_color=None, line_color="white", line_width=2.5)
        self.figure.xaxis.axis_label, self.figure.yaxis.axis_label = "x₁", "x₂"
        self._colours: list[str] | None = None
        store.param.watch(self._on_frame, "frame")
        store.param.watch(self._on_density, "density")
        store.param.watch(self._on_field, "field")
        store.param.watch(self._on_extent, "extent")

    def _on_extent(self, event: Any) -> None:
        x0, x1, y0, y1 = event.new
        self.figure.x_range.update(start=x0, end=x1)
        self.figure.y_range.update(start=y0, end=y1)

    def _on_density(self, event: Any) -> None:
        xs, ys, dens = event.new
        img = (dens / max(float(dens.max()), 1e-30)).astype(np.float32) ** 0.5  # √ keeps low-density tails visible
        self.image.data = {"image": [img], "x": [float(xs[0])], "y": [float(ys[0])],
                           "dw": [float(xs[-1] - xs[0])], "dh": [float(ys[-1] - ys[0])]}

    def _on_field(self, event: Any) -> None:
        field = event.new or {}
        empty = {k: [] for k in ("x0", "y0", "x1", "y1", "angle")}
        self.exact_field.data = field.get("exact", empty)
        self.learned_field.data = field.get("learned", empty)

    def _on_frame(self, event: Any) -> None:
        frame = event.new
        if frame is None:
            return
        pos = frame.positions
        if self._colours is None or len(self._colours) != len(pos):
            self._colours = [Category10_10[i % 10] for i in range(len(pos))]
            self.chains.data = {"x": pos[:, 0], "y": pos[:, 1], "colour": self._colours}
        else:
            self.chains.data.update(x=pos[:, 0], y=pos[:, 1])
        traj = frame.trajectory
        colour = ACCEPT_COLOUR if frame.trajectory_accepted else REJECT_COLOUR
        self.trajectory.data = {"x": traj[:, 0], "y": traj[:, 1]}
        self.trajectory_line.glyph.line_color = colour
        self.trajectory_colour.data = {"x": traj[1:, 0], "y": traj[1:, 1], "colour": [colour] * (len(traj) - 1)}
        h = frame.highlight
        self.highlight.data = {"x": [float(pos[h, 0])], "y": [float(pos[h, 1])]}


class MarginalView:
    """Histogram of recent samples of coordinate ``axis`` vs the exact marginal density of ``π_σ``."""

    def __init__(self, store: LabStore, axis: int, width: int = 330, height: int = 210) -> None:
        self.axis = axis
        name = "x₁" if axis == 0 else "x₂"
        self.figure = figure(width=width, height=height, title=f"marginal of {name}: samples vs exact",
                             toolbar_location=None, name=f"lab-marginal-{axis}")
        self.bars = ColumnDataSource({"left": [], "right": [], "top": []})
        self.exact = ColumnDataSource({"x": [], "y": []})
        self.figure.quad(left="left", right="right", top="top", bottom=0, source=self.bars, fill_alpha=0.5,
                         line_color=None, legend_label="chains")
        self.figure.line("x", "y", source=self.exact, line_color="black", line_width=2, legend_label="exact")
        self.figure.legend.location = "top_left"
        self.figure.legend.label_text_font_size = "8pt"
        store.param.watch(self._on_marginals, "marginals")

    def _on_marginals(self, event: Any) -> None:
        data = (event.new or {}).get(self.axis)
        if data is None:
            return
        edges, heights, grid, pdf = data
        self.bars.data = {"left": edges[:-1], "right": edges[1:], "top": heights}
        if grid is not None:
            self.exact.data = {"x": grid, "y": pdf}


class TraceView:
    """Acceptance rate and energy distance to ``π_σ`` against the transition number (streamed)."""

    def __init__(self, store: LabStore, width: int = 330, height: int = 210, rollover: int = 4000) -> None:
        self.rollover = rollover
        self.acceptance_figure = figure(width=width, height=height, title="acceptance rate", toolbar_location=None,
                                        y_range=(0, 1.05), name="lab-acceptance")
        self.energy_figure = figure(width=width, height=height, title="energy distance to π_σ (exact samples)",
                                    toolbar_location=None, name="lab-energy")
        self.acceptance = ColumnDataSource({"step": [], "value": []})
        self.energy = ColumnDataSource({"step": [], "value": []})
        self.acceptance_figure.line("step", "value", source=self.acceptance, line_width=1.5)
        self.energy_figure.line("step", "value", source=self.energy, line_width=1.5, line_color="#9467bd")
        self.energy_figure.scatter("step", "value", source=self.energy, size=3, color="#9467bd")
        for fig in (self.acceptance_figure, self.energy_figure):
            fig.xaxis.axis_label = "transition"
        store.param.watch(self._on_traces, "traces")

    def clear(self) -> None:
        self.acceptance.data = {"step": [], "value": []}
        self.energy.data = {"step": [], "value": []}

    def _on_traces(self, event: Any) -> None:
        new = event.new
        if not new:
            return
        if new.get("reset"):
            self.clear()
            return
        if "acceptance" in new:
            self.acceptance.stream({"step": [new["step"]], "value": [new["acceptance"]]}, rollover=self.rollover)
        if "energy" in new:
            self.energy.stream({"step": [new["step"]], "value": [new["energy"]]}, rollover=self.rollover)


class ScheduleView:
    """σ per level (log axis) with the current level marked."""

    def __init__(self, store: LabStore, width: int = 330, height: int = 190) -> None:
        self.figure = figure(width=width, height=height, title="σ schedule", y_axis_type="log", toolbar_location=None,
                             name="lab-schedule")
        self.levels = ColumnDataSource({"level": [], "sigma": []})
        self.current = ColumnDataSource({"level": [], "sigma": []})
        self.figure.line("level", "sigma", source=self.levels, line_width=2)
        self.figure.scatter("level", "sigma", source=self.current, size=11, color="#d62728")
        self.figure.xaxis.axis_label, self.figure.yaxis.axis_label = "level", "σ"
        store.param.watch(self._on_schedule, "schedule")
        store.param.watch(self._on_frame, "frame")

    def _on_schedule(self, event: Any) -> None:
        sigmas = np.asarray(event.new[0], dtype=np.float64)
        self.levels.data = {"level": np.arange(len(sigmas)), "sigma": sigmas}

    def _on_frame(self, event: Any) -> None:
        frame = event.new
        if frame is not None:
            self.current.data = {"level": [frame.level], "sigma": [frame.sigma]}
