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


def test_power_spectrum_matches_theory_per_ell_bin(simulator, maps_and_catalogues):
    maps, _ = maps_and_catalogues
    power, idx, edges = _band_power(maps, GEOMETRY)
    checked = 0
    for b in range(1, len(edges)):
        sel = idx == b
        if sel.sum() < 4:
            continue
        ratio = power[:, sel].mean(axis=1) / simulator.target_power[sel].mean()  # per map
        mean, sem = ratio.mean(), ratio.std(ddof=1) / math.sqrt(ratio.size)
        assert abs(mean - 1.0) < 3 * sem + POWER_SYSTEMATIC, (
            f"ell in [{edges[b-1]:.0f}, {edges[b]:.0f}): power ratio {mean:.3f} ± {sem:.3f} to the halofit C_ell"
        )
        checked += 1
    assert checked >= 5


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
    # the slice sum against pyccl's Limber integral of its own 1-halo P(k) over the same mass range
    cosmo = default_cosmology()
    md = ccl.halos.MassDef200c
    mf = ccl.halos.MassFuncTinker08(mass_def=md, mass_def_strict=False)
    hb = ccl.halos.HaloBiasTinker10(mass_def=md, mass_def_strict=False)
    hmc = ccl.halos.HMCalculator(mass_function=mf, halo_bias=hb, mass_def=md, log10M_min=12.0, log10M_max=16.0, nM=128)
    prof = ccl.halos.HaloProfileNFW(mass_def=md, concentration=ccl.halos.ConcentrationDuffy08(mass_def=md), truncated=True)
    pk = ccl.halos.halomod_Pk2D(cosmo, hmc, prof, get_2h=False)
    tracer = ccl.CMBLensingTracer(cosmo, z_source=1.0, n_samples=512)
    ell = np.geomspace(300.0, 1500.0, 4)
    cl_ccl = ccl.angular_cl(cosmo, tracer, tracer, ell, p_of_k_a=pk)
    # the default 20 lens planes (z_min = 0.01) vs pyccl's continuous Limber integral: 15 % allowed at
    # 300 <= ell <= 1500. Known open discrepancy: at ell = 5000 (1e4) the slice sum is 0.72 (0.48) of pyccl's
    # 1-halo C_ell, converged in the number of slices (checked with 10, 20, 40), cause not yet found.
    default = halo_model_simulator(MapGeometry(16, GEOMETRY.pixel_size_arcmin), HaloModelConfig(large_scale_field="none"))
    ratio = default.one_halo_spectrum(ell) / cl_ccl
    assert np.all(np.abs(ratio - 1.0) < 0.15), f"one-halo C_ell / pyccl halomod 1h: {np.round(ratio, 3)}"


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
