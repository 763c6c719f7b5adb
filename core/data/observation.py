r"""Observations of shear: survey masks, shape-noise models, mock data and the ``Observation`` record.

Data model
----------
The observed shear is ``γ = M (P κ + n)`` with

* ``P`` the flat-sky lensing operator (:class:`core.physics.lensing.LensingOperator`),
* ``n`` Gaussian shape noise, independent per pixel and per component, of standard deviation
  ``σ_n`` given by a :class:`NoiseModel` (an array ``(2, N, N)``, one map per shear component),
* ``M`` a binary mask, ``1`` where the pixel is observed and ``0`` where it is not; unobserved
  pixels carry no information (shear ``0`` there, noise irrelevant).

Masks are ``float32`` numpy arrays of shape ``(N, N)`` with values in ``{0, 1}`` (they are data, not
differentiable computations). Pixel coordinates used by the mask builders are ``(x, y) = (column,
row)`` with pixel centres at integer positions, so pixel ``[r, c]`` covers ``[c−½, c+½] × [r−½, r+½]``;
angular distances are ``pixel_size_arcmin`` times pixel distances (flat sky).

Noise from galaxy density
-------------------------
Each galaxy's ellipticity is an unbiased, noisy estimate of the shear with per-component
intrinsic dispersion ``σ_e``. Averaging ``n = n_gal · A_pix`` galaxies in a pixel of area
``A_pix`` (arcmin²) gives the per-component noise ``σ_n = σ_e / √(n_gal A_pix)``.
Here ``σ_e`` is **per component** (default 0.26, the usual per-component value for
space-based data; the COSMOS catalogue has ≈0.305 including measurement noise).

Resampling the COSMOS footprint
-------------------------------
The shipped footprint is 360×360 pixels. :func:`resample_mask` maps it to ``npix`` pixels on a
side: when 360 is an integer multiple of ``npix`` it block-averages ``f×f`` blocks and keeps a
coarse pixel when at least ``threshold`` (default ½) of it is observed; otherwise it uses
nearest-neighbour sampling of the pixel centres. The footprint keeps its *shape* in pixels
whatever the geometry's pixel size (for simulations on a COSMOS-like footprint).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import MapGeometry, as_float_tensor
from core.physics.lensing import LensingOperator
from core.seeds import SeedLike as Seed, stateless_seed

logger = logging.getLogger(__name__)

__all__ = [
    "full_mask",
    "random_holes_mask",
    "stripes_mask",
    "cosmos_mask",
    "resample_mask",
    "mask_from_array",
    "mask_from_fits",
    "mask_from_polygons",
    "MASK_PRESETS",
    "NoiseModel",
    "mock_shear",
    "Observation",
    "validate_observation_arrays",
]



def _pixel_coordinates(geometry: MapGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) = (column, row) pixel-centre coordinates, each (N, N) float64."""
    idx = np.arange(geometry.npix, dtype=np.float64)
    x, y = np.meshgrid(idx, idx, indexing="xy")
    return x, y


# --------------------------------------------------------------------------- masks
def full_mask(geometry: MapGeometry) -> np.ndarray:
    """Every pixel observed."""
    return np.ones(geometry.shape, dtype=np.float32)


def random_holes_mask(
    geometry: MapGeometry,
    num_holes: int,
    radius_arcmin: float | tuple[float, float],
    seed: Seed,
) -> np.ndarray:
    """Circular holes (bright-star masks) at uniformly random centres.

    ``radius_arcmin`` is a radius, or a ``(min, max)`` range from which each hole's radius is drawn
    uniformly. Pixels whose centre lies within a hole are masked. Holes may overlap and extend past
    the edge (no periodic wrap: the sky is not periodic).
    """
    if isinstance(num_holes, (bool, np.bool_)) or not isinstance(num_holes, (int, np.integer)) or num_holes < 0:
        raise ValueError(f"num_holes must be a non-negative integer, got {num_holes!r}")
    if np.ndim(radius_arcmin) == 0:
        r_min = r_max = float(radius_arcmin)
    else:
        if len(radius_arcmin) != 2:
            raise ValueError(f"radius_arcmin must be a number or a (min, max) pair, got {radius_arcmin!r}")
        r_min, r_max = (float(r) for r in radius_arcmin)
    if not (np.isfinite(r_min) and np.isfinite(r_max)) or r_min < 0 or r_max < r_min:
        raise ValueError(f"radius_arcmin must be finite, non-negative and ordered (min ≤ max), got {radius_arcmin!r}")
    mask = full_mask(geometry)
    if num_holes == 0:
        return mask
    centre_seed, radius_seed = tfp.random.split_seed(stateless_seed(seed), n=2)
    # Centres uniform over the field in pixel coordinates [−½, N−½).
    centres = tf.random.stateless_uniform([num_holes, 2], seed=centre_seed, dtype=tf.float64).numpy()
    centres = centres * geometry.npix - 0.5
    radii = tf.random.stateless_uniform([num_holes], seed=radius_seed, minval=r_min, maxval=r_max,
                                        dtype=tf.float64).numpy() if r_max > r_min else np.full(num_holes, r_min)
    radii_pix = radii / geometry.pixel_size_arcmin
    x, y = _pixel_coordinates(geometry)
    for (cx, cy), r in zip(centres, radii_pix):
        mask[(x - cx) ** 2 + (y - cy) ** 2 <= r**2] = 0.0
    return mask


