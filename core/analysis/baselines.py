r"""Baseline mass maps: Kaiser–Squires, the Wiener filter and exact Gaussian-posterior samples.

Notation: ``S`` the prior covariance of κ (circulant, eigenvalues the power map ``P_k``,
see :mod:`core.physics.geometry`), ``P`` the lensing operator, ``N⁻¹ = M/σ_n²`` the masked inverse noise
variance (``(2, N, N)`` diagonal), ``γ`` the observed shear.

Kaiser–Squires
    ``κ_E + iκ_B = F⁻¹[D* F(M γ)]`` (masked pixels set to zero before the inversion), then optional
    Gaussian smoothing of FWHM ``smoothing_fwhm_arcmin``.

Wiener filter (posterior mean under the Gaussian prior)
    ``κ_WF = (S⁻¹ + PᵀN⁻¹P)⁻¹ PᵀN⁻¹ γ``. With the change of variables ``κ = S^{1/2} y`` the system becomes

    .. math:: (I + S^{1/2} P^T N^{-1} P S^{1/2})\, y = S^{1/2} P^T N^{-1} γ,

    symmetric positive definite with eigenvalues ≥ 1 (well conditioned, and valid even where
    ``P_k = 0``). It is solved by preconditioned conjugate gradients in a ``tf.while_loop``, batched
    over leading dimensions of the data. The preconditioner is the Fourier-diagonal approximation
    ``1 / (1 + P_k w̄)`` (``k ≠ 0``; ``1`` at ``k = 0``) with ``w̄`` the mean of ``N⁻¹`` over pixels and
    components — exact for a full mask and uniform noise, where ``PᵀP = I − Π₀`` (Π₀ the projector on
    the mean) so CG converges in one iteration. The CG runs in float64 (FFTs in complex128) and returns
    float32, so a relative tolerance of 1e-6 is reachable on any device.

    Tempered version at level σ (the annealing convention of ``docs/architecture.md``): prior power
    ``P_k + σ²`` and noise variance ``σ_n² + σ²`` — the exact posterior mean of the tempered Gaussian
    posterior that the sampler targets at that level.

Constrained realisations (exact posterior samples)
    With ``s ~ N(0, S)`` and ``n ~ N(0, N)``, ``x = s + WF(γ − (P s + n))`` is distributed as the
    Gaussian posterior ``N(κ_WF, (S⁻¹ + PᵀN⁻¹P)⁻¹)`` (Hoffman & Ribak 1991).

Dense reference
    :func:`gaussian_posterior_dense` forms the matrices explicitly (float64 numpy, maps of at most
    32×32 pixels) and returns the posterior mean and covariance
    ``Σ = S^{1/2}(I + S^{1/2}PᵀN⁻¹PS^{1/2})⁻¹S^{1/2}``, ``μ = Σ PᵀN⁻¹γ`` — the exact reference for tests.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import MapGeometry, as_float_tensor
from core.physics.lensing import LensingOperator, gaussian_smooth, shear_kernel
from core.inference.likelihood import ShearLikelihood
from core.data.observation import Observation, mask_from_array
from core.seeds import stateless_seed

logger = logging.getLogger(__name__)

__all__ = [
    "kaiser_squires_map",
    "WienerResult",
    "wiener_filter",
    "constrained_realisations",
    "gaussian_posterior_dense",
    "DENSE_MAX_NPIX",
]

DENSE_MAX_NPIX = 32


# --------------------------------------------------------------------------- Kaiser–Squires
def kaiser_squires_map(
    shear: np.ndarray | tf.Tensor,
    geometry: MapGeometry,
    mask: np.ndarray | tf.Tensor | None = None,
    smoothing_fwhm_arcmin: float = 1.0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Kaiser–Squires E and B convergence maps ``(..., N, N)`` of shear ``(..., 2, N, N)``.

    Masked pixels are set to zero before the inversion; ``smoothing_fwhm_arcmin = 0`` disables the
    Gaussian smoothing applied afterwards.
    """
    shear = as_float_tensor(shear, "shear")
    geometry.check_map(shear, "shear", leading=2)
    if not np.isfinite(smoothing_fwhm_arcmin) or smoothing_fwhm_arcmin < 0:
        raise ValueError(f"smoothing_fwhm_arcmin must be a non-negative finite number, got {smoothing_fwhm_arcmin!r}")
    if mask is not None:
        m = tf.constant(mask_from_array(mask, geometry))
        shear = tf.where(m[..., None, :, :] > 0, shear, 0.0)
    kappa_e, kappa_b = LensingOperator(geometry).kaiser_squires(shear)
    if smoothing_fwhm_arcmin > 0:
        kappa_e = gaussian_smooth(kappa_e, geometry, fwhm_arcmin=smoothing_fwhm_arcmin)
        kappa_b = gaussian_smooth(kappa_b, geometry, fwhm_arcmin=smoothing_fwhm_arcmin)
    return kappa_e, kappa_b


