"""Tests of the halo-model convergence maps (core.physics.halos) against pyccl.

Small settings (128² maps at 0.87′, a coarse light cone) keep the run short; tolerances come from the
Monte-Carlo scatter of the maps themselves (standard errors over maps) plus a stated systematic allowance.
"""
from __future__ import annotations

import math

import numpy as np
import pyccl as ccl
import pytest
from scipy.integrate import quad

from core.physics.cosmology import SourceRedshifts, default_cosmology
from core.physics.geometry import MapGeometry
from core.physics.halos import HaloModelConfig, halo_model_simulator

GEOMETRY = MapGeometry(128, 104.4 / 120)
CONFIG = HaloModelConfig(num_slices=10, mass_bins_per_decade=6)
NUM_MAPS = 48
# painting (sub-pixel averaged tables, one profile shape per mass bin) and the slice (lens-plane)
# discretisation are approximations: allowed 10 % per ℓ bin on top of 3 standard errors
POWER_SYSTEMATIC = 0.10


@pytest.fixture(scope="module")
def simulator():
    return halo_model_simulator(GEOMETRY, CONFIG)


@pytest.fixture(scope="module")
def maps_and_catalogues(simulator):
    return simulator.sample_maps(NUM_MAPS, 11, with_catalogues=True)


def _band_power(maps: np.ndarray, geometry: MapGeometry, num_bins: int = 7):
    npix = geometry.npix
    power = np.abs(np.fft.fft2(maps)) ** 2 / npix**2
    edges = np.geomspace(geometry.ell_fundamental * 0.999, geometry.ell_nyquist, num_bins + 1)
    idx = np.digitize(geometry.ell, edges)
    return power, idx, edges


def _assert_power_follows(maps: np.ndarray, target_power: np.ndarray) -> None:
    """The maps' power per ℓ bin (bins of ≥ 4 modes, at least 5 of them) within 3 s.e. + POWER_SYSTEMATIC of the
    target power map's."""
    power, idx, edges = _band_power(maps, GEOMETRY)
    checked = 0
    for b in range(1, len(edges)):
        sel = idx == b
        if sel.sum() < 4:
            continue
        ratio = power[:, sel].mean(axis=1) / target_power[sel].mean()  # per map
        mean, sem = ratio.mean(), ratio.std(ddof=1) / math.sqrt(ratio.size)
        assert abs(mean - 1.0) < 3 * sem + POWER_SYSTEMATIC, (
            f"ell in [{edges[b-1]:.0f}, {edges[b]:.0f}): power ratio {mean:.3f} ± {sem:.3f} to the halofit C_ell"
        )
        checked += 1
    assert checked >= 5


def test_power_spectrum_matches_theory_per_ell_bin(simulator, maps_and_catalogues):
    _assert_power_follows(maps_and_catalogues[0], simulator.target_power)


