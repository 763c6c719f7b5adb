"""The lab's settings: one ``param`` model, synced with the URL, validated key by key.

:class:`LabSettings` holds every setting of the lab (the run, the schedule, the player and the page). The URL
query carries all of them (``?target=ring&sampler=mala&step_size=0.3…``): :func:`validate_query` checks each key
on its own — an unknown key or a bad value is reported by name and skipped, the other keys still apply — and
``pn.state.location.sync`` then keeps the URL equal to the settings as they change.
"""
from __future__ import annotations

from typing import Any, Mapping

import param

from core.lab.sampling import lab_sampler_names
from core.lab.targets import TARGET_TITLES, target_names
from core.options import SCHEDULES

__all__ = ["LabSettings", "validate_query", "URL_KEYS", "RESTART_KEYS", "LIVE_KEYS"]


class LabSettings(param.Parameterized):
    """Everything a lecturer can put in a link."""

    target = param.Selector(default="bimodal", objects=list(target_names()), doc="the 2-D target")
    sampler = param.Selector(default="hmc", objects=list(lab_sampler_names()), doc="kappascope's sampler")
    step_size = param.Number(default=0.5, bounds=(0.01, 10.0), doc="step size ε₀ in units of the smoothed target's width")
    leapfrog_steps = param.Integer(default=5, bounds=(1, 50), doc="leapfrog steps per HMC transition")
    num_chains = param.Integer(default=500, bounds=(10, 2000), doc="number of chains (points)")
    schedule = param.Selector(default="geometric", objects=list(SCHEDULES), doc="spacing of the σ levels")
    sigma_max = param.Number(default=3.0, bounds=(0.01, 20.0), doc="first (largest) σ")
    sigma_min = param.Number(default=0.02, bounds=(0.001, 5.0), doc="last (smallest) σ")
    num_levels = param.Integer(default=25, bounds=(1, 500), doc="number of σ levels")
    steps_per_level = param.Integer(default=6, bounds=(1, 200), doc="transitions per level")
    speed = param.Integer(default=2, bounds=(1, 50), doc="transitions per frame while playing")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 2), doc="seed of the run")
    highlight = param.Integer(default=0, bounds=(0, 1999), doc="the chain whose trajectory is drawn")
    show_field = param.Boolean(default=True, doc="draw the score field as arrows")
    teaching = param.Boolean(default=True, doc="show the teaching texts")

    @param.depends("target", watch=False)
    def target_title(self) -> str:
        return TARGET_TITLES.get(self.target, self.target)

    def check(self) -> None:
        """Cross-setting checks (each setting is already checked by ``param``)."""
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min:g}) must be below sigma_max ({self.sigma_max:g})")
        if self.highlight >= self.num_chains:
            raise ValueError(f"highlight ({self.highlight}) must be below num_chains ({self.num_chains})")


#: Settings carried by the URL (all of them).
URL_KEYS: tuple[str, ...] = tuple(p for p in LabSettings.param if p != "name")
#: Changing one of these starts a new run.
RESTART_KEYS = ("target", "sampler", "leapfrog_steps", "num_chains", "schedule", "sigma_max", "sigma_min",
                "num_levels", "steps_per_level", "seed", "highlight")
#: These act on the running chains.
LIVE_KEYS = ("step_size", "speed", "show_field", "teaching")


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, list):  # tornado session args are lists of bytes
        value = _decode(value[-1]) if value else ""
    return value


def validate_query(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check each query key on its own: ``(good values by name, messages naming each bad key)``.

    A value is accepted if ``param`` deserialises it and the parameter accepts it (type, bounds, choices);
    ``sigma_min < sigma_max`` and ``highlight < num_chains`` are then checked on the combination.
    """
    good: dict[str, Any] = {}
    errors: list[str] = []
    probe = LabSettings()
    for key, raw in query.items():
        if key in ("bokeh-autoload-element", "bokeh-app-path", "bokeh-absolute-url"):
            continue
        text = _decode(raw)
        if key not in URL_KEYS:
            errors.append(f"unknown setting '{key}' (known: {', '.join(URL_KEYS)})")
            continue
        parameter = probe.param[key]
        try:
            if isinstance(parameter, param.Boolean):
                lowered = str(text).strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError("not true/false")
                value: Any = lowered in ("true", "1", "yes")
            elif isinstance(parameter, param.Integer):
                value = int(str(text).strip())
            elif isinstance(parameter, param.Number):
                value = float(str(text).strip())
            else:
                value = str(text)
            setattr(probe, key, value)
        except Exception as err:  # noqa: BLE001 - param raises ValueError, int() ValueError, …
            errors.append(f"bad value for '{key}': {text!r} ({_short(err)})")
            continue
        good[key] = value
    try:
        probe.check()
    except ValueError as err:
        for key in ("sigma_min", "sigma_max", "highlight", "num_chains"):
            if key in str(err):
                good.pop(key, None)  # the defaults of the keys named in the message apply instead
        errors.append(f"bad combination: {err}")
    return good, errors


def _short(err: Exception) -> str:
    text = str(err).split("\n")[0]
    return text if len(text) < 160 else text[:157] + "…"
