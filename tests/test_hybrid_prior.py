"""Tests of the hybrid prior (core.priors.hybrid): shipped weights, quality vs Gaussian, interface, errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from core.physics.cosmology import default_power_map
from core.physics.fields import DEFAULT_SHIFT, lognormal_field
from core.priors.gaussian import GaussianPrior
from core.physics.geometry import MapGeometry
from core.priors.hybrid import (
    WEIGHTS_DIR,
    HybridPrior,
    filter_residual,
    residual_filter_weights,
    load_hybrid_prior,
    read_metadata,
    save_network,
    shipped_prior,
)
from core.priors.network import build_score_network, count_parameters
from core.priors.training import heldout_dsm_losses

PIX = 104.4 / 120
SHIPPED = WEIGHTS_DIR / "hybrid_0.87arcmin.json"


@pytest.fixture(scope="module")
def shipped64() -> HybridPrior:
    return shipped_prior(MapGeometry(64, PIX), name="hybrid_0.87arcmin")  # the lognormal weights SHIPPED describes


def _tiny_files(tmp_path, channels=(8, 16, 32), name="tiny"):
    net = build_score_network({"channels": list(channels), "blocks_per_scale": 1, "zero_init_output": False}, npix=16, seed=0)
    meta = {"pixel_size_arcmin": PIX, "train_npix": 16, "sigma": {"min": 1e-3, "max": 1.0}}
    return net, save_network(net, tmp_path / name, meta)


# ------------------------------------------------------------------------ shipped weights
def test_shipped_weights_match_their_metadata(shipped64: HybridPrior) -> None:
    meta = read_metadata(SHIPPED)
    assert (WEIGHTS_DIR / meta["weights_file"]).exists()
    assert meta["pixel_size_arcmin"] == pytest.approx(PIX, rel=1e-6)
    assert meta["train_npix"] == 64 and meta["training_data"]["kind"] == "lognormal"
    assert meta["training_data"]["shift"] == pytest.approx(DEFAULT_SHIFT)
    assert meta["sigma"]["min"] <= 1e-3 and meta["sigma"]["max"] >= 1.0
    net = shipped64.network
    assert net.get_config() == meta["architecture"]["config"]
    assert count_parameters(net) == meta["num_parameters"]
    assert (WEIGHTS_DIR / meta["weights_file"]).stat().st_size < 3.5e6
    assert meta["provenance"]["command"].startswith("python scripts/train_weights.py")
    assert shipped64.sigma_min == meta["sigma"]["min"] and shipped64.has_log_prob is False
    assert shipped64.residual_filter == meta["residual_filter"] == "wiener"


def test_shipped_weights_serve_the_cosmos_cpu_geometry() -> None:
    prior = shipped_prior(MapGeometry(120, PIX))
    s = prior.score(tf.zeros((1, 120, 120)) + 0.01, 0.05)
    assert s.shape == (1, 120, 120) and np.all(np.isfinite(s.numpy()))


def test_shipped_prior_beats_gaussian_at_small_sigma(shipped64: HybridPrior) -> None:
    # Held-out lognormal maps (seed unrelated to the training seeds), common noise for both models.
    # Per σ the paired difference hybrid − gaussian of the per-map DSM loss has Monte-Carlo standard
    # error sem = std/√n over the n maps; we require the mean difference to be below −3·sem
    # (a one-sided 3σ margin: a chance pass for an equally good model has probability ~0.1%).
    geometry = shipped64.geometry
    maps = lognormal_field(default_power_map(geometry), 32, 20260, shift=DEFAULT_SHIFT)
    res = heldout_dsm_losses(
        {"hybrid": tf.function(shipped64.score), "gaussian": shipped64.gaussian.score}, maps, [0.003, 0.01, 0.03], seed=77
    )
    diff = res["diff_hybrid_minus_gaussian"]
    for s, d, e in zip(res["sigma"], diff["mean"], diff["sem"]):
        assert d < -3 * e, f"at sigma={s}: hybrid - gaussian = {d:.4g} ± {e:.2g}"


# ------------------------------------------------------------------------------ interface
def test_untrained_hybrid_equals_gaussian_and_shapes() -> None:
    geometry = MapGeometry(16, PIX)
    gauss = GaussianPrior(geometry, default_power_map(geometry))
    net = build_score_network({"channels": [8, 16, 32], "blocks_per_scale": 1}, npix=16, seed=0)  # zero output
    prior = HybridPrior(gauss, net, {"sigma": {"min": 1e-3, "max": 1.0}})
    kappa = tf.random.stateless_normal((2, 3, 16, 16), [0, 1]) * 0.02
    np.testing.assert_allclose(prior.score(kappa, 0.01).numpy(), gauss.score(kappa, 0.01).numpy())
    per_chain = tf.constant([[0.01, 0.02, 0.03], [0.1, 0.2, 0.3]])
    assert prior.score(kappa, per_chain).shape == (2, 3, 16, 16)
    assert prior.geometry == geometry and np.array_equal(prior.power_map, gauss.power_map)


def test_per_batch_sigma_matches_scalar_calls(tmp_path) -> None:
    _, (wpath, _) = _tiny_files(tmp_path)
    prior = load_hybrid_prior(wpath, MapGeometry(16, PIX))
    kappa = tf.random.stateless_normal((2, 16, 16), [2, 3]) * 0.02
    both = prior.score(kappa, tf.constant([0.01, 0.1])).numpy()
    np.testing.assert_allclose(both[0], prior.score(kappa[:1], 0.01).numpy()[0], rtol=1e-4, atol=1e-4 * np.abs(both[0]).max())
    np.testing.assert_allclose(both[1], prior.score(kappa[1:], 0.1).numpy()[0], rtol=1e-4, atol=1e-4 * np.abs(both[1]).max())


def test_sigma_below_trained_range_is_clamped_for_the_network(tmp_path) -> None:
    _, (wpath, _) = _tiny_files(tmp_path)
    prior = load_hybrid_prior(wpath, MapGeometry(16, PIX))
    kappa = tf.random.stateless_normal((1, 16, 16), [4, 5]) * 0.02
    r0 = prior.residual(kappa, 0.0).numpy()
    assert np.all(np.isfinite(r0)) and np.abs(r0).max() > 0
    # float32 through the compiled forward: the same tolerance as the per-batch test above
    np.testing.assert_allclose(r0, prior.residual(kappa, prior.sigma_min).numpy(), rtol=1e-4, atol=1e-4 * np.abs(r0).max())
    assert np.all(np.isfinite(prior.score(kappa, 0.0).numpy()))


def test_noise_mode_filter_bounds_the_preconditioned_residual() -> None:
    # C_σ r = σ² o with C_σ = F⁻¹ diag(P + σ²) F: apply C_σ to the filtered residual and compare
    geometry = MapGeometry(16, PIX)
    power = default_power_map(geometry)
    raw = tf.random.stateless_normal((2, 16, 16), [6, 7])
    sigma = tf.constant([0.003, 0.1])
    r = filter_residual(raw, residual_filter_weights(power), sigma, "wiener")
    c = tf.constant(power[:, :9] + sigma.numpy()[:, None, None] ** 2, tf.complex64)
    c_r = tf.signal.irfft2d(tf.signal.rfft2d(r) * c, fft_length=[16, 16]).numpy()
    np.testing.assert_allclose(c_r, (sigma.numpy()[:, None, None] ** 2) * raw.numpy(), rtol=1e-3, atol=1e-9)
    assert filter_residual(raw, residual_filter_weights(power), sigma, "none") is raw
    with pytest.raises(ValueError, match="residual_filter"):
        filter_residual(raw, residual_filter_weights(power), sigma, "lowpass")


# --------------------------------------------------------------------------------- errors
def test_wrong_pixel_scale_is_rejected(tmp_path) -> None:
    _, (wpath, _) = _tiny_files(tmp_path)
    with pytest.raises(ValueError, match=r"0\.87 arcmin.*0\.5 arcmin"):
        load_hybrid_prior(wpath, MapGeometry(16, 0.5))
    with pytest.raises(ValueError, match="no shipped score-network weights for pixel scale 0.123"):
        shipped_prior(MapGeometry(16, 0.123))


def test_map_size_not_allowed(tmp_path) -> None:
    # a 4-scale network needs an even map side >= 2**4 = 16
    _, (wpath, _) = _tiny_files(tmp_path, channels=(8, 8, 16, 16), name="deep")
    with pytest.raises(ValueError, match="too small"):
        load_hybrid_prior(wpath, MapGeometry(12, PIX))
    assert load_hybrid_prior(wpath, MapGeometry(18, PIX)).score(tf.zeros((1, 18, 18)), 0.1).shape == (1, 18, 18)


def test_corrupted_weight_file(tmp_path) -> None:
    _, (wpath, mpath) = _tiny_files(tmp_path)
    data = bytearray(wpath.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    wpath.write_bytes(bytes(data[: len(data) * 3 // 4]))
    with pytest.raises(ValueError, match="sha256"):
        load_hybrid_prior(wpath, MapGeometry(16, PIX))
    meta = json.loads(mpath.read_text())
    del meta["weights_sha256"]  # without the checksum the HDF5 reader itself must fail cleanly
    mpath.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cannot load weights file"):
        load_hybrid_prior(wpath, MapGeometry(16, PIX))


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="metadata file not found"):
        load_hybrid_prior(tmp_path / "nothing.weights.h5", MapGeometry(16, PIX))
    _, (wpath, mpath) = _tiny_files(tmp_path)
    wpath.unlink()
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_hybrid_prior(mpath, MapGeometry(16, PIX))
    mpath.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_hybrid_prior(mpath, MapGeometry(16, PIX))
    _, (wpath, mpath) = _tiny_files(tmp_path, name="badfilter")
    meta = json.loads(mpath.read_text())
    meta["residual_filter"] = "lowpass"
    mpath.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="residual_filter"):
        load_hybrid_prior(mpath, MapGeometry(16, PIX))
    mpath.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a kappascope score-network metadata"):
        load_hybrid_prior(mpath, MapGeometry(16, PIX))


def test_shipped_prior_searches_a_weights_directory(tmp_path) -> None:
    _, (wpath, mpath) = _tiny_files(tmp_path / "w")
    (tmp_path / "w" / "unrelated.json").write_text("{}")  # ignored
    prior = shipped_prior(MapGeometry(16, PIX), weights_dir=tmp_path / "w")
    assert isinstance(prior, HybridPrior)
    shutil.rmtree(tmp_path / "w")


def test_no_weights_for_the_pixel_scale_names_what_exists(tmp_path) -> None:
    _tiny_files(tmp_path / "w")
    with pytest.raises(ValueError, match=r"pixel scale 2 arcmin .*serve 0\.87 arcmin/pixel"):
        shipped_prior(MapGeometry(16, 2.0), weights_dir=tmp_path / "w")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no score-network weights"):
        shipped_prior(MapGeometry(16, PIX), weights_dir=tmp_path / "empty")


def test_shipped_prior_posterior_runs_stably_to_small_sigma() -> None:
    """Annealed HMC with the shipped weights down to σ = 1e-3 (the default σ_min), with the automatic learned-prior
    settings (reverse-diffusion predictor, capped metric): finite chains whose spread matches the Gaussian-prior
    posterior's within a factor 1.5 (an earlier sampler setting blew up below σ ≈ 0.003 to a spread ×15)."""
    from core.inference.likelihood import ShearLikelihood
    from core.data.observation import NoiseModel, Observation, cosmos_mask
    from core.inference.posterior import PosteriorScore
    from core.inference.driver import run_to_completion
    from core.inference.schedules import GeometricSchedule

    geometry = MapGeometry(32, PIX)
    hybrid = shipped_prior(geometry)
    truth = lognormal_field(hybrid.power_map, 1, 5, shift=DEFAULT_SHIFT).numpy()[0]
    obs = Observation.simulated(geometry, truth, NoiseModel.from_galaxy_density(geometry, 0.3, 65.0),
                                cosmos_mask(geometry), seed=6)
    likelihood = ShearLikelihood.from_observation(obs)
    schedule = GeometricSchedule(0.5, 1e-3, num_levels=30, steps_per_level=2)
    spreads = {}
    for name, prior in (("hybrid", hybrid), ("gaussian", hybrid.gaussian)):
        snap = run_to_completion(PosteriorScore(likelihood, prior), schedule, num_chains=8, seed=2,
                                 snapshot_every=60, final_denoise=None)
        assert np.all(np.isfinite(snap.chains)) and snap.sigma == pytest.approx(1e-3)
        spreads[name] = float(snap.chains.std(axis=0).mean())
    assert 1 / 1.5 < spreads["hybrid"] / spreads["gaussian"] < 1.5, spreads


