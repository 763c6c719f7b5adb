r"""Noise-level (σ) schedules for annealed score-based sampling.

An annealed sampler visits the σ-smoothed posteriors
``p_σ(κ | γ) ∝ p_σ(κ) · L_σ(γ | κ)`` (prior convolved with ``N(0, σ²I)``, likelihood tempered to
per-pixel variance ``σ_n² + σ²``) for a finite, **non-increasing** sequence of levels
``σ_0 ≥ σ_1 ≥ … ≥ σ_{L-1} > 0``, spending ``n_l ≥ 1`` transitions at level ``l``.
The total number of transitions is ``Σ_l n_l``.

Schedules implemented (``t_l = l / (L − 1)``, ``t = 0`` for ``L = 1``):

* :class:`GeometricSchedule`  ``σ_l = σ_max (σ_min/σ_max)^{t_l}``   (constant ratio, the usual choice),
* :class:`LinearSchedule`     ``σ_l = σ_max + (σ_min − σ_max) t_l``,
* :class:`CosineSchedule`     ``σ_l = interp(c_l)`` with the cosine ease ``c_l = (1 − cos(π t_l)) / 2``,
  interpolating ``log σ`` (``space="log"``, default) or ``σ`` (``space="linear"``); it dwells longer
  near both ends of the range than the geometric schedule,
* :class:`ListSchedule`       explicit levels.

All schedules are small frozen objects; ``.sigmas`` is a float32 numpy array, ``.steps_per_level`` an
int (same for every level) or an int array (one per level).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "Schedule",
    "GeometricSchedule",
    "LinearSchedule",
    "CosineSchedule",
    "ListSchedule",
    "from_name",
    "SCHEDULE_KINDS",
]


def _check_positive_finite(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from err
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _check_steps(steps: Any, num_levels: int) -> int | np.ndarray:
    """Validate ``steps_per_level``: an int ≥ 1 or a length-``num_levels`` int sequence of values ≥ 1."""
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, (bool, np.bool_)):
        return _check_int(steps, "steps_per_level")
    arr = np.asarray(steps)
    if arr.ndim != 1 or arr.shape[0] != num_levels:
        raise ValueError(
            f"steps_per_level must be an int or a sequence with one entry per level ({num_levels}), got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"steps_per_level must contain integers, got dtype {arr.dtype}")
    if np.any(arr < 1):
        raise ValueError(f"steps_per_level must be ≥ 1 at every level, got minimum {int(arr.min())}")
    out = arr.astype(np.int64)
    out.setflags(write=False)
    return out


def _check_sigmas(sigmas: np.ndarray) -> np.ndarray:
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if sigmas.ndim != 1 or sigmas.size < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {sigmas.shape}")
    if not np.all(np.isfinite(sigmas)):
        raise ValueError("sigmas must be finite")
    if np.any(sigmas <= 0):
        raise ValueError(f"sigmas must be positive (sigma_min > 0), got minimum {float(sigmas.min())!r}")
    if np.any(np.diff(sigmas) > 0):
        i = int(np.argmax(np.diff(sigmas) > 0))
        raise ValueError(
            f"sigmas must be non-increasing; level {i + 1} has sigma={float(sigmas[i + 1])!r} > "
            f"sigma={float(sigmas[i])!r} at level {i}"
        )
    return sigmas


class Schedule:
    """Base class: a non-increasing sequence of noise levels and the transitions spent at each.

    Instances are immutable; subclasses set their attributes in ``__init__`` through ``_set``.
    """

    steps_per_level: int | np.ndarray

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _levels(self) -> np.ndarray:  # float64 levels, provided by subclasses
        raise NotImplementedError

    @property
    def sigmas(self) -> np.ndarray:
        """The σ levels, float32, shape ``(num_levels,)``, non-increasing."""
        out = self._levels().astype(np.float32)
        out.setflags(write=False)
        return out

    @property
    def num_levels(self) -> int:
        return int(self._levels().shape[0])

    @property
    def steps_array(self) -> np.ndarray:
        """Transitions per level as an int64 array of shape ``(num_levels,)``."""
        return np.broadcast_to(np.asarray(self.steps_per_level, dtype=np.int64), (self.num_levels,)).copy()

    @property
    def total_steps(self) -> int:
        return int(self.steps_array.sum())

    @property
    def first_sigma(self) -> float:
        """The largest (first) level, as float32 rounding gives it."""
        return float(self.sigmas[0])

    @property
    def last_sigma(self) -> float:
        """The smallest (last) level, as float32 rounding gives it."""
        return float(self.sigmas[-1])

    def level_of_step(self, step: int) -> int:
        """Level (0-based) at which transition number ``step`` (0-based) runs; clipped to the last level."""
        ends = np.cumsum(self.steps_array)
        return int(min(np.searchsorted(ends, step, side="right"), self.num_levels - 1))

    def _steps_repr(self) -> Any:
        return self.steps_per_level if isinstance(self.steps_per_level, int) else [int(n) for n in self.steps_per_level]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


class _RangeSchedule(Schedule):
    """Levels interpolated between ``sigma_max`` and ``sigma_min`` at ``t_l = l/(L−1)``."""

    sigma_max: float
    sigma_min: float

    def __init__(self, sigma_max: float, sigma_min: float, num_levels: int, steps_per_level: int | Sequence[int] = 1) -> None:
        smax = _check_positive_finite(sigma_max, "sigma_max")
        smin = _check_positive_finite(sigma_min, "sigma_min")
        if smin > smax:
            raise ValueError(f"sigma_min ({smin!r}) must not exceed sigma_max ({smax!r}): schedules are non-increasing")
        n = _check_int(num_levels, "num_levels")
        self._set("sigma_max", smax)
        self._set("sigma_min", smin)
        self._set("_num_levels", n)
        self._set("steps_per_level", _check_steps(steps_per_level, n))

    def _t(self) -> np.ndarray:
        n = self._num_levels  # type: ignore[attr-defined]
        return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sigma_max={self.sigma_max!r}, sigma_min={self.sigma_min!r}, "
            f"num_levels={self.num_levels}, steps_per_level={self._steps_repr()})"
        )


class GeometricSchedule(_RangeSchedule):
    """``σ_l = σ_max (σ_min/σ_max)^{l/(L−1)}``: a constant ratio between consecutive levels."""

    def _levels(self) -> np.ndarray:
        return np.exp(np.log(self.sigma_max) + (np.log(self.sigma_min) - np.log(self.sigma_max)) * self._t())


class LinearSchedule(_RangeSchedule):
    """``σ_l = σ_max + (σ_min − σ_max) l/(L−1)``."""

    def _levels(self) -> np.ndarray:
        return np.maximum(self.sigma_max + (self.sigma_min - self.sigma_max) * self._t(), self.sigma_min)


class CosineSchedule(_RangeSchedule):
    """Cosine-eased interpolation between σ_max and σ_min, in ``log σ`` (default) or ``σ``.

    ``c_l = (1 − cos(π l/(L−1)))/2`` and ``σ_l = exp(log σ_max + c_l (log σ_min − log σ_max))``
    (``space="log"``) or ``σ_l = σ_max + c_l (σ_min − σ_max)`` (``space="linear"``).
    """

    space: str

    def __init__(
        self,
        sigma_max: float,
        sigma_min: float,
        num_levels: int,
        steps_per_level: int | Sequence[int] = 1,
        space: str = "log",
    ) -> None:
        super().__init__(sigma_max, sigma_min, num_levels, steps_per_level)
        if space not in ("log", "linear"):
            raise ValueError(f"space must be 'log' or 'linear', got {space!r}")
        self._set("space", space)

    def _levels(self) -> np.ndarray:
        c = 0.5 * (1.0 - np.cos(np.pi * self._t()))
        if self.space == "log":
            return np.exp(np.log(self.sigma_max) + c * (np.log(self.sigma_min) - np.log(self.sigma_max)))
        return np.clip(self.sigma_max + c * (self.sigma_min - self.sigma_max), self.sigma_min, self.sigma_max)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", space={self.space!r})"


class ListSchedule(Schedule):
    """An explicit non-increasing list of positive, finite σ levels."""

    def __init__(self, sigmas: Sequence[float] | np.ndarray, steps_per_level: int | Sequence[int] = 1) -> None:
        levels = _check_sigmas(np.asarray(sigmas, dtype=np.float64))
        levels.setflags(write=False)
        self._set("_sigmas", levels)
        self._set("steps_per_level", _check_steps(steps_per_level, levels.shape[0]))

    @property
    def sigma_max(self) -> float:
        return float(self._sigmas[0])  # type: ignore[attr-defined]

    @property
    def sigma_min(self) -> float:
        return float(self._sigmas[-1])  # type: ignore[attr-defined]

    def _levels(self) -> np.ndarray:
        return self._sigmas  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        levels = [float(s) for s in self._levels()]
        return f"ListSchedule(sigmas={levels}, steps_per_level={self._steps_repr()})"


SCHEDULE_KINDS: dict[str, type[Schedule]] = {
    "geometric": GeometricSchedule,
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "list": ListSchedule,
}


def from_name(kind: str, **kwargs: Any) -> Schedule:
    """Build a schedule by name: ``"geometric"``, ``"linear"``, ``"cosine"`` or ``"list"``.

    ``from_name("geometric", sigma_max=1.0, sigma_min=0.01, num_levels=100, steps_per_level=10)``.
    """
    try:
        cls = SCHEDULE_KINDS[str(kind).lower()]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(SCHEDULE_KINDS)}, got {kind!r}") from None
    try:
        return cls(**kwargs)  # type: ignore[call-arg]
    except TypeError as err:
        raise ValueError(f"bad arguments for a {kind!r} schedule: {err}") from err
