r"""The one place that wires a problem: observation → likelihood → prior → posterior → schedule → sampler → run.

.. code-block:: text

    shear γ (2,N,N), noise σ_n, mask M ──► Observation ──► ShearLikelihood  L_σ(γ | κ)
    theory_power_map(geometry, z_s) ──► P_k ──► build_prior("gaussian" | "hybrid") ─┐
                                                                                    ▼
                       PosteriorScore  s_σ(κ) = ∇log L_σ(γ | κ) + ∇log p_σ(κ)   (Problem.posterior)
                                                                                    │
    make_schedule(σ_max → σ_min, L levels × n steps) ──► make_sampler(name, **options) (registry)
                                                                                    │
    Problem.wiener (computed once) ──► driver.sample(initial_centre=…) ──► Snapshot stream

* :func:`theory_power_map` — the power map ``P_k`` of the theory C_ℓ for a source redshift (the one
  implementation, :func:`core.physics.cosmology.theory_power_map`, re-exported).
* :func:`build_prior` — ``"gaussian"`` (``N(0, F⁻¹ diag P F)``) or ``"hybrid"`` (that Gaussian score plus a learned
  residual; the shipped weights for the map's pixel scale unless ``weights`` names others).
* :class:`Problem` — the wired problem; ``wiener`` (the Wiener-filter map, the posterior mean of the Gaussian
  model) and ``kaiser_squires`` are computed once and cached.
* :func:`build_problem`, :func:`simulated_problem`, :func:`cosmos_problem` — from arrays, from a simulated truth
  (lognormal, Gaussian or halo-model field through ``γ = M(Pκ + n)``), from the shipped COSMOS data.
* :func:`make_schedule`, :func:`make_sampler`, :func:`run` — the schedule, a registered sampler, the run (a
  generator of :class:`~core.inference.driver.Snapshot`).

Seeds of :func:`simulated_problem`: mask preset ``seed``; truth ``[seed, 2]``; shape noise ``[seed, 3]`` (the
dashboard's convention), so a ``(seed, settings)`` pair always gives the same observation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from core.options import DATA_SOURCES, PRIORS, SCHEDULE_OPTIONS, option, sampler_spec
from core.options import MASKS as MASK_NAMES
from core.physics.cosmology import DEFAULT_SOURCE_REDSHIFT, theory_power_map
from core.physics.geometry import MapGeometry

__all__ = [
    "theory_power_map",
    "HALO_SOURCES",
    "halo_source_config",
    "build_prior",
    "Problem",
    "build_problem",
    "simulated_problem",
    "cosmos_problem",
    "make_schedule",
    "make_sampler",
    "run",
    "MASKS",
    "SIMULATED_SOURCES",
]

#: Mask names of :func:`simulated_problem` (:data:`core.options.MASKS`) → keys of
#: :data:`core.data.observation.MASK_PRESETS`.
MASKS: dict[str, str] = dict(zip(MASK_NAMES, ("full", "stars", "stripes", "stars+stripes", "cosmos")))
#: Simulated truth kinds (the data sources other than real data).
SIMULATED_SOURCES = tuple(s for s in DATA_SOURCES if s != "cosmos")


def _weights_module() -> Any:
    """The module holding the weight lookup (``core.priors.weights``, or ``core.priors.hybrid`` before the move)."""
    try:
        from core.priors import weights
    except ImportError:  # pragma: no cover - older layout
        from core.priors import hybrid as weights
    return weights


# ------------------------------------------------------------------------------------------- prior
def build_prior(kind: str, geometry: MapGeometry, power_map: np.ndarray | None = None, weights: str | Path | None = None,
                z_source: float = DEFAULT_SOURCE_REDSHIFT) -> Any:
    """The prior ``kind`` (``"gaussian"`` or ``"hybrid"``) on ``geometry``.

    ``power_map`` defaults to :func:`theory_power_map` at ``z_source``; the hybrid prior's Gaussian part uses it
    too. ``weights`` (hybrid only): ``None`` for the shipped weights matching the pixel scale, or a path / stem /
    shipped model name (:func:`core.priors.weights.resolve_weights`).
    """
    from core.priors.gaussian import GaussianPrior

    if kind not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {kind!r}")
    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    if weights is not None and kind != "hybrid":
        raise ValueError(f"weights only apply to the hybrid prior, got prior={kind!r} with weights={weights!r}")
    power = theory_power_map(geometry, z_source) if power_map is None else np.asarray(power_map, dtype=np.float64)
    gaussian = GaussianPrior(geometry, power)
    if kind == "gaussian":
        return gaussian
    lookup = _weights_module()
    if weights is None:
        return lookup.shipped_prior(geometry, gaussian_prior=gaussian)
    return lookup.load_hybrid_prior(lookup.resolve_weights(geometry, weights), geometry, gaussian_prior=gaussian)


# ------------------------------------------------------------------------------------------- problem
@dataclass
class Problem:
    """A wired posterior problem (see the module docstring); ``truth`` is the simulated κ when known."""

    geometry: MapGeometry
    shear: np.ndarray
    noise_std: np.ndarray
    mask: np.ndarray
    likelihood: Any
    prior: Any
    posterior: Any
    power_map: np.ndarray | None
    truth: np.ndarray | None = None
    wcs: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def wiener(self) -> np.ndarray:
        """The Wiener-filter map ``(N, N)`` with the prior's power map (computed once; Kaiser–Squires without one)."""
        if self.power_map is None:
            return self.kaiser_squires
        from core.analysis.baselines import wiener_filter

        return np.asarray(wiener_filter(self.likelihood, self.power_map).kappa)

    @cached_property
    def kaiser_squires(self) -> np.ndarray:
        """The Kaiser–Squires E-mode map ``(N, N)`` of the masked shear, smoothed with the default 1′ FWHM Gaussian of
        :func:`core.analysis.baselines.kaiser_squires_map` (computed once)."""
        from core.analysis.baselines import kaiser_squires_map

        return np.asarray(kaiser_squires_map(self.shear, self.geometry, mask=self.mask)[0])

    def initial_centre(self, init: Any) -> np.ndarray | None:
        """The cached Wiener map for ``init="wiener"``, else ``None`` (the driver needs no centre)."""
        return self.wiener if isinstance(init, str) and init == "wiener" else None


