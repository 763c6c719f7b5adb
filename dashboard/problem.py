r"""Turn dashboard settings (and user uploads) into the core objects of one sampling run. No UI.

:func:`build_problem` assembles, in order,

1. the map geometry (simulated grid, the COSMOS 120 px × 0.87′ field, or the uploaded maps' size),
2. the theory power map ``P_k = C_ℓ(ℓ_k)/Ω_pix × window²`` for sources at ``source_redshift``,
3. the data: a simulated truth κ (lognormal or Gaussian field with power ``P_k``) observed as
   ``γ = M(Pκ + n)``, or the COSMOS / uploaded shear with its own noise maps,
4. the mask ``M`` (preset, upload, or drawn rectangles/polygons rasterised at pixel centres),
5. the likelihood, the prior (Gaussian theory or hybrid network) and their posterior score,
6. the σ schedule, and the Kaiser–Squires and Wiener-filter baselines,

and returns them in a frozen :class:`Problem`. :func:`sample_snapshots` then runs the sampling driver
``core.inference.driver.sample_posterior`` on it. Upload parsers (:func:`parse_shear_upload`,
:func:`parse_mask_upload`) validate user files and raise ``ValueError`` with a readable message
(not FITS, wrong shape, NaNs, all-zero mask, file too large).
"""
from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from dashboard.settings import (
    COSMOS,
    COSMOS_NPIX,
    HYBRID_PRIOR,
    MASK_PRESET_KEYS,
    SIMULATED_LOGNORMAL,
    UPLOADED,
    DashboardSettings,
)

__all__ = [
    "MAX_UPLOAD_BYTES",
    "UserInputs",
    "Problem",
    "parse_shear_upload",
    "parse_mask_upload",
    "drawn_mask",
    "build_problem",
    "sample_snapshots",
    "binned_power",
    "convergence_diagnostics",
]

logger = logging.getLogger(__name__)

#: Largest accepted upload (a 1024² float64 (4, N, N) cube is 32 MiB).
MAX_UPLOAD_BYTES = 40 * 1024 * 1024
NUM_POWER_BINS = 12


