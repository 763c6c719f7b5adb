"""Headless tests of the dashboard settings and of the settings → core problem translation (no browser)."""
from __future__ import annotations

import io
import math

import numpy as np
import param
import pytest

from dashboard.settings import (
    COSMOS,
    DATA_SOURCES,
    MASK_CHOICES,
    MASK_PRESET_KEYS,
    PRIOR_CHOICES,
    SAMPLER_CHOICES,
    SAMPLER_OPTION_NAMES,
    SIMULATED_LOGNORMAL,
    UPLOADED,
    DashboardSettings,
    per_pixel_noise_std,
)


def test_defaults_are_the_lead_demo():
    s = DashboardSettings()
    s.validate()
    assert s.data_source == SIMULATED_LOGNORMAL
    assert (s.npix, s.pixel_size_arcmin) == (64, 0.87)
    assert (s.sigma_e, s.n_gal_arcmin2) == (0.26, 30.0)
    assert s.mask == "stars" and s.prior == PRIOR_CHOICES[0]
    assert (s.sampler, s.num_leapfrog_steps, s.num_chains, s.seed) == ("hmc", 3, 8, 0)
    assert s.schedule == "geometric" and 0.1 <= s.sigma_max <= 1.0 and s.sigma_min == pytest.approx(1e-3)
    assert s.total_steps == s.num_levels * s.steps_per_level


def test_every_parameter_is_documented_and_numbers_are_bounded():
    s = DashboardSettings()
    for name, parameter in s.param.objects().items():
        if name == "name":
            continue
        assert parameter.doc and len(parameter.doc) > 15, f"{name} has no doc"
        if isinstance(parameter, param.Number) and name not in SAMPLER_OPTION_NAMES:  # Integer is a Number
            lo, hi = parameter.bounds
            assert lo is not None and hi is not None, f"{name} is unbounded"
            assert lo <= getattr(s, name) <= hi


def test_noise_std_formula():
    # σ_n = σ_e / sqrt(n_gal · θ_pix²): 0.26 / sqrt(30 · 0.87²) = 0.054562…
    assert per_pixel_noise_std(0.26, 30.0, 0.87) == pytest.approx(0.26 / math.sqrt(30.0 * 0.87**2), rel=1e-12)
    assert DashboardSettings().noise_std() == pytest.approx(0.0545624, rel=1e-5)
    with pytest.raises(ValueError, match="n_gal_arcmin2"):
        per_pixel_noise_std(0.26, 0.0, 0.87)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (dict(npix=33), "npix"),
        (dict(sigma_min=0.5, sigma_max=0.1), "sigma_min"),
        (dict(noise_model="std_maps"), "noise_model"),
    ],
)
def test_impossible_combinations_name_the_parameter(overrides, needle):
    s = DashboardSettings(**overrides)
    with pytest.raises(ValueError, match=needle):
        s.validate()


def test_bounds_reject_out_of_range_values():
    with pytest.raises(ValueError):
        DashboardSettings(num_chains=1)  # the CLI's bound: the posterior std needs two chains
    with pytest.raises(ValueError):
        DashboardSettings(sigma_e=5.0)
    with pytest.raises(ValueError):
        DashboardSettings(prior="a neural net I made up")


def test_schedule_comes_from_core_schedules():
    s = DashboardSettings(sigma_max=0.5, sigma_min=1e-3, num_levels=11, steps_per_level=3)
    sched = s.make_schedule()
    sigmas = np.asarray(sched.sigmas, np.float64)
    assert sigmas.shape == (11,)
    assert sigmas[0] == pytest.approx(0.5, rel=1e-6) and sigmas[-1] == pytest.approx(1e-3, rel=1e-5)
    ratios = sigmas[1:] / sigmas[:-1]
    np.testing.assert_allclose(ratios, (1e-3 / 0.5) ** 0.1, rtol=1e-5)  # geometric: a constant ratio
    for kind in ("linear", "cosine"):
        s.schedule = kind
        assert np.all(np.diff(s.make_schedule().sigmas) <= 0)
    s.sigma_min = 1.0
    with pytest.raises(ValueError, match="sigma_min"):
        s.make_schedule()


def test_update_from_url_query_keeps_valid_values_and_names_bad_ones():
    s = DashboardSettings()
    assert s.update_from_mapping({"seed": [b"7"], "npix": "32", "teaching": "false", "sigma_max": "0.25"}) == []
    assert (s.seed, s.npix, s.teaching, s.sigma_max) == (7, 32, False, 0.25)
    problems = s.update_from_mapping({"seed": "9", "num_chains": "1000", "bogus": "1", "teaching": "perhaps",
                                      "npix": "7", "sigma_min": "0.3"})
    assert s.seed == 9  # the valid value is kept although others in the same query are bad
    assert (s.num_chains, s.teaching, s.npix, s.sigma_min) == (8, False, 32, 1e-3)
    text = " | ".join(problems)
    for needle in ("'num_chains'", "unknown setting 'bogus'", "'teaching'", "'npix'", "'sigma_min'"):
        assert needle in text, needle
    assert len(problems) == 5
    assert "too long" in s.update_from_mapping({"seed": "1" * 4400})[0] and s.seed == 9  # no 4300-digit int parsing
    assert "out of range" in s.update_from_mapping({"seed": str(2**64)})[0]
    assert set(s.as_dict()) == set(s.param) - {"name"}