def stripes_mask(
    geometry: MapGeometry,
    width_arcmin: float,
    spacing_arcmin: float,
    angle_deg: float = 0.0,
) -> np.ndarray:
    """Parallel masked stripes (detector chip gaps) of width ``width_arcmin``, repeating every
    ``spacing_arcmin``.

    With ``u = x cos θ + y sin θ`` (arcmin, measured from the map centre, θ = ``angle_deg``) a pixel is
    masked when ``(u + width/2) mod spacing < width``: at θ = 0 the stripes are vertical (constant
    column) and one stripe is centred on the map centre; θ rotates the stripe normal counter-clockwise
    from the x₁ (column) axis.
    """
    width, spacing, angle = float(width_arcmin), float(spacing_arcmin), float(angle_deg)
    if not np.isfinite(width) or width < 0:
        raise ValueError(f"width_arcmin must be a non-negative finite number, got {width_arcmin!r}")
    if not np.isfinite(spacing) or spacing <= width:
        raise ValueError(f"spacing_arcmin must be finite and larger than width_arcmin={width}, got {spacing_arcmin!r}")
    if not np.isfinite(angle):
        raise ValueError(f"angle_deg must be finite, got {angle_deg!r}")
    x, y = _pixel_coordinates(geometry)
    centre = (geometry.npix - 1) / 2.0
    theta = np.deg2rad(angle)
    u = ((x - centre) * np.cos(theta) + (y - centre) * np.sin(theta)) * geometry.pixel_size_arcmin
    masked = np.mod(u + width / 2.0, spacing) < width
    return np.where(masked, 0.0, 1.0).astype(np.float32)


def resample_mask(mask: np.ndarray, npix: int, threshold: float = 0.5) -> np.ndarray:
    """Resample a square ``{0,1}`` mask to ``npix × npix``.

    Integer down-sampling factor ``f``: block-average ``f×f`` blocks, observed where the observed
    fraction is ``≥ threshold``. Any other ratio: nearest neighbour of the pixel centres.
    """
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"mask must be a square 2-D array, got shape {mask.shape}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    n_in = mask.shape[0]
    if n_in == npix:
        return mask.astype(np.float32)
    if n_in % npix == 0:
        f = n_in // npix
        frac = mask.reshape(npix, f, npix, f).mean(axis=(1, 3))
        return (frac >= threshold - 1e-12).astype(np.float32)
    idx = np.minimum(np.floor((np.arange(npix) + 0.5) * n_in / npix).astype(int), n_in - 1)
    return (mask[np.ix_(idx, idx)] > 0.5).astype(np.float32)


def cosmos_mask(geometry: MapGeometry, threshold: float = 0.5) -> np.ndarray:
    """The real COSMOS footprint (pixels with at least one galaxy at 0.29′, 53% of the 104.4′ square),
    resampled to ``geometry.npix`` with :func:`resample_mask`."""
    from astropy.io import fits

    from core.data.assets import asset_path

    data = fits.getdata(asset_path("cosmos", "cosmos_mask_0.29arcmin_360px.fits"))
    return resample_mask(np.asarray(data), geometry.npix, threshold=threshold)


