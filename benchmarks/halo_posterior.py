r"""Posterior quality on held-out halo-model mocks with the COSMOS mask and per-pixel COSMOS noise (issue #12, item 4).

**Observations.** For each pixel scale a 64×64 mask and per-pixel noise ``σ_n = σ_e/√n_gal(pixel)`` from the real
COSMOS data (:func:`core.data.fits_io.load_cosmos`, :func:`cosmos_patch`):

* ``0.87`` — the shipped COSMOS data binned to 120×120 pixels of 0.87′ (the weights' pixel), the whole footprint
  resampled to 64×64 by nearest neighbour as the calibration benchmark does (``layout="rebin"``: mask and noise
  std from the same 120² pixels; 55 % observed, the footprint's edges and holes at 64², each pixel with the noise of
  a 0.87′ COSMOS pixel);
* ``0.29`` — the native 360×360 grid of 0.29′ pixels, a 64×64 crop (18.6′ on a side; ``layout="crop"``: the window
  with the most observed pixels, :func:`best_window`, first in row-major order on ties).

Truth ``κ*`` (periodic 64² maps at that pixel): halo-model maps of
:mod:`core.physics.halos` with the configuration the training maps use (``HaloModelConfig`` defaults with one
source plane at z_s = 1, as :func:`core.priors.training.data.make_map_source`), drawn with their halo catalogues.
Shear ``γ = M(Pκ* + n)`` (:meth:`core.data.observation.Observation.simulated`).

**Held-out seeds.** Truths of scale ``k`` (0 for 0.87′, 1 for 0.29′) come from the stateless seed
``[HELDOUT_SEED, k]`` = ``[20261201, k]``, shape noise of map ``i`` from ``[HELDOUT_SEED + 1, 1000 k + i]``. Training
(``scripts/train_weights.py``, ``--seed 0`` at 0.87′ and ``--seed 1`` at 0.29′) draws its maps from
``fold_in([0, s], step)`` (validation ``fold_in([0, s], −1)``) of the run seed ``s``: different seed words, so
the mocks are never training maps (the stateless streams only coincide with probability ≈ 2⁻⁶⁴ per pair).

**Estimators** (every problem wired by :mod:`core.pipeline`): ``KS`` — Kaiser–Squires with Gaussian smoothing (FWHM
``ks_fwhm_arcmin``); ``Wiener`` — the Wiener filter with the theory power map (``Problem.wiener``); ``Gaussian
posterior`` — exact samples of the Gaussian posterior (constrained realisations,
:func:`core.analysis.baselines.constrained_realisations`: no MCMC error); ``Hybrid posterior (<weights>)`` —
:func:`core.pipeline.run` with the hybrid prior of each weights set (e.g. the lognormal-trained
``hybrid_0.87arcmin`` and the halo-trained ``hybrid_halo_0.87arcmin``) and the configured sampler (default: the
predictor–corrector ``pc`` without correctors on ``num_levels`` geometric levels, σ 0.5 → 10⁻³, + Tweedie
denoising), ``num_chains`` samples per map.

**Metrics per map** (observed pixels; :func:`benchmarks.calibration._point_metrics` / ``_sample_metrics``): RMSE and
Pearson r of the point estimate (posterior mean); coverage of the central 68/95 % sample intervals over all
observed pixels and over the pixels whose true κ is in the top 5 %; **halo significance**: ``S = mean/std`` of the
posterior at the pixel holding each true halo with ``M ≥ mass_threshold`` (1e14 M⊙, ``M_200c``) inside the mask, vs
``S`` at ``num_random`` random observed pixels (:func:`halo_significance`); KS and Wiener, which have no posterior
std, are scaled by their own rms over the mask (the crude scale of ``scripts/cosmos_map.py``).

**Error bars.** Per-map metrics: mean ± standard error over maps (sd/√M). Differences vs the Wiener filter (RMSE,
r): the mean of the per-map differences ± their standard error (paired, :func:`benchmarks._tables.paired_difference`); halo
significances: pooled over the haloes of all maps, mean ± sd/√n, and the paired per-halo difference
hybrid − Gaussian posterior. With ``C`` samples the ideal coverage of an empirical interval is
:func:`benchmarks.calibration.expected_coverage` ``(C, q)`` (listed in the JSON).

Run ``python -m benchmarks.halo_posterior --quick`` (2 maps, 8 chains, 10 levels: minutes) or without ``--quick``;
it writes ``benchmarks/results/halo_posterior[_quick].{json,md}`` (``--tag`` to rename).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks._tables import aggregate, fmt, mean_se, paired_difference, run_or_report, write_report
from benchmarks.calibration import _point_metrics, _sample_metrics, expected_coverages
from core.options import sampler_names

logger = logging.getLogger("benchmarks.halo_posterior")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 20261201
#: pixel scale name → (COSMOS grid side over the 104.4′ field, index in the seed words)
SCALES: dict[str, tuple[int, int]] = {"0.87": (120, 0), "0.29": (360, 1)}
#: hybrid weights label → shipped model name pattern (``{scale}`` = "0.87" / "0.29")
#: how each scale's 64² observation is cut from its COSMOS grid (:func:`cosmos_patch`)
LAYOUTS: dict[str, str] = {"0.87": "rebin", "0.29": "crop"}
DEFAULT_WEIGHTS: dict[str, str] = {"lognormal": "hybrid_{scale}arcmin", "halo": "hybrid_halo_{scale}arcmin"}


@dataclass
class HaloPosteriorConfig:
    """Settings of one benchmark run (see the module docstring)."""

    scales: tuple[str, ...] = ("0.87", "0.29")
    npix: int = 64
    num_maps: int = 8
    num_chains: int = 64
    sampler: str = "pc"
    sampler_options: dict[str, Any] = field(default_factory=lambda: {"num_corrector_steps": 0})
    num_levels: int = 20
    steps_per_level: int = 1
    sigma_max: float = 0.5
    sigma_min: float = 1e-3
    final_denoise: str = "tweedie"
    weights: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    hybrid_maps: dict[str, int] = field(default_factory=dict)  # scale → run the hybrid on the first n maps only
    mass_threshold: float = 1e14
    num_random: int = 2000
    ks_fwhm_arcmin: float = 2.0
    seed: int = HELDOUT_SEED

    def validate(self) -> None:
        unknown = [s for s in self.scales if s not in SCALES]
        if unknown or not self.scales:
            raise ValueError(f"scales must be among {tuple(SCALES)}, got {list(self.scales)!r}")
        if self.sampler not in sampler_names():
            raise ValueError(f"sampler must be one of {sampler_names()}, got {self.sampler!r}")
        for name in ("num_maps", "num_levels", "steps_per_level", "num_random"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_chains < 2:
            raise ValueError(f"num_chains must be at least 2 for intervals, got {self.num_chains!r}")
        if self.npix < 16 or self.npix % 2:
            raise ValueError(f"npix must be an even integer ≥ 16, got {self.npix!r}")
        if not self.mass_threshold > 0:
            raise ValueError(f"mass_threshold must be positive (M_sun), got {self.mass_threshold!r}")
        for scale, n in self.hybrid_maps.items():
            if scale not in SCALES or isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"hybrid_maps must map scales {tuple(SCALES)} to positive integers, got {scale!r}: {n!r}")


QUICK = dict(num_maps=2, num_chains=8, num_levels=10)


# ------------------------------------------------------------------------------------------- metric helpers
def best_window(mask: np.ndarray, size: int) -> tuple[int, int]:
    """(row, col) of the top-left corner of the ``size × size`` window of ``mask`` with the most observed pixels
    (the first such window in row-major order)."""
    m = np.asarray(mask) > 0
    if m.ndim != 2 or min(m.shape) < size or size < 1:
        raise ValueError(f"size must be between 1 and the mask's side {m.shape}, got {size!r}")
    c = np.zeros((m.shape[0] + 1, m.shape[1] + 1), np.int64)
    c[1:, 1:] = m.cumsum(0).cumsum(1)
    counts = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    row, col = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return int(row), int(col)


def halo_pixels(catalogue: Any, mask: np.ndarray, mass_min: float) -> tuple[np.ndarray, np.ndarray, Any]:
    """(rows, cols) of the pixels holding the haloes with ``mass ≥ mass_min`` whose pixel is observed, and the
    catalogue of those haloes (:class:`core.physics.halos.HaloCatalogue`)."""
    m = np.asarray(mask)
    selected = catalogue.select(mass_min)
    rows, cols = selected.pixel_indices()
    rows, cols = rows % m.shape[0], cols % m.shape[1]  # positions are in [0, N); the modulo guards the edge only
    keep = m[rows, cols] > 0
    fields = ("x", "y", "mass", "redshift", "theta_delta_arcmin", "kappa_mass_sr")
    return rows[keep], cols[keep], type(selected)(*(getattr(selected, f)[keep] for f in fields))


def halo_significance(significance: np.ndarray, rows: np.ndarray, cols: np.ndarray, mask: np.ndarray,
                      num_random: int, seed: int) -> dict[str, Any]:
    """Significance map values at the halo pixels and at ``num_random`` random observed pixels (uniform, with
    replacement, numpy ``default_rng(seed)``): ``{"at_haloes": [...], "at_random_mean": ..., "at_random_std": ...}``."""
    sig = np.asarray(significance, float)
    observed = np.argwhere(np.asarray(mask) > 0)
    if observed.size == 0:
        raise ValueError("mask has no observed pixel")
    pick = observed[np.random.default_rng(seed).integers(0, len(observed), size=int(num_random))]
    at_random = sig[pick[:, 0], pick[:, 1]]
    return {"at_haloes": sig[rows, cols].tolist(), "at_random_mean": float(at_random.mean()),
            "at_random_std": float(at_random.std(ddof=1)) if at_random.size > 1 else float("nan")}


def pooled(values: Sequence[float]) -> dict[str, float]:
    """Mean ± sd/√n of pooled values (NaN se for fewer than two)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "se": float("nan"), "n": 0}
    return {**mean_se(v), "n": int(v.size)}


