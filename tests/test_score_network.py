"""Tests of the residual U-Net (core.priors.network): shapes, padding, conditioning, serialisation, errors."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.priors.network import ScoreUNet, build_score_network, check_map_size, count_parameters, min_map_size

TINY = {"channels": [8, 16, 32], "blocks_per_scale": 1, "embedding_dim": 16}


def _inputs(batch: int, npix: int, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(seed)
    x = tf.constant(0.02 * rng.standard_normal((batch, npix, npix)), tf.float32)
    sigma = tf.constant(np.geomspace(1e-3, 1.0, batch), tf.float32)
    g = tf.constant(rng.standard_normal((batch, npix, npix)), tf.float32)
    return x, sigma, g


@pytest.fixture(scope="module")
def random_net() -> ScoreUNet:
    return build_score_network({**TINY, "zero_init_output": False}, npix=16, seed=3)


@pytest.mark.parametrize("npix", [16, 18, 22, 40])
def test_output_shape_any_even_size(random_net: ScoreUNet, npix: int) -> None:
    # 18 and 22 are not multiples of 2**(3-1)=4: they are wrap-padded internally and cropped back
    x, sigma, g = _inputs(2, npix)
    out = random_net((x, sigma, g))
    assert out.shape == (2, npix, npix)
    assert out.dtype == tf.float32
    assert np.all(np.isfinite(out.numpy()))


def test_plain_variant_takes_two_inputs() -> None:
    net = build_score_network({**TINY, "hybrid": False, "zero_init_output": False}, npix=16, seed=0)
    x, sigma, g = _inputs(2, 16)
    assert net((x, sigma)).shape == (2, 16, 16)
    with pytest.raises(ValueError, match="inputs must be"):
        net((x, sigma, g))


def test_zero_initialised_output_is_exactly_zero() -> None:
    net = build_score_network(TINY, npix=16, seed=0)
    x, sigma, g = _inputs(3, 16)
    assert np.all(net((x, sigma, g)).numpy() == 0.0)


def test_maps_in_a_batch_are_independent(random_net: ScoreUNet) -> None:
    # group normalisation uses per-sample statistics: a map's output must not depend on its batch mates
    x, sigma, g = _inputs(3, 16, seed=5)
    together = random_net((x, sigma, g)).numpy()
    for i in range(3):
        alone = random_net((x[i : i + 1], sigma[i : i + 1], g[i : i + 1])).numpy()
        np.testing.assert_allclose(alone[0], together[i], rtol=1e-4, atol=1e-5 * np.abs(together[i]).max())


def test_scalar_sigma_broadcasts(random_net: ScoreUNet) -> None:
    x, _, g = _inputs(2, 16)
    a = random_net((x, tf.constant(0.05), g)).numpy()
    b = random_net((x, tf.constant([0.05, 0.05]), g)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_sigma_conditioning_changes_output(random_net: ScoreUNet) -> None:
    x, _, g = _inputs(1, 16)
    a = random_net((x, tf.constant([0.01]), g)).numpy() * 0.01
    b = random_net((x, tf.constant([0.1]), g)).numpy() * 0.1
    assert not np.allclose(a, b)


def test_config_roundtrip_and_weights(tmp_path, random_net: ScoreUNet) -> None:
    config = random_net.get_config()
    clone = build_score_network(config, npix=16, seed=99)  # different init …
    path = tmp_path / "net.weights.h5"
    random_net.save_weights(str(path))
    clone.load_weights(str(path))  # … replaced by the saved weights
    x, sigma, g = _inputs(2, 20)
    np.testing.assert_array_equal(clone((x, sigma, g)).numpy(), random_net((x, sigma, g)).numpy())
    assert count_parameters(clone) == count_parameters(random_net)
    # registered with Keras' serialisation under the kappascope package
    ser = keras.saving.serialize_keras_object(random_net)
    assert ser["registered_name"] == "kappascope>ScoreUNet"
    again = keras.saving.deserialize_keras_object(ser)
    assert again.get_config() == config


def test_spectral_norm_variant_runs_and_normalises() -> None:
    net = build_score_network({**TINY, "spectral_norm": True, "zero_init_output": False}, npix=16, seed=0)
    x, sigma, g = _inputs(2, 16)
    for _ in range(5):  # power iterations run in training mode
        out = net((x, sigma, g), training=True)
    assert np.all(np.isfinite(out.numpy()))
    wrapped = [l for l in net._flatten_layers() if isinstance(l, keras.layers.SpectralNormalization)]
    assert wrapped, "no SpectralNormalization wrappers found"
    kernel = wrapped[0].layer.kernel.numpy()
    # the normalised kernel, reshaped to (k·k·c_in, c_out), has largest singular value ≈ 1
    top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert top == pytest.approx(1.0, rel=0.05)


def test_parameter_count_of_default_is_small() -> None:
    net = build_score_network({"channels": [16, 32, 64], "blocks_per_scale": 2}, npix=16, seed=0)
    # the shipped architecture must stay well under 3 MB of float32 weights
    assert 100_000 < count_parameters(net) < 750_000


def test_map_size_checks() -> None:
    assert min_map_size(3) == 8
    check_map_size(8, 3)
    with pytest.raises(ValueError, match="odd"):
        check_map_size(17, 3)
    with pytest.raises(ValueError, match="too small"):
        check_map_size(12, 4)


def test_bad_inputs_raise(random_net: ScoreUNet) -> None:
    x, sigma, g = _inputs(1, 16)
    with pytest.raises(ValueError, match="odd"):
        random_net((tf.zeros((1, 15, 15)), sigma, tf.zeros((1, 15, 15))))
    with pytest.raises(ValueError, match="kappa must have shape"):
        random_net((tf.zeros((16, 16)), sigma, g))
    with pytest.raises(ValueError, match="inputs must be"):
        random_net((x, sigma))
    with pytest.raises(ValueError, match="channels"):
        ScoreUNet(channels=[])
    with pytest.raises(ValueError, match="activation"):
        ScoreUNet(activation="tanhh")
    with pytest.raises(ValueError, match="sigma_data"):
        ScoreUNet(sigma_data=0.0)
