r"""Diagnostics of an annealed posterior run that mean something, each with a one-line explanation.

Within-level R̂ is not a convergence test of annealed sampling: the chains are meant to move with σ, and a good run
can show R̂ ≫ 1.1 (``shared/notes/samplers.md``). What can be checked from the final samples ``κ_c`` (``C`` chains,
one independent posterior sample each) instead:

* **Power of the samples vs the prior** — ``r_b = mean_c P̂_b(κ_c) / P_b`` per ℓ bin ``b`` (:func:`power_ratio`),
  reported as the median over bins with enough modes. Averaged over data sets a calibrated posterior's samples are
  prior samples (``∫ p(κ|γ) p(γ) dγ = p(κ)``), so ``r ≈ 1``; ``r ≪ 1`` means over-smoothed samples (too little
  annealing), ``r ≫ 1`` noisy, unconverged ones.
* **Spread of independent samples** — ``s̄/σ_prior``, the mean over observed pixels of the per-pixel standard
  deviation across chains (``ddof = 1``) over the prior pixel standard deviation ``σ_prior = √(mean_k P_k)``
  (Parseval, power-map units). It lies in ``(0, 1]``: near 0 the chains collapsed onto one map, near 1 the data
  constrain little; above ≈ 1.2 the chains are wilder than the prior itself.
* **Agreement of two half-runs** — the chains split in two halves ``A, B``; per observed pixel
  ``z = (m_A − m_B) / (s √(1/n_A + 1/n_B))`` with ``s`` the standard deviation over all chains. For independent
  samples of one distribution ``z`` is Student-like with ``E z² ≈ (C−1)/(C−3)``, so the RMS of ``z`` is ≈ 1;
  RMS ≫ 1 means the halves sit in different places (stuck or multimodal chains).

:func:`degenerate_run` recognises a run whose "samples" are its initial state: Metropolis acceptance ≈ 0 over the run,
or traced pixel values that never changed.

The thresholds flagging a value ("check") are stated with each diagnostic; they are loose by design (a single data set
has cosmic variance) and only meant to catch a broken run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "Diagnostic",
    "RunDiagnostics",
    "power_ratio",
    "sample_spread",
    "half_split_agreement",
    "run_diagnostics",
    "degenerate_run",
    "MIN_ACCEPTANCE",
]

#: mean acceptance below which a Metropolis run is degenerate (the chains kept their initial state)
MIN_ACCEPTANCE = 0.01
#: bins with fewer Fourier modes than this are left out of the power-ratio median (too noisy)
MIN_MODES_PER_BIN = 8


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic: its value, the range where it is fine, and what it means."""

    name: str
    value: float
    low: float
    high: float
    explanation: str

    @property
    def available(self) -> bool:
        return not np.isnan(self.value)

    @property
    def ok(self) -> bool:
        """In range (or not available: nothing to flag)."""
        return bool(not self.available or (np.isfinite(self.value) and self.low <= self.value <= self.high))

    def line(self) -> str:
        if not self.available:
            return f"{self.name} = n/a — {self.explanation}"
        verdict = "ok" if self.ok else "check"
        return f"{self.name} = {self.value:.3g} [{verdict}: fine in {self.low:g}..{self.high:g}] — {self.explanation}"


@dataclass(frozen=True)
class RunDiagnostics:
    """The three diagnostics of the module docstring, plus the per-bin power ratio."""

    power: Diagnostic
    spread: Diagnostic
    halves: Diagnostic
    ell: np.ndarray
    ratio_per_bin: np.ndarray

    def lines(self) -> list[str]:
        return [d.line() for d in (self.power, self.spread, self.halves)]

    def as_dict(self) -> dict[str, Any]:
        return {d.name: {"value": float(d.value) if d.available else None, "ok": d.ok, "range": [d.low, d.high],
                         "meaning": d.explanation}
                for d in (self.power, self.spread, self.halves)}