def test_halo_field_power_matches_one_halo_term_and_pyccl():
    """Haloes alone: painted power vs the catalogue's one-halo C_ℓ, and that C_ℓ vs pyccl's 1-halo C_ℓ."""
    cfg = HaloModelConfig(num_slices=10, mass_bins_per_decade=6, large_scale_field="none")
    sim = halo_model_simulator(GEOMETRY, cfg)
    maps = sim.sample_maps(NUM_MAPS, 5)
    maps = maps - maps.mean(axis=(1, 2), keepdims=True)
    power, idx, edges = _band_power(maps, GEOMETRY)
    for b in range(2, len(edges)):
        sel = idx == b
        ratio = power[:, sel].mean(axis=1) / sim.one_halo_power[sel].mean()
        mean, sem = ratio.mean(), ratio.std(ddof=1) / math.sqrt(ratio.size)
        assert abs(mean - 1.0) < 3 * sem + POWER_SYSTEMATIC, f"bin {b}: painted/one-halo {mean:.3f} ± {sem:.3f}"
    # the slice sum against pyccl's Limber integral (angular_cl) of the 1-halo P(k) over the same mass
    # range, built from pyccl's public mass function and NFW Fourier profile (same choices as the default config)
    default = halo_model_simulator(MapGeometry(16, GEOMETRY.pixel_size_arcmin), HaloModelConfig(large_scale_field="none"))
    cfg = default.config
    assert (cfg.mass_function, cfg.concentration, cfg.mass_def) == ("Tinker08", "Duffy08", "200c")
    assert cfg.sources.is_single_plane and cfg.sources.z_source == 1.0
    cosmo = default_cosmology()
    md = ccl.halos.MassDef200c
    mf = ccl.halos.MassFuncTinker08(mass_def=md, mass_def_strict=False)
    prof = ccl.halos.HaloProfileNFW(mass_def=md, concentration=ccl.halos.ConcentrationDuffy08(mass_def=md),
                                    truncated=True, fourier_analytic=True)
    tracer = ccl.CMBLensingTracer(cosmo, z_source=1.0, n_samples=512)
    lo, hi = math.log10(cfg.mass_min), math.log10(cfg.mass_max)
    # the 16² map tabulates the one-halo C_ell from ell ≈ 776 (extrapolated below): test 1e3 <= ell <= 3e4
    ell = np.geomspace(1000.0, 3.0e4, 6)
    assert default.one_halo_spectrum.ell[0] < ell[0] and default.one_halo_spectrum.ell[-1] > ell[-1]
    pk, a_arr, lk_arr = _one_halo_pk2d(cosmo, mf, prof, lo, hi)
    cl_ref = ccl.angular_cl(cosmo, tracer, tracer, ell, p_of_k_a=pk)
    # measured: the default 20 lens planes (z_min = 0.01), 8 mass bins per decade (profile shape at the bin
    # centre) agree with the continuous Limber integral to <= 0.3 % here. 3 % allowed: still fails for an
    # untruncated NFW (x2.2 at ell = 1000), mass_min = 10^12.5 (-26 % at 3e4), 10^11 (+30 % at 3e4),
    # mass_max = 1e15 (-4 % at ell = 1000) or 5 lens planes (+15 % at 1e3) -- checked (the profile by changing
    # the reference, the rest by changing the simulator's config).
    ratio = default.one_halo_spectrum(ell) / cl_ref
    assert np.all(np.abs(ratio - 1.0) < 0.03), f"one-halo C_ell / pyccl 1-halo C_ell: {np.round(ratio, 4)}"
    # pyccl's halomod_Pk2D(get_2h=False) is larger (x1.09 at ell = 1e3, x4.8 at 3e4): pyccl 3.3
    # HMCalculator._integrate_over_mf adds the mass-conservation term _mf0 * f(M_min) -- all mass below
    # M_min put into haloes of exactly M_min -- also to the 1-halo term. With that term added to the
    # reference, the two agree (to 1e-4, measured; 1 % allowed for the different mass quadratures).
    hb = ccl.halos.HaloBiasTinker10(mass_def=md, mass_def_strict=False)
    hmc = ccl.halos.HMCalculator(mass_function=mf, halo_bias=hb, mass_def=md, log10M_min=lo, log10M_max=hi, nM=128)
    cl_hm = ccl.angular_cl(cosmo, tracer, tracer, ell, p_of_k_a=ccl.halos.halomod_Pk2D(
        cosmo, hmc, prof, get_2h=False, a_arr=a_arr, lk_arr=lk_arr))
    pk_mc = _one_halo_pk2d(cosmo, mf, prof, lo, hi, mass_conservation=True)[0]
    cl_mc = ccl.angular_cl(cosmo, tracer, tracer, ell, p_of_k_a=pk_mc)
    assert np.all(cl_ref < cl_hm), f"halomod_Pk2D 1h / reference: {np.round(cl_hm / cl_ref, 3)}"
    assert np.all(np.abs(cl_mc / cl_hm - 1.0) < 0.01), f"reference + mass term / halomod_Pk2D 1h: {np.round(cl_mc / cl_hm, 4)}"


def _one_halo_pk2d(cosmo: ccl.Cosmology, mass_function: ccl.halos.MassFunc, profile: ccl.halos.HaloProfile,
                   log10m_min: float, log10m_max: float, *, mass_conservation: bool = False,
                   ) -> tuple[ccl.Pk2D, np.ndarray, np.ndarray]:
    """1-halo P(k, a) = ∫ dn/dlog10M (u_M(k)/ρ_m)² dlog10M over [log10m_min, log10m_max] (trapezoid, pyccl API).

    ``mass_conservation`` adds pyccl's ``HMCalculator`` term ``(ρ_m − ∫ n M dlog10M)/M_min · (u_{M_min}/ρ_m)²``.
    Returns the ``Pk2D`` and its (a, ln k) grid; the grid covers lenses in front of z = 1.04.
    """
    a_arr = np.linspace(0.49, 1.0, 26)
    lk_arr = np.log(np.geomspace(1e-4, 1e4, 200))
    log10m = np.linspace(log10m_min, log10m_max, 129)
    mass = 10.0**log10m
    rho_m = ccl.rho_x(cosmo, 1.0, "matter", is_comoving=True)
    pk = np.empty((a_arr.size, lk_arr.size))
    for i, a in enumerate(a_arr):
        dn = np.asarray(mass_function(cosmo, mass, a))
        u = np.asarray(profile.fourier(cosmo, np.exp(lk_arr), mass, a)) / rho_m  # (M, k)
        pk[i] = np.trapezoid(dn[:, None] * u**2, log10m, axis=0)
        if mass_conservation:
            pk[i] += (rho_m - np.trapezoid(dn * mass, log10m)) / mass[0] * u[0] ** 2
    return ccl.Pk2D(a_arr=a_arr, lk_arr=lk_arr, pk_arr=pk, is_logp=False), a_arr, lk_arr


