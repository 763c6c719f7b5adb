r"""Hybrid prior: exact Gaussian (theory C_ℓ) score plus a learned residual.

At annealing level σ the score of the σ-convolved prior is modelled as

.. math::  s_σ(κ) = g_σ(κ) + r_θ(κ, σ),\qquad g_σ(κ) = -F^{-1}\Big[\frac{Fκ}{P_k + σ^2}\Big],

where ``g_σ`` is :meth:`core.priors.gaussian.GaussianPrior.score` and ``r_θ`` the output ``o_θ`` of
the :class:`core.priors.network.ScoreUNet` (which sees ``g_σ`` as an extra input in its hybrid
variant), passed through the *noise-mode filter* (``residual_filter="wiener"``, the default of new
weights)

.. math::  r_θ = F^{-1}\Big[\frac{σ^2}{P_k + σ^2}\, F o_θ\Big],\qquad\text{i.e.}\quad C_σ r_θ = σ^2 o_θ,
           \quad C_σ = F^{-1}\operatorname{diag}(P_k + σ^2) F .

Why: in modes where the signal dominates (``P_k ≫ σ²``, large scales at small σ) a score error ``δ``
changes the DSM loss only by ``σ²|δ|²`` against an O(1) per-mode noise floor, so DSM cannot pin the
residual down there, while an error of the network output (∝ 1/σ) in those modes can overwhelm the
weak Gaussian restoring force ``−κ̂/P_k`` and make annealed samplers diverge (observed with unfiltered
weights).  With the filter the residual acts in the noise-dominated modes, where DSM is informative,
and its displacement in the prior-preconditioned metric is bounded, ``‖C_σ r_θ‖ = σ²‖o_θ‖``.
``residual_filter="none"`` (weights whose metadata lack the key) uses ``r_θ = o_θ``.  The network was trained for σ in ``[σ_min, σ_max]`` (recorded in its metadata);
outside that range the network's σ input is clamped to it — at σ below ``σ_min`` the residual is
taken as ``r_θ(κ, σ_min)`` (no blow-up as σ → 0), while the Gaussian part always uses
the true σ.  There is no tractable log-density (``has_log_prob = False``): samplers that need
Metropolis corrections use the score line integral.

Weights are stored as a Keras ``.weights.h5`` file next to a metadata JSON (same stem) holding the
architecture config (the model is rebuilt from it, no pickles), the pixel scale, the training map
size, cosmology, σ range, losses and provenance.  :func:`load_hybrid_prior` validates them against
the requested :class:`~core.physics.geometry.MapGeometry`.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from core.data.assets import ASSETS_DIR
from core.physics.geometry import MapGeometry, as_float_tensor
from core.priors.network import ScoreUNet, build_score_network, check_map_size

__all__ = [
    "HybridPrior",
    "load_hybrid_prior",
    "shipped_prior",
    "shipped_weights",
    "read_metadata",
    "save_network",
    "METADATA_FORMAT",
    "RESIDUAL_FILTERS",
    "filter_residual",
    "residual_filter_weights",
    "PIXEL_SCALE_RTOL",
    "WEIGHTS_DIR",
]

logger = logging.getLogger(__name__)

METADATA_FORMAT = "kappascope-score-network"
METADATA_VERSION = 1
PIXEL_SCALE_RTOL = 1e-3
RESIDUAL_FILTERS = ("wiener", "none")


def residual_filter_weights(power_map: np.ndarray | tf.Tensor) -> tf.Tensor:
    """The power map on the ``rfft2d`` half plane, float32 ``(N, N//2+1)``, for :func:`filter_residual`."""
    power = np.asarray(power_map, dtype=np.float64)
    return tf.constant(power[:, : power.shape[-1] // 2 + 1], tf.float32)


def filter_residual(raw: tf.Tensor, power_half: tf.Tensor, sigma: tf.Tensor, kind: str = "wiener") -> tf.Tensor:
    """Apply the noise-mode filter ``σ²/(P_k+σ²)`` (module docstring) to ``raw`` ``(B, N, N)``; ``sigma`` ``(B,)``."""
    if kind == "none":
        return raw
    if kind != "wiener":
        raise ValueError(f"residual_filter must be one of {RESIDUAL_FILTERS}, got {kind!r}")
    npix = raw.shape[-1] if raw.shape[-1] is not None else tf.shape(raw)[-1]
    s2 = tf.square(sigma)[:, None, None]
    weights = tf.cast(s2 / (power_half + s2), tf.complex64)
    return tf.signal.irfft2d(tf.signal.rfft2d(raw) * weights, fft_length=[npix, npix])
WEIGHTS_DIR = ASSETS_DIR / "weights"
_WEIGHTS_SUFFIX = ".weights.h5"


class HybridPrior:
    """Gaussian prior score plus a learned residual score (same interface as ``GaussianPrior``).

    Parameters
    ----------
    gaussian_prior:
        A :class:`core.priors.gaussian.GaussianPrior` (anything with ``geometry``, ``power_map`` and
        ``score(κ, sigma)``).
    network:
        A built :class:`ScoreUNet`.
    metadata:
        The weights' metadata dict (used for the σ range); optional.
    """

    has_log_prob = False

    def __init__(self, gaussian_prior: Any, network: ScoreUNet, metadata: dict[str, Any] | None = None) -> None:
        if not hasattr(gaussian_prior, "score") or not hasattr(gaussian_prior, "geometry"):
            raise ValueError(f"gaussian_prior must provide .geometry and .score(kappa, sigma), got {type(gaussian_prior).__name__}")
        if not isinstance(network, ScoreUNet):
            raise ValueError(f"network must be a ScoreUNet, got {type(network).__name__}")
        self.gaussian = gaussian_prior
        self.network = network
        self.metadata = dict(metadata or {})
        check_map_size(self.geometry.npix, network.num_scales, "geometry.npix")
        self.residual_filter = str(self.metadata.get("residual_filter", "none"))
        if self.residual_filter not in RESIDUAL_FILTERS:
            raise ValueError(f"metadata residual_filter must be one of {RESIDUAL_FILTERS}, got {self.residual_filter!r}")
        self._power_half = residual_filter_weights(gaussian_prior.power_map)
        sig = self.metadata.get("sigma", {})
        self.sigma_min = float(sig.get("min", 1e-4))
        self.sigma_max = float(sig.get("max", 1e4))

    @property
    def geometry(self) -> MapGeometry:
        return self.gaussian.geometry

    @property
    def power_map(self) -> Any:
        return self.gaussian.power_map

    def __repr__(self) -> str:
        return (
            f"HybridPrior({self.geometry}, network={self.network.get_config()['channels']}, "
            f"sigma range [{self.sigma_min:g}, {self.sigma_max:g}])"
        )

    def _flatten(self, kappa: tf.Tensor, sigma: tf.Tensor | float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        kappa = as_float_tensor(kappa, "kappa")
        self.geometry.check_map(kappa, "kappa")
        batch_shape = tf.shape(kappa)[:-2]
        sigma = as_float_tensor(sigma, "sigma")
        sigma_b = tf.broadcast_to(sigma, batch_shape)
        n = self.geometry.npix
        return tf.reshape(kappa, [-1, n, n]), tf.reshape(sigma_b, [-1]), batch_shape

    def residual(self, kappa: tf.Tensor, sigma: tf.Tensor | float, gaussian_score: tf.Tensor | None = None) -> tf.Tensor:
        """The learned residual ``r_θ(κ, σ)``, same shape as ``kappa`` (σ clamped to the trained range)."""
        if gaussian_score is None:
            gaussian_score = self.gaussian.score(kappa, sigma)
        flat_k, flat_s, batch_shape = self._flatten(kappa, sigma)
        s_net = tf.clip_by_value(flat_s, self.sigma_min, self.sigma_max)
        n = self.geometry.npix
        g = tf.reshape(as_float_tensor(gaussian_score, "gaussian_score"), [-1, n, n])
        if self.network.hybrid:
            # the network sees σ²·g at its own (clamped) σ: recompute g there only when clamping changed σ
            g_net = tf.cond(
                tf.reduce_all(tf.equal(s_net, flat_s)),
                lambda: g,
                lambda: tf.reshape(self.gaussian.score(flat_k, s_net), [-1, n, n]),
            )
            r = self.network((flat_k, s_net, g_net))
        else:
            r = self.network((flat_k, s_net))
        r = filter_residual(r, self._power_half, s_net, self.residual_filter)
        return tf.reshape(r, tf.shape(kappa))

    def score(self, kappa: tf.Tensor, sigma: tf.Tensor | float = 0.0) -> tf.Tensor:
        """``g_σ(κ) + r_θ(κ, σ)``; ``sigma`` a scalar or a tensor broadcastable to the batch shape."""
        kappa = as_float_tensor(kappa, "kappa")
        g = self.gaussian.score(kappa, sigma)
        return g + self.residual(kappa, sigma, gaussian_score=g)


# ------------------------------------------------------------------------------- files
def _paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths from either file's path or their common stem."""
    path = Path(path)
    name = path.name
    if name.endswith(_WEIGHTS_SUFFIX):
        stem = name[: -len(_WEIGHTS_SUFFIX)]
    elif name.endswith(".json"):
        stem = name[: -len(".json")]
    else:
        stem = name
    return path.with_name(stem + _WEIGHTS_SUFFIX), path.with_name(stem + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and validate the metadata JSON of a weight file (``path``: the JSON, the weights or their stem)."""
    weights_path, meta_path = _paths(path)
    if not meta_path.exists():
        raise FileNotFoundError(f"score-network metadata file not found: {meta_path}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"metadata file {meta_path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
        raise ValueError(f"metadata file {meta_path} is not a kappascope score-network metadata file (format != {METADATA_FORMAT!r})")
    for key in ("architecture", "pixel_size_arcmin", "sigma"):
        if key not in meta:
            raise ValueError(f"metadata file {meta_path} lacks the required key {key!r}")
    if not isinstance(meta["architecture"], dict) or "config" not in meta["architecture"]:
        raise ValueError(f"metadata file {meta_path}: 'architecture' must hold a 'config' dict")
    return meta


def save_network(network: ScoreUNet, path: str | Path, metadata: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.weights.h5`` and ``<stem>.json``; the JSON gets the format tag, architecture and sha256."""
    weights_path, meta_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    network.save_weights(str(weights_path))
    meta = dict(metadata)
    meta["format"] = METADATA_FORMAT
    meta["format_version"] = METADATA_VERSION
    meta["architecture"] = {"class": "ScoreUNet", "config": network.get_config()}
    meta["weights_file"] = weights_path.name
    meta["weights_sha256"] = _sha256(weights_path)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=False, default=_json_default) + "\n")
    return weights_path, meta_path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_network(path: str | Path, check_hash: bool = True) -> tuple[ScoreUNet, dict[str, Any]]:
    """Rebuild the network from the metadata's architecture config and load its weights."""
    meta = read_metadata(path)
    weights_path, meta_path = _paths(path)
    if not weights_path.exists():
        raise FileNotFoundError(f"score-network weights file not found: {weights_path} (metadata: {meta_path})")
    if check_hash and meta.get("weights_sha256") and _sha256(weights_path) != meta["weights_sha256"]:
        raise ValueError(f"weights file {weights_path} does not match the sha256 recorded in {meta_path} (corrupted or replaced)")
    config = meta["architecture"]["config"]
    try:
        network = build_score_network(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata file {meta_path}: invalid architecture config ({err})") from err
    try:
        network.load_weights(str(weights_path))
    except Exception as err:  # h5py/Keras raise OSError, ValueError, KeyError … for damaged files
        raise ValueError(f"cannot load weights file {weights_path}: corrupted or incompatible ({type(err).__name__}: {err})") from err
    return network, meta


def _check_geometry(meta: dict[str, Any], geometry: MapGeometry, source: str) -> None:
    trained = float(meta["pixel_size_arcmin"])
    if abs(trained - geometry.pixel_size_arcmin) > PIXEL_SCALE_RTOL * trained:
        raise ValueError(
            f"pixel scale mismatch: the weights in {source} were trained at {trained:g} arcmin/pixel but the "
            f"geometry has {geometry.pixel_size_arcmin:g} arcmin/pixel (relative tolerance {PIXEL_SCALE_RTOL:g})"
        )
    num_scales = len(meta["architecture"]["config"].get("channels", (0, 0, 0)))
    try:
        check_map_size(geometry.npix, num_scales, "geometry.npix")
    except ValueError as err:
        raise ValueError(f"{err} (weights {source})") from err


def _default_gaussian_prior(meta: dict[str, Any], geometry: MapGeometry) -> Any:
    from core.physics.cosmology import DEFAULT_SOURCE_REDSHIFT, TheorySpectrum, default_power_map
    from core.priors.gaussian import GaussianPrior

    z_source = meta.get("training_data", {}).get("z_source", DEFAULT_SOURCE_REDSHIFT)
    if z_source is None or abs(float(z_source) - DEFAULT_SOURCE_REDSHIFT) < 1e-9:
        power = default_power_map(geometry)
    else:
        power = TheorySpectrum.from_ccl(sources=float(z_source)).power_map(geometry)
    return GaussianPrior(geometry, power)


def load_hybrid_prior(path: str | Path, geometry: MapGeometry, gaussian_prior: Any | None = None) -> HybridPrior:
    """Load weights + metadata from ``path`` and build a :class:`HybridPrior` for ``geometry``.

    ``path`` may be the ``.weights.h5`` file, the ``.json`` metadata or their common stem.  The
    Gaussian part defaults to the default theory (Planck18) at the metadata's source redshift.
    Raises ``FileNotFoundError`` for missing files and ``ValueError`` for a pixel-scale mismatch
    (beyond a relative ``1e-3``), a map size the network does not accept, or a corrupted file.
    """
    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    meta = read_metadata(path)
    _check_geometry(meta, geometry, str(path))
    network, meta = load_network(path)
    if gaussian_prior is None:
        gaussian_prior = _default_gaussian_prior(meta, geometry)
    elif gaussian_prior.geometry != geometry:
        raise ValueError(f"gaussian_prior.geometry {gaussian_prior.geometry} differs from geometry {geometry}")
    sig = meta["sigma"]
    logger.info(
        "loaded score network %s (trained at %.4g arcmin, %s px, sigma in [%g, %g], cosmology %s)",
        Path(path).name,
        float(meta["pixel_size_arcmin"]),
        meta.get("train_npix"),
        float(sig.get("min", float("nan"))),
        float(sig.get("max", float("nan"))),
        meta.get("training_data", {}).get("cosmology", "unknown"),
    )
    return HybridPrior(gaussian_prior, network, meta)


def shipped_weights(weights_dir: str | Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """All (metadata path, metadata) pairs of the weights shipped in ``assets/weights`` (or ``weights_dir``)."""
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    found = []
    for meta_path in sorted(folder.glob("*.json")):
        try:
            found.append((meta_path, read_metadata(meta_path)))
        except ValueError:
            logger.debug("ignoring %s: not score-network metadata", meta_path)
    return found


def shipped_prior(geometry: MapGeometry, weights_dir: str | Path | None = None) -> HybridPrior:
    """The shipped hybrid prior whose pixel scale matches ``geometry`` (``ValueError`` when none does)."""
    candidates = shipped_weights(weights_dir)
    for meta_path, meta in candidates:
        trained = float(meta["pixel_size_arcmin"])
        if abs(trained - geometry.pixel_size_arcmin) <= PIXEL_SCALE_RTOL * trained:
            return load_hybrid_prior(meta_path, geometry)
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    if candidates:
        scales = ", ".join(f"{float(m['pixel_size_arcmin']):g}" for _, m in candidates)
        available = f"weights in {folder} serve {scales} arcmin/pixel"
    else:
        available = f"{folder} holds no score-network weights"
    raise ValueError(
        f"no shipped score-network weights for pixel scale {geometry.pixel_size_arcmin:g} arcmin ({available}); "
        "train one with `kappascope train`"
    )
