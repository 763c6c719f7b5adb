"""Every registered sampler is offered by the CLI and the dashboard, and runs a 2-level smoke run on a 16² map.

The smoke run goes through :func:`core.pipeline.run` (the path both UIs take): 2 levels × 2 transitions,
2 chains, Gaussian prior; it must finish, stay finite, report its name, its transitions and a positive,
non-decreasing count of score evaluations.
"""
import argparse

import numpy as np
import pytest

from core import pipeline
from core.inference.driver import last_snapshot
from core.options import sampler_names


def cli_sampler_choices() -> tuple:
    from core.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sample = subparsers.choices["sample"]
    action = next(a for a in sample._actions if "--sampler" in a.option_strings)
    return tuple(action.choices)


def dashboard_sampler_choices() -> tuple:
    from dashboard.settings import DashboardSettings

    return tuple(DashboardSettings.param["sampler"].objects)


def test_cli_offers_every_registered_sampler():
    assert set(cli_sampler_choices()) == set(sampler_names())


def test_dashboard_offers_every_registered_sampler():
    assert set(dashboard_sampler_choices()) == set(sampler_names())


@pytest.fixture(scope="module")
def problem():
    return pipeline.simulated_problem(16, 2.0, source="gaussian", mask="random_holes", seed=3)


@pytest.mark.parametrize("name", sampler_names())
def test_registered_sampler_smoke_run(problem, name):
    schedule = pipeline.make_schedule("geometric", sigma_max=0.1, sigma_min=0.01, num_levels=2, steps_per_level=2)
    snapshots = list(pipeline.run(problem, name, schedule, num_chains=2, seed=1, chunk_seconds=0.05))
    final = last_snapshot(iter(snapshots))
    sampler = pipeline.make_sampler(problem, name, schedule)
    assert final.sampler == name and final.step == final.total_steps == sampler.num_transitions
    assert final.chains.shape == (2, 16, 16) and np.isfinite(final.chains).all()
    nfe = np.array([s.nfe for s in snapshots])
    assert nfe[0] > 0 and np.all(np.diff(nfe) >= 0)
    assert sampler.settings()["sampler"] == name
