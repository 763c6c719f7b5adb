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
    values = dict(npix=16, num_chains=3, num_levels=4, steps_per_level=2, sigma_max=0.3, mask="stripes", seed=0)
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
    assert 1 <= frame_id <= tiny_problem.schedule.total_steps  # one frame per chunk (chunks sized by time)
    assert snap.step == tiny_problem.schedule.total_steps
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
    steps = [0]
    for expected in (1, 2):
        controller.step()
        assert wait_for(lambda: controller.latest()[0] == expected)
        time.sleep(0.3)  # a paused run must not run ahead
        frame_id, snap = controller.latest()
        assert frame_id == expected and snap.step > steps[-1]  # exactly one more chunk
        steps.append(snap.step)
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
def run_app_to_end(app) -> None:
    assert wait_for(lambda: (app.refresh() or True) and not app.model.controller.is_active
                    and app.model.controller.latest()[1] is not None)
    app.refresh()


def test_app_runs_downloads_and_reports_bad_uploads(tmp_path):
    from astropy.io import fits

    from dashboard.app import create_app

    app = create_app(tiny_settings(), autostart_preview=False)
    app.__panel__().get_root()  # live Bokeh models, as in a served session
    app.model.run()
    run_app_to_end(app)
    model = app.model
    assert model.controller.state == RunState.DONE, model.controller.status().message
    assert app.frames_applied >= 1 and app.controls.progress.value == 1000
    assert "done" in app.controls.progress_text.object and "NFE" in app.controls.progress_text.object
    diagnostics = app.results.diagnostics.object
    assert "sample power / prior power" in diagnostics and "half-run" in diagnostics
    assert "R-hat &lt; 1.1" not in diagnostics and "R-hat < 1.1" not in diagnostics
    assert app.results.maps.images["mean"].updates >= 2  # updated in place, figures never rebuilt

    data = app.controls.fits_download.callback().getvalue()
    path = tmp_path / "posterior.fits"
    path.write_bytes(data)
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert "MEAN" in names and "STD" in names and "SAMPLES" in names
        assert hdul["SAMPLES"].data.shape == (3, 16, 16)
    png = app.controls.png_download.callback().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    before = model.controller.last_result
    assert not model.load_shear(b"this is not a FITS file", "notes.txt")
    assert app.controls.message.visible and "not a FITS file" in app.controls.message.object
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros((16, 16), np.float32)).writeto(buffer)
    assert not model.load_mask(buffer.getvalue(), "empty.fits")
    assert "all zero" in app.controls.message.object
    assert not model.load_shear(b"", "empty.fits")
    assert "empty" in app.controls.message.object
    assert model.settings.mask == "stripes"  # a rejected upload changes nothing
    assert model.controller.last_result is before

    model.settings.sigma_min = 0.9  # impossible: above sigma_max
    model.run()
    assert "sigma_min" in app.controls.message.object and not model.controller.is_active
    app.close()


def test_file_names_are_escaped_in_every_message():
    from astropy.io import fits

    from dashboard.app import create_app

    app = create_app(tiny_settings(), autostart_preview=False)
    name = "<img src=x onerror=alert('xss')>**b**.fits"
    app.model.load_shear(b"not fits", name)
    html = app.controls.message.object
    assert "<img" not in html and "&lt;img src=x onerror=alert(&#x27;xss&#x27;)&gt;**b**.fits" in html
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros((2, 16, 16), np.float32)).writeto(buffer)
    assert app.model.load_shear(buffer.getvalue(), name)
    assert "<img" not in app.controls.message.object and "Loaded shear maps" in app.controls.message.object