def build_problem(shear: Any, noise_std: Any, mask: Any, geometry: MapGeometry, prior: Any = "gaussian",
                  z_source: float = DEFAULT_SOURCE_REDSHIFT, weights: str | Path | None = None,
                  truth: np.ndarray | None = None, power_map: np.ndarray | None = None, wcs: Any = None,
                  metadata: Mapping[str, Any] | None = None) -> Problem:
    """A :class:`Problem` from shear ``(2, N, N)``, noise std ``(N, N)``/``(2, N, N)`` and a mask (``None``: all
    observed). ``prior``: ``"gaussian"``, ``"hybrid"`` or an already built prior object (with ``.score``)."""
    from core.data.observation import Observation, full_mask
    from core.inference.likelihood import ShearLikelihood
    from core.inference.posterior import PosteriorScore

    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    mask = full_mask(geometry) if mask is None else mask
    observation = Observation(geometry, shear, noise_std, mask, wcs=wcs, metadata=dict(metadata or {}))
    likelihood = ShearLikelihood.from_observation(observation)
    if isinstance(prior, str):
        prior = build_prior(prior, geometry, power_map=power_map, weights=weights, z_source=z_source)
    elif not callable(getattr(prior, "score", None)):
        raise ValueError(f"prior must be one of {PRIORS} or a prior object with .score, got {prior!r}")
    posterior = PosteriorScore(likelihood, prior)
    return Problem(geometry, np.asarray(observation.shear), np.asarray(observation.noise_std),
                   np.asarray(observation.mask), likelihood, prior, posterior,
                   None if posterior.power_map is None else np.asarray(posterior.power_map),
                   truth=None if truth is None else np.asarray(truth, dtype=np.float32), wcs=wcs,
                   metadata=dict(observation.metadata))


HALO_SOURCES = ("halo_model", "halo_model_clustered")


def halo_source_config(source: str, z_source: float = DEFAULT_SOURCE_REDSHIFT) -> Any:
    """The :class:`core.physics.halos.HaloModelConfig` of a halo-model data source (:data:`HALO_SOURCES`): one
    source plane at ``z_source``, haloes Poisson (``"halo_model"``) or following the large-scale field
    (``"halo_model_clustered"``)."""
    from core.physics.cosmology import SourceRedshifts
    from core.physics.halos import HaloModelConfig

    if source not in HALO_SOURCES:
        raise ValueError(f"halo-model source must be one of {HALO_SOURCES}, got {source!r}")
    return HaloModelConfig(sources=SourceRedshifts.single_plane(float(z_source)),
                           clustering="biased" if source == "halo_model_clustered" else "poisson")


def _simulated_truth(source: str, geometry: MapGeometry, power_map: np.ndarray, seed: int,
                     z_source: float = DEFAULT_SOURCE_REDSHIFT) -> np.ndarray:
    if source in HALO_SOURCES:
        from core.physics.halos import halo_model_maps

        return np.asarray(halo_model_maps(geometry, 1, seed=[seed, 2], config=halo_source_config(source, z_source)))[0]
    from core.physics.fields import gaussian_field, lognormal_field

    field_fn: Callable[..., Any] = lognormal_field if source == "lognormal" else gaussian_field
    return np.asarray(field_fn(power_map, 1, seed=[seed, 2]))[0]


def _simulated_mask(mask: Any, geometry: MapGeometry, seed: int) -> np.ndarray:
    from core.data.observation import MASK_PRESETS, full_mask, mask_from_array

    if mask is None:
        return full_mask(geometry)
    if isinstance(mask, str):
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {tuple(MASKS)}, an array or None, got {mask!r}")
        return np.asarray(MASK_PRESETS[MASKS[mask]](geometry, seed=seed))
    return mask_from_array(mask, geometry)