# ------------------------------------------------------------------------------------------- set-up
@dataclass
class ScaleSetup:
    """The observation set-up of one pixel scale: geometry, patch mask and noise, corner in the COSMOS grid."""

    name: str
    geometry: Any
    mask: np.ndarray
    noise_std: np.ndarray  # (2, N, N)
    corner: tuple[int, int] | None  # top-left corner of a crop in the COSMOS grid (None: rebinned footprint)
    cosmos_npix: int
    layout: str


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Index of the input pixel whose centre is nearest to each of ``n_out`` output pixel centres on the same span
    (the nearest-neighbour rule of :func:`core.data.observation.resample_mask`)."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got n_in={n_in!r}, n_out={n_out!r}")
    return np.minimum(np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(int), n_in - 1)


def cosmos_patch(scale: str, npix: int, layout: str | None = None) -> ScaleSetup:
    """The ``npix²`` COSMOS mask and per-pixel noise at ``scale`` (see the module docstring).

    ``layout``: ``"rebin"`` — the whole footprint of the scale's COSMOS grid resampled to ``npix²`` by nearest
    neighbour (mask by :func:`core.data.observation.resample_mask`, noise std from the same pixels: the calibration
    benchmark's footprint, with the grid's per-pixel noise level); ``"crop"`` — the ``npix²`` window of the grid
    with the most observed pixels (:func:`best_window`). Default: :data:`LAYOUTS` of the scale.
    """
    from core.data.fits_io import load_cosmos
    from core.data.observation import resample_mask
    from core.physics.geometry import MapGeometry

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {tuple(SCALES)}, got {scale!r}")
    layout = LAYOUTS[scale] if layout is None else layout
    if layout not in ("rebin", "crop"):
        raise ValueError(f"layout must be 'rebin' or 'crop', got {layout!r}")
    cosmos_npix = SCALES[scale][0]
    obs = load_cosmos(npix=cosmos_npix)
    mask, std = np.asarray(obs.mask), np.asarray(obs.noise_std)
    geometry = MapGeometry(npix, obs.geometry.pixel_size_arcmin)
    if layout == "rebin":
        idx = nearest_indices(cosmos_npix, npix)
        patch_mask = resample_mask(mask, npix)
        patch_std = std[:, idx][:, :, idx]
        if np.any(patch_std[:, patch_mask > 0] <= 0):
            raise ValueError("resampled COSMOS noise is zero at an observed pixel")  # pragma: no cover - same pixels
        return ScaleSetup(scale, geometry, patch_mask.astype(np.float32), patch_std.astype(np.float32), None,
                          cosmos_npix, layout)
    r, c = best_window(mask, npix)
    window = (slice(r, r + npix), slice(c, c + npix))
    return ScaleSetup(scale, geometry, mask[window].astype(np.float32), std[(slice(None),) + window].astype(np.float32),
                      (r, c), cosmos_npix, layout)