def test_url_settings_are_checked_one_by_one_and_stay_visible():
    from dashboard.app import create_app

    query = {"npix": ["abc"], "seed": ["7"], "num_chains": ["1"], "sigma_max": ["nan"], "sigma_min": ["5"],
             "bogus": ["1"], "prior": ["hybrid"], "num_levels": ["9" * 5000], "steps_per_level": ["3"]}
    app = create_app(query=query, autostart_preview=False)
    settings = app.model.settings
    assert (settings.seed, settings.prior, settings.steps_per_level) == (7, "hybrid", 3)  # the valid ones are kept
    assert (settings.npix, settings.num_chains, settings.sigma_min) == (64, 8, 1e-3)  # the bad ones are not applied
    shown = app.controls.url_message.object
    assert app.controls.url_message.visible
    for key in ("npix", "num_chains", "sigma_max", "sigma_min", "bogus", "num_levels"):
        assert f"&#x27;{key}&#x27;" in shown, key
    assert "too long" in shown
    app.model.preview()  # starting the preview does not clear them
    assert app.controls.url_message.visible and app.controls.url_message.object == shown
    app.close()


def test_compare_priors_and_samplers_fill_results():
    from dashboard.model import RunModel

    model = RunModel(tiny_settings(num_chains=4))
    assert model.compare_samplers(("hmc", "ula"))
    assert model.controller.join(TIMEOUT) and model.controller.state == RunState.DONE, model.controller.status().message
    rows = model.comparison_rows()
    assert [r["run"] for r in rows] == ["hmc", "ula"]
    for row in rows:
        assert row["NFE / chain"] > 0 and row["time (s)"] > 0 and row["RMSE"] > 0 and 0 <= row["95 % coverage"] <= 1
    assert rows[0]["NFE / chain"] != rows[1]["NFE / chain"]  # HMC costs more evaluations per transition
    assert model.compare_priors()
    # loads the shipped network and traces it: minutes on a loaded 2-core machine (a time limit, not a speed test)
    assert model.controller.join(3 * TIMEOUT) and model.controller.state == RunState.DONE, model.controller.status().message
    gaussian, hybrid = model.variants["gaussian"], model.variants["hybrid"]
    assert gaussian.problem.truth is not None
    np.testing.assert_array_equal(gaussian.problem.shear, hybrid.problem.shear)  # the same data and seed
    assert not np.allclose(gaussian.snapshot.mean, hybrid.snapshot.mean)


def test_hybrid_prior_run_uses_the_learned_prior_sampler():
    """The shipped hybrid prior runs headless to σ_min through the same controller; the driver picks the learned-
    prior settings (reverse-diffusion predictor, capped metric) automatically."""
    from core.priors.hybrid import HybridPrior
    from core.inference.driver import resolve_defaults
    from dashboard.settings import HYBRID_DEFAULT_SAMPLER, HYBRID_PRIOR

    settings = tiny_settings(prior=HYBRID_PRIOR, sigma_min=1e-3, num_levels=6)
    assert settings.sampler == HYBRID_DEFAULT_SAMPLER
    problem = build_problem(settings)
    assert isinstance(problem.posterior.prior, HybridPrior)
    assert resolve_defaults(problem.posterior) == ("fourier_capped", "reverse_diffusion")
    controller = RunController("hybrid")
    controller.start(lambda: problem, sample_snapshots, label=HYBRID_PRIOR)
    assert controller.join(TIMEOUT)
    assert controller.state == RunState.DONE, controller.status().message
    snap = controller.latest()[1]
    assert snap.done and snap.sigma == pytest.approx(1e-3) and np.all(np.isfinite(snap.chains))
    assert HYBRID_PRIOR in controller.results_by_label


# ----------------------------------------------------------------------------- #14: Stop/Pause inside a slow transition
SLOW_TRANSITION_S = 3.0  # a transition of the learned prior at 360² takes 2–12 s; a compiled chunk cannot be interrupted
ACT_WITHIN_S = 1.0


