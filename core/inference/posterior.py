r"""The σ-smoothed posterior score: likelihood score + prior score.

At annealing level σ the target is ``p_σ(κ | γ) ∝ L_σ(γ | κ) · p_σ(κ)`` with the prior convolved with
``N(0, σ²I)`` and the likelihood tempered to per-pixel variance ``σ_n² + σ²`` (both exact at σ = 0), so

.. math::  ∇_κ \log p_σ(κ | γ) = ∇_κ \log L_σ(γ | κ) + ∇_κ \log p_σ(κ),

and, when the prior has a normalised (or normalised-up-to-a-κ-independent-constant) log density,
``log p_σ(κ | γ) = log L_σ(γ | κ) + log p_σ(κ) + const``.

The object only composes; it relies on the ``.score(κ, sigma)`` / ``.log_prob(κ, sigma)`` methods of the
likelihood (:class:`core.inference.likelihood.ShearLikelihood`) and of the prior (:class:`core.priors.gaussian.GaussianPrior`
or :class:`core.priors.hybrid.HybridPrior`, whose learned part has a score but no log density).
"""
from __future__ import annotations

from typing import Any, Protocol

import tensorflow as tf

from core.physics.geometry import MapGeometry, as_float_tensor

__all__ = ["PosteriorScore", "ScoreModel"]


class ScoreModel(Protocol):
    """Anything with a σ-conditioned score ``score(κ, sigma) -> tensor shaped like κ``."""

    def score(self, kappa: tf.Tensor, sigma: Any = 0.0) -> tf.Tensor: ...


class PosteriorScore:
    """Posterior score (and log density when available) of a likelihood and a prior at noise level σ.

    Parameters
    ----------
    likelihood:
        Object with ``score(κ, sigma)`` and ``log_prob(κ, sigma)`` (e.g. ``ShearLikelihood``); its
        ``geometry`` attribute, when present, becomes this object's geometry.
    prior:
        Object with ``score(κ, sigma)``; ``log_prob(κ, sigma)`` is optional (a learned score prior has none).
    geometry:
        Map geometry, required only when neither the likelihood nor the prior exposes one.
    """

    def __init__(self, likelihood: Any, prior: Any, geometry: MapGeometry | None = None) -> None:
        for obj, name in ((likelihood, "likelihood"), (prior, "prior")):
            if not callable(getattr(obj, "score", None)):
                raise ValueError(f"{name} must have a callable .score(kappa, sigma) method, got {type(obj).__name__}")
        geometry = geometry or getattr(likelihood, "geometry", None) or getattr(prior, "geometry", None)
        if not isinstance(geometry, MapGeometry):
            raise ValueError("geometry must be given when neither the likelihood nor the prior has a .geometry")
        self.likelihood = likelihood
        self.prior = prior
        self.geometry = geometry

    @property
    def has_log_prob(self) -> bool:
        """True when both terms have a ``log_prob`` (then :meth:`log_prob` is exact up to a constant)."""
        declared = bool(getattr(self.prior, "has_log_prob", True))
        return declared and callable(getattr(self.prior, "log_prob", None)) and callable(getattr(self.likelihood, "log_prob", None))

    @property
    def power_map(self) -> Any:
        """The prior's power map if it has one (a Gaussian or hybrid prior), else ``None``."""
        return getattr(self.prior, "power_map", None)

    def score(self, kappa: tf.Tensor, sigma: Any = 0.0) -> tf.Tensor:
        """``∇ log L_σ + ∇ log p_σ`` at κ ``(..., N, N)``; ``sigma`` scalar or broadcastable to the batch shape."""
        kappa = as_float_tensor(kappa, "kappa")
        return self.likelihood.score(kappa, sigma) + self.prior.score(kappa, sigma)

    __call__ = score

    def log_prob(self, kappa: tf.Tensor, sigma: Any = 0.0) -> tf.Tensor:
        """``log L_σ + log p_σ`` (batch shape), only when :attr:`has_log_prob`."""
        if not self.has_log_prob:
            raise ValueError(
                f"the prior ({type(self.prior).__name__}) has no log_prob; use the score-only (line-integral) acceptance"
            )
        kappa = as_float_tensor(kappa, "kappa")
        return self.likelihood.log_prob(kappa, sigma) + self.prior.log_prob(kappa, sigma)

    def __repr__(self) -> str:
        return f"PosteriorScore(likelihood={type(self.likelihood).__name__}, prior={type(self.prior).__name__}, {self.geometry!r})"
