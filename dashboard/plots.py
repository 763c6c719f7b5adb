r"""Bokeh plots of a run, built once per session and updated IN PLACE (new data in the same data sources).

Nothing is rebuilt while a run goes: each frame replaces ``ColumnDataSource.data`` and colour-mapper limits, so
the browser patches glyphs instead of re-creating figures and legends (no "cannot find a view" page errors, no
Bokeh validation warnings per frame). Every figure has an explicit width and height.

Maps are drawn in pixel coordinates, ``x`` = column (x₁) and ``y`` = row (x₂), pixel centres at integers (images
span ``[−½, N−½]``), so shapes drawn on the observed-shear view are already in the coordinates that
``core.data.observation.mask_from_polygons`` rasterises. All convergence maps share one symmetric colour range
``[−a, a]`` and one pair of axis ranges (zoom and pan are linked). Derived quantities:

* significance ``S = ⟨κ⟩ / std(κ)`` over the chains,
* shear whiskers at orientation ``φ = ½ atan2(γ₂, γ₁)`` with length ∝ ``|γ|``,
* binned power spectra of the chains, the truth and the theory (``core.physics.power_spectrum``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from bokeh.models import (BoxEditTool, ColorBar, ColumnDataSource, HoverTool, Legend, LegendItem, LinearColorMapper,
                          PolyDrawTool, PolyEditTool, Range1d)
from bokeh.plotting import figure

__all__ = ["ImagePlot", "MapPlots", "MosaicPlot", "SpectrumPlot", "TracePlots", "SchedulePlot", "ImagePair",
           "tile_chains", "significance_map", "shear_segments", "palette"]

MAP_SIZE = 230
TRACE_KEYS_MAX = 4
#: Largest side (pixels) of an image sent to the browser; bigger maps are block-averaged for display only.
DISPLAY_MAX = 128
#: Largest side of one chain's tile in the mosaic, and the most chains tiled.
TILE_MAX, MOSAIC_CHAINS = 64, 16


def palette(name: str, n: int = 256) -> list[str]:
    """``n`` hex colours of a matplotlib colour map."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[name]
    return [to_hex(cmap(i / (n - 1))) for i in range(n)]


