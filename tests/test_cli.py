"""Tests of core.cli: the ``kappascope`` entry point end to end on tiny maps, its error handling and subcommands.

The sampling runs use 16–32 pixel maps and a handful of transitions: they check the plumbing (inputs → FITS with
WCS and provenance), not the statistics (those are tested in test_sampling / test_kernels).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from core.cli import OUTPUT_HDUS, build_parser, main
from tests.helpers import LOOPBACK, gzip_bomb, listening_addresses
from core.cli import sample as cli_sample
from core.cli import serve as cli_serve

NPIX = 32
PIXEL_ARCMIN = 0.87
CENTRE = (150.1, 2.2)
FAST = ["--levels", "3", "--steps-per-level", "2", "--chains", "3", "--quiet"]
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


# ------------------------------------------------------------------------------------------- serve: bind address
def test_serve_binds_localhost_unless_an_address_is_given(capsys) -> None:
    """#14 item 2: the command ``kappascope serve`` runs names --address localhost by default, the user's otherwise."""
    assert main(["serve", "--dry-run", "--port", "5077"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[cmd.index("--address") + 1] == "localhost"
    assert main(["serve", "--dry-run", "--address", "0.0.0.0"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[cmd.index("--address") + 1] == "0.0.0.0"
    assert "localhost" in (REPO / "Makefile").read_text().split("panel serve", 1)[1].splitlines()[0]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_served_dashboard_listens_on_loopback_only(tmp_path) -> None:
    """#14 item 2, live: the server started by ``kappascope serve`` has listening sockets on loopback addresses only."""
    import signal
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        addresses: set[str] = set()
        while time.monotonic() < deadline and server.poll() is None:
            addresses = listening_addresses(port)
            if addresses:
                time.sleep(1.0)  # every socket of the server is bound by now
                addresses = listening_addresses(port)
                break
            time.sleep(0.5)
        assert addresses, f"the server never listened on port {port}: {server.poll()=}"
        assert addresses <= LOOPBACK, f"listening on non-loopback addresses {addresses - LOOPBACK}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# ------------------------------------------------------------------------------------------- entry point
def test_console_entry_point_help_in_subprocess() -> None:
    """``python -m core.cli --help`` works in a fresh interpreter (and does not need TensorFlow)."""
    out = subprocess.run([sys.executable, "-m", "core.cli", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("sample", "train", "serve"):
        assert word in out.stdout
    code = ("import sys; from core.cli import main; rc = [main(a) for a in (['--help'], ['sample', '--help'])]; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr  # --help never imports TensorFlow
    script = Path(sys.executable).with_name("kappascope")  # the console script, once the package is installed
    if script.exists():
        out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.startswith("kappascope "), out.stderr


def test_every_sample_option_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
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
        (["--levels", "100000", "--steps-per-level", "1000"], "--levels"),
        (["--npix", "40000"], "1024"),
        (["--pixel-size", "1e-9"], "--pixel-size"),
        (["--pixel-size", "1e9"], "--pixel-size"),
        (["--num-leapfrog-steps", "5", "--sampler", "ula"], "does not apply to --sampler ula"),
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
        cli_sample.write_atomically(target, {"MEAN": np.zeros((8, 8))}, None, {}, None, failing_writer)
    assert list(tmp_path.iterdir()) == []

    def good_writer(path, maps, **kwargs):
        fits.PrimaryHDU(maps["MEAN"]).writeto(path, overwrite=True)

    cli_sample.write_atomically(target, {"MEAN": np.ones((8, 8))}, None, {}, None, good_writer)
    assert [p.name for p in tmp_path.iterdir()] == ["result.fits"]
    np.testing.assert_array_equal(fits.getdata(target), np.ones((8, 8)))


# ------------------------------------------------------------------------------------------- other commands
def test_serve_builds_panel_command_without_importing_dashboard(capsys) -> None:
    rc = main(["serve", "--dry-run", "--port", "5077", "--num-threads", "2", "--address", "127.0.0.1",
               "--allow-websocket-origin", "example.org:5077"])
    assert rc == 0
    cmd = capsys.readouterr().out.strip()
    assert "-m panel serve" in cmd and cli_serve.DASHBOARD_APP.is_file()
    assert str(cli_serve.DASHBOARD_APP) in cmd
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


# ------------------------------------------------------------------------------------------- #14 item 3: size caps
def test_decompression_bomb_is_refused_from_its_header(tmp_path, capsys) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.fits.gz")
    assert bomb.stat().st_size < 2_000_000
    out = tmp_path / "out.fits"
    rc = main(["sample", "--shear", str(bomb), "--sigma-e", "0.3", "--n-gal", "30", "--pixel-size", "1", "-o", str(out),
               *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and "--shear" in line and "input cap" in line and "256.0 MiB" in line
    assert not out.exists()


def test_header_claiming_a_huge_cube_is_refused(tmp_path, capsys) -> None:
    huge = tmp_path / "huge.fits"
    header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 3), ("NAXIS1", 40000), ("NAXIS2", 40000),
                          ("NAXIS3", 2)])
    huge.write_bytes(header.tostring().encode() + bytes(2880))
    truncated = tmp_path / "truncated.fits"
    header["NAXIS1"] = header["NAXIS2"] = 64
    truncated.write_bytes(header.tostring().encode() + bytes(2880))
    for path, words in ((huge, ("input cap", "2 x 40000 x 40000")), (truncated, ("truncated",))):
        rc = main(["sample", "--shear", str(path), "--sigma-e", "0.3", "--n-gal", "30", "--pixel-size", "1", "-o",
                   str(tmp_path / "o.fits"), *FAST])
        line = _single_error_line(capsys.readouterr().err)
        assert rc == 1 and all(w in line for w in words), line


# ------------------------------------------------------------------------------------------- #14 item 5: noise, degenerate runs
@pytest.mark.parametrize("bad", [-0.1, np.nan, 0.0])
@pytest.mark.parametrize("with_mask", [False, True])
def test_bad_std_inside_the_observed_area_blames_std(data, tmp_path, capsys, bad, with_mask) -> None:
    std = fits.getdata(data["std"]).astype(np.float32)
    observed = np.argwhere(fits.getdata(data["mask"]) > 0)[3]
    std[:, observed[0], observed[1]] = bad
    bad_std = tmp_path / "bad_std.fits"
    fits.PrimaryHDU(std).writeto(bad_std)
    out = tmp_path / "out.fits"
    extra = ["--mask", str(data["mask"])] if with_mask else []
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(bad_std), *extra, "-o", str(out), *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and line.split("error: ")[1].startswith("--std") and "--shear" not in line
    assert f"row {observed[0]}, column {observed[1]}" in line
    assert not out.exists()


def test_rejected_everything_run_is_degenerate_unless_allowed(data, tmp_path, capsys) -> None:
    """``--step-size 100`` (the largest allowed): every proposal is rejected, the "samples" are the initial state."""
    out = tmp_path / "out.fits"
    args = ["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "-o", str(out), "--step-size", "100",
            *FAST]
    rc = main(args)
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and "degenerate" in line and "acceptance" in line and "--allow-degenerate" in line
    assert not out.exists()
    assert main([*args, "--allow-degenerate"]) == 0
    assert "degenerate" in capsys.readouterr().err
    with fits.open(out) as hdul:
        assert "acceptance" in json.loads(hdul[0].header["PROVJSON"])["degenerate"]
    assert main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "-o", str(out), "--step-size",
                 "1e30", *FAST]) == 2
    assert "--step-size" in capsys.readouterr().err


def test_absurdly_scaled_shear_fails_with_one_line(data, tmp_path, capsys) -> None:
    with fits.open(data["shear"]) as hdul:
        fits.PrimaryHDU(hdul[0].data * 1e30, header=hdul[0].header).writeto(tmp_path / "huge_shear.fits")
    out = tmp_path / "out.fits"
    rc = main(["sample", "--shear", str(tmp_path / "huge_shear.fits"), "--std", str(data["std"]), "-o", str(out), *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and ("degenerate" in line or "non-finite" in line)
    assert not out.exists()


# ------------------------------------------------------------------------------------------- #14 item 6: diagnostics
def test_summary_carries_meaningful_diagnostics_not_rhat(data, tmp_path, capsys) -> None:
    out = tmp_path / "out.fits"
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "-o", str(out), "--levels", "4",
               "--steps-per-level", "2", "--chains", "4"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.strip().splitlines()
    summary = json.loads(lines[-1])
    for name in ("sample power / prior power", "sample spread / prior std", "half-run disagreement (RMS z)"):
        assert name in summary["diagnostics"]
        assert any(line.startswith(name) and " — " in line for line in lines[:-1])  # one explained line each
    assert "R-hat" not in captured.out + captured.err
    with fits.open(out) as hdul:
        assert set(json.loads(hdul[0].header["PROVJSON"])["diagnostics"]) == set(summary["diagnostics"])


# ------------------------------------------------------------------------------------------- #14 item 10: stderr, messages
def test_quiet_successful_run_has_empty_stderr(data, tmp_path) -> None:
    """A fresh interpreter (TensorFlow not yet imported): no TF/CUDA/oneDNN start-up line reaches stderr."""
    out = tmp_path / "quiet.fits"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-m", "core.cli", "sample", "--shear", str(data["shear"]), "--std",
                          str(data["std"]), "-o", str(out), *FAST], cwd=REPO, capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and run.stdout == ""
    assert out.exists()


#: A ``kappascope sample`` whose first transition inside a compiled chunk blocks for a minute (test-only: the
#: Gaussian prior's score is wrapped in a ``tf.py_function`` that sleeps, like a transition of the learned prior at
#: 360², which takes seconds). It prints SLOW on stdout once the worker is inside that transition.
_SLOW_SAMPLE = r"""
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background parent may ignore SIGINT)
from core.cli.dispatch import quiet_tensorflow
quiet_tensorflow()  # as the command does, before TensorFlow is imported: start-up lines stay off stderr
import tensorflow as tf
from core.priors.gaussian import GaussianPrior

original = GaussianPrior.score

def slow_score(self, kappa, sigma=0.0):
    out = original(self, kappa, sigma)
    if tf.executing_eagerly():
        return out  # the initial state and the Wiener map: fast; only the compiled chunks are slowed

    def hold(x):
        sys.stdout.write("SLOW\n")
        sys.stdout.flush()
        time.sleep(60)
        return x

    held = tf.py_function(hold, [out], tf.float32)
    held.set_shape(out.shape)
    return held

GaussianPrior.score = slow_score
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_inside_a_slow_transition_exits_130_at_once_and_keeps_the_output(data, tmp_path) -> None:
    """#14: SIGINT while a transition takes a minute: exit status 130 within a few seconds, one error line on stderr
    (--quiet), the existing output untouched (even with --overwrite) and no temporary file left."""
    import select
    import signal
    import time

    out = tmp_path / "kept.fits"
    out.write_bytes(b"the previous result")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.Popen([sys.executable, "-c", _SLOW_SAMPLE, "sample", "--shear", str(data["shear"]), "--std",
                                str(data["std"]), "-o", str(out), "--overwrite", *FAST], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 900)  # start-up: slow on a loaded machine
        assert ready and process.stdout.readline().strip() == "SLOW", process.poll()
        time.sleep(0.5)  # well inside the minute-long transition
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        rc = process.wait(timeout=30)
        exit_s = time.monotonic() - sent
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert rc == 130, err
    assert _single_error_line(err) == "kappascope sample: error: interrupted; no output written"
    assert exit_s <= 3.0, f"exit took {exit_s:.2f} s after SIGINT"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.fits"]
    assert out.read_bytes() == b"the previous result"
    print(f"SIGINT inside a 60 s transition: exit 130 after {exit_s:.2f} s")


def test_interrupted_wait_abandons_a_busy_worker_and_arms_the_exit_hook(monkeypatch) -> None:
    """Ctrl-C while the worker is busy: cancel is set, KeyboardInterrupt re-raised, and the exit hook is armed and
    would end the process (the worker is still running). Guards against ``Thread.is_alive`` after an interrupted
    ``join``, which on Python <= 3.12 says False for a running thread (the hook was then never armed)."""
    import signal
    import threading
    import time

    hooks, exits = [], []
    monkeypatch.setattr(cli_sample.atexit, "register", lambda fn, *args: hooks.append((fn, args)))
    monkeypatch.setattr(cli_sample.os, "_exit", exits.append)
    busy, release, cancel = threading.Event(), threading.Event(), threading.Event()

    def work() -> str:
        busy.set()
        release.wait(60)  # like a compiled chunk: it does not look at ``cancel``
        return "late"

    def interrupt_when_busy() -> None:
        busy.wait(60)
        time.sleep(0.5)  # let the main thread reach its wait loop (a SIGINT before it is not this test's case)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background parent may ignore SIGINT
    try:
        threading.Thread(target=interrupt_when_busy, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            cli_sample.run_interruptibly(work, cancel)
        assert cancel.is_set() and len(hooks) == 1
        hook, args = hooks[0]
        hook(*args)  # at exit, with the worker still inside its chunk: ends the process with 130
        assert exits == [cli_sample.INTERRUPTED_STATUS]
        release.set()
        assert args[0].wait(60)  # the worker has finished: the hook now lets the interpreter exit normally
        hook(*args)
        assert exits == [cli_sample.INTERRUPTED_STATUS]
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)


def test_worker_result_and_errors_reach_the_caller() -> None:
    import threading

    assert cli_sample.run_interruptibly(lambda: 42, threading.Event()) == 42

    def fail() -> None:
        raise ValueError("--std: bad")

    with pytest.raises(ValueError, match="--std: bad"):
        cli_sample.run_interruptibly(fail, threading.Event())


def _catalogue_file(path: Path, **columns: Any) -> Path:
    Table(columns).write(path)
    return path


def test_catalogue_problems_get_clear_messages(catalogue, tmp_path, capsys) -> None:
    with fits.open(catalogue) as hdul:
        cat = Table(hdul[1].data)
    n = len(cat)
    cases = {
        "text RA": (_catalogue_file(tmp_path / "text_ra.fits", RA=np.array([f"{v:.4f}" for v in cat["RA"]]),
                                    DEC=cat["DEC"], E1=cat["E1"], E2=cat["E2"]), ("'RA'", "text")),
        "one galaxy": (_catalogue_file(tmp_path / "one.fits", RA=cat["RA"][:1], DEC=cat["DEC"][:1], E1=cat["E1"][:1],
                                       E2=cat["E2"][:1]), ("1 galaxy", "at least 2")),
        "zero weights": (_catalogue_file(tmp_path / "zero_w.fits", RA=cat["RA"], DEC=cat["DEC"], E1=cat["E1"],
                                         E2=cat["E2"], WEIGHT=np.zeros(n)), ("weight", "zero", "--weight-col none")),
    }
    for case, (path, words) in cases.items():
        rc = main(["sample", "--catalogue", str(path), "--npix", "16", "--pixel-size", "1.74", "-o",
                   str(tmp_path / "o.fits"), *FAST])
        line = _single_error_line(capsys.readouterr().err)
        assert rc == 1 and "--catalogue" in line and all(w in line for w in words), (case, line)
        assert "unexpected" not in line and "nan" not in line.lower()


def test_non_square_wcs_pixels_are_refused(data, tmp_path, capsys) -> None:
    with fits.open(data["shear"]) as hdul:
        header = hdul[0].header.copy()
        header["CDELT2"] = 2 * header["CDELT1"]
        fits.PrimaryHDU(hdul[0].data, header=header).writeto(tmp_path / "rect.fits")
    rc = main(["sample", "--shear", str(tmp_path / "rect.fits"), "--std", str(data["std"]), "-o",
               str(tmp_path / "o.fits"), *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and "not square" in line and "rect.fits" in line


@pytest.mark.parametrize("where", ["/proc/kappascope_test.fits", "{file}/kappa.fits", "{missing}/kappa.fits"])
def test_unwritable_output_is_reported_before_sampling(data, tmp_path, capsys, monkeypatch, where) -> None:
    from core import pipeline

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampling started although the output cannot be written")

    monkeypatch.setattr(pipeline, "run", no_sampling)
    monkeypatch.setattr(pipeline, "build_problem", no_sampling)
    (tmp_path / "a_file").write_text("x")
    target = where.format(file=tmp_path / "a_file", missing=tmp_path / "missing")
    rc = main(["sample", "--shear", str(data["shear"]), "--std", str(data["std"]), "-o", target, *FAST])
    line = _single_error_line(capsys.readouterr().err)
    assert rc == 1 and f"--output {target!r}" in line and ".tmp" not in line and ".probe" not in line


def test_cosmos_input_uses_the_shipped_field(tmp_path, capsys) -> None:
    out = tmp_path / "cosmos.fits"
    rc = main(["sample", "--cosmos", "--npix", "20", "-o", str(out), "--levels", "2", "--steps-per-level", "1",
               "--chains", "2", "--denoise", "none", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        prov = json.loads(hdul[0].header["PROVJSON"])
        assert hdul["MASK"].data.shape == (20, 20) and prov["pixel_size_arcmin"] == pytest.approx(360 * 0.29 / 20)
        assert WCS(hdul["MEAN"].header).celestial.has_celestial
    assert prov["input_kind"] == "cosmos"
    assert main(["sample", "--cosmos", "--npix", "22", "-o", str(tmp_path / "x.fits"), *FAST]) == 1
    assert "360" in _single_error_line(capsys.readouterr().err)
    assert main(["sample", "--cosmos", "--std", "s.fits", "-o", str(tmp_path / "x.fits")]) == 2
    assert "does not apply to --cosmos" in capsys.readouterr().err


def test_every_registered_sampler_and_its_options_are_offered() -> None:
    """--sampler choices and the sampler flags are generated from the registry (adding a sampler adds them)."""
    from core.options import sampler_names, sampler_spec

    sample = build_parser()._subparsers._group_actions[0].choices["sample"]
    actions = {a.dest: a for a in sample._actions}
    assert list(actions["sampler"].choices) == list(sampler_names())
    for name in sampler_names():
        for opt in sampler_spec(name).options:
            action = actions[opt.name]
            assert opt.flag in action.option_strings and name in action.help
            if opt.kind == "choice":
                assert list(action.choices) == list(opt.choices)
    for choice_dest, vocabulary in (("schedule", "SCHEDULES"), ("init", "INITS"), ("final_denoise", "DENOISERS")):
        import core.options as vocab

        assert list(actions[choice_dest].choices) == list(getattr(vocab, vocabulary))


def test_importing_core_changes_no_environment_variable() -> None:
    """Environment variables (TensorFlow's log level) are set by the entry points only, never at import."""
    code = ("import os; before = dict(os.environ); import core, core.cli, core.data.assets, core.options; "
            "print(before == dict(os.environ))")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.parametrize("name", __import__("core.options", fromlist=["sampler_names"]).sampler_names())
def test_every_registered_sampler_runs_from_the_cli(name, catalogue, tmp_path, capsys) -> None:
    """A 2-level run of each registered sampler through ``kappascope sample`` on a 16² catalogue grid."""
    out = tmp_path / f"{name}.fits"
    rc = main(["sample", "--catalogue", str(catalogue), "--npix", "16", "--pixel-size", "1.74", "--sampler", name,
               "--levels", "2", "--steps-per-level", "2", "--chains", "2", "--sigma-max", "0.1", "--sigma-min", "0.01",
               "-o", str(out), "--quiet", "--allow-degenerate"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        prov = json.loads(hdul[0].header["PROVJSON"])
        assert np.isfinite(hdul["SAMPLES"].data).all()
    assert prov["sampler"] == name