class SlowScorePrior:
    """The tiny problem's prior, whose score blocks inside the compiled chunk (a ``tf.py_function``) while ``slow``
    is set, until ``release`` is set: a transition that lasts as long as the test wants (at least SLOW_TRANSITION_S).
    ``entered`` is set once a transition is blocked. Otherwise each evaluation takes ``THROTTLE_S``, so the tiny run
    (8 transitions) cannot finish in the moment between the test seeing the first frame and setting ``slow`` (on a
    fast machine it did, and no transition was left to block); the values are unchanged."""

    THROTTLE_S = 0.05

    def __init__(self, inner) -> None:
        self.inner = inner
        self.slow, self.entered, self.release = threading.Event(), threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score(self, kappa, sigma=0.0):
        import tensorflow as tf

        out = self.inner.score(kappa, sigma)

        def hold(x):
            if self.slow.is_set():
                self.entered.set()
                self.release.wait(TIMEOUT)
            else:
                time.sleep(self.THROTTLE_S)
            return x

        held = tf.py_function(hold, [out], tf.float32)
        held.set_shape(out.shape)
        return held

    def block_until_released(self) -> float:
        """Block the next score evaluation (only it: later ones, of any run, pass); returns when it blocks."""
        self.slow.set()
        assert self.entered.wait(TIMEOUT), "no transition reached the slow score"
        self.slow.clear()
        return time.monotonic()

    def release_after(self, entered_at: float) -> None:
        """Let the blocked transition go on, once it has lasted at least SLOW_TRANSITION_S."""
        time.sleep(max(0.0, entered_at + SLOW_TRANSITION_S - time.monotonic()))
        self.release.set()


@pytest.fixture
def slow_run(tiny_problem):
    """``(prior, sample_fn)``: ULA chains on the tiny problem with a :class:`SlowScorePrior` (time-chunked driver)."""
    from core.inference import driver
    from core.inference.posterior import PosteriorScore

    prior = SlowScorePrior(tiny_problem.posterior.prior)
    posterior = PosteriorScore(tiny_problem.posterior.likelihood, prior)

    def sample_fn(problem, cancel):
        sampler = driver.make_sampler(posterior, problem.schedule, "ula")
        return driver.sample(sampler, num_chains=2, seed=0, cancel=cancel, chunk_seconds=0.5, final_denoise="none")

    yield prior, sample_fn
    prior.release.set()


def reference_chains(tiny_problem, sample_fn) -> np.ndarray:
    controller = RunController("reference")
    controller.start(lambda: tiny_problem, sample_fn)
    assert controller.join(TIMEOUT) and controller.state == RunState.DONE, controller.status().message
    return controller.latest()[1].chains


def test_stop_inside_a_slow_transition_acts_at_once_and_discards_the_late_chunk(tiny_problem, slow_run):
    """Stop while the worker is inside a ≥3 s transition: STOPPED at once, the shown snapshot kept; a new Run works
    meanwhile and the old worker's late chunk never reaches it (nor the stopped run)."""
    prior, sample_fn = slow_run
    controller = RunController("slow-stop")
    controller.start(lambda: tiny_problem, sample_fn, label="slow")
    assert wait_for(lambda: controller.latest()[0] >= 1)
    entered_at = prior.block_until_released()
    kept_frame, kept = controller.latest()
    assert controller.state == RunState.RUNNING and not kept.done

    clicked = time.monotonic()
    assert not controller.stop(wait=False)  # the worker is still inside its transition …
    assert wait_for(lambda: controller.state == RunState.STOPPED, timeout=ACT_WITHIN_S)
    stop_s = time.monotonic() - clicked
    assert controller.latest() == (kept_frame, kept)  # … but the run is stopped, the shown chains kept
    status = controller.status()
    assert status.step == kept.step and "Stopped" in status.message and not controller.is_active
    assert controller.lingering_workers == 1

    # a new Run while the old worker is still in flight: it runs to the end on its own
    controller.start(lambda: tiny_problem, sample_fn, label="second")
    assert controller.join(TIMEOUT) and controller.state == RunState.DONE, controller.status().message
    assert controller.lingering_workers == 1  # the old transition is still blocked
    final_frame, final = controller.latest()
    prior.release_after(entered_at)  # the old transition ends (≥ 3 s after it began): its chunk is computed now
    assert controller.join_all(TIMEOUT) and controller.lingering_workers == 0
    assert controller.latest() == (final_frame, final) and controller.state == RunState.DONE
    assert final.done and final.step == tiny_problem.schedule.total_steps
    np.testing.assert_array_equal(final.chains, reference_chains(tiny_problem, sample_fn))  # no mixing of runs
    assert controller.last_result.label == "second"
    print(f"Stop inside a {SLOW_TRANSITION_S:.0f}+ s transition: STOPPED after {1e3 * stop_s:.1f} ms")


