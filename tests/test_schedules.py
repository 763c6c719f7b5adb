"""σ schedules: levels, step bookkeeping and validation."""
import numpy as np
import pytest

from core.inference.schedules import CosineSchedule, GeometricSchedule, LinearSchedule, ListSchedule, Schedule, from_name


def test_geometric_levels_have_constant_ratio():
    s = GeometricSchedule(1.0, 0.01, num_levels=5, steps_per_level=3)
    assert s.sigmas.dtype == np.float32
    np.testing.assert_allclose(s.sigmas, [1.0, 10**-0.5, 0.1, 10**-1.5, 0.01], rtol=1e-6)
    ratios = s.sigmas[1:] / s.sigmas[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)
    assert s.num_levels == 5 and s.steps_per_level == 3 and s.total_steps == 15


@pytest.mark.parametrize("cls", [GeometricSchedule, LinearSchedule, CosineSchedule])
def test_range_schedules_start_end_and_monotone(cls):
    s = cls(2.0, 0.05, num_levels=17, steps_per_level=2)
    assert s.sigmas[0] == pytest.approx(2.0) and s.sigmas[-1] == pytest.approx(0.05)
    assert np.all(np.diff(s.sigmas) <= 0) and np.all(s.sigmas > 0)


def test_linear_and_cosine_shapes():
    np.testing.assert_allclose(LinearSchedule(1.0, 0.1, 4).sigmas, [1.0, 0.7, 0.4, 0.1], rtol=1e-6)
    c = CosineSchedule(1.0, 0.01, 5).sigmas  # log-space cosine: midpoint is the geometric mean
    assert c[2] == pytest.approx(0.1, rel=1e-5)
    g = GeometricSchedule(1.0, 0.01, 5).sigmas
    assert c[1] > g[1] and c[3] < g[3]  # dwells near both ends
    lin = CosineSchedule(1.0, 0.2, 3, space="linear")
    assert lin.sigmas[1] == pytest.approx(0.6)


def test_single_level_and_per_level_steps():
    s = GeometricSchedule(0.5, 0.5, num_levels=1, steps_per_level=7)
    np.testing.assert_allclose(s.sigmas, [0.5])
    s = ListSchedule([1.0, 0.5, 0.5, 0.1], steps_per_level=[1, 2, 3, 4])
    assert s.total_steps == 10 and list(s.steps_array) == [1, 2, 3, 4]
    assert [s.level_of_step(t) for t in range(11)] == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]


def test_frozen_equality_and_factory():
    s = from_name("geometric", sigma_max=1.0, sigma_min=0.1, num_levels=3, steps_per_level=2)
    assert s == GeometricSchedule(1.0, 0.1, 3, 2) and hash(s) == hash(GeometricSchedule(1.0, 0.1, 3, 2))
    assert isinstance(s, Schedule)
    with pytest.raises(AttributeError):
        s.sigma_max = 3.0
    assert isinstance(from_name("LIST", sigmas=[0.3, 0.2]), ListSchedule)
    with pytest.raises(ValueError, match="kind"):
        from_name("exponential", sigma_max=1.0, sigma_min=0.1, num_levels=3)
    with pytest.raises(ValueError, match="bad arguments"):
        from_name("geometric", sigma_max=1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sigma_max=0.1, sigma_min=1.0, num_levels=3), "sigma_min"),
        (dict(sigma_max=1.0, sigma_min=0.0, num_levels=3), "sigma_min"),
        (dict(sigma_max=-1.0, sigma_min=0.1, num_levels=3), "sigma_max"),
        (dict(sigma_max=float("nan"), sigma_min=0.1, num_levels=3), "sigma_max"),
        (dict(sigma_max=float("inf"), sigma_min=0.1, num_levels=3), "sigma_max"),
        (dict(sigma_max=1.0, sigma_min=0.1, num_levels=0), "num_levels"),
        (dict(sigma_max=1.0, sigma_min=0.1, num_levels=2.5), "num_levels"),
        (dict(sigma_max=1.0, sigma_min=0.1, num_levels=3, steps_per_level=0), "steps_per_level"),
        (dict(sigma_max=1.0, sigma_min=0.1, num_levels=3, steps_per_level=[1, 2]), "steps_per_level"),
        (dict(sigma_max=1.0, sigma_min=0.1, num_levels=2, steps_per_level=[1, 0]), "steps_per_level"),
    ],
)
def test_range_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GeometricSchedule(**kwargs)


@pytest.mark.parametrize(
    "sigmas, match",
    [([0.1, 0.5], "non-increasing"), ([1.0, 0.0], "positive"), ([1.0, float("nan")], "finite"), ([], "non-empty")],
)
def test_list_validation(sigmas, match):
    with pytest.raises(ValueError, match=match):
        ListSchedule(sigmas)


def test_cosine_space_validation():
    with pytest.raises(ValueError, match="space"):
        CosineSchedule(1.0, 0.1, 3, space="sqrt")
