r"""The posterior-sampler interface every sampler implements (annealed MCMC, predictor–corrector, DPS, MMPS, …).

A sampler is built from a posterior (:class:`core.inference.posterior.PosteriorScore`: ``score(κ, σ)`` of the
σ-smoothed posterior ``p_σ(κ | γ) ∝ L_σ(γ | κ) p_σ(κ)``, its ``likelihood``, ``prior``, ``geometry``,
``power_map`` and ``has_log_prob``), a σ :class:`~core.inference.schedules.Schedule` and its own options (checked
against its :class:`~core.inference.samplers.registry.SamplerSpec`). It hands the driver
(:func:`core.inference.driver.sample`) one TFP ``TransitionKernel`` over chains ``(C, N, N)`` float32; the driver
runs ``num_transitions`` of its transitions, transition ``t`` with the seed ``fold_in(run seed, t)``.

The kernel results expose, as top-level fields or fields reachable by
``tensorflow_probability.python.internal.unnest.get_innermost``:

* ``step``  int32 scalar — transitions done;
* ``level`` int32 scalar — the schedule level of the last transition;
* ``sigma`` float32 scalar — σ of the state now (the noise level the chains are distributed at);
* ``nfe``   float32 scalar — score (network) evaluations per chain so far, every evaluation of the
  posterior score counted once (a Gaussian prior's analytic score counts too, so costs compare across priors);
* optionally ``is_accepted`` ``(C,)`` bool and ``step_size``.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar

import tensorflow_probability as tfp

from core.inference.samplers.registry import REGISTRY, SamplerSpec
from core.inference.schedules import Schedule
from core.physics.geometry import MapGeometry

__all__ = ["PosteriorSampler"]


class PosteriorSampler(abc.ABC):
    """Base class: ``PosteriorSampler(posterior, schedule, **options)``; subclasses set ``name`` (a registry key).

    ``self.options`` holds every option of the sampler's :class:`SamplerSpec`, validated, defaults filled in.
    """

    name: ClassVar[str]

    def __init__(self, posterior: Any, schedule: Schedule, **options: Any) -> None:
        if not callable(getattr(posterior, "score", None)) or not isinstance(getattr(posterior, "geometry", None), MapGeometry):
            raise ValueError(
                "posterior must have .score(kappa, sigma) and a MapGeometry .geometry "
                f"(e.g. core.inference.posterior.PosteriorScore), got {type(posterior).__name__}"
            )
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
        self.posterior = posterior
        self.schedule = schedule
        self.options: dict[str, Any] = self.spec().validate(options)

    @classmethod
    def spec(cls) -> SamplerSpec:
        """This sampler's registry entry."""
        try:
            return REGISTRY[cls.name]
        except (KeyError, AttributeError):
            raise ValueError(f"{cls.__name__}.name must be a key of the sampler registry, got {getattr(cls, 'name', None)!r}") from None

    @abc.abstractmethod
    def make_kernel(self) -> tfp.mcmc.TransitionKernel:
        """The transition kernel over chains ``(C, N, N)`` (results expose step/level/sigma/nfe, see the module doc)."""

    @property
    @abc.abstractmethod
    def num_transitions(self) -> int:
        """Transitions in a full run."""

    @property
    def num_levels(self) -> int:
        """Levels of the schedule (for progress displays)."""
        return self.schedule.num_levels

    @property
    def initial_sigma(self) -> float:
        """σ of the initial chains (the driver adds noise of this standard deviation to a Wiener/KS centre)."""
        return self.schedule.first_sigma

    @property
    def final_sigma(self) -> float:
        """σ of the state after the last transition (the level the final denoising starts from)."""
        return self.schedule.last_sigma

    def settings(self) -> dict[str, Any]:
        """Resolved, JSON-able settings (sampler name, its options, the schedule) for provenance records."""
        out: dict[str, Any] = {"sampler": self.name}
        out.update({k: v for k, v in self.options.items()})
        out["schedule"] = repr(self.schedule)
        out["num_transitions"] = int(self.num_transitions)
        return out

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
