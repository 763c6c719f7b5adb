r"""Run settings of the kappascope dashboard: a ``param.Parameterized`` generated from :mod:`core.options`. No UI.

One :class:`DashboardSettings` object describes one posterior-sampling run of the model

.. math::  γ = M(P κ + n),\qquad n_i \sim \mathcal N(0, σ_{n,i}^2),\qquad κ \sim p(κ),

sampled by a registered posterior sampler (annealed HMC, MALA, ULA, predictor–corrector, DPS, MMPS …) over a
decreasing noise schedule ``σ_max = σ_1 > … > σ_L = σ_min`` with ``steps_per_level`` transitions per level. With
galaxy-density noise the per-pixel, per-component shear noise is ``σ_n = σ_e / sqrt(n_gal · θ_pix²)`` (θ_pix in
arcmin, n_gal in arcmin⁻²).

One vocabulary: the choices, defaults and bounds of every setting the CLI also has (prior, sampler, schedule,
σ bounds, levels, chains, seed, init, final denoising, map side, data source) come from :mod:`core.options`, and the
sampler's own options (leapfrog steps, mass, predictor, step size, DPS weight, CG iterations …) from the sampler
registry :mod:`core.inference.samplers.registry` — a newly registered sampler appears here with its options and
nothing in the dashboard changes. Selector values are the core's words (``"hybrid"``, ``"cosine"`` …, also in the
URL); the widgets show readable labels.

Cross-parameter rules that bounds cannot express (odd map sizes, ``σ_min ≥ σ_max`` …) are listed by
:meth:`DashboardSettings.problems` and raised by :meth:`DashboardSettings.validate` (``ValueError`` naming the
parameter). :meth:`DashboardSettings.update_from_mapping` applies URL query values one by one: bad keys and values
are named in the returned list and the valid ones are kept.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import param

from core import options as core_options
from core.options import option as core_option

__all__ = [
    "DATA_SOURCES",
    "MASK_CHOICES",
    "NOISE_CHOICES",
    "PRIOR_CHOICES",
    "SCHEDULE_KINDS",
    "SAMPLER_CHOICES",
    "SAMPLER_OPTION_NAMES",
    "DEFAULT_SAMPLER",
    "HYBRID_DEFAULT_SAMPLER",
    "HYBRID_DEFAULT_SAMPLER_OPTIONS",
    "DashboardSettings",
    "per_pixel_noise_std",
]

# ------------------------------------------------------------------------------------------- vocabularies
SIMULATED_LOGNORMAL, SIMULATED_GAUSSIAN, HALO_MODEL, COSMOS = "lognormal", "gaussian", "halo_model", "cosmos"
HALO_MODEL_CLUSTERED = "halo_model_clustered"
UPLOADED = "upload"
_DATA_LABELS = {SIMULATED_LOGNORMAL: "simulated lognormal", SIMULATED_GAUSSIAN: "simulated Gaussian",
                HALO_MODEL: "simulated halo model (clusters)",
                HALO_MODEL_CLUSTERED: "simulated halo model (clustered haloes)", COSMOS: "COSMOS (HST)", UPLOADED: "uploaded shear FITS"}
#: Simulated truth kinds and real data of the core, plus the dashboard's own "upload".
DATA_SOURCES = tuple(core_options.DATA_SOURCES) + (UPLOADED,)
SIMULATED_SOURCES = (SIMULATED_LOGNORMAL, SIMULATED_GAUSSIAN, HALO_MODEL, HALO_MODEL_CLUSTERED)

#: Mask choices: the ``core.data.observation.MASK_PRESETS`` keys, an uploaded file, or shapes drawn on the page.
MASK_CHOICES = ("full", "stars", "stripes", "stars+stripes", "cosmos", "uploaded", "drawn")
_MASK_LABELS = {"full": "none (all observed)", "stars": "random holes", "stripes": "stripes",
                "stars+stripes": "random holes + stripes", "cosmos": "COSMOS footprint",
                "uploaded": "uploaded FITS/PNG", "drawn": "drawn on the shear map"}
MASK_PRESET_KEYS = tuple(c for c in MASK_CHOICES if c not in ("uploaded", "drawn"))

GALAXY_DENSITY, STD_MAPS = "galaxy_density", "std_maps"
NOISE_CHOICES = (GALAXY_DENSITY, STD_MAPS)
_NOISE_LABELS = {GALAXY_DENSITY: "from σ_e and galaxy density", STD_MAPS: "the data's std maps"}

GAUSSIAN_PRIOR, HYBRID_PRIOR = "gaussian", "hybrid"
PRIOR_CHOICES = tuple(core_options.PRIORS)
_PRIOR_LABELS = {GAUSSIAN_PRIOR: "Gaussian (theory C_ℓ)", HYBRID_PRIOR: "hybrid (Gaussian + shipped network)"}
SCHEDULE_KINDS = tuple(core_options.SCHEDULES)
SAMPLER_CHOICES = tuple(core_options.sampler_names())
DENOISE_CHOICES = tuple(core_options.DENOISERS)

DEFAULT_SAMPLER = core_option("sampler").default
#: The sampler chosen when the prior is switched to the hybrid (learned) prior, with the options set with it: the
#: cheapest sampler whose 95 % coverage in ``benchmarks/compare_samplers.py`` is within 3 points of hybrid-HMC's
#: (issue 11): plain reverse diffusion, predictor–corrector with K = 0 corrector steps (21 NFE per chain at 20
#: levels against 280 for hybrid-HMC; paired 95 % coverage −0.004 ± 0.011 on the dashboard problem,
#: ``benchmarks/README.md``). An explicit sampler or option (keyword, URL) wins.
HYBRID_DEFAULT_SAMPLER = "pc"
HYBRID_DEFAULT_SAMPLER_OPTIONS: dict[str, Any] = {"num_corrector_steps": 0}
DEFAULT_SAMPLER_BY_PRIOR = {GAUSSIAN_PRIOR: DEFAULT_SAMPLER, HYBRID_PRIOR: HYBRID_DEFAULT_SAMPLER}
DEFAULT_SAMPLER_OPTIONS_BY_PRIOR: dict[str, dict[str, Any]] = {HYBRID_PRIOR: HYBRID_DEFAULT_SAMPLER_OPTIONS}

#: The COSMOS maps binned to 0.87′ pixels (3 × the 0.29′ catalogue binning).
COSMOS_NPIX = 120
COSMOS_PIXEL_ARCMIN = 0.87
#: Largest integer a browser number holds exactly (2⁵³ − 1): the seed widget's upper bound.
MAX_BROWSER_INT = 2**53 - 1
#: Longest URL query value accepted (a seed of thousands of digits is refused before parsing).
MAX_QUERY_VALUE_LENGTH = 64
#: Settings that only change the page, not the run.
DISPLAY_ONLY = ("teaching", "name")


def per_pixel_noise_std(sigma_e: float, n_gal_arcmin2: float, pixel_size_arcmin: float) -> float:
    """Shape-noise standard deviation per pixel and shear component, σ_e / sqrt(n_gal θ_pix²)."""
    for name, value in (("sigma_e", sigma_e), ("n_gal_arcmin2", n_gal_arcmin2), ("pixel_size_arcmin", pixel_size_arcmin)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(sigma_e) / math.sqrt(float(n_gal_arcmin2) * float(pixel_size_arcmin) ** 2)


def _labelled(choices: tuple, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {}
    return {labels.get(c, str(c)): c for c in choices}


def param_from_option(opt: core_options.Option, labels: Mapping[str, str] | None = None, **overrides: Any) -> param.Parameter:
    """A ``param`` Parameter with the :class:`core.options.Option`'s type, default, bounds and help."""
    kwargs: dict[str, Any] = {"default": opt.default, "doc": opt.help[:1].upper() + opt.help[1:] + "."}
    kwargs.update(overrides)
    if opt.kind == "choice":
        return param.Selector(objects=_labelled(tuple(opt.choices), labels), **kwargs)
    if opt.kind is bool:
        return param.Boolean(**kwargs)
    kwargs.setdefault("bounds", (opt.minimum, opt.maximum))
    cls = param.Integer if opt.kind is int else param.Number
    return cls(allow_None=kwargs["default"] is None, **kwargs)


