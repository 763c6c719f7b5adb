"""Denoising score matching (DSM) for the residual score network of :mod:`core.priors.hybrid`.

The package is split by job; every public name stays importable from ``core.priors.training``:

* :mod:`core.priors.training.data` — training maps: simulated lognormal / Gaussian fields, halo-model maps
  (:mod:`core.physics.halos`), per-map mixtures (``halo_model+lognormal``), user map directories; the
  dihedral augmentation.
* :mod:`core.priors.training.objective` — the DSM loss and its σ-weighting, the noise-level distribution,
  held-out losses with paired differences (the math is in that module's docstring).
* :mod:`core.priors.training.loop` — :class:`TrainingConfig`, the pre-flight checks, the training loop,
  checkpoints and the weights' metadata.
* :mod:`core.priors.training.args` — the ``kappascope train`` arguments and entry point :func:`train_main`.
"""
from __future__ import annotations

from core.priors.training.args import build_arg_parser, config_from_args, run_training, train_main
from core.priors.training.data import (
    FIELD_KINDS,
    HaloModelMaps,
    MapDirectory,
    MixedMaps,
    SimulatedMaps,
    make_map_source,
    parse_source,
    random_dihedral,
)
from core.priors.training.loop import TrainingConfig, TrainingResult, preflight, train
from core.priors.training.objective import ScoreFn, dsm_loss_per_map, gaussian_loss_weight, heldout_dsm_losses, sample_sigmas

__all__ = [
    "TrainingConfig",
    "TrainingResult",
    "SimulatedMaps",
    "HaloModelMaps",
    "MixedMaps",
    "make_map_source",
    "parse_source",
    "FIELD_KINDS",
    "MapDirectory",
    "sample_sigmas",
    "random_dihedral",
    "dsm_loss_per_map",
    "heldout_dsm_losses",
    "gaussian_loss_weight",
    "ScoreFn",
    "preflight",
    "train",
    "build_arg_parser",
    "config_from_args",
    "run_training",
    "train_main",
]
