r"""Training maps for DSM: simulated fields, halo-model maps, mixtures and user map directories.

Every source has ``sample(num, seed) -> tf.Tensor (num, N, N) float32`` (deterministic for a stateless
seed), ``pixel_std`` (the expected pixel standard deviation, which sets the network's ``sigma_data``)
and ``describe() -> dict`` (recorded in the weights' metadata as ``training_data``).

* :class:`SimulatedMaps`: shifted-lognormal or Gaussian fields with the theory power map
  (:mod:`core.physics.fields`).
* :class:`HaloModelMaps`: halo-model maps (:mod:`core.physics.halos`, Poisson truncated-NFW haloes on a
  Gaussian large-scale field, total power = the same theory power map).
* :class:`MixedMaps`: each map from one of several sources with equal probability (``--source
  halo_model+lognormal``).
* :class:`MapDirectory`: random crops of the ``.npy`` / ``.fits`` maps of a directory; every file is read
  and checked (finite, large enough, pixel scale where recorded) before training starts.

Augmentation: :func:`random_dihedral` applies an independent random element of the dihedral group of the
square (flips and 90° rotations) to each map.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import MapGeometry, as_float_tensor

__all__ = [
    "FIELD_KINDS",
    "SimulatedMaps",
    "HaloModelMaps",
    "MixedMaps",
    "MapDirectory",
    "make_map_source",
    "parse_source",
    "random_dihedral",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ seeds
def _seed(seed: int | tf.Tensor) -> tf.Tensor:
    """Stateless ``[2]`` int32 seed (ints mapped deterministically, see ``core.physics.fields.stateless_seed``)."""
    from core.physics.fields import stateless_seed

    return stateless_seed(seed)


def _step_seeds(seed: tf.Tensor, step: int, num: int) -> list[tf.Tensor]:
    base = tf.random.experimental.stateless_fold_in(seed, step)
    return list(tfp.random.split_seed(base, n=num))


def random_dihedral(maps: tf.Tensor, seed: int | tf.Tensor) -> tf.Tensor:
    """Apply to each map of ``(B, N, N)`` an independent random flip / 90° rotation (8 symmetries)."""
    maps = as_float_tensor(maps, "maps")
    choice = tf.random.stateless_uniform([tf.shape(maps)[0]], _seed(seed), minval=0, maxval=8, dtype=tf.int32)
    rotations = [tf.experimental.numpy.rot90(maps, k=k, axes=(1, 2)) for k in range(4)]
    variants = tf.stack(rotations + [r[:, :, ::-1] for r in rotations], axis=0)  # (8, B, N, N)
    idx = tf.stack([choice, tf.range(tf.shape(maps)[0])], axis=-1)
    return tf.gather_nd(variants, idx)


# ----------------------------------------------------------------------------- data
class SimulatedMaps:
    """Convergence maps simulated on the fly from a power map: ``kind`` ``"lognormal"`` or ``"gaussian"``."""

    def __init__(self, power_map: np.ndarray, kind: str = "lognormal", shift: float | None = None) -> None:
        from core.physics.fields import DEFAULT_SHIFT

        if kind not in ("lognormal", "gaussian"):
            raise ValueError(f"kind must be 'lognormal' or 'gaussian', got {kind!r}")
        self.power_map = np.asarray(power_map, dtype=np.float64)
        self.kind = kind
        self.shift = float(DEFAULT_SHIFT if shift is None else shift)
        self.npix = int(self.power_map.shape[-1])

    def sample(self, num: int, seed: int | tf.Tensor) -> tf.Tensor:
        from core.physics.fields import gaussian_field, lognormal_field

        if self.kind == "lognormal":
            return lognormal_field(self.power_map, num, seed, shift=self.shift)
        return gaussian_field(self.power_map, num, seed)

    @property
    def pixel_std(self) -> float:
        """Expected pixel standard deviation, ``√(mean P_k)`` (Parseval)."""
        return float(np.sqrt(self.power_map.mean()))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "lognormal":
            out["shift"] = self.shift
        return out


FIELD_KINDS = ("lognormal", "gaussian", "halo_model")


def parse_source(text: str) -> tuple[str, ...]:
    """``"halo_model+lognormal"`` → ``("halo_model", "lognormal")``; ValueError naming a bad kind."""
    kinds = tuple(k.strip() for k in str(text).split("+") if k.strip())
    if not kinds or any(k not in FIELD_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"source must be one of {FIELD_KINDS} or several joined by '+', got {text!r}")
    return kinds


class HaloModelMaps:
    """Halo-model convergence maps simulated on the fly (:mod:`core.physics.halos`)."""

    def __init__(self, geometry: MapGeometry, config: Any = None) -> None:
        from core.physics.halos import halo_model_simulator

        self.simulator = halo_model_simulator(geometry, config)
        self.npix = geometry.npix

    def sample(self, num: int, seed: int | tf.Tensor) -> tf.Tensor:
        return tf.constant(self.simulator.sample_maps(int(num), _seed(seed)))

    @property
    def pixel_std(self) -> float:
        return self.simulator.pixel_std

    def describe(self) -> dict[str, Any]:
        return self.simulator.describe()


class MixedMaps:
    """Each map drawn from one of several sources, chosen independently with equal probability."""

    def __init__(self, sources: Sequence[Any]) -> None:
        if not sources:
            raise ValueError("MixedMaps needs at least one source")
        self.sources = list(sources)

    def sample(self, num: int, seed: int | tf.Tensor) -> tf.Tensor:
        if len(self.sources) == 1:
            return self.sources[0].sample(num, seed)
        seeds = tfp.random.split_seed(_seed(seed), n=len(self.sources) + 1)
        choice = tf.random.stateless_uniform([num], seeds[0], 0, len(self.sources), dtype=tf.int32).numpy()
        out = None
        for j, src in enumerate(self.sources):
            idx = np.nonzero(choice == j)[0]
            if idx.size == 0:
                continue
            maps = src.sample(int(idx.size), seeds[j + 1]).numpy()
            if out is None:
                out = np.empty((num,) + maps.shape[1:], np.float32)
            out[idx] = maps
        return tf.constant(out)

    @property
    def pixel_std(self) -> float:
        return float(np.sqrt(np.mean([s.pixel_std**2 for s in self.sources])))

    def describe(self) -> dict[str, Any]:
        if len(self.sources) == 1:
            return self.sources[0].describe()
        return {"kind": "mixture", "probabilities": "equal, per map", "components": [s.describe() for s in self.sources]}


def make_map_source(kinds: Sequence[str], geometry: MapGeometry, power_map: np.ndarray, shift: float | None = None,
                    z_source: float = 1.0, halo_clustering: str = "poisson") -> Any:
    """The training-map source for ``kinds`` (see :func:`parse_source`); ``halo_clustering`` is the halo-model maps'
    :attr:`core.physics.halos.HaloModelConfig.clustering`."""
    from core.physics.cosmology import SourceRedshifts
    from core.physics.halos import HaloModelConfig

    sources = []
    for kind in kinds:
        if kind == "halo_model":
            sources.append(HaloModelMaps(geometry, HaloModelConfig(sources=SourceRedshifts.single_plane(z_source),
                                                                       clustering=halo_clustering)))
        else:
            sources.append(SimulatedMaps(power_map, kind=kind, shift=shift))
    return MixedMaps(sources) if len(sources) > 1 else sources[0]


PIXEL_SCALE_RTOL = 1e-3


class MapDirectory:
    """Random ``npix × npix`` crops of the maps in a directory (``*.npy``, ``*.fits``; 2-D or 3-D stacks).

    Every file is read and checked at construction (before any training step): unreadable or corrupt
    files, non-finite values, maps smaller than ``npix`` and, when ``pixel_size_arcmin`` is given, a
    recorded pixel scale that differs from it by more than a relative 1e-3 raise a ``ValueError`` naming
    the file. The pixel scale is read from a FITS header (``CDELT2``/``CD2_2`` in degrees, or
    ``PIXSCALE`` in arcmin) or, for ``.npy`` files, from a sidecar ``<file>.json`` holding
    ``{"pixel_size_arcmin": ...}``; files without one are used as they are (logged).
    """

    def __init__(self, path: str | Path, npix: int, pixel_size_arcmin: float | None = None) -> None:
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"data_dir {str(path)!r} is not a directory")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".npy", ".fits", ".fit", ".fts"))
        if not files:
            raise ValueError(f"data_dir {str(path)!r} holds no .npy or .fits maps")
        maps: list[np.ndarray] = []
        unknown_scale: list[str] = []
        for f in files:
            arr, scale = self._read(f)
            if pixel_size_arcmin is not None:
                if scale is None:
                    unknown_scale.append(f.name)
                elif not abs(scale - pixel_size_arcmin) <= PIXEL_SCALE_RTOL * pixel_size_arcmin:
                    raise ValueError(
                        f"data_dir file {f.name} has pixel scale {scale:g} arcmin, but the run trains at "
                        f"pixel_size={pixel_size_arcmin:g} arcmin (pass --pixel-size {scale:g} or resample the maps)"
                    )
            arr = arr[None] if arr.ndim == 2 else arr
            if arr.ndim != 3 or min(arr.shape[-2:]) < npix:
                raise ValueError(f"data_dir file {f.name} has shape {arr.shape}; need 2-D maps (or 3-D stacks) of at least {npix}×{npix}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"data_dir file {f.name} contains non-finite values")
            maps.extend(np.asarray(m, dtype=np.float32) for m in arr)
        if unknown_scale:
            logger.info("data_dir %s: no pixel scale recorded in %s; assumed to be %g arcmin", path,
                        ", ".join(unknown_scale), pixel_size_arcmin)
        self.maps = maps
        self.npix = int(npix)
        self.path = path
        self._pixel_std = float(np.sqrt(np.mean([np.var(m) for m in maps])))

    @staticmethod
    def _read(path: Path) -> tuple[np.ndarray, float | None]:
        """The array of a file and its pixel scale in arcmin (None when not recorded)."""
        try:
            if path.suffix.lower() == ".npy":
                arr = np.load(path, allow_pickle=False)
                scale = None
                sidecar = path.with_name(path.name + ".json")
                if sidecar.exists():
                    scale = float(json.loads(sidecar.read_text())["pixel_size_arcmin"])
                if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
                    raise ValueError(f"not a numeric array (dtype {getattr(arr, 'dtype', type(arr))})")
                return np.asarray(arr, dtype=np.float64), scale
            from astropy.io import fits

            with fits.open(path) as hdul:
                for hdu in hdul:
                    if hdu.data is not None and getattr(hdu, "is_image", False):
                        return np.asarray(hdu.data, dtype=np.float64), _fits_pixel_scale(hdu.header)
        except Exception as err:  # numpy / astropy raise OSError, ValueError, EOFError … for damaged files
            raise ValueError(f"data_dir file {path.name}: cannot read it as a map ({type(err).__name__}: {err})") from err
        raise ValueError(f"data_dir file {path.name}: no image HDU")

    def sample(self, num: int, seed: int | tf.Tensor) -> tf.Tensor:
        s_idx, s_row, s_col = tfp.random.split_seed(_seed(seed), n=3)
        idx = tf.random.stateless_uniform([num], s_idx, 0, len(self.maps), dtype=tf.int32).numpy()
        fr = tf.random.stateless_uniform([num], s_row, dtype=tf.float64).numpy()
        fc = tf.random.stateless_uniform([num], s_col, dtype=tf.float64).numpy()
        out = np.empty((num, self.npix, self.npix), np.float32)
        for j, (i, a, b) in enumerate(zip(idx, fr, fc)):
            m = self.maps[i]
            r0 = int(a * (m.shape[0] - self.npix + 1))
            c0 = int(b * (m.shape[1] - self.npix + 1))
            out[j] = m[r0 : r0 + self.npix, c0 : c0 + self.npix]
        return tf.constant(out)

    @property
    def pixel_std(self) -> float:
        return self._pixel_std

    def describe(self) -> dict[str, Any]:
        return {"kind": "directory", "path": str(self.path), "num_maps": len(self.maps)}


def _fits_pixel_scale(header: Any) -> float | None:
    """Pixel side in arcmin from a FITS header (CDELT2 / CD2_2 in degrees, or PIXSCALE in arcmin)."""
    for key in ("CDELT2", "CD2_2", "CDELT1", "CD1_1"):
        if key in header and header[key]:
            unit = str(header.get("CUNIT2", header.get("CUNIT1", "deg"))).strip().lower() or "deg"
            factor = {"deg": 60.0, "arcmin": 1.0, "arcsec": 1.0 / 60.0}.get(unit, 60.0)
            return abs(float(header[key])) * factor
    if "PIXSCALE" in header:
        return float(header["PIXSCALE"])
    return None