def test_mean_number_of_haloes_matches_mass_function_integral(simulator, maps_and_catalogues):
    _, cats = maps_and_catalogues
    counts = np.array([len(c) for c in cats], float)
    counts14 = np.array([len(c.select(1e14)) for c in cats], float)
    # independent integral of the pyccl mass function over the same light cone (scipy quad per slice)
    cosmo = default_cosmology()
    mf = ccl.halos.MassFuncTinker08(mass_def=ccl.halos.MassDef200c, mass_def_strict=False)
    z_edges = np.linspace(CONFIG.z_min, CONFIG.z_max, CONFIG.num_slices + 1)
    chi = ccl.comoving_radial_distance(cosmo, 1.0 / (1.0 + z_edges))
    field = GEOMETRY.num_pixels * GEOMETRY.pixel_area_sr
    expected = expected14 = 0.0
    for i in range(CONFIG.num_slices):
        a = 1.0 / (1.0 + 0.5 * (z_edges[i] + z_edges[i + 1]))
        vol = field * (chi[i + 1] ** 3 - chi[i] ** 3) / 3.0
        dn = lambda e: float(mf(cosmo, 10.0**e, a))  # noqa: E731
        expected += vol * quad(dn, 12.0, 16.0, limit=200)[0]
        expected14 += vol * quad(dn, 14.0, 16.0, limit=200)[0]
    # bins are log-linear interpolations of the mass function: 1 % allowed on top of Poisson error
    assert abs(simulator.expected_number / expected - 1) < 0.01
    for observed, exp, name in ((counts, expected, "all"), (counts14, expected14, ">=1e14")):
        sem = math.sqrt(exp / len(cats))  # Poisson
        assert abs(observed.mean() - exp) < 4 * sem + 0.01 * exp, f"{name}: {observed.mean():.1f} vs {exp:.1f} ± {sem:.1f}"
        # Poisson: variance ≈ mean
        assert 0.5 < observed.var(ddof=1) / exp < 1.6


def test_catalogue_masses_in_range_and_positions_in_field(maps_and_catalogues):
    _, cats = maps_and_catalogues
    cat = cats[0]
    assert np.all((cat.mass >= CONFIG.mass_min * (1 - 1e-9)) & (cat.mass <= CONFIG.mass_max * (1 + 1e-9)))
    assert np.all((cat.x >= 0) & (cat.x < GEOMETRY.npix) & (cat.y >= 0) & (cat.y < GEOMETRY.npix))
    assert np.all((cat.redshift > CONFIG.z_min) & (cat.redshift < CONFIG.z_max))


def test_painted_mass_equals_catalogue_mass():
    cfg = HaloModelConfig(num_slices=10, mass_bins_per_decade=6, large_scale_field="none", mean="none")
    sim = halo_model_simulator(GEOMETRY, cfg)
    kappa, cat = sim.sample(3)
    painted = float(np.sum(kappa, dtype=np.float64)) * GEOMETRY.pixel_area_sr
    assert painted == pytest.approx(float(cat.kappa_mass_sr.sum()), rel=1e-4)
    # massive haloes stand out: the pixel at a >= 1e14 halo is above the map median
    big = cat.select(1e14)
    if len(big):
        rows, cols = big.pixel_indices()
        assert np.all(kappa[rows, cols] > np.median(kappa))


def test_mean_conventions():
    base = dict(num_slices=10, mass_bins_per_decade=6)
    m_map = halo_model_simulator(GEOMETRY, HaloModelConfig(mean="map", **base)).sample_maps(2, 1)
    assert np.all(np.abs(m_map.mean(axis=(1, 2))) < 1e-6)
    sim = halo_model_simulator(GEOMETRY, HaloModelConfig(mean="expected", large_scale_field="none", **base))
    means = sim.sample_maps(16, 2).mean(axis=(1, 2))
    sim_none = halo_model_simulator(GEOMETRY, HaloModelConfig(mean="none", large_scale_field="none", **base))
    means_none = sim_none.sample_maps(16, 2).mean(axis=(1, 2))
    assert np.allclose(means_none - means, sim.expected_mean, atol=1e-6)
    assert abs(means.mean()) < 4 * means.std(ddof=1) / 4 + 1e-4