def heldout_truths(setup: ScaleSetup, num: int, seed: int = HELDOUT_SEED) -> tuple[np.ndarray, list[Any], dict[str, Any]]:
    """``num`` held-out halo-model truths ``(num, N, N)``, their catalogues and the simulator's description."""
    from core.physics.cosmology import SourceRedshifts
    from core.physics.halos import HaloModelConfig, halo_model_simulator

    simulator = halo_model_simulator(setup.geometry, HaloModelConfig(sources=SourceRedshifts.single_plane(1.0)))
    maps, cats = simulator.sample_maps(num, [int(seed), SCALES[setup.name][1]], with_catalogues=True)
    return np.asarray(maps, np.float64), cats, simulator.describe()


def _load_priors(config: HaloPosteriorConfig, setup: ScaleSetup, power: np.ndarray, notes: list[str]) -> dict[str, Any]:
    from core import pipeline

    priors: dict[str, Any] = {}
    for label, pattern in config.weights.items():
        name = pattern.format(scale=setup.name)
        try:
            priors[f"Hybrid posterior ({label})"] = (name, pipeline.build_prior("hybrid", setup.geometry, power_map=power,
                                                                                weights=name))
        except (ValueError, FileNotFoundError, ImportError) as err:
            notes.append(f"{setup.name}′: hybrid weights {name!r} skipped: {err}")
            logger.warning("%s′: hybrid weights %r skipped: %s", setup.name, name, err)
    return priors


