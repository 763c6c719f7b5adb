"""kappascope's kernels on the 2-D lab targets (core/lab/sampling.py) and the DSM-trained score (core/lab/learned.py).

Tolerances are Monte-Carlo errors: final states of independent chains are independent draws, so the
standard error of a chain-mean is ``sqrt(Var/C)`` and of a chain-variance ``sqrt((μ₄ − Var²)/C)`` with the
exact variance and a fourth central moment from 200 000 exact samples; a statistic may miss by 4.5 standard
errors (about 1 in 150 000 per comparison for a normal error).
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core.inference.schedules import GeometricSchedule, ListSchedule
from core.lab.learned import score_error, train_score_model
from core.lab.sampling import LabRun
from core.lab.targets import make_target

SIGMA_MIN = 0.02
CHAINS = 1000
SCHEDULE = GeometricSchedule(3.0, SIGMA_MIN, 20, 8)  # 160 annealing transitions
EXTRA = 80  # transitions at σ_min after the annealing
STEP = {"hmc": 0.6, "mala": 0.6}


def _check_moments(target, positions, sigma, label):
    mean, cov = target.moments(sigma)
    ref = target.sample(200_000, seed=99, sigma=sigma).numpy().astype(np.float64)
    m4 = ((ref - mean) ** 4).mean(0)
    var = np.diag(cov)
    x = positions.astype(np.float64)
    n = len(x)
    se_mean = np.sqrt(var / n)
    se_var = np.sqrt((m4 - var**2) / n)
    got_var = ((x - x.mean(0)) ** 2).sum(0) / (n - 1)
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * se_mean), f"{label}: mean {x.mean(0)} vs exact {mean} (se {se_mean})"
    assert np.all(np.abs(got_var - var) < 4.5 * se_var), f"{label}: variance {got_var} vs exact {var} (se {se_var})"


@pytest.mark.parametrize("sampler", ["hmc", "mala"])
@pytest.mark.parametrize("name", ["gaussian", "bimodal", "banana", "ring", "inverse"])
def test_annealed_metropolis_samplers_reach_the_exact_marginal_moments(name, sampler):
    target = make_target(name)
    run = LabRun(target, sampler, SCHEDULE, num_chains=CHAINS, step_size=STEP[sampler], num_leapfrog_steps=4, seed=1)
    frame = run.run(SCHEDULE.total_steps + EXTRA)
    assert frame.sigma == pytest.approx(SIGMA_MIN, rel=1e-5) and frame.annealing_done
    assert 0.3 < frame.acceptance <= 1.0
    _check_moments(target, frame.positions, SIGMA_MIN, f"{name}/{sampler}")


def _fraction_in_heavy_mode(positions):
    return float(np.mean(positions @ np.array([1.8, 1.2]) > 0))  # the 0.7 mode is at (1.8, 1.2)


def test_annealing_finds_both_modes_with_the_right_weights_where_one_sigma_does_not():
    target = make_target("bimodal")
    steps = SCHEDULE.total_steps + EXTRA
    annealed = LabRun(target, "hmc", SCHEDULE, num_chains=CHAINS, step_size=0.6, num_leapfrog_steps=4, seed=2).run(steps)
    fraction = _fraction_in_heavy_mode(annealed.positions)
    se = np.sqrt(0.7 * 0.3 / CHAINS)
    assert abs(fraction - 0.7) < 4.5 * se, fraction

    start = np.array([-1.8, -1.2]) + 0.4 * np.random.default_rng(0).standard_normal((CHAINS, 2))
    single = LabRun(target, "hmc", ListSchedule([SIGMA_MIN], steps), num_chains=CHAINS, step_size=0.6,
                    num_leapfrog_steps=4, seed=2, init=start).run(steps)
    assert single.acceptance > 0.5  # it does move, inside its mode
    assert _fraction_in_heavy_mode(single.positions) < 0.02


def test_hmc_trajectory_is_the_kernels_own_proposal():
    """The displayed leapfrog path (re-run from the kernel's momentum and step size) ends at the proposal:
    at the new position when accepted, away from it (chain stays) when rejected."""
    target = make_target("banana")
    run = LabRun(target, "hmc", GeometricSchedule(1.0, 0.05, 4, 3), num_chains=64, step_size=1.5,
                 num_leapfrog_steps=6, seed=4)
    seen = set()
    for _ in range(15):
        frame = run.advance(1)
        h = frame.highlight
        assert frame.trajectory.shape == (7, 2)
        np.testing.assert_allclose(frame.trajectory[0], frame.previous[h], atol=1e-5)
        if frame.trajectory_accepted:
            np.testing.assert_allclose(frame.trajectory[-1], frame.positions[h], atol=1e-4)
        else:
            np.testing.assert_allclose(frame.positions[h], frame.previous[h], atol=1e-6)
            assert np.linalg.norm(frame.trajectory[-1] - frame.previous[h]) > 0
        seen.add(frame.trajectory_accepted)
    assert seen == {True, False}  # a large step gives both outcomes


def test_step_size_change_mid_run_and_bad_settings():
    target = make_target("gaussian")
    run = LabRun(target, "mala", GeometricSchedule(0.5, 0.05, 2, 5), num_chains=200, step_size=0.2, seed=0)
    small = run.run(30).acceptance
    run.set_step_size(8.0)
    large = run.run(10).acceptance
    assert large < small
    for kwargs, word in (({"sampler": "gibbs"}, "sampler"), ({"num_chains": 0}, "num_chains"),
                         ({"step_size": -1.0}, "step_size"), ({"num_leapfrog_steps": 0}, "num_leapfrog_steps"),
                         ({"init": "wiener"}, "init")):
        with pytest.raises(ValueError, match=word):
            LabRun(target, **kwargs)


def test_dsm_trained_mlp_score_is_close_to_the_exact_score_where_the_density_is_high():
    target = make_target("bimodal")
    result = train_score_model(target, sigma_min=0.05, sigma_max=3.0, num_steps=1200, seed=0)
    assert result.steps == 1200 and result.losses[-1] < result.losses[0]
    for sigma in (0.2, 0.5, 1.0):
        # relative mean-squared error on exact samples of π_σ; an untrained (zero) network scores 1.0
        assert score_error(target, result.model, sigma) < 0.1, sigma
    # and the kernels sample with it (Metropolis test from the score line integral)
    run = LabRun(target, "hmc", GeometricSchedule(3.0, 0.1, 10, 5), num_chains=300, step_size=0.5,
                 num_leapfrog_steps=3, score_model=result.model, seed=3)
    frame = run.run(80)
    assert not run.exact_log_prob and frame.acceptance > 0.3
    assert abs(_fraction_in_heavy_mode(frame.positions) - 0.7) < 4.5 * np.sqrt(0.21 / 300) + 0.05


def test_training_reports_progress_and_can_be_cancelled():
    target = make_target("ring")
    calls = []
    result = train_score_model(target, num_steps=400, report_every=50, progress=lambda f, loss: calls.append((f, loss)),
                               cancel=lambda: len(calls) >= 3)
    assert result.cancelled and result.steps == 150 and len(calls) == 3
    assert [round(f, 3) for f, _ in calls] == [0.125, 0.25, 0.375]
    with pytest.raises(ValueError, match="sigma_min"):
        train_score_model(target, sigma_min=2.0, sigma_max=1.0)


def test_mmps_diffusion_sampler_reaches_the_exact_gaussian_posterior_and_dps_needs_an_observation():
    """With a Gaussian prior MMPS's likelihood p(y | x_σ) is exact, so the reverse diffusion lands on the exact
    posterior up to the Euler–Maruyama discretisation (small with 120 geometric levels; within the MC error here)."""
    from core.lab.targets import GaussianMixtureTarget, InverseProblemTarget

    prior = GaussianMixtureTarget([1.0], [[0.5, -0.5]], [[[1.0, 0.3], [0.3, 0.6]]], name="gaussian_prior")
    target = InverseProblemTarget(prior, [[1.0, 1.0]], [0.5], 0.3, convention="convolved")
    schedule = GeometricSchedule(3.0, 0.005, 120, 1)
    frame = LabRun(target, "mmps", schedule, num_chains=CHAINS, seed=1).run(500)
    assert frame.step == schedule.num_levels - 1 and frame.sigma == pytest.approx(0.005, rel=1e-5)  # stops at σ_min
    _check_moments(target, frame.positions, 0.0, "inverse/mmps")
    with pytest.raises(ValueError, match="linear-Gaussian observation"):
        LabRun(make_target("ring"), "dps")