def test_choices_and_bounds_come_from_core_options_and_the_registry():
    from core import options

    assert set(options.DATA_SOURCES) <= set(DATA_SOURCES) and COSMOS in DATA_SOURCES and UPLOADED in DATA_SOURCES
    assert {"cosmos", "uploaded", "drawn", "stars"} <= set(MASK_CHOICES)
    from core.data.observation import MASK_PRESETS

    assert set(MASK_PRESET_KEYS) <= set(MASK_PRESETS)
    assert SAMPLER_CHOICES == options.sampler_names()  # every registered sampler is offered
    s = DashboardSettings()
    for name in ("prior", "schedule", "init", "final_denoise", "sampler"):
        assert list(s.param[name].objects) == list(options.option(name).choices), name
    for name in ("npix", "num_chains", "seed", "sigma_max", "sigma_min", "num_levels", "steps_per_level"):
        opt = options.option(name)
        top = min(opt.maximum, 2**53 - 1) if name == "seed" else opt.maximum  # a browser number holds ≤ 2⁵³ − 1
        assert s.param[name].bounds == (opt.minimum, top), name
        assert s.param[name].default == opt.default, name
    for sampler in SAMPLER_CHOICES:  # each sampler's own options are settings, validated by its spec
        s.sampler = sampler
        spec = options.sampler_spec(sampler)
        assert set(s.shown_sampler_options()) == {o.name for o in spec.options}
        assert s.sampler_options() == spec.validate({})
    s.sampler = "hmc"
    s.num_leapfrog_steps = 5
    assert s.sampler_options()["num_leapfrog_steps"] == 5
    from dashboard.settings import HYBRID_DEFAULT_SAMPLER

    assert DashboardSettings(prior="hybrid").sampler == HYBRID_DEFAULT_SAMPLER
    assert DashboardSettings(prior="hybrid", sampler="ula").sampler == "ula"  # an explicit choice wins
    from dashboard.settings import HYBRID_DEFAULT_SAMPLER_OPTIONS

    hybrid = DashboardSettings(prior="hybrid")
    for name, value in HYBRID_DEFAULT_SAMPLER_OPTIONS.items():  # the options the benchmark chose come with it
        assert hybrid.sampler_options()[name] == value
    assert DashboardSettings(prior="hybrid", num_corrector_steps=2).sampler_options()["num_corrector_steps"] == 2
    switched = DashboardSettings()
    switched.prior = "hybrid"  # switching the prior on the page picks the same default
    assert switched.sampler == HYBRID_DEFAULT_SAMPLER and switched.sampler_options() == hybrid.sampler_options()
    url = DashboardSettings()
    assert url.update_from_mapping({"num_corrector_steps": "3", "prior": "hybrid"}) == []
    assert url.sampler_options()["num_corrector_steps"] == 3  # a URL option wins over the prior's default


# ----------------------------------------------------------------------------- uploads & problem building
def _fits_bytes(*arrays: np.ndarray) -> bytes:
    from astropy.io import fits

    hdus = [fits.PrimaryHDU(arrays[0])] + [fits.ImageHDU(a) for a in arrays[1:]]
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def test_shear_upload_layouts_and_errors():
    from dashboard.uploads import MAX_UPLOAD_BYTES, parse_shear_upload

    rng = np.random.default_rng(1)
    g = rng.normal(size=(2, 16, 16)).astype(np.float32)
    std = np.full((2, 16, 16), 0.1, np.float32)
    shear, s = parse_shear_upload(_fits_bytes(g))
    np.testing.assert_array_equal(shear, g)
    assert s is None
    shear, s = parse_shear_upload(_fits_bytes(g[0], g[1], std[0], std[1]))
    np.testing.assert_array_equal(s, std)
    with pytest.raises(ValueError, match="not a FITS file"):
        parse_shear_upload(b"hello, I am a text file", "notes.txt")
    with pytest.raises(ValueError, match="square"):
        parse_shear_upload(_fits_bytes(np.zeros((2, 16, 18), np.float32)))
    bad = g.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        parse_shear_upload(_fits_bytes(bad))
    with pytest.raises(ValueError, match="upload limit is 32 MiB"):
        parse_shear_upload(b"SIMPLE  =" + b" " * MAX_UPLOAD_BYTES)
    with pytest.raises(ValueError, match="empty"):
        parse_shear_upload(b"")