def run_scale(config: HaloPosteriorConfig, scale: str, notes: list[str]) -> dict[str, Any]:
    """All methods on the held-out mocks of one pixel scale."""
    from core import pipeline
    from core.analysis.baselines import constrained_realisations, kaiser_squires_map
    from core.data.observation import NoiseModel, Observation

    start = time.perf_counter()
    setup = cosmos_patch(scale, config.npix)
    geometry, mask = setup.geometry, setup.mask
    sel = mask > 0
    power = pipeline.theory_power_map(geometry)
    truths, catalogues, simulator = heldout_truths(setup, config.num_maps, config.seed)
    noise = NoiseModel(setup.noise_std)
    priors = _load_priors(config, setup, power, notes)
    schedule = pipeline.make_schedule("geometric", config.sigma_max, config.sigma_min, config.num_levels,
                                      config.steps_per_level)
    hybrid_maps = config.hybrid_maps.get(scale, config.num_maps)
    per_method: dict[str, list[dict[str, float]]] = {}
    at_haloes: dict[str, list[float]] = {}
    halo_meta: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    nfe: dict[str, float] = {}

    def record(name: str, metrics: dict[str, float], sig_map: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               seed: int, t0: float) -> None:
        hs = halo_significance(sig_map, rows, cols, mask, config.num_random, seed)
        metrics = {**metrics, "significance_random_mean": hs["at_random_mean"],
                   "significance_random_std": hs["at_random_std"]}
        per_method.setdefault(name, []).append(metrics)
        at_haloes.setdefault(name, []).extend(hs["at_haloes"])
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

    for i in range(config.num_maps):
        truth = truths[i]
        rows, cols, inside = halo_pixels(catalogues[i], mask, config.mass_threshold)
        halo_meta.append({"map": i, "num_haloes_total": len(catalogues[i]),
                          "num_haloes_above_threshold": len(catalogues[i].select(config.mass_threshold)),
                          "num_haloes_above_threshold_in_mask": int(rows.size),
                          "masses_in_mask": inside.mass.tolist(), "redshifts_in_mask": inside.redshift.tolist()})
        random_seed = config.seed + 17 * i + 1000 * SCALES[scale][1]
        obs = Observation.simulated(geometry, truth, noise, mask, seed=[config.seed + 1, 1000 * SCALES[scale][1] + i])
        t0 = time.perf_counter()
        ks = kaiser_squires_map(obs.shear, geometry, mask=mask, smoothing_fwhm_arcmin=config.ks_fwhm_arcmin)[0].numpy()
        ks = ks.astype(np.float64)
        record("Kaiser-Squires", _point_metrics(ks, truth, sel), ks / ks[sel].std(), rows, cols, random_seed, t0)
        reference = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior="gaussian", power_map=power,
                                           truth=truth)
        t0 = time.perf_counter()
        wiener = np.asarray(reference.wiener, np.float64)
        record("Wiener filter", _point_metrics(wiener, truth, sel), wiener / wiener[sel].std(), rows, cols,
               random_seed, t0)
        t0 = time.perf_counter()
        exact = constrained_realisations(reference.likelihood, power, config.num_chains,
                                         seed=[config.seed + 2, 1000 * SCALES[scale][1] + i]).numpy().astype(np.float64)
        record("Gaussian posterior (exact)", _sample_metrics(exact, truth, sel),
               exact.mean(0) / exact.std(0, ddof=1), rows, cols, random_seed, t0)
        if i >= hybrid_maps:
            continue
        for name, (_, prior) in priors.items():
            problem = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior=prior, power_map=power,
                                             truth=truth)
            problem.wiener = reference.wiener  # the same map; cached, so not solved twice (also the chains' centre)
            t0 = time.perf_counter()
            last = None
            for last in pipeline.run(problem, sampler=config.sampler, schedule=schedule, num_chains=config.num_chains,
                                     seed=[config.seed + 3, 1000 * SCALES[scale][1] + i],
                                     final_denoise=config.final_denoise, **config.sampler_options):
                pass
            if last is None or not last.done:
                raise RuntimeError(f"{name}: the run did not finish")
            chains = last.chains.astype(np.float64)
            metrics = _sample_metrics(chains, truth, sel)
            nfe[name] = float(last.nfe) + (1.0 if config.final_denoise == "tweedie" else 0.0)
            record(name, metrics, chains.mean(0) / chains.std(0, ddof=1), rows, cols, random_seed, t0)
            logger.info("%s′ map %d %s: rmse %.4f (Wiener %.4f) r %.3f cov95 %.3f top5 %.3f  %.0f s", scale, i, name,
                        metrics["rmse"], per_method["Wiener filter"][-1]["rmse"], metrics["pearson"],
                        metrics["coverage_95"], metrics["coverage_95_top5pct"], time.perf_counter() - t0)
        logger.info("%s′ map %d/%d done (%.0f s)", scale, i + 1, config.num_maps, time.perf_counter() - start)
    return _summarise_scale(config, setup, per_method, at_haloes, halo_meta, seconds, nfe, priors, simulator,
                            truths, time.perf_counter() - start)