def significance_map(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``mean / std`` with 0 where the std vanishes."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    out = np.zeros_like(mean)
    np.divide(mean, std, out=out, where=std > 0)
    return out.astype(np.float32)


def tile_chains(chains: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile chains ``(C, N, N)`` into one mosaic image with NaN (transparent) one-pixel gutters.

    Chain ``c`` goes to tile row ``c // columns`` counted from the top.
    """
    chains = np.asarray(chains, np.float32)
    if chains.ndim != 3:
        raise ValueError(f"chains must have shape (C, N, N), got {chains.shape}")
    num, n_rows, n_cols = chains.shape
    columns = columns or (int(math.ceil(math.sqrt(num * 2))) if num > 2 else num)
    columns = max(1, min(columns, num))
    rows = int(math.ceil(num / columns))
    out = np.full((rows * (n_rows + 1) - 1, columns * (n_cols + 1) - 1), np.nan, np.float32)
    for c in range(num):
        r, q = divmod(c, columns)
        top = (rows - 1 - r) * (n_rows + 1)  # image rows grow upwards (y), so the first chain is on top
        out[top:top + n_rows, q * (n_cols + 1):q * (n_cols + 1) + n_cols] = chains[c]
    return out


def shear_segments(shear: np.ndarray, mask: np.ndarray, per_side: int = 12) -> dict[str, np.ndarray]:
    """Headless whiskers of the shear ``(2, N, N)`` on a decimated grid of observed pixels (segment end points)."""
    n = shear.shape[-1]
    step = max(1, n // per_side)
    idx = np.arange(step // 2, n, step)
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    g1, g2 = shear[0][yy, xx], shear[1][yy, xx]
    keep = mask[yy, xx] > 0
    angle = 0.5 * np.arctan2(g2, g1)
    magnitude = np.hypot(g1, g2)
    top = float(magnitude[keep].max()) if keep.any() and magnitude[keep].max() > 0 else 1.0
    half = 0.45 * step * magnitude / top
    dx, dy = half * np.cos(angle), half * np.sin(angle)
    x, y = xx.astype(float), yy.astype(float)
    return {"x0": (x - dx)[keep], "y0": (y - dy)[keep], "x1": (x + dx)[keep], "y1": (y + dy)[keep]}


def downsample(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Block means (``nanmean`` over ``f × f`` blocks, ``f = ⌈side / max_side⌉``) of the last two axes, for display."""
    arr = np.asarray(arr, np.float32)
    n_rows, n_cols = arr.shape[-2:]
    factor = int(math.ceil(max(n_rows, n_cols) / max_side))
    if factor <= 1:
        return arr
    rows, cols = n_rows // factor * factor, n_cols // factor * factor
    blocks = arr[..., :rows, :cols].reshape(arr.shape[:-2] + (rows // factor, factor, cols // factor, factor))
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0.0).sum(axis=(-3, -1))
    count = finite.sum(axis=(-3, -1))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def _image_data(arr: np.ndarray, max_side: int = DISPLAY_MAX) -> dict[str, list]:
    """Image source data: pixel-unit extent ``[−½, N−½]`` whatever the (downsampled) resolution sent."""
    arr = np.asarray(arr, np.float32)
    n_rows, n_cols = arr.shape
    return {"image": [downsample(arr, max_side)], "x": [-0.5], "y": [-0.5], "dw": [n_cols], "dh": [n_rows]}


def _finite_limits(arr: np.ndarray, symmetric: bool, percentile: float = 99.0) -> tuple[float, float]:
    finite = np.asarray(arr, np.float64)[np.isfinite(arr)]
    if not finite.size:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    if symmetric:
        half = float(np.percentile(np.abs(finite), percentile)) or 1e-3
        return -half, half
    top = float(finite.max())
    return 0.0, top if top > 0 else 1.0


class ImagePlot:
    """One image figure (colour bar, hover) whose data and colour limits are replaced in place."""

    def __init__(self, title: str, cmap: str = "RdBu_r", x_range: Range1d | None = None, y_range: Range1d | None = None,
                 width: int = MAP_SIZE + 70, height: int = MAP_SIZE + 30, nan_color: str = "#dddddd",
                 css_name: str = "", tools: str = "pan,wheel_zoom,box_zoom,reset") -> None:
        self.x_range = x_range or Range1d(-0.5, 15.5)
        self.y_range = y_range or Range1d(-0.5, 15.5)
        self.source = ColumnDataSource(_image_data(np.zeros((16, 16), np.float32)))
        self.mapper = LinearColorMapper(palette=palette(cmap), low=-1.0, high=1.0, nan_color=nan_color)
        self.figure = figure(title=title, width=width, height=height, x_range=self.x_range, y_range=self.y_range,
                             tools=tools, toolbar_location="above", name=css_name,
                             css_classes=[css_name] if css_name else [])
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source, color_mapper=self.mapper)
        self.figure.add_tools(HoverTool(tooltips=[("x", "$x{0}"), ("y", "$y{0}"), ("value", "@image{0.0000}")]))
        self.figure.add_layout(ColorBar(color_mapper=self.mapper, width=10), "right")
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self.updates = 0

    def show(self, arr: np.ndarray, clim: tuple[float, float] | None = None, max_side: int = DISPLAY_MAX) -> None:
        arr = np.asarray(arr, np.float32)
        self.source.data = _image_data(arr, max_side)
        if clim is not None:
            low, high = float(clim[0]), float(clim[1])
            if not (math.isfinite(low) and math.isfinite(high) and high > low):
                low, high = -1.0, 1.0
            self.mapper.update(low=low, high=high)
        self.updates += 1

    def fit_ranges(self, n_rows: int, n_cols: int) -> None:
        if (self.x_range.start, self.x_range.end, self.y_range.start, self.y_range.end) != (
                -0.5, n_cols - 0.5, -0.5, n_rows - 0.5):
            self.x_range.update(start=-0.5, end=n_cols - 0.5)
            self.y_range.update(start=-0.5, end=n_rows - 0.5)


class MapPlots:
    """Truth, observed shear (+ whiskers, mask editor), Kaiser–Squires, Wiener, posterior mean, std, significance."""

    KAPPA_MAPS = ("truth", "kaiser_squires", "wiener", "mean")
    TITLES = {
        "truth": "Truth κ (simulated)",
        "shear": "Observed γ₁ + whiskers (draw mask here)",
        "kaiser_squires": "Kaiser–Squires κ_E",
        "wiener": "Wiener filter",
        "mean": "Posterior mean (chains)",
        "std": "Posterior std",
        "significance": "Significance mean/std",
    }
    ORDER = ("truth", "shear", "kaiser_squires", "wiener", "mean", "std", "significance")

    def __init__(self) -> None:
        self.x_range, self.y_range = Range1d(-0.5, 15.5), Range1d(-0.5, 15.5)
        self.clim: tuple[float, float] = (-0.05, 0.05)
        self.images = {name: ImagePlot(self.TITLES[name], "viridis" if name == "std" else "RdBu_r", self.x_range,
                                       self.y_range, css_name=f"ks-map-{name}") for name in self.ORDER}
        shear_fig = self.images["shear"].figure
        self.whiskers = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []})
        shear_fig.segment("x0", "y0", "x1", "y1", source=self.whiskers, color="#333333", line_width=1.5, alpha=0.8)
        self.boxes = ColumnDataSource({"x": [], "y": [], "width": [], "height": []})
        self.polygons = ColumnDataSource({"xs": [], "ys": []})
        box_renderer = shear_fig.rect("x", "y", "width", "height", source=self.boxes, fill_alpha=0.25,
                                      fill_color="black", line_color="black")
        poly_renderer = shear_fig.patches("xs", "ys", source=self.polygons, fill_alpha=0.25, fill_color="black",
                                          line_color="black")
        vertex_renderer = shear_fig.scatter([], [], size=6, color="black")
        shear_fig.add_tools(BoxEditTool(renderers=[box_renderer]), PolyDrawTool(renderers=[poly_renderer]),
                            PolyEditTool(renderers=[poly_renderer], vertex_renderer=vertex_renderer))
        self.figures = [self.images[name].figure for name in self.ORDER]

    def show_problem(self, problem: Any) -> None:
        self.clim = tuple(problem.kappa_range)
        mask = np.asarray(problem.mask)
        n_rows, n_cols = mask.shape
        self.images["truth"].fit_ranges(n_rows, n_cols)
        nan_mask = np.where(mask > 0, 1.0, np.nan).astype(np.float32)
        truth = problem.truth if problem.truth is not None else np.full(mask.shape, np.nan, np.float32)
        shear = np.asarray(problem.shear)
        self.images["truth"].show(truth, self.clim)
        self.images["shear"].show(shear[0] * nan_mask, _finite_limits(shear[0][mask > 0], symmetric=True))
        self.whiskers.data = shear_segments(shear, mask)
        self.images["kaiser_squires"].show(problem.kaiser_squires, self.clim)
        self.images["wiener"].show(problem.wiener, self.clim)
        blank = np.zeros(mask.shape, np.float32)
        self.images["mean"].show(blank, self.clim)
        self.images["std"].show(blank, (0.0, 1.0))
        self.images["significance"].show(blank, (-4.0, 4.0))

    def show_snapshot(self, snapshot: Any) -> None:
        mean = np.asarray(snapshot.mean, np.float32)
        std = np.asarray(snapshot.std, np.float32)
        self.images["mean"].show(mean, self.clim)
        self.images["std"].show(std, _finite_limits(std, symmetric=False))
        self.images["significance"].show(significance_map(mean, std), (-4.0, 4.0))

    def drawn_shapes(self) -> tuple[dict, dict]:
        """Drawn rectangles as a BoxEdit-style ``{x0, y0, x1, y1}`` dict and polygons as ``{xs, ys}`` (pixel units)."""
        b = self.boxes.data
        boxes = {"x0": [], "y0": [], "x1": [], "y1": []}
        for x, y, w, h in zip(b.get("x", []), b.get("y", []), b.get("width", []), b.get("height", [])):
            boxes["x0"].append(float(x) - abs(float(w)) / 2)
            boxes["x1"].append(float(x) + abs(float(w)) / 2)
            boxes["y0"].append(float(y) - abs(float(h)) / 2)
            boxes["y1"].append(float(y) + abs(float(h)) / 2)
        p = self.polygons.data
        polygons = {"xs": [list(map(float, xs)) for xs in p.get("xs", [])],
                    "ys": [list(map(float, ys)) for ys in p.get("ys", [])]}
        return boxes, polygons

    def clear_shapes(self) -> None:
        self.boxes.data = {"x": [], "y": [], "width": [], "height": []}
        self.polygons.data = {"xs": [], "ys": []}


