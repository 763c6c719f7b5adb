r"""Two-dimensional targets of the teaching lab, with exact σ-smoothed log densities, scores and samples.

Every target is a **Gaussian mixture** in 2-D at every noise level σ, so everything the lab draws or tests is
exact — log density, score, samples, marginals and moments:

.. math::  π_σ(x) = \sum_k w_k(σ)\, N\big(x;\ m_k(σ),\ C_k(σ)\big),\qquad s_σ(x) = ∇_x \log π_σ(x).

*σ-smoothing* is the convolution with ``N(0, σ²I)``: for a mixture it adds ``σ²I`` to every covariance
(weights and means unchanged), ``π_σ = π * N(0, σ²I)``. The mixture's log density and samples are TFP's
``MixtureSameFamily(MultivariateNormalTriL)``; the score is its automatic gradient; the marginal of axis ``i``
is the 1-D mixture with means ``m_{k,i}`` and variances ``C_{k,ii}``.

Targets (:data:`TARGETS`, :func:`make_target`):

* ``gaussian`` — one correlated Gaussian (standard deviations 1 and 0.5, correlation 0.8).
* ``bimodal`` — two isotropic Gaussians, weights 0.3 / 0.7, 4.3 apart with standard deviation 0.4: a sampler at
  one σ started in one mode never crosses; annealing from a large σ finds both with the right weights
  (convolution leaves the weights unchanged, so chains that split correctly at a large σ stay correct).
* ``banana`` — **a Gaussian-mixture approximation** (exact by construction, not an approximation of something
  computed elsewhere): the curved density ``x₁ ~ N(0, s₁²)``, ``x₂ | x₁ ~ N(b x₁² − c, s₂²)`` discretised on
  ``K`` nodes ``u_k`` of ``x₁``, weights ``∝ N(u_k; 0, s₁²)``, each node the local linearisation
  ``x₂ ≈ b u_k² − c + 2b u_k (x₁ − u_k)`` with an ``x₁`` width ``h`` equal to the node spacing, i.e.
  ``m_k = (u_k, b u_k² − c)``, ``C_k = [[h², 2b u_k h²], [2b u_k h², (2b u_k h)² + s₂²]]``.
  The lab's banana *is* this mixture, so its smoothed density stays exact.
* ``ring`` — also a mixture by construction: ``K = 16`` isotropic Gaussians (standard deviation 0.25) evenly
  spaced on a circle of radius 2, equal weights.
* ``inverse`` — a small inverse problem, the mass-mapping problem in miniature: a 2-D Gaussian-mixture prior
  ``p(x)`` times a 1-D linear measurement ``y = a·x + n``, ``n ~ N(0, η²)``. The posterior is again a mixture
  (the Kalman update of each component, weights ``∝ w_k N(y; a·m_k, aᵀC_k a + η²)``): a **ridge** along the
  directions ``a`` does not see, with bumps where the prior puts its modes. Two σ-conventions, both exact
  mixtures and both equal to the posterior at σ = 0:

  - ``"tempered"`` (default, the map mode's convention): smoothed prior × tempered likelihood,
    ``π_σ(x) ∝ p_σ(x) N(y; a·x, η² + σ²)`` — what the annealed MCMC samplers of kappascope target;
  - ``"convolved"``: the posterior convolved with ``N(0, σ²I)`` — the marginal a diffusion posterior sampler
    (DPS / MMPS) follows.

  :attr:`InverseProblemTarget.operator`, :attr:`~InverseProblemTarget.observation`,
  :attr:`~InverseProblemTarget.noise_std` and :attr:`~InverseProblemTarget.prior` expose ``A``, ``y``, ``η``
  and the prior (itself a target with exact smoothed score) for samplers with a linear-Gaussian likelihood.

States are ``(..., 2)`` float32 tensors (``event_ndims = 1``); ``sigma`` is a Python float or a scalar tensor
(it may be a traced tensor inside a ``tf.function``: every parameter is computed in TensorFlow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "LabTarget",
    "GaussianMixtureTarget",
    "InverseProblemTarget",
    "TARGETS",
    "TARGET_TITLES",
    "make_target",
    "target_names",
]


def _check_sigma(sigma: Any) -> Any:
    if isinstance(sigma, tf.Tensor):
        return tf.cast(sigma, tf.float32)
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a non-negative finite number, got {sigma!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"sigma must be a non-negative finite number, got {sigma!r}")
    return tf.constant(value, tf.float32)


@dataclass(frozen=True)
class Extent:
    """The drawing box ``[x_min, x_max] × [y_min, y_max]`` of a target."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float


