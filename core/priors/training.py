r"""Denoising score matching (DSM) for the residual score network of :mod:`core.priors.hybrid`.

Loss (residual form, per map, averaged over pixels and the batch)

.. math::  L(θ) = \mathbb{E}_{κ,σ,u}\; w(σ)\,\frac{1}{N}\big\|\,u + σ\,[\,g_σ(κ+σu) + r_θ(κ+σu, σ)\,]\big\|^2,
           \qquad u \sim \mathcal N(0, I),

with ``g_σ`` the exact score of the σ-convolved Gaussian prior (power ``P_k + σ²``) and ``r_θ`` the
network.  Its minimiser is the score of ``p_σ = p * N(0, σ²)`` (Vincent 2011).  The per-map term
equals ``‖E[κ|x] − κ̃(x)‖²/(Nσ²)`` up to a θ-independent constant (``κ̃`` the model's Tweedie
denoiser), and its minimum is the per-pixel MMSE divided by σ², which falls from 1 at small σ to
``Var κ/σ²`` at large σ.  To weight every σ alike we use (``loss_weighting="gaussian"``, default)

.. math::  w(σ) = 1 \Big/ \operatorname{mean}_k \frac{P_k}{P_k + σ^2},

the inverse of that minimum for a Gaussian field with power ``P``, so the Gaussian-only prior
scores ``≈ 1`` at every σ on Gaussian data (``loss_weighting="none"``: ``w = 1``).  Held-out
comparisons (:func:`heldout_dsm_losses`) are unweighted and made at fixed σ with common random
numbers, so the *difference* between two models is what tells them apart.

Noise levels: σ is drawn independently per map from the mixture

* with probability ``1 − small_fraction``: log-uniform on ``[sigma_min, sigma_max]`` (the whole
  annealing range, default ``[1e-3, 1]``),
* with probability ``small_fraction`` (default 0.3): log-uniform on ``[sigma_min, sigma_small]``
  (default ``sigma_small = 0.05``), where the prior's non-Gaussianity matters most.

Data: shifted-lognormal (or, for checks, Gaussian) fields simulated on the fly from the theory
power map (:mod:`core.physics.fields`), or random crops of the maps in a user directory (``.npy`` / ``.fits``
2-D images or 3-D stacks).  Each map gets a random element of the dihedral group of the square
(flips and 90° rotations).

Determinism: every random draw uses the stateless TF RNG with seeds derived from the run seed and
the step number (``tf.random.experimental.stateless_fold_in``), and the weights are initialised after
``keras.utils.set_random_seed(seed)``; a resumed run therefore sees the same batches as an
uninterrupted one.  Remaining nondeterminism: multi-threaded CPU/GPU reductions (oneDNN, cuDNN)
may differ in the last bits between runs unless ``tf.config.experimental.enable_op_determinism()``
is called (``--deterministic-ops``).

Checkpoints (``tf.train.Checkpoint`` of network, optimiser state and step, via a
``CheckpointManager``) are written every ``checkpoint_every`` steps and at the end; a run restarted
with the same ``checkpoint_dir`` resumes from the latest one.  The result is written as
``<output>.weights.h5`` + ``<output>.json`` (architecture config, pixel scale, training map size,
cosmology, lognormal shift, σ range and distribution, steps, losses, held-out losses of hybrid vs
Gaussian-only prior per σ, date, package versions and the command line).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import MapGeometry, as_float_tensor
from core.priors.hybrid import RESIDUAL_FILTERS, HybridPrior, filter_residual, save_network
from core.priors.network import ScoreUNet, build_score_network, check_map_size, count_parameters

__all__ = [
    "TrainingConfig",
    "TrainingResult",
    "SimulatedMaps",
    "MapDirectory",
    "sample_sigmas",
    "random_dihedral",
    "dsm_loss_per_map",
    "heldout_dsm_losses",
    "train",
    "build_arg_parser",
    "run_training",
    "train_main",
]

logger = logging.getLogger(__name__)

ScoreFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


# ------------------------------------------------------------------------------ seeds
def _seed(seed: int | tf.Tensor) -> tf.Tensor:
    """Stateless ``[2]`` int32 seed (ints mapped deterministically, see ``core.physics.fields.stateless_seed``)."""
    from core.physics.fields import stateless_seed

    return stateless_seed(seed)


def _step_seeds(seed: tf.Tensor, step: int, num: int) -> list[tf.Tensor]:
    base = tf.random.experimental.stateless_fold_in(seed, step)
    return list(tfp.random.split_seed(base, n=num))


# ------------------------------------------------------------------------------- σ
def sample_sigmas(
    num: int,
    seed: int | tf.Tensor,
    sigma_min: float = 1e-3,
    sigma_max: float = 1.0,
    small_fraction: float = 0.3,
    sigma_small: float = 0.05,
) -> tf.Tensor:
    """``num`` noise levels from the mixture in the module docstring, float32 ``(num,)``."""
    if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    if not 0.0 <= small_fraction <= 1.0:
        raise ValueError(f"small_fraction must be in [0, 1], got {small_fraction!r}")
    if not sigma_min < sigma_small <= sigma_max:
        raise ValueError(f"sigma_small must be in (sigma_min, sigma_max], got {sigma_small!r}")
    s_choice, s_u = tfp.random.split_seed(_seed(seed), n=2)
    small = tf.random.stateless_uniform([num], s_choice) < small_fraction
    u = tf.random.stateless_uniform([num], s_u, dtype=tf.float64)
    lo = math.log(sigma_min)
    hi = tf.where(small, tf.constant(math.log(sigma_small), tf.float64), tf.constant(math.log(sigma_max), tf.float64))
    return tf.cast(tf.exp(lo + u * (hi - lo)), tf.float32)


def random_dihedral(maps: tf.Tensor, seed: int | tf.Tensor) -> tf.Tensor:
    """Apply to each map of ``(B, N, N)`` an independent random flip / 90° rotation (8 symmetries)."""
    maps = as_float_tensor(maps, "maps")
    choice = tf.random.stateless_uniform([tf.shape(maps)[0]], _seed(seed), minval=0, maxval=8, dtype=tf.int32)
    rotations = [tf.experimental.numpy.rot90(maps, k=k, axes=(1, 2)) for k in range(4)]
    variants = tf.stack(rotations + [r[:, :, ::-1] for r in rotations], axis=0)  # (8, B, N, N)
    idx = tf.stack([choice, tf.range(tf.shape(maps)[0])], axis=-1)
    return tf.gather_nd(variants, idx)


# ----------------------------------------------------------------------------- data
class SimulatedMaps:
    """Convergence maps simulated on the fly from a power map: ``kind`` ``"lognormal"`` or ``"gaussian"``."""

    def __init__(self, power_map: np.ndarray, kind: str = "lognormal", shift: float | None = None) -> None:
        from core.physics.fields import DEFAULT_SHIFT

        if kind not in ("lognormal", "gaussian"):
            raise ValueError(f"kind must be 'lognormal' or 'gaussian', got {kind!r}")
        self.power_map = np.asarray(power_map, dtype=np.float64)
        self.kind = kind
        self.shift = float(DEFAULT_SHIFT if shift is None else shift)
        self.npix = int(self.power_map.shape[-1])

    def sample(self, num: int, seed: int | tf.Tensor) -> tf.Tensor:
        from core.physics.fields import gaussian_field, lognormal_field

        if self.kind == "lognormal":
            return lognormal_field(self.power_map, num, seed, shift=self.shift)
        return gaussian_field(self.power_map, num, seed)

    @property
    def pixel_std(self) -> float:
        """Expected pixel standard deviation, ``√(mean P_k)`` (Parseval)."""
        return float(np.sqrt(self.power_map.mean()))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "lognormal":
            out["shift"] = self.shift
        return out


class MapDirectory:
    """Random ``npix × npix`` crops of the maps in a directory (``*.npy``, ``*.fits``; 2-D or 3-D stacks)."""

    def __init__(self, path: str | Path, npix: int) -> None:
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"data_dir {str(path)!r} is not a directory")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".npy", ".fits", ".fit", ".fts"))
        if not files:
            raise ValueError(f"data_dir {str(path)!r} holds no .npy or .fits maps")
        maps: list[np.ndarray] = []
        for f in files:
            arr = self._read(f)
            arr = arr[None] if arr.ndim == 2 else arr
            if arr.ndim != 3 or min(arr.shape[-2:]) < npix:
                raise ValueError(f"data_dir file {f.name} has shape {arr.shape}; need 2-D maps (or 3-D stacks) of at least {npix}×{npix}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"data_dir file {f.name} contains non-finite values")
            maps.extend(np.asarray(m, dtype=np.float32) for m in arr)
        self.maps = maps
        self.npix = int(npix)
        self.path = path
        self._pixel_std = float(np.sqrt(np.mean([np.var(m) for m in maps])))

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        from astropy.io import fits

        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.data is not None and getattr(hdu, "is_image", False):
                    return np.asarray(hdu.data, dtype=np.float64)
        raise ValueError(f"data_dir file {path.name}: no image HDU")

    def sample(self, num: int, seed: int | tf.Tensor) -> tf.Tensor:
        s_idx, s_row, s_col = tfp.random.split_seed(_seed(seed), n=3)
        idx = tf.random.stateless_uniform([num], s_idx, 0, len(self.maps), dtype=tf.int32).numpy()
        fr = tf.random.stateless_uniform([num], s_row, dtype=tf.float64).numpy()
        fc = tf.random.stateless_uniform([num], s_col, dtype=tf.float64).numpy()
        out = np.empty((num, self.npix, self.npix), np.float32)
        for j, (i, a, b) in enumerate(zip(idx, fr, fc)):
            m = self.maps[i]
            r0 = int(a * (m.shape[0] - self.npix + 1))
            c0 = int(b * (m.shape[1] - self.npix + 1))
            out[j] = m[r0 : r0 + self.npix, c0 : c0 + self.npix]
        return tf.constant(out)

    @property
    def pixel_std(self) -> float:
        return self._pixel_std

    def describe(self) -> dict[str, Any]:
        return {"kind": "directory", "path": str(self.path), "num_maps": len(self.maps)}


# ----------------------------------------------------------------------------- loss
def dsm_loss_per_map(score_fn: ScoreFn, kappa: tf.Tensor, sigma: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Per-map DSM loss ``mean_pixels (u + σ s(κ + σu, σ))²``, shape ``(B,)``; ``sigma`` is ``(B,)``."""
    x = kappa + sigma[:, None, None] * noise
    s = score_fn(x, sigma)
    return tf.reduce_mean(tf.square(noise + sigma[:, None, None] * s), axis=(-2, -1))


