r"""Score-network weight files: metadata, save/load, and the ONE lookup of the shipped weights.

A model is a pair ``STEM.weights.h5`` (Keras 3 weights, no pickles) + ``STEM.json`` (metadata: the
architecture config the :class:`~core.priors.network.ScoreUNet` is rebuilt from, the pixel scale, the σ
range, the training data, losses, provenance and the weights' sha256).  Any of the two paths or their
common stem names the model.

Shipped-weight lookup (:func:`find_shipped_weights`, used by :func:`shipped_prior`, the CLI and the
pipeline).  Among the metadata files in ``assets/weights`` (or ``weights_dir``) a candidate must match the
geometry's pixel scale within a relative :data:`PIXEL_SCALE_RTOL` of its trained scale.  Then, in this
order:

1. ``name`` (a file stem such as ``"hybrid_halo_0.87arcmin"``) keeps exactly that file;
2. ``kind`` keeps the files whose ``training_data.kind`` equals it (``"lognormal"``, ``"halo_model"``, …);
3. the remaining candidates are ranked by the metadata flag ``"preferred": true`` first, then the newest
   ``provenance.date`` (ISO 8601; files without a date count as oldest), then the stem in alphabetical
   order — so the choice never depends on the file system's listing order.

To make new weights the default for their pixel scale, set ``"preferred": true`` in their JSON (and remove it
from the older file, or leave both flagged and the newer wins).  Every refusal is a ``ValueError`` that names
the requested value and lists what is available (pixel scales, kinds or names).

:func:`resolve_weights` turns the user-facing ``weights`` option (``None`` = shipped default, a path to a weight
file or stem, or the name of a shipped model) into one metadata path; the CLI and the pipeline call it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.data.assets import ASSETS_DIR
from core.physics.geometry import MapGeometry
from core.priors.network import ScoreUNet, build_score_network, check_map_size

if TYPE_CHECKING:  # pragma: no cover
    from core.priors.hybrid import HybridPrior

__all__ = [
    "METADATA_FORMAT",
    "METADATA_VERSION",
    "PIXEL_SCALE_RTOL",
    "WEIGHTS_DIR",
    "WeightInfo",
    "weight_paths",
    "read_metadata",
    "save_network",
    "load_network",
    "check_geometry",
    "shipped_weights",
    "describe_weights",
    "find_shipped_weights",
    "resolve_weights",
    "load_hybrid_prior",
    "shipped_prior",
]

logger = logging.getLogger(__name__)

METADATA_FORMAT = "kappascope-score-network"
METADATA_VERSION = 1
PIXEL_SCALE_RTOL = 1e-3
WEIGHTS_DIR = ASSETS_DIR / "weights"
WEIGHTS_SUFFIX = ".weights.h5"


# ------------------------------------------------------------------------------- files
def weight_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths from either file's path or their common stem."""
    path = Path(path)
    name = path.name
    if name.endswith(WEIGHTS_SUFFIX):
        stem = name[: -len(WEIGHTS_SUFFIX)]
    elif name.endswith(".json"):
        stem = name[: -len(".json")]
    else:
        stem = name
    return path.with_name(stem + WEIGHTS_SUFFIX), path.with_name(stem + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and validate the metadata JSON of a weight file (``path``: the JSON, the weights or their stem)."""
    _, meta_path = weight_paths(path)
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


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_network(network: ScoreUNet, path: str | Path, metadata: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.weights.h5`` and ``<stem>.json``; the JSON gets the format tag, architecture and sha256."""
    weights_path, meta_path = weight_paths(path)
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


def load_network(path: str | Path, check_hash: bool = True) -> tuple[ScoreUNet, dict[str, Any]]:
    """Rebuild the network from the metadata's architecture config and load its weights."""
    meta = read_metadata(path)
    weights_path, meta_path = weight_paths(path)
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


def _scale_matches(trained: float, pixel_arcmin: float) -> bool:
    return abs(trained - pixel_arcmin) <= PIXEL_SCALE_RTOL * trained


def check_geometry(meta: dict[str, Any], geometry: MapGeometry, source: str) -> None:
    """``ValueError`` unless the weights' pixel scale matches ``geometry`` and the network accepts its map size."""
    trained = float(meta["pixel_size_arcmin"])
    if not _scale_matches(trained, geometry.pixel_size_arcmin):
        raise ValueError(
            f"pixel scale mismatch: the weights in {source} were trained at {trained:g} arcmin/pixel but the "
            f"geometry has {geometry.pixel_size_arcmin:g} arcmin/pixel (relative tolerance {PIXEL_SCALE_RTOL:g})"
        )
    num_scales = len(meta["architecture"]["config"].get("channels", (0, 0, 0)))
    try:
        check_map_size(geometry.npix, num_scales, "geometry.npix")
    except ValueError as err:
        raise ValueError(f"{err} (weights {source})") from err


# ----------------------------------------------------------------------------- lookup
@dataclass(frozen=True)
class WeightInfo:
    """One weight file as the lookup sees it (``path`` is the metadata JSON)."""

    name: str
    path: Path
    pixel_size_arcmin: float
    kind: str | None
    preferred: bool
    date: str | None

    def sort_key(self) -> tuple[bool, float, str]:
        """Ascending key of the default choice: preferred first, then newest, then the stem."""
        return (not self.preferred, -_timestamp(self.date), self.name)

    def describe(self) -> str:
        flag = ", preferred" if self.preferred else ""
        return f"{self.name} ({self.pixel_size_arcmin:g} arcmin, {self.kind or 'unknown kind'}{flag})"


def _timestamp(date: str | None) -> float:
    if not date:
        return float("-inf")
    try:
        parsed = datetime.fromisoformat(str(date))
    except ValueError:
        return float("-inf")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _info(meta_path: Path, meta: dict[str, Any]) -> WeightInfo:
    kind = (meta.get("training_data") or {}).get("kind")
    return WeightInfo(
        name=weight_paths(meta_path)[1].name[: -len(".json")],
        path=meta_path,
        pixel_size_arcmin=float(meta["pixel_size_arcmin"]),
        kind=str(kind) if kind is not None else None,
        preferred=meta.get("preferred") is True,
        date=(meta.get("provenance") or {}).get("date"),
    )


def _folder(weights_dir: str | Path | None) -> Path:
    return Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR


def shipped_weights(weights_dir: str | Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """All (metadata path, metadata) pairs of the weights shipped in ``assets/weights`` (or ``weights_dir``)."""
    found = []
    for meta_path in sorted(_folder(weights_dir).glob("*.json")):
        try:
            found.append((meta_path, read_metadata(meta_path)))
        except ValueError:
            logger.debug("ignoring %s: not score-network metadata", meta_path)
    return found


def describe_weights(weights_dir: str | Path | None = None) -> list[WeightInfo]:
    """:class:`WeightInfo` of every weight file in ``weights_dir``, in the lookup's order (by scale, then rank)."""
    infos = [_info(p, m) for p, m in shipped_weights(weights_dir)]
    return sorted(infos, key=lambda i: (i.pixel_size_arcmin, i.sort_key()))


def _pixel_arcmin(geometry: MapGeometry | float) -> float:
    if isinstance(geometry, MapGeometry):
        return float(geometry.pixel_size_arcmin)
    if isinstance(geometry, bool) or not isinstance(geometry, (int, float, np.floating, np.integer)):
        raise ValueError(f"geometry must be a MapGeometry or a pixel scale in arcmin, got {type(geometry).__name__}")
    value = float(geometry)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"pixel scale must be a positive finite number of arcmin, got {geometry!r}")
    return value


def find_shipped_weights(
    geometry: MapGeometry | float,
    kind: str | None = None,
    name: str | None = None,
    weights_dir: str | Path | None = None,
) -> Path:
    """Metadata path of the shipped weights for ``geometry`` (or a pixel scale in arcmin); rules in the module docstring."""
    pixel = _pixel_arcmin(geometry)
    for option, value in (("kind", kind), ("name", name)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{option} must be a non-empty string or None, got {value!r}")
    folder = _folder(weights_dir)
    everything = describe_weights(folder)
    at_scale = [i for i in everything if _scale_matches(i.pixel_size_arcmin, pixel)]
    if not at_scale:
        if everything:
            scales = ", ".join(dict.fromkeys(f"{i.pixel_size_arcmin:g}" for i in everything))
            listing = "; ".join(i.describe() for i in everything)
            available = f"weights in {folder} serve {scales} arcmin/pixel: {listing}"
        else:
            available = f"{folder} holds no score-network weights"
        raise ValueError(
            f"no shipped score-network weights for pixel scale {pixel:g} arcmin ({available}); "
            "train one with `kappascope train` or use the Gaussian prior"
        )
    chosen = at_scale
    if name is not None:
        chosen = [i for i in at_scale if i.name == name]
        if not chosen:
            raise ValueError(
                f"name={name!r}: no shipped score-network weights of that name for pixel scale {pixel:g} arcmin "
                f"(available there: {', '.join(i.name for i in at_scale)})"
            )
    if kind is not None:
        of_kind = [i for i in chosen if i.kind == kind]
        if not of_kind:
            kinds = ", ".join(dict.fromkeys(str(i.kind) for i in chosen))
            raise ValueError(
                f"kind={kind!r}: no shipped score-network weights trained on {kind!r} maps for pixel scale "
                f"{pixel:g} arcmin (kinds there: {kinds}; files: {', '.join(i.name for i in chosen)})"
            )
        chosen = of_kind
    best = min(chosen, key=WeightInfo.sort_key)
    if len(chosen) > 1:
        logger.info("pixel scale %g arcmin: chose %s among %s", pixel, best.name, ", ".join(i.name for i in chosen))
    return best.path


def resolve_weights(
    geometry: MapGeometry | float,
    weights: str | Path | None = None,
    kind: str | None = None,
    weights_dir: str | Path | None = None,
) -> Path:
    """The metadata path for the ``weights`` option: ``None`` → the shipped default (optionally of ``kind``);
    a path to a ``.weights.h5``/``.json`` file or their stem → that model (existence checked); otherwise the
    name of a shipped model (``"hybrid_0.87arcmin"``).  The pixel scale is checked when the model is loaded."""
    if weights is None:
        return find_shipped_weights(geometry, kind=kind, weights_dir=weights_dir)
    if not isinstance(weights, (str, Path)) or not str(weights).strip():
        raise ValueError(f"weights must be None, a path or a shipped model name, got {weights!r}")
    weights_path, meta_path = weight_paths(weights)
    if meta_path.exists() or weights_path.exists():
        return meta_path
    text = str(weights)
    if "/" not in text and "\\" not in text and not text.endswith((".json", WEIGHTS_SUFFIX)):
        return find_shipped_weights(geometry, kind=kind, name=text, weights_dir=weights_dir)
    raise FileNotFoundError(f"weights={text!r}: neither {weights_path} nor {meta_path} exists")


# ------------------------------------------------------------------------- hybrid prior
def _default_gaussian_prior(meta: dict[str, Any], geometry: MapGeometry) -> Any:
    from core.physics.cosmology import DEFAULT_SOURCE_REDSHIFT, theory_power_map
    from core.priors.gaussian import GaussianPrior

    z_source = meta.get("training_data", {}).get("z_source", DEFAULT_SOURCE_REDSHIFT)
    return GaussianPrior(geometry, theory_power_map(geometry, DEFAULT_SOURCE_REDSHIFT if z_source is None else float(z_source)))


def load_hybrid_prior(
    path: str | Path, geometry: MapGeometry, gaussian_prior: Any | None = None, jit_compile: bool | None = None
) -> "HybridPrior":
    """Load weights + metadata from ``path`` and build a :class:`~core.priors.hybrid.HybridPrior` for ``geometry``.

    ``path`` may be the ``.weights.h5`` file, the ``.json`` metadata or their common stem.  The
    Gaussian part defaults to the default theory (Planck18) at the metadata's source redshift.
    Raises ``FileNotFoundError`` for missing files and ``ValueError`` for a pixel-scale mismatch
    (beyond a relative ``1e-3``), a map size the network does not accept, or a corrupted file.
    ``jit_compile`` is passed to :class:`~core.priors.hybrid.HybridPrior`.
    """
    from core.priors.hybrid import HybridPrior

    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    meta = read_metadata(path)
    check_geometry(meta, geometry, str(path))
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
    return HybridPrior(gaussian_prior, network, meta, jit_compile=jit_compile)


def shipped_prior(
    geometry: MapGeometry,
    weights_dir: str | Path | None = None,
    kind: str | None = None,
    name: str | None = None,
    gaussian_prior: Any | None = None,
    jit_compile: bool | None = None,
) -> "HybridPrior":
    """The shipped hybrid prior for ``geometry``'s pixel scale, chosen by :func:`find_shipped_weights`
    (``ValueError`` naming the scale and listing what exists when none fits)."""
    meta_path = find_shipped_weights(geometry, kind=kind, name=name, weights_dir=weights_dir)
    return load_hybrid_prior(meta_path, geometry, gaussian_prior=gaussian_prior, jit_compile=jit_compile)
