r"""Residual U-Net that learns the *residual* score of the σ-convolved convergence prior.

The hybrid prior (:mod:`core.priors.hybrid`) writes the score of the σ-smoothed prior as

.. math::  ∇_κ \log p_σ(κ) ≈ g_σ(κ) + r_θ(κ, σ),\qquad
           g_σ(κ) = -F^{-1}\Big[\frac{F κ}{P_k + σ^2}\Big],

with ``g_σ`` the exact score of the Gaussian (theory-C_ℓ) prior and ``r_θ`` the output of this
network.  The network models ``σ · r_θ`` and its output is divided by ``σ``, so that the learned
quantity stays O(1)-bounded over the whole annealing range (the DSM target ``-u`` has unit
variance per pixel, see :mod:`core.priors.training`).

Architecture (:class:`ScoreUNet`)
---------------------------------
* Input channels (channels-last, ``(B, H, W, C)``):
  ``c_in(σ)·x`` with ``c_in(σ) = 1/√(σ² + σ_data²)`` (the noisy map scaled to unit variance,
  EDM-style preconditioning; ``σ_data`` is the training maps' pixel std, a config value),
  a constant channel ``log σ``, and in the *hybrid* variant ``c_in(σ)·σ²·g_σ(x)`` (the Gaussian
  Wiener-type denoising direction, which has the same units as ``x``).
* ``num_scales`` resolutions (default 3, channels 16-32-64); each resolution has
  ``blocks_per_scale`` pre-activation residual blocks on the way down and up:
  ``h = Conv(act(Norm(x))); h += Dense(e_σ); h = Conv(act(Norm(h))); out = x + h``
  (1×1 conv on the skip path when the channel count changes).  Down-sampling by 2×2 average
  pooling, up-sampling by nearest neighbour followed by a 3×3 conv, U-Net skip connections by
  concatenation, and ``log σ`` is concatenated again at the bottleneck (followed by a 1×1 conv).
* σ embedding ``e_σ``: fixed sinusoidal features of ``log σ`` → Dense → swish → Dense, projected by a
  per-block Dense layer and added to the block's feature maps.
* Normalisation: :class:`keras.layers.GroupNormalization` (per-sample statistics, so inference does
  not depend on the batch and there is no train/test mode switch, unlike batch norm).  Because the
  blocks are pre-activation residual, the un-normalised amplitude of the input survives on the skip
  path (the score depends on it).
* Optional spectral normalisation of every convolution (``spectral_norm=True``) with
  :class:`keras.layers.SpectralNormalization` (power iteration updated in training mode).
* Output scaling: the last 1×1 convolution's output ``o`` is returned as
  ``r_θ = c_out(σ)·o/σ`` with ``c_out(σ) = σ_data/√(σ² + σ_data²)``.  The DSM target for ``σ·r_θ`` is
  ``(E[κ|x] − E_G[κ|x])/σ`` (difference of the true and Gaussian posterior means), whose size is
  ≲ ``σ_data/σ`` at large σ and O(1) at small σ, so ``o`` stays O(1) at every σ.
* The output 1×1 convolution is zero-initialised by default (``zero_init_output``), so an
  untrained hybrid prior is exactly the Gaussian prior.

Map sizes: the network is fully convolutional.  Any even side ``≥ 2**num_scales`` is accepted; the
map is padded *periodically* (wrap-around, consistent with the FFT periodicity used by the lensing
operator and the Gaussian prior) up to the next multiple of ``2**(num_scales-1)`` and the output is
cropped back.  Convolutions themselves use zero ``"same"`` padding.

This module uses Keras 3 with the TensorFlow backend; tensors are float32, batch first.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["ScoreUNet", "build_score_network", "min_map_size", "check_map_size", "count_parameters"]

logger = logging.getLogger(__name__)

_ACTIVATIONS = ("swish", "gelu", "relu", "elu")


def min_map_size(num_scales: int) -> int:
    """Smallest map side accepted by a network with ``num_scales`` resolutions (``2**num_scales``)."""
    return 2 ** int(num_scales)


def check_map_size(npix: int, num_scales: int, name: str = "npix") -> None:
    """Raise ``ValueError`` unless ``npix`` is even and at least ``2**num_scales``."""
    npix = int(npix)
    if npix % 2:
        raise ValueError(f"{name}={npix} is odd; the score network accepts even map sizes only")
    if npix < min_map_size(num_scales):
        raise ValueError(
            f"{name}={npix} is too small for a score network with {num_scales} scales "
            f"(needs an even size >= {min_map_size(num_scales)})"
        )


def _conv(filters: int, kernel_size: int, spectral_norm: bool, name: str, zero: bool = False) -> keras.layers.Layer:
    conv = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        kernel_initializer="zeros" if zero else "glorot_uniform",
        name=name,
    )
    if spectral_norm and not zero:
        return keras.layers.SpectralNormalization(conv, name=f"{name}_sn")
    return conv


class _ResBlock(keras.layers.Layer):
    """Pre-activation residual block with an additive σ-embedding (see the module docstring)."""

    def __init__(self, filters: int, groups: int, activation: str, spectral_norm: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.norm1 = keras.layers.GroupNormalization(groups=min(groups, filters), name="norm1")
        self.conv1 = _conv(filters, 3, spectral_norm, "conv1")
        self.emb = keras.layers.Dense(filters, name="emb")
        self.norm2 = keras.layers.GroupNormalization(groups=min(groups, filters), name="norm2")
        self.conv2 = _conv(filters, 3, spectral_norm, "conv2")
        self.act = keras.layers.Activation(activation)
        self.skip: keras.layers.Layer | None = None
        self._spectral_norm = spectral_norm

    def build(self, input_shape: Any) -> None:
        x_shape, e_shape = input_shape
        if x_shape[-1] != self.filters:
            self.skip = keras.layers.Conv2D(self.filters, 1, name="skip")
            self.skip.build(x_shape)
        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        h_shape = tuple(x_shape[:-1]) + (self.filters,)
        self.emb.build(e_shape)
        self.norm2.build(h_shape)
        self.conv2.build(h_shape)
        self.built = True

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        x, e = inputs
        h = self.conv1(self.act(self.norm1(x)), training=training)
        h = h + self.emb(e)[:, None, None, :]
        h = self.conv2(self.act(self.norm2(h)), training=training)
        skip = self.skip(x) if self.skip is not None else x
        return skip + h


@keras.saving.register_keras_serializable(package="kappascope")
class ScoreUNet(keras.Model):
    r"""σ-conditioned residual U-Net returning ``r_θ(κ, σ)`` (already divided by σ).

    Call with ``model((kappa, sigma))`` or, for the hybrid variant,
    ``model((kappa, sigma, gaussian_score))`` where ``kappa`` is ``(B, H, W)`` float32, ``sigma``
    is ``(B,)`` (or a scalar, broadcast) and ``gaussian_score`` is ``g_σ(kappa)``, ``(B, H, W)``.
    Returns ``(B, H, W)``.

    Parameters
    ----------
    channels:
        Feature channels per resolution, e.g. ``(16, 32, 64)``; ``len(channels)`` is the number of scales.
    blocks_per_scale:
        Residual blocks per resolution on the encoder and on the decoder side.
    hybrid:
        Whether the network takes the Gaussian score as an extra input channel.
    sigma_data:
        Pixel standard deviation of the training maps, used in ``c_in(σ) = 1/√(σ²+σ_data²)``.
    groups:
        Group count of the group normalisation (capped at the channel count).
    embedding_dim:
        Width of the σ embedding.
    activation:
        One of ``swish``, ``gelu``, ``relu``, ``elu``.
    spectral_norm:
        Wrap every 3×3 convolution in :class:`keras.layers.SpectralNormalization`.
    zero_init_output:
        Zero-initialise the output convolution (untrained residual ≡ 0).
    """

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (16, 32, 64),
        blocks_per_scale: int = 1,
        hybrid: bool = True,
        sigma_data: float = 0.02,
        groups: int = 8,
        embedding_dim: int = 64,
        activation: str = "swish",
        spectral_norm: bool = False,
        zero_init_output: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1 or any(c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of positive integers, got {channels!r}")
        if int(blocks_per_scale) < 1:
            raise ValueError(f"blocks_per_scale must be >= 1, got {blocks_per_scale!r}")
        if not (np.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be a positive finite float, got {sigma_data!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        if int(groups) < 1 or int(embedding_dim) < 2 or int(embedding_dim) % 2:
            raise ValueError(f"groups must be >= 1 and embedding_dim a positive even integer, got {groups!r}, {embedding_dim!r}")
        self.channels = channels
        self.num_scales = len(channels)
        self.blocks_per_scale = int(blocks_per_scale)
        self.hybrid = bool(hybrid)
        self.sigma_data = float(sigma_data)
        self.groups = int(groups)
        self.embedding_dim = int(embedding_dim)
        self.activation = activation
        self.spectral_norm = bool(spectral_norm)
        self.zero_init_output = bool(zero_init_output)

        # σ embedding: fixed sinusoidal features of log σ, frequencies geometric in [0.1, 4]
        # (log σ spans about [-7, 1] over the annealing range)
        self._frequencies = np.geomspace(0.1, 4.0, self.embedding_dim // 2).astype(np.float32)
        self.emb_dense1 = keras.layers.Dense(self.embedding_dim, activation=activation, name="emb_dense1")
        self.emb_dense2 = keras.layers.Dense(self.embedding_dim, activation=activation, name="emb_dense2")

        self.stem = keras.layers.Conv2D(channels[0], 3, padding="same", name="stem")
        self.down_blocks: list[list[_ResBlock]] = []
        self.pools: list[keras.layers.Layer] = []
        for s, c in enumerate(channels):
            self.down_blocks.append(
                [_ResBlock(c, self.groups, activation, self.spectral_norm, name=f"down{s}_{b}") for b in range(self.blocks_per_scale)]
            )
            if s < self.num_scales - 1:
                self.pools.append(keras.layers.AveragePooling2D(2, name=f"pool{s}"))
        self.mid_in = keras.layers.Conv2D(channels[-1], 1, name="mid_in")
        self.mid_block = _ResBlock(channels[-1], self.groups, activation, self.spectral_norm, name="mid")
        self.ups: list[keras.layers.Layer] = []
        self.up_convs: list[keras.layers.Layer] = []
        self.up_blocks: list[list[_ResBlock]] = []
        for s in range(self.num_scales - 2, -1, -1):
            c = channels[s]
            self.ups.append(keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{s}"))
            self.up_convs.append(_conv(c, 3, self.spectral_norm, f"upconv{s}"))
            self.up_blocks.append(
                [_ResBlock(c, self.groups, activation, self.spectral_norm, name=f"upblock{s}_{b}") for b in range(self.blocks_per_scale)]
            )
        self.out_norm = keras.layers.GroupNormalization(groups=min(self.groups, channels[0]), name="out_norm")
        self.out_act = keras.layers.Activation(activation)
        self.out_conv = keras.layers.Conv2D(
            1, 1, kernel_initializer="zeros" if self.zero_init_output else "glorot_uniform", name="out_conv"
        )

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "blocks_per_scale": self.blocks_per_scale,
            "hybrid": self.hybrid,
            "sigma_data": self.sigma_data,
            "groups": self.groups,
            "embedding_dim": self.embedding_dim,
            "activation": self.activation,
            "spectral_norm": self.spectral_norm,
            "zero_init_output": self.zero_init_output,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ScoreUNet":
        return cls(**config)

    @property
    def pad_multiple(self) -> int:
        """Maps are wrap-padded internally to a multiple of this (``2**(num_scales-1)``)."""
        return 2 ** (self.num_scales - 1)

    def build_for(self, npix: int = 32) -> "ScoreUNet":
        """Create the weights by a forward pass on a dummy ``(1, npix, npix)`` batch; returns ``self``."""
        x = tf.zeros((1, npix, npix), tf.float32)
        sigma = tf.ones((1,), tf.float32)
        self(self._pack(x, sigma, x))
        return self

    def _pack(self, x: tf.Tensor, sigma: tf.Tensor, g: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return (x, sigma, g) if self.hybrid else (x, sigma)

    # ---------------------------------------------------------------- forward
    def _embed(self, log_sigma: tf.Tensor) -> tf.Tensor:
        angles = log_sigma[:, None] * tf.constant(self._frequencies)[None, :]
        feats = tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)
        return self.emb_dense2(self.emb_dense1(feats))

    def call(self, inputs: tuple[tf.Tensor, ...] | list[tf.Tensor], training: bool | None = None) -> tf.Tensor:
        if not isinstance(inputs, (tuple, list)) or len(inputs) != (3 if self.hybrid else 2):
            raise ValueError(
                f"inputs must be (kappa, sigma{', gaussian_score' if self.hybrid else ''}) for this "
                f"{'hybrid' if self.hybrid else 'plain'} network, got {type(inputs).__name__} of length "
                f"{len(inputs) if isinstance(inputs, (tuple, list)) else 'n/a'}"
            )
        x = tf.convert_to_tensor(inputs[0], tf.float32)
        if x.shape.rank != 3:
            raise ValueError(f"kappa must have shape (batch, H, W), got {x.shape}")
        batch = tf.shape(x)[0]
        sigma = tf.convert_to_tensor(inputs[1], tf.float32)
        sigma = tf.broadcast_to(tf.reshape(sigma, [-1]), [batch]) if sigma.shape.rank in (0, 1) else sigma
        height, width = x.shape[1], x.shape[2]
        if height is not None and width is not None:
            check_map_size(height, self.num_scales, "map height")
            check_map_size(width, self.num_scales, "map width")

        c_in = tf.math.rsqrt(sigma**2 + self.sigma_data**2)[:, None, None]
        log_sigma = tf.math.log(sigma)
        ones = tf.ones_like(x)
        chans = [x * c_in, ones * log_sigma[:, None, None]]
        if self.hybrid:
            g = tf.convert_to_tensor(inputs[2], tf.float32)
            chans.append(g * (sigma**2)[:, None, None] * c_in)
        h = tf.stack(chans, axis=-1)

        # periodic padding up to a multiple of 2**(num_scales-1)
        m = self.pad_multiple
        shape = tf.shape(h)
        pad_h = (-shape[1]) % m
        pad_w = (-shape[2]) % m
        h = tf.concat([h, h[:, :pad_h]], axis=1)
        h = tf.concat([h, h[:, :, :pad_w]], axis=2)

        e = self._embed(log_sigma)
        h = self.stem(h)
        skips = []
        for s in range(self.num_scales):
            for block in self.down_blocks[s]:
                h = block((h, e), training=training)
            if s < self.num_scales - 1:
                skips.append(h)
                h = self.pools[s](h)
        bottleneck_sigma = tf.ones_like(h[..., :1]) * log_sigma[:, None, None, None]
        h = self.mid_in(tf.concat([h, bottleneck_sigma], axis=-1))
        h = self.mid_block((h, e), training=training)
        for i in range(self.num_scales - 1):
            h = self.up_convs[i](self.ups[i](h), training=training)
            h = tf.concat([h, skips.pop()], axis=-1)
            for block in self.up_blocks[i]:
                h = block((h, e), training=training)
        out = self.out_conv(self.out_act(self.out_norm(h)))[..., 0]
        out = out[:, : shape[1], : shape[2]]
        c_out = self.sigma_data * tf.math.rsqrt(sigma**2 + self.sigma_data**2)
        return out * (c_out / sigma)[:, None, None]


def build_score_network(config: dict[str, Any] | None = None, npix: int = 32, seed: int | None = None) -> ScoreUNet:
    """Build a :class:`ScoreUNet` from a config dict (``ScoreUNet.get_config()`` output) and create its weights.

    ``seed`` makes the weight initialisation reproducible (``keras.utils.set_random_seed``).
    """
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    config = dict(config or {})
    model = ScoreUNet.from_config(config)
    model.build_for(max(npix, min_map_size(model.num_scales)))
    logger.debug("built ScoreUNet with %d parameters", count_parameters(model))
    return model


def count_parameters(model: keras.Model) -> int:
    """Number of scalar weights (trainable and not) of ``model``."""
    return int(sum(math.prod(v.shape) for v in model.weights))