def mask_from_array(arr: np.ndarray | tf.Tensor | Sequence, geometry: MapGeometry, name: str = "mask") -> np.ndarray:
    """Validate a boolean or 0/1 array of the geometry's shape and return it as a float32 mask."""
    arr = np.asarray(arr.numpy() if isinstance(arr, tf.Tensor) else arr)
    if arr.shape != geometry.shape:
        raise ValueError(f"{name} has shape {arr.shape}; expected {geometry.shape} for this geometry")
    if arr.dtype == bool:
        mask = arr.astype(np.float32)
    else:
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be boolean or numeric 0/1, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if not np.all((arr == 0) | (arr == 1)):
            bad = np.unique(arr[(arr != 0) & (arr != 1)])[:5]
            raise ValueError(f"{name} must contain only 0 and 1, found values such as {bad.tolist()}")
        mask = arr.astype(np.float32)
    if not mask.any():
        raise ValueError(f"{name} is all zero: no pixel is observed")
    return mask


def mask_from_fits(path: str | Path, geometry: MapGeometry, hdu: int | str | None = None,
                   resample: bool = False) -> np.ndarray:
    """Read a 0/1 mask image from a FITS file (first HDU with 2-D data, or ``hdu``).

    Non-zero finite values count as observed. A mask of another square size is resampled with
    :func:`resample_mask` only when ``resample=True``; otherwise its shape must match the geometry.
    """
    from core.data.fits_io import open_fits

    path = Path(path)
    with open_fits(path) as hdul:  # refuses oversized or truncated files from their headers
        if hdu is not None:
            data = hdul[hdu].data
        else:
            data = next((h.data for h in hdul if h.data is not None and np.ndim(h.data) == 2), None)
        if data is None or np.ndim(data) != 2:
            raise ValueError(f"no 2-D image found in {path.name} (HDU shapes: "
                             f"{[None if h.data is None else h.data.shape for h in hdul]})")
        data = np.asarray(data, dtype=np.float64)
    data = np.where(np.isfinite(data) & (data != 0), 1.0, 0.0)
    if data.shape != geometry.shape:
        if not resample:
            raise ValueError(f"mask in {path.name} has shape {data.shape}; expected {geometry.shape} "
                             "(pass resample=True to resample it)")
        data = resample_mask(data, geometry.npix)
    return mask_from_array(data, geometry)


def mask_from_polygons(
    polygons: Sequence[Sequence[tuple[float, float]]],
    geometry: MapGeometry,
    mode: str = "exclude",
) -> np.ndarray:
    """Rasterise polygons given as vertex lists ``[(x, y), ...]`` in pixel coordinates
    (x = column, y = row, pixel centres at integers) with :class:`matplotlib.path.Path`.

    ``mode="exclude"``: the polygons are masked regions (e.g. drawn around bright stars);
    ``mode="include"``: only pixels inside a polygon are observed. A pixel belongs to a polygon
    when its centre does.
    """
    from matplotlib.path import Path as MplPath

    if mode not in ("exclude", "include"):
        raise ValueError(f"mode must be 'exclude' or 'include', got {mode!r}")
    x, y = _pixel_coordinates(geometry)
    points = np.column_stack([x.ravel(), y.ravel()])
    inside = np.zeros(geometry.num_pixels, dtype=bool)
    for i, poly in enumerate(polygons):
        verts = np.asarray(poly, dtype=np.float64)
        if verts.ndim != 2 or verts.shape[1] != 2 or verts.shape[0] < 3:
            raise ValueError(f"polygons[{i}] must be a list of at least 3 (x, y) vertices, got shape {verts.shape}")
        if not np.all(np.isfinite(verts)):
            raise ValueError(f"polygons[{i}] has non-finite vertices")
        inside |= MplPath(verts).contains_points(points)
    inside = inside.reshape(geometry.shape)
    mask = np.where(inside, 0.0, 1.0) if mode == "exclude" else np.where(inside, 1.0, 0.0)
    return mask_from_array(mask.astype(np.float32), geometry)


def _stars_preset(geometry: MapGeometry, seed: Seed = 0) -> np.ndarray:
    # About one star hole per 100 arcmin², radii 0.5–1.5′ (≈3% of the area), at least one hole.
    area = (geometry.npix * geometry.pixel_size_arcmin) ** 2
    return random_holes_mask(geometry, max(1, int(round(area / 100.0))), (0.5, 1.5), seed)


def _stripes_preset(geometry: MapGeometry, seed: Seed = 0) -> np.ndarray:
    # Chip gaps: two-pixel-wide gaps every quarter of the field (seed unused).
    side = geometry.npix * geometry.pixel_size_arcmin
    return stripes_mask(geometry, 2 * geometry.pixel_size_arcmin, side / 4.0)


