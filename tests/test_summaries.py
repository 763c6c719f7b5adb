"""Posterior summaries: moments, R-hat/ESS, power spectra, peaks and coverage on inputs with known answers."""
import numpy as np
import pytest

from core.physics.geometry import MapGeometry
from core.analysis.summaries import (
    find_peaks,
    interval_coverage,
    peak_counts,
    posterior_summary,
    rhat_ess,
    sample_power_spectra,
)

RNG = np.random.default_rng(42)


def test_posterior_summary_moments():
    x = RNG.normal(size=(50, 8, 8)).astype(np.float32) * 2.0 + 3.0
    s = posterior_summary(x)
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s.std, x.std(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(s.significance, s.mean / s.std, rtol=1e-5)
    assert s.num_samples == 50
    zero = posterior_summary(np.ones((3, 8, 8)))
    assert np.all(zero.significance == 0)
    with pytest.raises(ValueError, match="at least 2"):
        posterior_summary(x[:1])
    with pytest.raises(ValueError, match="non-finite"):
        posterior_summary(np.full((3, 8, 8), np.nan))


def test_rhat_ess_separate_mixed_from_stuck_chains():
    # iid draws: R̂ ≈ 1 (|R̂ − 1| ~ 1/T for T = 400) and ESS ≈ T·C = 1600 (s.e. of an ESS estimate is large; ±40 %)
    mixed = RNG.normal(size=(400, 4, 3))
    rhat, ess = rhat_ess(mixed)
    assert rhat.shape == (3,) and np.all(np.abs(rhat - 1) < 0.02)
    assert np.all((ess > 0.6 * 1600) & (ess < 1.4 * 1600))
    stuck = mixed + np.array([0.0, 0.0, 3.0, -3.0])[None, :, None]  # chains around different values
    rhat_bad, _ = rhat_ess(stuck)
    assert np.all(rhat_bad > 1.5)
    with pytest.raises(ValueError, match="2 chains"):
        rhat_ess(mixed[:, :1])
    with pytest.raises(ValueError, match="4 draws"):
        rhat_ess(mixed[:3])


def test_sample_power_spectra_recovers_white_noise_level():
    g = MapGeometry(16)
    x = RNG.normal(scale=0.5, size=(64, 16, 16))
    out = sample_power_spectra(x, g, num_bins=5)
    assert out["power"].shape == (64, 5) and out["ell"].shape == (5,)
    # white noise of variance 0.25 has P_k = 0.25 per mode; 64 maps × ≥ a few modes per bin → within 10 %
    np.testing.assert_allclose(out["mean"], 0.25, rtol=0.1)
    assert np.all(out["p16"] <= out["mean"] + 1e-12) and np.all(out["p84"] >= out["p16"])


def test_find_peaks_and_counts():
    m = np.zeros((16, 16))
    m[4, 4], m[10, 12], m[0, 0], m[0, 15] = 5.0, 3.0, 2.0, 1.5  # (0,15) neighbours (0,0) periodically
    peaks = {tuple(p) for p in find_peaks(m, threshold=1.0)}
    assert peaks == {(4, 4), (10, 12), (0, 0)}
    peaks_open = {tuple(p) for p in find_peaks(m, threshold=1.0, periodic=False)}
    assert peaks_open == {(4, 4), (10, 12)}  # edge pixels excluded without periodicity
    counts = peak_counts(m, bins=[1.0, 2.5, 4.0, 6.0])
    np.testing.assert_array_equal(counts, [1, 1, 1])
    counts_snr = peak_counts(np.stack([m, 2 * m]), bins=[1.0, 2.5, 4.0, 6.0, 11.0], noise=np.full((16, 16), 2.0))
    np.testing.assert_array_equal(counts_snr, [[1, 1, 0, 0], [1, 1, 1, 0]])  # S/N peaks 2.5, 1.5 (1.0 is not > 1) | 5, 3, 2
    with pytest.raises(ValueError, match="size"):
        find_peaks(m, 0.0, size=4)
    with pytest.raises(ValueError, match="bins"):
        peak_counts(m, bins=[2.0, 1.0])


def test_interval_coverage_is_calibrated_for_gaussian_samples():
    # truth and 400 samples from the same N(0,1) per pixel; 1024 pixels → coverage s.e. ≈ √(q(1−q)/1024) ≤ 1.6 %
    samples = RNG.normal(size=(400, 32, 32))
    truth = RNG.normal(size=(32, 32))
    cov = interval_coverage(samples, truth, levels=(0.68, 0.95))
    assert cov[0.68] == pytest.approx(0.68, abs=4 * 0.0146 + 0.01)  # + quantile-estimation error of 400 samples
    assert cov[0.95] == pytest.approx(0.95, abs=4 * 0.0068 + 0.01)
    overconfident = interval_coverage(0.3 * samples, truth, levels=(0.68,))
    assert overconfident[0.68] < 0.4
    masked = interval_coverage(samples, truth, levels=(0.5,), mask=np.eye(32))
    assert 0.0 <= masked[0.5] <= 1.0
    with pytest.raises(ValueError, match="levels"):
        interval_coverage(samples, truth, levels=(1.5,))
    with pytest.raises(ValueError, match="truth"):
        interval_coverage(samples, truth[:8])
