r"""FITS and catalogue input/output: shear catalogues → maps, WCS of the map grid, map files with provenance.

Catalogue binning (the convention of the shared COSMOS maps, see ``assets/cosmos/README.md``)
----------------------------------------------------------------------------------------
For galaxies with positions (α, δ) in degrees, ellipticities ``e₁, e₂`` and weights ``w``:

* centre ``(α₀, δ₀)`` = the median RA and DEC (unless given); half-width ``h = npix·θ_pix/2`` in plain
  degrees on both axes (no ``cos δ`` factor: the field is treated as flat in (α, δ));
* ``numpy.histogram2d(δ, α, bins=npix, range=[[δ₀−h, δ₀+h], [α₀−h, α₀+h]])``: row index = DEC
  increasing, column index = RA increasing;
* per pixel, ``ē_c = Σ w e_c / Σ w`` (0 where empty); ``mask = 1`` where at least one galaxy fell;
* because RA increases to the *right* (the sky seen mirrored), the orientation of the x₂ axis
  relative to x₁ is flipped and ``e₂`` changes sign (``flip_e2=True``);
* noise per component ``σ_c = σ_{e,c} / √n`` with ``n`` the (unweighted) number of galaxies in the pixel
  and ``σ_{e,c}`` the catalogue's unweighted standard deviation of ``e_c`` (``ddof = 0``, in float64):
  reverse-engineered from the shared ``cosmos_std1/2`` maps, which it reproduces to 1e-11. (The weighted means would strictly call for
  ``σ_e √(Σw²)/Σw``; the shared maps use the simpler count-based form, and so do we.)

WCS of the grid
---------------
A plate-carrée (``CAR``) projection with ``CRVAL = (α₀, 0)`` maps pixel coordinates linearly onto plain
(α, δ) degrees — exactly the binning above: ``CDELT = (+θ_pix, +θ_pix)`` in degrees (``CDELT1 > 0``
because pixel columns increase with RA, the mirror image of the usual sky orientation),
``CRPIX1 = (npix+1)/2`` and ``CRPIX2 = ½ − (δ₀ − h)/θ_pix`` so that the centre of pixel ``[i, j]`` (0-based
row ``i``, column ``j``) is at ``(α₀ − h + (j+½)θ_pix, δ₀ − h + (i+½)θ_pix)``.

Map files
---------
:func:`write_maps_fits` writes an empty primary HDU holding provenance (software name and version,
UTC date, ``HIERARCH KAPPASCOPE <KEY>`` cards for every setting, and the exact settings as a JSON
string ``PROVJSON``) followed by one image HDU per map (named after its key, with the WCS cards);
3-D arrays such as posterior sample cubes ``(S, N, N)`` are written as cubes with the same celestial WCS.

Input size caps
---------------
Every reader here opens a FITS file with :func:`open_fits`, which reads the headers only (no data, so a
compressed ``.fits.gz`` "bomb" is never expanded into memory) and refuses, with a ``ValueError`` naming the
cap, any HDU whose header claims more than :data:`MAX_IMAGE_BYTES` of image data (``|BITPIX|/8 · Π NAXISᵢ``:
four float64 maps of the largest side ``core.options.MAX_NPIX``) or :data:`MAX_TABLE_BYTES` of table data, and
any uncompressed file whose headers claim more data than the file holds (truncated or corrupt).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from core.options import MAX_NPIX
from core.physics.geometry import MapGeometry

logger = logging.getLogger(__name__)

__all__ = [
    "CATALOGUE_COLUMNS",
    "COSMOS_NPIX",
    "COSMOS_PIXEL_ARCMIN",
    "read_catalogue",
    "BinnedCatalogue",
    "bin_catalogue",
    "make_wcs",
    "read_shear_fits",
    "read_map_fits",
    "write_maps_fits",
    "read_maps_fits",
    "read_xray_groups",
    "load_cosmos",
    "open_fits",
    "MAX_IMAGE_BYTES",
    "MAX_TABLE_BYTES",
]

CATALOGUE_COLUMNS = ("RA", "DEC", "E1", "E2", "WEIGHT")
COSMOS_NPIX = 360
COSMOS_PIXEL_ARCMIN = 0.29
_COUNTS_FILE = "cosmos_counts_0.29arcmin_360px.fits.gz"
_SHEAR_HDU_NAMES = (("E1", "E2"), ("G1", "G2"), ("GAMMA1", "GAMMA2"), ("SHEAR1", "SHEAR2"))
#: largest decompressed image HDU accepted: four float64 maps of side ``MAX_NPIX`` (32 MiB at 1024²)
MAX_IMAGE_BYTES = 4 * MAX_NPIX * MAX_NPIX * 8
#: largest decompressed table HDU accepted (a catalogue of ≈ 10⁷ galaxies)
MAX_TABLE_BYTES = 2**30


def _mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:,.1f} GiB"


def _claimed_bytes(header: fits.Header) -> tuple[int, tuple[int, ...]]:
    """Bytes of data a header announces (``|BITPIX|/8 · GCOUNT · (PCOUNT + Π NAXISᵢ)``) and the axis lengths
    ``(NAXISn, …, NAXIS1)`` (numpy order)."""
    naxis = int(header.get("NAXIS", 0))
    shape = tuple(int(header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1))
    if naxis == 0:
        return 0, shape
    count = 1
    for n in shape:
        count *= max(n, 0)
    bitpix = abs(int(header.get("BITPIX", 8)))
    return bitpix // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count), shape


def check_fits_headers(hdul: fits.HDUList, path: Path, max_image_bytes: int = MAX_IMAGE_BYTES,
                       max_table_bytes: int = MAX_TABLE_BYTES) -> None:
    """Refuse (``ValueError``) HDUs whose headers claim more data than the caps, or than an uncompressed file holds.

    Reads headers only. Iterating ``hdul`` makes astropy seek past each data block, which decompresses a
    ``.gz`` stream without keeping it.
    """
    total = 0
    for i, hdu in enumerate(hdul):
        nbytes, shape = _claimed_bytes(hdu.header)
        total += nbytes
        is_table = isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))
        cap = max_table_bytes if is_table else max_image_bytes
        if nbytes > cap:
            what = "a table" if is_table else "an image of shape " + " x ".join(str(n) for n in shape)
            raise ValueError(f"{path.name}: HDU {i} ({hdu.name or 'PRIMARY'}) holds {what} of {_mib(nbytes)} "
                             f"decompressed, over the {_mib(cap)} input cap for {'tables' if is_table else 'images'}"
                             + ("" if is_table else f" (map side at most {MAX_NPIX} pixels)"))
    if not path.name.lower().endswith((".gz", ".bz2", ".fz", ".zip")):
        size = path.stat().st_size
        if total > size:
            raise ValueError(f"{path.name}: its headers claim {_mib(total)} of data but the file holds only "
                             f"{_mib(size)} (truncated or corrupt file)")


class open_fits:  # noqa: N801 - used like ``fits.open``
    """``with open_fits(path) as hdul``: :func:`astropy.io.fits.open` after :func:`check_fits_headers`."""

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"path {str(self.path)!r} does not exist")
        self.hdul = fits.open(self.path, **kwargs)
        try:
            check_fits_headers(self.hdul, self.path)
        except BaseException:
            self.hdul.close()
            raise

    def __enter__(self) -> fits.HDUList:
        return self.hdul

    def __exit__(self, *exc: Any) -> None:
        self.hdul.close()


# --------------------------------------------------------------------------- catalogues
def read_catalogue(
    path: str | Path,
    columns: Sequence[str] | Mapping[str, str] = CATALOGUE_COLUMNS,
    hdu: int | str = 1,
) -> dict[str, np.ndarray]:
    """Read catalogue columns from a FITS table as a dict of numpy arrays (original dtypes).

    ``columns`` lists the wanted column names (matched case-insensitively), or maps the names to return
    onto the file's column names (e.g. ``{"RA": "ALPHA_J2000", ...}``). Raises ``ValueError`` naming the
    missing columns and listing those available.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"catalogue path {str(path)!r} does not exist")
    wanted = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    with open_fits(path) as hdul:
        try:
            table = Table.read(hdul, hdu=hdu)
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise ValueError(f"catalogue {path.name}: no table in HDU {hdu!r} ({err})") from err
    by_upper = {name.upper(): name for name in table.colnames}
    missing = [f"{out} (column {src!r})" if out != src else repr(src)
               for out, src in wanted.items() if src.upper() not in by_upper]
    if missing:
        raise ValueError(f"catalogue {path.name} lacks column(s) {', '.join(missing)}; available: {table.colnames}")
    out_columns = {out: np.asarray(table[by_upper[src.upper()]]) for out, src in wanted.items()}
    for out, src in wanted.items():
        column = out_columns[out]
        if not (np.issubdtype(column.dtype, np.number) or column.dtype == bool) or np.iscomplexobj(column):
            raise ValueError(f"catalogue {path.name}: column {by_upper[src.upper()]!r} ({out}) holds "
                             f"{'text' if column.dtype.kind in 'SU' else column.dtype.name} values, not real numbers")
        if column.ndim != 1:
            raise ValueError(f"catalogue {path.name}: column {by_upper[src.upper()]!r} ({out}) has shape "
                             f"{column.shape}; expected one number per galaxy")
    return out_columns


