r"""The DSM training loop: :class:`TrainingConfig`, :func:`train`, checkpoints and the weights' metadata.

Objective and noise levels: :mod:`core.priors.training.objective`; data: :mod:`core.priors.training.data`.

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
cosmology, training data, σ range and distribution, steps, losses, held-out losses of hybrid vs
Gaussian-only prior per σ, date, package versions and the command line).

Before any training step (:func:`preflight`): the settings are validated, an existing
``<output>.weights.h5`` / ``<output>.json`` is refused unless ``overwrite`` (shipped weights in
``assets/weights`` included), and the output folder and the checkpoint folder are created and
checked writable, so a bad path is reported at once and not after the training.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.options import HALO_CLUSTERING
from core.physics.geometry import MapGeometry
from core.priors.hybrid import RESIDUAL_FILTERS, HybridPrior, filter_residual, save_network
from core.priors.network import ScoreUNet, build_score_network, check_map_size, count_parameters
from core.priors.training.data import MapDirectory, _seed, _step_seeds, make_map_source, parse_source, random_dihedral
from core.priors.training.objective import heldout_dsm_losses, sample_sigmas

__all__ = ["TrainingConfig", "TrainingResult", "preflight", "train"]

logger = logging.getLogger(__name__)


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
    halo_clustering: str = "poisson"
    data_dir: str | None = None
    init_weights: str | None = None
    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_scale: int = 2
    groups: int = 8
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
    overwrite: bool = False

    def validate(self) -> None:
        MapGeometry(self.npix, self.pixel_size_arcmin)  # raises ValueError naming npix/pixel_size
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be positive integers, got {self.channels!r}")
        if isinstance(self.groups, bool) or not isinstance(self.groups, (int, np.integer)) or self.groups < 1:
            raise ValueError(f"groups must be a positive integer, got {self.groups!r}")
        # GroupNormalization uses min(groups, channels) groups, which must divide the channels
        bad = [int(c) for c in self.channels if int(c) % min(int(self.groups), int(c))]
        if bad:
            raise ValueError(
                f"channels={','.join(str(int(c)) for c in self.channels)}: {', '.join(map(str, bad))} cannot be split into "
                f"{self.groups} GroupNorm groups; use multiples of groups={self.groups} (or fewer than {self.groups} channels "
                "that still divide evenly) or change --groups"
            )
        # the first block of scale s normalises the pooled output of scale s − 1 with min(groups, channels[s]) groups
        narrow = [(int(a), int(b)) for a, b in zip(self.channels[:-1], self.channels[1:])
                  if int(a) % min(int(self.groups), int(b))]
        if narrow:
            raise ValueError(
                f"channels={','.join(str(int(c)) for c in self.channels)}: the first block of a {narrow[0][1]}-channel scale "
                f"normalises the {narrow[0][0]} channels of the scale above in {min(int(self.groups), narrow[0][1])} GroupNorm "
                f"groups, which do not divide them; use channel counts that are multiples of groups={self.groups} or "
                "change --groups"
            )
        if isinstance(self.blocks_per_scale, bool) or int(self.blocks_per_scale) < 1:
            raise ValueError(f"blocks_per_scale must be a positive integer, got {self.blocks_per_scale!r}")
        check_map_size(self.npix, len(self.channels), "npix")
        if self.residual_filter not in RESIDUAL_FILTERS:
            raise ValueError(f"residual_filter must be one of {RESIDUAL_FILTERS}, got {self.residual_filter!r}")
        if self.loss_weighting not in ("gaussian", "none"):
            raise ValueError(f"loss_weighting must be 'gaussian' or 'none', got {self.loss_weighting!r}")
        parse_source(self.field)
        if self.halo_clustering not in HALO_CLUSTERING:
            raise ValueError(f"halo_clustering must be one of {HALO_CLUSTERING}, got {self.halo_clustering!r}")
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
    from core.physics.cosmology import theory_power_map

    return theory_power_map(geometry, config.z_source)


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


def _check_writable_dir(folder: Path, option: str) -> None:
    """Create ``folder`` if needed and check a file can be written there; ValueError naming ``option``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kappascope_write_test_", delete=True):
            pass
    except OSError as err:
        raise ValueError(f"{option} {str(folder)!r} is not a writable directory ({err.strerror or err})") from err


def preflight(config: TrainingConfig, save: bool = True) -> None:
    """Every check that can fail before training starts (see the module docstring); ValueError naming the option."""
    from core.priors.weights import WEIGHTS_DIR, weight_paths

    config.validate()
    if save:
        weights_path, meta_path = weight_paths(config.output)
        existing = [p for p in (weights_path, meta_path) if p.exists()]
        if existing and not config.overwrite:
            shipped = any(p.resolve().parent == Path(WEIGHTS_DIR).resolve() for p in existing)
            what = "shipped weights" if shipped else "files"
            raise ValueError(
                f"output {config.output!r}: {what} {', '.join(str(p) for p in existing)} already exist; "
                "pass --overwrite to replace them or choose another --output"
            )
        if weights_path.parent.exists() and not weights_path.parent.is_dir():
            raise ValueError(f"output {config.output!r}: {str(weights_path.parent)!r} is not a directory")
        _check_writable_dir(weights_path.parent, "output folder")
    if config.checkpoint_dir is not None:
        folder = Path(config.checkpoint_dir)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"checkpoint_dir {str(folder)!r} exists and is not a directory")
        _check_writable_dir(folder, "checkpoint_dir")
    if config.init_weights is not None:
        _load_init_network(config)


