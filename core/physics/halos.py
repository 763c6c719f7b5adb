r"""Halo-model convergence maps: Poisson haloes with truncated NFW profiles on a large-scale field.

A map is the sum of two independent parts (periodic flat-sky maps, conventions of
:mod:`core.physics.geometry`)

.. math::  κ = κ_{\rm haloes} - \bar κ + κ_{\rm LS} .

**Haloes** (Kainulainen & Marra 2009; Lin & Kilbinger 2015, "Camelus"). The light cone between
``z_min`` and the farthest source is cut into ``num_slices`` redshift slices (lens planes, equal
width in z); every halo of a slice sits at the slice's central redshift ``z_s``. Masses lie in
``[mass_min, mass_max]`` (M⊙, pyccl units, mass definition ``mass_def``), cut into log-spaced bins
(``mass_bins_per_decade``). The expected number in a slice and bin is

.. math::  \bar N = Ω_{\rm field}\,\frac{χ_1^3 - χ_0^3}{3} \int_{\rm bin} \frac{dn}{d\log_{10}M}\, d\log_{10}M ,

with ``dn/dlog10M`` the pyccl mass function at ``z_s`` (log-linear in log M inside a bin, where the
integral and the inverse-CDF mass draws are analytic); counts are Poisson, positions uniform in the
(periodic) field. Each halo has the pyccl ``HaloProfileNFW(truncated=True)`` profile — the NFW
density truncated at ``r_Δ`` of ``mass_def`` (the truncation radius), concentration from
``concentration`` — projected by pyccl (FFTLog; pyccl has no analytic projection of the truncated
profile) and divided by ``Σ_crit`` (``HaloProfileNFW.projected`` / ``Cosmology.sigma_critical``;
for an ``n(z)`` the inverse ``Σ_crit`` is averaged over sources behind the lens). Profiles are
tabulated once per configuration at the centre of each mass bin on ``x = R/r_Δ ∈ [1e-4, 1]`` and
used for every mass in the bin with that mass's own ``r_Δ``; painting evaluates the table at the
pixel centres, averaged over a 2×2 sub-pixel grid for footprints up to 4 pixels (sample
distances softened by a third of the sample spacing against the central cusp), and rescales
each halo so that its pixels hold exactly its convergence mass
``T = M ⟨Σ_crit^{-1}⟩ / (a^2 χ^2)`` (steradians; pixel sum ``T/Ω_pix``). Haloes with
``θ_Δ < 1`` pixel are deposited in the pixel containing them (the pixel average of a point mass).

**Mean (mass sheet).** Haloes only add mass. ``mean="expected"`` (default) subtracts the
ensemble mean ``κ̄ = Σ_slices ∫ dn/dlog10M · T(M) · (χ_1^3-χ_0^3)/3 ...`` (the uniform
compensating sheet), so ``E κ = 0`` while each map's mean fluctuates as for the Gaussian and
lognormal fields; ``"map"`` subtracts each map's own mean (zero-mean maps); ``"none"`` keeps the
positive halo field on the zero-mean large-scale field.

**Large-scale field.** Random haloes have only the one-halo power, which in the same slices is

.. math::  C_\ell^{1h} = \sum_{\rm slices,\,bins} \frac{\bar N}{Ω_{\rm field}}\,
           \overline{T^2}\,|u(k = \ell/χ_s \mid M)|^2 ,

(``u`` the pyccl Fourier profile normalised to 1 at k → 0, ``T̄²`` the bin's mean of ``T²``), the
discretised Limber one-halo term. A painted (pixel-averaged) halo map also carries the aliases of
the modes beyond the Nyquist frequency, ``P^{1h}_{\rm alias} = Σ_n C(ℓ_{k+n}) W(k+n)²/Ω_pix``
(:func:`aliased_power_map`; point-like haloes are white); with ``anti_alias=True`` (default) the halo
map is multiplied in Fourier space by ``√(P^{1h}/P^{1h}_{\rm alias})`` (≤ 1, = 1 at k = 0, so mass
is kept) so that its power follows the project's convention ``P = C_ℓ W²/Ω_pix`` like the Gaussian and
lognormal fields; ``anti_alias=False`` keeps the raw painting (and its aliased power).
A Gaussian (``large_scale_field="gaussian"``) or shifted-lognormal
(``"lognormal"``) field with power map ``max(P_target − P^{1h}, 0)`` carries the rest, so the total
matches the target ``P_target`` (``target_spectrum="halofit"``: the project's theory
:func:`core.physics.cosmology.default_power_map` / ``TheorySpectrum.from_ccl``; ``"halo_model"``:
pyccl's halo-model power spectrum, 1- plus 2-halo terms, ``halomod_Pk2D``). Where ``P^{1h}`` alone
exceeds the target the total does too; :attr:`HaloModelSimulator.excess_fraction` reports the
fraction of modes where that happens (a warning above 1 %). ``"none"`` gives the halo field alone.

**Clustering** (``clustering="biased"``; default ``"poisson"``: uniform positions, independent of the large-scale
field, as above). Real haloes trace the large-scale matter field, so the halo and large-scale parts of a map are
correlated (the two-halo term is made *by the haloes*, not beside them). The large-scale residual
``P_{\rm LS} = max(P_target − P^{1h}, 0)`` is split over the lens slices in proportion to each slice's Limber term of
the halofit matter power, ``C_s(ℓ) ∝ q_s^2 Δχ_s/χ_s^2\, P_{\rm nl}((ℓ+½)/χ_s, z_s)``, and each slice gets its own
Gaussian field ``g_s`` (thick slices are uncorrelated in Limber's approximation). ``g_s = W_s δ_s`` with
``W_s = \bar ρ_m V_s T/M`` the convergence of the slice's mean matter (``V_s`` its comoving volume per steradian),
so ``δ_s`` is the slice's projected density contrast; smoothed by a Gaussian of comoving radius
``bias_smoothing_mpc`` (``L_s``: the linear-bias regime; haloes exclude each other on smaller scales) it modulates
the halo counts: a halo of mass ``M`` in slice ``s`` is placed with probability density ``∝ max(1 + b(M, z_s)
δ_s^{L}, 0)`` (pyccl halo bias ``halo_bias``, rejection sampling; the counts stay Poisson with the same means).
In expectation these haloes carry the part ``R_s(ℓ) L_s(ℓ) g_s`` of the slice's field, with

.. math::  R_s(ℓ) = \frac{1}{\bar ρ_m} \int_{M_{\min}}^{M_{\max}} \frac{dn}{d\log_{10}M}\, b(M)\, M\, u(k \mid M)\, d\log_{10}M,
           \quad k = (ℓ+½)/χ_s ,

(the mass-weighted bias of the haloes in the mass range, < 1: 0.36–0.42 at k → 0 for 10¹²–10¹⁶ M⊙, Tinker10,
z = 0.8–0.03), so the smooth (non-halo) part of the slice is
``(1 − R_s L_s) g_s`` and the total keeps the target power to linear order. :attr:`HaloModelSimulator.cross_power`
is the predicted halo × smooth cross-power map ``Σ_s R_s L_s (1 − R_s L_s) P_s``. Requires
``large_scale_field="gaussian"``. Measured with the defaults (``benchmarks/results/halos.json``): the haloes carry
≈ 3 % of the large-scale field's variance (:attr:`HaloModelSimulator.halo_share`) at 64² × 0.87′ and 360² × 0.29′,
the skewness rises from 1.52 to 1.66 (0.87′) and 1.98 to 2.13 (0.29′), 0.5 s per 360² map.

Determinism: every draw comes from the explicit ``seed`` (:func:`core.seeds.stateless_seed`; a numpy
``Generator`` for the haloes, the stateless TF RNG for the large-scale field). Cosmology: Planck18
(:func:`core.physics.cosmology.default_cosmology`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyccl as ccl
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.cosmology import SourceRedshifts, TheorySpectrum, default_cosmology, default_power_map, DEFAULT_SOURCE_REDSHIFT
from core.options import HALO_CLUSTERING
from core.physics.geometry import MapGeometry
from core.seeds import SeedLike, stateless_seed

__all__ = [
    "HaloModelConfig",
    "HaloCatalogue",
    "HaloModelSimulator",
    "halo_model_simulator",
    "halo_model_maps",
    "MASS_FUNCTIONS",
    "CONCENTRATIONS",
    "MASS_DEFINITIONS",
    "HALO_BIASES",
    "CLUSTERING",
]

logger = logging.getLogger(__name__)

MASS_FUNCTIONS = {
    "Tinker08": ccl.halos.MassFuncTinker08,
    "Tinker10": ccl.halos.MassFuncTinker10,
    "Despali16": ccl.halos.MassFuncDespali16,
    "Watson13": ccl.halos.MassFuncWatson13,
}
CONCENTRATIONS = {
    "Duffy08": ccl.halos.ConcentrationDuffy08,
    "Diemer15": ccl.halos.ConcentrationDiemer15,
    "Ishiyama21": ccl.halos.ConcentrationIshiyama21,
    "Bhattacharya13": ccl.halos.ConcentrationBhattacharya13,
}
MASS_DEFINITIONS = ("200c", "200m", "500c", "vir")
HALO_BIASES = {
    "Tinker10": ccl.halos.HaloBiasTinker10,
    "Sheth99": ccl.halos.HaloBiasSheth99,
    "Sheth01": ccl.halos.HaloBiasSheth01,
    "Bhattacharya11": ccl.halos.HaloBiasBhattacharya11,
}
CLUSTERING = HALO_CLUSTERING
LARGE_SCALE_FIELDS = ("gaussian", "lognormal", "none")
TARGET_SPECTRA = ("halofit", "halo_model")
MEAN_CONVENTIONS = ("expected", "map", "none")
_X_MIN = 1e-4  # smallest tabulated R/r_Δ
_SOFTENING_PIX = 1.0 / 3.0  # distance softening at the pixel centre (≈ mean distance in a pixel is 0.38)
_RESOLVED_PIX = 1.0  # haloes with θ_Δ below this many pixels are deposited as points
EXCESS_WARNING_FRACTION = 0.01


@dataclass(frozen=True)
class HaloModelConfig:
    """Settings of the halo-model simulator (frozen, hashable: one cached set of tables per config).

    mass_min, mass_max: halo mass range in M⊙ (no h), mass definition ``mass_def``.
    mass_bins_per_decade: log-mass bins (profile tables at bin centres).
    sources: source redshifts (:class:`core.physics.cosmology.SourceRedshifts`: a plane or an n(z)).
    z_min: nearest lens plane edge; slices run from ``z_min`` to the farthest source redshift.
    num_slices: lens planes (equal width in z).
    mass_function, concentration: names in :data:`MASS_FUNCTIONS`, :data:`CONCENTRATIONS`.
    mass_def: ``"200c"``, ``"200m"``, ``"500c"`` or ``"vir"``; the NFW profile is truncated at its r_Δ.
    large_scale_field: ``"gaussian"``, ``"lognormal"`` or ``"none"``; shift: lognormal shift (default
    :data:`core.physics.fields.DEFAULT_SHIFT`).
    target_spectrum: ``"halofit"`` or ``"halo_model"``; mean: ``"expected"``, ``"map"`` or ``"none"``.
    clustering: ``"poisson"`` (uniform halo positions) or ``"biased"`` (positions follow the large-scale field
    with the pyccl halo bias ``halo_bias``, smoothed on ``bias_smoothing_mpc`` comoving Mpc; see the module doc).
    """

    mass_min: float = 1e12
    mass_max: float = 1e16
    mass_bins_per_decade: int = 8
    sources: SourceRedshifts = field(default_factory=SourceRedshifts)
    z_min: float = 0.01
    num_slices: int = 20
    mass_function: str = "Tinker08"
    concentration: str = "Duffy08"
    mass_def: str = "200c"
    large_scale_field: str = "gaussian"
    shift: float | None = None
    target_spectrum: str = "halofit"
    mean: str = "expected"
    anti_alias: bool = True
    clustering: str = "poisson"
    halo_bias: str = "Tinker10"
    bias_smoothing_mpc: float = 2.0

    def __post_init__(self) -> None:
        for name in ("mass_min", "mass_max", "z_min", "bias_smoothing_mpc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.mass_min > 0:
            raise ValueError(f"mass_min must be positive (M_sun), got {self.mass_min!r}")
        if not self.mass_max > self.mass_min:
            raise ValueError(f"mass_max must exceed mass_min, got mass_min={self.mass_min!r}, mass_max={self.mass_max!r}")
        if not self.z_min > 0:
            raise ValueError(f"z_min must be positive, got {self.z_min!r}")
        if not isinstance(self.sources, SourceRedshifts):
            raise ValueError(f"sources must be a SourceRedshifts, got {type(self.sources).__name__}")
        if not self.z_max > self.z_min:
            raise ValueError(
                f"the source redshift must lie behind the haloes: z_source={self.z_max!r} <= z_min={self.z_min!r}"
            )
        for name, low in (("mass_bins_per_decade", 1), ("num_slices", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, allowed in (
            ("mass_function", tuple(MASS_FUNCTIONS)),
            ("concentration", tuple(CONCENTRATIONS)),
            ("mass_def", MASS_DEFINITIONS),
            ("large_scale_field", LARGE_SCALE_FIELDS),
            ("target_spectrum", TARGET_SPECTRA),
            ("mean", MEAN_CONVENTIONS),
            ("clustering", CLUSTERING),
            ("halo_bias", tuple(HALO_BIASES)),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.shift is not None and not (math.isfinite(self.shift) and self.shift > 0):
            raise ValueError(f"shift must be positive and finite, got {self.shift!r}")
        if not self.bias_smoothing_mpc > 0:
            raise ValueError(f"bias_smoothing_mpc must be positive (comoving Mpc), got {self.bias_smoothing_mpc!r}")
        if self.clustering == "biased" and self.large_scale_field != "gaussian":
            raise ValueError("clustering='biased' places the haloes on a Gaussian large-scale field: it needs "
                             f"large_scale_field='gaussian', got large_scale_field={self.large_scale_field!r}")

    @classmethod
    def single_plane(cls, z_source: float = DEFAULT_SOURCE_REDSHIFT, **kwargs: Any) -> "HaloModelConfig":
        """A config with one source plane at ``z_source`` (other settings as keywords)."""
        return cls(sources=SourceRedshifts.single_plane(z_source), **kwargs)

    @property
    def z_max(self) -> float:
        """Farthest source redshift (the far edge of the light cone)."""
        if self.sources.is_single_plane:
            return float(self.sources.z_source)
        z, nz = np.asarray(self.sources.z), np.asarray(self.sources.nz)
        return float(z[np.nonzero(nz > 0)[0][-1]])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "halo_model",
            "mass_range_msun": [float(self.mass_min), float(self.mass_max)],
            "mass_def": self.mass_def,
            "truncation": f"NFW truncated at r_{self.mass_def}",
            "mass_function": self.mass_function,
            "concentration": self.concentration,
            "sources": self.sources.describe(),
            "lens_slices": f"{self.num_slices} slices, z in [{self.z_min:g}, {self.z_max:g}]",
            "large_scale_field": self.large_scale_field,
            "target_spectrum": self.target_spectrum,
            "mean": self.mean,
            "anti_alias": self.anti_alias,
            **({"clustering": "biased", "halo_bias": self.halo_bias, "bias_smoothing_mpc": float(self.bias_smoothing_mpc)}
               if self.clustering == "biased" else {}),
        }


@dataclass
class HaloCatalogue:
    """The haloes of one map. Positions in pixel units (column ``x``, row ``y``; pixel ``i`` covers
    ``[i, i+1)``), masses in M⊙ (``mass_def``), lens-plane redshifts, angular ``r_Δ`` in arcmin and
    convergence mass ``T`` in steradians (``∫ κ dΩ``)."""

    x: np.ndarray
    y: np.ndarray
    mass: np.ndarray
    redshift: np.ndarray
    theta_delta_arcmin: np.ndarray
    kappa_mass_sr: np.ndarray

    def __len__(self) -> int:
        return int(self.mass.size)

    def select(self, mass_min: float = 0.0) -> "HaloCatalogue":
        keep = self.mass >= mass_min
        return HaloCatalogue(*(getattr(self, f)[keep] for f in ("x", "y", "mass", "redshift", "theta_delta_arcmin", "kappa_mass_sr")))

    def pixel_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) integer indices of the pixels holding the halo centres."""
        return np.floor(self.y).astype(int), np.floor(self.x).astype(int)


