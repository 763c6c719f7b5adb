"""Tests of DSM training (core.priors.training): σ sampler, augmentation, loss, data, training, resume, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from core.physics.cosmology import default_power_map
from core.physics.fields import gaussian_field
from core.priors.gaussian import GaussianPrior
from core.physics.geometry import MapGeometry
from core.priors.hybrid import HybridPrior, load_hybrid_prior
from core.priors.network import build_score_network
from core.priors.training import (
    MapDirectory,
    TrainingConfig,
    make_map_source,
    parse_source,
    build_arg_parser,
    dsm_loss_per_map,
    heldout_dsm_losses,
    random_dihedral,
    sample_sigmas,
    train,
    train_main,
)

PIX = 104.4 / 120
TINY = dict(channels=(8, 16, 32), blocks_per_scale=1, batch_size=8, val_maps=8, val_sigmas=(0.01, 0.1), progress=False, warmup_steps=10)


def test_sigma_sampler_range_fraction_and_determinism() -> None:
    n, smin, smax, ssmall, frac = 20000, 1e-3, 1.0, 0.05, 0.3
    s = sample_sigmas(n, 7, smin, smax, frac, ssmall).numpy()
    assert s.dtype == np.float32 and s.min() >= smin * (1 - 1e-6) and s.max() <= smax * (1 + 1e-6)
    # P(σ < σ_small) = (1−f)·ln(σ_small/σ_min)/ln(σ_max/σ_min) + f for the stated mixture
    p = (1 - frac) * np.log(ssmall / smin) / np.log(smax / smin) + frac
    # binomial standard error √(p(1−p)/n) ≈ 0.0033; 4 of them is a 1-in-15000 false-alarm level
    assert abs(np.mean(s < ssmall) - p) < 4 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(s, sample_sigmas(n, 7, smin, smax, frac, ssmall).numpy())
    assert not np.array_equal(s, sample_sigmas(n, 8, smin, smax, frac, ssmall).numpy())
    with pytest.raises(ValueError, match="sigma_min"):
        sample_sigmas(4, 0, 0.0, 1.0)
    with pytest.raises(ValueError, match="small_fraction"):
        sample_sigmas(4, 0, 1e-3, 1.0, small_fraction=1.5)


def test_random_dihedral_applies_a_square_symmetry() -> None:
    maps = tf.random.stateless_normal((16, 8, 8), [1, 2])
    out = random_dihedral(maps, 3).numpy()
    m = maps.numpy()
    for i in range(16):
        variants = [np.rot90(m[i], k) for k in range(4)]
        variants += [v[:, ::-1] for v in variants]
        assert any(np.array_equal(out[i], v) for v in variants)
    np.testing.assert_array_equal(out, random_dihedral(maps, 3).numpy())


def test_dsm_loss_of_exact_gaussian_score_matches_theory() -> None:
    # For Gaussian maps of power P and the exact σ-convolved score, E[loss per map] = mean_k P_k/(P_k+σ²).
    geometry = MapGeometry(32, PIX)
    power = default_power_map(geometry)
    prior = GaussianPrior(geometry, power)
    n, sigma = 64, 0.01
    maps = gaussian_field(power, n, 11)
    noise = tf.random.stateless_normal(maps.shape, [3, 4])
    loss = dsm_loss_per_map(prior.score, maps, tf.fill([n], sigma), noise).numpy()
    expected = np.mean(power / (power + sigma**2))
    # tolerance: 4 standard errors of the mean over the n maps (measured spread of the per-map losses)
    assert abs(loss.mean() - expected) < 4 * loss.std(ddof=1) / np.sqrt(n)


def test_heldout_losses_report_paired_differences() -> None:
    geometry = MapGeometry(16, PIX)
    prior = GaussianPrior(geometry, default_power_map(geometry))
    maps = gaussian_field(prior.power_map, 8, 0)
    res = heldout_dsm_losses({"a": prior.score, "b": lambda x, s: 0.0 * x}, maps, [0.01, 0.1], seed=1)
    assert res["sigma"] == [0.01, 0.1] and res["num_maps"] == 8
    assert set(res) >= {"a", "b", "diff_a_minus_b"}
    # the zero score has loss E|u|² = 1 per pixel, the exact score strictly less
    assert all(d < 0 for d in res["diff_a_minus_b"]["mean"])


def _residual_ratio(prior: HybridPrior, maps: tf.Tensor, sigmas: list[float]) -> float:
    """‖r_θ(x, σ)‖ / ‖g_σ(x)‖ over noisy held-out maps x = κ + σu, pooled over the given σ."""
    num, den = 0.0, 0.0
    for i, s in enumerate(sigmas):
        x = maps + s * tf.random.stateless_normal(maps.shape, [5, i])
        g = prior.gaussian.score(x, s)
        r = prior.residual(x, s, gaussian_score=g)
        num += float(tf.reduce_sum(r**2))
        den += float(tf.reduce_sum(g**2))
    return float(np.sqrt(num / den))


def test_training_on_gaussian_fields_learns_a_negligible_residual(tmp_path) -> None:
    # On Gaussian maps the Gaussian score is exact, so the optimal residual is 0. Start from a randomly
    # initialised output layer (non-zero residual) and check that training drives ‖r‖/‖g‖ down by a
    # large factor and to a small absolute level (the residual includes the noise-mode filter).
    config = TrainingConfig(
        **TINY, npix=16, pixel_size_arcmin=PIX, field="gaussian", steps=300, learning_rate=3e-3,
        zero_init_output=False, val_every=300, output=str(tmp_path / "gauss"), seed=4,
    )
    result = train(config, save=False)
    untrained_net = build_score_network({**result.network.get_config(), "name": "untrained"}, npix=16, seed=4)
    untrained = HybridPrior(result.prior.gaussian, untrained_net, result.prior.metadata)
    maps = gaussian_field(result.prior.power_map, 16, 1234)
    sigmas = [0.003, 0.01, 0.03, 0.1]
    before = _residual_ratio(untrained, maps, sigmas)
    after = _residual_ratio(result.prior, maps, sigmas)
    assert after < 0.2 * before
    assert after < 0.05


def test_resume_from_checkpoint_reproduces_uninterrupted_run(tmp_path) -> None:
    common = dict(**TINY, npix=16, pixel_size_arcmin=PIX, steps=20, val_every=10, checkpoint_every=10, seed=2)
    full = train(TrainingConfig(**common, checkpoint_dir=str(tmp_path / "a"), output=str(tmp_path / "a" / "net")))
    cfg_b = TrainingConfig(**common, checkpoint_dir=str(tmp_path / "b"), output=str(tmp_path / "b" / "net"))
    part = train(cfg_b, stop_at=10)
    assert part.weights_path is None and part.metadata["training"]["steps_done"] == 10
    resumed = train(cfg_b)
    for a, b in zip(full.network.weights, resumed.network.weights):
        # same batches, σ and noise by construction (stateless seeds per step); oneDNN reductions can
        # differ in the last bits, so compare to float32 round-off accumulated over 10 Adam steps
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    assert [h["step"] for h in resumed.history] == [10, 20]
    assert resumed.weights_path is not None and resumed.weights_path.exists()


def test_user_directory_crops(tmp_path) -> None:
    from astropy.io import fits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 48)).astype(np.float32)
    stack = rng.standard_normal((2, 32, 32))
    np.save(tmp_path / "a.npy", a)
    fits.PrimaryHDU(stack).writeto(tmp_path / "b.fits")
    data = MapDirectory(tmp_path, 16)
    assert len(data.maps) == 3
    crops = data.sample(12, 5).numpy()
    assert crops.shape == (12, 16, 16)
    np.testing.assert_array_equal(crops, data.sample(12, 5).numpy())
    sources = [a, *stack.astype(np.float32)]
    for c in crops:  # every crop is a sub-array of one of the maps
        assert any(
            np.array_equal(c, m[r : r + 16, q : q + 16])
            for m in sources for r in range(m.shape[0] - 15) for q in range(m.shape[1] - 15)
        )
    with pytest.raises(ValueError, match="at least 64"):
        MapDirectory(tmp_path, 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .npy or .fits"):
        MapDirectory(tmp_path / "empty", 16)


def test_cli_help_documents_every_option() -> None:
    parser = build_arg_parser()
    for action in parser._actions:
        assert action.help, f"option {action.option_strings} has no help text"
    text = parser.format_help()
    for opt in ("--steps", "--pixel-size", "--checkpoint-dir", "--data-dir", "--sigma-min", "--spectral-norm"):
        assert opt in text


def test_cli_bad_setting_returns_error(capsys) -> None:
    assert train_main(["--npix", "17", "--steps", "2"]) == 2
    assert "npix" in capsys.readouterr().err
    assert train_main(["--sigma-min", "2", "--sigma-max", "1", "--steps", "2"]) == 2


def test_cli_writes_loadable_weights_with_metadata(tmp_path) -> None:
    out = tmp_path / "cli_net"
    argv = ["--output", str(out), "--npix", "16", "--pixel-size", str(PIX), "--channels", "8,16,32",
            "--blocks-per-scale", "1", "--steps", "6", "--warmup-steps", "2", "--batch-size", "4",
            "--val-maps", "4", "--val-every", "3", "--val-sigmas", "0.01,0.1", "--no-progress", "--seed", "1"]
    assert train_main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["pixel_size_arcmin"] == pytest.approx(PIX)
    assert meta["train_npix"] == 16 and meta["training"]["steps"] == 6
    assert meta["provenance"]["command"].startswith("kappascope train ")
    assert meta["training"]["heldout_dsm_loss"]["sigma"] == [0.01, 0.1]
    prior = load_hybrid_prior(str(out) + ".weights.h5", MapGeometry(24, PIX))
    assert prior.score(tf.zeros((2, 24, 24)), 0.01).shape == (2, 24, 24)
    # an existing STEM.weights.h5 / STEM.json is kept unless --overwrite
    before = out.with_suffix(".json").read_text()
    assert train_main(argv) == 2
    assert out.with_suffix(".json").read_text() == before
    assert train_main(argv + ["--overwrite", "--steps", "4"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["training"]["steps"] == 4


def _tiny_argv(out) -> list[str]:
    return ["--output", str(out), "--npix", "16", "--pixel-size", str(PIX), "--channels", "8,16,32",
            "--blocks-per-scale", "1", "--steps", "4", "--warmup-steps", "1", "--batch-size", "4",
            "--val-maps", "4", "--val-sigmas", "0.1", "--no-progress"]


def test_cli_refuses_to_overwrite_shipped_weights(capsys) -> None:
    from core.priors.weights import WEIGHTS_DIR

    stem = WEIGHTS_DIR / "hybrid_0.87arcmin"
    before = (stem.parent / (stem.name + ".json")).read_bytes()
    assert train_main(_tiny_argv(stem)) == 2
    err = capsys.readouterr().err
    assert "shipped weights" in err and "--overwrite" in err
    assert (stem.parent / (stem.name + ".json")).read_bytes() == before


def test_cli_unwritable_paths_fail_before_training(tmp_path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert train_main(_tiny_argv(blocker / "net")) == 2
    assert "output" in capsys.readouterr().err
    assert train_main(_tiny_argv(tmp_path / "net") + ["--checkpoint-dir", str(blocker / "ckpt")]) == 2
    assert "checkpoint_dir" in capsys.readouterr().err
    assert not (tmp_path / "net.json").exists()


def test_cli_groupnorm_channels_give_one_clear_message(tmp_path, capsys) -> None:
    argv = _tiny_argv(tmp_path / "net")
    argv[argv.index("--channels") + 1] = "12,24,48"
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert "channels=12,24,48" in err and "GroupNorm" in err and "\x1b" not in err and "Traceback" not in err


def test_channels_narrower_than_the_next_scales_groups_are_refused_before_building() -> None:
    # 4 channels pass the per-scale check (min(8, 4) = 4 groups) but the 8-channel scale's first block
    # normalises those 4 channels in 8 groups: Keras would fail deep inside the build
    with pytest.raises(ValueError, match="channels=4,8.*4 channels of the scale above in 8 GroupNorm groups"):
        TrainingConfig(channels=(4, 8)).validate()
    TrainingConfig(channels=(4, 4)).validate()  # 4 groups of 1 channel at both scales: builds


def test_data_dir_corrupt_file_and_pixel_scale(tmp_path) -> None:
    from astropy.io import fits

    good = tmp_path / "good"
    good.mkdir()
    np.save(good / "a.npy", np.zeros((20, 20), np.float32))
    (good / "b.npy").write_bytes(b"\x93NUMPY garbage that is not an array")
    with pytest.raises(ValueError, match="b.npy: cannot read"):
        MapDirectory(good, 16)
    scaled = tmp_path / "scaled"
    scaled.mkdir()
    hdu = fits.PrimaryHDU(np.zeros((20, 20)))
    hdu.header["CDELT2"] = 0.29 / 60.0
    hdu.header["CUNIT2"] = "deg"
    hdu.writeto(scaled / "m.fits")
    assert len(MapDirectory(scaled, 16, pixel_size_arcmin=0.29).maps) == 1
    with pytest.raises(ValueError, match="pixel scale 0.29 arcmin.*pixel_size=0.87"):
        MapDirectory(scaled, 16, pixel_size_arcmin=0.87)
    np.save(scaled / "n.npy", np.zeros((20, 20)))
    (scaled / "n.npy.json").write_text(json.dumps({"pixel_size_arcmin": 2.0}))
    with pytest.raises(ValueError, match="n.npy has pixel scale 2 arcmin"):
        MapDirectory(scaled, 16, pixel_size_arcmin=0.29)


def test_halo_model_and_mixed_sources() -> None:
    geometry = MapGeometry(16, PIX)
    power = default_power_map(geometry)
    assert parse_source("halo_model+lognormal") == ("halo_model", "lognormal")
    for bad in ("halo", "lognormal+lognormal", ""):
        with pytest.raises(ValueError, match="source must be one of"):
            parse_source(bad)
    mixed = make_map_source(("halo_model", "lognormal"), geometry, power)
    maps = mixed.sample(8, 3).numpy()
    assert maps.shape == (8, 16, 16) and np.all(np.isfinite(maps))
    np.testing.assert_array_equal(maps, mixed.sample(8, 3).numpy())
    assert mixed.describe()["kind"] == "mixture"
    assert make_map_source(("halo_model",), geometry, power).describe()["kind"] == "halo_model"
    with pytest.raises(ValueError, match="source must be one of"):
        TrainingConfig(field="nbody").validate()


def test_halo_clustering_reaches_the_training_maps_and_bad_names_are_refused() -> None:
    geometry = MapGeometry(16, PIX)
    power = default_power_map(geometry)
    biased = make_map_source(("halo_model",), geometry, power, halo_clustering="biased")
    assert biased.describe()["clustering"] == "biased"
    assert "clustering" not in make_map_source(("halo_model",), geometry, power).describe()
    with pytest.raises(ValueError, match="halo_clustering must be one of"):
        TrainingConfig(field="halo_model", halo_clustering="clustered").validate()
    assert "--halo-clustering" in build_arg_parser().format_help()