def heldout_dsm_losses(
    score_fns: dict[str, ScoreFn],
    maps: tf.Tensor,
    sigmas: Sequence[float],
    seed: int | tf.Tensor,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Held-out DSM loss of several score functions on the same maps, noise and σ values.

    Every map is noised with a fixed ``u`` at every σ in ``sigmas`` (common random numbers for all
    models).  Returns ``{"sigma": [...], "<name>": {"mean": [...], "sem": [...]}, "diff_<a>_minus_<b>": ...}``
    where ``sem`` is the standard error of the mean over maps, and for each pair (first model minus
    every other) the paired difference's mean and standard error — the Monte-Carlo error relevant
    for deciding which model is better.
    """
    maps = as_float_tensor(maps, "maps")
    num = int(maps.shape[0])
    noise = tf.random.stateless_normal(tf.shape(maps), _seed(seed))
    per_model: dict[str, list[np.ndarray]] = {k: [] for k in score_fns}
    for s in sigmas:
        sig = tf.fill([num], tf.constant(float(s), tf.float32))
        for name, fn in score_fns.items():
            parts = [
                dsm_loss_per_map(fn, maps[i : i + batch_size], sig[i : i + batch_size], noise[i : i + batch_size]).numpy()
                for i in range(0, num, batch_size)
            ]
            per_model[name].append(np.concatenate(parts))
    out: dict[str, Any] = {"sigma": [float(s) for s in sigmas], "num_maps": num}
    names = list(score_fns)
    for name in names:
        arr = np.stack(per_model[name])  # (levels, maps)
        out[name] = {"mean": arr.mean(1).tolist(), "sem": (arr.std(1, ddof=1) / np.sqrt(num)).tolist()}
    for other in names[1:]:
        d = np.stack(per_model[names[0]]) - np.stack(per_model[other])
        out[f"diff_{names[0]}_minus_{other}"] = {"mean": d.mean(1).tolist(), "sem": (d.std(1, ddof=1) / np.sqrt(num)).tolist()}
    return out


# ---------------------------------------------------------------------------- config
@dataclass
class TrainingConfig:
    """All settings of a training run (see ``kappascope train --help`` for their meaning)."""

    output: str = "score_network"
    npix: int = 64
    pixel_size_arcmin: float = 104.4 / 120
    z_source: float = 1.0
    field: str = "lognormal"
    shift: float | None = None
    data_dir: str | None = None
    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_scale: int = 2
    hybrid: bool = True
    spectral_norm: bool = False
    zero_init_output: bool = True
    residual_filter: str = "wiener"
    steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    clipnorm: float = 1.0
    sigma_min: float = 1e-3
    sigma_max: float = 1.0
    sigma_small: float = 0.05
    small_fraction: float = 0.3
    loss_weighting: str = "gaussian"
    val_maps: int = 32
    val_sigmas: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
    val_every: int = 250
    checkpoint_dir: str | None = None
    checkpoint_every: int = 250
    seed: int = 0
    progress: bool = True
    deterministic_ops: bool = False
    command: str | None = None
    note: str | None = None

    def validate(self) -> None:
        MapGeometry(self.npix, self.pixel_size_arcmin)  # raises ValueError naming npix/pixel_size
        check_map_size(self.npix, len(self.channels), "npix")
        if self.residual_filter not in RESIDUAL_FILTERS:
            raise ValueError(f"residual_filter must be one of {RESIDUAL_FILTERS}, got {self.residual_filter!r}")
        if self.loss_weighting not in ("gaussian", "none"):
            raise ValueError(f"loss_weighting must be 'gaussian' or 'none', got {self.loss_weighting!r}")
        if self.field not in ("lognormal", "gaussian"):
            raise ValueError(f"field must be 'lognormal' or 'gaussian', got {self.field!r}")
        for name in ("steps", "batch_size", "val_maps", "val_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps!r}")
        if not (self.learning_rate > 0 and self.clipnorm > 0):
            raise ValueError(f"learning_rate and clipnorm must be positive, got {self.learning_rate!r}, {self.clipnorm!r}")
        if not (self.z_source > 0):
            raise ValueError(f"z_source must be positive, got {self.z_source!r}")
        sample_sigmas(1, 0, self.sigma_min, self.sigma_max, self.small_fraction, self.sigma_small)
        if not self.val_sigmas or any(not (s > 0) for s in self.val_sigmas):
            raise ValueError(f"val_sigmas must be positive, got {self.val_sigmas!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["val_sigmas"] = list(self.val_sigmas)
        return d


@dataclass
class TrainingResult:
    network: ScoreUNet
    prior: HybridPrior
    metadata: dict[str, Any]
    weights_path: Path | None
    metadata_path: Path | None
    history: list[dict[str, float]] = field(default_factory=list)


def _power_map(config: TrainingConfig, geometry: MapGeometry) -> np.ndarray:
    from core.physics.cosmology import DEFAULT_SOURCE_REDSHIFT, TheorySpectrum, default_power_map

    if abs(config.z_source - DEFAULT_SOURCE_REDSHIFT) < 1e-9:
        return default_power_map(geometry)
    return TheorySpectrum.from_ccl(sources=config.z_source).power_map(geometry)


def _versions() -> dict[str, str]:
    import astropy
    import pyccl

    import core

    return {
        "kappascope": core.__version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tensorflow_probability": tfp.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pyccl": pyccl.__version__,
        "astropy": astropy.__version__,
    }


# ----------------------------------------------------------------------------- train
def train(config: TrainingConfig, save: bool = True, stop_at: int | None = None) -> TrainingResult:
    """Run (or resume) DSM training as described in the module docstring; write weights + metadata if ``save``.

    ``stop_at`` ends this session after that many steps in total (checkpointing there) without
    changing the learning-rate schedule, which is laid out for ``config.steps``; a later call with the
    same ``checkpoint_dir`` continues.  Weights are only written once ``config.steps`` is reached.
    """
    from core.priors.gaussian import GaussianPrior

    config.validate()
    if config.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    geometry = MapGeometry(config.npix, config.pixel_size_arcmin)
    power = _power_map(config, geometry)
    gaussian = GaussianPrior(geometry, power)
    if config.data_dir is not None:
        source = MapDirectory(config.data_dir, config.npix)
    else:
        source = SimulatedMaps(power, kind=config.field, shift=config.shift)

    net_config = {
        "channels": list(config.channels),
        "blocks_per_scale": config.blocks_per_scale,
        "hybrid": config.hybrid,
        "spectral_norm": config.spectral_norm,
        "zero_init_output": config.zero_init_output,
        "sigma_data": float(source.pixel_std),
    }
    network = build_score_network(net_config, npix=config.npix, seed=config.seed)
    prior = HybridPrior(
        gaussian, network, {"sigma": {"min": config.sigma_min, "max": config.sigma_max}, "residual_filter": config.residual_filter}
    )
    decay = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if config.warmup_steps else config.learning_rate,
        decay_steps=config.steps - config.warmup_steps,
        alpha=0.02,
        warmup_target=config.learning_rate if config.warmup_steps else None,
        warmup_steps=config.warmup_steps,
    )
    optimizer = keras.optimizers.Adam(learning_rate=decay, global_clipnorm=config.clipnorm)
    optimizer.build(network.trainable_variables)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    history: list[dict[str, float]] = []

    manager = None
    if config.checkpoint_dir is not None:
        ckpt = tf.train.Checkpoint(network=network, optimizer=optimizer, step=step_var)
        manager = tf.train.CheckpointManager(ckpt, config.checkpoint_dir, max_to_keep=2)
        if manager.latest_checkpoint:
            ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            hist_path = Path(config.checkpoint_dir) / "history.json"
            if hist_path.exists():
                history = [h for h in json.loads(hist_path.read_text()) if h["step"] <= int(step_var.numpy())]
            logger.info("resumed from %s at step %d", manager.latest_checkpoint, int(step_var.numpy()))

    base_seed = _seed(config.seed)
    val_seed_maps, val_seed_noise = tfp.random.split_seed(tf.random.experimental.stateless_fold_in(base_seed, -1), n=2)
    val_maps = source.sample(config.val_maps, val_seed_maps)

    def hybrid_score(x: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
        return prior.score(x, s)

    compiled_hybrid = tf.function(hybrid_score, reduce_retracing=True)

    power_tf = tf.constant(power, tf.float32)

    def loss_weight(sigma: tf.Tensor) -> tf.Tensor:
        if config.loss_weighting == "none":
            return tf.ones_like(sigma)
        return 1.0 / tf.reduce_mean(power_tf / (power_tf + sigma[:, None, None] ** 2), axis=(-2, -1))

    val_weights = loss_weight(tf.constant(config.val_sigmas, tf.float32)).numpy()

    def validate() -> float:
        """Held-out loss: mean over ``val_sigmas`` of w(σ)·(mean DSM loss at σ), w as in training."""
        res = heldout_dsm_losses({"hybrid": compiled_hybrid}, val_maps, config.val_sigmas, val_seed_noise)
        return float(np.mean(val_weights * np.asarray(res["hybrid"]["mean"])))

    variables = network.trainable_variables

    @tf.function(reduce_retracing=True)
    def train_step(kappa: tf.Tensor, sigma: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
        x = kappa + sigma[:, None, None] * noise
        g = gaussian.score(x, sigma)
        with tf.GradientTape() as tape:
            raw = network((x, sigma, g) if network.hybrid else (x, sigma), training=True)
            r = filter_residual(raw, prior._power_half, sigma, config.residual_filter)
            per_map = tf.reduce_mean(tf.square(noise + sigma[:, None, None] * (g + r)), axis=(-2, -1))
            loss = tf.reduce_mean(loss_weight(sigma) * per_map)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    start = int(step_var.numpy())
    t0 = time.time()
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, disable=not config.progress, desc="DSM training", unit="step")
    except ImportError:  # pragma: no cover - tqdm is a dependency
        bar = None
    ema = None
    end = config.steps if stop_at is None else max(start, min(int(stop_at), config.steps))
    for step in range(start, end):
        s_data, s_aug, s_sigma, s_noise = _step_seeds(base_seed, step, 4)
        kappa = random_dihedral(source.sample(config.batch_size, s_data), s_aug)
        sigma = sample_sigmas(config.batch_size, s_sigma, config.sigma_min, config.sigma_max, config.small_fraction, config.sigma_small)
        noise = tf.random.stateless_normal(tf.shape(kappa), s_noise)
        loss = float(train_step(kappa, sigma, noise).numpy())
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became non-finite at step {step}")
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        step_var.assign(step + 1)
        done = step + 1
        record: dict[str, float] | None = None
        if done % config.val_every == 0 or done == config.steps:
            record = {"step": done, "train_loss_ema": ema, "val_loss": validate(), "elapsed_s": time.time() - t0}
            history.append(record)
            logger.info("step %d: train loss (EMA) %.5f, validation loss %.5f", done, ema, record["val_loss"])
        if bar is not None:
            bar.update(1)
            if record is not None:
                bar.set_postfix(loss=f"{ema:.4f}", val=f"{record['val_loss']:.4f}")
        if manager is not None and (done % config.checkpoint_every == 0 or done in (config.steps, end)):
            manager.save(checkpoint_number=done)
            (Path(config.checkpoint_dir) / "history.json").write_text(json.dumps(history))
    if bar is not None:
        bar.close()
    wall = time.time() - t0
    if int(step_var.numpy()) < config.steps:
        logger.info("stopped at step %d of %d (resume with the same checkpoint_dir)", int(step_var.numpy()), config.steps)
        partial = {"training": {"steps_done": int(step_var.numpy()), "history": history}, "sigma": prior.metadata["sigma"]}
        return TrainingResult(network, prior, partial, None, None, history)

    gaussian_score = tf.function(lambda x, s: gaussian.score(x, s), reduce_retracing=True)
    heldout = heldout_dsm_losses({"hybrid": compiled_hybrid, "gaussian": gaussian_score}, val_maps, config.val_sigmas, val_seed_noise)
    metadata: dict[str, Any] = {
        "description": "residual score network r_θ(κ, σ) of the hybrid prior: score = Gaussian score + r_θ",
        "note": config.note,
        "pixel_size_arcmin": float(config.pixel_size_arcmin),
        "train_npix": int(config.npix),
        "min_npix": 2 ** len(config.channels),
        "num_parameters": count_parameters(network),
        "residual_filter": config.residual_filter,
        "training_data": {
            **source.describe(),
            "z_source": float(config.z_source),
            "cosmology": "Planck18 (astropy) via pyccl, core.physics.cosmology defaults",
            "power_map": "TheorySpectrum.from_ccl(...).power_map(geometry) with pixel window",
            "pixel_std": float(source.pixel_std),
        },
        "sigma": {
            "min": float(config.sigma_min),
            "max": float(config.sigma_max),
            "distribution": (
                f"per map: with prob {1 - config.small_fraction:g} log-uniform on [{config.sigma_min:g}, {config.sigma_max:g}], "
                f"with prob {config.small_fraction:g} log-uniform on [{config.sigma_min:g}, {config.sigma_small:g}]"
            ),
        },
        "training": {
            "steps": int(config.steps),
            "batch_size": int(config.batch_size),
            "optimizer": f"Adam, cosine decay from {config.learning_rate:g} (warm-up {config.warmup_steps} steps), global clipnorm {config.clipnorm:g}",
            "augmentation": "random flips and 90-degree rotations",
            "loss_weighting": config.loss_weighting,
            "seed": int(config.seed),
            "wall_time_s_this_session": round(wall, 1),
            "final_train_loss_ema": ema,
            "final_val_loss": history[-1]["val_loss"] if history else None,
            "val_loss_definition": "mean over val_sigmas of w(sigma) x held-out DSM loss at sigma (same weighting as training)",
            "history": history,
            "heldout_dsm_loss": heldout,
            "config": config.to_dict(),
        },
        "provenance": {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
            "platform": platform.platform(),
            "command": config.command,
        },
    }
    prior.metadata = metadata
    weights_path = meta_path = None
    if save:
        weights_path, meta_path = save_network(network, config.output, metadata)
        logger.info("wrote %s and %s", weights_path, meta_path)
    return TrainingResult(network, prior, metadata, weights_path, meta_path, history)


# ------------------------------------------------------------------------------- CLI
def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def build_arg_parser(prog: str = "kappascope train") -> argparse.ArgumentParser:
    """The argument parser of ``kappascope train`` (every option documented in ``--help``)."""
    d = TrainingConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Train the residual score network of the hybrid prior by denoising score matching on simulated "
            "lognormal convergence maps (or on your own maps) and write <output>.weights.h5 + <output>.json."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("output and run")
    g.add_argument("--output", default=d.output, help="path stem of the result: writes STEM.weights.h5 and STEM.json")
    g.add_argument("--steps", type=int, default=d.steps, help="number of optimiser steps in total (a resumed run continues up to this)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="maps per optimiser step")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of weight initialisation, data, noise levels and augmentations")
    g.add_argument("--checkpoint-dir", default=None, help="directory for resumable checkpoints (network, optimiser, step); resumes if it holds one")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    g.add_argument("--val-every", type=int, default=d.val_every, help="steps between validation-loss evaluations")
    g.add_argument("--val-maps", type=int, default=d.val_maps, help="number of held-out validation maps (fixed seed)")
    g.add_argument("--val-sigmas", type=_float_list, default=d.val_sigmas, help="comma-separated noise levels of the validation loss")
    g.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    g.add_argument("--deterministic-ops", action="store_true", help="call tf.config.experimental.enable_op_determinism() (slower)")
    g.add_argument("--note", default=None, help="free-text note stored in the metadata JSON (e.g. 'briefly trained')")
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    g = p.add_argument_group("maps")
    g.add_argument("--npix", type=int, default=d.npix, help="training map side in pixels (even, >= 2**number of scales)")
    g.add_argument("--pixel-size", type=float, default=d.pixel_size_arcmin, help="pixel side in arcmin (the weights only serve maps at this scale)")
    g.add_argument("--z-source", type=float, default=d.z_source, help="source-plane redshift of the theory power spectrum (Planck18)")
    g.add_argument("--field", choices=["lognormal", "gaussian"], default=d.field, help="kind of simulated training maps")
    g.add_argument("--shift", type=float, default=None, help="lognormal shift lambda (default: core.physics.fields.DEFAULT_SHIFT)")
    g.add_argument("--data-dir", default=None, help="train on random crops of the .npy/.fits maps in this directory instead of simulations")
    g = p.add_argument_group("network")
    g.add_argument("--channels", type=_int_list, default=d.channels, help="comma-separated channels per U-Net scale")
    g.add_argument("--blocks-per-scale", type=int, default=d.blocks_per_scale, help="residual blocks per scale (encoder and decoder)")
    g.add_argument("--no-hybrid", action="store_true", help="do not give the network the Gaussian score as an input channel")
    g.add_argument("--spectral-norm", action="store_true", help="spectrally normalise every 3x3 convolution")
    g.add_argument("--residual-filter", choices=list(RESIDUAL_FILTERS), default=d.residual_filter,
                   help="filter of the network output: 'wiener' keeps it to noise-dominated Fourier modes (sigma^2/(P+sigma^2)), 'none' uses it as is")
    g = p.add_argument_group("optimisation and noise levels")
    g.add_argument("--learning-rate", type=float, default=d.learning_rate, help="peak Adam learning rate (cosine decay)")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear learning-rate warm-up steps")
    g.add_argument("--clipnorm", type=float, default=d.clipnorm, help="global gradient-norm clipping")
    g.add_argument("--sigma-min", type=float, default=d.sigma_min, help="smallest training noise level")
    g.add_argument("--sigma-max", type=float, default=d.sigma_max, help="largest training noise level")
    g.add_argument("--sigma-small", type=float, default=d.sigma_small, help="upper end of the extra small-sigma component")
    g.add_argument("--small-fraction", type=float, default=d.small_fraction, help="probability of drawing sigma from the small-sigma component")
    g.add_argument("--loss-weighting", choices=["gaussian", "none"], default=d.loss_weighting, help="per-sigma loss weight: inverse Gaussian minimum loss, or none")
    return p


def config_from_args(args: argparse.Namespace, command: str | None = None) -> TrainingConfig:
    """Translate parsed arguments into a :class:`TrainingConfig`."""
    return TrainingConfig(
        output=args.output,
        npix=args.npix,
        pixel_size_arcmin=args.pixel_size,
        z_source=args.z_source,
        field=args.field,
        shift=args.shift,
        data_dir=args.data_dir,
        channels=tuple(args.channels),
        blocks_per_scale=args.blocks_per_scale,
        hybrid=not args.no_hybrid,
        spectral_norm=args.spectral_norm,
        residual_filter=args.residual_filter,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        clipnorm=args.clipnorm,
        sigma_min=args.sigma_min,
        sigma_max=args.sigma_max,
        sigma_small=args.sigma_small,
        small_fraction=args.small_fraction,
        loss_weighting=args.loss_weighting,
        val_maps=args.val_maps,
        val_sigmas=tuple(args.val_sigmas),
        val_every=args.val_every,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        progress=not args.no_progress,
        deterministic_ops=args.deterministic_ops,
        command=command,
        note=args.note,
    )


def run_training(args: argparse.Namespace, command: str | None = None) -> TrainingResult:
    """Run training from parsed ``build_arg_parser()`` arguments."""
    logging.basicConfig(level=getattr(logging, args.log_level, logging.INFO), format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    return train(config_from_args(args, command))


def train_main(argv: list[str] | None = None, command: str | None = None) -> int:
    """Entry point of ``kappascope train``; returns the exit status (2 for bad settings).

    ``command`` is the command line recorded in the metadata (default ``kappascope train <argv>``).
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if command is None:
        command = "kappascope train " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        result = run_training(args, command=command)
    except ValueError as err:
        logger.error("%s", err)
        sys.stderr.write(f"kappascope train: error: {err}\n")
        return 2
    heldout = result.metadata["training"]["heldout_dsm_loss"]
    logger.info("held-out DSM loss (hybrid vs gaussian) per sigma: %s", json.dumps({k: heldout[k] for k in ("sigma", "hybrid", "gaussian")}))
    return 0
