r"""Theory angular power spectrum of the weak-lensing convergence and the pixel power map.

Convergence spectrum (Limber approximation, spatially flat by default, computed by pyccl):

.. math::  C_\ell^{κκ} = \int_0^{χ_H} \frac{dχ}{χ^2}\, q(χ)^2\,
           P_{\rm NL}\!\left(k = \frac{\ell + 1/2}{χ}, z(χ)\right),\qquad
           q(χ) = \frac{3 H_0^2 Ω_m}{2 c^2}\, \frac{χ}{a(χ)} \int_{χ}^{χ_H} dχ'\, n(χ')\, \frac{χ' - χ}{χ'} ,

with ``n(χ)`` the normalised source distribution (a Dirac delta at ``χ_s`` for a single
source plane, where ``q = (3H_0²Ω_m/2c²) χ(χ_s − χ)/(a χ_s)``). pyccl multiplies by the
convergence prefactor ``[ℓ(ℓ+1)/(ℓ+½)²]² = 1 − O(1/ℓ²)``, 1 to better than 1e-4 for ℓ > 100.
The Limber approximation is accurate at the percent level or better for ℓ ≳ 50 (broad
lensing kernels); the fundamental multipole of the paper-scale map (104.4′ a side) is
ℓ ≈ 207, so map scales are well inside its range.
``P_NL`` is the Eisenstein & Hu (1998) linear spectrum with the halofit non-linear
correction (Takahashi et al. 2012). ``boltzmann_camb`` is used instead when the optional
``camb`` package is installed *and* requested (it is not a dependency of kappascope).

Default cosmology: astropy's ``Planck18`` (Planck 2018 VI, Table 2, TT,TE,EE+lowE+lensing+BAO):
``Ω_c = 0.2607, Ω_b = 0.04897, h = 0.6766, n_s = 0.9665, σ₈ = 0.8102``, one massive neutrino
species with m_ν = 0.06 eV (and two massless ones), ``N_eff = 3.046``, ``T_CMB = 2.7255 K``.
The amplitude is set through σ₈ (taken from the astropy metadata), not A_s.

Pixel power map (conventions of :mod:`core.physics.geometry`): for a map with pixels of solid angle
``Ω_pix`` the variance per Fourier mode of the un-normalised DFT, divided by ``N = npix²``, is

.. math::  P_k = \frac{C_{\ell_k}}{Ω_{\rm pix}}\; W(k)^2,\qquad
           W(k) = \operatorname{sinc}(k_1)\,\operatorname{sinc}(k_2),\quad \ell_k = 2π|k|/θ_{\rm pix},

with ``k`` in cycles per pixel and ``sinc(x) = sin(πx)/(πx)`` (``numpy.sinc``) — the
square-pixel window of a map whose pixel values are pixel averages. ``ℓ = 0`` is undefined;
``P_0`` takes the value of the fundamental mode ``k = (1/npix, 0)``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np
import pyccl as ccl
from astropy.cosmology import FLRW, Planck18
from scipy.integrate import simpson

from core.physics.geometry import MapGeometry

__all__ = [
    "default_cosmology",
    "make_cosmology",
    "SourceRedshifts",
    "convergence_cl",
    "TheorySpectrum",
    "default_spectrum",
    "default_power_map",
    "theory_power_map",
    "square_pixel_window",
    "DEFAULT_SOURCE_REDSHIFT",
    "empty_beam_convergence",
    "DEFAULT_CL_ASSET",
]

logger = logging.getLogger(__name__)

DEFAULT_SOURCE_REDSHIFT = 1.0
DEFAULT_ELL_MIN = 1.0
DEFAULT_ELL_MAX = 2.0e5
DEFAULT_NUM_ELL = 400

#: the default spectrum tabulated in the repository (``assets/cl/``, read with
#: ``TheorySpectrum.from_file(core.data.assets.asset_path(*DEFAULT_CL_ASSET))``); regenerate with
#: ``default_spectrum().to_file(...)`` when the defaults change
DEFAULT_CL_ASSET = ("cl", "planck18_zs1_convergence_cl.txt")

CosmologyLike = Union[ccl.Cosmology, FLRW, Mapping[str, Any], None]

#: keys a user dictionary of pyccl parameters must contain (plus sigma8 or A_s)
_REQUIRED_KEYS = ("Omega_c", "Omega_b", "h", "n_s")


# ---------------------------------------------------------------------------- cosmology
def _astropy_to_ccl_params(cosmo: FLRW) -> dict[str, Any]:
    """pyccl keyword arguments equivalent to an astropy FLRW cosmology.

    Ω_c and Ω_b are the present cold-dark-matter and baryon densities (astropy's ``Odm0``
    and ``Ob0``; massive neutrinos are separate, as in pyccl). n_s and σ₈ come from the
    cosmology's ``meta`` (``n`` and ``sigma8``), falling back to the Planck18 values.
    """
    if cosmo.Ob0 is None or cosmo.Ob0 == 0:
        raise ValueError(f"cosmology {cosmo.name!r} has no baryon density (Ob0); pyccl needs Omega_b")
    meta = dict(getattr(cosmo, "meta", {}) or {})
    m_nu: float | tuple[float, ...] = 0.0
    if cosmo.has_massive_nu:
        # the individual masses (Planck18: 0, 0, 0.06 eV); a bare sum would be split by pyccl
        # into a normal hierarchy, which is not what astropy's Planck18 assumes
        m_nu = tuple(float(m) for m in cosmo.m_nu.to_value("eV"))
    return {
        "Omega_c": float(cosmo.Odm0),
        "Omega_b": float(cosmo.Ob0),
        "h": float(cosmo.h),
        "n_s": float(meta.get("n", Planck18.meta["n"])),
        "sigma8": float(meta.get("sigma8", Planck18.meta["sigma8"])),
        "Omega_k": float(cosmo.Ok0),
        "Neff": float(cosmo.Neff),
        "m_nu": m_nu,
        "T_CMB": float(cosmo.Tcmb0.to_value("K")),
    }


def _camb_available() -> bool:
    try:
        import camb  # noqa: F401
    except ImportError:
        return False
    return True


def _normalise_params(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Validate a dict of pyccl parameters and return a hashable, sorted key."""
    params = dict(params)
    missing = [k for k in _REQUIRED_KEYS if k not in params]
    if missing:
        raise ValueError(f"cosmology dict is missing {missing}; it needs {list(_REQUIRED_KEYS)} and sigma8 or A_s")
    if ("sigma8" in params) == ("A_s" in params):
        raise ValueError("cosmology dict must give exactly one of sigma8 or A_s")
    params.setdefault("transfer_function", "eisenstein_hu")
    params.setdefault("matter_power_spectrum", "halofit")
    if params["transfer_function"] == "boltzmann_camb" and not _camb_available():
        raise ValueError("cosmology transfer_function='boltzmann_camb' needs the camb package; use 'eisenstein_hu'")
    for key, value in list(params.items()):
        if isinstance(value, (list, tuple, np.ndarray)):  # e.g. m_nu per species: hashable tuple
            value = tuple(float(v) for v in np.ravel(value))
            params[key] = value
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, (float, int, np.number)) and not isinstance(v, bool) and not math.isfinite(v):
                raise ValueError(f"cosmology parameter {key} must be finite, got {value!r}")
    return tuple(sorted(params.items()))


