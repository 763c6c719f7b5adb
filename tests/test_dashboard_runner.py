"""Headless tests of the per-session run controller and the app object, with the REAL sampling driver.

Every run is tiny (16×16 maps, 2–4 chains, a handful of transitions) so the file takes well under a minute.
"""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from dashboard.problem import Problem, build_problem, sample_snapshots
from dashboard.runner import RunController, RunState
from dashboard.settings import DashboardSettings

TIMEOUT = 90.0


def tiny_settings(**overrides) -> DashboardSettings:
    values = dict(npix=16, num_chains=3, num_levels=4, steps_per_level=2, snapshot_every=2, sigma_max=0.3,
                  mask="stripes", seed=0)
    values.update(overrides)
    return DashboardSettings(**values)


@pytest.fixture(scope="module")
def tiny_problem() -> Problem:
    return build_problem(tiny_settings())


def wait_for(predicate, timeout: float = TIMEOUT, interval: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_run_to_completion_keeps_result(tiny_problem):
    controller = RunController("t1")
    controller.start(lambda: tiny_problem, sample_snapshots, label="gaussian")
    assert controller.join(TIMEOUT)
    status = controller.status()
    assert status.state == RunState.DONE, status.message
    assert status.progress == 1.0 and status.eta_s == 0.0
    frame_id, snap = controller.latest()
    assert frame_id == tiny_problem.schedule.total_steps // 2  # one frame per chunk of snapshot_every=2
    assert snap.done and snap.chains.shape == (3, 16, 16) and np.all(np.isfinite(snap.chains))
    assert controller.last_result is not None and controller.last_result.snapshot is snap
    assert controller.results_by_label["gaussian"].context is tiny_problem


def test_pause_step_resume_advance_exactly_one_chunk_per_step():
    problem = build_problem(tiny_settings(num_levels=6))
    controller = RunController("t2")
    controller.start(lambda: problem, sample_snapshots, paused=True)
    assert wait_for(lambda: controller.state == RunState.PAUSED)
    time.sleep(0.3)
    assert controller.latest()[0] == 0  # nothing computed while paused
    for expected in (1, 2):
        controller.step()
        assert wait_for(lambda: controller.latest()[0] == expected)
        time.sleep(0.3)  # a paused run must not run ahead
        frame_id, snap = controller.latest()
        assert frame_id == expected and snap.step == 2 * expected
        assert controller.state == RunState.PAUSED
    controller.resume()
    assert controller.join(TIMEOUT)
    assert controller.state == RunState.DONE
    assert controller.latest()[1].step == problem.schedule.total_steps


def test_stop_cancels_between_chunks_and_keeps_previous_result(tiny_problem):
    controller = RunController("t3")
    controller.start(lambda: tiny_problem, sample_snapshots, label="first")
    assert controller.join(TIMEOUT) and controller.state == RunState.DONE
    first = controller.last_result
    long_problem = build_problem(tiny_settings(num_levels=2000, steps_per_level=5))
    frames_before = controller.latest()[0]  # frame ids grow across runs of one controller
    controller.start(lambda: long_problem, sample_snapshots, label="second")
    assert wait_for(lambda: controller.latest()[0] >= frames_before + 2)
    assert controller.stop(wait=True, timeout=TIMEOUT)
    status = controller.status()
    assert status.state == RunState.STOPPED
    assert 0 < status.step < long_problem.schedule.total_steps
    assert controller.last_result is first  # a stopped run does not replace the finished one
    frames = controller.latest()[0]
    time.sleep(0.3)
    assert controller.latest()[0] == frames  # nothing runs after a stop


def test_sampler_failure_is_reported_and_previous_result_kept(tiny_problem):
    import tensorflow as tf

    from core.inference.posterior import PosteriorScore
    from core.inference.driver import sample_posterior

    class BrokenPrior:  # a prior whose score turns NaN below σ = 0.1, like a badly trained network
        geometry = tiny_problem.geometry

        def score(self, kappa, sigma=0.0):
            kappa = tf.convert_to_tensor(kappa)
            nan = tf.fill(tf.shape(kappa), float("nan"))
            return tf.where(tf.convert_to_tensor(sigma, tf.float32) < 0.1, nan, -kappa)

    broken = PosteriorScore(tiny_problem.posterior.likelihood, BrokenPrior())

    def diverging(problem, cancel):
        return sample_posterior(broken, problem.schedule, num_chains=2, snapshot_every=2, seed=0, cancel=cancel)

    controller = RunController("t4")
    controller.start(lambda: tiny_problem, sample_snapshots)
    assert controller.join(TIMEOUT) and controller.state == RunState.DONE
    good = controller.last_result
    controller.start(lambda: tiny_problem, diverging)
    assert controller.join(TIMEOUT)
    status = controller.status()
    assert status.state == RunState.ERROR
    assert "FloatingPointError" in status.message and "sigma" in status.message
    assert controller.last_result is good

    def bad_prepare():
        return build_problem(tiny_settings(npix=17))

    controller.start(bad_prepare, sample_snapshots)
    assert controller.join(TIMEOUT)
    assert controller.state == RunState.ERROR and "npix" in controller.status().message


def test_one_run_per_controller_and_preview_only():
    controller = RunController("t5")
    gate = threading.Event()

    def slow_prepare():
        gate.wait(TIMEOUT)
        return "prepared"

    controller.start(slow_prepare, None)
    with pytest.raises(RuntimeError, match="already"):
        controller.start(slow_prepare, None)
    gate.set()
    assert controller.join(TIMEOUT)
    assert controller.state == RunState.IDLE and controller.context == "prepared"
    with pytest.raises(ValueError, match="prepare"):
        controller.start("not callable", None)


def test_two_controllers_are_independent_and_deterministic():
    """Two sessions run at once; each equals the same run made alone (no cross-talk)."""
    problems = {seed: build_problem(tiny_settings(seed=seed)) for seed in (1, 2)}
    controllers = {seed: RunController(f"s{seed}") for seed in problems}
    for seed, controller in controllers.items():
        controller.start(lambda p=problems[seed]: p, sample_snapshots)
    for controller in controllers.values():
        assert controller.join(TIMEOUT) and controller.state == RunState.DONE
    finals = {seed: c.latest()[1].chains for seed, c in controllers.items()}
    assert not np.allclose(finals[1], finals[2])
    alone = RunController("alone")
    alone.start(lambda: problems[1], sample_snapshots)
    assert alone.join(TIMEOUT)
    np.testing.assert_array_equal(alone.latest()[1].chains, finals[1])


# ----------------------------------------------------------------------------- the app object, no browser
def test_app_runs_downloads_and_reports_bad_uploads(tmp_path):
    from astropy.io import fits

    from dashboard.app import create_app

    app = create_app(tiny_settings(), autostart_preview=False)
    app.run()
    assert wait_for(lambda: (app.refresh() or True) and not app.controller.is_active)
    app.refresh()
    assert app.controller.state == RunState.DONE, app.controller.status().message
    assert app.frames_applied >= 1 and app.progress.value == 1000
    assert "done" in app.progress_text.object
    assert "R-hat" in app.diagnostics.object

    data = app._fits_bytes().getvalue()
    path = tmp_path / "posterior.fits"
    path.write_bytes(data)
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert "MEAN" in names and "STD" in names and "SAMPLES" in names
        assert hdul["SAMPLES"].data.shape == (3, 16, 16)
    png = app._png_bytes().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    before = app.controller.last_result
    app.shear_upload.filename = "notes.txt"
    app.shear_upload.value = b"this is not a FITS file"
    assert app.message.visible and "not a FITS file" in app.message.object
    app.mask_upload.filename = "empty.fits"
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros((16, 16), np.float32)).writeto(buffer)
    app.mask_upload.value = buffer.getvalue()
    assert "all zero" in app.message.object
    assert app.settings.mask == "stripes"  # a rejected upload changes nothing
    assert app.controller.last_result is before

    app.settings.sigma_min = 0.9  # impossible: above sigma_max
    app.run()
    assert "sigma_min" in app.message.object and not app.controller.is_active
    app.close()


def test_hybrid_prior_run_uses_the_learned_prior_sampler():
    """The shipped hybrid prior runs headless to σ_min through the same controller; the driver picks the learned-
    prior settings (reverse-diffusion predictor, capped metric) automatically."""
    from core.priors.hybrid import HybridPrior
    from core.inference.driver import resolve_defaults
    from dashboard.settings import HYBRID_PRIOR

    problem = build_problem(tiny_settings(prior=HYBRID_PRIOR, sigma_min=1e-3, num_levels=6))
    assert isinstance(problem.posterior.prior, HybridPrior)
    assert resolve_defaults(problem.posterior) == ("fourier_capped", "reverse_diffusion")
    controller = RunController("hybrid")
    controller.start(lambda: problem, sample_snapshots, label=HYBRID_PRIOR)
    assert controller.join(TIMEOUT)
    assert controller.state == RunState.DONE, controller.status().message
    snap = controller.latest()[1]
    assert snap.done and snap.sigma == pytest.approx(1e-3) and np.all(np.isfinite(snap.chains))
    assert HYBRID_PRIOR in controller.results_by_label
