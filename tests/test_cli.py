"""Tests of core.cli: the ``kappascope`` entry point end to end on tiny maps, its error handling and subcommands.

The sampling runs use 16–32 pixel maps and a handful of transitions: they check the plumbing (inputs → FITS with
WCS and provenance), not the statistics (those are tested in test_sampling / test_kernels).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from core.cli import commands as cli
from core.cli import OUTPUT_HDUS, main

NPIX = 32
PIXEL_ARCMIN = 0.87
CENTRE = (150.1, 2.2)
FAST = ["--levels", "3", "--steps-per-level", "2", "--chains", "3", "--snapshot-every", "3", "--quiet"]
REPO = Path(__file__).resolve().parents[1]


def _shear_fixture(folder: Path) -> dict[str, Path]:
    """A simulated 32×32 observation on the COSMOS-like footprint, written as FITS (shear cube with WCS, std
    cube, mask) — the layout of ``read_shear_fits``."""
    from core.physics.cosmology import default_power_map
    from core.physics.fields import lognormal_field
    from core.physics.geometry import MapGeometry
    from core.data.fits_io import make_wcs
    from core.data.observation import NoiseModel, Observation, cosmos_mask

    geometry = MapGeometry(NPIX, PIXEL_ARCMIN)
    kappa = lognormal_field(default_power_map(geometry), 1, seed=3)[0]
    obs = Observation.simulated(geometry, kappa, NoiseModel.from_galaxy_density(geometry, 0.3, 65.0),
                                cosmos_mask(geometry), seed=4)
    wcs = make_wcs(CENTRE[0], CENTRE[1], NPIX, PIXEL_ARCMIN)
    paths = {name: folder / f"{name}.fits" for name in ("shear", "std", "mask", "nan_shear", "mask16")}
    fits.PrimaryHDU(obs.shear, header=wcs.to_header()).writeto(paths["shear"])
    fits.PrimaryHDU(obs.noise_std).writeto(paths["std"])
    fits.PrimaryHDU(obs.mask).writeto(paths["mask"])
    bad = np.array(obs.shear)
    observed = np.argwhere(obs.mask > 0)[0]
    bad[0, observed[0], observed[1]] = np.nan
    fits.PrimaryHDU(bad, header=wcs.to_header()).writeto(paths["nan_shear"])
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(paths["mask16"])
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _shear_fixture(tmp_path_factory.mktemp("cli_data"))


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4000 galaxies uniform over a 16×16 grid of 1.74′ pixels (27.8′ square) with a weak shear pattern."""
    rng = np.random.default_rng(11)
    n = 4000
    half = 16 * 1.74 / 60 / 2
    ra = CENTRE[0] + rng.uniform(-half, half, n)
    dec = CENTRE[1] + rng.uniform(-half, half, n)
    e1 = 0.02 * np.cos(ra * 40) + 0.3 * rng.standard_normal(n)
    e2 = 0.3 * rng.standard_normal(n)
    folder = tmp_path_factory.mktemp("cli_cat")
    path = folder / "cat.fits"
    Table({"RA": ra, "DEC": dec, "E1": e1.astype(np.float32), "E2": e2.astype(np.float32),
           "WEIGHT": np.ones(n, np.float32)}).write(path)
    Table({"X": ra, "Y": dec, "E1": e1, "E2": e2}).write(folder / "no_radec.fits")
    return path


