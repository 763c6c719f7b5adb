"""Score-based MCMC transition kernels (TFP ``TransitionKernel`` subclasses).

* :mod:`.base` — :class:`ScoreKernel` (shared constructor, parameters, checks) and :class:`MetropolisAdjusted`
* :mod:`.leapfrog` — :class:`ScoreLeapfrogIntegrator`, the one leapfrog integrator
* :mod:`.score_hmc` — :class:`UncalibratedScoreHMC`, :class:`ScoreHMC` (Metropolis via the score line integral)
* :mod:`.langevin` — :class:`ScoreULA`, :class:`UncalibratedScoreLangevin`, :class:`ScoreMALA`
* :mod:`.annealing` — :class:`AnnealedKernel` (walks a σ schedule), :class:`SigmaStepSize`
* :mod:`.predictor` — :class:`ReverseDiffusionPredictor` (moves between levels)
* :mod:`.adaptation` — :class:`StepSizeAdaptation`, a wrapper kernel in the style of TFP's
* :mod:`.mass` — identity, per-pixel and Fourier-diagonal metrics
* :mod:`.denoise` — Tweedie and probability-flow ODE final denoising
* :mod:`._common` — event axes, step-size broadcasting, the Simpson score line integral
"""
from core.inference.kernels.adaptation import StepSizeAdaptation, StepSizeAdaptationResults
from core.inference.kernels.annealing import AnnealedKernel, AnnealedKernelResults, SigmaStepSize
from core.inference.kernels.base import MetropolisAdjusted, ScoreKernel
from core.inference.kernels.denoise import DENOISE_METHODS, denoise
from core.inference.kernels.langevin import ScoreMALA, ScoreULA, UncalibratedScoreLangevin
from core.inference.kernels.leapfrog import ScoreLeapfrogIntegrator
from core.inference.kernels.mass import (
    FourierDiagonalMass,
    IdentityMass,
    MassMatrix,
    PixelDiagonalMass,
    as_mass_matrix,
    posterior_mode_variance,
)
from core.inference.kernels.predictor import ReverseDiffusionPredictor
from core.inference.kernels.score_hmc import ScoreHMC, UncalibratedScoreHMC

__all__ = [
    "AnnealedKernel",
    "AnnealedKernelResults",
    "SigmaStepSize",
    "StepSizeAdaptation",
    "StepSizeAdaptationResults",
    "ReverseDiffusionPredictor",
    "ScoreKernel",
    "MetropolisAdjusted",
    "ScoreLeapfrogIntegrator",
    "denoise",
    "DENOISE_METHODS",
    "ScoreMALA",
    "ScoreULA",
    "UncalibratedScoreLangevin",
    "FourierDiagonalMass",
    "IdentityMass",
    "MassMatrix",
    "PixelDiagonalMass",
    "as_mass_matrix",
    "posterior_mode_variance",
    "ScoreHMC",
    "UncalibratedScoreHMC",
]
