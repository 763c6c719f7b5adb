"""Tests of benchmarks/conditional_coverage.py on 16² maps (the same code path as the 64² benchmark: COSMOS rebin
layout at 0.87′, Gaussian truths from the prior, exact Gaussian posterior samples).

Tolerance of the calibration check. Over ``M`` maps of ``n`` observed pixels the overall coverage is a mean of
``M n`` indicators of mean ``p = expected_coverage(C, q)``; independent, their standard error would be the binomial
``√(p(1 − p)/(M n))``. Pixels are correlated through the posterior: the indicators are even functions of Gaussian
vectors with cross-correlation ``ρ_ij`` (the posterior correlation), so their correlation is at most ``ρ_ij²`` and the
variance is inflated by at most the design effect ``D = 1 + (1/n) Σ_{i≠j} ρ_ij²``
(:func:`benchmarks.conditional_coverage.coverage_design_effect`, from the dense exact posterior covariance; D ≈ 3.6
here). We allow ``4 √D`` binomial standard errors plus 0.003 for the Monte-Carlo error of ``expected_coverage``
(200 000 trials: s.e. ≤ 1.1e-3): ≈ 0.046 at 95 %, 0.08 at 68 % for 16 maps. The negative control shrinks the samples'
spread by 0.7 (a 95 % interval then holds ≈ 83 % of the posterior mass): the same check must reject it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.conditional_coverage import (
    ConditionalCoverageConfig,
    coverage_design_effect,
    interval_quantiles,
    main,
    markdown_table,
    predicted_coverage,
    run_benchmark,
)

TINY = dict(npix=16, num_maps=16, num_chains=64, seed=5, prediction_trials=2000)


def _calibration_failures(result: dict) -> list[str]:
    """The levels whose overall coverage is outside 4 √D binomial s.e. (+ 0.003) of the ideal (module docstring)."""
    bound = result["design_effect_bound"]
    failures = []
    for key, ideal in result["expected_coverage_with_num_chains"].items():
        tolerance = 4 * bound["bound_se"][key] + 0.003
        measured = result["metrics"][key]["mean"]
        if abs(measured - ideal) > tolerance:
            failures.append(f"{key}: {measured:.3f} vs ideal {ideal:.3f} ± {tolerance:.3f}")
    return failures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("conditional_coverage")
    rc = main(["--npix", "16", "--maps", str(TINY["num_maps"]), "--chains", str(TINY["num_chains"]), "--seed",
               str(TINY["seed"]), "--output-dir", str(out)])
    assert rc == 0
    return json.loads((out / "conditional_coverage.json").read_text()), (out / "conditional_coverage.md").read_text()


def test_exact_posterior_is_calibrated_overall_and_values_are_finite(tiny) -> None:
    result, table = tiny
    bound = result["design_effect_bound"]
    assert 1.0 <= bound["design_effect"] < 20.0
    assert not _calibration_failures(result)
    m = result["metrics"]
    for key in ("coverage_68", "coverage_95", "coverage_68_top5pct", "coverage_95_top5pct", "coverage_68_top1pct",
                "coverage_95_top1pct", "coverage_95_top5pct_by_mean"):
        assert np.isfinite(m[key]["mean"]) and 0.0 <= m[key]["mean"] <= 1.0, key
        assert np.isfinite(m[key]["se"]), key
    for key, value in result["predicted"].items():
        assert np.isfinite(value["mean"]) and 0.0 <= value["mean"] <= 1.0, key
    # the conditional metric falls below the overall coverage for an exactly calibrated posterior (the point)
    assert m["coverage_95_top5pct"]["mean"] < m["coverage_95"]["mean"]
    assert m["num_pixels_top5pct"]["mean"] >= m["num_pixels_top1pct"]["mean"] >= 1
    assert table == markdown_table(result)
    assert "top 5 % of the truth" in table


def test_negative_control_mis_scaled_posterior_fails_the_check(tiny) -> None:
    result, _ = tiny
    narrow = run_benchmark(ConditionalCoverageConfig(**TINY, spread_scale=0.7), progress=False)
    assert narrow["design_effect_bound"]["design_effect"] == pytest.approx(result["design_effect_bound"]["design_effect"])
    assert len(_calibration_failures(narrow)) == 2  # both levels rejected


def test_prediction_formula_limits() -> None:
    lo, hi = interval_quantiles(None, 0.95, 1)
    u = np.array([0.0, 1.0, 3.0])
    # r → 1 (data determine the pixel): coverage q whatever the truth
    np.testing.assert_allclose(predicted_coverage(u, np.full(3, 1 - 1e-9), lo, hi), 0.95, atol=1e-4)
    # r → 0 (no data): the prior interval ±1.96 covers the truth iff |u| < 1.96
    np.testing.assert_allclose(predicted_coverage(u, np.full(3, 1e-9), lo, hi), [1.0, 1.0, 0.0], atol=1e-4)
    # averaged over the prior (u ~ N(0, 1)) the coverage is q for any r: calibration is marginal
    grid = np.linspace(-8, 8, 4001)
    weight = np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi) * (grid[1] - grid[0])
    for r in (0.1, 0.5, 0.9):
        assert float((predicted_coverage(grid, np.full(grid.size, r), lo, hi) * weight).sum()) == pytest.approx(0.95, abs=1e-4)


def test_design_effect_of_independent_and_duplicated_pixels() -> None:
    sel = np.ones((2, 2), bool)
    assert coverage_design_effect(np.eye(4), sel) == pytest.approx(1.0)
    assert coverage_design_effect(np.ones((4, 4)) + 1e-12 * np.eye(4), sel) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="covariance"):
        coverage_design_effect(np.eye(3), sel)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_chains"):
        run_benchmark(ConditionalCoverageConfig(num_chains=1))
    with pytest.raises(ValueError, match="npix"):
        run_benchmark(ConditionalCoverageConfig(npix=15))
    with pytest.raises(ValueError, match="spread_scale"):
        run_benchmark(ConditionalCoverageConfig(spread_scale=0.0))