def _summarise_scale(config: HaloPosteriorConfig, setup: ScaleSetup, per_method: dict[str, list[dict[str, float]]],
                     at_haloes: dict[str, list[float]], halo_meta: list[dict[str, Any]], seconds: dict[str, float],
                     nfe: dict[str, float], priors: Mapping[str, Any], simulator: dict[str, Any], truths: np.ndarray,
                     total: float) -> dict[str, Any]:
    wiener = per_method["Wiener filter"]
    gaussian_haloes = at_haloes["Gaussian posterior (exact)"]
    methods: dict[str, Any] = {}
    for name, values in per_method.items():
        entry: dict[str, Any] = aggregate(values)
        entry["num_maps"] = len(values)
        entry["significance_at_haloes"] = pooled(at_haloes[name])
        if name != "Wiener filter":
            n = len(values)  # the hybrid may run on the first maps only: pair with the same maps
            entry["vs_wiener"] = {k: paired_difference([m[k] for m in values], [m[k] for m in wiener[:n]])
                                  for k in ("rmse", "pearson")}
        if name.startswith("Hybrid"):
            n = len(at_haloes[name])
            entry["significance_at_haloes_minus_gaussian"] = (
                paired_difference(at_haloes[name], gaussian_haloes[:n]) if n else {"mean": float("nan"), "se": float("nan"), "n": 0})
            entry["nfe_per_chain"] = nfe.get(name)
            entry["weights"] = priors[name][0]
        entry["seconds"] = round(seconds.get(name, 0.0), 1)
        methods[name] = entry
    sel = setup.mask > 0
    return {
        "patch": {"cosmos_grid_npix": setup.cosmos_npix, "layout": setup.layout,
                  "corner_row_col": None if setup.corner is None else list(setup.corner), "npix": setup.geometry.npix,
                  "pixel_size_arcmin": setup.geometry.pixel_size_arcmin, "observed_fraction": float(sel.mean()),
                  "noise_std_median": float(np.median(setup.noise_std[:, sel])),
                  "noise_std_range": [float(setup.noise_std[:, sel].min()), float(setup.noise_std[:, sel].max())]},
        "truth": {"simulator": simulator, "seed": [int(config.seed), SCALES[setup.name][1]],
                  "pixel_std": float(truths.std()), "haloes": halo_meta,
                  "num_haloes_above_threshold_in_mask": int(sum(h["num_haloes_above_threshold_in_mask"] for h in halo_meta))},
        "methods": methods,
        "per_map": per_method,
        "significance_at_haloes_per_halo": at_haloes,
        "total_seconds": round(total, 1),
    }


