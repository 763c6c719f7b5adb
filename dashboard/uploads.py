"""Uploaded files of the dashboard: shear maps (FITS) and masks (FITS/PNG), checked before any large allocation.

Caps, each stated in the message that enforces it:

* upload size ``MAX_UPLOAD_BYTES`` (32 MiB; refused in the browser by the upload widget and again here),
* decompressed size: FITS files (also ``.fits.gz``) are opened with :func:`core.data.fits_io.open_fits`, which
  reads only the headers first and refuses HDUs claiming more than ``core.data.fits_io.MAX_IMAGE_BYTES``
  (four float64 maps of side ``core.options.MAX_NPIX``) — a 130 kB gzip "bomb" is never expanded,
* map side ``core.options.MIN_NPIX … MAX_NPIX`` (square, even), PNG masks at most ``MAX_NPIX`` per side,
* an empty file is an error.

Every parser raises ``ValueError`` with a readable message that quotes the file name (the page escapes it).
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from core.options import MAX_NPIX, MIN_NPIX

__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_LABEL", "parse_shear_upload", "parse_mask_upload", "drawn_mask"]

#: Largest accepted upload (a 1024² float64 (4, N, N) cube is 32 MiB).
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
#: The cap as the upload widget spells it.
MAX_UPLOAD_LABEL = "32MB"
_GZIP_MAGIC = b"\x1f\x8b"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_size(data: bytes | None, what: str) -> bytes:
    if data is None or len(data) == 0:
        raise ValueError(f"{what}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{what}: the file is {len(data) / 2**20:.1f} MiB; the upload limit is "
                         f"{MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
    return bytes(data)


def _fits_images(data: bytes, what: str) -> list[np.ndarray]:
    """The image HDUs' data, read through ``core.data.fits_io.open_fits`` (header caps checked before reading)."""
    from core.data.fits_io import open_fits

    compressed = data[:2] == _GZIP_MAGIC
    if not compressed and data[:9] != b"SIMPLE  =":
        raise ValueError(f"{what}: not a FITS file (it must start with a 'SIMPLE  =' header card, or be gzip-compressed)")
    with tempfile.TemporaryDirectory(prefix="kappascope-upload-") as tmp:
        path = Path(tmp) / ("upload.fits.gz" if compressed else "upload.fits")
        path.write_bytes(data)
        try:
            with open_fits(path, memmap=False) as hdul:
                images = [np.asarray(h.data, dtype=np.float64) for h in hdul
                          if getattr(h, "is_image", False) and getattr(h, "data", None) is not None]
        except ValueError as err:  # a cap or a corrupt header: name the upload, not the temporary file
            raise ValueError(f"{what}: {str(err).replace(path.name + ': ', '')}") from None
        except Exception as err:  # astropy raises many types for corrupt files
            raise ValueError(f"{what}: could not read the FITS file ({type(err).__name__}: {err})") from None
    if not images:
        raise ValueError(f"{what}: the FITS file contains no image data")
    return images


def parse_shear_upload(data: bytes, filename: str = "upload.fits") -> tuple[np.ndarray, np.ndarray | None]:
    """Read uploaded shear maps: ``(γ (2, N, N) float32, std (2, N, N) float32 or None)``.

    Accepted layouts: one image HDU holding a cube ``(2, N, N)`` = [γ₁, γ₂] or ``(4, N, N)`` =
    [γ₁, γ₂, σ₁, σ₂]; or separate 2-D image HDUs γ₁, γ₂ (and optionally σ₁, σ₂). Maps must be square
    with an even side in [MIN_NPIX, MAX_NPIX]; shear must be finite (put 0 on unobserved pixels and upload a mask).
    """
    what = f"shear upload {filename!r}"
    images = _fits_images(_check_size(data, what), what)
    if images[0].ndim == 3:
        cube = images[0]
    elif all(im.ndim == 2 for im in images) and len(images) in (2, 3, 4):
        if len({im.shape for im in images}) != 1:
            raise ValueError(f"{what}: the image HDUs have different shapes {[im.shape for im in images]}")
        cube = np.stack(images[:4] if len(images) == 4 else images[:2])
    else:
        raise ValueError(f"{what}: expected a (2, N, N) or (4, N, N) cube, or 2 or 4 image HDUs of shape (N, N); "
                         f"found shapes {[im.shape for im in images]}")
    if cube.ndim != 3 or cube.shape[0] not in (2, 4):
        raise ValueError(f"{what}: cube has shape {cube.shape}; expected (2, N, N) or (4, N, N)")
    n_rows, n_cols = cube.shape[1:]
    if n_rows != n_cols or n_rows % 2 or not MIN_NPIX <= n_rows <= MAX_NPIX:
        raise ValueError(f"{what}: maps are {n_rows}×{n_cols}; they must be square with an even side in "
                         f"[{MIN_NPIX}, {MAX_NPIX}]")
    shear = cube[:2]
    bad = ~np.isfinite(shear)
    if bad.any():
        raise ValueError(f"{what}: shear contains {int(bad.sum())} NaN or infinite values; set unobserved "
                         "pixels to 0 and upload a mask instead")
    std = None
    if cube.shape[0] == 4:
        std = cube[2:]
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError(f"{what}: the noise std maps must be finite and non-negative")
    return shear.astype(np.float32), None if std is None else std.astype(np.float32)