class LabTarget:
    """A 2-D target whose σ-smoothed version is a Gaussian mixture (see the module docstring).

    Subclasses implement :meth:`components` ``sigma -> (log_weights (K,), means (K, 2), covariances (K, 2, 2))``.
    """

    name: str = ""
    title: str = ""
    #: what a student should notice (shown beside the plots)
    description: str = ""
    #: a typical smallest standard deviation of the target (the lab scales step sizes by it)
    length_scale: float = 1.0
    extent: Extent = Extent(-4.0, 4.0, -4.0, 4.0)
    has_log_prob: bool = True
    event_ndims: int = 1

    # ------------------------------------------------------------------ mixture parameters
    def components(self, sigma: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        raise NotImplementedError

    def mixture(self, sigma: Any = 0.0) -> tfd.Distribution:
        """The σ-smoothed target as a TFP ``MixtureSameFamily`` of ``MultivariateNormalTriL``."""
        log_w, means, covs = self.components(_check_sigma(sigma))
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=log_w),
            tfd.MultivariateNormalTriL(loc=means, scale_tril=tf.linalg.cholesky(covs)),
        )

    # ------------------------------------------------------------------ density, score, samples
    def log_prob(self, x: Any, sigma: Any = 0.0) -> tf.Tensor:
        """``log π_σ(x)`` (normalised), batch shape of ``x`` without its last axis."""
        return self.mixture(sigma).log_prob(tf.convert_to_tensor(x, tf.float32))

    def score(self, x: Any, sigma: Any = 0.0) -> tf.Tensor:
        """``∇ log π_σ(x)``, same shape as ``x`` (automatic gradient of the mixture's log density)."""
        x = tf.convert_to_tensor(x, tf.float32)
        dist = self.mixture(sigma)
        with tf.GradientTape() as tape:
            tape.watch(x)
            lp = dist.log_prob(x)
        return tape.gradient(lp, x)

    def fast_score(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """:meth:`score` XLA-compiled (``tf.function(jit_compile=True)``, one compilation per input shape, cached on
        the target): about 5× faster than the plain graph for a few hundred chains on a CPU."""
        if self._jit_score is None:
            self._jit_score = tf.function(self.score, jit_compile=True)
        return self._jit_score(tf.convert_to_tensor(x, tf.float32), tf.cast(sigma, tf.float32))

    def fast_log_prob(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """:meth:`log_prob` XLA-compiled (see :meth:`fast_score`)."""
        if self._jit_log_prob is None:
            self._jit_log_prob = tf.function(self.log_prob, jit_compile=True)
        return self._jit_log_prob(tf.convert_to_tensor(x, tf.float32), tf.cast(sigma, tf.float32))

    def graph_score(self, x: Any, sigma: Any) -> tf.Tensor:
        """:meth:`score` as a (cached) ``tf.function`` graph: for repeated calls from Python (drawing)."""
        if self._graph_score is None:
            self._graph_score = tf.function(self.score, reduce_retracing=True)
        return self._graph_score(tf.convert_to_tensor(x, tf.float32), tf.constant(float(sigma), tf.float32))

    def graph_log_prob(self, x: Any, sigma: Any) -> tf.Tensor:
        """:meth:`log_prob` as a (cached) ``tf.function`` graph."""
        if self._graph_log_prob is None:
            self._graph_log_prob = tf.function(self.log_prob, reduce_retracing=True)
        return self._graph_log_prob(tf.convert_to_tensor(x, tf.float32), tf.constant(float(sigma), tf.float32))

    def graph_sample(self, num: int, seed: Any, sigma: Any) -> tf.Tensor:
        """:meth:`sample` as a (cached) ``tf.function`` graph (``seed`` a stateless ``[2]`` seed)."""
        if self._graph_sample is None:
            self._graph_sample = tf.function(lambda seed, sigma, num=num: self.sample(num, seed, sigma), reduce_retracing=True)
            self._graph_sample_num = num
        if num != self._graph_sample_num:
            return self.sample(num, seed, sigma)
        return self._graph_sample(tf.constant(np.asarray(seed, np.int32)), tf.constant(float(sigma), tf.float32))

    _jit_score: Any = None
    _jit_log_prob: Any = None
    _graph_sample: Any = None
    _graph_sample_num: int = 0
    _graph_score: Any = None
    _graph_log_prob: Any = None

    def sample(self, num: int, seed: Any, sigma: Any = 0.0) -> tf.Tensor:
        """``num`` exact samples ``(num, 2)`` of ``π_σ`` (``seed``: an int or a stateless ``[2]`` seed)."""
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
            raise ValueError(f"num must be a positive integer, got {num!r}")
        return self.mixture(sigma).sample(int(num), seed=_stateless(seed))

    # ------------------------------------------------------------------ exact summaries (numpy)
    def marginal(self, axis: int, sigma: Any = 0.0) -> tfd.Distribution:
        """The exact 1-D marginal of coordinate ``axis`` (0 or 1) at σ, a mixture of normals."""
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 or 1, got {axis!r}")
        log_w, means, covs = self.components(_check_sigma(sigma))
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=log_w), tfd.Normal(loc=means[:, axis], scale=tf.sqrt(covs[:, axis, axis]))
        )

    def marginal_pdf(self, grid: Any, axis: int, sigma: Any = 0.0) -> np.ndarray:
        """Exact marginal density of coordinate ``axis`` on ``grid`` (numpy)."""
        return self.marginal(axis, sigma).prob(tf.convert_to_tensor(np.asarray(grid), tf.float32)).numpy()

    def moments(self, sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean ``(2,)`` and covariance ``(2, 2)`` of ``π_σ`` (float64):
        ``μ = Σ w_k m_k``, ``Σ = Σ w_k (C_k + m_k m_kᵀ) − μ μᵀ``."""
        log_w, means, covs = (np.asarray(t.numpy(), np.float64) for t in self.components(_check_sigma(sigma)))
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        mean = w @ means
        second = np.einsum("k,kij->ij", w, covs + means[:, :, None] * means[:, None, :])
        return mean, second - np.outer(mean, mean)

    def weights(self, sigma: float = 0.0) -> np.ndarray:
        log_w = self.components(_check_sigma(sigma))[0].numpy().astype(np.float64)
        w = np.exp(log_w - log_w.max())
        return w / w.sum()

    def density_grid(self, sigma: Any, num: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(xs (num,), ys (num,), density (num, num))`` of ``π_σ`` on the target's extent (rows = y)."""
        e = self.extent
        xs = np.linspace(e.x_min, e.x_max, num, dtype=np.float32)
        ys = np.linspace(e.y_min, e.y_max, num, dtype=np.float32)
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=-1)
        dens = np.exp(self.graph_log_prob(pts, sigma).numpy()).reshape(num, num)
        return xs, ys, dens

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _stateless(seed: Any) -> tf.Tensor:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return tf.constant([0, int(seed) % (2**31 - 1)], tf.int32)
    return tfp.random.sanitize_seed(seed)


