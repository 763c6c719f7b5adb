"""core.pipeline: one theory power map, priors by name, problems from arrays / simulations / COSMOS, one Wiener
computation per run, checked schedules and runs.

Physics check of the power map: with one source plane the lensing kernel grows with the source distance, so the
convergence power at z_s = 2 exceeds that at z_s = 1 in every mode (the ratio is several, far outside rounding).
"""
import numpy as np
import pytest

from core import pipeline
from core.inference.driver import last_snapshot
from core.physics.cosmology import default_power_map
from core.physics.geometry import MapGeometry
from core.priors.gaussian import GaussianPrior

GEOMETRY = MapGeometry(16, 2.0)


def test_theory_power_map_is_the_default_at_z1_and_grows_with_source_redshift():
    np.testing.assert_array_equal(pipeline.theory_power_map(GEOMETRY), default_power_map(GEOMETRY))
    p1, p2 = pipeline.theory_power_map(GEOMETRY, 1.0), pipeline.theory_power_map(GEOMETRY, 2.0)
    nonzero = p1 > 0
    assert np.all(p2[nonzero] > 1.5 * p1[nonzero])
    for bad in (0.0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="z_source"):
            pipeline.theory_power_map(GEOMETRY, bad)


def test_build_prior_by_name():
    prior = pipeline.build_prior("gaussian", GEOMETRY)
    assert isinstance(prior, GaussianPrior)
    np.testing.assert_allclose(prior.power_map, default_power_map(GEOMETRY), rtol=1e-6)
    with pytest.raises(ValueError, match="prior must be one of"):
        pipeline.build_prior("flat", GEOMETRY)
    with pytest.raises(ValueError, match="weights only apply to the hybrid prior"):
        pipeline.build_prior("gaussian", GEOMETRY, weights="x")


def test_build_prior_hybrid_uses_the_shipped_weights_for_the_pixel_scale():
    geometry = MapGeometry(32, 0.87)
    prior = pipeline.build_prior("hybrid", geometry)
    assert not prior.has_log_prob
    np.testing.assert_allclose(prior.power_map, default_power_map(geometry), rtol=1e-6)
    with pytest.raises(ValueError, match="arcmin"):
        pipeline.build_prior("hybrid", MapGeometry(32, 5.0))  # no shipped model at 5′


def test_simulated_problem_is_reproducible_and_masked():
    a = pipeline.simulated_problem(16, 2.0, source="lognormal", mask="random_holes", seed=2)
    b = pipeline.simulated_problem(16, 2.0, source="lognormal", mask="random_holes", seed=2)
    c = pipeline.simulated_problem(16, 2.0, source="lognormal", mask="random_holes", seed=3)
    np.testing.assert_array_equal(a.shear, b.shear)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert not np.allclose(a.shear, c.shear)
    assert a.truth.shape == (16, 16) and 0 < a.mask.mean() < 1
    assert np.all(a.shear[:, a.mask == 0] == 0)
    assert a.power_map is not None and a.posterior.has_log_prob
    full = pipeline.simulated_problem(16, 2.0, source="gaussian", mask=None, seed=2)
    assert full.mask.min() == 1
    with pytest.raises(ValueError, match="source must be one of"):
        pipeline.simulated_problem(16, 2.0, source="cosmos")
    with pytest.raises(ValueError, match="mask must be one of"):
        pipeline.simulated_problem(16, 2.0, mask="holes")
    with pytest.raises(ValueError, match="seed"):
        pipeline.simulated_problem(16, 2.0, seed=-1)


def test_halo_model_sources_poisson_and_clustered():
    """Both halo-model sources give a finite truth at the same seed; the clustered one moves the haloes (another map)."""
    poisson = pipeline.simulated_problem(32, 0.87, source="halo_model", mask=None, seed=4)
    clustered = pipeline.simulated_problem(32, 0.87, source="halo_model_clustered", mask=None, seed=4)
    assert np.all(np.isfinite(poisson.truth)) and np.all(np.isfinite(clustered.truth))
    assert not np.allclose(poisson.truth, clustered.truth)
    np.testing.assert_array_equal(clustered.truth, pipeline.simulated_problem(
        32, 0.87, source="halo_model_clustered", mask=None, seed=4).truth)
    # the truth follows the problem's source redshift, as its prior's power map does (z_s = 2: several times the
    # power; 8 maps' pixel variance, far outside their scatter)
    var = {z: np.mean([np.var(pipeline.simulated_problem(32, 0.87, source="halo_model", mask=None, seed=s,
                                                         z_source=z).truth) for s in range(8)]) for z in (1.0, 2.0)}
    assert var[2.0] > 1.5 * var[1.0]


def test_build_problem_from_arrays_and_an_existing_prior():
    sim = pipeline.simulated_problem(16, 2.0, source="gaussian", mask=None, seed=5)
    again = pipeline.build_problem(sim.shear, sim.noise_std, None, GEOMETRY, prior=sim.prior)
    assert again.prior is sim.prior
    np.testing.assert_allclose(again.wiener, sim.wiener, atol=1e-6)
    with pytest.raises(ValueError, match="prior must be one of"):
        pipeline.build_problem(sim.shear, sim.noise_std, None, GEOMETRY, prior=3)


def test_cosmos_problem():
    problem = pipeline.cosmos_problem(npix=40)
    assert problem.geometry.npix == 40 and problem.geometry.pixel_size_arcmin == pytest.approx(104.4 / 40)
    assert 0.3 < problem.mask.mean() < 1.0 and problem.wcs is not None and problem.truth is None


def test_the_wiener_map_is_computed_once_per_problem(monkeypatch):
    from core.analysis import baselines

    calls = []
    original = baselines.wiener_filter

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(baselines, "wiener_filter", counting)
    problem = pipeline.simulated_problem(16, 2.0, source="gaussian", seed=1)
    schedule = pipeline.make_schedule(sigma_max=0.05, sigma_min=0.01, num_levels=2, steps_per_level=1)
    for seed in (0, 1):
        last_snapshot(pipeline.run(problem, "ula", schedule, num_chains=2, seed=seed, init="wiener"))
    assert len(calls) == 1


def test_make_schedule_checks_every_setting():
    schedule = pipeline.make_schedule("cosine", sigma_max=0.4, sigma_min=0.01, num_levels=5, steps_per_level=2)
    assert schedule.num_levels == 5 and schedule.total_steps == 10
    for kwargs, match in ((dict(kind="log"), "schedule must be one of"), (dict(sigma_min=1.0), "smaller than sigma_max"),
                          (dict(num_levels=0), "num_levels"), (dict(sigma_max=100.0), "sigma_max"),
                          (dict(steps_per_level=2.5), "steps_per_level")):
        with pytest.raises(ValueError, match=match):
            pipeline.make_schedule(**kwargs)


def test_run_validates_before_work():
    problem = pipeline.simulated_problem(16, 2.0, source="gaussian", seed=1)
    schedule = pipeline.make_schedule(num_levels=2, steps_per_level=1)
    sampler = pipeline.make_sampler(problem, "hmc", schedule)
    with pytest.raises(ValueError, match="give options and schedule to the sampler"):
        pipeline.run(problem, sampler, num_leapfrog_steps=2)
    with pytest.raises(ValueError, match="does not take option"):
        pipeline.run(problem, "ula", schedule, num_leapfrog_steps=2)
    with pytest.raises(ValueError, match="sampler must be one of"):
        pipeline.run(problem, "nuts", schedule)
    with pytest.raises(ValueError, match="problem must be"):
        pipeline.run(problem.posterior, "hmc", schedule)