class MosaicPlot:
    """One image tiling the current state of every chain (same colour scale as the κ maps)."""

    def __init__(self) -> None:
        self.image = ImagePlot("Chains (current states)", width=2 * MAP_SIZE + 110, height=MAP_SIZE + 30,
                               nan_color="#ffffff", css_name="ks-chains")
        self.figure = self.image.figure

    def show(self, chains: np.ndarray, clim: tuple[float, float]) -> None:
        """The first ``MOSAIC_CHAINS`` chains, each block-averaged to at most ``TILE_MAX`` pixels a side."""
        mosaic = tile_chains(downsample(np.asarray(chains)[:MOSAIC_CHAINS], TILE_MAX))
        self.image.fit_ranges(*mosaic.shape)
        self.image.show(mosaic, clim, max_side=max(mosaic.shape))


class SpectrumPlot:
    """Binned power of the chains (thin lines) against the theory and the truth, on log–log axes."""

    def __init__(self) -> None:
        self.figure = figure(title="Power spectrum: chains vs theory vs truth", width=420, height=300,
                             x_axis_type="log", y_axis_type="log", x_axis_label="ℓ", y_axis_label="P (per-pixel units)",
                             tools="pan,wheel_zoom,reset", x_range=Range1d(10, 1e5), y_range=Range1d(1e-8, 1e-2))
        self.chains = ColumnDataSource({"xs": [], "ys": []})
        self.theory = ColumnDataSource({"x": [], "y": []})
        self.truth = ColumnDataSource({"x": [], "y": []})
        chains = self.figure.multi_line("xs", "ys", source=self.chains, color="#1f77b4", alpha=0.4, line_width=1)
        theory = self.figure.line("x", "y", source=self.theory, color="black", line_width=2)
        truth = self.figure.line("x", "y", source=self.truth, color="#d62728", line_dash="dashed", line_width=2)
        self.figure.add_layout(Legend(items=[LegendItem(label="chains", renderers=[chains]),
                                             LegendItem(label="theory", renderers=[theory]),
                                             LegendItem(label="truth", renderers=[truth])],
                                      location="bottom_left"))

    def show(self, ell: np.ndarray, theory: np.ndarray, truth: np.ndarray | None, chains: np.ndarray | None) -> None:
        ell, theory = np.asarray(ell, np.float64), np.asarray(theory, np.float64)
        good = np.isfinite(theory) & (theory > 0) & np.isfinite(ell) & (ell > 0)
        x = ell[good]
        self.theory.data = {"x": x, "y": theory[good]}
        positive = [theory[good]]
        if truth is not None:
            t = np.asarray(truth, np.float64)[good]
            keep = np.isfinite(t) & (t > 0)
            self.truth.data = {"x": x[keep], "y": t[keep]}
            positive.append(t[keep])
        else:
            self.truth.data = {"x": [], "y": []}
        xs, ys = [], []
        if chains is not None:
            for row in np.asarray(chains, np.float64)[:, good]:
                keep = np.isfinite(row) & (row > 0)
                xs.append(x[keep])
                ys.append(row[keep])
                positive.append(row[keep])
        self.chains.data = {"xs": xs, "ys": ys}
        values = np.concatenate([p for p in positive if p.size]) if any(p.size for p in positive) else np.array([])
        if x.size and values.size:
            self.figure.x_range.update(start=float(x.min()) / 1.2, end=float(x.max()) * 1.2)
            self.figure.y_range.update(start=float(values.min()) / 2, end=float(values.max()) * 2)