# ------------------------------------------------------------------ compiled forward, denoiser
def _reference_score(prior: HybridPrior, kappa: tf.Tensor, sigma: tf.Tensor) -> np.ndarray:
    """The definition, run eagerly with the network's own Keras call: g(κ, σ) + filter(o_θ(κ, σ̃, g(κ, σ̃)))."""
    s_net = tf.clip_by_value(sigma, prior.sigma_min, prior.sigma_max)
    raw = prior.network((kappa, s_net, prior.gaussian.score(kappa, s_net)))
    return (prior.gaussian.score(kappa, sigma) + filter_residual(raw, prior._power_half, s_net, prior.residual_filter)).numpy()


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_score_equals_the_eager_reference_forward(tmp_path, jit_compile) -> None:
    # 18 is not a multiple of 4 (wrap padding inside the network); σ below, inside and above the trained range
    _, (wpath, _) = _tiny_files(tmp_path)
    prior = load_hybrid_prior(wpath, MapGeometry(18, PIX), jit_compile=jit_compile)
    assert prior.jit_compile is jit_compile
    kappa = tf.random.stateless_normal((4, 18, 18), [8, 9]) * 0.02
    sigma = tf.constant([1e-4, 0.01, 0.2, 3.0])
    ref = _reference_score(prior, kappa, sigma)
    fast = prior.score(kappa, sigma).numpy()
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # the residual is not trivially zero (so the comparison tests the network), and a precomputed Gaussian score is used
    assert np.abs(fast - prior.gaussian.score(kappa, sigma).numpy()).max() > 1e-3 * np.abs(ref).max()
    g = prior.gaussian.score(kappa, sigma)
    np.testing.assert_allclose(prior.score(kappa, sigma, gaussian_score=g).numpy(), fast, rtol=0, atol=1e-6 * np.abs(ref).max())
    # the same compiled function serves another batch size and an outer tf.function
    inside = tf.function(lambda k: prior.score(k, 0.05))(kappa[:2]).numpy()
    np.testing.assert_allclose(inside, _reference_score(prior, kappa[:2], tf.fill([2], 0.05)), rtol=0, atol=1e-5 * np.abs(ref).max())


