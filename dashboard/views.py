r"""HoloViews/Panel views of a run, fed frame by frame from the session's periodic callback.

Every map is drawn in pixel coordinates, ``x`` = column (x₁) and ``y`` = row (x₂), pixel centres at
integers, so shapes drawn on the observed-shear view are already in the coordinates that
``core.data.observation.mask_from_polygons`` rasterises. All convergence maps (truth, Kaiser–Squires,
Wiener, chains, posterior mean) share one symmetric colour range ``[−a, a]`` with ``a`` the 99.5th
percentile of ``|κ|`` of the truth (or of the Wiener map for real data); they sit in one HoloViews
layout so zoom and pan are linked. Data reach the plots through ``hv.streams.Pipe`` objects, which
re-render only the element whose data changed.

Derived quantities shown:

* significance ``S = ⟨κ⟩ / std(κ)`` over the chains,
* the shear whiskers at orientation ``φ = ½ atan2(γ₂, γ₁)`` and length ``|γ|``,
* binned power spectra (``core.physics.power_spectrum``) of every chain, of the truth and of the theory
  power map binned over the same annuli.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh backend options without notebook output)
import numpy as np
import panel as pn

__all__ = ["MapViews", "ChainMosaic", "PowerSpectrumView", "TraceView", "schedule_plot", "tile_chains",
           "significance_map", "shear_whiskers"]

KAPPA_CMAP = "RdBu_r"
STD_CMAP = "viridis"
MAP_SIZE = 230


def _grid(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_cols = arr.shape
    return np.arange(n_cols, dtype=np.float32), np.arange(n_rows, dtype=np.float32), np.asarray(arr, np.float32)


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
    columns = columns or int(math.ceil(math.sqrt(num * 2))) if num > 2 else num
    columns = max(1, min(columns, num))
    rows = int(math.ceil(num / columns))
    out = np.full((rows * (n_rows + 1) - 1, columns * (n_cols + 1) - 1), np.nan, np.float32)
    for c in range(num):
        r, q = divmod(c, columns)
        top = (rows - 1 - r) * (n_rows + 1)  # image rows grow upwards (y), so the first chain is on top
        out[top:top + n_rows, q * (n_cols + 1):q * (n_cols + 1) + n_cols] = chains[c]
    return out


def shear_whiskers(shear: np.ndarray, mask: np.ndarray, per_side: int = 12) -> hv.VectorField:
    """Decimated headless whiskers of the shear ``(2, N, N)`` on observed pixels."""
    n = shear.shape[-1]
    step = max(1, n // per_side)
    idx = np.arange(step // 2, n, step)
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    g1 = shear[0][yy, xx]
    g2 = shear[1][yy, xx]
    keep = mask[yy, xx] > 0
    angle = 0.5 * np.arctan2(g2, g1)
    magnitude = np.hypot(g1, g2)
    return hv.VectorField((xx[keep].astype(float), yy[keep].astype(float), angle[keep], magnitude[keep]),
                          kdims=["x", "y"], vdims=["angle", "magnitude"])


class MapViews:
    """The linked map layout: truth, observed shear + mask editor, KS, Wiener, mean, std, significance."""

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

    def __init__(self) -> None:
        self.clim: tuple[float, float] = (-0.05, 0.05)
        self.std_clim: tuple[float, float] | None = None
        empty = np.zeros((16, 16), np.float32)
        self.pipes: dict[str, hv.streams.Pipe] = {name: hv.streams.Pipe(data=empty) for name in self.TITLES}
        self.whisker_pipe = hv.streams.Pipe(data=(np.zeros((2, 16, 16), np.float32), np.zeros((16, 16), np.float32)))
        self.boxes = hv.Rectangles([]).opts(fill_alpha=0.25, fill_color="black", line_color="black")
        self.polygons = hv.Polygons([]).opts(fill_alpha=0.25, fill_color="black", line_color="black")
        self.box_stream = hv.streams.BoxEdit(source=self.boxes, styles={"fill_color": ["black"]})
        self.poly_stream = hv.streams.PolyDraw(source=self.polygons, drag=True, show_vertices=True)
        self.pane = pn.pane.HoloViews(self._layout(), sizing_mode="stretch_width", linked_axes=True,
                                      css_classes=["ks-maps"])

    def _image(self, name: str):
        def make(data: np.ndarray) -> hv.Image:
            img = hv.Image(_grid(data), kdims=["x", "y"], vdims=["value"], label=self.TITLES[name])
            cmap = STD_CMAP if name == "std" else KAPPA_CMAP
            if name in self.KAPPA_MAPS:
                clim = self.clim
            elif name == "std":
                top = float(np.nanmax(data)) if np.isfinite(data).any() else 0.0
                clim = self.std_clim or (0.0, top if top > 0 else 1.0)
            elif name == "significance":
                clim = (-4.0, 4.0)
            else:  # shear
                finite = data[np.isfinite(data)]
                half = float(np.percentile(np.abs(finite), 99)) if finite.size else 0.1
                clim = (-half or -0.1, half or 0.1)
            return img.opts(cmap=cmap, clim=clim, colorbar=True, title=self.TITLES[name], tools=["hover"],
                            frame_width=MAP_SIZE, frame_height=MAP_SIZE, xaxis=None, yaxis=None,
                            framewise=True, clipping_colors={"NaN": "#dddddd"})

        return hv.DynamicMap(make, streams=[self.pipes[name]])

    def _layout(self) -> hv.Layout:
        whiskers = hv.DynamicMap(lambda data: shear_whiskers(*data).opts(
            magnitude="magnitude", pivot="mid", color="#333333", line_width=1.5, rescale_lengths=True,
            arrow_heads=False, alpha=0.8),
            streams=[self.whisker_pipe])
        shear = self._image("shear") * whiskers * self.boxes * self.polygons
        order = ("truth", "kaiser_squires", "wiener", "mean", "std", "significance")
        plots = [self._image(name) for name in order]
        return hv.Layout([plots[0], shear, *plots[1:]]).cols(4).opts(shared_axes=True)

    # ------------------------------------------------------------------ updates
    def show_problem(self, problem: Any) -> None:
        self.clim = tuple(problem.kappa_range)
        self.std_clim = None
        mask = np.asarray(problem.mask)
        nan_mask = np.where(mask > 0, 1.0, np.nan).astype(np.float32)
        truth = problem.truth if problem.truth is not None else np.zeros(mask.shape, np.float32)
        shear = np.asarray(problem.observation.shear)
        self.pipes["truth"].send(np.asarray(truth, np.float32))
        self.pipes["shear"].send(shear[0] * nan_mask)
        self.whisker_pipe.send((shear, mask))
        self.pipes["kaiser_squires"].send(np.asarray(problem.kaiser_squires, np.float32))
        self.pipes["wiener"].send(np.asarray(problem.wiener, np.float32))
        blank = np.zeros(mask.shape, np.float32)
        for name in ("mean", "std", "significance"):
            self.pipes[name].send(blank)

    def show_snapshot(self, snapshot: Any) -> None:
        mean = np.asarray(snapshot.mean, np.float32)
        std = np.asarray(snapshot.std, np.float32)
        self.pipes["mean"].send(mean)
        self.pipes["std"].send(std)
        self.pipes["significance"].send(significance_map(mean, std))

    def drawn_shapes(self) -> tuple[dict, dict]:
        """The drawn rectangles (BoxEdit dict) and polygons (PolyDraw dict) in pixel coordinates."""
        return dict(self.box_stream.data or {}), dict(self.poly_stream.data or {})

    def clear_shapes(self) -> None:
        self.box_stream.event(data={"x0": [], "y0": [], "x1": [], "y1": []})
        self.poly_stream.event(data={"xs": [], "ys": []})


class ChainMosaic:
    """One image tiling the current state of every chain (same colour scale as the κ maps)."""

    def __init__(self, maps: MapViews) -> None:
        self.maps = maps
        self.pipe = hv.streams.Pipe(data=np.zeros((16, 16), np.float32))
        self.frames_shown = 0

        def make(data: np.ndarray) -> hv.Image:
            return hv.Image(_grid(data), kdims=["mx", "my"], vdims=["kappa"]).opts(
                cmap=KAPPA_CMAP, clim=self.maps.clim, colorbar=True, framewise=True, xaxis=None, yaxis=None,
                title="Chains (current states)", data_aspect=1, frame_width=2 * MAP_SIZE + 40,
                clipping_colors={"NaN": "white"}, tools=["hover"])

        self.pane = pn.pane.HoloViews(hv.DynamicMap(make, streams=[self.pipe]), linked_axes=False,
                                      css_classes=["ks-chains"])

    def show(self, chains: np.ndarray) -> None:
        self.pipe.send(tile_chains(chains))
        self.frames_shown += 1


class PowerSpectrumView:
    """Binned power of the chains (thin lines) against the theory and the truth."""

    def __init__(self) -> None:
        self.pipe = hv.streams.Pipe(data=None)
        self.pane = pn.pane.HoloViews(hv.DynamicMap(self._make, streams=[self.pipe]), linked_axes=False)

    @staticmethod
    def _make(data: Mapping[str, Any] | None) -> hv.Overlay:
        opts = dict(logx=True, logy=True, frame_width=330, frame_height=220, framewise=True,
                    xlabel="ℓ", ylabel="P (per-pixel units)", tools=["hover"])
        if not data:
            data = {"ell": np.array([100.0, 1000.0]), "theory": np.array([1e-4, 1e-5])}
        ell = data["ell"]
        curves = []
        for i, power in enumerate(np.atleast_2d(data.get("chains", np.empty((0, len(ell)))))):
            curves.append(hv.Curve((ell, power), "ell", "power", label="chains").opts(
                color="#1f77b4", alpha=0.4, line_width=1, **opts))
        curves.append(hv.Curve((ell, data["theory"]), "ell", "power", label="theory").opts(
            color="black", line_width=2, **opts))
        if data.get("truth") is not None:
            curves.append(hv.Curve((ell, data["truth"]), "ell", "power", label="truth").opts(
                color="#d62728", line_dash="dashed", line_width=2, **opts))
        return hv.Overlay(curves).opts(title="Power spectrum: chains vs theory vs truth", show_legend=True,
                                       legend_position="bottom_left")

    def show(self, ell: np.ndarray, theory: np.ndarray, truth: np.ndarray | None, chains: np.ndarray | None) -> None:
        good = np.isfinite(theory) & (theory > 0)
        data = {"ell": ell[good], "theory": theory[good],
                "truth": None if truth is None else np.maximum(truth[good], 1e-30)}
        if chains is not None:
            data["chains"] = np.maximum(np.asarray(chains)[:, good], 1e-30)
        self.pipe.send(data)


class TraceView:
    """Traces of σ, the acceptance rate and a few pixel values per chain, against the transition index."""

    def __init__(self) -> None:
        self.pipe = hv.streams.Pipe(data={})
        self.pane = pn.pane.HoloViews(hv.DynamicMap(self._make, streams=[self.pipe]), linked_axes=False)

    @staticmethod
    def _make(data: Mapping[str, Any]) -> hv.Layout:
        traces = data or {}
        base = dict(frame_width=260, frame_height=150, framewise=True, xlabel="transition", tools=["hover"])
        sigma = np.asarray(traces.get("sigma", [1.0, 1.0]), np.float64).ravel()
        step = np.asarray(traces.get("step", np.arange(1, sigma.size + 1)), np.float64).ravel()
        if step.size != sigma.size:
            step = np.arange(1, sigma.size + 1, dtype=np.float64)
        sigma_plot = hv.Curve((step, np.maximum(sigma, 1e-8)), "transition", "σ").opts(
            logy=True, title="Annealing level σ", **base)
        acc = np.asarray(traces.get("acceptance", np.zeros(step.size)), np.float64).ravel()
        window = max(1, min(10, acc.size // 20 or 1))  # running mean over ≤10 transitions
        smooth = np.convolve(acc, np.ones(window) / window, mode="same") if acc.size else acc
        acc_x = step if acc.size == step.size else np.arange(1, acc.size + 1)
        acc_plot = hv.Curve((acc_x, smooth), "transition", "acceptance").opts(
            title="Acceptance rate (running mean)", ylim=(0, 1.05), **base)
        pixel_curves = []
        for key, values in traces.items():
            if not key.startswith("kappa["):
                continue
            arr = np.asarray(values, np.float64)
            arr = arr[:, None] if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)
            x = step if arr.shape[0] == step.size else np.arange(1, arr.shape[0] + 1)
            for j in range(min(arr.shape[1], 4)):
                pixel_curves.append(hv.Curve((x, arr[:, j]), "transition", "κ", label=key).opts(
                    line_width=1, alpha=0.8, **base))
            if len(pixel_curves) >= 8:
                break
        if not pixel_curves:
            pixel_curves = [hv.Curve((step, np.zeros(step.size)), "transition", "κ").opts(**base)]
        pixels = hv.Overlay(pixel_curves).opts(title="Pixel values (one line per chain)", show_legend=False)
        return (sigma_plot + acc_plot + pixels).cols(3).opts(shared_axes=False)

    def show(self, traces: Mapping[str, Any]) -> None:
        self.pipe.send(dict(traces))


def schedule_plot(sigmas: np.ndarray, steps_per_level: int | np.ndarray) -> hv.Curve:
    """The σ of each annealing level against the cumulative transition count (log σ)."""
    sigmas = np.asarray(sigmas, np.float64)
    steps = np.broadcast_to(np.asarray(steps_per_level), sigmas.shape)
    start = np.concatenate([[0], np.cumsum(steps)[:-1]])
    return hv.Curve((start, sigmas), "transition", "σ").opts(
        interpolation="steps-post", logy=True, frame_width=220, frame_height=110, title="σ schedule",
        toolbar=None, line_width=2)