# --------------------------------------------------------------------------- uploads
def _check_size(data: bytes | None, what: str) -> bytes:
    if data is None or len(data) == 0:
        raise ValueError(f"{what}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{what}: the file is {len(data) / 2**20:.1f} MiB; the limit is "
                         f"{MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
    return bytes(data)


def _fits_images(data: bytes, what: str) -> list[np.ndarray]:
    from astropy.io import fits

    if not data[:9] == b"SIMPLE  =":
        raise ValueError(f"{what}: not a FITS file (it must start with a 'SIMPLE  =' header card)")
    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            images = [np.asarray(h.data, dtype=np.float64) for h in hdul
                      if getattr(h, "data", None) is not None and getattr(h, "is_image", False)]
    except Exception as err:  # astropy raises many types for corrupt files
        raise ValueError(f"{what}: could not read the FITS file ({err})") from err
    if not images:
        raise ValueError(f"{what}: the FITS file contains no image data")
    return images


def parse_shear_upload(data: bytes, filename: str = "upload.fits") -> tuple[np.ndarray, np.ndarray | None]:
    """Read uploaded shear maps: ``(γ (2, N, N) float32, std (2, N, N) float32 or None)``.

    Accepted layouts: one image HDU holding a cube ``(2, N, N)`` = [γ₁, γ₂] or ``(4, N, N)`` =
    [γ₁, γ₂, σ₁, σ₂]; or separate 2-D image HDUs γ₁, γ₂ (and optionally σ₁, σ₂). Maps must be square
    with an even side ≥ 16; shear must be finite (put 0 on unobserved pixels and upload a mask).
    """
    what = f"shear upload {filename!r}"
    images = _fits_images(_check_size(data, what), what)
    if images[0].ndim == 3:
        cube = images[0]
    elif all(im.ndim == 2 for im in images) and len(images) in (2, 3, 4):
        if len({im.shape for im in images}) != 1:
            raise ValueError(f"{what}: the image HDUs have different shapes {[im.shape for im in images]}")
        cube = np.stack(images[:4] if len(images) == 4 else images[:2])
    else:
        raise ValueError(f"{what}: expected a (2, N, N) or (4, N, N) cube, or 2 or 4 image HDUs of shape (N, N); "
                         f"found shapes {[im.shape for im in images]}")
    if cube.ndim != 3 or cube.shape[0] not in (2, 4):
        raise ValueError(f"{what}: cube has shape {cube.shape}; expected (2, N, N) or (4, N, N)")
    n_rows, n_cols = cube.shape[1:]
    if n_rows != n_cols or n_rows % 2 or n_rows < 16:
        raise ValueError(f"{what}: maps are {n_rows}×{n_cols}; they must be square with an even side of at least 16")
    if n_rows > 512:
        raise ValueError(f"{what}: maps are {n_rows}×{n_cols}; the dashboard handles at most 512×512")
    shear = cube[:2]
    bad = ~np.isfinite(shear)
    if bad.any():
        raise ValueError(f"{what}: shear contains {int(bad.sum())} NaN or infinite values; set unobserved "
                         "pixels to 0 and upload a mask instead")
    std = None
    if cube.shape[0] == 4:
        std = cube[2:]
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError(f"{what}: the noise std maps must be finite and non-negative")
    return shear.astype(np.float32), None if std is None else std.astype(np.float32)


def parse_mask_upload(data: bytes, filename: str = "mask.fits") -> np.ndarray:
    """Read an uploaded mask (FITS image or PNG; non-zero / bright = observed) as a 0/1 float32 array."""
    what = f"mask upload {filename!r}"
    data = _check_size(data, what)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        from matplotlib.image import imread

        try:
            img = np.asarray(imread(io.BytesIO(data), format="png"), dtype=np.float64)
        except Exception as err:
            raise ValueError(f"{what}: could not decode the PNG ({err})") from err
        if img.ndim == 3:  # RGB(A): observed where the mean of the colour channels is bright
            img = img[..., :3].mean(axis=-1)
        arr = np.flipud(img)  # image rows run top-down; map rows run with x₂ upwards
        mask = (arr > 0.5).astype(np.float32)
    else:
        images = [im for im in _fits_images(data, what) if im.ndim == 2]
        if not images:
            raise ValueError(f"{what}: the FITS file has no 2-D image")
        arr = images[0]
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: the mask contains NaN or infinite values")
        mask = (arr != 0).astype(np.float32)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"{what}: the mask must be a square image, got shape {mask.shape}")
    if not mask.any():
        raise ValueError(f"{what}: the mask is all zero (no observed pixel)")
    return mask


def drawn_mask(geometry: Any, boxes: Mapping[str, Sequence[float]] | None,
               polygons: Mapping[str, Sequence[Sequence[float]]] | None) -> np.ndarray:
    """Rasterise drawn rectangles and polygons (in pixel coordinates x = column, y = row) as masked regions.

    ``boxes`` is a BoxEdit-style dict ``{"x0": [...], "y0": [...], "x1": [...], "y1": [...]}``,
    ``polygons`` a PolyDraw-style dict ``{"xs": [[...], ...], "ys": [[...], ...]}``.
    """
    from core.data.observation import full_mask, mask_from_polygons

    shapes: list[list[tuple[float, float]]] = []
    if boxes:
        for x0, y0, x1, y1 in zip(boxes.get("x0", []), boxes.get("y0", []), boxes.get("x1", []), boxes.get("y1", [])):
            shapes.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    if polygons:
        for xs, ys in zip(polygons.get("xs", []), polygons.get("ys", [])):
            if len(xs) >= 3:
                shapes.append(list(zip(xs, ys)))
    if not shapes:
        return full_mask(geometry)
    return mask_from_polygons(shapes, geometry, mode="exclude")


@dataclass
class UserInputs:
    """What the user supplied through the page: uploaded arrays and drawn shapes (pixel coordinates)."""

    shear: np.ndarray | None = None
    shear_std: np.ndarray | None = None
    shear_name: str = ""
    mask: np.ndarray | None = None
    mask_name: str = ""
    boxes: dict[str, list[float]] = field(default_factory=dict)
    polygons: dict[str, list[list[float]]] = field(default_factory=dict)


