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

**Metrics per map** (observed pixels; :func:`benchmarks.calibration.point_metrics` / ``sample_metrics``): RMSE and
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

**Halo-pixel statistics** (why S at haloes and the coverage there can disagree). Per method and halo: the point
estimate ``κ̂`` (posterior mean; KS/Wiener: the map), the posterior std ``σ`` (NaN for KS/Wiener) and the truth ``κ*``
at the halo pixel, so that ``S = κ̂/σ`` splits into its numerator and denominator (a posterior that is wider at a halo
has a lower S but covers the truth more often). At the ``num_random`` random observed pixels (the same pixels as the
random S): the mean and median of ``κ*``, the fraction with ``κ* < 0``, the mean and median of the truth's own
``S* = κ*/sd(κ*)`` (``sd`` over the observed pixels of that map, the scale KS/Wiener use), the mean and median of
``κ̂``, the mean ``σ`` and the median S. A mean-zero, positively skewed field has most of its pixels below zero
(median ``κ* < 0``), so a posterior that follows the prior can have a negative median S at random pixels (and a
negative mean S where σ is smaller in the underdense pixels) without any bias of ``κ̂``. Pooled: values at haloes over the haloes
of all maps, random-pixel values over maps (mean ± sd/√n, with ``n``); ``methods[m]["halo_pixels"]`` in the JSON,
per map in ``halo_pixels_per_map``, and a second markdown table.