def _samples(samples: Any) -> np.ndarray:
    x = np.asarray(samples.numpy() if hasattr(samples, "numpy") else samples, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"samples must be a (C, N, N) array of chains, got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"diagnostics need at least 2 chains, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contain NaN or infinite values")
    return x


def _observed(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask) > 0
    if m.shape != shape:
        raise ValueError(f"mask has shape {m.shape}; expected {shape}")
    if not m.any():
        raise ValueError("mask has no observed pixel")
    return m


def power_ratio(samples: Any, power_map: Any, geometry: Any, num_bins: int = 12) -> tuple[np.ndarray, np.ndarray, float]:
    """``(ℓ centres, r_b per bin, median r over bins with ≥ MIN_MODES_PER_BIN modes)`` of the module docstring."""
    from core.physics.power_spectrum import bin_power_map, binned_power_spectrum

    x = _samples(samples)
    ell, power, counts = binned_power_spectrum(x, geometry, num_bins=num_bins)
    _, theory, _ = bin_power_map(np.asarray(power_map, dtype=np.float64), geometry, num_bins=num_bins)
    filled = counts > 0
    ratio = np.full(theory.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio[filled] = power.mean(axis=0)[filled] / theory[filled]
    usable = (counts >= MIN_MODES_PER_BIN) & np.isfinite(ratio) & (theory > 0)
    median = float(np.median(ratio[usable])) if usable.any() else float("nan")
    return ell, ratio, median


def sample_spread(samples: Any, power_map: Any, mask: Any = None) -> float:
    """Mean over observed pixels of the chains' per-pixel std (``ddof = 1``) over the prior pixel std."""
    x = _samples(samples)
    observed = _observed(mask, x.shape[1:])
    prior_std = float(np.sqrt(np.mean(np.asarray(power_map, dtype=np.float64))))
    if not prior_std > 0:
        raise ValueError("power_map must have a positive mean")
    return float(np.mean(x.std(axis=0, ddof=1)[observed]) / prior_std)


def half_split_agreement(samples: Any, mask: Any = None) -> float:
    """RMS over observed pixels of ``z = (m_A − m_B)/(s √(1/n_A + 1/n_B))`` (chains split in two halves)."""
    x = _samples(samples)
    observed = _observed(mask, x.shape[1:])
    n = x.shape[0]
    a, b = x[: n // 2], x[n // 2:]
    s = x.std(axis=0, ddof=1)
    scale = s * np.sqrt(1.0 / len(a) + 1.0 / len(b))
    keep = observed & (scale > 0)
    if not keep.any():
        return float("inf")  # every chain identical: the halves cannot be compared (and the spread is 0)
    z = (a.mean(axis=0) - b.mean(axis=0))[keep] / scale[keep]
    return float(np.sqrt(np.mean(z**2)))


def run_diagnostics(samples: Any, power_map: Any, geometry: Any, mask: Any = None) -> RunDiagnostics:
    """All diagnostics of the final samples ``(C, N, N)`` against the prior ``power_map`` (see the module docstring)."""
    x = _samples(samples)
    ell, ratio, median = power_ratio(x, power_map, geometry)
    spread = sample_spread(x, power_map, mask)
    n = x.shape[0]
    # with 2 or 3 chains z is ±1 by construction (2) or has no finite variance (3): nothing to learn
    halves = half_split_agreement(x, mask) if n >= 4 else float("nan")
    expected_rms = float(np.sqrt((n - 1) / (n - 3))) if n > 3 else float("nan")
    return RunDiagnostics(
        power=Diagnostic("sample power / prior power", median, 0.5, 2.0,
                         "median over ℓ bins; posterior samples should carry the prior's power (≈1), "
                         "≪1 over-smoothed, ≫1 noisy"),
        spread=Diagnostic("sample spread / prior std", spread, 0.01, 1.2,
                          "per-pixel std across chains over the prior std: ≈0 collapsed chains, ≈1 data "
                          "uninformative, >1.2 chains wilder than the prior"),
        halves=Diagnostic("half-run disagreement (RMS z)", halves, 0.0, 2.0 * expected_rms if n > 3 else 2.0,
                          "chains split in two: RMS of the standardised difference of the two halves' means, ≈1 "
                          + (f"(≈{expected_rms:.2f} for {n} chains) when they agree, ≫1 when they sit in different "
                             "places" if n > 3 else "when they agree (needs at least 4 chains)")),
        ell=ell,
        ratio_per_bin=ratio,
    )


def degenerate_run(traces: Mapping[str, Any] | None, acceptances: Sequence[float] | None = None,
                   adjusted: bool | None = None) -> str | None:
    """Why a run is degenerate (its samples are its initial state), or ``None`` when it is not.

    ``traces`` holds the per-transition ``"acceptance"`` and the ``"kappa[r,c]"`` pixel traces ``(T, C)`` of a
    :class:`core.inference.driver.Snapshot`; ``acceptances`` the per-chunk means (a fallback). ``adjusted=False``
    (an unadjusted sampler: acceptance is 1 by construction) skips the acceptance test.
    """
    traces = dict(traces or {})
    acc = traces.get("acceptance")
    acc = np.asarray(acc if acc is not None and len(acc) else (acceptances or []), dtype=np.float64)
    if adjusted is not False and acc.size and np.all(np.isfinite(acc)) and float(np.mean(acc)) < MIN_ACCEPTANCE:
        return (f"the Metropolis acceptance stayed ≈ 0 (mean {float(np.mean(acc)):.3g} over {acc.size} "
                "transitions), so the chains kept their initial state; lower --step-size or check the data scale")
    pixels = [np.asarray(v, dtype=np.float64) for k, v in traces.items() if k.startswith("kappa[")]
    if pixels and all(p.ndim == 2 and p.shape[0] > 1 for p in pixels):
        if all(np.all(np.ptp(p, axis=0) == 0) for p in pixels):
            return "the traced chain values never changed over the run (the chains never moved)"
    return None
