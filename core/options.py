r"""The vocabulary of kappascope: every user-facing choice, default and bound, in one TensorFlow-free module.

The CLI (argparse ``choices``/types) and the dashboard (``param`` selectors and bounds) are generated from the
names here, so both offer exactly the same words with the same defaults. An :class:`Option` is one named,
typed setting with a default, a help line and (for numbers) inclusive bounds ``minimum ≤ value ≤ maximum``;
:meth:`Option.validate` coerces a value (``"3"`` → 3 for an ``int`` option) and raises ``ValueError`` naming the
option and the value when it is not acceptable.

Samplers are described by the registry :mod:`core.inference.samplers.registry` (name → class + its own
:class:`Option` s); :func:`sampler_names` and :func:`sampler_spec` read it (still without TensorFlow).

"none" is the only spelling of "no predictor" / "no final denoising" in every UI; the core accepts it (and
Python ``None`` from older callers) — :func:`none_to_python` converts.

Imports: the standard library and nothing else (the CLI's ``--help`` must stay fast).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from core.inference.samplers.registry import SamplerSpec

__all__ = [
    "Option",
    "PRIORS",
    "SCHEDULES",
    "MASSES",
    "PREDICTORS",
    "INITS",
    "DENOISERS",
    "DATA_SOURCES",
    "HALO_CLUSTERING",
    "MASKS",
    "MIN_NPIX",
    "MAX_NPIX",
    "MIN_CHAINS",
    "MAX_CHAINS",
    "MIN_SIGMA",
    "MAX_SIGMA",
    "MAX_LEVELS",
    "MAX_STEPS_PER_LEVEL",
    "MAX_TRANSITIONS",
    "MAX_LEAPFROG_STEPS",
    "MAX_SEED",
    "MIN_CHUNK_SECONDS",
    "MIN_PIXEL_ARCMIN",
    "MAX_PIXEL_ARCMIN",
    "MAX_CHUNK_SECONDS",
    "SCHEDULE_OPTIONS",
    "RUN_OPTIONS",
    "DEFAULTS",
    "option",
    "sampler_option",
    "DEFAULT_SAMPLER",
    "sampler_names",
    "sampler_spec",
    "resolve_sampler_name",
    "none_to_python",
]

# ------------------------------------------------------------------------------------------- vocabularies
PRIORS = ("gaussian", "hybrid")
SCHEDULES = ("geometric", "linear", "cosine")
MASSES = ("auto", "fourier", "fourier_capped", "identity")
PREDICTORS = ("auto", "reverse_diffusion", "none")
INITS = ("wiener", "ks", "prior")
DENOISERS = ("tweedie", "ode", "none")
DATA_SOURCES = ("lognormal", "gaussian", "halo_model", "halo_model_clustered", "cosmos")
HALO_CLUSTERING = ("poisson", "biased")  # halo positions of halo-model maps (core.physics.halos.HaloModelConfig.clustering)
MASKS = ("none", "random_holes", "stripes", "random_holes+stripes", "cosmos")  # masks of simulated problems

# ------------------------------------------------------------------------------------------- bounds
MIN_NPIX, MAX_NPIX = 16, 1024  # map side in pixels (even)
MIN_CHAINS, MAX_CHAINS = 2, 256  # the posterior std needs two chains
MIN_SIGMA, MAX_SIGMA = 1e-5, 10.0  # annealing noise levels, convergence units (κ is O(0.01–0.1))
MAX_LEVELS = 2000
MAX_STEPS_PER_LEVEL = 1000
MAX_TRANSITIONS = 2_000_000  # levels × steps per level
MAX_LEAPFROG_STEPS = 1000
MIN_CHUNK_SECONDS, MAX_CHUNK_SECONDS = 0.01, 60.0
MAX_SEED = 2**31 - 1  # seeds are combined as int32 pairs [seed, k] (core.pipeline)
MIN_PIXEL_ARCMIN, MAX_PIXEL_ARCMIN = 0.01, 30.0  # pixel side in arcmin (0.6″ … 0.5°: flat-sky maps)


@dataclass(frozen=True)
class Option:
    """One named setting: ``kind`` is ``int``, ``float``, ``bool`` or ``"choice"`` (then ``choices`` is set).

    ``minimum``/``maximum`` are inclusive bounds for numbers. A default of ``None`` means "decided by the
    sampler" (e.g. a dimension-aware step size); ``validate(None)`` then returns ``None``.
    """

    name: str
    kind: Any
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in (int, float, bool, "choice"):
            raise ValueError(f"Option {self.name!r}: kind must be int, float, bool or 'choice', got {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"Option {self.name!r}: a 'choice' option needs choices")
        if self.default is not None:
            object.__setattr__(self, "default", self.validate(self.default))

    @property
    def flag(self) -> str:
        """The command-line spelling, ``--num-leapfrog-steps``."""
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> Any:
        """``value`` coerced to the option's type and checked against its choices/bounds (``ValueError`` if not)."""
        if value is None and self.default is None:
            return None
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        bad = f"{self.name} must be {self.describe()}, got {shown}"
        if self.kind == "choice":
            if not any(type(value) is type(c) and value == c for c in self.choices):  # type: ignore[union-attr]
                raise ValueError(bad)  # (exact types: 1 is not True, an array is never a choice)
            return value
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if type(value).__name__ == "bool_":  # numpy bool without importing numpy
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError(bad)
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            raise ValueError(bad)
        try:
            if self.kind is int:
                if isinstance(value, str):
                    number: Any = int(value.strip())
                elif isinstance(value, float) or type(value).__name__.startswith("float"):
                    if not float(value).is_integer():
                        raise ValueError(bad)
                    number = int(value)
                else:
                    number = operator.index(value)
            else:
                number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(bad) from None
        if self.kind is float and not math.isfinite(number):
            raise ValueError(bad)
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise ValueError(bad)
        return number

    def describe(self) -> str:
        """``"an integer in [1, 1000]"``, ``"one of ('auto', 'none')"`` …"""
        if self.kind == "choice":
            return f"one of {self.choices}"
        if self.kind is bool:
            return "true or false"
        noun = "an integer" if self.kind is int else "a finite number"

        def fmt(bound: float) -> str:
            return str(int(bound)) if self.kind is int else f"{bound:g}"

        if self.minimum is not None and self.maximum is not None:
            return f"{noun} in [{fmt(self.minimum)}, {fmt(self.maximum)}]"
        if self.minimum is not None:
            return f"{noun} ≥ {fmt(self.minimum)}"
        if self.maximum is not None:
            return f"{noun} ≤ {fmt(self.maximum)}"
        return noun