**Per-map cache and resuming.** The hybrid posterior costs minutes per map, so each (scale, hybrid method, map)
result — its metrics, per-halo S and halo-pixel values, seconds and NFE — is written, as soon as it is done, to
``<cache-dir>/<scale>arcmin_<label>_map<i>.json`` (default ``<output-dir>/cache/<tag>/``, i.e.
``benchmarks/results/cache/<tag>/``) with a fingerprint of everything that determines it (:func:`hybrid_fingerprint`:
scale, npix, num_maps — the truths are drawn as one batch —, num_chains, sampler and its options, num_levels,
steps_per_level, σ_max, σ_min, final_denoise, method label, weights name and the sha256 of the weights file, seed,
mass_threshold, num_random, map index). A run reuses an entry whose fingerprint is identical (and whose halo count and masses match the map's),
logs every entry it ignores and why, and recomputes the rest, so a run that stopped part-way is resumed by
running the same command again; ``--no-cache`` disables it. KS, Wiener and the exact Gaussian posterior (seconds)
are always recomputed. ``--import-previous OLD.json`` seeds the cache from an earlier result JSON of this script
(per-map metrics from ``scales[s]["per_map"]``, per-halo S split from the pooled
``significance_at_haloes_per_halo`` by ``truth.haloes[i]["num_haloes_above_threshold_in_mask"]``, seconds as the
method's total over its maps); it refuses (``ValueError`` naming the fields) when the old ``config`` gives a
different fingerprint. Imported entries have no halo-pixel values: the pooled halo-pixel statistics then use the
maps that have them (their ``num_maps`` and ``n`` say how many).

Run ``python -m benchmarks.halo_posterior --quick`` (2 maps, 8 chains, 10 levels: minutes) or without ``--quick``;
it writes ``benchmarks/results/halo_posterior[_quick].{json,md}`` (``--tag`` to rename). E.g. the hybrid on maps
4–7 of the session-10 MMPS run, reusing its maps 0–3::

    python -m benchmarks.halo_posterior --scales 0.87 --num-maps 8 --chains 64 --levels 20 --sampler mmps \
        --sampler-option integrator=heun --weights 'halo=hybrid_halo_{scale}arcmin' --tag halo_posterior_mmps_heun \
        --import-previous benchmarks/results/halo_posterior_mmps_heun.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks._tables import aggregate, fmt, mean_se, paired_difference, run_or_report, write_report
from benchmarks.calibration import point_metrics, sample_metrics, expected_coverages
from core.options import HALO_CLUSTERING, sampler_names

logger = logging.getLogger("benchmarks.halo_posterior")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 20261201
#: side of the COSMOS field in arcmin (its grids: 120 pixels of 0.87′, 360 of 0.29′)
COSMOS_FIELD_ARCMIN = 104.4
#: pixel scale name → (COSMOS grid side over the 104.4′ field, index in the seed words)
SCALES: dict[str, tuple[int, int]] = {"0.87": (120, 0), "0.29": (360, 1)}
#: hybrid weights label → shipped model name pattern (``{scale}`` = "0.87" / "0.29")
#: how each scale's 64² observation is cut from its COSMOS grid (:func:`cosmos_patch`)
LAYOUTS: dict[str, str] = {"0.87": "rebin", "0.29": "crop"}
DEFAULT_WEIGHTS: dict[str, str] = {"lognormal": "hybrid_{scale}arcmin", "halo": "hybrid_halo_{scale}arcmin"}


def check_scales(scales: Sequence[str]) -> None:
    """``ValueError`` naming the scales unless they are a non-empty selection of :data:`SCALES`."""
    if not scales or any(s not in SCALES for s in scales):
        raise ValueError(f"scales must be among {tuple(SCALES)}, got {list(scales)!r}")


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
    halo_clustering: str = "poisson"  # the truths' HaloModelConfig.clustering ("biased": haloes follow the large-scale field)

    def validate(self) -> None:
        check_scales(self.scales)
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
        if self.halo_clustering not in HALO_CLUSTERING:
            raise ValueError(f"halo_clustering must be one of {HALO_CLUSTERING}, got {self.halo_clustering!r}")
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


def random_pixels(mask: np.ndarray, num_random: int, seed: int) -> np.ndarray:
    """``(num_random, 2)`` (row, col) of random observed pixels: uniform with replacement, numpy ``default_rng(seed)``
    (the null of :func:`halo_significance` and the random pixels of :func:`halo_pixel_values`)."""
    observed = np.argwhere(np.asarray(mask) > 0)
    if observed.size == 0:
        raise ValueError("mask has no observed pixel")
    return observed[np.random.default_rng(seed).integers(0, len(observed), size=int(num_random))]


def halo_significance(significance: np.ndarray, rows: np.ndarray, cols: np.ndarray, mask: np.ndarray,
                      num_random: int, seed: int) -> dict[str, Any]:
    """Significance map values at the halo pixels and at ``num_random`` random observed pixels (uniform, with
    replacement, numpy ``default_rng(seed)``): ``{"at_haloes": [...], "at_random_mean": ..., "at_random_std": ...}``."""
    sig = np.asarray(significance, float)
    pick = random_pixels(mask, num_random, seed)
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


#: per-map values at the random pixels (:func:`halo_pixel_values`), pooled over maps
RANDOM_PIXEL_KEYS = ("truth_mean", "truth_median", "truth_fraction_negative", "truth_significance_mean",
                     "truth_significance_median", "kappa_hat_mean", "kappa_hat_median", "std_mean",
                     "significance_median")
#: per-halo values at the halo pixels (:func:`halo_pixel_values`), pooled over the haloes of all maps
HALO_PIXEL_KEYS = ("kappa_hat_at_haloes", "std_at_haloes", "truth_at_haloes")


def halo_pixel_values(point: np.ndarray, std: np.ndarray | None, truth: np.ndarray, significance: np.ndarray,
                      rows: np.ndarray, cols: np.ndarray, mask: np.ndarray, num_random: int,
                      seed: int) -> dict[str, Any]:
    """Point estimate ``κ̂``, posterior std ``σ`` (``None``: no posterior, NaN) and truth ``κ*`` at the halo pixels, and
    summaries at the random observed pixels of :func:`random_pixels` ``(mask, num_random, seed)`` (the pixels of
    the random S): mean / median / fraction < 0 of ``κ*``, mean / median of ``S* = κ*/sd(κ*[mask])``, mean / median
    of ``κ̂``, mean ``σ`` and median of ``significance`` (see the module docstring)."""
    point, truth, sig = (np.asarray(a, float) for a in (point, truth, significance))
    std = np.full_like(point, np.nan) if std is None else np.asarray(std, float)
    pick = random_pixels(mask, num_random, seed)
    r, c = pick[:, 0], pick[:, 1]
    t = truth[r, c]
    scale = float(truth[np.asarray(mask) > 0].std())
    s_true = t / scale if scale > 0 else np.full_like(t, np.nan)
    return {
        "kappa_hat_at_haloes": point[rows, cols].tolist(), "std_at_haloes": std[rows, cols].tolist(),
        "truth_at_haloes": truth[rows, cols].tolist(),
        "random": {"truth_mean": float(t.mean()), "truth_median": float(np.median(t)),
                   "truth_fraction_negative": float(np.mean(t < 0)), "truth_significance_mean": float(s_true.mean()),
                   "truth_significance_median": float(np.median(s_true)), "kappa_hat_mean": float(point[r, c].mean()),
                   "kappa_hat_median": float(np.median(point[r, c])), "std_mean": float(std[r, c].mean()),
                   "significance_median": float(np.median(sig[r, c]))},
    }


def pool_halo_pixels(records: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Pooled :func:`halo_pixel_values` of the maps that have them (``None`` entries, e.g. results imported from an
    older JSON, are left out): per-halo values over all haloes, random-pixel values over maps (:func:`pooled`)."""
    have = [r for r in records if r]
    out: dict[str, Any] = {"num_maps": len(have), "num_maps_missing": len(records) - len(have)}
    for key in HALO_PIXEL_KEYS:
        out[key] = pooled([v for r in have for v in r[key]])
    out["kappa_hat_minus_truth_at_haloes"] = pooled(
        [a - b for r in have for a, b in zip(r["kappa_hat_at_haloes"], r["truth_at_haloes"])])
    for key in RANDOM_PIXEL_KEYS:
        out[f"{key}_at_random"] = pooled([r["random"][key] for r in have])
    return out


# ------------------------------------------------------------------------------------------- per-map cache
CACHE_FORMAT = 1
#: config fields that (with the scale, the method label, its weights name and the map index) determine a hybrid
#: map's result; ``num_maps`` because the truths are drawn as one batch (the large-scale field of map i depends on it)
FINGERPRINT_FIELDS: tuple[str, ...] = ("npix", "num_maps", "num_chains", "sampler", "sampler_options", "num_levels",
                                       "steps_per_level", "sigma_max", "sigma_min", "final_denoise", "seed",
                                       "mass_threshold", "num_random")
_INT_FIELDS = ("npix", "num_maps", "num_chains", "num_levels", "steps_per_level", "seed", "num_random")
_FLOAT_FIELDS = ("sigma_max", "sigma_min", "mass_threshold")


def method_name(label: str) -> str:
    """The method name of the hybrid weights ``label`` (a key of ``config.weights``)."""
    return f"Hybrid posterior ({label})"


def hybrid_fingerprint(config: HaloPosteriorConfig | Mapping[str, Any], scale: str, label: str,
                       map_index: int | None = None, weights_sha256: str | None = None) -> dict[str, Any]:
    """Everything that determines the hybrid result of weights ``label`` on map ``map_index`` of ``scale`` (without
    ``map`` for ``None``), JSON-normalised; ``config`` a :class:`HaloPosteriorConfig` or the ``config`` dict of a
    result JSON. ``weights_sha256`` (the weights file's digest from its metadata, :func:`weights_digest`; ``None``
    for a prior without one) tells retrained weights of the same name apart."""
    cfg = dataclasses.asdict(config) if isinstance(config, HaloPosteriorConfig) else dict(config)
    missing = [k for k in FINGERPRINT_FIELDS + ("weights",) if k not in cfg]
    if missing:
        raise ValueError(f"config lacks the fingerprint fields {missing}")
    if label not in cfg["weights"]:
        raise ValueError(f"config has no hybrid weights labelled {label!r} (weights: {sorted(cfg['weights'])})")
    fp: dict[str, Any] = {"scale": str(scale), "method": method_name(label),
                          "weights": str(cfg["weights"][label]).format(scale=scale)}
    for key in FINGERPRINT_FIELDS:
        value = cfg[key]
        if key in _INT_FIELDS:
            value = int(value)
        elif key in _FLOAT_FIELDS:
            value = float(value)
        elif key == "sampler_options":
            value = dict(sorted(dict(value or {}).items()))
        fp[key] = value
    fp["weights_sha256"] = None if weights_sha256 is None else str(weights_sha256)
    if cfg.get("halo_clustering", "poisson") != "poisson":  # Poisson truths keep their (older) fingerprints
        fp["halo_clustering"] = str(cfg["halo_clustering"])
    if map_index is not None:
        fp["map"] = int(map_index)
    return json.loads(json.dumps(fp, sort_keys=True))


def weights_digest(name: str, scale: str) -> str | None:
    """The ``weights_sha256`` recorded in the metadata of the weights ``name`` as they resolve now at ``scale``
    (``None`` when the name resolves to nothing or the metadata has no digest)."""
    from core.priors.weights import read_metadata, resolve_weights

    try:
        return read_metadata(resolve_weights(COSMOS_FIELD_ARCMIN / SCALES[scale][0], name)).get("weights_sha256")
    except (ValueError, FileNotFoundError, OSError, KeyError):
        return None


def fingerprint_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ between two fingerprints (missing on one side counts), in a fixed order."""
    order = ("scale", "method", "weights") + FINGERPRINT_FIELDS + ("map",)
    keys = [k for k in order if k in a or k in b] + sorted((set(a) | set(b)) - set(order))
    return [k for k in keys if a.get(k, "<missing>") != b.get(k, "<missing>")]


def _describe_differences(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str],
                          old_name: str = "cached", new_name: str = "now") -> str:
    return ", ".join(f"{k} ({old_name} {old.get(k, '<missing>')!r}, {new_name} {new.get(k, '<missing>')!r})"
                     for k in keys)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "weights"


class HybridCache:
    """Per-map JSON files of hybrid results under ``directory`` (see the module docstring).

    An entry: ``{"format", "fingerprint", "metrics", "significance_at_haloes", "halo_pixels" (or None),
    "seconds", "nfe_per_chain", "check": {"num_haloes_in_mask", "masses_in_mask"}, "source", "written"}``.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def path(self, scale: str, label: str, map_index: int) -> Path:
        return self.directory / f"{scale}arcmin_{_slug(label)}_map{int(map_index):03d}.json"

    def load(self, label: str, fingerprint: Mapping[str, Any], check: Mapping[str, Any] | None = None,
             quiet: bool = False) -> dict[str, Any] | None:
        """The entry of ``fingerprint`` if its file exists, its fingerprint is identical and ``check`` (halo count
        and masses of the map) agrees; else ``None``, logging why an existing file is ignored."""
        path = self.path(fingerprint["scale"], label, fingerprint["map"])
        if not path.exists():
            return None
        log = logger.debug if quiet else logger.info
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            logger.warning("cache %s ignored: unreadable (%s)", path, err)
            return None
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            log("cache %s ignored: format %r, not %r", path, entry.get("format") if isinstance(entry, dict) else None,
                CACHE_FORMAT)
            return None
        cached = entry.get("fingerprint") or {}
        diff = fingerprint_differences(cached, fingerprint)
        if diff:
            log("cache %s ignored: fingerprint differs in %s", path, _describe_differences(cached, fingerprint, diff))
            return None
        stored = entry.get("check")
        if check is not None and stored is not None:
            n_old, n_new = stored.get("num_haloes_in_mask"), check["num_haloes_in_mask"]
            if n_old != n_new or not np.allclose(stored.get("masses_in_mask", []), check["masses_in_mask"], rtol=1e-6,
                                                 atol=0.0):
                log("cache %s ignored: the map's haloes differ (cached %r in the mask, now %r): the simulator changed?",
                    path, n_old, n_new)
                return None
        if check is not None and len(entry.get("significance_at_haloes", [])) != check["num_haloes_in_mask"]:
            log("cache %s ignored: %d halo values for %d haloes", path, len(entry.get("significance_at_haloes", [])),
                check["num_haloes_in_mask"])
            return None
        entry["path"] = str(path)
        return entry

    def store(self, label: str, entry: Mapping[str, Any]) -> Path:
        """Write ``entry`` (atomically: a temporary file renamed over the old one)."""
        fp = entry["fingerprint"]
        path = self.path(fp["scale"], label, fp["map"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({**entry, "format": CACHE_FORMAT,
                                   "written": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
        os.replace(tmp, path)
        return path


def import_previous(path: Path | str, config: HaloPosteriorConfig,
                    cache: HybridCache) -> dict[str, dict[str, list[int]]]:
    """Seed ``cache`` with the hybrid results of an earlier result JSON of this script at ``path`` (see the module
    docstring); ``{scale: {method: [maps]}}`` of the entries written. ``ValueError`` (naming the fields) when the old
    config's fingerprint differs from ``config``'s, when the file is no such JSON or holds no hybrid result for
    ``config``'s scales and weights. Existing valid entries (e.g. computed with halo-pixel values) are kept."""
    path = Path(path)
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--import-previous: cannot read {path}: {err}") from None
    if not isinstance(old, dict) or not isinstance(old.get("config"), dict) or not isinstance(old.get("scales"), dict):
        raise ValueError(f"--import-previous: {path} is not a result JSON of benchmarks.halo_posterior "
                         "(no 'config' / 'scales')")
    old_cfg = old["config"]
    found: dict[str, dict[str, list[int]]] = {}
    for scale, res in old["scales"].items():
        if scale not in config.scales:
            logger.info("import %s: scale %s′ is not in this run, skipped", path, scale)
            continue
        for label in config.weights:
            name = method_name(label)
            per_map = (res.get("per_map") or {}).get(name)
            if not per_map:
                logger.info("import %s: no %s at %s′", path, name, scale)
                continue
            try:
                old_fp = hybrid_fingerprint(old_cfg, scale, label)
            except ValueError as err:
                raise ValueError(f"--import-previous {path}: {err}") from None
            new_fp = hybrid_fingerprint(config, scale, label)
            diff = fingerprint_differences(old_fp, new_fp)
            # the old JSON names its weights but has no digest: its results are attributed to the files as they are now
            new_fp["weights_sha256"] = weights_digest(new_fp["weights"], scale)
            if diff:
                differing = _describe_differences(old_fp, new_fp, diff, "previous", "this run")
                raise ValueError(f"--import-previous {path}: its {name} at {scale}′ was run with a different "
                                 f"configuration: {differing}; its results are not this run's (rerun with the same "
                                 "options or drop --import-previous)")
            haloes = res["truth"]["haloes"]
            values = res["significance_at_haloes_per_halo"][name]
            counts = [int(h["num_haloes_above_threshold_in_mask"]) for h in haloes[:len(per_map)]]
            if len(haloes) < len(per_map) or sum(counts) != len(values):
                raise ValueError(f"--import-previous {path}: {name} at {scale}′ has {len(values)} halo significances "
                                 f"for {sum(counts)} haloes in its first {len(per_map)} maps")
            method = res["methods"][name]
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
            written: list[int] = []
            for i, metrics in enumerate(per_map):
                fp = {**new_fp, "map": i}
                check = {"num_haloes_in_mask": counts[i], "masses_in_mask": haloes[i].get("masses_in_mask", [])}
                if cache.load(label, fp, check, quiet=True) is not None:
                    logger.info("import %s: %s′ %s map %d already in the cache, kept", path, scale, name, i)
                    continue
                cache.store(label, {
                    "fingerprint": fp, "metrics": metrics,
                    "significance_at_haloes": values[offsets[i]:offsets[i + 1]], "halo_pixels": None,
                    "seconds": float(method.get("seconds", float("nan"))) / len(per_map), "seconds_approximate": True,
                    "nfe_per_chain": method.get("nfe_per_chain"), "check": check, "source": f"imported from {path}"})
                written.append(i)
            found.setdefault(scale, {})[name] = list(range(len(per_map)))
            logger.info("import %s: %s′ %s maps %s seeded into %s (%d new)", path, scale, name,
                        list(range(len(per_map))), cache.directory, len(written))
    if not found:
        methods = {s: [m for m in (r.get("per_map") or {}) if m.startswith("Hybrid")] for s, r in old["scales"].items()}
        raise ValueError(f"--import-previous {path}: no hybrid result for this run's scales {list(config.scales)} and "
                         f"weights {sorted(config.weights)} (it holds {methods})")
    return found


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


def heldout_truths(setup: ScaleSetup, num: int, seed: int = HELDOUT_SEED,
                   clustering: str = "poisson") -> tuple[np.ndarray, list[Any], dict[str, Any]]:
    """``num`` held-out halo-model truths ``(num, N, N)``, their catalogues and the simulator's description
    (``clustering``: :attr:`core.physics.halos.HaloModelConfig.clustering`)."""
    from core.physics.cosmology import SourceRedshifts
    from core.physics.halos import HaloModelConfig, halo_model_simulator

    simulator = halo_model_simulator(setup.geometry, HaloModelConfig(sources=SourceRedshifts.single_plane(1.0),
                                                                     clustering=clustering))
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


def run_scale(config: HaloPosteriorConfig, scale: str, notes: list[str],
              cache: HybridCache | None = None) -> dict[str, Any]:
    """All methods on the held-out mocks of one pixel scale (hybrid maps from / into ``cache`` when given)."""
    from core import pipeline
    from core.analysis.baselines import constrained_realisations, kaiser_squires_map
    from core.data.observation import NoiseModel, Observation

    start = time.perf_counter()
    setup = cosmos_patch(scale, config.npix)
    geometry, mask = setup.geometry, setup.mask
    sel = mask > 0
    power = pipeline.theory_power_map(geometry)
    truths, catalogues, simulator = heldout_truths(setup, config.num_maps, config.seed, config.halo_clustering)
    noise = NoiseModel(setup.noise_std)
    priors = _load_priors(config, setup, power, notes)
    labels = {method_name(label): label for label in config.weights}
    schedule = pipeline.make_schedule("geometric", config.sigma_max, config.sigma_min, config.num_levels,
                                      config.steps_per_level)
    hybrid_maps = config.hybrid_maps.get(scale, config.num_maps)
    per_method: dict[str, list[dict[str, float]]] = {}
    at_haloes: dict[str, list[float]] = {}
    halo_px: dict[str, list[dict[str, Any] | None]] = {}
    halo_meta: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    nfe: dict[str, float] = {}
    reused: dict[str, list[int]] = {}

    def add(name: str, metrics: dict[str, float], halo_sig: list[float], pixels: dict[str, Any] | None,
            secs: float) -> None:
        per_method.setdefault(name, []).append(metrics)
        at_haloes.setdefault(name, []).extend(halo_sig)
        halo_px.setdefault(name, []).append(pixels)
        seconds[name] = seconds.get(name, 0.0) + secs

    def record(name: str, metrics: dict[str, float], point: np.ndarray, std: np.ndarray | None, sig_map: np.ndarray,
               rows: np.ndarray, cols: np.ndarray, truth: np.ndarray, seed: int,
               t0: float) -> tuple[dict[str, float], list[float], dict[str, Any], float]:
        hs = halo_significance(sig_map, rows, cols, mask, config.num_random, seed)
        pixels = halo_pixel_values(point, std, truth, sig_map, rows, cols, mask, config.num_random, seed)
        metrics = {**metrics, "significance_random_mean": hs["at_random_mean"],
                   "significance_random_std": hs["at_random_std"]}
        secs = time.perf_counter() - t0
        add(name, metrics, hs["at_haloes"], pixels, secs)
        return metrics, hs["at_haloes"], pixels, secs

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
        ks_sig = ks / ks[sel].std()
        record("Kaiser-Squires", point_metrics(ks, truth, sel), ks, None, ks_sig, rows, cols, truth, random_seed, t0)
        reference = pipeline.build_problem(obs.shear, obs.noise_std, mask, geometry, prior="gaussian", power_map=power,
                                           truth=truth)
        t0 = time.perf_counter()
        wiener = np.asarray(reference.wiener, np.float64)
        record("Wiener filter", point_metrics(wiener, truth, sel), wiener, None, wiener / wiener[sel].std(), rows,
               cols, truth, random_seed, t0)
        t0 = time.perf_counter()
        exact = constrained_realisations(reference.likelihood, power, config.num_chains,
                                         seed=[config.seed + 2, 1000 * SCALES[scale][1] + i]).numpy().astype(np.float64)
        exact_mean, exact_std = exact.mean(0), exact.std(0, ddof=1)
        record("Gaussian posterior (exact)", sample_metrics(exact, truth, sel), exact_mean, exact_std,
               exact_mean / exact_std, rows, cols, truth, random_seed, t0)
        if i >= hybrid_maps:
            continue
        check = {"num_haloes_in_mask": int(rows.size), "masses_in_mask": inside.mass.tolist()}
        for name, (_, prior) in priors.items():
            label = labels[name]
            fingerprint = hybrid_fingerprint(config, scale, label, i,
                                             weights_sha256=getattr(prior, "metadata", {}).get("weights_sha256"))
            entry = cache.load(label, fingerprint, check) if cache is not None else None
            if entry is not None:
                add(name, entry["metrics"], list(entry["significance_at_haloes"]), entry.get("halo_pixels"),
                    float(entry.get("seconds") or 0.0))
                if entry.get("nfe_per_chain") is not None:
                    nfe[name] = float(entry["nfe_per_chain"])
                reused.setdefault(name, []).append(i)
                logger.info("%s′ map %d %s: reused %s (%s): rmse %.4f r %.3f cov95 %.3f", scale, i, name,
                            entry["path"], entry.get("source", "computed"), entry["metrics"]["rmse"],
                            entry["metrics"]["pearson"], entry["metrics"].get("coverage_95", float("nan")))
                continue
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
            metrics = sample_metrics(chains, truth, sel)
            nfe[name] = float(last.nfe) + (1.0 if config.final_denoise == "tweedie" else 0.0)
            chain_mean, chain_std = chains.mean(0), chains.std(0, ddof=1)
            metrics, halo_sig, pixels, secs = record(name, metrics, chain_mean, chain_std, chain_mean / chain_std,
                                                     rows, cols, truth, random_seed, t0)
            if cache is not None:
                path = cache.store(label, {"fingerprint": fingerprint, "metrics": metrics,
                                           "significance_at_haloes": halo_sig, "halo_pixels": pixels, "seconds": secs,
                                           "nfe_per_chain": nfe[name], "check": check, "source": "computed"})
                logger.info("%s′ map %d %s: cached in %s", scale, i, name, path)
            logger.info("%s′ map %d %s: rmse %.4f (Wiener %.4f) r %.3f cov95 %.3f top5 %.3f  %.0f s", scale, i, name,
                        metrics["rmse"], per_method["Wiener filter"][-1]["rmse"], metrics["pearson"],
                        metrics["coverage_95"], metrics["coverage_95_top5pct"], secs)
        logger.info("%s′ map %d/%d done (%.0f s)", scale, i + 1, config.num_maps, time.perf_counter() - start)
    for name, maps in reused.items():
        notes.append(f"{scale}′: {name} on maps {maps} reused from the cache {cache.directory if cache else ''} "
                     "(seconds: the original runs')")
    out = _summarise_scale(config, setup, per_method, at_haloes, halo_meta, seconds, nfe, priors, simulator,
                           truths, time.perf_counter() - start, halo_px)
    for name, maps in reused.items():
        out["methods"][name]["maps_from_cache"] = maps
    return out


def _summarise_scale(config: HaloPosteriorConfig, setup: ScaleSetup, per_method: dict[str, list[dict[str, float]]],
                     at_haloes: dict[str, list[float]], halo_meta: list[dict[str, Any]], seconds: dict[str, float],
                     nfe: dict[str, float], priors: Mapping[str, Any], simulator: dict[str, Any], truths: np.ndarray,
                     total: float, halo_px: Mapping[str, list[dict[str, Any] | None]] | None = None) -> dict[str, Any]:
    wiener = per_method["Wiener filter"]
    gaussian_haloes = at_haloes["Gaussian posterior (exact)"]
    halo_px = halo_px or {}
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
        if name in halo_px:
            entry["halo_pixels"] = pool_halo_pixels(halo_px[name])
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
        "halo_pixels_per_map": dict(halo_px),
        "total_seconds": round(total, 1),
    }


def run_benchmark(config: HaloPosteriorConfig, cache: HybridCache | Path | str | None = None) -> dict[str, Any]:
    """Every configured scale; a JSON-serialisable dict (config, per-scale aggregates, per-map values). ``cache``: a
    :class:`HybridCache` or its directory for the per-map hybrid results (``None``: no cache)."""
    config.validate()
    if cache is not None and not isinstance(cache, HybridCache):
        cache = HybridCache(cache)
    start = time.perf_counter()
    notes: list[str] = []
    scales = {scale: run_scale(config, scale, notes, cache) for scale in config.scales}
    return {
        "config": dataclasses.asdict(config),
        "expected_coverage_with_num_chains": expected_coverages(config.num_chains),
        "scales": scales,
        "notes": notes,
        "cache": {"dir": None if cache is None else str(cache.directory),
                  "reused": {s: {m: e["maps_from_cache"] for m, e in r["methods"].items() if "maps_from_cache" in e}
                             for s, r in scales.items()}},
        "load_average_end": list(os.getloadavg()),
        "total_seconds": round(time.perf_counter() - start, 1),
    }


# ------------------------------------------------------------------------------------------- report
def _layout_text(patch: Mapping[str, Any]) -> str:
    grid = f"the COSMOS {patch['cosmos_grid_npix']}² grid of {patch['pixel_size_arcmin']:.3g}′ pixels"
    if patch["layout"] == "rebin":
        return f"the whole COSMOS footprint and noise of {grid} resampled to {patch['npix']}²"
    return f"a {patch['npix']}² crop of {grid} at corner {tuple(patch['corner_row_col'])}"


def _cell(entry: Mapping[str, Any] | None, digits: int = 4) -> str:
    if not entry or not entry.get("n"):
        return "–"
    return fmt(entry, digits)


def halo_pixel_table(res: Mapping[str, Any]) -> list[str]:
    """The second markdown table of one scale: the halo-pixel statistics (:func:`pool_halo_pixels`); no lines for
    results without them."""
    rows = [(name, m["halo_pixels"]) for name, m in res["methods"].items() if m.get("halo_pixels")]
    if not rows:
        return []
    lines = [
        "| method | maps (haloes) | κ̂ at haloes | σ at haloes | true κ at haloes | truth mean random | "
        "truth median random | truth S* median random | κ̂ mean random | σ mean random | S median random |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, h in rows:
        missing = f", {h['num_maps_missing']} without" if h.get("num_maps_missing") else ""
        lines.append(
            f"| {name} | {h['num_maps']}{missing} ({h['truth_at_haloes']['n']}) | {_cell(h['kappa_hat_at_haloes'])} "
            f"| {_cell(h['std_at_haloes'])} | {_cell(h['truth_at_haloes'])} | {_cell(h['truth_mean_at_random'])} "
            f"| {_cell(h['truth_median_at_random'])} | {_cell(h['truth_significance_median_at_random'], 2)} "
            f"| {_cell(h['kappa_hat_mean_at_random'])} | {_cell(h['std_mean_at_random'])} "
            f"| {_cell(h['significance_median_at_random'], 2)} |")
    lines += ["", "Halo pixels: posterior mean κ̂, posterior std σ (– for KS/Wiener: no posterior) and true κ at the "
              "haloes above the threshold (pooled over haloes, ± sd/√n); random: the same random observed pixels as "
              "S random, per-map mean/median pooled over maps (± sd/√maps); S* = κ*/sd(κ* in the mask) is the truth's "
              "own 'significance' (a mean-zero, positively skewed field has most pixels below zero).", ""]
    return lines


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
            "cov 95 top 5% | cov 95 mean top 5% | S at haloes | S random | NFE | s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, m in res["methods"].items():
            vs = m.get("vs_wiener", {})
            lines.append(
                f"| {name} | {m['num_maps']} | {fmt(m['rmse'], 4)} | {fmt(vs.get('rmse'), 4, signed=True)} "
                f"| {fmt(m['pearson'])} | {fmt(vs.get('pearson'), 3, signed=True)} | {fmt(m.get('coverage_68'))} "
                f"| {fmt(m.get('coverage_95'))} | {fmt(m.get('coverage_68_top5pct'))} | {fmt(m.get('coverage_95_top5pct'))} "
                f"| {fmt(m.get('coverage_95_mean_top5pct'))} | {fmt(m['significance_at_haloes'], 2)} (n={m['significance_at_haloes']['n']}) "
                f"| {fmt(m['significance_random_mean'], 2)} | {m.get('nfe_per_chain') or '–'} | {m['seconds']:.0f} |")
        lines.append("")
        lines += halo_pixel_table(res)
    lines += [
        f"Ideal coverage with {cfg['num_chains']} samples: 68% → {exp['coverage_68']:.3f}, 95% → {exp['coverage_95']:.3f}. "
        "S = posterior mean/std at the pixel of each true halo above the threshold (pooled over maps, ± sd/√n) and "
        "at random observed pixels; KS and Wiener: the map over its rms in the mask. top 5%: pixels whose true κ is "
        "above its 95th percentile; mean top 5%: pixels whose posterior mean is above its 95th percentile (selected "
        "by the data: an exact posterior is calibrated there, unlike at the truth's top 5%; "
        f"benchmarks/conditional_coverage.py; – where a cached run predates it). KS smoothed with FWHM {cfg['ks_fwhm_arcmin']:g}′.",
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
    p.add_argument("--halo-clustering", choices=HALO_CLUSTERING, default=d.halo_clustering,
                   help="halo positions of the truths: 'poisson' (uniform) or 'biased' (following the large-scale field)")
    p.add_argument("--seed", type=int, default=d.seed, help="held-out seed word of truths, noise and chains")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where to write the JSON and markdown")
    p.add_argument("--tag", default=None, help="file stem (default halo_posterior or halo_posterior_quick)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="per-map cache of the hybrid results (default <output-dir>/cache/<tag>/)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the per-map hybrid cache")
    p.add_argument("--import-previous", type=Path, default=None, metavar="OLD.json",
                   help="seed the cache with the hybrid maps of an earlier result JSON of this script "
                        "(refused if its config differs)")
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
                              mass_threshold=args.mass_threshold, seed=args.seed, halo_clustering=args.halo_clustering)
    if args.quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    overrides = {"num_maps": args.num_maps, "num_chains": args.chains, "num_levels": args.levels}
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stem = args.tag or ("halo_posterior_quick" if args.quick else "halo_posterior")
    cache_dir = None if args.no_cache else (args.cache_dir or args.output_dir / "cache" / stem)

    def go() -> dict[str, Any]:
        config = config_from_args(args)
        config.validate()
        if args.import_previous is not None and cache_dir is None:
            raise ValueError("--import-previous needs the cache: drop --no-cache")
        cache = None if cache_dir is None else HybridCache(cache_dir)
        imported = None if args.import_previous is None else import_previous(args.import_previous, config, cache)
        result = run_benchmark(config, cache)
        if imported is not None:
            result["cache"]["imported_from"] = {"path": str(args.import_previous), "maps": imported}
        return result

    result = run_or_report("halo_posterior", go)
    if result is None:
        return 2
    result["command"] = "python -m benchmarks.halo_posterior " + " ".join(sys.argv[1:] if argv is None else argv)
    write_report(args.output_dir, stem, result, markdown_table(result))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
