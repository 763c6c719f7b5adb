r"""Run settings of the kappascope dashboard: a ``param.Parameterized`` with bounds and docs, no UI.

One :class:`DashboardSettings` object describes one posterior-sampling run of the model

.. math::  γ = P κ + n,\qquad n_i \sim \mathcal N(0, σ_{n,i}^2),\qquad κ \sim p(κ),

sampled by annealed score-based HMC (or Langevin) over a decreasing noise schedule
``σ_max = σ_1 > … > σ_L = σ_min`` with ``steps_per_level`` transitions per level, so a run
takes ``L · steps_per_level`` transitions per chain. With galaxy-density noise the
per-pixel, per-component shear noise is ``σ_n = σ_e / sqrt(n_gal · θ_pix²)``
(θ_pix in arcmin, n_gal in arcmin⁻²).

The object holds only numbers and choices; :mod:`dashboard.runner` turns it into core objects
and :mod:`dashboard.app` draws widgets for it with ``pn.Param``. Cross-parameter rules that
bounds cannot express (odd map sizes, ``σ_min ≥ σ_max`` …) are checked by
:meth:`DashboardSettings.validate`, which raises ``ValueError`` naming the parameter.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import param

__all__ = [
    "DATA_SOURCES",
    "MASK_CHOICES",
    "MASK_PRESET_KEYS",
    "NOISE_CHOICES",
    "PRIOR_CHOICES",
    "SCHEDULE_KINDS",
    "SAMPLER_CHOICES",
    "DashboardSettings",
    "per_pixel_noise_std",
]

SIMULATED_LOGNORMAL = "simulated lognormal"
SIMULATED_GAUSSIAN = "simulated Gaussian"
COSMOS = "COSMOS (HST)"
UPLOADED = "uploaded shear FITS"
DATA_SOURCES = (SIMULATED_LOGNORMAL, SIMULATED_GAUSSIAN, COSMOS, UPLOADED)

#: Mask choices; the presets map to ``core.data.observation.MASK_PRESETS`` keys (see ``MASK_PRESET_KEYS``).
MASK_CHOICES = ("none", "random holes", "stripes", "random holes + stripes", "COSMOS footprint", "uploaded", "drawn")
MASK_PRESET_KEYS = {"none": "full", "random holes": "stars", "stripes": "stripes",
                    "random holes + stripes": "stars+stripes", "COSMOS footprint": "cosmos"}
NOISE_CHOICES = ("galaxy density", "data std maps")
GAUSSIAN_PRIOR = "Gaussian (theory)"
HYBRID_PRIOR = "hybrid (shipped network)"
PRIOR_CHOICES = (GAUSSIAN_PRIOR, HYBRID_PRIOR)
SCHEDULE_KINDS = ("geometric", "linear", "cosine")
SAMPLER_CHOICES = ("hmc", "mala", "langevin")
DENOISE_CHOICES = ("tweedie", "ode", "none")

#: The COSMOS maps binned to 0.87′ pixels (3 × the 0.29′ catalogue binning).
COSMOS_NPIX = 120
COSMOS_PIXEL_ARCMIN = 0.87


def per_pixel_noise_std(sigma_e: float, n_gal_arcmin2: float, pixel_size_arcmin: float) -> float:
    """Shape-noise standard deviation per pixel and shear component, σ_e / sqrt(n_gal θ_pix²)."""
    for name, value in (("sigma_e", sigma_e), ("n_gal_arcmin2", n_gal_arcmin2), ("pixel_size_arcmin", pixel_size_arcmin)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(sigma_e) / math.sqrt(float(n_gal_arcmin2) * float(pixel_size_arcmin) ** 2)


class DashboardSettings(param.Parameterized):
    """Every choice of one dashboard run; defaults are the demo that converges in about a minute on a CPU."""

    # ----------------------------------------------------------------- data
    data_source = param.Selector(
        default=SIMULATED_LOGNORMAL, objects=list(DATA_SOURCES),
        doc="Where the shear comes from: a simulated lognormal or Gaussian truth drawn from the theory "
            "spectrum, the real HST COSMOS field, or an uploaded FITS file of γ₁, γ₂ maps.")
    npix = param.Integer(
        default=64, bounds=(16, 256), step=2,
        doc="Map side in pixels for simulated data (even). COSMOS uses 120 px; uploads keep their own size.")
    pixel_size_arcmin = param.Number(
        default=0.87, bounds=(0.05, 10.0), step=0.01,
        doc="Pixel side in arcminutes for simulated and uploaded data.")
    source_redshift = param.Number(
        default=1.0, bounds=(0.2, 3.0), step=0.05,
        doc="Redshift of the single source plane used for the theory convergence spectrum C_ℓ.")

    # ----------------------------------------------------------------- mask
    mask = param.Selector(
        default="random holes", objects=list(MASK_CHOICES),
        doc="Which pixels carry shear: all, a preset (random holes, stripes, the COSMOS footprint), "
            "an uploaded FITS/PNG mask, or the rectangles/polygons drawn on the mask view.")

    # ---------------------------------------------------------------- noise
    noise_model = param.Selector(
        default="galaxy density", objects=list(NOISE_CHOICES),
        doc="Shape noise from σ_e and the galaxy density, or the data's own per-pixel std maps "
            "(COSMOS or uploaded).")
    sigma_e = param.Number(
        default=0.26, bounds=(0.01, 1.0), step=0.01,
        doc="Intrinsic ellipticity dispersion per shear component.")
    n_gal_arcmin2 = param.Number(
        default=30.0, bounds=(0.5, 500.0), step=0.5,
        doc="Effective galaxy density in galaxies per square arcminute.")

    # ---------------------------------------------------------------- prior
    prior = param.Selector(
        default=GAUSSIAN_PRIOR, objects=list(PRIOR_CHOICES),
        doc="The prior score: the exact Gaussian prior of the theory C_ℓ, or the hybrid prior "
            "(Gaussian score plus the shipped residual score network).")

    # ------------------------------------------------------------- schedule
    schedule_kind = param.Selector(
        default="geometric", objects=list(SCHEDULE_KINDS),
        doc="Spacing of the annealing noise levels σ between σ_max and σ_min.")
    sigma_max = param.Number(
        default=0.5, bounds=(1e-4, 10.0), step=0.01,
        doc="First (largest) annealing noise level σ_max, in convergence units.")
    sigma_min = param.Number(
        default=1e-3, bounds=(1e-5, 1.0), step=1e-4,
        doc="Last (smallest) annealing noise level σ_min; must be below σ_max.")
    num_levels = param.Integer(
        default=60, bounds=(1, 2000),
        doc="Number of annealing levels L.")
    steps_per_level = param.Integer(
        default=10, bounds=(1, 500),
        doc="MCMC transitions per annealing level.")

    # -------------------------------------------------------------- sampler
    sampler = param.Selector(
        default="hmc", objects=list(SAMPLER_CHOICES),
        doc="Transition kernel: score-based HMC or MALA (Metropolis-corrected through the score line "
            "integral), or unadjusted Langevin.")
    num_leapfrog_steps = param.Integer(
        default=3, bounds=(1, 50),
        doc="Leapfrog steps per HMC transition (ignored by Langevin).")
    num_chains = param.Integer(
        default=8, bounds=(1, 64),
        doc="Number of independent chains, run as one batch.")
    snapshot_every = param.Integer(
        default=10, bounds=(1, 1000),
        doc="Transitions per compiled chunk: the views refresh after each chunk and Step advances one chunk.")
    final_denoise = param.Selector(
        default="tweedie", objects=list(DENOISE_CHOICES),
        doc="Final denoising at σ_min: Tweedie's formula x + σ² ∇log p_σ(x), the probability-flow ODE, or none.")
    seed = param.Integer(
        default=0, bounds=(0, 2**31 - 1),
        doc="Seed of every random draw of the run (truth, noise, mask holes, chains).")

    # ------------------------------------------------------------- teaching
    teaching = param.Boolean(
        default=True, doc="Show the short explanation beside each stage (likelihood, prior, score, annealing).")
    compare_priors = param.Boolean(
        default=False,
        doc="Keep the last result of each prior and show them side by side (run once with each prior).")

    # ------------------------------------------------------------ derived
    @property
    def total_steps(self) -> int:
        """Transitions per chain of the whole run, ``num_levels · steps_per_level``."""
        return int(self.num_levels) * int(self.steps_per_level)

    @property
    def effective_npix(self) -> int | None:
        """Map side of the run: 120 for COSMOS, ``npix`` for simulations, unknown (None) for uploads."""
        if self.data_source == COSMOS:
            return COSMOS_NPIX
        if self.data_source == UPLOADED:
            return None
        return int(self.npix)

    @property
    def effective_pixel_arcmin(self) -> float:
        return COSMOS_PIXEL_ARCMIN if self.data_source == COSMOS else float(self.pixel_size_arcmin)

    @property
    def is_simulated(self) -> bool:
        return self.data_source in (SIMULATED_LOGNORMAL, SIMULATED_GAUSSIAN)

    def noise_std(self) -> float:
        """Per-pixel shear noise std from σ_e and n_gal at this run's pixel size."""
        return per_pixel_noise_std(self.sigma_e, self.n_gal_arcmin2, self.effective_pixel_arcmin)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the parameter when the combination of settings is impossible."""
        if self.npix % 2:
            raise ValueError(f"npix must be even, got {self.npix}")
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min:g}) must be smaller than sigma_max ({self.sigma_max:g})")
        if self.schedule_kind != "geometric" and self.num_levels < 2 and self.sigma_min != self.sigma_max:
            raise ValueError("num_levels must be at least 2 to go from sigma_max to sigma_min")
        if self.noise_model == "data std maps" and self.is_simulated:
            raise ValueError("noise_model 'data std maps' needs COSMOS or uploaded data; simulated data use "
                             "'galaxy density'")
        if self.total_steps > 200_000:
            raise ValueError(f"num_levels × steps_per_level = {self.total_steps} transitions is too many "
                             "for an interactive run (at most 200000)")
        if self.snapshot_every > self.total_steps:
            raise ValueError(f"snapshot_every ({self.snapshot_every}) exceeds the run's {self.total_steps} "
                             "transitions (num_levels × steps_per_level)")

    def schedule(self) -> Any:
        """The :mod:`core.inference.schedules` object of these settings (``.sigmas``, ``.steps_per_level``)."""
        from core.inference.schedules import from_name  # numpy-only module; imported lazily to keep settings light

        self.validate()
        return from_name(self.schedule_kind, sigma_max=float(self.sigma_max), sigma_min=float(self.sigma_min),
                         num_levels=int(self.num_levels), steps_per_level=int(self.steps_per_level))

    # ------------------------------------------------------------ (de)serialise
    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (for provenance headers and URL query strings)."""
        return {name: getattr(self, name) for name in self.param if name != "name"}

    def update_from_mapping(self, values: Mapping[str, Any]) -> None:
        """Set parameters from strings or values (e.g. a URL query), rejecting unknown or bad ones.

        Raises ``ValueError`` naming the offending key; nothing changes when any value is bad.
        """
        parsed: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in self.param or key == "name":
                raise ValueError(f"unknown setting {key!r}")
            parameter = self.param[key]
            value = raw[0] if isinstance(raw, (list, tuple)) and len(raw) == 1 else raw
            if isinstance(value, bytes):
                value = value.decode()
            try:
                if isinstance(parameter, param.Boolean):
                    if isinstance(value, str):
                        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                            raise ValueError(value)
                        value = value.lower() in ("1", "true", "yes")
                elif isinstance(parameter, param.Integer):
                    value = int(value)
                elif isinstance(parameter, param.Number):
                    value = float(value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"setting {key!r}: cannot parse {raw!r}") from err
            try:
                type(self)(**{key: value})  # bounds and choices checked on a throw-away copy
            except ValueError as err:
                raise ValueError(f"setting {key!r}: {err}") from err
            parsed[key] = value
        self.param.update(**parsed)