@lru_cache(maxsize=16)
def _ccl_from_key(key: tuple[tuple[str, Any], ...]) -> ccl.Cosmology:
    try:
        return ccl.Cosmology(**dict(key))
    except (ccl.CCLError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"cosmology parameters rejected by pyccl: {err}") from err


def make_cosmology(cosmology: CosmologyLike = None) -> ccl.Cosmology:
    """A ``pyccl.Cosmology`` from ``None`` (Planck18), an astropy FLRW cosmology, a dict of
    pyccl keyword arguments (``Omega_c, Omega_b, h, n_s`` and ``sigma8`` or ``A_s``; transfer
    function Eisenstein–Hu and halofit unless given) or a ``pyccl.Cosmology`` (returned as is)."""
    if isinstance(cosmology, ccl.Cosmology):
        return cosmology
    return _ccl_from_key(_cosmology_key(cosmology))


def default_cosmology() -> ccl.Cosmology:
    """Planck18 (astropy) as a pyccl cosmology, Eisenstein–Hu transfer function and halofit."""
    return make_cosmology(None)


def _cosmology_key(cosmology: CosmologyLike) -> tuple:
    """Hashable key identifying a cosmology (used by the C_ℓ cache)."""
    if cosmology is None:
        cosmology = Planck18
    if isinstance(cosmology, ccl.Cosmology):
        # pyccl's repr lists every parameter and the accuracy settings.
        return (("__ccl_repr__", repr(cosmology)),)
    if isinstance(cosmology, FLRW):
        return _normalise_params(_astropy_to_ccl_params(cosmology))
    if isinstance(cosmology, Mapping):
        return _normalise_params(cosmology)
    raise ValueError(
        "cosmology must be None, a pyccl.Cosmology, an astropy FLRW cosmology or a dict of pyccl "
        f"parameters; got {type(cosmology).__name__}"
    )


