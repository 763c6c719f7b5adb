r"""Tweedie denoisers and linear-Gaussian observations: the likelihood-guidance terms of DPS and MMPS.

Variance-exploding noise ``x_σ = x + σ z`` on a prior ``p(x)``, with prior score ``s(x_σ, σ) = ∇ log p_σ(x_σ)``:

* **Tweedie mean** (the denoiser) ``D(x_σ) = E[x | x_σ] = x_σ + σ² s(x_σ, σ)``;
* **Tweedie covariance** ``V[x | x_σ] = σ² ∂D/∂x_σ = σ² J_D`` (symmetric for an exact score: ``J_D = I + σ² ∇²log p_σ``).

Observation ``y = A x + n``, ``n ~ N(0, Σ_y)`` with ``Σ_y`` diagonal (one variance per datum) and a 0/1 mask ``M`` of
observed data: the unobserved rows of ``A`` are **dropped** (every data-space vector below is zero there; no large
variance is ever used). The likelihood of the noisy state, ``p(y | x_σ) = ∫ p(y | x) p(x | x_σ) dx``, is intractable
and is approximated by

* **DPS** (Chung et al. 2022):  ``p(y | x_σ) ≈ N(y | A D(x_σ), Σ_y + c I)`` (``c = 0`` in the paper; the DPS
  sampler may inflate it, see :mod:`core.inference.samplers.dps`), whose score is one vector–Jacobian product (VJP)
  through the denoiser:  ``∇ log p = J_Dᵀ Aᵀ (Σ_y + c)⁻¹ (y − A D)``;
* **MMPS** (Rozet et al. 2024): ``p(y | x_σ) ≈ N(y | A D(x_σ), K)`` with ``K = Σ_y + A V Aᵀ = Σ_y + σ² A J_D Aᵀ`` —
  exact when the prior is Gaussian (then ``D`` is linear and ``V`` the exact posterior covariance of ``x | x_σ``).
  Its score, treating ``K`` as locally constant (as the paper does), is ``J_Dᵀ Aᵀ u`` with ``u`` the solution of
  ``K u = y − A D``, found by ``n`` iterations of preconditioned conjugate gradients (PCG, from ``u = 0``) whose
  products ``J_D Aᵀ p`` are computed matrix-free: by reverse mode (``J_Dᵀ Aᵀ p``, one VJP reusing the recorded
  forward pass; equal to ``J_D Aᵀ p`` because ``J_D`` is symmetric for an exact score — the default) or by forward
  mode (``tf.autodiff.ForwardAccumulator``, a true Jacobian–vector product that re-runs the forward pass). The
  preconditioner is diagonal, ``(Σ_y + τ)⁻¹`` with ``τ`` a scalar guess of the diagonal of ``A V Aᵀ`` (given by the
  caller; the default ``τ = σ²`` bounds it for a unit-norm ``A``).

Cost accounting (NFE = network-or-score evaluations per chain): the forward evaluation of the prior score counts
1 and every VJP or JVP through it counts 1 more (on a CPU a VJP costs about two forwards — wall time is
reported separately). DPS: 2 per guided score; MMPS: ``2 + n`` (forward, ``n`` CG products, final VJP).

Shapes: states ``x`` are ``(*batch, *event)`` with ``event_ndims`` trailing axes (2 for maps, 1 for a vector
state as in the 2-D teaching lab); data are ``(*batch, *data_shape)``; σ is a scalar (all chains at one level) or
of the batch shape. float32; TensorFlow ops only, so everything runs inside ``tf.function`` on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf

__all__ = [
    "LinearGaussianObservation",
    "GuidanceTerms",
    "tweedie_denoise",
    "dps_guidance",
    "mmps_guidance",
    "conjugate_gradient",
    "JACOBIAN_PRODUCTS",
    "DPS_NFE",
    "mmps_nfe",
]

ScoreFn = Callable[[tf.Tensor, Any], tf.Tensor]
JACOBIAN_PRODUCTS = ("vjp", "jvp")
DPS_NFE = 2


def mmps_nfe(cg_iterations: int) -> int:
    """Score evaluations per chain of one MMPS guided score: forward + ``cg_iterations`` products + final VJP."""
    return 2 + int(cg_iterations)


def _sigma_tensor(sigma: Any) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(sigma), tf.float32)


class LinearGaussianObservation:
    """``y = A x + n`` with diagonal Gaussian noise, masked data dropped (see the module docstring).

    Parameters
    ----------
    forward:
        ``x (*batch, *event) -> A x (*batch, *data_shape)`` (linear; the mask is applied here, not by the caller).
    adjoint:
        ``r (*batch, *data_shape) -> Aᵀ r (*batch, *event)`` — the adjoint of ``forward`` for the real inner product.
    data:
        Observed ``y``, shape ``data_shape``; values where ``observed == 0`` are ignored.
    noise_variance:
        Per-datum variance, broadcastable to ``data_shape``; positive and finite where observed.
    observed:
        0/1 mask broadcastable to ``data_shape`` (default: everything observed).
    event_ndims:
        Trailing axes of the state (2 for maps, 1 for vectors).
    """

    def __init__(
        self,
        forward: Callable[[tf.Tensor], tf.Tensor],
        adjoint: Callable[[tf.Tensor], tf.Tensor],
        data: Any,
        noise_variance: Any,
        observed: Any = None,
        event_ndims: int = 2,
        operator_key: Any = None,
    ) -> None:
        if not callable(forward) or not callable(adjoint):
            raise ValueError("forward and adjoint must be callables (the operator A and its adjoint)")
        if isinstance(event_ndims, bool) or not isinstance(event_ndims, (int, np.integer)) or event_ndims < 1:
            raise ValueError(f"event_ndims must be an integer ≥ 1, got {event_ndims!r}")
        y = np.asarray(data, dtype=np.float64)
        if y.ndim < 1:
            raise ValueError(f"data must have at least one axis, got shape {y.shape}")
        var = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), y.shape)
        obs = np.ones(y.shape) if observed is None else np.broadcast_to(np.asarray(observed, dtype=np.float64), y.shape)
        if not np.all((obs == 0) | (obs == 1)):
            raise ValueError("observed must be a 0/1 mask")
        seen = obs > 0
        if not seen.any():
            raise ValueError("observed masks out every datum; nothing constrains the state")
        if not np.all(np.isfinite(var[seen])) or np.any(var[seen] <= 0):
            raise ValueError("noise_variance must be positive and finite on observed data")
        if not np.all(np.isfinite(y[seen])):
            raise ValueError("data must be finite on observed data")
        self._forward = forward
        self._adjoint = adjoint
        #: hashable name of the operator A (equal keys = the same A); lets compiled guidance be reused across data
        self.operator_key = ("operator", id(self)) if operator_key is None else operator_key
        self.event_ndims = int(event_ndims)
        self.data_ndims = y.ndim
        self.data_shape = y.shape
        self.observed = tf.constant(obs.astype(np.float32))
        self.data = tf.constant(np.where(seen, y, 0.0).astype(np.float32))
        # a harmless 1 where unobserved: every data-space vector is zero there, so it never enters a result
        self.noise_variance = tf.constant(np.where(seen, var, 1.0).astype(np.float32))
        self.num_observed = int(seen.sum())

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_shear_likelihood(cls, likelihood: Any) -> "LinearGaussianObservation":
        """``A = M ∘ P`` (mask ∘ Kaiser–Squires forward) of a :class:`core.inference.likelihood.ShearLikelihood`."""
        for attr in ("operator", "shear", "mask", "variance"):
            if not hasattr(likelihood, attr):
                raise ValueError(f"likelihood must be a ShearLikelihood-like object with .{attr}, got {type(likelihood).__name__}")
        shear = np.asarray(likelihood.shear, dtype=np.float64)
        mask = np.broadcast_to(np.asarray(likelihood.mask, dtype=np.float64), shear.shape)
        variance = np.broadcast_to(np.asarray(likelihood.variance(0.0), dtype=np.float64), shear.shape)
        operator = likelihood.operator
        geometry = likelihood.geometry
        return cls(
            forward=operator.forward,
            adjoint=operator.adjoint,
            data=shear,
            noise_variance=variance,
            observed=mask,
            event_ndims=2,
            operator_key=("shear", int(geometry.npix), float(geometry.pixel_size_arcmin)),
        )

    @classmethod
    def from_matrix(cls, matrix: Any, data: Any, noise_variance: Any, observed: Any = None) -> "LinearGaussianObservation":
        """Vector states (``event_ndims = 1``): ``A`` a dense ``(m, d)`` matrix, ``y`` of shape ``(m,)``."""
        a = np.asarray(matrix, dtype=np.float64)
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            raise ValueError(f"matrix must be a finite 2-D (m, d) array, got shape {a.shape}")
        y = np.asarray(data, dtype=np.float64)
        if y.shape != (a.shape[0],):
            raise ValueError(f"data must have shape ({a.shape[0]},) for a {a.shape} matrix, got {y.shape}")
        obs_np = np.ones(y.shape) if observed is None else np.broadcast_to(np.asarray(observed, dtype=np.float64), y.shape)
        a_t = tf.constant(a.astype(np.float32))
        return cls(
            forward=lambda x: tf.linalg.matvec(a_t, x),
            adjoint=lambda r: tf.linalg.matvec(a_t, r, transpose_a=True),
            data=y,
            noise_variance=noise_variance,
            observed=obs_np,
            event_ndims=1,
        )

    def with_arrays(self, data: tf.Tensor, noise_variance: tf.Tensor, observed: tf.Tensor) -> "LinearGaussianObservation":
        """The same operator with other (already checked, float32, ``data_shape``) data, variances and mask — used
        inside compiled functions that take them as arguments."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.data, out.noise_variance, out.observed = data, noise_variance, observed
        return out

    # ------------------------------------------------------------------ operators
    def forward(self, x: tf.Tensor) -> tf.Tensor:
        """``A x`` (zero on unobserved data)."""
        return self.observed * self._forward(x)

    def adjoint(self, r: tf.Tensor) -> tf.Tensor:
        """``Aᵀ r`` (unobserved entries of ``r`` are ignored)."""
        return self._adjoint(self.observed * r)

    def residual(self, x: tf.Tensor) -> tf.Tensor:
        """``M (y − A x)``."""
        return self.observed * (self.data - self._forward(x))

    def data_dot(self, u: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
        """Per-chain inner product over the data axes (batch shape out)."""
        return tf.reduce_sum(u * v, axis=list(range(-self.data_ndims, 0)))

    def expand(self, batch_value: tf.Tensor) -> tf.Tensor:
        """Append ``data_ndims`` unit axes so a batch-shaped value broadcasts over data."""
        return tf.reshape(batch_value, tf.concat([tf.shape(batch_value), tf.ones([self.data_ndims], tf.int32)], 0))

    def whitened_norm(self, r: tf.Tensor, extra_variance: Any = 0.0) -> tf.Tensor:
        """``‖(Σ_y + c)^{-1/2} r‖`` over observed data, per chain."""
        return tf.sqrt(self.data_dot(r, self.observed * r / (self.noise_variance + extra_variance)))

    def __repr__(self) -> str:
        return f"LinearGaussianObservation(data_shape={self.data_shape}, observed={self.num_observed}, event_ndims={self.event_ndims})"


@dataclass(frozen=True)
class GuidanceTerms:
    """One guided-score evaluation: the prior score, the likelihood score, the denoised state ``D(x_σ)`` and the
    whitened residual norm ``‖Σ_y^{-1/2} M(y − A D)‖`` (per chain)."""

    prior_score: tf.Tensor
    likelihood_score: tf.Tensor
    denoised: tf.Tensor
    residual_norm: tf.Tensor


def tweedie_denoise(prior_score: ScoreFn, x: tf.Tensor, sigma: Any) -> tf.Tensor:
    """``D(x_σ) = x_σ + σ² s(x_σ, σ)``."""
    sigma = _sigma_tensor(sigma)
    return x + _broadcast_sigma_sq(sigma, x) * prior_score(x, sigma)


def _broadcast_sigma_sq(sigma: tf.Tensor, x: tf.Tensor, event_ndims: int | None = None) -> tf.Tensor:
    """σ² shaped to broadcast against ``x`` (a scalar stays a scalar; a batch-shaped σ gets event axes)."""
    return _broadcast_variance(tf.square(sigma), x, event_ndims)


def _broadcast_variance(sq: tf.Tensor, x: tf.Tensor, event_ndims: int | None = None) -> tf.Tensor:
    """A scalar or batch-shaped variance shaped to broadcast against ``x`` (batch values get event axes)."""
    if sq.shape.rank == 0:
        return sq
    ndims = (x.shape.rank - sq.shape.rank) if event_ndims is None else event_ndims
    return tf.reshape(sq, tf.concat([tf.shape(sq), tf.ones([ndims], tf.int32)], 0))


def _vjp_or_zeros(tape: tf.GradientTape, target: tf.Tensor, source: tf.Tensor, cotangent: tf.Tensor) -> tf.Tensor:
    out = tape.gradient(target, source, output_gradients=cotangent)
    return tf.zeros_like(source) if out is None else out


def dps_guidance(
    observation: LinearGaussianObservation,
    prior_score: ScoreFn,
    x: tf.Tensor,
    sigma: Any,
    extra_variance: Any = 0.0,
) -> GuidanceTerms:
    """DPS: ``∇_x log N(y | A D(x), Σ_y + c)`` by one VJP (``c = extra_variance``, scalar or broadcastable to data)."""
    x = tf.convert_to_tensor(x, tf.float32)
    sigma = _sigma_tensor(sigma)
    sq = _broadcast_sigma_sq(sigma, x, observation.event_ndims)
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = tf.convert_to_tensor(prior_score(x, sigma), tf.float32)
        denoised = x + sq * s
    variance = observation.noise_variance + extra_variance
    r = observation.residual(denoised)
    weighted = observation.observed * r / variance
    cotangent = observation.adjoint(weighted)
    likelihood_score = _vjp_or_zeros(tape, denoised, x, cotangent)
    return GuidanceTerms(s, likelihood_score, denoised, observation.whitened_norm(r))


def conjugate_gradient(
    operator: Callable[[tf.Tensor], tf.Tensor],
    rhs: tf.Tensor,
    inverse_preconditioner: tf.Tensor,
    num_iterations: int,
    dot: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    expand: Callable[[tf.Tensor], tf.Tensor],
) -> tf.Tensor:
    """``num_iterations`` of batched preconditioned CG for ``K u = rhs`` from ``u = 0`` (one ``operator`` call each).

    ``inverse_preconditioner`` multiplies elementwise. A direction with ``pᵀKp ≤ 0`` (a non-positive operator, e.g.
    a learned, non-monotone denoiser) stops that chain's iteration rather than dividing by it.
    """
    def body(i: tf.Tensor, u: tf.Tensor, r: tf.Tensor, p: tf.Tensor, rz: tf.Tensor) -> tuple[tf.Tensor, ...]:
        kp = operator(p)
        pkp = dot(p, kp)
        ok = (pkp > 0.0) & (rz > 0.0)
        alpha = tf.where(ok, rz / tf.where(ok, pkp, 1.0), 0.0)
        u = u + expand(alpha) * p
        r = r - expand(alpha) * kp
        z = inverse_preconditioner * r
        rz_new = dot(r, z)
        beta = tf.where(ok, rz_new / tf.where(rz > 0.0, rz, 1.0), 0.0)
        return i + 1, u, r, z + expand(beta) * p, tf.where(ok, rz_new, 0.0)

    z = inverse_preconditioner * rhs
    # a while loop (not unrolled): one Jacobian-product graph is traced whatever the number of iterations
    _, u, _, _, _ = tf.while_loop(
        lambda i, *_: i < num_iterations, body, (tf.constant(0), tf.zeros_like(rhs), rhs, z, dot(rhs, z)),
        maximum_iterations=int(num_iterations),
    )
    return u


def mmps_guidance(
    observation: LinearGaussianObservation,
    prior_score: ScoreFn,
    x: tf.Tensor,
    sigma: Any,
    cg_iterations: int = 3,
    preconditioner_variance: Any = None,
    jacobian_product: str = "vjp",
    surrogate_jacobian: Callable[[tf.Tensor], tf.Tensor] | None = None,
    split_variance: Any = 0.0,
) -> GuidanceTerms:
    """MMPS: ``J_Dᵀ Aᵀ u`` with ``(Σ_y + σ² A J_D Aᵀ) u = M(y − A D)`` solved by ``cg_iterations`` of PCG (module doc).

    ``preconditioner_variance`` τ (scalar, default σ²): diagonal preconditioner ``(Σ_y + τ)⁻¹``.
    ``jacobian_product``: how the denoiser's Jacobian is multiplied, ``"vjp"`` (reverse mode, symmetric ``J_D``)
    or ``"jvp"`` (forward mode); anything else is a ``ValueError`` naming the option. Used (and checked) only
    without a ``surrogate_jacobian``.
    ``surrogate_jacobian``: a symmetric linear map ``w ↦ J w`` used *instead of* the denoiser's Jacobian in the CG
    products and in the final product (e.g. the Tweedie Jacobian of a hybrid prior's Gaussian part, ``P/(P + σ²)``
    in Fourier space); the network is then evaluated once (``D`` only) and never differentiated, so
    ``jacobian_product`` does not apply and is ignored, whatever its value. Exact when ``J`` is the denoiser's true
    Jacobian (a Gaussian prior).
    ``split_variance`` σ*² (scalar, default 0, below σ² and below every observed noise variance): the noise-split
    form (:mod:`core.inference.samplers.mmps`, ``noise_split``). The data are ``y = A x_* + e`` with
    ``x_* = x + σ* z`` the diffusion state at level σ* and ``e`` of covariance ``C_e = Σ_y − σ*² A Aᵀ`` on observed
    data (exact: white noise of variance σ*² split off ``Σ_y``), so the guidance is that of ``p(y | x_σ)`` through
    ``x_* | x_σ``: ``D_* = x + (σ² − σ*²) s``, ``J_* = I + (σ² − σ*²) ∂s``, ``K = C_e + (σ² − σ*²) A J_* Aᵀ``. At
    σ = σ* it is the exact likelihood ``N(y | A x, C_e)``.
    """
    if surrogate_jacobian is not None and not callable(surrogate_jacobian):
        raise ValueError(f"surrogate_jacobian must be a callable w ↦ J w or None, got {type(surrogate_jacobian).__name__}")
    if surrogate_jacobian is None and jacobian_product not in JACOBIAN_PRODUCTS:
        raise ValueError(f"jacobian_product must be one of {JACOBIAN_PRODUCTS} (or pass surrogate_jacobian), "
                         f"got {jacobian_product!r}")
    if isinstance(cg_iterations, bool) or not isinstance(cg_iterations, (int, np.integer)) or cg_iterations < 1:
        raise ValueError(f"cg_iterations must be an integer ≥ 1, got {cg_iterations!r}")
    x = tf.convert_to_tensor(x, tf.float32)
    sigma = _sigma_tensor(sigma)
    no_split = isinstance(split_variance, (int, float)) and not isinstance(split_variance, bool) and split_variance == 0
    split = None if no_split else tf.cast(split_variance, tf.float32)
    # τ² = σ² − σ*²: the Tweedie variance of x_* given x_σ (σ² without a split)
    tau_sq = tf.square(sigma) if split is None else tf.maximum(tf.square(sigma) - split, 0.0)
    tau_event = _broadcast_variance(tau_sq, x, observation.event_ndims)
    if surrogate_jacobian is not None:
        s = tf.convert_to_tensor(prior_score(x, sigma), tf.float32)
        denoised = x + tau_event * s
        # J_* = (1 − λ) I + λ J_D with λ = τ²/σ² (J_D the surrogate): the same map when there is no split
        lam = _broadcast_variance(tau_sq / tf.square(sigma), x, observation.event_ndims)

        def surrogate_star(w: tf.Tensor) -> tf.Tensor:
            if split is None:
                return surrogate_jacobian(w)
            return (1.0 - lam) * w + lam * surrogate_jacobian(w)

        return _mmps_terms(observation, s, denoised, tau_sq, int(cg_iterations), preconditioner_variance,
                           surrogate_star, surrogate_star, split)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        s = tf.convert_to_tensor(prior_score(x, sigma), tf.float32)
        denoised = x + tau_event * s

    def jacobian_times(w: tf.Tensor) -> tf.Tensor:
        if jacobian_product == "vjp":
            return _vjp_or_zeros(tape, denoised, x, w)
        with tf.autodiff.ForwardAccumulator(primals=x, tangents=w) as acc:
            d = x + tau_event * tf.convert_to_tensor(prior_score(x, sigma), tf.float32)
        out = acc.jvp(d)
        return tf.zeros_like(x) if out is None else out

    terms = _mmps_terms(observation, s, denoised, tau_sq, int(cg_iterations), preconditioner_variance, jacobian_times,
                        lambda w: _vjp_or_zeros(tape, denoised, x, w), split)
    del tape
    return terms


def _mmps_terms(
    observation: LinearGaussianObservation,
    s: tf.Tensor,
    denoised: tf.Tensor,
    sigma_sq: tf.Tensor,
    cg_iterations: int,
    preconditioner_variance: Any,
    jacobian_times: Callable[[tf.Tensor], tf.Tensor],
    jacobian_transpose_times: Callable[[tf.Tensor], tf.Tensor],
    split_variance: tf.Tensor | None = None,
) -> GuidanceTerms:
    """The CG solve ``K u = M(y − A D)`` and the likelihood score ``J_Dᵀ Aᵀ u`` given the Jacobian products.

    ``sigma_sq``: the Tweedie variance multiplying ``A J Aᵀ`` (σ², or σ² − σ*² with a split); ``split_variance``
    σ*²: the noise covariance is ``Σ_y − σ*² A Aᵀ`` (see :func:`mmps_guidance`)."""
    sq_data = _broadcast_variance(tf.cast(sigma_sq, tf.float32), observation.data, observation.data_ndims)
    split = 0.0 if split_variance is None else tf.cast(split_variance, tf.float32)

    def operator(p: tf.Tensor) -> tf.Tensor:
        # K p = Σ_y p − σ*² A Aᵀ p + τ² M A J Aᵀ p  (p is zero on unobserved data, and so is K p)
        a_t_p = observation.adjoint(p)
        noise = observation.noise_variance * p
        if split_variance is not None:
            noise = noise - split * observation.forward(a_t_p)
        return noise + sq_data * observation.forward(jacobian_times(a_t_p))

    tau = sq_data if preconditioner_variance is None else tf.cast(preconditioner_variance, tf.float32)
    inverse_preconditioner = observation.observed / (observation.noise_variance - split + tau)
    r = observation.residual(denoised)
    u = conjugate_gradient(operator, r, inverse_preconditioner, cg_iterations, observation.data_dot, observation.expand)
    likelihood_score = jacobian_transpose_times(observation.adjoint(u))
    return GuidanceTerms(s, likelihood_score, denoised, observation.whitened_norm(r))


def check_positive_finite(value: Any, name: str) -> float:
    """``value`` as a float, ``ValueError`` naming ``name`` unless it is positive and finite."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return out
