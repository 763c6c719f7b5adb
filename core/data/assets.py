"""Location of the shipped files (score-network weights, the COSMOS data, C_ℓ tables): the ONE place that finds them.

In the repository they live in the top-level ``assets/`` folder. An installed wheel carries the same folder as the
data package ``kappascope_assets`` (``setup.py`` maps the package onto ``assets/``; see the comments in
``pyproject.toml``), found here with :func:`importlib.util.find_spec` / :mod:`importlib.resources` — nothing is
imported and no path depends on the current directory. Lookup order: the installed data package, then the
``assets/`` folder beside the ``core`` package (a source checkout, editable or not).
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

__all__ = ["ASSETS_PACKAGE", "ASSETS_DIR", "assets_dir", "asset_path"]

#: the import name of the data package holding ``assets/`` in a wheel
ASSETS_PACKAGE = "kappascope_assets"
_MARKER = ("cosmos", "README.md")  # a file every copy of the assets holds


def _package_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec(ASSETS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    candidates: list[Path] = [Path(p) for p in (spec.submodule_search_locations or [])]
    if not candidates:
        try:
            candidates.append(Path(str(importlib.resources.files(ASSETS_PACKAGE))))
        except (ImportError, TypeError, ValueError):
            return None
    return next((c for c in candidates if c.joinpath(*_MARKER).is_file()), None)


def assets_dir() -> Path:
    """The folder of the shipped assets (``FileNotFoundError`` naming both places looked at when absent)."""
    found = _package_dir()
    if found is not None:
        return found
    checkout = Path(__file__).resolve().parents[2] / "assets"
    if checkout.joinpath(*_MARKER).is_file():
        return checkout
    raise FileNotFoundError(f"kappascope's shipped assets were not found: no data package {ASSETS_PACKAGE!r} is "
                            f"installed and {checkout} does not exist (reinstall kappascope)")


#: the folder of the shipped assets, resolved once at import
ASSETS_DIR = assets_dir()


def asset_path(*parts: str) -> Path:
    """Path of a shipped asset; raises ``FileNotFoundError`` naming it when absent."""
    path = ASSETS_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"shipped asset not found: {path}")
    return path