# --------------------------------------------------------------------------- problem
@dataclass(frozen=True)
class Problem:
    """Everything one run needs and every static view shows."""

    settings: dict[str, Any]
    geometry: Any
    observation: Any
    posterior: Any
    schedule: Any
    power_map: np.ndarray
    truth: np.ndarray | None
    kaiser_squires: np.ndarray
    wiener: np.ndarray
    ell_edges: np.ndarray
    ell_centres: np.ndarray
    theory_power: np.ndarray
    truth_power: np.ndarray | None
    kappa_range: tuple[float, float]
    wcs: Any = None
    label: str = ""

    @property
    def mask(self) -> np.ndarray:
        return np.asarray(self.observation.mask)


def binned_power(maps: np.ndarray, geometry: Any, ell_edges: np.ndarray) -> np.ndarray:
    """Binned power of maps ``(..., N, N)`` in power-map units (``core.physics.power_spectrum``)."""
    from core.physics.power_spectrum import binned_power_spectrum

    _, power, _ = binned_power_spectrum(maps, geometry, ell_edges=ell_edges)
    return np.asarray(power)




def _theory_power_map(geometry: Any, source_redshift: float) -> np.ndarray:
    from core.physics.cosmology import TheorySpectrum

    spectrum = TheorySpectrum.from_ccl(sources=float(source_redshift))
    return np.asarray(spectrum.power_map(geometry, pixel_window=True), dtype=np.float64)


def _seed(seed: int, salt: int) -> list[int]:
    return [int(seed), int(salt)]


def _mask_for(settings: DashboardSettings, geometry: Any, inputs: UserInputs, data_mask: np.ndarray | None) -> np.ndarray:
    from core.data.observation import MASK_PRESETS, resample_mask

    choice = settings.mask
    if choice == "uploaded":
        if inputs.mask is None:
            raise ValueError("mask: choose a mask file to upload first (or pick another mask)")
        mask = inputs.mask
        if mask.shape != geometry.shape:
            mask = resample_mask(mask, geometry.npix)
    elif choice == "drawn":
        mask = drawn_mask(geometry, inputs.boxes, inputs.polygons)
    else:
        mask = MASK_PRESETS[MASK_PRESET_KEYS[choice]](geometry, seed=_seed(settings.seed, 1))
    mask = np.asarray(mask, dtype=np.float32)
    if data_mask is not None:
        mask = mask * (np.asarray(data_mask) > 0)
    if not mask.any():
        raise ValueError(f"mask: the {choice!r} mask leaves no observed pixel")
    return mask