def test_default_execution_is_the_plain_graph_and_jit_compile_is_checked() -> None:
    geometry = MapGeometry(16, PIX)
    gauss = GaussianPrior(geometry, default_power_map(geometry))
    net = build_score_network({"channels": [8, 16, 32], "blocks_per_scale": 1}, npix=16, seed=0)
    assert HybridPrior(gauss, net).jit_compile is False and HybridPrior(gauss, net, jit_compile=True).jit_compile is True
    with pytest.raises(ValueError, match="jit_compile"):
        HybridPrior(gauss, net, jit_compile="yes")


def test_denoiser_jvp_and_vjp_through_the_network(tmp_path) -> None:
    # the default (graph) execution, on a 2-scale network (forward-mode tracing of the 3-scale one takes minutes
    # on the shared CPU); XLA autodiff works too (checked by hand, see core.priors.hybrid) but compiles even longer
    net = build_score_network({"channels": [4, 8], "blocks_per_scale": 1, "groups": 2, "embedding_dim": 8,
                               "zero_init_output": False}, npix=16, seed=1)
    geometry = MapGeometry(16, PIX)
    prior = HybridPrior(GaussianPrior(geometry, default_power_map(geometry)), net,
                        {"sigma": {"min": 1e-3, "max": 1.0}, "residual_filter": "wiener"})
    x = tf.random.stateless_normal((2, 16, 16), [10, 11]) * 0.02
    sigma = tf.constant([0.005, 0.05])
    t = tf.random.stateless_normal((2, 16, 16), [12, 13])
    u = tf.random.stateless_normal((2, 16, 16), [14, 15])
    d = prior.denoise(x, sigma)
    np.testing.assert_allclose(d.numpy(), x.numpy() + sigma.numpy()[:, None, None] ** 2 * prior.score(x, sigma).numpy(), rtol=1e-6, atol=1e-9)
    # VJP first, then JVP (forward mode then differentiates the function's cached VJP again)
    d_vjp, vjp = prior.denoise_vjp(x, sigma, u)
    d_jvp, jvp = prior.denoise_jvp(x, sigma, t)
    np.testing.assert_allclose(d_vjp.numpy(), d.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_jvp.numpy(), d.numpy(), rtol=1e-6, atol=1e-9)
    # adjoint identity <u, J t> = <Jᵀ u, t>, float32 sums of 512 terms: relative 1e-4
    lhs, rhs = float(tf.reduce_sum(u * jvp)), float(tf.reduce_sum(vjp * t))
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-6 * float(tf.norm(u) * tf.norm(jvp)))
    # JVP against a central difference, step h·|x| with h = 1e-2: truncation O(h²) and float32 round-off
    # ε·|D|/(h|x|) ≈ 1e-5·|D|/|x| — together well below 2 % of |J t|
    h = 1e-2 * float(tf.reduce_max(tf.abs(x)))
    fd = (prior.denoise(x + h * t, sigma) - prior.denoise(x - h * t, sigma)) / (2 * h)
    np.testing.assert_allclose(jvp.numpy(), fd.numpy(), rtol=0, atol=2e-2 * np.abs(jvp.numpy()).max())
    # the same through an outer tf.function, with the accumulator and the tape applied to prior.score directly
    @tf.function
    def products(x):
        with tf.autodiff.ForwardAccumulator(x, t) as acc:
            s = prior.score(x, sigma)
        with tf.GradientTape() as tape:
            tape.watch(x)
            s2 = prior.score(x, sigma)
        return acc.jvp(s), tape.gradient(s2, x, output_gradients=u)
    jvp_s, vjp_s = products(x)
    s2 = sigma.numpy()[:, None, None] ** 2
    np.testing.assert_allclose(t.numpy() + s2 * jvp_s.numpy(), jvp.numpy(), rtol=0, atol=1e-4 * np.abs(jvp.numpy()).max())
    np.testing.assert_allclose(u.numpy() + s2 * vjp_s.numpy(), vjp.numpy(), rtol=0, atol=1e-4 * np.abs(vjp.numpy()).max())