def _single_error_line(err: str, command: str = "sample") -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"kappascope {command}: error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------- entry point
def test_console_entry_point_help_in_subprocess() -> None:
    """``python -m core.cli --help`` works in a fresh interpreter (and does not need TensorFlow)."""
    out = subprocess.run([sys.executable, "-m", "core.cli", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("sample", "train", "serve"):
        assert word in out.stdout
    script = Path(sys.executable).with_name("kappascope")  # the console script, once the package is installed
    if script.exists():
        out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.startswith("kappascope "), out.stderr


def test_every_sample_option_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    sample = parser._subparsers._group_actions[0].choices["sample"]
    undocumented = [a.dest for a in sample._actions if not a.help]
    assert undocumented == []
    assert main(["sample", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--shear", "--catalogue", "--mask", "--std", "--sigma-e", "--n-gal", "--prior", "--z-source",
                   "--cl-file", "--schedule", "--sigma-max", "--sigma-min", "--levels", "--steps-per-level",
                   "--sampler", "--leapfrog", "--chains", "--seed", "--denoise", "--output", "--overwrite"):
        assert option in text


# ------------------------------------------------------------------------------------------- end to end
def test_sample_from_shear_writes_fits_with_wcs_and_provenance(data, tmp_path, capsys) -> None:
    out = tmp_path / "kappa.fits"
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "--output", str(out),
               "--seed", "7", *FAST[:-1]])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["npix"] == NPIX and summary["chains"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name != out.name], "temporary files left behind"
    with fits.open(out) as hdul:
        names = [h.name for h in hdul[1:]]
        assert sorted(names) == sorted(OUTPUT_HDUS)
        for name in OUTPUT_HDUS:
            data_ = hdul[name].data
            assert data_.shape == ((3, NPIX, NPIX) if name == "SAMPLES" else (NPIX, NPIX))
            assert np.all(np.isfinite(data_))
            wcs = WCS(hdul[name].header).celestial
            assert wcs.has_celestial and list(wcs.wcs.ctype) == ["RA---CAR", "DEC--CAR"]
            # the centre of the grid maps back to the input WCS centre
            ra, dec = wcs.pixel_to_world_values((NPIX - 1) / 2, (NPIX - 1) / 2)
            assert ra == pytest.approx(CENTRE[0], abs=1e-9) and dec == pytest.approx(CENTRE[1], abs=1e-9)
        primary = hdul[0].header
        prov = json.loads(primary["PROVJSON"])
        mask_in = fits.getdata(data["mask"])
        np.testing.assert_array_equal(hdul["MASK"].data, mask_in)  # default mask = pixels with data
        mean, std, samples = hdul["MEAN"].data, hdul["STD"].data, hdul["SAMPLES"].data
        np.testing.assert_allclose(mean, samples.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(std, samples.std(0, ddof=1), rtol=1e-4, atol=1e-7)
    assert prov["seed"] == 7 and prov["chains"] == 3 and prov["prior"] == "gaussian"
    assert prov["mass"] == "fourier" and prov["predictor"] == "none"  # resolved "auto" for an exact prior
    assert prov["inputs"]["shear"] == str(data["shear"]) and "kappascope sample" in prov["command"]
    assert primary["SWVERSN"] and primary["DATE"]
    assert prov["pixel_size_arcmin"] == pytest.approx(PIXEL_ARCMIN)  # from the WCS (no --pixel-size given)


def test_sample_from_catalogue_bins_and_writes_catalogue_wcs(catalogue, tmp_path, capsys) -> None:
    from core.data.fits_io import make_wcs

    out = tmp_path / "cat_kappa.fits"
    rc = main(["sample", "--catalogue", str(catalogue), "--npix", "16", "--pixel-size", "1.74", "--center",
               str(CENTRE[0]), str(CENTRE[1]), "--output", str(out), "--denoise", "none", "--sampler", "mala", *FAST])
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        wcs = WCS(hdul["MEAN"].header)
        expected = make_wcs(CENTRE[0], CENTRE[1], 16, 1.74)
        np.testing.assert_allclose(wcs.wcs.crpix, expected.wcs.crpix)
        np.testing.assert_allclose(wcs.wcs.cdelt, expected.wcs.cdelt)
        assert hdul["MASK"].data.mean() > 0.9  # 4000 galaxies over 256 pixels: (almost) every pixel observed
        prov = json.loads(hdul[0].header["PROVJSON"])
    assert prov["input_kind"] == "catalogue" and prov["n_galaxies"] == 4000 and prov["sampler"] == "mala"


# ------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("missing file", ["--shear", "nope.fits", "--sigma-e", "0.3", "--n-gal", "30"], "does not exist"),
        ("mask shape", ["--shear", "{shear}", "--std", "{std}", "--mask", "{mask16}"], "shape"),
        ("NaN shear", ["--shear", "{nan_shear}", "--std", "{std}"], "NaN"),
        ("not FITS", ["--shear", "{textfile}", "--sigma-e", "0.3", "--n-gal", "30", "--pixel-size", "1"], ""),
        ("missing Cl file", ["--shear", "{shear}", "--std", "{std}", "--cl-file", "missing_cl.txt"], "does not exist"),
    ],
)
def test_bad_input_files_exit_1_with_one_line(data, tmp_path, capsys, case, extra, message) -> None:
    textfile = tmp_path / "notes.fits"
    textfile.write_text("this is not a FITS file\n")
    paths = {k: str(v) for k, v in data.items()} | {"textfile": str(textfile)}
    out = tmp_path / "out.fits"
    rc = main(["sample", *[a.format(**paths) for a in extra], "--output", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 1, (case, err)
    line = _single_error_line(err)
    assert message in line
    assert not out.exists() and list(tmp_path.iterdir()) == [textfile]


def test_catalogue_without_radec_exit_1(catalogue, tmp_path, capsys) -> None:
    out = tmp_path / "out.fits"
    rc = main(["sample", "--catalogue", str(catalogue.parent / "no_radec.fits"), "--npix", "16", "--pixel-size",
               "1.74", "--output", str(out), *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and "RA" in line and "DEC" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sigma-min", "0.5", "--sigma-max", "0.1"], "--sigma-min"),
        (["--chains", "0"], "--chains"),
        (["--chains", "1"], "--chains"),
        (["--levels", "-3"], "--levels"),
        (["--sigma-max", "nan"], "--sigma-max"),
        (["--sampler", "gibbs"], "--sampler"),
        (["--predictor", "ddim"], "--predictor"),
        (["--mass", "dense"], "--mass"),
        (["--sigma-max", "1e9"], "--sigma-max"),
        (["--leapfrog", "100000"], "--leapfrog"),
        (["--levels", "100000", "--steps-per-level", "1000"], "absurdly"),
    ],
)
def test_absurd_settings_are_usage_errors(data, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "out.fits"
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "--output", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_usage_errors_for_inconsistent_inputs(data, tmp_path, capsys) -> None:
    out = str(tmp_path / "out.fits")
    assert main(["sample", "--shear", str(data["shear"]), "--output", out]) == 2  # no noise model
    assert "noise" in capsys.readouterr().err
    assert main(["sample", "--shear", str(data["shear"]), "--catalogue", "c.fits", "--output", out]) == 2
    capsys.readouterr()
    assert main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "--output", "x.png"]) == 2
    assert "--output" in capsys.readouterr().err


def test_existing_output_needs_overwrite(data, tmp_path, capsys) -> None:
    out = tmp_path / "out.fits"
    out.write_bytes(b"keep me")
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "--output", str(out), *FAST])
    assert rc == 1 and "--overwrite" in _single_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"keep me"


