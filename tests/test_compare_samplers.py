"""benchmarks/compare_samplers.py on a tiny configuration: the pipeline runs every listed method on the same maps, the
NFE accounting, the paired table and the written report."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import compare_samplers as cs

LEVELS = 3


@pytest.fixture(scope="module")
def result():
    config = cs.Config(num_maps=2, num_chains=4, npix=16, hmc_levels=2, hmc_steps_per_level=1, diffusion_levels=LEVELS,
                       problems=("dashboard",), methods=("gaussian-hmc", "hybrid-hmc", "hybrid-pc-k0"))
    return json.loads(json.dumps(cs.run_benchmark(config)))  # as written to the JSON


def test_every_method_ran_on_every_map_with_its_nfe(result):
    per_map = result["results"]["dashboard_per_map"]
    assert set(per_map) == {"wiener", "gaussian-hmc", "hybrid-hmc", "hybrid-pc-k0"}
    assert all(len(rows) == 2 for rows in per_map.values())
    # pc without correctors: one score per level change, one to start, one final Tweedie denoising
    assert [row["nfe"] for row in per_map["hybrid-pc-k0"]] == [LEVELS + 1] * 2
    for row in per_map["hybrid-pc-k0"] + per_map["gaussian-hmc"]:
        assert 0.0 <= row["coverage_95"] <= 1.0 and np.isfinite(row["rmse"]) and row["rmse"] > 0


def test_paired_table_and_report(result):
    paired = result["paired_against_hybrid_hmc"]["dashboard"]
    assert paired["num_maps"] == 2
    assert paired["hybrid-hmc"]["rmse"]["diff"] == 0.0  # the reference against itself
    rows = result["results"]["dashboard_per_map"]
    expected = np.mean([a["rmse"] - b["rmse"] for a, b in zip(rows["hybrid-pc-k0"], rows["hybrid-hmc"])])
    assert paired["hybrid-pc-k0"]["rmse"]["diff"] == pytest.approx(expected)
    report = cs.report_markdown(result)
    for label in ("gaussian-hmc", "hybrid-hmc", "hybrid-pc-k0"):
        assert report.count(f"| {label} |") == 2  # the means table and the paired one
    assert "Recommendation" in report and result["recommendation"]["rule"] in report


def test_hybrid_vs_wiener_reports_raw_and_monte_carlo_corrected_differences():
    """Must-reach item 3 on a tiny configuration: per map, the raw and corrected RMSE of the hybrid mean, and the
    paired differences against the Wiener filter built from them."""
    from core.physics.geometry import MapGeometry
    from core.pipeline import build_prior

    config = cs.Config(npix=16, diffusion_levels=LEVELS)
    method = cs.Method("hybrid-pc", "hybrid", "pc", {})
    hybrid = build_prior("hybrid", MapGeometry(16, cs.PIXEL_ARCMIN))
    out = cs._hybrid_vs_wiener({}, config, method, hybrid, wiener_maps=2, wiener_chains=4)["hybrid_vs_wiener"]
    rows = out["per_map"]
    assert len(rows) == 2 and out["num_samples"] == 4
    for row in rows:
        assert 0.0 <= row["rmse_hybrid_mean_mc_corrected"] < row["rmse_hybrid_mean"]
        assert -1.0 <= row["pearson_hybrid_mean"] <= 1.0 and row["mean_posterior_std"] > 0
    diffs = [r["rmse_hybrid_mean_mc_corrected"] - r["rmse_wiener"] for r in rows]
    assert out["paired_difference_mc_corrected"]["mean"] == pytest.approx(np.mean(diffs))
    assert out["paired_difference_mc_corrected"]["n"] == 2
    assert [r["map"] for r in rows] == [0, 1] and out["maps_reused"] == []

    # resuming: the rows of an earlier result with the same settings are reused, not recomputed
    previous = {"config": cs.asdict(config), "sampler": "pc", "options": {}, "hybrid_vs_wiener": out}
    reuse = cs.previous_hybrid_vs_wiener(previous, config, "pc", {}, 4)
    again = cs._hybrid_vs_wiener({}, config, method, hybrid, wiener_maps=1, wiener_chains=4,
                                 reuse=reuse)["hybrid_vs_wiener"]
    assert again["maps_reused"] == [0] and again["per_map"][0] == rows[0]
    # other settings are refused by name
    with pytest.raises(ValueError, match="diffusion_levels .* sampler 'pc' .now 'mmps'.*num_samples 4 .now 64"):
        cs.previous_hybrid_vs_wiener(previous, cs.Config(npix=16, diffusion_levels=LEVELS + 1), "mmps", {}, 64)
    with pytest.raises(ValueError, match="no config"):
        cs.previous_hybrid_vs_wiener({"hybrid_vs_wiener": out}, config, "pc", {}, 4)
