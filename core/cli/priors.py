"""The prior options of ``kappascope sample`` (``--prior``, ``--z-source``, ``--cl-file``) → :func:`core.pipeline.build_problem` arguments.

``--prior gaussian`` is the exact Gaussian prior of the Planck18 convergence spectrum at ``--z-source`` (pyccl) or of
the tabulated ``--cl-file`` spectrum (power map ``P_k = C_ℓ(ℓ_k)/Ω_pix``); ``--prior hybrid`` adds the shipped score
network matching the pixel scale (looked up by the pipeline); ``--prior PATH`` uses trained weights
(``STEM.weights.h5`` + ``STEM.json``).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["prior_settings"]


def prior_settings(args: argparse.Namespace, geometry: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(keyword arguments of build_problem, provenance notes)`` for the prior options."""
    kwargs: dict[str, Any] = {}
    info: dict[str, Any] = {}
    if args.prior in ("gaussian", "hybrid"):
        kwargs["prior"] = args.prior
        info["prior"] = args.prior
        if args.prior == "hybrid":
            info["prior_weights"] = "shipped weights for this pixel scale"
    else:
        kwargs["prior"] = "hybrid"
        kwargs["weights"] = Path(args.prior)
        info.update(prior="hybrid", prior_weights=str(args.prior))
    if args.cl_file:
        from core.physics.cosmology import TheorySpectrum

        kwargs["power_map"] = TheorySpectrum.from_file(args.cl_file).power_map(geometry)
        info["theory"] = f"C_ell from {Path(args.cl_file).name}"
    else:
        z = args.z_source if args.z_source is not None else 1.0
        kwargs["z_source"] = z
        info["theory"] = f"Planck18 (pyccl), z_source={z:g}"
    return kwargs, info