def test_upload_caps_are_enforced_before_decompressing():
    import gzip

    from core.options import MAX_NPIX
    from dashboard.uploads import parse_mask_upload, parse_shear_upload

    from astropy.io import fits

    # A header claiming a 2 × 4096² float64 cube, gzip-compressed to a few kB: refused from the header alone.
    header = fits.Header()
    header["SIMPLE"], header["BITPIX"], header["NAXIS"] = True, -64, 3
    header["NAXIS1"], header["NAXIS2"], header["NAXIS3"] = 4096, 4096, 2
    bomb = gzip.compress(header.tostring().encode() + b"\0" * (2 * 4096 * 4096 * 8 // 64))  # truncated data
    assert len(bomb) < 200_000
    with pytest.raises(ValueError, match="cap"):
        parse_shear_upload(bomb, "bomb.fits.gz")
    big = np.zeros((2, MAX_NPIX + 2, MAX_NPIX + 2), np.float32)
    with pytest.raises(ValueError, match=str(MAX_NPIX)):
        parse_shear_upload(_fits_bytes(big), "big.fits")
    png = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (5000).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0"
    with pytest.raises(ValueError, match="at most"):
        parse_mask_upload(png, "huge.png")
    g = np.zeros((2, 16, 16), np.float32)
    shear, _ = parse_shear_upload(gzip.compress(_fits_bytes(g)), "ok.fits.gz")  # a small gzip upload works
    assert shear.shape == (2, 16, 16)


def test_mask_upload_fits_png_and_all_zero():
    from matplotlib.image import imsave

    from dashboard.uploads import parse_mask_upload

    mask = np.ones((16, 16), np.float32)
    mask[2:5, 3:9] = 0
    np.testing.assert_array_equal(parse_mask_upload(_fits_bytes(mask)), mask)
    with pytest.raises(ValueError, match="all zero"):
        parse_mask_upload(_fits_bytes(np.zeros((16, 16), np.float32)))
    # A PNG drawn top-down: image row 0 is the top of the map, i.e. map row N-1.
    buffer = io.BytesIO()
    imsave(buffer, np.flipud(mask), cmap="gray", vmin=0, vmax=1, format="png")
    np.testing.assert_array_equal(parse_mask_upload(buffer.getvalue(), "mask.png"), mask)


def test_drawn_shapes_rasterise_at_pixel_centres():
    from core.physics.geometry import MapGeometry
    from dashboard.uploads import drawn_mask

    geometry = MapGeometry(16, 1.0)
    mask = drawn_mask(geometry, {"x0": [1.5], "y0": [2.5], "x1": [4.5], "y1": [3.5]},
                      {"xs": [[10.0, 14.0, 14.0]], "ys": [[10.0, 10.0, 14.0]]})
    assert mask[3, 2:5].sum() == 0 and mask[3, 1] == 1 and mask[4, 3] == 1  # box covers columns 2–4, row 3
    assert mask[11, 13] == 0 and mask[13, 11] == 1  # inside / outside the triangle
    assert drawn_mask(geometry, {}, {}).all()


def test_build_problem_simulated_tiny():
    from dashboard.problem import build_problem

    s = DashboardSettings(npix=16, num_levels=4, steps_per_level=2, num_chains=2, mask="stripes")
    p = build_problem(s)
    assert p.geometry.npix == 16 and p.truth.shape == (16, 16)
    assert p.shear.shape == (2, 16, 16)
    assert 0.0 < p.mask.mean() < 1.0
    assert np.all(p.shear[:, p.mask == 0] == 0)
    expected_std = s.noise_std()
    np.testing.assert_allclose(np.asarray(p.core.noise_std)[:, p.mask > 0], expected_std, rtol=1e-5)
    assert p.kaiser_squires.shape == p.wiener.shape == (16, 16)
    assert p.theory_power.shape == p.ell_centres.shape and np.nanmin(p.theory_power) > 0
    assert p.kappa_range[0] == -p.kappa_range[1] > -1.0
    assert p.schedule.num_levels == 4


def test_build_problem_cosmos_uses_real_footprint_and_wcs():
    from dashboard.problem import build_problem

    s = DashboardSettings(data_source=COSMOS, mask="cosmos", noise_model="std_maps", num_levels=4, steps_per_level=2)
    p = build_problem(s)
    assert p.geometry.npix == 120 and p.geometry.pixel_size_arcmin == pytest.approx(0.87, rel=1e-3)
    assert p.truth is None and p.wcs is not None
    assert 0.3 < p.mask.mean() < 0.8  # the footprint covers about half of the square


def test_build_problem_reports_missing_uploads():
    from dashboard.problem import build_problem

    with pytest.raises(ValueError, match="data_source"):
        build_problem(DashboardSettings(data_source=UPLOADED))
    with pytest.raises(ValueError, match="mask"):
        build_problem(DashboardSettings(npix=16, mask="uploaded"))