def build_problem(settings: DashboardSettings | Mapping[str, Any], inputs: UserInputs | None = None) -> Problem:
    """Build the observation, posterior, schedule and baselines of one run (see the module docstring)."""
    from core.analysis.baselines import kaiser_squires_map, wiener_filter
    from core.physics.geometry import MapGeometry
    from core.inference.likelihood import ShearLikelihood
    from core.data.observation import NoiseModel, Observation
    from core.inference.posterior import PosteriorScore
    from core.physics.power_spectrum import bin_power_map, default_ell_edges

    if not isinstance(settings, DashboardSettings):
        settings = DashboardSettings(**dict(settings))
    settings.validate()
    inputs = inputs or UserInputs()
    schedule = settings.schedule()
    truth = None
    wcs = None
    data_mask = None
    data_std = None

    if settings.data_source == COSMOS:
        from core.data.fits_io import load_cosmos

        cosmos = load_cosmos(npix=COSMOS_NPIX)
        geometry = cosmos.geometry
        shear, data_std, data_mask, wcs = cosmos.shear, cosmos.noise_std, cosmos.mask, cosmos.wcs
    elif settings.data_source == UPLOADED:
        if inputs.shear is None:
            raise ValueError("data_source: upload a shear FITS file first (or choose simulated data)")
        geometry = MapGeometry(inputs.shear.shape[-1], settings.pixel_size_arcmin)
        shear, data_std = inputs.shear, inputs.shear_std
        data_mask = None
    else:
        geometry = MapGeometry(settings.npix, settings.pixel_size_arcmin)
        shear = None

    power_map = _theory_power_map(geometry, settings.source_redshift)
    mask = _mask_for(settings, geometry, inputs, data_mask)

    if settings.noise_model == "data std maps":
        if data_std is None:
            raise ValueError("noise_model: these data have no std maps; use 'galaxy density'")
        noise = NoiseModel.from_std_maps(np.where(mask[None] > 0, data_std, 0.0))
    else:
        noise = NoiseModel.from_galaxy_density(geometry, settings.sigma_e, settings.n_gal_arcmin2)

    if shear is None:
        from core.physics.fields import gaussian_field, lognormal_field

        field_fn = lognormal_field if settings.data_source == SIMULATED_LOGNORMAL else gaussian_field
        truth = np.asarray(field_fn(power_map, 1, seed=_seed(settings.seed, 2)))[0]
        observation = Observation.simulated(geometry, truth, noise, mask, seed=_seed(settings.seed, 3),
                                            metadata={"source": settings.data_source})
    else:
        observation = Observation(geometry, np.asarray(shear, np.float32) * mask[None], noise.std, mask, wcs=wcs,
                                  metadata={"source": settings.data_source})

    likelihood = ShearLikelihood.from_observation(observation)
    if settings.prior == HYBRID_PRIOR:
        from core.priors.hybrid import shipped_prior

        prior = shipped_prior(geometry)
    else:
        from core.priors.gaussian import GaussianPrior

        prior = GaussianPrior(geometry, power_map)
    posterior = PosteriorScore(likelihood, prior)

    ks = np.asarray(kaiser_squires_map(observation.shear, geometry, mask=mask,
                                       smoothing_fwhm_arcmin=2.0 * geometry.pixel_size_arcmin)[0])
    wiener = np.asarray(wiener_filter(likelihood, power_map).kappa)
    ell_edges = default_ell_edges(geometry, NUM_POWER_BINS)
    ell_centres, theory, _ = bin_power_map(power_map, geometry, ell_edges)
    truth_power = None if truth is None else binned_power(truth[None], geometry, ell_edges)[0]
    reference = truth if truth is not None else wiener
    half = float(np.nanpercentile(np.abs(reference), 99.5)) or 1e-3
    return Problem(
        settings=settings.as_dict(), geometry=geometry, observation=observation, posterior=posterior,
        schedule=schedule, power_map=power_map, truth=truth, kaiser_squires=ks, wiener=wiener,
        ell_edges=ell_edges, ell_centres=ell_centres, theory_power=theory,
        truth_power=truth_power, kappa_range=(-half, half), wcs=wcs, label=settings.prior)


def sample_snapshots(problem: Problem, cancel: threading.Event) -> Iterator[Any]:
    """Run ``core.inference.driver.sample_posterior`` on a prepared problem (the driver contract)."""
    from core.inference.driver import sample_posterior

    s = problem.settings
    return sample_posterior(
        problem.posterior, problem.schedule, num_chains=int(s["num_chains"]), sampler=s["sampler"],
        num_leapfrog_steps=int(s["num_leapfrog_steps"]), init="wiener", seed=int(s["seed"]),
        snapshot_every=int(s["snapshot_every"]),
        final_denoise=None if s["final_denoise"] == "none" else s["final_denoise"], cancel=cancel)


def convergence_diagnostics(snapshot: Any) -> tuple[float, float, int]:
    """``(max R̂, min ESS, draws)`` over the traced pixels, from the draws at the snapshot's current σ level.

    Annealing makes the earlier levels non-stationary, so only the transitions made at the last visited σ
    enter ``core.analysis.summaries.rhat_ess`` (chains on axis 1). Raises ``ValueError`` when fewer than 4 draws or
    2 chains are available.
    """
    from core.analysis.summaries import rhat_ess

    traces = getattr(snapshot, "traces", None) or {}
    sigma = np.asarray(traces.get("sigma", []), np.float64)
    pixel_keys = [k for k in traces if k.startswith("kappa[")]
    if sigma.size == 0 or not pixel_keys:
        raise ValueError("the snapshot has no pixel traces")
    at_level = np.isclose(sigma, sigma[-1], rtol=1e-6, atol=0.0)
    start = sigma.size - int(np.argmin(at_level[::-1])) if not at_level.all() else 0
    history = np.stack([np.asarray(traces[k], np.float64)[start:] for k in pixel_keys], axis=-1)  # (T, C, K)
    if history.shape[0] < 4:
        raise ValueError(f"only {history.shape[0]} draws at the current σ level (need 4)")
    if history.ndim < 3 or history.shape[1] < 2:
        raise ValueError("R-hat needs at least 2 chains")
    rhat, ess = rhat_ess(history)
    return float(np.max(rhat)), float(np.min(ess)), int(history.shape[0])
