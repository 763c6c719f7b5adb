r"""The ``kappascope`` command line: ``sample`` a posterior of κ maps, ``train`` a score network, ``serve`` the dashboard.

``kappascope sample`` reconstructs the convergence κ from observed shear γ = M(Pκ + n) by annealed score-based
MCMC (:func:`core.inference.driver.sample_posterior`) under the Gaussian theory prior (``--prior gaussian``, power map
``P_k = C_ℓ(ℓ_k)/Ω_pix`` of :mod:`core.physics.cosmology`) or the hybrid prior (Gaussian score plus the learned residual,
:mod:`core.priors.hybrid`). The input is either binned shear maps (``--shear``) with noise maps or a galaxy density,
or a galaxy catalogue (``--catalogue``) binned by :func:`core.data.fits_io.bin_catalogue`, which also gives the mask and the
per-pixel noise ``σ_e/√n``. It writes one FITS file with the image HDUs

* ``MEAN``, ``STD``, ``SIGNIFICANCE`` — per-pixel posterior mean ``m``, standard deviation ``s`` (over the chains,
  ``ddof = 1``) and ``m/s`` (:func:`core.analysis.summaries.posterior_summary`);
* ``SAMPLES`` — the ``(C, N, N)`` cube of final chain states (one posterior sample per chain);
* ``KS`` — the Kaiser–Squires E-mode map (masked pixels zeroed, Gaussian smoothing ``--ks-smoothing``);
* ``WIENER`` — the Wiener filter ``(S⁻¹ + PᵀN⁻¹P)⁻¹PᵀN⁻¹γ`` with the prior's power map;
* ``MASK`` — the observed-pixel mask;

each with the celestial WCS of the input (the shear file's, or :func:`core.data.fits_io.make_wcs` of the catalogue grid) and
a primary header recording the software version, date, command line, input files, every setting and the seed.
The file is written to a temporary name in the output folder and renamed when complete, so an error or Ctrl-C
never leaves a partial file.

Exit status: 0 on success, 2 for usage errors (bad or inconsistent options, reported by argparse), 1 for input
errors (missing or malformed files, NaN data, shape mismatches, non-finite chains), 130 on Ctrl-C. Errors print
one ``kappascope <command>: error: …`` line on stderr; ``--debug`` shows the traceback instead.

``kappascope train`` hands its arguments to :func:`core.priors.training.train_main`. ``kappascope serve`` runs
``python -m panel serve dashboard/app.py`` in a child process (``core`` never imports the dashboard).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

__all__ = [
    "main",
    "build_parser",
    "run_sample",
    "dashboard_command",
    "InputError",
    "OUTPUT_HDUS",
    "DASHBOARD_APP",
]

logger = logging.getLogger("kappascope")

#: image HDUs of the file written by ``kappascope sample``, in order
OUTPUT_HDUS = ("MEAN", "STD", "SIGNIFICANCE", "KS", "WIENER", "MASK", "SAMPLES")
#: the Panel app served by ``kappascope serve`` (found relative to this package, never imported)
DASHBOARD_APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


class InputError(Exception):
    """A problem with the input data or files (exit status 1)."""


# ------------------------------------------------------------------------------------------- argument types
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative finite number, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {text!r}")
    return value


# ------------------------------------------------------------------------------------------- parser
SAMPLE_DEFAULTS: dict[str, Any] = {
    "schedule": "geometric",
    "sigma_max": 0.5,
    "sigma_min": 1e-3,
    "levels": 60,
    "steps_per_level": 10,
    "sampler": "hmc",
    "leapfrog": 3,
    "chains": 8,
    "seed": 0,
    "denoise": "tweedie",
    "init": "wiener",
    "snapshot_every": 10,
    "ks_smoothing": 1.0,
    "max_transitions": 2_000_000,
    "max_sigma": 10.0,  # convergence is O(0.01-0.1): annealing from sigma > 10 only wastes levels
    "max_leapfrog": 1000,
    "max_chains": 100_000,
}


def _add_sample_parser(subparsers: Any) -> argparse.ArgumentParser:
    d = SAMPLE_DEFAULTS
    p = subparsers.add_parser(
        "sample",
        help="sample the posterior of the convergence map given shear maps or a catalogue",
        description=(
            "Sample the Bayesian posterior of the convergence map kappa given noisy, masked shear by annealed "
            "score-based MCMC, and write one FITS file with the posterior MEAN, STD, SIGNIFICANCE, the SAMPLES cube, "
            "the Kaiser-Squires (KS) and Wiener (WIENER) maps and the MASK, with WCS and provenance."
        ),
        epilog=(
            "examples:\n"
            "  kappascope sample --shear shear.fits --sigma-e 0.26 --n-gal 30 --pixel-size 1 --output kappa.fits\n"
            "  kappascope sample --catalogue cat.fits --npix 120 --pixel-size 0.87 --prior hybrid --output kappa.fits\n"
            "exit status: 0 success, 1 input error, 2 usage error, 130 interrupted"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("input shear (give --shear or --catalogue)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--shear", metavar="FILE",
                     help="FITS shear maps: a (2, N, N) cube, two HDUs named E1/E2 (or G1/G2), or the gamma1 image "
                          "when --shear-e2 gives gamma2; N must be even")
    src.add_argument("--catalogue", "--catalog", metavar="FILE",
                     help="FITS galaxy table with RA, DEC (deg), E1, E2 and optionally WEIGHT columns, binned onto "
                          "--npix x --npix pixels of --pixel-size arcmin (the mask and noise maps come from the counts)")
    g.add_argument("--shear-e2", metavar="FILE", help="FITS image of the second shear component (with --shear FILE for the first)")
    g.add_argument("--npix", type=_positive_int,
                   help="map side in pixels for --catalogue binning (even, >= 8)")
    g.add_argument("--pixel-size", type=_positive_float, metavar="ARCMIN",
                   help="pixel side in arcmin: required with --catalogue; with --shear it defaults to the file's WCS "
                        "pixel scale (and overrides it when given)")
    g.add_argument("--center", nargs=2, type=_finite_float, metavar=("RA", "DEC"),
                   help="grid centre in degrees for --catalogue binning (default: median RA and DEC of the galaxies)")
    g.add_argument("--ra-col", default="RA", help="catalogue column of right ascension in degrees")
    g.add_argument("--dec-col", default="DEC", help="catalogue column of declination in degrees")
    g.add_argument("--e1-col", default="E1", help="catalogue column of the first ellipticity component")
    g.add_argument("--e2-col", default="E2", help="catalogue column of the second ellipticity component")
    g.add_argument("--weight-col", default="WEIGHT",
                   help="catalogue column of shape weights ('none' for unit weights; unit weights are also used "
                        "when the default column is absent)")
    g.add_argument("--mask", metavar="FILE",
                   help="FITS 0/1 mask of observed pixels (non-zero = observed), same N x N as the maps; default: "
                        "pixels with data (non-zero shear, positive --std, or at least one galaxy)")

    g = p.add_argument_group("noise (with --shear give --std, or --sigma-e and --n-gal)")
    g.add_argument("--std", metavar="FILE",
                   help="FITS per-pixel noise standard deviation of the shear: one (N, N) image for both components, "
                        "a (2, N, N) cube, or the first component when --std-e2 gives the second; 0 outside the data")
    g.add_argument("--std-e2", metavar="FILE", help="FITS noise standard deviation of the second shear component")
    g.add_argument("--sigma-e", type=_positive_float,
                   help="intrinsic ellipticity dispersion per component (uniform noise sigma_e/sqrt(n_gal*A_pix))")
    g.add_argument("--n-gal", type=_positive_float, metavar="PER_ARCMIN2",
                   help="effective galaxy density in galaxies per square arcminute (with --sigma-e)")

    g = p.add_argument_group("prior and theory spectrum")
    g.add_argument("--prior", default="gaussian", metavar="gaussian|hybrid|PATH",
                   help="'gaussian' (theory C_ell), 'hybrid' (Gaussian + the shipped score network for this pixel "
                        "scale) or the path of trained weights (STEM.weights.h5 with its STEM.json) (default: gaussian)")
    theory = g.add_mutually_exclusive_group()
    theory.add_argument("--z-source", type=_positive_float,
                        help="source-plane redshift of the Planck18 convergence C_ell computed with pyccl (default: 1.0, "
                             "or the training redshift of hybrid weights)")
    theory.add_argument("--cl-file", metavar="FILE",
                        help="tabulated convergence spectrum: two columns (ell, C_ell) as text, .npy or a FITS table")

    g = p.add_argument_group("annealing schedule")
    g.add_argument("--schedule", choices=["geometric", "linear", "cosine"], default=d["schedule"],
                   help="spacing of the noise levels sigma from --sigma-max down to --sigma-min (default: %(default)s)")
    g.add_argument("--sigma-max", type=_positive_float, default=d["sigma_max"],
                   help="first (largest) annealing noise level, in convergence units (default: %(default)s)")
    g.add_argument("--sigma-min", type=_positive_float, default=d["sigma_min"],
                   help="last (smallest) annealing noise level, below --sigma-max (default: %(default)s)")
    g.add_argument("--levels", type=_positive_int, default=d["levels"], help="number of noise levels (default: %(default)s)")
    g.add_argument("--steps-per-level", type=_positive_int, default=d["steps_per_level"],
                   help="MCMC transitions per noise level (default: %(default)s)")

    g = p.add_argument_group("sampler")
    g.add_argument("--sampler", choices=["hmc", "mala", "ula"], default=d["sampler"],
                   help="score-based HMC or MALA (Metropolis-adjusted via the score line integral) or unadjusted "
                        "Langevin (default: %(default)s)")
    g.add_argument("--mass", choices=["auto", "fourier", "fourier_capped", "identity"], default="auto",
                   help="HMC/Langevin metric: auto = fourier for the Gaussian prior, fourier_capped (prior variance capped "
                        "at sigma^2) for the hybrid prior (default: %(default)s)")
    g.add_argument("--predictor", choices=["auto", "reverse_diffusion", "none"], default="auto",
                   help="move between noise levels by a reverse-diffusion step: auto = on for the hybrid prior, off for "
                        "the Gaussian prior (default: %(default)s)")
    g.add_argument("--leapfrog", type=_positive_int, default=d["leapfrog"],
                   help="leapfrog steps per HMC transition (default: %(default)s)")
    g.add_argument("--step-size", type=_positive_float, default=None,
                   help="base step size relative to the target's standard deviation (default: the sampler's "
                        "dimension-aware default)")
    g.add_argument("--chains", type=_positive_int, default=d["chains"],
                   help="independent chains run as one batch = number of posterior samples, >= 2 (default: %(default)s)")
    g.add_argument("--seed", type=_non_negative_int, default=d["seed"],
                   help="seed of every random draw (chain initialisation and transitions) (default: %(default)s)")
    g.add_argument("--init", choices=["wiener", "ks", "prior"], default=d["init"],
                   help="chain initialisation: Wiener or Kaiser-Squires map plus noise of std sigma-max, or noise "
                        "only (default: %(default)s)")
    g.add_argument("--denoise", choices=["tweedie", "ode", "none"], default=d["denoise"],
                   help="final denoising of the chains at sigma-min: Tweedie's formula, the probability-flow ODE, or "
                        "none (default: %(default)s)")
    g.add_argument("--snapshot-every", type=_positive_int, default=d["snapshot_every"],
                   help="transitions per compiled chunk between progress updates (default: %(default)s)")
    g.add_argument("--xla", action="store_true", help="XLA-compile the sampling chunks (faster on GPUs)")

    g = p.add_argument_group("output")
    g.add_argument("--output", "-o", required=True, metavar="OUT.fits",
                   help="FITS file to write (.fits, .fit, .fts or .fits.gz); its folder must exist")
    g.add_argument("--overwrite", action="store_true", help="replace OUT.fits if it exists")
    g.add_argument("--ks-smoothing", type=_non_negative_float, default=d["ks_smoothing"], metavar="ARCMIN",
                   help="FWHM of the Gaussian smoothing of the KS map, 0 for none (default: %(default)s)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")
    g.add_argument("--verbose", "-v", action="store_true", help="log progress messages (INFO level)")
    g.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.set_defaults(sample_parser=p)
    return p


def _add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve the interactive dashboard (panel serve dashboard/app.py)",
        description="Serve the kappascope dashboard with 'python -m panel serve' in a child process.",
    )
    p.add_argument("--port", type=_port, default=5006, help="TCP port (0 picks a free one) (default: %(default)s)")
    p.add_argument("--address", default=None, help="address to listen on (default: localhost)")
    p.add_argument("--show", action="store_true", help="open the app in a browser tab")
    p.add_argument("--num-threads", type=_positive_int, default=None,
                   help="worker threads of the Panel server for callbacks (default: Panel's)")
    p.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]",
                   help="extra origin allowed to connect (repeatable), needed with --address 0.0.0.0")
    p.add_argument("--dry-run", action="store_true", help="print the server command instead of running it")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``kappascope`` parser with the ``sample``, ``train`` and ``serve`` subcommands."""
    import core

    parser = argparse.ArgumentParser(
        prog="kappascope",
        description="Probabilistic weak-lensing mass mapping: posterior samples of convergence maps from shear "
                    "by annealed score-based MCMC (Remy, Lanusse et al. 2023).",
        epilog="Run 'kappascope <command> --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"kappascope {core.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{sample,train,serve}", required=True)
    _add_sample_parser(sub)
    sub.add_parser("train", add_help=False,
                   help="train the residual score network of the hybrid prior (see 'kappascope train --help')")
    _add_serve_parser(sub)
    return parser


# ------------------------------------------------------------------------------------------- validation
def _usage_checks(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Consistency of the sample options (argparse ``error`` → exit status 2)."""
    if args.shear_e2 and not args.shear:
        parser.error("--shear-e2 needs --shear FILE for the first component")
    if args.catalogue:
        if args.npix is None or args.pixel_size is None:
            parser.error("--catalogue needs --npix and --pixel-size")
        if args.npix < 8 or args.npix % 2:
            parser.error(f"--npix must be an even integer >= 8, got {args.npix}")
    else:
        if args.npix is not None:
            parser.error("--npix only applies to --catalogue (the map size comes from the shear file)")
        if args.center is not None:
            parser.error("--center only applies to --catalogue")
    if args.std_e2 and not args.std:
        parser.error("--std-e2 needs --std FILE for the first component")
    if (args.sigma_e is None) != (args.n_gal is None):
        parser.error("give --sigma-e and --n-gal together")
    if args.std and args.sigma_e is not None:
        parser.error("give either --std or --sigma-e/--n-gal, not both")
    if args.shear and not args.std and args.sigma_e is None:
        parser.error("--shear needs a noise model: --std FILE, or --sigma-e and --n-gal")
    if not args.sigma_min < args.sigma_max:
        parser.error(f"--sigma-min ({args.sigma_min:g}) must be smaller than --sigma-max ({args.sigma_max:g})")
    if args.schedule != "geometric" and args.levels < 2:
        parser.error(f"a {args.schedule} schedule needs --levels >= 2")
    if args.chains < 2:
        parser.error("--chains must be at least 2 (the posterior std needs two samples)")
    for option, value, limit in (("--sigma-max", args.sigma_max, SAMPLE_DEFAULTS["max_sigma"]),
                                 ("--leapfrog", args.leapfrog, SAMPLE_DEFAULTS["max_leapfrog"]),
                                 ("--chains", args.chains, SAMPLE_DEFAULTS["max_chains"])):
        if value > limit:
            parser.error(f"{option} {value:g} is absurdly large (limit {limit:g})")
    total = args.levels * args.steps_per_level
    if total > SAMPLE_DEFAULTS["max_transitions"]:
        parser.error(f"--levels x --steps-per-level = {total} transitions is absurdly many "
                     f"(limit {SAMPLE_DEFAULTS['max_transitions']})")
    name = args.output.lower()
    if not name.endswith(_FITS_SUFFIXES):
        parser.error(f"--output must end in one of {', '.join(_FITS_SUFFIXES)}, got {args.output!r}")


def _file_checks(args: argparse.Namespace) -> None:
    """Cheap input/output checks done before importing TensorFlow (exit status 1)."""
    for option in ("shear", "shear_e2", "catalogue", "mask", "std", "std_e2", "cl_file"):
        path = getattr(args, option)
        if path is not None:
            flag = "--" + option.replace("_", "-")
            if not Path(path).exists():
                raise InputError(f"{flag} file {path!r} does not exist")
            if not Path(path).is_file():
                raise InputError(f"{flag} {path!r} is not a file")
    if args.prior not in ("gaussian", "hybrid"):
        stem = Path(args.prior)
        candidates = [stem, Path(str(stem) + ".weights.h5"), Path(str(stem) + ".json")]
        if not any(c.exists() for c in candidates):
            raise InputError(f"--prior must be 'gaussian', 'hybrid' or a weights file; {args.prior!r} does not exist")
    out = Path(args.output)
    if not out.parent.exists() or not out.parent.is_dir():
        raise InputError(f"--output folder {str(out.parent)!r} does not exist")
    if out.exists() and not args.overwrite:
        raise InputError(f"--output {args.output!r} exists; pass --overwrite to replace it")
    if out.exists() and out.is_dir():
        raise InputError(f"--output {args.output!r} is a directory")


# ------------------------------------------------------------------------------------------- sample
def _pixel_scale_from_wcs(wcs: Any) -> float | None:
    """Pixel side in arcmin from a celestial WCS (``None`` when absent or non-square)."""
    if wcs is None:
        return None
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        scales = proj_plane_pixel_scales(wcs.celestial)
    except Exception:  # noqa: BLE001 - a malformed WCS simply gives no pixel scale
        return None
    if len(scales) != 2 or not all(math.isfinite(s) and s > 0 for s in scales):
        return None
    if abs(scales[0] - scales[1]) > 1e-6 * max(scales):
        return None
    return float(scales[0]) * 60.0


@contextlib.contextmanager
def _reading(flag: str, path: str) -> Iterator[None]:
    """Prefix low-level read errors (not FITS, truncated file, …) with the option and file they came from."""
    try:
        yield
    except OSError as err:
        raise InputError(f"{flag} {Path(path).name!r}: {err}") from err


def _read_mask(args: argparse.Namespace, geometry: Any) -> Any:
    from core.data.fits_io import read_map_fits
    from core.data.observation import mask_from_fits

    with _reading("--mask", args.mask):
        image, _, _ = read_map_fits(args.mask)
        if image.shape != geometry.shape:
            raise InputError(f"--mask {Path(args.mask).name!r} has shape {image.shape}; the maps are "
                             f"{geometry.npix} x {geometry.npix}")
        return mask_from_fits(args.mask, geometry)


def _read_std(args: argparse.Namespace, shape: tuple[int, int]) -> Any:
    import numpy as np

    from core.data.fits_io import read_map_fits

    with _reading("--std", args.std):
        std, _, _ = read_map_fits(args.std)
    if args.std_e2:
        with _reading("--std-e2", args.std_e2):
            std2, _, _ = read_map_fits(args.std_e2)
        if std.shape != std2.shape:
            raise InputError(f"--std and --std-e2 have different shapes {std.shape} and {std2.shape}")
        std = np.stack([std, std2])
    if std.shape not in (shape, (2, *shape)):
        raise InputError(f"--std has shape {std.shape}; expected {shape} or (2, {shape[0]}, {shape[1]}) to match the shear")
    return std


def _observation_from_shear(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import numpy as np

    from core.physics.geometry import MapGeometry
    from core.data.fits_io import read_shear_fits
    from core.data.observation import NoiseModel, Observation

    with _reading("--shear", args.shear):
        shear, wcs = read_shear_fits(args.shear, args.shear_e2)
    npix = shear.shape[-1]
    pixel = args.pixel_size
    wcs_pixel = _pixel_scale_from_wcs(wcs)
    if pixel is None:
        if wcs_pixel is None:
            raise InputError(f"the pixel size of {args.shear!r} is unknown (no celestial WCS): give --pixel-size ARCMIN")
        pixel = wcs_pixel
    elif wcs_pixel is not None and abs(wcs_pixel - pixel) > 1e-3 * pixel:
        logger.warning("--pixel-size %g arcmin overrides the WCS pixel scale %g arcmin of %s", pixel, wcs_pixel, args.shear)
    geometry = MapGeometry(npix, pixel)
    if args.std:
        std = _read_std(args, geometry.shape)
        std = np.stack([std, std]) if std.ndim == 2 else std
    else:
        std = NoiseModel.from_galaxy_density(geometry, args.sigma_e, args.n_gal).std
    if args.mask:
        mask = _read_mask(args, geometry)
    else:
        # Pixels with data: shear not identically zero (NaN counts as data, so it is reported below), and a
        # positive noise level when std maps were given (binned maps hold 0 in empty pixels).
        has_shear = ~np.all(shear == 0, axis=0)
        mask = (has_shear & np.all(std > 0, axis=0)) if args.std else has_shear
        if not mask.any():
            raise InputError(f"no observed pixel in {args.shear!r}: the shear is zero everywhere (or the std maps are 0)")
        mask = mask.astype(np.float32)
    try:
        obs = Observation(geometry, shear, np.where(mask > 0, std, 0.0), mask, wcs=wcs,
                          metadata={"source": str(args.shear)})
    except ValueError as err:
        raise InputError(f"--shear {Path(args.shear).name!r}: {err}") from err
    info = {"input_kind": "shear", "wcs_from": "shear file" if wcs is not None else "none"}
    return obs, info


def _observation_from_catalogue(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import numpy as np

    from core.data.fits_io import bin_catalogue, read_catalogue
    from core.data.observation import NoiseModel, Observation

    columns = {"RA": args.ra_col, "DEC": args.dec_col, "E1": args.e1_col, "E2": args.e2_col}
    weight_col = None if args.weight_col.lower() == "none" else args.weight_col
    try:
        with _reading("--catalogue", args.catalogue):
            cat = read_catalogue(args.catalogue, {**columns, "WEIGHT": weight_col} if weight_col else columns)
    except ValueError:
        if weight_col is None or weight_col != "WEIGHT":
            raise
        with _reading("--catalogue", args.catalogue):
            cat = read_catalogue(args.catalogue, columns)  # the default weight column is optional
        logger.info("no WEIGHT column in %s: unit weights", args.catalogue)
    binned = bin_catalogue(cat["RA"], cat["DEC"], cat["E1"], cat["E2"], cat.get("WEIGHT"), npix=args.npix,
                           pixel_size_arcmin=args.pixel_size,
                           center=tuple(args.center) if args.center is not None else None)
    if binned.metadata["n_galaxies"] == 0:
        raise InputError(f"no galaxy of {args.catalogue!r} falls inside the {args.npix} x {args.npix} grid of "
                         f"{args.pixel_size:g} arcmin pixels around {binned.center}")
    obs = binned.to_observation({"source": str(args.catalogue)})
    geometry = obs.geometry
    mask = obs.mask
    if args.mask:
        mask = mask * _read_mask(args, geometry)
        if not mask.any():
            raise InputError("--mask and the pixels with galaxies do not overlap: no observed pixel")
    std = obs.noise_std
    if args.std:
        std = _read_std(args, geometry.shape)
        std = np.stack([std, std]) if std.ndim == 2 else std
    elif args.sigma_e is not None:
        std = NoiseModel.from_galaxy_density(geometry, args.sigma_e, args.n_gal).std
    obs = Observation(geometry, obs.shear, np.where(mask > 0, std, 0.0), mask, wcs=binned.wcs, metadata=obs.metadata)
    info = {"input_kind": "catalogue", "wcs_from": "catalogue binning (core.data.fits_io.make_wcs)",
            "n_galaxies": int(binned.metadata["n_galaxies"]), "center_ra": binned.center[0],
            "center_dec": binned.center[1], "sigma_e1": binned.sigma_e[0], "sigma_e2": binned.sigma_e[1]}
    return obs, info


def _gaussian_power(args: argparse.Namespace, geometry: Any) -> tuple[Any, str]:
    """Power map of the theory options: ``--cl-file`` or Planck18 at ``--z-source`` (default 1)."""
    from core.physics.cosmology import DEFAULT_SOURCE_REDSHIFT, TheorySpectrum, default_power_map

    if args.cl_file:
        spectrum = TheorySpectrum.from_file(args.cl_file)
        return spectrum.power_map(geometry), f"C_ell from {Path(args.cl_file).name}"
    z = args.z_source if args.z_source is not None else DEFAULT_SOURCE_REDSHIFT
    if abs(z - DEFAULT_SOURCE_REDSHIFT) < 1e-12:
        return default_power_map(geometry), f"Planck18 (pyccl), z_source={z:g}"
    return TheorySpectrum.from_ccl(sources=z).power_map(geometry), f"Planck18 (pyccl), z_source={z:g}"


def _build_prior(args: argparse.Namespace, geometry: Any) -> tuple[Any, dict[str, Any]]:
    from core.priors.gaussian import GaussianPrior

    if args.prior == "gaussian":
        power, theory = _gaussian_power(args, geometry)
        return GaussianPrior(geometry, power), {"prior": "gaussian", "theory": theory}
    from core.priors.hybrid import load_hybrid_prior

    explicit_theory = args.cl_file is not None or args.z_source is not None
    gaussian = None
    theory = "the weights' training theory"
    if explicit_theory:
        power, theory = _gaussian_power(args, geometry)
        gaussian = GaussianPrior(geometry, power)
    if args.prior == "hybrid":
        weights = _shipped_path(geometry)
        source = f"shipped weights {weights.name}"
    else:
        weights = Path(args.prior)
        source = str(args.prior)
    prior = load_hybrid_prior(weights, geometry, gaussian_prior=gaussian)
    meta = getattr(prior, "metadata", {}) or {}
    trained_z = meta.get("training_data", {}).get("z_source")
    if explicit_theory and args.z_source is not None and trained_z is not None and abs(float(trained_z) - args.z_source) > 1e-9:
        logger.warning("--z-source %g differs from the source redshift %g the score network was trained at",
                       args.z_source, float(trained_z))
    return prior, {"prior": "hybrid", "prior_weights": source, "theory": theory}


def _shipped_path(geometry: Any) -> Path:
    from core.priors.hybrid import PIXEL_SCALE_RTOL, shipped_weights

    for meta_path, meta in shipped_weights():
        trained = float(meta["pixel_size_arcmin"])
        if abs(trained - geometry.pixel_size_arcmin) <= PIXEL_SCALE_RTOL * trained:
            return meta_path
    available = ", ".join(f"{float(m['pixel_size_arcmin']):g} arcmin" for _, m in shipped_weights()) or "none"
    raise InputError(f"--prior hybrid: no shipped score-network weights for {geometry.pixel_size_arcmin:g} arcmin "
                     f"pixels (available: {available}); train some with 'kappascope train' and pass --prior PATH")


def _progress(total: int, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="sampling", disable=quiet, file=sys.stderr, dynamic_ncols=True)


def run_sample(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run ``kappascope sample`` for parsed, usage-checked arguments; returns a summary dict.

    Raises :class:`InputError` / ``ValueError`` / ``FloatingPointError`` for bad inputs; writes nothing unless the
    whole run succeeds (temporary file + atomic rename).
    """
    _file_checks(args)
    import numpy as np

    import core
    from core.analysis.baselines import kaiser_squires_map, wiener_filter
    from core.data.fits_io import write_maps_fits
    from core.inference.likelihood import ShearLikelihood
    from core.inference.posterior import PosteriorScore
    from core.inference.driver import resolve_defaults, sample_posterior
    from core.inference.schedules import from_name
    from core.analysis.summaries import posterior_summary

    start = time.perf_counter()
    obs, info = _observation_from_catalogue(args) if args.catalogue else _observation_from_shear(args)
    geometry = obs.geometry
    likelihood = ShearLikelihood.from_observation(obs)
    prior, prior_info = _build_prior(args, geometry)
    posterior = PosteriorScore(likelihood, prior)
    schedule = from_name(args.schedule, sigma_max=args.sigma_max, sigma_min=args.sigma_min, num_levels=args.levels,
                         steps_per_level=args.steps_per_level)
    final_denoise = None if args.denoise == "none" else args.denoise
    logger.info("sampling %s with %d chains, %d transitions (%s)", geometry, args.chains, schedule.total_steps, prior_info)
    snapshots = sample_posterior(
        posterior, schedule, num_chains=args.chains, sampler=args.sampler, num_leapfrog_steps=args.leapfrog,
        init=args.init, seed=args.seed, snapshot_every=args.snapshot_every, final_denoise=final_denoise,
        step_size=args.step_size, jit_compile=args.xla, mass=args.mass, predictor=args.predictor,
    )
    mass_used, predictor_used = resolve_defaults(posterior, args.mass, args.predictor)
    last = None
    acceptances: list[float] = []
    with _progress(schedule.total_steps, args.quiet) as bar:
        for snap in snapshots:
            bar.set_postfix(sigma=f"{snap.sigma:.3g}", acc=f"{snap.acceptance:.2f}", refresh=False)
            bar.update(snap.step - bar.n)
            acceptances.append(snap.acceptance)
            last = snap
    if last is None or not last.done:
        raise InputError("sampling stopped before completion")
    chains = last.chains.astype(np.float32)
    summary = posterior_summary(chains)
    ks = kaiser_squires_map(obs.shear, geometry, mask=obs.mask, smoothing_fwhm_arcmin=args.ks_smoothing)[0].numpy()
    wiener = wiener_filter(likelihood, posterior.power_map)
    maps = {
        "MEAN": summary.mean,
        "STD": summary.std,
        "SIGNIFICANCE": summary.significance,
        "KS": ks.astype(np.float32),
        "WIENER": wiener.kappa.numpy().astype(np.float32),
        "MASK": obs.mask.astype(np.float32),
    }
    trace_acc = last.traces.get("acceptance", np.asarray(acceptances))
    provenance: dict[str, Any] = {
        "command": command,
        "software": f"kappascope {core.__version__}",
        "inputs": {k: str(v) for k, v in (("shear", args.shear), ("shear_e2", args.shear_e2),
                                          ("catalogue", args.catalogue), ("mask", args.mask), ("std", args.std),
                                          ("std_e2", args.std_e2), ("cl_file", args.cl_file)) if v},
        **info,
        **prior_info,
        "npix": geometry.npix,
        "pixel_size_arcmin": geometry.pixel_size_arcmin,
        "observed_fraction": obs.observed_fraction,
        "noise": "std maps" if args.std else ("sigma_e/n_gal" if args.sigma_e is not None else "catalogue counts"),
        "sigma_e": args.sigma_e,
        "n_gal_arcmin2": args.n_gal,
        "schedule": args.schedule,
        "sigma_max": args.sigma_max,
        "sigma_min": args.sigma_min,
        "levels": args.levels,
        "steps_per_level": args.steps_per_level,
        "sampler": args.sampler,
        "mass": mass_used,
        "predictor": predictor_used,
        "leapfrog": args.leapfrog,
        "step_size": args.step_size if args.step_size is not None else "default",
        "chains": args.chains,
        "init": args.init,
        "denoise": args.denoise,
        "seed": args.seed,
        "ks_smoothing_fwhm_arcmin": args.ks_smoothing,
        "mean_acceptance": float(np.mean(trace_acc)) if len(trace_acc) else float("nan"),
        "wiener_cg_iterations": int(wiener.iterations),
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
    provenance = {k: v for k, v in provenance.items() if v is not None}
    _write_atomically(Path(args.output), maps, obs.wcs, provenance, chains, write_maps_fits)
    return {"output": str(args.output), "npix": geometry.npix, "pixel_size_arcmin": geometry.pixel_size_arcmin,
            "chains": args.chains, "transitions": schedule.total_steps,
            "mean_acceptance": provenance["mean_acceptance"], "elapsed_s": provenance["elapsed_s"]}


def _write_atomically(path: Path, maps: dict[str, Any], wcs: Any, provenance: dict[str, Any], samples: Any,
                      writer: Any) -> None:
    """Write to a temporary file next to ``path`` and rename it into place (removed on any failure)."""
    suffix = ".fits.gz" if path.name.lower().endswith(".gz") else ".fits"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp, maps, wcs=wcs, provenance=provenance, samples=samples, overwrite=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ------------------------------------------------------------------------------------------- serve
def dashboard_command(args: argparse.Namespace) -> list[str]:
    """The ``python -m panel serve <repo>/dashboard/app.py ...`` command line of ``kappascope serve``."""
    cmd = [sys.executable, "-m", "panel", "serve", str(DASHBOARD_APP), "--port", str(args.port)]
    if args.address:
        cmd += ["--address", args.address]
    if args.show:
        cmd.append("--show")
    if args.num_threads is not None:
        cmd += ["--num-threads", str(args.num_threads)]
    for origin in args.allow_websocket_origin or []:
        cmd += ["--allow-websocket-origin", origin]
    return cmd


def _serve(args: argparse.Namespace) -> int:
    if not DASHBOARD_APP.is_file():
        raise InputError(f"the dashboard app {str(DASHBOARD_APP)!r} is missing (is kappascope installed from a source "
                         "checkout?)")
    cmd = dashboard_command(args)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    env = dict(os.environ)
    root = str(DASHBOARD_APP.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    process = subprocess.Popen(cmd, env=env)

    def forward(signum: int, frame: Any) -> None:  # stop the server with us (no orphaned child on SIGTERM)
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward) if threading.current_thread() is threading.main_thread() else None
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------- main
def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _error(command: str, message: str) -> None:
    sys.stderr.write(f"kappascope {command}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kappascope`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command_line = shlex.join(["kappascope", *argv])
    if argv and argv[0] == "train":
        from core.priors.training import train_main

        try:
            return int(train_main(argv[1:], command=command_line) or 0)
        except SystemExit as exc:  # argparse usage errors and --help
            return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = getattr(args, "debug", False)
    try:
        if args.command == "serve":
            _configure_logging(False)
            return _serve(args)
        try:
            _usage_checks(args, args.sample_parser)
        except SystemExit as exc:
            return int(exc.code) if isinstance(exc.code, int) else 2
        _configure_logging(args.verbose)
        result = run_sample(args, command_line)
        if not args.quiet:
            print(json.dumps(result))
        return 0
    except KeyboardInterrupt:
        _error(args.command, "interrupted; no output written")
        return 130
    except (InputError, ValueError, FloatingPointError, FileNotFoundError, OSError) as err:
        if debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _error(args.command, message)
        return 1
    except Exception as err:  # noqa: BLE001 - an unexpected failure still gets one clear line
        if debug:
            raise
        _error(args.command, f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
