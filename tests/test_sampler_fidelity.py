"""``benchmarks/sampler_fidelity.py``: the known answer for a learned prior (full mask, uniform noise) — its exact
reverse-diffusion sampler reproduces the Gaussian posterior, the bias split is right, the Gaussian prior's Tweedie
mean is the Wiener filter, and bad options are refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.sampler_fidelity import FidelityConfig, compare_to_exact, exact_posterior_samples, parse_sampler, run
from core import pipeline
from core.physics.geometry import MapGeometry

NUM_CHAINS = 256
#: Euler–Maruyama at 100 geometric levels from σ_n to 1e-3 inflates the variance by ≈ 2 % (measured): allowance
VARIANCE_DISCRETISATION = 0.04


def test_exact_reverse_diffusion_from_the_noisy_map_samples_the_gaussian_posterior():
    geometry = MapGeometry(32, 104.4 / 120)
    power = np.asarray(pipeline.theory_power_map(geometry), np.float64)
    prior = pipeline.build_prior("gaussian", geometry, power_map=power)
    rng = np.random.default_rng(0)
    sigma = 0.042
    truth = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(geometry.shape)) * np.sqrt(power)))
    noisy = truth + sigma * rng.standard_normal(geometry.shape)
    noisy -= noisy.mean()
    samples = exact_posterior_samples(prior, noisy, sigma, 1e-3, 100, NUM_CHAINS, [1, 2])
    wiener = np.real(np.fft.ifft2(np.fft.fft2(noisy) * power / (power + sigma**2)))
    posterior_variance = float(np.mean(power * sigma**2 / (power + sigma**2)))
    # the mean's error is Monte Carlo only: rms ≈ posterior sd / √N
    error = np.sqrt(np.mean((samples.mean(0) - wiener) ** 2)) / np.sqrt(posterior_variance)
    assert error < 1.3 / np.sqrt(NUM_CHAINS), error
    ratio = samples.var(0, ddof=1).mean() / posterior_variance
    # Monte-Carlo s.e. of the pixel-averaged variance: per Fourier mode the sample variance has relative sd
    # √(2/(N−1)); modes are independent up to the k ↔ −k symmetry (half as many), weighted by their variance v_k
    v = (power * sigma**2 / (power + sigma**2)).ravel()
    effective_modes = v.sum() ** 2 / (v**2).sum() / 2
    mc = 3 * np.sqrt(2.0 / (NUM_CHAINS - 1) / effective_modes)
    assert abs(ratio - 1) < VARIANCE_DISCRETISATION + mc, ratio


def test_compare_to_exact_splits_monte_carlo_from_bias():
    rng = np.random.default_rng(3)
    exact = rng.standard_normal((16, 16))
    unbiased = exact + 0.1 * rng.standard_normal((400, 16, 16))
    out = compare_to_exact(unbiased, exact)
    assert out["monte_carlo"] == pytest.approx(0.1 / 20, rel=0.05)
    assert out["bias"] < 0.3 * out["monte_carlo"]
    shift = np.zeros((16, 16))
    shift[:, :8], shift[:, 8:] = 0.02, -0.02
    biased = compare_to_exact(unbiased + shift, exact)
    assert biased["bias"] == pytest.approx(0.02, rel=0.1)


def test_tiny_run_checks_the_gaussian_identity_and_reports_every_method():
    config = FidelityConfig(npix=16, num_maps=2, num_chains=4, num_levels=3, exact_levels=3,
                            samplers=(("mmps", (("integrator", "heun"),)), ("dps", ())))
    result = run(config)
    assert result["gaussian_tweedie_vs_wiener_max_relative_rms"] < 1e-3
    methods = result["methods"]
    assert set(methods) == {"Wiener filter", "exact posterior mean", "exact reverse diffusion from κ_E",
                            "mmps (integrator=heun)", "dps"}
    for name in ("mmps (integrator=heun)", "dps"):
        assert methods[name]["nfe_per_chain"] > 1 and np.isfinite(methods[name]["bias"]["mean"])
        assert len(result["per_map"][name]) == 2


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="noise_std must exceed sigma_min"):
        FidelityConfig(noise_std=5e-4).validate()
    with pytest.raises(ValueError, match="num_chains must be an integer ≥ 2"):
        FidelityConfig(num_chains=1).validate()
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_sampler("mmps:heun")
    with pytest.raises(ValueError, match="nope"):
        parse_sampler("nope")