class DashboardSettings(param.Parameterized):
    """Every choice of one dashboard run; defaults are the demo that converges in about a minute on a CPU."""

    # ----------------------------------------------------------------- data
    data_source = param.Selector(
        default=SIMULATED_LOGNORMAL, objects=_labelled(DATA_SOURCES, _DATA_LABELS),
        doc="Where the shear comes from: a simulated truth (lognormal, Gaussian, or a halo model with clusters) "
            "drawn for the theory spectrum, the real HST COSMOS field, or an uploaded FITS file of γ₁, γ₂ maps.")
    npix = param_from_option(core_option("npix"), step=2,
                             doc="Map side in pixels for simulated data (even). COSMOS uses 120 px; uploads keep "
                                 "their own size.")
    pixel_size_arcmin = param.Number(
        default=0.87, bounds=(0.05, 10.0), step=0.01,
        doc="Pixel side in arcminutes for simulated and uploaded data.")
    source_redshift = param.Number(
        default=1.0, bounds=(0.2, 3.0), step=0.05,
        doc="Redshift of the single source plane used for the theory convergence spectrum C_ℓ.")

    # ----------------------------------------------------------------- mask
    mask = param.Selector(
        default="stars", objects=_labelled(MASK_CHOICES, _MASK_LABELS),
        doc="Which pixels carry shear: all, a preset (random holes, stripes, the COSMOS footprint), "
            "an uploaded FITS/PNG mask, or the rectangles/polygons drawn on the shear view.")

    # ---------------------------------------------------------------- noise
    noise_model = param.Selector(
        default=GALAXY_DENSITY, objects=_labelled(NOISE_CHOICES, _NOISE_LABELS),
        doc="Shape noise from σ_e and the galaxy density, or the data's own per-pixel std maps "
            "(COSMOS or uploaded).")
    sigma_e = param.Number(
        default=0.26, bounds=(0.01, 1.0), step=0.01,
        doc="Intrinsic ellipticity dispersion per shear component.")
    n_gal_arcmin2 = param.Number(
        default=30.0, bounds=(0.5, 500.0), step=0.5,
        doc="Effective galaxy density in galaxies per square arcminute.")

    # ---------------------------------------------------------------- prior
    prior = param_from_option(core_option("prior"), _PRIOR_LABELS)

    # ------------------------------------------------------------- schedule
    schedule = param_from_option(core_option("schedule"))
    sigma_max = param_from_option(core_option("sigma_max"), step=0.01)
    sigma_min = param_from_option(core_option("sigma_min"), step=1e-4)
    num_levels = param_from_option(core_option("num_levels"))
    steps_per_level = param_from_option(core_option("steps_per_level"))

    # -------------------------------------------------------------- sampler (its own options are added below)
    sampler = param_from_option(core_option("sampler"))
    num_chains = param_from_option(core_option("num_chains"))
    init = param_from_option(core_option("init"))
    final_denoise = param_from_option(core_option("final_denoise"))
    seed = param_from_option(core_option("seed"), bounds=(0, min(core_option("seed").maximum, MAX_BROWSER_INT)))
    chunk_seconds = param_from_option(core_option("chunk_seconds"), default=0.5,
                                      doc="Seconds of compute per chunk: the views refresh after each chunk and "
                                          "Stop, Pause and Step act between chunks.")

    # ------------------------------------------------------------- teaching
    teaching = param.Boolean(
        default=True, doc="Show the short explanation beside each stage (likelihood, prior, score, annealing).")

    def __init__(self, **params: Any) -> None:
        explicit = set(params)
        super().__init__(**params)
        if "sampler" not in explicit:
            self._apply_prior_defaults(keep=explicit)

    @param.depends("prior", watch=True)
    def _default_sampler_for_prior(self) -> None:
        self._apply_prior_defaults()

    def _apply_prior_defaults(self, keep: set[str] | frozenset[str] = frozenset()) -> None:
        """The prior's default sampler and the options set with it (the settings named in ``keep`` stay)."""
        updates: dict[str, Any] = {"sampler": DEFAULT_SAMPLER_BY_PRIOR.get(self.prior, self.sampler)}
        updates.update(DEFAULT_SAMPLER_OPTIONS_BY_PRIOR.get(self.prior, {}))
        self.param.update(**{k: v for k, v in updates.items() if k not in keep})

    # ------------------------------------------------------------ derived
    @property
    def total_steps(self) -> int:
        """Transitions per chain of the whole run, ``num_levels · steps_per_level``."""
        return int(self.num_levels) * int(self.steps_per_level)

    @property
    def effective_npix(self) -> int | None:
        """Map side of the run: 120 for COSMOS, ``npix`` for simulations, unknown (None) for uploads."""
        if self.data_source == COSMOS:
            return COSMOS_NPIX
        if self.data_source == UPLOADED:
            return None
        return int(self.npix)

    @property
    def effective_pixel_arcmin(self) -> float:
        return COSMOS_PIXEL_ARCMIN if self.data_source == COSMOS else float(self.pixel_size_arcmin)

    @property
    def is_simulated(self) -> bool:
        return self.data_source in SIMULATED_SOURCES

    def noise_std(self) -> float:
        """Per-pixel shear noise std from σ_e and n_gal at this run's pixel size."""
        return per_pixel_noise_std(self.sigma_e, self.n_gal_arcmin2, self.effective_pixel_arcmin)

    def sampler_options(self) -> dict[str, Any]:
        """The chosen sampler's own options (registry names), validated by its spec; unset ones keep its defaults."""
        spec = core_options.sampler_spec(self.sampler)
        values = {}
        for opt in spec.options:
            if opt.name not in SAMPLER_OPTION_NAMES:
                continue
            value = getattr(self, opt.name)
            if value != self.param[opt.name].default or value == opt.default:
                values[opt.name] = value
        return spec.validate(values)

    def shown_sampler_options(self) -> list[str]:
        """Names of the settings that belong to the chosen sampler (the page shows only these)."""
        names = [o.name for o in core_options.sampler_spec(self.sampler).options]
        return [n for n in names if n in SAMPLER_OPTION_NAMES]

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Impossible combinations: ``(names of the settings involved, message)`` for each."""
        out: list[tuple[tuple[str, ...], str]] = []
        if self.npix % 2:
            out.append((("npix",), f"npix must be even, got {self.npix}"))
        if not self.sigma_min < self.sigma_max:
            out.append((("sigma_min", "sigma_max"),
                        f"sigma_min ({self.sigma_min:g}) must be smaller than sigma_max ({self.sigma_max:g})"))
        if self.schedule != "geometric" and self.num_levels < 2 and self.sigma_min != self.sigma_max:
            out.append((("num_levels",), "num_levels must be at least 2 to go from sigma_max to sigma_min"))
        if self.noise_model == STD_MAPS and self.is_simulated:
            out.append((("noise_model", "data_source"), "noise_model 'std_maps' needs COSMOS or uploaded data; "
                        "simulated data use 'galaxy_density'"))
        if self.total_steps > core_options.MAX_TRANSITIONS:
            out.append((("num_levels", "steps_per_level"),
                        f"num_levels × steps_per_level = {self.total_steps} transitions; at most "
                        f"{core_options.MAX_TRANSITIONS}"))
        return out

    def validate(self) -> None:
        """Raise ``ValueError`` naming the parameter when the combination of settings is impossible."""
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(message for _, message in problems))

    def make_schedule(self) -> Any:
        """The :mod:`core.inference.schedules` object of these settings (``.sigmas``, ``.steps_per_level``)."""
        from core.inference.schedules import from_name  # numpy-only module; imported lazily to keep settings light

        self.validate()
        return from_name(self.schedule, sigma_max=float(self.sigma_max), sigma_min=float(self.sigma_min),
                         num_levels=int(self.num_levels), steps_per_level=int(self.steps_per_level))

    # ------------------------------------------------------------ (de)serialise
    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (for provenance headers and URL query strings)."""
        return {name: getattr(self, name) for name in self.param if name != "name"}

    def run_key(self) -> tuple:
        """The settings that change the run (not the display only ones), as a hashable key."""
        return tuple(sorted((k, v) for k, v in self.as_dict().items() if k not in DISPLAY_ONLY))

    def parse_value(self, key: str, raw: Any) -> Any:
        """One URL/string value of setting ``key`` parsed and checked; ``ValueError`` naming the key and value."""
        if key not in self.param or key == "name":
            raise ValueError(f"unknown setting {key!r}")
        value = raw[0] if isinstance(raw, (list, tuple)) and len(raw) == 1 else raw
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and len(value) > MAX_QUERY_VALUE_LENGTH:
            raise ValueError(f"setting {key!r}: value of {len(value)} characters is too long "
                             f"(at most {MAX_QUERY_VALUE_LENGTH})")
        parameter = self.param[key]
        shown = value if not isinstance(value, str) or len(value) <= 20 else value[:20] + "…"
        try:
            if isinstance(parameter, param.Boolean):
                if isinstance(value, str):
                    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("1", "true", "yes")
            elif isinstance(parameter, param.Integer):
                value = int(value)
            elif isinstance(parameter, param.Number):
                if isinstance(value, str) and value.strip().lower() in ("none", "") and parameter.allow_None:
                    value = None
                else:
                    value = float(value)
                    if not math.isfinite(value):
                        raise ValueError(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"setting {key!r}: cannot parse {shown!r}") from None
        if isinstance(parameter, param.Selector) and value not in parameter.objects:
            raise ValueError(f"setting {key!r}: {shown!r} is not one of {list(parameter.objects)}")
        try:
            type(self)(**{key: value})  # bounds and choices checked on a throw-away copy
        except ValueError as err:
            bounds = getattr(parameter, "bounds", None)
            where = f" in [{bounds[0]:g}, {bounds[1]:g}]" if bounds and None not in bounds else ""
            raise ValueError(f"setting {key!r}: {shown!r} is out of range{where}") from err
        return value

    def update_from_mapping(self, values: Mapping[str, Any]) -> list[str]:
        """Apply settings from strings or values (e.g. a URL query) one by one; returns one message per bad one.

        Each key is parsed and checked on its own (unknown keys, unparsable or out-of-range values are skipped
        and named); then combinations are checked and the given settings involved in an impossible combination
        are put back to their previous values (and named). Every valid setting is kept.
        """
        problems: list[str] = []
        parsed: dict[str, Any] = {}
        for key, raw in values.items():
            try:
                parsed[key] = self.parse_value(key, raw)
            except ValueError as err:
                problems.append(str(err))
        previous = {k: getattr(self, k) for k in parsed}
        ordered = sorted(parsed, key=lambda k: k != "prior")  # the prior first: it picks a default sampler
        for key in ordered:
            setattr(self, key, parsed[key])
        for _ in range(len(parsed) + 1):
            bad = [(names, msg) for names, msg in self.problems() if any(n in parsed for n in names)]
            if not bad:
                break
            names, message = bad[0]
            reverted = [n for n in names if n in parsed]
            self.param.update(**{n: previous[n] for n in reverted})
            for n in reverted:
                parsed.pop(n)
            problems.append(f"settings {', '.join(repr(n) for n in reverted)} ignored: {message}")
        return problems


def _add_sampler_options() -> tuple[str, ...]:
    """One setting per sampler option of the registry (first spec wins on shared names)."""
    added: list[str] = []
    for name in SAMPLER_CHOICES:
        for opt in core_options.sampler_spec(name).options:
            if opt.name in DashboardSettings.param or opt.name in added:
                continue
            DashboardSettings.param.add_parameter(opt.name, param_from_option(opt))
            added.append(opt.name)
    return tuple(added)


#: The sampler options generated from the registry (shown only for the sampler that takes them).
SAMPLER_OPTION_NAMES = _add_sampler_options()
