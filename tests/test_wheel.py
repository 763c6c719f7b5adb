"""The package works from a wheel: build it, install it into a fresh venv outside the checkout, run ``kappascope``.

The wheel is built (``pip wheel --no-deps --no-build-isolation``) from a copy of the sources in a temporary folder, so
the checkout gets no ``build/`` folder. The fresh venv reuses this environment's installed dependencies through a
``.pth`` line naming its site-packages (so TensorFlow is not installed again); a path added by a ``.pth`` line is not
scanned for further ``.pth`` files, so this environment's editable install of kappascope is not picked up, and the
test checks that ``core`` and the assets are imported from the fresh venv. Then, from a temporary working directory
outside the checkout, ``kappascope --version`` and ``kappascope sample --cosmos`` (the shipped COSMOS data) run on
tiny settings.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "core", "dashboard", "assets")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    wheels = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(wheels),
          str(src)], cwd=root, env=env)
    (wheel,) = wheels.glob("kappascope-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=root, env=env).stdout.strip())
    (purelib / "_project_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet",
          str(wheel)], cwd=root, env=env)
    work = root / "work"
    work.mkdir()
    return {"venv": venv, "python": python, "purelib": purelib, "work": work, "wheel": wheel,
            "env": env}  # type: ignore[dict-item]


def test_wheel_carries_the_assets(installed) -> None:
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for asset in ("kappascope_assets/cosmos/cosmos_e1_0.29arcmin_360px.fits",
                  "kappascope_assets/weights/hybrid_0.87arcmin.weights.h5",
                  "kappascope_assets/cl/planck18_zs1_convergence_cl.txt", "dashboard/app.py", "core/cli/__init__.py"):
        assert asset in names


def test_installed_package_is_imported_from_the_fresh_venv(installed) -> None:
    code = ("import core, core.data.assets as a, dashboard, sys; "
            "print(core.__file__); print(a.ASSETS_DIR); print('tensorflow' in sys.modules)")
    out = _run([str(installed["python"]), "-c", code], cwd=installed["work"], env=installed["env"])
    core_file, assets, tf_loaded = out.stdout.strip().splitlines()
    venv = str(installed["venv"].resolve())
    assert core_file.startswith(venv) and assets.startswith(venv), out.stdout
    assert Path(assets, "cosmos", "cosmos_counts_0.29arcmin_360px.fits.gz").is_file()
    assert tf_loaded == "False"  # importing core does not import TensorFlow
    assert not str(REPO) in out.stdout


def test_console_script_version_and_cosmos_sample(installed) -> None:
    script = installed["venv"] / "bin" / "kappascope"
    out = _run([str(script), "--version"], cwd=installed["work"], env=installed["env"])
    assert out.stdout.startswith("kappascope 0.1.0")
    out = _run([str(script), "serve", "--dry-run"], cwd=installed["work"], env=installed["env"])
    app = out.stdout.split()[out.stdout.split().index("serve") + 1]
    assert app.startswith(str(installed["venv"].resolve())) and app.endswith("dashboard/app.py"), out.stdout
    target = installed["work"] / "cosmos.fits"
    out = _run([str(script), "sample", "--cosmos", "--npix", "20", "--levels", "2", "--steps-per-level", "1",
                "--chains", "2", "--final-denoise", "none", "--output", target.name], cwd=installed["work"],
               env=installed["env"])
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["npix"] == 20 and summary["chains"] == 2
    with fits.open(target) as hdul:
        prov = json.loads(hdul[0].header["PROVJSON"])
        assert hdul["SAMPLES"].data.shape == (2, 20, 20)
        assert 0.3 < hdul["MASK"].data.mean() < 0.8  # the COSMOS footprint (≈ 53% observed at 0.29')
    assert prov["input_kind"] == "cosmos"