def _stars_and_stripes_preset(geometry: MapGeometry, seed: Seed = 0) -> np.ndarray:
    return _stars_preset(geometry, seed) * _stripes_preset(geometry, seed)


MASK_PRESETS: dict[str, Callable[..., np.ndarray]] = {
    "full": lambda geometry, seed=0: full_mask(geometry),
    "cosmos": lambda geometry, seed=0: cosmos_mask(geometry),
    "stars": _stars_preset,
    "stripes": _stripes_preset,
    "stars+stripes": _stars_and_stripes_preset,
}
"""Named masks: ``MASK_PRESETS[name](geometry, seed=0) -> (N, N) float32``."""


# --------------------------------------------------------------------------- noise
@dataclass(frozen=True, eq=False)
class NoiseModel:
    """Independent Gaussian shape noise with per-pixel, per-component standard deviation ``std``
    (float32 numpy ``(2, N, N)``)."""

    std: np.ndarray

    def __post_init__(self) -> None:
        std = np.array(self.std, dtype=np.float32, copy=True)  # own copy: it is made read-only below
        if std.ndim != 3 or std.shape[0] != 2 or std.shape[1] != std.shape[2]:
            raise ValueError(f"noise std must have shape (2, N, N), got {std.shape}")
        if not np.all(np.isfinite(std)):
            raise ValueError("noise std contains NaN or infinite values")
        if np.any(std < 0):
            raise ValueError("noise std must be non-negative")
        std.setflags(write=False)
        object.__setattr__(self, "std", std)

    @classmethod
    def from_galaxy_density(cls, geometry: MapGeometry, sigma_e: float = 0.26, n_gal_arcmin2: float = 30.0) -> "NoiseModel":
        """Uniform noise ``σ_e / √(n_gal · A_pix)`` with ``σ_e`` per component and ``A_pix`` in arcmin²."""
        if not np.isfinite(sigma_e) or sigma_e <= 0:
            raise ValueError(f"sigma_e must be a positive finite number, got {sigma_e!r}")
        if not np.isfinite(n_gal_arcmin2) or n_gal_arcmin2 <= 0:
            raise ValueError(f"n_gal_arcmin2 must be a positive finite number, got {n_gal_arcmin2!r}")
        std = sigma_e / np.sqrt(n_gal_arcmin2 * geometry.pixel_size_arcmin**2)
        return cls(np.full((2, *geometry.shape), std, dtype=np.float32))

    @classmethod
    def from_std_maps(cls, std: np.ndarray | tf.Tensor) -> "NoiseModel":
        """From one ``(N, N)`` std map (both components) or a ``(2, N, N)`` pair."""
        std = np.asarray(std.numpy() if isinstance(std, tf.Tensor) else std, dtype=np.float32)
        if std.ndim == 2:
            std = np.stack([std, std])
        return cls(std)

    @property
    def variance(self) -> np.ndarray:
        return np.square(self.std)

    def sample(self, seed: Seed, batch_shape: Sequence[int] = ()) -> tf.Tensor:
        """A noise realisation ``(*batch_shape, 2, N, N)`` float32."""
        z = tf.random.stateless_normal([*batch_shape, *self.std.shape], seed=stateless_seed(seed), dtype=tf.float32)
        return z * tf.constant(self.std)


def mock_shear(
    kappa: np.ndarray | tf.Tensor,
    operator: LensingOperator,
    noise: NoiseModel | np.ndarray,
    mask: np.ndarray | tf.Tensor,
    seed: Seed,
) -> tf.Tensor:
    """Noisy masked shear ``M (P κ + n)``, float32 ``(..., 2, N, N)`` for κ of shape ``(..., N, N)``
    (independent noise for every batch element); zero outside the mask."""
    geometry = operator.geometry
    kappa = as_float_tensor(kappa, "kappa")
    geometry.check_map(kappa, "kappa")
    noise = noise if isinstance(noise, NoiseModel) else NoiseModel.from_std_maps(noise)
    geometry.check_map(noise.std, "noise std", leading=2)
    mask_t = tf.constant(mask_from_array(mask, geometry))
    gamma = operator.forward(kappa) + noise.sample(seed, batch_shape=kappa.shape[:-2])
    return gamma * mask_t[..., None, :, :]