def _subsamples(half_width: int) -> int:
    """Sub-pixel samples per axis for painting a halo of footprint half-width ``half_width`` pixels."""
    return 2 if half_width <= 4 else 1


def aliased_power_map(spectrum: TheorySpectrum, geometry: MapGeometry, num_alias: int = 2) -> np.ndarray:
    """Expected power map of a *pixel-averaged* map with spectrum C_ℓ, aliases included:
    ``P_k = Σ_n C(ℓ_{k+n}) W(k+n)² / Ω_pix`` over ``n ∈ {−A..A}²`` (``A = num_alias``; the ``n = 0`` term is
    ``spectrum.power_map(geometry)``)."""
    power = spectrum.power_map(geometry)
    for n1 in range(-num_alias, num_alias + 1):
        for n2 in range(-num_alias, num_alias + 1):
            if n1 == 0 and n2 == 0:
                continue
            k1, k2 = geometry.k1 + n1, geometry.k2 + n2
            ell = 2.0 * np.pi * np.hypot(k1, k2) / geometry.pixel_rad
            power = power + spectrum(ell) / geometry.pixel_area_sr * (np.sinc(k1) * np.sinc(k2)) ** 2
    return power


def _mass_def(name: str) -> ccl.halos.MassDef:
    return {"200c": ccl.halos.MassDef200c, "200m": ccl.halos.MassDef200m, "500c": ccl.halos.MassDef500c,
            "vir": ccl.halos.MassDefVir}[name]