def simulated_problem(npix: int, pixel_arcmin: float, source: str = "lognormal", mask: Any = "random_holes",
                      sigma_e: float = 0.26, n_gal: float = 30.0, prior: Any = "gaussian", seed: int = 0,
                      z_source: float = DEFAULT_SOURCE_REDSHIFT, weights: str | Path | None = None) -> Problem:
    """A mock problem: a ``source`` truth (:data:`SIMULATED_SOURCES`) from the theory power map at ``z_source``,
    observed as ``γ = M(Pκ + n)`` with shape noise ``σ_e/√(n_gal θ_pix²)`` per pixel and component."""
    from core.data.observation import NoiseModel, Observation

    if source not in SIMULATED_SOURCES:
        raise ValueError(f"source must be one of {SIMULATED_SOURCES}, got {source!r}")
    seed = option("seed").validate(seed)
    geometry = MapGeometry(npix, pixel_arcmin)
    power_map = theory_power_map(geometry, z_source)
    mask_arr = _simulated_mask(mask, geometry, int(seed))
    truth = _simulated_truth(source, geometry, power_map, int(seed), z_source)
    noise = NoiseModel.from_galaxy_density(geometry, sigma_e=sigma_e, n_gal_arcmin2=n_gal)
    observation = Observation.simulated(geometry, truth, noise, mask_arr, seed=[int(seed), 3],
                                        metadata={"truth": source, "sigma_e": sigma_e, "n_gal": n_gal})
    return build_problem(observation.shear, observation.noise_std, observation.mask, geometry, prior=prior,
                         z_source=z_source, weights=weights, truth=truth, power_map=power_map,
                         metadata=observation.metadata)


def cosmos_problem(npix: int = 120, prior: Any = "gaussian", z_source: float = DEFAULT_SOURCE_REDSHIFT,
                   weights: str | Path | None = None) -> Problem:
    """The shipped HST COSMOS shear on ``npix`` pixels over 104.4′ (``npix`` an even divisor of 360; 120 → 0.87′)."""
    from core.data.fits_io import load_cosmos

    observation = load_cosmos(npix=npix)
    return build_problem(observation.shear, observation.noise_std, observation.mask, observation.geometry,
                         prior=prior, z_source=z_source, weights=weights, wcs=observation.wcs,
                         metadata=observation.metadata)


# ------------------------------------------------------------------------------------------- run
def make_schedule(kind: str = "geometric", sigma_max: float = 0.5, sigma_min: float = 1e-3, num_levels: int = 60,
                  steps_per_level: int = 10) -> Any:
    """A σ schedule, every argument checked against :data:`core.options.SCHEDULE_OPTIONS` (``ValueError`` naming it)."""
    from core.inference.schedules import from_name

    values = dict(schedule=kind, sigma_max=sigma_max, sigma_min=sigma_min, num_levels=num_levels,
                  steps_per_level=steps_per_level)
    checked = {o.name: o.validate(values[o.name]) for o in SCHEDULE_OPTIONS}
    if not checked["sigma_min"] < checked["sigma_max"]:
        raise ValueError(f"sigma_min ({sigma_min!r}) must be smaller than sigma_max ({sigma_max!r})")
    return from_name(checked.pop("schedule"), **checked)


def make_sampler(problem: Any, name: str, schedule: Any, **options: Any) -> Any:
    """The registered sampler ``name`` on ``problem`` (a :class:`Problem` or a posterior) and ``schedule``."""
    posterior = getattr(problem, "posterior", problem)
    return sampler_spec(name).load()(posterior, schedule, **options)


def run(problem: Problem, sampler: Any = "hmc", schedule: Any = None, num_chains: int = 8, init: Any = "wiener",
        seed: Any = 0, cancel: Any = None, chunk_seconds: float = 0.5, final_denoise: str | None = "tweedie",
        jit_compile: bool = False, chunk_steps: int | None = None, **sampler_options: Any) -> Iterator[Any]:
    """Snapshots of a run of ``sampler`` (a registry name or a built sampler) on ``problem``.

    ``schedule`` defaults to :func:`make_schedule` ``()``; the Wiener map is the problem's cached one (computed
    once per problem, passed to the driver). ``chunk_steps`` fixes the transitions per chunk (a snapshot every
    ``chunk_steps`` transitions, e.g. to thin draws) instead of sizing chunks by ``chunk_seconds``. Settings are
    validated before any work (``ValueError`` at the call).
    """
    from core.inference.driver import sample
    from core.inference.samplers.base import PosteriorSampler

    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a core.pipeline.Problem, got {type(problem).__name__}")
    if isinstance(sampler, PosteriorSampler):
        if sampler_options or schedule is not None:
            raise ValueError("give options and schedule to the sampler when passing a built sampler")
        chosen = sampler
    else:
        chosen = make_sampler(problem, sampler, schedule if schedule is not None else make_schedule(), **sampler_options)
    return sample(chosen, num_chains=num_chains, init=init, seed=seed, cancel=cancel, chunk_seconds=chunk_seconds,
                  final_denoise=final_denoise, jit_compile=jit_compile, initial_centre=problem.initial_centre(init),
                  chunk_steps=chunk_steps)
