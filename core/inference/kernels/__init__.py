"""Score-based MCMC transition kernels (TFP ``TransitionKernel`` subclasses).

* :mod:`.score_hmc` — :class:`UncalibratedScoreHMC`, :class:`ScoreHMC` (Metropolis via the score line integral)
* :mod:`.langevin` — :class:`ScoreULA`, :class:`UncalibratedScoreLangevin`, :class:`ScoreMALA`
* :mod:`.annealing` — :class:`AnnealedKernel` over a σ schedule, :class:`SigmaStepSize`
* :mod:`.mass` — identity, per-pixel and Fourier-diagonal metrics
* :mod:`.denoise` — Tweedie and probability-flow ODE final denoising
"""
from core.inference.kernels.annealing import AnnealedKernel, AnnealedKernelResults, SigmaStepSize
from core.inference.kernels.denoise import DENOISE_METHODS, denoise
from core.inference.kernels.langevin import ScoreMALA, ScoreULA, UncalibratedScoreLangevin
from core.inference.kernels.mass import (
    FourierDiagonalMass,
    IdentityMass,
    MassMatrix,
    PixelDiagonalMass,
    as_mass_matrix,
    posterior_mode_variance,
)
from core.inference.kernels.score_hmc import ScoreHMC, UncalibratedScoreHMC

__all__ = [
    "AnnealedKernel",
    "AnnealedKernelResults",
    "SigmaStepSize",
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
