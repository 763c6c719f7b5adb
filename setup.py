"""Package layout of kappascope (metadata, dependencies and entry points are in ``pyproject.toml``).

The code packages ``core`` and ``dashboard`` are found as usual. The top-level ``assets/`` folder (weights, COSMOS
data, C_ℓ tables) stays where it is in the repository and ships as the data package ``kappascope_assets``: the
``package_dir`` mapping below installs ``assets/`` under that name, and ``core.data.assets`` finds it with
``importlib`` (or, in a source checkout, next to ``core/``).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["core", "core.*", "dashboard", "dashboard.*"]) + ["kappascope_assets"],
    package_dir={"kappascope_assets": "assets"},
    package_data={"kappascope_assets": ["*.md", "cl/*", "cosmos/*", "weights/*"]},
)