def test_failed_or_interrupted_write_leaves_nothing(tmp_path) -> None:
    """The atomic writer removes its temporary file when writing fails or is interrupted (Ctrl-C)."""
    target = tmp_path / "result.fits"

    def failing_writer(path, maps, **kwargs):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cli._write_atomically(target, {"MEAN": np.zeros((8, 8))}, None, {}, None, failing_writer)
    assert list(tmp_path.iterdir()) == []

    def good_writer(path, maps, **kwargs):
        fits.PrimaryHDU(maps["MEAN"]).writeto(path, overwrite=True)

    cli._write_atomically(target, {"MEAN": np.ones((8, 8))}, None, {}, None, good_writer)
    assert [p.name for p in tmp_path.iterdir()] == ["result.fits"]
    np.testing.assert_array_equal(fits.getdata(target), np.ones((8, 8)))


# ------------------------------------------------------------------------------------------- other commands
def test_serve_builds_panel_command_without_importing_dashboard(capsys) -> None:
    rc = main(["serve", "--dry-run", "--port", "5077", "--num-threads", "2", "--address", "127.0.0.1",
               "--allow-websocket-origin", "example.org:5077"])
    assert rc == 0
    cmd = capsys.readouterr().out.strip()
    assert "-m panel serve" in cmd and cli.DASHBOARD_APP.is_file()
    assert str(cli.DASHBOARD_APP) in cmd
    for piece in ("--port 5077", "--num-threads 2", "--address 127.0.0.1", "--allow-websocket-origin example.org:5077"):
        assert piece in cmd
    assert "--show" not in cmd
    assert main(["serve", "--port", "70000"]) == 2


def test_train_delegates_to_training_entry_point(capsys) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "kappascope train" in out and "--steps" in out
    assert main(["train", "--steps", "not-a-number"]) == 2


def test_top_level_usage(capsys) -> None:
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert "kappascope" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained, zero-output score network saved in the shipped format (plumbing only: the hybrid prior then
    equals the Gaussian one)."""
    from core.priors.hybrid import save_network
    from core.priors.network import build_score_network

    network = build_score_network({"channels": [4, 8], "blocks_per_scale": 1, "groups": 2, "embedding_dim": 8},
                                  npix=16)
    stem = tmp_path_factory.mktemp("weights") / "tiny"
    meta = {"pixel_size_arcmin": PIXEL_ARCMIN, "train_npix": 16, "sigma": {"min": 1e-3, "max": 1.0},
            "training_data": {"z_source": 1.0}}
    save_network(network, stem, meta)
    wrong = stem.with_name("wrong_scale")
    save_network(network, wrong, {**meta, "pixel_size_arcmin": 0.29})
    return stem


def test_sample_with_weights_file_prior(data, tiny_weights, tmp_path, capsys) -> None:
    out = tmp_path / "hybrid.fits"
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "--prior",
               str(tiny_weights) + ".weights.h5", "--output", str(out), "--sampler", "ula", "--levels", "2",
               "--steps-per-level", "1", "--chains", "2", "--denoise", "none", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        prov = json.loads(hdul[0].header["PROVJSON"])
        assert np.all(np.isfinite(hdul["SAMPLES"].data))
    assert prov["prior"] == "hybrid" and prov["prior_weights"].endswith("tiny.weights.h5")
    assert prov["mass"] == "fourier_capped" and prov["predictor"] == "reverse_diffusion"  # learned prior
    # weights trained at another pixel scale are refused with a clear message
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "--prior",
               str(tiny_weights.with_name("wrong_scale")), "--output", str(tmp_path / "x.fits"), *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and "pixel scale" in line and not (tmp_path / "x.fits").exists()