def run_benchmark(config: HaloPosteriorConfig) -> dict[str, Any]:
    """Every configured scale; a JSON-serialisable dict (config, per-scale aggregates, per-map values)."""
    config.validate()
    start = time.perf_counter()
    notes: list[str] = []
    scales = {scale: run_scale(config, scale, notes) for scale in config.scales}
    return {
        "config": dataclasses.asdict(config),
        "expected_coverage_with_num_chains": expected_coverages(config.num_chains),
        "scales": scales,
        "notes": notes,
        "load_average_end": list(os.getloadavg()),
        "total_seconds": round(time.perf_counter() - start, 1),
    }


# ------------------------------------------------------------------------------------------- report
def _layout_text(patch: Mapping[str, Any]) -> str:
    grid = f"the COSMOS {patch['cosmos_grid_npix']}² grid of {patch['pixel_size_arcmin']:.3g}′ pixels"
    if patch["layout"] == "rebin":
        return f"the whole COSMOS footprint and noise of {grid} resampled to {patch['npix']}²"
    return f"a {patch['npix']}² crop of {grid} at corner {tuple(patch['corner_row_col'])}"


def markdown_table(result: dict[str, Any]) -> str:
    """The markdown report of :func:`run_benchmark` (the table the README quotes)."""
    cfg = result["config"]
    exp = result["expected_coverage_with_num_chains"]
    opts = ", ".join(f"{k}={v}" for k, v in cfg["sampler_options"].items())
    lines: list[str] = []
    for scale, res in result["scales"].items():
        p, t = res["patch"], res["truth"]
        lines += [
            f"**{scale}′** — {len(t['haloes'])} held-out halo-model maps "
            f"(seed {t['seed']}), {_layout_text(p)} ({p['observed_fraction']:.0%} observed), per-pixel COSMOS noise "
            f"(median σ_n = {p['noise_std_median']:.3f}; truth pixel std {t['pixel_std']:.3f}); "
            f"{t['num_haloes_above_threshold_in_mask']} haloes ≥ {cfg['mass_threshold']:.0e} M⊙ in the mask; "
            f"{cfg['num_chains']} samples per map; hybrid: `{cfg['sampler']}` ({opts or 'defaults'}), "
            f"{cfg['num_levels']} levels × {cfg['steps_per_level']}, σ {cfg['sigma_max']:g} → {cfg['sigma_min']:g}, "
            f"{cfg['final_denoise']} denoising. Mean ± standard error over maps; Δ vs Wiener paired.",
            "",
            "| method | maps | RMSE | Δ RMSE vs WF | Pearson r | Δ r vs WF | cov 68 | cov 95 | cov 68 top 5% | "
            "cov 95 top 5% | S at haloes | S random | NFE | s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, m in res["methods"].items():
            vs = m.get("vs_wiener", {})
            lines.append(
                f"| {name} | {m['num_maps']} | {fmt(m['rmse'], 4)} | {fmt(vs.get('rmse'), 4, signed=True)} "
                f"| {fmt(m['pearson'])} | {fmt(vs.get('pearson'), 3, signed=True)} | {fmt(m.get('coverage_68'))} "
                f"| {fmt(m.get('coverage_95'))} | {fmt(m.get('coverage_68_top5pct'))} | {fmt(m.get('coverage_95_top5pct'))} "
                f"| {fmt(m['significance_at_haloes'], 2)} (n={m['significance_at_haloes']['n']}) "
                f"| {fmt(m['significance_random_mean'], 2)} | {m.get('nfe_per_chain') or '–'} | {m['seconds']:.0f} |")
        lines.append("")
    lines += [
        f"Ideal coverage with {cfg['num_chains']} samples: 68% → {exp['coverage_68']:.3f}, 95% → {exp['coverage_95']:.3f}. "
        "S = posterior mean/std at the pixel of each true halo above the threshold (pooled over maps, ± sd/√n) and "
        "at random observed pixels; KS and Wiener: the map over its rms in the mask. top 5%: pixels whose true κ is "
        f"above its 95th percentile. KS smoothed with FWHM {cfg['ks_fwhm_arcmin']:g}′.",
    ]
    lines += [f"Note: {n}" for n in result.get("notes", [])]
    lines.append(f"Run time {result['total_seconds']:.0f} s (load average at the end {result['load_average_end'][0]:.1f}).")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- CLI
def _parse_assignments(items: Sequence[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{option} entries must be NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    d = HaloPosteriorConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.halo_posterior", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"small run: {QUICK}")
    p.add_argument("--scales", default=",".join(d.scales), help=f"comma-separated pixel scales among {tuple(SCALES)}")
    p.add_argument("--num-maps", type=int, default=None, help=f"held-out truth maps per scale (default {d.num_maps})")
    p.add_argument("--chains", type=int, default=None, help=f"posterior samples per map (default {d.num_chains})")
    p.add_argument("--levels", type=int, default=None, help=f"annealing / diffusion levels (default {d.num_levels})")
    p.add_argument("--steps-per-level", type=int, default=d.steps_per_level,
                   help="transitions per level (annealed samplers; the diffusion samplers use one per level change)")
    p.add_argument("--sampler", choices=sampler_names(), default=d.sampler, help="sampler of the hybrid posterior")
    p.add_argument("--sampler-option", action="append", default=None, metavar="NAME=VALUE",
                   help=f"a sampler option (repeatable; default {d.sampler_options} for pc)")
    p.add_argument("--weights", action="append", default=None, metavar="LABEL=NAME",
                   help="hybrid weights to compare, '{scale}' replaced by 0.87/0.29 "
                        f"(repeatable; default {DEFAULT_WEIGHTS})")
    p.add_argument("--hybrid-maps", action="append", default=None, metavar="SCALE=N",
                   help="run the hybrid posterior on the first N maps of SCALE only (CPU budget)")
    p.add_argument("--sigma-min", type=float, default=d.sigma_min, help="last noise level")
    p.add_argument("--mass-threshold", type=float, default=d.mass_threshold, help="halo mass threshold, M_sun")
    p.add_argument("--seed", type=int, default=d.seed, help="held-out seed word of truths, noise and chains")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where to write the JSON and markdown")
    p.add_argument("--tag", default=None, help="file stem (default halo_posterior or halo_posterior_quick)")
    return p


def config_from_args(args: argparse.Namespace) -> HaloPosteriorConfig:
    from core.options import sampler_spec

    d = HaloPosteriorConfig()
    options: dict[str, Any] = dict(d.sampler_options) if args.sampler == d.sampler else {}
    if args.sampler_option:
        spec = sampler_spec(args.sampler)
        raw = _parse_assignments(args.sampler_option, "--sampler-option")
        options = {k: spec.option(k).validate(v) for k, v in raw.items()}
    weights = _parse_assignments(args.weights, "--weights") if args.weights else dict(DEFAULT_WEIGHTS)
    hybrid_maps = {}
    for k, v in (_parse_assignments(args.hybrid_maps, "--hybrid-maps") if args.hybrid_maps else {}).items():
        try:
            hybrid_maps[k] = int(v)
        except ValueError:
            raise ValueError(f"--hybrid-maps needs SCALE=N with an integer N, got {k}={v!r}") from None
    cfg = HaloPosteriorConfig(scales=tuple(s.strip() for s in args.scales.split(",") if s.strip()),
                              sampler=args.sampler, sampler_options=options, steps_per_level=args.steps_per_level,
                              sigma_min=args.sigma_min, weights=weights, hybrid_maps=hybrid_maps,
                              mass_threshold=args.mass_threshold, seed=args.seed)
    if args.quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    overrides = {"num_maps": args.num_maps, "num_chains": args.chains, "num_levels": args.levels}
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_or_report("halo_posterior", lambda: run_benchmark(config_from_args(args)))
    if result is None:
        return 2
    result["command"] = "python -m benchmarks.halo_posterior " + " ".join(sys.argv[1:] if argv is None else argv)
    stem = args.tag or ("halo_posterior_quick" if args.quick else "halo_posterior")
    write_report(args.output_dir, stem, result, markdown_table(result))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
