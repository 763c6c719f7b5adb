"""The oracle estimators of ``benchmarks/halo_oracle.py``: the every-halo oracle is the exact posterior mean given
the haloes (its direct-denoising error equals the analytic Gaussian MMSE of the rest), knowing haloes helps on the
lensing mocks, and bad options are refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.halo_oracle import OracleConfig, main, ring_average, run_scale
from core.physics.cosmology import SourceRedshifts
from core.physics.halos import HaloModelConfig, halo_model_simulator


def test_ring_average_keeps_ring_means_and_isotropic_maps():
    n = 32
    k = np.fft.fftfreq(n) * n
    radius = np.hypot(k[:, None], k[None, :])
    isotropic = np.exp(-np.rint(radius) / 5.0)
    np.testing.assert_allclose(ring_average(isotropic), isotropic, rtol=1e-12)
    noisy = np.random.default_rng(0).random((n, n))
    averaged = ring_average(noisy)
    ring = np.rint(radius).astype(int)
    for r in (1, 5, 12):
        np.testing.assert_allclose(averaged[ring == r], noisy[ring == r].mean(), rtol=1e-12)


@pytest.fixture(scope="module")
def result():
    return run_scale(OracleConfig(scales=("0.87",), num_maps=6, cuts=(1e14,), num_power_maps=8), "0.87")


def test_every_halo_oracle_reaches_the_analytic_mmse_of_the_gaussian_rest(result):
    """Given every halo, the rest is the Gaussian field G: per-mode MMSE P_G σ²/(P_G + σ²) (periodic, white noise)."""
    from benchmarks.halo_posterior import cosmos_patch

    setup = cosmos_patch("0.87", 64)
    simulator = halo_model_simulator(setup.geometry, HaloModelConfig(sources=SourceRedshifts.single_plane(1.0)))
    s2 = result["median_pixel_noise"] ** 2
    expected = float(np.mean(simulator.large_scale_power * s2 / (simulator.large_scale_power + s2)))
    mse = np.array([m["rmse"] ** 2 for m in result["per_map"][f"direct {simulator.config.mass_min:.3g}"]])
    se = mse.std(ddof=1) / np.sqrt(mse.size)
    assert abs(mse.mean() - expected) < 4 * se, (mse.mean(), expected, se)
    wiener = np.array([m["rmse"] ** 2 for m in result["per_map"]["direct Wiener"]])
    assert np.all(mse < wiener)


def test_knowing_the_haloes_helps_on_the_lensing_mocks_and_more_haloes_help_more(result):
    every, massive, none = result["oracles"][0], result["oracles"][1], result["per_map"]["lensing Wiener"]
    assert every["every_halo"] and not massive["every_halo"] and massive["mass_cut"] == 1e14
    assert every["lensing"]["d_rmse_relative"]["mean"] < massive["lensing"]["d_rmse_relative"]["mean"] < 0
    assert every["lensing"]["d_pearson"]["mean"] > massive["lensing"]["d_pearson"]["mean"] > 0
    assert every["haloes_known_per_map"] > massive["haloes_known_per_map"] > 0
    assert len(none) == 6 and 0.3 < every["rest_variance_fraction"] < massive["rest_variance_fraction"] < 1


def test_bad_options_are_refused_by_name(capsys, tmp_path):
    with pytest.raises(ValueError, match="mass cuts must be positive"):
        OracleConfig(cuts=(-1.0,)).validate()
    with pytest.raises(ValueError, match="scales must be among"):
        OracleConfig(scales=("0.5",)).validate()
    assert main(["--cuts", "1e14,abc", "--output-dir", str(tmp_path)]) == 1
    assert "--cuts must be comma-separated numbers, got '1e14,abc'" in capsys.readouterr().err
    assert main(["--num-maps", "1", "--output-dir", str(tmp_path)]) == 1
    assert "num_maps must be an integer ≥ 2, got 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
