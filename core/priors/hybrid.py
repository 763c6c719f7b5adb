r"""Hybrid prior: exact Gaussian (theory C_ℓ) score plus a learned residual.

At annealing level σ the score of the σ-convolved prior is modelled as

.. math::  s_σ(κ) = g_σ(κ) + r_θ(κ, σ),\qquad g_σ(κ) = -F^{-1}\Big[\frac{Fκ}{P_k + σ^2}\Big],

where ``g_σ`` is :meth:`core.priors.gaussian.GaussianPrior.score` and ``r_θ`` the output ``o_θ`` of
the :class:`core.priors.network.ScoreUNet` (which sees ``g_σ`` as an extra input in its hybrid
variant), passed through the *noise-mode filter* (``residual_filter="wiener"``, the default of new
weights)

.. math::  r_θ = F^{-1}\Big[\frac{σ^2}{P_k + σ^2}\, F o_θ\Big],\qquad\text{i.e.}\quad C_σ r_θ = σ^2 o_θ,
           \quad C_σ = F^{-1}\operatorname{diag}(P_k + σ^2) F .

Why: in modes where the signal dominates (``P_k ≫ σ²``, large scales at small σ) a score error ``δ``
changes the DSM loss only by ``σ²|δ|²`` against an O(1) per-mode noise floor, so DSM cannot pin the
residual down there, while an error of the network output (∝ 1/σ) in those modes can overwhelm the
weak Gaussian restoring force ``−κ̂/P_k`` and make annealed samplers diverge (observed with unfiltered
weights).  With the filter the residual acts in the noise-dominated modes, where DSM is informative,
and its displacement in the prior-preconditioned metric is bounded, ``‖C_σ r_θ‖ = σ²‖o_θ‖``.
``residual_filter="none"`` (weights whose metadata lack the key) uses ``r_θ = o_θ``.  The network was trained for σ in ``[σ_min, σ_max]`` (recorded in its metadata);
outside that range the network's σ input is clamped to it — at σ below ``σ_min`` the residual is
taken as ``r_θ(κ, σ_min)`` (no blow-up as σ → 0), while the Gaussian part always uses
the true σ.  There is no tractable log-density (``has_log_prob = False``): samplers that need
Metropolis corrections use the score line integral.

Denoiser (Tweedie): ``D(x, σ) = E[κ | x] ≈ x + σ² s_σ(x)`` (:meth:`HybridPrior.denoise`), with its
Jacobian–vector and vector–Jacobian products (:meth:`HybridPrior.denoise_jvp`, :meth:`HybridPrior.denoise_vjp`),
for the diffusion posterior samplers (DPS, MMPS); ``σ² ∂D/∂x`` is Tweedie's covariance ``V[κ | x]``.

Execution.  The residual (σ clamp, network forward, filter) runs as one ``tf.function`` per prior with the
input signature ``(None, N, N)``, so it is traced once per map size whatever the batch, in eager code and
inside the samplers' compiled chunks alike (eager callers no longer run the Keras layers op by op: 3–9× faster
at 64²).  With ``jit_compile=True`` it is XLA-compiled: XLA fuses the group normalisations,
activations and additions around the convolutions, 1.6–1.9× faster per forward on this 2-core CPU when it was
lightly loaded (64² and 360²) and 2.3× at 360² under heavy load, but slower than the graph at 64² when the CPU
is oversubscribed (load ≈ 10: 0.78 s vs 0.33 s per batch of 8), and it compiles once per batch shape and again for the VJP and the JVP — 16–33 s for
the forward and 2–9 min for the VJP/JVP at 64² under that load (``benchmarks/bench_network.py``,
``benchmarks/README.md``).  The default (``jit_compile=None`` → :data:`DEFAULT_JIT_COMPILE` = ``False``) is
therefore the plain graph; pass ``True`` on an accelerator or a quiet machine for long runs.  The
layers, variables and weights are the network's own: only how the forward is executed changes (outputs equal
the eager Keras forward to float32 round-off, ~1e-7 relative).  ``GradientTape`` and
``tf.autodiff.ForwardAccumulator`` work through it (this module registers the gradient TensorFlow lacks for
``XlaDynamicUpdateSlice``, which forward-mode autodiff of an XLA-compiled VJP needs).  The Gaussian score ``g_σ``
the network takes as input can be passed in by a caller that has it already (``gaussian_score=``), so it is not
recomputed; its FFTs are < 1 % of the work (the network is ≈ 536 MFLOP per 64² map).

Weight files, metadata and the shipped-weight lookup live in :mod:`core.priors.weights` (re-exported here).
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import tensorflow as tf

from core.physics.geometry import MapGeometry, as_float_tensor, to_complex64
from core.priors.network import ScoreUNet, check_map_size
from core.priors.weights import (  # re-exported: the public names of the weight handling
    METADATA_FORMAT,
    METADATA_VERSION,
    PIXEL_SCALE_RTOL,
    WEIGHTS_DIR,
    check_geometry,
    describe_weights,
    find_shipped_weights,
    load_hybrid_prior,
    load_network,
    read_metadata,
    resolve_weights,
    save_network,
    shipped_prior,
    shipped_weights,
    weight_paths,
)

__all__ = [
    "HybridPrior",
    "DEFAULT_JIT_COMPILE",
    "load_hybrid_prior",
    "shipped_prior",
    "shipped_weights",
    "find_shipped_weights",
    "resolve_weights",
    "describe_weights",
    "read_metadata",
    "save_network",
    "load_network",
    "check_geometry",
    "weight_paths",
    "METADATA_FORMAT",
    "METADATA_VERSION",
    "RESIDUAL_FILTERS",
    "filter_residual",
    "residual_filter_weights",
    "PIXEL_SCALE_RTOL",
    "WEIGHTS_DIR",
]

logger = logging.getLogger(__name__)

RESIDUAL_FILTERS = ("wiener", "none")
DEFAULT_JIT_COMPILE = False
"""What ``jit_compile=None`` means (module docstring: XLA measured not to pay on the shared CPU)."""


def residual_filter_weights(power_map: np.ndarray | tf.Tensor) -> tf.Tensor:
    """The power map on the ``rfft2d`` half plane, float32 ``(N, N//2+1)``, for :func:`filter_residual`."""
    power = np.asarray(power_map, dtype=np.float64)
    return tf.constant(power[:, : power.shape[-1] // 2 + 1], tf.float32)


def filter_residual(raw: tf.Tensor, power_half: tf.Tensor, sigma: tf.Tensor, kind: str = "wiener") -> tf.Tensor:
    """Apply the noise-mode filter ``σ²/(P_k+σ²)`` (module docstring) to ``raw`` ``(B, N, N)``; ``sigma`` ``(B,)``."""
    if kind == "none":
        return raw
    if kind != "wiener":
        raise ValueError(f"residual_filter must be one of {RESIDUAL_FILTERS}, got {kind!r}")
    npix = raw.shape[-1] if raw.shape[-1] is not None else tf.shape(raw)[-1]
    s2 = tf.square(sigma)[:, None, None]
    weights = to_complex64(s2 / (power_half + s2))
    return tf.signal.irfft2d(tf.signal.rfft2d(raw) * weights, fft_length=[npix, npix])


def _xla_dynamic_update_slice_grad(op: Any, grad: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, None]:
    """Gradient of ``XlaDynamicUpdateSlice(input, update, indices)``, in standard ops.

    TensorFlow differentiates ``Slice`` inside XLA-compiled functions with this op (``_SliceGrad``) but registers
    no gradient for it, so differentiating a compiled VJP again — which forward-mode autodiff
    (``ForwardAccumulator``) does, and so do second derivatives — failed with ``LookupError``.  ∂/∂update is the
    slice of ``grad`` at ``indices``; ∂/∂input is ``grad`` with that window set to zero."""
    update = op.inputs[1]
    begin = tf.cast(op.inputs[2], tf.int32)
    size = tf.shape(update, out_type=tf.int32)
    grad_update = tf.slice(grad, begin, size)
    after = tf.shape(grad, out_type=tf.int32) - begin - size
    window = tf.pad(tf.ones_like(update), tf.stack([begin, after], axis=1))
    return grad * (1 - window), grad_update, None


try:
    tf.RegisterGradient("XlaDynamicUpdateSlice")(_xla_dynamic_update_slice_grad)
except KeyError:  # already registered (by a TensorFlow that has one, or a module reload)
    pass


def _sigma_sq(sigma: float | np.ndarray | tf.Tensor) -> tf.Tensor:
    """σ² float32 with two trailing unit axes (broadcastable against ``(..., N, N)``); Python σ checked."""
    if isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool):
        if not math.isfinite(float(sigma)) or float(sigma) < 0:
            raise ValueError(f"sigma must be a non-negative finite number, got {sigma!r}")
    return tf.square(as_float_tensor(sigma, "sigma"))[..., tf.newaxis, tf.newaxis]


class HybridPrior:
    """Gaussian prior score plus a learned residual score (same interface as ``GaussianPrior``).

    Parameters
    ----------
    gaussian_prior:
        A :class:`core.priors.gaussian.GaussianPrior` (anything with ``geometry``, ``power_map`` and
        ``score(κ, sigma)``).
    network:
        A built :class:`ScoreUNet`.
    metadata:
        The weights' metadata dict (used for the σ range); optional.
    jit_compile:
        ``True``: XLA-compile the residual; ``False``: run it as a plain ``tf.function`` graph; ``None``
        (default): :data:`DEFAULT_JIT_COMPILE` (``False``, see the module docstring).
    """

    has_log_prob = False

    def __init__(
        self,
        gaussian_prior: Any,
        network: ScoreUNet,
        metadata: dict[str, Any] | None = None,
        jit_compile: bool | None = None,
    ) -> None:
        if not hasattr(gaussian_prior, "score") or not hasattr(gaussian_prior, "geometry"):
            raise ValueError(f"gaussian_prior must provide .geometry and .score(kappa, sigma), got {type(gaussian_prior).__name__}")
        if not isinstance(network, ScoreUNet):
            raise ValueError(f"network must be a ScoreUNet, got {type(network).__name__}")
        if jit_compile is not None and not isinstance(jit_compile, bool):
            raise ValueError(f"jit_compile must be True, False or None, got {jit_compile!r}")
        self.gaussian = gaussian_prior
        self.network = network
        self.metadata = dict(metadata or {})
        check_map_size(self.geometry.npix, network.num_scales, "geometry.npix")
        self.residual_filter = str(self.metadata.get("residual_filter", "none"))
        if self.residual_filter not in RESIDUAL_FILTERS:
            raise ValueError(f"metadata residual_filter must be one of {RESIDUAL_FILTERS}, got {self.residual_filter!r}")
        self._power_half = residual_filter_weights(gaussian_prior.power_map)
        sig = self.metadata.get("sigma", {})
        self.sigma_min = float(sig.get("min", 1e-4))
        self.sigma_max = float(sig.get("max", 1e4))
        self.jit_compile = DEFAULT_JIT_COMPILE if jit_compile is None else jit_compile
        n = self.geometry.npix
        spec = tf.TensorSpec([None, n, n], tf.float32)
        self._residual_compiled = tf.function(
            self._residual_flat,
            input_signature=[spec, tf.TensorSpec([None], tf.float32), spec],
            jit_compile=self.jit_compile,
        )

    @property
    def geometry(self) -> MapGeometry:
        return self.gaussian.geometry

    @property
    def power_map(self) -> Any:
        return self.gaussian.power_map

    def __repr__(self) -> str:
        return (
            f"HybridPrior({self.geometry}, network={self.network.get_config()['channels']}, "
            f"sigma range [{self.sigma_min:g}, {self.sigma_max:g}], jit_compile={self.jit_compile})"
        )

    def _flatten(self, kappa: tf.Tensor, sigma: tf.Tensor | float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        kappa = as_float_tensor(kappa, "kappa")
        self.geometry.check_map(kappa, "kappa")
        batch_shape = tf.shape(kappa)[:-2]
        sigma = as_float_tensor(sigma, "sigma")
        sigma_b = tf.broadcast_to(sigma, batch_shape)
        n = self.geometry.npix
        return tf.reshape(kappa, [-1, n, n]), tf.reshape(sigma_b, [-1]), batch_shape

    def _residual_flat(self, flat_k: tf.Tensor, flat_s: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
        """Residual of a flat batch ``(B, N, N)`` with σ ``(B,)`` and Gaussian score ``g`` at σ (the reference
        forward: the network's own Keras call; :meth:`residual` runs it compiled)."""
        s_net = tf.clip_by_value(flat_s, self.sigma_min, self.sigma_max)
        if self.network.hybrid:
            # the network sees σ²·g at its own (clamped) σ: the Gaussian score at s_net where clamping changed σ.
            # (tf.where, not tf.cond: XLA cannot forward-differentiate the cond; the extra FFT pair costs < 1 %)
            g_clamped = tf.reshape(self.gaussian.score(flat_k, s_net), tf.shape(flat_k))
            g_net = tf.where(tf.equal(s_net, flat_s)[:, None, None], g, g_clamped)
            r = self.network((flat_k, s_net, g_net), training=False)
        else:
            r = self.network((flat_k, s_net), training=False)
        return filter_residual(r, self._power_half, s_net, self.residual_filter)

    def residual(self, kappa: tf.Tensor, sigma: tf.Tensor | float, gaussian_score: tf.Tensor | None = None) -> tf.Tensor:
        """The learned residual ``r_θ(κ, σ)``, same shape as ``kappa`` (σ clamped to the trained range).

        ``gaussian_score``: ``g_σ(κ)`` when the caller has it already (else computed here)."""
        kappa = as_float_tensor(kappa, "kappa")
        if gaussian_score is None:
            gaussian_score = self.gaussian.score(kappa, sigma)
        flat_k, flat_s, _ = self._flatten(kappa, sigma)
        n = self.geometry.npix
        g = tf.reshape(as_float_tensor(gaussian_score, "gaussian_score"), [-1, n, n])
        r = self._residual_compiled(flat_k, flat_s, g)
        return tf.reshape(r, tf.shape(kappa))

    def score(self, kappa: tf.Tensor, sigma: tf.Tensor | float = 0.0, gaussian_score: tf.Tensor | None = None) -> tf.Tensor:
        """``g_σ(κ) + r_θ(κ, σ)``; ``sigma`` a scalar or a tensor broadcastable to the batch shape.

        ``gaussian_score``: ``g_σ(κ)`` when the caller has it already (it is then not recomputed)."""
        kappa = as_float_tensor(kappa, "kappa")
        g = self.gaussian.score(kappa, sigma) if gaussian_score is None else as_float_tensor(gaussian_score, "gaussian_score")
        return g + self.residual(kappa, sigma, gaussian_score=g)

    # ------------------------------------------------------------------------ denoiser
    def denoise(self, x: tf.Tensor, sigma: tf.Tensor | float, gaussian_score: tf.Tensor | None = None) -> tf.Tensor:
        """Tweedie denoiser ``D(x, σ) = x + σ² s_σ(x)`` ≈ ``E[κ | x]`` for ``x = κ + σ n``; shape of ``x``."""
        x = as_float_tensor(x, "x")
        return x + _sigma_sq(sigma) * self.score(x, sigma, gaussian_score=gaussian_score)

    def denoise_jvp(self, x: tf.Tensor, sigma: tf.Tensor | float, tangent: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(D(x, σ), ∂D/∂x · tangent)`` by forward-mode autodiff (``tf.autodiff.ForwardAccumulator``)."""
        x = as_float_tensor(x, "x")
        with tf.autodiff.ForwardAccumulator(x, as_float_tensor(tangent, "tangent")) as acc:
            d = self.denoise(x, sigma)
        return d, acc.jvp(d)

    def denoise_vjp(self, x: tf.Tensor, sigma: tf.Tensor | float, cotangent: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(D(x, σ), cotangentᵀ · ∂D/∂x)`` by reverse-mode autodiff (``tf.GradientTape``)."""
        x = as_float_tensor(x, "x")
        with tf.GradientTape() as tape:
            tape.watch(x)
            d = self.denoise(x, sigma)
        return d, tape.gradient(d, x, output_gradients=as_float_tensor(cotangent, "cotangent"))