def test_deterministic_for_a_seed(simulator):
    a, ca = simulator.sample(7)
    b, cb = simulator.sample(7)
    c, _ = simulator.sample(8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca.mass, cb.mass)
    assert not np.array_equal(a, c)


def test_n_of_z_sources():
    z = np.linspace(0.05, 2.0, 40)
    nz = z**2 * np.exp(-((z / 0.5) ** 1.5))
    cfg = HaloModelConfig(sources=SourceRedshifts.from_nz(z, nz), num_slices=8, mass_bins_per_decade=4)
    sim = halo_model_simulator(MapGeometry(32, 104.4 / 120), cfg)
    kappa, cat = sim.sample(0)
    assert np.all(np.isfinite(kappa)) and cat.redshift.max() < 2.0


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(mass_min=1e15, mass_max=1e13), "mass_max"),
        (dict(mass_min=-1e12), "mass_min"),
        (dict(mass_min=0.0), "mass_min"),
        (dict(mass_max=float("nan")), "mass_max"),
        (dict(sources=SourceRedshifts.single_plane(0.005)), "z_source=0.005"),
        (dict(z_min=1.5), "z_min=1.5"),
        (dict(num_slices=0), "num_slices"),
        (dict(mass_function="PressSchechter"), "mass_function"),
        (dict(mean="zero"), "mean"),
        (dict(large_scale_field="poisson"), "large_scale_field"),
    ],
)
def test_bad_config_is_a_clear_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        HaloModelConfig(**kwargs)


def test_halo_map_of_a_catalogue_is_the_maps_halo_part_and_splits_by_mass():
    """``halo_map`` repaints a drawn catalogue exactly as the map was painted, and is additive over sub-catalogues."""
    from core.physics.halos import HaloCatalogue

    geometry = MapGeometry(64, 104.4 / 120)
    haloes_only = halo_model_simulator(geometry, HaloModelConfig(num_slices=6, mass_bins_per_decade=4,
                                                                 large_scale_field="none"))
    maps, cats = haloes_only.sample_maps(2, 5, with_catalogues=True)
    for kappa, cat in zip(maps, cats):
        full = haloes_only.halo_map(cat)
        np.testing.assert_allclose(full - haloes_only.expected_mean, kappa, atol=1e-6 * np.abs(kappa).max())
        fields = ("x", "y", "mass", "redshift", "theta_delta_arcmin", "kappa_mass_sr")
        light = HaloCatalogue(*(getattr(cat, f)[cat.mass < 1e13] for f in fields))
        heavy = cat.select(1e13)
        assert len(light) > 0 and len(heavy) > 0
        np.testing.assert_allclose(haloes_only.halo_map(light) + haloes_only.halo_map(heavy), full,
                                   atol=1e-9 * np.abs(full).max())
    other = halo_model_simulator(geometry, HaloModelConfig(num_slices=6, mass_bins_per_decade=4, mass_min=1e13,
                                                           large_scale_field="none"))
    with pytest.raises(ValueError, match="outside this simulator's range"):
        other.halo_map(cats[0])
    shifted = HaloCatalogue(*(getattr(cats[0], f) for f in ("x", "y", "mass")), cats[0].redshift + 0.01,
                            cats[0].theta_delta_arcmin, cats[0].kappa_mass_sr)
    with pytest.raises(ValueError, match="lens planes"):
        haloes_only.halo_map(shifted)


# ---------------------------------------------------------------------------- clustered (biased) haloes
BIASED = HaloModelConfig(num_slices=10, mass_bins_per_decade=6, clustering="biased")


@pytest.fixture(scope="module")
def biased_simulator():
    return halo_model_simulator(GEOMETRY, BIASED)


@pytest.fixture(scope="module")
def biased_maps(biased_simulator):
    return biased_simulator.sample_maps(NUM_MAPS, 12, with_catalogues=True)


def _halo_and_smooth(sim, maps, cats):
    haloes = np.stack([sim.halo_map(c) - sim.expected_mean for c in cats])
    return haloes, maps - haloes


