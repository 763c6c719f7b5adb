r"""The sampler registry: name → :class:`SamplerSpec` (TensorFlow-free; classes are imported lazily).

A :class:`SamplerSpec` names a :class:`~core.inference.samplers.base.PosteriorSampler` subclass by its import path
``"package.module:ClassName"``, gives a one-line summary for menus and ``--help``, and lists the sampler's own
:class:`~core.options.Option` s (name, type, default, bounds). :meth:`SamplerSpec.validate` turns user options
into a complete, checked ``dict`` (unknown names and bad values raise ``ValueError`` naming them).

Adding a sampler: write ``core/inference/samplers/<name>.py`` with a ``PosteriorSampler`` subclass and add ONE
entry to :data:`REGISTRY` below. The CLI's ``--sampler`` choices and the dashboard's sampler selector are
generated from :data:`REGISTRY`; ``tests/test_registry.py`` checks that both offer every entry and that each
one runs.

:data:`ALIASES` maps older spellings to registry names (``"langevin"`` → ``"ula"``); aliases are accepted by the
core but never offered by a UI.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from core.options import MASSES, MAX_LEAPFROG_STEPS, PREDICTORS, Option
from core.inference.samplers.diffusion_options import DPS_OPTIONS, MMPS_OPTIONS, PC_OPTIONS

__all__ = ["SamplerSpec", "REGISTRY", "ALIASES", "ANNEALED_OPTIONS"]


@dataclass(frozen=True)
class SamplerSpec:
    """One registered sampler: ``name``, the class path ``target`` (``"module:Class"``), a ``summary`` and its options."""

    name: str
    target: str
    summary: str
    options: tuple[Option, ...] = ()

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"SamplerSpec {self.name!r}: target must be 'module:ClassName', got {self.target!r}")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"SamplerSpec {self.name!r}: repeated option names in {names}")

    def load(self) -> type:
        """Import and return the sampler class."""
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    @property
    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise ValueError(f"sampler {self.name!r} has no option {name!r}; its options: {[o.name for o in self.options]}")

    def validate(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """All of this sampler's options: the given ones checked and coerced, the others at their defaults."""
        known = {o.name for o in self.options}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"sampler {self.name!r} does not take option(s) {unknown}; its options: {sorted(known) or 'none'}"
            )
        return {o.name: o.validate(options[o.name]) if o.name in options else o.default for o in self.options}


# ------------------------------------------------------------------------------------------- option sets
_STEP_SIZE = Option("step_size", float, None, "base step size ε₀ relative to the target's standard deviation "
                    "(default: dimension-aware, see core.inference.samplers.annealed)", minimum=1e-8, maximum=100.0)
_MASS = Option("mass", "choice", "auto", "metric: Fourier posterior variance, its prior-capped variant, identity, "
               "or auto (by the kind of prior)", choices=MASSES)
_PREDICTOR = Option("predictor", "choice", "auto", "move between levels by one reverse-diffusion step, or none; "
                    "auto: reverse_diffusion for learned priors", choices=PREDICTORS)
_ADAPT = Option("adapt_step_size", bool, True, "adapt the step size towards target_accept_prob (frozen at the last level)")
_TARGET_ACCEPT = Option("target_accept_prob", float, 0.7, "acceptance rate the step-size adaptation aims at",
                        minimum=0.05, maximum=0.99)
_INTERVALS = Option("num_integration_intervals", int, 4, "Simpson intervals (even) of the score line integral in "
                    "the Metropolis test", minimum=2, maximum=64)
_EXACT = Option("use_exact_log_prob", bool, False, "use the exact log density in the Metropolis test "
                "(Gaussian prior only) instead of the score line integral")
_LEAPFROG = Option("num_leapfrog_steps", int, 3, "leapfrog steps per HMC transition", minimum=1,
                   maximum=MAX_LEAPFROG_STEPS)

#: Options shared by the annealed Metropolis samplers (HMC adds ``num_leapfrog_steps``).
ANNEALED_OPTIONS: tuple[Option, ...] = (_STEP_SIZE, _MASS, _PREDICTOR, _ADAPT, _TARGET_ACCEPT, _INTERVALS, _EXACT)

_ANNEALED = "core.inference.samplers.annealed"

REGISTRY: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("hmc", f"{_ANNEALED}:AnnealedHMC",
                    "annealed score HMC, Metropolis-adjusted through the score line integral (the reference)",
                    (_LEAPFROG,) + ANNEALED_OPTIONS),
        SamplerSpec("mala", f"{_ANNEALED}:AnnealedMALA",
                    "annealed Metropolis-adjusted Langevin (score line-integral acceptance)", ANNEALED_OPTIONS),
        SamplerSpec("ula", f"{_ANNEALED}:AnnealedULA",
                    "annealed unadjusted Langevin dynamics (no Metropolis test)", (_STEP_SIZE, _MASS, _PREDICTOR)),
        # ---- diffusion posterior samplers (engineer S); options in core.inference.samplers.diffusion_options
        SamplerSpec("pc", "core.inference.samplers.predictor_corrector:PredictorCorrector",
                    "predictor–corrector: reverse-diffusion step per level + K Langevin/HMC corrector steps", PC_OPTIONS),
        SamplerSpec("dps", "core.inference.samplers.dps:DPSSampler",
                    "diffusion posterior sampling: likelihood N(y | A D(x), Σ_y) through the denoiser (one VJP)", DPS_OPTIONS),
        SamplerSpec("mmps", "core.inference.samplers.mmps:MMPSSampler",
                    "moment-matching posterior sampling: N(y | A D(x), Σ_y + A V Aᵀ) by conjugate gradients", MMPS_OPTIONS),
    )
}

#: Older spellings accepted by the core (never offered in a UI).
ALIASES: dict[str, str] = {"langevin": "ula"}