# ------------------------------------------------------------------------------------------- shared options
SCHEDULE_OPTIONS: tuple[Option, ...] = (
    Option("schedule", "choice", "geometric", "spacing of the annealing noise levels σ between σ_max and σ_min",
           choices=SCHEDULES),
    Option("sigma_max", float, 0.5, "first (largest) annealing noise level σ_max, convergence units",
           minimum=MIN_SIGMA, maximum=MAX_SIGMA),
    Option("sigma_min", float, 1e-3, "last (smallest) annealing noise level σ_min (below σ_max)",
           minimum=MIN_SIGMA, maximum=MAX_SIGMA),
    Option("num_levels", int, 60, "number of annealing levels L", minimum=1, maximum=MAX_LEVELS),
    Option("steps_per_level", int, 10, "sampler transitions per annealing level", minimum=1, maximum=MAX_STEPS_PER_LEVEL),
)

RUN_OPTIONS: tuple[Option, ...] = (
    Option("prior", "choice", "gaussian", "the prior score: exact Gaussian of the theory C_ℓ, or Gaussian + the "
           "shipped residual score network", choices=PRIORS),
    Option("num_chains", int, 8, "independent chains, run as one batch", minimum=MIN_CHAINS, maximum=MAX_CHAINS),
    Option("seed", int, 0, "seed of every random draw of the run", minimum=0, maximum=MAX_SEED),
    Option("init", "choice", "wiener", "initial chains: Wiener-filter map, Kaiser–Squires map (each plus noise σ_max) "
           "or noise only", choices=INITS),
    Option("final_denoise", "choice", "tweedie", "final denoising at σ_min: Tweedie's formula, the probability-flow "
           "ODE, or none", choices=DENOISERS),
    Option("chunk_seconds", float, 0.5, "seconds of compute per chunk (Stop/Pause act between chunks)",
           minimum=MIN_CHUNK_SECONDS, maximum=MAX_CHUNK_SECONDS),
    Option("npix", int, 64, "map side in pixels (even)", minimum=MIN_NPIX, maximum=MAX_NPIX),
    Option("data_source", "choice", "lognormal", "simulated truth kind or real data", choices=DATA_SOURCES),
)


def sampler_names() -> tuple[str, ...]:
    """The registered sampler names, in registry order (aliases such as ``"langevin"`` are not listed)."""
    from core.inference.samplers.registry import REGISTRY

    return tuple(REGISTRY)


def resolve_sampler_name(name: str) -> str:
    """The canonical registry name for ``name`` (``"langevin"`` → ``"ula"``); ``ValueError`` if unknown."""
    from core.inference.samplers.registry import ALIASES, REGISTRY

    canonical = ALIASES.get(name, name) if isinstance(name, str) else name
    if canonical not in REGISTRY:
        raise ValueError(f"sampler must be one of {tuple(REGISTRY)}, got {name!r}")
    return canonical


def sampler_spec(name: str) -> "SamplerSpec":
    """The :class:`~core.inference.samplers.registry.SamplerSpec` of ``name`` (aliases accepted)."""
    from core.inference.samplers.registry import REGISTRY

    return REGISTRY[resolve_sampler_name(name)]


DEFAULT_SAMPLER = "hmc"


def sampler_option() -> Option:
    """The ``sampler`` choice: the registry's names, default ``"hmc"`` (the reference sampler)."""
    return Option("sampler", "choice", DEFAULT_SAMPLER, "posterior sampler (see core.inference.samplers.registry)",
                  choices=sampler_names())


def _all_run_options() -> dict[str, Option]:
    out = {o.name: o for o in SCHEDULE_OPTIONS + RUN_OPTIONS}
    out["sampler"] = sampler_option()
    return out


def option(name: str) -> Option:
    """The shared run/schedule :class:`Option` called ``name`` (``KeyError``-free: ``ValueError`` if unknown)."""
    options = _all_run_options()
    if name not in options:
        raise ValueError(f"unknown option {name!r}; known: {sorted(options)}")
    return options[name]


#: Defaults of the shared options (name → value).
DEFAULTS: dict[str, Any] = {o.name: o.default for o in SCHEDULE_OPTIONS + RUN_OPTIONS} | {"sampler": DEFAULT_SAMPLER}


def none_to_python(value: Any) -> Any:
    """``"none"`` → ``None`` (the core's internal spelling), anything else unchanged."""
    return None if value == "none" else value