# ----------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class SourceRedshifts:
    """Source galaxies: a single plane at ``z_source`` or a tabulated ``n(z)``.

    Use :meth:`single_plane` or :meth:`from_nz`; the default instance is a single source
    plane at ``z = 1``. ``n(z)`` need not be normalised; it is stored as tuples so the
    object is hashable (it is part of the C_ℓ cache key).
    """

    z_source: float | None = DEFAULT_SOURCE_REDSHIFT
    z: tuple[float, ...] = ()
    nz: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.z_source is not None:
            if self.z or self.nz:
                raise ValueError("SourceRedshifts: give either z_source or (z, nz), not both")
            zs = float(self.z_source)
            if not math.isfinite(zs) or zs <= 0:
                raise ValueError(f"z_source must be a positive finite redshift, got {self.z_source!r}")
            object.__setattr__(self, "z_source", zs)
            return
        z = np.asarray(self.z, dtype=float)
        nz = np.asarray(self.nz, dtype=float)
        if z.ndim != 1 or nz.shape != z.shape or z.size < 3:
            raise ValueError(f"n(z) needs 1-D z and nz of equal length >= 3; got shapes {z.shape} and {nz.shape}")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(nz))):
            raise ValueError("n(z): z and nz must be finite")
        if np.any(z < 0) or np.any(np.diff(z) <= 0):
            raise ValueError("n(z): z must be non-negative and strictly increasing")
        if np.any(nz < 0) or not np.any(nz > 0):
            raise ValueError("n(z): nz must be non-negative with at least one positive value")
        object.__setattr__(self, "z", tuple(float(v) for v in z))
        object.__setattr__(self, "nz", tuple(float(v) for v in nz))

    @classmethod
    def single_plane(cls, z_source: float = DEFAULT_SOURCE_REDSHIFT) -> "SourceRedshifts":
        return cls(z_source=z_source)

    @classmethod
    def from_nz(cls, z: np.ndarray, nz: np.ndarray) -> "SourceRedshifts":
        return cls(z_source=None, z=tuple(np.asarray(z, float)), nz=tuple(np.asarray(nz, float)))

    @property
    def is_single_plane(self) -> bool:
        return self.z_source is not None

    def tracer(self, cosmology: ccl.Cosmology) -> ccl.Tracer:
        """The pyccl convergence tracer (kernel ``q(χ)``, prefactor ℓ(ℓ+1), Bessel order −1)."""
        if self.is_single_plane:
            return ccl.CMBLensingTracer(cosmology, z_source=self.z_source, n_samples=512)
        dndz = (np.asarray(self.z), np.asarray(self.nz))
        kernel = ccl.get_lensing_kernel(cosmology, dndz=dndz, n_chi=512)
        tracer = ccl.Tracer()
        tracer.add_tracer(cosmology, kernel=kernel, der_bessel=-1, der_angles=1)
        return tracer

    def describe(self) -> str:
        if self.is_single_plane:
            return f"single source plane at z={self.z_source:g}"
        return f"n(z) tabulated on {len(self.z)} points, z in [{self.z[0]:g}, {self.z[-1]:g}]"


def _sources(sources: SourceRedshifts | float | None) -> SourceRedshifts:
    if sources is None:
        return SourceRedshifts()
    if isinstance(sources, SourceRedshifts):
        return sources
    if isinstance(sources, (int, float)) and not isinstance(sources, bool):
        return SourceRedshifts.single_plane(float(sources))
    raise ValueError(f"sources must be a SourceRedshifts, a source redshift or None; got {type(sources).__name__}")


# ------------------------------------------------------------------------------ C_ell
def _check_ell(ell: np.ndarray, name: str = "ell") -> np.ndarray:
    ell = np.asarray(ell, dtype=float)
    if ell.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(ell)) or np.any(ell <= 0):
        raise ValueError(f"{name} must be positive and finite")
    return ell


