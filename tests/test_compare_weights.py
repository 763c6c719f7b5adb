"""benchmarks/compare_weights.py: paired held-out DSM losses of weights sets on common maps and noise (tiny networks)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare_weights as cw

PIXEL_ARCMIN = 104.4 / 120


def _save(stem: Path, perturb: float = 0.0) -> str:
    """A small network in the shipped format: zero output (the hybrid prior = the Gaussian one) unless ``perturb``
    > 0 adds that much random noise to every weight (then the residual is not zero)."""
    from core.priors.hybrid import save_network
    from core.priors.network import build_score_network

    network = build_score_network({"channels": [4, 8], "blocks_per_scale": 1, "groups": 2, "embedding_dim": 8}, npix=16)
    if perturb:
        rng = np.random.default_rng(3)
        network.set_weights([w + perturb * rng.standard_normal(w.shape).astype(w.dtype) for w in network.get_weights()])
    save_network(network, stem, {"pixel_size_arcmin": PIXEL_ARCMIN, "train_npix": 16, "sigma": {"min": 1e-3, "max": 1.0},
                                 "training_data": {"z_source": 1.0}})
    return str(stem)


@pytest.fixture(scope="module")
def stems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("weights")
    return {"zero": _save(folder / "zero"), "zero_copy": _save(folder / "zero_copy"),
            "noisy": _save(folder / "noisy", perturb=0.3)}


def test_identical_networks_pair_to_zero_and_a_zero_residual_is_the_gaussian_score(stems):
    res = cw.compare_weights([stems["zero"], stems["zero_copy"], stems["noisy"]], npix=16, num_maps=8, sigmas=(0.01, 0.1),
                             denoise_sigmas=())
    losses = res["losses"]
    diff = losses[f"diff_{stems['zero']}_minus_{stems['zero_copy']}"]
    assert np.allclose(diff["mean"], 0.0, atol=1e-7) and np.allclose(losses[stems["zero"]]["mean"], losses["gaussian"]["mean"],
                                                                      rtol=1e-5)
    assert np.allclose(res["relative_gain_over_gaussian"][stems["zero"]], 0.0, atol=1e-5)
    noisy = losses[f"diff_{stems['zero']}_minus_{stems['noisy']}"]
    expected = np.subtract(losses[stems["zero"]]["mean"], losses[stems["noisy"]]["mean"])
    assert np.allclose(noisy["mean"], expected, rtol=1e-4) and np.all(np.abs(expected) > 1e-6)  # a real residual changes it
    text = cw.markdown_table(json.loads(json.dumps(res)))
    assert text.count("| `") == 6  # three networks, the Gaussian score, two rows paired against the first


def test_bad_options_are_named(stems, capsys):
    with pytest.raises(ValueError, match="at least two"):
        cw.compare_weights([stems["zero"]])
    with pytest.raises(ValueError, match="repeated"):
        cw.compare_weights([stems["zero"], stems["zero"]])
    with pytest.raises(ValueError, match="num_maps"):
        cw.compare_weights([stems["zero"], stems["noisy"]], num_maps=1)
    assert cw.main(["--weights", stems["zero"], "--maps", "1", "--weights", stems["noisy"]]) == 2
    assert "num_maps must be at least 2" in capsys.readouterr().err
    assert cw.main(["--weights", stems["zero"], "--weights", stems["noisy"], "--denoise-sigmas", "0.04,-1"]) == 2
    assert "--denoise-sigmas must be positive" in capsys.readouterr().err


def test_denoising_reference_is_the_wiener_filter_and_a_zero_residual_matches_it(stems):
    """The Gaussian Tweedie mean on x = κ + σn is the Wiener filter F⁻¹[P/(P+σ²) F x] (checked by hand on one map);
    a zero-output network gives the same RMSE and r (Δ = 0), a perturbed one does not."""
    import tensorflow as tf

    from core.physics.cosmology import theory_power_map
    from core.physics.geometry import MapGeometry
    from core.priors.gaussian import GaussianPrior

    geometry = MapGeometry(16, PIXEL_ARCMIN)
    power = theory_power_map(geometry)
    prior = GaussianPrior(geometry, power)
    rng = np.random.default_rng(5)
    maps = rng.normal(scale=0.02, size=(4, 16, 16)).astype(np.float32)
    res = cw.denoising_metrics({"gaussian": lambda x, s: prior.score(x, s)}, maps, [0.04], seed=1)
    noise = np.random.default_rng(1).standard_normal(maps.shape).astype(np.float32)
    x = maps + 0.04 * noise
    wiener = np.real(np.fft.ifft2(power / (power + 0.04**2) * np.fft.fft2(x)))
    rmse = np.sqrt(np.mean((wiener - maps) ** 2, axis=(1, 2)))
    assert res["gaussian"]["rmse"]["mean"][0] == pytest.approx(rmse.mean(), rel=1e-4)

    full = cw.compare_weights([stems["zero"], stems["noisy"]], npix=16, num_maps=4, sigmas=(0.01,), denoise_sigmas=(0.04,))
    den = full["denoising"]
    assert abs(den[stems["zero"]]["rmse_relative_to_gaussian"]["mean"][0]) < 1e-5
    assert abs(den[stems["zero"]]["pearson_minus_gaussian"]["mean"][0]) < 1e-5
    assert abs(den[stems["noisy"]]["rmse_relative_to_gaussian"]["mean"][0]) > 1e-4
    assert "Direct denoising" in cw.markdown_table(json.loads(json.dumps(full)))