def test_pause_inside_a_slow_transition_holds_the_chunk_and_resume_is_exact(tiny_problem, slow_run):
    """Pause while the worker is inside a ≥3 s transition: PAUSED at once; the chunk in flight is held (not shown)
    while paused, Step shows exactly it, Resume goes on; the final chains equal an uninterrupted run's."""
    prior, sample_fn = slow_run
    controller = RunController("slow-pause")
    controller.start(lambda: tiny_problem, sample_fn)
    assert wait_for(lambda: controller.latest()[0] >= 1)
    entered_at = prior.block_until_released()
    kept_frame, kept = controller.latest()

    clicked = time.monotonic()
    controller.pause()
    assert wait_for(lambda: controller.state == RunState.PAUSED, timeout=ACT_WITHIN_S)
    pause_s = time.monotonic() - clicked
    prior.release_after(entered_at)
    assert wait_for(lambda: controller.holds_frame)  # the chunk in flight is computed …
    time.sleep(0.5)
    assert controller.latest() == (kept_frame, kept) and controller.state == RunState.PAUSED  # … and not shown

    controller.step()  # shows the held chunk, and only it
    frame, shown = controller.latest()
    assert frame == kept_frame + 1 and shown.step > kept.step and not controller.holds_frame
    time.sleep(0.5)
    assert controller.latest()[0] == frame and not controller.holds_frame  # a paused run does not run ahead
    controller.step()  # nothing held: one more chunk is computed and shown
    assert wait_for(lambda: controller.latest()[0] == frame + 1)
    assert controller.latest()[1].step > shown.step and controller.state == RunState.PAUSED
    controller.resume()
    assert controller.join(TIMEOUT) and controller.state == RunState.DONE, controller.status().message
    final = controller.latest()[1]
    assert final.step == tiny_problem.schedule.total_steps
    np.testing.assert_array_equal(final.chains, reference_chains(tiny_problem, sample_fn))
    print(f"Pause inside a {SLOW_TRANSITION_S:.0f}+ s transition: PAUSED after {1e3 * pause_s:.1f} ms")


def test_closing_the_session_mid_comparison_stops_at_once_and_records_nothing_late():
    """A tab closed (``close``, as on session destroyed) while a comparison variant is inside an uninterruptible
    chunk: STOPPED at once; the variant that chunk finishes is never recorded, shown or exportable."""
    from types import SimpleNamespace

    from dashboard.model import RunModel

    started, release = threading.Event(), threading.Event()

    def one_blocking_chunk(problem, cancel, **overrides):
        started.set()
        release.wait(TIMEOUT)  # like a compiled chunk: it does not look at ``cancel``
        n = problem.schedule.total_steps
        yield SimpleNamespace(step=n, total_steps=n, done=True, mean=problem.wiener, std=np.ones_like(problem.wiener),
                              elapsed_s=1.0, nfe=1.0, chains=np.stack([problem.wiener] * 2))

    model = RunModel(tiny_settings(), sample_fn=one_blocking_chunk)
    try:
        assert model.compare_samplers(("hmc", "ula"))
        assert started.wait(TIMEOUT)
        clicked = time.monotonic()
        model.close()
        assert wait_for(lambda: model.controller.state == RunState.STOPPED, timeout=ACT_WITHIN_S)
        close_s = time.monotonic() - clicked
        release.set()
        assert model.controller.join_all(TIMEOUT)
        assert model.variants == {} and model.comparison_rows() == []
        assert model.controller.latest()[1] is None and model.controller.state == RunState.STOPPED
        with pytest.raises(ValueError, match="no samples"):
            model.result()  # nothing to export: the only chunk finished after the stop
        print(f"close inside a blocking chunk: STOPPED after {1e3 * close_s:.1f} ms")
    finally:
        release.set()
