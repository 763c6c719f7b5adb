r"""Dashboard settings (and user inputs) → one sampling problem, through :mod:`core.pipeline`. No UI.

The core's assembly layer wires the chain observation → likelihood → prior → posterior (one theory power map
``P_k = C_ℓ(ℓ_k)/Ω_pix × window²``, one Wiener map per run, cached on the problem). This module only decides what
the page asks for:

1. the geometry (simulated grid, the COSMOS 120 px × 0.87′ field, or the uploaded maps' size),
2. the mask ``M`` (a preset of ``core.data.observation.MASK_PRESETS``, an upload, or drawn shapes),
3. the data: a simulated truth (``core.pipeline.simulated_problem``), COSMOS or uploaded shear with its noise
   (``core.pipeline.build_problem``),

and adds what the views show: the Kaiser–Squires map, ℓ bins with the binned theory and truth spectra, and the
symmetric colour range ``[−a, a]`` (``a`` the 99.5th percentile of ``|κ|`` of the truth, else of the Wiener map).
:func:`sample_snapshots` runs ``core.pipeline.run`` on it with the Wiener map passed on as the chains' centre.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from dashboard.settings import (
    COSMOS,
    COSMOS_NPIX,
    STD_MAPS,
    UPLOADED,
    DashboardSettings,
)
from dashboard.uploads import drawn_mask

__all__ = ["UserInputs", "Problem", "build_problem", "sample_snapshots", "binned_power", "NUM_POWER_BINS"]

NUM_POWER_BINS = 12


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


@dataclass(frozen=True)
class Problem:
    """One run's core problem (``core``: geometry, shear, mask, likelihood, prior, posterior, power map, truth,
    Wiener map) plus its schedule, settings and what the static views show."""

    settings: dict[str, Any]
    core: Any
    schedule: Any
    kaiser_squires: np.ndarray
    ell_edges: np.ndarray
    ell_centres: np.ndarray
    theory_power: np.ndarray
    truth_power: np.ndarray | None
    kappa_range: tuple[float, float]
    wcs: Any = None
    label: str = ""

    geometry = property(lambda self: self.core.geometry)
    posterior = property(lambda self: self.core.posterior)
    power_map = property(lambda self: np.asarray(self.core.power_map))
    truth = property(lambda self: None if self.core.truth is None else np.asarray(self.core.truth))
    wiener = property(lambda self: np.asarray(self.core.wiener))
    shear = property(lambda self: np.asarray(self.core.shear))
    mask = property(lambda self: np.asarray(self.core.mask))


def binned_power(maps: np.ndarray, geometry: Any, ell_edges: np.ndarray) -> np.ndarray:
    """Binned power of maps ``(..., N, N)`` in power-map units (``core.physics.power_spectrum``)."""
    from core.physics.power_spectrum import binned_power_spectrum

    _, power, _ = binned_power_spectrum(maps, geometry, ell_edges=ell_edges)
    return np.asarray(power)


def _mask_for(settings: DashboardSettings, geometry: Any, inputs: UserInputs, data_mask: np.ndarray | None) -> np.ndarray:
    from core.data.observation import MASK_PRESETS, resample_mask

    choice = settings.mask
    if choice == "uploaded":
        if inputs.mask is None:
            raise ValueError("mask: choose a mask file to upload first (or pick another mask)")
        mask = inputs.mask if inputs.mask.shape == geometry.shape else resample_mask(inputs.mask, geometry.npix)
    elif choice == "drawn":
        mask = drawn_mask(geometry, inputs.boxes, inputs.polygons)
    else:
        mask = MASK_PRESETS[choice](geometry, seed=[int(settings.seed), 1])
    mask = np.asarray(mask, dtype=np.float32)
    if data_mask is not None:
        mask = mask * (np.asarray(data_mask) > 0)
    if not mask.any():
        raise ValueError(f"mask: the {choice!r} mask leaves no observed pixel")
    return mask


def _core_problem(settings: DashboardSettings, inputs: UserInputs) -> tuple[Any, Any]:
    """``(core problem, wcs)`` of the settings, built by ``core.pipeline``."""
    from core import pipeline
    from core.physics.geometry import MapGeometry

    prior, z = settings.prior, float(settings.source_redshift)
    if settings.data_source in (COSMOS, UPLOADED):
        if settings.data_source == COSMOS:
            from core.data.fits_io import load_cosmos

            cosmos = load_cosmos(npix=COSMOS_NPIX)
            geometry, shear, std, data_mask, wcs = cosmos.geometry, cosmos.shear, cosmos.noise_std, cosmos.mask, cosmos.wcs
        else:
            if inputs.shear is None:
                raise ValueError("data_source: upload a shear FITS file first (or choose simulated data)")
            geometry = MapGeometry(inputs.shear.shape[-1], settings.pixel_size_arcmin)
            shear, std, data_mask, wcs = inputs.shear, inputs.shear_std, None, None
        mask = _mask_for(settings, geometry, inputs, data_mask)
        if settings.noise_model == STD_MAPS:
            if std is None:
                raise ValueError("noise_model: these data have no std maps; use 'galaxy_density'")
            noise_std = np.where(mask[None] > 0, std, 0.0)
        else:
            noise_std = np.full((2,) + geometry.shape, settings.noise_std(), np.float32)
        problem = pipeline.build_problem(np.asarray(shear, np.float32) * mask[None], noise_std, mask, geometry,
                                         prior=prior, z_source=z)
        return problem, wcs
    geometry = MapGeometry(int(settings.npix), float(settings.pixel_size_arcmin))
    mask = _mask_for(settings, geometry, inputs, None)
    problem = pipeline.simulated_problem(int(settings.npix), float(settings.pixel_size_arcmin),
                                         source=settings.data_source, mask=mask, sigma_e=float(settings.sigma_e),
                                         n_gal=float(settings.n_gal_arcmin2), prior=prior, seed=int(settings.seed),
                                         z_source=z)
    return problem, None


def build_problem(settings: DashboardSettings | Mapping[str, Any], inputs: UserInputs | None = None) -> Problem:
    """The core problem of the settings and the display quantities of the module docstring."""
    from core.analysis.baselines import kaiser_squires_map
    from core.physics.power_spectrum import bin_power_map, default_ell_edges

    if not isinstance(settings, DashboardSettings):
        settings = DashboardSettings(**dict(settings))
    settings.validate()
    schedule = settings.make_schedule()
    core_problem, wcs = _core_problem(settings, inputs or UserInputs())
    geometry = core_problem.geometry
    mask = np.asarray(core_problem.mask)
    ks = kaiser_squires_map(np.asarray(core_problem.shear), geometry, mask=mask,  # smoothed for display
                            smoothing_fwhm_arcmin=2.0 * geometry.pixel_size_arcmin)[0]
    ell_edges = default_ell_edges(geometry, NUM_POWER_BINS)
    ell_centres, theory, _ = bin_power_map(np.asarray(core_problem.power_map), geometry, ell_edges)
    truth = core_problem.truth
    truth_power = None if truth is None else binned_power(np.asarray(truth)[None], geometry, ell_edges)[0]
    reference = np.asarray(truth if truth is not None else core_problem.wiener)  # the Wiener map: computed once
    half = float(np.nanpercentile(np.abs(reference), 99.5)) or 1e-3
    return Problem(settings=settings.as_dict(), core=core_problem, schedule=schedule,
                   kaiser_squires=np.asarray(ks, np.float32), ell_edges=ell_edges, ell_centres=np.asarray(ell_centres),
                   theory_power=np.asarray(theory), truth_power=truth_power, kappa_range=(-half, half), wcs=wcs,
                   label=settings.prior)


def _sampler_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    s = DashboardSettings(**{k: v for k, v in settings.items() if k != "name"})
    return s.sampler_options()


def sample_snapshots(problem: Problem, cancel: threading.Event, **overrides: Any) -> Iterator[Any]:
    """The snapshot stream of ``core.pipeline.run`` on a prepared problem (``overrides`` replace settings)."""
    s = {**problem.settings, **overrides}
    options = _sampler_settings(s)
    common = dict(num_chains=int(s["num_chains"]), init=s["init"], seed=int(s["seed"]), cancel=cancel,
                  chunk_seconds=float(s["chunk_seconds"]), final_denoise=s["final_denoise"])
    from core import pipeline

    return pipeline.run(problem.core, sampler=s["sampler"], schedule=problem.schedule, **common, **options)
