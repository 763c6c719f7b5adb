"""benchmarks/lognormal_posterior.py: the latent transform is the generator's, and in the Gaussian limit (a shift so
large that the lognormal field is Gaussian) the NUTS posterior mean is the Wiener filter within its Monte-Carlo error."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import lognormal_posterior as lp


@pytest.fixture(scope="module")
def problem():
    from core.pipeline import simulated_problem

    return simulated_problem(16, 104.4 / 120, source="lognormal", mask="random_holes", seed=3)


def test_latent_round_trip_and_white_prior(problem):
    import tensorflow as tf

    from core.physics.fields import lognormal_field, white_noise

    latent = lp.LognormalLatent(problem.power_map)
    np.testing.assert_allclose(latent.kappa(latent.latent(problem.truth)).numpy(), problem.truth, atol=1e-6)
    # the generator's maps come from white noise, which the latent recovers: the prior of w is exactly N(0, I)
    maps = lognormal_field(problem.power_map, 8, seed=[9, 9]).numpy()
    w = tf.stack([latent.latent(m) for m in maps]).numpy()
    np.testing.assert_allclose(w, white_noise((8, 16, 16), seed=[9, 9]).numpy(), atol=2e-3)


def test_gaussian_limit_gives_the_wiener_filter(problem):
    """Shift 10: σ_κ/λ ≈ 0.002, skewness ≈ 0.006 — the lognormal field is Gaussian with the same power, so the exact
    posterior mean is the Wiener filter. The grand mean of 32 NUTS chains deviates from it by its Monte-Carlo error
    (variance of the independent chains' means / 32): mean z² over the 256 pixels is 1 ± 0.09 for a correct sampler.
    A fixed-length HMC kernel fails this (z² ≈ 2: its chain means scatter more than they should)."""
    from core.analysis.baselines import wiener_filter

    latent = lp.LognormalLatent(problem.power_map, shift=10.0)
    config = lp.Config(num_chains=32, num_burnin=300, num_results=100, thin=1)
    out = lp.sample_posterior(problem.likelihood, latent, problem.wiener, config, seed=2)
    assert 0.5 < out["accept_rate"] < 0.95
    draws = out["draws"]
    assert np.isfinite(draws).all() and draws.shape == (100, 32, 16, 16)
    chain_means = draws.mean(axis=0)
    se2 = chain_means.var(axis=0, ddof=1) / 32
    wiener = np.asarray(wiener_filter(problem.likelihood, problem.power_map).kappa)
    z2 = np.mean((chain_means.mean(axis=0) - wiener) ** 2 / se2)
    assert 0.6 < z2 < 1.4, z2


def test_bad_config_names_the_option():
    with pytest.raises(ValueError, match="num_chains"):
        lp.Config(num_chains=1).check()
    with pytest.raises(ValueError, match="kernel"):
        lp.Config(kernel="mala").check()
    with pytest.raises(ValueError, match="target_accept"):
        lp.Config(target_accept=1.5).check()
    assert lp.main(["--chains", "0"]) == 2


def test_previous_rows_are_reused_only_with_the_same_settings():
    config = lp.Config(num_maps=8)
    old_rows = [{"rmse_wiener": 0.1 + i} for i in range(4)]  # written before rows carried their index: map order
    previous = {"config": {**lp.asdict(lp.Config(num_maps=4))}, "per_map": old_rows}
    rows = lp.previous_rows(previous, config)
    assert sorted(rows) == [0, 1, 2, 3] and rows[2]["rmse_wiener"] == 2.1
    indexed = {"config": lp.asdict(lp.Config()), "per_map": [{"map": 5, "rmse_wiener": 0.3}]}
    assert list(lp.previous_rows(indexed, config)) == [5]
    with pytest.raises(ValueError, match="num_chains 32 .now 16.*seed 5 .now 6"):
        lp.previous_rows(previous, lp.Config(num_chains=16, seed=6))
    with pytest.raises(ValueError, match="per_map"):
        lp.previous_rows({"config": {}}, config)
    with pytest.raises(ValueError, match="max_tree_depth"):
        lp.Config(max_tree_depth=0).check()
    assert lp.main(["--previous", "/nonexistent/old.json", "--maps", "1"]) == 2
