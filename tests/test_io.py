"""Tests of core.data.fits_io: catalogue binning reproduces the shared COSMOS maps, WCS, FITS round trips, layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from core.data.assets import asset_path
from core.data.fits_io import (
    bin_catalogue,
    load_cosmos,
    make_wcs,
    read_catalogue,
    read_map_fits,
    read_maps_fits,
    read_shear_fits,
    read_xray_groups,
    write_maps_fits,
)
from core.data.observation import Observation
from tests.helpers import gzip_bomb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cosmos"
if not SHARED.exists():  # the checkout may sit elsewhere; the shared folder is a sibling of the repo root
    SHARED = Path("/work/shared/data/cosmos")
CATALOGUE = SHARED / "cosmos_shear_catalog.fits"
needs_catalogue = pytest.mark.skipif(not CATALOGUE.exists(), reason="shared COSMOS catalogue not available")


@pytest.fixture(scope="module")
def cosmos_catalogue():
    return read_catalogue(CATALOGUE)


@needs_catalogue
def test_binning_reproduces_shared_cosmos_maps(cosmos_catalogue):
    """Tolerances: the shared e1/e2 maps are float32, so they differ from our float64 means by at most one
    float32 ulp at |e| ≤ 1.32 (1.2e-7); the std maps are float64 and agree to summation round-off (1e-10);
    the mask is exact."""
    cat = cosmos_catalogue
    binned = bin_catalogue(cat["RA"], cat["DEC"], cat["E1"], cat["E2"], cat["WEIGHT"], npix=360, pixel_size_arcmin=0.29)
    for name in ("e1", "e2", "std1", "std2", "mask"):
        ref = fits.getdata(SHARED / f"cosmos_{name}_0.29arcmin_360px.fits").astype(np.float64)
        atol = {"e1": 1.2e-7, "e2": 1.2e-7, "std1": 1e-10, "std2": 1e-10, "mask": 0.0}[name]
        np.testing.assert_allclose(getattr(binned, name), ref, rtol=0, atol=atol, err_msg=name)
    assert binned.center == pytest.approx((150.1161025, 2.247490268))
    assert binned.counts.max() == 23 and binned.metadata["n_galaxies"] <= len(cat["RA"])


def test_bin_catalogue_small_synthetic():
    # Three galaxies in one pixel, one in another; the centre is given so the grid is known exactly.
    step = 1.0 / 60.0  # 1 arcmin pixels
    ra0, dec0 = 10.0, -5.0
    wcs = make_wcs(ra0, dec0, 8, 1.0)
    ra_c, dec_c = wcs.pixel_to_world_values(np.array([1, 3]), np.array([2, 0]))  # pixel [row 2, col 1], [row 0, col 3]
    ra = np.array([ra_c[0], ra_c[0] + 0.3 * step, ra_c[0] - 0.3 * step, ra_c[1]])
    dec = np.array([dec_c[0], dec_c[0] + 0.2 * step, dec_c[0], dec_c[1]])
    e1 = np.array([0.1, 0.2, 0.3, -0.4])
    e2 = np.array([0.5, 0.0, -0.1, 0.2])
    w = np.array([1.0, 2.0, 1.0, 3.0])
    b = bin_catalogue(ra, dec, e1, e2, w, npix=8, pixel_size_arcmin=1.0, center=(ra0, dec0), sigma_e=0.3)
    assert b.counts[2, 1] == 3 and b.counts[0, 3] == 1 and b.counts.sum() == 4
    assert b.e1[2, 1] == pytest.approx((0.1 + 0.4 + 0.3) / 4.0)
    assert b.e2[2, 1] == pytest.approx(-(0.5 - 0.1) / 4.0)  # flip_e2: sign changed
    assert b.std1[2, 1] == pytest.approx(0.3 / np.sqrt(3)) and b.std2[0, 3] == pytest.approx(0.3)
    assert b.mask.sum() == 2 and b.std1[0, 0] == 0
    unflipped = bin_catalogue(ra, dec, e1, e2, w, npix=8, pixel_size_arcmin=1.0, center=(ra0, dec0), flip_e2=False)
    assert unflipped.e2[2, 1] == pytest.approx(-b.e2[2, 1])
    obs = b.to_observation()
    assert isinstance(obs, Observation) and obs.geometry.npix == 8
    with pytest.raises(ValueError, match="dec"):
        bin_catalogue(ra, dec[:2], e1, e2, w, npix=8)
    with pytest.raises(ValueError, match="e1"):
        bin_catalogue(ra, dec, np.full(4, np.nan), e2, w, npix=8)


def test_make_wcs_places_pixel_centres_like_the_binning():
    ra0, dec0, npix, pix = 150.1161025, 2.247490268, 360, 0.29
    wcs = make_wcs(ra0, dec0, npix, pix)
    step, half = pix / 60.0, npix * pix / 60.0 / 2.0
    j = np.array([0, 17, 359])
    i = np.array([0, 200, 359])
    ra, dec = wcs.pixel_to_world_values(j, i)
    np.testing.assert_allclose(ra, ra0 - half + (j + 0.5) * step, atol=1e-10)
    np.testing.assert_allclose(dec, dec0 - half + (i + 0.5) * step, atol=1e-10)
    assert wcs.wcs.cdelt[0] > 0  # RA increases with the column index (mirrored sky)
    with pytest.raises(ValueError, match="pixel_size_arcmin"):
        make_wcs(ra0, dec0, npix, -1.0)


def test_read_catalogue_names_missing_columns(tmp_path):
    path = tmp_path / "cat.fits"
    Table({"ra": [1.0], "DEC": [2.0], "E1": [0.1]}).write(path)
    cols = read_catalogue(path, columns=("RA", "DEC"))  # case-insensitive
    assert cols["RA"][0] == 1.0
    with pytest.raises(ValueError, match="'E2'.*'WEIGHT'"):
        read_catalogue(path)
    renamed = read_catalogue(path, columns={"RA": "ra", "E": "E1"})
    assert set(renamed) == {"RA", "E"}


def test_write_read_maps_round_trip_keeps_wcs(tmp_path):
    rng = np.random.default_rng(0)
    wcs = make_wcs(150.1, 2.2, 16, 0.5)
    maps = {"mean": rng.normal(size=(16, 16)).astype(np.float32), "std": rng.random((16, 16)).astype(np.float32)}
    samples = rng.normal(size=(5, 16, 16)).astype(np.float32)
    provenance = {"sampler": "hmc", "num_chains": 8, "sigma_min": 0.008, "schedule": [1.0, 0.5], "note": "x" * 120}
    path = write_maps_fits(tmp_path / "out.fits", maps, wcs=wcs, provenance=provenance, samples=samples)
    got, wcs2, prov = read_maps_fits(path)
    assert set(got) == {"mean", "std", "samples"}
    np.testing.assert_array_equal(got["mean"], maps["mean"])
    np.testing.assert_array_equal(got["samples"], samples)
    for key, value in provenance.items():
        assert prov[key] == value
    assert prov["_swversn"]
    pix = np.array([0.0, 7.5, 15.0])
    np.testing.assert_allclose(np.array(wcs2.pixel_to_world_values(pix, pix)), np.array(wcs.pixel_to_world_values(pix, pix)), atol=1e-12)
    header = fits.getheader(path, 0)
    assert header["HIERARCH KAPPASCOPE SAMPLER"] == "hmc"
    cube_wcs = read_map_fits(path, hdu="SAMPLES")[1]
    assert cube_wcs is not None and cube_wcs.naxis == 2
    from astropy.wcs import WCS

    full = WCS(fits.getheader(path, "SAMPLES"))  # a plain astropy reader sees a consistent 3-axis WCS
    assert full.naxis == 3 and full.wcs.ctype[2] == "SAMPLE"
    world = full.pixel_to_world_values(7.5, 7.5, 3.0)
    np.testing.assert_allclose(world[:2], wcs.pixel_to_world_values(7.5, 7.5), atol=1e-12)
    assert world[2] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="3-D cube"):
        write_maps_fits(tmp_path / "bad.fits", {"x": np.zeros(4)})
    with pytest.raises(ValueError, match="last two axes"):
        write_maps_fits(tmp_path / "bad.fits", {"a": np.zeros((4, 4)), "b": np.zeros((6, 6))})


def test_read_shear_fits_layouts(tmp_path):
    rng = np.random.default_rng(1)
    shear = rng.normal(size=(2, 8, 8)).astype(np.float32)
    wcs = make_wcs(10.0, 0.0, 8, 1.0)
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(shear, header=wcs.to_header()).writeto(cube)
    got, got_wcs = read_shear_fits(cube)
    np.testing.assert_array_equal(got, shear)
    assert got_wcs is not None
    named = tmp_path / "named.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(shear[0], name="G1"), fits.ImageHDU(shear[1], name="G2")]).writeto(named)
    np.testing.assert_array_equal(read_shear_fits(named)[0], shear)
    f1, f2 = tmp_path / "e1.fits", tmp_path / "e2.fits"
    fits.PrimaryHDU(shear[0]).writeto(f1)
    fits.PrimaryHDU(shear[1]).writeto(f2)
    np.testing.assert_array_equal(read_shear_fits(f1, f2)[0], shear)
    bad = tmp_path / "bad.fits"
    fits.PrimaryHDU(np.zeros((3, 8, 8), np.float32)).writeto(bad)
    with pytest.raises(ValueError, match=r"unrecognised shear layout.*\(3, 8, 8\)"):
        read_shear_fits(bad)
    with pytest.raises(ValueError, match="unrecognised shear layout"):
        read_shear_fits(f1)  # a single 2-D image is not a shear map
    with pytest.raises(ValueError, match="equal shape"):
        fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(tmp_path / "small.fits")
        read_shear_fits(f1, tmp_path / "small.fits")


def test_load_cosmos_full_resolution_matches_assets():
    obs = load_cosmos(360)
    assert obs.geometry.npix == 360 and obs.geometry.pixel_size_arcmin == pytest.approx(0.29)
    e2 = fits.getdata(asset_path("cosmos", "cosmos_e2_0.29arcmin_360px.fits"))
    np.testing.assert_array_equal(obs.shear[1], e2)
    assert obs.observed_fraction == pytest.approx(0.5339, abs=1e-4)
    assert obs.wcs is not None and obs.wcs.wcs.cdelt[0] > 0
    with pytest.raises(ValueError, match="npix=100"):
        load_cosmos(100)


@needs_catalogue
def test_load_cosmos_rebinned_matches_catalogue(cosmos_catalogue):
    """The shipped sufficient statistics reproduce direct catalogue binning at 90 px (1.16′): the only
    difference is the float32 rounding of the stored 0.29′ e-maps (relative 6e-8), so 1e-6 absolute."""
    obs = load_cosmos(90)
    cat = cosmos_catalogue
    direct = bin_catalogue(cat["RA"], cat["DEC"], cat["E1"], cat["E2"], cat["WEIGHT"], npix=90, pixel_size_arcmin=1.16)
    assert obs.geometry.pixel_size_arcmin == pytest.approx(1.16)
    np.testing.assert_array_equal(obs.mask, direct.mask)
    np.testing.assert_allclose(obs.shear, np.stack([direct.e1, direct.e2]), atol=1e-6)
    np.testing.assert_allclose(obs.noise_std, np.stack([direct.std1, direct.std2]), atol=1e-7)


def test_read_xray_groups():
    groups = read_xray_groups()
    assert len(groups) == 72
    assert np.all((groups["z"] > 0) & (groups["z"] < 1.5))
    assert np.all(np.abs(groups["ra"] - 150.1) < 1.0) and np.all(np.abs(groups["dec"] - 2.2) < 1.0)


# --------------------------------------------------------------------------- input caps (#14 item 3) and messages
def test_gzip_bomb_is_refused_before_its_data_is_allocated(tmp_path):
    """A 2×4096² float64 image (256 MiB) in a ≈ 0.3 MB .fits.gz: refused from its header, peak memory stays small."""
    import tracemalloc

    from core.data.fits_io import MAX_IMAGE_BYTES
    from core.data.observation import mask_from_fits
    from core.physics.geometry import MapGeometry

    bomb = gzip_bomb(tmp_path / "bomb.fits.gz", (2, 4096, 4096))
    readers = (read_shear_fits, read_map_fits, lambda p: mask_from_fits(p, MapGeometry(4096, 1.0)), read_maps_fits)
    for reader in readers:
        tracemalloc.start()
        with pytest.raises(ValueError, match=r"over the 32\.0 MiB input cap"):
            reader(bomb)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_IMAGE_BYTES / 4, f"{peak / 2**20:.1f} MiB allocated before refusing"


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_truncated_file_and_oversized_table_are_refused(tmp_path):
    from core.data import fits_io

    header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", 64), ("NAXIS2", 64)])
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(header.tostring().encode() + bytes(2880))
    with pytest.raises(ValueError, match="truncated"):
        read_map_fits(truncated)
    Table({"RA": np.zeros(1000), "DEC": np.zeros(1000)}).write(tmp_path / "cat.fits")
    with fits.open(tmp_path / "cat.fits") as hdul:
        with pytest.raises(ValueError, match="input cap for tables"):
            fits_io.check_fits_headers(hdul, tmp_path / "cat.fits", max_table_bytes=1000)


def test_catalogue_column_and_content_errors(tmp_path):
    n = 50
    rng = np.random.default_rng(0)
    Table({"RA": np.array(["150.1"] * n), "DEC": rng.uniform(2, 2.1, n), "E1": np.zeros(n), "E2": np.zeros(n)}).write(
        tmp_path / "text.fits")
    with pytest.raises(ValueError, match=r"column 'RA' \(RA\) holds text values"):
        read_catalogue(tmp_path / "text.fits", ("RA", "DEC", "E1", "E2"))
    ra, dec, e = rng.uniform(150, 150.1, n), rng.uniform(2, 2.1, n), 0.3 * rng.standard_normal(n)
    with pytest.raises(ValueError, match="every weight is zero"):
        bin_catalogue(ra, dec, e, e, np.zeros(n), npix=16, pixel_size_arcmin=1.0)
    with pytest.raises(ValueError, match="1 galaxy; at least 2"):
        bin_catalogue(ra[:1], dec[:1], e[:1], e[:1], npix=16, pixel_size_arcmin=1.0)
    with pytest.raises(ValueError, match="real numbers"):
        bin_catalogue(ra.astype(str), dec, e, e, npix=16, pixel_size_arcmin=1.0)
    # pixels whose galaxies all carry zero weight are unobserved (no NaN shear)
    weight = np.where(np.arange(n) < n // 2, 0.0, 1.0)
    binned = bin_catalogue(ra, dec, e, e, weight, npix=4, pixel_size_arcmin=2.0)
    assert np.all(np.isfinite(binned.e1)) and np.all(binned.mask[binned.weight_sum == 0] == 0)


def test_non_ascii_provenance_is_written(tmp_path):
    path = write_maps_fits(tmp_path / "p.fits", {"MEAN": np.zeros((4, 4))}, provenance={"note": "σ ≈ 0"})
    _, _, prov = read_maps_fits(path)
    assert prov["note"] == "σ ≈ 0"
