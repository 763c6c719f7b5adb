"""The ``kappascope train`` command line: argument parser, translation into a :class:`TrainingConfig`, entry point.

TensorFlow-heavy modules are imported by the entry point only after the arguments parsed.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from core.options import HALO_CLUSTERING
from core.priors.hybrid import RESIDUAL_FILTERS
from core.priors.training.loop import TrainingConfig, TrainingResult, train

__all__ = ["build_arg_parser", "config_from_args", "run_training", "train_main"]

logger = logging.getLogger(__name__)


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
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing STEM.weights.h5 / STEM.json (shipped weights included); without it the run refuses to start")
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
    g.add_argument("--source", "--field", dest="field", default=d.field, metavar="KIND[+KIND]",
                   help="simulated training maps: 'lognormal', 'gaussian', 'halo_model' (core.physics.halos), or a per-map "
                        "mixture with equal probabilities such as 'halo_model+lognormal'")
    g.add_argument("--halo-clustering", choices=HALO_CLUSTERING, default=d.halo_clustering,
                   help="halo positions of the 'halo_model' maps: 'poisson' (uniform) or 'biased' (following the "
                        "large-scale field with the Tinker10 halo bias, core.physics.halos)")
    g.add_argument("--shift", type=float, default=None, help="lognormal shift lambda (default: core.physics.fields.DEFAULT_SHIFT)")
    g.add_argument("--data-dir", default=None, help="train on random crops of the .npy/.fits maps in this directory instead of simulations")
    g = p.add_argument_group("network")
    g.add_argument("--channels", type=_int_list, default=d.channels, help="comma-separated channels per U-Net scale")
    g.add_argument("--groups", type=int, default=d.groups, help="GroupNorm groups (min(groups, channels) per layer; must divide every channel count)")
    g.add_argument("--blocks-per-scale", type=int, default=d.blocks_per_scale, help="residual blocks per scale (encoder and decoder)")
    g.add_argument("--init-weights", default=None, metavar="STEM",
                   help="start from these weights (STEM.weights.h5 + STEM.json, same architecture and pixel scale): fine-tuning")
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
        halo_clustering=args.halo_clustering,
        data_dir=args.data_dir,
        init_weights=args.init_weights,
        channels=tuple(args.channels),
        blocks_per_scale=args.blocks_per_scale,
        groups=args.groups,
        overwrite=args.overwrite,
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
