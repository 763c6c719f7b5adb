"""The TensorFlow-free vocabulary (core.options) and the sampler registry: coercion, bounds, messages, aliases."""
import subprocess
import sys

import pytest

from core import options
from core.options import Option
from core.inference.samplers.registry import ALIASES, REGISTRY, SamplerSpec


def test_option_coerces_and_checks_bounds_inclusively():
    opt = Option("num_levels", int, 60, "levels", minimum=1, maximum=2000)
    assert opt.validate("7") == 7 and opt.validate(7.0) == 7 and opt.validate(1) == 1 and opt.validate(2000) == 2000
    for bad in (0, 2001, 7.5, "abc", True, None, "1e3"):
        with pytest.raises(ValueError, match=r"num_levels must be an integer in \[1, 2000\], got"):
            opt.validate(bad)
    real = Option("sigma_max", float, 0.5, "σ_max", minimum=1e-5, maximum=10.0)
    assert real.validate("0.25") == 0.25 and real.validate(10) == 10.0
    for bad in (float("nan"), float("inf"), 0.0, 11.0, "x", False):
        with pytest.raises(ValueError, match="sigma_max must be a finite number in"):
            real.validate(bad)


def test_choice_bool_and_none_default_options():
    choice = Option("predictor", "choice", "auto", "p", choices=options.PREDICTORS)
    assert choice.validate("none") == "none"
    with pytest.raises(ValueError, match=r"predictor must be one of \('auto', 'reverse_diffusion', 'none'\), got None"):
        choice.validate(None)
    flag = Option("adapt_step_size", bool, True, "adapt")
    assert flag.validate("false") is False and flag.validate(True) is True
    with pytest.raises(ValueError, match="adapt_step_size must be true or false, got 2"):
        flag.validate(2)
    optional = Option("step_size", float, None, "ε₀", minimum=1e-8)
    assert optional.validate(None) is None and optional.validate(0.1) == 0.1
    with pytest.raises(ValueError, match="step_size"):
        optional.validate(-1.0)
    assert optional.flag == "--step-size"


def test_bad_option_definitions_are_refused():
    with pytest.raises(ValueError, match="kind"):
        Option("x", list, [], "bad kind")
    with pytest.raises(ValueError, match="needs choices"):
        Option("x", "choice", "a", "no choices")
    with pytest.raises(ValueError, match="x must be an integer"):
        Option("x", int, 0, "default out of bounds", minimum=1)


def test_vocabularies_have_one_spelling_of_none():
    for vocabulary in (options.PREDICTORS, options.DENOISERS):
        assert "none" in vocabulary and None not in vocabulary
    assert options.none_to_python("none") is None and options.none_to_python("ode") == "ode"
    assert options.DEFAULTS["sampler"] == options.DEFAULT_SAMPLER in options.sampler_names()
    assert set(options.DEFAULTS) == {o.name for o in options.SCHEDULE_OPTIONS + options.RUN_OPTIONS} | {"sampler"}
    assert options.option("sampler").choices == options.sampler_names()
    with pytest.raises(ValueError, match="unknown option"):
        options.option("no_such_option")


def test_sampler_names_come_from_the_registry_and_aliases_are_not_offered():
    assert options.sampler_names() == tuple(REGISTRY)
    assert {"hmc", "mala", "ula"} <= set(REGISTRY)
    assert not set(ALIASES) & set(REGISTRY)
    assert options.resolve_sampler_name("langevin") == "ula"
    assert options.sampler_spec("langevin") is REGISTRY["ula"]
    with pytest.raises(ValueError, match="sampler must be one of"):
        options.sampler_spec("hmc_uncalibrated")


def test_sampler_spec_validates_its_options():
    spec = REGISTRY["hmc"]
    resolved = spec.validate({"num_leapfrog_steps": "5"})
    assert resolved["num_leapfrog_steps"] == 5 and resolved["mass"] == "auto" and set(resolved) == set(spec.defaults)
    with pytest.raises(ValueError, match=r"sampler 'hmc' does not take option\(s\) \['leapfrog'\]"):
        spec.validate({"leapfrog": 3})
    with pytest.raises(ValueError, match="mass must be one of"):
        spec.validate({"mass": "diagonal"})
    with pytest.raises(ValueError, match="target"):
        SamplerSpec("x", "no_colon", "bad target")
    with pytest.raises(ValueError, match="repeated option names"):
        SamplerSpec("x", "m:C", "dup", (spec.options[0], spec.options[0]))


def test_every_registered_target_is_a_posterior_sampler_named_by_its_key():
    from core.inference.samplers.base import PosteriorSampler

    for name, spec in REGISTRY.items():
        cls = spec.load()
        assert issubclass(cls, PosteriorSampler) and cls.name == name, name
        assert spec.summary and len(spec.summary.splitlines()) == 1


def test_vocabulary_and_registry_import_without_tensorflow():
    code = ("import sys, core.options, core.inference.samplers, core.inference.samplers.registry as r; "
            "core.options.sampler_names(); core.options.option('sampler'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_probability', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_messages_stay_short_and_choices_need_exact_types():
    import numpy as np

    seed = options.option("seed")
    with pytest.raises(ValueError) as err:
        seed.validate("9" * 5000)  # a seed of thousands of digits (issue 14)
    assert len(str(err.value)) < 150 and f"[0, {options.MAX_SEED}]" in str(err.value)
    init = options.option("init")
    for bad in (np.zeros(3), 1, None):
        with pytest.raises(ValueError, match="init must be one of"):
            init.validate(bad)
