"""Location of the files shipped in the repository's ``assets/`` folder."""
from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"


def asset_path(*parts: str) -> Path:
    """Path of a shipped asset; raises ``FileNotFoundError`` naming it when absent."""
    path = ASSETS_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"shipped asset not found: {path}")
    return path
