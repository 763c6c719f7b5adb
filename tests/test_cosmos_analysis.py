"""Tests of core.analysis.cosmos_groups on synthetic maps with planted peaks, and of the COSMOS group positions."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from core.analysis.cosmos_groups import (
    compare_to_random,
    group_pixel_positions,
    group_statistics,
    peak_fraction_near,
    positions_in_mask,
    random_positions_in_mask,
    significance_at,
)
from core.physics.geometry import MapGeometry
from core.data.fits_io import make_wcs

N = 32


def _bump(row: float, col: float, amplitude: float = 5.0, width: float = 1.5) -> np.ndarray:
    r, c = np.mgrid[0:N, 0:N]
    return amplitude * np.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * width**2))


def test_pixel_positions_wcs_and_geometry_agree_and_respect_the_mirror() -> None:
    geometry = MapGeometry(N, 0.87)
    centre = (150.1161, 2.2475)
    wcs = make_wcs(*centre, N, 0.87)
    step = 0.87 / 60
    half = N * step / 2
    rows, cols = np.array([0, 5, 31, 16]), np.array([0, 20, 31, 3])
    # sky positions of the pixel centres by the binning convention (RA increases with the column)
    groups = Table({"ra": centre[0] - half + (cols + 0.5) * step, "dec": centre[1] - half + (rows + 0.5) * step})
    by_wcs = group_pixel_positions(groups, wcs=wcs)
    by_geometry = group_pixel_positions(groups, geometry=geometry, center=centre)
    np.testing.assert_allclose(by_wcs, np.column_stack([rows, cols]), atol=1e-6)
    np.testing.assert_allclose(by_geometry, np.column_stack([rows, cols]), atol=1e-9)
    # an (M, 2) array of (ra, dec) works too, and larger RA means a larger column (mirrored sky)
    east = group_pixel_positions(np.array([[centre[0] + 0.05, centre[1]], [centre[0] - 0.05, centre[1]]]), wcs=wcs)
    assert east[0, 1] > east[1, 1]
    with pytest.raises(ValueError, match="ra"):
        group_pixel_positions(Table({"x": [1.0], "y": [2.0]}), wcs=wcs)
    with pytest.raises(ValueError, match="wcs"):
        group_pixel_positions(groups)


def test_peak_fraction_counts_samples_with_a_peak_near_each_position() -> None:
    planted = (10.0, 20.0)
    samples = np.zeros((10, N, N))
    for s in range(7):  # 7 of 10 samples have the peak, displaced by up to one pixel
        samples[s] = _bump(planted[0] + (s % 3) - 1, planted[1] + (s % 2))
    samples[9] = _bump(25, 5, amplitude=0.5)  # a peak far away, below the threshold
    positions = np.array([planted, (25.0, 5.0), (10.0, 26.0)])
    frac = peak_fraction_near(samples, positions, radius_pix=2.0, threshold=1.0)
    np.testing.assert_allclose(frac, [0.7, 0.0, 0.0])
    # a larger radius reaches the third position (6 pixels away) for the samples displaced towards it
    assert peak_fraction_near(samples, positions[2:], radius_pix=6.0, threshold=1.0)[0] > 0
    # thresholds in signal-to-noise units: noise 10 turns the height-5 peaks into S/N 0.5
    assert peak_fraction_near(samples, positions[:1], 2.0, threshold=1.0, noise=np.full((N, N), 10.0))[0] == 0.0
    assert peak_fraction_near(samples, positions[:1], 2.0, threshold=0.4, noise=np.full((N, N), 10.0))[0] == 0.7
    with pytest.raises(ValueError, match="radius_pix"):
        peak_fraction_near(samples, positions, radius_pix=-1.0, threshold=1.0)


def test_significance_at_interpolates_and_flags_off_map_positions() -> None:
    r, c = np.mgrid[0:N, 0:N]
    plane = 2.0 * r + 3.0 * c  # bilinear interpolation is exact for a plane
    pos = np.array([[3.25, 7.5], [0.0, 0.0], [31.0, 31.0], [-3.0, 4.0]])
    values = significance_at(plane, pos)
    np.testing.assert_allclose(values[:3], 2 * pos[:3, 0] + 3 * pos[:3, 1])
    assert np.isnan(values[3])
    assert significance_at(plane, pos[:1], order=0)[0] == plane[3, 8]  # nearest pixel of (3.25, 7.5)


def test_random_positions_are_inside_the_mask_uniform_and_reproducible() -> None:
    mask = np.zeros((N, N))
    mask[:, :8] = 1.0  # 256 observed pixels
    mask[:4, 8:] = 1.0  # 96 more: 352 in all
    pos = random_positions_in_mask(mask, 4000, seed=5)
    assert positions_in_mask(pos, mask).all()
    np.testing.assert_array_equal(pos, random_positions_in_mask(mask, 4000, seed=5))
    assert not np.array_equal(pos, random_positions_in_mask(mask, 4000, seed=6))
    # fraction in the left block: binomial with p = 256/352; tolerance 4 standard errors sqrt(p(1-p)/n)
    p = 256 / 352
    frac = np.mean(np.rint(pos[:, 1]) < 8)
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / len(pos))
    with pytest.raises(ValueError, match="no observed pixel"):
        random_positions_in_mask(np.zeros((N, N)), 10, seed=0)


def test_compare_to_random_detects_a_shift() -> None:
    rng = np.random.default_rng(0)
    random_values = rng.standard_normal(2000)
    shifted = rng.standard_normal(40) + 1.5
    same = rng.standard_normal(40)
    strong = compare_to_random(shifted, random_values)
    null = compare_to_random(same, random_values)
    # a 1.5-sigma shift over 40 values is a >9-sigma effect on the mean: p far below 1e-6
    assert strong["mannwhitney_p_greater"] < 1e-6 and strong["ks_p"] < 1e-6
    assert strong["mean_groups"] > strong["mean_random"] + 1.0
    # under the null the p-value is uniform; with this fixed seed it is not small
    assert null["mannwhitney_p_greater"] > 0.01


def test_group_statistics_on_planted_peaks() -> None:
    groups = np.array([[8.0, 8.0], [20.0, 22.0], [5.0, 28.0]])  # the last one falls outside the mask
    mask = np.ones((N, N))
    mask[:, 26:] = 0.0
    rng = np.random.default_rng(1)
    base = _bump(8, 8) + _bump(20, 22)
    samples = base[None] + 0.3 * rng.standard_normal((12, N, N))
    stats = group_statistics(samples, mask, groups, pixel_size_arcmin=0.5, radius_arcmin=1.0, threshold=3.0,
                             num_random=500, seed=2)
    assert stats["num_groups_in_mask"] == 2 and stats["inside_mask"] == [True, True, False]
    np.testing.assert_allclose(stats["peak_fraction_groups"], [1.0, 1.0])
    assert stats["peak_fraction_random_mean"] < 0.3
    assert stats["significance_compare"]["mean_groups"] > 10 * max(stats["significance_compare"]["mean_random"], 1.0)


def test_cosmos_groups_land_inside_the_cosmos_footprint() -> None:
    """The shipped X-ray groups, placed with the COSMOS WCS at 0.87′ pixels, mostly fall on observed pixels
    (the groups were found in the same field); both position routes agree."""
    from core.data.fits_io import load_cosmos, read_xray_groups

    obs = load_cosmos(npix=120)
    groups = read_xray_groups()
    by_wcs = group_pixel_positions(groups, wcs=obs.wcs)
    # centre from the WCS: the pixel-grid centre ((N-1)/2, (N-1)/2)
    ra0, dec0 = obs.wcs.pixel_to_world_values((obs.geometry.npix - 1) / 2, (obs.geometry.npix - 1) / 2)
    by_geometry = group_pixel_positions(groups, geometry=obs.geometry, center=(float(ra0), float(dec0)))
    np.testing.assert_allclose(by_wcs, by_geometry, atol=1e-6)
    inside = positions_in_mask(by_wcs, obs.mask)
    assert inside.mean() > 0.5, (int(inside.sum()), len(inside))


def test_cosmos_map_script_smoke(tmp_path, capsys) -> None:
    """scripts/cosmos_map.py end to end on a coarse 40-pixel COSMOS grid with a few transitions: FITS, PNG, JSON."""
    import importlib.util
    import json
    from pathlib import Path

    from astropy.io import fits

    path = Path(__file__).resolve().parents[1] / "scripts" / "cosmos_map.py"
    spec = importlib.util.spec_from_file_location("cosmos_map_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rc = module.main(["--out", str(tmp_path), "--npix", "40", "--priors", "gaussian", "--chains", "3", "--levels", "3",
                      "--steps-per-level", "2", "--num-random", "200", "--radius", "5"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["npix"] == 40 and summary["num_groups"] == 72
    stats = summary["priors"]["gaussian"]
    assert 0 <= stats["peak_fraction_groups_mean"] <= 1 and 0 <= stats["peak_fraction_random_mean"] <= 1
    assert (tmp_path / "cosmos_posterior.png").stat().st_size > 10_000
    with fits.open(tmp_path / "cosmos_gaussian.fits") as hdul:
        assert hdul["SAMPLES"].data.shape == (3, 40, 40) and "CTYPE1" in hdul["MEAN"].header
    assert json.loads((tmp_path / "cosmos_summary.json").read_text())["num_groups_in_mask"] == summary["num_groups_in_mask"]