def _bin_integrals(dn0: np.ndarray, dn1: np.ndarray, width: float, power: float) -> np.ndarray:
    """∫ 10^{power·e} dn(e) de over a bin of width ``width`` (in log10 M) starting at e0 = 0 with
    ``dn`` log-linear between ``dn0`` and ``dn1`` (result in units of 10^{power·e0})."""
    slope = np.log(np.maximum(dn1, 1e-300) / np.maximum(dn0, 1e-300)) / width + power * np.log(10.0)
    small = np.abs(slope * width) < 1e-8
    safe = np.where(small, 1.0, slope)
    return dn0 * np.where(small, width, np.expm1(slope * width) / safe)


class HaloModelSimulator:
    """Halo-model convergence maps for one geometry and :class:`HaloModelConfig` (see module doc).

    Use :func:`halo_model_simulator` (cached) rather than the constructor; setup takes a few
    seconds (pyccl FFTLog projections), a 360² map then well under a second.
    """

    def __init__(self, geometry: MapGeometry, config: HaloModelConfig | None = None) -> None:
        if not isinstance(geometry, MapGeometry):
            raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
        config = HaloModelConfig() if config is None else config
        if not isinstance(config, HaloModelConfig):
            raise ValueError(f"config must be a HaloModelConfig, got {type(config).__name__}")
        self.geometry = geometry
        self.config = config
        self.cosmology = default_cosmology()
        self._build_tables()
        self._build_power()

    # ------------------------------------------------------------------ tables
    def _build_tables(self) -> None:
        cfg, cosmo, geo = self.config, self.cosmology, self.geometry
        mass_def = _mass_def(cfg.mass_def)
        conc = CONCENTRATIONS[cfg.concentration](mass_def=mass_def)
        profile = ccl.halos.HaloProfileNFW(mass_def=mass_def, concentration=conc, truncated=True, fourier_analytic=True)
        try:
            mass_function = MASS_FUNCTIONS[cfg.mass_function](mass_def=mass_def, mass_def_strict=False)
        except (ValueError, ccl.CCLError) as err:
            raise ValueError(f"mass_function={cfg.mass_function!r} does not support mass_def={cfg.mass_def!r}: {err}") from err
        self._profile, self._mass_def = profile, mass_def

        z_edges = np.linspace(cfg.z_min, cfg.z_max, cfg.num_slices + 1)
        z_mid = 0.5 * (z_edges[:-1] + z_edges[1:])
        a_mid = 1.0 / (1.0 + z_mid)
        chi_edges = ccl.comoving_radial_distance(cosmo, 1.0 / (1.0 + z_edges))
        chi_mid = ccl.comoving_radial_distance(cosmo, a_mid)
        volume_per_sr = (chi_edges[1:] ** 3 - chi_edges[:-1] ** 3) / 3.0  # Mpc³ per steradian
        lo, hi = math.log10(cfg.mass_min), math.log10(cfg.mass_max)
        num_bins = max(1, int(math.ceil((hi - lo) * cfg.mass_bins_per_decade - 1e-9)))
        e_edges = np.linspace(lo, hi, num_bins + 1)
        width = float(e_edges[1] - e_edges[0])
        e_mid = 0.5 * (e_edges[:-1] + e_edges[1:])
        m_nodes = 10.0**e_mid

        # lens efficiency <1/Σ_crit> (physical) per slice
        inv_sigma_crit = np.empty(cfg.num_slices)
        src = cfg.sources
        if src.is_single_plane:
            a_s = 1.0 / (1.0 + src.z_source)
            for i, a_l in enumerate(a_mid):
                inv_sigma_crit[i] = 1.0 / float(cosmo.sigma_critical(a_lens=a_l, a_source=a_s))
        else:
            z_s, n_s = np.asarray(src.z), np.asarray(src.nz)
            for i, (z_l, a_l) in enumerate(zip(z_mid, a_mid)):
                behind = z_s > z_l * (1 + 1e-6) + 1e-6
                vals = np.zeros_like(z_s)
                if np.any(behind):
                    vals[behind] = 1.0 / np.asarray(cosmo.sigma_critical(a_lens=a_l, a_source=1.0 / (1.0 + z_s[behind])))
                inv_sigma_crit[i] = np.trapezoid(n_s * vals, z_s) / np.trapezoid(n_s, z_s)

        # mass function at the bin edges, expected counts, mean mass and mean mass² per bin
        dn_edges = np.stack([np.asarray(mass_function(cosmo, 10.0**e_edges, a), float) for a in a_mid])  # (S, B+1)
        dn0, dn1 = dn_edges[:, :-1], dn_edges[:, 1:]
        count_per_sr = volume_per_sr[:, None] * _bin_integrals(dn0, dn1, width, 0.0)
        mass1 = _bin_integrals(dn0, dn1, width, 1.0) * 10.0 ** e_edges[None, :-1]
        mass2 = _bin_integrals(dn0, dn1, width, 2.0) * 10.0 ** (2 * e_edges[None, :-1])
        self.field_sr = geo.num_pixels * geo.pixel_area_sr
        self.expected_counts = count_per_sr * self.field_sr  # (S, B)
        # convergence mass per unit halo mass (sr / M⊙): T = M <1/Σc> / (a² χ²)  [Σ physical, r comoving]
        self._t_per_mass = inv_sigma_crit / (a_mid**2 * chi_mid**2)  # (S,)

        # profile shape tables on x = R/r_Δ (comoving), at the bin centres
        x = np.geomspace(_X_MIN, 1.0, 256)
        tables = np.empty((cfg.num_slices, num_bins, x.size))
        r_delta = np.empty((cfg.num_slices, num_bins))
        for i, a in enumerate(a_mid):
            r_d = np.asarray(mass_def.get_radius(cosmo, m_nodes, a), float) / a  # comoving Mpc
            r_grid = np.geomspace(_X_MIN * r_d.min() * 0.5, r_d.max() * 1.01, 1024)
            sigma = np.atleast_2d(profile.projected(cosmo, r_grid, m_nodes, a))  # (B, R)
            for j in range(num_bins):
                tables[i, j] = np.interp(np.log(x * r_d[j]), np.log(r_grid), sigma[j])
            r_delta[i] = r_d
        tables = np.maximum(tables, 0.0)
        tables[..., -1] = 0.0  # truncation at r_Δ (FFTLog rings at the 1e-5 level beyond)
        self._log_x0, self._dlog_x = math.log(_X_MIN), math.log(x[1] / x[0])
        self._tables = tables.reshape(cfg.num_slices * num_bins, x.size)
        # r_Δ ∝ M^{1/3} at fixed z: θ_Δ(M) = θ_Δ(node) (M/M_node)^{1/3}
        self._theta_node_pix = r_delta / chi_mid[:, None] / geo.pixel_rad  # (S, B)

        self.z_slices, self.a_slices, self.chi_slices = z_mid, a_mid, chi_mid
        self.log10_mass_edges, self.mass_nodes = e_edges, m_nodes
        self._dn0, self._dn1, self._bin_width = dn0, dn1, width
        # expected mean convergence of the halo field (the mass sheet)
        self.expected_mean = float(np.sum(volume_per_sr[:, None] * mass1 * self._t_per_mass[:, None]))
        # one-halo C_ℓ of this catalogue (Fourier profile normalised at k → 0)
        ell = np.geomspace(max(1.0, 0.5 * geo.ell_fundamental), 6.0 * math.sqrt(2) * geo.ell_nyquist, 200)
        cl_1h = np.zeros_like(ell)
        for i, a in enumerate(a_mid):
            k = (ell + 0.5) / chi_mid[i]
            u = np.atleast_2d(profile.fourier(cosmo, k, m_nodes, a)) / m_nodes[:, None]  # (B, L)
            weight = volume_per_sr[i] * mass2[i] * self._t_per_mass[i] ** 2  # Σ over bin of n·T²  (per sr)
            cl_1h += np.sum(weight[:, None] * u**2, axis=0)
        self.one_halo_spectrum = TheorySpectrum(ell, np.maximum(cl_1h, 1e-300), description="one-halo C_ell of the halo catalogue")
        self._bias = None
        if cfg.clustering == "biased":
            self._build_clustering_tables(ell, a_mid, chi_mid, np.diff(chi_edges), volume_per_sr, mass1)

    def _build_clustering_tables(self, ell: np.ndarray, a_mid: np.ndarray, chi_mid: np.ndarray, delta_chi: np.ndarray,
                                 volume_per_sr: np.ndarray, mass1: np.ndarray) -> None:
        """Per-slice tables of ``clustering="biased"`` on the 1-D ``ell`` grid (module doc, "Clustering")."""
        cfg, cosmo = self.config, self.cosmology
        bias = HALO_BIASES[cfg.halo_bias](mass_def=self._mass_def, mass_def_strict=False)
        rho_m = float(ccl.rho_x(cosmo, 1.0, "matter", is_comoving=True))  # M⊙ / comoving Mpc³
        self._bias = np.stack([np.asarray(bias(cosmo, self.mass_nodes, a), float) for a in a_mid])  # (S, B)
        # convergence of the slice's mean matter: κ = W_s δ_s for a projected density contrast δ_s
        self.slice_weight = rho_m * volume_per_sr * self._t_per_mass  # (S,)
        limber = np.empty((a_mid.size, ell.size))
        response = np.empty((a_mid.size, ell.size))
        for i, a in enumerate(a_mid):
            k = (ell + 0.5) / chi_mid[i]
            u = np.atleast_2d(self._profile.fourier(cosmo, k, self.mass_nodes, a)) / self.mass_nodes[:, None]  # (B, L)
            response[i] = np.sum((self._bias[i] * mass1[i])[:, None] * u, axis=0) / rho_m
            limber[i] = self.slice_weight[i] ** 2 / (delta_chi[i] * chi_mid[i] ** 2) * ccl.nonlin_matter_power(cosmo, k, a)
        self._clustering_ell = ell
        self.slice_response = response  # R_s(ℓ): the haloes' share of the slice's density field (linear bias)
        self.slice_fraction = limber / limber.sum(axis=0, keepdims=True)  # each slice's share of the Limber C_ℓ
        self._smoothing_k = np.stack([(ell + 0.5) / chi for chi in chi_mid]) * cfg.bias_smoothing_mpc

    def _build_power(self) -> None:
        cfg, geo = self.config, self.geometry
        self.target_power = self._target_power()
        self.one_halo_power_aliased = aliased_power_map(self.one_halo_spectrum, geo)
        if cfg.anti_alias:
            self.one_halo_power = self.one_halo_spectrum.power_map(geo)
            ratio = self.one_halo_power / np.maximum(self.one_halo_power_aliased, 1e-300)
            self._anti_alias_half = np.sqrt(ratio[:, : geo.npix // 2 + 1]).astype(np.float32)
        else:
            self.one_halo_power = self.one_halo_power_aliased
            self._anti_alias_half = None
        residual = self.target_power - self.one_halo_power
        self.excess_fraction = float(np.mean(residual < 0))
        if self.excess_fraction > EXCESS_WARNING_FRACTION and cfg.large_scale_field != "none":
            logger.warning("halo model: the one-halo power exceeds the target in %.1f%% of the Fourier modes; "
                           "the total exceeds the target there", 100 * self.excess_fraction)
        self.large_scale_power = np.maximum(residual, 0.0)
        if cfg.large_scale_field == "none":
            self.large_scale_power = np.zeros_like(residual)
        self.expected_power = self.large_scale_power + self.one_halo_power
        self.cross_power = np.zeros_like(residual)
        if self._bias is not None:
            self._build_clustering_power()

    def _build_clustering_power(self) -> None:
        """Slice power maps ``P_s``, the half-plane filters ``δ_s^L = L_s g_s / W_s`` and ``(1 − R_s L_s)`` of
        ``clustering="biased"``, and the predicted halo × smooth :attr:`cross_power`."""
        geo = self.geometry
        ell_map = geo.ell.copy()
        ell_map[0, 0] = geo.ell_fundamental
        log_ell = np.log(self._clustering_ell)
        on_map = lambda table: np.stack([np.interp(np.log(ell_map), log_ell, row) for row in table])  # noqa: E731
        fraction = on_map(self.slice_fraction)
        fraction /= fraction.sum(axis=0, keepdims=True)
        smoothing = np.exp(-0.5 * on_map(self._smoothing_k) ** 2)  # L_s(ℓ)
        carried = on_map(self.slice_response) * smoothing  # R_s L_s
        if np.any(carried > 1.0):
            logger.warning("halo model: the haloes' linear response exceeds the slice's field (R_s L_s up to %.2f); "
                           "the smooth part is clipped at zero there", float(carried.max()))
        smooth = np.clip(1.0 - carried, 0.0, None)
        self.slice_power = fraction * self.large_scale_power[None]  # (S, N, N); Σ_s = large_scale_power
        half = geo.npix // 2 + 1
        self._modulation_half = (smoothing / self.slice_weight[:, None, None])[:, :, :half]
        self._smooth_half = smooth[:, :, :half]
        self.cross_power = np.sum(carried * smooth * self.slice_power, axis=0)

    def _target_power(self) -> np.ndarray:
        cfg, geo = self.config, self.geometry
        if cfg.target_spectrum == "halofit":
            if cfg.sources == SourceRedshifts():
                return default_power_map(geo)
            return TheorySpectrum.from_ccl(sources=cfg.sources).power_map(geo)
        return halo_model_spectrum(cfg).power_map(geo)

    # ------------------------------------------------------------------ sampling
    @property
    def expected_number(self) -> float:
        """Expected number of haloes per map (sum over slices and mass bins)."""
        return float(self.expected_counts.sum())

    @property
    def pixel_std(self) -> float:
        """Expected pixel standard deviation, ``√(mean P_k)`` of the expected total power."""
        return float(np.sqrt(self.expected_power.mean()))

    def sample_catalogue(self, rng: np.random.Generator,
                         density: np.ndarray | None = None) -> tuple[HaloCatalogue, np.ndarray, np.ndarray]:
        """Draw one catalogue; also returns the table row and ``θ_Δ`` in pixels of every halo.

        ``density``: the smoothed projected density contrast ``δ_s^L`` of every slice, ``(S, N, N)``
        (``clustering="biased"``); positions are then drawn with density ``∝ max(1 + b δ_s^L, 0)``, else uniformly.
        """
        counts = rng.poisson(self.expected_counts)  # (S, B)
        flat = counts.ravel()
        row = np.repeat(np.arange(flat.size), flat)
        n = row.size
        s_idx, b_idx = np.divmod(row, self.expected_counts.shape[1])
        # log-linear dn/dlog10M in the bin: inverse CDF of a truncated exponential
        dn0, dn1, w = self._dn0[s_idx, b_idx], self._dn1[s_idx, b_idx], self._bin_width
        slope = np.log(np.maximum(dn1, 1e-300) / np.maximum(dn0, 1e-300)) / w
        u = rng.random(n)
        small = np.abs(slope * w) < 1e-8
        safe = np.where(small, 1.0, slope)
        offset = np.where(small, u * w, np.log1p(u * np.expm1(safe * w)) / safe)
        mass = 10.0 ** (self.log10_mass_edges[b_idx] + np.clip(offset, 0.0, w))
        npix = self.geometry.npix
        x = rng.random(n) * npix
        y = rng.random(n) * npix
        if density is not None:
            x, y = self._biased_positions(rng, x, y, density, s_idx, self._bias[s_idx, b_idx])
        ratio = mass / self.mass_nodes[b_idx]
        theta_pix = self._theta_node_pix[s_idx, b_idx] * np.cbrt(ratio)
        t_sr = mass * self._t_per_mass[s_idx]
        cat = HaloCatalogue(x, y, mass, self.z_slices[s_idx], theta_pix * self.geometry.pixel_size_arcmin, t_sr)
        return cat, row, theta_pix

    def _biased_positions(self, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, density: np.ndarray,
                          slices: np.ndarray, bias: np.ndarray, max_rounds: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
        """Rejection sampling of positions with density ``∝ max(1 + b δ_s^L(pixel), 0)``, starting from the uniform
        proposals ``x, y`` (a rejected halo draws a new uniform proposal)."""
        npix = self.geometry.npix
        top = 1.0 + np.maximum(bias * density.reshape(density.shape[0], -1).max(axis=1)[slices], 0.0)
        todo = np.arange(x.size)
        for _ in range(max_rounds):
            if todo.size == 0:
                return x, y
            ix = np.floor(x[todo]).astype(np.int64) % npix
            iy = np.floor(y[todo]).astype(np.int64) % npix
            weight = np.maximum(1.0 + bias[todo] * density[slices[todo], iy, ix], 0.0)
            todo = todo[rng.random(todo.size) * top[todo] >= weight]
            x[todo] = rng.random(todo.size) * npix
            y[todo] = rng.random(todo.size) * npix
        raise RuntimeError(f"biased halo placement did not converge ({todo.size} haloes left)")

    def paint(self, cat: HaloCatalogue, rows: np.ndarray, theta_pix: np.ndarray) -> np.ndarray:
        """The halo convergence map (float64, N×N, periodic) of a catalogue (no mean subtracted)."""
        npix = self.geometry.npix
        pixel_mass = cat.kappa_mass_sr / self.geometry.pixel_area_sr  # Σ over the halo's pixels
        out = np.zeros(npix * npix)
        point = theta_pix < _RESOLVED_PIX
        if np.any(point):
            ix = np.floor(cat.x[point]).astype(np.int64) % npix
            iy = np.floor(cat.y[point]).astype(np.int64) % npix
            out += np.bincount(iy * npix + ix, weights=pixel_mass[point], minlength=npix * npix)
        resolved = np.nonzero(~point)[0]
        if resolved.size:
            half = np.ceil(theta_pix[resolved] + 0.5).astype(np.int64)
            for h in np.unique(half):
                sel = resolved[half == h]
                sub = _subsamples(int(h))
                off = np.arange(-h, h + 1)
                # sub-pixel sample offsets within a pixel (pixel average by a sub × sub grid)
                so = (np.arange(sub) + 0.5) / sub
                cx, cy = np.floor(cat.x[sel]).astype(np.int64), np.floor(cat.y[sel]).astype(np.int64)
                px = cx[:, None, None] + off[None, None, :]  # (n, 1, W)
                py = cy[:, None, None] + off[None, :, None]  # (n, W, 1)
                dx = (px - cat.x[sel][:, None, None])[..., None, None] + so[None, None, None, None, :]  # (n,1,W,1,s)
                dy = (py - cat.y[sel][:, None, None])[..., None, None] + so[None, None, None, :, None]  # (n,W,1,s,1)
                dist = np.sqrt(dx * dx + dy * dy + (_SOFTENING_PIX / sub) ** 2)
                log_x = np.log(dist / theta_pix[sel][:, None, None, None, None])
                fidx = np.clip((log_x - self._log_x0) / self._dlog_x, 0.0, self._tables.shape[1] - 1.0)
                i0 = np.minimum(fidx.astype(np.int64), self._tables.shape[1] - 2)
                frac = fidx - i0
                tab = self._tables[rows[sel]]  # (n, X)
                r_idx = np.arange(sel.size)[:, None, None, None, None]
                vals = tab[r_idx, i0] * (1.0 - frac) + tab[r_idx, i0 + 1] * frac
                vals = np.where(log_x > 0.0, 0.0, vals).mean(axis=(-2, -1))  # (n, W, W) pixel averages
                total = vals.sum(axis=(1, 2))
                scale = np.where(total > 0, pixel_mass[sel] / np.where(total > 0, total, 1.0), 0.0)
                vals = vals * scale[:, None, None]
                flat_idx = (py % npix) * npix + (px % npix)
                out += np.bincount(flat_idx.ravel(), weights=vals.ravel(), minlength=npix * npix)
                # a halo too small for any pixel centre inside r_Δ: deposit as a point
                lost = sel[total <= 0]
                if lost.size:
                    out += np.bincount((cy[total <= 0] % npix) * npix + (cx[total <= 0] % npix),
                                       weights=pixel_mass[lost], minlength=npix * npix)
        return out.reshape(npix, npix)

    def catalogue_rows(self, cat: HaloCatalogue) -> tuple[np.ndarray, np.ndarray]:
        """Profile-table row and ``θ_Δ`` in pixels of every halo of a catalogue drawn by this simulator.

        The row is (lens slice, mass bin): the slice whose central redshift is the halo's, the bin holding its mass.
        Raises ``ValueError`` when a halo lies on no lens plane or outside the mass range of this configuration.
        """
        z = np.asarray(cat.redshift, np.float64)
        s_idx = np.argmin(np.abs(z[:, None] - self.z_slices[None, :]), axis=1) if z.size else np.zeros(0, np.int64)
        if z.size and np.max(np.abs(self.z_slices[s_idx] - z)) > 1e-9 * max(1.0, float(self.z_slices.max())):
            raise ValueError("catalogue redshifts are not this simulator's lens planes (another HaloModelConfig?)")
        log_m = np.log10(np.asarray(cat.mass, np.float64))
        edges = self.log10_mass_edges
        if log_m.size and (log_m.min() < edges[0] - 1e-9 or log_m.max() > edges[-1] + 1e-9):
            raise ValueError(f"catalogue masses outside this simulator's range [{10 ** edges[0]:.3g}, "
                             f"{10 ** edges[-1]:.3g}] M_sun")
        b_idx = np.clip(np.searchsorted(edges, log_m, side="right") - 1, 0, self.mass_nodes.size - 1)
        rows = s_idx * self.mass_nodes.size + b_idx
        return rows.astype(np.int64), np.asarray(cat.theta_delta_arcmin, np.float64) / self.geometry.pixel_size_arcmin

    def halo_map(self, cat: HaloCatalogue) -> np.ndarray:
        """The halo convergence map (float64, N×N) of a catalogue, anti-aliased as in the maps, no mean subtracted.

        Sub-catalogues (``cat.select(mass_min)``) give the convergence of their haloes alone; the map of a full
        catalogue of :meth:`sample_maps` minus :attr:`expected_mean` (``mean="expected"``) is that map's halo part.
        """
        return self._painted(cat, *self.catalogue_rows(cat))

    def _painted(self, cat: HaloCatalogue, rows: np.ndarray, theta_pix: np.ndarray) -> np.ndarray:
        """:meth:`paint`, then the anti-alias filter of the maps (when the configuration asks for it)."""
        halo_map = self.paint(cat, rows, theta_pix)
        if self._anti_alias_half is not None:
            halo_map = np.fft.irfft2(np.fft.rfft2(halo_map) * self._anti_alias_half, s=halo_map.shape)
        return halo_map

    @staticmethod
    def _rng(seed_words: np.ndarray) -> np.random.Generator:
        """numpy Generator from a ``[2]`` int32 stateless seed (its two words, as unsigned)."""
        words = np.asarray(seed_words, dtype=np.int64) & 0xFFFFFFFF
        return np.random.default_rng([int(w) for w in words] + [0x4A10])

    def sample(self, seed: SeedLike) -> tuple[np.ndarray, HaloCatalogue]:
        """One map (float32, N×N) and its halo catalogue, deterministic for ``seed``."""
        maps, cats = self.sample_maps(1, seed, with_catalogues=True)
        return maps[0], cats[0]

    def sample_maps(self, num: int, seed: SeedLike, with_catalogues: bool = False):
        """``num`` maps, float32 ``(num, N, N)`` numpy array (and their catalogues if asked)."""
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
            raise ValueError(f"num must be a positive integer, got {num!r}")
        from core.physics.fields import DEFAULT_SHIFT, gaussian_field, lognormal_field

        cfg = self.config
        seeds = tfp.random.split_seed(stateless_seed(seed), n=int(num) + 1)
        halo_seeds = np.asarray(tf.stack(seeds[:-1]).numpy())
        out = np.empty((int(num),) + self.geometry.shape, np.float32)
        cats: list[HaloCatalogue] = []
        fields = smooth = density = None
        if self._bias is not None:  # clustering="biased": one Gaussian field per lens slice
            slice_seeds = tfp.random.split_seed(seeds[-1], n=len(self.slice_power))
            fields = np.stack([gaussian_field(p, int(num), sd).numpy() for p, sd in zip(self.slice_power, slice_seeds)],
                              axis=1)  # (num, S, N, N) float32
            smooth = np.empty((int(num),) + self.geometry.shape)
        for i in range(int(num)):
            rng = self._rng(halo_seeds[i])
            if fields is not None:  # per map, so that memory stays O(S N²)
                spectra = np.fft.rfft2(fields[i].astype(np.float64))
                density = np.fft.irfft2(spectra * self._modulation_half, s=self.geometry.shape)
                smooth[i] = np.fft.irfft2(spectra * self._smooth_half, s=self.geometry.shape).sum(axis=0)
            cat, rows, theta = self.sample_catalogue(rng, density)
            halo_map = self._painted(cat, rows, theta)
            if cfg.mean == "expected":
                halo_map -= self.expected_mean
            elif cfg.mean == "map":
                halo_map -= halo_map.mean()
            out[i] = halo_map
            if with_catalogues:
                cats.append(cat)
        if smooth is not None:
            if cfg.mean == "map":
                smooth = smooth - smooth.mean(axis=(1, 2), keepdims=True)
            out += smooth.astype(np.float32)
        elif cfg.large_scale_field != "none":
            if cfg.large_scale_field == "gaussian":
                ls = gaussian_field(self.large_scale_power, int(num), seeds[-1])
            else:
                ls = lognormal_field(self.large_scale_power, int(num), seeds[-1], shift=DEFAULT_SHIFT if cfg.shift is None else cfg.shift)
            ls = ls.numpy()
            if cfg.mean == "map":
                ls = ls - ls.mean(axis=(1, 2), keepdims=True)
            out += ls
        return (out, cats) if with_catalogues else out

    def describe(self) -> dict[str, Any]:
        return {
            **self.config.describe(),
            "expected_haloes_per_map": self.expected_number,
            "expected_mean_halo_kappa": self.expected_mean,
            "one_halo_excess_fraction": self.excess_fraction,
        }

    @property
    def halo_share(self) -> float:
        """``clustering="biased"``: the haloes' share of the large-scale field's variance in expectation,
        ``Σ_k Σ_s (R_s L_s)² P_s / Σ_k P_LS`` (0 for Poisson haloes)."""
        if self._bias is None:
            return 0.0
        carried = 1.0 - self._smooth_half  # only where not clipped; a diagnostic
        return float(np.sum(carried**2 * self.slice_power[:, :, : self.geometry.npix // 2 + 1])
                     / max(np.sum(self.large_scale_power[:, : self.geometry.npix // 2 + 1]), 1e-300))


def halo_model_spectrum(config: HaloModelConfig, num_ell: int = 200) -> TheorySpectrum:
    """pyccl halo-model convergence C_ℓ (1-halo + 2-halo, ``halomod_Pk2D``, masses 1e8–1e16 M⊙)."""
    return _halo_model_spectrum_cached(config.mass_function, config.concentration, config.mass_def, config.sources, num_ell)


@lru_cache(maxsize=8)
def _halo_model_spectrum_cached(mass_function: str, concentration: str, mass_def_name: str, sources: SourceRedshifts, num_ell: int) -> TheorySpectrum:
    cosmo = default_cosmology()
    mass_def = _mass_def(mass_def_name)
    mf = MASS_FUNCTIONS[mass_function](mass_def=mass_def, mass_def_strict=False)
    bias = ccl.halos.HaloBiasTinker10(mass_def=mass_def, mass_def_strict=False)
    hmc = ccl.halos.HMCalculator(mass_function=mf, halo_bias=bias, mass_def=mass_def, log10M_min=8.0, log10M_max=16.0)
    prof = ccl.halos.HaloProfileNFW(mass_def=mass_def, concentration=CONCENTRATIONS[concentration](mass_def=mass_def),
                                    truncated=True, fourier_analytic=True)
    pk = ccl.halos.halomod_Pk2D(cosmo, hmc, prof)
    tracer = sources.tracer(cosmo)
    ell = np.geomspace(10.0, 2.0e5, num_ell)
    cl = np.asarray(ccl.angular_cl(cosmo, tracer, tracer, ell, p_of_k_a=pk), float)
    return TheorySpectrum(ell, cl, description=f"pyccl halo model ({mass_function}, {concentration}, {mass_def_name}), {sources.describe()}")


@lru_cache(maxsize=16)
def halo_model_simulator(geometry: MapGeometry, config: HaloModelConfig | None = None) -> HaloModelSimulator:
    """Cached :class:`HaloModelSimulator` for ``(geometry, config)`` (tables built once)."""
    return HaloModelSimulator(geometry, HaloModelConfig() if config is None else config)


def halo_model_maps(geometry: MapGeometry, num: int, seed: SeedLike, config: HaloModelConfig | None = None) -> np.ndarray:
    """``num`` halo-model convergence maps (float32 ``(num, N, N)``) for ``geometry``."""
    return halo_model_simulator(geometry, config).sample_maps(num, seed)