def _load_init_network(config: TrainingConfig) -> tuple[ScoreUNet, dict[str, Any]]:
    """The network of ``config.init_weights`` (fine-tuning start); its architecture and scale must match."""
    from core.priors.weights import load_network

    try:
        network, meta = load_network(config.init_weights)
    except (OSError, KeyError) as err:
        raise ValueError(f"init_weights {config.init_weights!r}: cannot load ({err})") from err
    arch = network.get_config()
    wanted = {"channels": list(config.channels), "blocks_per_scale": config.blocks_per_scale, "hybrid": config.hybrid,
              "spectral_norm": config.spectral_norm}
    have = {k: (list(arch.get(k)) if k == "channels" else arch.get(k)) for k in wanted}
    if have != wanted:
        raise ValueError(f"init_weights {config.init_weights!r} has architecture {have}, the run asks for {wanted}")
    trained = float(meta.get("pixel_size_arcmin", float("nan")))
    if not abs(trained - config.pixel_size_arcmin) <= 1e-3 * config.pixel_size_arcmin:
        raise ValueError(f"init_weights {config.init_weights!r} serve pixel scale {trained:g} arcmin, the run trains "
                         f"at pixel_size={config.pixel_size_arcmin:g}")
    return network, meta


# ----------------------------------------------------------------------------- train
def train(config: TrainingConfig, save: bool = True, stop_at: int | None = None) -> TrainingResult:
    """Run (or resume) DSM training as described in the module docstring; write weights + metadata if ``save``.

    ``stop_at`` ends this session after that many steps in total (checkpointing there) without
    changing the learning-rate schedule, which is laid out for ``config.steps``; a later call with the
    same ``checkpoint_dir`` continues.  Weights are only written once ``config.steps`` is reached.
    """
    from core.priors.gaussian import GaussianPrior

    preflight(config, save=save)
    if config.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    geometry = MapGeometry(config.npix, config.pixel_size_arcmin)
    power = _power_map(config, geometry)
    gaussian = GaussianPrior(geometry, power)
    if config.data_dir is not None:
        source = MapDirectory(config.data_dir, config.npix, pixel_size_arcmin=config.pixel_size_arcmin)
    else:
        source = make_map_source(parse_source(config.field), geometry, power, shift=config.shift, z_source=config.z_source,
                                 halo_clustering=config.halo_clustering)

    net_config = {
        "channels": list(config.channels),
        "blocks_per_scale": config.blocks_per_scale,
        "hybrid": config.hybrid,
        "spectral_norm": config.spectral_norm,
        "zero_init_output": config.zero_init_output,
        "groups": int(config.groups),
        "sigma_data": float(source.pixel_std),
    }
    init_meta = None
    if config.init_weights is not None:
        init_network, init_meta = _load_init_network(config)
        net_config["sigma_data"] = float(init_network.get_config().get("sigma_data", net_config["sigma_data"]))
    network = build_score_network(net_config, npix=config.npix, seed=config.seed)
    if init_meta is not None:
        network.set_weights(init_network.get_weights())
        logger.info("initialised the network from %s", config.init_weights)
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
    gaussian_score = tf.function(lambda x, s: gaussian.score(x, s), reduce_retracing=True)
    # Trace the evaluation functions now: tracing reads the source files (autograph), which may change on
    # disk during a long run (a later first trace then mixes old and new code).
    warm = val_maps[: min(32, int(val_maps.shape[0]))]
    warm_sigma = tf.fill([int(warm.shape[0])], tf.constant(0.1, tf.float32))
    compiled_hybrid(warm, warm_sigma)
    gaussian_score(warm, warm_sigma)

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

    heldout = heldout_dsm_losses({"hybrid": compiled_hybrid, "gaussian": gaussian_score}, val_maps, config.val_sigmas, val_seed_noise)
    metadata: dict[str, Any] = {
        "description": "residual score network r_θ(κ, σ) of the hybrid prior: score = Gaussian score + r_θ",
        "note": config.note,
        "pixel_size_arcmin": float(config.pixel_size_arcmin),
        "train_npix": int(config.npix),
        "min_npix": 2 ** len(config.channels),
        "num_parameters": count_parameters(network),
        "residual_filter": config.residual_filter,
        "initialised_from": (None if init_meta is None else
                             {"path": str(config.init_weights), "sha256": init_meta.get("weights_sha256"),
                              "training_data": init_meta.get("training_data")}),
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
