"""Tests of core.data.observation: masks, noise models, mock shear and Observation validation."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from astropy.io import fits

from core.data.assets import asset_path
from core.physics.geometry import MapGeometry
from core.physics.lensing import LensingOperator
from core.data.observation import (
    MASK_PRESETS,
    NoiseModel,
    Observation,
    cosmos_mask,
    full_mask,
    mask_from_array,
    mask_from_fits,
    mask_from_polygons,
    mock_shear,
    random_holes_mask,
    resample_mask,
    stateless_seed,
    stripes_mask,
)

GEOM = MapGeometry(32, 1.0)


def _valid_mask(mask: np.ndarray, geometry: MapGeometry = GEOM) -> None:
    assert mask.shape == geometry.shape and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}


# --------------------------------------------------------------------------- seeds
def test_int_seeds_are_reproducible():
    # tfp.random.sanitize_seed(int) is stateful (a new seed each call); ours must not be.
    np.testing.assert_array_equal(stateless_seed(4).numpy(), stateless_seed(4).numpy())
    assert not np.array_equal(stateless_seed(4).numpy(), stateless_seed(5).numpy())
    np.testing.assert_array_equal(stateless_seed(tf.constant([3, 9], tf.int32)).numpy(), [3, 9])
    with pytest.raises(ValueError, match="seed"):
        stateless_seed(-1)
    with pytest.raises(ValueError, match="seed"):
        stateless_seed(None)


# --------------------------------------------------------------------------- masks
def test_full_mask():
    mask = full_mask(GEOM)
    _valid_mask(mask)
    assert mask.all()


def test_random_holes_mask_is_seeded_and_circular():
    a = random_holes_mask(GEOM, 5, 2.5, seed=1)
    _valid_mask(a)
    np.testing.assert_array_equal(a, random_holes_mask(GEOM, 5, 2.5, seed=1))
    assert not np.array_equal(a, random_holes_mask(GEOM, 5, 2.5, seed=2))
    # Each hole masks at most π r² pixels (≈ 19.6 + boundary pixels); five holes at most ~5·29.
    assert 0 < (a == 0).sum() <= 5 * 29
    # One centred-ish hole of radius 0 masks nothing; zero holes too.
    assert random_holes_mask(GEOM, 3, 0.0, seed=0).all()
    assert random_holes_mask(GEOM, 0, 2.0, seed=0).all()
    ranged = random_holes_mask(GEOM, 4, (1.0, 3.0), seed=3)
    _valid_mask(ranged)
    with pytest.raises(ValueError, match="num_holes"):
        random_holes_mask(GEOM, -1, 1.0, seed=0)
    with pytest.raises(ValueError, match="radius_arcmin"):
        random_holes_mask(GEOM, 2, (3.0, 1.0), seed=0)


def test_stripes_mask_geometry():
    mask = stripes_mask(GEOM, width_arcmin=2.0, spacing_arcmin=8.0)
    _valid_mask(mask)
    # angle 0: vertical stripes, every row identical; masked fraction = width / spacing exactly here.
    assert np.all(mask == mask[0:1])
    assert (mask == 0).mean() == pytest.approx(2.0 / 8.0)
    rotated = stripes_mask(GEOM, 2.0, 8.0, angle_deg=90.0)
    np.testing.assert_array_equal(rotated, mask.T)
    diagonal = stripes_mask(GEOM, 2.0, 8.0, angle_deg=45.0)
    assert 0.15 < (diagonal == 0).mean() < 0.35
    with pytest.raises(ValueError, match="spacing_arcmin"):
        stripes_mask(GEOM, 4.0, 3.0)


def test_cosmos_mask_resampling():
    full = cosmos_mask(MapGeometry(360, 0.29))
    ref = fits.getdata(asset_path("cosmos", "cosmos_mask_0.29arcmin_360px.fits"))
    np.testing.assert_array_equal(full, ref)
    coarse = cosmos_mask(MapGeometry(90, 1.16))
    _valid_mask(coarse, MapGeometry(90, 1.16))
    expected = ref.reshape(90, 4, 90, 4).mean(axis=(1, 3)) >= 0.5
    np.testing.assert_array_equal(coarse, expected.astype(np.float32))
    odd_ratio = cosmos_mask(MapGeometry(64, 1.0))  # 360/64 is not an integer: nearest neighbour
    assert abs(odd_ratio.mean() - ref.mean()) < 0.02
    assert abs(coarse.mean() - ref.mean()) < 0.02


def test_resample_mask_nearest_upsampling():
    small = np.array([[1, 0], [0, 1]], np.float32)
    np.testing.assert_array_equal(resample_mask(small, 4), np.kron(small, np.ones((2, 2))))


def test_mask_from_array_validation():
    good = np.zeros(GEOM.shape, bool)
    good[3, 4] = True
    mask = mask_from_array(good, GEOM)
    _valid_mask(mask)
    assert mask.sum() == 1
    with pytest.raises(ValueError, match="shape"):
        mask_from_array(np.ones((8, 8)), GEOM)
    with pytest.raises(ValueError, match="only 0 and 1"):
        mask_from_array(np.full(GEOM.shape, 0.5), GEOM)
    with pytest.raises(ValueError, match="NaN"):
        mask_from_array(np.full(GEOM.shape, np.nan), GEOM)
    with pytest.raises(ValueError, match="all zero"):
        mask_from_array(np.zeros(GEOM.shape), GEOM)


def test_mask_from_fits_round_trip(tmp_path):
    mask = random_holes_mask(GEOM, 4, 3.0, seed=5)
    path = tmp_path / "mask.fits"
    fits.PrimaryHDU(mask.astype(np.int16)).writeto(path)
    np.testing.assert_array_equal(mask_from_fits(path, GEOM), mask)
    with pytest.raises(ValueError, match="shape"):
        mask_from_fits(path, MapGeometry(16, 1.0))
    assert mask_from_fits(path, MapGeometry(16, 1.0), resample=True).shape == (16, 16)
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    with pytest.raises(ValueError, match="no 2-D image"):
        mask_from_fits(empty, GEOM)


def test_mask_from_polygons():
    square = [(9.5, 9.5), (19.5, 9.5), (19.5, 19.5), (9.5, 19.5)]  # encloses pixel centres 10..19
    mask = mask_from_polygons([square], GEOM)
    _valid_mask(mask)
    assert (mask == 0).sum() == 100
    assert np.all(mask[10:20, 10:20] == 0)
    inside = mask_from_polygons([square], GEOM, mode="include")
    np.testing.assert_array_equal(inside, 1.0 - mask)
    triangle = [(0, 0), (31, 0), (0, 31)]
    assert 0 < (mask_from_polygons([triangle], GEOM) == 0).sum() < GEOM.num_pixels
    with pytest.raises(ValueError, match="polygons\\[0\\]"):
        mask_from_polygons([[(0, 0), (1, 1)]], GEOM)
    with pytest.raises(ValueError, match="mode"):
        mask_from_polygons([square], GEOM, mode="other")


@pytest.mark.parametrize("name", sorted(MASK_PRESETS))
def test_mask_presets(name):
    geometry = MapGeometry(90, 1.16)
    mask = MASK_PRESETS[name](geometry)
    _valid_mask(mask, geometry)
    assert 0.3 < mask.mean() <= 1.0


# --------------------------------------------------------------------------- noise
def test_noise_model_from_galaxy_density():
    geometry = MapGeometry(16, 0.5)
    noise = NoiseModel.from_galaxy_density(geometry, sigma_e=0.26, n_gal_arcmin2=30.0)
    assert noise.std.shape == (2, 16, 16) and noise.std.dtype == np.float32
    np.testing.assert_allclose(noise.std, 0.26 / np.sqrt(30.0 * 0.25), rtol=1e-6)
    with pytest.raises(ValueError, match="n_gal_arcmin2"):
        NoiseModel.from_galaxy_density(geometry, n_gal_arcmin2=0.0)
    with pytest.raises(ValueError, match="sigma_e"):
        NoiseModel.from_galaxy_density(geometry, sigma_e=-0.1)


def test_noise_model_from_std_maps():
    one = np.full((16, 16), 0.2)
    assert NoiseModel.from_std_maps(one).std.shape == (2, 16, 16)
    two = np.stack([one, 2 * one])
    np.testing.assert_allclose(NoiseModel.from_std_maps(two).std[1], 0.4, rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        NoiseModel.from_std_maps(np.ones((3, 16, 16)))
    with pytest.raises(ValueError, match="non-negative"):
        NoiseModel.from_std_maps(-one)
    with pytest.raises(ValueError, match="NaN"):
        NoiseModel.from_std_maps(np.full((16, 16), np.nan))


def test_mock_shear_statistics():
    """Normalised residuals (γ − Pκ)/σ_n on observed pixels are N(0,1): with n ≈ 2·32²·8 ≈ 1.6e4 values
    the sample variance has std √(2/n) ≈ 0.011 (5σ = 0.056) and the mean 1/√n ≈ 0.008 (5σ = 0.04)."""
    rng = np.random.default_rng(0)
    kappa = rng.normal(0, 0.05, size=(8, 32, 32)).astype(np.float32)
    op = LensingOperator(GEOM)
    std = rng.uniform(0.1, 0.3, size=(2, 32, 32)).astype(np.float32)
    mask = random_holes_mask(GEOM, 4, 3.0, seed=2)
    gamma = mock_shear(kappa, op, NoiseModel.from_std_maps(std), mask, seed=7)
    assert gamma.shape == (8, 2, 32, 32) and gamma.dtype == tf.float32
    assert np.all(gamma.numpy()[:, :, mask == 0] == 0)
    z = ((gamma - op.forward(kappa)).numpy() / std)[:, :, mask > 0]
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    np.testing.assert_array_equal(gamma.numpy(), mock_shear(kappa, op, NoiseModel.from_std_maps(std), mask, seed=7).numpy())


# --------------------------------------------------------------------------- Observation
@pytest.fixture()
def arrays():
    rng = np.random.default_rng(1)
    geometry = MapGeometry(16, 1.0)
    mask = random_holes_mask(geometry, 2, 3.0, seed=1)
    shear = rng.normal(0, 0.1, (2, 16, 16)).astype(np.float32)
    std = np.full((2, 16, 16), 0.2, np.float32)
    return geometry, shear, std, mask


def test_observation_cleans_unobserved_pixels(arrays):
    geometry, shear, std, mask = arrays
    shear = shear.copy()
    std = std.copy()
    shear[:, mask == 0] = np.nan  # allowed where nothing is observed
    std[:, mask == 0] = -1.0
    obs = Observation(geometry, shear, std, mask, metadata={"a": 1})
    assert np.all(obs.shear[:, mask == 0] == 0) and np.all(obs.noise_std[:, mask == 0] == 0)
    assert obs.shear.dtype == np.float32 and not obs.shear.flags.writeable
    assert obs.observed_fraction == pytest.approx(mask.mean())
    assert obs.metadata == {"a": 1}
    obs_2d = Observation(geometry, obs.shear, np.full((16, 16), 0.2), mask)  # one std map for both components
    assert obs_2d.noise_std.shape == (2, 16, 16)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s, n, m: (np.where(m > 0, np.nan, s), n, m), "NaN"),
        (lambda s, n, m: (np.where(m > 0, np.inf, s), n, m), "infinite"),
        (lambda s, n, m: (s[:, :8], n, m), "shape mismatch"),
        (lambda s, n, m: (s, n[:, :, :8], m), "shape mismatch"),
        (lambda s, n, m: (s, n, m[:8]), "shape mismatch"),
        (lambda s, n, m: (s, n, np.zeros_like(m)), "all zero"),
        (lambda s, n, m: (s, -n, m), "negative or zero"),
        (lambda s, n, m: (s, 0 * n, m), "negative or zero"),
        (lambda s, n, m: (s, np.full_like(n, np.inf), m), "non-finite"),
        (lambda s, n, m: (s, n, 0.5 * m), "only 0 and 1"),
    ],
)
def test_observation_validation_errors(arrays, mutate, message):
    geometry, shear, std, mask = arrays
    s, n, m = mutate(shear, std, mask)
    with pytest.raises(ValueError, match=message):
        Observation(geometry, s, n, m)


def test_observation_simulated(arrays):
    geometry, _, std, mask = arrays
    kappa = np.zeros(geometry.shape, np.float32)
    obs = Observation.simulated(geometry, kappa, NoiseModel.from_std_maps(std), mask, seed=3)
    again = Observation.simulated(geometry, kappa, std, mask, seed=3)
    np.testing.assert_array_equal(obs.shear, again.shear)
    assert obs.metadata["source"] == "simulated"
    assert np.all(obs.shear[:, mask == 0] == 0) and np.any(obs.shear != 0)
    with pytest.raises(ValueError, match="single map"):
        Observation.simulated(geometry, np.zeros((2, 16, 16)), std, mask, seed=3)