def _png_header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the PNG IHDR chunk, read before decoding."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ValueError("corrupt PNG header")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def parse_mask_upload(data: bytes, filename: str = "mask.fits") -> np.ndarray:
    """Read an uploaded mask (FITS image or PNG; non-zero / bright = observed) as a 0/1 float32 array."""
    what = f"mask upload {filename!r}"
    data = _check_size(data, what)
    if data[:8] == _PNG_MAGIC:
        from matplotlib.image import imread

        try:
            width, height = _png_header_size(data)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        if max(width, height) > MAX_NPIX:
            raise ValueError(f"{what}: the PNG is {width}×{height} pixels; masks are at most {MAX_NPIX}×{MAX_NPIX}")
        try:
            img = np.asarray(imread(io.BytesIO(data), format="png"), dtype=np.float64)
        except Exception as err:
            raise ValueError(f"{what}: could not decode the PNG ({err})") from None
        if img.ndim == 3:  # RGB(A): observed where the mean of the colour channels is bright
            img = img[..., :3].mean(axis=-1)
        arr = np.flipud(img)  # image rows run top-down; map rows run with x₂ upwards
        mask = (arr > 0.5).astype(np.float32)
    else:
        images = [im for im in _fits_images(data, what) if im.ndim == 2]
        if not images:
            raise ValueError(f"{what}: the FITS file has no 2-D image")
        arr = images[0]
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: the mask contains NaN or infinite values")
        mask = (arr != 0).astype(np.float32)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"{what}: the mask must be a square image, got shape {mask.shape}")
    if mask.shape[0] > MAX_NPIX:
        raise ValueError(f"{what}: the mask is {mask.shape[0]}×{mask.shape[1]}; at most {MAX_NPIX}×{MAX_NPIX}")
    if not mask.any():
        raise ValueError(f"{what}: the mask is all zero (no observed pixel)")
    return mask


def drawn_mask(geometry: Any, boxes: Mapping[str, Sequence[float]] | None,
               polygons: Mapping[str, Sequence[Sequence[float]]] | None) -> np.ndarray:
    """Rasterise drawn rectangles and polygons (in pixel coordinates x = column, y = row) as masked regions.

    ``boxes`` is a BoxEdit-style dict ``{"x0": [...], "y0": [...], "x1": [...], "y1": [...]}``,
    ``polygons`` a PolyDraw-style dict ``{"xs": [[...], ...], "ys": [[...], ...]}``.
    """
    from core.data.observation import full_mask, mask_from_polygons

    shapes: list[list[tuple[float, float]]] = []
    if boxes:
        for x0, y0, x1, y1 in zip(boxes.get("x0", []), boxes.get("y0", []), boxes.get("x1", []), boxes.get("y1", [])):
            shapes.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    if polygons:
        for xs, ys in zip(polygons.get("xs", []), polygons.get("ys", [])):
            if len(xs) >= 3:
                shapes.append(list(zip(xs, ys)))
    if not shapes:
        return full_mask(geometry)
    return mask_from_polygons(shapes, geometry, mode="exclude")