class GaussianMixtureTarget(LabTarget):
    """``π = Σ_k w_k N(m_k, C_k)``; ``π_σ`` adds ``σ²I`` to every ``C_k`` (exact convolution)."""

    def __init__(
        self,
        weights: Any,
        means: Any,
        covariances: Any,
        name: str = "mixture",
        title: str = "",
        description: str = "",
        extent: Extent | None = None,
        length_scale: float | None = None,
    ) -> None:
        w = np.asarray(weights, np.float64)
        m = np.asarray(means, np.float64)
        c = np.asarray(covariances, np.float64)
        if w.ndim != 1 or w.size < 1 or np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"weights must be a 1-D array of positive numbers, got {weights!r}")
        if m.shape != (w.size, 2):
            raise ValueError(f"means must have shape ({w.size}, 2), got {m.shape}")
        if c.shape != (w.size, 2, 2) or not np.allclose(c, np.swapaxes(c, 1, 2)):
            raise ValueError(f"covariances must be symmetric with shape ({w.size}, 2, 2), got {c.shape}")
        if np.any(np.linalg.eigvalsh(c) <= 0):
            raise ValueError("covariances must be positive definite")
        self._weights = w / w.sum()
        self._means = m
        self._covs = c
        self._log_w = tf.constant(np.log(self._weights), tf.float32)
        self._m = tf.constant(m, tf.float32)
        self._c = tf.constant(c, tf.float32)
        self.name = name
        self.title = title or name
        self.description = description
        self.length_scale = float(length_scale if length_scale is not None else np.sqrt(np.linalg.eigvalsh(c).min()))
        if extent is None:
            sd = np.sqrt(np.max(np.diagonal(c, axis1=1, axis2=2), axis=0))
            lo, hi = m.min(axis=0) - 4 * sd, m.max(axis=0) + 4 * sd
            extent = Extent(float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        self.extent = extent

    def components(self, sigma: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        sigma = _check_sigma(sigma)
        return self._log_w, self._m, self._c + tf.square(sigma) * tf.eye(2)


class InverseProblemTarget(LabTarget):
    """Posterior of ``y = A x + n`` (``A`` of shape ``(M, 2)``, ``n ~ N(0, η² I_M)``) under a mixture prior.

    Each prior component ``N(m, C)`` becomes ``N(m + G(y − A m), C − G A C)`` with ``S = A C Aᵀ + R``,
    ``G = C Aᵀ S⁻¹`` and weight ``∝ w N(y; A m, S)``; ``convention="tempered"`` uses ``C = C_k + σ²I`` and
    ``R = (η² + σ²) I`` (smoothed prior × tempered likelihood), ``"convolved"`` uses ``C = C_k``, ``R = η² I`` and
    adds ``σ²I`` afterwards (the posterior convolved with ``N(0, σ²I)``).
    """

    CONVENTIONS = ("tempered", "convolved")

    def __init__(
        self,
        prior: GaussianMixtureTarget,
        operator: Any,
        observation: Any,
        noise_std: float,
        convention: str = "tempered",
        name: str = "inverse",
        title: str = "",
        description: str = "",
        extent: Extent | None = None,
    ) -> None:
        if not isinstance(prior, GaussianMixtureTarget):
            raise ValueError(f"prior must be a GaussianMixtureTarget, got {type(prior).__name__}")
        a = np.atleast_2d(np.asarray(operator, np.float64))
        if a.ndim != 2 or a.shape[1] != 2 or not np.all(np.isfinite(a)):
            raise ValueError(f"operator must have shape (M, 2) (or (2,)), got {np.shape(operator)}")
        y = np.atleast_1d(np.asarray(observation, np.float64))
        if y.shape != (a.shape[0],) or not np.all(np.isfinite(y)):
            raise ValueError(f"observation must have shape ({a.shape[0]},), got {np.shape(observation)}")
        if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std > 0):
            raise ValueError(f"noise_std must be a positive finite number, got {noise_std!r}")
        if convention not in self.CONVENTIONS:
            raise ValueError(f"convention must be one of {self.CONVENTIONS}, got {convention!r}")
        self.prior = prior
        self.operator = a.astype(np.float32)
        self.observation = y.astype(np.float32)
        self.noise_std = float(noise_std)
        self.convention = convention
        self._a = tf.constant(a, tf.float32)
        self._y = tf.constant(y, tf.float32)
        self.name = name
        self.title = title or name
        self.description = description
        self.extent = extent or prior.extent
        post = self.moments(0.0)[1]
        self.length_scale = float(np.sqrt(np.linalg.eigvalsh(post).min()))

    def components(self, sigma: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        sigma = _check_sigma(sigma)
        var = tf.square(sigma)
        log_w0, m0, c0 = self.prior.components(sigma if self.convention == "tempered" else 0.0)
        num_obs = self.operator.shape[0]
        noise_var = self.noise_std**2 + (var if self.convention == "tempered" else 0.0)
        a = self._a
        s = tf.einsum("mi,kij,nj->kmn", a, c0, a) + noise_var * tf.eye(num_obs)  # (K, M, M)
        ca = tf.einsum("kij,mj->kim", c0, a)  # C Aᵀ (K, 2, M)
        residual = self._y[None, :] - tf.einsum("mi,ki->km", a, m0)  # (K, M)
        chol = tf.linalg.cholesky(s)
        gain = tf.linalg.matrix_transpose(tf.linalg.cholesky_solve(chol, tf.linalg.matrix_transpose(ca)))  # (K, 2, M)
        means = m0 + tf.einsum("kim,km->ki", gain, residual)
        covs = c0 - tf.einsum("kim,kjm->kij", gain, ca)
        covs = 0.5 * (covs + tf.linalg.matrix_transpose(covs))
        evidence = tfd.MultivariateNormalTriL(loc=tf.zeros_like(residual), scale_tril=chol).log_prob(residual)
        log_w = log_w0 + evidence
        log_w = log_w - tf.reduce_logsumexp(log_w)
        if self.convention == "convolved":
            covs = covs + var * tf.eye(2)
        return log_w, means, covs

    def likelihood_score(self, x: Any, sigma: Any = 0.0) -> tf.Tensor:
        """``∇_x log N(y; A x, (η² + σ²) I)`` (the tempered likelihood's score), same shape as ``x``."""
        x = tf.convert_to_tensor(x, tf.float32)
        var = self.noise_std**2 + tf.square(_check_sigma(sigma))
        residual = self._y - tf.linalg.matvec(self._a, x)
        return tf.linalg.matvec(self._a, residual, transpose_a=True) / var


# ------------------------------------------------------------------------------------------ the presets
def _gaussian() -> GaussianMixtureTarget:
    sd, rho = np.array([1.0, 0.5]), 0.8
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    return GaussianMixtureTarget(
        [1.0], [[0.5, -0.5]], [cov], name="gaussian", title="Correlated Gaussian",
        description="A correlated Gaussian: the chains should fill the tilted ellipse. A large step size makes "
        "HMC trajectories overshoot and get rejected; a tiny one makes the chains crawl.",
        extent=Extent(-3.5, 4.5, -4.0, 3.0), length_scale=0.3,
    )


def _bimodal() -> GaussianMixtureTarget:
    sd = 0.4
    return GaussianMixtureTarget(
        [0.3, 0.7], [[-1.8, -1.2], [1.8, 1.2]], [np.eye(2) * sd**2] * 2, name="bimodal",
        title="Bimodal mixture (weights 0.3 / 0.7)",
        description="Two modes with weights 0.3 and 0.7. At small σ a chain never crosses the empty valley; "
        "at large σ the smoothed density is one blob. Annealing lets chains choose a mode while they still can, "
        "so the fraction in each mode matches the weights.",
        extent=Extent(-4.0, 4.0, -4.0, 4.0), length_scale=sd,
    )


def _banana(num_nodes: int = 25, s1: float = 1.2, s2: float = 0.25, b: float = 0.5, c: float = 1.6) -> GaussianMixtureTarget:
    nodes = np.linspace(-3.0 * s1, 3.0 * s1, num_nodes)
    h = nodes[1] - nodes[0]
    weights = np.exp(-0.5 * (nodes / s1) ** 2)
    means = np.stack([nodes, b * nodes**2 - c], axis=-1)
    slope = 2.0 * b * nodes
    covs = np.empty((num_nodes, 2, 2))
    covs[:, 0, 0] = h**2
    covs[:, 0, 1] = covs[:, 1, 0] = slope * h**2
    covs[:, 1, 1] = (slope * h) ** 2 + s2**2
    return GaussianMixtureTarget(
        weights, means, covs, name="banana", title="Banana (a Gaussian mixture along a parabola)",
        description="A curved ridge: no single step size fits both the narrow cross-section and the long arc. "
        "Watch HMC trajectories follow the curve where random-walk steps would be rejected.",
        extent=Extent(-4.0, 4.0, -2.5, 5.0), length_scale=s2,
    )


def _ring(num: int = 16, radius: float = 2.0, sd: float = 0.25) -> GaussianMixtureTarget:
    angles = 2 * np.pi * np.arange(num) / num
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return GaussianMixtureTarget(
        np.ones(num), means, [np.eye(2) * sd**2] * num, name="ring", title="Ring (16 Gaussians on a circle)",
        description="A ring: the mass lies on a thin circle with a hole in the middle. The score field points "
        "towards the ring from both sides; chains travel around it slowly at small σ.",
        extent=Extent(-3.2, 3.2, -3.2, 3.2), length_scale=sd,
    )


def _inverse() -> InverseProblemTarget:
    prior = GaussianMixtureTarget(
        [0.5, 0.5], [[-1.5, 1.5], [1.5, -1.5]], [np.eye(2) * 0.8**2] * 2, name="inverse_prior",
        title="Prior of the inverse problem", extent=Extent(-4.0, 4.0, -4.0, 4.0),
    )
    a = np.array([[1.0, 1.0]]) / np.sqrt(2.0)
    return InverseProblemTarget(
        prior, a, [0.3], noise_std=0.3, name="inverse", title="Inverse problem: prior × one measurement y = a·x + n",
        description="One number y = a·x + n measures x only along a = (1, 1)/√2: the posterior is a ridge along "
        "the unmeasured direction, and the prior decides where on the ridge the mass sits. The mass-mapping "
        "problem is the same picture in 4096 dimensions.",
        extent=Extent(-4.0, 4.0, -4.0, 4.0),
    )


TARGETS: dict[str, Callable[[], LabTarget]] = {
    "gaussian": _gaussian,
    "bimodal": _bimodal,
    "banana": _banana,
    "ring": _ring,
    "inverse": _inverse,
}

TARGET_TITLES: dict[str, str] = {
    "gaussian": "Correlated Gaussian",
    "bimodal": "Bimodal mixture (0.3 / 0.7)",
    "banana": "Banana",
    "ring": "Ring",
    "inverse": "Inverse problem (ridge)",
}

_CACHE: dict[str, LabTarget] = {}


def target_names() -> tuple[str, ...]:
    return tuple(TARGETS)


def make_target(name: str) -> LabTarget:
    """The preset target ``name`` (one of :data:`TARGETS`); instances are cached (they are immutable)."""
    if name not in TARGETS:
        raise ValueError(f"target must be one of {tuple(TARGETS)}, got {name!r}")
    if name not in _CACHE:
        _CACHE[name] = TARGETS[name]()
    return _CACHE[name]
