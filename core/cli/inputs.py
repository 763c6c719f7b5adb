r"""The observation of ``kappascope sample``: shear maps, a galaxy catalogue or the shipped COSMOS field → ``Observation``.

An observation is the shear ``γ`` ``(2, N, N)``, its per-pixel noise ``σ`` ``(2, N, N)`` and the mask ``M`` of observed
pixels (:class:`core.data.observation.Observation`). The three sources:

* ``--shear`` maps (plus ``--std`` maps, or the uniform noise ``σ_e/√(n_gal A_pix)`` of ``--sigma-e``/``--n-gal``);
  the observed area is ``--mask`` when given, otherwise the pixels whose shear is not identically zero;
* ``--catalogue``: galaxies binned by :func:`core.data.fits_io.bin_catalogue` (mask = pixels with galaxies,
  ``σ = σ_e/√n``);
* ``--cosmos``: the real COSMOS field shipped with the package (:func:`core.data.fits_io.load_cosmos`).

Inside the observed area every ``σ`` must be finite and positive: a zero, negative or NaN noise level there is an
error blaming ``--std`` (it would mean infinitely precise or meaningless data), never a silently masked pixel.
Errors are :class:`~core.cli.args.InputError` naming the flag and the user's file.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
from typing import Any, Iterator

from core.cli.args import InputError
from core.options import MAX_NPIX

__all__ = ["read_observation", "pixel_scale_from_wcs"]

logger = logging.getLogger("kappascope")


@contextlib.contextmanager
def _reading(flag: str, path: str) -> Iterator[None]:
    """Prefix read errors (not FITS, truncated, over a size cap, bad columns) with the option and file."""
    try:
        yield
    except (OSError, ValueError, TypeError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{flag} {str(path)!r}: {err}") from err


def pixel_scale_from_wcs(wcs: Any, flag: str = "--shear", path: str = "") -> float | None:
    """Pixel side in arcmin of a celestial WCS (``None`` without one); non-square pixels are an ``InputError``."""
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
        raise InputError(f"{flag} {path!r}: the WCS pixels are not square ({scales[0] * 60:.4g}' x "
                         f"{scales[1] * 60:.4g}'); kappascope needs maps on a square-pixel grid (resample them)")
    return float(scales[0]) * 60.0


def _check_side(flag: str, path: str, shape: tuple[int, ...]) -> None:
    side = shape[-1]
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise InputError(f"{flag} {path!r}: maps must be square N x N, got shape {shape}")
    if side > MAX_NPIX:
        raise InputError(f"{flag} {path!r}: map side {side} is over the cap of {MAX_NPIX} pixels")
    if side % 2:
        raise InputError(f"{flag} {path!r}: map side {side} must be even")


def _read_mask(args: argparse.Namespace, geometry: Any) -> Any:
    from core.data.fits_io import read_map_fits
    from core.data.observation import mask_from_fits

    with _reading("--mask", args.mask):
        image, _, _ = read_map_fits(args.mask)
        if image.shape != geometry.shape:
            raise InputError(f"--mask {args.mask!r} has shape {image.shape}; the maps are "
                             f"{geometry.npix} x {geometry.npix}")
        return mask_from_fits(args.mask, geometry)


def _read_std(args: argparse.Namespace, shape: tuple[int, int]) -> Any:
    """The ``(2, N, N)`` std maps of ``--std`` (and ``--std-e2``)."""
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
        raise InputError(f"--std has shape {std.shape}; expected {shape} or (2, {shape[0]}, {shape[1]}) to match "
                         "the shear")
    return np.stack([std, std]) if std.ndim == 2 else std


def _check_noise_inside(std: Any, mask: Any, flag: str) -> None:
    """Every σ inside the observed area finite and > 0, else an InputError naming ``flag``."""
    import numpy as np

    observed = mask > 0
    inside = std[:, observed]
    bad = ~np.isfinite(inside) | (inside <= 0)
    if bad.any():
        pixels = np.argwhere(observed)[np.any(bad, axis=0)]
        kinds = [name for name, hit in (("NaN/inf", ~np.isfinite(inside)), ("negative", inside < 0),
                                        ("zero", inside == 0)) if np.any(hit & bad)]
        raise InputError(f"{flag}: the noise std is {'/'.join(kinds)} at {len(pixels)} observed pixel(s) (first at "
                         f"row {pixels[0][0]}, column {pixels[0][1]}); it must be finite and positive wherever the "
                         "shear is observed (mask such pixels with --mask)")


def _observation_from_shear(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import numpy as np

    from core.data.fits_io import read_shear_fits
    from core.data.observation import NoiseModel, Observation
    from core.physics.geometry import MapGeometry

    with _reading("--shear", args.shear):
        shear, wcs = read_shear_fits(args.shear, args.shear_e2)
    _check_side("--shear", args.shear, shear.shape)
    npix = shear.shape[-1]
    pixel = args.pixel_size
    wcs_pixel = pixel_scale_from_wcs(wcs, "--shear", args.shear)
    if pixel is None:
        if wcs_pixel is None:
            raise InputError(f"the pixel size of {args.shear!r} is unknown (no celestial WCS): give --pixel-size ARCMIN")
        pixel = wcs_pixel
        _check_pixel_bounds(pixel, f"the WCS pixel scale of {args.shear!r}")
    elif wcs_pixel is not None and abs(wcs_pixel - pixel) > 1e-3 * pixel:
        logger.warning("--pixel-size %g arcmin overrides the WCS pixel scale %g arcmin of %s", pixel, wcs_pixel,
                       args.shear)
    geometry = MapGeometry(npix, pixel)
    if args.mask:
        mask = _read_mask(args, geometry)
    else:
        # Pixels with data: shear not identically zero (NaN counts as data, so it is reported below).
        mask = (~np.all(shear == 0, axis=0)).astype(np.float32)
        if not mask.any():
            raise InputError(f"no observed pixel in {args.shear!r}: the shear is zero everywhere")
    if not np.all(np.isfinite(shear[:, mask > 0])):
        bad = int(np.sum(~np.isfinite(shear[:, mask > 0])))
        raise InputError(f"--shear {args.shear!r}: {bad} NaN or infinite shear value(s) inside the observed area")
    if args.std:
        std = _read_std(args, geometry.shape)
        _check_noise_inside(std, mask, "--std" if not args.std_e2 else "--std/--std-e2")
    else:
        std = NoiseModel.from_galaxy_density(geometry, args.sigma_e, args.n_gal).std
    obs = Observation(geometry, shear, np.where(mask > 0, std, 0.0), mask, wcs=wcs,
                      metadata={"source": str(args.shear)})
    return obs, {"input_kind": "shear", "wcs_from": "shear file" if wcs is not None else "none"}


def _check_pixel_bounds(pixel: float, what: str) -> None:
    from core.options import MAX_PIXEL_ARCMIN, MIN_PIXEL_ARCMIN

    if not MIN_PIXEL_ARCMIN <= pixel <= MAX_PIXEL_ARCMIN:
        raise InputError(f"{what} is {pixel:g} arcmin, outside the accepted [{MIN_PIXEL_ARCMIN:g}, "
                         f"{MAX_PIXEL_ARCMIN:g}] arcmin (give --pixel-size)")


def _read_catalogue_columns(args: argparse.Namespace) -> dict[str, Any]:
    from core.data.fits_io import read_catalogue

    columns = {"RA": args.ra_col, "DEC": args.dec_col, "E1": args.e1_col, "E2": args.e2_col}
    weight_col = None if args.weight_col.lower() == "none" else args.weight_col
    try:
        with _reading("--catalogue", args.catalogue):
            return read_catalogue(args.catalogue, {**columns, "WEIGHT": weight_col} if weight_col else columns)
    except InputError as err:
        if weight_col != "WEIGHT" or "lacks column" not in str(err) or "'WEIGHT'" not in str(err):
            raise
    with _reading("--catalogue", args.catalogue):
        cat = read_catalogue(args.catalogue, columns)  # the default weight column is optional
    logger.info("no WEIGHT column in %s: unit weights", args.catalogue)
    return cat


def _observation_from_catalogue(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import numpy as np

    from core.data.fits_io import bin_catalogue
    from core.data.observation import NoiseModel, Observation

    cat = _read_catalogue_columns(args)
    n_rows = len(cat["RA"])
    if n_rows < 2:
        raise InputError(f"--catalogue {args.catalogue!r} holds {n_rows} galaxy; at least 2 are needed (the shape "
                         "noise is estimated from their spread)")
    weight = cat.get("WEIGHT")
    if weight is not None and np.all(np.asarray(weight) == 0):
        raise InputError(f"--catalogue {args.catalogue!r}: every value of the weight column {args.weight_col!r} is "
                         "zero (pass --weight-col none for unit weights)")
    with _reading("--catalogue", args.catalogue):
        binned = bin_catalogue(cat["RA"], cat["DEC"], cat["E1"], cat["E2"], weight, npix=args.npix,
                               pixel_size_arcmin=args.pixel_size,
                               center=tuple(args.center) if args.center is not None else None)
    if not binned.mask.any():
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
        _check_noise_inside(std, mask, "--std")
    elif args.sigma_e is not None:
        std = NoiseModel.from_galaxy_density(geometry, args.sigma_e, args.n_gal).std
    obs = Observation(geometry, obs.shear, np.where(mask > 0, std, 0.0), mask, wcs=binned.wcs, metadata=obs.metadata)
    info = {"input_kind": "catalogue", "wcs_from": "catalogue binning (core.data.fits_io.make_wcs)",
            "n_galaxies": int(binned.metadata["n_galaxies"]), "center_ra": binned.center[0],
            "center_dec": binned.center[1], "sigma_e1": binned.sigma_e[0], "sigma_e2": binned.sigma_e[1]}
    return obs, info


def _observation_from_cosmos(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from core.data.fits_io import COSMOS_NPIX, load_cosmos

    npix = args.npix if args.npix is not None else 90
    try:
        obs = load_cosmos(npix)
    except ValueError as err:
        raise InputError(f"--cosmos --npix {npix}: {err}") from err
    return obs, {"input_kind": "cosmos", "wcs_from": "shipped COSMOS maps",
                 "cosmos_rebin_factor": COSMOS_NPIX // npix}


def read_observation(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The :class:`~core.data.observation.Observation` the arguments describe, and provenance notes about it."""
    if args.cosmos:
        return _observation_from_cosmos(args)
    if args.catalogue:
        return _observation_from_catalogue(args)
    return _observation_from_shear(args)