# --------------------------------------------------------------------------- observation
def validate_observation_arrays(
    geometry: MapGeometry,
    shear: np.ndarray | tf.Tensor,
    noise_std: np.ndarray | tf.Tensor,
    mask: np.ndarray | tf.Tensor,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shear ``(2,N,N)``, noise std ``(N,N)`` or ``(2,N,N)`` and mask ``(N,N)``; return clean float32
    copies with shear and noise std set to 0 on unobserved pixels.

    Raises ``ValueError`` naming the problem: shape mismatch, a mask that is not 0/1 or is all zero,
    NaN/inf shear on observed pixels, non-finite or non-positive noise on observed pixels.
    """
    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")

    def _np(a: Any) -> np.ndarray:
        return np.asarray(a.numpy() if isinstance(a, tf.Tensor) else a)

    shear, noise_std, mask = _np(shear), _np(noise_std), _np(mask)
    n = geometry.npix
    if mask.shape != geometry.shape:
        raise ValueError(f"mask has shape {mask.shape}; expected {geometry.shape} (shape mismatch with the geometry)")
    if shear.shape != (2, n, n):
        raise ValueError(f"shear has shape {shear.shape}; expected (2, {n}, {n}) (shape mismatch with the mask/geometry)")
    if noise_std.shape == geometry.shape:
        noise_std = np.stack([noise_std, noise_std])
    if noise_std.shape != (2, n, n):
        raise ValueError(f"noise_std has shape {noise_std.shape}; expected ({n}, {n}) or (2, {n}, {n}) "
                         "(shape mismatch with the mask/geometry)")
    mask = mask_from_array(mask, geometry)
    observed = mask > 0
    shear = shear.astype(np.float64)
    noise_std = noise_std.astype(np.float64)
    bad = ~np.isfinite(shear[:, observed])
    if bad.any():
        raise ValueError(f"shear contains NaN or infinite values on {int(bad.sum())} observed pixel values")
    if not np.all(np.isfinite(noise_std[:, observed])):
        raise ValueError("noise_std contains NaN or infinite (non-finite) values on observed pixels")
    if np.any(noise_std[:, observed] <= 0):
        raise ValueError("noise_std must be positive on observed pixels (found negative or zero noise)")
    shear = np.where(observed, shear, 0.0).astype(np.float32)
    noise_std = np.where(observed, noise_std, 0.0).astype(np.float32)
    return shear, noise_std, mask


@dataclass(frozen=True, eq=False)
class Observation:
    """A shear observation on a map geometry.

    ``shear`` float32 ``(2, N, N)`` (0 outside the mask), ``noise_std`` float32 ``(2, N, N)`` (per component,
    0 outside the mask), ``mask`` float32 ``(N, N)`` in ``{0,1}``; optional astropy ``wcs`` and free-form
    ``metadata``. Validated on construction (see :func:`validate_observation_arrays`).
    """

    geometry: MapGeometry
    shear: np.ndarray
    noise_std: np.ndarray
    mask: np.ndarray
    wcs: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Re-check the arrays (raises ``ValueError``) and store the cleaned, read-only float32 copies."""
        shear, noise_std, mask = validate_observation_arrays(self.geometry, self.shear, self.noise_std, self.mask)
        for name, arr in (("shear", shear), ("noise_std", noise_std), ("mask", mask)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def observed_fraction(self) -> float:
        return float(self.mask.mean())

    @property
    def noise(self) -> NoiseModel:
        return NoiseModel(self.noise_std)

    @classmethod
    def simulated(
        cls,
        geometry: MapGeometry,
        kappa: np.ndarray | tf.Tensor,
        noise: NoiseModel | np.ndarray,
        mask: np.ndarray | tf.Tensor,
        seed: Seed,
        metadata: Mapping[str, Any] | None = None,
    ) -> "Observation":
        """Mock observation of a single convergence map ``(N, N)``: ``γ = M(Pκ + n)``."""
        kappa = as_float_tensor(kappa, "kappa")
        if tuple(kappa.shape) != geometry.shape:
            raise ValueError(f"kappa has shape {tuple(kappa.shape)}; expected {geometry.shape} (a single map)")
        noise = noise if isinstance(noise, NoiseModel) else NoiseModel.from_std_maps(noise)
        gamma = mock_shear(kappa, LensingOperator(geometry), noise, mask, seed)
        meta = {"source": "simulated", "seed": seed if isinstance(seed, int) else np.asarray(seed).tolist()}
        meta.update(metadata or {})
        return cls(geometry, gamma.numpy(), noise.std, np.asarray(mask), metadata=meta)