class TracePlots:
    """σ (log scale), the acceptance rate (running mean) and a few pixel values per chain, against the transition."""

    def __init__(self) -> None:
        common = dict(width=320, height=190, tools="pan,wheel_zoom,reset", x_axis_label="transition")
        self.sigma_fig = figure(title="Annealing level σ", y_axis_type="log", y_range=Range1d(1e-4, 1.0),
                                x_range=Range1d(0, 1), **common)
        self.acc_fig = figure(title="Acceptance rate (running mean)", y_range=Range1d(0, 1.05),
                              x_range=self.sigma_fig.x_range, **common)
        self.pixel_fig = figure(title="Pixel values (one line per chain)", x_range=self.sigma_fig.x_range, **common)
        self.sigma = ColumnDataSource({"x": [], "y": []})
        self.acc = ColumnDataSource({"x": [], "y": []})
        self.pixels = ColumnDataSource({"xs": [], "ys": [], "color": []})
        self.sigma_fig.line("x", "y", source=self.sigma, line_width=2)
        self.acc_fig.line("x", "y", source=self.acc, line_width=2, color="#2ca02c")
        self.pixel_fig.multi_line("xs", "ys", source=self.pixels, color="color", line_width=1, alpha=0.8)
        self.figures = [self.sigma_fig, self.acc_fig, self.pixel_fig]
        self._colors = palette("tab10", 10)

    def show(self, traces: Mapping[str, Any]) -> None:
        sigma = np.asarray(traces.get("sigma", []), np.float64).ravel()
        step = np.asarray(traces.get("step", np.arange(1, sigma.size + 1)), np.float64).ravel()
        if step.size != sigma.size:
            step = np.arange(1, sigma.size + 1, dtype=np.float64)
        if not sigma.size:
            return
        positive = sigma > 0
        self.sigma.data = {"x": step[positive], "y": sigma[positive]}
        if positive.any():
            self.sigma_fig.y_range.update(start=float(sigma[positive].min()) / 1.5, end=float(sigma[positive].max()) * 1.5)
        self.sigma_fig.x_range.update(start=0.0, end=float(max(step.max(), 1.0)))
        acc = np.asarray(traces.get("acceptance", []), np.float64).ravel()
        if acc.size:
            window = max(1, min(10, acc.size // 20 or 1))
            smooth = np.convolve(acc, np.ones(window) / window, mode="same")
            self.acc.data = {"x": step if acc.size == step.size else np.arange(1, acc.size + 1), "y": smooth}
        xs, ys, colors = [], [], []
        keys = [k for k in traces if k.startswith("kappa[")][:TRACE_KEYS_MAX]
        lows, highs = [], []
        for key in keys:
            arr = np.asarray(traces[key], np.float64)
            arr = arr[:, None] if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)
            x = step if arr.shape[0] == step.size else np.arange(1, arr.shape[0] + 1, dtype=np.float64)
            for j in range(min(arr.shape[1], 4)):
                xs.append(x)
                ys.append(arr[:, j])
                colors.append(self._colors[j % len(self._colors)])
            if arr.size and np.isfinite(arr).any():
                lows.append(np.nanmin(arr))
                highs.append(np.nanmax(arr))
        self.pixels.data = {"xs": xs, "ys": ys, "color": colors}
        if lows:
            pad = 0.05 * (max(highs) - min(lows)) or 1e-3
            self.pixel_fig.y_range.update(start=float(min(lows) - pad), end=float(max(highs) + pad))


class SchedulePlot:
    """The σ of each annealing level against the cumulative transition count (log σ)."""

    def __init__(self) -> None:
        self.figure = figure(title="σ schedule", width=300, height=170, y_axis_type="log", toolbar_location=None,
                             x_range=Range1d(0, 1), y_range=Range1d(1e-4, 1.0), x_axis_label="transition")
        self.source = ColumnDataSource({"x": [], "y": []})
        self.figure.step("x", "y", source=self.source, mode="after", line_width=2)

    def show(self, sigmas: np.ndarray, steps_per_level: int | np.ndarray) -> None:
        sigmas = np.asarray(sigmas, np.float64)
        steps = np.broadcast_to(np.asarray(steps_per_level), sigmas.shape)
        start = np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.float64)
        x, y = np.append(start, float(np.sum(steps))), np.append(sigmas, sigmas[-1])
        self.source.data = {"x": x, "y": y}
        positive = y[y > 0]
        self.figure.x_range.update(start=0.0, end=float(max(x[-1], 1.0)))
        if positive.size:
            self.figure.y_range.update(start=float(positive.min()) / 1.5, end=float(positive.max()) * 1.5)


class ImagePair:
    """Posterior mean and std of one variant of a comparison (e.g. one prior), side by side."""

    def __init__(self, label: str, x_range: Range1d, y_range: Range1d) -> None:
        self.mean = ImagePlot(f"{label}: posterior mean", "RdBu_r", x_range, y_range, css_name="ks-compare-mean")
        self.std = ImagePlot(f"{label}: posterior std", "viridis", x_range, y_range, css_name="ks-compare-std")
        self.figures = [self.mean.figure, self.std.figure]

    def show(self, mean: np.ndarray, std: np.ndarray, clim: tuple[float, float], std_clim: tuple[float, float]) -> None:
        n_rows, n_cols = np.asarray(mean).shape
        self.mean.fit_ranges(n_rows, n_cols)
        self.mean.show(mean, clim)
        self.std.show(std, std_clim)