@lru_cache(maxsize=64)
def _convergence_cl_cached(cosmo_key: tuple, sources: SourceRedshifts, ell_bytes: bytes) -> np.ndarray:
    """C_ℓ for a parameter-dict cosmology key (pyccl objects go through :func:`_ccl_object_cl`)."""
    ell = np.frombuffer(ell_bytes, dtype=np.float64)
    return _cl_for(_ccl_from_key(cosmo_key), sources, ell)


def _cl_for(cosmo: ccl.Cosmology, sources: SourceRedshifts, ell: np.ndarray) -> np.ndarray:
    tracer = sources.tracer(cosmo)
    cl = np.asarray(ccl.angular_cl(cosmo, tracer, tracer, ell), dtype=float)
    cl.setflags(write=False)
    return cl


def convergence_cl(
    ell: np.ndarray | float,
    cosmology: CosmologyLike = None,
    sources: SourceRedshifts | float | None = None,
) -> np.ndarray:
    """Convergence C_ℓ at multipoles ``ell`` (> 0) for a cosmology and source distribution.

    ``cosmology``: see :func:`make_cosmology` (default Planck18). ``sources``: a
    :class:`SourceRedshifts`, a source-plane redshift, or ``None`` (single plane at z=1).
    Results are cached on (cosmology parameters, sources, ℓ values); a new array is returned.
    """
    ell_arr = _check_ell(ell)
    src = _sources(sources)
    flat = np.ascontiguousarray(ell_arr.ravel(), dtype=np.float64)
    if isinstance(cosmology, ccl.Cosmology):
        key = _cosmology_key(cosmology)
        cl = _ccl_object_cl(key, cosmology, src, flat.tobytes())
    else:
        cl = _convergence_cl_cached(_cosmology_key(cosmology), src, flat.tobytes())
    return np.array(cl).reshape(ell_arr.shape)


_CCL_OBJECT_CACHE: dict[tuple, np.ndarray] = {}


def _ccl_object_cl(key: tuple, cosmo: ccl.Cosmology, sources: SourceRedshifts, ell_bytes: bytes) -> np.ndarray:
    cache_key = (key, sources, ell_bytes)
    if cache_key not in _CCL_OBJECT_CACHE:
        if len(_CCL_OBJECT_CACHE) > 64:
            _CCL_OBJECT_CACHE.clear()
        _CCL_OBJECT_CACHE[cache_key] = _cl_for(cosmo, sources, np.frombuffer(ell_bytes, dtype=np.float64))
    return _CCL_OBJECT_CACHE[cache_key]


def empty_beam_convergence(z_source: float = DEFAULT_SOURCE_REDSHIFT, cosmology: CosmologyLike = None) -> float:
    """Convergence of an empty beam (no matter along the line of sight), the lower bound of κ:

    ``κ_empty = −(3/2)(H₀/c)² Ω_m ∫₀^{χ_s} dχ χ (χ_s − χ)/χ_s (1 + z(χ))`` (negative), with
    distances from pyccl. ≈ −0.066 for z_s = 1 in Planck18.
    """
    z_source = float(z_source)
    if not math.isfinite(z_source) or z_source <= 0:
        raise ValueError(f"z_source must be a positive finite redshift, got {z_source!r}")
    cosmo = make_cosmology(cosmology)
    z = np.linspace(0.0, z_source, 2049)
    a = 1.0 / (1.0 + z)
    chi = cosmo.comoving_radial_distance(a)
    chi_s = chi[-1]
    hubble_over_c = cosmo["h"] / 2997.92458  # H₀/c in 1/Mpc
    integrand = chi * (chi_s - chi) / chi_s / a
    return float(-1.5 * hubble_over_c**2 * cosmo["Omega_m"] * simpson(integrand, x=chi))


# ------------------------------------------------------------------------ pixel window
def square_pixel_window(geometry: MapGeometry) -> np.ndarray:
    """Square-pixel window ``W(k) = sinc(k₁) sinc(k₂)`` on the FFT grid (k in cycles/pixel)."""
    return np.sinc(geometry.k1) * np.sinc(geometry.k2)