# --------------------------------------------------------------------------- float64 operators
class _Ops64:
    """Float64 versions of P, Pᵀ and S^{1/2} for the CG solver (same kernel as core.physics.lensing)."""

    def __init__(self, likelihood: ShearLikelihood, power_map: np.ndarray | tf.Tensor, sigma: float) -> None:
        geometry = likelihood.geometry
        power = _check_power_map(power_map, geometry) + sigma**2
        self.geometry = geometry
        d = shear_kernel(geometry)
        self.d = tf.constant(d, dtype=tf.complex128)
        self.d_conj = tf.constant(np.conj(d), dtype=tf.complex128)
        self.sqrt_power = tf.constant(np.sqrt(power).astype(np.complex128))
        with np.errstate(divide="ignore"):
            inv_sqrt = np.where(power > 0, 1.0 / np.sqrt(np.where(power > 0, power, 1.0)), 0.0)
        self.inv_sqrt_power = tf.constant(inv_sqrt.astype(np.complex128))
        self.inv_var = tf.cast(likelihood.inverse_variance(sigma), tf.float64)  # (2, N, N)
        self.noise_var = tf.cast(likelihood.variance(sigma), tf.float64)
        self.shear = tf.cast(likelihood.shear, tf.float64)
        w_bar = float(tf.reduce_mean(self.inv_var))
        precond = 1.0 / (1.0 + power * w_bar)
        precond.flat[0] = 1.0
        self.precond = tf.constant(precond.astype(np.complex128))

    @staticmethod
    def _fft(x: tf.Tensor) -> tf.Tensor:
        return tf.signal.fft2d(tf.cast(x, tf.complex128))

    @staticmethod
    def _ifft_real(xk: tf.Tensor) -> tf.Tensor:
        return tf.math.real(tf.signal.ifft2d(xk))

    def fourier_multiply(self, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return self._ifft_real(kernel * self._fft(x))

    def forward(self, kappa: tf.Tensor) -> tf.Tensor:
        g = tf.signal.ifft2d(self.d * self._fft(kappa))
        return tf.stack([tf.math.real(g), tf.math.imag(g)], axis=-3)

    def adjoint(self, gamma: tf.Tensor) -> tf.Tensor:
        g = tf.complex(gamma[..., 0, :, :], gamma[..., 1, :, :])
        return self._ifft_real(self.d_conj * tf.signal.fft2d(g))

    def sqrt_s(self, x: tf.Tensor) -> tf.Tensor:
        return self.fourier_multiply(x, self.sqrt_power)

    def system(self, y: tf.Tensor) -> tf.Tensor:
        """``(I + S^{1/2} Pᵀ N⁻¹ P S^{1/2}) y``."""
        return y + self.sqrt_s(self.adjoint(self.inv_var * self.forward(self.sqrt_s(y))))

    def rhs(self, data: tf.Tensor) -> tf.Tensor:
        return self.sqrt_s(self.adjoint(self.inv_var * data))


def _check_power_map(power_map: np.ndarray | tf.Tensor, geometry: MapGeometry) -> np.ndarray:
    power = np.asarray(power_map.numpy() if isinstance(power_map, tf.Tensor) else power_map, dtype=np.float64)
    if power.shape != geometry.shape:
        raise ValueError(f"power_map has shape {power.shape}; expected {geometry.shape} for this geometry")
    if not np.all(np.isfinite(power)):
        raise ValueError("power_map contains NaN or infinite values")
    if np.any(power < 0):
        raise ValueError("power_map must be non-negative (it is a variance per Fourier mode)")
    return power


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a non-negative finite number, got {sigma!r}")
    return sigma


def _as_likelihood(likelihood: ShearLikelihood | Observation) -> ShearLikelihood:
    if isinstance(likelihood, Observation):
        return ShearLikelihood.from_observation(likelihood)
    if not isinstance(likelihood, ShearLikelihood):
        raise ValueError(f"likelihood must be a ShearLikelihood or an Observation, got {type(likelihood).__name__}")
    return likelihood


def _batched_pcg(ops: _Ops64, b: tf.Tensor, y0: tf.Tensor, tol: float, max_iter: int) -> tuple[tf.Tensor, int]:
    """Preconditioned CG for ``ops.system`` on ``(..., N, N)`` right-hand sides, each batch element
    with its own step lengths; stops when every ``‖r‖ ≤ tol ‖b‖`` or after ``max_iter`` iterations."""

    def dot(u: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(u * v, axis=[-2, -1], keepdims=True)

    def precondition(r: tf.Tensor) -> tf.Tensor:
        return ops.fourier_multiply(r, ops.precond)

    b_norm = tf.sqrt(dot(b, b))
    threshold = tol * tf.where(b_norm > 0, b_norm, 1.0)
    r = b - ops.system(y0)
    z = precondition(r)
    p = z
    rz = dot(r, z)

    def not_done(i, y, r, p, rz):
        return tf.logical_and(i < max_iter, tf.reduce_any(tf.sqrt(dot(r, r)) > threshold))

    def body(i, y, r, p, rz):
        ap = ops.system(p)
        alpha = tf.math.divide_no_nan(rz, dot(p, ap))
        y = y + alpha * p
        r = r - alpha * ap
        z = precondition(r)
        rz_new = dot(r, z)
        beta = tf.math.divide_no_nan(rz_new, rz)
        return i + 1, y, r, z + beta * p, rz_new

    i, y, *_ = tf.while_loop(not_done, body, (tf.constant(0), y0, r, p, rz))
    return y, int(i)


class WienerResult(NamedTuple):
    """Wiener-filter output: ``kappa`` float32 ``(..., N, N)``, CG ``iterations``, the final true relative
    residual ``‖b − A y‖/‖b‖`` (max over the batch) and whether it met the tolerance."""

    kappa: tf.Tensor
    iterations: int
    residual: float
    converged: bool


def _solve(ops: _Ops64, data: tf.Tensor, tol: float, max_iter: int, x0: tf.Tensor | None) -> WienerResult:
    b = ops.rhs(data)
    if x0 is None:
        y0 = tf.zeros_like(b)
    else:
        x0 = tf.cast(as_float_tensor(x0, "x0"), tf.float64)
        ops.geometry.check_map(x0, "x0")
        y0 = ops.fourier_multiply(x0, ops.inv_sqrt_power) + tf.zeros_like(b)
    y, iterations = _batched_pcg(ops, b, y0, tol, max_iter)
    true_res = b - ops.system(y)
    b_norm = tf.sqrt(tf.reduce_sum(b * b, axis=[-2, -1]))
    rel = tf.sqrt(tf.reduce_sum(true_res * true_res, axis=[-2, -1])) / tf.where(b_norm > 0, b_norm, 1.0)
    residual = float(tf.reduce_max(rel))
    # float64 CG: allow a little slack between the recursive and the recomputed residual.
    converged = residual <= 10 * tol
    if not converged:
        logger.warning("Wiener-filter CG stopped after %d iterations with relative residual %.2e (tol %.1e)",
                       iterations, residual, tol)
    kappa = tf.cast(ops.sqrt_s(y), tf.float32)
    return WienerResult(kappa, iterations, residual, converged)


def _check_solver_args(tol: float, max_iter: int) -> None:
    if not np.isfinite(tol) or not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")


def wiener_filter(
    likelihood: ShearLikelihood | Observation,
    power_map: np.ndarray | tf.Tensor,
    sigma: float = 0.0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    x0: np.ndarray | tf.Tensor | None = None,
    shear: np.ndarray | tf.Tensor | None = None,
) -> WienerResult:
    """Posterior mean of κ under the Gaussian prior of power ``power_map`` (tempered at level ``sigma``).

    ``shear`` replaces the likelihood's data by other shear maps ``(..., 2, N, N)`` (batched); ``x0`` is an
    initial guess for κ. Returns a :class:`WienerResult` (``.kappa`` float32 ``(..., N, N)``).
    """
    likelihood = _as_likelihood(likelihood)
    sigma = _check_sigma(sigma)
    _check_solver_args(tol, max_iter)
    ops = _Ops64(likelihood, power_map, sigma)
    if shear is None:
        data = ops.shear
    else:
        data = as_float_tensor(shear, "shear")
        likelihood.geometry.check_map(data, "shear", leading=2)
        data = tf.cast(data, tf.float64)
    return _solve(ops, data, tol, max_iter, x0)


def constrained_realisations(
    likelihood: ShearLikelihood | Observation,
    power_map: np.ndarray | tf.Tensor,
    num: int,
    seed: int | tf.Tensor,
    sigma: float = 0.0,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> tf.Tensor:
    """``num`` exact samples ``(num, N, N)`` float32 of the (tempered) Gaussian posterior:
    ``x = s + WF(γ − (P s + n))`` with ``s ~ N(0, S + σ²I)``, ``n ~ N(0, σ_n² + σ²)``."""
    likelihood = _as_likelihood(likelihood)
    sigma = _check_sigma(sigma)
    _check_solver_args(tol, max_iter)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    ops = _Ops64(likelihood, power_map, sigma)
    s_seed, n_seed = tfp.random.split_seed(stateless_seed(seed), n=2)
    n = likelihood.geometry.npix
    white = tf.random.stateless_normal([num, n, n], seed=s_seed, dtype=tf.float64)
    s = ops.sqrt_s(white)
    noise = tf.sqrt(ops.noise_var) * tf.random.stateless_normal([num, 2, n, n], seed=n_seed, dtype=tf.float64)
    data = ops.shear - (ops.forward(s) + noise)
    result = _solve(ops, data, tol, max_iter, None)
    return tf.cast(s, tf.float32) + result.kappa


def gaussian_posterior_dense(
    likelihood: ShearLikelihood | Observation,
    power_map: np.ndarray | tf.Tensor,
    sigma: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Gaussian posterior by dense float64 linear algebra: ``(mean (N, N), covariance (N², N²))``
    with pixels flattened row-major. Only for ``npix ≤ 32`` (the covariance has ``npix⁴`` entries)."""
    likelihood = _as_likelihood(likelihood)
    sigma = _check_sigma(sigma)
    geometry = likelihood.geometry
    n = geometry.npix
    if n > DENSE_MAX_NPIX:
        raise ValueError(f"gaussian_posterior_dense needs npix ≤ {DENSE_MAX_NPIX} (dense N²×N² matrices); got npix={n}")
    power = _check_power_map(power_map, geometry) + sigma**2
    m = n * n
    basis = np.eye(m).reshape(m, n, n)
    # Columns of S^{1/2} and P, applied to every unit vector.
    sqrt_s = np.real(np.fft.ifft2(np.sqrt(power) * np.fft.fft2(basis))).reshape(m, m).T
    g = np.fft.ifft2(shear_kernel(geometry) * np.fft.fft2(basis))  # (m, n, n) complex
    p_mat = np.concatenate([g.real.reshape(m, m).T, g.imag.reshape(m, m).T], axis=0)  # (2m, m)
    inv_var = np.asarray(likelihood.inverse_variance(sigma), dtype=np.float64).reshape(2 * m)
    data = np.asarray(likelihood.shear, dtype=np.float64).reshape(2 * m)
    a = p_mat.T @ (inv_var[:, None] * p_mat)
    system = np.eye(m) + sqrt_s @ a @ sqrt_s
    cov = sqrt_s @ np.linalg.solve(system, sqrt_s)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (p_mat.T @ (inv_var * data))
    return mean.reshape(n, n), cov