def test_untrained_hybrid_denoiser_equals_the_gaussian_one() -> None:
    geometry = MapGeometry(16, PIX)
    gauss = GaussianPrior(geometry, default_power_map(geometry))
    net = build_score_network({"channels": [8, 16, 32], "blocks_per_scale": 1}, npix=16, seed=0)  # zero output
    prior = HybridPrior(gauss, net, {"sigma": {"min": 1e-3, "max": 1.0}})
    x = tf.random.stateless_normal((3, 16, 16), [16, 17]) * 0.02
    t = tf.random.stateless_normal((3, 16, 16), [18, 19])
    np.testing.assert_allclose(prior.denoise(x, 0.02).numpy(), gauss.denoise(x, 0.02).numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(prior.denoise_jvp(x, 0.02, t)[1].numpy(), gauss.denoise_jvp(x, 0.02, t)[1].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        prior.denoise(x, -0.1)


# ------------------------------------------------------------------------- weight lookup rules
def _write_model(folder, name, pixel=PIX, kind="lognormal", date=None, preferred=None):
    net = build_score_network({"channels": [4, 8], "blocks_per_scale": 1, "groups": 2, "embedding_dim": 8}, npix=16, seed=0)
    meta = {"pixel_size_arcmin": pixel, "train_npix": 16, "sigma": {"min": 1e-3, "max": 1.0},
            "training_data": {"kind": kind, "z_source": 1.0}}
    if date is not None:
        meta["provenance"] = {"date": date}
    if preferred is not None:
        meta["preferred"] = preferred
    return save_network(net, folder / name, meta)[1]


def test_shipped_lookup_is_deterministic_with_several_files_per_scale(tmp_path) -> None:
    from core.priors.weights import describe_weights, find_shipped_weights, resolve_weights

    w = tmp_path / "w"
    # written in an order unrelated to the expected choice; names chosen so that alphabetical order is no help
    _write_model(w, "b_lognormal", date="2026-11-22T03:45:02+00:00")
    _write_model(w, "a_halo_old", kind="halo_model", date="2026-11-01T00:00:00+00:00")
    _write_model(w, "z_halo", kind="halo_model", date="2026-12-01T09:00:00+00:00")
    _write_model(w, "other_scale", pixel=0.29, kind="halo_model", date="2026-12-02T00:00:00+00:00")
    geometry = MapGeometry(16, PIX)
    assert find_shipped_weights(geometry, weights_dir=w).name == "z_halo.json"  # newest at this scale
    assert find_shipped_weights(geometry, kind="lognormal", weights_dir=w).name == "b_lognormal.json"
    assert find_shipped_weights(geometry, kind="halo_model", weights_dir=w).name == "z_halo.json"
    assert find_shipped_weights(geometry, name="a_halo_old", weights_dir=w).name == "a_halo_old.json"
    assert find_shipped_weights(0.29, weights_dir=w).name == "other_scale.json"
    # the "preferred" flag beats the date
    _write_model(w, "b_lognormal", date="2026-11-22T03:45:02+00:00", preferred=True)
    assert find_shipped_weights(geometry, weights_dir=w).name == "b_lognormal.json"
    assert find_shipped_weights(geometry, kind="halo_model", weights_dir=w).name == "z_halo.json"
    # equal rank: the stem decides
    _write_model(w, "c_same", date="2026-11-22T03:45:02+00:00", preferred=True)
    assert find_shipped_weights(geometry, weights_dir=w).name == "b_lognormal.json"
    assert [i.name for i in describe_weights(w)][:2] == ["other_scale", "b_lognormal"]  # by scale, then rank
    # resolve_weights: None → the lookup, a name → that shipped file, a path/stem → itself
    assert resolve_weights(geometry, None, kind="halo_model", weights_dir=w).name == "z_halo.json"
    assert resolve_weights(geometry, "a_halo_old", weights_dir=w).name == "a_halo_old.json"
    assert resolve_weights(geometry, w / "z_halo.weights.h5") == w / "z_halo.json"
    with pytest.raises(FileNotFoundError, match="nothing"):
        resolve_weights(geometry, tmp_path / "nothing.weights.h5")
    prior = shipped_prior(geometry, weights_dir=w, kind="halo_model")
    assert prior.metadata["training_data"]["kind"] == "halo_model"


def test_shipped_lookup_errors_name_the_value_and_list_what_exists(tmp_path) -> None:
    from core.priors.weights import find_shipped_weights

    w = tmp_path / "w"
    _write_model(w, "hybrid_ln", date="2026-11-22T03:45:02+00:00")
    _write_model(w, "hybrid_fine", pixel=0.29)
    with pytest.raises(ValueError, match=r"pixel scale 0\.5 arcmin .*serve 0\.29, 0\.87 arcmin/pixel.*hybrid_fine.*hybrid_ln"):
        find_shipped_weights(MapGeometry(16, 0.5), weights_dir=w)
    with pytest.raises(ValueError, match=r"kind='halo_model'.*0\.87 arcmin.*kinds there: lognormal"):
        find_shipped_weights(MapGeometry(16, PIX), kind="halo_model", weights_dir=w)
    with pytest.raises(ValueError, match=r"name='hybrid_halo'.*available there: hybrid_ln"):
        shipped_prior(MapGeometry(16, PIX), name="hybrid_halo", weights_dir=w)
    with pytest.raises(ValueError, match="kind must be"):
        find_shipped_weights(MapGeometry(16, PIX), kind="", weights_dir=w)
    with pytest.raises(ValueError, match="pixel scale must be"):
        find_shipped_weights(-1.0, weights_dir=w)


def test_shipped_assets_default_is_the_lognormal_0p87_file_or_a_preferred_one() -> None:
    from core.priors.weights import describe_weights, find_shipped_weights

    at_scale = [i for i in describe_weights() if abs(i.pixel_size_arcmin - PIX) <= 1e-3 * i.pixel_size_arcmin]
    chosen = find_shipped_weights(MapGeometry(64, PIX))
    assert chosen == at_scale[0].path  # the first in rank order
    if not any(i.preferred for i in at_scale) and len(at_scale) == 1:
        assert chosen.name == "hybrid_0.87arcmin.json"