def test_biased_haloes_keep_the_theory_power_and_the_halo_counts(biased_simulator, biased_maps):
    """Clustering moves haloes, not power: the total still follows the target C_ℓ per ℓ bin (same allowance as the
    Poisson maps), and the counts keep their mass-function means."""
    maps, cats = biased_maps
    _assert_power_follows(maps, biased_simulator.target_power)
    counts = np.array([len(c) for c in cats], float)
    expected = biased_simulator.expected_number
    assert abs(counts.mean() - expected) < 4 * math.sqrt(expected / len(cats))
    # the slice weight W_s (mean matter of a slice, from ρ_m, its volume and Σ_crit) is the lensing kernel
    # q(χ) Δχ = 3/2 Ω_m (H0/c)² χ (χ_s − χ)/(χ_s a) Δχ of a single source plane, up to the slice's mid-point rule
    cosmo = default_cosmology()
    chi_s = float(ccl.comoving_radial_distance(cosmo, 1.0 / (1.0 + BIASED.z_max)))
    h0 = cosmo["h"] * 100.0 / 299792.458  # 1/Mpc
    z_edges = np.linspace(BIASED.z_min, BIASED.z_max, BIASED.num_slices + 1)
    delta_chi = np.diff(ccl.comoving_radial_distance(cosmo, 1.0 / (1.0 + z_edges)))
    chi, a = biased_simulator.chi_slices, biased_simulator.a_slices
    q = 1.5 * cosmo["Omega_m"] * h0**2 * chi * (chi_s - chi) / (chi_s * a) * delta_chi
    # the nearest slice (χ from ≈ 0, volume ∝ χ³) is where the two mid-point rules part (+20 % there, measured)
    np.testing.assert_allclose(biased_simulator.slice_weight[1:], q[1:], rtol=0.03)


def test_biased_haloes_sit_in_the_overdense_large_scale_field(biased_simulator, biased_maps):
    """The halo part and the smooth part of a map are correlated on large scales as the linear bias predicts
    (:attr:`cross_power`, Σ_s R_s L_s (1 − R_s L_s) P_s), and uncorrelated for Poisson haloes.

    Measured (48 maps, seed 12): −21 ± 9 %, −12 ± 8 %, +16 ± 12 % of the prediction in the three bins; the linear
    prediction ignores the clipping of 1 + b δ at 0 and uses one bias per mass bin, hence 25 % allowed."""
    maps, cats = biased_maps
    haloes, smooth = _halo_and_smooth(biased_simulator, maps, cats)
    cross = (np.fft.fft2(haloes) * np.conj(np.fft.fft2(smooth))).real / GEOMETRY.npix**2
    predicted = biased_simulator.cross_power
    edges = np.array([1.0, 400.0, 800.0, 1600.0])
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (GEOMETRY.ell >= lo) & (GEOMETRY.ell < hi)
        per_map = cross[:, sel].mean(axis=1)
        mean, sem = per_map.mean(), per_map.std(ddof=1) / math.sqrt(per_map.size)
        expect = predicted[sel].mean()
        assert expect > 0.03 * biased_simulator.target_power[sel].mean()
        assert abs(mean - expect) < 3 * sem + 0.25 * expect, f"ell [{lo:.0f}, {hi:.0f}): cross {mean:.3g} ± {sem:.3g} vs {expect:.3g}"
    poisson = halo_model_simulator(GEOMETRY, HaloModelConfig(num_slices=10, mass_bins_per_decade=6))
    maps_p, cats_p = poisson.sample_maps(NUM_MAPS // 2, 13, with_catalogues=True)
    haloes_p, smooth_p = _halo_and_smooth(poisson, maps_p, cats_p)
    cross_p = (np.fft.fft2(haloes_p) * np.conj(np.fft.fft2(smooth_p))).real / GEOMETRY.npix**2
    sel = (GEOMETRY.ell >= 1.0) & (GEOMETRY.ell < 800.0)
    per_map = cross_p[:, sel].mean(axis=1)
    assert abs(per_map.mean()) < 3 * per_map.std(ddof=1) / math.sqrt(per_map.size)
    assert np.all(poisson.cross_power == 0.0)


def test_biased_maps_are_deterministic_and_refuse_a_non_gaussian_large_scale_field(biased_simulator):
    a, ca = biased_simulator.sample(21)
    b, cb = biased_simulator.sample(21)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca.x, cb.x)
    for kwargs, fragment in ((dict(clustering="biased", large_scale_field="lognormal"), "large_scale_field='gaussian'"),
                             (dict(clustering="clustered"), "clustering"),
                             (dict(halo_bias="Mo96"), "halo_bias"),
                             (dict(bias_smoothing_mpc=0.0), "bias_smoothing_mpc")):
        with pytest.raises(ValueError, match=fragment):
            HaloModelConfig(**kwargs)