def make_wcs(center_ra: float, center_dec: float, npix: int, pixel_size_arcmin: float) -> WCS:
    """Plate-carrée WCS of the binning grid (see the module docstring): pixel columns increase with RA
    (``CDELT1 > 0``), rows with DEC, plain degrees on both axes."""
    for name, value in (("center_ra", center_ra), ("center_dec", center_dec), ("pixel_size_arcmin", pixel_size_arcmin)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if pixel_size_arcmin <= 0:
        raise ValueError(f"pixel_size_arcmin must be positive, got {pixel_size_arcmin!r}")
    if isinstance(npix, bool) or not isinstance(npix, (int, np.integer)) or npix < 1:
        raise ValueError(f"npix must be a positive integer, got {npix!r}")
    step = pixel_size_arcmin / 60.0
    half = npix * step / 2.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---CAR", "DEC--CAR"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [float(center_ra), 0.0]
    wcs.wcs.cdelt = [step, step]
    wcs.wcs.crpix = [0.5 + npix / 2.0, 0.5 - (float(center_dec) - half) / step]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    wcs.pixel_shape = (npix, npix)
    return wcs


@dataclass(frozen=True, eq=False)
class BinnedCatalogue:
    """Maps from :func:`bin_catalogue`, each ``(npix, npix)`` float64 (``counts`` int64)."""

    e1: np.ndarray
    e2: np.ndarray
    mask: np.ndarray
    std1: np.ndarray
    std2: np.ndarray
    counts: np.ndarray
    weight_sum: np.ndarray
    wcs: WCS
    center: tuple[float, float]
    pixel_size_arcmin: float
    sigma_e: tuple[float, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def geometry(self) -> MapGeometry:
        return MapGeometry(self.e1.shape[0], self.pixel_size_arcmin)

    def to_observation(self, metadata: Mapping[str, Any] | None = None):
        """An :class:`core.data.observation.Observation` of these maps (with the WCS)."""
        from core.data.observation import Observation

        meta = dict(self.metadata)
        meta.update(metadata or {})
        return Observation(self.geometry, np.stack([self.e1, self.e2]), np.stack([self.std1, self.std2]),
                           self.mask, wcs=self.wcs, metadata=meta)


def _block_sum(a: np.ndarray, factor: int) -> np.ndarray:
    n = a.shape[0] // factor
    return a.reshape(n, factor, n, factor).sum(axis=(1, 3))


def _maps_from_sums(count: np.ndarray, wsum: np.ndarray, we1: np.ndarray, we2: np.ndarray,
                    sigma_e: tuple[float, float], flip_e2: bool) -> dict[str, np.ndarray]:
    observed = (count > 0) & (wsum > 0)  # a pixel whose galaxies all have zero weight carries no shear
    safe_w = np.where(observed, wsum, 1.0)
    safe_n = np.where(observed, count, 1.0)
    e1 = np.where(observed, we1 / safe_w, 0.0)
    e2 = np.where(observed, we2 / safe_w, 0.0) * (-1.0 if flip_e2 else 1.0)
    std1 = np.where(observed, sigma_e[0] / np.sqrt(safe_n), 0.0)
    std2 = np.where(observed, sigma_e[1] / np.sqrt(safe_n), 0.0)
    return {"e1": e1, "e2": e2, "mask": observed.astype(np.float64), "std1": std1, "std2": std2}


def bin_catalogue(
    ra: np.ndarray,
    dec: np.ndarray,
    e1: np.ndarray,
    e2: np.ndarray,
    weight: np.ndarray | None = None,
    npix: int = COSMOS_NPIX,
    pixel_size_arcmin: float = COSMOS_PIXEL_ARCMIN,
    center: tuple[float, float] | None = None,
    flip_e2: bool = True,
    sigma_e: float | tuple[float, float] | None = None,
) -> BinnedCatalogue:
    """Bin a shear catalogue onto a square grid following the module-docstring convention.

    ``sigma_e`` (per component) defaults to the catalogue's own standard deviation of each component.
    Galaxies outside the square are dropped (logged).
    """
    ra, dec, e1, e2 = (np.asarray(a) for a in (ra, dec, e1, e2))
    weight = np.ones_like(ra, dtype=np.float64) if weight is None else np.asarray(weight)
    n_gal = ra.shape[0] if ra.ndim == 1 else -1
    for name, arr in (("ra", ra), ("dec", dec), ("e1", e1), ("e2", e2), ("weight", weight)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        if arr.ndim != 1 or arr.shape[0] != n_gal:
            raise ValueError(f"{name} must be a 1-D array of the same length as ra ({n_gal}), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if n_gal == 0:
        raise ValueError("the catalogue is empty (ra has length 0)")
    if np.any(weight < 0):
        raise ValueError("weight must be non-negative")
    if not np.any(weight > 0):
        raise ValueError(f"every weight is zero: none of the {n_gal} galaxies counts")
    if sigma_e is None and n_gal < 2:
        raise ValueError(f"the catalogue holds {n_gal} galaxy; at least 2 are needed to estimate the shape noise "
                         "sigma_e from their spread (or pass sigma_e)")
    if isinstance(npix, bool) or not isinstance(npix, (int, np.integer)) or npix < 1:
        raise ValueError(f"npix must be a positive integer, got {npix!r}")
    if center is None:
        center = (float(np.median(ra)), float(np.median(dec)))
    if sigma_e is None:
        sigma_e = (float(np.std(e1.astype(np.float64))), float(np.std(e2.astype(np.float64))))
    elif np.ndim(sigma_e) == 0:
        sigma_e = (float(sigma_e), float(sigma_e))
    sigma_e = (float(sigma_e[0]), float(sigma_e[1]))
    if not all(np.isfinite(s) and s > 0 for s in sigma_e):
        raise ValueError(f"sigma_e must be positive and finite, got {sigma_e!r}")
    half = npix * pixel_size_arcmin / 60.0 / 2.0
    ranges = [[center[1] - half, center[1] + half], [center[0] - half, center[0] + half]]

    def hist(weights: np.ndarray | None) -> np.ndarray:
        return np.histogram2d(dec, ra, bins=npix, range=ranges, weights=weights)[0]

    w = weight.astype(np.float64)
    count = hist(None)
    wsum = hist(w)
    maps = _maps_from_sums(count, wsum, hist(w * e1), hist(w * e2), sigma_e, flip_e2)
    dropped = n_gal - int(count.sum())
    if dropped:
        logger.info("bin_catalogue: %d of %d galaxies fall outside the %d×%d grid", dropped, n_gal, npix, npix)
    return BinnedCatalogue(
        counts=count.astype(np.int64), weight_sum=wsum, wcs=make_wcs(center[0], center[1], npix, pixel_size_arcmin),
        center=(float(center[0]), float(center[1])), pixel_size_arcmin=float(pixel_size_arcmin), sigma_e=sigma_e,
        metadata={"n_galaxies": int(count.sum()), "flip_e2": bool(flip_e2)}, **maps)


# --------------------------------------------------------------------------- map files
def _image_hdus(hdul: fits.HDUList) -> list[tuple[int, str, tuple[int, ...]]]:
    """``(index, name, shape)`` of the image HDUs holding data, from the headers (no data is read)."""
    out = []
    for i, h in enumerate(hdul):
        if h.is_image and not isinstance(h, fits.CompImageHDU):
            shape = _claimed_bytes(h.header)[1]
            if shape and all(n > 0 for n in shape):
                out.append((i, h.name, shape))
        elif isinstance(h, fits.CompImageHDU) and h.shape:
            out.append((i, h.name, tuple(h.shape)))
    return out


def _celestial_wcs(header: fits.Header) -> WCS | None:
    if "CTYPE1" not in header:
        return None
    return WCS(header, naxis=2)


def read_map_fits(path: str | Path, hdu: int | str | None = None) -> tuple[np.ndarray, WCS | None, fits.Header]:
    """Read one image (the first HDU with data, or ``hdu``): ``(float32 array, celestial WCS or None, header)``."""
    path = Path(path)
    with open_fits(path) as hdul:
        images = _image_hdus(hdul)
        if hdu is None:
            if not images:
                raise ValueError(f"{path.name} holds no image data (HDUs: {[h.name for h in hdul]})")
            hdu = images[0][0]
        try:
            h = hdul[hdu]
        except (KeyError, IndexError) as err:
            raise ValueError(f"{path.name} has no HDU {hdu!r} (HDUs: {[x.name for x in hdul]})") from err
        if not h.is_image or h.data is None:
            raise ValueError(f"HDU {hdu!r} of {path.name} holds no image data")
        return np.asarray(h.data, dtype=np.float32), _celestial_wcs(h.header), h.header.copy()


def read_shear_fits(path: str | Path, path_e2: str | Path | None = None) -> tuple[np.ndarray, WCS | None]:
    """Read shear maps as a float32 ``(2, N, N)`` array and the WCS (if any), from

    * one file whose first image is a ``(2, N, N)`` cube,
    * one file with two ``(N, N)`` image HDUs named E1/E2 (or G1/G2, GAMMA1/GAMMA2, SHEAR1/SHEAR2),
    * two files, ``path`` (component 1) and ``path_e2`` (component 2), each one ``(N, N)`` image.

    Values are returned as stored (no sign flip). Any other layout raises ``ValueError`` describing
    the HDUs found.
    """
    if path_e2 is not None:
        e1, wcs, _ = read_map_fits(path)
        e2, _, _ = read_map_fits(path_e2)
        if e1.ndim != 2 or e1.shape != e2.shape or e1.shape[0] != e1.shape[1]:
            raise ValueError(f"separate shear files must hold square images of equal shape; found {e1.shape} and {e2.shape}")
        return np.stack([e1, e2]), wcs
    path = Path(path)
    with open_fits(path) as hdul:
        images = _image_hdus(hdul)
        if images:
            i, _, shape = images[0]
            if len(shape) == 3 and shape[0] == 2 and shape[1] == shape[2]:
                return np.asarray(hdul[i].data, dtype=np.float32), _celestial_wcs(hdul[i].header)
        names = {name.upper(): (i, shape) for i, name, shape in images}
        for n1, n2 in _SHEAR_HDU_NAMES:
            if n1 in names and n2 in names:
                (i1, s1), (i2, s2) = names[n1], names[n2]
                if len(s1) == 2 and s1 == s2 and s1[0] == s1[1]:
                    data = np.stack([np.asarray(hdul[i1].data, np.float32), np.asarray(hdul[i2].data, np.float32)])
                    return data, _celestial_wcs(hdul[i1].header)
        found = [f"{name or i}{shape}" for i, name, shape in images] or ["no image HDU"]
        raise ValueError(f"unrecognised shear layout in {path.name}: found {', '.join(found)}; expected a (2, N, N) "
                         "cube, two (N, N) HDUs named E1/E2 (or G1/G2, GAMMA1/GAMMA2), or pass path_e2 for separate files")


def _fits_value(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else str(value)
    if isinstance(value, str):  # FITS cards hold printable ASCII only: escape the rest (\u2248 for ≈)
        return value if value.isascii() and value.isprintable() else json.dumps(value)[1:-1]
    return json.dumps(value, default=str)


def _keyword(key: str) -> str:
    clean = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(key).upper())
    return f"HIERARCH KAPPASCOPE {clean}"


def write_maps_fits(
    path: str | Path,
    maps: Mapping[str, np.ndarray | Any],
    wcs: WCS | None = None,
    provenance: Mapping[str, Any] | None = None,
    samples: np.ndarray | Any | None = None,
    overwrite: bool = True,
) -> Path:
    """Write maps (2-D ``(N, N)`` or cubes ``(S, N, N)``, numpy or tensors) to one FITS file, one image HDU per
    key (upper-cased as the HDU name), each with the celestial ``wcs`` cards; ``samples`` adds a ``SAMPLES``
    cube. The primary header records the software version, the UTC date and ``provenance``."""
    import core

    if not maps and samples is None:
        raise ValueError("maps is empty and no samples were given: nothing to write")
    provenance = dict(provenance or {})
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["CREATOR"] = ("kappascope", "software that wrote this file")
    hdr["SWVERSN"] = (core.__version__, "kappascope version")
    hdr["DATE"] = (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC date of writing")
    for key, value in provenance.items():
        hdr[_keyword(key)] = _fits_value(value)
    hdr["PROVJSON"] = json.dumps(provenance, default=str, sort_keys=True)
    hdr.add_history("Written by kappascope core.data.fits_io.write_maps_fits")
    hdus: list[fits.hdu.base.ExtensionHDU] = [primary]
    items = list(maps.items()) + ([("SAMPLES", samples)] if samples is not None else [])
    shape2d: tuple[int, ...] | None = None
    seen: set[str] = set()
    for name, arr in items:
        arr = np.asarray(arr.numpy() if hasattr(arr, "numpy") else arr)
        if arr.ndim not in (2, 3):
            raise ValueError(f"map {name!r} must be 2-D (N, N) or a 3-D cube (S, N, N), got shape {arr.shape}")
        if shape2d is None:
            shape2d = arr.shape[-2:]
        elif arr.shape[-2:] != shape2d:
            raise ValueError(f"map {name!r} has shape {arr.shape}; all maps must share the last two axes {shape2d}")
        hdu_name = str(name).upper()
        if hdu_name in seen:
            raise ValueError(f"duplicate map name {name!r} (names are case-insensitive)")
        seen.add(hdu_name)
        header = None
        if wcs is not None:
            header = _cube_wcs(wcs).to_header() if arr.ndim == 3 else wcs.to_header()
        hdus.append(fits.ImageHDU(data=arr, header=header, name=hdu_name))
    path = Path(path)
    fits.HDUList(hdus).writeto(path, overwrite=overwrite)
    return path


def _cube_wcs(wcs: WCS) -> WCS:
    """The celestial ``wcs`` plus a third, linear ``SAMPLE`` axis (world coordinate = 0-based cube index)."""
    cube = wcs.celestial.sub([1, 2, 0])
    cube.wcs.ctype[2] = "SAMPLE"
    cube.wcs.crpix[2] = 1.0
    cube.wcs.crval[2] = 0.0
    cube.wcs.cdelt[2] = 1.0
    return cube


def read_maps_fits(path: str | Path) -> tuple[dict[str, np.ndarray], WCS | None, dict[str, Any]]:
    """Read a file written by :func:`write_maps_fits`: ``(maps keyed by lower-case HDU name, WCS, provenance)``."""
    path = Path(path)
    with open_fits(path) as hdul:
        images = _image_hdus(hdul)
        if not images:
            raise ValueError(f"{path.name} holds no image data")
        maps = {name.lower(): np.asarray(hdul[i].data) for i, name, _ in images}
        wcs = _celestial_wcs(hdul[images[0][0]].header)
        primary = hdul[0].header
        provenance = json.loads(primary["PROVJSON"]) if "PROVJSON" in primary else {}
        for key in ("SWVERSN", "DATE", "CREATOR"):
            if key in primary:
                provenance.setdefault(f"_{key.lower()}", primary[key])
    return maps, wcs, provenance


# --------------------------------------------------------------------------- COSMOS
def read_xray_groups(path: str | Path | None = None) -> Table:
    """The Finoguenov et al. (2007) X-ray groups shipped with the COSMOS assets: an astropy Table with
    ``id``, ``ra``, ``dec`` (deg) and ``z`` (the 7th whitespace column) plus the remaining columns as
    ``col4 …``."""
    from core.data.assets import asset_path

    path = Path(path) if path is not None else asset_path("cosmos", "cosmos_xray_groups.txt")
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.shape[1] < 7:
        raise ValueError(f"{path.name} has {data.shape[1]} columns; expected at least 7 (ID RA DEC ... z ...)")
    table = Table({"id": data[:, 0].astype(int), "ra": data[:, 1], "dec": data[:, 2], "z": data[:, 6]})
    for j in (3, 4, 5, *range(7, data.shape[1])):
        table[f"col{j + 1}"] = data[:, j]
    return table


def load_cosmos(npix: int = COSMOS_NPIX, catalogue_path: str | Path | None = None):
    """The real COSMOS observation on ``npix × npix`` pixels covering the same 104.4′ square
    (pixel ``104.4′/npix``), as an :class:`core.data.observation.Observation` with its WCS.

    ``npix = 360`` reads the shipped maps. Divisors of 360 (90, 120, 180, …) rebin exactly from the shipped
    per-pixel sufficient statistics (galaxy counts and weight sums at 0.29′); other sizes need the full
    catalogue (``catalogue_path``, e.g. ``shared/data/cosmos/cosmos_shear_catalog.fits``), which is then
    binned directly.
    """
    from core.data.assets import asset_path
    from core.data.observation import Observation

    if isinstance(npix, bool) or not isinstance(npix, (int, np.integer)) or npix < 8 or npix % 2:
        raise ValueError(f"npix must be an even integer ≥ 8, got {npix!r}")
    pixel = COSMOS_NPIX * COSMOS_PIXEL_ARCMIN / npix
    meta = {"source": "COSMOS HST/ACS, Schrabback et al. 2010 (via CosmoStat/jax-lensing, MIT)", "npix": npix,
            "pixel_size_arcmin": pixel}
    if catalogue_path is not None:
        cat = read_catalogue(catalogue_path)
        binned = bin_catalogue(cat["RA"], cat["DEC"], cat["E1"], cat["E2"], cat["WEIGHT"], npix=npix,
                               pixel_size_arcmin=pixel)
        meta["binned_from"] = str(catalogue_path)
        return binned.to_observation(meta)
    if COSMOS_NPIX % npix:
        raise ValueError(f"npix={npix} does not divide {COSMOS_NPIX}: pass catalogue_path to rebin the full catalogue")
    with fits.open(asset_path("cosmos", _COUNTS_FILE)) as hdul:
        count = np.asarray(hdul["COUNT"].data, dtype=np.float64)
        wsum = np.asarray(hdul["WEIGHT_SUM"].data, dtype=np.float64)
        hdr = hdul[0].header
        sigma_e = (float(hdr["SIGE1"]), float(hdr["SIGE2"]))
        center = (float(hdr["CEN_RA"]), float(hdr["CEN_DEC"]))
    if npix == COSMOS_NPIX:
        e1, _, _ = read_map_fits(asset_path("cosmos", "cosmos_e1_0.29arcmin_360px.fits"))
        e2, _, _ = read_map_fits(asset_path("cosmos", "cosmos_e2_0.29arcmin_360px.fits"))
        std1, _, _ = read_map_fits(asset_path("cosmos", "cosmos_std1_0.29arcmin_360px.fits"))
        std2, _, _ = read_map_fits(asset_path("cosmos", "cosmos_std2_0.29arcmin_360px.fits"))
        mask, _, _ = read_map_fits(asset_path("cosmos", "cosmos_mask_0.29arcmin_360px.fits"))
        maps = {"e1": e1, "e2": e2, "std1": std1, "std2": std2, "mask": mask}
    else:
        # The shipped e2 map is already sign-flipped: Σw(−e₂) = (−ē₂)·Σw, so no further flip.
        f = COSMOS_NPIX // npix
        e1, _, _ = read_map_fits(asset_path("cosmos", "cosmos_e1_0.29arcmin_360px.fits"))
        e2, _, _ = read_map_fits(asset_path("cosmos", "cosmos_e2_0.29arcmin_360px.fits"))
        maps = _maps_from_sums(_block_sum(count, f), _block_sum(wsum, f), _block_sum(e1 * wsum, f),
                               _block_sum(e2 * wsum, f), sigma_e, flip_e2=False)
    geometry = MapGeometry(npix, pixel)
    return Observation(geometry, np.stack([maps["e1"], maps["e2"]]), np.stack([maps["std1"], maps["std2"]]),
                       maps["mask"], wcs=make_wcs(center[0], center[1], npix, pixel), metadata=meta)