# ----------------------------------------------------------------------- TheorySpectrum
class TheorySpectrum:
    """A tabulated angular power spectrum ``C_ℓ`` with log–log interpolation.

    Between the tabulated points ``log C`` is linear in ``log ℓ``; outside the table the
    spectrum is continued as a power law with the slope of the first (last) two points,
    a logged debug message notes the extrapolation.

    Parameters
    ----------
    ell, cl:
        1-D arrays of equal length ≥ 2; ``ell`` strictly increasing and positive, ``cl``
        positive and finite.
    description:
        Free text recorded for provenance (e.g. the cosmology used).
    """

    def __init__(self, ell: np.ndarray, cl: np.ndarray, description: str = "") -> None:
        ell = np.asarray(ell, dtype=float)
        cl = np.asarray(cl, dtype=float)
        if ell.ndim != 1 or cl.shape != ell.shape:
            raise ValueError(f"ell and cl must be 1-D of equal length; got shapes {ell.shape} and {cl.shape}")
        if ell.size < 2:
            raise ValueError(f"ell needs at least 2 points, got {ell.size}")
        if not np.all(np.isfinite(ell)) or np.any(ell <= 0):
            raise ValueError("ell must be positive and finite")
        if np.any(np.diff(ell) <= 0):
            raise ValueError("ell must be strictly increasing")
        if not np.all(np.isfinite(cl)) or np.any(cl <= 0):
            raise ValueError("cl must be positive and finite (log-log interpolation)")
        self.ell = ell
        self.cl = cl
        self.description = description
        self._log_ell = np.log(ell)
        self._log_cl = np.log(cl)
        self._slope_lo = (self._log_cl[1] - self._log_cl[0]) / (self._log_ell[1] - self._log_ell[0])
        self._slope_hi = (self._log_cl[-1] - self._log_cl[-2]) / (self._log_ell[-1] - self._log_ell[-2])

    def __repr__(self) -> str:
        return (
            f"TheorySpectrum({self.ell.size} points, ell in [{self.ell[0]:g}, {self.ell[-1]:g}]"
            + (f", {self.description}" if self.description else "")
            + ")"
        )

    # ------------------------------------------------------------------ evaluation
    def __call__(self, ell: np.ndarray | float) -> np.ndarray:
        """C_ℓ at ``ell`` (> 0), same shape as ``ell``, float64."""
        ell = _check_ell(ell)
        log_ell = np.log(ell)
        out = np.interp(log_ell, self._log_ell, self._log_cl)
        lo = log_ell < self._log_ell[0]
        hi = log_ell > self._log_ell[-1]
        if np.any(lo) or np.any(hi):
            logger.debug("TheorySpectrum: power-law extrapolation for %d multipoles", int(lo.sum() + hi.sum()))
        out = np.where(lo, self._log_cl[0] + self._slope_lo * (log_ell - self._log_ell[0]), out)
        out = np.where(hi, self._log_cl[-1] + self._slope_hi * (log_ell - self._log_ell[-1]), out)
        return np.exp(out)

    def power_map(self, geometry: MapGeometry, pixel_window: bool = True) -> np.ndarray:
        """The (npix, npix) float64 power map ``P_k = C(ℓ_k)/Ω_pix · W(k)²`` (see module doc)."""
        if not isinstance(geometry, MapGeometry):
            raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
        ell = geometry.ell.copy()
        ell[0, 0] = 2.0 * np.pi * (1.0 / geometry.npix) / geometry.pixel_rad  # the fundamental mode
        power = self(ell) / geometry.pixel_area_sr
        if pixel_window:
            window = square_pixel_window(geometry)
            window[0, 0] = np.sinc(1.0 / geometry.npix)  # window of the fundamental mode (1/npix, 0)
            power = power * window**2
        return power

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_ccl(
        cls,
        cosmology: CosmologyLike = None,
        sources: SourceRedshifts | float | None = None,
        ell_min: float = DEFAULT_ELL_MIN,
        ell_max: float = DEFAULT_ELL_MAX,
        num_ell: int = DEFAULT_NUM_ELL,
    ) -> "TheorySpectrum":
        """Tabulate :func:`convergence_cl` on ``num_ell`` log-spaced multipoles in [ell_min, ell_max]."""
        if not (math.isfinite(ell_min) and math.isfinite(ell_max) and 0 < ell_min < ell_max):
            raise ValueError(f"need 0 < ell_min < ell_max, got ell_min={ell_min!r}, ell_max={ell_max!r}")
        if int(num_ell) < 2:
            raise ValueError(f"num_ell must be at least 2, got {num_ell!r}")
        ell = np.geomspace(ell_min, ell_max, int(num_ell))
        src = _sources(sources)
        cl = convergence_cl(ell, cosmology, src)
        name = "Planck18" if cosmology is None else type(cosmology).__name__
        if isinstance(cosmology, FLRW):
            name = cosmology.name or "astropy FLRW"
        return cls(ell, cl, description=f"pyccl {ccl.__version__}, {name}, {src.describe()}")

    @classmethod
    def from_file(cls, path: str | Path) -> "TheorySpectrum":
        """Read two columns (ℓ, C_ℓ) from a text file (``#`` comments), a ``.npy`` array of
        shape (n, 2) or (2, n), or a FITS table (columns named ``ell``/``l`` and ``cl``, else
        the first two columns) or FITS image of shape (n, 2) / (2, n)."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"path {str(path)!r} does not exist")
        suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix in (".fits", ".fit", ".fts", ".fits.gz"):
            data = _read_fits_table(path)
        else:
            try:
                data = np.loadtxt(path, dtype=float, comments="#", ndmin=2)
            except ValueError as err:
                raise ValueError(f"path {str(path)!r}: cannot read two numeric columns ({err})") from err
        data = np.asarray(data, dtype=float)
        if data.ndim != 2 or 2 not in data.shape:
            raise ValueError(f"path {str(path)!r}: expected two columns (ell, cl); got an array of shape {data.shape}")
        if data.shape[1] != 2:
            data = data.T
        return cls(data[:, 0], data[:, 1], description=f"from {path.name}")

    def to_file(self, path: str | Path) -> None:
        """Write the table as two text columns (ℓ, C_ℓ) with the description as a header."""
        header = "ell  C_ell (convergence)" + (f"\n{self.description}" if self.description else "")
        np.savetxt(Path(path), np.column_stack([self.ell, self.cl]), header=header)


def _read_fits_table(path: Path) -> np.ndarray:
    from astropy.io import fits

    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is None:
                continue
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                names = [n.lower() for n in hdu.columns.names]
                ell_name = next((n for n in ("ell", "l", "multipole") if n in names), None)
                cl_name = next((n for n in ("cl", "c_ell", "c_l", "cl_kk", "power") if n in names), None)
                if ell_name is None or cl_name is None:
                    if len(names) < 2:
                        raise ValueError(f"path {str(path)!r}: FITS table needs two columns (ell, cl)")
                    ell_name, cl_name = names[0], names[1]
                cols = hdu.columns.names
                ell = np.asarray(hdu.data[cols[names.index(ell_name)]], dtype=float)
                cl = np.asarray(hdu.data[cols[names.index(cl_name)]], dtype=float)
                return np.column_stack([ell, cl])
            return np.asarray(hdu.data, dtype=float)
    raise ValueError(f"path {str(path)!r}: no data in FITS file")


# ------------------------------------------------------------------------------ defaults
@lru_cache(maxsize=1)
def default_spectrum() -> TheorySpectrum:
    """The default theory: Planck18, single source plane at z=1, ℓ ∈ [1, 2e5]."""
    return TheorySpectrum.from_ccl()


@lru_cache(maxsize=16)
def _default_power_map_cached(geometry: MapGeometry, pixel_window: bool) -> np.ndarray:
    power = default_spectrum().power_map(geometry, pixel_window=pixel_window)
    power.setflags(write=False)
    return power


def default_power_map(geometry: MapGeometry, pixel_window: bool = True) -> np.ndarray:
    """Power map of the default theory (Planck18, z_s=1) for ``geometry`` (cached; a copy)."""
    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    return np.array(_default_power_map_cached(geometry, bool(pixel_window)))


def theory_power_map(geometry: MapGeometry, z_source: float = DEFAULT_SOURCE_REDSHIFT, cosmology: CosmologyLike = None,
                     pixel_window: bool = True) -> np.ndarray:
    """Power map ``P_k`` (convergence variance per Fourier mode, see :meth:`TheorySpectrum.power_map`) of the
    theory C_ℓ for a single source plane at ``z_source`` and ``cosmology`` (default Planck18).

    The one implementation every caller uses (pipeline, CLI, dashboard, training, hybrid prior). The default
    theory (Planck18, z_s = 1) is cached; other redshifts or cosmologies are tabulated with pyccl on each call.
    """
    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    if isinstance(z_source, bool) or not isinstance(z_source, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(z_source)) or float(z_source) <= 0:
        raise ValueError(f"z_source must be a positive finite redshift, got {z_source!r}")
    if cosmology is None and abs(float(z_source) - DEFAULT_SOURCE_REDSHIFT) < 1e-9:
        return default_power_map(geometry, pixel_window=pixel_window)
    return TheorySpectrum.from_ccl(cosmology, sources=float(z_source)).power_map(geometry, pixel_window=pixel_window)
