"""Tests of core.physics.cosmology: pyccl convergence C_ℓ, tabulated spectra and the pixel power map."""
from __future__ import annotations

import numpy as np
import pyccl as ccl
import pytest
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM, Planck18
from astropy.io import fits

from core.data.assets import asset_path
from core.physics.cosmology import (
    DEFAULT_CL_ASSET,
    SourceRedshifts,
    TheorySpectrum,
    _convergence_cl_cached,
    convergence_cl,
    default_cosmology,
    default_power_map,
    default_spectrum,
    empty_beam_convergence,
    make_cosmology,
    square_pixel_window,
)
from core.physics.geometry import MapGeometry


# ----------------------------------------------------------------------- cosmology
def test_default_cosmology_is_planck18():
    cosmo = default_cosmology()
    assert cosmo["Omega_c"] == pytest.approx(Planck18.Odm0)
    assert cosmo["Omega_b"] == pytest.approx(Planck18.Ob0)
    assert cosmo["h"] == pytest.approx(Planck18.h)
    assert cosmo["n_s"] == pytest.approx(Planck18.meta["n"])
    assert cosmo["sigma8"] == pytest.approx(Planck18.meta["sigma8"])
    np.testing.assert_allclose(np.atleast_1d(cosmo["m_nu"]), [0.06])  # one massive species, as astropy
    # the same (cached) object for repeated calls
    assert default_cosmology() is cosmo


def test_make_cosmology_inputs_and_errors():
    base = dict(Omega_c=0.26, Omega_b=0.049, h=0.68, n_s=0.965, sigma8=0.81)
    cosmo = make_cosmology(base)
    assert cosmo["sigma8"] == pytest.approx(0.81)
    assert make_cosmology(cosmo) is cosmo
    with pytest.raises(ValueError, match="missing"):
        make_cosmology({"Omega_c": 0.26, "h": 0.7})
    with pytest.raises(ValueError, match="sigma8 or A_s"):
        make_cosmology({**base, "A_s": 2.1e-9})
    with pytest.raises(ValueError, match="finite"):
        make_cosmology({**base, "h": float("nan")})
    with pytest.raises(ValueError, match="rejected by pyccl"):
        make_cosmology({**base, "transfer_function": "no_such_transfer"})
    # per-species neutrino masses given as a list are accepted (and hashed for the cache)
    assert np.atleast_1d(make_cosmology({**base, "m_nu": [0.0, 0.0, 0.06]})["m_nu"])[0] == pytest.approx(0.06)
    with pytest.raises(ValueError, match="cosmology must be"):
        make_cosmology("Planck18")
    with pytest.raises(ValueError, match="camb"):
        try:
            import camb  # noqa: F401

            raise ValueError("camb installed: nothing to test")  # pragma: no cover
        except ImportError:
            make_cosmology({**base, "transfer_function": "boltzmann_camb"})


def test_astropy_cosmology_matches_default_and_sigma8_scales_power():
    ell = np.array([200.0, 2000.0])
    assert np.array_equal(convergence_cl(ell, Planck18), convergence_cl(ell))
    hi = dict(Omega_c=Planck18.Odm0, Omega_b=Planck18.Ob0, h=Planck18.h, n_s=0.9665, sigma8=0.9,
              m_nu=0.06, Neff=3.046, T_CMB=2.7255)
    ratio = convergence_cl(ell, hi) / convergence_cl(ell)
    # linear theory gives (0.9/0.8102)^2 = 1.234; halofit's non-linear boost only adds to it
    assert np.all(ratio > (0.9 / 0.8102) ** 2 * 0.98)
    # a flat astropy cosmology without metadata falls back to the Planck18 n_s and sigma8
    flat = FlatLambdaCDM(H0=67.66, Om0=0.30966, Ob0=0.04897, Tcmb0=2.7255, Neff=3.046, m_nu=[0, 0, 0.06] * u.eV)
    np.testing.assert_allclose(convergence_cl(ell, flat), convergence_cl(ell), rtol=2e-3)


