"""Tests of core.analysis.diagnostics on samples whose answer is known: independent prior draws, collapsed chains,
chains stuck in two places, and run traces of a degenerate run.

Prior draws are Gaussian fields of the theory power map on a 32² grid of 0.87′ pixels (fixed seeds); tolerances are
a few Monte-Carlo standard errors of the statistic (stated next to each).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.analysis.diagnostics import (
    MIN_ACCEPTANCE,
    degenerate_run,
    half_split_agreement,
    power_ratio,
    run_diagnostics,
    sample_spread,
)
from core.physics.cosmology import theory_power_map
from core.physics.fields import gaussian_field
from core.physics.geometry import MapGeometry

GEOMETRY = MapGeometry(32, 0.87)
CHAINS = 32


@pytest.fixture(scope="module")
def power() -> np.ndarray:
    return np.asarray(theory_power_map(GEOMETRY))


@pytest.fixture(scope="module")
def prior_draws(power) -> np.ndarray:
    return np.asarray(gaussian_field(power, CHAINS, seed=[5, 1]), dtype=np.float64)


def test_prior_draws_have_the_prior_power(prior_draws, power) -> None:
    ell, ratio, median = power_ratio(prior_draws, power, GEOMETRY)
    assert ell.shape == ratio.shape
    # each usable bin averages ≥ 8 modes × 32 draws (|κ̂|² exponential): relative error ≤ 1/√(8·32/2) ≈ 9%
    assert median == pytest.approx(1.0, abs=0.1)
    assert power_ratio(3.0 * prior_draws, power, GEOMETRY)[2] == pytest.approx(9.0, rel=0.1)


def test_spread_of_independent_draws_is_the_prior_std(prior_draws, power) -> None:
    n = CHAINS
    c4 = math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))  # E[s] = c4·σ
    # mean over 1024 correlated pixels of s/σ (relative sd ≈ 1/√(2(n−1)) ≈ 0.13 per pixel); 5% is ≥ 3 standard errors
    assert sample_spread(prior_draws, power) == pytest.approx(c4, rel=0.05)
    collapsed = np.repeat(prior_draws[:1], 4, axis=0)
    assert sample_spread(collapsed, power) == 0.0


def test_half_split_agreement_separates_agreeing_and_stuck_chains(prior_draws, power) -> None:
    expected = math.sqrt((CHAINS - 1) / (CHAINS - 3))
    rms = half_split_agreement(prior_draws)
    assert rms == pytest.approx(expected, rel=0.3)  # pixels are correlated: few effective pixels, loose tolerance
    stuck = prior_draws.copy()
    stuck[CHAINS // 2:] += 5.0 * prior_draws.std()  # the second half sits elsewhere
    assert half_split_agreement(stuck) > 3.0 * expected


def test_run_diagnostics_lines_explain_and_flag(prior_draws, power) -> None:
    good = run_diagnostics(prior_draws, power, GEOMETRY)
    assert good.power.ok and good.spread.ok and good.halves.ok
    lines = good.lines()
    assert len(lines) == 3 and all("—" in line and "[ok" in line for line in lines)
    assert not any("R-hat" in line for line in lines)
    noisy = run_diagnostics(prior_draws + 20 * prior_draws.std() * np.random.default_rng(0).standard_normal(
        prior_draws.shape), power, GEOMETRY)
    assert not noisy.power.ok and not noisy.spread.ok
    assert "[check" in noisy.lines()[0]
    two = run_diagnostics(prior_draws[:2], power, GEOMETRY)
    assert not two.halves.available and "n/a" in two.lines()[2] and two.as_dict()[two.halves.name]["value"] is None


def test_degenerate_run_detection() -> None:
    moving = {"acceptance": np.full(20, 0.7), "kappa[1,2]": np.random.default_rng(1).standard_normal((20, 4))}
    assert degenerate_run(moving) is None
    rejected = {"acceptance": np.zeros(20), "kappa[1,2]": np.ones((20, 4))}
    why = degenerate_run(rejected)
    assert why is not None and "acceptance" in why
    assert degenerate_run({"acceptance": np.full(20, MIN_ACCEPTANCE / 2)}) is not None
    frozen = {"acceptance": np.ones(20), "kappa[1,2]": np.ones((20, 4)), "kappa[3,4]": np.zeros((20, 4))}
    assert "never" in degenerate_run(frozen)
    # an unadjusted sampler reports acceptance 1 by construction: only the "never moved" test applies
    assert degenerate_run({"acceptance": np.zeros(20)}, adjusted=False) is None
    assert degenerate_run({}, acceptances=[0.0, 0.0]) is not None


def test_bad_samples_are_refused(power) -> None:
    with pytest.raises(ValueError, match="at least 2 chains"):
        sample_spread(np.zeros((1, 32, 32)), power)
    with pytest.raises(ValueError, match="NaN"):
        sample_spread(np.full((2, 32, 32), np.nan), power)
    with pytest.raises(ValueError, match="mask"):
        sample_spread(np.zeros((2, 32, 32)), power, mask=np.zeros((32, 32)))
