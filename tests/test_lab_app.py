"""The lab page headless (dashboard/lab): URL validation key by key, frames, live settings, the Train flow."""
from __future__ import annotations

import time

import numpy as np
import pytest

from dashboard.lab.app import LabApp
from dashboard.lab.settings import URL_KEYS, LabSettings, validate_query

# The tests share one LabApp (module fixture) and some continue its state: one xdist worker runs them in order.
pytestmark = pytest.mark.xdist_group("lab_app")


def test_validate_query_checks_each_key_on_its_own():
    good, errors = validate_query({"target": "ring", "step_size": "abc", "num_chains": [b"300"], "foo": "1",
                                   "teaching": "False", "num_levels": "0", "sampler": "mala"})
    assert good == {"target": "ring", "num_chains": 300, "teaching": False, "sampler": "mala"}
    joined = " | ".join(errors)
    for key in ("step_size", "foo", "num_levels"):
        assert f"'{key}'" in joined
    assert len(errors) == 3
    good, errors = validate_query({"sigma_min": "2.0", "sigma_max": "1.0"})
    assert "sigma_min" not in good and "sigma_max" not in good and "bad combination" in errors[0]
    assert set(URL_KEYS) == {p for p in LabSettings.param if p != "name"}


@pytest.fixture(scope="module")
def app():
    lab = LabApp(query={"target": "bimodal", "num_chains": "100", "speed": "2", "num_levels": "6",
                        "steps_per_level": "2", "teaching": "false"})
    lab._warm_thread.join()
    yield lab
    lab.close(wait_s=300)  # a warm-up still compiling at process exit would abort the worker


def test_frames_move_the_chains_and_pause_stops_them(app):
    start = app.run.positions.copy()
    app.tick()  # paused: nothing happens
    assert app.run.step == 0
    app.play()
    app.tick()
    assert app.run.step == 2 and not np.allclose(app.run.positions, start)
    assert "transition 2" in app.stats.object
    query = app.url_query()  # what the page writes into the URL: every setting, readable back
    good, errors = validate_query(dict(pair.split("=") for pair in query.split("&")))
    assert not errors and good == {key: getattr(app.settings, key) for key in URL_KEYS}
    assert len(app.target_view.chains.data["x"]) == 100
    app.pause()
    app.tick()
    assert app.run.step == 2
    for _ in range(8):
        app.step()
    assert app.run.step == 18 and app.run.current_frame().annealing_done  # 6 levels × 2, then σ_min
    assert len(app.trace_view.acceptance.data["step"]) == 9


def test_live_step_size_and_restart_on_target_change(app):
    app.pause()
    if app.run.step == 0:  # on its own (not after the frames test): move the chains first
        app._warm_thread.join()
        app.step()
    run, before = app.run, app.run.step
    assert before > 0
    app.settings.step_size = 3.0
    assert app.run is run and app.run.step_size == 3.0 and app.run.step == before  # same run, new step size
    app.settings.target = "ring"
    assert app.run.target.name == "ring" and app.run.step == 0
    with pytest.raises(ValueError, match="sigma_min"):  # out of bounds: param refuses it, the run goes on
        app.settings.sigma_min = 50.0
    assert app.settings.sigma_min == 0.02 and app.run.target.name == "ring"


def test_bad_combination_is_reported_not_raised(app):
    app.settings.param.update(sigma_max=0.5, sigma_min=0.9)
    assert "sigma_min" in app.status.object and "Not started" in app.status.object
    app.settings.param.update(sigma_min=0.02, sigma_max=3.0)
    app._warm_thread.join()
    app.step()
    assert app.run.step == 2


def test_train_then_sample_with_the_learned_score(app):
    app.train_steps = 150
    app.train()
    deadline = time.monotonic() + 300
    while app._train_thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    app.tick()  # the session callback notices the finished training
    assert app.learned is not None and app.learned.steps == 150
    assert app.score_source == "learned" and app.run.score_model is app.learned.model
    assert len(app.target_view.learned_field.data["x0"]) > 0 and "relative squared error" in app.learned_text.object
    app.pause()
    app._warm_thread.join()
    app.step()
    assert app.run.step == 2