# ------------------------------------------------------------------------- sources
def test_source_redshifts_validation():
    assert SourceRedshifts().z_source == 1.0
    assert SourceRedshifts.single_plane(0.5).is_single_plane
    with pytest.raises(ValueError, match="z_source"):
        SourceRedshifts.single_plane(-1.0)
    with pytest.raises(ValueError, match="increasing"):
        SourceRedshifts.from_nz([0.0, 1.0, 0.5], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        SourceRedshifts.from_nz([0.0, 0.5, 1.0], [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="equal length"):
        SourceRedshifts.from_nz([0.0, 0.5, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="sources"):
        convergence_cl(100.0, sources="z=1")
    # hashable (part of the cache key)
    assert hash(SourceRedshifts.from_nz([0.1, 0.5, 1.0], [0.0, 1.0, 0.0])) is not None


def test_narrow_nz_matches_single_source_plane():
    """The n(z) path (lensing kernel, convergence prefactor) against the single-plane tracer:
    a Gaussian n(z) of width 0.005 around z=1 shifts the kernel by O(width²) — agreement to 1%."""
    z = np.linspace(0.95, 1.05, 201)
    nz = np.exp(-0.5 * ((z - 1.0) / 0.005) ** 2)
    ell = np.array([100.0, 1000.0, 10000.0])
    np.testing.assert_allclose(
        convergence_cl(ell, sources=SourceRedshifts.from_nz(z, nz)), convergence_cl(ell, sources=1.0), rtol=1e-2
    )


# ----------------------------------------------------------------- physics checks
def _independent_limber(ell: np.ndarray, z_source: float) -> np.ndarray:
    """C_ℓ^κκ = ∫₀^χs dχ q(χ)²/χ² P_NL((ℓ+½)/χ, z), q = (3/2)(H₀/c)² Ω_m χ(χs−χ)/χs (1+z).

    Independent pieces: comoving distances and Ω_m from astropy's Planck18 (its own
    integrator; Ω_m includes the massive neutrinos, as in pyccl), the kernel and the χ-integral written here (trapezoid on 4000
    points); only P_NL(k, z) is taken from pyccl.
    """
    cosmo = default_cosmology()
    z = np.linspace(1e-4, z_source, 4000)
    chi = Planck18.comoving_distance(z).to_value(u.Mpc)
    chi_s = Planck18.comoving_distance(z_source).to_value(u.Mpc)
    h0_over_c = (Planck18.H0 / const.c).to_value(1 / u.Mpc)
    # massive ν are matter today; Onu0 also holds ~2.5e-5 of massless ν (1e-4 relative: negligible)
    omega_m = Planck18.Om0 + Planck18.Onu0
    q = 1.5 * h0_over_c**2 * omega_m * chi * (chi_s - chi) / chi_s * (1.0 + z)
    out = []
    for ell_i in ell:
        k = (ell_i + 0.5) / chi
        pk = np.array([ccl.nonlin_matter_power(cosmo, kk, 1.0 / (1.0 + zz)) for kk, zz in zip(k, z)])
        out.append(np.trapezoid(q**2 / chi**2 * pk, chi))
    return np.array(out)


def test_ccl_matches_independent_limber_integral():
    """pyccl's C_ℓ against a direct Limber integral with astropy distances: agreement to 0.5%.

    Expected residual differences: pyccl's (ℓ(ℓ+1))²/(ℓ+½)⁴ prefactor (< 1e-4 for ℓ ≥ 100),
    its spline of the kernel on 512 χ samples, and Ω_m/massive-neutrino bookkeeping
    (Ω_m differs by ~1e-4 relative): together well below the 0.5% tolerance.
    """
    ell = np.array([100.0, 1000.0, 10000.0])
    ours = convergence_cl(ell)
    reference = _independent_limber(ell, 1.0)
    np.testing.assert_allclose(ours, reference, rtol=5e-3)  # measured: 2.5e-4


def test_amplitude_order_of_magnitude():
    """ℓ(ℓ+1)C_ℓ/2π ~ 1e-4 at ℓ ~ 1000 for sources at z ~ 1 (e.g. Kilbinger 2015, Rep. Prog. Phys.
    78 086901, Fig. 3; Bartelmann & Schneider 2001): require it within a factor 3."""
    ell = 1000.0
    d_ell = ell * (ell + 1) * convergence_cl(ell) / (2 * np.pi)
    assert 3e-5 < d_ell < 3e-4
    # and it rises with source redshift
    assert convergence_cl(ell, sources=1.5) > convergence_cl(ell, sources=1.0) > convergence_cl(ell, sources=0.5)


def test_empty_beam_convergence_matches_astropy():
    """κ_empty from pyccl distances against the same integral with astropy distances and
    trapezoid integration. Ω_m differs by 1e-4 relative between the two (massless-ν bookkeeping),
    integration error < 1e-6: tolerance 1e-3 (measured 9.5e-5)."""
    z = np.linspace(0.0, 1.0, 4001)
    chi = Planck18.comoving_distance(z).to_value(u.Mpc)
    h0_over_c = (Planck18.H0 / const.c).to_value(1 / u.Mpc)
    reference = -1.5 * h0_over_c**2 * (Planck18.Om0 + Planck18.Onu0) * np.trapezoid(
        chi * (chi[-1] - chi) / chi[-1] * (1 + z), chi
    )
    assert empty_beam_convergence(1.0) == pytest.approx(reference, rel=1e-3)
    with pytest.raises(ValueError, match="z_source"):
        empty_beam_convergence(0.0)


def test_convergence_cl_is_cached_and_validates():
    ell = np.array([123.0, 456.0])
    before = _convergence_cl_cached.cache_info().hits
    first = convergence_cl(ell)
    second = convergence_cl(ell)
    assert _convergence_cl_cached.cache_info().hits >= before + 1
    np.testing.assert_array_equal(first, second)
    first[0] = -1.0  # callers get copies: the cache is not corrupted
    assert convergence_cl(ell)[0] > 0
    assert convergence_cl(500.0).shape == ()
    with pytest.raises(ValueError, match="ell"):
        convergence_cl(np.array([0.0, 10.0]))
    # a pyccl Cosmology object is accepted too and agrees with the parameter path
    np.testing.assert_allclose(convergence_cl(ell, default_cosmology()), second, rtol=1e-10)


# ------------------------------------------------------------------ TheorySpectrum
def test_theory_spectrum_interpolates_and_extrapolates_power_laws_exactly():
    ell = np.geomspace(10, 1e4, 7)
    spectrum = TheorySpectrum(ell, 3e-9 * (ell / 100.0) ** -1.3)
    query = np.array([1.0, 15.0, 333.3, 9999.0, 5e4])
    np.testing.assert_allclose(spectrum(query), 3e-9 * (query / 100.0) ** -1.3, rtol=1e-12)
    # a broken power law: each end extrapolates with its own slope
    cl = np.where(ell < 500, (ell / 500.0) ** 1.0, (ell / 500.0) ** -2.0)
    broken = TheorySpectrum(ell, cl)
    assert broken(1.0) == pytest.approx(cl[0] * (1.0 / ell[0]) ** 1.0, rel=1e-12)
    assert broken(1e5) == pytest.approx(cl[-1] * (1e5 / ell[-1]) ** -2.0, rel=1e-12)


@pytest.mark.parametrize(
    "ell, cl, match",
    [
        ([1.0, 2.0, 2.0], [1.0, 1.0, 1.0], "increasing"),
        ([1.0, 2.0, 3.0], [1.0, 0.0, 1.0], "positive"),
        ([1.0, 2.0, 3.0], [1.0, np.nan, 1.0], "positive and finite"),
        ([0.0, 2.0, 3.0], [1.0, 1.0, 1.0], "ell must be positive"),
        ([1.0, 2.0], [1.0, 1.0, 1.0], "equal length"),
        ([1.0], [1.0], "at least 2"),
    ],
)
def test_theory_spectrum_validation(ell, cl, match):
    with pytest.raises(ValueError, match=match):
        TheorySpectrum(np.array(ell), np.array(cl))


def test_theory_spectrum_file_round_trips(tmp_path):
    spectrum = TheorySpectrum.from_ccl(ell_min=10, ell_max=1e4, num_ell=50)
    text = tmp_path / "cl.txt"
    spectrum.to_file(text)
    np.save(tmp_path / "cl.npy", np.stack([spectrum.ell, spectrum.cl]))  # (2, n) layout
    cols = fits.ColDefs([fits.Column(name="ELL", format="D", array=spectrum.ell),
                         fits.Column(name="CL", format="D", array=spectrum.cl)])
    fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "cl.fits")
    fits.PrimaryHDU(np.column_stack([spectrum.ell, spectrum.cl])).writeto(tmp_path / "cl_image.fits")
    for name in ("cl.txt", "cl.npy", "cl.fits", "cl_image.fits"):
        loaded = TheorySpectrum.from_file(tmp_path / name)
        np.testing.assert_allclose(loaded.ell, spectrum.ell, rtol=1e-15)
        np.testing.assert_allclose(loaded.cl, spectrum.cl, rtol=1e-15)
    with pytest.raises(ValueError, match="does not exist"):
        TheorySpectrum.from_file(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    with pytest.raises(ValueError, match="two columns"):
        TheorySpectrum.from_file(tmp_path / "bad.txt")


# ------------------------------------------------------------------------ power map
def test_power_map_units_and_zero_mode():
    geometry = MapGeometry(16, 2.0)
    variance = 3.0e-4
    # a flat C_ℓ = v Ω_pix is white noise of per-pixel variance v: P_k = v without the window
    white = TheorySpectrum(np.array([1.0, 1e6]), np.full(2, variance * geometry.pixel_area_sr))
    np.testing.assert_allclose(white.power_map(geometry, pixel_window=False), variance, rtol=1e-12)
    windowed = white.power_map(geometry)
    window = square_pixel_window(geometry)
    np.testing.assert_allclose(windowed.ravel()[1:], variance * window.ravel()[1:] ** 2, rtol=1e-12)
    # Nyquist along one axis: sinc(1/2)^2 = 4/π^2 per axis
    assert windowed[0, 8] == pytest.approx(variance * (2 / np.pi) ** 2, rel=1e-12)
    # k = 0 takes the value of the fundamental mode (1/npix, 0)
    power = default_spectrum().power_map(geometry)
    assert power[0, 0] == pytest.approx(power[0, 1], rel=1e-12)
    assert power[0, 0] == pytest.approx(power[1, 0], rel=1e-12)
    # other modes follow C(ℓ)/Ω_pix × W²
    expected = default_spectrum()(geometry.ell[3, 5]) / geometry.pixel_area_sr * window[3, 5] ** 2
    assert power[3, 5] == pytest.approx(expected, rel=1e-12)
    # symmetric P(k) = P(-k) (needed for real fields)
    np.testing.assert_allclose(power, np.roll(power[::-1, ::-1], (1, 1), axis=(0, 1)), rtol=1e-12)


def test_default_power_map_cached_copy():
    geometry = MapGeometry(32, 1.0)
    first = default_power_map(geometry)
    first[:] = 0.0
    second = default_power_map(geometry)
    assert second.shape == (32, 32) and np.all(second > 0)
    np.testing.assert_array_equal(second, default_power_map(MapGeometry(32, 1.0)))
    with pytest.raises(ValueError, match="geometry"):
        default_power_map((32, 32))


def test_shipped_default_spectrum_matches_pyccl():
    """assets/cl holds the default spectrum as text; it must agree with a fresh pyccl
    computation (1e-3: room for pyccl patch releases; regenerate the file if this fails)."""
    shipped = TheorySpectrum.from_file(asset_path(*DEFAULT_CL_ASSET))
    fresh = default_spectrum()
    np.testing.assert_allclose(shipped.ell, fresh.ell, rtol=1e-12)
    np.testing.assert_allclose(shipped.cl, fresh.cl, rtol=1e-3)
