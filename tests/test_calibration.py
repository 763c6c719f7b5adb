"""Tests of benchmarks/calibration.py: the coverage harness is right (exact Gaussian posterior on Gaussian truths is
calibrated), and the command writes its JSON and markdown table (tiny maps, few transitions)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.calibration import CalibrationConfig, expected_coverage, main, markdown_table, run_calibration


def test_expected_coverage_of_empirical_intervals() -> None:
    # Monte-Carlo standard error of each estimate: sqrt(q(1-q)/trials) = 0.002 at 50 000 trials; tolerance 0.01.
    assert expected_coverage(1000, 0.68, trials=50_000) == pytest.approx(0.68, abs=0.01)
    assert expected_coverage(1000, 0.95, trials=50_000) == pytest.approx(0.95, abs=0.01)
    # with few samples the empirical interval is too narrow: order statistics give E c = (hi - lo)/(C + 1),
    # for C = 5 and q = 0.68 with linear interpolation between the 2nd and 5th order statistic below 0.68
    assert expected_coverage(5, 0.68, trials=50_000) < 0.6


def test_exact_gaussian_posterior_is_calibrated_on_gaussian_truths() -> None:
    """Gaussian truth + exact Gaussian posterior samples ⇒ each pixel's indicator has mean p = expected_coverage.

    Tolerance: full mask and uniform noise make the posterior error field stationary with covariance eigenvalues
    v_k = (1/P_k + 1/σ_n²)⁻¹ (k ≠ 0; v_0 = P_0), correlation ρ(r) = ifft(v)/ifft(v)(0). The truth and the samples at
    pixels i, j are jointly Gaussian with canonical correlation |ρ_ij|, which bounds the correlation of any functions
    of them (maximal correlation), so Var(coverage) ≤ p(1−p) Σ_r |ρ(r)| / (N² M) for M maps of N² pixels.
    We allow 4 times the square root of this bound (≈ 0.10 at 68%, 0.06 at 95% here; the k = 0 mode, unconstrained
    by shear, correlates all pixels and dominates Σ|ρ| ≈ 44).
    """
    from core.physics.cosmology import default_power_map
    from core.physics.geometry import MapGeometry
    from core.data.observation import NoiseModel

    config = CalibrationConfig(npix=32, num_maps=16, num_chains=32, truth="gaussian", mask="full", priors=(),
                               exact_reference=True, seed=3)
    result = run_calibration(config, progress=False)
    geometry = MapGeometry(config.npix, config.pixel_size_arcmin)
    power = default_power_map(geometry)
    noise_var = float(NoiseModel.from_galaxy_density(geometry, config.sigma_e, config.n_gal_arcmin2).std[0, 0, 0]) ** 2
    v = 1.0 / (1.0 / power + 1.0 / noise_var)
    v[0, 0] = power[0, 0]
    xi = np.real(np.fft.ifft2(v))
    sum_abs_rho = float(np.abs(xi / xi[0, 0]).sum())
    exact = result["methods"]["Gaussian posterior (exact)"]
    for q in (68, 95):
        p = result["expected_coverage_with_num_chains"][f"coverage_{q}"]
        bound_sd = np.sqrt(p * (1 - p) * sum_abs_rho / (config.npix**2 * config.num_maps))
        assert exact[f"coverage_{q}"]["mean"] == pytest.approx(p, abs=4 * bound_sd), (q, bound_sd)
    # the posterior mean beats the prior's own scatter: RMSE below the truth's pixel std
    assert exact["rmse"]["mean"] < result["geometry"]["truth_pixel_std"]


def test_command_writes_json_and_markdown(tmp_path, capsys) -> None:
    rc = main(["--npix", "32", "--num-maps", "2", "--chains", "4", "--levels", "3", "--steps-per-level", "2",
               "--priors", "gaussian", "--output-dir", str(tmp_path), "--tag", "tiny"])
    assert rc == 0
    result = json.loads((tmp_path / "tiny.json").read_text())
    table = (tmp_path / "tiny.md").read_text()
    assert set(result["methods"]) == {"Kaiser-Squires", "Wiener filter", "Gaussian posterior (exact)",
                                      "Gaussian prior (HMC)"}
    hmc = result["methods"]["Gaussian prior (HMC)"]
    for key in ("coverage_68", "coverage_95"):
        assert 0.0 <= hmc[key]["mean"] <= 1.0
    assert hmc["coverage_95"]["mean"] >= hmc["coverage_68"]["mean"]
    assert np.isfinite(hmc["rmse"]["mean"]) and -1 <= hmc["pearson"]["mean"] <= 1
    for name in result["methods"]:
        assert f"| {name} |" in table
    assert table == markdown_table(result)
    assert json.loads(capsys.readouterr().out)["config"]["num_chains"] == 4


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_chains"):
        run_calibration(CalibrationConfig(num_chains=1))
    with pytest.raises(ValueError, match="priors"):
        run_calibration(CalibrationConfig(priors=("flat",)))


def test_halo_model_truths_run_through_the_pipeline(tmp_path) -> None:
    """``--truth halo_model``: non-Gaussian truths from core.physics.halos, sampled end to end (plumbing only)."""
    config = CalibrationConfig(npix=32, num_maps=1, num_chains=4, num_levels=2, steps_per_level=2, truth="halo_model",
                               priors=("gaussian",), exact_reference=False, seed=1)
    result = run_calibration(config, progress=False)
    assert result["config"]["truth"] == "halo_model"
    hmc = result["methods"]["Gaussian prior (HMC)"]
    assert np.isfinite(hmc["rmse"]["mean"]) and 0.0 <= hmc["coverage_95"]["mean"] <= 1.0
    assert result["geometry"]["truth_pixel_std"] > 0
    with pytest.raises(ValueError, match="truth"):
        run_calibration(CalibrationConfig(truth="nbody"))


def test_coverage_selected_by_the_mean_is_calibrated_where_truth_selected_is_not() -> None:
    """An exact posterior N(m, s²) per pixel with truths drawn from it: at the pixels where the *posterior mean* is in
    its top 5 % the intervals keep their coverage; at the *truth's* top 5 % they do not (the truth there sits in
    the tail of its own posterior). Tolerances: 4 binomial standard errors over the ≈ 205 selected pixels."""
    from benchmarks.calibration import sample_metrics

    rng = np.random.default_rng(0)
    npix, num_samples, s = 64, 64, 1.0
    mean = rng.normal(size=(npix, npix))
    truth = mean + s * rng.normal(size=(npix, npix))
    samples = mean + s * rng.normal(size=(num_samples, npix, npix))
    out = sample_metrics(samples, truth, np.ones((npix, npix), bool))
    ideal = expected_coverage(num_samples, 0.95)
    se = np.sqrt(ideal * (1 - ideal) / (0.05 * npix * npix))
    assert abs(out["coverage_95_mean_top5pct"] - ideal) < 4 * se
    assert out["coverage_95_top5pct"] < ideal - 4 * se


def test_monte_carlo_corrected_rmse_removes_the_finite_sample_excess() -> None:
    """A sampler whose exact mean μ is known: over many repetitions of N = 16 independent draws, the corrected MSE
    averages to ‖μ − t‖²/n within its Monte-Carlo error, while the raw MSE of the sample mean is biased by tr Σ / (nN)."""
    from benchmarks.calibration import monte_carlo_corrected_rmse

    rng = np.random.default_rng(11)
    npix, num, reps = 32, 16, 400
    truth = rng.normal(0.0, 1.0, (npix, npix))
    mu = truth + rng.normal(0.0, 0.3, (npix, npix))  # the exact posterior mean, off the truth
    std = rng.uniform(0.5, 1.5, (npix, npix))  # inhomogeneous posterior std
    sel = rng.random((npix, npix)) > 0.2
    exact = np.mean((mu - truth)[sel] ** 2)
    corrected, raw = [], []
    for _ in range(reps):
        samples = mu + std * rng.standard_normal((num, npix, npix))
        corrected.append(monte_carlo_corrected_rmse(samples, truth, sel) ** 2)
        raw.append(np.mean((samples.mean(0) - truth)[sel] ** 2))
    corrected, raw = np.asarray(corrected), np.asarray(raw)
    se = corrected.std(ddof=1) / np.sqrt(reps)
    assert abs(corrected.mean() - exact) < 4 * se
    excess = np.mean(std[sel] ** 2) / num
    assert abs(raw.mean() - exact - excess) < 4 * raw.std(ddof=1) / np.sqrt(reps)
    assert excess > 20 * se  # the correction is not lost in the noise of the test
    with pytest.raises(ValueError, match="at least 2 samples"):
        monte_carlo_corrected_rmse(mu[None], truth, sel)
